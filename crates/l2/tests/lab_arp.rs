//! The ARP responder on a real LAN: three nodes and a client on one bridge. The client uses
//! `arping` and its own kernel's neighbor table, so what it sees is what any host would.

use ironlb_l2::responder::Responder;
use ironlb_lab::{Netns, lan, ready, wait_for};
use ironlb_plan::election::owner;
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 130);

/// A responder living in a node's namespace, driven from the test thread.
struct Agent {
    claims: mpsc::Sender<Option<BTreeSet<Ipv4Addr>>>,
    mac: String,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Agent {
    fn start(ns: &Netns) -> Agent {
        let (claims, rx) = mpsc::channel::<Option<BTreeSet<Ipv4Addr>>>();
        let (mac_tx, mac_rx) = mpsc::channel();
        let node = Netns::named(&ns.name);
        let thread = std::thread::spawn(move || {
            node.run_inside(move || {
                let rt = tokio::runtime::Runtime::new().unwrap();
                let _inside = rt.enter();
                let responder = Responder::start("eth0").expect("responder starts");
                let mac = responder
                    .mac
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<Vec<_>>()
                    .join(":");
                mac_tx.send(mac).unwrap();
                while let Ok(Some(set)) = rx.recv() {
                    responder.set_claims(set);
                }
            })
        });
        Agent {
            claims,
            mac: mac_rx.recv().expect("the agent reports its MAC"),
            thread: Some(thread),
        }
    }

    fn claim(&self, ips: &[Ipv4Addr]) {
        self.claims
            .send(Some(ips.iter().copied().collect()))
            .unwrap();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.claims.send(None);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The MACs that answered `count` ARP requests from the client, one entry per reply.
fn arping(client: &Netns, count: u32) -> Vec<String> {
    let out = client
        .try_exec(
            "arping",
            &[
                "-c",
                &count.to_string(),
                "-w",
                "3",
                "-i",
                "eth0",
                &VIP.to_string(),
            ],
        )
        .unwrap_or_default();
    out.lines()
        .filter(|l| l.contains("bytes from"))
        .filter_map(|l| l.split_whitespace().nth(3).map(str::to_lowercase))
        .collect()
}

/// The MAC the client's kernel has for the VIP, if any.
fn neighbor(client: &Netns) -> Option<String> {
    let out = client.try_exec("ip", &["neigh", "show", &VIP.to_string(), "dev", "eth0"])?;
    out.split_whitespace()
        .skip_while(|w| *w != "lladdr")
        .nth(1)
        .map(str::to_lowercase)
}

#[test]
fn exactly_one_node_answers_and_a_takeover_reaches_the_client_at_once() {
    if !ready(&["arping", "ip", "ping"]) {
        return;
    }
    let switch = Netns::new("arpsw");
    let nodes: Vec<Netns> = ["arpn1", "arpn2", "arpn3"]
        .iter()
        .map(|n| Netns::new(n))
        .collect();
    let client = Netns::new("arpcl");
    lan(
        &switch,
        &[
            (&nodes[0], &["192.0.2.2/24"]),
            (&nodes[1], &["192.0.2.3/24"]),
            (&nodes[2], &["192.0.2.4/24"]),
            (&client, &["192.0.2.100/24"]),
        ],
    );
    let agents: Vec<Agent> = nodes.iter().map(Agent::start).collect();
    let names = ["n1", "n2", "n3"];
    let ip = IpAddr::V4(VIP);
    let first = owner(&ip, &names).unwrap();
    let index = |name: &str| names.iter().position(|n| *n == name).unwrap();
    for (name, agent) in names.iter().zip(&agents) {
        agent.claim(if *name == first { &[VIP][..] } else { &[] });
    }

    let replies = wait_for(Duration::from_secs(5), || {
        Some(arping(&client, 3)).filter(|r| !r.is_empty())
    })
    .expect("the VIP answers");
    let owner_mac = &agents[index(first)].mac;
    assert!(
        replies.iter().all(|m| m == owner_mac),
        "only {first} ({owner_mac}) answers: {replies:?}"
    );
    assert!(
        replies.len() <= 3,
        "one reply per request, never two: {replies:?}"
    );

    // The client's kernel learns the owner's MAC, as any host sending traffic would.
    let _ = client.try_exec("ping", &["-c", "1", "-W", "1", &VIP.to_string()]);
    assert_eq!(neighbor(&client).as_deref(), Some(owner_mac.as_str()));

    // The owner goes away: the election among the others picks the next owner, which claims
    // the IP and announces it. The client must move without asking.
    let rest: Vec<&str> = names.iter().copied().filter(|n| *n != first).collect();
    let next = owner(&ip, &rest).unwrap();
    let next_mac = agents[index(next)].mac.clone();
    let moved_at = Instant::now();
    agents[index(first)].claim(&[]);
    agents[index(next)].claim(&[VIP]);
    let took = wait_for(Duration::from_secs(3), || {
        (neighbor(&client).as_deref() == Some(next_mac.as_str())).then(|| moved_at.elapsed())
    })
    .unwrap_or_else(|| {
        panic!(
            "the client still has {:?} for the VIP, not {next}'s {next_mac}",
            neighbor(&client)
        )
    });
    assert!(
        took < Duration::from_secs(1),
        "the client moved after {took:?}"
    );
    let replies = arping(&client, 2);
    assert!(
        !replies.is_empty() && replies.iter().all(|m| *m == next_mac),
        "only {next} answers now: {replies:?}"
    );
    eprintln!("takeover reached the client's neighbor table in {took:?}");
}
