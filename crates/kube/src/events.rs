//! Events about Services, as core `v1` Events: MetalLB's roles grant `events` create and
//! patch in the core group only (kube's Recorder writes `events.k8s.io`, which they refuse).
//! The API server serves the same objects under `events.k8s.io` too, so `kubectl events` and
//! `kubectl describe` show them either way.

use crate::writer::WriteError;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::Client;
use kube::api::{Api, PostParams};

/// An Event about a Service.
pub(crate) struct ServiceEvent<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub uid: Option<&'a str>,
    pub reason: &'a str,
    /// What was done, in `events.k8s.io` terms.
    pub action: &'a str,
    pub note: String,
    pub warning: bool,
}

/// Writes Events as one component (`metallb-controller`, `metallb-speaker`) and instance.
pub(crate) struct Events {
    client: Client,
    component: String,
    instance: Option<String>,
}

impl Events {
    pub(crate) fn new(client: Client, component: &str, instance: Option<String>) -> Events {
        Events {
            client,
            component: component.to_string(),
            instance,
        }
    }

    pub(crate) async fn publish(&self, e: ServiceEvent<'_>) -> Result<(), WriteError> {
        let now = k8s_openapi::jiff::Timestamp::now();
        let event = Event {
            metadata: ObjectMeta {
                // client-go's naming: the object's name and a unique suffix.
                generate_name: Some(format!("{}.", e.name)),
                namespace: Some(e.namespace.to_string()),
                ..ObjectMeta::default()
            },
            involved_object: ObjectReference {
                api_version: Some("v1".to_string()),
                kind: Some("Service".to_string()),
                name: Some(e.name.to_string()),
                namespace: Some(e.namespace.to_string()),
                uid: e.uid.map(str::to_string),
                ..ObjectReference::default()
            },
            type_: Some(if e.warning { "Warning" } else { "Normal" }.to_string()),
            reason: Some(e.reason.to_string()),
            message: Some(e.note),
            action: Some(e.action.to_string()),
            source: Some(EventSource {
                component: Some(self.component.clone()),
                host: self.instance.clone(),
            }),
            reporting_component: Some(self.component.clone()),
            reporting_instance: self.instance.clone(),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            event_time: Some(MicroTime(now)),
            count: Some(1),
            ..Event::default()
        };
        Api::<Event>::namespaced(self.client.clone(), e.namespace)
            .create(&PostParams::default(), &event)
            .await
            .map(drop)
            .map_err(|source| WriteError::Kube {
                what: format!("Event {} on {}/{}", e.reason, e.namespace, e.name),
                source,
            })
    }
}
