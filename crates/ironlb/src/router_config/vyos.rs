//! VyOS 1.4+ (`set protocols bgp system-as ...`).

use super::frr::GROUP;
use super::{Nodes, Peering, header};
use std::fmt::Write;

pub fn render(p: &Peering, warnings: &[String]) -> String {
    let mut o = header("#", p, warnings);
    o.push_str("configure\n");
    let mut set = |line: String| {
        let _ = writeln!(o, "set {line}");
    };
    set(format!("protocols bgp system-as {}", p.router_asn));
    if let Some(id) = p.router_id {
        set(format!("protocols bgp parameters router-id {id}"));
    }
    let group = format!("protocols bgp peer-group {GROUP}");
    set(format!("{group} remote-as {}", p.cluster_asn));
    if let Some(password) = &p.password {
        set(format!("{group} password '{}'", password.replace('\'', "")));
    }
    if p.multihop && !p.is_ibgp() {
        set(format!("{group} ebgp-multihop 255"));
    }
    if p.bfd.is_some() {
        set(format!("{group} bfd profile ironlb"));
    }
    for (v6, family, list, name) in [
        (false, "ipv4-unicast", "prefix-list", "IRONLB-IN"),
        (true, "ipv6-unicast", "prefix-list6", "IRONLB6-IN"),
    ] {
        let filters: Vec<_> = p.prefixes_of(v6);
        if filters.is_empty() {
            continue;
        }
        for (i, f) in filters.iter().enumerate() {
            let rule = format!("policy {list} {name} rule {}", (i + 1) * 10);
            set(format!("{rule} action permit"));
            set(format!("{rule} prefix {}", f.net));
            let (ge, le) = f.ge_le();
            if let Some(ge) = ge {
                set(format!("{rule} ge {ge}"));
            }
            if let Some(le) = le {
                set(format!("{rule} le {le}"));
            }
        }
        set(format!(
            "{group} address-family {family} prefix-list import {name}"
        ));
        set(format!(
            "{group} address-family {family} soft-reconfiguration inbound"
        ));
        let kind = if p.is_ibgp() { "ibgp" } else { "ebgp" };
        set(format!(
            "protocols bgp address-family {family} maximum-paths {kind} {}",
            p.max_paths()
        ));
    }
    match &p.nodes {
        Nodes::Addresses(addresses) => {
            for a in addresses {
                set(format!("protocols bgp neighbor {a} peer-group {GROUP}"));
                if let Some(t) = p.timers {
                    set(format!(
                        "protocols bgp neighbor {a} timers holdtime {}",
                        t.hold.as_secs()
                    ));
                    set(format!(
                        "protocols bgp neighbor {a} timers keepalive {}",
                        t.keepalive.as_secs()
                    ));
                }
            }
        }
        Nodes::Range(net) => set(format!(
            "protocols bgp listen range {net} peer-group {GROUP}"
        )),
    }
    if let Some(b) = &p.bfd {
        set(format!(
            "protocols bfd profile ironlb interval receive {}",
            b.receive_interval_ms
        ));
        set(format!(
            "protocols bfd profile ironlb interval transmit {}",
            b.transmit_interval_ms
        ));
        set(format!(
            "protocols bfd profile ironlb interval multiplier {}",
            b.detect_multiplier
        ));
        if b.passive_mode {
            set("protocols bfd profile ironlb passive".to_string());
        }
    }
    o.push_str("commit\nsave\nexit\n# verify: show bgp summary; show ip bgp; show ip route bgp\n");
    o
}
