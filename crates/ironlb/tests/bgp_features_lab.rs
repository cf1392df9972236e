//! MetalLB's BGPPeer features against a real FRR: one `ironlb standalone` node and FRR as the
//! router, in namespaces of their own, on documentation addresses.

use ironlb_lab::seed::vtysh;
use ironlb_lab::{Daemon, Netns, link, ready, wait_for};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

const ROUTER: &str = "192.0.2.1";
const NODE: &str = "192.0.2.11";
const SERVICE: &str = "198.51.100.5";

/// FRR at `router_asn` expecting the node from `node_asn`, and the node running `peer_spec`.
struct Lab {
    _router: Netns,
    _node: Netns,
    frr: std::path::PathBuf,
    log: std::path::PathBuf,
}

impl Lab {
    fn start(tag: &str, (router_asn, node_asn): (u32, u32), peer_spec: &str) -> Lab {
        let mut router = Netns::new(&format!("{tag}r"));
        let mut node = Netns::new(&format!("{tag}n"));
        link(
            &router,
            &[&format!("{ROUTER}/24")],
            &node,
            &[&format!("{NODE}/24")],
        );
        let frr = router.scratch().join("frr");
        std::fs::create_dir_all(&frr).unwrap();
        let conf = format!(
            "frr defaults traditional\nhostname router\nrouter bgp {router_asn}\n bgp router-id {ROUTER}\n no bgp ebgp-requires-policy\n neighbor {NODE} remote-as {node_asn}\n neighbor {NODE} timers connect 1\n"
        );
        std::fs::write(frr.join("frr.conf"), conf).unwrap();
        router.start(&Daemon::bgpd(&frr));
        let dir = node.scratch();
        let config = dir.join("standalone.yaml");
        std::fs::write(
            &config,
            format!(
                "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {{name: routed}}\nspec: {{addresses: [198.51.100.0/28]}}\n---\n\
                 apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {{name: gw}}\nspec: {peer_spec}\n---\n\
                 apiVersion: metallb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {{name: all}}\n---\n\
                 apiVersion: ironlb.dev/v1alpha1\nkind: StandaloneService\nmetadata: {{name: web}}\nspec: {{loadBalancerIPs: [{SERVICE}], ports: [{{port: 80}}]}}\n"
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

    /// FRR's best path to the Service, once it has one.
    fn path(&self) -> Value {
        wait_for(Duration::from_secs(20), || {
            let text = vtysh(
                &self.frr,
                &format!("show bgp ipv4 unicast {SERVICE}/32 json"),
            );
            let json: Value = serde_json::from_str(&text).ok()?;
            json["paths"].as_array()?.first().cloned()
        })
        .unwrap_or_else(|| {
            panic!(
                "FRR never learned {SERVICE}/32\n{}\n{}",
                vtysh(&self.frr, "show bgp summary"),
                std::fs::read_to_string(&self.log).unwrap_or_default()
            )
        })
    }
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
        (64512, 64600),
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
    let internal = Lab::start("dasni", (64513, 64513), &spec("internal"));
    let external = Lab::start("dasne", (64512, 64513), &spec("external"));
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
        (64513, 64513),
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
