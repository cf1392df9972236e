//! `ironlb standalone`: the speaker for hosts without Kubernetes. It reads one file (the
//! metallb.io resources plus StandaloneServices), checks each service locally, agrees with
//! the other hosts through gossip on who answers layer 2, and drives the same engines as
//! the Kubernetes speaker.

pub mod file;
mod health;
mod snapshot;

use crate::agent::{Agent, Inputs, Source};
use crate::engines::Engines;
use crate::gossip::{self, Gossip};
use crate::router_id::router_id;
use anyhow::{Context, Result};
use file::HostFile;
use health::{Health, Passing};
use ironlb_alloc::Allocator;
use ironlb_l2::announcer::Claims;
use ironlb_membership::DEFAULT_PORT;
use ironlb_plan::announce::Plan;
use ironlb_plan::sessions::Local;
use snapshot::{Allocations, NoteLayout};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::watch;

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
type Accepted = (HostFile, Allocator, Allocations);

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
    let me = args.node.clone();
    let engines = Engines::new(&me);
    let served = engines.serve_metrics([crate::http::Endpoint::plain(args.metrics)]);
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
    let gossip = Gossip::join(&me, local, names, key).await?;
    let mut source = FileSource::new(args, router_id, members, accepted)?;
    Agent::new(&me, engines, gossip, served)
        .await?
        .run(&mut source)
        .await
}

/// The standalone source: the file (reread on SIGHUP) and the services' health checks.
struct FileSource {
    path: PathBuf,
    me: String,
    router_id: Ipv4Addr,
    /// The other hosts, by name.
    members: BTreeSet<String>,
    file: HostFile,
    alloc: Allocator,
    allocations: Allocations,
    health: Health,
    passing: watch::Receiver<Passing>,
    layout: NoteLayout,
    hangup: Signal,
    /// A SIGHUP arrived: reread the file when the change is taken in.
    reload: bool,
}

impl FileSource {
    fn new(
        args: &Args,
        router_id: Ipv4Addr,
        members: BTreeSet<String>,
        (file, alloc, allocations): Accepted,
    ) -> Result<FileSource> {
        let mut health = Health::new(&args.node);
        let passing = health.subscribe();
        apply_file(&file, &allocations, &mut health);
        Ok(FileSource {
            path: args.config.clone(),
            me: args.node.clone(),
            router_id,
            members,
            layout: NoteLayout::of(&file),
            file,
            alloc,
            allocations,
            health,
            passing,
            hangup: signal(SignalKind::hangup()).context("handling SIGHUP")?,
            reload: false,
        })
    }

    /// Rereads the file; an invalid one is reported and the last valid one keeps running.
    fn reload(&mut self) {
        match load(&self.path, &self.alloc) {
            Ok(Ok((file, alloc, allocations))) => {
                tracing::info!(file = %self.path.display(), "configuration reloaded");
                apply_file(&file, &allocations, &mut self.health);
                self.layout = NoteLayout::of(&file);
                (self.file, self.alloc, self.allocations) = (file, alloc, allocations);
            }
            Ok(Err(problems)) => {
                for p in problems {
                    tracing::error!(problem = %p, "configuration problem");
                }
                tracing::error!("the new configuration is invalid; keeping the last valid one");
            }
            Err(e) => tracing::error!(
                error = format!("{e:#}"),
                "cannot read the configuration; keeping the last valid one"
            ),
        }
    }
}

impl Source for FileSource {
    async fn changed(&mut self) -> Result<()> {
        tokio::select! {
            _ = self.hangup.recv() => self.reload = true,
            changed = self.passing.changed() => changed.context("health checks stopped")?,
        }
        Ok(())
    }

    fn take(&mut self, _gossip: &mut Gossip) {
        if std::mem::take(&mut self.reload) {
            self.reload();
        }
    }

    fn inputs(&mut self, gossip: &mut Gossip) -> Option<Inputs<'_>> {
        // Without a word from gossip yet, every member counts as live while they may still
        // answer (a host thinking itself alone would claim every IP), then none does.
        let live = match gossip.live() {
            Some(live) => live,
            None if gossip.bootstrapping() => self.members.clone(),
            None => BTreeSet::new(),
        };
        let nodes = snapshot::nodes(
            &self.file,
            &self.me,
            &self.members,
            &live,
            gossip.seen_by().as_ref(),
        );
        let passing = self.passing.borrow_and_update().clone();
        gossip.set_note(self.layout.failing_note(&passing));
        let elsewhere = self.layout.failing_elsewhere(&gossip.notes());
        let services = snapshot::services(
            &self.file,
            &self.allocations,
            &self.me,
            &live,
            &passing,
            &elsewhere,
        );
        Some(Inputs {
            config: &self.file.config,
            // This host as its sessions see it: the labels of the file's Node of its name.
            local: Local {
                labels: self.file.nodes.get(&self.me).cloned().unwrap_or_default(),
                router_id: self.router_id,
            },
            nodes,
            services: services.into_iter().map(std::sync::Arc::new).collect(),
        })
    }

    fn applied(&mut self, _plan: &Plan, _unplaced: &Claims) {}
}

/// Logs what each service of a (re)loaded file got, and starts its checks.
fn apply_file(desired: &HostFile, allocations: &Allocations, health: &mut Health) {
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
