//! Fixtures for controller tests: Services as the API server returns them, configs, and the
//! shared real control plane (`ironlb_lab::control_plane`) with ironlb's CRDs installed.

#![allow(dead_code)]

use ironlb_kube::controller::Snapshot;
pub use ironlb_lab::control_plane::ControlPlane;
pub use ironlb_lab::fixtures::{merge, resources};
use k8s_openapi::api::core::v1::Service;
use serde_json::{Value, json};

pub const LAN: &str = "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: lan}\nspec: {addresses: [192.0.2.128/30]}\n";

/// A LoadBalancer Service with one IPv4 cluster IP; `extra` is merged into it.
pub fn service(ns: &str, name: &str, extra: Value) -> Service {
    let mut base = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": ns, "uid": format!("uid-{name}")},
        "spec": {"type": "LoadBalancer", "clusterIP": "198.51.100.10", "clusterIPs": ["198.51.100.10"], "ports": [{"port": 80, "protocol": "TCP"}]},
    });
    merge(&mut base, extra);
    serde_json::from_value(base).expect("a valid Service")
}

/// The same Service after the controller's write landed.
pub fn with_status(mut svc: Service, ips: &[&str], pool: &str) -> Service {
    let ingress: Vec<Value> = ips.iter().map(|ip| json!({"ip": ip})).collect();
    svc.status =
        Some(serde_json::from_value(json!({"loadBalancer": {"ingress": ingress}})).unwrap());
    svc.metadata
        .annotations
        .get_or_insert_default()
        .insert("metallb.io/ip-allocated-from-pool".into(), pool.into());
    svc
}

/// A plain LoadBalancer Service in `default` that already holds `ip` from pool `lan`.
pub fn holding(name: &str, ip: &str) -> Service {
    with_status(service("default", name, json!({})), &[ip], "lan")
}

pub fn snapshot(services: Vec<Service>, config: &str) -> Snapshot {
    Snapshot {
        services: services.into_iter().map(std::sync::Arc::new).collect(),
        namespaces: Default::default(),
        resources: resources(config),
        problems: Vec::new(),
    }
}

/// The shared control plane, or None (with the reason printed) where it cannot run.
pub fn plane() -> Option<&'static ControlPlane> {
    ironlb_lab::control_plane::ready().then(ControlPlane::shared_with_crds)
}

/// An admin client of the shared control plane; call inside a test's runtime.
pub async fn client(plane: &ControlPlane) -> kube::Client {
    plane.client().await
}

/// Creates `svc` in the server (without the fixture's cluster IP, which the server assigns,
/// and without its status) and returns it as stored, then with `svc`'s status written
/// through the status subresource when it had one.
pub async fn create_service(client: &kube::Client, svc: &Service) -> Service {
    use kube::api::{Api, Patch, PatchParams, PostParams};
    let ns = svc.metadata.namespace.clone().unwrap_or_default();
    let api: Api<Service> = Api::namespaced(client.clone(), &ns);
    let mut bare = svc.clone();
    bare.metadata.uid = None;
    bare.status = None;
    if let Some(spec) = bare.spec.as_mut() {
        spec.cluster_ip = None;
        spec.cluster_ips = None;
    }
    let created = api
        .create(&PostParams::default(), &bare)
        .await
        .expect("creating a Service");
    let Some(status) = &svc.status else {
        return created;
    };
    let name = created.metadata.name.clone().unwrap_or_default();
    let patch = json!({"metadata": {"annotations": svc.metadata.annotations}, "status": status});
    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("setting a Service's status")
}

/// The Service `ns/name` as stored.
pub async fn stored(client: &kube::Client, ns: &str, name: &str) -> Service {
    kube::Api::<Service>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .expect("reading a Service")
}

/// The ingress IPs in a Service's status.
pub fn ingress(svc: &Service) -> Vec<String> {
    svc.status
        .iter()
        .flat_map(|s| s.load_balancer.iter())
        .flat_map(|lb| lb.ingress.iter().flatten())
        .filter_map(|i| i.ip.clone())
        .collect()
}
