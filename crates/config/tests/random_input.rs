//! Random YAML and random field values never crash validation, and every problem says
//! what is wrong and how to fix it.

use ironlb_config::documents::{ReadOptions, read};
use ironlb_config::{Resources, Severity, build};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

fn check(text: &str) {
    let mut resources = Resources::default();
    let mut problems = Vec::new();
    read(
        text,
        "random.yaml",
        &ReadOptions::default(),
        &mut resources,
        &mut problems,
    );
    let outcome = build(&resources);
    let has_error = outcome
        .problems
        .iter()
        .any(|p| p.severity == Severity::Error);
    assert_eq!(
        outcome.config.is_some(),
        !has_error,
        "a config is given exactly when there is no error"
    );
    for p in problems.iter().chain(&outcome.problems) {
        assert!(
            !p.message.is_empty() && !p.fix.is_empty(),
            "problem without message or fix: {p:?}"
        );
    }
}

const KINDS: [(&str, &str); 8] = [
    ("metallb.io/v1beta1", "IPAddressPool"),
    ("metallb.io/v1beta2", "BGPPeer"),
    ("metallb.io/v1beta1", "BGPPeer"),
    ("metallb.io/v1beta1", "BGPAdvertisement"),
    ("metallb.io/v1beta1", "L2Advertisement"),
    ("metallb.io/v1beta1", "BFDProfile"),
    ("metallb.io/v1beta1", "Community"),
    ("v1", "Secret"),
];

const FIELDS: [&str; 30] = [
    "addresses",
    "autoAssign",
    "avoidBuggyIPs",
    "serviceAllocation",
    "priority",
    "namespaces",
    "myASN",
    "peerASN",
    "peerAddress",
    "sourceAddress",
    "holdTime",
    "keepaliveTime",
    "connectTime",
    "routerID",
    "password",
    "passwordSecret",
    "bfdProfile",
    "ebgpMultiHop",
    "nodeSelectors",
    "matchLabels",
    "matchExpressions",
    "aggregationLength",
    "aggregationLengthV6",
    "localPref",
    "communities",
    "ipAddressPools",
    "peers",
    "interfaces",
    "receiveInterval",
    "detectMultiplier",
];

const SCALARS: [&str; 16] = [
    "192.0.2.0/24",
    "192.0.2.5",
    "2001:db8::/64",
    "198.51.100.1-198.51.100.9",
    "90s",
    "-3s",
    "0s",
    "64512:100",
    "large:1:2:3",
    "no-export",
    "In",
    "Exists",
    "",
    "name",
    "1:2:3",
    "x/y",
];

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        (0u32..70000).prop_map(|n| json!(n)),
        prop::sample::select(&SCALARS[..]).prop_map(|s| json!(s)),
        "[a-z0-9:./ -]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(&FIELDS[..]), inner), 0..4).prop_map(
                |kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            ),
        ]
    })
}

fn document() -> impl Strategy<Value = Value> {
    (prop::sample::select(&KINDS[..]), "[a-z]{1,3}", prop::collection::vec((prop::sample::select(&FIELDS[..]), value()), 0..6))
        .prop_map(|((api, kind), name, fields)| {
            let spec: Map<String, Value> = fields.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
            json!({"apiVersion": api, "kind": kind, "metadata": {"name": name}, "spec": spec, "type": "kubernetes.io/basic-auth"})
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,300}") {
        check(&text);
    }

    #[test]
    fn yaml_like_text_never_panics(text in "([a-zA-Z:{}\\[\\]\\-#&*!|>'\", \n]|  ){0,200}") {
        check(&text);
    }

    #[test]
    fn random_resources_never_panic(docs in prop::collection::vec(document(), 1..6)) {
        // JSON is YAML, so each document is written as a JSON line.
        let text: String = docs.iter().map(|d| format!("---\n{d}\n")).collect();
        check(&text);
    }

    #[test]
    fn random_legacy_configs_never_panic(pools in prop::collection::vec(value(), 0..3), peers in prop::collection::vec(value(), 0..3), protocol in prop::sample::select(&["layer2", "bgp", "l2", ""][..])) {
        let pools: Vec<Value> = pools.into_iter().enumerate().map(|(i, extra)| {
            json!({"name": format!("p{i}"), "protocol": protocol, "addresses": [extra]})
        }).collect();
        let config = json!({"address-pools": pools, "peers": peers}).to_string();
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "config"}, "data": {"config": config}});
        check(&cm.to_string());
    }
}
