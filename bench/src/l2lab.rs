//! A layer-2 failover lab: three nodes each running `l2_agent` (membership, election,
//! responder) as a real process, and a client on the same LAN whose own kernel resolves
//! the Service IP.

use etherparse::{ArpPacket, Ethernet2Header};
use ironlb_lab::capture::Frame;
use ironlb_lab::{Netns, lan, wait_for};
use ironlb_plan::election::owner;
use std::net::{IpAddr, Ipv4Addr};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

pub const VIP: &str = "192.0.2.130";
const NAMES: [&str; 3] = ["n1", "n2", "n3"];

pub struct L2Lab {
    _switch: Netns,
    nodes: Vec<Netns>,
    pub client: Netns,
    agent: String,
    agents: Vec<Option<Child>>,
    pub macs: Vec<String>,
}

impl L2Lab {
    /// Builds the LAN and starts an agent on every node; returns once the client resolves
    /// the VIP.
    pub fn new(tag: &str, agent: &str) -> L2Lab {
        let switch = Netns::new(&format!("{tag}sw"));
        let nodes: Vec<Netns> = (1..=3).map(|i| Netns::new(&format!("{tag}{i}"))).collect();
        let client = Netns::new(&format!("{tag}cl"));
        lan(
            &switch,
            &[
                (&nodes[0], &["192.0.2.2/24"]),
                (&nodes[1], &["192.0.2.3/24"]),
                (&nodes[2], &["192.0.2.4/24"]),
                (&client, &["192.0.2.100/24"]),
            ],
        );
        let macs = nodes.iter().map(|n| n.mac("eth0")).collect();
        let mut lab = L2Lab {
            _switch: switch,
            nodes,
            client,
            agent: agent.to_string(),
            agents: vec![None, None, None],
            macs,
        };
        for i in 0..3 {
            lab.start(i);
        }
        lab.settled(&[0, 1, 2]);
        lab
    }

    fn gossip(i: usize) -> String {
        format!("192.0.2.{}:7946", i + 2)
    }

    /// Starts node `i`'s agent.
    pub fn start(&mut self, i: usize) {
        let mut args: Vec<String> =
            vec![NAMES[i].into(), "eth0".into(), VIP.into(), Self::gossip(i)];
        args.extend(
            (0..3)
                .filter(|j| *j != i)
                .map(|j| format!("{}={}", NAMES[j], Self::gossip(j))),
        );
        let child = Command::new("ip")
            .args(["netns", "exec", &self.nodes[i].name, &self.agent])
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the agent starts");
        self.agents[i] = Some(child);
    }

    /// Kills node `i`'s agent with SIGKILL: no goodbye, no cleanup.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.agents[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The owner the election gives among `alive` nodes.
    pub fn owner_among(alive: &[usize]) -> usize {
        let names: Vec<&str> = alive.iter().map(|i| NAMES[*i]).collect();
        let vip: IpAddr = VIP.parse().expect("VIP");
        let winner = owner(&vip, &names).expect("a node");
        NAMES
            .iter()
            .position(|n| *n == winner)
            .expect("a known node")
    }

    /// The MAC the client's kernel has for the VIP.
    pub fn client_neighbor(&self) -> Option<String> {
        self.client.neighbor(VIP)
    }

    /// Makes the client resolve the VIP afresh, as a host sending traffic would.
    pub fn resolve(&self) -> Option<String> {
        self.client.resolve(VIP)
    }

    /// Waits until the client resolves the VIP to the owner among `alive`.
    pub fn settled(&self, alive: &[usize]) -> String {
        let want = self.macs[Self::owner_among(alive)].clone();
        wait_for(Duration::from_secs(15), || {
            (self.resolve().as_deref() == Some(want.as_str())).then_some(())
        })
        .unwrap_or_else(|| {
            panic!(
                "the client never resolved {VIP} to {want}; it has {:?}",
                self.client_neighbor()
            )
        });
        want
    }

    /// The MACs that answer ARP for the VIP right now, one entry per reply.
    pub fn responders(&self) -> Vec<String> {
        self.client.arping(VIP)
    }

    /// Kills the owner and measures how long until the client's kernel has the new owner's
    /// MAC, without the client asking: the new owner's gratuitous ARP moves it.
    pub fn failover(&mut self, alive: &[usize]) -> (usize, Duration) {
        self.settled(alive);
        let old = Self::owner_among(alive);
        let rest: Vec<usize> = alive.iter().copied().filter(|i| *i != old).collect();
        let want = self.macs[Self::owner_among(&rest)].clone();
        let killed = Instant::now();
        self.kill(old);
        let mut took = None;
        while killed.elapsed() < Duration::from_secs(10) {
            if self.client_neighbor().as_deref() == Some(want.as_str()) {
                took = Some(killed.elapsed());
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        (
            old,
            took.unwrap_or_else(|| {
                panic!(
                    "the client still has {:?}, not {want}",
                    self.client_neighbor()
                )
            }),
        )
    }

    /// Takes node `i`'s interface down or up.
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

impl Drop for L2Lab {
    fn drop(&mut self) {
        for i in 0..3 {
            self.kill(i);
        }
    }
}
