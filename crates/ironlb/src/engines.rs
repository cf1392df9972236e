//! A node's engines, the BGP speaker, BFD and the layer-2 announcer, driven from the
//! planner's answer. Both the Kubernetes speaker and `standalone` feed this the same way:
//! this node's `Plan` (`ironlb_plan::node_plan`), its only input, and it converges the
//! network to it.

use crate::http;
use crate::speaker_metrics::SpeakerMetrics;
use anyhow::{Result, anyhow};
use ironlb_bfd::driver::{Bfd, States};
use ironlb_bgp::speaker::{PeerConfig, Remote, Speaker};
use ironlb_l2::announcer::{Announcer, Claims};
use ironlb_l2::interfaces::{Exclusions, Link};
use ironlb_plan::announce::Plan;
use ironlb_plan::sessions::{rib_changes, ribs};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// Netlink events pick up link changes at once; this rescan (MetalLB's interval) only
/// backs them up.
const RESCAN: Duration = Duration::from_secs(10);

/// The node's links as they change.
pub async fn follow_links() -> Result<watch::Receiver<Vec<Link>>> {
    ironlb_l2::links::follow(RESCAN)
        .await
        .map_err(|e| anyhow!("following network interfaces through netlink: {e}"))
}

/// A scrape waiting for the engines' counters to be read into the metrics.
pub type Scrape = oneshot::Sender<()>;

/// How long a scrape waits for the agent to read the counters; past it (a pass running
/// long) the metrics go out as last read.
const SCRAPE_WAIT: Duration = Duration::from_millis(500);
const SCRAPES_WAITING: usize = 8;

/// The served endpoints' side of the agent.
pub struct Served {
    /// Set when /readyz should answer ready.
    pub ready: Arc<AtomicBool>,
    pub scrapes: mpsc::Receiver<Scrape>,
}

pub struct Engines {
    /// This node's name, for logs and metrics.
    node: String,
    speaker: Speaker,
    announcer: Announcer,
    claims: Claims,
    /// The `metallb-excludel2` patterns the announcer was given (None: the defaults).
    exclusions: Option<Vec<String>>,
    /// Peer name → its address and port (`address:port` labels MetalLB's BGP metrics).
    /// Each peer's `peer` label in the metrics: its address and port, as MetalLB's, or
    /// the interface of an unnumbered one.
    peer_labels: BTreeMap<String, String>,
    /// The sessions the speaker was given last: routes go as the plan's changes while they
    /// stay, and as whole tables when they change.
    peers: Vec<PeerConfig>,
    /// BFD sessions for the peers with a BFDProfile, started with the first of them.
    bfd: Option<Bfd>,
    /// BFD could not start (already logged).
    bfd_failed: bool,
    /// The BFD sessions' states, for the metrics.
    bfd_states: Option<watch::Receiver<States>>,
    pub metrics: SpeakerMetrics,
}

impl Engines {
    pub fn new(node: &str) -> Engines {
        Engines {
            node: node.to_string(),
            speaker: Speaker::new(),
            announcer: Announcer::new(Exclusions::default()),
            claims: Claims::new(),
            exclusions: None,
            peer_labels: BTreeMap::new(),
            peers: Vec::new(),
            bfd: None,
            bfd_failed: false,
            bfd_states: None,
            metrics: SpeakerMetrics::default(),
        }
    }

    /// Serves /metrics, /healthz and /readyz at each endpoint. Each scrape asks the agent,
    /// through `Served::scrapes`, to read the engines' counters first, so the figures are
    /// as of the scrape and nothing polls between scrapes.
    pub fn serve_metrics(&self, endpoints: impl IntoIterator<Item = http::Endpoint>) -> Served {
        let ready = Arc::new(AtomicBool::new(false));
        let (asks, scrapes) = mpsc::channel(SCRAPES_WAITING);
        let metrics = self.metrics.clone();
        let health = http::Health {
            ready: ready.clone(),
            metrics: move || {
                let (metrics, asks) = (metrics.clone(), asks.clone());
                async move {
                    let (done, read) = oneshot::channel();
                    // Full: as many scrapes already wait, and this one shares their reading.
                    if asks.try_send(done).is_ok() {
                        let _ = tokio::time::timeout(SCRAPE_WAIT, read).await;
                    }
                    metrics.encode()
                }
            },
        };
        http::serve_all(endpoints, health);
        Served { ready, scrapes }
    }

    /// Converges sessions, routes and layer-2 claims to `plan` (inside a tokio runtime).
    /// Returns the layer-2 IPs no interface here can carry.
    pub fn apply(&mut self, plan: &Plan, links: &[Link]) -> Claims {
        // Compiled once per change of the list, not on every pass.
        if plan.exclusions != self.exclusions {
            self.exclusions.clone_from(&plan.exclusions);
            self.announcer
                .set_exclusions(Exclusions::configured(self.exclusions.as_deref()));
        }
        self.run_bfd(plan);
        self.set_routes(plan);
        self.metrics
            .set_announced(&self.node, &plan.announced, &plan.changes.services);
        if self.claims != plan.l2 {
            for (ip, interfaces) in &plan.l2 {
                if !self.claims.contains_key(ip) {
                    tracing::info!(%ip, ?interfaces, node = %self.node, "claiming layer-2 IP");
                }
            }
            for ip in self.claims.keys().filter(|ip| !plan.l2.contains_key(ip)) {
                tracing::info!(%ip, node = %self.node, "releasing layer-2 IP");
            }
            self.claims = plan.l2.clone();
        }
        let unplaced = self.announcer.update(links, &self.claims);
        for (ip, interfaces) in &unplaced {
            tracing::warn!(%ip, ?interfaces, "announceFailed: no answering interface can carry this IP");
        }
        unplaced
    }

    /// The plan's sessions and routes to the speaker: only the changed routes while the
    /// sessions stay (the speaker holds the rest), every table when they change. The
    /// sessions go every pass, which also retries a listener that could not bind.
    fn set_routes(&mut self, plan: &Plan) {
        self.speaker.set_peers(plan.sessions.bgp.clone());
        if plan.sessions.bgp != self.peers {
            self.peers.clone_from(&plan.sessions.bgp);
            self.peer_labels = self
                .peers
                .iter()
                .map(|p| (p.name.clone(), label(p)))
                .collect();
            self.speaker.set_routes(ribs(&plan.bgp));
            return;
        }
        for (peer, changes) in &plan.changes.routes {
            self.speaker.change_routes(peer, rib_changes(changes));
        }
    }

    /// The layer-2 IPs claimed here now.
    pub fn answering(&self) -> BTreeSet<IpAddr> {
        self.claims.keys().copied().collect()
    }

    /// Runs the plan's BFD sessions, starting BFD with the first.
    fn run_bfd(&mut self, plan: &Plan) {
        let wanted = &plan.sessions.bfd;
        if self.bfd.is_none() && !wanted.is_empty() && !self.bfd_failed {
            match Bfd::start() {
                Ok(bfd) => {
                    // BFD's path failures go straight to the BGP sessions.
                    self.speaker.follow_bfd(bfd.path_failures());
                    self.bfd_states = Some(bfd.states());
                    self.bfd = Some(bfd);
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot run BFD (UDP port 3784); sessions run without it");
                    self.bfd_failed = true;
                }
            }
        }
        if let Some(bfd) = &mut self.bfd {
            bfd.set_peers(wanted);
        }
    }

    /// Reads the engines' counters into the metrics.
    pub fn refresh_metrics(&self) {
        let peers: BTreeMap<String, _> = self
            .speaker
            .status()
            .into_iter()
            .filter_map(|(name, s)| Some((self.peer_labels.get(&name)?.clone(), s)))
            .collect();
        self.metrics.refresh(&peers, &self.announcer.counts());
        if let (Some(states), Some(bfd)) = (&self.bfd_states, &self.bfd) {
            self.metrics.set_bfd(&states.borrow(), &bfd.counts());
        }
    }

    /// Ends the sessions with a Cease, so routers withdraw at once, and stops answering.
    pub async fn shutdown(mut self) {
        self.claims.clear();
        self.announcer.update(&[], &self.claims);
        self.speaker.shutdown(false).await;
    }
}

fn label(p: &PeerConfig) -> String {
    match &p.remote {
        Remote::Address(a) => SocketAddr::new(*a, p.port).to_string(),
        Remote::Interface(i) => i.clone(),
    }
}
