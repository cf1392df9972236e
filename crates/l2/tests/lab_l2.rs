//! Layer 2 on a real LAN: three nodes and a client on one bridge. The client uses `arping`,
//! `ndisc6` and its own kernel's neighbor table, so what it sees is what any host would.

use ironlb_l2::responder::Responder;
use ironlb_lab::{Netns, lan, ready, wait_for};
use ironlb_plan::election::owner;
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A responder living in a node's namespace, driven from the test thread.
struct Agent {
    claims: mpsc::Sender<Option<BTreeSet<IpAddr>>>,
    mac: String,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Agent {
    fn start(ns: &Netns) -> Agent {
        let (claims, rx) = mpsc::channel::<Option<BTreeSet<IpAddr>>>();
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

    fn claim(&self, ips: &[IpAddr]) {
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

/// The MACs that answered the client's ARP requests for `vip`, one entry per reply.
fn arping(client: &Netns, vip: IpAddr) -> Vec<String> {
    client.arping("eth0", &vip.to_string())
}

/// The MACs that answered the client's Neighbor Solicitation for `vip`.
fn ndisc6(client: &Netns, vip: IpAddr) -> Vec<String> {
    client.ndisc6("eth0", &vip.to_string())
}

/// The MAC the client's kernel has for `vip`, if any.
fn neighbor(client: &Netns, vip: IpAddr) -> Option<String> {
    client.neighbor(&vip.to_string())
}

/// Three nodes and a client on one LAN; the elected owner claims `vip`. Exactly one node
/// answers what `ask` sends; then the owner goes away, the next owner claims the IP, and the
/// client's own kernel must move to the new MAC without asking.
fn one_owner_then_takeover(
    tag: &str,
    addrs: [&str; 4],
    vip: IpAddr,
    ask: fn(&Netns, IpAddr) -> Vec<String>,
) {
    let switch = Netns::new(&format!("{tag}sw"));
    let nodes: Vec<Netns> = (1..=3).map(|i| Netns::new(&format!("{tag}n{i}"))).collect();
    let client = Netns::new(&format!("{tag}cl"));
    lan(
        &switch,
        &[
            (&nodes[0], &[addrs[0]]),
            (&nodes[1], &[addrs[1]]),
            (&nodes[2], &[addrs[2]]),
            (&client, &[addrs[3]]),
        ],
    );
    let agents: Vec<Agent> = nodes.iter().map(Agent::start).collect();
    let names = ["n1", "n2", "n3"];
    let first = owner(&vip, &names).unwrap();
    let index = |name: &str| names.iter().position(|n| *n == name).unwrap();
    for (name, agent) in names.iter().zip(&agents) {
        let claimed: &[IpAddr] = if *name == first { &[vip] } else { &[] };
        agent.claim(claimed);
    }

    let replies = wait_for(Duration::from_secs(5), || {
        Some(ask(&client, vip)).filter(|r| !r.is_empty())
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
    let _ = client.try_exec("ping", &["-c", "1", "-W", "1", &vip.to_string()]);
    assert_eq!(neighbor(&client, vip).as_deref(), Some(owner_mac.as_str()));

    let rest: Vec<&str> = names.iter().copied().filter(|n| *n != first).collect();
    let next = owner(&vip, &rest).unwrap();
    let next_mac = agents[index(next)].mac.clone();
    let moved_at = Instant::now();
    agents[index(first)].claim(&[]);
    agents[index(next)].claim(&[vip]);
    let took = wait_for(Duration::from_secs(3), || {
        (neighbor(&client, vip).as_deref() == Some(next_mac.as_str())).then(|| moved_at.elapsed())
    })
    .unwrap_or_else(|| {
        panic!(
            "the client still has {:?} for {vip}, not {next}'s {next_mac}",
            neighbor(&client, vip)
        )
    });
    assert!(
        took < Duration::from_secs(1),
        "the client moved after {took:?}"
    );
    let replies = ask(&client, vip);
    assert!(
        !replies.is_empty() && replies.iter().all(|m| *m == next_mac),
        "only {next} answers now: {replies:?}"
    );
    eprintln!("{tag}: the takeover reached the client's neighbor table in {took:?}");
}

#[test]
fn arp_exactly_one_node_answers_and_a_takeover_reaches_the_client_at_once() {
    if !ready(&["arping", "ip", "ping"]) {
        return;
    }
    one_owner_then_takeover(
        "arp",
        [
            "192.0.2.2/24",
            "192.0.2.3/24",
            "192.0.2.4/24",
            "192.0.2.100/24",
        ],
        "192.0.2.130".parse().unwrap(),
        arping,
    );
}

#[test]
fn ndp_exactly_one_node_answers_and_a_takeover_reaches_the_client_at_once() {
    if !ready(&["ndisc6", "ip", "ping"]) {
        return;
    }
    one_owner_then_takeover(
        "ndp",
        [
            "2001:db8::2/64",
            "2001:db8::3/64",
            "2001:db8::4/64",
            "2001:db8::100/64",
        ],
        "2001:db8::130".parse().unwrap(),
        ndisc6,
    );
}
