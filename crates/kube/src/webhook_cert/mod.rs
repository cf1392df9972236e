//! The webhooks' certificates without cert-manager, kept as MetalLB's controller keeps them:
//! a CA and a serving certificate in one Secret (MetalLB's `metallb-webhook-cert`, which its
//! manifest mounts), made when missing, unusable or near expiry, and the CA bundle written
//! into the ValidatingWebhookConfiguration and the BGPPeer CRD's conversion.
//!
//! Every replica keeps them: each serves the Secret's keys, and the first to find them
//! missing makes them (the others lose the create or the update on its resourceVersion and
//! read the winner's). The Secret, the configuration and the CRD are watched, so a deleted
//! Secret or a re-applied manifest that blanks the bundle is mended within seconds.

mod keys;

pub use keys::{IssueError, Keys, RENEW_BEFORE};

use crate::errors::describe;
use futures::{Stream, StreamExt, stream};
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource};
use std::time::{Duration, SystemTime};
use tokio::sync::watch;

/// MetalLB's names for what carries the CA bundle.
pub const WEBHOOK_CONFIGURATION: &str = "metallb-webhook-configuration";
pub const CONVERTED_CRD: &str = "bgppeers.metallb.io";

/// Where the keys live and whom they are for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub namespace: String,
    pub secret: String,
    /// The names the API server calls the webhooks by: the Service's, and any extra.
    pub names: Vec<String>,
}

impl Settings {
    pub fn new(namespace: &str, secret: &str, service: &str, extra: &[String]) -> Settings {
        let svc = format!("{service}.{namespace}.svc");
        let names = [format!("{svc}.cluster.local"), svc]
            .into_iter()
            .chain(extra.iter().cloned())
            .collect();
        Settings {
            namespace: namespace.to_string(),
            secret: secret.to_string(),
            names,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("{what}: {}", describe(source))]
    Kube {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error(transparent)]
    Issue(#[from] IssueError),
    #[error("Secret {0}: another replica kept replacing it; retrying")]
    Contended(String),
}

fn kube_error(what: impl Into<String>) -> impl FnOnce(kube::Error) -> CertError {
    let what = what.into();
    move |source| CertError::Kube { what, source }
}

/// Usable keys in the Secret, made or replaced when needed.
pub async fn ensure_secret(client: &Client, settings: &Settings) -> Result<Keys, CertError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), &settings.namespace);
    let what = format!("Secret {}/{}", settings.namespace, settings.secret);
    for _ in 0..3 {
        let now = SystemTime::now();
        let existing = api
            .get_opt(&settings.secret)
            .await
            .map_err(kube_error(&what))?;
        let held = existing
            .as_ref()
            .and_then(|s| s.data.as_ref())
            .and_then(Keys::from_secret);
        let why = match &held {
            Some(keys) => match keys.unusable(&settings.names, now) {
                None => return Ok(held.expect("checked")),
                Some(why) => why,
            },
            None => "it holds no certificates yet".to_string(),
        };
        let keys = Keys::issue(&settings.names, now)?;
        let written = match existing {
            Some(mut secret) => {
                secret.data = Some(keys.to_secret());
                api.replace(&settings.secret, &PostParams::default(), &secret)
                    .await
            }
            None => {
                api.create(&PostParams::default(), &new_secret(settings, &keys))
                    .await
            }
        };
        match written {
            Ok(_) => {
                tracing::info!(secret = %what, reason = %why, "made new webhook certificates");
                return Ok(keys);
            }
            // Another replica wrote first: use what it wrote.
            Err(kube::Error::Api(e)) if e.code == 409 => continue,
            Err(e) => return Err(kube_error(&what)(e)),
        }
    }
    Err(CertError::Contended(what))
}

fn new_secret(settings: &Settings, keys: &Keys) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(settings.secret.clone()),
            namespace: Some(settings.namespace.clone()),
            ..ObjectMeta::default()
        },
        data: Some(keys.to_secret()),
        ..Secret::default()
    }
}

/// Writes `ca` as the CA bundle of every webhook of the configuration and of the BGPPeer
/// conversion, where it differs, and says whether it wrote any. Either may be missing
/// (webhooks not registered, CRDs not converted by webhook): there is then nothing to write.
pub async fn publish_bundle(client: &Client, ca: &str) -> Result<bool, CertError> {
    let mut wrote = false;
    let bundle = ByteString(ca.as_bytes().to_vec());
    let configs: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let what = format!("ValidatingWebhookConfiguration {WEBHOOK_CONFIGURATION}");
    let config = configs
        .get_opt(WEBHOOK_CONFIGURATION)
        .await
        .map_err(kube_error(&what))?;
    if let Some(mut config) = config {
        let hooks = config.webhooks.iter_mut().flatten();
        let stale: Vec<_> = hooks
            .filter(|w| w.client_config.ca_bundle.as_ref() != Some(&bundle))
            .collect();
        if !stale.is_empty() {
            for hook in stale {
                hook.client_config.ca_bundle = Some(bundle.clone());
            }
            configs
                .replace(WEBHOOK_CONFIGURATION, &PostParams::default(), &config)
                .await
                .map_err(kube_error(&what))?;
            tracing::info!(
                configuration = WEBHOOK_CONFIGURATION,
                "wrote the CA bundle into the webhooks"
            );
            wrote = true;
        }
    }
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let what = format!("CustomResourceDefinition {CONVERTED_CRD}");
    let crd = crds
        .get_opt(CONVERTED_CRD)
        .await
        .map_err(kube_error(&what))?;
    let conversion = crd
        .and_then(|c| c.spec.conversion)
        .filter(|c| c.strategy == "Webhook");
    let current = conversion
        .and_then(|c| c.webhook)
        .and_then(|w| w.client_config)
        .map(|c| c.ca_bundle);
    if let Some(current) = current
        && current.as_ref() != Some(&bundle)
    {
        let patch = serde_json::json!({"spec": {"conversion": {"webhook": {"clientConfig": {"caBundle": bundle}}}}});
        crds.patch(
            CONVERTED_CRD,
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .map_err(kube_error(&what))?;
        tracing::info!(
            crd = CONVERTED_CRD,
            "wrote the CA bundle into the BGPPeer conversion"
        );
        wrote = true;
    }
    Ok(wrote)
}

/// Whether the API server could call the webhooks when last asked; `None` while unknown.
pub type Reach = Option<Result<(), String>>;

/// Asks the API server to call the webhooks, through the one request the controller's roles
/// allow that goes through them: BGPPeers read at v1beta1 are converted from the stored
/// v1beta2 by `/convert`, over the same Service and under the same CA bundle as admission.
/// With no BGPPeer there is nothing to convert, and nothing is learned.
pub async fn probe(client: &Client, namespace: &str) -> Reach {
    let api: Api<api::v1beta1::BGPPeer> = Api::namespaced(client.clone(), namespace);
    match api.list(&ListParams::default().limit(1)).await {
        Ok(list) if list.items.is_empty() => None,
        Ok(_) => Some(Ok(())),
        Err(kube::Error::Api(e)) if e.message.contains("conversion webhook") => {
            Some(Err(e.message))
        }
        Err(_) => None,
    }
}

/// Keeps the keys usable and the bundle published for as long as it runs, sending each new
/// set of keys to `serving`, and after each pass whether the API server reaches the webhooks
/// to `reach`.
pub async fn keep(
    client: Client,
    settings: Settings,
    serving: watch::Sender<Option<Keys>>,
    reach: watch::Sender<Reach>,
) {
    let mut changes = changes(&client, &settings);
    loop {
        let kept = match ensure_secret(&client, &settings).await {
            Ok(keys) => publish_bundle(&client, &keys.ca_crt)
                .await
                .map(|wrote| (keys, wrote)),
            Err(e) => Err(e),
        };
        match kept {
            Ok((keys, wrote)) => {
                serving.send_if_modified(|held| {
                    let changed = held.as_ref() != Some(&keys);
                    *held = Some(keys);
                    changed
                });
                if wrote {
                    // The API server takes a moment to load a bundle it was just given.
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
                reach.send_replace(probe(&client, &settings.namespace).await);
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot keep the webhook certificates; retrying");
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
        // Each minute even when nothing changes: renewal is due months ahead, but a broken
        // path to the webhooks should be seen soon.
        let minute = tokio::time::sleep(Duration::from_secs(60));
        tokio::select! {
            _ = changes.next() => {}
            () = minute => {}
        }
    }
}

/// A `()` whenever the Secret, the webhook configuration or the BGPPeer CRD changes.
fn changes(
    client: &Client,
    settings: &Settings,
) -> std::pin::Pin<Box<dyn Stream<Item = ()> + Send>> {
    fn named<K>(api: Api<K>, name: &str) -> impl Stream<Item = ()> + Send + use<K>
    where
        K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
    {
        let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        watcher(api, config).default_backoff().map(|_| ())
    }
    Box::pin(stream::select_all([
        named::<Secret>(
            Api::namespaced(client.clone(), &settings.namespace),
            &settings.secret,
        )
        .boxed(),
        named::<ValidatingWebhookConfiguration>(Api::all(client.clone()), WEBHOOK_CONFIGURATION)
            .boxed(),
        named::<CustomResourceDefinition>(Api::all(client.clone()), CONVERTED_CRD).boxed(),
    ]))
}
