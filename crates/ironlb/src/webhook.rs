//! The controller's webhooks, where MetalLB serves them (HTTPS on 9443, MetalLB's paths), so
//! MetalLB's ValidatingWebhookConfiguration, Service and BGPPeer CRD work unchanged:
//! admission of metallb.io objects and BGPPeer conversion. Every replica serves them, leader
//! or not, because the API server calls whichever the Service picks.
//!
//! The TLS keys are kept in a Secret (`ironlb_kube::webhook_cert`), or, with
//! `--disable-cert-rotation`, read from `--cert-dir` as a cert-manager or a person mounts
//! them, and swapped in without a restart either way.

use anyhow::{Context, Result};
use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use ironlb_kube::admission;
use ironlb_kube::metrics::ControllerMetrics;
use ironlb_kube::webhook_cert::{self, Keys, Settings};
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};
use kube::core::conversion::{ConversionRequest, ConversionResponse, ConversionReview};
use kube::core::response::Status;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::watch;
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;

/// MetalLB's `--webhook-mode`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Allocate and serve the webhooks.
    Enabled,
    /// Allocate only.
    Disabled,
    /// Serve the webhooks only: no allocation, no lease.
    Onlywebhook,
}

/// The controller's webhook flags, MetalLB's names and defaults.
#[derive(clap::Args, Clone, Debug)]
pub struct WebhookArgs {
    #[arg(long, value_enum, default_value_t = Mode::Enabled)]
    pub webhook_mode: Mode,
    /// Where the webhooks listen (MetalLB's port is 9443, the Service's targetPort).
    #[arg(long, default_value = "0.0.0.0:9443")]
    pub webhook_addr: SocketAddr,
    /// The Secret the keys are kept in.
    #[arg(long, default_value = "metallb-webhook-cert")]
    pub webhook_secret: String,
    /// The Service the API server calls the webhooks through: the certificate's name.
    #[arg(long, default_value = "metallb-webhook-service")]
    pub cert_service_name: String,
    /// Where `tls.crt` and `tls.key` are mounted when rotation is off.
    #[arg(long, default_value = "/tmp/k8s-webhook-server/serving-certs")]
    pub cert_dir: PathBuf,
    /// Serve the keys in --cert-dir instead of keeping them in the Secret.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set, default_value_t = false)]
    pub disable_cert_rotation: bool,
    /// More names or addresses for the certificate, for an API server that calls the
    /// webhooks by URL rather than through the Service.
    #[arg(long)]
    pub webhook_host: Vec<String>,
    #[arg(long, hide = true, num_args = 0..=1, default_missing_value = "true")]
    webhook_http2: Option<String>,
}

impl WebhookArgs {
    pub fn log_ignored(&self) {
        if self.webhook_http2.is_some() {
            tracing::info!(
                setting = "--webhook-http2",
                reason = "the webhooks speak HTTP/1.1, MetalLB's default",
                "MetalLB setting ignored"
            );
        }
    }
}

#[derive(Clone)]
struct Shared {
    client: kube::Client,
    namespace: String,
}

/// Serves the webhooks until the process ends.
pub async fn serve(
    client: kube::Client,
    namespace: String,
    args: &WebhookArgs,
    metrics: Arc<ControllerMetrics>,
) -> Result<()> {
    let (keys_tx, keys) = watch::channel(None);
    if args.disable_cert_rotation {
        tokio::spawn(read_mounted(args.cert_dir.clone(), keys_tx));
    } else {
        let settings = Settings::new(
            &namespace,
            &args.webhook_secret,
            &args.cert_service_name,
            &args.webhook_host,
        );
        let (reach_tx, reach) = watch::channel(None);
        tokio::spawn(webhook_cert::keep(
            client.clone(),
            settings,
            keys_tx,
            reach_tx,
        ));
        tokio::spawn(report(reach, metrics, client.clone(), namespace.clone()));
    }
    let serving = Arc::new(Serving::default());
    tokio::spawn(serving.clone().follow(keys));
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let tls = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(serving);
    let routes = admission::PATHS
        .iter()
        .fold(Router::new(), |r, (_, path)| r.route(path, post(admit)))
        .route("/convert", post(convert))
        .with_state(Shared { client, namespace });
    let addr = args.webhook_addr;
    let tcp = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the webhooks' {addr}"))?;
    tracing::info!(%addr, "serving the admission and conversion webhooks over HTTPS");
    let listener = crate::secure_metrics::TlsListener {
        tcp,
        tls: tokio_rustls::TlsAcceptor::from(Arc::new(tls)),
    };
    axum::serve(listener, routes)
        .await
        .context("serving the webhooks")
}

/// Says when the API server stops or starts reaching the webhooks: in the log, once per
/// change, with the API server's own words and the fix; in `ironlb_webhooks_reachable`; and
/// as condition `webhooksReachable` of `ConfigurationState/controller`, written again until
/// it is stored.
async fn report(
    mut reach: watch::Receiver<webhook_cert::Reach>,
    metrics: Arc<ControllerMetrics>,
    client: kube::Client,
    namespace: String,
) {
    let mut said: Option<bool> = None;
    let mut stored: Option<bool> = None;
    while reach.changed().await.is_ok() {
        let now = reach.borrow_and_update().clone();
        metrics.set_webhooks_reachable(now.as_ref().map(Result::is_ok));
        let Some(result) = now else { continue };
        let up = result.is_ok();
        if said != Some(up) {
            match &result {
                Ok(()) => tracing::info!("the API server calls the webhooks"),
                Err(message) => {
                    tracing::error!(error = %message, fix = fix_for(message), "the API server cannot call the webhooks, so every apply of a metallb.io object fails")
                }
            }
            said = Some(up);
        }
        if stored != Some(up) {
            let condition = reachable_condition(&result);
            let who = ironlb_kube::writer::Reconciler::webhooks();
            match ironlb_kube::writer::condition(&client, &namespace, &who, &condition).await {
                Ok(()) => stored = Some(up),
                // The reconciler has not made the object yet; the next probe tries again.
                Err(e) => tracing::debug!(error = %e, "webhook condition not written yet"),
            }
        }
    }
}

fn reachable_condition(
    result: &Result<(), String>,
) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    let (status, reason, message) = match result {
        Ok(()) => ("True", "Called", String::new()),
        Err(message) => (
            "False",
            "CallFailed",
            format!("{message}; fix: {}", fix_for(message)),
        ),
    };
    k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
        type_: "webhooksReachable".into(),
        status: status.into(),
        reason: reason.into(),
        message,
        last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::now(),
        ),
        observed_generation: None,
    }
}

/// What to do about the API server's reason for not reaching a webhook.
pub fn fix_for(message: &str) -> &'static str {
    if message.contains("no endpoints available") {
        "no controller Pod is Ready behind the webhook Service: kubectl -n metallb-system get pods,endpoints"
    } else if message.contains("connection refused") {
        "nothing listens where the webhook points: check that a controller runs with webhooks enabled (--webhook-mode) on the Service's targetPort (9443)"
    } else if message.contains("x509") || message.contains("certificate") {
        "the API server does not trust the controller's certificate: restart a controller replica so it writes its CA bundle again, or delete Secret metallb-webhook-cert to make new keys"
    } else if message.contains("deadline exceeded") || message.contains("timeout") {
        "the call timed out: a NetworkPolicy or firewall may block the API server from the controller's port 9443"
    } else if message.contains("not found") && message.contains("service") {
        "the webhook Service is missing: apply the manifest's metallb-webhook-service"
    } else {
        "read the API server's message above; the controller's log shows the calls it received"
    }
}

/// The certificate the TLS handshakes present; none until the first keys arrive, so the
/// API server's calls fail (and it says so) rather than meet a wrong certificate.
#[derive(Debug, Default)]
struct Serving(RwLock<Option<Arc<CertifiedKey>>>);

impl ResolvesServerCert for Serving {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.read().ok()?.clone()
    }
}

impl Serving {
    async fn follow(self: Arc<Self>, mut keys: watch::Receiver<Option<Keys>>) {
        while keys.changed().await.is_ok() {
            let Some(held) = keys.borrow_and_update().clone() else {
                continue;
            };
            match certified(&held.tls_crt, &held.tls_key) {
                Ok(key) => {
                    if let Ok(mut slot) = self.0.write() {
                        *slot = Some(Arc::new(key));
                    }
                    tracing::info!("the webhooks serve a new certificate");
                }
                Err(e) => tracing::warn!(
                    error = format!("{e:#}"),
                    "unusable webhook certificate; keeping the last one"
                ),
            }
        }
    }
}

fn certified(cert: &str, key: &str) -> Result<CertifiedKey> {
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_slice_iter(cert.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .context("tls.crt")?;
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).context("tls.key")?;
    let provider = tokio_rustls::rustls::crypto::ring::default_provider();
    CertifiedKey::from_der(chain, key, &provider).context("tls.crt and tls.key do not match")
}

/// Mounted keys, read again every 10 s: the kubelet updates a Secret volume in place.
async fn read_mounted(dir: PathBuf, keys: watch::Sender<Option<Keys>>) {
    loop {
        match mounted(&dir) {
            Ok(read) => {
                keys.send_if_modified(|held| {
                    let changed = held.as_ref() != Some(&read);
                    *held = Some(read);
                    changed
                });
            }
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = format!("{e:#}"), "cannot read the webhook certificate")
            }
        }
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
}

fn mounted(dir: &Path) -> Result<Keys> {
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
    };
    Ok(Keys {
        tls_crt: read("tls.crt")?,
        tls_key: read("tls.key")?,
        // Only the serving pair is served; whoever mounted it publishes the CA.
        ca_crt: String::new(),
        ca_key: String::new(),
    })
}

async fn admit(
    State(shared): State<Shared>,
    Json(review): Json<AdmissionReview<DynamicObject>>,
) -> Json<AdmissionReview<DynamicObject>> {
    let request: AdmissionRequest<DynamicObject> = match review.try_into() {
        Ok(request) => request,
        Err(e) => return Json(AdmissionResponse::invalid(e).into_review()),
    };
    let response = match admission::current(&shared.client, &shared.namespace).await {
        Ok(current) => admission::review(&request, &shared.namespace, &current),
        Err(e) => AdmissionResponse::from(&request).deny(format!(
            "ironlb cannot read the configuration to check {} {} against: {}",
            request.kind.kind,
            request.name,
            ironlb_kube::errors::describe(&e)
        )),
    };
    tracing::info!(
        kind = %request.kind.kind,
        name = %request.name,
        operation = ?request.operation,
        allowed = response.allowed,
        reason = %response.result.message,
        "admission"
    );
    Json(response.into_review())
}

async fn convert(Json(review): Json<ConversionReview>) -> Json<ConversionReview> {
    let request = match ConversionRequest::from_review(review) {
        Ok(request) => request,
        Err(e) => {
            let status = Status::failure(&e.to_string(), "BadRequest");
            return Json(ConversionResponse::invalid(status).into_review());
        }
    };
    let to = request.desired_api_version.clone();
    let converted: Result<Vec<_>, _> = request
        .objects
        .iter()
        .map(|o| api::conversion::convert(o, &to))
        .collect();
    let response = ConversionResponse::for_request(request);
    Json(
        match converted {
            Ok(objects) => response.success(objects),
            Err(e) => {
                tracing::warn!(error = %e, "conversion refused");
                response.failure(Status::failure(&e.to_string(), "ConversionFailed"))
            }
        }
        .into_review(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounted_keys_are_served_and_a_mismatched_pair_is_refused() {
        let names = vec!["metallb-webhook-service.metallb-system.svc".to_string()];
        let keys = Keys::issue(&names, std::time::SystemTime::now()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tls.crt"), &keys.tls_crt).unwrap();
        std::fs::write(dir.path().join("tls.key"), &keys.tls_key).unwrap();
        let read = mounted(dir.path()).unwrap();
        assert!(certified(&read.tls_crt, &read.tls_key).is_ok());
        let other = Keys::issue(&names, std::time::SystemTime::now()).unwrap();
        let e = certified(&read.tls_crt, &other.tls_key).err().unwrap();
        assert!(format!("{e:#}").contains("do not match"), "{e:#}");
        let empty = tempfile::tempdir().unwrap();
        let e = mounted(empty.path()).err().unwrap();
        assert!(format!("{e:#}").contains("tls.crt"), "{e:#}");
    }

    #[test]
    fn each_way_a_call_fails_gets_its_fix() {
        let table = [
            (
                "no endpoints available for service \"metallb-webhook-service\"",
                "get pods,endpoints",
            ),
            (
                "dial tcp 127.0.0.1:9: connect: connection refused",
                "--webhook-mode",
            ),
            (
                "x509: certificate signed by unknown authority",
                "delete Secret",
            ),
            ("context deadline exceeded", "NetworkPolicy"),
            ("something new", "controller's log"),
        ];
        for (message, fix) in table {
            assert!(
                fix_for(message).contains(fix),
                "{message}: {}",
                fix_for(message)
            );
        }
    }
}
