//! Metrics on MetalLB's `--port` as MetalLB 0.16 serves them: HTTPS, and only for a bearer
//! token the API server vouches for (TokenReview) and allows to `get` the `/metrics`
//! non-resource URL (SubjectAccessReview). Anything else gets 401 or 403. The certificate is
//! `tls.crt`/`tls.key` from `--metrics-cert-dir`, or self-signed at start.

use anyhow::{Context, Result};
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::Api;
use kube::api::PostParams;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// How long a verdict on a token is kept: a scrape every 15 s costs no API request.
const REMEMBER: Duration = Duration::from_secs(60);

/// Who may read the metrics, as the API server says, with recent verdicts remembered.
#[derive(Clone)]
pub struct Gate {
    client: kube::Client,
    verdicts: Arc<Mutex<HashMap<String, (StatusCode, Instant)>>>,
}

impl Gate {
    pub fn new(client: kube::Client) -> Gate {
        Gate {
            client,
            verdicts: Arc::default(),
        }
    }

    /// 200 for a token allowed to get /metrics, 401 for none or an invalid one, 403 for one
    /// that is valid but not allowed.
    async fn verdict(&self, token: &str) -> StatusCode {
        if let Some((code, at)) = self.verdicts.lock().unwrap().get(token).copied()
            && at.elapsed() < REMEMBER
        {
            return code;
        }
        let code = match self.review(token).await {
            Ok(code) => code,
            Err(e) => {
                tracing::warn!(
                    error = ironlb_kube::errors::describe(&e),
                    "cannot check a metrics scraper's token"
                );
                // Not remembered: the next scrape asks again.
                return StatusCode::SERVICE_UNAVAILABLE;
            }
        };
        let mut verdicts = self.verdicts.lock().unwrap();
        verdicts.retain(|_, (_, at)| at.elapsed() < REMEMBER);
        verdicts.insert(token.to_string(), (code, Instant::now()));
        code
    }

    async fn review(&self, token: &str) -> Result<StatusCode, kube::Error> {
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_string()),
                ..TokenReviewSpec::default()
            },
            ..TokenReview::default()
        };
        let reviewed = Api::<TokenReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await?;
        let status = reviewed.status.unwrap_or_default();
        let Some(user) = status.user.filter(|_| status.authenticated == Some(true)) else {
            return Ok(StatusCode::UNAUTHORIZED);
        };
        let access = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: user.username,
                groups: user.groups,
                uid: user.uid,
                extra: user.extra,
                non_resource_attributes: Some(NonResourceAttributes {
                    path: Some("/metrics".into()),
                    verb: Some("get".into()),
                }),
                ..SubjectAccessReviewSpec::default()
            },
            ..SubjectAccessReview::default()
        };
        let decided = Api::<SubjectAccessReview>::all(self.client.clone())
            .create(&PostParams::default(), &access)
            .await?;
        let allowed = decided.status.is_some_and(|s| s.allowed);
        Ok(if allowed {
            StatusCode::OK
        } else {
            StatusCode::FORBIDDEN
        })
    }
}

/// The middleware in front of /metrics.
pub async fn guard(State(gate): State<Gate>, request: Request, next: Next) -> Response {
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string);
    let code = match token {
        Some(token) => gate.verdict(&token).await,
        None => StatusCode::UNAUTHORIZED,
    };
    if code == StatusCode::OK {
        next.run(request).await
    } else {
        (code, code.canonical_reason().unwrap_or_default()).into_response()
    }
}

/// The TLS settings: the certificate in `cert_dir`, or a self-signed one.
pub fn tls(cert_dir: Option<&Path>) -> Result<TlsAcceptor> {
    let (chain, key) = match cert_dir {
        Some(dir) => {
            let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
            let chain = CertificateDer::pem_file_iter(&cert)
                .and_then(Iterator::collect)
                .with_context(|| format!("reading the metrics certificate {}", cert.display()))?;
            let key = PrivateKeyDer::from_pem_file(&key)
                .with_context(|| format!("reading the metrics key {}", key.display()))?;
            (chain, key)
        }
        None => {
            let signed = rcgen::generate_simple_self_signed(["localhost".to_string()])
                .context("making a self-signed metrics certificate")?;
            let key = PrivateKeyDer::try_from(signed.signing_key.serialize_der())
                .map_err(anyhow::Error::msg)?;
            (vec![signed.cert.der().clone()], key)
        }
    };
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("the metrics certificate and key do not match")?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// A TCP listener whose connections are TLS; a failed or slow handshake is dropped.
pub struct TlsListener {
    pub tcp: TcpListener,
    pub tls: TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, peer)) = self.tcp.accept().await else {
                // EMFILE and the like: do not spin.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let handshake = tokio::time::timeout(Duration::from_secs(5), self.tls.accept(tcp));
            if let Ok(Ok(stream)) = handshake.await {
                return (stream, peer);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_certificate_comes_from_the_directory_or_is_made() {
        assert!(tls(None).is_ok(), "self-signed");
        let dir = tempfile::tempdir().unwrap();
        let signed = rcgen::generate_simple_self_signed(["metrics.example".to_string()]).unwrap();
        std::fs::write(dir.path().join("tls.crt"), signed.cert.pem()).unwrap();
        std::fs::write(
            dir.path().join("tls.key"),
            signed.signing_key.serialize_pem(),
        )
        .unwrap();
        assert!(tls(Some(dir.path())).is_ok());
        let empty = tempfile::tempdir().unwrap();
        let e = tls(Some(empty.path())).err().unwrap();
        assert!(format!("{e:#}").contains("tls.crt"), "{e:#}");
    }
}
