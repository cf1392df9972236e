//! Carries out a speaker's writes: its ServiceL2Status and ServiceBGPStatus objects (created
//! with `generateName`, then their status set through the status subresource, as MetalLB
//! does) and its `nodeAssigned` events.

use super::status::{
    Book, Detail, Kind, NODE_LABEL, SERVICE_NAME_LABEL, SERVICE_NAMESPACE_LABEL, Status,
    StatusWrite,
};
use crate::events::{Events, ServiceEvent};
use crate::writer::{Reconciler, WriteError, at_once, config_state};
use api::v1beta1::{ConfigurationStateStatus, ServiceBGPStatus, ServiceL2Status};
use ironlb_plan::ServiceKey;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::fmt::Debug;

pub struct SpeakerWriter {
    client: Client,
    namespace: String,
    node: String,
    /// The speaker Pod, so its status objects go away with it.
    owner: Option<OwnerReference>,
    events: Events,
}

impl SpeakerWriter {
    pub fn new(client: Client, namespace: &str, node: &str, owner: Option<OwnerReference>) -> Self {
        SpeakerWriter {
            events: Events::new(client.clone(), "metallb-speaker", Some(node.to_string())),
            client,
            namespace: namespace.to_string(),
            node: node.to_string(),
            owner,
        }
    }

    /// Carries out `writes`, several at a time, recording each that succeeds in `book`; a
    /// failed one is left for the next pass. One at a time, a restart at ten thousand
    /// Services took a hundred seconds to write its objects.
    pub async fn statuses(&self, book: &mut Book, writes: &[StatusWrite]) -> Vec<WriteError> {
        // By index: a closure over references would make the future not provably Send.
        let done =
            at_once((0..writes.len()).map(|i| async move { (i, self.status(&writes[i]).await) }))
                .await;
        let mut failures = Vec::new();
        for (i, result) in done {
            match result {
                Ok(name) => book.record(&writes[i], name),
                Err(e) => failures.push(e),
            }
        }
        failures
    }

    /// One write; a created object's name.
    async fn status(&self, w: &StatusWrite) -> Result<Option<String>, WriteError> {
        match w {
            StatusWrite::Create(s) => match s.detail.kind() {
                Kind::Layer2 => self.create::<ServiceL2Status>(s).await.map(Some),
                Kind::Bgp => self.create::<ServiceBGPStatus>(s).await.map(Some),
            },
            StatusWrite::Update(name, s) => match s.detail.kind() {
                Kind::Layer2 => self.set_status::<ServiceL2Status>(name, s).await,
                Kind::Bgp => self.set_status::<ServiceBGPStatus>(name, s).await,
            }
            .map(|()| None),
            StatusWrite::Delete(name, kind) => match kind {
                Kind::Layer2 => self.delete::<ServiceL2Status>(name).await,
                Kind::Bgp => self.delete::<ServiceBGPStatus>(name).await,
            }
            .map(|()| None),
        }
    }

    async fn create<K>(&self, s: &Status) -> Result<String, WriteError>
    where
        K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + Serialize
            + Debug,
    {
        let ServiceKey {
            namespace: ns,
            name,
        } = &s.service;
        let object: K = serde_json::from_value(json!({
            "apiVersion": K::api_version(&()),
            "kind": K::kind(&()),
            "metadata": {
                "generateName": s.detail.kind().prefix(),
                "namespace": self.namespace,
                "labels": {NODE_LABEL: self.node, SERVICE_NAME_LABEL: name, SERVICE_NAMESPACE_LABEL: ns},
                "ownerReferences": self.owner.iter().collect::<Vec<_>>(),
            },
            "spec": {},
        }))
        .map_err(|e| WriteError::Encode {
            what: format!("{} for {}", K::kind(&()), s.service),
            message: e.to_string(),
        })?;
        let created = self
            .api::<K>()
            .create(&PostParams::default(), &object)
            .await
            .map_err(|source| WriteError::Kube {
                what: format!("{} for {}", K::kind(&()), s.service),
                source,
            })?;
        let name = created.name_any();
        self.set_status::<K>(&name, s).await?;
        tracing::info!(kind = %K::kind(&()), object = %name, service = %s.service, "status object created");
        Ok(name)
    }

    async fn set_status<K>(&self, object: &str, s: &Status) -> Result<(), WriteError>
    where
        K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + Debug,
    {
        let patch = json!({"status": self.status_body(s)});
        self.api::<K>()
            .patch_status(object, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(drop)
            .map_err(|source| WriteError::Kube {
                what: format!("{} {object} status", K::kind(&())),
                source,
            })
    }

    fn api<K>(&self) -> Api<K>
    where
        K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    fn status_body(&self, s: &Status) -> Value {
        let ServiceKey {
            namespace: ns,
            name,
        } = &s.service;
        let mut body = json!({"node": self.node, "serviceName": name, "serviceNamespace": ns});
        match &s.detail {
            Detail::Interfaces(names) => {
                let interfaces: Vec<Value> = names.iter().map(|i| json!({"name": i})).collect();
                body["interfaces"] = Value::from(interfaces);
            }
            Detail::Peers(names) => body["peers"] = json!(names),
        }
        body
    }

    async fn delete<K>(&self, object: &str) -> Result<(), WriteError>
    where
        K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + Debug,
    {
        match self
            .api::<K>()
            .delete(object, &DeleteParams::default())
            .await
        {
            Ok(_) => Ok(()),
            // Already gone is what we wanted.
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(source) => Err(WriteError::Kube {
                what: format!("deleting {} {object}", K::kind(&())),
                source,
            }),
        }
    }

    /// MetalLB's `nodeAssigned` event: this node now announces the Service.
    pub async fn node_assigned(&self, svc: Involved<'_>, kind: Kind) -> Result<(), WriteError> {
        let note = format!(
            "announcing from node {:?} with protocol {:?}",
            self.node,
            kind.protocol()
        );
        self.event(svc, ("nodeAssigned", kind.action()), note, false)
            .await
    }

    /// MetalLB's `announceFailed` event: a layer-2 IP no interface of this node can carry.
    pub async fn announce_failed(&self, svc: Involved<'_>, ip: &str) -> Result<(), WriteError> {
        let note = format!(
            "the interfaces specified by LB IP {ip:?} doesn't exist in assigned node {:?} with protocol \"layer2\"",
            self.node
        );
        self.event(svc, ("announceFailed", Kind::Layer2.action()), note, true)
            .await
    }

    async fn event(
        &self,
        (svc, uid): Involved<'_>,
        (reason, action): (&str, &str),
        note: String,
        warning: bool,
    ) -> Result<(), WriteError> {
        let event = ServiceEvent {
            namespace: &svc.namespace,
            name: &svc.name,
            uid,
            reason,
            action,
            note,
            warning,
        };
        self.events.publish(event).await
    }
}

/// The Service an event is about: its key, and its uid when known (events name the object
/// by both).
pub type Involved<'a> = (&'a ServiceKey, Option<&'a str>);

/// What this node should have written: its status objects, by (kind, Service), and each
/// Service's uid for the events about it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Desired {
    pub statuses: std::collections::BTreeMap<(Kind, ServiceKey), Vec<String>>,
    pub uids: std::collections::BTreeMap<ServiceKey, String>,
    /// Layer-2 IPs no interface here can carry, with their Service.
    pub unplaced: std::collections::BTreeMap<String, ServiceKey>,
    /// Whether this node accepted the configuration (`ConfigurationState/speaker-<node>`).
    pub config: Option<ConfigurationStateStatus>,
}

/// Keeps the cluster in step with `desired`, apart from the network path: a slow or absent
/// API server never delays an announcement. A `nodeAssigned` event marks each Service this
/// node starts announcing, and `announceFailed` each IP it cannot carry.
pub async fn run(
    writer: SpeakerWriter,
    mut book: Book,
    mut desired: tokio::sync::watch::Receiver<Desired>,
    metrics: crate::metrics::ClientMetrics,
) {
    let retry = std::time::Duration::from_secs(5);
    let mut done = Done::default();
    loop {
        let round = Round::read(&desired.borrow_and_update(), &book);
        let (attempted, failures) = round.carry_out(&writer, &mut book, &mut done).await;
        metrics.record(attempted, failures.len());
        for e in &failures {
            tracing::warn!(error = %e, "status write failed; retrying");
        }
        let wait = async {
            if failures.is_empty() {
                std::future::pending::<()>().await
            } else {
                tokio::time::sleep(retry).await
            }
        };
        tokio::select! {
            changed = desired.changed() => if changed.is_err() { return },
            () = wait => {}
        }
    }
}

/// What earlier rounds wrote besides status objects.
#[derive(Default)]
struct Done {
    config: Option<ConfigurationStateStatus>,
    /// The unplaced IPs already warned of.
    warned: std::collections::BTreeSet<String>,
}

/// One round's work, read from the wishes without copying them: at ten thousand Services a
/// copy of every wish on each wake cost more than the writes.
struct Round {
    config: Option<ConfigurationStateStatus>,
    writes: Vec<StatusWrite>,
    /// The uids of the Services this round may name in events.
    uids: std::collections::BTreeMap<ServiceKey, String>,
    unplaced: std::collections::BTreeMap<String, ServiceKey>,
}

impl Round {
    fn read(want: &Desired, book: &Book) -> Round {
        let writes = book.writes(&want.statuses);
        let created = writes.iter().filter_map(|w| match w {
            StatusWrite::Create(s) => Some(&s.service),
            _ => None,
        });
        let uids = created
            .chain(want.unplaced.values())
            .filter_map(|k| Some((k.clone(), want.uids.get(k)?.clone())))
            .collect();
        Round {
            config: want.config.clone(),
            writes,
            uids,
            unplaced: want.unplaced.clone(),
        }
    }

    /// The configuration state, the status objects, then the events; the writes tried,
    /// and those that failed.
    async fn carry_out(
        &self,
        writer: &SpeakerWriter,
        book: &mut Book,
        done: &mut Done,
    ) -> (usize, Vec<WriteError>) {
        let mut failures = Vec::new();
        let config_due = self.config.is_some() && self.config != done.config;
        if config_due {
            let who = Reconciler::speaker(&writer.node);
            let state = self.config.clone().unwrap_or_default();
            match config_state(&writer.client, &writer.namespace, &who, &state).await {
                Ok(()) => done.config.clone_from(&self.config),
                Err(e) => failures.push(e),
            }
        }
        failures.extend(writer.statuses(book, &self.writes).await);
        for s in self.writes.iter().filter_map(|w| match w {
            StatusWrite::Create(s) => Some(s),
            _ => None,
        }) {
            let kind = s.detail.kind();
            if !book.holds(kind, &s.service) {
                continue;
            }
            let uid = self.uids.get(&s.service).map(String::as_str);
            if let Err(e) = writer.node_assigned((&s.service, uid), kind).await {
                tracing::warn!(error = %e, "event not written");
            }
        }
        self.warn_unplaced(writer, done).await;
        (usize::from(config_due) + self.writes.len(), failures)
    }

    async fn warn_unplaced(&self, writer: &SpeakerWriter, done: &mut Done) {
        for (ip, service) in &self.unplaced {
            if done.warned.contains(ip) {
                continue;
            }
            let uid = self.uids.get(service).map(String::as_str);
            if let Err(e) = writer.announce_failed((service, uid), ip).await {
                tracing::warn!(error = %e, "event not written");
            }
        }
        done.warned = self.unplaced.keys().cloned().collect();
    }
}
