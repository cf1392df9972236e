//! Interface selection against a real kernel: links of every kind in a fresh namespace, read
//! back over rtnetlink and filtered by MetalLB's rules, and responders that follow NICs as
//! they appear and disappear.

use ironlb_l2::announcer::{Announcer, Claims};
use ironlb_l2::interfaces::{Exclusions, answering};
use ironlb_l2::links;
use ironlb_lab::{Netns, ready, wait_for};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[test]
fn the_kernels_links_are_read_and_filtered_like_metallb() {
    if !ready(&["ip"]) {
        return;
    }
    let ns = Netns::new("links");
    let ip = |args: &str| ns.exec("ip", &args.split(' ').collect::<Vec<_>>());
    ip("link add lan0 type veth peer name member0");
    ip("link add br0 type bridge");
    ip("link set member0 master br0");
    ip("link add quiet0 type veth peer name quiet0p");
    ip("link set quiet0 arp off");
    ip("link add v4only0 type veth peer name v4only0p");
    ns.exec("sysctl", &["-qw", "net.ipv6.conf.v4only0.disable_ipv6=1"]);
    ip("link add down0 type veth peer name down0p");
    ip("link add docker0 type veth peer name docker0p");
    for up in [
        "lan0", "member0", "br0", "quiet0", "v4only0", "docker0", "docker0p", "quiet0p", "v4only0p",
    ] {
        ip(&format!("link set {up} up"));
    }

    // The kernel adds link-local addresses once the carrier is up, a moment after `link set up`.
    let links = wait_for(Duration::from_secs(3), || {
        let links = Netns::named(&ns.name).run_inside(|| {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(links::scan()).expect("netlink dump")
        });
        let settled = ["lan0", "quiet0p", "v4only0p"]
            .iter()
            .all(|n| links.iter().any(|l| l.name == *n && l.ipv6_link_local));
        settled.then_some(links)
    })
    .expect("link-local addresses appear on the veths");
    let by_name = |n: &str| links.iter().find(|l| l.name == n).unwrap();
    assert!(by_name("member0").enslaved, "{links:?}");
    assert!(by_name("quiet0").noarp);
    assert!(!by_name("down0").up);
    assert!(by_name("lan0").ipv6_link_local);
    assert!(!by_name("v4only0").ipv6_link_local);

    let mut got: Vec<(String, bool, bool)> = answering(&links, &Exclusions::default())
        .into_iter()
        .filter(|a| a.name != "br0")
        .map(|a| (a.name, a.arp, a.ndp))
        .collect();
    got.sort();
    let answers = |name: &str, ndp: bool| (name.to_string(), true, ndp);
    // lo and the docker0 pair are excluded by name, member0 by its bridge, quiet0 by NOARP, down0 by
    // being down; the veth peers in the namespace answer like any NIC.
    assert_eq!(
        got,
        vec![
            answers("lan0", true),
            answers("quiet0p", true),
            answers("v4only0", false),
            answers("v4only0p", true),
        ]
    );
    // The bridge answers ARP for its members.
    assert!(
        answering(&links, &Exclusions::default())
            .iter()
            .any(|a| a.name == "br0" && a.arp)
    );
}

/// A claim pinned to an interface the node does not have yet is reported unplaced; the
/// moment the NIC appears the node answers on it, and when it goes the responder goes too.
#[test]
fn responders_follow_interfaces_as_they_come_and_go() {
    if !ready(&["arping", "ip"]) {
        return;
    }
    let node = Netns::new("follow-n");
    let client = Netns::new("follow-c");
    let vip: IpAddr = "192.0.2.50".parse().unwrap();
    let claims: Claims = BTreeMap::from([(vip, BTreeSet::from(["eth1".to_string()]))]);

    // Each update: the answering interfaces, the unplaced claims, and the ARP requests the
    // responders had received until then.
    let (updates, stop_tx, agent) = announce(&node, Exclusions::default(), claims);

    let (interfaces, unplaced, _) = updates.recv().unwrap();
    assert!(interfaces.is_empty(), "{interfaces:?}");
    assert_eq!(unplaced.keys().collect::<Vec<_>>(), [&vip]);

    ironlb_lab::run(
        "ip",
        &[
            "link",
            "add",
            "eth1",
            "netns",
            &node.name,
            "type",
            "veth",
            "peer",
            "name",
            "eth1",
            "netns",
            &client.name,
        ],
    );
    node.exec("ip", &["addr", "add", "192.0.2.2/24", "dev", "eth1"]);
    client.exec("ip", &["addr", "add", "192.0.2.100/24", "dev", "eth1"]);
    client.exec("ip", &["link", "set", "eth1", "up"]);
    let plugged = Instant::now();
    node.exec("ip", &["link", "set", "eth1", "up"]);
    let placed = wait_for(Duration::from_secs(3), || {
        let (interfaces, unplaced, _) = updates.recv_timeout(Duration::from_millis(100)).ok()?;
        (interfaces == ["eth1"] && unplaced.is_empty()).then_some(())
    });
    assert!(placed.is_some(), "eth1 was never answered on");
    let reacted = plugged.elapsed();
    assert!(reacted < Duration::from_millis(500), "took {reacted:?}");

    let mac = node
        .stdout("cat", &["/sys/class/net/eth1/address"])
        .trim()
        .to_string();
    let replies = client.stdout(
        "arping",
        &["-c", "2", "-w", "3", "-i", "eth1", &vip.to_string()],
    );
    assert!(replies.to_lowercase().contains(&mac), "{replies}");

    node.exec("ip", &["link", "del", "eth1"]);
    let requests = wait_for(Duration::from_secs(3), || {
        let (interfaces, unplaced, requests) =
            updates.recv_timeout(Duration::from_millis(100)).ok()?;
        (interfaces.is_empty() && unplaced.contains_key(&vip)).then_some(requests)
    });
    let requests = requests.expect("the responder outlived its interface");
    assert!(requests >= 2, "the responder counted {requests} requests");

    stop_tx.send(()).unwrap();
    agent.join().unwrap();
    eprintln!("eth1 answered {reacted:?} after it came up");
}

/// The answering interfaces, the unplaced claims, and the ARP requests received so far.
type Updates = mpsc::Receiver<(Vec<String>, Claims, u64)>;
type Stop = tokio::sync::oneshot::Sender<()>;

/// Runs an announcer for `claims` in `node`, following its links. Each update reports the
/// answering interfaces, the unplaced claims, and the ARP requests the responders had
/// received until then. Send on the returned channel (or drop it) to stop.
fn announce(
    node: &Netns,
    exclusions: Exclusions,
    claims: Claims,
) -> (Updates, Stop, std::thread::JoinHandle<()>) {
    let (updates_tx, updates) = mpsc::channel();
    let (stop_tx, stop) = tokio::sync::oneshot::channel::<()>();
    let inside = Netns::named(&node.name);
    let agent = std::thread::spawn(move || {
        inside.run_inside(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async move {
                let mut links = links::follow(Duration::from_secs(10)).await.unwrap();
                let mut announcer = Announcer::new(exclusions);
                tokio::pin!(stop);
                loop {
                    // Counted before the update, which may drop a responder and its counters.
                    let requests: u64 = announcer
                        .counts()
                        .values()
                        .map(|c| c.requests_received)
                        .sum();
                    let now = links.borrow_and_update().clone();
                    let unplaced = announcer.update(&now, &claims);
                    let _ = updates_tx.send((announcer.interfaces(), unplaced, requests));
                    tokio::select! {
                        _ = &mut stop => return,
                        changed = links.changed() => changed.unwrap(),
                    }
                }
            })
        })
    });
    (updates, stop_tx, agent)
}

/// A node on two LANs answers for an IP only on the NIC whose subnet holds it, so hosts on
/// the other LAN never learn a path that leads nowhere; an IP no subnet holds is answered on
/// both, as MetalLB does.
#[test]
fn an_ip_is_answered_on_the_lan_whose_subnet_holds_it() {
    if !ready(&["arping", "ip"]) {
        return;
    }
    let node = Netns::new("subnet-n");
    let lan_a = Netns::new("subnet-a");
    let lan_b = Netns::new("subnet-b");
    // The node's NICs lana and lanb, each a veth towards one LAN's client (its eth0).
    let run = |ns: &Netns, args: &str| ns.exec("ip", &args.split(' ').collect::<Vec<_>>());
    let nic = |name: &str, client: &Netns| {
        let (n, c) = (node.name.as_str(), client.name.as_str());
        let args = format!("link add {name} netns {n} type veth peer name eth0 netns {c}");
        ironlb_lab::run("ip", &args.split(' ').collect::<Vec<_>>());
    };
    nic("lana", &lan_a);
    nic("lanb", &lan_b);
    run(&node, "addr add 192.0.2.2/24 dev lana");
    run(&node, "addr add 198.51.100.2/24 dev lanb");
    run(&lan_a, "addr add 192.0.2.100/24 dev eth0");
    run(&lan_b, "addr add 198.51.100.100/24 dev eth0");
    for (ns, dev) in [
        (&node, "lana"),
        (&node, "lanb"),
        (&lan_a, "eth0"),
        (&lan_b, "eth0"),
    ] {
        run(ns, &format!("link set {dev} up"));
    }
    let on_a: IpAddr = "192.0.2.130".parse().unwrap();
    let nowhere: IpAddr = "203.0.113.9".parse().unwrap();
    let claims: Claims = BTreeMap::from([(on_a, BTreeSet::new()), (nowhere, BTreeSet::new())]);
    let (placed, stop_tx, agent) = announce(&node, Exclusions::new(["^lo$"]).unwrap(), claims);
    wait_for(Duration::from_secs(5), || {
        let mut last = None;
        while let Ok((interfaces, _, _)) = placed.try_recv() {
            last = Some(interfaces);
        }
        last.filter(|p| p.len() == 2).map(drop)
    })
    .expect("both NICs answer");
    let answers = |client: &Netns, ip: IpAddr| client.arping("eth0", &ip.to_string()).len();
    let from_a = wait_for(Duration::from_secs(5), || {
        Some(answers(&lan_a, on_a)).filter(|n| *n > 0)
    });
    assert!(from_a.is_some(), "LAN A resolves its own subnet's IP");
    assert_eq!(answers(&lan_b, on_a), 0, "LAN B never hears of 192.0.2.130");
    assert!(
        answers(&lan_a, nowhere) > 0 && answers(&lan_b, nowhere) > 0,
        "no subnet holds 203.0.113.9"
    );
    let _ = stop_tx.send(());
    agent.join().unwrap();
}

/// The usual home-lab node (Proxmox and the like): the NIC is a port of a Linux bridge that
/// holds the node's addresses. Peer projects stay silent here unless the NIC is made
/// promiscuous; ironlb answers ARP and NDP on the bridge, once per request, with the
/// bridge's MAC, and never from the port.
#[test]
fn a_node_behind_a_linux_bridge_answers_on_the_bridge() {
    if !ready(&["arping", "ndisc6", "ip"]) {
        return;
    }
    let node = Netns::new("bridge-n");
    let client = Netns::new("bridge-c");
    let run = |ns: &Netns, args: &str| ns.exec("ip", &args.split(' ').collect::<Vec<_>>());
    let cable = format!(
        "link add port0 netns {} type veth peer name eth0 netns {}",
        node.name, client.name
    );
    ironlb_lab::run("ip", &cable.split(' ').collect::<Vec<_>>());
    for args in [
        "link add br0 type bridge",
        "link set port0 master br0",
        "addr add 192.0.2.2/24 dev br0",
        "addr add 2001:db8::2/64 dev br0 nodad",
        "link set port0 up",
        "link set br0 up",
    ] {
        run(&node, args);
    }
    for args in [
        "addr add 192.0.2.100/24 dev eth0",
        "addr add 2001:db8::100/64 dev eth0 nodad",
        "link set eth0 up",
    ] {
        run(&client, args);
    }
    let (v4, v6) = ("192.0.2.150", "2001:db8::150");
    let claims: Claims = [v4, v6]
        .iter()
        .map(|ip| (ip.parse().unwrap(), BTreeSet::new()))
        .collect();
    let (placed, stop_tx, agent) = announce(&node, Exclusions::default(), claims);
    let answering = wait_for(Duration::from_secs(5), || {
        let mut last = None;
        while let Ok((interfaces, unplaced, _)) = placed.try_recv() {
            last = Some((interfaces, unplaced));
        }
        last.filter(|(interfaces, unplaced)| !interfaces.is_empty() && unplaced.is_empty())
    });
    let (interfaces, _) = answering.expect("the bridge answers");
    assert_eq!(interfaces, ["br0"], "never the bridge's port");

    let bridge_mac = node.mac("br0");
    let answered = |ask: &dyn Fn() -> Vec<String>| {
        wait_for(Duration::from_secs(5), || {
            Some(ask()).filter(|m| !m.is_empty())
        })
        .unwrap_or_default()
    };
    let arp = answered(&|| client.arping("eth0", v4));
    assert!(
        !arp.is_empty() && arp.len() <= 3 && arp.iter().all(|m| *m == bridge_mac),
        "three ARP requests, at most one answer each, from br0 ({bridge_mac}): {arp:?}"
    );
    let nd = answered(&|| client.ndisc6("eth0", v6));
    assert_eq!(nd, [bridge_mac], "one Neighbor Advertisement, from br0");
    let _ = stop_tx.send(());
    agent.join().unwrap();
}
