//! Turns a plan into API requests: Service status (with the pool annotation) through the
//! status subresource, Events, IPAddressPool status and ConfigurationState.

use crate::annotations::ALLOCATED_FROM_POOL;
use crate::controller::{EventWrite, Plan, ServiceWrite};
use api::v1beta1::{
    ConfigurationResult, ConfigurationState, ConfigurationStateStatus, IPAddressPool,
    IPAddressPoolStatus,
};
use k8s_openapi::api::core::v1::{ObjectReference, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use serde_json::{Value, json};

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
    recorder: Recorder,
}

impl Writer {
    pub fn new(client: Client, namespace: &str, instance: Option<String>) -> Self {
        let reporter = Reporter {
            controller: "metallb-controller".to_string(),
            instance,
        };
        Writer {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            namespace: namespace.to_string(),
        }
    }

    /// Applies every write; failures are collected, so one bad Service does not block the rest.
    pub async fn apply(&self, plan: &Plan) -> Vec<WriteError> {
        let mut failures = Vec::new();
        for write in &plan.services {
            if let Err(e) = self.service(write).await {
                failures.push(e);
            }
        }
        for event in &plan.events {
            if let Err(e) = self.event(event).await {
                failures.push(e);
            }
        }
        for (pool, status) in &plan.pool_status {
            if let Err(e) = self.pool_status(pool, status).await {
                failures.push(e);
            }
        }
        if let Some(state) = &plan.config_state
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

    /// One merge patch on `services/<name>/status` sets the ingress and the pool annotation
    /// together (the API server lets metadata change through the status subresource).
    async fn service(&self, w: &ServiceWrite) -> Result<(), WriteError> {
        let api: Api<Service> = Api::namespaced(self.client.clone(), &w.namespace);
        let ingress: Value = if w.ips.is_empty() {
            Value::Null
        } else {
            w.ips
                .iter()
                .map(|ip| json!({"ip": ip.to_string()}))
                .collect()
        };
        let patch = json!({
            "metadata": {"annotations": {ALLOCATED_FROM_POOL: w.pool}},
            "status": {"loadBalancer": {"ingress": ingress}},
        });
        api.patch_status(&w.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(|_| tracing::info!(service = %format!("{}/{}", w.namespace, w.name), ips = ?w.ips, pool = ?w.pool, "service status written"))
            .map_err(|source| WriteError::Kube { what: format!("Service {}/{} status", w.namespace, w.name), source })
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
        publish(&self.recorder, event).await
    }

    async fn pool_status(
        &self,
        pool: &str,
        status: &IPAddressPoolStatus,
    ) -> Result<(), WriteError> {
        let api: Api<IPAddressPool> = Api::namespaced(self.client.clone(), &self.namespace);
        api.patch_status(
            pool,
            &PatchParams::default(),
            &Patch::Merge(&json!({ "status": status })),
        )
        .await
        .map(drop)
        .map_err(|source| WriteError::Kube {
            what: format!("IPAddressPool {pool} status"),
            source,
        })
    }
}

/// An Event about a Service.
pub(crate) struct ServiceEvent<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub uid: Option<&'a str>,
    pub reason: &'a str,
    /// Events sharing reason and action collapse into one series.
    pub action: &'a str,
    pub note: String,
    pub warning: bool,
}

pub(crate) async fn publish(recorder: &Recorder, e: ServiceEvent<'_>) -> Result<(), WriteError> {
    let reference = ObjectReference {
        api_version: Some("v1".to_string()),
        kind: Some("Service".to_string()),
        name: Some(e.name.to_string()),
        namespace: Some(e.namespace.to_string()),
        uid: e.uid.map(str::to_string),
        ..Default::default()
    };
    let event = Event {
        type_: if e.warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: e.reason.to_string(),
        note: Some(e.note),
        action: e.action.to_string(),
        secondary: None,
    };
    recorder
        .publish(&event, &reference)
        .await
        .map_err(|source| WriteError::Kube {
            what: format!("Event {} on {}/{}", e.reason, e.namespace, e.name),
            source,
        })
}

/// Creates the reconciler's ConfigurationState if needed, then sets its status, both by
/// server-side apply under the reconciler's field manager.
pub async fn config_state(
    client: &Client,
    namespace: &str,
    who: &Reconciler,
    state: &ConfigurationStateStatus,
) -> Result<(), WriteError> {
    let api: Api<ConfigurationState> = Api::namespaced(client.clone(), namespace);
    let params = PatchParams::apply(who.field_manager).force();
    let object = json!({
        "apiVersion": "metallb.io/v1beta1",
        "kind": "ConfigurationState",
        "metadata": {"name": who.name, "labels": who.labels},
        "spec": {},
    });
    let fail = |source| WriteError::Kube {
        what: format!("ConfigurationState {}", who.name),
        source,
    };
    api.patch(&who.name, &params, &Patch::Apply(&object))
        .await
        .map_err(fail)?;
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
    let body = json!({
        "apiVersion": "metallb.io/v1beta1",
        "kind": "ConfigurationState",
        "metadata": {"name": who.name},
        "status": status,
    });
    api.patch_status(&who.name, &params, &Patch::Apply(&body))
        .await
        .map(drop)
        .map_err(fail)
}
