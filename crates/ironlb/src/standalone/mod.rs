//! `ironlb standalone`: the speaker for hosts without Kubernetes. It reads one file (the
//! metallb.io resources plus StandaloneServices), checks each service locally, agrees with
//! the other hosts through gossip on who answers layer 2, and drives the same engines as
//! the Kubernetes speaker.

pub mod file;
mod health;
mod snapshot;

use crate::engines::{Engines, follow_links};
use crate::gossip::{self, Gossip};
use crate::router_id::router_id;
use crate::signals;
use anyhow::{Context, Result, bail};
use file::Desired;
use health::Health;
use ironlb_alloc::Allocator;
use ironlb_membership::DEFAULT_PORT;
use ironlb_plan::node_plan;
use ironlb_plan::sessions::Local;
use snapshot::{Allocations, NoteLayout};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::signal::unix::{SignalKind, signal};

#[derive(clap::Args)]
pub struct Args {
    /// The file with the resources and StandaloneServices. SIGHUP rereads it; an invalid
    /// file is reported and the last valid one keeps running.
    #[arg(long)]
    config: PathBuf,
    /// This host's name, as the other hosts' --member flags and Node objects call it.
    #[arg(long, env = "IRONLB_NODE")]
    node: String,
    /// This host's address: gossip binds to it, and it is the BGP router ID when IPv4.
    #[arg(long)]
    node_ip: IpAddr,
    /// Another host running the same file, as NAME=IP. Without any, this host is alone and
    /// answers every layer-2 IP itself.
    #[arg(long = "member", value_parser = member)]
    members: Vec<(String, IpAddr)>,
    #[arg(long, default_value_t = DEFAULT_PORT)]
    gossip_port: u16,
    /// A file holding the shared gossip secret (MetalLB's `memberlist` Secret, `secretkey`);
    /// every host must use the same one. Without it gossip is unencrypted.
    #[arg(long)]
    gossip_key_file: Option<PathBuf>,
    /// BGP identifier for peers without `routerID`; defaults to --node-ip when IPv4.
    #[arg(long)]
    router_id: Option<Ipv4Addr>,
    /// Where to serve /metrics, /healthz and /readyz (MetalLB's speaker port by default).
    #[arg(long, default_value = "0.0.0.0:7472")]
    metrics: SocketAddr,
}

fn member(s: &str) -> Result<(String, IpAddr), String> {
    let (name, ip) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: write NAME=IP, e.g. node2=192.0.2.3"))?;
    let ip = ip
        .parse()
        .map_err(|_| format!("{s:?}: {ip:?} is not an IP address"))?;
    Ok((name.to_string(), ip))
}

pub fn run(args: &Args) -> Result<ExitCode> {
    let router_id = router_id(args.router_id, args.node_ip)?;
    let loaded = match load(&args.config, &Allocator::default())? {
        Ok(loaded) => loaded,
        Err(problems) => {
            for p in problems {
                eprintln!("{p}");
            }
            return Ok(ExitCode::from(1));
        }
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(serve(args, router_id, loaded))?;
    Ok(ExitCode::SUCCESS)
}

/// A valid file: what it wants, the allocator carried on from the running one, and what
/// each service got from it.
type Accepted = (Desired, Allocator, Allocations);

/// Reads the file and allocates from `current`, logging warnings; every problem when it is
/// invalid.
fn load(path: &Path, current: &Allocator) -> Result<Result<Accepted, Vec<config::Problem>>> {
    let loaded = file::read(path, current)?;
    let (Some(desired), Some((allocator, allocations))) = (loaded.desired, loaded.allocated) else {
        return Ok(Err(loaded.problems));
    };
    for w in loaded.problems {
        tracing::warn!(problem = %w, "configuration warning");
    }
    Ok(Ok((desired, allocator, allocations)))
}

async fn serve(args: &Args, router_id: Ipv4Addr, accepted: Accepted) -> Result<()> {
    let (mut desired, mut alloc, mut allocations) = accepted;
    let me = args.node.clone();
    // This host as its sessions see it: the labels of the file's Node of its name.
    let sessions_local = |desired: &Desired| Local {
        labels: desired.nodes.get(&me).cloned().unwrap_or_default(),
        router_id,
    };
    let mut engines = Engines::new(&me);
    let ready = engines.serve_metrics([crate::http::Endpoint::plain(args.metrics)]);
    let mut links = follow_links().await?;
    let names: BTreeMap<SocketAddr, String> = args
        .members
        .iter()
        .map(|(name, ip)| (SocketAddr::new(*ip, args.gossip_port), name.clone()))
        .filter(|(_, name)| *name != me)
        .collect();
    let members: BTreeSet<String> = names.values().cloned().collect();
    let local = SocketAddr::new(args.node_ip, args.gossip_port);
    let key = args
        .gossip_key_file
        .as_deref()
        .map(gossip::key)
        .transpose()?;
    let mut gossip = Gossip::join(&me, local, names, key).await?;

    let mut health = Health::new(&me);
    let mut passing = health.subscribe();
    apply_file(&desired, &allocations, &mut health);
    let mut layout = NoteLayout::of(&desired);
    let mut hangup = signal(SignalKind::hangup()).context("handling SIGHUP")?;
    let mut refresh = tokio::time::interval(Duration::from_secs(1));
    let mut skipped_before = Vec::new();
    // False when only the metrics need reading.
    let mut replan = true;
    loop {
        if replan {
            // Without a word from gossip yet, every member counts as live while they may still
            // answer (a host thinking itself alone would claim every IP), then none does.
            let live_now = match gossip.live() {
                Some(live) => live,
                None if gossip.bootstrapping() => members.clone(),
                None => BTreeSet::new(),
            };
            let nodes = snapshot::nodes(
                &desired,
                &me,
                &members,
                &live_now,
                gossip.seen_by().as_ref(),
            );
            let mut this = nodes
                .iter()
                .find(|n| n.name == me)
                .cloned()
                .context("this host is always among the nodes")?;
            this.answering = engines.answering();
            let passing_now = passing.borrow_and_update().clone();
            gossip.set_note(layout.failing_note(&passing_now));
            let elsewhere = layout.failing_elsewhere(&gossip.notes());
            let services = snapshot::services(
                &desired,
                &allocations,
                &me,
                &live_now,
                &passing_now,
                &elsewhere,
            );
            let plan = node_plan(
                &desired.config,
                &sessions_local(&desired),
                &this,
                &nodes,
                &services,
            );
            if plan.skipped != skipped_before {
                for s in &plan.skipped {
                    tracing::info!(service = %s.service, reason = s.reason, "not announced from this host");
                }
                skipped_before = plan.skipped.clone();
            }
            engines.apply(&plan, &links.borrow_and_update());
            gossip.applied(nodes.iter().filter(|n| n.live).map(|n| n.name.clone()));
        }
        engines.refresh_metrics();
        ready.store(true, Ordering::Relaxed);
        replan = true;
        tokio::select! {
            () = gossip.changed() => {}
            () = engines.bfd_changed() => {
                engines.follow_bfd();
                replan = false;
            }
            changed = passing.changed() => if changed.is_err() { bail!("health checks stopped") },
            changed = links.changed() => if changed.is_err() { bail!("netlink stopped") },
            _ = refresh.tick() => replan = false,
            _ = hangup.recv() => match load(&args.config, &alloc) {
                Ok(Ok(reloaded)) => {
                    tracing::info!(file = %args.config.display(), "configuration reloaded");
                    (desired, alloc, allocations) = reloaded;
                    apply_file(&desired, &allocations, &mut health);
                    layout = NoteLayout::of(&desired);
                }
                Ok(Err(problems)) => {
                    for p in problems {
                        tracing::error!(problem = %p, "configuration problem");
                    }
                    tracing::error!("the new configuration is invalid; keeping the last valid one");
                }
                Err(e) => tracing::error!(error = format!("{e:#}"), "cannot read the configuration; keeping the last valid one"),
            },
            () = signals::shutdown() => break,
        }
    }
    tracing::info!("shutting down: withdrawing routes and releasing layer-2 IPs");
    engines.shutdown().await;
    Ok(())
}

/// Logs what each service of a (re)loaded file got, and starts its checks.
fn apply_file(desired: &Desired, allocations: &Allocations, health: &mut Health) {
    for (service, got) in allocations {
        match got {
            Ok((ips, pool)) => tracing::info!(%service, ?ips, %pool, "IP allocated"),
            Err(why) => {
                tracing::error!(%service, reason = %why, "no IP: the service is not announced")
            }
        }
    }
    health.set(
        desired
            .services
            .iter()
            .map(|s| (s.name.clone(), s.check.clone()))
            .collect(),
    );
}
