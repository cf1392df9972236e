//! Leader election against a mock API server that keeps one Lease: the exact requests, the
//! moment this replica leads, and the release on shutdown.

mod common;
use common::decode;
use http::{Method, Request, Response};
use ironlb_kube::leader::{LeaseOptions, elect};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tower_test::mock;

const PATH: &str =
    "/apis/coordination.k8s.io/v1/namespaces/metallb-system/leases/ironlb-controller";

fn merge(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                merge(b.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (b, p) => *b = p.clone(),
    }
}

#[tokio::test]
async fn a_replica_takes_the_lease_and_releases_it_on_shutdown() {
    let (service, mut server) = mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let mut lease: Option<Value> = None;
    let log: Arc<Mutex<Vec<(Method, String, Value)>>> = Arc::default();
    let seen = log.clone();
    // The API server: answers GET/POST/PATCH on the one Lease until the test ends.
    let api = async move {
        while let Some((request, respond)) = server.next_request().await {
            let (parts, body) = decode(request).await;
            let path = parts.uri.path().to_string();
            seen.lock()
                .unwrap()
                .push((parts.method.clone(), path, body.clone()));
            let reply = match (parts.method, lease.as_mut()) {
                (Method::GET, None) => Err(
                    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404}),
                ),
                (Method::POST, _) => {
                    let mut created = body.clone();
                    merge(&mut created, &json!({"metadata": {"resourceVersion": "1"}}));
                    lease = Some(created.clone());
                    Ok(created)
                }
                (Method::PATCH, Some(current)) => {
                    merge(current, &body);
                    let version: u64 = current["metadata"]["resourceVersion"]
                        .as_str()
                        .unwrap_or("1")
                        .parse()
                        .unwrap_or(1);
                    current["metadata"]["resourceVersion"] = json!((version + 1).to_string());
                    Ok(current.clone())
                }
                (_, Some(current)) => Ok(current.clone()),
                (_, None) => Err(
                    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404}),
                ),
            };
            let (status, value) = match reply {
                Ok(v) => (200, v),
                Err(v) => (404, v),
            };
            respond.send_response(
                Response::builder()
                    .status(status)
                    .body(Body::from(serde_json::to_vec(&value).unwrap()))
                    .unwrap(),
            );
        }
    };
    let api = tokio::spawn(api);

    let options = LeaseOptions {
        namespace: "metallb-system".into(),
        name: "ironlb-controller".into(),
        identity: "controller-0".into(),
        duration_seconds: 10,
    };
    let (mut leader, task) = elect(client, &options).await.expect("lease manager starts");
    tokio::time::timeout(Duration::from_secs(10), leader.wait_for(|is| *is))
        .await
        .expect("leads within 10s")
        .unwrap();
    drop(leader);
    let _ = tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("releases within 10s");
    api.abort();

    let seen = log.lock().unwrap().clone();
    assert!(
        seen.iter().all(|(_, path, _)| path
            .starts_with("/apis/coordination.k8s.io/v1/namespaces/metallb-system/leases")),
        "{seen:?}"
    );
    assert_eq!(
        (&seen[0].0, seen[0].1.as_str()),
        (&Method::GET, PATH),
        "it looks for the lease first"
    );
    let take = seen
        .iter()
        .find(|(m, _, b)| *m == Method::PATCH && b["spec"]["holderIdentity"] == "controller-0")
        .expect("a PATCH that takes the lease");
    assert_eq!(take.1, PATH);
    assert_eq!(take.2["spec"]["leaseDurationSeconds"], 10);
    let (_, path, release) = seen
        .iter()
        .rev()
        .find(|(m, _, _)| *m == Method::PATCH)
        .unwrap();
    assert_eq!(path, PATH);
    assert_eq!(
        release["spec"]["holderIdentity"],
        Value::Null,
        "the last write clears the holder: {release}"
    );
}
