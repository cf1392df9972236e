//! What one node announces: per-peer BGP route sets and the layer-2 IPs it claims, from the
//! validated config and the Services with their endpoints (MetalLB behaviour §3.5, §5.2,
//! §5.3). Pure: every node computes its own part of the same answer. The rules here plan
//! one Service at a time (`Part`); `crate::planner` joins the parts and keeps them between
//! passes.

use crate::ServiceKey;
use crate::election::{self, EXCLUDE_LABEL};
use config::resources::Labels;
use config::selector::any_matches;
use config::{Community, Config};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

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
    /// The object's uid, so that reports about it (events) name the very object.
    pub uid: Option<String>,
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

/// How this node announces one Service, for its status objects and events.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Announcement {
    /// The Service's IPs.
    pub ips: Vec<IpAddr>,
    /// The BGP peers it goes to, sorted, each once (a vector: most Services have one or
    /// two peers, and ten thousand one-entry sets held a map node of eleven slots each).
    pub peers: Vec<String>,
    /// Answered on layer 2 from here, on these interfaces (empty: every eligible one).
    pub layer2: Option<BTreeSet<String>>,
    /// The Service's uid, when known.
    pub uid: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Peer name → prefix → attributes.
    pub bgp: BTreeMap<String, BTreeMap<ipnet::IpNet, Route>>,
    /// IP → the interfaces to answer on (empty: every eligible interface).
    pub l2: BTreeMap<IpAddr, BTreeSet<String>>,
    /// Service key → how this node announces it; Services not announced are absent.
    /// Shared with the Service's part, and with whoever keeps the last plan's (the metrics).
    pub announced: BTreeMap<ServiceKey, Arc<Announcement>>,
    /// Service key → why this node does not announce it, for events and logs.
    pub skipped: BTreeMap<ServiceKey, Vec<&'static str>>,
    /// The BGP and BFD sessions to run (see `crate::planner`).
    pub sessions: crate::sessions::Sessions,
    /// The `metallb-excludel2` patterns for layer 2 (None: the defaults).
    pub exclusions: Option<Vec<String>>,
    /// What differs from the plan the same planner gave before.
    pub changes: Changes,
}

/// What a pass changed, so that engines and writers touch only that.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// The Services whose announcement or skip reasons changed.
    pub services: BTreeSet<ServiceKey>,
    /// Peer name → the prefixes whose route changed, with the route now (None: withdrawn).
    pub routes: BTreeMap<String, Vec<(ipnet::IpNet, Option<Route>)>>,
}

impl Route {
    /// Another advertisement of the same prefix: communities add up; the first LOCAL_PREF
    /// stays, as in MetalLB.
    pub fn merge(&mut self, other: &Route) {
        self.communities.extend(other.communities.iter().copied());
        if self.local_pref.is_none() {
            self.local_pref = other.local_pref;
        }
    }
}

/// One Service's part of this node's plan.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Part {
    /// (peer, prefix) → attributes, in order. Vectors, not maps: ten thousand parts of
    /// one route each held a map node of eleven slots each.
    pub routes: Vec<((String, ipnet::IpNet), Route)>,
    /// The layer-2 IPs, with the interfaces to answer on.
    pub l2: Vec<(IpAddr, BTreeSet<String>)>,
    pub announced: Option<Arc<Announcement>>,
    pub skipped: Vec<&'static str>,
}

impl Part {
    /// The announcement being built; a part being built holds the only reference to it.
    fn announce(&mut self, svc: &Service) -> &mut Announcement {
        Arc::make_mut(self.announced.get_or_insert_with(|| {
            Arc::new(Announcement {
                ips: svc.ips.clone(),
                uid: svc.uid.clone(),
                ..Announcement::default()
            })
        }))
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

/// This node's part of the announcement, given every node (for the layer-2 election), in
/// one pass of a new planner.
pub fn plan(config: &Config, this: &Node, nodes: &[Node], services: &[Service]) -> Plan {
    let services: Vec<Arc<Service>> = services.iter().cloned().map(Arc::new).collect();
    let mut planner = crate::planner::Planner::default();
    planner.announce(config, this, nodes, &services);
    planner.into_plan()
}

/// What this node does with one Service; `peers` are this node's BGP peers.
pub fn part(
    config: &Config,
    this: &Node,
    nodes: &[Node],
    peers: &[&config::Peer],
    svc: &Service,
) -> Part {
    let mut out = Part::default();
    if !svc.ips.is_empty() {
        bgp(config, this, peers, svc, &mut out);
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

fn bgp(config: &Config, this: &Node, peers: &[&config::Peer], svc: &Service, out: &mut Part) {
    let ads: Vec<&config::BgpAdvertisement> = config
        .bgp_advertisements_for(&svc.pool)
        .filter(|ad| any_matches(&ad.service_selectors, &svc.labels))
        .collect();
    if ads.is_empty() {
        return;
    }
    if !this.may_announce() {
        return out.skipped.push("nodeExcluded");
    }
    let endpoints_ok = if svc.local_traffic {
        serving_here(svc, &this.name, true)
    } else {
        serving_anywhere(svc, true)
    };
    if !endpoints_ok {
        return out.skipped.push(if svc.local_traffic {
            "noLocalEndpoints"
        } else {
            "noEndpoints"
        });
    }
    let mut announced_to = BTreeSet::new();
    let mut routes: BTreeMap<(String, ipnet::IpNet), Route> = BTreeMap::new();
    for ad in ads
        .iter()
        .filter(|ad| any_matches(&ad.node_selectors, &this.labels))
    {
        let route = Route {
            communities: ad.communities.iter().copied().collect(),
            local_pref: (ad.local_pref != 0).then_some(ad.local_pref),
        };
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
                routes
                    .entry((peer.name.clone(), prefix))
                    .or_default()
                    .merge(&route);
            }
        }
    }
    out.routes = routes.into_iter().collect();
    if !announced_to.is_empty() {
        out.announce(svc).peers = announced_to.into_iter().collect();
    }
}

fn l2(config: &Config, this: &Node, nodes: &[Node], svc: &Service, out: &mut Part) {
    let ads: Vec<&config::L2Advertisement> = config
        .l2_advertisements_for(&svc.pool)
        .filter(|ad| any_matches(&ad.service_selectors, &svc.labels))
        .collect();
    if ads.is_empty() {
        return;
    }
    if svc.shared && ads.iter().any(|ad| !ad.service_selectors.is_empty()) {
        return out.skipped.push("sharedIPWithServiceSelector");
    }
    if !serving_anywhere(svc, false) {
        return out.skipped.push("noEndpoints");
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
        return out.skipped.push("waitingForHandover");
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
    out.l2 = svc.ips.iter().map(|ip| (*ip, interfaces.clone())).collect();
    out.announce(svc).layer2 = Some(interfaces);
}
