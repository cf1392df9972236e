//! A layer-2 failover lab: three hosts each running `ironlb standalone` with one
//! dual-stack service pinned to layer-2 IPs, and a client on the same LAN whose own kernel
//! resolves them (ARP and NDP).

use crate::capture::Frame;
use crate::{Netns, lan, wait_for};
use etherparse::{ArpPacket, Ethernet2Header};
use ironlb_plan::election::owner;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

pub const VIP: &str = "192.0.2.130";
/// The service's IPv6 address; the owner of VIP answers for it too.
pub const VIP6: &str = "2001:db8::130";
const NAMES: [&str; 3] = ["n1", "n2", "n3"];

/// Every host runs this file: the VIPs, pinned, answered on layer 2, with no health check.
const CONFIG: &str = "apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: lan}
spec: {addresses: [192.0.2.128/25, 2001:db8::100/120]}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: lan}
spec: {ipAddressPools: [lan]}
---
apiVersion: ironlb.dev/v1alpha1
kind: StandaloneService
metadata: {name: vip}
spec: {loadBalancerIPs: [192.0.2.130, 2001:db8::130], ports: [{port: 80}]}
";

pub struct L2Lab {
    ironlb: PathBuf,
    config: PathBuf,
    /// Each host's running speaker.
    speakers: Vec<Option<u32>>,
    pub macs: Vec<String>,
    pub client: Netns,
    nodes: Vec<Netns>,
    /// Dropped last: the bridge outlives the hosts on it.
    _switch: Netns,
}

impl L2Lab {
    /// Builds the LAN and starts `ironlb` (the binary at that path) on every host; returns
    /// once the client resolves the VIP.
    pub fn new(tag: &str, ironlb: &Path) -> L2Lab {
        L2Lab::with(tag, ironlb, &[0, 1, 2])
    }

    /// As `new`, starting only the hosts in `started` (the others with `start`).
    pub fn with(tag: &str, ironlb: &Path, started: &[usize]) -> L2Lab {
        let lab = L2Lab::running(tag, ironlb, started, CONFIG);
        lab.settled(started);
        lab
    }

    /// As `new`, with host `preferred` labelled `tier: front` and the L2Advertisement
    /// preferring that label (`preferredNodeSelectors`); returns once the client resolves
    /// the VIPs to it.
    pub fn preferring(tag: &str, ironlb: &Path, preferred: usize) -> L2Lab {
        let nodes: String = NAMES
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let tier = if i == preferred { "front" } else { "back" };
                format!("apiVersion: v1\nkind: Node\nmetadata: {{name: {name}, labels: {{tier: {tier}}}}}\n---\n")
            })
            .collect();
        let prefer = "spec: {ipAddressPools: [lan], preferredNodeSelectors: [{weight: 50, preference: {matchLabels: {tier: front}}}]}";
        let config = CONFIG.replace("spec: {ipAddressPools: [lan]}", prefer);
        let lab = L2Lab::running(tag, ironlb, &[0, 1, 2], &(nodes + &config));
        lab.answered_by(preferred);
        lab
    }

    fn running(tag: &str, ironlb: &Path, started: &[usize], config_text: &str) -> L2Lab {
        let switch = Netns::new(&format!("{tag}sw"));
        let nodes: Vec<Netns> = (1..=3).map(|i| Netns::new(&format!("{tag}{i}"))).collect();
        let client = Netns::new(&format!("{tag}cl"));
        let cidrs: Vec<[String; 2]> = (0..3)
            .map(|i| {
                [
                    format!("{}/24", Self::address(i)),
                    format!("2001:db8::{}/64", i + 2),
                ]
            })
            .collect();
        let addrs: Vec<[&str; 2]> = cidrs
            .iter()
            .map(|[v4, v6]| [v4.as_str(), v6.as_str()])
            .collect();
        lan(
            &switch,
            &[
                (&nodes[0], &addrs[0]),
                (&nodes[1], &addrs[1]),
                (&nodes[2], &addrs[2]),
                (&client, &["192.0.2.100/24", "2001:db8::100/64"]),
            ],
        );
        let config = switch.scratch().join("standalone.yaml");
        std::fs::write(&config, config_text).expect("writing the lab's config");
        let mut lab = L2Lab {
            ironlb: ironlb.to_path_buf(),
            config,
            speakers: vec![None, None, None],
            macs: nodes.iter().map(|n| n.mac("eth0")).collect(),
            client,
            nodes,
            _switch: switch,
        };
        for i in started {
            lab.start(*i);
        }
        lab
    }

    fn address(i: usize) -> String {
        format!("192.0.2.{}", i + 2)
    }

    /// Starts host `i`'s speaker, logging to its namespace's scratch directory.
    pub fn start(&mut self, i: usize) {
        let config = self.config.display().to_string();
        let me = Self::address(i);
        let mut args = vec![
            "standalone",
            "--config",
            &config,
            "--node",
            NAMES[i],
            "--node-ip",
            &me,
            "--metrics",
            "127.0.0.1:7472",
        ];
        let members: Vec<String> = (0..3)
            .filter(|j| *j != i)
            .map(|j| format!("{}={}", NAMES[j], Self::address(j)))
            .collect();
        for member in &members {
            args.extend(["--member", member]);
        }
        let scratch = self.nodes[i].scratch();
        let pid = self.nodes[i].spawn_logs(
            &self.ironlb.display().to_string(),
            &args,
            &scratch.join("ironlb.out"),
            &scratch.join("ironlb.log"),
        );
        self.speakers[i] = Some(pid);
    }

    /// Kills host `i`'s speaker with SIGKILL: no goodbye, no cleanup.
    pub fn kill(&mut self, i: usize) {
        if let Some(pid) = self.speakers[i].take() {
            self.nodes[i].kill(pid);
        }
    }

    /// Every speaker's log, for a failing test to print.
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| {
                let log = std::fs::read_to_string(n.scratch().join("ironlb.log"));
                format!("--- {}\n{}", n.name, log.unwrap_or_default())
            })
            .collect()
    }

    /// The owner the election gives among `alive` hosts.
    pub fn owner_among(alive: &[usize]) -> usize {
        let names: Vec<&str> = alive.iter().map(|i| NAMES[*i]).collect();
        let vip: IpAddr = VIP.parse().expect("VIP");
        let winner = owner(&vip, &names).expect("a host");
        NAMES
            .iter()
            .position(|n| *n == winner)
            .expect("a known host")
    }

    /// The MACs the client's kernel has for VIP and VIP6.
    pub fn client_neighbors(&self) -> [Option<String>; 2] {
        [VIP, VIP6].map(|ip| self.client.neighbor(ip))
    }

    /// Waits until the client resolves both VIPs to the owner among `alive`.
    pub fn settled(&self, alive: &[usize]) -> String {
        self.answered_by(Self::owner_among(alive))
    }

    /// Waits until the client resolves both VIPs to host `i`; its MAC.
    pub fn answered_by(&self, i: usize) -> String {
        let want = self.macs[i].clone();
        for ip in [VIP, VIP6] {
            wait_for(Duration::from_secs(15), || {
                (self.client.resolve(ip).as_deref() == Some(want.as_str())).then_some(())
            })
            .unwrap_or_else(|| {
                panic!(
                    "the client never resolved {ip} to {want}; it has {:?}\n{}",
                    self.client.neighbor(ip),
                    self.logs()
                )
            });
        }
        want
    }

    /// Kills the owner and measures how long until the client's kernel has the new owner's
    /// MAC for VIP and for VIP6, without the client asking: the new owner's gratuitous ARP
    /// and unsolicited Neighbor Advertisement move them.
    pub fn failover(&mut self, alive: &[usize]) -> (usize, [Duration; 2]) {
        self.settled(alive);
        let old = Self::owner_among(alive);
        let rest: Vec<usize> = alive.iter().copied().filter(|i| *i != old).collect();
        let want = Some(self.macs[Self::owner_among(&rest)].clone());
        let killed = Instant::now();
        self.kill(old);
        let mut took = [None; 2];
        while killed.elapsed() < Duration::from_secs(10) && took.contains(&None) {
            for (i, mac) in self.client_neighbors().into_iter().enumerate() {
                if took[i].is_none() && mac == want {
                    took[i] = Some(killed.elapsed());
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let took = took.map(|t| {
            t.unwrap_or_else(|| {
                panic!(
                    "the client has {:?}, not {want:?}\n{}",
                    self.client_neighbors(),
                    self.logs()
                )
            })
        });
        (old, took)
    }

    /// Takes host `i`'s interface down or up.
    pub fn link(&self, i: usize, up: bool) {
        let _ = self.nodes[i].stdout(
            "ip",
            &["link", "set", "eth0", if up { "up" } else { "down" }],
        );
    }
}

/// Every frame in `frames` that says where the VIP is (an ARP reply, or an announcement
/// with the VIP as sender), as its time and the MAC it gives, in capture order.
pub fn vip_answers(frames: &[Frame]) -> Vec<(SystemTime, String)> {
    let vip: Ipv4Addr = VIP.parse().expect("VIP");
    frames
        .iter()
        .filter_map(|frame| {
            let (_, payload) = Ethernet2Header::from_slice(&frame.data).ok()?;
            let arp = ArpPacket::from_slice(payload).ok()?.try_eth_ipv4().ok()?;
            let mac = arp.sender_mac.map(|b| format!("{b:02x}")).join(":");
            (arp.sender_ipv4 == vip.octets()).then_some((frame.at, mac))
        })
        .collect()
}
