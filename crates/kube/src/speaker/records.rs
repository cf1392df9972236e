//! What the speaker keeps of each Service and EndpointSlice: only what planning reads. The
//! watches' stores hold these records instead of the objects; at ten thousand Services the
//! objects, even without their managed fields, took 33 of the speaker's 82 MB of heap.

use crate::annotations;
use crate::service_view::{allocated_pool, is_load_balancer, namespaced_name, status_ips};
use config::resources::Labels;
use ironlb_plan::ServiceKey;
use ironlb_plan::announce::Endpoint;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Resource;
use kube::runtime::reflector::Lookup;
use std::borrow::Cow;
use std::marker::PhantomData;
use std::net::IpAddr;

/// The label that ties an EndpointSlice to its Service (the status objects have a label of
/// their own, `status::SERVICE_NAME_LABEL`).
pub const SLICE_SERVICE_LABEL: &str = "kubernetes.io/service-name";

/// One object of kind `K`, by namespace and name, kept as `T`.
pub struct Record<K, T> {
    pub namespace: String,
    pub name: String,
    pub kept: T,
    kind: PhantomData<fn() -> K>,
}

/// A Service: None unless it is a LoadBalancer, as only those are ever announced.
pub type ServiceRecord = Record<Service, Option<LoadBalancer>>;
pub type SliceRecord = Record<EndpointSlice, Endpoints>;

/// What planning reads of a LoadBalancer Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadBalancer {
    /// `spec.loadBalancerClass`.
    pub class: Option<String>,
    pub uid: Option<String>,
    pub labels: Labels,
    /// `status.loadBalancer.ingress`, first one first.
    pub ips: Vec<IpAddr>,
    /// The pool the controller recorded in its annotation.
    pub pool: Option<String>,
    /// `externalTrafficPolicy: Local`.
    pub local_traffic: bool,
    /// Carries `allow-shared-ip`.
    pub shared: bool,
}

/// What planning reads of an EndpointSlice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoints {
    /// The Service it belongs to, by its label.
    pub service: Option<String>,
    pub endpoints: Vec<Endpoint>,
}

impl<K, T> Record<K, T> {
    pub fn new(namespace: String, name: String, kept: T) -> Record<K, T> {
        Record {
            namespace,
            name,
            kept,
            kind: PhantomData,
        }
    }

    /// The record's (namespace, name), borrowed, as `service_view::namespaced_name` gives
    /// an object's.
    pub fn namespaced_name(&self) -> (&str, &str) {
        (&self.namespace, &self.name)
    }
}

impl ServiceRecord {
    pub fn read(svc: &Service) -> ServiceRecord {
        let (namespace, name) = namespaced_name(&svc.metadata);
        let kept = is_load_balancer(svc).then(|| LoadBalancer::read(svc));
        Record::new(namespace.to_string(), name.to_string(), kept)
    }

    /// The Service's key, as the planner names it.
    pub fn key(&self) -> ServiceKey {
        ServiceKey::new(&self.namespace, &self.name)
    }

    /// The LoadBalancer of `lb_class` (None: without a class), if this is one.
    pub fn ours(&self, lb_class: Option<&str>) -> Option<&LoadBalancer> {
        self.kept
            .as_ref()
            .filter(|lb| lb.class.as_deref() == lb_class)
    }
}

impl LoadBalancer {
    fn read(svc: &Service) -> LoadBalancer {
        let spec = svc.spec.as_ref();
        LoadBalancer {
            class: spec.and_then(|s| s.load_balancer_class.clone()),
            uid: svc.metadata.uid.clone(),
            labels: svc.metadata.labels.clone().unwrap_or_default(),
            ips: status_ips(svc),
            pool: allocated_pool(svc).map(str::to_string),
            local_traffic: spec.and_then(|s| s.external_traffic_policy.as_deref()) == Some("Local"),
            shared: svc.metadata.annotations.as_ref().is_some_and(|a| {
                annotations::get(a, annotations::ALLOW_SHARED_IP).is_some_and(|k| !k.is_empty())
            }),
        }
    }
}

impl SliceRecord {
    pub fn read(slice: &EndpointSlice) -> SliceRecord {
        let (namespace, name) = namespaced_name(&slice.metadata);
        let service = slice.metadata.labels.as_ref();
        let kept = Endpoints {
            service: service.and_then(|l| l.get(SLICE_SERVICE_LABEL)).cloned(),
            endpoints: slice.endpoints.iter().map(endpoint).collect(),
        };
        Record::new(namespace.to_string(), name.to_string(), kept)
    }
}

fn endpoint(e: &k8s_openapi::api::discovery::v1::Endpoint) -> Endpoint {
    let conditions = e.conditions.as_ref();
    Endpoint {
        node: e.node_name.clone(),
        ready: conditions.and_then(|c| c.ready),
        serving: conditions.and_then(|c| c.serving),
        has_address: !e.addresses.is_empty(),
    }
}

// By hand: derived, they would ask `K` for the same traits.
impl<K, T: Clone> Clone for Record<K, T> {
    fn clone(&self) -> Self {
        Record::new(self.namespace.clone(), self.name.clone(), self.kept.clone())
    }
}

impl<K, T: std::fmt::Debug> std::fmt::Debug for Record<K, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}: {:?}", self.namespace, self.name, self.kept)
    }
}

/// What the stores index records by; a record has no resource version or uid of its own
/// (the watch keeps the version it resumes from itself).
impl<K: Resource<DynamicType = ()>, T> Lookup for Record<K, T> {
    type DynamicType = ();

    fn kind(dyntype: &()) -> Cow<'_, str> {
        K::kind(dyntype)
    }

    fn group(dyntype: &()) -> Cow<'_, str> {
        K::group(dyntype)
    }

    fn version(dyntype: &()) -> Cow<'_, str> {
        K::version(dyntype)
    }

    fn plural(dyntype: &()) -> Cow<'_, str> {
        K::plural(dyntype)
    }

    fn name(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(&self.name))
    }

    fn namespace(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(&self.namespace))
    }

    fn resource_version(&self) -> Option<Cow<'_, str>> {
        None
    }

    fn uid(&self) -> Option<Cow<'_, str>> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(spec: serde_json::Value) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "shop", "uid": "u1",
                         "annotations": {"metallb.io/ip-allocated-from-pool": "lan"}},
            "spec": spec,
            "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.130"}]}},
        }))
        .unwrap()
    }

    #[test]
    fn a_record_keeps_a_load_balancer_of_any_class_and_nothing_of_other_services() {
        let classed = ServiceRecord::read(&service(json!({
            "type": "LoadBalancer", "loadBalancerClass": "x", "clusterIP": "10.96.0.9",
            "ports": [{"port": 80}], "selector": {"app": "web"}})));
        assert!(classed.ours(None).is_none(), "another class");
        let lb = classed.ours(Some("x")).expect("its own class");
        assert_eq!(lb.ips, ["192.0.2.130".parse::<IpAddr>().unwrap()]);
        assert_eq!(
            (lb.pool.as_deref(), lb.uid.as_deref()),
            (Some("lan"), Some("u1"))
        );
        assert_eq!(
            (Lookup::namespace(&classed), Lookup::name(&classed)),
            (Some("shop".into()), Some("web".into())),
            "the store's key"
        );
        let cluster = ServiceRecord::read(&service(json!({"type": "ClusterIP"})));
        assert!(cluster.kept.is_none(), "never announced: nothing kept");
    }
}
