//! Fixtures for controller tests: Services as the API server returns them, configs, and
//! requests as the mock API server receives them.

#![allow(dead_code)]

use config::Resources;
use config::documents::{ReadOptions, read};
use ironlb_kube::controller::Snapshot;
use k8s_openapi::api::core::v1::Service;
use serde_json::{Value, json};

pub fn resources(yaml: &str) -> Resources {
    let mut resources = Resources::default();
    let mut problems = Vec::new();
    read(
        yaml,
        "test",
        &ReadOptions::default(),
        &mut resources,
        &mut problems,
    );
    assert!(problems.is_empty(), "{problems:?}");
    resources
}

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

pub fn snapshot(services: Vec<Service>, config: &str) -> Snapshot {
    Snapshot {
        services,
        namespaces: Default::default(),
        resources: resources(config),
        problems: Vec::new(),
    }
}

fn merge(base: &mut Value, extra: Value) {
    match (base, extra) {
        (Value::Object(b), Value::Object(e)) => {
            for (k, v) in e {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, e) => *b = e,
    }
}

/// A request the mock API server received: its head, and its body as JSON (Null when empty).
pub async fn decode(request: http::Request<kube::client::Body>) -> (http::request::Parts, Value) {
    let (parts, body) = request.into_parts();
    let bytes = body.collect_bytes().await.unwrap();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    (parts, body)
}
