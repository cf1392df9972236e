//! What one node announces: per-peer BGP route sets and the layer-2 IPs it claims, from the
//! validated config and the Services with their endpoints (MetalLB behaviour §3.5, §5.2,
//! §5.3). Pure: every node computes its own part of the same answer.

use crate::ServiceKey;
use crate::election::{self, EXCLUDE_LABEL};
use config::resources::Labels;
use config::selector::any_matches;
use config::{Community, Config};
use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// One endpoint of a Service, from its EndpointSlices.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub node: Option<String>,
    pub ready: Option<bool>,
    pub serving: Option<bool>,
    pub has_address: bool,
}

impl Endpoint {
    /// Ready (or not saying), or still serving while terminating.
    pub fn can_serve(&self) -> bool {
        self.ready != Some(false) || self.serving == Some(true)
    }
}

/// A Service with its allocation, as the planner needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    pub key: ServiceKey,
    pub labels: Labels,
    /// Ingress IPs, first one first (the layer-2 election hashes the first).
    pub ips: Vec<IpAddr>,
    pub pool: String,
    /// `externalTrafficPolicy: Local`.
    pub local_traffic: bool,
    /// Carries `allow-shared-ip`.
    pub shared: bool,
    pub endpoints: Vec<Endpoint>,
}

/// A node as the planner sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    pub labels: Labels,
    /// Alive according to membership (layer 2 only).
    pub live: bool,
    pub network_available: bool,
    /// That node has applied a membership view that holds this node (true for this node
    /// itself, and wherever membership cannot tell). An IP moves to a node that joined only
    /// once the node answering for it without the newcomer has seen it join and let go, so
    /// the two never answer at once.
    pub sees_this: bool,
    /// The layer-2 IPs this node answers for now (read for `this` only): an IP it already
    /// answers is kept while it stays the owner, since nobody else answers it.
    pub answering: BTreeSet<IpAddr>,
}

impl Node {
    fn may_announce(&self) -> bool {
        self.network_available && !self.labels.contains_key(EXCLUDE_LABEL)
    }
}

/// The attributes of one announced prefix.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Route {
    pub communities: BTreeSet<Community>,
    /// Unset (0 in the resource) leaves the speaker's default.
    pub local_pref: Option<u32>,
}

/// Why a Service is not announced, for events and logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    pub service: ServiceKey,
    pub reason: &'static str,
}

/// How this node announces one Service, for its status objects and events.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Announcement {
    /// The Service's IPs.
    pub ips: Vec<IpAddr>,
    /// The BGP peers it goes to.
    pub peers: BTreeSet<String>,
    /// Answered on layer 2 from here, on these interfaces (empty: every eligible one).
    pub layer2: Option<BTreeSet<String>>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Peer name → prefix → attributes.
    pub bgp: BTreeMap<String, BTreeMap<ipnet::IpNet, Route>>,
    /// IP → the interfaces to answer on (empty: every eligible interface).
    pub l2: BTreeMap<IpAddr, BTreeSet<String>>,
    /// Service key → how this node announces it; Services not announced are absent.
    pub announced: BTreeMap<ServiceKey, Announcement>,
    pub skipped: Vec<Skipped>,
    /// The BGP and BFD sessions to run (see `crate::node_plan`).
    pub sessions: crate::sessions::Sessions,
    /// The `metallb-excludel2` patterns for layer 2 (None: the defaults).
    pub exclusions: Option<Vec<String>>,
}

impl Plan {
    /// Records why this node does not announce `svc`.
    fn skip(&mut self, svc: &Service, reason: &'static str) {
        self.skipped.push(Skipped {
            service: svc.key.clone(),
            reason,
        });
    }
}

/// Whether `this` may answer `ip`: it already does, or the node that would own `ip` without
/// `this` (the runner-up, which answers for it until it sees `this`) has seen `this`. A
/// runner-up that has died has no say.
fn handed_over(
    ip: &IpAddr,
    this: &Node,
    nodes: &[Node],
    (candidates, preferences): (&[&str], &election::Preferences),
) -> bool {
    if this.answering.contains(ip) {
        return true;
    }
    let others: Vec<&str> = candidates
        .iter()
        .copied()
        .filter(|c| *c != this.name)
        .collect();
    let Some(runner_up) = election::preferred_owner(ip, &others, preferences) else {
        return true;
    };
    nodes
        .iter()
        .find(|n| n.name == runner_up)
        .is_none_or(|n| n.sees_this)
}

/// This node's part of the announcement, given every node (for the layer-2 election).
pub fn plan(
    config: &Config,
    this: &Node,
    nodes: &[Node],
    services: &[impl Borrow<Service>],
) -> Plan {
    let mut out = Plan::default();
    let peers: Vec<&config::Peer> = config.peers_for(&this.labels).collect();
    for svc in services
        .iter()
        .map(Borrow::borrow)
        .filter(|s| !s.ips.is_empty())
    {
        bgp(config, this, &peers, svc, &mut out);
        l2(config, this, nodes, svc, &mut out);
    }
    out
}

fn serving_here(svc: &Service, node: &str, need_address: bool) -> bool {
    svc.endpoints.iter().any(|e| {
        e.can_serve() && (!need_address || e.has_address) && e.node.as_deref() == Some(node)
    })
}

fn serving_anywhere(svc: &Service, need_address: bool) -> bool {
    svc.endpoints
        .iter()
        .any(|e| e.can_serve() && (!need_address || e.has_address))
}

fn bgp(config: &Config, this: &Node, peers: &[&config::Peer], svc: &Service, out: &mut Plan) {
    let ads: Vec<&config::BgpAdvertisement> = config
        .bgp_advertisements_for(&svc.pool)
        .filter(|ad| any_matches(&ad.service_selectors, &svc.labels))
        .collect();
    if ads.is_empty() {
        return;
    }
    if !this.may_announce() {
        return out.skip(svc, "nodeExcluded");
    }
    let endpoints_ok = if svc.local_traffic {
        serving_here(svc, &this.name, true)
    } else {
        serving_anywhere(svc, true)
    };
    if !endpoints_ok {
        return out.skip(
            svc,
            if svc.local_traffic {
                "noLocalEndpoints"
            } else {
                "noEndpoints"
            },
        );
    }
    let mut announced_to = BTreeSet::new();
    for ad in ads
        .iter()
        .filter(|ad| any_matches(&ad.node_selectors, &this.labels))
    {
        for ip in &svc.ips {
            let len = if ip.is_ipv4() {
                ad.aggregation_length
            } else {
                ad.aggregation_length_v6
            };
            let Ok(prefix) = ipnet::IpNet::new(*ip, len).map(|n| n.trunc()) else {
                continue;
            };
            for peer in peers
                .iter()
                .filter(|p| ad.peers.is_empty() || ad.peers.contains(&p.name))
            {
                announced_to.insert(peer.name.clone());
                let route = out
                    .bgp
                    .entry(peer.name.clone())
                    .or_default()
                    .entry(prefix)
                    .or_default();
                // Same prefix from several advertisements: communities add up; the first
                // LOCAL_PREF stays, as in MetalLB.
                route.communities.extend(ad.communities.iter().copied());
                if route.local_pref.is_none() && ad.local_pref != 0 {
                    route.local_pref = Some(ad.local_pref);
                }
            }
        }
    }
    if !announced_to.is_empty() {
        let a = out.announced.entry(svc.key.clone()).or_default();
        a.ips.clone_from(&svc.ips);
        a.peers.extend(announced_to);
    }
}

fn l2(config: &Config, this: &Node, nodes: &[Node], svc: &Service, out: &mut Plan) {
    let ads: Vec<&config::L2Advertisement> = config
        .l2_advertisements_for(&svc.pool)
        .filter(|ad| any_matches(&ad.service_selectors, &svc.labels))
        .collect();
    if ads.is_empty() {
        return;
    }
    if svc.shared && ads.iter().any(|ad| !ad.service_selectors.is_empty()) {
        return out.skip(svc, "sharedIPWithServiceSelector");
    }
    if !serving_anywhere(svc, false) {
        return out.skip(svc, "noEndpoints");
    }
    let local: Option<BTreeSet<String>> = svc.local_traffic.then(|| {
        svc.endpoints
            .iter()
            .filter(|e| e.can_serve())
            .filter_map(|e| e.node.clone())
            .collect()
    });
    let eligible: Vec<election::Node> = nodes
        .iter()
        .map(|n| election::Node {
            name: &n.name,
            labels: &n.labels,
            live: n.live,
            network_available: n.network_available,
        })
        .collect();
    let candidates = election::candidates(&eligible, &ads, local.as_ref());
    let preferences = election::preferences(&eligible, &ads);
    let Some(first) = svc.ips.first() else { return };
    if election::preferred_owner(first, &candidates, &preferences) != Some(this.name.as_str()) {
        return;
    }
    if !handed_over(first, this, nodes, (&candidates, &preferences)) {
        return out.skip(svc, "waitingForHandover");
    }
    // Interfaces: the union over the advertisements that select this node; any without a
    // list means every interface.
    let mine: Vec<&&config::L2Advertisement> = ads
        .iter()
        .filter(|ad| any_matches(&ad.node_selectors, &this.labels))
        .collect();
    let interfaces: BTreeSet<String> = if mine.iter().any(|ad| ad.interfaces.is_empty()) {
        BTreeSet::new()
    } else {
        mine.iter()
            .flat_map(|ad| ad.interfaces.iter().cloned())
            .collect()
    };
    for ip in &svc.ips {
        out.l2.insert(*ip, interfaces.clone());
    }
    let a = out.announced.entry(svc.key.clone()).or_default();
    a.ips.clone_from(&svc.ips);
    a.layer2 = Some(interfaces);
}
