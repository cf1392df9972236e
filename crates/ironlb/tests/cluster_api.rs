//! ironlb's CRDs and manifests against a real API server (the shared control plane of
//! `ironlb_lab`): every CRD `ironlb crds` generates becomes Established; every example
//! resource in the repository is stored without a field pruned; both BGPPeer versions are
//! served; `kubectl get` would show the printer columns; `deploy/` applies (dry run).

use ironlb_lab::control_plane::{ControlPlane, apply_yaml, documents};
use ironlb_lab::seed_cluster::{deploy_dir, manifests};
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
            let path = format!("/apis/metallb.io/{v}/{plural}");
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
