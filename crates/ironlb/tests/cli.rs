//! The offline subcommands as a user runs them: exit codes, output formats, bad input.

mod common;
use common::{ironlb, stderr, stdout};
use std::io::Write;

#[test]
fn validate_accepts_the_example() {
    let o = ironlb(&["validate", "examples/legacy-configmap.yaml"]);
    assert!(o.status.success(), "{}", stdout(&o));
    assert!(stdout(&o).contains("valid: 0 errors"));
}

#[test]
fn validate_lists_every_error_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    std::fs::write(
        &file,
        "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: a}\nspec: {addresses: [192.0.2.1]}\n---\napiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {name: p}\nspec: {myASN: 0, peerASN: 1, peerAddress: x}\n",
    )
    .unwrap();
    let o = ironlb(&["validate", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(
        out.contains("IPAddressPool \"a\" spec.addresses[0]"),
        "{out}"
    );
    assert!(
        out.contains("BGPPeer \"p\" spec.myASN: missing local ASN"),
        "{out}"
    );
    assert!(out.contains("BGPPeer \"p\" spec.peerAddress"), "{out}");
    assert!(out.contains("invalid: 3 errors"), "{out}");
}

#[test]
fn validate_json_output_is_structured() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    std::fs::write(&file, "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: a}\nspec: {addresses: []}\n").unwrap();
    let o = ironlb(&["validate", "--output", "json", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("valid JSON");
    assert_eq!(v["valid"], false);
    let p = &v["problems"][0];
    assert_eq!(p["kind"], "IPAddressPool");
    assert_eq!(p["name"], "a");
    assert_eq!(p["field"], "spec.addresses");
    assert_eq!(p["severity"], "error");
    assert!(p["fix"].as_str().is_some_and(|f| !f.is_empty()));
}

#[test]
fn malformed_yaml_names_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.yaml");
    std::fs::write(
        &file,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [config\n",
    )
    .unwrap();
    let o = ironlb(&["validate", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("malformed YAML at line"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn a_50_mb_file_is_refused_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("huge.yaml");
    let mut f = std::fs::File::create(&file).unwrap();
    let line = format!("# {}\n", "x".repeat(1022));
    for _ in 0..(50 << 10) {
        f.write_all(line.as_bytes()).unwrap();
    }
    drop(f);
    let o = ironlb(&["validate", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("the file is 50.0 MiB"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn directories_are_read_recursively() {
    let o = ironlb(&["validate", "examples"]);
    assert!(o.status.success(), "{}", stdout(&o));
}

#[test]
fn unreadable_input_is_an_error_not_a_panic() {
    let o = ironlb(&["validate", "/nonexistent/ironlb.yaml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("reading /nonexistent/ironlb.yaml"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn convert_refuses_an_invalid_configmap() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cm.yaml");
    std::fs::write(&file, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: config, namespace: metallb-system}\ndata:\n  config: |\n    address-pools:\n    - name: a\n      addresses: [198.51.100.0/24]\n").unwrap();
    let o = ironlb(&["convert", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o)
            .contains("address-pools[0].protocol: address pool is missing the protocol field"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn router_config_needs_nodes() {
    let o = ironlb(&[
        "router-config",
        "--router",
        "frr",
        "examples/legacy-configmap.yaml",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("pass --nodes"), "{}", stderr(&o));
}

#[test]
fn edgeos_has_no_listen_range() {
    let o = ironlb(&[
        "router-config",
        "--router",
        "edgeos",
        "--nodes",
        "192.0.2.0/24",
        "examples/legacy-configmap.yaml",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("EdgeOS has no dynamic neighbors"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn controller_reports_an_unreadable_kubeconfig() {
    let o = ironlb(&[
        "controller",
        "--kubeconfig",
        "/nonexistent/kubeconfig",
        "--metrics-addr",
        "127.0.0.1:0",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("reading /nonexistent/kubeconfig"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn standalone_lists_every_problem_of_its_file_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("standalone-bad.yaml");
    std::fs::write(
        &file,
        r#"apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: lan, namespace: metallb-system}
spec: {addresses: [192.0.2.128/25]}
---
apiVersion: ironlb.dev/v1alpha1
kind: StandaloneService
metadata: {name: web}
spec:
  loadBalancerIPs: [198.51.100.300]
  ports: [{port: 80, protocol: tcp}]
  healthCheck: {http: {port: 80}, interval: 0s}
---
apiVersion: ironlb.dev/v1alpha1
kind: StandaloneService
metadata: {name: dns}
spec: {pools: lan}
---
apiVersion: ironlb.dev/v1alpha1
kind: StandaloneService
metadata: {name: ntp}
spec: {}
"#,
    )
    .unwrap();
    let o = ironlb(&[
        "standalone",
        "--config",
        file.to_str().unwrap(),
        "--node",
        "node1",
        "--node-ip",
        "192.0.2.2",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    for want in [
        "StandaloneService \"web\" spec.loadBalancerIPs[0]: \"198.51.100.300\" is not an IP address",
        "StandaloneService \"web\" spec.ports[0].protocol: unknown protocol \"tcp\"; fix: use TCP, UDP or SCTP",
        "StandaloneService \"web\" spec.healthCheck.interval: 0ns is not a positive duration",
        "StandaloneService \"dns\" spec.pools: unknown field",
        "StandaloneService \"ntp\" spec: neither loadBalancerIPs nor pool is set",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
}

#[test]
fn validate_checks_standalone_services_and_their_ips() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("standalone.yaml");
    std::fs::write(
        &file,
        r#"apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: lan, namespace: metallb-system}
spec: {addresses: [192.0.2.128/31]}
---
apiVersion: ironlb.dev/v1alpha1
kind: StandaloneService
metadata: {name: web}
spec: {loadBalancerIPs: [203.0.113.5]}
---
apiVersion: ironlb.dev/v1alpha1
kind: StandaloneService
metadata: {name: a}
spec: {pool: lan}
---
apiVersion: ironlb.dev/v1alpha1
kind: StandaloneService
metadata: {name: b}
spec: {pool: lan}
---
apiVersion: ironlb.dev/v1alpha1
kind: StandaloneService
metadata: {name: c}
spec: {pool: lan}
"#,
    )
    .unwrap();
    let o = ironlb(&["validate", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let out = stdout(&o);
    assert!(
        out.contains("StandaloneService \"web\" spec.loadBalancerIPs: no IP for this service: 203.0.113.5 is not allowed in config"),
        "{out}"
    );
    assert!(
        out.contains("StandaloneService \"c\" spec.pool: no IP for this service: no available IPs"),
        "the /31 holds a and b only: {out}"
    );
    assert!(out.contains("invalid: 2 errors"), "{out}");
}

#[test]
fn validate_refuses_more_services_than_one_gossip_note_can_report() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("standalone.yaml");
    let services: String = (0..=4032)
        .map(|i| {
            format!(
                "---\napiVersion: ironlb.dev/v1alpha1\nkind: StandaloneService\nmetadata: {{name: s{i}}}\nspec: {{pool: lan}}\n"
            )
        })
        .collect();
    std::fs::write(
        &file,
        format!("apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {{name: lan}}\nspec: {{addresses: [198.51.100.0/24]}}\n{services}"),
    )
    .unwrap();
    let o = ironlb(&["validate", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let out = stdout(&o);
    assert!(
        out.contains("StandaloneService \"s4032\" metadata.name: the file holds 4033 StandaloneServices; hosts share their checks in one gossip packet, which has room for 4032"),
        "{out}"
    );
    assert!(out.contains("invalid: 1 error"), "{out}");
}
