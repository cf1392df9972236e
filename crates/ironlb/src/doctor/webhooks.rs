//! `ironlb doctor --webhooks`: whether the API server can call the controller's webhooks, and
//! if not, why, from what the API server itself answers. Webhooks that cannot be called make
//! every `kubectl apply` of a metallb.io object fail ("failed calling webhook"), MetalLB's
//! most common support question.

use super::{Finding, Level, finding};
use ironlb_kube::webhook_cert::{CONVERTED_CRD, WEBHOOK_CONFIGURATION};
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};

/// The checks, in the order a call travels: registered, trusted, answered.
pub async fn check(client: &kube::Client, namespace: &str, secret: &str) -> Vec<Finding> {
    let mut out = Vec::new();
    let configs: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let config = match configs.get_opt(WEBHOOK_CONFIGURATION).await {
        Ok(Some(config)) => config,
        Ok(None) => {
            out.push(finding(
                Level::Warn,
                format!("webhooks: no ValidatingWebhookConfiguration {WEBHOOK_CONFIGURATION}; bad objects are only reported after the fact, in ConfigurationState"),
                Some("apply deploy/controller.yaml (or MetalLB's manifest), which registers them"),
            ));
            return out;
        }
        Err(e) => return vec![unreadable("the webhook configuration", &e)],
    };
    let bundles: Vec<Vec<u8>> = config
        .webhooks
        .iter()
        .flatten()
        .map(|w| {
            w.client_config
                .ca_bundle
                .clone()
                .map(|b| b.0)
                .unwrap_or_default()
        })
        .collect();
    let ca = Api::<Secret>::namespaced(client.clone(), namespace)
        .get_opt(secret)
        .await
        .ok()
        .flatten()
        .and_then(|s| s.data)
        .and_then(|d| d.get("ca.crt").map(|b| b.0.clone()));
    out.extend(trust(&bundles, ca.as_deref(), namespace, secret));
    out.extend(conversion(client).await);
    out.push(answered(client, namespace).await);
    out
}

/// Whether the API server will trust the serving certificate: every webhook carries the CA
/// the controller keeps. Pure.
pub fn trust(
    bundles: &[Vec<u8>],
    ca: Option<&[u8]>,
    namespace: &str,
    secret: &str,
) -> Vec<Finding> {
    if bundles.iter().any(Vec::is_empty) {
        return vec![finding(
            Level::Fail,
            format!(
                "webhooks: {WEBHOOK_CONFIGURATION} has a webhook without a CA bundle, so the API server cannot trust the controller"
            ),
            Some(
                "the controller writes it once it runs: check its log for \"cannot keep the webhook certificates\" (it needs get and update on the configuration)",
            ),
        )];
    }
    match ca {
        Some(ca) if bundles.iter().all(|b| b == ca) => vec![finding(
            Level::Ok,
            format!("webhooks: every webhook trusts the CA in Secret {namespace}/{secret}"),
            None,
        )],
        Some(_) => vec![finding(
            Level::Fail,
            format!(
                "webhooks: the CA bundle in {WEBHOOK_CONFIGURATION} is not the CA in Secret {namespace}/{secret}"
            ),
            Some(
                "if nothing else (cert-manager) manages them, restart a controller replica: it writes its CA back within seconds",
            ),
        )],
        None => vec![finding(
            Level::Warn,
            format!(
                "webhooks: Secret {namespace}/{secret} holds no ca.crt; the bundle comes from elsewhere (--disable-cert-rotation)"
            ),
            None,
        )],
    }
}

async fn conversion(client: &kube::Client) -> Option<Finding> {
    let crd = Api::<CustomResourceDefinition>::all(client.clone())
        .get_opt(CONVERTED_CRD)
        .await
        .ok()
        .flatten()?;
    let webhook = crd
        .spec
        .conversion
        .filter(|c| c.strategy == "Webhook")?
        .webhook?;
    let bundle = webhook.client_config.and_then(|c| c.ca_bundle);
    bundle.is_none_or(|b| b.0.is_empty()).then(|| {
        finding(
            Level::Fail,
            format!("webhooks: {CONVERTED_CRD} converts by webhook but has no CA bundle: v1beta1 BGPPeers cannot be read or written"),
            Some("the controller writes it once it runs (it needs get and patch on the CRD)"),
        )
    })
}

/// A server-side dry run of a pool: the API server calls the webhook as for a real one and
/// stores nothing. Refused by ironlb still means the call arrived.
async fn answered(client: &kube::Client, namespace: &str) -> Finding {
    let gvk = GroupVersionKind::gvk("metallb.io", "v1beta1", "IPAddressPool");
    let resource = ApiResource::from_gvk(&gvk);
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
    let probe: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
        "metadata": {"name": "ironlb-doctor-probe", "namespace": namespace},
        "spec": {"addresses": ["192.0.2.255/32"], "autoAssign": false},
    }))
    .expect("a pool");
    let params = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let answered = || {
        let what = "webhooks: the API server called them and they answered";
        finding(Level::Ok, what.into(), None)
    };
    match api.create(&params, &probe).await {
        Ok(_) => answered(),
        Err(kube::Error::Api(e)) if e.message.contains("denied the request") => answered(),
        Err(kube::Error::Api(e)) => call_failure(&e.message),
        Err(e) => unreadable("a dry-run IPAddressPool", &e),
    }
}

/// Why the API server could not call the webhook, from its own words, with the fix. Pure.
pub fn call_failure(message: &str) -> Finding {
    finding(
        Level::Fail,
        format!(
            "webhooks: the API server cannot call them, so every apply of a metallb.io object fails: {message}"
        ),
        Some(crate::webhook::fix_for(message)),
    )
}

fn unreadable(what: &str, e: &kube::Error) -> Finding {
    finding(
        Level::Warn,
        format!(
            "webhooks: cannot read {what}: {}",
            ironlb_kube::errors::describe(e)
        ),
        Some("run doctor with a kubeconfig that may read cluster-scoped objects"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_call_is_a_failure_with_the_api_servers_words() {
        let message = "dial tcp 127.0.0.1:9: connect: connection refused";
        let f = call_failure(message);
        assert_eq!(f.level, Level::Fail);
        assert!(f.what.contains(message), "{f}");
        assert!(f.fix.is_some(), "{f}");
    }

    #[test]
    fn trust_needs_every_bundle_to_be_the_kept_ca() {
        let ca = b"CA".to_vec();
        let level = |bundles: &[Vec<u8>], ca: Option<&[u8]>| {
            trust(bundles, ca, "metallb-system", "metallb-webhook-cert")[0].level
        };
        assert_eq!(level(&[ca.clone(), ca.clone()], Some(&ca)), Level::Ok);
        assert_eq!(
            level(&[ca.clone(), b"other".to_vec()], Some(&ca)),
            Level::Fail
        );
        assert_eq!(level(&[ca.clone(), Vec::new()], Some(&ca)), Level::Fail);
        assert_eq!(level(std::slice::from_ref(&ca), None), Level::Warn);
    }
}
