//! What a speaker's status writer stores, on the real API server (the shared control plane
//! of `ironlb_lab`): ServiceL2Status and ServiceBGPStatus objects created with
//! `generateName`, their status set through the subresource and deleted when no longer
//! true, `nodeAssigned` and `announceFailed` events, and `ConfigurationState/speaker-<node>`.

mod common;
use api::v1beta1::{ConfigurationResult, ConfigurationStateStatus};
use common::{client, create_service, plane, service};
use ironlb_kube::metrics::ClientMetrics;
use ironlb_kube::speaker::sources;
use ironlb_kube::speaker::status::{Book, Kind};
use ironlb_kube::speaker::writer::{Desired, SpeakerWriter, run};
use ironlb_lab::control_plane::block_on;
use ironlb_plan::ServiceKey;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Api;
use kube::api::DynamicObject;
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::watch;

fn desired(ns: &str, statuses: &[(Kind, &[&str])]) -> Desired {
    let key = ServiceKey::new(ns, "web");
    Desired {
        statuses: statuses
            .iter()
            .map(|(k, d)| ((*k, key.clone()), d.iter().map(|s| s.to_string()).collect()))
            .collect(),
        uids: BTreeMap::from([(key, "uid-web".to_string())]),
        unplaced: BTreeMap::new(),
        config: None,
    }
}

/// The status objects of `plural` in `ns`, as JSON.
async fn objects(client: &kube::Client, ns: &str, kind: &str, plural: &str) -> Vec<Value> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("metallb.io", "v1beta1", kind),
        plural,
    );
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource);
    let list = api
        .list(&Default::default())
        .await
        .expect("listing status objects");
    list.items
        .into_iter()
        .map(|o| serde_json::to_value(o).unwrap())
        .collect()
}

async fn notes(client: &kube::Client, ns: &str) -> Vec<(String, String, String)> {
    let list = Api::<Event>::namespaced(client.clone(), ns)
        .list(&Default::default())
        .await
        .unwrap();
    let mut all: Vec<_> = list
        .items
        .into_iter()
        .map(|e| {
            (
                e.type_.unwrap_or_default(),
                e.reason.unwrap_or_default(),
                e.note.unwrap_or_default(),
            )
        })
        .collect();
    all.sort();
    all
}

/// Polls `f` until it returns Some, for up to 10 s.
async fn until<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..200 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} did not happen within 10 s")
}

#[test]
fn status_objects_are_created_updated_and_deleted_with_events_on_assignment() {
    let Some(plane) = plane() else { return };
    let ns = plane.namespace("speaker-statuses");
    block_on(move || async move {
        let client = client(plane).await;
        let owner = OwnerReference {
            api_version: "v1".into(),
            kind: "Pod".into(),
            name: "speaker-abcde".into(),
            uid: "uid-pod".into(),
            ..Default::default()
        };
        let writer = SpeakerWriter::new(client.clone(), &ns, "node1", Some(owner));
        let (tx, rx) = watch::channel(desired(
            &ns,
            &[(Kind::Layer2, &["eth0"]), (Kind::Bgp, &["gw"])],
        ));
        let metrics = ClientMetrics::default();
        let task = tokio::spawn(run(writer, Book::default(), rx, metrics));

        let l2 = until("the ServiceL2Status", async || {
            objects(&client, &ns, "ServiceL2Status", "servicel2statuses")
                .await
                .pop()
                .filter(|o| !o["status"].is_null())
        })
        .await;
        let name = l2["metadata"]["name"].as_str().unwrap();
        assert!(
            name.starts_with("l2-") && name.len() > 3,
            "generated name: {name}"
        );
        assert_eq!(
            l2["metadata"]["labels"],
            json!({"metallb.io/node": "node1", "metallb.io/service-name": "web", "metallb.io/service-namespace": ns})
        );
        assert_eq!(l2["metadata"]["ownerReferences"][0]["uid"], "uid-pod");
        assert_eq!(
            l2["status"],
            json!({"node": "node1", "serviceName": "web", "serviceNamespace": ns, "interfaces": [{"name": "eth0"}]})
        );
        let bgp = until("the ServiceBGPStatus", async || {
            objects(&client, &ns, "ServiceBGPStatus", "servicebgpstatuses")
                .await
                .pop()
                .filter(|o| !o["status"].is_null())
        })
        .await;
        assert!(
            bgp["metadata"]["name"]
                .as_str()
                .unwrap()
                .starts_with("bgp-")
        );
        assert_eq!(bgp["status"]["peers"], json!(["gw"]));
        let assigned = until("the nodeAssigned events", async || {
            let n = notes(&client, &ns).await;
            (n.len() == 2).then_some(n)
        })
        .await;
        assert_eq!(
            assigned,
            [
                (
                    "Normal".into(),
                    "nodeAssigned".into(),
                    "announcing from node \"node1\" with protocol \"bgp\"".into()
                ),
                (
                    "Normal".into(),
                    "nodeAssigned".into(),
                    "announcing from node \"node1\" with protocol \"layer2\"".into()
                ),
            ]
        );

        // The node stops answering on layer 2 and gains a peer: the L2 object goes, the BGP
        // status lists both peers, and no event (nothing newly assigned).
        tx.send_replace(desired(&ns, &[(Kind::Bgp, &["gw", "gw6"])]));
        until(
            "the layer-2 status deleted and the peers updated",
            async || {
                let l2 = objects(&client, &ns, "ServiceL2Status", "servicel2statuses").await;
                let bgp = objects(&client, &ns, "ServiceBGPStatus", "servicebgpstatuses").await;
                (l2.is_empty()
                    && bgp.len() == 1
                    && bgp[0]["status"]["peers"] == json!(["gw", "gw6"]))
                .then_some(())
            },
        )
        .await;
        assert_eq!(notes(&client, &ns).await.len(), 2, "no new event");

        // Nothing announced: the last object goes.
        tx.send_replace(desired(&ns, &[]));
        until("the BGP status deleted", async || {
            objects(&client, &ns, "ServiceBGPStatus", "servicebgpstatuses")
                .await
                .is_empty()
                .then_some(())
        })
        .await;
        task.abort();
    });
}

#[test]
fn an_ip_no_interface_can_carry_is_an_announce_failed_warning_once() {
    let Some(plane) = plane() else { return };
    let ns = plane.namespace("speaker-unplaced");
    block_on(move || async move {
        let client = client(plane).await;
        let writer = SpeakerWriter::new(client.clone(), &ns, "node1", None);
        let mut want = desired(&ns, &[]);
        want.unplaced = BTreeMap::from([("192.0.2.130".to_string(), ServiceKey::new(&ns, "web"))]);
        let (tx, rx) = watch::channel(want.clone());
        let task = tokio::spawn(run(writer, Book::default(), rx, ClientMetrics::default()));
        let warned = until("the announceFailed event", async || {
            let n = notes(&client, &ns).await;
            (!n.is_empty()).then_some(n)
        })
        .await;
        assert_eq!(
            warned,
            [(
                "Warning".into(),
                "announceFailed".into(),
                "the interfaces specified by LB IP \"192.0.2.130\" doesn't exist in assigned node \"node1\" with protocol \"layer2\"".into()
            )]
        );
        tx.send_replace(want);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let events = Api::<Event>::namespaced(client.clone(), &ns)
            .list(&Default::default())
            .await
            .unwrap();
        assert_eq!(events.items.len(), 1, "once");
        assert_eq!(
            events.items[0].deprecated_count.unwrap_or(1),
            1,
            "and not counted again"
        );
        task.abort();
    });
}

#[test]
fn the_node_reports_whether_it_accepted_the_configuration() {
    let Some(plane) = plane() else { return };
    let ns = plane.namespace("speaker-config");
    block_on(move || async move {
        let client = client(plane).await;
        let writer = SpeakerWriter::new(client.clone(), &ns, "node1", None);
        let mut want = desired(&ns, &[]);
        want.config = Some(ConfigurationStateStatus {
            result: Some(ConfigurationResult::Invalid),
            error_summary: "error: IPAddressPool \"lan\" spec.addresses[0]: bad".into(),
            ..Default::default()
        });
        let (_tx, rx) = watch::channel(want);
        let task = tokio::spawn(run(writer, Book::default(), rx, ClientMetrics::default()));
        let state = until("ConfigurationState/speaker-node1", async || {
            objects(&client, &ns, "ConfigurationState", "configurationstates")
                .await
                .pop()
                .filter(|o| !o["status"].is_null())
        })
        .await;
        assert_eq!(state["metadata"]["name"], "speaker-node1");
        assert_eq!(
            state["metadata"]["labels"],
            json!({"metallb.io/component-type": "speaker", "metallb.io/node-name": "node1"})
        );
        let status = &state["status"];
        assert_eq!(status["result"], "Invalid");
        assert_eq!(status["conditions"][0]["type"], "configReconcilerValid");
        assert_eq!(status["conditions"][0]["reason"], "ConfigurationError");
        let managers: Vec<&str> = state["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m["manager"].as_str())
            .collect();
        assert!(managers.contains(&"configReconciler"), "{managers:?}");
        task.abort();
    });
}

#[test]
fn the_speakers_own_status_writes_do_not_wake_it_but_a_service_does() {
    let Some(plane) = plane() else { return };
    let ns = plane.namespace("speaker-echo");
    block_on(move || async move {
        let client = client(plane).await;
        let (tx, mut snapshots) = watch::channel(None);
        let watches = tokio::spawn(sources::run(client.clone(), ns.clone(), "node1".into(), tx));
        snapshots.wait_for(Option::is_some).await.unwrap();

        let writer = SpeakerWriter::new(client.clone(), &ns, "node1", None);
        let (_keep, rx) = watch::channel(desired(&ns, &[(Kind::Layer2, &["eth0"])]));
        let writes = tokio::spawn(run(writer, Book::default(), rx, ClientMetrics::default()));
        until("the ServiceL2Status", async || {
            objects(&client, &ns, "ServiceL2Status", "servicel2statuses")
                .await
                .pop()
                .filter(|o| !o["status"].is_null())
        })
        .await;
        let woke = tokio::time::timeout(Duration::from_secs(1), snapshots.changed()).await;
        assert!(woke.is_err(), "the echo of the speaker's own write woke it");

        create_service(&client, &service(&ns, "web", json!({}))).await;
        tokio::time::timeout(Duration::from_secs(10), snapshots.changed())
            .await
            .expect("a new Service wakes the speaker")
            .unwrap();
        writes.abort();
        watches.abort();
    });
}

/// MetalLB's docs' commonest advertisements have no spec at all, which its CRDs allow. The
/// speaker reads them, as the API server stores them, as advertising every pool; before,
/// one such object failed every list of its kind and the speaker never planned.
#[test]
fn advertisements_and_profiles_without_a_spec_are_read_as_empty_ones() {
    let Some(plane) = plane() else { return };
    let ns = plane.namespace("speaker-nospec");
    let bare = |kind: &str| {
        format!(
            "apiVersion: metallb.io/v1beta1\nkind: {kind}\nmetadata: {{name: bare, namespace: {ns}}}\n"
        )
    };
    plane.apply(
        &[
            format!("apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {{name: lan, namespace: {ns}}}\nspec: {{addresses: [192.0.2.128/30]}}\n"),
            bare("L2Advertisement"),
            bare("BGPAdvertisement"),
            bare("BFDProfile"),
            bare("Community"),
        ]
        .join("---\n"),
    );
    block_on(move || async move {
        let client = client(plane).await;
        let (tx, mut snapshots) = watch::channel(None);
        let watches = tokio::spawn(sources::run(client, ns, "node1".into(), tx));
        let ready =
            tokio::time::timeout(Duration::from_secs(10), snapshots.wait_for(Option::is_some))
                .await
                .expect("a snapshot: every list succeeded")
                .unwrap();
        let snapshot = ready.as_ref().expect("a snapshot");
        let r = &snapshot.resources;
        let names = |objects: Vec<&str>| objects == ["bare"];
        assert!(names(
            r.l2_advertisements
                .iter()
                .map(|o| o.name.as_str())
                .collect()
        ));
        assert!(names(
            r.bgp_advertisements
                .iter()
                .map(|o| o.name.as_str())
                .collect()
        ));
        assert!(names(
            r.bfd_profiles.iter().map(|o| o.name.as_str()).collect()
        ));
        assert!(names(
            r.communities.iter().map(|o| o.name.as_str()).collect()
        ));
        assert_eq!(r.bgp_advertisements[0].spec.aggregation_length, Some(32));
        assert!(snapshot.problems.is_empty(), "{:?}", snapshot.problems);
        watches.abort();
    });
}
