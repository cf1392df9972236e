//! EdgeOS (EdgeRouter, UniFi USG): one configuration tree, rendered either as `set`
//! commands or as the USG's `config.gateway.json`, which survives controller provisioning.

use super::{Nodes, Peering, header};
use anyhow::{Result, bail};
use serde_json::{Map, Value};

/// One configuration node: its path, and its value (`None` for a valueless node such as
/// `soft-reconfiguration inbound`).
struct Node {
    path: Vec<String>,
    value: Option<String>,
}

fn tree(p: &Peering, warnings: &mut Vec<String>, multipath: bool) -> Result<Vec<Node>> {
    let Nodes::Addresses(addresses) = &p.nodes else {
        bail!(
            "EdgeOS has no dynamic neighbors (listen range): pass the node IPs with --nodes 192.0.2.2,192.0.2.3"
        );
    };
    if p.bfd.is_some() {
        warnings.push(
            "EdgeOS has no BFD for BGP: failure detection falls back to the hold timer".to_string(),
        );
    }
    let asn = p.router_asn.to_string();
    let mut nodes = Vec::new();
    let mut set = |path: &[&str], value: Option<String>| {
        nodes.push(Node {
            path: path.iter().map(|s| s.to_string()).collect(),
            value,
        });
    };
    for (v6, list, family) in [
        (false, "prefix-list", "ipv4-unicast"),
        (true, "prefix-list6", "ipv6-unicast"),
    ] {
        let filters: Vec<_> = p.prefixes_of(v6);
        let name = if v6 { "IRONLB6-IN" } else { "IRONLB-IN" };
        for (i, f) in filters.iter().enumerate() {
            let rule = ((i + 1) * 10).to_string();
            set(
                &["policy", list, name, "rule", &rule, "action"],
                Some("permit".into()),
            );
            set(
                &["policy", list, name, "rule", &rule, "prefix"],
                Some(f.net.to_string()),
            );
            let (ge, le) = f.ge_le();
            if let Some(ge) = ge {
                set(
                    &["policy", list, name, "rule", &rule, "ge"],
                    Some(ge.to_string()),
                );
            }
            if let Some(le) = le {
                set(
                    &["policy", list, name, "rule", &rule, "le"],
                    Some(le.to_string()),
                );
            }
        }
        if filters.is_empty() {
            continue;
        }
        for a in addresses {
            let a = a.to_string();
            let neighbor = ["protocols", "bgp", &asn, "neighbor", &a];
            let prefix_list: Vec<&str> = if v6 {
                [
                    &neighbor[..],
                    &["address-family", family, "prefix-list", "import"],
                ]
                .concat()
            } else {
                [&neighbor[..], &["prefix-list", "import"]].concat()
            };
            set(&prefix_list, Some(name.to_string()));
        }
    }
    if let Some(id) = p.router_id {
        set(
            &["protocols", "bgp", &asn, "parameters", "router-id"],
            Some(id.to_string()),
        );
    }
    for a in addresses {
        let a = a.to_string();
        let neighbor = ["protocols", "bgp", &asn, "neighbor", &a];
        let at = |tail: &[&'static str]| -> Vec<&str> { [&neighbor[..], tail].concat() };
        set(&at(&["remote-as"]), Some(p.cluster_asn.to_string()));
        set(&at(&["soft-reconfiguration", "inbound"]), None);
        if let Some(password) = &p.password {
            set(&at(&["password"]), Some(password.clone()));
        }
        if p.multihop && !p.is_ibgp() {
            set(&at(&["ebgp-multihop"]), Some("255".into()));
        }
        if let Some(t) = p.timers {
            set(
                &at(&["timers", "holdtime"]),
                Some(t.hold.as_secs().to_string()),
            );
            set(
                &at(&["timers", "keepalive"]),
                Some(t.keepalive.as_secs().to_string()),
            );
        }
    }
    if multipath {
        let kind = if p.is_ibgp() { "ibgp" } else { "ebgp" };
        set(
            &["protocols", "bgp", &asn, "maximum-paths", kind],
            Some(p.max_paths().to_string()),
        );
    }
    Ok(nodes)
}

fn quote(value: &str) -> String {
    if value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || ".:/-_".contains(c))
    {
        value.to_string()
    } else {
        format!("'{}'", value.replace('\'', ""))
    }
}

pub fn render_commands(p: &Peering, warnings: &mut Vec<String>) -> Result<String> {
    warnings.push("on a UniFi USG, `maximum-paths` is rejected: delete that line there, and expect one next hop per Service (no ECMP)".to_string());
    let nodes = tree(p, warnings, true)?;
    let mut o = header("#", p, warnings);
    o.push_str("configure\n");
    for node in nodes {
        let mut line = format!("set {}", node.path.join(" "));
        if let Some(v) = node.value {
            line.push(' ');
            line.push_str(&quote(&v));
        }
        o.push_str(&line);
        o.push('\n');
    }
    o.push_str(
        "commit\nsave\nexit\n# verify: show ip bgp summary; show ip bgp; show ip route bgp\n",
    );
    Ok(o)
}

/// `config.gateway.json` for the UniFi controller; valueless nodes are `"''"` by UniFi's
/// convention.
pub fn render_json(p: &Peering, warnings: &mut Vec<String>) -> Result<String> {
    warnings.push("the USG cannot do ECMP (maximum-paths is rejected), so each Service IP uses one node at a time".to_string());
    warnings.push("merge this into config.gateway.json on the UniFi controller, then force-provision the gateway".to_string());
    let mut root = Map::new();
    for node in tree(p, warnings, false)? {
        let mut at = &mut root;
        let (last, parents) = node.path.split_last().expect("every node has a path");
        for key in parents {
            at = at
                .entry(key.clone())
                .or_insert_with(|| Value::Object(Map::new()))
                .as_object_mut()
                .expect("configuration paths never end where another continues");
        }
        let leaf = node.value.unwrap_or_else(|| "''".to_string());
        at.insert(last.clone(), Value::String(leaf));
    }
    Ok(serde_json::to_string_pretty(&Value::Object(root))? + "\n")
}
