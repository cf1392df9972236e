//! `ironlb looking-glass` receiving from a real FRR bgpd, and printing what it learned.

use ironlb_lab::{Daemon, Netns, link, ready, wait_for};
use std::time::Duration;

#[test]
fn the_looking_glass_shows_what_frr_announces() {
    if !ready(&["/usr/lib/frr/bgpd", "ip"]) {
        return;
    }
    let mut router = Netns::new("lgr");
    let mut node = Netns::new("lgn");
    link(&router, &["192.0.2.1/24"], &node, &["192.0.2.2/24"]);
    let dir = node.scratch();
    let conf = "frr defaults traditional\nhostname n\nroute-map TAG permit 10\n set community 64512:100\nexit\nrouter bgp 64513\n bgp router-id 192.0.2.2\n no bgp ebgp-requires-policy\n no bgp network import-check\n neighbor 192.0.2.1 remote-as 64512\n neighbor 192.0.2.1 timers connect 1\n address-family ipv4 unicast\n  network 198.51.100.60/32 route-map TAG\n  network 198.51.100.61/32\n exit-address-family\n";
    std::fs::write(dir.join("frr.conf"), conf).unwrap();
    let log = dir.join("looking-glass.out");
    router.spawn_logged(
        env!("CARGO_BIN_EXE_ironlb"),
        &["looking-glass", "--listen", "192.0.2.1", "--asn", "64512"],
        &log,
    );
    node.start(&Daemon::bgpd(&dir));
    let table = wait_for(Duration::from_secs(20), || {
        let text = std::fs::read_to_string(&log).ok()?;
        // The last table printed, once it holds both prefixes.
        let last = text
            .rsplit("BGP table, local router ID")
            .next()?
            .to_string();
        (last.contains("198.51.100.60/32") && last.contains("198.51.100.61/32")).then_some(text)
    })
    .unwrap_or_else(|| {
        panic!(
            "the looking glass never showed both routes:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        )
    });
    assert!(
        table.contains("% 192.0.2.2 (AS 64513) established"),
        "{table}"
    );
    let line = table
        .lines()
        .rev()
        .find(|l| l.contains("198.51.100.60/32"))
        .unwrap();
    assert!(
        line.starts_with("*>")
            && line.contains("192.0.2.2")
            && line.contains("64513 i")
            && line.contains("64512:100"),
        "{line}"
    );
}

/// With only NET_RAW, as MetalLB's speaker securityContext gives it, listening on 179 fails
/// with an error that names the missing capability and where to add it.
#[test]
fn without_net_bind_service_listening_on_179_names_the_capability() {
    if !ready(&["ip", "setpriv"]) {
        return;
    }
    let ns = Netns::new("lgcap");
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", &ns.name, "setpriv"])
        .args(["--inh-caps=-all,+net_raw", "--ambient-caps=-all,+net_raw"])
        .args(["--bounding-set=-all,+net_raw", "--no-new-privs"])
        .arg(env!("CARGO_BIN_EXE_ironlb"))
        .args(["looking-glass", "--listen", "127.0.0.1", "--asn", "64512"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let error = String::from_utf8_lossy(&out.stderr);
    assert!(error.contains("NET_BIND_SERVICE"), "{error}");
    assert!(error.contains("securityContext"), "{error}");
    assert_eq!(error.trim().lines().count(), 1, "one line: {error}");
}
