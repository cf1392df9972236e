//! The validated configuration. Everything downstream (allocator, planner, speaker, router
//! config generator) reads this, never the raw resources.

use crate::community::Community;
use crate::resources::Labels;
use crate::selector::Selector;
pub use api::v1beta2::DynamicASNMode;
use ipnet::IpNet;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Config {
    /// Pools by name.
    pub pools: BTreeMap<String, Pool>,
    /// BGP peers by name.
    pub peers: BTreeMap<String, Peer>,
    pub bfd_profiles: BTreeMap<String, BfdProfile>,
    pub l2_advertisements: Vec<L2Advertisement>,
    pub bgp_advertisements: Vec<BgpAdvertisement>,
    /// Interface-name patterns layer 2 never answers on; None means the built-in list.
    pub interface_exclusions: Option<Vec<String>>,
}

impl Config {
    /// The advertisements that apply to a pool.
    pub fn bgp_advertisements_for<'a>(
        &'a self,
        pool: &'a str,
    ) -> impl Iterator<Item = &'a BgpAdvertisement> {
        self.bgp_advertisements
            .iter()
            .filter(move |a| a.pools.contains(pool))
    }

    pub fn l2_advertisements_for<'a>(
        &'a self,
        pool: &'a str,
    ) -> impl Iterator<Item = &'a L2Advertisement> {
        self.l2_advertisements
            .iter()
            .filter(move |a| a.pools.contains(pool))
    }

    /// The peers a node with these labels talks to: those whose `nodeSelectors` select it.
    pub fn peers_for<'a>(&'a self, node_labels: &'a Labels) -> impl Iterator<Item = &'a Peer> {
        self.peers
            .values()
            .filter(move |p| crate::selector::any_matches(&p.node_selectors, node_labels))
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Pool {
    pub name: String,
    pub labels: Labels,
    /// Non-overlapping networks, each with host bits cleared, in the order written.
    pub cidrs: Vec<IpNet>,
    pub auto_assign: bool,
    pub avoid_buggy_ips: bool,
    /// Set for a "pinned" pool, used only by the Services it matches.
    pub allocation: Option<ServiceAllocation>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServiceAllocation {
    /// Lower is preferred; `None` (0 or unset) sorts last.
    pub priority: Option<u32>,
    pub namespaces: BTreeSet<String>,
    pub namespace_selectors: Vec<Selector>,
    pub service_selectors: Vec<Selector>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct L2Advertisement {
    pub name: String,
    pub pools: BTreeSet<String>,
    pub node_selectors: Vec<Selector>,
    /// Empty means every eligible interface.
    pub interfaces: BTreeSet<String>,
    pub service_selectors: Vec<Selector>,
    /// `preferredNodeSelectors`: the weight each selected node gains in the election when
    /// it matches.
    pub preferred: Vec<(u32, Selector)>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct BgpAdvertisement {
    pub name: String,
    pub pools: BTreeSet<String>,
    pub aggregation_length: u8,
    pub aggregation_length_v6: u8,
    pub local_pref: u32,
    pub communities: BTreeSet<Community>,
    pub node_selectors: Vec<Selector>,
    /// Peer names; empty means every peer.
    pub peers: BTreeSet<String>,
    pub service_selectors: Vec<Selector>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Peer {
    pub name: String,
    pub my_asn: u32,
    /// `localASN`: the AS this peer sees instead of `my_asn`, alone in the AS_PATH (FRR's
    /// `local-as N no-prepend replace-as`, as MetalLB configures it).
    pub local_asn: Option<u32>,
    /// 0 with `dynamic_asn`, which takes the router's AS from its OPEN.
    pub peer_asn: u32,
    pub dynamic_asn: Option<DynamicASNMode>,
    pub remote: PeerRemote,
    pub port: u16,
    pub source_address: Option<IpAddr>,
    pub timers: Timers,
    /// Time between connection attempts; `None` lets the speaker back off on its own.
    pub connect_time: Option<Duration>,
    pub router_id: Option<Ipv4Addr>,
    pub node_selectors: Vec<Selector>,
    /// The TCP MD5 key, resolved from `password` or `passwordSecret`.
    pub password: Option<String>,
    pub bfd_profile: Option<String>,
    pub graceful_restart: bool,
    pub ebgp_multihop: bool,
    pub dual_stack: bool,
}

/// Where a BGPPeer's router is.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum PeerRemote {
    /// `peerAddress`.
    Address(IpAddr),
    /// `interface`: unnumbered, to whichever router advertises itself on that link, at its
    /// IPv6 link-local address; the session carries both families.
    Interface(String),
}

impl PeerRemote {
    pub fn address(&self) -> Option<IpAddr> {
        match self {
            PeerRemote::Address(a) => Some(*a),
            PeerRemote::Interface(_) => None,
        }
    }
}

impl std::fmt::Display for PeerRemote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PeerRemote::Address(a) => a.fmt(f),
            PeerRemote::Interface(i) => write!(f, "interface {i}"),
        }
    }
}

impl Peer {
    /// The AS the session speaks as.
    pub fn session_asn(&self) -> u32 {
        self.local_asn.unwrap_or(self.my_asn)
    }

    /// Whether the session is iBGP: decided by the AS it speaks as, as FRR decides it, or by
    /// the kind of AS `dynamicASN` accepts.
    pub fn is_ibgp(&self) -> bool {
        match self.dynamic_asn {
            Some(mode) => mode == DynamicASNMode::Internal,
            None => self.session_asn() == self.peer_asn,
        }
    }
}

/// BGP hold and keepalive times. Unset in the resource means the RFC 4271 suggestion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timers {
    pub hold: Duration,
    pub keepalive: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            hold: Duration::from_secs(90),
            keepalive: Duration::from_secs(30),
        }
    }
}

/// BFD timers in milliseconds, with FRR's defaults filled in.
#[derive(Clone, Debug, PartialEq)]
pub struct BfdProfile {
    pub name: String,
    pub receive_interval_ms: u32,
    pub transmit_interval_ms: u32,
    pub detect_multiplier: u32,
    pub echo_interval_ms: u32,
    pub echo_mode: bool,
    pub passive_mode: bool,
    pub minimum_ttl: u32,
}
