//! Reflectors over everything the controller reads. Every change produces a fresh
//! `Snapshot` in a watch channel; readers see only the latest one.

use crate::controller::Snapshot;
use api::v1beta1::{BFDProfile, BGPAdvertisement, Community, IPAddressPool, L2Advertisement};
use api::v1beta2::BGPPeer;
use config::documents::{self, ReadOptions};
use config::{Object, Origin, Problem, Resources};
use futures::{FutureExt, Stream, StreamExt, TryStreamExt, future, stream};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service};
use kube::runtime::reflector::{self, Lookup, Store};
use kube::runtime::utils::ResetTimerBackoff;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::hash::Hash;
use std::time::Duration;
use tokio::sync::watch;

/// The configuration every daemon reads: the metallb.io resources, the ConfigMaps (the
/// legacy `config` and `metallb-excludel2`) and the Secrets holding BGP passwords.
pub(crate) struct ConfigStores {
    pools: Store<IPAddressPool>,
    l2: Store<L2Advertisement>,
    bgp: Store<BGPAdvertisement>,
    /// None for the controller, which allocates without peers: MetalLB's roles let it list
    /// BGPPeers but not watch them.
    peers: Option<Store<BGPPeer>>,
    bfd: Store<BFDProfile>,
    communities: Store<Community>,
    configmaps: Store<ConfigMap>,
    secrets: Store<Secret>,
}

/// The ConfigMaps ironlb reads; others in the namespace (CA bundles and the like) are not
/// configuration.
const CONFIGMAPS: [&str; 2] = [api::legacy::CONFIGMAP_NAME, "metallb-excludel2"];

type Changes = std::pin::Pin<Box<dyn Stream<Item = ()> + Send>>;

/// One reflector: its store, and a stream that yields `()` on every change.
pub(crate) fn reflect<K>(api: Api<K>, config: watcher::Config) -> (Store<K>, Changes)
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone,
{
    reflect_as(api, config, |mut object: K| {
        slim(&mut object);
        object
    })
}

/// One reflector whose store keeps `read` of each object, not the object.
pub(crate) fn reflect_as<K, R>(
    api: Api<K>,
    config: watcher::Config,
    read: impl Fn(K) -> R + Send + 'static,
) -> (Store<R>, Changes)
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    K::DynamicType: Default,
    R: Lookup + Clone + Send + Sync + 'static,
    R::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
{
    let (store, writer) = reflector::store();
    let kind = K::kind(&Default::default()).to_string();
    let events = watcher(api, config)
        .filter(move |event| future::ready(!expired(&kind, event)))
        .backoff(backoff())
        .map_ok(move |event| read_event(event, &read));
    let changes = reflector::reflector(writer, events).map(|event| {
        if let Err(e) = event {
            tracing::warn!(
                kind = K::kind(&Default::default()).as_ref(),
                error = crate::errors::describe_watch(&e),
                "watch error; retrying with backoff"
            );
        }
    });
    (store, Box::pin(changes))
}

fn read_event<K, R>(event: watcher::Event<K>, read: impl Fn(K) -> R) -> watcher::Event<R> {
    use watcher::Event;
    match event {
        Event::Apply(object) => Event::Apply(read(object)),
        Event::Delete(object) => Event::Delete(read(object)),
        Event::Init => Event::Init,
        Event::InitApply(object) => Event::InitApply(read(object)),
        Event::InitDone => Event::InitDone,
    }
}

/// The annotation `kubectl apply` keeps a whole copy of the object in.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Drops what no daemon reads before an object is stored: the managed fields (the largest
/// part of a Service or an EndpointSlice as the API server returns it) and kubectl's copy of
/// the object. Ten thousand Services and their slices took 260 MB in a speaker with them.
fn slim<K: Resource>(object: &mut K) {
    let meta = object.meta_mut();
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
    }
}

/// A 410 Gone only says the watch must list again, which the watcher does on its next poll:
/// not a failure to back off from (client-go lists again at once too). Backing off here
/// would leave a speaker blind for another step of the backoff after every API server
/// restart.
fn expired<K>(kind: &str, event: &Result<watcher::Event<K>, watcher::Error>) -> bool {
    let gone = matches!(event, Err(watcher::Error::WatchError(status)) if status.code == 410);
    if gone {
        tracing::info!(kind, "watch expired (410 Gone); listing again");
    }
    gone
}

/// Retries from 0.5 s up to 5 s, with jitter, reset after a minute without errors. The API
/// server is local to the cluster and the speakers act on what they see, so after an
/// outage they must see again within seconds; kube's default (client-go's, up to 30 s)
/// left them blind for half a minute after the server was back.
fn backoff() -> ResetTimerBackoff<watcher::ExponentialBackoff> {
    let exponential = backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(500))
        .with_max_delay(Duration::from_secs(5))
        .with_factor(2.0)
        .with_jitter()
        .without_max_times();
    ResetTimerBackoff::new(exponential.into(), Duration::from_secs(60))
}

impl ConfigStores {
    pub(crate) fn start(
        client: &Client,
        namespace: &str,
        with_peers: bool,
    ) -> (ConfigStores, Vec<Changes>) {
        let all = watcher::Config::default();
        let api = || client.clone();
        let (pools, s1) = reflect(Api::namespaced(api(), namespace), all.clone());
        let (l2, s2) = reflect(Api::namespaced(api(), namespace), all.clone());
        let (bgp, s3) = reflect(Api::namespaced(api(), namespace), all.clone());
        let peers = with_peers.then(|| reflect(Api::namespaced(api(), namespace), all.clone()));
        let (peers, s4) = match peers {
            Some((store, changes)) => (Some(store), Some(changes)),
            None => (None, None),
        };
        let (bfd, s5) = reflect(Api::namespaced(api(), namespace), all.clone());
        let (communities, s6) = reflect(Api::namespaced(api(), namespace), all.clone());
        let (configmaps, s7) = reflect(Api::namespaced(api(), namespace), all.clone());
        let (secrets, s8) = reflect(Api::namespaced(api(), namespace), all);
        let stores = ConfigStores {
            pools,
            l2,
            bgp,
            peers,
            bfd,
            communities,
            configmaps,
            secrets,
        };
        let changes = [
            Some(s1),
            Some(s2),
            Some(s3),
            s4,
            Some(s5),
            Some(s6),
            Some(s7),
            Some(s8),
        ];
        (stores, changes.into_iter().flatten().collect())
    }

    /// Whether every store has applied its first full list.
    pub(crate) fn ready(&self) -> bool {
        is_ready(&self.pools)
            && is_ready(&self.l2)
            && is_ready(&self.bgp)
            && self.peers.as_ref().is_none_or(is_ready)
            && is_ready(&self.bfd)
            && is_ready(&self.communities)
            && is_ready(&self.configmaps)
            && is_ready(&self.secrets)
    }

    /// The resources, and the problems found reading the ConfigMaps (which go through the
    /// same reader as files, so their errors read the same).
    pub(crate) fn resources(&self, namespace: &str) -> (Resources, Vec<Problem>) {
        let mut problems = Vec::new();
        let mut resources = Resources {
            pools: objects(&self.pools, |o| o.spec.clone()),
            l2_advertisements: objects(&self.l2, |o| o.spec.clone()),
            bgp_advertisements: objects(&self.bgp, |o| o.spec.clone()),
            peers: self
                .peers
                .as_ref()
                .map(|p| objects(p, |o| o.spec.clone()))
                .unwrap_or_default(),
            bfd_profiles: objects(&self.bfd, |o| o.spec.clone()),
            communities: objects(&self.communities, |o| o.spec.clone()),
            secrets: self.secrets.state().iter().map(|s| secret(s)).collect(),
            ..Resources::default()
        };
        let configmaps: Vec<ConfigMap> = self
            .configmaps
            .state()
            .iter()
            .map(|cm| (**cm).clone())
            .collect();
        read_configmaps(&configmaps, namespace, &mut resources, &mut problems);
        (resources, problems)
    }
}

/// Reads the legacy `config` and the `metallb-excludel2` ConfigMaps into `resources`,
/// through the same reader as files, so their errors read the same.
pub fn read_configmaps(
    configmaps: &[ConfigMap],
    namespace: &str,
    resources: &mut Resources,
    problems: &mut Vec<Problem>,
) {
    let options = ReadOptions {
        namespace: namespace.to_string(),
    };
    let mut ours: Vec<&ConfigMap> = configmaps
        .iter()
        .filter(|cm| CONFIGMAPS.contains(&cm.name_any().as_str()))
        .collect();
    ours.sort_by_key(|cm| cm.name_any());
    for cm in ours {
        let source = format!("ConfigMap {namespace}/{}", cm.name_any());
        match serde_json::to_string(cm) {
            Ok(text) => documents::read(&text, &source, &options, resources, problems),
            Err(e) => tracing::warn!(%source, error = %e, "cannot re-encode a ConfigMap"),
        }
    }
}

fn secret(s: &Secret) -> (String, config::resources::Secret) {
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
}

/// At most this many events go into one snapshot, so a steady stream of them still
/// publishes.
const COALESCE: usize = 1000;

/// The controller publishes a snapshot at most this often. A change after a quiet spell
/// publishes at once; in a burst (ten thousand status writes echoing back) the rest wait for
/// the next tick: each snapshot walks every Service, and one per echo took 44% of the
/// controller's CPU, away from the API server it shares the machine with.
const SNAPSHOT_INTERVAL: Duration = Duration::from_millis(50);

/// Takes the changes already waiting, and those that come before `until`, into the snapshot
/// about to be built.
pub(crate) async fn take_waiting<S: Stream<Item = ()> + Unpin>(
    changes: &mut S,
    until: tokio::time::Instant,
) {
    for _ in 0..COALESCE {
        // A deadline already past still takes what is waiting: the stream is polled first.
        if !matches!(
            tokio::time::timeout_at(until, changes.next()).await,
            Ok(Some(()))
        ) {
            return;
        }
    }
}

/// Watches everything the controller reads and publishes snapshots until the watches end.
pub async fn run(client: Client, namespace: String, snapshots: watch::Sender<Option<Snapshot>>) {
    let all = watcher::Config::default();
    let (services, s1) = reflect(Api::<Service>::all(client.clone()), all.clone());
    let (namespaces, s2) = reflect(Api::<Namespace>::all(client.clone()), all);
    let (config, mut changes) = ConfigStores::start(&client, &namespace, false);
    changes.extend([s1, s2]);
    let mut changes = stream::select_all(changes);
    let mut ready = false;
    let mut last = tokio::time::Instant::now();
    while changes.next().await.is_some() {
        take_waiting(&mut changes, last + SNAPSHOT_INTERVAL).await;
        // The first pass must see every Service, or a restarted controller could hand out
        // an IP that an unlisted Service still holds.
        ready = ready || (config.ready() && is_ready(&services) && is_ready(&namespaces));
        if !ready {
            continue;
        }
        let (resources, problems) = config.resources(&namespace);
        snapshots.send_replace(Some(Snapshot {
            services: services.state(),
            namespaces: namespaces
                .state()
                .iter()
                .map(|n| (n.name_any(), n.labels().clone()))
                .collect(),
            resources,
            problems,
        }));
        last = tokio::time::Instant::now();
    }
}

pub(crate) fn is_ready<K>(store: &Store<K>) -> bool
where
    K: Lookup + Clone + 'static,
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
    config_objects(store.state().iter().map(|o| &**o), spec)
}

/// Kubernetes objects as the validator's, sorted by name: store and list order is arbitrary,
/// and validation reports in a stable order.
pub(crate) fn config_objects<'a, K, T>(
    items: impl IntoIterator<Item = &'a K>,
    spec: impl Fn(&K) -> T,
) -> Vec<Object<T>>
where
    K: Resource + 'a,
{
    let mut list: Vec<Object<T>> = items
        .into_iter()
        .map(|o| Object {
            name: o.name_any(),
            labels: o.labels().clone(),
            spec: spec(o),
            source: None,
            origin: Origin::Resource,
        })
        .collect();
    list.sort_by(|a, b| a.name.cmp(&b.name));
    list
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configmap(name: &str, key: &str, value: &str) -> ConfigMap {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "metallb-system", "managedFields": []},
            "data": {key: value},
        }))
        .unwrap()
    }

    #[test]
    fn stored_objects_keep_what_the_daemons_read_and_lose_the_rest() {
        let mut svc: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "annotations": {LAST_APPLIED: "{...}", "metallb.io/loadBalancerIPs": "192.0.2.10"},
                         "managedFields": [{"manager": "kubectl", "operation": "Apply"}]},
            "spec": {"type": "LoadBalancer"}
        }))
        .unwrap();
        slim(&mut svc);
        assert_eq!(svc.metadata.managed_fields, None);
        let annotations = svc.metadata.annotations.unwrap();
        assert_eq!(
            annotations.keys().collect::<Vec<_>>(),
            ["metallb.io/loadBalancerIPs"]
        );
        assert!(svc.spec.is_some());
    }

    #[test]
    fn configmaps_read_as_files_do_and_others_are_not_configuration() {
        let maps = [
            configmap(
                "config",
                "config",
                "address-pools:\n- name: lan\n  protocol: layer2\n  addresses: [192.0.2.128/25]\n",
            ),
            configmap(
                "metallb-excludel2",
                "excludel2.yaml",
                "announcedInterfacesToExclude: ['^wlan']\n",
            ),
            configmap("kube-root-ca.crt", "ca.crt", "-----BEGIN CERTIFICATE-----"),
        ];
        let mut resources = Resources::default();
        let mut problems = Vec::new();
        read_configmaps(&maps, "metallb-system", &mut resources, &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            resources.legacy.as_ref().unwrap().spec.address_pools.len(),
            1
        );
        assert_eq!(
            resources.interface_exclusions,
            Some(vec!["^wlan".to_string()])
        );
    }

    #[test]
    fn a_malformed_legacy_configmap_is_a_problem_not_an_empty_config() {
        let maps = [configmap("config", "config", "address-pools: [name: lan")];
        let mut resources = Resources::default();
        let mut problems = Vec::new();
        read_configmaps(&maps, "metallb-system", &mut resources, &mut problems);
        let outcome = config::build_read(&resources, problems);
        assert!(
            outcome.config.is_none(),
            "a broken ConfigMap must not read as 'no pools'"
        );
        let problem = outcome.errors().next().unwrap().to_string();
        assert!(problem.contains("ConfigMap"), "{problem}");
    }
}
