//! Turns a pass's writes into API requests: Service status (with the pool annotation) through the
//! status subresource, Events, IPAddressPool status and ConfigurationState, each with a
//! verb MetalLB's own roles grant.

use crate::annotations::ALLOCATED_FROM_POOL;
use crate::controller::{EventWrite, ServiceWrite, Writes};
use crate::events::{Events, ServiceEvent};
use crate::service_view;
use api::v1beta1::{
    ConfigurationResult, ConfigurationState, ConfigurationStateStatus, IPAddressPool,
    IPAddressPoolStatus,
};
use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::{LoadBalancerIngress, LoadBalancerStatus, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;

/// Writes in flight at once: enough to keep the API server busy, few enough that its
/// client-side limits (and a small server) are not flooded.
const IN_FLIGHT: usize = 16;

/// Runs `writes` `IN_FLIGHT` at a time; the failures.
async fn in_flight(
    writes: impl Iterator<Item = impl Future<Output = Result<(), WriteError>>>,
) -> Vec<WriteError> {
    at_once(writes)
        .await
        .into_iter()
        .filter_map(Result::err)
        .collect()
}

/// Runs `futures` `IN_FLIGHT` at a time; their outputs, as they finish.
pub(crate) async fn at_once<T>(futures: impl Iterator<Item = impl Future<Output = T>>) -> Vec<T> {
    stream::iter(futures)
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await
}

/// `svc` with the ingress and pool annotation of `w`, written through the status subresource.
async fn set_status(api: &Api<Service>, w: &ServiceWrite, mut svc: Service) -> kube::Result<()> {
    let annotations = svc.metadata.annotations.get_or_insert_default();
    match &w.pool {
        Some(pool) => annotations.insert(ALLOCATED_FROM_POOL.to_string(), pool.clone()),
        None => annotations.remove(ALLOCATED_FROM_POOL),
    };
    let ingress: Vec<LoadBalancerIngress> = w
        .ips
        .iter()
        .map(|ip| LoadBalancerIngress {
            ip: Some(ip.to_string()),
            ..LoadBalancerIngress::default()
        })
        .collect();
    svc.status.get_or_insert_default().load_balancer = Some(LoadBalancerStatus {
        ingress: (!ingress.is_empty()).then_some(ingress),
    });
    api.replace_status(&w.name, &PostParams::default(), &svc)
        .await?;
    tracing::info!(service = %format!("{}/{}", w.namespace, w.name), ips = ?w.ips, pool = ?w.pool, "service status written");
    Ok(())
}

/// Who writes a ConfigurationState, and how MetalLB names its parts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reconciler {
    /// The object's name: `controller`, or `speaker-<node>`.
    pub name: String,
    pub labels: std::collections::BTreeMap<String, String>,
    /// The server-side apply field manager, which is also the condition's type prefix.
    pub field_manager: &'static str,
}

impl Reconciler {
    pub fn controller() -> Reconciler {
        Reconciler {
            name: "controller".into(),
            labels: [(
                "metallb.io/component-type".to_string(),
                "controller".to_string(),
            )]
            .into(),
            field_manager: "poolReconciler",
        }
    }

    /// The controller's webhooks, reporting whether the API server reaches them into the
    /// controller's ConfigurationState under a field manager of their own.
    pub fn webhooks() -> Reconciler {
        Reconciler {
            field_manager: "webhookReporter",
            ..Reconciler::controller()
        }
    }

    pub fn speaker(node: &str) -> Reconciler {
        Reconciler {
            name: format!("speaker-{node}"),
            labels: [
                (
                    "metallb.io/component-type".to_string(),
                    "speaker".to_string(),
                ),
                ("metallb.io/node-name".to_string(), node.to_string()),
            ]
            .into(),
            field_manager: "configReconciler",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("writing {what}: {}", crate::errors::describe(source))]
    Kube {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("encoding {what}: {message}")]
    Encode { what: String, message: String },
}

pub struct Writer {
    client: Client,
    namespace: String,
    events: Events,
}

impl Writer {
    pub fn new(client: Client, namespace: &str, instance: Option<String>) -> Self {
        Writer {
            events: Events::new(client.clone(), "metallb-controller", instance),
            client,
            namespace: namespace.to_string(),
        }
    }

    /// Applies every write; failures are collected, so one bad Service does not block the rest.
    /// Service statuses, then their events, go `IN_FLIGHT` at a time: one after another, a
    /// pass that gives ten thousand Services their IPs waits on ten thousand round trips.
    /// `current` holds the Services as the pass saw them, to write from.
    pub async fn apply(&self, writes: &Writes, current: &[Arc<Service>]) -> Vec<WriteError> {
        let cached: HashMap<(&str, &str), &Service> = current
            .iter()
            .map(|s| (service_view::namespaced_name(&s.metadata), &**s))
            .collect();
        // By index: a closure over references would make the future not provably Send.
        let mut failures = in_flight((0..writes.services.len()).map(|i| {
            let w = &writes.services[i];
            let key = (w.namespace.as_str(), w.name.as_str());
            self.service(w, cached.get(&key).copied())
        }))
        .await;
        failures.extend(
            in_flight((0..writes.events.len()).map(|i| self.event(&writes.events[i]))).await,
        );
        for (pool, status) in &writes.pool_status {
            if let Err(e) = self.pool_status(pool, status).await {
                failures.push(e);
            }
        }
        if let Some(state) = &writes.config_state
            && let Err(e) = config_state(
                &self.client,
                &self.namespace,
                &Reconciler::controller(),
                state,
            )
            .await
        {
            failures.push(e);
        }
        failures
    }

    /// Sets the ingress and the pool annotation together, through the status subresource
    /// (the API server lets metadata change there). By update, not patch: MetalLB's roles
    /// grant `services/status` update only. The update starts from `cached`, the Service as
    /// the pass saw it, so it carries that resourceVersion and costs one request; when the
    /// Service changed since (a conflict), or the pass had no copy, it is read afresh first.
    async fn service(&self, w: &ServiceWrite, cached: Option<&Service>) -> Result<(), WriteError> {
        let api: Api<Service> = Api::namespaced(self.client.clone(), &w.namespace);
        let fail = |source| WriteError::Kube {
            what: format!("Service {}/{} status", w.namespace, w.name),
            source,
        };
        // Without a resourceVersion the update would not be guarded against a newer Service.
        if let Some(cached) = cached.filter(|c| c.metadata.resource_version.is_some()) {
            match set_status(&api, w, cached.clone()).await {
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                done => return done.map_err(fail),
            }
        }
        let fresh = api.get(&w.name).await.map_err(fail)?;
        set_status(&api, w, fresh).await.map_err(fail)
    }

    async fn event(&self, e: &EventWrite) -> Result<(), WriteError> {
        let event = ServiceEvent {
            namespace: &e.namespace,
            name: &e.name,
            uid: e.uid.as_deref(),
            reason: &e.reason,
            action: "Allocate",
            note: e.note.clone(),
            warning: e.warning,
        };
        self.events.publish(event).await
    }

    /// By update, as MetalLB's roles grant `ipaddresspools/status` update only.
    async fn pool_status(
        &self,
        pool: &str,
        status: &IPAddressPoolStatus,
    ) -> Result<(), WriteError> {
        let api: Api<IPAddressPool> = Api::namespaced(self.client.clone(), &self.namespace);
        let fail = |source| WriteError::Kube {
            what: format!("IPAddressPool {pool} status"),
            source,
        };
        let mut object = api.get(pool).await.map_err(fail)?;
        object.status = Some(status.clone());
        api.replace_status(pool, &PostParams::default(), &object)
            .await
            .map(drop)
            .map_err(fail)
    }
}

/// Creates the reconciler's ConfigurationState if needed, then sets its status, both by
/// server-side apply under the reconciler's field manager.
pub async fn config_state(
    client: &Client,
    namespace: &str,
    who: &Reconciler,
    state: &ConfigurationStateStatus,
) -> Result<(), WriteError> {
    let api = states(client, namespace);
    let object = json!({
        "apiVersion": "metallb.io/v1beta1",
        "kind": "ConfigurationState",
        "metadata": {"name": who.name, "labels": who.labels},
    });
    api.patch(&who.name, &apply(who), &Patch::Apply(&object))
        .await
        .map_err(state_error(who))?;
    let valid = state.result == Some(ConfigurationResult::Valid);
    let condition = Condition {
        type_: format!("{}Valid", who.field_manager),
        status: if valid { "True" } else { "False" }.to_string(),
        reason: if valid {
            "Reconciled"
        } else {
            "ConfigurationError"
        }
        .to_string(),
        message: state.error_summary.clone(),
        last_transition_time: Time(k8s_openapi::jiff::Timestamp::now()),
        observed_generation: None,
    };
    let status = ConfigurationStateStatus {
        conditions: vec![condition],
        ..state.clone()
    };
    apply_status(&api, who, json!(status)).await
}

/// Sets one condition of an existing ConfigurationState beside the others: conditions are a
/// list keyed by type, which server-side apply merges entry by entry, so each field manager
/// keeps its own.
pub async fn condition(
    client: &Client,
    namespace: &str,
    who: &Reconciler,
    condition: &Condition,
) -> Result<(), WriteError> {
    let status = json!({ "conditions": [condition] });
    apply_status(&states(client, namespace), who, status).await
}

/// MetalLB's ConfigurationState has no spec, so the object is handled untyped: the derived
/// type insists on one, and server-side apply refuses one the schema does not declare.
fn states(client: &Client, namespace: &str) -> Api<DynamicObject> {
    let resource = ApiResource::erase::<ConfigurationState>(&());
    Api::namespaced_with(client.clone(), namespace, &resource)
}

fn apply(who: &Reconciler) -> PatchParams {
    PatchParams::apply(who.field_manager).force()
}

fn state_error(who: &Reconciler) -> impl Fn(kube::Error) -> WriteError + '_ {
    move |source| WriteError::Kube {
        what: format!("ConfigurationState {}", who.name),
        source,
    }
}

async fn apply_status(
    api: &Api<DynamicObject>,
    who: &Reconciler,
    status: serde_json::Value,
) -> Result<(), WriteError> {
    let body = json!({
        "apiVersion": "metallb.io/v1beta1",
        "kind": "ConfigurationState",
        "metadata": {"name": who.name},
        "status": status,
    });
    api.patch_status(&who.name, &apply(who), &Patch::Apply(&body))
        .await
        .map(drop)
        .map_err(state_error(who))
}
