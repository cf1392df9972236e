//! The speaker against a real BIRD 2 in a network namespace; what BIRD learned is read with
//! its own CLI (`birdc show route all`).

use ipnet::IpNet;
use ironlb_bgp::routes::{Rib, RouteAttrs};
use ironlb_bgp::speaker::{PeerConfig, Speaker};
use ironlb_lab::{Netns, link, ready, wait_for};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

/// A router namespace running a real BGP daemon, linked to a node namespace where the
/// speaker runs. The router is at 192.0.2.1 / 2001:db8::1, the node at .2 / ::2.
struct Lab {
    /// Held so the router namespace, and the daemon in it, live until the test ends.
    _router: Netns,
    node: Netns,
    router: Router,
}

/// How to read what the router learned, from any thread.
#[derive(Clone)]
enum Router {
    Bird { netns: String, sock: String },
    Frr { netns: String, dir: String },
    Gobgp { netns: String },
}

impl Router {
    fn exec(netns: &str, program: &str, args: &[&str]) -> String {
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", netns, program])
            .args(args)
            .output();
        out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    /// The router's own view of one prefix, as its CLI prints it; empty when it has none.
    fn show(&self, prefix: &str) -> String {
        match self {
            Router::Bird { netns, sock } => {
                let out = Self::exec(
                    netns,
                    "birdc",
                    &["-s", sock, "show", "route", "all", "for", prefix],
                );
                if out.contains(prefix.split('/').next().unwrap_or(prefix)) {
                    out
                } else {
                    String::new()
                }
            }
            Router::Frr { netns, dir } => {
                let family = if prefix.contains(':') { "ipv6" } else { "ipv4" };
                let out = Self::exec(
                    netns,
                    "vtysh",
                    &[
                        "--vty_socket",
                        dir,
                        "-c",
                        &format!("show bgp {family} unicast {prefix} json"),
                    ],
                );
                if out.contains("\"paths\"") {
                    out
                } else {
                    String::new()
                }
            }
            Router::Gobgp { netns } => {
                let family = if prefix.contains(':') { "ipv6" } else { "ipv4" };
                let out = Self::exec(
                    netns,
                    "gobgp",
                    &[
                        "-u",
                        "127.0.0.1",
                        "-p",
                        "50051",
                        "global",
                        "rib",
                        "-a",
                        family,
                        prefix,
                        "-j",
                    ],
                );
                if out.contains("attrs") {
                    out
                } else {
                    String::new()
                }
            }
        }
    }

    /// Waits until the router's view of `prefix` satisfies `check`, and returns it.
    fn route(&self, prefix: &str, check: impl Fn(&str) -> bool) -> Option<String> {
        wait_for(Duration::from_secs(20), || {
            Some(self.show(prefix)).filter(|o| check(o))
        })
    }

    /// The router's view of `prefix` once it has one; otherwise a panic that shows the
    /// router's own session summary.
    fn has(&self, prefix: &str, speaker: &Speaker) -> String {
        self.route(prefix, |o| !o.is_empty()).unwrap_or_else(|| {
            panic!(
                "the router never learned {prefix}; its sessions:\n{}\nthe speaker's: {:#?}",
                self.diagnose(),
                speaker.status()
            )
        })
    }

    fn diagnose(&self) -> String {
        match self {
            Router::Bird { netns, sock } => {
                Self::exec(netns, "birdc", &["-s", sock, "show", "protocols", "all"])
            }
            Router::Frr { netns, dir } => Self::exec(
                netns,
                "vtysh",
                &["--vty_socket", dir, "-c", "show bgp summary"],
            ),
            Router::Gobgp { netns } => {
                let n = Self::exec(
                    netns,
                    "gobgp",
                    &["-u", "127.0.0.1", "-p", "50051", "neighbor"],
                );
                let rib = Self::exec(
                    netns,
                    "gobgp",
                    &[
                        "-u",
                        "127.0.0.1",
                        "-p",
                        "50051",
                        "global",
                        "rib",
                        "-a",
                        "ipv4",
                    ],
                );
                format!("{n}\n{rib}")
            }
        }
    }

    fn lacks(&self, prefix: &str) -> bool {
        self.route(prefix, str::is_empty).is_some()
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Daemon {
    Bird,
    Frr,
    Gobgp,
}

/// Peering options on the router side.
struct RouterSide {
    local_as: u32,
    node_as: u32,
    password: Option<&'static str>,
}

fn lab(tag: &str, daemon: Daemon, side: RouterSide) -> Lab {
    let mut router = Netns::new(&format!("{tag}r"));
    let node = Netns::new(&format!("{tag}n"));
    link(
        &router,
        &["192.0.2.1/24", "2001:db8::1/64"],
        &node,
        &["192.0.2.2/24", "2001:db8::2/64"],
    );
    let dir = std::env::temp_dir().join(&router.name);
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.display().to_string();
    let RouterSide {
        local_as,
        node_as,
        password,
    } = side;
    let handle = match daemon {
        Daemon::Bird => {
            let password = password
                .map(|p| format!("  password \"{p}\";\n"))
                .unwrap_or_default();
            let conf = format!(
                "router id 192.0.2.1;\nprotocol device {{}}\ntemplate bgp node {{\n  local as {local_as};\n  ipv4 {{ import all; export none; }};\n  ipv6 {{ import all; export none; }};\n  hold time 9;\n  connect retry time 1;\n{password}}}\nprotocol bgp n4 from node {{ neighbor 192.0.2.2 as {node_as}; }}\nprotocol bgp n6 from node {{ neighbor 2001:db8::2 as {node_as}; }}\n"
            );
            std::fs::write(dir.join("bird.conf"), conf).unwrap();
            let sock = format!("{d}/bird.ctl");
            router.spawn(
                "bird",
                &[
                    "-f",
                    "-c",
                    &format!("{d}/bird.conf"),
                    "-s",
                    &sock,
                    "-P",
                    &format!("{d}/bird.pid"),
                ],
            );
            Router::Bird {
                netns: router.name.clone(),
                sock,
            }
        }
        Daemon::Frr => {
            let mut conf = format!(
                "frr defaults traditional\nhostname r\nrouter bgp {local_as}\n bgp router-id 192.0.2.1\n no bgp ebgp-requires-policy\n"
            );
            for n in ["192.0.2.2", "2001:db8::2"] {
                conf.push_str(&format!(" neighbor {n} remote-as {node_as}\n neighbor {n} timers 3 9\n neighbor {n} timers connect 1\n"));
                if let Some(p) = password {
                    conf.push_str(&format!(" neighbor {n} password {p}\n"));
                }
            }
            conf.push_str(" address-family ipv6 unicast\n  neighbor 2001:db8::2 activate\n exit-address-family\n");
            std::fs::write(dir.join("frr.conf"), conf).unwrap();
            ironlb_lab::run("chown", &["-R", "frr:frr", &d]);
            router.spawn(
                "/usr/lib/frr/bgpd",
                &[
                    "-f",
                    &format!("{d}/frr.conf"),
                    "-i",
                    &format!("{d}/bgpd.pid"),
                    "-z",
                    &format!("{d}/zserv.api"),
                    "--vty_socket",
                    &d,
                    "-Z",
                ],
            );
            Router::Frr {
                netns: router.name.clone(),
                dir: d.clone(),
            }
        }
        Daemon::Gobgp => {
            let mut conf =
                format!("[global.config]\n  as = {local_as}\n  router-id = \"192.0.2.1\"\n");
            for (n, family) in [
                ("192.0.2.2", "ipv4-unicast"),
                ("2001:db8::2", "ipv6-unicast"),
            ] {
                let password = password
                    .map(|p| format!("    auth-password = \"{p}\"\n"))
                    .unwrap_or_default();
                conf.push_str(&format!(
                    "[[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{n}\"\n    peer-as = {node_as}\n{password}  [neighbors.timers.config]\n    connect-retry = 1\n    hold-time = 9\n    keepalive-interval = 3\n  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"{family}\"\n"
                ));
            }
            std::fs::write(dir.join("gobgp.toml"), conf).unwrap();
            router.spawn(
                "gobgpd",
                &[
                    "-f",
                    &format!("{d}/gobgp.toml"),
                    "--api-hosts",
                    "127.0.0.1:50051",
                ],
            );
            Router::Gobgp {
                netns: router.name.clone(),
            }
        }
    };
    Lab {
        _router: router,
        node,
        router: handle,
    }
}

fn peer(name: &str, address: &str, local_asn: u32, peer_asn: u32) -> PeerConfig {
    PeerConfig {
        name: name.into(),
        address: address.parse().unwrap(),
        port: 179,
        local_asn,
        peer_asn,
        router_id: Ipv4Addr::new(192, 0, 2, 2),
        hold_time: 9,
        keepalive: None,
        source_address: None,
        password: None,
        ebgp_multihop: false,
        graceful_restart: false,
        connect_time: Some(Duration::from_secs(1)),
    }
}

fn rib(routes: &[(&str, RouteAttrs)]) -> Rib {
    routes
        .iter()
        .map(|(p, a)| (p.parse::<IpNet>().unwrap(), a.clone()))
        .collect()
}

fn attrs(communities: &[u32], large: &[[u32; 3]], local_pref: Option<u32>) -> RouteAttrs {
    RouteAttrs {
        communities: communities.iter().copied().collect(),
        large_communities: large.iter().copied().collect(),
        local_pref,
        med: None,
    }
}

/// Runs `f` with a speaker inside the node namespace.
fn with_speaker(
    lab: &Lab,
    peers: Vec<PeerConfig>,
    f: impl FnOnce(&Speaker, &Router) + Send + 'static,
) {
    let router = lab.router.clone();
    lab.node.run_inside(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let _inside = rt.enter();
        let mut speaker = Speaker::new();
        speaker.set_peers(peers);
        f(&speaker, &router);
        rt.block_on(speaker.shutdown(false));
    });
}

const PROGRAMS: [(Daemon, &[&str]); 3] = [
    (Daemon::Bird, &["bird", "birdc"]),
    (Daemon::Frr, &["/usr/lib/frr/bgpd", "vtysh"]),
    (Daemon::Gobgp, &["gobgpd", "gobgp"]),
];

fn programs(daemon: Daemon) -> Vec<&'static str> {
    let mut p: Vec<&str> = PROGRAMS
        .iter()
        .find(|(d, _)| *d == daemon)
        .map(|(_, p)| p.to_vec())
        .unwrap_or_default();
    p.push("ip");
    p
}

/// eBGP: a /32 and a /128 arrive with next hop, AS path, communities and large communities,
/// and are withdrawn.
fn ebgp_routes(tag: &str, daemon: Daemon, expect_v4: &[&str], expect_v6: &[&str]) {
    if !ready(&programs(daemon)) {
        return;
    }
    let lab = lab(
        tag,
        daemon,
        RouterSide {
            local_as: 64512,
            node_as: 64513,
            password: None,
        },
    );
    let peers = vec![
        peer("gw4", "192.0.2.1", 64513, 64512),
        peer("gw6", "2001:db8::1", 64513, 64512),
    ];
    let (expect_v4, expect_v6): (Vec<String>, Vec<String>) = (
        expect_v4.iter().map(|s| s.to_string()).collect(),
        expect_v6.iter().map(|s| s.to_string()).collect(),
    );
    with_speaker(&lab, peers, move |speaker, router| {
        let tagged = attrs(&[64512 << 16 | 100], &[[64512, 1, 2]], None);
        speaker.set_routes(BTreeMap::from([
            (
                "gw4".to_string(),
                rib(&[("198.51.100.32/32", tagged.clone())]),
            ),
            ("gw6".to_string(), rib(&[("2001:db8:100::32/128", tagged)])),
        ]));
        let v4 = router.has("198.51.100.32/32", speaker);
        for want in &expect_v4 {
            assert!(v4.contains(want.as_str()), "missing {want:?} in:\n{v4}");
        }
        let v6 = router.has("2001:db8:100::32/128", speaker);
        for want in &expect_v6 {
            assert!(v6.contains(want.as_str()), "missing {want:?} in:\n{v6}");
        }
        let status = speaker.status();
        assert!(
            status["gw4"].established && status["gw4"].prefixes_sent == 1,
            "{status:?}"
        );
        speaker.set_routes(BTreeMap::new());
        assert!(router.lacks("198.51.100.32/32"), "the /32 is withdrawn");
        assert!(
            router.lacks("2001:db8:100::32/128"),
            "the /128 is withdrawn"
        );
    });
}

/// iBGP: LOCAL_PREF arrives.
fn ibgp_local_pref(tag: &str, daemon: Daemon, expect: &str) {
    if !ready(&programs(daemon)) {
        return;
    }
    let lab = lab(
        tag,
        daemon,
        RouterSide {
            local_as: 64513,
            node_as: 64513,
            password: None,
        },
    );
    let expect = expect.to_string();
    with_speaker(
        &lab,
        vec![peer("gw4", "192.0.2.1", 64513, 64513)],
        move |speaker, router| {
            speaker.set_routes(BTreeMap::from([(
                "gw4".to_string(),
                rib(&[("198.51.100.33/32", attrs(&[], &[], Some(250)))]),
            )]));
            let out = router.has("198.51.100.33/32", speaker);
            assert!(out.contains(&expect), "missing {expect:?} in:\n{out}");
        },
    );
}

const BIRD_V4: &[&str] = &[
    "BGP.origin: IGP",
    "BGP.as_path: 64513",
    "BGP.next_hop: 192.0.2.2",
    "BGP.community: (64512,100)",
    "BGP.large_community: (64512, 1, 2)",
];
const BIRD_V6: &[&str] = &[
    "BGP.as_path: 64513",
    "BGP.next_hop: 2001:db8::2",
    "BGP.community: (64512,100)",
    "BGP.large_community: (64512, 1, 2)",
];
const FRR_V4: &[&str] = &[
    "\"string\":\"64513\"",
    "\"ip\":\"192.0.2.2\"",
    "\"string\":\"64512:100\"",
    "\"string\":\"64512:1:2\"",
    "\"origin\":\"IGP\"",
];
const FRR_V6: &[&str] = &[
    "\"string\":\"64513\"",
    "\"ip\":\"2001:db8::2\"",
    "\"string\":\"64512:100\"",
    "\"string\":\"64512:1:2\"",
];
/// GoBGP prints communities as numbers: 64512:100 is 64512 * 65536 + 100.
const GOBGP_V4: &[&str] = &[
    "\"asns\":[64513]",
    "\"nexthop\":\"192.0.2.2\"",
    "\"communities\":[4227858532]",
    "{\"ASN\":64512,\"LocalData1\":1,\"LocalData2\":2}",
];
const GOBGP_V6: &[&str] = &[
    "\"asns\":[64513]",
    "2001:db8::2",
    "\"communities\":[4227858532]",
    "{\"ASN\":64512,\"LocalData1\":1,\"LocalData2\":2}",
];

#[test]
fn bird_ebgp() {
    ebgp_routes("bird-e", Daemon::Bird, BIRD_V4, BIRD_V6);
}

#[test]
fn frr_ebgp() {
    ebgp_routes("frr-e", Daemon::Frr, FRR_V4, FRR_V6);
}

#[test]
fn gobgp_ebgp() {
    ebgp_routes("gobgp-e", Daemon::Gobgp, GOBGP_V4, GOBGP_V6);
}

#[test]
fn bird_ibgp() {
    ibgp_local_pref("bird-i", Daemon::Bird, "BGP.local_pref: 250");
}

#[test]
fn frr_ibgp() {
    ibgp_local_pref("frr-i", Daemon::Frr, "\"locPrf\":250");
}

#[test]
fn gobgp_ibgp() {
    ibgp_local_pref("gobgp-i", Daemon::Gobgp, "\"value\":250");
}
