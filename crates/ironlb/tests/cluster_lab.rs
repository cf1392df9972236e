//! The seed setup as a real cluster (`ironlb_lab::seed_cluster`): a real kube-apiserver and
//! kube-controller-manager, `ironlb controller` and two `ironlb speaker`s under their own
//! ServiceAccount tokens with exactly `deploy/`'s RBAC, FRR as the gateway and a client that
//! ARPs. What the daemons write is read back as the API server stored it.

use ironlb_lab::control_plane::{self, audit};
use ironlb_lab::seed::{self, BGP_IP, NODES};
use ironlb_lab::seed_cluster::{APPS, Install, NAMESPACE, SeedCluster, node, patch_status};
use ironlb_lab::{ready, time_until, wait_for};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

/// The labs of this binary take the machine's two cores each; one at a time keeps their
/// timings honest.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn can_run() -> bool {
    ironlb_lab::control_plane::ready()
        && ready(&["/usr/lib/frr/bgpd", "vtysh", "ping", "ip", "curl"])
}

fn start(tag: &str, speaker_args: &[&str]) -> SeedCluster {
    SeedCluster::start(tag, Path::new(env!("CARGO_BIN_EXE_ironlb")), speaker_args)
}

fn install(tag: &str, install: Install) -> SeedCluster {
    SeedCluster::install(tag, Path::new(env!("CARGO_BIN_EXE_ironlb")), &[], install)
}

const STATUSES: &str = "/apis/metallb.io/v1beta1/namespaces/metallb-system";

/// The ingress IPs the controller wrote for a Service.
fn ingress(cluster: &SeedCluster, name: &str) -> Vec<String> {
    cluster.plane.ingress(APPS, name)
}

/// (node, service) of every status object of `plural` the speakers keep.
fn statuses(cluster: &SeedCluster, plural: &str) -> Vec<(String, String)> {
    let mut all: Vec<(String, String)> = cluster
        .plane
        .list(&format!("{STATUSES}/{plural}"))
        .iter()
        .map(|o| {
            let s = &o["status"];
            let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
            (text(&s["node"]), text(&s["serviceName"]))
        })
        .collect();
    all.sort();
    all
}

fn config_state(cluster: &SeedCluster, name: &str) -> Value {
    cluster
        .plane
        .get(&format!("{STATUSES}/configurationstates/{name}"))
        .unwrap_or_default()["status"]
        .clone()
}

fn until<T>(cluster: &SeedCluster, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    wait_for(Duration::from_secs(20), &mut f)
        .unwrap_or_else(|| panic!("{what} did not happen\n{}", cluster.logs()))
}

#[test]
fn the_seed_cluster_allocates_announces_reports_and_follows_pod_readiness() {
    if !can_run() {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let cluster = start("cl", &[]);
    eprintln!(
        "cluster lab: the API server was ready {:?} after start",
        cluster.plane.started_in
    );

    // The controller gave each Service the IP it asked for; FRR has the BGP one via both
    // nodes (SeedCluster::start waited for it) and the client resolves the layer-2 one.
    assert_eq!(ingress(&cluster, "web"), [BGP_IP]);
    assert_eq!(ingress(&cluster, "lan"), [cluster.l2_ip.as_str()]);
    cluster.until_answered_by(0);
    let controller_state = until(&cluster, "the controller's ConfigurationState", || {
        Some(config_state(&cluster, "controller")).filter(|s| s["result"] == "Valid")
    });
    assert_eq!(
        controller_state["conditions"][0]["type"],
        "poolReconcilerValid"
    );

    // The speakers' status objects and events, as the API server stored them.
    until(&cluster, "the speakers' status objects", || {
        let bgp = statuses(&cluster, "servicebgpstatuses");
        let l2 = statuses(&cluster, "servicel2statuses");
        (bgp.len() == 2 && l2.len() == 1).then_some(())
    });
    assert_eq!(
        statuses(&cluster, "servicebgpstatuses"),
        [
            ("node1".into(), "web".into()),
            ("node2".into(), "web".into())
        ]
    );
    assert_eq!(
        statuses(&cluster, "servicel2statuses"),
        [("node1".to_string(), "lan".to_string())]
    );
    let l2 = &cluster.plane.list(&format!("{STATUSES}/servicel2statuses"))[0];
    assert_eq!(l2["metadata"]["labels"]["metallb.io/node"], "node1");
    assert_eq!(
        l2["metadata"]["ownerReferences"][0]["name"],
        "speaker-node1"
    );
    let notes = until(&cluster, "nodeAssigned events", || {
        let events = cluster
            .plane
            .list(&format!("/apis/events.k8s.io/v1/namespaces/{APPS}/events"));
        let notes: Vec<String> = events
            .iter()
            .filter(|e| e["reason"] == "nodeAssigned")
            .filter_map(|e| e["note"].as_str().map(str::to_string))
            .collect();
        (notes.len() >= 3).then_some(notes)
    });
    assert!(
        notes.contains(&"announcing from node \"node1\" with protocol \"layer2\"".to_string())
            && notes.contains(&"announcing from node \"node2\" with protocol \"bgp\"".to_string()),
        "{notes:?}"
    );
    for (name, _) in NODES {
        let state = until(&cluster, "a speaker's ConfigurationState", || {
            Some(config_state(&cluster, &format!("speaker-{name}"))).filter(|s| !s.is_null())
        });
        assert_eq!(state["result"], "Valid", "{name}: {state}");
    }

    broken_configmap_changes_nothing(&cluster);
    unready_pods_withdraw_their_node(&cluster);

    // Through all of that, neither BGP session was reset.
    assert_eq!(
        seed::frr_sessions_established(&cluster.frr),
        BTreeMap::from([(NODES[0].1.to_string(), 1), (NODES[1].1.to_string(), 1)]),
        "each node's session was established once and never flapped"
    );

    least_privilege(&cluster, Install::Ironlb);
    logs_carry_their_own_spans(&cluster);

    // node1's speaker dies (SIGKILL, as when its Pod is evicted): node2 takes the layer-2 IP
    // and its gratuitous ARP moves the client without being asked.
    ironlb_lab::run("kill", &["-9", &cluster.speakers[0].to_string()]);
    let moved = time_until(Duration::from_secs(5), || {
        cluster.lab.client.neighbor(&cluster.l2_ip).as_ref() == Some(&cluster.lab.macs[1])
    })
    .unwrap_or_else(|| panic!("the client never moved to node2\n{}", cluster.logs()));
    eprintln!("cluster lab: node1's speaker killed, the client moved to node2 in {moved:?}");
    assert!(moved < Duration::from_secs(1), "{moved:?}");
}

/// A broken legacy ConfigMap is reported Invalid by the speakers, and what was announced
/// stays; the fixed one is Valid again.
fn broken_configmap_changes_nothing(cluster: &SeedCluster) {
    let broken = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: config, namespace: metallb-system}\ndata: {config: 'address-pools: [name: lan'}\n";
    cluster.plane.apply(broken);
    let state = until(cluster, "the broken ConfigMap reported", || {
        Some(config_state(cluster, "speaker-node1")).filter(|s| s["result"] == "Invalid")
    });
    assert!(
        state["errorSummary"]
            .as_str()
            .is_some_and(|e| e.contains("ConfigMap")),
        "{state}"
    );
    assert_eq!(
        cluster.next_hops(),
        [NODES[0].1, NODES[1].1],
        "the last valid config runs on"
    );
    cluster.plane.apply(seed::LEGACY_CONFIGMAP);
    until(cluster, "the fixed ConfigMap reported", || {
        Some(config_state(cluster, "speaker-node1")).filter(|s| s["result"] == "Valid")
    });
}

/// Under `externalTrafficPolicy: Local`, node1's only web Pod turning unready withdraws
/// node1's next hop, and ready again restores it: the Pod's status is patched, the
/// controller manager rewrites the EndpointSlice, the speaker sends an UPDATE. Timed over 20
/// changes, from the patch to FRR's table.
fn unready_pods_withdraw_their_node(cluster: &SeedCluster) {
    let (both, node2) = ([NODES[0].1, NODES[1].1], [NODES[1].1]);
    let mut took = Vec::new();
    for i in 0..20 {
        let ready = i % 2 == 1;
        cluster.set_ready("web", "node1", ready);
        let hops: &[&str] = if ready { &both } else { &node2 };
        took.push(cluster.until_next_hops(hops, Duration::from_secs(10)));
        if i == 0 {
            until(cluster, "node1's ServiceBGPStatus for web deleted", || {
                let bgp = statuses(cluster, "servicebgpstatuses");
                (bgp == [("node2".to_string(), "web".to_string())]).then_some(())
            });
        }
    }
    took.sort();
    let (p50, max) = (took[took.len() / 2], took[took.len() - 1]);
    eprintln!(
        "cluster lab: Pod Ready patch to FRR's table over 20 changes: p50 {p50:?}, max {max:?}"
    );
    assert!(max < Duration::from_secs(2), "{took:?}");
}

/// A BGP peer's span labels only the BGP session's own lines: a span entered across an await
/// once put `bgp_peer{peer=…}` on the status writer's and the watches' lines.
fn logs_carry_their_own_spans(cluster: &SeedCluster) {
    let logs = seed::logs(cluster.dir());
    let mislabelled: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("bgp_peer{") && !l.contains("}: ironlb_bgp::"))
        .collect();
    assert!(mislabelled.is_empty(), "{mislabelled:#?}");
}

/// Every request the controller and the speakers made was allowed by the roles `install`
/// grants; the rules they never used are printed, so the grant can be narrowed.
fn least_privilege(cluster: &SeedCluster, install: Install) {
    let events = cluster.plane.audit();
    let (controller, speaker) = install.service_accounts();
    let (controller_roles, speaker_roles) = install.roles();
    for (account, roles) in [(controller, controller_roles), (speaker, speaker_roles)] {
        let granted = audit::granted(&roles);
        let used = audit::privilege(
            &events,
            &audit::service_account(NAMESPACE, account),
            &granted,
        );
        assert!(
            used.refused.is_empty(),
            "{account} was refused: {:#?}\n{}",
            used.refused,
            cluster.logs()
        );
        assert!(!used.used.is_empty(), "{account} made no request at all");
        let unused: Vec<String> = used.unused.iter().map(ToString::to_string).collect();
        eprintln!(
            "cluster lab ({install:?}): {account} never used: {}",
            unused.join(", ")
        );
    }
}

/// Two ServiceAccounts' tokens: one allowed to get /metrics, one allowed nothing.
fn scrapers(cluster: &SeedCluster) -> (String, String) {
    cluster.plane.apply(&format!(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: scraper, namespace: {NAMESPACE}}}\n---\n\
         apiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: stranger, namespace: {NAMESPACE}}}\n---\n\
         apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {{name: test-metrics-reader}}\nrules: [{{nonResourceURLs: [/metrics], verbs: [get]}}]\n---\n\
         apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {{name: test-metrics-reader}}\n\
         roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: test-metrics-reader}}\n\
         subjects: [{{kind: ServiceAccount, name: scraper, namespace: {NAMESPACE}}}]\n"
    ));
    cluster.plane.with_client(|client| async move {
        (
            control_plane::token(&client, NAMESPACE, "scraper").await,
            control_plane::token(&client, NAMESPACE, "stranger").await,
        )
    })
}

/// MetalLB's native manifest with only the images changed: its ServiceAccounts and roles
/// (no leases, core Events, `services/status` by update only, BGPPeers listed but not
/// watched by the controller), its args (`--port=9120 --log-level=info`) and environment
/// (no Pod UID), the binary started as `/controller` and `/speaker`.
#[test]
fn a_metallb_install_runs_ironlb_with_only_the_images_changed() {
    if !can_run() {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let cluster = install("clmlb", Install::MetalLb);
    assert_eq!(ingress(&cluster, "web"), [BGP_IP]);
    assert_eq!(ingress(&cluster, "lan"), [cluster.l2_ip.as_str()]);
    cluster.until_answered_by(0);
    // The status objects are owned by the speaker Pod, found by its name.
    let owner = until(&cluster, "node1's ServiceL2Status", || {
        let l2 = cluster.plane.list(&format!("{STATUSES}/servicel2statuses"));
        l2.first()
            .map(|o| o["metadata"]["ownerReferences"][0].clone())
    });
    assert_eq!(owner["name"], "speaker-node1", "{owner}");
    assert!(
        owner["uid"].as_str().is_some_and(|u| !u.is_empty()),
        "{owner}"
    );
    until(&cluster, "the nodeAssigned events (core v1)", || {
        let events = cluster
            .plane
            .list(&format!("/api/v1/namespaces/{APPS}/events"));
        (events
            .iter()
            .filter(|e| e["reason"] == "nodeAssigned")
            .count()
            >= 3)
            .then_some(())
    });
    // The daemons run as MetalLB's securityContexts run them: the speaker as root with
    // NET_RAW alone (bit 13), the controller as 65534 with no capability.
    let status = |pid: u32| std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |text: &str, key: &str| {
        let line = text
            .lines()
            .find(|l| l.starts_with(key))
            .unwrap_or_default();
        line.split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_string()
    };
    for pid in &cluster.speakers {
        let text = status(*pid);
        assert_eq!(field(&text, "CapEff:"), "0000000000002000", "{text}");
        assert_eq!(field(&text, "Uid:"), "0", "{text}");
    }
    let text = status(cluster.controller);
    assert_eq!(field(&text, "CapEff:"), "0000000000000000", "{text}");
    assert_eq!(field(&text, "Uid:"), "65534", "{text}");
    // ConfigurationState as MetalLB's CRD has it: a status and no spec.
    for name in ["controller", "speaker-node1", "speaker-node2"] {
        let state = until(&cluster, &format!("ConfigurationState {name}"), || {
            let object = cluster
                .plane
                .get(&format!("{STATUSES}/configurationstates/{name}"))?;
            (object["status"]["result"] == "Valid").then_some(object)
        });
        assert!(state.get("spec").is_none(), "{state}");
    }
    // MetalLB's probes (17472), in each Pod's network; metrics on --port=9120 over HTTPS,
    // only for a token allowed to get /metrics.
    let (reader, stranger) = scrapers(&cluster);
    for (netns, who) in [
        (&cluster.lab.nodes[0], "speaker"),
        (&cluster.lab.router, "controller"),
    ] {
        assert_eq!(netns.http_get("127.0.0.1:17472", "/healthz"), "ok", "{who}");
        assert_eq!(
            netns.http_get("127.0.0.1:17472", "/readyz"),
            "ready",
            "{who}"
        );
        let scrape = |token: Option<&str>| {
            let header = format!("Authorization: Bearer {}", token.unwrap_or_default());
            let mut args = vec![
                "-sk",
                "-w",
                "\n%{http_code}",
                "https://127.0.0.1:9120/metrics",
            ];
            if token.is_some() {
                args.extend(["-H", header.as_str()]);
            }
            let out = netns.stdout("curl", &args);
            let (body, code) = out.rsplit_once('\n').unwrap_or_default();
            (code.to_string(), body.to_string())
        };
        assert_eq!(scrape(None).0, "401", "{who}: no token");
        assert_eq!(
            scrape(Some("not-a-token")).0,
            "401",
            "{who}: a made-up token"
        );
        assert_eq!(
            scrape(Some(&stranger)).0,
            "403",
            "{who}: a token without the right"
        );
        let (code, body) = scrape(Some(&reader));
        assert_eq!(code, "200", "{who}: {body}");
        // MetalLB's families, with MetalLB's types, in the text format its Go client writes.
        let families: &[(&str, &str)] = if who == "speaker" {
            &[
                ("metallb_bgp_session_up", "gauge"),
                ("metallb_bgp_updates_total", "counter"),
                ("metallb_bgp_announced_prefixes_total", "gauge"),
                ("metallb_bgp_opens_sent", "counter"),
                ("metallb_bgp_keepalives_received", "counter"),
                ("metallb_layer2_requests_received", "counter"),
                ("metallb_speaker_announced", "gauge"),
                ("metallb_k8s_client_updates_total", "counter"),
            ]
        } else {
            &[
                ("metallb_allocator_addresses_in_use_total", "gauge"),
                ("metallb_allocator_ipv4_addresses_total", "gauge"),
                ("metallb_allocator_services_allocated_total", "gauge"),
                ("metallb_k8s_client_config_loaded_bool", "gauge"),
                ("metallb_k8s_client_config_stale_bool", "gauge"),
                ("metallb_k8s_client_updates_total", "counter"),
            ]
        };
        for (family, kind) in families {
            let line = format!("# TYPE {family} {kind}");
            assert!(
                body.lines().any(|l| l == line),
                "{who}: no {line:?} in\n{body}"
            );
        }
        if who == "speaker" {
            let opened = body
                .lines()
                .any(|l| l.starts_with("metallb_bgp_opens_sent{") && !l.ends_with(" 0"));
            assert!(opened, "the speaker sent its OPEN:\n{body}");
        }
    }
    assert!(
        std::fs::read_to_string(cluster.plane.audit_log())
            .unwrap_or_default()
            .contains("tokenreviews"),
        "the tokens were reviewed by the API server"
    );
    // The controller made the speakers' gossip key, owned by its Deployment, as MetalLB's does.
    let secret = until(&cluster, "the memberlist Secret", || {
        cluster.plane.get(&format!(
            "/api/v1/namespaces/{NAMESPACE}/secrets/memberlist"
        ))
    });
    let key = secret["data"]["secretkey"].as_str().unwrap_or_default();
    assert_eq!(key.len(), 172, "128 bytes, base64: {secret}");
    let owner = &secret["metadata"]["ownerReferences"][0];
    assert_eq!(
        (owner["kind"].as_str(), owner["name"].as_str()),
        (Some("Deployment"), Some("controller")),
        "{secret}"
    );
    let controller_log = std::fs::read_to_string(seed::log(cluster.dir(), "controller")).unwrap();
    // MetalLB's log lines: one JSON object each, with level, ts, caller and msg.
    for (who, log) in [
        ("controller", &controller_log),
        (
            "node1",
            &std::fs::read_to_string(seed::log(cluster.dir(), "node1")).unwrap(),
        ),
    ] {
        for line in log.lines() {
            let parsed: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{who}: not JSON ({e}): {line}"));
            for key in ["level", "ts", "caller", "msg"] {
                assert!(parsed[key].is_string(), "{who}: no {key}: {line}");
            }
        }
    }
    assert_eq!(
        controller_log.matches("leases are not granted").count(),
        1,
        "said once:\n{controller_log}"
    );
    least_privilege(&cluster, Install::MetalLb);
}

/// Also with `--ignore-exclude-lb`: node2 carries kubeadm's exclusion label and still takes
/// over, which it would never do without the flag.
#[test]
fn without_gossip_node_readiness_moves_the_layer2_ip() {
    if !can_run() {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let cluster = start("clnog", &["--no-gossip", "--ignore-exclude-lb"]);
    let mut excluded = node(NODES[1].0, NODES[1].1);
    excluded["metadata"]["labels"]["node.kubernetes.io/exclude-from-external-load-balancers"] =
        Value::from("");
    excluded.as_object_mut().unwrap().remove("status");
    cluster.plane.apply(&excluded.to_string());
    cluster.until_answered_by(0);
    let ready = |status: &str| serde_json::json!({"status": {"conditions": [{"type": "Ready", "status": status, "reason": "KubeletReady"}]}});
    patch_status(&cluster.plane, "nodes", "", NODES[0].0, ready("False"));
    cluster.until_answered_by(1);
    patch_status(&cluster.plane, "nodes", "", NODES[0].0, ready("True"));
    cluster.until_answered_by(0);
}

/// Layer 2 as nodes come and go (MetalLB's hash among the live nodes decides every IP): the
/// cluster starts with node1 alone, node2 joins and takes its share, then node2's speaker
/// dies and node1 takes them back. After each step every IP is answered by exactly the node
/// the hash picks, never by two.
#[test]
fn a_node_that_joins_later_takes_its_share_of_layer2_ips_and_never_two_answer() {
    if !can_run() || !ready(&["arping"]) {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut cluster = SeedCluster::without_nodes(
        "cjn",
        Path::new(env!("CARGO_BIN_EXE_ironlb")),
        &[],
        Install::Ironlb,
    );
    cluster.join(0);
    let ips: Vec<String> = (0..8).map(|i| format!("192.0.2.{}", 200 + i)).collect();
    for (i, ip) in ips.iter().enumerate() {
        cluster.layer2_service(
            &format!("l2-{i}"),
            ip,
            "node1",
            &format!("10.244.1.{}", 20 + i),
        );
    }
    answered_by_hash(&cluster, &ips, &["node1"]);

    cluster.join(1);
    answered_by_hash(&cluster, &ips, &["node1", "node2"]);
    // The IPs node1 keeps were never let go, not even for a moment while node2 came up.
    let node1_log = std::fs::read_to_string(seed::log(cluster.dir(), "node1")).unwrap_or_default();
    for ip in &ips {
        let addr: std::net::IpAddr = ip.parse().expect("an IP");
        if ironlb_plan::election::owner(&addr, &["node1", "node2"]) == Some("node1") {
            assert!(
                !node1_log.contains(&format!("releasing layer-2 IP ip={ip} ")),
                "node1 let go of {ip}, which it keeps:\n{node1_log}"
            );
        }
    }

    ironlb_lab::run("kill", &["-9", &cluster.speakers[1].to_string()]);
    answered_by_hash(&cluster, &ips, &["node1"]);
}

/// Waits until each of `ips` resolves to the node MetalLB's hash picks among `live`, then
/// checks that nobody else answers it.
fn answered_by_hash(cluster: &SeedCluster, ips: &[String], live: &[&str]) {
    let mac_of = |name: &str| {
        let i = NODES.iter().position(|(n, _)| *n == name).expect("a node");
        cluster.lab.macs[i].clone()
    };
    for ip in ips {
        let addr: std::net::IpAddr = ip.parse().expect("an IP");
        let owner = ironlb_plan::election::owner(&addr, live).expect("a live node");
        let want = mac_of(owner);
        until(cluster, &format!("{ip} answered by {owner}"), || {
            (cluster.lab.client.resolve(ip).as_deref() == Some(want.as_str())).then_some(())
        });
    }
    let answers: Vec<(String, Vec<String>)> = std::thread::scope(|scope| {
        let asked: Vec<_> = ips
            .iter()
            .map(|ip| scope.spawn(move || (ip.clone(), cluster.lab.client.arping("eth0", ip))))
            .collect();
        asked
            .into_iter()
            .map(|h| h.join().expect("arping"))
            .collect()
    });
    for (ip, macs) in answers {
        let addr: std::net::IpAddr = ip.parse().expect("an IP");
        let want = mac_of(ironlb_plan::election::owner(&addr, live).expect("a live node"));
        assert!(
            !macs.is_empty() && macs.iter().all(|m| *m == want),
            "{ip} with {live:?} live: answered by {macs:?}, only {want} should\n{}",
            cluster.logs()
        );
    }
}
