//! The seed setup end to end, with FRR as the gateway: two `ironlb standalone` speakers give
//! FRR an ECMP route for the BGP service and answer ARP for the layer-2 service; a failing
//! health check drops one next hop, and a killed speaker moves the layer-2 IP, each within
//! a second; nothing is left behind.

use ironlb_lab::seed::{self, BGP_IP, NODES, SeedLan};
use ironlb_lab::{Daemon, Netns, ready, time_until, wait_for};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const WITHIN: Duration = Duration::from_secs(1);

#[test]
fn seed_setup_with_frr_ecmp_health_withdrawal_and_layer2_takeover() {
    if !ready(&["/usr/lib/frr/bgpd", "vtysh", "ping", "ip"]) {
        return;
    }
    let scratch = tempfile::Builder::new()
        .prefix("ilb-e2e")
        .tempdir()
        .unwrap();
    let dir = scratch.path();
    let host_before = ironlb_lab::run("ip", &["-br", "addr"]);
    let names: Vec<String>;
    {
        let mut lab = SeedLan::new(|role| Netns::new(&format!("e2e{role}")));
        names = [&lab.router, &lab.client]
            .into_iter()
            .chain(&lab.nodes)
            .map(|n| n.name.clone())
            .collect();
        let frr = dir.join("frr");
        std::fs::create_dir_all(&frr).unwrap();
        std::fs::write(frr.join("frr.conf"), seed::frr_gateway_config()).unwrap();
        lab.router.start(&Daemon::bgpd(&frr));

        let l2_ip = seed::l2_ip_owned_by(NODES[0].0).to_string();
        seed::all_healthy(dir);
        let config = dir.join("standalone.yaml");
        std::fs::write(
            &config,
            seed::standalone_file(dir, l2_ip.parse().unwrap(), "100ms"),
        )
        .unwrap();
        let ironlb = Path::new(env!("CARGO_BIN_EXE_ironlb"));
        let speakers: Vec<u32> = (0..2)
            .map(|i| lab.start_speaker(i, ironlb, &config, dir))
            .collect();
        let logs = || seed::logs(dir);

        let both = vec![NODES[0].1.to_string(), NODES[1].1.to_string()];
        let prefix = format!("{BGP_IP}/32");
        wait_for(Duration::from_secs(30), || {
            (seed::frr_next_hops(&frr, &prefix) == both).then_some(())
        })
        .unwrap_or_else(|| {
            panic!(
                "FRR never held {prefix} via both nodes; it has {:?}\n{}",
                seed::frr_next_hops(&frr, &prefix),
                logs()
            )
        });
        // FRR marks the second path `=` (multipath) once its best-path run has seen both.
        let table = || seed::vtysh(&frr, "show bgp ipv4 unicast");
        wait_for(Duration::from_secs(5), || {
            table().lines().any(|l| l.starts_with("*=")).then_some(())
        })
        .unwrap_or_else(|| panic!("FRR never used both paths (ECMP):\n{}", table()));

        let owner_mac = lab.macs[0].clone();
        let resolved = wait_for(Duration::from_secs(10), || {
            lab.client.resolve(&l2_ip).filter(|m| *m == owner_mac)
        });
        assert_eq!(
            resolved,
            Some(owner_mac.clone()),
            "node1 answers {l2_ip}\n{}",
            logs()
        );
        let replies = lab.client.arping("eth0", &l2_ip);
        assert!(
            !replies.is_empty() && replies.iter().all(|m| *m == owner_mac),
            "only node1 answers: {replies:?}"
        );

        // An invalid file on SIGHUP is reported, and the last valid one keeps running.
        let valid = std::fs::read_to_string(&config).unwrap();
        std::fs::write(&config, valid.replace("loadBalancerIPs", "loadBalancerIP")).unwrap();
        ironlb_lab::run("kill", &["-HUP", &speakers[1].to_string()]);
        wait_for(Duration::from_secs(5), || {
            logs().contains("keeping the last valid one").then_some(())
        })
        .unwrap_or_else(|| panic!("node2 did not report the invalid file\n{}", logs()));
        assert!(
            logs().contains("spec.loadBalancerIP: unknown field"),
            "{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(
            seed::frr_next_hops(&frr, &prefix),
            both,
            "the invalid file changed nothing"
        );
        std::fs::write(&config, valid).unwrap();

        std::fs::remove_file(seed::health_flag(dir, "web", NODES[0].0)).unwrap();
        let only_node2 = vec![NODES[1].1.to_string()];
        let withdrawn = time_until(Duration::from_secs(10), || {
            seed::frr_next_hops(&frr, &prefix) == only_node2
        });
        let withdrawn = withdrawn.unwrap_or_else(|| {
            panic!(
                "FRR kept node1's next hop: {:?}\n{}",
                seed::frr_next_hops(&frr, &prefix),
                logs()
            )
        });
        assert!(
            withdrawn < WITHIN,
            "node1's next hop went after {withdrawn:?}"
        );

        // The layer-2 owner's check fails: node2, told over gossip, takes the IP; when the
        // check passes again the IP returns, as the hash says.
        let node2_mac = lab.macs[1].clone();
        let flag = seed::health_flag(dir, "lan", NODES[0].0);
        std::fs::remove_file(&flag).unwrap();
        let handed_over = time_until(Duration::from_secs(10), || {
            lab.client.neighbor(&l2_ip).as_deref() == Some(node2_mac.as_str())
        });
        let handed_over = handed_over.unwrap_or_else(|| {
            panic!("{l2_ip} stayed on node1 while its check failed\n{}", logs())
        });
        assert!(handed_over < WITHIN, "handed over after {handed_over:?}");
        std::fs::write(&flag, "").unwrap();
        let back = time_until(Duration::from_secs(10), || {
            lab.client.neighbor(&l2_ip).as_deref() == Some(lab.macs[0].as_str())
        });
        assert!(
            back.is_some(),
            "{l2_ip} returns to node1 once it passes\n{}",
            logs()
        );

        // A reread file and failing checks change routes with UPDATEs, never by a reset.
        let established = seed::frr_sessions_established(&frr);
        assert!(
            established.len() == 2 && established.values().all(|n| *n == 1),
            "each node's session was established once: {established:?}"
        );

        let killed = Instant::now();
        lab.nodes[0].kill(speakers[0]);
        let moved = time_until(Duration::from_secs(10), || {
            lab.client.neighbor(&l2_ip).as_deref() == Some(node2_mac.as_str())
        });
        let moved = moved.unwrap_or_else(|| {
            panic!(
                "{l2_ip} never moved to node2: {:?}\n{}",
                lab.client.neighbor(&l2_ip),
                logs()
            )
        });
        eprintln!(
            "e2e: next hop withdrawn {withdrawn:?} after the check failed; layer-2 IP handed over {handed_over:?} after its check failed; moved {moved:?} after SIGKILL ({:?} wall)",
            killed.elapsed()
        );
        assert!(moved < WITHIN, "the layer-2 IP moved after {moved:?}");
        let metrics = lab.nodes[1].http_get("127.0.0.1:7472", "/metrics");
        assert!(
            metrics.contains("metallb_bgp_session_up{peer=\"192.0.2.1:179\"} 1"),
            "{metrics}"
        );
        let series = format!("metallb_layer2_gratuitous_sent{{ip=\"{l2_ip}\"}} ");
        let gratuitous = metrics
            .lines()
            .find_map(|l| l.strip_prefix(series.as_str()))
            .and_then(|n| n.parse::<u64>().ok());
        assert!(
            gratuitous.is_some_and(|n| n > 0),
            "node2 announced its takeover:\n{metrics}"
        );
        assert_eq!(lab.client.resolve(&l2_ip), Some(node2_mac));
    }
    let namespaces = ironlb_lab::run("ip", &["netns", "list"]);
    for name in &names {
        assert!(
            !namespaces.contains(name.as_str()),
            "{name} was left behind"
        );
    }
    let host_after = ironlb_lab::run("ip", &["-br", "addr"]);
    assert_eq!(host_before, host_after, "the host's addresses changed");
    let config = dir.join("standalone.yaml").display().to_string();
    let left = Command::new("pgrep")
        .args(["-f", &config])
        .output()
        .unwrap();
    assert!(
        left.stdout.is_empty(),
        "speakers left running: {}",
        String::from_utf8_lossy(&left.stdout)
    );
}
