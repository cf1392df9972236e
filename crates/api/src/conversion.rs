//! BGPPeer between v1beta1 and v1beta2, as the API server asks the conversion webhook for it.
//!
//! The two versions spell their shared fields alike (v1beta1's node selectors have the shape
//! of a LabelSelector), so conversion works on the JSON and carries every field it does not
//! know through untouched. What v1beta1 cannot hold (`dynamicASN`, `passwordSecret`,
//! `enableGracefulRestart`, ...) is kept in an annotation, the way Kubernetes' own
//! conversions keep such data, and restored on the way back, so either round trip is
//! lossless.

use serde_json::{Map, Value};

/// Where a v1beta1 BGPPeer keeps the v1beta2 fields it has no place for, as a JSON object.
pub const V1BETA2_FIELDS_ANNOTATION: &str = "ironlb.dev/v1beta2-fields";

/// The spec fields v1beta1 declares.
const V1BETA1_FIELDS: [&str; 12] = [
    "myASN",
    "peerASN",
    "peerAddress",
    "sourceAddress",
    "peerPort",
    "holdTime",
    "keepaliveTime",
    "routerID",
    "nodeSelectors",
    "password",
    "bfdProfile",
    "ebgpMultiHop",
];

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConversionError {
    #[error(
        "cannot convert {kind} to {api_version}: ironlb converts BGPPeer between metallb.io/v1beta1 and metallb.io/v1beta2 only"
    )]
    Unsupported { kind: String, api_version: String },
    #[error(
        "BGPPeer {name}: annotation {V1BETA2_FIELDS_ANNOTATION} is not a JSON object ({reason}); remove it or restore it from the v1beta2 object"
    )]
    Annotation { name: String, reason: String },
}

/// `object` (a BGPPeer of either version) as `api_version`.
pub fn convert(object: &Value, api_version: &str) -> Result<Value, ConversionError> {
    let from = object["apiVersion"].as_str().unwrap_or_default();
    let unsupported = || ConversionError::Unsupported {
        kind: format!("{} {from}", object["kind"].as_str().unwrap_or("object")),
        api_version: api_version.to_string(),
    };
    if object["kind"] != "BGPPeer" {
        return Err(unsupported());
    }
    let mut converted = object.clone();
    match (from, api_version) {
        (a, b) if a == b => {}
        ("metallb.io/v1beta2", "metallb.io/v1beta1") => to_v1beta1(&mut converted),
        ("metallb.io/v1beta1", "metallb.io/v1beta2") => to_v1beta2(&mut converted)?,
        _ => return Err(unsupported()),
    }
    converted["apiVersion"] = Value::from(api_version);
    Ok(converted)
}

fn to_v1beta1(object: &mut Value) {
    let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let moved: Vec<String> = spec
        .keys()
        .filter(|k| !V1BETA1_FIELDS.contains(&k.as_str()))
        .cloned()
        .collect();
    let extra: Map<String, Value> = moved
        .iter()
        .filter_map(|k| spec.remove_entry(k))
        // v1beta2's flags mean the same absent and false (its defaults set them false), so
        // an object v1beta2 only defaulted carries nothing over.
        .filter(|(_, v)| !matches!(v, Value::Bool(false) | Value::Null))
        .collect();
    if extra.is_empty() {
        return;
    }
    let annotations = object["metadata"].as_object_mut().map(|m| {
        m.entry("annotations")
            .or_insert_with(|| Value::Object(Map::new()))
    });
    if let Some(Value::Object(annotations)) = annotations {
        let text = Value::Object(extra).to_string();
        annotations.insert(V1BETA2_FIELDS_ANNOTATION.into(), Value::from(text));
    }
}

fn to_v1beta2(object: &mut Value) -> Result<(), ConversionError> {
    let name = object["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let Some(annotations) = object["metadata"]
        .get_mut("annotations")
        .and_then(Value::as_object_mut)
    else {
        return Ok(());
    };
    let Some(kept) = annotations.remove(V1BETA2_FIELDS_ANNOTATION) else {
        return Ok(());
    };
    let empty = annotations.is_empty();
    let fail = |reason: String| ConversionError::Annotation {
        name: name.clone(),
        reason,
    };
    let text = kept.as_str().ok_or_else(|| fail("not a string".into()))?;
    let Value::Object(extra) = serde_json::from_str(text).map_err(|e| fail(e.to_string()))? else {
        return Err(fail("not an object".into()));
    };
    if empty {
        object["metadata"]
            .as_object_mut()
            .map(|m| m.remove("annotations"));
    }
    let spec = object
        .as_object_mut()
        .map(|o| o.entry("spec").or_insert_with(|| Value::Object(Map::new())));
    if let Some(Value::Object(spec)) = spec {
        for (field, value) in extra {
            // A field v1beta1 holds itself was written there since, and wins.
            spec.entry(field).or_insert(value);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn peer(version: &str, spec: Value) -> Value {
        json!({"apiVersion": format!("metallb.io/{version}"), "kind": "BGPPeer",
               "metadata": {"name": "gw", "namespace": "metallb-system", "labels": {"a": "b"}},
               "spec": spec, "status": {}})
    }

    #[test]
    fn v1beta2_round_trips_through_v1beta1_field_by_field() {
        let full = peer(
            "v1beta2",
            json!({"myASN": 64512, "dynamicASN": "external", "peerAddress": "192.0.2.1",
                   "passwordSecret": {"name": "s", "namespace": "metallb-system"},
                   "enableGracefulRestart": true, "connectTime": "10s", "vrf": "red",
                   "nodeSelectors": [{"matchLabels": {"rack": "1"}}], "holdTime": "90s"}),
        );
        let old = convert(&full, "metallb.io/v1beta1").unwrap();
        assert_eq!(old["spec"]["myASN"], 64512);
        assert_eq!(old["spec"]["nodeSelectors"], full["spec"]["nodeSelectors"]);
        assert!(old["spec"]["dynamicASN"].is_null(), "{old}");
        assert!(
            old["metadata"]["annotations"][V1BETA2_FIELDS_ANNOTATION]
                .as_str()
                .unwrap()
                .contains("enableGracefulRestart")
        );
        assert_eq!(convert(&old, "metallb.io/v1beta2").unwrap(), full);
    }

    #[test]
    fn v1beta1_round_trips_through_v1beta2_unchanged() {
        let old = peer(
            "v1beta1",
            json!({"myASN": 64512, "peerASN": 64513, "peerAddress": "192.0.2.1",
                   "nodeSelectors": [{"matchExpressions": [{"key": "k", "operator": "In", "values": ["v"]}]}],
                   "bfdProfile": "fast", "ebgpMultiHop": true}),
        );
        let new = convert(&old, "metallb.io/v1beta2").unwrap();
        assert_eq!(new["spec"], old["spec"]);
        assert_eq!(new["apiVersion"], "metallb.io/v1beta2");
        assert_eq!(convert(&new, "metallb.io/v1beta1").unwrap(), old);
    }

    #[test]
    fn v1beta2_defaults_leave_no_annotation() {
        let defaulted = peer(
            "v1beta2",
            json!({"myASN": 1, "disableMP": false, "dualStackAddressFamily": false}),
        );
        let old = convert(&defaulted, "metallb.io/v1beta1").unwrap();
        assert!(old["metadata"]["annotations"].is_null(), "{old}");
    }

    #[test]
    fn a_field_set_in_v1beta1_since_wins_over_the_kept_one() {
        let mut old = peer("v1beta1", json!({"myASN": 1, "password": "new"}));
        old["metadata"]["annotations"] =
            json!({V1BETA2_FIELDS_ANNOTATION: r#"{"password":"old","vrf":"red"}"#, "other": "x"});
        let new = convert(&old, "metallb.io/v1beta2").unwrap();
        assert_eq!(new["spec"]["password"], "new");
        assert_eq!(new["spec"]["vrf"], "red");
        assert_eq!(new["metadata"]["annotations"], json!({"other": "x"}));
    }

    #[test]
    fn other_kinds_and_versions_and_broken_annotations_are_refused() {
        let pool = json!({"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool", "metadata": {"name": "p"}});
        let e = convert(&pool, "metallb.io/v1beta2").unwrap_err();
        assert!(e.to_string().contains("IPAddressPool"), "{e}");
        let v3 = convert(&peer("v1beta2", json!({})), "metallb.io/v3").unwrap_err();
        assert!(v3.to_string().contains("metallb.io/v3"), "{v3}");
        let mut broken = peer("v1beta1", json!({}));
        broken["metadata"]["annotations"] = json!({V1BETA2_FIELDS_ANNOTATION: "{"});
        let e = convert(&broken, "metallb.io/v1beta2").unwrap_err();
        assert!(e.to_string().contains("BGPPeer gw"), "{e}");
    }
}
