//! The seed setup, as `ironlb demo` shows it and the end-to-end lab checks it: a router,
//! two nodes and a client on one LAN, 192.0.2.0/24, with the pools of
//! `examples/legacy-configmap.yaml`, a BGP service pinned to 198.51.100.32 and a layer-2
//! service from 192.0.2.128/25.

use crate::{Netns, lan};
use ironlb_plan::election::owner;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Command;

pub const ROUTER_IP: &str = "192.0.2.1";
pub const ROUTER_ASN: u32 = 64512;
pub const NODE_ASN: u32 = 64513;
/// Name and address of each node.
pub const NODES: [(&str, &str); 2] = [("node1", "192.0.2.2"), ("node2", "192.0.2.3")];
pub const CLIENT_IP: &str = "192.0.2.100";
/// The BGP service's pinned IP, in the example's `routed` pool.
pub const BGP_IP: &str = "198.51.100.32";

/// The example ConfigMap, which the seed setup reuses unchanged.
pub const LEGACY_CONFIGMAP: &str = include_str!("../../../examples/legacy-configmap.yaml");

pub struct SeedLan {
    pub router: Netns,
    pub nodes: Vec<Netns>,
    pub client: Netns,
    pub macs: Vec<String>,
    /// Dropped last: the bridge outlives the hosts on it.
    _switch: Netns,
}

impl SeedLan {
    /// Builds the LAN; `namespace` makes each role's namespace ("lan", "router", "node1",
    /// "node2", "client").
    pub fn new(namespace: impl Fn(&str) -> Netns) -> SeedLan {
        let switch = namespace("lan");
        let router = namespace("router");
        let nodes: Vec<Netns> = NODES.iter().map(|(name, _)| namespace(name)).collect();
        let client = namespace("client");
        let cidr = |ip: &str| format!("{ip}/24");
        let (r, n1, n2, c) = (
            cidr(ROUTER_IP),
            cidr(NODES[0].1),
            cidr(NODES[1].1),
            cidr(CLIENT_IP),
        );
        lan(
            &switch,
            &[
                (&router, &[r.as_str()]),
                (&nodes[0], &[n1.as_str()]),
                (&nodes[1], &[n2.as_str()]),
                (&client, &[c.as_str()]),
            ],
        );
        let macs = nodes.iter().map(|n| n.mac("eth0")).collect();
        SeedLan {
            router,
            nodes,
            client,
            macs,
            _switch: switch,
        }
    }

    /// Starts `ironlb standalone` on node `i` with `config`, logging to `dir/<node>.log`.
    /// The nodes gossip encrypted, with a secret in `dir/gossip.key`.
    pub fn start_speaker(&mut self, i: usize, ironlb: &Path, config: &Path, dir: &Path) -> u32 {
        let (me, ip) = NODES[i];
        let (other, other_ip) = NODES[1 - i];
        let config = config.display().to_string();
        let member = format!("{other}={other_ip}");
        let key = dir.join("gossip.key");
        if !key.exists() {
            let mut secret = [0u8; 16];
            std::fs::File::open("/dev/urandom")
                .and_then(|mut random| std::io::Read::read_exact(&mut random, &mut secret))
                .expect("reading /dev/urandom");
            let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
            std::fs::write(&key, hex).unwrap_or_else(|e| panic!("writing {}: {e}", key.display()));
        }
        let key = key.display().to_string();
        let args = [
            "standalone",
            "--config",
            &config,
            "--node",
            me,
            "--node-ip",
            ip,
            "--member",
            &member,
            "--gossip-key-file",
            &key,
            "--metrics",
            "127.0.0.1:7472",
        ];
        self.nodes[i].spawn_logs(
            &ironlb.display().to_string(),
            &args,
            &dir.join(format!("{me}.out")),
            &log(dir, me),
        )
    }
}

/// Where `start_speaker` logs node `name`'s speaker.
pub fn log(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.log"))
}

/// Every node's speaker log in `dir`, one after the other, for a failing test to print.
pub fn logs(dir: &Path) -> String {
    NODES
        .iter()
        .map(|(n, _)| std::fs::read_to_string(log(dir, n)).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n----\n")
}

/// The first IP of the layer-2 pool that the election gives `node` while both nodes are
/// live, so that stopping `node` visibly moves it.
pub fn l2_ip_owned_by(node: &str) -> Ipv4Addr {
    let names: Vec<&str> = NODES.iter().map(|(n, _)| *n).collect();
    (128..=255u8)
        .map(|last| Ipv4Addr::new(192, 0, 2, last))
        .find(|ip| owner(&IpAddr::V4(*ip), &names) == Some(node))
        .expect("with two nodes, each owns about half of the pool")
}

/// The services of the seed setup: `web` (BGP) and `lan` (layer 2).
pub const SERVICES: [&str; 2] = ["web", "lan"];

/// The file whose presence makes `service`'s health check pass on `node`.
pub fn health_flag(flags: &Path, service: &str, node: &str) -> PathBuf {
    flags.join(format!("{service}-healthy-{node}"))
}

/// Makes every check pass on every node.
pub fn all_healthy(flags: &Path) {
    for service in SERVICES {
        for (node, _) in NODES {
            let flag = health_flag(flags, service, node);
            std::fs::write(&flag, "").unwrap_or_else(|e| panic!("writing {}: {e}", flag.display()));
        }
    }
}

/// The standalone file every node runs: the example ConfigMap, and two services, each
/// passing its check on a node while its `health_flag` exists. `web` is pinned to BGP_IP;
/// `lan` is answered on layer 2 at `l2_ip`.
pub fn standalone_file(flags: &Path, l2_ip: Ipv4Addr, interval: &str) -> String {
    let check = |service: &str| {
        let flag = health_flag(flags, service, "$IRONLB_NODE");
        format!(
            "  healthCheck:\n    exec:\n      command: [sh, -c, 'test -e \"{}\"']\n    interval: {interval}\n",
            flag.display()
        )
    };
    format!(
        r#"{LEGACY_CONFIGMAP}---
apiVersion: ironlb.dev/v1alpha1
kind: StandaloneService
metadata:
  name: web
spec:
  loadBalancerIPs: [{BGP_IP}]
  ports: [{{port: 80}}]
{web}---
apiVersion: ironlb.dev/v1alpha1
kind: StandaloneService
metadata:
  name: lan
spec:
  loadBalancerIPs: [{l2_ip}]
  ports: [{{port: 53, protocol: UDP}}]
{lan}"#,
        web = check("web"),
        lan = check("lan"),
    )
}

/// FRR as the gateway: AS 64512 peering with both nodes, using both paths (ECMP).
pub fn frr_gateway_config() -> String {
    let mut conf = format!(
        "frr defaults traditional\nhostname router\nrouter bgp {ROUTER_ASN}\n bgp router-id {ROUTER_IP}\n no bgp ebgp-requires-policy\n"
    );
    for (_, ip) in NODES {
        conf += &format!(" neighbor {ip} remote-as {NODE_ASN}\n");
    }
    conf + " address-family ipv4 unicast\n  maximum-paths 8\n exit-address-family\n"
}

/// What `vtysh -c command` prints for the bgpd whose vty socket is in `dir`.
pub fn vtysh(dir: &Path, command: &str) -> String {
    Command::new("vtysh")
        .args(["--vty_socket", &dir.display().to_string(), "-c", command])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// The next hops that FRR (vty socket in `dir`) holds for `prefix`, sorted.
pub fn frr_next_hops(dir: &Path, prefix: &str) -> Vec<String> {
    let text = vtysh(dir, &format!("show bgp ipv4 unicast {prefix} json"));
    let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    let mut hops: Vec<String> = json["paths"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["nexthops"][0]["ip"].as_str().map(str::to_string))
        .collect();
    hops.sort();
    hops
}

/// How many times FRR (vty socket in `dir`) has established a session with each neighbor:
/// more than once means the session flapped.
pub fn frr_sessions_established(dir: &Path) -> BTreeMap<String, u64> {
    let text = vtysh(dir, "show bgp neighbors json");
    let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    json.as_object()
        .into_iter()
        .flatten()
        .filter_map(|(peer, n)| Some((peer.clone(), n["connectionsEstablished"].as_u64()?)))
        .collect()
}
