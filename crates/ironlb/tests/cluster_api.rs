//! ironlb's CRDs and manifests against a real API server (the shared control plane of
//! `ironlb_lab`): every CRD `ironlb crds` generates becomes Established; every example
//! resource in the repository is stored without a field pruned; both BGPPeer versions are
//! served; `kubectl get` would show the printer columns; `deploy/` applies (dry run).

use ironlb_lab::control_plane::{ControlPlane, apply_yaml, documents};
use ironlb_lab::seed_cluster::{deploy_dir, manifests, metallb_crds};
use serde_json::{Value, json};
use std::path::Path;

fn plane() -> Option<&'static ControlPlane> {
    ironlb_lab::control_plane::ready().then(ControlPlane::shared_with_crds)
}

fn repo(path: &str) -> String {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path);
    std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

/// Every field of `written` is in `stored` with the same value (the server may add
/// defaults, never drop or change what was written).
fn kept(written: &Value, stored: &Value, at: &str) -> Vec<String> {
    match (written, stored) {
        (Value::Object(w), Value::Object(s)) => w
            .iter()
            .flat_map(|(k, v)| match s.get(k) {
                Some(sv) => kept(v, sv, &format!("{at}.{k}")),
                None => vec![format!("{at}.{k} was pruned")],
            })
            .collect(),
        (w, s) if w == s => Vec::new(),
        (w, s) => vec![format!("{at}: wrote {w}, stored {s}")],
    }
}

#[test]
fn every_generated_crd_is_established_and_served() {
    let Some(plane) = plane() else { return };
    let ns = plane.namespace("served");
    let crds = documents(&manifests(&deploy_dir().join("crds")));
    assert_eq!(crds.len(), 9, "one file per metallb.io kind");
    let stored = plane.list("/apis/apiextensions.k8s.io/v1/customresourcedefinitions");
    for crd in &crds {
        let name = crd["metadata"]["name"].as_str().unwrap();
        let on_server = stored
            .iter()
            .find(|c| c["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("{name} is not installed"));
        let established = on_server["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Established" && c["status"] == "True");
        assert!(established, "{name}: {}", on_server["status"]);
        let plural = crd["spec"]["names"]["plural"].as_str().unwrap();
        for version in crd["spec"]["versions"].as_array().unwrap() {
            let v = version["name"].as_str().unwrap();
            // In a namespace of its own: listing other tests' BGPPeers at v1beta1 would call
            // the conversion webhook, which no controller serves here.
            let path = format!("/apis/metallb.io/{v}/namespaces/{ns}/{plural}");
            assert!(plane.get(&path).is_some(), "{path} is served");
        }
    }
    let peers = crds
        .iter()
        .find(|c| c["spec"]["names"]["kind"] == "BGPPeer")
        .unwrap();
    let served: Vec<&str> = peers["spec"]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["served"] == true)
        .filter_map(|v| v["name"].as_str())
        .collect();
    assert_eq!(served, ["v1beta2", "v1beta1"]);
}

#[test]
fn every_example_resource_is_stored_without_a_field_pruned() {
    let Some(plane) = plane() else { return };
    let ns = plane.namespace("examples");
    let mut examples = documents(&repo("crates/ironlb/tests/fixtures/full.yaml"));
    examples.extend(documents(&repo(
        "crates/ironlb/tests/golden/convert-legacy-configmap.yaml",
    )));
    examples.extend(documents(&repo("examples/legacy-configmap.yaml")));
    assert!(examples.len() >= 8, "{}", examples.len());
    let mut problems = Vec::new();
    for mut doc in examples {
        doc["metadata"]["namespace"] = json!(ns);
        let what = format!("{} {}", doc["kind"], doc["metadata"]["name"]);
        let text = doc.to_string();
        let stored = plane
            .with_client(move |client| async move { apply_yaml(&client, &text, false).await })
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        for key in ["spec", "data"] {
            if !doc[key].is_null() {
                problems.extend(kept(&doc[key], &stored[0][key], &format!("{what} {key}")));
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

/// What `kubectl get` shows: the Table the server renders from the CRD's printer columns.
#[test]
fn kubectl_get_shows_each_crds_printer_columns() {
    let Some(plane) = plane() else { return };
    let ns = plane.namespace("columns");
    plane.apply(&format!(
        "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {{name: lan, namespace: {ns}}}\nspec: {{addresses: [192.0.2.128/25]}}\n"
    ));
    for crd in documents(&manifests(&deploy_dir().join("crds"))) {
        let plural = crd["spec"]["names"]["plural"].as_str().unwrap().to_string();
        let version = &crd["spec"]["versions"][0];
        let wanted: Vec<String> = version["additionalPrinterColumns"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str().map(str::to_string))
            .collect();
        let path = format!(
            "/apis/metallb.io/{}/namespaces/{ns}/{plural}",
            version["name"].as_str().unwrap()
        );
        let table = plane.table(&path).expect("a Table");
        let columns: Vec<String> = table["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c["name"].as_str().map(str::to_string))
            .collect();
        for column in &wanted {
            assert!(
                columns.contains(column),
                "{plural}: {column} missing from {columns:?}"
            );
        }
        if plural == "ipaddresspools" {
            let row = &table["rows"][0]["cells"];
            assert_eq!(row[0], "lan", "{table}");
            assert!(row.to_string().contains("192.0.2.128/25"), "{row}");
        }
    }
}

#[test]
fn deploy_applies_with_a_server_side_dry_run() {
    let Some(plane) = plane() else { return };
    plane.namespace("metallb-system");
    for file in ["controller.yaml", "speaker.yaml"] {
        let text = std::fs::read_to_string(deploy_dir().join(file)).unwrap();
        let answered = plane
            .with_client(move |client| async move { apply_yaml(&client, &text, true).await })
            .unwrap_or_else(|e| panic!("deploy/{file}: {e}"));
        assert!(!answered.is_empty(), "deploy/{file} has objects");
    }
    // A dry run stores nothing.
    assert!(
        plane
            .get("/apis/apps/v1/namespaces/metallb-system/daemonsets/ironlb-speaker")
            .is_none()
    );
}

/// Writes `status` of a metallb.io/v1beta1 object through the status subresource, as
/// MetalLB's daemons do.
fn set_status(
    plane: &ControlPlane,
    ns: &str,
    (kind, plural): (&str, &str),
    name: &str,
    status: Value,
) -> Result<(), String> {
    let gvk = kube::core::GroupVersionKind::gvk("metallb.io", "v1beta1", kind);
    let resource = kube::core::ApiResource::from_gvk_with_plural(&gvk, plural);
    let (ns, name) = (ns.to_string(), name.to_string());
    plane.with_client(move |client| async move {
        let api: kube::Api<kube::core::DynamicObject> =
            kube::Api::namespaced_with(client, &ns, &resource);
        let patch = kube::api::Patch::Merge(json!({ "status": status }));
        api.patch_status(&name, &Default::default(), &patch)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    })
}

/// Every object of every metallb.io kind in `ns`, keyed by kind and name: what a switch must
/// keep.
fn objects(plane: &ControlPlane, ns: &str) -> std::collections::BTreeMap<String, Value> {
    let crds = documents(&manifests(&deploy_dir().join("crds")));
    let mut all = std::collections::BTreeMap::new();
    for crd in crds {
        let plural = crd["spec"]["names"]["plural"].as_str().unwrap().to_string();
        let storage = crd["spec"]["versions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["storage"] == true)
            .unwrap()["name"]
            .as_str()
            .unwrap()
            .to_string();
        for object in plane.list(&format!(
            "/apis/metallb.io/{storage}/namespaces/{ns}/{plural}"
        )) {
            let name = object["metadata"]["name"].as_str().unwrap();
            let kept = json!({"labels": object["metadata"]["labels"], "spec": object["spec"], "status": object["status"]});
            all.insert(format!("{plural}/{name}"), kept);
        }
    }
    all
}

fn install_crds(plane: &ControlPlane, yaml: &str) {
    plane.apply(yaml);
    plane.until_established();
}

/// A cluster switches either way: MetalLB's CRDs replaced by ironlb's and put back, with
/// objects of every kind written by users and by MetalLB's daemons (ConfigurationState with
/// no spec, per-Service statuses, pool counters) and then by ironlb's writer in between.
/// Nothing is pruned, refused or rewritten by either switch, and admission keeps MetalLB's
/// rules under ironlb's CRDs.
#[test]
fn crds_switch_either_way_without_losing_a_field() {
    if plane().is_none() {
        return;
    }
    // Its own control plane: the CRDs it swaps are shared by every test of a plane.
    let plane = ControlPlane::start(ironlb_lab::control_plane::Options::default());
    let ns = plane.namespace("switch");
    install_crds(&plane, &metallb_crds());
    let mut users = documents(&repo("crates/ironlb/tests/fixtures/full.yaml"));
    users.push(json!({"apiVersion": "metallb.io/v1beta1", "kind": "Community", "metadata": {"name": "half"}, "spec": {"communities": [{"name": "no-value"}]}}));
    for mut doc in users {
        doc["metadata"]["namespace"] = json!(ns);
        plane.apply(&doc.to_string());
    }
    const STATE: (&str, &str) = ("ConfigurationState", "configurationstates");
    const L2: (&str, &str) = ("ServiceL2Status", "servicel2statuses");
    const BGP: (&str, &str) = ("ServiceBGPStatus", "servicebgpstatuses");
    let daemons = [
        (
            STATE,
            "controller",
            json!({"result": "Valid", "conditions": [{"type": "poolReconcilerValid", "status": "True", "reason": "Reconciled", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}),
        ),
        (
            L2,
            "l2-web",
            json!({"node": "node1", "serviceName": "web", "serviceNamespace": "default", "interfaces": [{"name": "eth0"}]}),
        ),
        (
            BGP,
            "bgp-web",
            json!({"node": "node1", "serviceName": "web", "serviceNamespace": "default", "peers": ["gateway"]}),
        ),
    ];
    for ((kind, plural), name, status) in daemons {
        plane.apply(&json!({"apiVersion": "metallb.io/v1beta1", "kind": kind, "metadata": {"name": name, "namespace": ns}}).to_string());
        set_status(&plane, &ns, (kind, plural), name, status).unwrap();
    }
    let counters =
        json!({"assignedIPv4": 2, "availableIPv4": 270, "assignedIPv6": 0, "availableIPv6": 0});
    set_status(
        &plane,
        &ns,
        ("IPAddressPool", "ipaddresspools"),
        "routed",
        counters,
    )
    .unwrap();
    let under_metallb = objects(&plane, &ns);
    assert!(under_metallb.len() >= 10, "{under_metallb:#?}");
    assert!(under_metallb["configurationstates/controller"]["spec"].is_null());

    install_crds(&plane, &ironlb_lab::seed_cluster::Install::Ironlb.crds());
    assert_eq!(
        objects(&plane, &ns),
        under_metallb,
        "ironlb's CRDs over MetalLB's"
    );
    // ironlb's own writer takes over MetalLB's ConfigurationState.
    let state = api::v1beta1::ConfigurationStateStatus {
        result: Some(api::v1beta1::ConfigurationResult::Invalid),
        error_summary: "pool routed: overlaps".into(),
        ..Default::default()
    };
    let ns_for_writer = ns.clone();
    plane
        .with_client(move |client| async move {
            ironlb_kube::writer::config_state(
                &client,
                &ns_for_writer,
                &ironlb_kube::writer::Reconciler::controller(),
                &state,
            )
            .await
        })
        .unwrap();
    let refused = set_status(&plane, &ns, L2, "l2-web", json!({"node": "node2"}))
        .expect_err("status.node is immutable");
    assert!(refused.contains("status.node cannot change"), "{refused}");
    let under_ironlb = objects(&plane, &ns);
    assert_eq!(
        under_ironlb["configurationstates/controller"]["status"]["result"],
        "Invalid"
    );
    assert!(under_ironlb["configurationstates/controller"]["spec"].is_null());

    install_crds(&plane, &metallb_crds());
    assert_eq!(
        objects(&plane, &ns),
        under_ironlb,
        "MetalLB's CRDs over ironlb's"
    );
}
