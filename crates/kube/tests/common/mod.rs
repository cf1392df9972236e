//! Fixtures for controller tests: Services as the API server returns them, configs, and
//! requests as the mock API server receives them.

#![allow(dead_code)]

use config::Resources;
use config::documents::{ReadOptions, read};
use http::{Method, Request, Response};
use ironlb_kube::controller::Snapshot;
use k8s_openapi::api::core::v1::Service;
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};
use std::time::Duration;
use tower_test::mock::{self, Handle};

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

/// A plain LoadBalancer Service in `default` that already holds `ip` from pool `lan`.
pub fn holding(name: &str, ip: &str) -> Service {
    with_status(service("default", name, json!({})), &[ip], "lan")
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

pub type ApiServer = Handle<Request<Body>, Response<Body>>;

pub fn mock_client() -> (Client, ApiServer) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    (Client::new(service, "default"), handle)
}

/// One request as the API server saw it.
pub struct Seen {
    pub method: Method,
    pub path: String,
    pub query: String,
    pub content_type: String,
    pub body: Value,
}

/// Takes the next request, answers it with a plausible object, and returns it.
pub async fn next(server: &mut ApiServer) -> Seen {
    let (request, respond) = tokio::time::timeout(Duration::from_secs(5), server.next_request())
        .await
        .expect("a request within 5s")
        .expect("the client is alive");
    let (parts, body) = decode(request).await;
    let path = parts.uri.path().to_string();
    let name = path
        .trim_end_matches("/status")
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let reply = if path.ends_with("/events") {
        body.clone()
    } else if parts.method == Method::POST {
        // A create with generateName: the server picks the name.
        let mut created = body.clone();
        let prefix = created["metadata"]["generateName"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        created["metadata"]["name"] = Value::from(format!("{prefix}x7k2p"));
        created
    } else if path.contains("/servicel2statuses/") || path.contains("/servicebgpstatuses/") {
        let kind = if path.contains("/servicel2statuses/") {
            "ServiceL2Status"
        } else {
            "ServiceBGPStatus"
        };
        json!({"apiVersion": "metallb.io/v1beta1", "kind": kind, "metadata": {"name": name}, "spec": {}})
    } else if path.contains("/services/") {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}})
    } else if path.contains("/ipaddresspools/") {
        json!({"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool", "metadata": {"name": name}, "spec": {"addresses": []}})
    } else {
        json!({"apiVersion": "metallb.io/v1beta1", "kind": "ConfigurationState", "metadata": {"name": name}, "spec": {}})
    };
    respond.send_response(
        Response::builder()
            .body(Body::from(serde_json::to_vec(&reply).unwrap()))
            .unwrap(),
    );
    Seen {
        method: parts.method,
        path,
        query: parts.uri.query().unwrap_or_default().to_string(),
        content_type: parts
            .headers
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default(),
        body,
    }
}

/// Passes when nothing arrives for 300 ms, or the client is gone.
pub async fn no_request(server: &mut ApiServer) {
    if let Ok(Some((request, _))) =
        tokio::time::timeout(Duration::from_millis(300), server.next_request()).await
    {
        panic!(
            "expected no request, got {} {}",
            request.method(),
            request.uri()
        );
    }
}
