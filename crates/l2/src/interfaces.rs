//! Which interfaces answer ARP and NDP, and on which of them each claimed IP is answered.
//! The rules are MetalLB's (reference §5.2), so a node that worked with MetalLB answers on
//! the same NICs after switching.

use ipnet::IpNet;
use regex::RegexSet;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// MetalLB's default `announcedInterfacesToExclude`: container, bridge and tunnel devices that
/// never face the LAN the Service IPs live on.
pub const DEFAULT_EXCLUDE: [&str; 14] = [
    "^docker.*",
    "^cbr.*",
    "^dummy.*",
    "^virbr.*",
    "^lxcbr.*",
    "^veth.*",
    "^lo$",
    "^cali.*",
    "^tunl.*",
    "^flannel.*",
    "^kube-ipvs.*",
    "^cni.*",
    "^nodelocaldns.*",
    "^lxc.*",
];

/// What the kernel reports about one link (read by `links::scan`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Link {
    pub name: String,
    /// The kernel's index: a link deleted and re-created under the same name gets a new one.
    pub index: u32,
    pub up: bool,
    /// A bridge or bond member: its master answers for it.
    pub enslaved: bool,
    pub noarp: bool,
    pub broadcast: bool,
    pub ipv6_link_local: bool,
    /// The networks of its addresses (link-local ones excluded).
    pub networks: Vec<IpNet>,
}

/// An interface that answers, and for which protocols.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Answering {
    pub name: String,
    pub index: u32,
    pub arp: bool,
    pub ndp: bool,
    pub networks: Vec<IpNet>,
}

/// Interface names never answered on, as regular expressions.
#[derive(Clone, Debug)]
pub struct Exclusions(RegexSet);

impl Exclusions {
    pub fn new<I, S>(patterns: I) -> Result<Exclusions, regex::Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        RegexSet::new(patterns).map(Exclusions)
    }

    /// The patterns of a `metallb-excludel2` ConfigMap, or MetalLB's defaults without one.
    /// Validation compiles each pattern first, so the fallback to the defaults is only for
    /// a set that was never validated.
    pub fn configured(patterns: Option<&[String]>) -> Exclusions {
        patterns
            .and_then(|p| Exclusions::new(p).ok())
            .unwrap_or_default()
    }

    fn excludes(&self, name: &str) -> bool {
        self.0.is_match(name)
    }
}

impl Default for Exclusions {
    fn default() -> Exclusions {
        Exclusions::new(DEFAULT_EXCLUDE).expect("the default patterns are valid")
    }
}

/// The interfaces that answer: up, not excluded, not enslaved, ARP-capable; ARP needs
/// broadcast and NDP needs an IPv6 link-local address to send from.
pub fn answering(links: &[Link], exclude: &Exclusions) -> Vec<Answering> {
    links
        .iter()
        .filter(|l| l.up && !l.enslaved && !l.noarp && !exclude.excludes(&l.name))
        .map(|l| Answering {
            name: l.name.clone(),
            index: l.index,
            arp: l.broadcast,
            ndp: l.ipv6_link_local,
            networks: l.networks.clone(),
        })
        .filter(|a| a.arp || a.ndp)
        .collect()
}

/// Where the claims go: interface → the IPs it answers for.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Placement {
    pub by_interface: BTreeMap<String, BTreeSet<IpAddr>>,
    /// Claims that no answering interface can carry; MetalLB's `announceFailed`.
    pub unplaced: BTreeMap<IpAddr, BTreeSet<String>>,
}

/// Places each claim (IP → the interfaces its L2Advertisements name) on the answering
/// interfaces of its family. A claim that names none goes to the interfaces whose subnet
/// holds the IP, where its clients are, so a second NIC on another network does not
/// answer for it too; when no subnet holds it, to all of them, as MetalLB does.
pub fn place(claims: &BTreeMap<IpAddr, BTreeSet<String>>, answering: &[Answering]) -> Placement {
    let mut out = Placement::default();
    for (ip, wanted) in claims {
        let mut placed = false;
        let fits: Vec<&Answering> = answering
            .iter()
            .filter(|a| match ip {
                IpAddr::V4(_) => a.arp,
                IpAddr::V6(_) => a.ndp,
            })
            .collect();
        let on_subnet = |a: &&&Answering| a.networks.iter().any(|n| n.contains(ip));
        let local = wanted.is_empty() && fits.iter().any(|a| on_subnet(&a));
        let chosen = fits.iter().filter(|a| {
            if local {
                on_subnet(a)
            } else {
                wanted.is_empty() || wanted.contains(&a.name)
            }
        });
        for a in chosen {
            out.by_interface
                .entry(a.name.clone())
                .or_default()
                .insert(*ip);
            placed = true;
        }
        if !placed {
            out.unplaced.insert(*ip, wanted.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(name: &str) -> Link {
        Link {
            name: name.into(),
            up: true,
            broadcast: true,
            ipv6_link_local: true,
            ..Link::default()
        }
    }

    fn names(links: &[Link]) -> Vec<String> {
        answering(links, &Exclusions::default())
            .into_iter()
            .map(|a| a.name)
            .collect()
    }

    #[test]
    fn which_links_answer() {
        let cases: Vec<(&str, Link, bool)> = vec![
            ("plain NIC", link("eth0"), true),
            ("bridge", link("br0"), true),
            ("VLAN", link("eth0.42"), true),
            (
                "down",
                Link {
                    up: false,
                    ..link("eth1")
                },
                false,
            ),
            (
                "bond member",
                Link {
                    enslaved: true,
                    ..link("eth2")
                },
                false,
            ),
            (
                "NOARP",
                Link {
                    noarp: true,
                    ..link("wg0")
                },
                false,
            ),
            ("loopback", link("lo"), false),
            ("not only lo", link("lo1"), true),
            ("docker", link("docker0"), false),
            ("veth", link("veth1a2b"), false),
            ("calico", link("cali12345"), false),
            ("flannel", link("flannel.1"), false),
            ("kube-ipvs", link("kube-ipvs0"), false),
            ("cni", link("cni0"), false),
            ("lxc", link("lxc_health"), false),
            (
                "neither ARP nor NDP",
                Link {
                    broadcast: false,
                    ipv6_link_local: false,
                    ..link("tun0")
                },
                false,
            ),
        ];
        for (case, l, expected) in cases {
            assert_eq!(
                !names(std::slice::from_ref(&l)).is_empty(),
                expected,
                "{case}"
            );
        }
    }

    #[test]
    fn protocols_follow_the_flags() {
        let links = [
            Link {
                ipv6_link_local: false,
                ..link("eth0")
            },
            Link {
                broadcast: false,
                ..link("eth1")
            },
        ];
        let got = answering(&links, &Exclusions::default());
        assert_eq!(
            got,
            vec![
                Answering {
                    name: "eth0".into(),
                    arp: true,
                    ..Answering::default()
                },
                Answering {
                    name: "eth1".into(),
                    ndp: true,
                    ..Answering::default()
                },
            ]
        );
    }

    #[test]
    fn custom_exclusions_replace_the_defaults() {
        let ex = Exclusions::new(["^eth1$"]).unwrap();
        let got: Vec<_> = answering(&[link("eth0"), link("eth1"), link("docker0")], &ex)
            .into_iter()
            .map(|a| a.name)
            .collect();
        assert_eq!(got, ["eth0", "docker0"]);
        assert!(Exclusions::new(["("]).is_err());
    }

    #[test]
    fn claims_are_placed_by_family_and_advertised_interfaces() {
        let answering = [
            Answering {
                name: "eth0".into(),
                index: 2,
                arp: true,
                ndp: true,
                networks: Vec::new(),
            },
            Answering {
                name: "eth1".into(),
                index: 3,
                arp: true,
                ndp: false,
                networks: Vec::new(),
            },
        ];
        let v4: IpAddr = "192.0.2.10".parse().unwrap();
        let v4_pinned: IpAddr = "192.0.2.11".parse().unwrap();
        let v6: IpAddr = "2001:db8::10".parse().unwrap();
        let v6_on_eth1: IpAddr = "2001:db8::11".parse().unwrap();
        let missing: IpAddr = "192.0.2.12".parse().unwrap();
        let set = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<BTreeSet<_>>();
        let claims = BTreeMap::from([
            (v4, set(&[])),
            (v4_pinned, set(&["eth1"])),
            (v6, set(&[])),
            (v6_on_eth1, set(&["eth1"])),
            (missing, set(&["eth9"])),
        ]);
        let got = place(&claims, &answering);
        assert_eq!(
            got.by_interface,
            BTreeMap::from([
                ("eth0".to_string(), BTreeSet::from([v4, v6])),
                ("eth1".to_string(), BTreeSet::from([v4, v4_pinned])),
            ])
        );
        assert_eq!(
            got.unplaced,
            BTreeMap::from([(v6_on_eth1, set(&["eth1"])), (missing, set(&["eth9"]))])
        );
    }

    #[test]
    fn an_ip_is_answered_where_its_subnet_is_or_everywhere_when_none_holds_it() {
        let nic = |name: &str, net: &str| Answering {
            name: name.into(),
            arp: true,
            ndp: true,
            networks: vec![net.parse().unwrap()],
            ..Answering::default()
        };
        let answering = [nic("eth0", "192.0.2.0/24"), nic("eth1", "198.51.100.0/24")];
        let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
        let set = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<BTreeSet<_>>();
        let cases: [(&str, &[&str], &[&str]); 4] = [
            ("192.0.2.130", &[], &["eth0"]),
            ("198.51.100.7", &[], &["eth1"]),
            ("203.0.113.9", &[], &["eth0", "eth1"]),
            ("192.0.2.131", &["eth1"], &["eth1"]),
        ];
        for (addr, wanted, expected) in cases {
            let got = place(&BTreeMap::from([(ip(addr), set(wanted))]), &answering);
            let on: Vec<&String> = got.by_interface.keys().collect();
            assert_eq!(on, expected.to_vec(), "{addr} naming {wanted:?}");
        }
    }
}
