//! OPNsense with the os-frr plugin: the settings to enter, page by page.

use super::{Nodes, Peering, header};
use std::fmt::Write;

pub fn render(p: &Peering, warnings: &mut Vec<String>) -> String {
    let mut o = header("#", p, warnings);
    o.push_str("\nRouting > General\n  Enable: checked\n");
    let _ = writeln!(
        o,
        "\nRouting > BGP > General\n  Enable: checked\n  BGP AS Number: {}",
        p.router_asn
    );
    if let Some(id) = p.router_id {
        let _ = writeln!(o, "  Router ID: {id}");
    }
    o.push_str("\nRouting > BGP > Prefix Lists (one row each)\n");
    for (i, f) in p.prefixes.iter().enumerate() {
        let version = if f.net.addr().is_ipv6() {
            "IPv6"
        } else {
            "IPv4"
        };
        let network = format!("{}{}", f.net, f.ge_le_suffix());
        let _ = writeln!(
            o,
            "  Name: IRONLB-IN  IP Version: {version}  Number: {}  Action: Permit  Network: {network}",
            (i + 1) * 10
        );
    }
    let neighbors: Vec<String> = match &p.nodes {
        Nodes::Addresses(a) => a.iter().map(ToString::to_string).collect(),
        Nodes::Range(net) => {
            warnings.push("the os-frr GUI has no listen range: add one neighbor per node, or set `bgp listen range` in a custom FRR config".to_string());
            vec![format!("(each node in {net})")]
        }
    };
    for n in neighbors {
        let _ = writeln!(
            o,
            "\nRouting > BGP > Neighbors > Add\n  Peer-IP: {n}\n  Remote AS: {}",
            p.cluster_asn
        );
        if let Some(password) = &p.password {
            let _ = writeln!(o, "  BGP MD5-Password: {password}");
        }
        if p.multihop {
            o.push_str("  Multi-Hop: checked\n");
        }
        if p.bfd.is_some() {
            o.push_str("  BFD: checked\n");
        }
        if let Some(t) = p.timers {
            let _ = writeln!(
                o,
                "  Keepalive: {}  Hold Down Time: {}",
                t.keepalive.as_secs(),
                t.hold.as_secs()
            );
        }
        o.push_str("  Prefix-List In: IRONLB-IN\n  Soft reconfiguration inbound: checked\n");
    }
    o.push_str("\n# verify: Routing > Diagnostics > BGP (Summary, Routing table)\n");
    o
}
