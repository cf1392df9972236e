//! Gives the generated CRDs the shape of MetalLB's, so that a cluster can switch either way by
//! applying the other project's CRDs over the installed ones without the API server pruning,
//! refusing or merging differently anything the other accepted.
//!
//! MetalLB's CRDs come from controller-gen and Go types, ours from schemars and Rust types. The
//! generators disagree where the API server cares (required fields, status subresources, the
//! merge types server-side apply uses, CEL rules) and where only a diff shows it (integer
//! formats, `nullable`). Each rule below closes one of those gaps; `crd_shape` tests and the
//! cluster lab compare the result with MetalLB's published schemas.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::{Map, Value, json};

/// Rewrites one generated CRD into MetalLB's shape.
pub(crate) fn metallb_shape(crd: CustomResourceDefinition) -> CustomResourceDefinition {
    let mut crd = serde_json::to_value(crd).expect("a CRD serializes");
    let kind = crd["spec"]["names"]["kind"]
        .as_str()
        .expect("a generated CRD names its kind")
        .to_string();
    crd["spec"]["names"]["listKind"] = json!(format!("{kind}List"));
    for version in crd["spec"]["versions"].as_array_mut().into_iter().flatten() {
        let name = version["name"].as_str().unwrap_or_default().to_string();
        // Every MetalLB kind has a status subresource, even those that never fill it; without
        // it, a write of the whole object would also rewrite status.
        version["subresources"]["status"] = json!({});
        let root = &mut version["schema"]["openAPIV3Schema"];
        shape_root(&kind, root);
        shape_node(root);
        for field in FIELDS
            .iter()
            .filter(|f| f.kind == kind && f.version.is_none_or(|v| v == name))
        {
            if let Some(node) = at_path(root, field.path) {
                (field.apply)(node);
            }
        }
        for rule in RULES.iter().filter(|r| r.kind == kind && r.version == name) {
            let node = at_path(root, rule.path).expect("a CEL rule's field exists in its kind");
            push_rule(node, rule.rule, rule.message);
        }
        if matches!(kind.as_str(), "ServiceL2Status" | "ServiceBGPStatus") {
            fixed_subject(&kind, root);
        }
    }
    serde_json::from_value(crd).expect("the shaped CRD is still a CRD")
}

/// The top of an object: MetalLB declares the type and object metadata, requires a spec only
/// of IPAddressPool (the kube derive requires one everywhere), and gives ConfigurationState
/// no spec at all.
fn shape_root(kind: &str, root: &mut Value) {
    let Some(root) = root.as_object_mut() else {
        return;
    };
    if kind != "IPAddressPool" {
        root.remove("required");
    }
    let properties = root
        .entry("properties")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .expect("properties is a map");
    properties.insert("apiVersion".into(), json!({"type": "string"}));
    properties.insert("kind".into(), json!({"type": "string"}));
    properties.insert("metadata".into(), json!({"type": "object"}));
    properties
        .entry("status")
        .or_insert_with(|| json!({"type": "object"}));
    if kind == "ConfigurationState" {
        properties.remove("spec");
    }
}

/// Rules that hold at every depth, applied bottom-up.
fn shape_node(node: &mut Value) {
    let Some(schema) = node.as_object_mut() else {
        return;
    };
    for child in ["items", "additionalProperties"] {
        if let Some(child) = schema.get_mut(child) {
            shape_node(child);
        }
    }
    if let Some(Value::Object(properties)) = schema.get_mut("properties") {
        properties.values_mut().for_each(shape_node);
    }
    // Nulls are dropped by the API server under MetalLB's schemas; ours must not keep them.
    schema.remove("nullable");
    if let Some(Value::Array(values)) = schema.get_mut("enum") {
        values.retain(|v| !v.is_null());
    }
    integer_format(schema);
    if is_label_selector(schema) {
        label_selector(schema);
    }
    if is_condition_list(schema) {
        condition_list(schema);
    }
}

/// controller-gen writes `int32` for Go's 32-bit integers, `int64` for 64-bit ones and no
/// format for the others, and adds no lower bound for unsigned types.
fn integer_format(schema: &mut Map<String, Value>) {
    let Some(format) = schema.get("format").and_then(Value::as_str) else {
        return;
    };
    let (controller_gen, unsigned) = match format {
        "uint32" => (Some("int32"), true),
        "uint64" => (Some("int64"), true),
        "uint8" | "uint16" => (None, true),
        "int8" | "int16" => (None, false),
        _ => return,
    };
    match controller_gen {
        Some(format) => schema.insert("format".into(), json!(format)),
        None => schema.remove("format"),
    };
    if unsigned && schema.get("minimum").and_then(Value::as_f64) == Some(0.0) {
        schema.remove("minimum");
    }
}

fn is_label_selector(schema: &Map<String, Value>) -> bool {
    let has = |name| schema.get("properties").and_then(|p| p.get(name)).is_some();
    has("matchLabels") && has("matchExpressions")
}

/// Kubernetes marks selectors atomic, so server-side apply replaces a selector whole instead of
/// merging one manager's expressions into another's.
fn label_selector(schema: &mut Map<String, Value>) {
    schema.insert("x-kubernetes-map-type".into(), json!("atomic"));
    let expressions = &mut schema["properties"]["matchExpressions"];
    expressions["x-kubernetes-list-type"] = json!("atomic");
    if let Some(values) = at_path(&mut expressions["items"], "values") {
        values["x-kubernetes-list-type"] = json!("atomic");
    }
}

fn is_condition_list(schema: &Map<String, Value>) -> bool {
    let item = |name| {
        schema
            .get("items")
            .and_then(|i| i.get("properties"))
            .and_then(|p| p.get(name))
            .is_some()
    };
    item("lastTransitionTime") && item("reason") && item("status") && item("type")
}

/// `metav1.Condition` as Kubernetes declares it: a list keyed by type, with bounded strings.
fn condition_list(schema: &mut Map<String, Value>) {
    schema.insert("x-kubernetes-list-type".into(), json!("map"));
    schema.insert("x-kubernetes-list-map-keys".into(), json!(["type"]));
    let fields = &mut schema["items"]["properties"];
    merge(&mut fields["message"], json!({"maxLength": 32768}));
    merge(&mut fields["observedGeneration"], json!({"minimum": 0}));
    merge(
        &mut fields["reason"],
        json!({"maxLength": 1024, "minLength": 1, "pattern": "^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"}),
    );
    merge(
        &mut fields["status"],
        json!({"enum": ["True", "False", "Unknown"]}),
    );
    merge(
        &mut fields["type"],
        json!({
            "maxLength": 316,
            "pattern": "^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"
        }),
    );
}

/// A field whose MetalLB schema follows from its Go markers rather than its type.
struct Field {
    kind: &'static str,
    /// `None` for every version of the kind.
    version: Option<&'static str>,
    path: &'static str,
    apply: fn(&mut Value),
}

fn asn(node: &mut Value) {
    merge(
        node,
        json!({"format": "int64", "minimum": 0, "maximum": 4294967295u64}),
    );
}

/// 0 is reserved, and MetalLB refuses it as the local AS.
fn local_asn(node: &mut Value) {
    asn(node);
    node["minimum"] = json!(1);
}

fn from_zero(node: &mut Value) {
    node["minimum"] = json!(0);
}

fn mergeable_selectors(node: &mut Value) {
    let selector = &mut node["items"];
    if let Some(schema) = selector.as_object_mut() {
        schema.remove("x-kubernetes-map-type");
    }
    let expressions = &mut selector["properties"]["matchExpressions"];
    if let Some(schema) = expressions.as_object_mut() {
        schema.remove("x-kubernetes-list-type");
    }
    if let Some(Value::Object(values)) = at_path(&mut expressions["items"], "values") {
        values.remove("x-kubernetes-list-type");
    }
}

fn default_false(node: &mut Value) {
    node["default"] = json!(false);
}

fn without_defaults(node: &mut Value) {
    match node {
        Value::Object(schema) => {
            schema.remove("default");
            schema.values_mut().for_each(without_defaults);
        }
        Value::Array(items) => items.iter_mut().for_each(without_defaults),
        _ => {}
    }
}

fn without_format(node: &mut Value) {
    if let Some(schema) = node.as_object_mut() {
        schema.remove("format");
    }
}

fn atomic(node: &mut Value) {
    node["x-kubernetes-map-type"] = json!("atomic");
}

const FIELDS: &[Field] = &[
    Field {
        kind: "BGPPeer",
        version: None,
        path: "spec.myASN",
        apply: asn,
    },
    Field {
        kind: "BGPPeer",
        version: None,
        path: "spec.peerASN",
        apply: asn,
    },
    Field {
        kind: "BGPPeer",
        version: None,
        path: "spec.localASN",
        apply: local_asn,
    },
    Field {
        kind: "BGPPeer",
        version: Some("v1beta1"),
        path: "spec.peerPort",
        apply: from_zero,
    },
    // v1beta1's selectors are MetalLB's own type, which carries no merge markers.
    Field {
        kind: "BGPPeer",
        version: Some("v1beta1"),
        path: "spec.nodeSelectors",
        apply: mergeable_selectors,
    },
    Field {
        kind: "BGPPeer",
        version: None,
        path: "spec.passwordSecret",
        apply: atomic,
    },
    Field {
        kind: "BGPPeer",
        version: Some("v1beta2"),
        path: "spec.disableMP",
        apply: default_false,
    },
    Field {
        kind: "BGPPeer",
        version: Some("v1beta2"),
        path: "spec.dualStackAddressFamily",
        apply: default_false,
    },
    // serde's defaults would make the API server fill in empty lists and names.
    Field {
        kind: "Community",
        version: None,
        path: "spec.communities",
        apply: without_defaults,
    },
    // A Go `int`, which controller-gen leaves without a format.
    Field {
        kind: "IPAddressPool",
        version: None,
        path: "spec.serviceAllocation.priority",
        apply: without_format,
    },
];

/// A CEL rule MetalLB's CRD enforces at admission, so objects the API server accepts are the
/// same whichever project's CRDs are installed. The messages name the field and the fix.
struct Rule {
    kind: &'static str,
    version: &'static str,
    path: &'static str,
    rule: &'static str,
    message: &'static str,
}

const IMMUTABLE: &str = "self == oldSelf";

const RULES: &[Rule] = &[
    Rule {
        kind: "BGPAdvertisement",
        version: "v1beta1",
        path: "spec",
        rule: "!has(self.serviceSelectors) || self.serviceSelectors.size() == 0 || ((!has(self.aggregationLength) || self.aggregationLength == 32) && (!has(self.aggregationLengthV6) || self.aggregationLengthV6 == 128))",
        message: "spec.serviceSelectors cannot be combined with aggregationLength other than 32 or aggregationLengthV6 other than 128: drop one of them or split the advertisement",
    },
    Rule {
        kind: "BGPPeer",
        version: "v1beta2",
        path: "spec.connectTime",
        rule: "duration(self).getSeconds() >= 1 && duration(self).getSeconds() <= 65535",
        message: "spec.connectTime must be between 1s and 65535s",
    },
    Rule {
        kind: "BGPPeer",
        version: "v1beta2",
        path: "spec.connectTime",
        rule: "duration(self).getMilliseconds() % 1000 == 0",
        message: "spec.connectTime must be a whole number of seconds, such as 10s",
    },
    Rule {
        kind: "BGPPeer",
        version: "v1beta2",
        path: "spec.enableGracefulRestart",
        rule: IMMUTABLE,
        message: "spec.enableGracefulRestart cannot change after the BGPPeer is created: delete and recreate the peer to change it",
    },
];

/// A per-Service status belongs to one node and one Service for its whole life.
fn fixed_subject(kind: &str, root: &mut Value) {
    for field in ["node", "serviceName", "serviceNamespace"] {
        let node = at_path(root, &format!("status.{field}"))
            .expect("per-Service statuses name their subject");
        let message = format!(
            "status.{field} cannot change: a {kind} belongs to one node and one Service; delete it instead"
        );
        push_rule(node, IMMUTABLE, &message);
    }
}

fn push_rule(node: &mut Value, rule: &str, message: &str) {
    let rules = node
        .as_object_mut()
        .expect("a schema is a map")
        .entry("x-kubernetes-validations")
        .or_insert_with(|| json!([]));
    rules
        .as_array_mut()
        .expect("validations are a list")
        .push(json!({"rule": rule, "message": message}));
}

/// The schema of a dotted property path below `node`, if every step exists.
fn at_path<'a>(node: &'a mut Value, path: &str) -> Option<&'a mut Value> {
    path.split('.')
        .try_fold(node, |node, step| node.get_mut("properties")?.get_mut(step))
}

fn merge(node: &mut Value, extra: Value) {
    if let (Some(schema), Value::Object(extra)) = (node.as_object_mut(), extra) {
        schema.extend(extra);
    }
}
