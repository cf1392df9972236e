//! What the controller's writer stores, on the real API server (the shared control plane of
//! `ironlb_lab`): Service status and the pool annotation through the status subresource,
//! Events, IPAddressPool status, and ConfigurationState by server-side apply under
//! MetalLB's field manager. Each test has a namespace of its own.

mod common;
use common::{LAN, client, create_service, ingress, plane, service, snapshot, stored, with_status};
use ironlb_kube::controller::run::lead;
use ironlb_kube::controller::{Controller, Snapshot};
use ironlb_kube::metrics::ControllerMetrics;
use ironlb_kube::writer::Writer;
use ironlb_lab::control_plane::block_on;
use k8s_openapi::api::core::v1::Service;
use kube::Api;
use kube::api::{DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::sync::watch;

/// Reconciles `snap` and applies the plan; no write may fail.
async fn pass(controller: &mut Controller, client: &kube::Client, ns: &str, snap: &Snapshot) {
    let plan = controller.reconcile(snap);
    let failures = Writer::new(client.clone(), ns, Some("controller-0".into()))
        .apply(&plan, &snap.services)
        .await;
    let failures: Vec<String> = failures.iter().map(ToString::to_string).collect();
    assert!(failures.is_empty(), "{failures:#?}");
}

fn metallb(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("metallb.io", "v1beta1", kind),
        plural,
    )
}

async fn get_metallb(
    client: &kube::Client,
    ns: &str,
    kind: &str,
    plural: &str,
    name: &str,
) -> Value {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &metallb(kind, plural));
    serde_json::to_value(api.get(name).await.expect("reading a metallb.io object")).unwrap()
}

/// The pool `lan` as an IPAddressPool object, so its status has somewhere to go.
async fn create_pool(client: &kube::Client, ns: &str, addresses: &str) {
    let api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        ns,
        &metallb("IPAddressPool", "ipaddresspools"),
    );
    let pool = json!({"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
                      "metadata": {"name": "lan", "namespace": ns}, "spec": {"addresses": [addresses]}});
    api.patch(
        "lan",
        &PatchParams::apply("test").force(),
        &Patch::Apply(&pool),
    )
    .await
    .expect("creating the pool");
}

/// The usual start: pool `lan` with four addresses, Service `web`, and a first pass that
/// gives it 192.0.2.128. Returns the controller, to go on with.
async fn web_allocated(client: &kube::Client, ns: &str) -> Controller {
    create_pool(client, ns, "192.0.2.128/30").await;
    let web = create_service(client, &service(ns, "web", json!({}))).await;
    let mut c = Controller::new(None);
    pass(&mut c, client, ns, &snapshot(vec![web], LAN)).await;
    c
}

/// (reason, note) of the Events about Service `name`.
async fn events(client: &kube::Client, ns: &str, name: &str) -> Vec<(String, String)> {
    use k8s_openapi::api::events::v1::Event;
    let list = Api::<Event>::namespaced(client.clone(), ns)
        .list(&Default::default())
        .await
        .unwrap();
    let mut all: Vec<(String, String)> = list
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
        .collect();
    all.sort();
    all
}

#[test]
fn first_allocation_stores_status_annotation_event_pool_counters_and_configuration_state() {
    let Some(plane) = plane() else { return };
    let ns = plane.namespace("writes-first");
    block_on(move || async move {
        let client = client(plane).await;
        create_pool(&client, &ns, "192.0.2.128/30").await;
        let web = create_service(&client, &service(&ns, "web", json!({}))).await;
        let mut c = Controller::new(None);
        pass(&mut c, &client, &ns, &snapshot(vec![web.clone()], LAN)).await;

        let web = stored(&client, &ns, "web").await;
        assert_eq!(ingress(&web), ["192.0.2.128"]);
        assert_eq!(
            web.metadata
                .annotations
                .unwrap_or_default()
                .get("metallb.io/ip-allocated-from-pool"),
            Some(&"lan".to_string())
        );
        assert_eq!(
            events(&client, &ns, "web").await,
            [(
                "IPAllocated".to_string(),
                "Assigned IP [\"192.0.2.128\"]".to_string()
            )]
        );
        let pool = get_metallb(&client, &ns, "IPAddressPool", "ipaddresspools", "lan").await;
        assert_eq!(
            pool["status"],
            json!({"assignedIPv4": 1, "assignedIPv6": 0, "availableIPv4": 3, "availableIPv6": 0})
        );
        let state = get_metallb(
            &client,
            &ns,
            "ConfigurationState",
            "configurationstates",
            "controller",
        )
        .await;
        assert_eq!(
            state["metadata"]["labels"]["metallb.io/component-type"],
            "controller"
        );
        assert_eq!(state["status"]["result"], "Valid");
        assert_eq!(
            state["status"]["conditions"][0]["type"],
            "poolReconcilerValid"
        );
        assert_eq!(state["status"]["conditions"][0]["status"], "True");
        // Server-side apply under MetalLB's field manager: the server records it as the owner.
        let managers: Vec<(&str, &str)> = state["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["manager"].as_str().unwrap(),
                    m["operation"].as_str().unwrap(),
                )
            })
            .collect();
        assert!(
            managers.contains(&("poolReconciler", "Apply")),
            "{managers:?}"
        );
    });
}

#[test]
fn a_restarted_controller_rewrites_no_service_and_counts_the_restored_ip() {
    let Some(plane) = plane() else { return };
    let ns = plane.namespace("writes-restart");
    block_on(move || async move {
        let client = client(plane).await;
        create_pool(&client, &ns, "192.0.2.128/30").await;
        let held = with_status(service(&ns, "web", json!({})), &["192.0.2.129"], "lan");
        let web = create_service(&client, &held).await;
        let version = web.metadata.resource_version.clone();
        let mut restarted = Controller::new(None);
        pass(&mut restarted, &client, &ns, &snapshot(vec![web], LAN)).await;
        let after = stored(&client, &ns, "web").await;
        assert_eq!(
            after.metadata.resource_version, version,
            "the Service was not written"
        );
        assert_eq!(ingress(&after), ["192.0.2.129"]);
        let written = events(&client, &ns, "web").await;
        assert!(written.is_empty(), "{written:?}");
        let pool = get_metallb(&client, &ns, "IPAddressPool", "ipaddresspools", "lan").await;
        assert_eq!(
            pool["status"]["assignedIPv4"], 1,
            "the restored IP is counted"
        );
    });
}

#[test]
fn a_type_change_clears_status_and_annotation() {
    let Some(plane) = plane() else { return };
    let ns = plane.namespace("writes-type");
    block_on(move || async move {
        let client = client(plane).await;
        let mut c = web_allocated(&client, &ns).await;
        let api: Api<Service> = Api::namespaced(client.clone(), &ns);
        let node_port = json!({"spec": {"type": "NodePort"}});
        let changed = api
            .patch("web", &PatchParams::default(), &Patch::Merge(&node_port))
            .await
            .unwrap();
        pass(&mut c, &client, &ns, &snapshot(vec![changed], LAN)).await;
        let web = stored(&client, &ns, "web").await;
        assert!(ingress(&web).is_empty(), "{:?}", web.status);
        assert!(
            !web.metadata
                .annotations
                .unwrap_or_default()
                .contains_key("metallb.io/ip-allocated-from-pool"),
            "the pool annotation is gone"
        );
        let pool = get_metallb(&client, &ns, "IPAddressPool", "ipaddresspools", "lan").await;
        assert_eq!(pool["status"]["assignedIPv4"], 0, "the IP is released");
    });
}

#[test]
fn a_pool_edit_moves_the_service_with_events() {
    let Some(plane) = plane() else { return };
    let ns = plane.namespace("writes-edit");
    block_on(move || async move {
        let client = client(plane).await;
        let mut c = web_allocated(&client, &ns).await;
        let web = stored(&client, &ns, "web").await;
        let edited = LAN.replace("192.0.2.128/30", "192.0.2.200/30");
        pass(&mut c, &client, &ns, &snapshot(vec![web], &edited)).await;
        assert_eq!(ingress(&stored(&client, &ns, "web").await), ["192.0.2.200"]);
        let reasons: Vec<String> = events(&client, &ns, "web")
            .await
            .into_iter()
            .map(|(r, _)| r)
            .collect();
        assert!(
            reasons.contains(&"ClearAssignment".to_string())
                && reasons.iter().filter(|r| *r == "IPAllocated").count() == 2,
            "{reasons:?}"
        );
    });
}

#[test]
fn an_invalid_config_is_reported_in_configuration_state() {
    let Some(plane) = plane() else { return };
    let ns = plane.namespace("writes-invalid");
    block_on(move || async move {
        let client = client(plane).await;
        let mut c = web_allocated(&client, &ns).await;
        let mut snap = snapshot(vec![stored(&client, &ns, "web").await], LAN);
        snap.resources.pools[0].spec.addresses = vec!["192.0.2.128".into()];
        pass(&mut c, &client, &ns, &snap).await;
        let state = get_metallb(
            &client,
            &ns,
            "ConfigurationState",
            "configurationstates",
            "controller",
        )
        .await;
        let status = &state["status"];
        assert_eq!(status["result"], "Invalid");
        assert!(
            status["errorSummary"]
                .as_str()
                .unwrap()
                .contains("spec.addresses[0]"),
            "{status}"
        );
        assert_eq!(status["conditions"][0]["reason"], "ConfigurationError");
        assert_eq!(status["conditions"][0]["status"], "False");
    });
}

#[test]
fn a_leader_that_loses_the_lease_stops_writing_and_resumes_from_the_statuses() {
    let Some(plane) = plane() else { return };
    let ns = plane.namespace("writes-lease");
    block_on(move || async move {
        let client = client(plane).await;
        let web = create_service(&client, &service(&ns, "web", json!({}))).await;
        let (leader_tx, leader) = watch::channel(true);
        let (snap_tx, snapshots) = watch::channel(Some(snapshot(vec![web], LAN)));
        let task = {
            let (client, ns) = (client.clone(), ns.clone());
            tokio::spawn(async move {
                let writer = Writer::new(client, &ns, None);
                lead(
                    leader,
                    snapshots,
                    &writer,
                    &ControllerMetrics::default(),
                    None,
                )
                .await;
            })
        };
        let until_ip = |name: &'static str| {
            let (client, ns) = (client.clone(), ns.clone());
            async move {
                tokio::time::timeout(Duration::from_secs(10), async {
                    loop {
                        let ips = ingress(&stored(&client, &ns, name).await);
                        if !ips.is_empty() {
                            return ips;
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                })
                .await
                .expect("an IP within 10 s")
            }
        };
        assert_eq!(until_ip("web").await, ["192.0.2.128"]);

        leader_tx.send_replace(false);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let new = create_service(&client, &service(&ns, "new", json!({}))).await;
        let web = stored(&client, &ns, "web").await;
        snap_tx.send_replace(Some(snapshot(vec![web, new], LAN)));
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(
            ingress(&stored(&client, &ns, "new").await).is_empty(),
            "a follower writes nothing"
        );

        // Leading again, it starts from the statuses and allocates only what is new.
        leader_tx.send_replace(true);
        assert_eq!(until_ip("new").await, ["192.0.2.129"]);
        assert_eq!(ingress(&stored(&client, &ns, "web").await), ["192.0.2.128"]);
        task.abort();
    });
}

#[test]
fn a_write_from_a_stale_copy_reads_the_service_again_and_keeps_the_edit() {
    let Some(plane) = plane() else { return };
    let ns = plane.namespace("writes-stale");
    block_on(move || async move {
        let client = client(plane).await;
        create_pool(&client, &ns, "192.0.2.128/30").await;
        let seen = create_service(&client, &service(&ns, "web", json!({}))).await;
        // Someone edits the Service after the pass saw it: its copy is now stale.
        Api::<Service>::namespaced(client.clone(), &ns)
            .patch(
                "web",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": {"edited": "yes"}}})),
            )
            .await
            .expect("editing the Service");
        let mut c = Controller::new(None);
        pass(&mut c, &client, &ns, &snapshot(vec![seen], LAN)).await;

        let web = stored(&client, &ns, "web").await;
        assert_eq!(
            ingress(&web),
            ["192.0.2.128"],
            "written despite the conflict"
        );
        assert_eq!(
            web.metadata.labels.unwrap_or_default().get("edited"),
            Some(&"yes".to_string()),
            "the edit made after the pass is kept"
        );
    });
}
