//! Compares two sets of CRDs the way the API server sees them: names, versions, storage,
//! subresources, printer columns and every schema keyword that changes what is accepted,
//! pruned, defaulted or how server-side apply merges. Descriptions and CEL messages are
//! prose and are left out.
//!
//! Used to hold ironlb's generated CRDs against MetalLB's published ones: point
//! `METALLB_CRDS` at MetalLB's `config/crd/bases` and run the golden tests.

use serde_json::Value;

/// Keywords whose difference the API server acts on.
const KEYWORDS: &[&str] = &[
    "type",
    "format",
    "enum",
    "pattern",
    "default",
    "nullable",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-int-or-string",
    "x-kubernetes-embedded-resource",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type",
];

/// Every difference between `theirs` and `ours`, one line each, keyed by CRD name.
pub fn differences(theirs: &[Value], ours: &[Value]) -> Vec<String> {
    let mut out = Vec::new();
    for crd in theirs {
        let name = crd["metadata"]["name"].as_str().unwrap_or_default();
        match ours.iter().find(|c| c["metadata"]["name"] == name) {
            Some(mine) => crd_differences(name, crd, mine, &mut out),
            None => out.push(format!("{name}: not generated")),
        }
    }
    out
}

fn crd_differences(name: &str, theirs: &Value, ours: &Value, out: &mut Vec<String>) {
    for key in ["group", "scope", "names"] {
        same(
            &format!("{name} {key}"),
            &theirs["spec"][key],
            &ours["spec"][key],
            out,
        );
    }
    let versions = |crd: &Value| {
        crd["spec"]["versions"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    let (theirs, ours) = (versions(theirs), versions(ours));
    for version in &theirs {
        let v = version["name"].as_str().unwrap_or_default();
        let Some(mine) = ours.iter().find(|o| o["name"] == v) else {
            out.push(format!("{name} {v}: not served"));
            continue;
        };
        let at = format!("{name} {v}");
        for key in ["served", "storage", "deprecated", "subresources"] {
            same(&format!("{at} {key}"), &version[key], &mine[key], out);
        }
        let columns = |v: &Value| without_prose(&v["additionalPrinterColumns"]);
        same(
            &format!("{at} printer columns"),
            &columns(version),
            &columns(mine),
            out,
        );
        let schema = |v: &Value| v["schema"]["openAPIV3Schema"].clone();
        schema_differences(&at, &schema(version), &schema(mine), out);
    }
    for version in &ours {
        if !theirs.iter().any(|t| t["name"] == version["name"]) {
            out.push(format!("{name} {}: only ours serves it", version["name"]));
        }
    }
}

fn schema_differences(at: &str, theirs: &Value, ours: &Value, out: &mut Vec<String>) {
    for key in KEYWORDS {
        same(&format!("{at} {key}"), &theirs[key], &ours[key], out);
    }
    same(
        &format!("{at} required"),
        &sorted(&theirs["required"]),
        &sorted(&ours["required"]),
        out,
    );
    let rules = |s: &Value| -> Vec<Value> {
        let rules = s["x-kubernetes-validations"]
            .as_array()
            .into_iter()
            .flatten();
        rules.map(|r| r["rule"].clone()).collect()
    };
    same(
        &format!("{at} CEL rules"),
        &Value::from(rules(theirs)),
        &Value::from(rules(ours)),
        out,
    );
    let empty = serde_json::Map::new();
    let properties = |s: &Value| {
        s["properties"]
            .as_object()
            .cloned()
            .unwrap_or_else(|| empty.clone())
    };
    let (theirs_p, ours_p) = (properties(theirs), properties(ours));
    for (field, schema) in &theirs_p {
        match ours_p.get(field) {
            Some(mine) => schema_differences(&format!("{at}.{field}"), schema, mine, out),
            None => out.push(format!("{at}.{field}: only theirs declares it")),
        }
    }
    for field in ours_p.keys().filter(|f| !theirs_p.contains_key(*f)) {
        let required = ours["required"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|r| r == field);
        out.push(format!(
            "{at}.{field}: only ours declares it (required: {required})"
        ));
    }
    for child in ["items", "additionalProperties"] {
        if theirs[child].is_object() || ours[child].is_object() {
            schema_differences(&format!("{at}.{child}"), &theirs[child], &ours[child], out);
        }
    }
}

/// Equal as numbers when both are numbers: YAML writers disagree on `1` and `1.0`.
fn same(at: &str, theirs: &Value, ours: &Value, out: &mut Vec<String>) {
    let equal = match (theirs.as_f64(), ours.as_f64()) {
        (Some(a), Some(b)) => a == b,
        _ => theirs == ours,
    };
    if !equal {
        out.push(format!("{at}: theirs {theirs}, ours {ours}"));
    }
}

fn sorted(list: &Value) -> Value {
    let mut items: Vec<String> = list
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    items.sort();
    items.into()
}

fn without_prose(columns: &Value) -> Value {
    let columns = columns.as_array().into_iter().flatten();
    columns
        .map(|c| {
            let mut c = c.clone();
            if let Some(c) = c.as_object_mut() {
                c.remove("description");
            }
            c
        })
        .collect::<Vec<_>>()
        .into()
}
