//! The exact requests a speaker sends for its status objects and events, against a
//! tower-test mock in place of the API server.

mod common;
use api::v1beta1::{ConfigurationResult, ConfigurationStateStatus};
use common::{Seen, mock_client, next, no_request};
use http::Method;
use ironlb_kube::speaker::status::{Book, Kind};
use ironlb_kube::speaker::writer::{Desired, ServiceRef, SpeakerWriter, run};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use serde_json::json;
use std::collections::BTreeMap;
use tokio::sync::watch;

const NS: &str = "metallb-system";
const L2: &str = "/apis/metallb.io/v1beta1/namespaces/metallb-system/servicel2statuses";
const BGP: &str = "/apis/metallb.io/v1beta1/namespaces/metallb-system/servicebgpstatuses";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/default/events";

fn web() -> ServiceRef {
    ServiceRef {
        namespace: "default".into(),
        name: "web".into(),
        uid: Some("uid-web".into()),
    }
}

fn desired(statuses: &[(Kind, &[&str])]) -> Desired {
    Desired {
        statuses: statuses
            .iter()
            .map(|(k, d)| {
                (
                    (*k, "default/web".to_string()),
                    d.iter().map(|s| s.to_string()).collect(),
                )
            })
            .collect(),
        services: BTreeMap::from([("default/web".to_string(), web())]),
        unplaced: BTreeMap::new(),
        config: None,
    }
}

async fn take(server: &mut common::ApiServer, n: usize) -> Vec<Seen> {
    let mut seen = Vec::new();
    for _ in 0..n {
        seen.push(next(server).await);
    }
    seen
}

#[tokio::test]
async fn status_objects_are_created_updated_and_deleted_with_events_on_assignment() {
    let (client, mut server) = mock_client();
    let owner = OwnerReference {
        api_version: "v1".into(),
        kind: "Pod".into(),
        name: "speaker-abcde".into(),
        uid: "uid-pod".into(),
        ..Default::default()
    };
    let writer = SpeakerWriter::new(client, NS, "node1", Some(owner));
    let (tx, rx) = watch::channel(desired(&[(Kind::Layer2, &["eth0"]), (Kind::Bgp, &["gw"])]));
    let task = tokio::spawn(run(writer, Book::default(), rx));

    let seen = take(&mut server, 6).await;
    assert_eq!(
        (&seen[0].method, seen[0].path.as_str()),
        (&Method::POST, L2)
    );
    assert_eq!(
        seen[0].body["metadata"],
        json!({
            "generateName": "l2-",
            "namespace": NS,
            "labels": {"metallb.io/node": "node1", "metallb.io/service-name": "web", "metallb.io/service-namespace": "default"},
            "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "speaker-abcde", "uid": "uid-pod"}],
        })
    );
    assert_eq!(seen[0].body["spec"], json!({}));
    assert_eq!(
        (
            &seen[1].method,
            seen[1].path.as_str(),
            seen[1].content_type.as_str()
        ),
        (
            &Method::PATCH,
            &*format!("{L2}/l2-x7k2p/status"),
            "application/merge-patch+json"
        )
    );
    assert_eq!(
        seen[1].body,
        json!({"status": {"node": "node1", "serviceName": "web", "serviceNamespace": "default", "interfaces": [{"name": "eth0"}]}})
    );
    assert_eq!(
        (&seen[2].method, seen[2].path.as_str()),
        (&Method::POST, BGP)
    );
    assert_eq!(seen[2].body["metadata"]["generateName"], "bgp-");
    assert_eq!(
        seen[3].body,
        json!({"status": {"node": "node1", "serviceName": "web", "serviceNamespace": "default", "peers": ["gw"]}})
    );
    let mut notes: Vec<String> = seen[4..]
        .iter()
        .map(|e| {
            assert_eq!((&e.method, e.path.as_str()), (&Method::POST, EVENTS));
            assert_eq!(e.body["reason"], "nodeAssigned");
            assert_eq!(e.body["regarding"]["uid"], "uid-web");
            e.body["note"].as_str().unwrap().to_string()
        })
        .collect();
    notes.sort();
    assert_eq!(
        notes,
        [
            "announcing from node \"node1\" with protocol \"bgp\"",
            "announcing from node \"node1\" with protocol \"layer2\"",
        ]
    );
    no_request(&mut server).await;

    // The node stops answering on layer 2 and gains a peer: one delete, one status patch,
    // no event (nothing newly assigned).
    tx.send_replace(desired(&[(Kind::Bgp, &["gw", "gw6"])]));
    let seen = take(&mut server, 2).await;
    assert_eq!(
        (&seen[0].method, seen[0].path.as_str()),
        (&Method::DELETE, &*format!("{L2}/l2-x7k2p"))
    );
    assert_eq!(
        (&seen[1].method, seen[1].path.as_str()),
        (&Method::PATCH, &*format!("{BGP}/bgp-x7k2p/status"))
    );
    assert_eq!(seen[1].body["status"]["peers"], json!(["gw", "gw6"]));
    no_request(&mut server).await;

    // Nothing announced: the last object goes.
    tx.send_replace(desired(&[]));
    let seen = take(&mut server, 1).await;
    assert_eq!(
        (&seen[0].method, seen[0].path.as_str()),
        (&Method::DELETE, &*format!("{BGP}/bgp-x7k2p"))
    );
    no_request(&mut server).await;
    task.abort();
}

#[tokio::test]
async fn an_ip_no_interface_can_carry_is_an_announce_failed_warning_once() {
    let (client, mut server) = mock_client();
    let writer = SpeakerWriter::new(client, NS, "node1", None);
    let mut want = desired(&[]);
    want.unplaced = BTreeMap::from([("192.0.2.130".to_string(), "default/web".to_string())]);
    let (tx, rx) = watch::channel(want.clone());
    let task = tokio::spawn(run(writer, Book::default(), rx));
    let seen = take(&mut server, 1).await;
    assert_eq!(seen[0].path, EVENTS);
    assert_eq!(
        (
            seen[0].body["type"].as_str(),
            seen[0].body["reason"].as_str(),
            seen[0].body["note"].as_str()
        ),
        (
            Some("Warning"),
            Some("announceFailed"),
            Some(
                "the interfaces specified by LB IP \"192.0.2.130\" doesn't exist in assigned node \"node1\" with protocol \"layer2\""
            )
        )
    );
    tx.send_replace(want);
    no_request(&mut server).await;
    task.abort();
}

#[tokio::test]
async fn the_node_reports_whether_it_accepted_the_configuration() {
    let (client, mut server) = mock_client();
    let writer = SpeakerWriter::new(client, NS, "node1", None);
    let mut want = desired(&[]);
    want.config = Some(ConfigurationStateStatus {
        result: Some(ConfigurationResult::Invalid),
        error_summary: "error: IPAddressPool \"lan\" spec.addresses[0]: bad".into(),
        ..Default::default()
    });
    let (tx, rx) = watch::channel(want.clone());
    let task = tokio::spawn(run(writer, Book::default(), rx));
    let seen = take(&mut server, 2).await;
    let path =
        "/apis/metallb.io/v1beta1/namespaces/metallb-system/configurationstates/speaker-node1";
    assert_eq!(
        (&seen[0].method, seen[0].path.as_str()),
        (&Method::PATCH, path)
    );
    assert_eq!(seen[0].content_type, "application/apply-patch+yaml");
    assert!(
        seen[0].query.contains("fieldManager=configReconciler"),
        "{}",
        seen[0].query
    );
    assert_eq!(
        seen[0].body["metadata"]["labels"],
        json!({"metallb.io/component-type": "speaker", "metallb.io/node-name": "node1"})
    );
    assert_eq!(seen[1].path, format!("{path}/status"));
    let status = &seen[1].body["status"];
    assert_eq!(status["result"], "Invalid");
    assert_eq!(status["conditions"][0]["type"], "configReconcilerValid");
    assert_eq!(status["conditions"][0]["reason"], "ConfigurationError");
    tx.send_replace(want);
    no_request(&mut server).await;
    task.abort();
}
