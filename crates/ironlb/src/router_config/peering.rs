//! The router's view of the peering, computed from the validated config: pure, so every
//! dialect renders the same facts.

use anyhow::{Result, anyhow, bail};
use config::{BfdProfile, Config, Peer, PeerRemote, Timers};
use ipnet::IpNet;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

/// Which nodes the router accepts sessions from.
#[derive(Clone, Debug, PartialEq)]
pub enum Nodes {
    Addresses(Vec<IpAddr>),
    /// A listen range: any node in it may connect (dynamic neighbors).
    Range(IpNet),
}

impl FromStr for Nodes {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        let items: Vec<&str> = s.split([',', ' ']).filter(|i| !i.is_empty()).collect();
        if let [single] = items.as_slice()
            && single.contains('/')
        {
            let net: IpNet = single
                .parse()
                .map_err(|_| anyhow!("--nodes: {single:?} is not a CIDR"))?;
            return Ok(Nodes::Range(net.trunc()));
        }
        let addresses = items
            .iter()
            .map(|i| i.parse().map_err(|_| anyhow!("--nodes: {i:?} is not an IP address (give IPs separated by commas, or one CIDR)")))
            .collect::<Result<Vec<IpAddr>>>()?;
        if addresses.is_empty() {
            bail!("--nodes is empty");
        }
        Ok(Nodes::Addresses(addresses))
    }
}

impl Nodes {
    pub fn count(&self) -> Option<usize> {
        match self {
            Nodes::Addresses(a) => Some(a.len()),
            Nodes::Range(_) => None,
        }
    }

    pub fn has_v6(&self) -> bool {
        match self {
            Nodes::Addresses(a) => a.iter().any(IpAddr::is_ipv6),
            Nodes::Range(n) => n.addr().is_ipv6(),
        }
    }
}

/// One accepted announcement range: prefixes inside `net` of length `min_len..=max_len`.
#[derive(Clone, Debug, PartialEq)]
pub struct PrefixFilter {
    pub net: IpNet,
    pub min_len: u8,
    pub max_len: u8,
}

impl PrefixFilter {
    /// `ge`/`le` bounds as FRR and Cisco-style syntax wants them: `ge` must exceed the
    /// network's own length, and neither is written when only the network itself is meant.
    pub fn ge_le(&self) -> (Option<u8>, Option<u8>) {
        let len = self.net.prefix_len();
        let ge = (self.min_len > len).then_some(self.min_len);
        let le = (self.max_len > len).then_some(self.max_len);
        (ge, le)
    }

    /// The bounds as FRR writes them after the network: ` ge 28 le 32`.
    pub fn ge_le_suffix(&self) -> String {
        let (ge, le) = self.ge_le();
        let mut out = String::new();
        if let Some(ge) = ge {
            out.push_str(&format!(" ge {ge}"));
        }
        if let Some(le) = le {
            out.push_str(&format!(" le {le}"));
        }
        out
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Peering {
    pub router_asn: u32,
    pub router_address: IpAddr,
    pub router_id: Option<Ipv4Addr>,
    pub cluster_asn: u32,
    pub nodes: Nodes,
    pub password: Option<String>,
    pub multihop: bool,
    /// Only when the config sets them; otherwise the router keeps its defaults.
    pub timers: Option<Timers>,
    pub bfd: Option<BfdProfile>,
    pub prefixes: Vec<PrefixFilter>,
}

impl Peering {
    pub fn is_ibgp(&self) -> bool {
        self.router_asn == self.cluster_asn
    }

    /// The prefix filters of one address family.
    pub fn prefixes_of(&self, v6: bool) -> Vec<&PrefixFilter> {
        self.prefixes
            .iter()
            .filter(|f| f.net.addr().is_ipv6() == v6)
            .collect()
    }

    /// ECMP width: one path per node, or 8 for a listen range.
    pub fn max_paths(&self) -> usize {
        self.nodes.count().unwrap_or(8).max(1)
    }

    pub fn from_config(config: &Config, nodes: Nodes, peer: Option<&str>) -> Result<Self> {
        let peers: Vec<&Peer> = match peer {
            Some(name) => vec![
                config
                    .peers
                    .get(name)
                    .ok_or_else(|| anyhow!("no BGPPeer named {name:?}"))?,
            ],
            None => config.peers.values().collect(),
        };
        let Some(first) = peers.first() else {
            bail!("the configuration has no BGP peers, so there is no router side to generate");
        };
        let address = |p: &Peer| match &p.remote {
            PeerRemote::Address(a) => Ok(*a),
            PeerRemote::Interface(interface) => Err(anyhow!(
                "BGPPeer {:?} is unnumbered (interface {interface}), and this generator writes address peerings only; on FRR the router's side is `neighbor IFACE interface remote-as {}` on the link toward the nodes",
                p.name,
                p.session_asn()
            )),
        };
        let router_address = address(first)?;
        let routers: Vec<String> = peers
            .iter()
            .map(|p| address(p).map(|a| a.to_string()))
            .collect::<Result<std::collections::BTreeSet<_>>>()?
            .into_iter()
            .collect();
        if routers.len() > 1 {
            bail!(
                "the peers point at {} routers ({}); choose one with --peer NAME",
                routers.len(),
                routers.join(", ")
            );
        }
        if let Some(other) = peers
            .iter()
            .find(|p| p.session_asn() != first.session_asn() || p.peer_asn != first.peer_asn)
        {
            bail!(
                "BGPPeers {:?} and {:?} use different AS numbers toward the same router; choose one with --peer NAME",
                first.name,
                other.name
            );
        }
        let timers = (first.timers != Timers::default()).then_some(first.timers);
        let bfd = first
            .bfd_profile
            .as_ref()
            .and_then(|n| config.bfd_profiles.get(n))
            .cloned();
        let router_asn = match first.dynamic_asn {
            None => first.peer_asn,
            Some(config::DynamicASNMode::Internal) => first.session_asn(),
            Some(config::DynamicASNMode::External) => bail!(
                "BGPPeer {:?} takes the router's AS from its OPEN (dynamicASN: external), so the router's side cannot be written from it; set peerASN to the router's AS to generate it",
                first.name
            ),
        };
        Ok(Peering {
            router_asn,
            router_address,
            router_id: match router_address {
                IpAddr::V4(a) => Some(a),
                IpAddr::V6(_) => None,
            },
            cluster_asn: first.session_asn(),
            nodes,
            password: first.password.clone(),
            multihop: first.ebgp_multihop,
            timers,
            bfd,
            prefixes: prefixes(config, &peers),
        })
    }
}

/// Every prefix the cluster may announce to these peers: each BGP pool network, with the
/// lengths its advertisements aggregate to.
fn prefixes(config: &Config, peers: &[&Peer]) -> Vec<PrefixFilter> {
    let mut by_net: BTreeMap<(bool, IpNet), (u8, u8)> = BTreeMap::new();
    for ad in &config.bgp_advertisements {
        if !ad.peers.is_empty() && !peers.iter().any(|p| ad.peers.contains(&p.name)) {
            continue;
        }
        for pool in ad.pools.iter().filter_map(|p| config.pools.get(p)) {
            for net in &pool.cidrs {
                let len = if net.addr().is_ipv6() {
                    ad.aggregation_length_v6
                } else {
                    ad.aggregation_length
                };
                let entry = by_net
                    .entry((net.addr().is_ipv6(), *net))
                    .or_insert((len, len));
                entry.0 = entry.0.min(len);
                entry.1 = entry.1.max(len);
            }
        }
    }
    by_net
        .into_iter()
        .map(|((_, net), (min_len, max_len))| PrefixFilter {
            net,
            min_len,
            max_len,
        })
        .collect()
}

/// What applies whatever the router (reference: home-router peering rules).
pub fn warnings(p: &Peering) -> Vec<String> {
    let mut w = Vec::new();
    if p.prefixes.is_empty() {
        w.push(
            "no pool is advertised over BGP to this peer, so the prefix filter accepts nothing"
                .to_string(),
        );
    }
    if let Nodes::Range(net) = &p.nodes
        && !net.contains(&p.router_address)
        && !p.multihop
    {
        w.push(format!(
            "the router {} is outside the node range {net}: sessions need multihop (set ebgpMultiHop: true on the BGPPeer)",
            p.router_address
        ));
    }
    if let Nodes::Addresses(addresses) = &p.nodes
        && let Some(other) = addresses
            .iter()
            .find(|a| a.is_ipv6() != p.router_address.is_ipv6())
    {
        w.push(format!(
            "node address {other} is not of the router address's family ({}): the BGPPeer makes nodes connect to {}, so list the node addresses they connect from",
            p.router_address, p.router_address
        ));
    }
    if p.nodes.has_v6() && p.prefixes.iter().all(|f| f.net.addr().is_ipv4()) {
        w.push("IPv6 nodes are listed but no IPv6 pool is advertised".to_string());
    }
    w.push(format!(
        "allow TCP 179 from the nodes to the router{}",
        if p.bfd.is_some() {
            ", and UDP 3784-3785 for BFD"
        } else {
            ""
        }
    ));
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_parse_as_list_or_range() {
        assert_eq!(
            "192.0.2.2,192.0.2.3".parse::<Nodes>().unwrap().count(),
            Some(2)
        );
        assert!(
            matches!("192.0.2.7/24".parse::<Nodes>().unwrap(), Nodes::Range(n) if n.to_string() == "192.0.2.0/24")
        );
        assert!("node1".parse::<Nodes>().is_err());
        assert!("".parse::<Nodes>().is_err());
    }

    #[test]
    fn ge_le_follow_prefix_list_rules() {
        let f = |net: &str, min_len, max_len| {
            PrefixFilter {
                net: net.parse().unwrap(),
                min_len,
                max_len,
            }
            .ge_le()
        };
        assert_eq!(f("198.51.100.0/24", 32, 32), (Some(32), Some(32)));
        assert_eq!(f("198.51.100.0/24", 24, 32), (None, Some(32)));
        assert_eq!(f("198.51.100.0/24", 24, 24), (None, None));
        assert_eq!(f("2001:db8::/120", 128, 128), (Some(128), Some(128)));
    }
}
