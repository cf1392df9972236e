//! BFD end to end: `ironlb standalone` peers with BIRD, which runs BGP with `bfd on`. When
//! the node hangs (the speaker frozen with SIGSTOP: its TCP session stays open, so only
//! silence tells), BIRD drops its route within the BFD detection time, about 0.3 s, where
//! BGP alone would wait out the 90 s hold time.

use ironlb_lab::{Daemon, Netns, link, ready, time_until, wait_for};
use serde_json::Value;
use std::time::Duration;

/// BIRD's config; its log, with every protocol's state changes and events, goes to
/// LOG_FILE (the lab's `bird.log`) so that a failure can show what BIRD went through.
const BIRD: &str = "router id 192.0.2.1;
log \"LOG_FILE\" all;
debug protocols { states, events };
protocol device {}
protocol bfd {
  interface \"*\" { min rx interval 100 ms; min tx interval 100 ms; multiplier 3; };
}
protocol bgp node1 {
  local 192.0.2.1 as 64512;
  neighbor 192.0.2.2 as 64513;
  bfd on;
  # BIRD waits 60 s or more after a failure before taking a session back by default.
  error wait time 1, 2;
  ipv4 { import all; export none; };
}
";

const CONFIG: &str = "apiVersion: metallb.io/v1beta1
kind: BFDProfile
metadata: {name: fast, namespace: metallb-system}
spec: {receiveInterval: 100, transmitInterval: 100, detectMultiplier: 3}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: gw, namespace: metallb-system}
spec: {peerAddress: 192.0.2.1, peerASN: 64512, myASN: 64513, bfdProfile: fast}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: routed, namespace: metallb-system}
spec: {addresses: [198.51.100.0/24], autoAssign: false}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: routed, namespace: metallb-system}
spec: {ipAddressPools: [routed]}
---
apiVersion: ironlb.dev/v1alpha1
kind: StandaloneService
metadata: {name: web}
spec: {loadBalancerIPs: [198.51.100.40]}
";

#[test]
fn a_hung_speaker_loses_its_route_within_the_bfd_detection_time() {
    if !ready(&["bird", "birdc", "ip"]) {
        return;
    }
    let mut router = Netns::new("bfdgw");
    let mut node = Netns::new("bfdnode");
    link(&router, &["192.0.2.1/24"], &node, &["192.0.2.2/24"]);
    let dir = node.scratch();
    let bird_log = dir.join("bird.log").display().to_string();
    std::fs::write(dir.join("bird.conf"), BIRD.replace("LOG_FILE", &bird_log)).unwrap();
    std::fs::write(dir.join("lb.yaml"), CONFIG).unwrap();
    let bird = router.start(&Daemon::bird(&dir, "bird"));
    let sock = Daemon::bird_socket(&dir, "bird");
    let config = dir.join("lb.yaml").display().to_string();
    let speaker = node.spawn_logs(
        env!("CARGO_BIN_EXE_ironlb"),
        &[
            "standalone",
            "--config",
            &config,
            "--node",
            "node1",
            "--node-ip",
            "192.0.2.2",
        ],
        &dir.join("node1.out"),
        &dir.join("node1.log"),
    );
    let birdc = |args: &[&str]| {
        let mut all = vec!["-s", sock.as_str()];
        all.extend_from_slice(args);
        router.stdout("birdc", &all)
    };
    let has_route = || birdc(&["show", "route", "198.51.100.40/32"]).contains("198.51.100.40/32");
    let bfd_up = || {
        birdc(&["show", "bfd", "sessions"])
            .lines()
            .any(|l| l.contains("192.0.2.2") && l.contains(" Up "))
    };
    let log = dir.join("node1.log");
    // Only whether the sessions come back at all: how soon is printed, not judged.
    let up_again = |what: &str| {
        let took = time_until(Duration::from_secs(45), || has_route() && bfd_up());
        let took = took.unwrap_or_else(|| {
            panic!(
                "{what}: BIRD has no route or no BFD session:\n{}\n{}\n--- BIRD's log\n{}\n--- our log\n{}",
                birdc(&["show", "protocols", "all", "node1"]),
                birdc(&["show", "bfd", "sessions"]),
                std::fs::read_to_string(&bird_log).unwrap_or_default(),
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        });
        eprintln!("BFD lab: {what}: BGP and BFD up after {took:?}");
    };
    up_again("starting");

    ironlb_lab::run("kill", &["-STOP", &speaker.to_string()]);
    let gone = time_until(Duration::from_secs(10), || !has_route()).expect("BIRD drops the route");
    eprintln!("BFD lab: BIRD dropped a frozen speaker's route after {gone:?}");
    ironlb_lab::run("kill", &["-CONT", &speaker.to_string()]);
    assert!(gone < Duration::from_secs(1), "{gone:?}");
    up_again("the speaker, thawed");
    let metrics = node.http_get("127.0.0.1:7472", "/metrics");
    let peer = "{peer=\"192.0.2.1\",vrf=\"default\"}";
    assert!(
        metrics.contains(&format!("metallb_bfd_session_up{peer} 1")),
        "{metrics}"
    );
    // Counted as MetalLB's FRR mode counts them: up twice (start, thaw), down once.
    for (family, at_least) in [
        ("metallb_bfd_session_up_events", 2),
        ("metallb_bfd_session_down_events", 1),
        ("metallb_bfd_control_packet_input", 3),
        ("metallb_bfd_control_packet_output", 3),
    ] {
        let value: u64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{family}{peer} ")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {family}: {metrics}"));
        assert!(value >= at_least, "{family} {value}: {metrics}");
    }

    // The router hangs instead: our side sees BFD go down and resets the BGP session at
    // once, rather than keeping a dead one until the hold time.
    ironlb_lab::run("kill", &["-STOP", &bird.to_string()]);
    wait_for(Duration::from_secs(5), || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("BFD session down; resetting the BGP session")
            .then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "the speaker did not reset its session:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        )
    });
    ironlb_lab::run("kill", &["-CONT", &bird.to_string()]);
    up_again("the router, thawed");
}

/// FRR with BFD echo mode toward the node, which forwards, as a Kubernetes node does.
const FRR_ECHO: &str = "frr defaults traditional
hostname router
bfd
 profile echo
  receive-interval 300
  transmit-interval 300
  echo-mode
  echo-interval 50
 !
!
router bgp 64512
 bgp router-id 192.0.2.1
 no bgp ebgp-requires-policy
 neighbor 192.0.2.2 remote-as 64513
 neighbor 192.0.2.2 timers connect 1
 neighbor 192.0.2.2 bfd
 neighbor 192.0.2.2 bfd profile echo
";

/// Echoes every 50 ms, 3 missed: the path is declared down 150 ms after the last came
/// back, while control packets, slowed to one a second, would take 3 s.
const ECHO: Duration = Duration::from_millis(150);

/// BFD echo mode against FRR's bfdd: our echoes loop through the router's forwarding
/// plane. When the router stops forwarding (its control packets still flowing), and when
/// the path is cut silently at the switch, the session goes down with "echo function
/// failed" within echo interval × multiplier, and BGP is reset once each time.
#[test]
fn lost_echoes_take_the_session_down_within_echo_interval_times_multiplier() {
    if !ready(&["ip", "vtysh"]) || !std::path::Path::new("/usr/lib/frr/bfdd").exists() {
        return;
    }
    let switch = Netns::new("bfdesw");
    let mut router = Netns::new("bfder");
    let mut node = Netns::new("bfden");
    ironlb_lab::lan(
        &switch,
        &[(&router, &["192.0.2.1/24"]), (&node, &["192.0.2.2/24"])],
    );
    for ns in [&router, &node] {
        ns.exec("sysctl", &["-qw", "net.ipv4.ip_forward=1"]);
    }
    let frr = router.scratch().join("frr");
    std::fs::create_dir_all(&frr).unwrap();
    std::fs::write(frr.join("frr.conf"), FRR_ECHO).unwrap();
    router.start_zebra(&frr);
    router.start(&Daemon::bfdd(&frr));
    router.start(&Daemon::bgpd_on_zebra(&frr));
    let dir = node.scratch();
    let config = CONFIG.replace(
        "spec: {receiveInterval: 100, transmitInterval: 100, detectMultiplier: 3}",
        "spec: {receiveInterval: 300, transmitInterval: 300, detectMultiplier: 3, echoMode: true, echoInterval: 50}",
    );
    std::fs::write(dir.join("lb.yaml"), config).unwrap();
    let log = dir.join("node1.log");
    node.spawn_logs(
        env!("CARGO_BIN_EXE_ironlb"),
        &[
            "standalone",
            "--config",
            &dir.join("lb.yaml").display().to_string(),
            "--node",
            "node1",
            "--node-ip",
            "192.0.2.2",
        ],
        &dir.join("node1.out"),
        &log,
    );
    let log = || std::fs::read_to_string(&log).unwrap_or_default();
    let vtysh = |c: &str| ironlb_lab::seed::vtysh(&frr, c);
    let metric = |name: &str| {
        let metrics = node.http_get("127.0.0.1:7472", "/metrics");
        let series = format!("{name}{{peer=\"192.0.2.1\",vrf=\"default\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&series))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let echoes_back = || {
        let route = vtysh("show bgp ipv4 unicast 198.51.100.40/32 json").contains("\"paths\"");
        if !route || metric("metallb_bfd_session_up") != 1 {
            return false;
        }
        let before = metric("metallb_bfd_echo_packet_input");
        std::thread::sleep(Duration::from_millis(200));
        metric("metallb_bfd_echo_packet_input") > before
    };
    let up = |what: &str| {
        let took = time_until(Duration::from_secs(30), echoes_back).unwrap_or_else(|| {
            panic!(
                "{what}: no echoes, route or BFD session\n{}\n{}",
                vtysh("show bfd peers"),
                log()
            )
        });
        eprintln!("BFD echo lab: {what}: echoes returning, route at FRR after {took:?}");
    };
    // Each fault: the session goes down by echo, at once, and BGP is reset for it once.
    let fault = |what: &str, inject: &dyn Fn(), repair: &dyn Fn()| {
        up(what);
        let downs = log().matches("diag=2").count();
        let resets = log().matches("resetting the BGP session").count();
        inject();
        let took = time_until(Duration::from_secs(5), || {
            log().matches("diag=2").count() > downs
        });
        // The hold-down (2 s after a first failure) keeps it Down: no second reset.
        std::thread::sleep(Duration::from_millis(1500));
        let again = log().matches("resetting the BGP session").count() - resets;
        repair();
        let took = took.unwrap_or_else(|| panic!("{what}: no echo failure\n{}", log()));
        eprintln!("BFD echo lab: {what}: down by echo after {took:?}, BGP reset {again} time(s)");
        assert!(
            took <= ECHO + Duration::from_millis(100),
            "{what}: {took:?}"
        );
        assert_eq!(again, 1, "{what}\n{}", log());
    };
    let forwarding = |on: &str| {
        router.exec("sysctl", &["-qw", &format!("net.ipv4.ip_forward={on}")]);
    };
    fault("the router stops forwarding", &|| forwarding("0"), &|| {
        forwarding("1")
    });
    // The router's port disabled: neither end loses carrier, so only silence tells.
    let port = |state: &str| {
        switch.exec("bridge", &["link", "set", "dev", "p0", "state", state]);
    };
    fault("the path is cut at the switch", &|| port("0"), &|| {
        port("3")
    });
    up("the path, restored");
    // FRR's view: we ask for control packets once a second while echo runs, and loop its
    // echoes back (this node forwards).
    let json = |command: &str| -> Value {
        let peers: Value = serde_json::from_str(&vtysh(command)).unwrap_or_default();
        peers[0].clone()
    };
    let peer = json("show bfd peers json");
    assert_eq!(peer["remote-receive-interval"], 1000, "{peer}");
    assert_eq!(peer["remote-echo-receive-interval"], 50, "{peer}");
    let counters = json("show bfd peers counters json");
    assert!(
        counters["echo-packet-input"].as_u64() > Some(0),
        "{counters}"
    );
}
