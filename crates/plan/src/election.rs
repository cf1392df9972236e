//! Which node answers ARP/NDP for a layer-2 IP.
//!
//! The owner is the eligible live node with the lowest SHA-256 of `node + "#" + ip`, as in
//! MetalLB, so ironlb and MetalLB speakers agree during a migration. Hashing per (node, IP)
//! spreads IPs over nodes, and a node that does not own an IP can join or leave without
//! moving it. `preferredNodeSelectors` come first: the highest preference wins, and the hash
//! decides among equals, as MetalLB sorts its candidates.

use config::L2Advertisement;
use config::resources::Labels;
use config::selector::any_matches;
use sha2::{Digest, Sha256};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// Nodes with this label never announce (any value).
pub const EXCLUDE_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";

/// A node as the election sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node<'a> {
    pub name: &'a str,
    pub labels: &'a Labels,
    /// Alive according to membership (or node readiness when gossip is unavailable).
    pub live: bool,
    /// False when the node's `NetworkUnavailable` condition is true.
    pub network_available: bool,
}

/// The nodes that may answer for a Service's IP: live, with a working network, not
/// excluded, selected by at least one of the advertisements that apply, and under
/// `externalTrafficPolicy: Local` hosting an endpoint that can serve (`local_endpoints`).
pub fn candidates<'a>(
    nodes: &[Node<'a>],
    ads: &[&L2Advertisement],
    local_endpoints: Option<&BTreeSet<String>>,
) -> Vec<&'a str> {
    nodes
        .iter()
        .filter(|n| n.live && n.network_available && !n.labels.contains_key(EXCLUDE_LABEL))
        .filter(|n| {
            ads.iter()
                .any(|ad| any_matches(&ad.node_selectors, n.labels))
        })
        .filter(|n| local_endpoints.is_none_or(|local| local.contains(n.name)))
        .map(|n| n.name)
        .collect()
}

/// Each node's preference: the weights of the `preferredNodeSelectors` it matches, summed
/// over the advertisements that select it (MetalLB's `preferredScoresFor`). Nodes with none
/// are left out.
pub fn preferences<'a>(nodes: &[Node<'a>], ads: &[&L2Advertisement]) -> Preferences<'a> {
    let mut out = Preferences::new();
    for node in nodes {
        let score: u64 = ads
            .iter()
            .filter(|ad| any_matches(&ad.node_selectors, node.labels))
            .flat_map(|ad| &ad.preferred)
            .filter(|(_, selector)| selector.matches(node.labels))
            .map(|(weight, _)| u64::from(*weight))
            .sum();
        if score > 0 {
            out.insert(node.name, score);
        }
    }
    out
}

pub type Preferences<'a> = BTreeMap<&'a str, u64>;

/// The owner of `ip` (a Service's first ingress IP) among `candidates`: the most preferred,
/// The owner of `ip` (a Service's first ingress IP) among `candidates`, none preferred.
pub fn owner<'a>(ip: &IpAddr, candidates: &[&'a str]) -> Option<&'a str> {
    preferred_owner(ip, candidates, &Preferences::new())
}

/// The owner of `ip` among `candidates`: the most preferred, then the lowest hash.
pub fn preferred_owner<'a>(
    ip: &IpAddr,
    candidates: &[&'a str],
    preferences: &Preferences,
) -> Option<&'a str> {
    candidates.iter().copied().min_by_key(|node| {
        (
            Reverse(preferences.get(node).copied().unwrap_or(0)),
            rank(node, ip),
        )
    })
}

fn rank(node: &str, ip: &IpAddr) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(node.as_bytes());
    h.update(b"#");
    h.update(ip.to_string().as_bytes());
    h.finalize().into()
}
