//! Reflectors over everything a speaker plans from: the configuration, Services,
//! EndpointSlices (kept as `records`) and Nodes; every change publishes a fresh snapshot. The speaker's own
//! status objects are listed once, for the first snapshot: it resumes from them after a
//! restart and keeps its own record afterwards (`status::Book`), so watching them would
//! only hold ten thousand echoes of its own writes.

use super::records::{ServiceRecord, SliceRecord};
use super::status::NODE_LABEL;
use crate::sources::{ConfigStores, is_ready, reflect, reflect_as, take_waiting};
use api::v1beta1::{ServiceBGPStatus, ServiceL2Status};
use config::{Problem, Resources};
use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::ListParams;
use kube::runtime::watcher;
use kube::{Api, Client};
use std::sync::Arc;
use tokio::sync::watch;

#[derive(Clone, Debug, Default)]
pub struct SpeakerSnapshot {
    pub resources: Resources,
    /// Problems found reading the resources (a malformed ConfigMap), before validation.
    pub problems: Vec<Problem>,
    /// Shared with the reflectors' stores: a change costs a list of pointers, not a copy of
    /// every record.
    pub services: Vec<Arc<ServiceRecord>>,
    pub slices: Vec<Arc<SliceRecord>>,
    pub nodes: Vec<Arc<Node>>,
    /// This node's status objects as they were at the first snapshot, for the first pass
    /// after a restart; empty in later snapshots.
    pub l2_statuses: Vec<Arc<ServiceL2Status>>,
    pub bgp_statuses: Vec<Arc<ServiceBGPStatus>>,
}

/// Publishes snapshots once every store has listed, until the watches end.
pub async fn run(
    client: Client,
    namespace: String,
    node: String,
    snapshots: watch::Sender<Option<Arc<SpeakerSnapshot>>>,
) {
    let everything = watcher::Config::default();
    let (services, s1) = reflect_as(
        Api::<Service>::all(client.clone()),
        everything.clone(),
        |svc| ServiceRecord::read(&svc),
    );
    let (slices, s2) = reflect_as(
        Api::<EndpointSlice>::all(client.clone()),
        everything.clone(),
        |slice| SliceRecord::read(&slice),
    );
    let (nodes, s3) = reflect(Api::<Node>::all(client.clone()), everything);
    let mine = ListParams::default().labels(&format!("{NODE_LABEL}={node}"));
    let (mut l2_statuses, mut bgp_statuses) = futures::join!(
        own(
            Api::<ServiceL2Status>::namespaced(client.clone(), &namespace),
            &mine
        ),
        own(
            Api::<ServiceBGPStatus>::namespaced(client.clone(), &namespace),
            &mine
        ),
    );
    let (config, mut changes) = ConfigStores::start(&client, &namespace, true);
    changes.extend([s1, s2, s3]);
    let mut changes = stream::select_all(changes);
    let mut ready = false;
    while changes.next().await.is_some() {
        // A burst of events is one snapshot; nothing waits for more, as every change may
        // move a route.
        take_waiting(&mut changes, tokio::time::Instant::now()).await;
        ready = ready
            || (config.ready() && is_ready(&services) && is_ready(&slices) && is_ready(&nodes));
        if !ready {
            continue;
        }
        let (resources, problems) = config.resources(&namespace);
        snapshots.send_replace(Some(Arc::new(SpeakerSnapshot {
            resources,
            problems,
            services: services.state(),
            slices: slices.state(),
            nodes: nodes.state(),
            l2_statuses: std::mem::take(&mut l2_statuses),
            bgp_statuses: std::mem::take(&mut bgp_statuses),
        })));
    }
}

/// This node's status objects of one kind, listed until the API server answers.
async fn own<K>(api: Api<K>, mine: &ListParams) -> Vec<Arc<K>>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    loop {
        match api.list(mine).await {
            Ok(list) => return list.items.into_iter().map(Arc::new).collect(),
            Err(e) => {
                tracing::warn!(
                    error = crate::errors::describe(&e),
                    "listing this node's status objects; retrying"
                );
                tokio::time::sleep(RETRY).await;
            }
        }
    }
}

/// How soon a failed list of the status objects is tried again.
const RETRY: std::time::Duration = std::time::Duration::from_secs(1);
