//! `ironlb doctor` on a node in a namespace: it finds the router not listening, then
//! listening, and a layer-2 pool that lies on no LAN of the node.

mod common;
use common::{repo, stdout};
use ironlb_lab::{Daemon, Netns, lan, ready, wait_for};
use std::time::Duration;

fn doctor(node: &Netns, config: &str) -> (Option<i32>, String) {
    let o = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &node.name,
            env!("CARGO_BIN_EXE_ironlb"),
            "doctor",
            config,
        ])
        .current_dir(repo())
        .output()
        .unwrap();
    (o.status.code(), stdout(&o))
}

#[test]
fn doctor_tells_a_silent_router_and_a_pool_off_the_lan() {
    if !ready(&["/usr/lib/frr/bgpd", "ip"]) {
        return;
    }
    // eth0 on a bridge, as a node's NIC would be (veth names are excluded from layer 2).
    let switch = Netns::new("docsw");
    let mut router = Netns::new("docr");
    let node = Netns::new("docn");
    lan(
        &switch,
        &[(&router, &["192.0.2.1/24"]), (&node, &["192.0.2.2/24"])],
    );
    let dir = node.scratch();
    let off_lan = dir.join("off-lan.yaml");
    std::fs::write(
        &off_lan,
        "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: far}\nspec: {addresses: [203.0.113.0/28]}\n---\napiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: far}\nspec: {ipAddressPools: [far]}\n",
    )
    .unwrap();
    let (code, out) = doctor(&node, off_lan.to_str().unwrap());
    assert_eq!(code, Some(0), "a warning alone does not fail:\n{out}");
    assert!(
        out.contains("warn pool far 203.0.113.0/28 lies in no network of this node"),
        "{out}"
    );

    // The example: its peer is the router at 192.0.2.1, which does not listen yet.
    let example = "examples/legacy-configmap.yaml";
    let (code, out) = doctor(&node, example);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("ok   pool lan 192.0.2.128/25 lies in"),
        "{out}"
    );
    assert!(
        out.contains("FAIL peer peer1 (192.0.2.1:179) refuses connections"),
        "{out}"
    );
    assert!(
        out.contains("fix: configure the router to peer with this node"),
        "{out}"
    );

    std::fs::write(
        dir.join("frr.conf"),
        "frr defaults traditional\nrouter bgp 64512\n bgp router-id 192.0.2.1\n neighbor 192.0.2.2 remote-as 64513\n",
    )
    .unwrap();
    router.start(&Daemon::bgpd(&dir));
    let out = wait_for(Duration::from_secs(10), || {
        let (code, out) = doctor(&node, example);
        (code == Some(0)).then_some(out)
    })
    .expect("the doctor is content once the router listens");
    assert!(
        out.contains("ok   peer peer1 (192.0.2.1:179) accepts connections"),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
