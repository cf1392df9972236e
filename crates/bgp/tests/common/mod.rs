//! The lab for speaker tests: a router namespace running a real BGP daemon (BIRD, FRR or
//! GoBGP), linked to a node namespace where the speaker runs.

#![allow(dead_code)]

use ipnet::IpNet;
use ironlb_bgp::routes::{Rib, RouteAttrs};
use ironlb_bgp::speaker::{PeerConfig, Speaker};
pub use ironlb_lab::ready;
use ironlb_lab::{Netns, gobgp_cli, link, wait_for};
use std::net::Ipv4Addr;
use std::time::Duration;

/// A router namespace running a real BGP daemon, linked to a node namespace where the
/// speaker runs. The router is at 192.0.2.1 / 2001:db8::1, the node at .2 / ::2.
pub struct Lab {
    pub netns: Netns,
    pub node: Netns,
    pub router: Router,
    daemon: ironlb_lab::Daemon,
    pub pid: u32,
}

impl Lab {
    /// Kills the router daemon outright, as a crash would.
    pub fn restart_daemon_stopped(&mut self) {
        ironlb_lab::run("kill", &["-9", &self.pid.to_string()]);
    }

    /// Starts the router daemon again with the same configuration.
    pub fn start_daemon(&mut self) {
        self.pid = self.netns.start(&self.daemon);
    }
}

/// How to read what the router learned, from any thread.
#[derive(Clone)]
pub enum Router {
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
    pub fn show(&self, prefix: &str) -> String {
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
                    &gobgp_cli(&["global", "rib", "-a", family, prefix, "-j"]),
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
    pub fn route(&self, prefix: &str, check: impl Fn(&str) -> bool) -> Option<String> {
        wait_for(Duration::from_secs(20), || {
            Some(self.show(prefix)).filter(|o| check(o))
        })
    }

    /// The router's view of `prefix` once it has one; otherwise a panic that shows the
    /// router's own session summary.
    pub fn has(&self, prefix: &str, speaker: &Speaker) -> String {
        self.route(prefix, |o| !o.is_empty()).unwrap_or_else(|| {
            panic!(
                "the router never learned {prefix}; its sessions:\n{}\nthe speaker's: {:#?}",
                self.diagnose(),
                speaker.status()
            )
        })
    }

    /// Whether the daemon answers its CLI yet.
    pub fn answers(&self) -> bool {
        match self {
            Router::Bird { netns, sock } => {
                Self::exec(netns, "birdc", &["-s", sock, "show", "status"]).contains("Daemon is up")
            }
            Router::Frr { netns, dir } => {
                Self::exec(netns, "vtysh", &["--vty_socket", dir, "-c", "show version"])
                    .contains("FRRouting")
            }
            Router::Gobgp { netns } => {
                Self::exec(netns, "gobgp", &gobgp_cli(&["global"])).contains("AS")
            }
        }
    }

    pub fn diagnose(&self) -> String {
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
                let n = Self::exec(netns, "gobgp", &gobgp_cli(&["neighbor"]));
                let rib = Self::exec(netns, "gobgp", &gobgp_cli(&["global", "rib", "-a", "ipv4"]));
                format!("{n}\n{rib}")
            }
        }
    }

    pub fn lacks(&self, prefix: &str) -> bool {
        self.route(prefix, str::is_empty).is_some()
    }
}

#[derive(Clone, Copy, PartialEq)]
pub enum Daemon {
    Bird,
    Frr,
    Gobgp,
}

/// Peering options on the router side.
pub struct RouterSide {
    pub local_as: u32,
    pub node_as: u32,
    pub password: Option<&'static str>,
    /// Act as a graceful-restart helper (FRR only).
    pub graceful_restart: bool,
    /// Accept only packets at TTL 255, RFC 5082 GTSM (BIRD only).
    pub ttl_security: bool,
}

/// eBGP between the router (AS 64512) and the node (AS 64513), with nothing else on.
impl Default for RouterSide {
    fn default() -> Self {
        RouterSide {
            local_as: 64512,
            node_as: 64513,
            password: None,
            graceful_restart: false,
            ttl_security: false,
        }
    }
}

pub fn lab(tag: &str, daemon: Daemon, side: RouterSide) -> Lab {
    let mut router = Netns::new(&format!("{tag}r"));
    let node = Netns::new(&format!("{tag}n"));
    link(
        &router,
        &["192.0.2.1/24", "2001:db8::1/64"],
        &node,
        &["192.0.2.2/24", "2001:db8::2/64"],
    );
    let dir = router.scratch();
    let d = dir.display().to_string();
    let RouterSide {
        local_as,
        node_as,
        password,
        graceful_restart,
        ttl_security,
    } = side;
    let (handle, daemon) = match daemon {
        Daemon::Bird => {
            let mut options = password
                .map(|p| format!("  password \"{p}\";\n"))
                .unwrap_or_default();
            if ttl_security {
                options.push_str("  ttl security on;\n");
            }
            let conf = format!(
                "router id 192.0.2.1;\nprotocol device {{}}\ntemplate bgp node {{\n  local as {local_as};\n  ipv4 {{ import all; export none; }};\n  ipv6 {{ import all; export none; }};\n  hold time 9;\n  connect retry time 1;\n{options}}}\nprotocol bgp n4 from node {{ neighbor 192.0.2.2 as {node_as}; }}\nprotocol bgp n6 from node {{ neighbor 2001:db8::2 as {node_as}; }}\n"
            );
            std::fs::write(dir.join("bird.conf"), conf).unwrap();
            let sock = ironlb_lab::Daemon::bird_socket(&dir, "bird");
            let daemon = ironlb_lab::Daemon::bird(&dir, "bird");
            (
                Router::Bird {
                    netns: router.name.clone(),
                    sock,
                },
                daemon,
            )
        }
        Daemon::Frr => {
            let mut conf = format!(
                "frr defaults traditional\nhostname r\nrouter bgp {local_as}\n bgp router-id 192.0.2.1\n no bgp ebgp-requires-policy\n"
            );
            if graceful_restart {
                conf.push_str(" bgp graceful-restart\n");
            }
            for n in ["192.0.2.2", "2001:db8::2"] {
                conf.push_str(&format!(" neighbor {n} remote-as {node_as}\n neighbor {n} timers 3 9\n neighbor {n} timers connect 1\n"));
                if let Some(p) = password {
                    conf.push_str(&format!(" neighbor {n} password {p}\n"));
                }
            }
            conf.push_str(" address-family ipv6 unicast\n  neighbor 2001:db8::2 activate\n exit-address-family\n");
            std::fs::write(dir.join("frr.conf"), conf).unwrap();
            let daemon = ironlb_lab::Daemon::bgpd(&dir);
            (
                Router::Frr {
                    netns: router.name.clone(),
                    dir: d.clone(),
                },
                daemon,
            )
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
            let daemon = ironlb_lab::Daemon::gobgpd(&dir);
            (
                Router::Gobgp {
                    netns: router.name.clone(),
                },
                daemon,
            )
        }
    };
    let pid = router.start(&daemon);
    wait_for(Duration::from_secs(10), || handle.answers().then_some(()))
        .expect("the router daemon starts");
    Lab {
        netns: router,
        node,
        router: handle,
        daemon,
        pid,
    }
}

pub fn peer(name: &str, address: &str, local_asn: u32, peer_asn: u32) -> PeerConfig {
    // Short timers keep the labs quick.
    PeerConfig {
        hold_time: 9,
        connect_time: Some(Duration::from_secs(1)),
        ..PeerConfig::new(
            name,
            address.parse::<std::net::IpAddr>().unwrap(),
            local_asn,
            peer_asn,
            Ipv4Addr::new(192, 0, 2, 2),
        )
    }
}

pub fn rib(routes: &[(&str, RouteAttrs)]) -> Rib {
    routes
        .iter()
        .map(|(p, a)| (p.parse::<IpNet>().unwrap(), a.clone()))
        .collect()
}

pub fn attrs(communities: &[u32], large: &[[u32; 3]], local_pref: Option<u32>) -> RouteAttrs {
    RouteAttrs {
        communities: communities.iter().copied().collect(),
        large_communities: large.iter().copied().collect(),
        local_pref,
        med: None,
    }
}

/// Runs `f` with a speaker inside the node namespace.
pub fn with_speaker(
    lab: &Lab,
    peers: Vec<PeerConfig>,
    f: impl FnOnce(&mut Speaker, &Router) + Send + 'static,
) {
    let router = lab.router.clone();
    lab.node.run_inside(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let _inside = rt.enter();
        let mut speaker = Speaker::new();
        speaker.set_peers(peers);
        f(&mut speaker, &router);
        rt.block_on(speaker.shutdown(false));
    });
}

pub const PROGRAMS: [(Daemon, &[&str]); 3] = [
    (Daemon::Bird, &["bird", "birdc"]),
    (Daemon::Frr, &["/usr/lib/frr/bgpd", "vtysh"]),
    (Daemon::Gobgp, &["gobgpd", "gobgp"]),
];

pub fn programs(daemon: Daemon) -> Vec<&'static str> {
    let mut p: Vec<&str> = PROGRAMS
        .iter()
        .find(|(d, _)| *d == daemon)
        .map(|(_, p)| p.to_vec())
        .unwrap_or_default();
    p.push("ip");
    p
}
