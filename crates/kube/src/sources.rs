//! Reflectors over everything the controller reads. Every change produces a fresh
//! `Snapshot` in a watch channel; readers see only the latest one.

use crate::controller::Snapshot;
use api::v1beta1::{BFDProfile, BGPAdvertisement, Community, IPAddressPool, L2Advertisement};
use api::v1beta2::BGPPeer;
use config::{Object, Origin, Resources};
use futures::{FutureExt, Stream, StreamExt, stream};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::hash::Hash;
use tokio::sync::watch;

/// The stores of every watched kind.
struct Stores {
    services: Store<Service>,
    namespaces: Store<Namespace>,
    pools: Store<IPAddressPool>,
    l2: Store<L2Advertisement>,
    bgp: Store<BGPAdvertisement>,
    peers: Store<BGPPeer>,
    bfd: Store<BFDProfile>,
    communities: Store<Community>,
    configmaps: Store<ConfigMap>,
    secrets: Store<Secret>,
}

type Changes = std::pin::Pin<Box<dyn Stream<Item = ()> + Send>>;

/// One reflector: its store, and a stream that yields `()` on every change.
fn reflect<K>(api: Api<K>, config: watcher::Config) -> (Store<K>, Changes)
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone,
{
    let (store, writer) = reflector::store();
    let changes = watcher(api, config)
        .default_backoff()
        .reflect(writer)
        .map(|event| {
            if let Err(e) = event {
                tracing::warn!(error = %e, "watch error; retrying with backoff");
            }
        });
    (store, Box::pin(changes))
}

/// Watches everything the controller reads and publishes snapshots until the watches end.
pub async fn run(client: Client, namespace: String, snapshots: watch::Sender<Option<Snapshot>>) {
    let ns = |c: &Client| c.clone();
    let all = watcher::Config::default();
    let (services, s1) = reflect(Api::<Service>::all(ns(&client)), all.clone());
    let (namespaces, s2) = reflect(Api::<Namespace>::all(ns(&client)), all.clone());
    let (pools, s3) = reflect(
        Api::<IPAddressPool>::namespaced(ns(&client), &namespace),
        all.clone(),
    );
    let (l2, s4) = reflect(
        Api::<L2Advertisement>::namespaced(ns(&client), &namespace),
        all.clone(),
    );
    let (bgp, s5) = reflect(
        Api::<BGPAdvertisement>::namespaced(ns(&client), &namespace),
        all.clone(),
    );
    let (peers, s6) = reflect(
        Api::<BGPPeer>::namespaced(ns(&client), &namespace),
        all.clone(),
    );
    let (bfd, s7) = reflect(
        Api::<BFDProfile>::namespaced(ns(&client), &namespace),
        all.clone(),
    );
    let (communities, s8) = reflect(
        Api::<Community>::namespaced(ns(&client), &namespace),
        all.clone(),
    );
    let by_name = watcher::Config::default()
        .fields(&format!("metadata.name={}", api::legacy::CONFIGMAP_NAME));
    let (configmaps, s9) = reflect(
        Api::<ConfigMap>::namespaced(ns(&client), &namespace),
        by_name,
    );
    let (secrets, s10) = reflect(Api::<Secret>::namespaced(client, &namespace), all);
    let stores = Stores {
        services,
        namespaces,
        pools,
        l2,
        bgp,
        peers,
        bfd,
        communities,
        configmaps,
        secrets,
    };
    let mut changes = stream::select_all([s1, s2, s3, s4, s5, s6, s7, s8, s9, s10]);
    let mut ready = false;
    while changes.next().await.is_some() {
        // The first pass must see every Service, or a restarted controller could hand out
        // an IP that an unlisted Service still holds.
        ready = ready || stores.ready();
        if ready {
            snapshots.send_replace(Some(stores.snapshot(&namespace)));
        }
    }
}

impl Stores {
    fn ready(&self) -> bool {
        // A store is ready once its first full list has been applied.
        is_ready(&self.services)
            && is_ready(&self.namespaces)
            && is_ready(&self.pools)
            && is_ready(&self.l2)
            && is_ready(&self.bgp)
            && is_ready(&self.peers)
            && is_ready(&self.bfd)
            && is_ready(&self.communities)
            && is_ready(&self.configmaps)
            && is_ready(&self.secrets)
    }

    fn snapshot(&self, namespace: &str) -> Snapshot {
        let mut problems = Vec::new();
        let legacy = self
            .configmaps
            .state()
            .iter()
            .find(|cm| cm.name_any() == api::legacy::CONFIGMAP_NAME)
            .and_then(|cm| cm.data.as_ref()?.get(api::legacy::CONFIGMAP_KEY).cloned())
            .and_then(|text| {
                config::documents::legacy_data(
                    &text,
                    api::legacy::CONFIGMAP_NAME,
                    namespace,
                    &mut problems,
                )
            });
        let resources = Resources {
            pools: objects(&self.pools, |o| o.spec.clone()),
            l2_advertisements: objects(&self.l2, |o| o.spec.clone()),
            bgp_advertisements: objects(&self.bgp, |o| o.spec.clone()),
            peers: objects(&self.peers, |o| o.spec.clone()),
            bfd_profiles: objects(&self.bfd, |o| o.spec.clone()),
            communities: objects(&self.communities, |o| o.spec.clone()),
            secrets: self
                .secrets
                .state()
                .iter()
                .map(|s| {
                    let mut data: std::collections::BTreeMap<String, String> = s
                        .data
                        .iter()
                        .flatten()
                        .map(|(k, v)| (k.clone(), String::from_utf8_lossy(&v.0).into_owned()))
                        .collect();
                    data.extend(s.string_data.clone().unwrap_or_default());
                    (
                        s.name_any(),
                        config::resources::Secret {
                            type_: s.type_.clone().unwrap_or_default(),
                            data,
                        },
                    )
                })
                .collect(),
            nodes: Default::default(),
            namespaces: Default::default(),
            legacy,
            // Layer-2 interface exclusions concern the speakers, not allocation.
            interface_exclusions: None,
            services: Vec::new(),
        };
        Snapshot {
            services: self
                .services
                .state()
                .iter()
                .map(|s| (**s).clone())
                .collect(),
            namespaces: self
                .namespaces
                .state()
                .iter()
                .map(|n| (n.name_any(), n.labels().clone()))
                .collect(),
            resources,
        }
    }
}

fn is_ready<K>(store: &Store<K>) -> bool
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    store
        .wait_until_ready()
        .now_or_never()
        .is_some_and(|r| r.is_ok())
}

fn objects<K, T>(store: &Store<K>, spec: impl Fn(&K) -> T) -> Vec<Object<T>>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    let mut list: Vec<Object<T>> = store
        .state()
        .iter()
        .map(|o| Object {
            name: o.name_any(),
            labels: o.labels().clone(),
            spec: spec(o),
            source: None,
            origin: Origin::Resource,
        })
        .collect();
    // Store order is arbitrary; validation reports in a stable order.
    list.sort_by(|a, b| a.name.cmp(&b.name));
    list
}
