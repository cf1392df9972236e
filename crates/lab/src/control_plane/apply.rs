//! Server-side apply of YAML manifests, as `kubectl apply --server-side` does it: each
//! document's kind is looked up in the API server's discovery, so any kind it serves (CRDs
//! included) can be applied.

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{Scope, pinned_kind};
use serde_json::Value;

/// The documents of a YAML stream, empty ones left out.
pub fn documents(yaml: &str) -> Vec<Value> {
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(yaml).unwrap_or_else(|e| panic!("malformed YAML: {e}"));
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

/// Applies every document of `yaml` under field manager `ironlb-test`, taking ownership of
/// conflicting fields; with `dry_run`, the server validates and admits but stores nothing.
/// Returns the objects as the server answered them.
pub async fn apply_yaml(
    client: &kube::Client,
    yaml: &str,
    dry_run: bool,
) -> Result<Vec<Value>, String> {
    let mut applied = Vec::new();
    for doc in documents(yaml) {
        applied.push(apply_one(client, doc, dry_run).await?);
    }
    Ok(applied)
}

async fn apply_one(client: &kube::Client, doc: Value, dry_run: bool) -> Result<Value, String> {
    let object: DynamicObject =
        serde_json::from_value(doc).map_err(|e| format!("not a Kubernetes object: {e}"))?;
    let types = object
        .types
        .clone()
        .ok_or("a document without apiVersion and kind")?;
    let (group, version) = match types.api_version.split_once('/') {
        Some((g, v)) => (g.to_string(), v.to_string()),
        None => (String::new(), types.api_version.clone()),
    };
    let gvk = GroupVersionKind::gvk(&group, &version, &types.kind);
    let (resource, capabilities) = pinned_kind(client, &gvk)
        .await
        .map_err(|e| format!("{} is not served: {e}", types.kind))?;
    let name = object
        .metadata
        .name
        .clone()
        .ok_or("an object without a name")?;
    let api: Api<DynamicObject> = match (&capabilities.scope, &object.metadata.namespace) {
        (Scope::Namespaced, Some(ns)) => Api::namespaced_with(client.clone(), ns, &resource),
        (Scope::Namespaced, None) => Api::default_namespaced_with(client.clone(), &resource),
        (Scope::Cluster, _) => Api::all_with(client.clone(), &resource),
    };
    let mut params = PatchParams::apply("ironlb-test").force();
    params.dry_run = dry_run;
    let answer = api
        .patch(&name, &params, &Patch::Apply(&object))
        .await
        .map_err(|e| format!("applying {} {name}: {e}", types.kind))?;
    serde_json::to_value(answer).map_err(|e| e.to_string())
}
