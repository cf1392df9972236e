//! The sessions this node runs, from the config: a BGP session for each peer whose
//! `nodeSelectors` select it, and a BFD session for each of those with a BFDProfile. With
//! the announcements they make the engines' whole input, so the engines never read the
//! config. Pure.

use crate::announce::Route;
use config::resources::Labels;
use config::{BfdProfile, Community, Config, DynamicASNMode, Peer, PeerRemote};
use ironlb_bfd::driver::PeerSpec;
use ironlb_bfd::session::Timers;
use ironlb_bgp::routes::{Rib, RouteAttrs};
use ironlb_bgp::session::PeerAs;
use ironlb_bgp::speaker::{PeerConfig, Remote};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

/// This node as its sessions see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Local {
    /// What BGPPeer `nodeSelectors` match: the Node's labels.
    pub labels: Labels,
    /// The BGP identifier for peers that do not set `routerID`.
    pub router_id: Ipv4Addr,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sessions {
    pub bgp: Vec<PeerConfig>,
    /// By the peer's address; unnumbered peers have none (validation refuses BFD on them).
    pub bfd: BTreeMap<IpAddr, PeerSpec>,
}

pub fn sessions(config: &Config, local: &Local) -> Sessions {
    let mut out = Sessions::default();
    for p in config.peers_for(&local.labels) {
        out.bgp.push(bgp(p, local.router_id));
        let profile = p
            .bfd_profile
            .as_ref()
            .and_then(|n| config.bfd_profiles.get(n));
        if let (Some(profile), PeerRemote::Address(address)) = (profile, &p.remote) {
            out.bfd.insert(*address, bfd(p, profile));
        }
    }
    out
}

fn bgp(p: &Peer, router_id: Ipv4Addr) -> PeerConfig {
    PeerConfig {
        port: p.port,
        hold_time: u16::try_from(p.timers.hold.as_secs()).unwrap_or(u16::MAX),
        keepalive: Some(p.timers.keepalive),
        source_address: p.source_address,
        password: p.password.clone(),
        ebgp_multihop: p.ebgp_multihop,
        graceful_restart: p.graceful_restart,
        connect_time: p.connect_time,
        dual_stack: p.dual_stack,
        peer_asn: match p.dynamic_asn {
            Some(DynamicASNMode::Internal) => PeerAs::Internal,
            Some(DynamicASNMode::External) => PeerAs::External,
            None => PeerAs::Is(p.peer_asn),
        },
        ..PeerConfig::new(
            &p.name,
            match &p.remote {
                PeerRemote::Address(a) => Remote::Address(*a),
                PeerRemote::Interface(i) => Remote::Interface(i.clone()),
            },
            p.session_asn(),
            p.peer_asn,
            p.router_id.unwrap_or(router_id),
        )
    }
}

/// A peer's BFD session: multihop (RFC 5883, with the profile's minimum TTL) for a
/// multihop peer.
fn bfd(p: &Peer, profile: &BfdProfile) -> PeerSpec {
    let ms = |v: u32| Duration::from_millis(u64::from(v));
    PeerSpec {
        timers: Timers {
            desired_min_tx: ms(profile.transmit_interval_ms),
            required_min_rx: ms(profile.receive_interval_ms),
            detect_mult: u8::try_from(profile.detect_multiplier).unwrap_or(u8::MAX),
            passive: profile.passive_mode,
            echo: profile.echo_mode.then(|| ms(profile.echo_interval_ms)),
            // The peer's echoes are looped as fast as ours go; the driver asks for none
            // where this host does not forward.
            echo_rx: ms(profile.echo_interval_ms),
        },
        source: p.source_address,
        multihop: p
            .ebgp_multihop
            .then(|| u8::try_from(profile.minimum_ttl).unwrap_or(u8::MAX)),
    }
}

/// Each peer's routes as the speaker sends them.
pub fn ribs(bgp: &BTreeMap<String, BTreeMap<ipnet::IpNet, Route>>) -> BTreeMap<String, Rib> {
    bgp.iter()
        .map(|(peer, prefixes)| {
            let rib = prefixes
                .iter()
                .map(|(prefix, route)| (*prefix, attrs(route)))
                .collect();
            (peer.clone(), rib)
        })
        .collect()
}

/// A plan's route changes for one peer (`Changes::routes`) as the speaker takes them.
pub fn rib_changes(changes: &[(ipnet::IpNet, Option<Route>)]) -> Vec<ironlb_bgp::routes::Change> {
    changes
        .iter()
        .map(|(prefix, route)| (*prefix, route.as_ref().map(attrs)))
        .collect()
}

fn attrs(route: &Route) -> RouteAttrs {
    let mut out = RouteAttrs {
        local_pref: route.local_pref,
        ..RouteAttrs::default()
    };
    for c in &route.communities {
        match *c {
            Community::Standard(asn, value) => {
                out.communities
                    .insert(u32::from(asn) << 16 | u32::from(value));
            }
            Community::Large(a, b, c) => {
                out.large_communities.insert([a, b, c]);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn communities_split_into_standard_and_large() {
        let route = Route {
            communities: BTreeSet::from([
                Community::Standard(64512, 100),
                Community::Large(64512, 1, 2),
            ]),
            local_pref: Some(150),
        };
        let a = attrs(&route);
        assert_eq!(a.communities, BTreeSet::from([64512u32 << 16 | 100]));
        assert_eq!(a.large_communities, BTreeSet::from([[64512, 1, 2]]));
        assert_eq!(a.local_pref, Some(150));
    }
}
