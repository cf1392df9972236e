//! Reflectors over everything a speaker reads: the configuration, Services, EndpointSlices,
//! Nodes, and its own status objects. Every change publishes a fresh snapshot, except a
//! change to the status objects once the first snapshot is out: those are the echoes of the
//! speaker's own writes, read only to resume after a restart, and must not cost a pass.

use super::status::NODE_LABEL;
use crate::sources::{COALESCE, ConfigStores, is_ready, reflect};
use api::v1beta1::{ServiceBGPStatus, ServiceL2Status};
use config::{Problem, Resources};
use futures::{FutureExt, StreamExt, stream};
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
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
    /// every object.
    pub services: Vec<Arc<Service>>,
    pub slices: Vec<Arc<EndpointSlice>>,
    pub nodes: Vec<Arc<Node>>,
    /// This node's status objects as they were at the first snapshot, for the first pass
    /// after a restart.
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
    let mine = watcher::Config::default().labels(&format!("{NODE_LABEL}={node}"));
    let (services, s1) = reflect(Api::<Service>::all(client.clone()), everything.clone());
    let (slices, s2) = reflect(
        Api::<EndpointSlice>::all(client.clone()),
        everything.clone(),
    );
    let (nodes, s3) = reflect(Api::<Node>::all(client.clone()), everything);
    let (l2, s4) = reflect(
        Api::<ServiceL2Status>::namespaced(client.clone(), &namespace),
        mine.clone(),
    );
    let (bgp, s5) = reflect(
        Api::<ServiceBGPStatus>::namespaced(client.clone(), &namespace),
        mine,
    );
    let (config, mut changes) = ConfigStores::start(&client, &namespace, true);
    changes.extend([s1, s2, s3]);
    let planned = stream::select_all(changes).map(|()| Change::Planned);
    let echoes = stream::select(s4, s5).map(|()| Change::Echo);
    let mut changes = stream::select(planned, echoes);
    let mut ready = false;
    while let Some(mut change) = changes.next().await {
        // A burst of events is one snapshot: a planned change among them wins over echoes.
        for _ in 0..COALESCE {
            match changes.next().now_or_never().flatten() {
                Some(Change::Planned) => change = Change::Planned,
                Some(Change::Echo) => {}
                None => break,
            }
        }
        if ready && change == Change::Echo {
            continue;
        }
        ready = ready
            || (config.ready()
                && is_ready(&services)
                && is_ready(&slices)
                && is_ready(&nodes)
                && is_ready(&l2)
                && is_ready(&bgp));
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
            l2_statuses: l2.state(),
            bgp_statuses: bgp.state(),
        })));
    }
}

/// Which store changed: one the plan reads, or the speaker's own status objects.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Change {
    Planned,
    Echo,
}
