//! Admission decisions, one case per kind and operation: what is refused, with which words,
//! and what only warns.

use config::Resources;
use ironlb_kube::admission::{Change, Verdict, decide};
use kube::core::admission::Operation;
use serde_json::{Value, json};

const NS: &str = "metallb-system";

fn object(kind: &str, name: &str, spec: Value) -> Value {
    let version = if kind == "BGPPeer" {
        "v1beta2"
    } else {
        "v1beta1"
    };
    json!({"apiVersion": format!("metallb.io/{version}"), "kind": kind,
           "metadata": {"name": name, "namespace": NS}, "spec": spec})
}

/// The configuration of `objects`, as the API server would hold it.
fn cluster(objects: &[Value]) -> Resources {
    let text: Vec<String> = objects.iter().map(Value::to_string).collect();
    ironlb_lab::fixtures::resources(&text.join("\n---\n"))
}

fn admit(operation: Operation, object: &Value, current: &[Value]) -> Verdict {
    let change = Change {
        kind: object["kind"].as_str().unwrap(),
        name: object["metadata"]["name"].as_str().unwrap(),
        namespace: object["metadata"]["namespace"].as_str(),
        object: (operation != Operation::Delete).then_some(object),
        operation,
    };
    decide(&change, NS, &cluster(current))
}

fn pool(name: &str, addresses: &[&str]) -> Value {
    object("IPAddressPool", name, json!({"addresses": addresses}))
}

fn refused(verdict: &Verdict) -> &str {
    verdict
        .refused
        .as_deref()
        .unwrap_or_else(|| panic!("admitted: {verdict:?}"))
}

#[test]
fn an_invalid_pool_is_refused_naming_the_object_the_field_and_the_fix() {
    let verdict = admit(Operation::Create, &pool("bad", &["192.0.2.0/33"]), &[]);
    let reason = refused(&verdict);
    assert!(
        reason.starts_with("IPAddressPool \"bad\" spec.addresses[0]: "),
        "{reason}"
    );
    assert!(reason.contains("; fix: "), "{reason}");
    assert_eq!(reason.lines().count(), 1, "{reason}");
}

#[test]
fn pools_that_overlap_only_together_are_refused() {
    let existing = pool("a", &["192.0.2.0/25"]);
    let verdict = admit(
        Operation::Create,
        &pool("b", &["192.0.2.100-192.0.2.200"]),
        std::slice::from_ref(&existing),
    );
    let reason = refused(&verdict);
    assert!(reason.contains("overlap"), "{reason}");
    let apart = admit(
        Operation::Create,
        &pool("b", &["192.0.2.128/25"]),
        &[existing],
    );
    assert_eq!(apart.refused, None, "{apart:?}");
}

#[test]
fn an_update_is_judged_against_the_others_not_the_old_self() {
    let old = pool("a", &["192.0.2.0/25"]);
    let verdict = admit(Operation::Update, &pool("a", &["192.0.2.0/24"]), &[old]);
    assert_eq!(verdict.refused, None, "{verdict:?}");
}

#[test]
fn a_broken_cluster_can_still_be_mended_one_object_at_a_time() {
    let broken = pool("broken", &["not-a-cidr"]);
    let unrelated = admit(
        Operation::Create,
        &pool("lan", &["198.51.100.0/24"]),
        std::slice::from_ref(&broken),
    );
    assert_eq!(unrelated.refused, None, "{unrelated:?}");
    let fixed = admit(
        Operation::Update,
        &pool("broken", &["203.0.113.0/24"]),
        &[broken],
    );
    assert_eq!(fixed.refused, None, "{fixed:?}");
}

#[test]
fn an_object_in_another_namespace_is_refused_with_metallbs_meaning() {
    let mut elsewhere = pool("lan", &["192.0.2.0/24"]);
    elsewhere["metadata"]["namespace"] = json!("default");
    let verdict = admit(Operation::Create, &elsewhere, &[]);
    let reason = refused(&verdict);
    assert!(reason.contains("default/lan"), "{reason}");
    assert!(
        reason.contains("only in namespace \"metallb-system\""),
        "{reason}"
    );
}

#[test]
fn references_to_objects_not_created_yet_only_warn() {
    let peer = object(
        "BGPPeer",
        "gw",
        json!({"myASN": 64512, "peerASN": 64513, "peerAddress": "192.0.2.1", "bfdProfile": "fast"}),
    );
    let verdict = admit(Operation::Create, &peer, &[]);
    assert_eq!(verdict.refused, None, "{verdict:?}");
    assert!(
        verdict
            .warnings
            .iter()
            .any(|w| w.contains("BFDProfile \"fast\" does not exist")),
        "{verdict:?}"
    );
    let ad = object(
        "BGPAdvertisement",
        "ad",
        json!({"ipAddressPools": ["later"], "communities": ["no-export-alias"]}),
    );
    let verdict = admit(Operation::Create, &ad, &[]);
    assert_eq!(verdict.refused, None, "{verdict:?}");
    assert!(
        verdict
            .warnings
            .iter()
            .any(|w| w.contains("\"later\" does not exist")),
        "{verdict:?}"
    );
}

#[test]
fn a_deprecated_field_is_admitted_with_a_warning() {
    let peer = object(
        "BGPPeer",
        "gw",
        json!({"myASN": 64512, "peerASN": 64513, "peerAddress": "192.0.2.1", "disableMP": true}),
    );
    let verdict = admit(Operation::Create, &peer, &[]);
    assert_eq!(verdict.refused, None, "{verdict:?}");
    assert!(
        verdict.warnings.iter().any(|w| w.contains("disableMP")),
        "{verdict:?}"
    );
}

#[test]
fn a_bfd_profile_in_use_cannot_be_deleted_and_an_unused_one_can() {
    let profile = object("BFDProfile", "fast", json!({}));
    let peer = |name: &str| {
        object(
            "BGPPeer",
            name,
            json!({"myASN": 64512, "peerASN": 64513, "peerAddress": format!("192.0.2.{}", name.len()), "bfdProfile": "fast"}),
        )
    };
    let verdict = admit(
        Operation::Delete,
        &profile,
        &[profile.clone(), peer("gw"), peer("edge")],
    );
    let reason = refused(&verdict);
    assert!(reason.contains("BGPPeer edge, gw"), "{reason}");
    let unused = admit(Operation::Delete, &profile, std::slice::from_ref(&profile));
    assert_eq!(unused, Verdict::default());
}

#[test]
fn other_deletes_are_admitted() {
    let lan = pool("lan", &["192.0.2.0/24"]);
    assert_eq!(
        admit(Operation::Delete, &lan, std::slice::from_ref(&lan)),
        Verdict::default()
    );
}

#[test]
fn each_kind_is_validated_on_create() {
    let cases = [
        object(
            "BGPPeer",
            "gw",
            json!({"myASN": 64512, "peerASN": 64513, "peerAddress": "192.0.2.300"}),
        ),
        object("BGPAdvertisement", "ad", json!({"aggregationLength": 40})),
        object(
            "L2Advertisement",
            "l2",
            json!({"nodeSelectors": [{"matchLabels": {"bad key!": "x"}}]}),
        ),
        object(
            "Community",
            "c",
            json!({"communities": [{"name": "x", "value": "not-a-community"}]}),
        ),
        object("BFDProfile", "b", json!({"receiveInterval": 5})),
    ];
    for case in cases {
        let verdict = admit(Operation::Create, &case, &[]);
        let reason = refused(&verdict);
        let kind = case["kind"].as_str().unwrap();
        assert!(reason.starts_with(kind), "{kind}: {reason}");
    }
}

#[test]
fn the_review_answers_the_api_servers_request() {
    let request: kube::core::admission::AdmissionReview<kube::core::DynamicObject> =
        serde_json::from_value(json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {"uid": "42", "kind": {"group": "metallb.io", "version": "v1beta1", "kind": "IPAddressPool"},
                        "resource": {"group": "metallb.io", "version": "v1beta1", "resource": "ipaddresspools"},
                        "name": "bad", "namespace": NS, "operation": "CREATE", "userInfo": {},
                        "object": pool("bad", &["192.0.2.0/33"])}
        }))
        .unwrap();
    let request = request.try_into().unwrap();
    let response = ironlb_kube::admission::review(&request, NS, &Resources::default());
    let review = serde_json::to_value(response.into_review()).unwrap();
    assert_eq!(review["response"]["uid"], "42");
    assert_eq!(review["response"]["allowed"], false);
    let message = review["response"]["status"]["message"].as_str().unwrap();
    assert!(message.contains("IPAddressPool \"bad\""), "{review}");
}
