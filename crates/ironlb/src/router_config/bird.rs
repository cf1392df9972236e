//! BIRD 2 (`bird.conf`), for Linux and OpenWrt routers.

use super::{Nodes, Peering, header};
use std::fmt::Write;

pub fn render(p: &Peering, warnings: &[String]) -> String {
    let mut o = header("#", p, warnings);
    if let Some(id) = p.router_id {
        let _ = writeln!(o, "router id {id};");
    }
    o.push_str("\nprotocol device {\n}\n");
    for (v6, channel) in [(false, "ipv4"), (true, "ipv6")] {
        let nets: Vec<String> = p
            .prefixes_of(v6)
            .into_iter()
            .map(|f| format!("{}{{{},{}}}", f.net, f.min_len, f.max_len))
            .collect();
        if nets.is_empty() {
            continue;
        }
        let _ = writeln!(
            o,
            "\nfilter ironlb_{channel} {{\n  if net ~ [ {} ] then accept;\n  reject;\n}}",
            nets.join(", ")
        );
        // ECMP into the kernel: one next hop per announcing node.
        let _ = writeln!(
            o,
            "\nprotocol kernel kernel_{channel} {{\n  merge paths on limit {};\n  {channel} {{ import none; export where source = RTS_BGP; }};\n}}",
            p.max_paths()
        );
    }
    o.push_str("\ntemplate bgp ironlb_node {\n");
    // BIRD needs the local address for multihop sessions with BFD, and it is known anyway.
    let _ = writeln!(o, "  local {} as {};", p.router_address, p.router_asn);
    if p.multihop && !p.is_ibgp() {
        o.push_str("  multihop;\n");
    } else if !p.is_ibgp() {
        o.push_str("  direct;\n");
    }
    if let Some(password) = &p.password {
        let _ = writeln!(o, "  password \"{}\";", password.replace('"', "\\\""));
    }
    if let Some(t) = p.timers {
        let _ = writeln!(
            o,
            "  hold time {};\n  keepalive time {};",
            t.hold.as_secs(),
            t.keepalive.as_secs().max(1)
        );
    }
    if p.bfd.is_some() {
        o.push_str("  bfd on;\n");
    }
    for (v6, channel) in [(false, "ipv4"), (true, "ipv6")] {
        if !p.prefixes_of(v6).is_empty() {
            let _ = writeln!(
                o,
                "  {channel} {{ import filter ironlb_{channel}; export none; }};"
            );
        }
    }
    o.push_str("}\n");
    match &p.nodes {
        Nodes::Addresses(addresses) => {
            for a in addresses {
                let name: String = a
                    .to_string()
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                    .collect();
                let _ = writeln!(
                    o,
                    "\nprotocol bgp node_{name} from ironlb_node {{\n  neighbor {a} as {};\n}}",
                    p.cluster_asn
                );
            }
        }
        Nodes::Range(net) => {
            let _ = writeln!(
                o,
                "\nprotocol bgp nodes from ironlb_node {{\n  neighbor range {net} as {};\n  dynamic name \"node_\";\n}}",
                p.cluster_asn
            );
        }
    }
    if let Some(b) = &p.bfd {
        let _ = writeln!(
            o,
            "\nprotocol bfd {{\n  interface \"*\" {{\n    min rx interval {} ms;\n    min tx interval {} ms;\n    multiplier {};\n    passive {};\n  }};\n}}",
            b.receive_interval_ms,
            b.transmit_interval_ms,
            b.detect_multiplier,
            if b.passive_mode { "on" } else { "off" }
        );
    }
    o.push_str("\n# verify: birdc show protocols; birdc show route protocol <name>\n");
    o
}
