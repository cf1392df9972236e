//! `ironlb speaker`: the node agent, one per node (a DaemonSet with hostNetwork). It reads
//! Services, EndpointSlices, Nodes and the configuration, plans this node's part, and drives
//! the BGP speaker and layer-2 announcer; status objects and events are written apart, so
//! the API server never sits on the path from an endpoint change to the router.

use crate::cluster::Cluster;
use crate::engines::{Engines, follow_links};
use crate::gossip::{self, Gossip};
use crate::metallb_flags;
use crate::router_id::router_id;
use crate::signals;
use anyhow::{Context, Result, bail};
use api::v1beta1::{ConfigurationResult, ConfigurationStateStatus};
use config::Config;
use ironlb_kube::speaker::sources::{self, SpeakerSnapshot};
use ironlb_kube::speaker::status::{Book, desired};
use ironlb_kube::speaker::view;
use ironlb_kube::speaker::writer::{self, Desired, ServiceRef, SpeakerWriter};
use ironlb_l2::interfaces::Link;
use ironlb_membership::DEFAULT_PORT;
use ironlb_plan::announce::Node as PlanNode;
use ironlb_plan::node_plan;
use ironlb_plan::sessions::Local;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::watch;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    cluster: Cluster,
    /// This node's name (the downward API's spec.nodeName).
    #[arg(long, visible_alias = "node-name", env = "METALLB_NODE_NAME")]
    node: String,
    /// The speaker Pod's name: its status objects are owned by it and go with it.
    #[arg(long, env = "METALLB_POD_NAME")]
    pod_name: Option<String>,
    /// The Pod's UID; without it (MetalLB's DaemonSet does not set it) it is looked up by name.
    #[arg(long, env = "METALLB_POD_UID", requires = "pod_name")]
    pod_uid: Option<String>,
    /// Where gossip binds; default this node's InternalIP.
    #[arg(long, visible_alias = "ml-bindaddr", env = "METALLB_ML_BIND_ADDR")]
    gossip_bind_addr: Option<IpAddr>,
    #[arg(long, visible_alias = "ml-bindport", env = "METALLB_ML_BIND_PORT", default_value_t = DEFAULT_PORT)]
    gossip_port: u16,
    /// A file holding the shared gossip secret (mount MetalLB's `memberlist` Secret).
    #[arg(long, env = "IRONLB_GOSSIP_KEY_FILE")]
    gossip_key_file: Option<PathBuf>,
    /// MetalLB's form of the same: the directory where the `memberlist` Secret is mounted,
    /// holding `secretkey`.
    #[arg(long, env = "METALLB_ML_SECRET_KEY_PATH")]
    ml_secret_key_path: Option<PathBuf>,
    /// BGP identifier for peers without `routerID`; default this node's IPv4 address.
    #[arg(long)]
    router_id: Option<Ipv4Addr>,
    /// Announce from nodes labelled `node.kubernetes.io/exclude-from-external-load-balancers`
    /// too (kubeadm puts it on control-plane nodes, which on a one-node cluster silences
    /// everything), as MetalLB's flag of the same name.
    #[arg(long, env = "METALLB_IGNORE_EXCLUDE_LB")]
    ignore_exclude_lb: bool,
    /// Run without gossip: liveness then comes from each node's Ready condition.
    #[arg(long)]
    no_gossip: bool,
    #[arg(long, default_value = "0.0.0.0:7472")]
    metrics_addr: SocketAddr,
    #[command(flatten)]
    pub metallb: metallb_flags::Common,
}

pub fn run(args: &Args) -> Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(speaker(args))?;
    Ok(ExitCode::SUCCESS)
}

/// This node as its sessions see it: its Node's labels, and the BGP identifier.
fn local(me: &str, snap: &SpeakerSnapshot, router_id: Ipv4Addr) -> Local {
    let node = snap
        .nodes
        .iter()
        .find(|n| n.metadata.name.as_deref() == Some(me));
    Local {
        labels: node
            .and_then(|n| n.metadata.labels.clone())
            .unwrap_or_default(),
        router_id,
    }
}

async fn speaker(args: &Args) -> Result<()> {
    let me = args.node.clone();
    let namespace = args.cluster.namespace();
    let client = args.cluster.client().await?;
    let (tx, mut snapshots) = watch::channel(None);
    tokio::spawn(sources::run(
        client.clone(),
        namespace.clone(),
        me.clone(),
        tx,
    ));
    tracing::info!(node = %me, "waiting for the first full view of the cluster");
    let first = snapshots
        .wait_for(Option::is_some)
        .await
        .context("the cluster watches ended")?
        .clone()
        .context("a first snapshot")?;
    let Some(node) = first
        .nodes
        .iter()
        .find(|n| n.metadata.name.as_deref() == Some(&me))
    else {
        bail!(
            "node {me:?} is not among the cluster's Nodes; set METALLB_NODE_NAME from spec.nodeName"
        );
    };
    let node_ip = args
        .gossip_bind_addr
        .or_else(|| view::internal_ip(node))
        .context("this node has no InternalIP; pass --gossip-bind-addr")?;
    let router_id = router_id(args.router_id, node_ip)?;

    let engines = Engines::new(&me);
    args.metallb.log_ignored();
    let ready = engines.serve_metrics(args.metallb.endpoints(args.metrics_addr, &client)?);
    let mut links = follow_links().await?;
    let names = view::gossip_addresses(&first.nodes, args.gossip_port);
    let mut gossip = if args.no_gossip {
        tracing::info!("gossip disabled: node readiness decides which nodes are live");
        Gossip::off(&me, names)
    } else {
        let key = gossip_key(args)?;
        Gossip::join(&me, SocketAddr::new(node_ip, args.gossip_port), names, key).await?
    };
    gossip.set_names(view::gossip_addresses(&first.nodes, args.gossip_port));

    let owner = owner(&client, &namespace, args).await;
    let writer = SpeakerWriter::new(client, &namespace, &me, owner);
    let (book, repeats) = Book::from_cluster(&first.l2_statuses, &first.bgp_statuses);
    let mut book = book;
    for e in writer.statuses(&mut book, &repeats).await {
        tracing::warn!(error = %e, "could not remove a repeated status object");
    }
    let (desired_tx, desired_rx) = watch::channel(Desired::default());
    tokio::spawn(writer::run(
        writer,
        book,
        desired_rx,
        engines.metrics.client.clone(),
    ));

    let mut agent = Agent {
        me: me.clone(),
        router_id,
        lb_class: args.cluster.lb_class.clone(),
        ignore_exclude_lb: args.ignore_exclude_lb,
        engines,
        config: None,
        errors_before: Vec::new(),
        desired: desired_tx,
    };
    let mut refresh = tokio::time::interval(Duration::from_secs(1));
    let mut woke = Woke::Cluster;
    loop {
        if woke != Woke::Timer {
            // Borrowed, not copied: the pass holds no await, and the watch is only read.
            let snap = snapshots.borrow_and_update();
            if let Some(snap) = snap.as_ref() {
                if woke == Woke::Cluster {
                    agent.take_config(snap);
                    gossip.set_names(view::gossip_addresses(&snap.nodes, args.gossip_port));
                }
                if agent.pass(snap, &mut gossip, &links.borrow_and_update()) {
                    ready.store(true, Ordering::Relaxed);
                }
            }
        }
        agent.engines.refresh_metrics();
        woke = tokio::select! {
            changed = snapshots.changed() => {
                if changed.is_err() {
                    bail!("the cluster watches ended")
                }
                Woke::Cluster
            }
            () = gossip.changed() => Woke::Network,
            changed = links.changed() => {
                if changed.is_err() {
                    bail!("netlink stopped")
                }
                Woke::Network
            }
            () = agent.engines.bfd_changed() => {
                agent.engines.follow_bfd();
                Woke::Timer
            }
            _ = refresh.tick() => Woke::Timer,
            () = signals::shutdown() => break,
        };
    }
    tracing::info!("shutting down: withdrawing routes and releasing layer-2 IPs");
    agent.engines.shutdown().await;
    Ok(())
}

/// The shared gossip key, from `--gossip-key-file` or MetalLB's Secret mount; the Secret is
/// optional in MetalLB's manifest, so without it the file is absent and gossip is plain.
fn gossip_key(args: &Args) -> Result<Option<ironlb_membership::Key>> {
    let metallb_key = args
        .ml_secret_key_path
        .as_ref()
        .map(|dir| dir.join("secretkey"));
    let key_file = args
        .gossip_key_file
        .as_deref()
        .or(metallb_key.as_deref())
        .filter(|p| {
            let present = p.exists();
            if !present {
                tracing::warn!(file = %p.display(), "no gossip key file; gossip is unencrypted");
            }
            present
        });
    key_file.map(gossip::key).transpose()
}

/// The speaker Pod, to own its status objects: by name and UID, the UID looked up when
/// the environment does not give it. Without a Pod the objects are written unowned.
async fn owner(client: &kube::Client, namespace: &str, args: &Args) -> Option<OwnerReference> {
    let name = args.pod_name.clone()?;
    let uid = match &args.pod_uid {
        Some(uid) => uid.clone(),
        None => {
            let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
                kube::Api::namespaced(client.clone(), namespace);
            let by_name = kube::api::ListParams::default().fields(&format!("metadata.name={name}"));
            match pods.list(&by_name).await {
                Ok(list) => list.items.first()?.metadata.uid.clone()?,
                Err(e) => {
                    tracing::warn!(pod = %name, error = ironlb_kube::errors::describe(&e), "cannot look up this speaker's Pod; its status objects are written without an owner");
                    return None;
                }
            }
        }
    };
    Some(OwnerReference {
        api_version: "v1".into(),
        kind: "Pod".into(),
        name,
        uid,
        ..OwnerReference::default()
    })
}

/// What the loop woke for: the cluster changed (validate again, then plan), the network or
/// gossip changed (plan again), or only the metrics need reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Woke {
    Cluster,
    Network,
    Timer,
}

/// The speaker's state between passes.
struct Agent {
    me: String,
    router_id: Ipv4Addr,
    lb_class: Option<String>,
    ignore_exclude_lb: bool,
    engines: Engines,
    /// The last valid configuration; an invalid one never replaces it.
    config: Option<Config>,
    errors_before: Vec<String>,
    desired: watch::Sender<Desired>,
}

impl Agent {
    /// Validates a new snapshot's configuration: a valid one replaces the last, an invalid
    /// one is reported (logs and ConfigurationState) and the last valid one stays.
    fn take_config(&mut self, snap: &SpeakerSnapshot) {
        let outcome = config::build_read(&snap.resources, snap.problems.clone());
        let errors: Vec<String> = outcome.errors().map(ToString::to_string).collect();
        if errors != self.errors_before {
            for e in &errors {
                tracing::error!(problem = %e, "configuration problem; keeping the last valid configuration");
            }
            self.errors_before = errors;
        }
        let state = ConfigurationStateStatus {
            result: Some(if self.errors_before.is_empty() {
                ConfigurationResult::Valid
            } else {
                ConfigurationResult::Invalid
            }),
            error_summary: self.errors_before.join("\n"),
            ..ConfigurationStateStatus::default()
        };
        self.desired.send_if_modified(|d| {
            let changed = d.config.as_ref() != Some(&state);
            d.config = Some(state);
            changed
        });
        if let Some(valid) = outcome.config {
            self.config = Some(valid);
        }
    }

    /// One pass from the cluster's state to the network and the status writer; gossip says
    /// which nodes are live and which have seen this one, and hears back what was applied.
    /// False until a valid configuration has been seen.
    fn pass(&mut self, snap: &SpeakerSnapshot, gossip: &mut Gossip, links: &[Link]) -> bool {
        let Some(config) = &self.config else {
            return false;
        };
        let me = &self.me;
        let local = local(me, snap, self.router_id);
        let live = gossip.live().map(|mut others| {
            others.insert(me.clone());
            others
        });
        let mut nodes = view::nodes(&snap.nodes, me, live.as_ref(), gossip.seen_by().as_ref());
        if self.ignore_exclude_lb {
            for n in &mut nodes {
                n.labels.remove(ironlb_plan::election::EXCLUDE_LABEL);
            }
        }
        let mut this = nodes
            .iter()
            .find(|n| n.name == *me)
            .cloned()
            .unwrap_or(PlanNode {
                name: me.clone(),
                labels: Default::default(),
                live: true,
                network_available: true,
                sees_this: true,
                answering: Default::default(),
            });
        this.answering = self.engines.answering();
        let services = view::services(
            &snap.services,
            &snap.slices,
            config,
            self.lb_class.as_deref(),
        );
        let plan = node_plan(config, &local, &this, &nodes, &services);
        let unplaced = self.engines.apply(&plan, links);
        gossip.applied(nodes.iter().filter(|n| n.live).map(|n| n.name.clone()));
        self.desired.send_if_modified(|d| {
            let next = Desired {
                statuses: desired(&plan.announced),
                services: service_refs(&snap.services),
                unplaced: unplaced
                    .keys()
                    .filter_map(|ip| Some((ip.to_string(), owner_of(&services, ip)?)))
                    .collect(),
                config: d.config.clone(),
            };
            let changed = *d != next;
            *d = next;
            changed
        });
        true
    }
}

fn service_refs(services: &[std::sync::Arc<Service>]) -> BTreeMap<String, ServiceRef> {
    services
        .iter()
        .map(|s| {
            (
                ironlb_kube::service_view::key(s),
                ServiceRef {
                    namespace: s.metadata.namespace.clone().unwrap_or_default(),
                    name: s.metadata.name.clone().unwrap_or_default(),
                    uid: s.metadata.uid.clone(),
                },
            )
        })
        .collect()
}

fn owner_of(services: &[ironlb_plan::announce::Service], ip: &IpAddr) -> Option<String> {
    services
        .iter()
        .find(|s| s.ips.contains(ip))
        .map(|s| s.key.clone())
}
