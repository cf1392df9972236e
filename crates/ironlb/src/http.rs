//! The metrics and health endpoints (`/metrics`, `/healthz`, `/readyz`).

use crate::secure_metrics::{Gate, TlsListener, guard};
use anyhow::{Context, Result};
use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// What the endpoints report; `metrics` gives the exposition text at each scrape.
pub struct Health<F> {
    pub ready: Arc<AtomicBool>,
    pub metrics: F,
}

/// Where the endpoints are served: plain HTTP, or MetalLB's HTTPS with /metrics behind
/// the API server's token and access review.
#[derive(Clone)]
pub struct Endpoint {
    pub addr: SocketAddr,
    pub secure: Option<Secure>,
}

#[derive(Clone)]
pub struct Secure {
    pub gate: Gate,
    pub tls: tokio_rustls::TlsAcceptor,
}

impl Endpoint {
    pub fn plain(addr: SocketAddr) -> Endpoint {
        Endpoint { addr, secure: None }
    }
}

/// Serves the endpoints on each address (metrics and probes may have ports of their own),
/// logging a listener that fails.
pub fn serve_all<F, R>(endpoints: impl IntoIterator<Item = Endpoint>, health: Health<F>)
where
    F: Fn() -> R + Clone + Send + Sync + 'static,
    R: Future<Output = String> + Send,
{
    let mut endpoints: Vec<Endpoint> = endpoints.into_iter().collect();
    endpoints.dedup_by_key(|e| e.addr);
    for endpoint in endpoints {
        let health = Health {
            ready: health.ready.clone(),
            metrics: health.metrics.clone(),
        };
        tokio::spawn(async move {
            if let Err(e) = serve(endpoint, health).await {
                tracing::error!(error = format!("{e:#}"), "HTTP endpoint stopped");
            }
        });
    }
}

async fn serve<F, R>(endpoint: Endpoint, health: Health<F>) -> Result<()>
where
    F: Fn() -> R + Clone + Send + Sync + 'static,
    R: Future<Output = String> + Send,
{
    let Health { ready, metrics } = health;
    let Endpoint { addr, secure } = endpoint;
    let metrics = Router::new().route(
        "/metrics",
        get(move || {
            let metrics = metrics.clone();
            async move {
                (
                    [("content-type", ironlb_kube::metrics::CONTENT_TYPE)],
                    metrics().await,
                )
            }
        }),
    );
    let metrics = match &secure {
        Some(s) => metrics.route_layer(axum::middleware::from_fn_with_state(s.gate.clone(), guard)),
        None => metrics,
    };
    let app = metrics.route("/healthz", get(|| async { "ok" })).route(
        "/readyz",
        get(move || {
            let ready = ready.load(Ordering::Relaxed);
            async move {
                if ready {
                    (StatusCode::OK, "ready")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "not ready")
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    match secure {
        Some(Secure { tls, .. }) => {
            tracing::info!(%addr, "serving /metrics over HTTPS to authorised scrapers");
            let listener = TlsListener { tcp: listener, tls };
            axum::serve(listener, app).await.context("serving HTTPS")
        }
        None => {
            tracing::info!(%addr, "serving /metrics, /healthz and /readyz");
            axum::serve(listener, app).await.context("serving HTTP")
        }
    }
}
