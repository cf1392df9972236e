//! `ironlb controller`: allocates IPs for LoadBalancer Services, one leader at a time.

use crate::cluster::Cluster;
use crate::http::{self, Health};
use crate::metallb_flags;
use crate::webhook::{self, Mode};
use anyhow::{Context, Result};
use ironlb_kube::controller::run::lead;
use ironlb_kube::leader::{LeaseOptions, elect};
use ironlb_kube::memberlist_secret::Ensured;
use ironlb_kube::metrics::ControllerMetrics;
use ironlb_kube::sources;
use ironlb_kube::writer::Writer;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::watch;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    cluster: Cluster,
    /// This replica's identity in the lease; the pod name.
    #[arg(
        long,
        visible_alias = "pod-name",
        env = "METALLB_POD_NAME",
        default_value = "ironlb-controller"
    )]
    identity: String,
    #[arg(long, default_value = "ironlb-controller")]
    lease_name: String,
    /// Lease duration in seconds: how long a dead leader blocks failover.
    #[arg(long, default_value_t = 10)]
    lease_seconds: u64,
    #[arg(long, default_value = "0.0.0.0:7472")]
    metrics_addr: SocketAddr,
    #[command(flatten)]
    memberlist: metallb_flags::MemberlistSecret,
    #[command(flatten)]
    webhooks: webhook::WebhookArgs,
    #[command(flatten)]
    pub metallb: metallb_flags::Common,
}

/// Makes the speakers' gossip Secret when it is missing; without it they gossip unsealed,
/// so a failure is a warning, not a reason to stop allocating.
async fn memberlist_secret(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    deployment: Option<&str>,
) {
    match ironlb_kube::memberlist_secret::ensure(client, namespace, name, deployment).await {
        Ok(Ensured::Created) => {
            tracing::info!(secret = %name, namespace, "created the speakers' gossip key Secret")
        }
        Ok(Ensured::Present) => {}
        Err(e) => {
            tracing::warn!(secret = %name, namespace, error = ironlb_kube::errors::describe(&e), "cannot create the speakers' gossip key Secret; until it exists they gossip unencrypted")
        }
    }
}

pub fn run(args: &Args) -> Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(controller(args))?;
    Ok(ExitCode::SUCCESS)
}

async fn controller(args: &Args) -> Result<()> {
    let client = args.cluster.client().await?;
    let metrics = Arc::new(ControllerMetrics::default());
    let ready = Arc::new(AtomicBool::new(false));
    let health = Health {
        ready: ready.clone(),
        metrics: {
            let m = metrics.clone();
            move || std::future::ready(m.encode())
        },
    };
    args.metallb.log_ignored();
    args.webhooks.log_ignored();
    http::serve_all(args.metallb.endpoints(args.metrics_addr, &client)?, health);
    if args.webhooks.webhook_mode != Mode::Disabled {
        let (client, namespace) = (client.clone(), args.cluster.namespace());
        let (settings, metrics) = (args.webhooks.clone(), metrics.clone());
        tokio::spawn(async move {
            if let Err(e) = webhook::serve(client, namespace, &settings, metrics).await {
                tracing::error!(error = format!("{e:#}"), "the webhooks stopped");
            }
        });
    }
    if args.webhooks.webhook_mode == Mode::Onlywebhook {
        ready.store(true, Ordering::Relaxed);
        crate::signals::shutdown().await;
        return Ok(());
    }

    let lease = LeaseOptions {
        namespace: args.cluster.namespace(),
        name: args.lease_name.clone(),
        identity: args.identity.clone(),
        duration_seconds: args.lease_seconds,
    };
    let (leader, lease_task) = elect(client.clone(), &lease);
    if let Some(name) = &args.memberlist.ml_secret_name {
        memberlist_secret(
            &client,
            &lease.namespace,
            name,
            args.memberlist.deployment.as_deref(),
        )
        .await;
    }

    let (snapshots_tx, snapshots) = watch::channel(None);
    let mut readiness = snapshots_tx.subscribe();
    tokio::spawn(sources::run(
        client.clone(),
        args.cluster.namespace(),
        snapshots_tx,
    ));
    tokio::spawn(async move {
        if readiness.wait_for(Option::is_some).await.is_ok() {
            ready.store(true, Ordering::Relaxed);
        }
    });

    let writer = Writer::new(
        client,
        &args.cluster.namespace(),
        Some(args.identity.clone()),
    );
    tokio::select! {
        () = lead(leader, snapshots, &writer, &metrics, args.cluster.lb_class.clone()) => {}
        () = crate::signals::shutdown() => tracing::info!("shutting down; releasing the lease"),
    }
    // Dropping the leader receiver makes the lease manager release the lease, so another
    // replica takes over at once instead of after the lease expires.
    let _ = lease_task.await;
    Ok(())
}
