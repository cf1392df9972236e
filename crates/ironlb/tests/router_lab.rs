//! The generated router configs, fed to the real routers: FRR's own parser (`vtysh
//! --dryrun`), a live `bgpd` in a namespace read back with `vtysh`, and `bird -p`.

mod common;
use common::{ironlb, stdout};
use ironlb_lab::{Daemon, Netns, ready as lab_ready, wait_for};
use std::process::Command;
use std::time::Duration;

fn generate(router: &str, nodes: &str, config: &str) -> String {
    let o = ironlb(&[
        "router-config",
        "--router",
        router,
        "--nodes",
        nodes,
        config,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    stdout(&o)
}

fn temp_file(name: &str, text: &str) -> tempfile::NamedTempFile {
    let file = tempfile::Builder::new().prefix(name).tempfile().unwrap();
    std::fs::write(file.path(), text).unwrap();
    file
}

const INPUTS: [(&str, &str, &str); 3] = [
    (
        "example",
        "192.0.2.2,192.0.2.3",
        "examples/legacy-configmap.yaml",
    ),
    ("range", "192.0.2.0/24", "examples/legacy-configmap.yaml"),
    (
        "full",
        "192.0.2.2,192.0.2.3",
        "crates/ironlb/tests/fixtures/full.yaml",
    ),
];

#[test]
fn frr_parser_accepts_every_generated_config() {
    if !lab_ready(&["vtysh"]) {
        return;
    }
    for (name, nodes, config) in INPUTS {
        let file = temp_file(&format!("frr-{name}.conf"), &generate("frr", nodes, config));
        let o = Command::new("vtysh")
            .args(["--dryrun", "-f"])
            .arg(file.path())
            .output()
            .unwrap();
        assert!(
            o.status.success() && o.stdout.is_empty(),
            "FRR rejected the {name} config: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

#[test]
fn bird_parser_accepts_every_generated_config() {
    if !lab_ready(&["bird"]) {
        return;
    }
    for (name, nodes, config) in INPUTS {
        let file = temp_file(
            &format!("bird-{name}.conf"),
            &generate("bird", nodes, config),
        );
        let o = Command::new("bird")
            .arg("-p")
            .arg("-c")
            .arg(file.path())
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "BIRD rejected the {name} config: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

#[test]
fn live_frr_bgpd_loads_the_generated_config() {
    if !lab_ready(&["/usr/lib/frr/bgpd", "vtysh"]) {
        return;
    }
    let mut ns = Netns::new("frrcfg");
    let dir = ns.scratch();
    let conf = dir.join("frr.conf");
    std::fs::write(
        &conf,
        generate(
            "frr",
            "192.0.2.2,192.0.2.3",
            "examples/legacy-configmap.yaml",
        ),
    )
    .unwrap();
    ns.start(&Daemon::bgpd(&dir));
    let d = dir.to_str().unwrap().to_string();
    let running = wait_for(Duration::from_secs(10), || {
        let o = Command::new("vtysh")
            .args(["--vty_socket", &d, "-c", "show running-config"])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        text.contains("router bgp 64512").then_some(text)
    })
    .expect("bgpd came up with the generated config");
    for line in [
        "bgp router-id 192.0.2.1",
        "no bgp ebgp-requires-policy",
        "neighbor IRONLB remote-as 64513",
        "neighbor 192.0.2.2 peer-group IRONLB",
        "neighbor 192.0.2.3 peer-group IRONLB",
        "neighbor IRONLB prefix-list IRONLB-IN in",
        "maximum-paths 2",
        "ip prefix-list IRONLB-IN seq 10 permit 198.51.100.0/24 ge 32 le 32",
    ] {
        assert!(
            running.contains(line),
            "bgpd's running config lacks {line:?}:\n{running}"
        );
    }
    drop(ns);
    let _ = std::fs::remove_dir_all(&dir);
}
