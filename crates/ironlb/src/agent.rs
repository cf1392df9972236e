//! The node agent: one loop for `ironlb speaker` and `ironlb standalone`. A source (the
//! cluster's watches, or a file) says what this node should announce; the agent plans it
//! with gossip's word on the live nodes and what the engines answer now, converges the
//! engines to the plan, and tells the source what came of it.

use crate::engines::{Engines, Scrape, Served, follow_links};
use crate::gossip::Gossip;
use crate::signals;
use anyhow::{Result, bail};
use config::Config;
use ironlb_l2::announcer::Claims;
use ironlb_l2::interfaces::Link;
use ironlb_plan::Planner;
use ironlb_plan::announce::{Node, Plan, Service};
use ironlb_plan::sessions::Local;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::{mpsc, watch};

/// What the planner needs from a source for one pass.
pub struct Inputs<'a> {
    pub config: &'a Config,
    pub local: Local,
    /// Every node the source knows, this one among them, with gossip's liveness.
    pub nodes: Vec<Node>,
    /// Shared with the source, which may keep them from pass to pass.
    pub services: Vec<Arc<Service>>,
}

/// Where a node's desired state comes from.
pub trait Source {
    /// Resolves at the source's next change; an error ends the agent. Cancel-safe: the agent
    /// waits on it beside the other inputs.
    async fn changed(&mut self) -> Result<()>;
    /// Takes the change in: a valid state replaces the last, an invalid one is reported and
    /// the last valid one keeps running. Gossip's names may follow (the cluster's Nodes).
    fn take(&mut self, gossip: &mut Gossip);
    /// The planner's inputs from the last valid state, with gossip's word on the live
    /// nodes; None before any valid state.
    fn inputs(&mut self, gossip: &mut Gossip) -> Option<Inputs<'_>>;
    /// What came of a pass: the plan applied, and the layer-2 IPs no interface here can
    /// carry.
    fn applied(&mut self, plan: &Plan, unplaced: &Claims);
}

/// What woke the agent.
enum Input {
    /// The source changed: take it in, then plan.
    Source,
    /// A link or the membership changed: plan again.
    Network,
    /// A scrape waits for the engines' counters.
    Scrape(Scrape),
    Shutdown,
}

pub struct Agent {
    me: String,
    engines: Engines,
    gossip: Gossip,
    links: watch::Receiver<Vec<Link>>,
    /// Set once a pass has run from a valid state: /readyz answers ready.
    ready: Arc<AtomicBool>,
    scrapes: mpsc::Receiver<Scrape>,
    /// The plan, kept between passes so that a pass plans only what changed.
    planner: Planner,
}

impl Agent {
    /// An agent for node `me`, following the node's links.
    pub async fn new(me: &str, engines: Engines, gossip: Gossip, served: Served) -> Result<Agent> {
        Ok(Agent {
            me: me.to_string(),
            engines,
            gossip,
            links: follow_links().await?,
            ready: served.ready,
            scrapes: served.scrapes,
            planner: Planner::default(),
        })
    }

    /// Runs until a shutdown signal, then withdraws routes and releases layer-2 IPs.
    pub async fn run(mut self, source: &mut impl Source) -> Result<()> {
        let mut input = Input::Source;
        loop {
            match input {
                Input::Source => {
                    source.take(&mut self.gossip);
                    self.pass(source);
                }
                Input::Network => self.pass(source),
                Input::Scrape(done) => {
                    self.engines.refresh_metrics();
                    let _ = done.send(());
                }
                Input::Shutdown => break,
            }
            input = self.next(source).await?;
        }
        tracing::info!("shutting down: withdrawing routes and releasing layer-2 IPs");
        self.engines.shutdown().await;
        Ok(())
    }

    async fn next(&mut self, source: &mut impl Source) -> Result<Input> {
        Ok(tokio::select! {
            changed = source.changed() => {
                changed?;
                Input::Source
            }
            () = self.gossip.changed() => Input::Network,
            changed = self.links.changed() => {
                if changed.is_err() {
                    bail!("netlink stopped")
                }
                Input::Network
            }
            Some(scrape) = self.scrapes.recv() => Input::Scrape(scrape),
            () = signals::shutdown() => Input::Shutdown,
        })
    }

    /// One pass from the source's last valid state to the network.
    fn pass(&mut self, source: &mut impl Source) {
        let Some(inputs) = source.inputs(&mut self.gossip) else {
            return;
        };
        let this = this_node(&inputs.nodes, &self.me, &self.engines);
        let plan = self.planner.node_plan(
            inputs.config,
            &inputs.local,
            &this,
            &inputs.nodes,
            &inputs.services,
        );
        let live: Vec<String> = inputs
            .nodes
            .iter()
            .filter(|n| n.live)
            .map(|n| n.name.clone())
            .collect();
        let unplaced = self.engines.apply(plan, &self.links.borrow_and_update());
        self.gossip.applied(live);
        log_skipped(plan);
        source.applied(plan, &unplaced);
        self.ready.store(true, Ordering::Relaxed);
    }
}

/// Why this node does not announce each Service whose reasons just changed.
fn log_skipped(plan: &Plan) {
    for service in &plan.changes.services {
        for reason in plan.skipped.get(service).into_iter().flatten() {
            tracing::info!(%service, reason, "not announced from this node");
        }
    }
}

/// This node as the planner sees it, with the layer-2 IPs it answers now; a node the source
/// does not list (its Node not yet seen) is live and unlabelled.
fn this_node(nodes: &[Node], me: &str, engines: &Engines) -> Node {
    let mut this = nodes
        .iter()
        .find(|n| n.name == me)
        .cloned()
        .unwrap_or(Node {
            name: me.to_string(),
            labels: Default::default(),
            live: true,
            network_available: true,
            sees_this: true,
            answering: Default::default(),
        });
    this.answering = engines.answering();
    this
}
