//! Faults on the real control plane of the seed cluster (`ironlb_lab::seed_cluster`): the
//! API server killed and restarted, an etcd compaction that answers the watches 410 Gone, and
//! a permission taken away at run time. Through each, the daemons keep running what they
//! had, reconnect without restarting, and FRR's sessions never flap.

use ironlb_lab::control_plane::audit;
use ironlb_lab::seed::{self, BGP_IP, NODES};
use ironlb_lab::seed_cluster::{APPS, NAMESPACE, SeedCluster, rbac_of};
use ironlb_lab::{ready, wait_for};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

fn ingress(cluster: &SeedCluster, name: &str) -> Vec<String> {
    cluster.plane.ingress(APPS, name)
}

fn alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid as i32, 0) == 0 }
}

/// What must not change through a fault: the IPs, the daemons' processes, FRR's sessions.
struct Before {
    ips: Vec<Vec<String>>,
    established: BTreeMap<String, u64>,
    pids: Vec<u32>,
}

impl Before {
    fn take(cluster: &SeedCluster) -> Before {
        Before {
            ips: ["web", "lan"].map(|s| ingress(cluster, s)).to_vec(),
            established: seed::frr_sessions_established(&cluster.frr),
            pids: [cluster.controller]
                .into_iter()
                .chain(cluster.speakers.iter().copied())
                .collect(),
        }
    }

    fn unchanged(&self, cluster: &SeedCluster, fault: &str) {
        assert_eq!(
            ["web", "lan"].map(|s| ingress(cluster, s)).to_vec(),
            self.ips,
            "{fault}: no IP moved"
        );
        assert_eq!(
            seed::frr_sessions_established(&cluster.frr),
            self.established,
            "{fault}: no BGP session was reset\n{}",
            cluster.logs()
        );
        for pid in &self.pids {
            assert!(
                alive(*pid),
                "{fault}: process {pid} restarted or died\n{}",
                cluster.logs()
            );
        }
    }
}

/// The controller and the speakers follow the cluster again, through watches that had to
/// reconnect: a new Service gets its IP and reaches FRR, and goes away again. (Pod
/// readiness would also measure kube-controller-manager's own reconnect, which backs off
/// for tens of seconds.)
fn daemons_follow_the_cluster(cluster: &SeedCluster, fault: &str) {
    let took = cluster.probe("probe", PROBE_IP);
    eprintln!("faults lab: after the {fault}, a new Service reached FRR in {took:?}");
    // The watches back off at most 5 s (10 with jitter) and list again at once on a 410.
    assert!(
        took < Duration::from_secs(15),
        "{fault}: {took:?}\n{}",
        cluster.logs()
    );
    cluster.unprobe("probe", PROBE_IP);
}

/// In the BGP pool, beside BGP_IP.
const PROBE_IP: &str = "198.51.100.33";

/// Writes by ironlb's ServiceAccounts after `since` (an audit-log position), leases aside:
/// what a reconnect must not cause when nothing changed.
fn writes_since(cluster: &SeedCluster, since: usize) -> Vec<String> {
    let ours = [
        audit::service_account(NAMESPACE, "ironlb-controller"),
        audit::service_account(NAMESPACE, "ironlb-speaker"),
    ];
    cluster.plane.audit()[since..]
        .iter()
        .filter(|e| ours.contains(&e.user))
        .filter(|e| matches!(e.verb.as_str(), "create" | "update" | "patch" | "delete"))
        .filter(|e| e.access.as_ref().is_some_and(|a| a.resource != "leases"))
        .map(|e| format!("{} {}", e.verb, e.uri))
        .collect()
}

#[test]
fn the_cluster_rides_out_api_server_faults_without_moving_an_ip_or_flapping() {
    if !ironlb_lab::control_plane::ready() || !ready(&["/usr/lib/frr/bgpd", "vtysh", "ip"]) {
        return;
    }
    let cluster = SeedCluster::start("clf", Path::new(env!("CARGO_BIN_EXE_ironlb")), &[]);
    wait_for(Duration::from_secs(20), || {
        (ingress(&cluster, "lan") == [cluster.l2_ip.as_str()]).then_some(())
    })
    .expect("the layer-2 Service has its IP");
    let before = Before::take(&cluster);
    assert_eq!(before.ips[0], [BGP_IP]);

    api_server_away_for_ten_seconds(&cluster);
    before.unchanged(&cluster, "API server restart");
    daemons_follow_the_cluster(&cluster, "API server restart");

    compaction_answers_410_and_the_watches_list_again(&cluster);
    before.unchanged(&cluster, "etcd compaction");

    permission_taken_away(&cluster);
    before.unchanged(&cluster, "permission removed");
}

/// SIGKILL of the API server; it comes back after 10 s on the same etcd. Routes stay
/// announced while it is away; afterwards the daemons have reconnected by themselves.
fn api_server_away_for_ten_seconds(cluster: &SeedCluster) {
    cluster.plane.kill_apiserver();
    let away = Instant::now();
    while away.elapsed() < Duration::from_secs(10) {
        assert_eq!(
            cluster.next_hops(),
            [NODES[0].1, NODES[1].1],
            "routes stay announced while the API server is away"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let restarted = Instant::now();
    cluster.plane.start_apiserver();
    eprintln!(
        "faults lab: the API server was back {:?} after its restart began",
        restarted.elapsed()
    );
}

/// etcd's history is compacted and the API server restarted, so every watch resumes from a
/// resourceVersion that is gone (410). The daemons list again, and since nothing changed
/// they write nothing.
fn compaction_answers_410_and_the_watches_list_again(cluster: &SeedCluster) {
    let since = cluster.plane.audit().len();
    let revision = cluster.plane.compact_etcd();
    cluster.plane.kill_apiserver();
    cluster.plane.start_apiserver();
    eprintln!("faults lab: etcd compacted at revision {revision}");
    wait_for(Duration::from_secs(30), || {
        let listed = cluster.plane.audit()[since..]
            .iter()
            .filter(|e| e.user == audit::service_account(NAMESPACE, "ironlb-speaker"))
            .any(|e| e.verb == "list");
        listed.then_some(())
    })
    .unwrap_or_else(|| panic!("the speakers never listed again\n{}", cluster.logs()));
    let writes = writes_since(cluster, since);
    assert!(writes.is_empty(), "writes after relisting: {writes:#?}");
    daemons_follow_the_cluster(cluster, "compaction");
}

/// The controller loses `update services/status`: a new Service cannot be given its IP. The
/// error is one line naming the verb and the resource, the error counter counts it, nothing
/// else changes, and once the permission is back the Service gets its IP.
fn permission_taken_away(cluster: &SeedCluster) {
    let full = rbac_of("controller.yaml");
    let granted = r#""resources":["services/status"],"verbs":["update"]"#;
    assert!(
        full.contains(granted),
        "deploy/controller.yaml grants update on services/status"
    );
    let without = full.replacen(
        granted,
        r#""resources":["services/status"],"verbs":["get"]"#,
        1,
    );
    cluster.plane.apply(&without);
    let svc = "apiVersion: v1\nkind: Service\nmetadata: {name: late, namespace: default}\nspec: {type: LoadBalancer, ports: [{port: 80}]}\n";
    cluster.plane.apply(svc);
    let log = seed::log(cluster.dir(), "controller");
    let line = wait_for(Duration::from_secs(20), || {
        std::fs::read_to_string(&log)
            .ok()?
            .lines()
            .find(|l| l.contains("forbidden") && l.contains("late"))
            .map(str::to_string)
    })
    .unwrap_or_else(|| panic!("no refusal logged\n{}", cluster.logs()));
    eprintln!("faults lab: the refusal as logged: {line}");
    assert!(
        line.contains("cannot update resource \\\"services/status\\\"")
            || line.contains("cannot update resource \"services/status\""),
        "{line}"
    );
    assert_eq!(line.matches("forbidden").count(), 1, "said once: {line}");
    let dumps: Vec<String> = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("Status {"))
        .map(str::to_string)
        .collect();
    assert!(dumps.is_empty(), "no debug dump of a Status: {dumps:#?}");
    let errors = wait_for(Duration::from_secs(10), || {
        let metrics = cluster.lab.router.http_get("127.0.0.1:7472", "/metrics");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix("metallb_k8s_client_update_errors_total "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|n| *n > 0.0)
    });
    assert!(
        errors.is_some(),
        "metallb_k8s_client_update_errors_total counts it"
    );
    assert!(ingress(cluster, "late").is_empty());

    cluster.plane.apply(&full);
    wait_for(Duration::from_secs(20), || {
        (!ingress(cluster, "late").is_empty()).then_some(())
    })
    .unwrap_or_else(|| panic!("the Service never got its IP back\n{}", cluster.logs()));
}
