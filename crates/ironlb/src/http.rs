//! The metrics and health endpoints (`/metrics`, `/healthz`, `/readyz`).

use anyhow::{Context, Result};
use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// What the endpoints report.
pub struct Health<F> {
    pub ready: Arc<AtomicBool>,
    pub metrics: F,
}

/// Serves the endpoints on each address (metrics and probes may have ports of their own),
/// logging a listener that fails.
pub fn serve_all<F>(addrs: impl IntoIterator<Item = SocketAddr>, health: Health<F>)
where
    F: Fn() -> String + Clone + Send + Sync + 'static,
{
    let mut addrs: Vec<SocketAddr> = addrs.into_iter().collect();
    addrs.dedup();
    for addr in addrs {
        let health = Health {
            ready: health.ready.clone(),
            metrics: health.metrics.clone(),
        };
        tokio::spawn(async move {
            if let Err(e) = serve(addr, health).await {
                tracing::error!(error = format!("{e:#}"), "HTTP endpoint stopped");
            }
        });
    }
}

pub async fn serve<F>(addr: SocketAddr, health: Health<F>) -> Result<()>
where
    F: Fn() -> String + Clone + Send + Sync + 'static,
{
    let Health { ready, metrics } = health;
    let app = Router::new()
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move {
                    (
                        [(
                            "content-type",
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        metrics(),
                    )
                }
            }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route(
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
    tracing::info!(%addr, "serving /metrics, /healthz and /readyz");
    axum::serve(listener, app).await.context("serving HTTP")
}
