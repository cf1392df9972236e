//! The generated CRDs have the shape MetalLB v0.16 publishes, field by field where the API
//! server cares: what is required, which subresources exist, how server-side apply merges,
//! which CEL rules admission runs, and which integer formats controller-gen writes. The facts
//! come from MetalLB's published CRDs; `ironlb_lab::crd_compat` compares the whole files when
//! they are at hand.

use serde_json::Value;

fn crds() -> Vec<Value> {
    ironlb_api::crds()
        .into_iter()
        .map(|crd| serde_json::to_value(crd).unwrap())
        .collect()
}

fn version<'a>(crds: &'a [Value], kind: &str, version: &str) -> &'a Value {
    crds.iter()
        .find(|c| c["spec"]["names"]["kind"] == kind)
        .and_then(|c| {
            c["spec"]["versions"]
                .as_array()?
                .iter()
                .find(|v| v["name"] == version)
        })
        .unwrap_or_else(|| panic!("{kind} {version} is generated"))
}

/// The schema at a dotted path; a `[]` step goes into a list's items.
fn field<'a>(crds: &'a [Value], kind: &str, v: &str, path: &str) -> &'a Value {
    let root = &version(crds, kind, v)["schema"]["openAPIV3Schema"];
    path.split('.').fold(root, |node, step| match step {
        "[]" => &node["items"],
        name => &node["properties"][name],
    })
}

/// Every schema node below `node`, with its path.
fn nodes<'a>(node: &'a Value, at: String, out: &mut Vec<(String, &'a Value)>) {
    if let Some(properties) = node["properties"].as_object() {
        for (name, child) in properties {
            nodes(child, format!("{at}.{name}"), out);
        }
    }
    if node["items"].is_object() {
        nodes(&node["items"], format!("{at}[]"), out);
    }
    out.push((at, node));
}

const KINDS: [(&str, &[&str]); 9] = [
    ("BFDProfile", &["v1beta1"]),
    ("BGPAdvertisement", &["v1beta1"]),
    ("BGPPeer", &["v1beta1", "v1beta2"]),
    ("Community", &["v1beta1"]),
    ("ConfigurationState", &["v1beta1"]),
    ("IPAddressPool", &["v1beta1"]),
    ("L2Advertisement", &["v1beta1"]),
    ("ServiceBGPStatus", &["v1beta1"]),
    ("ServiceL2Status", &["v1beta1"]),
];

#[test]
fn every_kind_has_a_status_subresource_and_requires_only_what_metallb_requires() {
    let crds = crds();
    for (kind, versions) in KINDS {
        let crd = crds
            .iter()
            .find(|c| c["spec"]["names"]["kind"] == kind)
            .unwrap();
        assert_eq!(crd["spec"]["names"]["listKind"], format!("{kind}List"));
        for v in versions {
            let version = version(&crds, kind, v);
            assert_eq!(
                version["subresources"]["status"],
                serde_json::json!({}),
                "{kind} {v}"
            );
            let root = &version["schema"]["openAPIV3Schema"];
            let required = if kind == "IPAddressPool" {
                serde_json::json!(["spec"])
            } else {
                Value::Null
            };
            assert_eq!(root["required"], required, "{kind} {v}");
            for top in ["apiVersion", "kind", "metadata", "status"] {
                assert!(root["properties"][top].is_object(), "{kind} {v} {top}");
            }
        }
    }
}

#[test]
fn configuration_state_has_no_spec() {
    let crds = crds();
    let root = &version(&crds, "ConfigurationState", "v1beta1")["schema"]["openAPIV3Schema"];
    assert!(root["properties"]["spec"].is_null(), "{root}");
}

#[test]
fn no_schema_says_nullable_or_uses_a_format_controller_gen_does_not_write() {
    let crds = crds();
    for (kind, versions) in KINDS {
        for v in versions {
            let mut all = Vec::new();
            nodes(
                &version(&crds, kind, v)["schema"]["openAPIV3Schema"],
                format!("{kind} {v}"),
                &mut all,
            );
            for (at, node) in all {
                assert!(node["nullable"].is_null(), "{at} is nullable");
                let format = node["format"].as_str().unwrap_or("");
                assert!(!format.starts_with("uint"), "{at} has format {format}");
                let nulls = node["enum"].as_array().into_iter().flatten();
                assert!(
                    nulls.filter(|v| v.is_null()).count() == 0,
                    "{at}: null in enum"
                );
            }
        }
    }
}

/// (kind, version, path, format, minimum, maximum) as MetalLB declares them.
type Integer = (
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
    Option<f64>,
    Option<f64>,
);

#[test]
fn integers_carry_metallb_formats_and_bounds() {
    let u32_max = 4294967295.0;
    #[rustfmt::skip]
    let table: &[Integer] = &[
        ("BGPPeer", "v1beta2", "spec.myASN", Some("int64"), Some(0.0), Some(u32_max)),
        ("BGPPeer", "v1beta2", "spec.peerASN", Some("int64"), Some(0.0), Some(u32_max)),
        ("BGPPeer", "v1beta2", "spec.localASN", Some("int64"), Some(1.0), Some(u32_max)),
        ("BGPPeer", "v1beta1", "spec.myASN", Some("int64"), Some(0.0), Some(u32_max)),
        ("BGPPeer", "v1beta2", "spec.peerPort", None, Some(1.0), Some(16384.0)),
        ("BGPPeer", "v1beta1", "spec.peerPort", None, Some(0.0), Some(16384.0)),
        ("BGPAdvertisement", "v1beta1", "spec.localPref", Some("int32"), None, None),
        ("BGPAdvertisement", "v1beta1", "spec.aggregationLength", Some("int32"), Some(1.0), None),
        ("BFDProfile", "v1beta1", "spec.receiveInterval", Some("int32"), Some(10.0), Some(60000.0)),
        ("IPAddressPool", "v1beta1", "spec.serviceAllocation.priority", None, None, None),
    ];
    let crds = crds();
    for &(kind, v, path, format, min, max) in table {
        let node = field(&crds, kind, v, path);
        assert_eq!(node["type"], "integer", "{kind} {v} {path}");
        assert_eq!(node["format"].as_str(), format, "{kind} {v} {path} format");
        assert_eq!(node["minimum"].as_f64(), min, "{kind} {v} {path} minimum");
        assert_eq!(node["maximum"].as_f64(), max, "{kind} {v} {path} maximum");
    }
}

#[test]
fn selectors_are_atomic_where_metallb_uses_kubernetes_label_selectors() {
    let crds = crds();
    let atomic = [
        (
            "BGPAdvertisement",
            "v1beta1",
            "spec.ipAddressPoolSelectors.[]",
        ),
        ("BGPAdvertisement", "v1beta1", "spec.serviceSelectors.[]"),
        ("L2Advertisement", "v1beta1", "spec.nodeSelectors.[]"),
        (
            "L2Advertisement",
            "v1beta1",
            "spec.preferredNodeSelectors.[].preference",
        ),
        (
            "IPAddressPool",
            "v1beta1",
            "spec.serviceAllocation.namespaceSelectors.[]",
        ),
        ("BGPPeer", "v1beta2", "spec.nodeSelectors.[]"),
    ];
    for (kind, v, path) in atomic {
        let selector = field(&crds, kind, v, path);
        assert_eq!(selector["x-kubernetes-map-type"], "atomic", "{kind} {path}");
        let expressions = &selector["properties"]["matchExpressions"];
        assert_eq!(
            expressions["x-kubernetes-list-type"], "atomic",
            "{kind} {path}"
        );
        let values = &expressions["items"]["properties"]["values"];
        assert_eq!(values["x-kubernetes-list-type"], "atomic", "{kind} {path}");
    }
    let old = field(&crds, "BGPPeer", "v1beta1", "spec.nodeSelectors.[]");
    assert!(old["x-kubernetes-map-type"].is_null(), "{old}");
    let secret = field(&crds, "BGPPeer", "v1beta2", "spec.passwordSecret");
    assert_eq!(secret["x-kubernetes-map-type"], "atomic");
}

#[test]
fn conditions_are_a_list_keyed_by_type() {
    let crds = crds();
    let conditions = field(&crds, "ConfigurationState", "v1beta1", "status.conditions");
    assert_eq!(conditions["x-kubernetes-list-type"], "map");
    assert_eq!(
        conditions["x-kubernetes-list-map-keys"],
        serde_json::json!(["type"])
    );
    let item = &conditions["items"];
    assert_eq!(
        item["required"],
        serde_json::json!(["lastTransitionTime", "message", "reason", "status", "type"])
    );
    assert_eq!(item["properties"]["type"]["maxLength"], 316);
    assert_eq!(item["properties"]["reason"]["minLength"], 1);
}

#[test]
fn admission_runs_metallbs_cel_rules() {
    let crds = crds();
    let table = [
        ("BGPAdvertisement", "v1beta1", "spec", "serviceSelectors"),
        ("BGPPeer", "v1beta2", "spec.connectTime", "getSeconds()"),
        (
            "BGPPeer",
            "v1beta2",
            "spec.connectTime",
            "getMilliseconds()",
        ),
        (
            "BGPPeer",
            "v1beta2",
            "spec.enableGracefulRestart",
            "oldSelf",
        ),
        ("ServiceL2Status", "v1beta1", "status.node", "oldSelf"),
        (
            "ServiceL2Status",
            "v1beta1",
            "status.serviceName",
            "oldSelf",
        ),
        (
            "ServiceL2Status",
            "v1beta1",
            "status.serviceNamespace",
            "oldSelf",
        ),
        ("ServiceBGPStatus", "v1beta1", "status.node", "oldSelf"),
        (
            "ServiceBGPStatus",
            "v1beta1",
            "status.serviceName",
            "oldSelf",
        ),
        (
            "ServiceBGPStatus",
            "v1beta1",
            "status.serviceNamespace",
            "oldSelf",
        ),
    ];
    for (kind, v, path, mentions) in table {
        let rules = field(&crds, kind, v, path)["x-kubernetes-validations"]
            .as_array()
            .unwrap_or_else(|| panic!("{kind} {path} has CEL rules"));
        assert!(
            rules
                .iter()
                .any(|r| r["rule"].as_str().unwrap().contains(mentions)
                    && r["message"].as_str().unwrap().contains(path)),
            "{kind} {path}: {rules:?}"
        );
    }
}

#[test]
fn defaults_are_metallbs() {
    let crds = crds();
    for path in ["spec.disableMP", "spec.dualStackAddressFamily"] {
        assert_eq!(
            field(&crds, "BGPPeer", "v1beta2", path)["default"],
            false,
            "{path}"
        );
    }
    let communities = field(&crds, "Community", "v1beta1", "spec.communities");
    assert!(communities["default"].is_null(), "{communities}");
    assert!(communities["items"]["required"].is_null(), "{communities}");
}
