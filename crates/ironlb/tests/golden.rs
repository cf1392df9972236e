//! Golden outputs: `convert`, `crds` (against the committed deploy/crds/), and each
//! `router-config` dialect. Rewrite with UPDATE_GOLDEN=1 after reviewing a change.

mod common;
use common::{golden, ironlb, repo, stderr, stdout};

#[test]
fn convert_matches_golden() {
    let o = ironlb(&["convert", "examples/legacy-configmap.yaml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    golden("convert-legacy-configmap.yaml", &stdout(&o));
}

#[test]
fn converted_resources_validate() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("crs.yaml");
    std::fs::write(
        &file,
        stdout(&ironlb(&["convert", "examples/legacy-configmap.yaml"])),
    )
    .unwrap();
    let o = ironlb(&["validate", file.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stdout(&o));
}

#[test]
fn committed_crds_match_the_types() {
    let o = ironlb(&["crds"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let dir = repo().join("deploy/crds");
    let mut committed: Vec<_> = std::fs::read_dir(&dir)
        .expect("deploy/crds exists")
        .map(|e| e.unwrap().path())
        .collect();
    committed.sort();
    let joined: String = committed
        .iter()
        .map(|p| format!("---\n{}", std::fs::read_to_string(p).unwrap()))
        .collect();
    assert_eq!(
        joined,
        stdout(&o),
        "deploy/crds/ drifted from the Rust types: run `ironlb crds --out-dir deploy/crds`"
    );
}

/// MetalLB's published CRDs (its `config/crd/bases`) are not in this repository; when
/// `METALLB_CRDS` points at them, the generated ones must match them wherever the API server
/// would act on a difference. `crates/api/tests/metallb_shape.rs` holds the facts that matter
/// most and runs always.
#[test]
fn crds_match_metallbs_published_ones_when_at_hand() {
    let Some(dir) = std::env::var_os("METALLB_CRDS") else {
        eprintln!(
            "skipped: set METALLB_CRDS to MetalLB's config/crd/bases to compare with its CRDs"
        );
        return;
    };
    let read =
        |text: &str| -> Vec<serde_json::Value> { serde_saphyr::from_multiple(text).unwrap() };
    let mut theirs = Vec::new();
    for file in std::fs::read_dir(&dir).unwrap() {
        let path = file.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            theirs.extend(read(&std::fs::read_to_string(&path).unwrap()));
        }
    }
    assert!(
        !theirs.is_empty(),
        "no CRDs in {}",
        std::path::Path::new(&dir).display()
    );
    let ours = read(&stdout(&ironlb(&["crds"])));
    let differences = ironlb_lab::crd_compat::differences(&theirs, &ours);
    assert!(differences.is_empty(), "{differences:#?}");
}

#[test]
fn crds_carry_metallb_names_and_versions() {
    let text = stdout(&ironlb(&["crds"]));
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).unwrap();
    let names: Vec<&str> = docs
        .iter()
        .map(|d| d["metadata"]["name"].as_str().unwrap())
        .collect();
    for want in [
        "bfdprofiles.metallb.io",
        "bgpadvertisements.metallb.io",
        "bgppeers.metallb.io",
        "communities.metallb.io",
        "configurationstates.metallb.io",
        "ipaddresspools.metallb.io",
        "l2advertisements.metallb.io",
        "servicebgpstatuses.metallb.io",
        "servicel2statuses.metallb.io",
    ] {
        assert!(names.contains(&want), "missing CRD {want}");
    }
    let peer = docs
        .iter()
        .find(|d| d["metadata"]["name"] == "bgppeers.metallb.io")
        .unwrap();
    let versions = peer["spec"]["versions"].as_array().unwrap();
    let v1 = versions.iter().find(|v| v["name"] == "v1beta1").unwrap();
    let v2 = versions.iter().find(|v| v["name"] == "v1beta2").unwrap();
    assert_eq!(v1["storage"], false);
    assert_eq!(v1["deprecated"], true);
    assert_eq!(v2["storage"], true);
    let props = &v2["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"];
    for field in [
        "myASN",
        "peerASN",
        "peerAddress",
        "routerID",
        "ebgpMultiHop",
        "passwordSecret",
        "dynamicASN",
        "disableMP",
    ] {
        assert!(props.get(field).is_some(), "BGPPeer v1beta2 lacks {field}");
    }
    assert_eq!(props["peerPort"]["default"], 179);
    let pool = docs
        .iter()
        .find(|d| d["metadata"]["name"] == "ipaddresspools.metallb.io")
        .unwrap();
    let v = &pool["spec"]["versions"][0];
    let columns: Vec<&str> = v["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(columns, ["Auto Assign", "Avoid Buggy IPs", "Addresses"]);
    assert_eq!(
        v["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["autoAssign"]["default"],
        true
    );
    assert_eq!(
        v["schema"]["openAPIV3Schema"]["properties"]["spec"]["required"][0],
        "addresses"
    );
}

const ROUTERS: [&str; 7] = [
    "frr",
    "bird",
    "edgeos",
    "usg-json",
    "vyos",
    "routeros7",
    "opnsense",
];

#[test]
fn router_configs_match_golden() {
    for router in ROUTERS {
        let o = ironlb(&[
            "router-config",
            "--router",
            router,
            "--nodes",
            "192.0.2.2,192.0.2.3",
            "examples/legacy-configmap.yaml",
        ]);
        assert!(o.status.success(), "{router}: {}", stderr(&o));
        golden(&format!("router-{router}-example.txt"), &stdout(&o));
        let o = ironlb(&[
            "router-config",
            "--router",
            router,
            "--nodes",
            "192.0.2.2,192.0.2.3,2001:db8::2",
            "crates/ironlb/tests/fixtures/full.yaml",
        ]);
        assert!(o.status.success(), "{router}: {}", stderr(&o));
        golden(&format!("router-{router}-full.txt"), &stdout(&o));
    }
}

#[test]
fn usg_json_has_the_controller_shape() {
    let o = ironlb(&[
        "router-config",
        "--router",
        "usg-json",
        "--nodes",
        "192.0.2.2",
        "examples/legacy-configmap.yaml",
    ]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("usg-json is JSON");
    let bgp = &v["protocols"]["bgp"]["64512"];
    assert_eq!(bgp["neighbor"]["192.0.2.2"]["remote-as"], "64513");
    assert_eq!(bgp["parameters"]["router-id"], "192.0.2.1");
    assert!(
        bgp.get("maximum-paths").is_none(),
        "the USG rejects maximum-paths"
    );
    assert!(stderr(&o).contains("cannot do ECMP"));
}

#[test]
fn router_warnings_follow_the_router() {
    let warn = |router: &str| {
        stderr(&ironlb(&[
            "router-config",
            "--router",
            router,
            "--nodes",
            "192.0.2.2",
            "examples/legacy-configmap.yaml",
        ]))
    };
    assert!(warn("routeros7").contains("multipath as unsupported"));
    assert!(warn("routeros7").contains("multihop=yes"));
    assert!(warn("edgeos").contains("USG, `maximum-paths` is rejected"));
    assert!(warn("frr").contains("no bgp ebgp-requires-policy"));
    let far = stderr(&ironlb(&[
        "router-config",
        "--router",
        "frr",
        "--nodes",
        "203.0.113.0/24",
        "examples/legacy-configmap.yaml",
    ]));
    assert!(far.contains("outside the node range"), "{far}");
}

/// The documents of a manifest. Whether its Roles allow what the daemon does is measured on
/// the real API server, from its audit log (cluster_lab.rs, cluster_controller.rs).
fn manifest(file: &str) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(repo().join(file)).unwrap();
    serde_saphyr::from_multiple(&text).unwrap()
}

/// deploy/controller.yaml runs two replicas.
#[test]
fn the_controller_runs_two_replicas() {
    let docs = manifest("deploy/controller.yaml");
    let deployment = docs.iter().find(|d| d["kind"] == "Deployment").unwrap();
    assert_eq!(
        deployment["spec"]["replicas"], 2,
        "two replicas: leader election makes that safe"
    );
}

/// deploy/speaker.yaml runs the speaker where it can answer ARP and speak BGP.
#[test]
fn the_speaker_runs_on_the_nodes_network() {
    let docs = manifest("deploy/speaker.yaml");
    let daemonset = docs.iter().find(|d| d["kind"] == "DaemonSet").unwrap();
    let pod = &daemonset["spec"]["template"]["spec"];
    assert_eq!(
        pod["hostNetwork"], true,
        "ARP, NDP and BGP happen on the node's own network"
    );
    // NET_RAW for ARP and NDP, NET_BIND_SERVICE for passive peers on 179; TCP MD5 needs no
    // capability (the MetalLB lab runs the speaker with NET_RAW alone).
    let caps = &pod["containers"][0]["securityContext"]["capabilities"]["add"];
    assert_eq!(
        caps,
        &serde_json::json!(["NET_RAW", "NET_BIND_SERVICE"]),
        "{caps}"
    );
}
