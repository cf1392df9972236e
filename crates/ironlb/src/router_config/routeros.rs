//! MikroTik RouterOS 7 (the v7 routing stack: `/routing/bgp/connection`).

use super::{Nodes, Peering, header};
use std::fmt::Write;

pub fn render(p: &Peering, warnings: &mut Vec<String>) -> String {
    warnings.push(
        "RouterOS documents BGP multipath as unsupported: expect one next hop per Service IP"
            .to_string(),
    );
    if !p.multihop {
        warnings.push("RouterOS defaults to multihop=no: if the nodes are not on a subnet of the router, add multihop=yes to the connection".to_string());
    }
    let mut o = header("#", p, warnings);
    let _ = write!(o, "/routing/bgp/template set default as={}", p.router_asn);
    if let Some(id) = p.router_id {
        let _ = write!(o, " router-id={id}");
    }
    o.push('\n');
    for f in &p.prefixes {
        let _ = writeln!(
            o,
            "/routing/filter/rule add chain=ironlb-in rule=\"if (dst in {} && dst-len in {}-{}) {{ accept }}\"",
            f.net, f.min_len, f.max_len
        );
    }
    o.push_str("/routing/filter/rule add chain=ironlb-in rule=\"reject\"\n");
    o.push_str("/routing/filter/rule add chain=ironlb-out rule=\"reject\"\n");
    let role = if p.is_ibgp() { "ibgp" } else { "ebgp" };
    let mut options = format!(
        "remote.as={} local.role={role} templates=default input.filter=ironlb-in output.filter-chain=ironlb-out",
        p.cluster_asn
    );
    if p.multihop {
        options.push_str(" multihop=yes");
    }
    if let Some(password) = &p.password {
        let _ = write!(options, " tcp-md5-key=\"{}\"", password.replace('"', ""));
    }
    if p.bfd.is_some() {
        options.push_str(" use-bfd=yes");
    }
    if let Some(t) = p.timers {
        let _ = write!(
            options,
            " hold-time={}s keepalive-time={}s",
            t.hold.as_secs(),
            t.keepalive.as_secs()
        );
    }
    match &p.nodes {
        Nodes::Addresses(addresses) => {
            for (i, a) in addresses.iter().enumerate() {
                let _ = writeln!(
                    o,
                    "/routing/bgp/connection add name=ironlb-{} remote.address={a} {options}",
                    i + 1
                );
            }
        }
        Nodes::Range(net) => {
            let _ = writeln!(
                o,
                "/routing/bgp/connection add name=ironlb remote.address={net} listen=yes {options}"
            );
        }
    }
    o.push_str("# verify: /routing/bgp/session print; /routing/route print where bgp\n");
    o
}
