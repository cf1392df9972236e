//! The exact requests the controller sends to the API server (method, path, content type,
//! body), against a tower-test mock in place of the API server.

mod common;
use common::{LAN, Seen, holding, mock_client, next, no_request, service, snapshot};
use http::Method;
use ironlb_kube::controller::run::lead;
use ironlb_kube::controller::{Controller, Snapshot};
use ironlb_kube::metrics::ControllerMetrics;
use ironlb_kube::writer::Writer;
use serde_json::json;
use std::time::Duration;
use tokio::sync::watch;

/// Applies the plan of one reconcile pass, answering every request, and returns them.
async fn apply(controller: &mut Controller, snap: &Snapshot, expected: usize) -> Vec<Seen> {
    let (client, mut server) = mock_client();
    let plan = controller.reconcile(snap);
    let writer = Writer::new(client, "metallb-system", Some("controller-0".into()));
    let task = tokio::spawn(async move { writer.apply(&plan).await.len() });
    let mut seen = Vec::new();
    for _ in 0..expected {
        seen.push(next(&mut server).await);
    }
    assert_eq!(task.await.unwrap(), 0, "no write failed");
    no_request(&mut server).await;
    seen
}

#[tokio::test]
async fn first_allocation() {
    let mut c = Controller::new(None);
    let seen = apply(
        &mut c,
        &snapshot(vec![service("default", "web", json!({}))], LAN),
        5,
    )
    .await;

    assert_eq!(
        (&seen[0].method, seen[0].path.as_str()),
        (
            &Method::PATCH,
            "/api/v1/namespaces/default/services/web/status"
        )
    );
    assert_eq!(seen[0].content_type, "application/merge-patch+json");
    assert_eq!(
        seen[0].body,
        json!({"metadata": {"annotations": {"metallb.io/ip-allocated-from-pool": "lan"}}, "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.128"}]}}})
    );

    assert_eq!(
        (&seen[1].method, seen[1].path.as_str()),
        (
            &Method::POST,
            "/apis/events.k8s.io/v1/namespaces/default/events"
        )
    );
    let event = &seen[1].body;
    assert_eq!(
        (
            event["type"].as_str(),
            event["reason"].as_str(),
            event["note"].as_str()
        ),
        (
            Some("Normal"),
            Some("IPAllocated"),
            Some("Assigned IP [\"192.0.2.128\"]")
        )
    );
    assert_eq!(
        (
            event["regarding"]["kind"].as_str(),
            event["regarding"]["name"].as_str(),
            event["regarding"]["uid"].as_str()
        ),
        (Some("Service"), Some("web"), Some("uid-web"))
    );
    assert_eq!(event["reportingController"], "metallb-controller");

    assert_eq!(
        (&seen[2].method, seen[2].path.as_str()),
        (
            &Method::PATCH,
            "/apis/metallb.io/v1beta1/namespaces/metallb-system/ipaddresspools/lan/status"
        )
    );
    assert_eq!(
        seen[2].body,
        json!({"status": {"assignedIPv4": 1, "assignedIPv6": 0, "availableIPv4": 3, "availableIPv6": 0}})
    );

    assert_eq!(
        seen[3].path,
        "/apis/metallb.io/v1beta1/namespaces/metallb-system/configurationstates/controller"
    );
    assert_eq!(seen[3].content_type, "application/apply-patch+yaml");
    assert!(
        seen[3].query.contains("fieldManager=poolReconciler")
            && seen[3].query.contains("force=true"),
        "{}",
        seen[3].query
    );
    assert_eq!(
        seen[3].body["metadata"]["labels"]["metallb.io/component-type"],
        "controller"
    );
    assert_eq!(
        seen[4].path,
        "/apis/metallb.io/v1beta1/namespaces/metallb-system/configurationstates/controller/status"
    );
    assert_eq!(seen[4].body["status"]["result"], "Valid");
    assert_eq!(
        seen[4].body["status"]["conditions"][0]["type"],
        "poolReconcilerValid"
    );
    assert_eq!(seen[4].body["status"]["conditions"][0]["status"], "True");
}

#[tokio::test]
async fn restart_with_existing_ips_writes_no_service() {
    let web = holding("web", "192.0.2.129");
    let mut restarted = Controller::new(None);
    let seen = apply(&mut restarted, &snapshot(vec![web], LAN), 3).await;
    assert!(
        seen.iter()
            .all(|s| !s.path.contains("/services/") && !s.path.ends_with("/events")),
        "{:?}",
        seen.iter().map(|s| &s.path).collect::<Vec<_>>()
    );
    assert_eq!(
        seen[0].body["status"]["assignedIPv4"], 1,
        "the restored IP is counted"
    );
}

#[tokio::test]
async fn type_change_clears_status_and_annotation() {
    let mut c = Controller::new(None);
    let web = holding("web", "192.0.2.128");
    apply(&mut c, &snapshot(vec![web.clone()], LAN), 3).await;
    let mut node_port = web;
    node_port.spec.as_mut().unwrap().type_ = Some("NodePort".into());
    let seen = apply(&mut c, &snapshot(vec![node_port], LAN), 2).await;
    assert_eq!(
        seen[0].path,
        "/api/v1/namespaces/default/services/web/status"
    );
    assert_eq!(
        seen[0].body,
        json!({"metadata": {"annotations": {"metallb.io/ip-allocated-from-pool": null}}, "status": {"loadBalancer": {"ingress": null}}})
    );
    assert_eq!(
        seen[1].body["status"]["assignedIPv4"], 0,
        "the IP is released"
    );
}

#[tokio::test]
async fn pool_edit_moves_the_service_with_an_event() {
    let mut c = Controller::new(None);
    let web = holding("web", "192.0.2.128");
    apply(&mut c, &snapshot(vec![web.clone()], LAN), 3).await;
    let edited = "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: lan}\nspec: {addresses: [192.0.2.200/30]}\n";
    // Still one used and three free: the pool's status is unchanged and not rewritten.
    let seen = apply(&mut c, &snapshot(vec![web], edited), 3).await;
    assert_eq!(
        seen[0].body["status"]["loadBalancer"]["ingress"],
        json!([{"ip": "192.0.2.200"}])
    );
    assert_eq!(seen[1].body["reason"], "ClearAssignment");
    assert_eq!(seen[2].body["reason"], "IPAllocated");
}

#[tokio::test]
async fn invalid_config_is_reported_and_writes_nothing_else() {
    let mut c = Controller::new(None);
    let web = holding("web", "192.0.2.128");
    apply(&mut c, &snapshot(vec![web.clone()], LAN), 3).await;
    let mut resources = common::resources(LAN);
    resources.pools[0].spec.addresses = vec!["192.0.2.128".into()];
    let snap = Snapshot {
        services: vec![web],
        namespaces: Default::default(),
        resources,
        problems: Vec::new(),
    };
    let seen = apply(&mut c, &snap, 2).await;
    assert_eq!(
        seen[1].path,
        "/apis/metallb.io/v1beta1/namespaces/metallb-system/configurationstates/controller/status"
    );
    let status = &seen[1].body["status"];
    assert_eq!(status["result"], "Invalid");
    assert!(
        status["errorSummary"]
            .as_str()
            .unwrap()
            .contains("spec.addresses[0]"),
        "{status}"
    );
    assert_eq!(status["conditions"][0]["reason"], "ConfigurationError");
}

#[tokio::test]
async fn a_leader_that_loses_the_lease_stops_writing() {
    let (client, mut server) = mock_client();
    let (leader_tx, leader) = watch::channel(true);
    let (snap_tx, snapshots) = watch::channel(Some(snapshot(
        vec![service("default", "web", json!({}))],
        LAN,
    )));
    let task = tokio::spawn(async move {
        let writer = Writer::new(client, "metallb-system", None);
        let metrics = ControllerMetrics::default();
        lead(leader, snapshots, &writer, &metrics, None).await;
    });
    let mut seen = Vec::new();
    for _ in 0..5 {
        seen.push(next(&mut server).await);
    }
    assert_eq!(
        seen[0].path,
        "/api/v1/namespaces/default/services/web/status"
    );

    leader_tx.send_replace(false);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let web = holding("web", "192.0.2.128");
    snap_tx.send_replace(Some(snapshot(
        vec![web.clone(), service("default", "new", json!({}))],
        LAN,
    )));
    no_request(&mut server).await;

    // Leading again, it starts from the statuses and allocates only what is new.
    leader_tx.send_replace(true);
    let again = next(&mut server).await;
    assert_eq!(again.path, "/api/v1/namespaces/default/services/new/status");
    assert_eq!(
        again.body["status"]["loadBalancer"]["ingress"],
        json!([{"ip": "192.0.2.129"}])
    );
    drop(leader_tx);
    task.abort();
}
