//! FRR `frr.conf`; also UniFi OS gateways (Settings → Routing → BGP upload) and pfSense FRR.

use super::{Nodes, Peering, header};
use std::fmt::Write;

pub const GROUP: &str = "IRONLB";

pub fn render(p: &Peering, warnings: &mut Vec<String>) -> String {
    warnings.push("FRR-based routers refuse eBGP routes without policy (RFC 8212): `no bgp ebgp-requires-policy` is included, and the prefix lists below are the policy".to_string());
    let mut o = header("!", p, warnings);
    let _ = writeln!(
        o,
        "frr defaults traditional\n!\nrouter bgp {}",
        p.router_asn
    );
    if let Some(id) = p.router_id {
        let _ = writeln!(o, " bgp router-id {id}");
    }
    o.push_str(" no bgp ebgp-requires-policy\n");
    let _ = writeln!(o, " neighbor {GROUP} peer-group");
    let _ = writeln!(o, " neighbor {GROUP} remote-as {}", p.cluster_asn);
    let _ = writeln!(o, " neighbor {GROUP} description ironlb cluster nodes");
    if let Some(password) = &p.password {
        let _ = writeln!(o, " neighbor {GROUP} password {password}");
    }
    if p.multihop && !p.is_ibgp() {
        let _ = writeln!(o, " neighbor {GROUP} ebgp-multihop 255");
    }
    if let Some(t) = p.timers {
        let _ = writeln!(
            o,
            " neighbor {GROUP} timers {} {}",
            t.keepalive.as_secs(),
            t.hold.as_secs()
        );
    }
    if p.bfd.is_some() {
        let _ = writeln!(o, " neighbor {GROUP} bfd profile ironlb");
    }
    match &p.nodes {
        Nodes::Addresses(addresses) => {
            for a in addresses {
                let _ = writeln!(o, " neighbor {a} peer-group {GROUP}");
            }
        }
        Nodes::Range(net) => {
            let _ = writeln!(o, " bgp listen range {net} peer-group {GROUP}");
        }
    }
    for (v6, family) in [(false, "ipv4"), (true, "ipv6")] {
        if p.prefixes_of(v6).is_empty() {
            continue;
        }
        let list = prefix_list_name(v6);
        let _ = writeln!(o, " !\n address-family {family} unicast");
        let _ = writeln!(o, "  neighbor {GROUP} activate");
        let _ = writeln!(o, "  neighbor {GROUP} soft-reconfiguration inbound");
        let _ = writeln!(o, "  neighbor {GROUP} prefix-list {list}-IN in");
        let _ = writeln!(o, "  neighbor {GROUP} prefix-list {list}-OUT out");
        let ibgp = if p.is_ibgp() { "ibgp " } else { "" };
        let _ = writeln!(o, "  maximum-paths {ibgp}{}", p.max_paths());
        o.push_str(" exit-address-family\n");
    }
    o.push_str("exit\n!\n");
    for v6 in [false, true] {
        let filters: Vec<_> = p.prefixes_of(v6);
        if filters.is_empty() {
            continue;
        }
        let (keyword, list) = if v6 {
            ("ipv6", prefix_list_name(true))
        } else {
            ("ip", prefix_list_name(false))
        };
        for (i, f) in filters.iter().enumerate() {
            let _ = writeln!(
                o,
                "{keyword} prefix-list {list}-IN seq {} permit {}{}",
                (i + 1) * 10,
                f.net,
                f.ge_le_suffix()
            );
        }
        let _ = writeln!(o, "{keyword} prefix-list {list}-OUT seq 10 deny any");
    }
    if let Some(b) = &p.bfd {
        let _ = writeln!(o, "!\nbfd\n profile ironlb");
        let _ = writeln!(o, "  detect-multiplier {}", b.detect_multiplier);
        let _ = writeln!(o, "  receive-interval {}", b.receive_interval_ms);
        let _ = writeln!(o, "  transmit-interval {}", b.transmit_interval_ms);
        if b.passive_mode {
            o.push_str("  passive-mode\n");
        }
        o.push_str(" exit\nexit\n");
    }
    o.push_str("!\n! verify: show bgp summary; show ip bgp; show ip route bgp\n");
    o
}

pub fn prefix_list_name(v6: bool) -> &'static str {
    if v6 { "IRONLB6" } else { "IRONLB" }
}
