//! `ironlb speaker`: the node agent, one per node (a DaemonSet with hostNetwork). It reads
//! Services, EndpointSlices, Nodes and the configuration, plans this node's part, and drives
//! the BGP speaker and layer-2 announcer; status objects and events are written apart, so
//! the API server never sits on the path from an endpoint change to the router.

use crate::agent::{Agent, Inputs, Source};
use crate::cluster::Cluster;
use crate::engines::Engines;
use crate::gossip::{self, Gossip};
use crate::metallb_flags;
use crate::router_id::router_id;
use anyhow::{Context, Result, bail};
use config::LastValid;
use ironlb_kube::speaker::sources::{self, SpeakerSnapshot};
use ironlb_kube::speaker::status::{Book, update_desired};
use ironlb_kube::speaker::view;
use ironlb_kube::speaker::writer::{self, Desired, SpeakerWriter};
use ironlb_l2::announcer::Claims;
use ironlb_membership::DEFAULT_PORT;
use ironlb_plan::ServiceKey;
use ironlb_plan::announce::Plan;
use ironlb_plan::sessions::Local;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
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
    let served = engines.serve_metrics(args.metallb.endpoints(args.metrics_addr, &client)?);
    let names = view::gossip_addresses(&first.nodes, args.gossip_port);
    let gossip = if args.no_gossip {
        tracing::info!("gossip disabled: node readiness decides which nodes are live");
        Gossip::off(&me, names)
    } else {
        let key = gossip_key(args)?;
        Gossip::join(&me, SocketAddr::new(node_ip, args.gossip_port), names, key).await?
    };
    let desired = start_writer(args, client, &namespace, &first, &engines).await;
    let mut source = ClusterSource {
        me: me.clone(),
        router_id,
        lb_class: args.cluster.lb_class.clone(),
        ignore_exclude_lb: args.ignore_exclude_lb,
        gossip_port: args.gossip_port,
        snapshots,
        snap: first,
        config: LastValid::default(),
        views: view::ServiceViews::default(),
        desired,
    };
    Agent::new(&me, engines, gossip, served)
        .await?
        .run(&mut source)
        .await
}

/// Starts the status writer from this node's status objects as the cluster holds them
/// (removing repeats a crash may have left); the returned sender says what they should be.
async fn start_writer(
    args: &Args,
    client: kube::Client,
    namespace: &str,
    first: &SpeakerSnapshot,
    engines: &Engines,
) -> watch::Sender<Desired> {
    let owner = owner(&client, namespace, args).await;
    let writer = SpeakerWriter::new(client, namespace, &args.node, owner);
    let (mut book, repeats) = Book::from_cluster(&first.l2_statuses, &first.bgp_statuses);
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
    desired_tx
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

/// The Kubernetes source: the cluster's watches, and the status objects and events that
/// report back what this node announces.
struct ClusterSource {
    me: String,
    router_id: Ipv4Addr,
    lb_class: Option<String>,
    ignore_exclude_lb: bool,
    gossip_port: u16,
    snapshots: watch::Receiver<Option<Arc<SpeakerSnapshot>>>,
    /// The latest snapshot taken in.
    snap: Arc<SpeakerSnapshot>,
    config: LastValid,
    /// The planner's Services, read again only where the snapshot changed.
    views: view::ServiceViews,
    desired: watch::Sender<Desired>,
}

impl Source for ClusterSource {
    async fn changed(&mut self) -> Result<()> {
        self.snapshots
            .changed()
            .await
            .context("the cluster watches ended")
    }

    fn take(&mut self, gossip: &mut Gossip) {
        if let Some(snap) = self.snapshots.borrow_and_update().clone() {
            self.snap = snap;
        }
        gossip.set_names(view::gossip_addresses(&self.snap.nodes, self.gossip_port));
        self.take_config();
    }

    fn inputs(&mut self, gossip: &mut Gossip) -> Option<Inputs<'_>> {
        let config = self.config.config()?;
        let me = &self.me;
        let snap = &self.snap;
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
        Some(Inputs {
            config,
            local: local(me, snap, self.router_id),
            nodes,
            services: self.views.services(
                &snap.services,
                &snap.slices,
                config,
                self.lb_class.as_deref(),
            ),
        })
    }

    /// Changes only the wishes of the Services the plan says changed.
    fn applied(&mut self, plan: &Plan, unplaced: &Claims) {
        let unplaced: BTreeMap<String, ServiceKey> = unplaced
            .keys()
            .filter_map(|ip| Some((ip.to_string(), owner_of(plan, ip)?)))
            .collect();
        let changed = &plan.changes.services;
        self.desired.send_if_modified(|d| {
            let mut modified = update_desired(&mut d.statuses, &plan.announced, changed);
            for service in changed {
                let uid = plan.announced.get(service).and_then(|a| a.uid.clone());
                if d.uids.get(service) != uid.as_ref() {
                    modified = true;
                    match uid {
                        Some(uid) => d.uids.insert(service.clone(), uid),
                        None => d.uids.remove(service),
                    };
                }
            }
            if d.unplaced != unplaced {
                d.unplaced = unplaced;
                modified = true;
            }
            modified
        });
    }
}

impl ClusterSource {
    /// Validates the snapshot's configuration: a valid one replaces the last, an invalid
    /// one is reported (logs and ConfigurationState) and the last valid one stays.
    fn take_config(&mut self) {
        let replaced = self.config.take(config::build_read(
            &self.snap.resources,
            self.snap.problems.clone(),
        ));
        if replaced {
            self.views.clear();
        }
        let state = self.config.state();
        self.desired.send_if_modified(|d| {
            let changed = d.config.as_ref() != Some(&state);
            d.config = Some(state);
            changed
        });
    }
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

/// The Service announcing `ip`.
fn owner_of(plan: &Plan, ip: &IpAddr) -> Option<ServiceKey> {
    plan.announced
        .iter()
        .find(|(_, a)| a.ips.contains(ip))
        .map(|(key, _)| key.clone())
}
