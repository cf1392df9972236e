//! MetalLB's CRDs leave `spec` optional for every kind but IPAddressPool, and its docs'
//! commonest objects have none (an L2Advertisement or BGPAdvertisement for every pool, a
//! BFDProfile of defaults). Such an object reads as one with `spec: {}`, with the same
//! defaults, never as an error that would fail every list of its kind.

use ironlb_api::{v1beta1, v1beta2};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

fn object(kind: &str, version: &str, spec: Option<Value>) -> Value {
    let mut object = json!({"apiVersion": format!("metallb.io/{version}"), "kind": kind,
                            "metadata": {"name": "x", "namespace": "metallb-system"}});
    if let Some(spec) = spec {
        object["spec"] = spec;
    }
    object
}

/// `kind` without a spec, and with `spec: null`, reads as it does with `spec: {}`: compared
/// as written back.
fn absent_is_empty<K: DeserializeOwned + serde::Serialize>(kind: &str, version: &str) {
    let read = |spec| {
        let object: K = serde_json::from_value(object(kind, version, spec))
            .unwrap_or_else(|e| panic!("{kind} {version}: {e}"));
        serde_json::to_value(object).unwrap()
    };
    let empty = read(Some(json!({})));
    assert_eq!(read(None), empty, "{kind} {version} without spec");
    assert_eq!(
        read(Some(Value::Null)),
        empty,
        "{kind} {version} with spec: null"
    );
}

#[test]
fn every_kind_with_an_optional_spec_reads_without_one() {
    absent_is_empty::<v1beta1::L2Advertisement>("L2Advertisement", "v1beta1");
    absent_is_empty::<v1beta1::BGPAdvertisement>("BGPAdvertisement", "v1beta1");
    absent_is_empty::<v1beta1::BFDProfile>("BFDProfile", "v1beta1");
    absent_is_empty::<v1beta1::Community>("Community", "v1beta1");
    absent_is_empty::<v1beta1::ServiceL2Status>("ServiceL2Status", "v1beta1");
    absent_is_empty::<v1beta1::ServiceBGPStatus>("ServiceBGPStatus", "v1beta1");
    absent_is_empty::<v1beta1::ConfigurationState>("ConfigurationState", "v1beta1");
}

#[test]
fn an_absent_spec_keeps_the_fields_defaults() {
    let ad: v1beta1::BGPAdvertisement =
        serde_json::from_value(object("BGPAdvertisement", "v1beta1", None)).unwrap();
    assert_eq!(ad.spec.aggregation_length, Some(32));
    assert_eq!(ad.spec.aggregation_length_v6, Some(128));
}

/// A BGPPeer's `spec: {}` does not read (it needs `myASN`, as the API server says), so one
/// without a spec reads with none of its fields, for validation to name the missing one.
#[test]
fn a_peer_without_a_spec_reads_with_no_asn() {
    let v1: v1beta1::BGPPeer = serde_json::from_value(object("BGPPeer", "v1beta1", None)).unwrap();
    assert_eq!(v1.spec.my_asn, 0);
    let v2: v1beta2::BGPPeer = serde_json::from_value(object("BGPPeer", "v1beta2", None)).unwrap();
    assert_eq!((v2.spec.my_asn, v2.spec.peer_address), (0, None));
}

#[test]
fn a_present_spec_reads_as_before() {
    let ad: v1beta1::L2Advertisement = serde_json::from_value(object(
        "L2Advertisement",
        "v1beta1",
        Some(json!({"ipAddressPools": ["lan"], "interfaces": ["eth0"]})),
    ))
    .unwrap();
    assert_eq!(ad.spec.ip_address_pools, ["lan"]);
    assert_eq!(ad.spec.interfaces, ["eth0"]);
    let bad = serde_json::from_value::<v1beta1::L2Advertisement>(object(
        "L2Advertisement",
        "v1beta1",
        Some(json!({"ipAddressPools": "lan"})),
    ));
    assert!(bad.is_err(), "a malformed spec is still an error");
}
