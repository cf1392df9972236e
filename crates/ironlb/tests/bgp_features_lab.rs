//! MetalLB's BGPPeer features against a real FRR: one `ironlb standalone` node and FRR as the
//! router, in namespaces of their own, on documentation addresses.

use ironlb_lab::seed::vtysh;
use ironlb_lab::{Daemon, Netns, link, link_named, ready, wait_for};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

const ROUTER: &str = "192.0.2.1";
const NODE: &str = "192.0.2.11";
const ROUTER6: &str = "2001:db8::1";
const NODE6: &str = "2001:db8::11";
const SERVICE: &str = "198.51.100.5";
const SERVICE6: &str = "2001:db8:5::5";

/// FRR's neighbor lines for the node at `address` from `asn`.
fn neighbor(address: &str, asn: u32) -> String {
    format!(" neighbor {address} remote-as {asn}\n neighbor {address} timers connect 1\n")
}

/// FRR at `router_asn` with `neighbors` (the rest of its `router bgp` block), and the nodes,
/// each running `ironlb standalone` with a BGPPeer spec for a Service with an IP of each family.
struct Lab {
    router: Netns,
    nodes: Vec<Netns>,
    frr: std::path::PathBuf,
}

impl Lab {
    /// FRR without zebra, and one node dual-stack on the link running `peer_spec`.
    fn start(tag: &str, router_asn: u32, neighbors: &str, peer_spec: &str) -> Lab {
        let mut lab = Lab::router(tag, &frr_conf(router_asn, "", neighbors), false);
        let node = Netns::new(&format!("{tag}n"));
        link(
            &lab.router,
            &[&format!("{ROUTER}/24"), &format!("{ROUTER6}/64")],
            &node,
            &[&format!("{NODE}/24"), &format!("{NODE6}/64")],
        );
        lab.node(node, NODE, peer_spec);
        lab
    }

    /// The router's namespace with FRR's `conf`, and bgpd started, on zebra if `zebra`.
    fn router(tag: &str, conf: &str, zebra: bool) -> Lab {
        let mut router = Netns::new(&format!("{tag}r"));
        let frr = router.scratch().join("frr");
        std::fs::create_dir_all(&frr).unwrap();
        std::fs::write(frr.join("frr.conf"), conf).unwrap();
        if zebra {
            router.start_zebra(&frr);
            router.start(&Daemon::bgpd_on_zebra(&frr));
        } else {
            router.start(&Daemon::bgpd(&frr));
        }
        Lab {
            router,
            nodes: Vec::new(),
            frr,
        }
    }

    /// Starts `ironlb standalone` in `node` as a node at `node_ip`, peering per `peer_spec`.
    fn node(&mut self, mut node: Netns, node_ip: &str, peer_spec: &str) {
        let dir = node.scratch();
        let config = dir.join("standalone.yaml");
        std::fs::write(
            &config,
            format!(
                "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {{name: routed}}\nspec: {{addresses: [198.51.100.0/28, 2001:db8:5::/124]}}\n---\n\
                 apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {{name: gw}}\nspec: {peer_spec}\n---\n\
                 apiVersion: metallb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {{name: all}}\n---\n\
                 apiVersion: ironlb.dev/v1alpha1\nkind: StandaloneService\nmetadata: {{name: web}}\nspec: {{loadBalancerIPs: [{SERVICE}, {SERVICE6}], ports: [{{port: 80}}]}}\n"
            ),
        )
        .unwrap();
        let name = format!("node{}", self.nodes.len() + 1);
        let args = [
            "standalone",
            "--config",
            &config.display().to_string(),
            "--node",
            &name,
            "--node-ip",
            node_ip,
        ];
        node.spawn_logs(
            env!("CARGO_BIN_EXE_ironlb"),
            &args,
            &dir.join("node.out"),
            &dir.join("node.log"),
        );
        self.nodes.push(node);
    }

    /// Every node's log, one after the other.
    fn log(&self) -> String {
        (0..self.nodes.len())
            .map(|i| self.node_log(i))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn node_log(&self, i: usize) -> String {
        std::fs::read_to_string(self.nodes[i].scratch().join("node.log")).unwrap_or_default()
    }

    /// FRR's best path to the Service's IPv4 address, once it has one.
    fn path(&self) -> Value {
        self.path_to(&format!("{SERVICE}/32"))
    }

    /// FRR's best path to `prefix`, once it has one.
    fn path_to(&self, prefix: &str) -> Value {
        wait_for(Duration::from_secs(20), || self.learned(prefix)).unwrap_or_else(|| {
            panic!(
                "FRR never learned {prefix}\n{}\n{}",
                vtysh(&self.frr, "show bgp summary"),
                self.log()
            )
        })
    }

    /// FRR's best path to `prefix` now, if it has one.
    fn learned(&self, prefix: &str) -> Option<Value> {
        self.learned_all(prefix).into_iter().next()
    }

    /// Every path FRR has to `prefix` now.
    fn learned_all(&self, prefix: &str) -> Vec<Value> {
        let text = vtysh(
            &self.frr,
            &format!("show bgp {} unicast {prefix} json", family(prefix)),
        );
        let json: Value = serde_json::from_str(&text).unwrap_or_default();
        json["paths"].as_array().cloned().unwrap_or_default()
    }
}

/// FRR's whole configuration: `interfaces` before its `router bgp` block of `neighbors`.
fn frr_conf(asn: u32, interfaces: &str, neighbors: &str) -> String {
    format!(
        "frr defaults traditional\nhostname router\n{interfaces}router bgp {asn}\n bgp router-id {ROUTER}\n no bgp ebgp-requires-policy\n{neighbors}"
    )
}

fn family(prefix: &str) -> &'static str {
    if prefix.contains(':') { "ipv6" } else { "ipv4" }
}

fn can_run() -> bool {
    ready(&["/usr/lib/frr/bgpd", "vtysh", "ip"]) && Path::new("/usr/lib/frr/bgpd").exists()
}

/// `localASN`: FRR sees the session from the local AS, and the path carries it alone, never
/// `myASN` (FRR's `local-as N no-prepend replace-as`, as MetalLB configures it).
#[test]
fn local_asn_replaces_my_asn_toward_the_peer() {
    if !can_run() {
        return;
    }
    let lab = Lab::start(
        "lasn",
        64512,
        &neighbor(NODE, 64600),
        &format!("{{myASN: 64513, localASN: 64600, peerASN: 64512, peerAddress: {ROUTER}}}"),
    );
    let path = lab.path();
    assert_eq!(path["aspath"]["string"], "64600", "{path}");
    let summary = vtysh(&lab.frr, "show bgp summary json");
    assert!(summary.contains("\"remoteAs\":64600"), "{summary}");
}

/// `dynamicASN`: the router's AS comes from its OPEN, ours for internal (an iBGP session, so
/// the path is empty and LOCAL_PREF is sent), another for external (eBGP, our AS in the path).
#[test]
fn dynamic_asn_peers_with_a_router_of_either_kind() {
    if !can_run() {
        return;
    }
    let spec = |kind: &str| format!("{{myASN: 64513, dynamicASN: {kind}, peerAddress: {ROUTER}}}");
    let internal = Lab::start("dasni", 64513, &neighbor(NODE, 64513), &spec("internal"));
    let external = Lab::start("dasne", 64512, &neighbor(NODE, 64513), &spec("external"));
    let path = internal.path();
    assert_eq!(path["peer"]["type"], "internal", "{path}");
    assert_eq!(path["aspath"]["length"], 0, "{path}");
    assert!(
        path["locPrf"].is_number(),
        "iBGP carries LOCAL_PREF: {path}"
    );
    let path = external.path();
    assert_eq!(path["peer"]["type"], "external", "{path}");
    assert_eq!(path["aspath"]["string"], "64513", "{path}");
}

/// A router of the other kind is refused with Bad Peer AS, and the log says why.
#[test]
fn dynamic_asn_refuses_a_router_of_the_other_kind() {
    if !can_run() {
        return;
    }
    let lab = Lab::start(
        "dasnx",
        64513,
        &neighbor(NODE, 64513),
        &format!("{{myASN: 64513, dynamicASN: external, peerAddress: {ROUTER}}}"),
    );
    wait_for(Duration::from_secs(15), || {
        lab.log()
            .contains("dynamicASN external requires another")
            .then_some(())
    })
    .unwrap_or_else(|| panic!("no refusal:\n{}", lab.log()));
    let routes = vtysh(
        &lab.frr,
        &format!("show bgp ipv4 unicast {SERVICE}/32 json"),
    );
    assert!(!routes.contains("\"paths\""), "{routes}");
}

/// `dualStackAddressFamily` over an IPv4 session: FRR learns the IPv6 route too, pointing at
/// the node's IPv6 address on the link. Without it (the control), the session carries IPv4
/// alone, as MetalLB's FRR mode activates only the peer address's family.
#[test]
fn dual_stack_carries_ipv6_over_an_ipv4_session() {
    if !can_run() {
        return;
    }
    let v6_too = format!(
        "{} address-family ipv6 unicast\n  neighbor {NODE} activate\n exit-address-family\n",
        neighbor(NODE, 64513)
    );
    let spec = |dual: bool| {
        format!(
            "{{myASN: 64513, peerASN: 64512, peerAddress: {ROUTER}, dualStackAddressFamily: {dual}}}"
        )
    };
    let dual = Lab::start("ds4", 64512, &v6_too, &spec(true));
    let single = Lab::start("ds4x", 64512, &v6_too, &spec(false));
    let path = dual.path_to(&format!("{SERVICE6}/128"));
    assert_eq!(path["nexthops"][0]["ip"], NODE6, "{path}");
    assert_eq!(dual.path()["nexthops"][0]["ip"], NODE);
    single.path();
    assert_eq!(
        single.learned(&format!("{SERVICE6}/128")),
        None,
        "IPv6 without dualStackAddressFamily"
    );
}

/// `dualStackAddressFamily` over an IPv6 session: IPv4 routes go with an IPv6 next hop when
/// FRR negotiates extended next hop (RFC 8950), and with the node's IPv4 address on the link
/// when it does not.
#[test]
fn dual_stack_carries_ipv4_over_an_ipv6_session() {
    if !can_run() {
        return;
    }
    let v4_too = |enhe: &str| {
        format!(
            "{}{enhe} address-family ipv4 unicast\n  neighbor {NODE6} activate\n exit-address-family\n address-family ipv6 unicast\n  neighbor {NODE6} activate\n exit-address-family\n",
            neighbor(NODE6, 64513)
        )
    };
    let spec = format!(
        "{{myASN: 64513, peerASN: 64512, peerAddress: '{ROUTER6}', dualStackAddressFamily: true}}"
    );
    let enhe = Lab::start(
        "ds6e",
        64512,
        &v4_too(&format!(" neighbor {NODE6} capability extended-nexthop\n")),
        &spec,
    );
    let plain = Lab::start("ds6p", 64512, &v4_too(""), &spec);
    for lab in [&enhe, &plain] {
        assert_eq!(
            lab.path_to(&format!("{SERVICE6}/128"))["nexthops"][0]["ip"],
            NODE6
        );
    }
    let path = enhe.path();
    assert_eq!(path["nexthops"][0]["ip"], NODE6, "RFC 8950: {path}");
    assert_eq!(path["nexthops"][0]["afi"], "ipv6", "{path}");
    let path = plain.path();
    assert_eq!(
        path["nexthops"][0]["ip"], NODE,
        "the interface's IPv4 address: {path}"
    );
}

/// Unnumbered peering needs zebra beside bgpd.
fn can_run_zebra() -> bool {
    can_run() && Path::new("/usr/lib/frr/zebra").exists()
}

/// The router's unnumbered neighbours, one per link: RAs every 3 s, so a node is heard soon.
fn unnumbered_neighbor(interface: &str) -> (String, String) {
    (
        format!("interface {interface}\n ipv6 nd ra-interval 3\n no ipv6 nd suppress-ra\n!\n"),
        format!(
            " neighbor {interface} interface remote-as external\n neighbor {interface} timers connect 1\n address-family ipv6 unicast\n  neighbor {interface} activate\n exit-address-family\n"
        ),
    )
}

/// FRR with `neighbor IFACE interface remote-as external` on one link per node, `veth0`,
/// `veth2`..., with no addresses on them, and each node running its BGPPeer spec.
fn unnumbered(tag: &str, specs: &[&str]) -> Lab {
    let (interfaces, neighbors): (String, String) = (0..specs.len())
        .map(|i| unnumbered_neighbor(&format!("veth{}", 2 * i)))
        .unzip();
    let mut lab = Lab::router(tag, &frr_conf(64512, &interfaces, &neighbors), true);
    for (i, spec) in specs.iter().enumerate() {
        let node = Netns::new(&format!("{tag}{i}"));
        link_named(
            (&lab.router, &format!("veth{}", 2 * i), &[]),
            (&node, "veth1", &[]),
        );
        let node_ip = format!("192.0.2.{}", 11 + i);
        node.exec(
            "ip",
            &["addr", "add", &format!("{node_ip}/32"), "dev", "lo"],
        );
        lab.node(node, &node_ip, spec);
    }
    lab
}

/// The link-local address of `node`'s `veth1`.
fn link_local(node: &Netns) -> String {
    let out = node.stdout(
        "ip",
        &["-6", "-o", "addr", "show", "dev", "veth1", "scope", "link"],
    );
    let cidr = out.split_whitespace().nth(3).unwrap_or_default();
    cidr.split('/').next().unwrap_or_default().to_string()
}

/// FRR's BGP state toward its neighbour on `interface`.
fn state(lab: &Lab, interface: &str) -> String {
    let json: Value = serde_json::from_str(&vtysh(
        &lab.frr,
        &format!("show bgp neighbors {interface} json"),
    ))
    .unwrap_or_default();
    json[interface]["bgpState"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Unnumbered peering (`interface`), with `peerASN` on one node and `dynamicASN` on the
/// other: one session per link between link-local addresses carries the /32 with the
/// node's link-local address as its next hop (RFC 8950) and the /128 natively. The node
/// that names the wrong interface never establishes and says why.
#[test]
fn unnumbered_peers_carry_both_families_over_one_link_local_session() {
    if !can_run_zebra() {
        return;
    }
    let lab = unnumbered(
        "unn",
        &[
            "{myASN: 64513, peerASN: 64512, interface: veth1}",
            "{myASN: 64513, dynamicASN: external, interface: veth1}",
            "{myASN: 64513, peerASN: 64512, interface: lo}",
        ],
    );
    let mut hops = Vec::new();
    for prefix in [format!("{SERVICE}/32"), format!("{SERVICE6}/128")] {
        let paths = wait_for(Duration::from_secs(30), || {
            Some(lab.learned_all(&prefix)).filter(|paths| paths.len() == 2)
        })
        .unwrap_or_else(|| {
            panic!(
                "FRR never learned {prefix} from both nodes\n{}\n{}",
                vtysh(&lab.frr, "show bgp summary"),
                lab.log()
            )
        });
        for path in paths {
            let hop = &path["nexthops"][0];
            assert_eq!(hop["afi"], "ipv6", "{prefix}: {path}");
            hops.push(hop["ip"].as_str().unwrap_or_default().to_string());
        }
    }
    let mut expected: Vec<String> = lab.nodes[..2].iter().map(link_local).collect();
    expected.extend(expected.clone());
    hops.sort();
    expected.sort();
    assert_eq!(
        hops, expected,
        "every next hop is a node's link-local address"
    );
    for interface in ["veth0", "veth2"] {
        assert_eq!(state(&lab, interface), "Established");
    }
    assert_ne!(state(&lab, "veth4"), "Established", "the wrong interface");
    let control = lab.node_log(2);
    assert!(!control.contains("session established"), "{control}");
}

/// FRR's paths to the Service's IPv4 address, within `timeout`.
fn paths_within(lab: &Lab, timeout: Duration, count: usize) -> Option<Duration> {
    ironlb_lab::time_until(timeout, || {
        lab.learned_all(&format!("{SERVICE}/32")).len() == count
    })
}

/// An unnumbered session follows its link: it comes back when the link does, and moves to
/// the router's new link-local address when the router is renumbered.
#[test]
fn unnumbered_sessions_follow_the_link_and_the_router_address() {
    if !can_run_zebra() {
        return;
    }
    let lab = unnumbered(
        "unnf",
        &["{myASN: 64513, peerASN: 64512, interface: veth1}"],
    );
    let up = paths_within(&lab, Duration::from_secs(30), 1);
    assert!(up.is_some(), "{}", lab.log());
    let node = &lab.nodes[0];
    node.exec("ip", &["link", "set", "veth1", "down"]);
    let down = paths_within(&lab, Duration::from_secs(10), 0);
    assert!(down.is_some(), "the route outlived its link\n{}", lab.log());
    node.exec("ip", &["link", "set", "veth1", "up"]);
    let back = paths_within(&lab, Duration::from_secs(30), 1);
    assert!(
        back.is_some(),
        "no session after the link came back\n{}",
        lab.log()
    );
    lab.router.exec(
        "ip",
        &["-6", "addr", "flush", "dev", "veth0", "scope", "link"],
    );
    lab.router.exec(
        "ip",
        &["addr", "add", "fe80::99/64", "dev", "veth0", "nodad"],
    );
    let moved = ironlb_lab::time_until(Duration::from_secs(30), || {
        lab.node_log(0).contains("router=fe80::99")
            && lab.learned_all(&format!("{SERVICE}/32")).len() == 1
            && state(&lab, "veth0") == "Established"
    });
    assert!(
        moved.is_some(),
        "the session did not follow the router\n{}",
        lab.log()
    );
    eprintln!(
        "unnumbered: up {up:?}, withdrawn after link down {down:?}, back {back:?}, moved {moved:?}"
    );
}
