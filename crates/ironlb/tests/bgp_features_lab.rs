//! MetalLB's BGPPeer features against a real FRR: one `ironlb standalone` node and FRR as the
//! router, in namespaces of their own, on documentation addresses.

use ironlb_lab::seed::vtysh;
use ironlb_lab::{Daemon, Netns, link, ready, wait_for};
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

/// FRR at `router_asn` with `neighbors` (the rest of its `router bgp` block), and the node,
/// dual-stack on the link, running `peer_spec` for a Service with an IP of each family.
struct Lab {
    _router: Netns,
    _node: Netns,
    frr: std::path::PathBuf,
    log: std::path::PathBuf,
}

impl Lab {
    fn start(tag: &str, router_asn: u32, neighbors: &str, peer_spec: &str) -> Lab {
        let mut router = Netns::new(&format!("{tag}r"));
        let mut node = Netns::new(&format!("{tag}n"));
        link(
            &router,
            &[&format!("{ROUTER}/24"), &format!("{ROUTER6}/64")],
            &node,
            &[&format!("{NODE}/24"), &format!("{NODE6}/64")],
        );
        let frr = router.scratch().join("frr");
        std::fs::create_dir_all(&frr).unwrap();
        let conf = format!(
            "frr defaults traditional\nhostname router\nrouter bgp {router_asn}\n bgp router-id {ROUTER}\n no bgp ebgp-requires-policy\n{neighbors}"
        );
        std::fs::write(frr.join("frr.conf"), conf).unwrap();
        router.start(&Daemon::bgpd(&frr));
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
        let log = dir.join("node.log");
        let args = [
            "standalone",
            "--config",
            &config.display().to_string(),
            "--node",
            "node1",
            "--node-ip",
            NODE,
        ];
        node.spawn_logs(
            env!("CARGO_BIN_EXE_ironlb"),
            &args,
            &dir.join("node.out"),
            &log,
        );
        Lab {
            _router: router,
            _node: node,
            frr,
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
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
        let text = vtysh(
            &self.frr,
            &format!("show bgp {} unicast {prefix} json", family(prefix)),
        );
        let json: Value = serde_json::from_str(&text).ok()?;
        json["paths"].as_array()?.first().cloned()
    }
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
