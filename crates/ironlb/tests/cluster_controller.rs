//! `ironlb controller` processes against a real API server (the shared control plane of
//! `ironlb_lab`): the seed configuration under its own ServiceAccount token with exactly
//! `deploy/controller.yaml`'s RBAC, pool edits, a restart that moves nothing, and leader
//! failover between two replicas, timed.

use ironlb_lab::control_plane::{self, ControlPlane, Process, audit, free_port};
use ironlb_lab::seed::LEGACY_CONFIGMAP;
use ironlb_lab::seed_cluster::rbac_of;
use ironlb_lab::wait_for;
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

fn plane() -> Option<&'static ControlPlane> {
    control_plane::ready().then(ControlPlane::shared_with_crds)
}

/// An `ironlb controller` with `args`, logging into the control plane's directory.
fn controller(plane: &ControlPlane, name: &str, kubeconfig: &Path, args: &[&str]) -> Process {
    let metrics = format!("127.0.0.1:{}", free_port());
    let mut all = vec![
        "controller".to_string(),
        "--kubeconfig".into(),
        kubeconfig.display().to_string(),
        "--metrics-addr".into(),
        metrics,
        // Several controllers share this network namespace: no fixed ports.
        "--health-probe-port=0".into(),
        format!("--webhook-addr=127.0.0.1:{}", free_port()),
    ];
    all.extend(args.iter().map(|a| a.to_string()));
    control_plane::spawn(
        Path::new(env!("CARGO_BIN_EXE_ironlb")),
        &all,
        &[("METALLB_POD_NAME", name)],
        &plane.dir().join(format!("{name}.log")),
    )
}

fn service(ns: &str, name: &str, extra_spec: &str, annotations: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {ns}, annotations: {{{annotations}}}}}\nspec: {{type: LoadBalancer, ports: [{{port: 80}}]{extra_spec}}}\n"
    )
}

fn until_ingress(plane: &ControlPlane, ns: &str, name: &str, want: &[&str], log: &str) {
    wait_for(Duration::from_secs(20), || {
        (plane.ingress(ns, name) == want).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "{ns}/{name} has {:?}, not {want:?}\n{}",
            plane.ingress(ns, name),
            plane.log(log)
        )
    });
}

fn pool_annotation(plane: &ControlPlane, ns: &str, name: &str) -> Value {
    plane
        .get(&format!("/api/v1/namespaces/{ns}/services/{name}"))
        .unwrap_or_default()["metadata"]["annotations"]["metallb.io/ip-allocated-from-pool"]
        .clone()
}

fn reasons(plane: &ControlPlane, ns: &str, name: &str) -> Vec<String> {
    plane
        .list(&format!("/apis/events.k8s.io/v1/namespaces/{ns}/events"))
        .iter()
        .filter(|e| e["regarding"]["name"] == name)
        .filter_map(|e| e["reason"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn the_seed_configuration_under_the_controllers_own_rbac() {
    let Some(plane) = plane() else { return };
    let ns = plane.namespace("seed");
    plane.namespace("metallb-system");
    plane.apply(&rbac_of("controller.yaml"));
    plane.apply(LEGACY_CONFIGMAP);
    let kubeconfig = plane.service_account_kubeconfig("metallb-system", "ironlb-controller", None);
    let mut first = controller(plane, "seed-0", &kubeconfig, &[]);

    // The legacy ConfigMap's BGP pool is not auto-assigned: a Service asks for its IP.
    plane.apply(&service(&ns, "web", ", loadBalancerIP: 198.51.100.32", ""));
    until_ingress(plane, &ns, "web", &["198.51.100.32"], "seed-0");
    assert_eq!(
        pool_annotation(plane, &ns, "web"),
        "routed",
        "{}",
        plane
            .get(&format!("/api/v1/namespaces/{ns}/services/web"))
            .unwrap_or_default()
    );
    // Any other Service gets the first IP of the auto-assigned layer-2 pool...
    plane.apply(&service(&ns, "auto", "", ""));
    until_ingress(plane, &ns, "auto", &["192.0.2.128"], "seed-0");
    // ...unless it names a pool: the BGP pool skips .0 (avoid-buggy-ips).
    plane.apply(&service(
        &ns,
        "pinned",
        "",
        "metallb.io/address-pool: routed",
    ));
    until_ingress(plane, &ns, "pinned", &["198.51.100.1"], "seed-0");
    assert_eq!(reasons(plane, &ns, "auto"), ["IPAllocated"]);

    // A pool edit moves only the Service whose IP left the pool, with an event.
    plane.apply(&LEGACY_CONFIGMAP.replace("192.0.2.128/25", "192.0.2.192/26"));
    until_ingress(plane, &ns, "auto", &["192.0.2.192"], "seed-0");
    // The Event follows the status write.
    wait_for(Duration::from_secs(10), || {
        reasons(plane, &ns, "auto")
            .contains(&"ClearAssignment".to_string())
            .then_some(())
    })
    .unwrap_or_else(|| panic!("no ClearAssignment: {:?}", reasons(plane, &ns, "auto")));
    assert_eq!(plane.ingress(&ns, "web"), ["198.51.100.32"]);
    assert_eq!(plane.ingress(&ns, "pinned"), ["198.51.100.1"]);

    // A restart moves nothing and writes no Service.
    first.kill();
    let since = plane.audit().len();
    let _second = controller(plane, "seed-1", &kubeconfig, &[]);
    let user = audit::service_account("metallb-system", "ironlb-controller");
    wait_for(Duration::from_secs(20), || {
        let listed = plane.audit()[since..]
            .iter()
            .any(|e| e.user == user && e.verb == "list" && e.uri.contains("services"));
        listed.then_some(())
    })
    .expect("the restarted controller listed the Services");
    std::thread::sleep(Duration::from_secs(2));
    for (name, ip) in [
        ("web", "198.51.100.32"),
        ("auto", "192.0.2.192"),
        ("pinned", "198.51.100.1"),
    ] {
        assert_eq!(plane.ingress(&ns, name), [ip], "{name} kept its IP");
    }
    let writes: Vec<String> = plane.audit()[since..]
        .iter()
        .filter(|e| e.user == user && e.uri.contains("/services/"))
        .filter(|e| e.verb != "get" && e.verb != "list" && e.verb != "watch")
        .map(|e| format!("{} {}", e.verb, e.uri))
        .collect();
    assert!(writes.is_empty(), "{writes:#?}");

    let refused: Vec<String> = plane
        .audit()
        .iter()
        .filter(|e| e.user == user && e.forbidden)
        .map(|e| format!("{} {}", e.verb, e.uri))
        .collect();
    assert!(
        refused.is_empty(),
        "refused under deploy/'s RBAC: {refused:#?}"
    );
}

/// The Lease's holder, if any.
fn holder(plane: &ControlPlane, ns: &str) -> Option<String> {
    let lease = plane.get(&format!(
        "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases/ironlb-controller"
    ))?;
    lease["spec"]["holderIdentity"].as_str().map(str::to_string)
}

/// How long until `who` holds the lease and a new Service gets an IP from it.
fn takes_over(plane: &ControlPlane, ns: &str, who: &str, service_name: &str) -> Duration {
    let began = Instant::now();
    plane.apply(&service(
        ns,
        service_name,
        ", loadBalancerClass: ironlb.dev/leader-test",
        "",
    ));
    wait_for(Duration::from_secs(30), || {
        (holder(plane, ns).as_deref() == Some(who) && !plane.ingress(ns, service_name).is_empty())
            .then_some(())
    })
    .unwrap_or_else(|| panic!("{who} never took over\n{}", plane.log(who)));
    began.elapsed()
}

#[test]
fn a_killed_leader_is_replaced_within_the_lease_and_a_stopped_one_at_once() {
    let Some(plane) = plane() else { return };
    let ns = plane.namespace("leaders");
    plane.apply(&format!(
        "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {{name: lan, namespace: {ns}}}\nspec: {{addresses: [192.0.2.128/26]}}\n"
    ));
    let admin = plane.admin_kubeconfig();
    let args = [
        "--namespace",
        &ns,
        "--lb-class",
        "ironlb.dev/leader-test",
        "--lease-seconds",
        "10",
    ];
    let mut a = controller(plane, "replica-a", &admin, &args);
    wait_for(Duration::from_secs(20), || {
        (holder(plane, &ns).as_deref() == Some("replica-a")).then_some(())
    })
    .unwrap_or_else(|| panic!("replica-a never led\n{}", plane.log("replica-a")));
    let mut b = controller(plane, "replica-b", &admin, &args);
    std::thread::sleep(Duration::from_secs(1));

    a.kill();
    let after_kill = takes_over(plane, &ns, "replica-b", "after-kill");
    eprintln!(
        "leader failover: SIGKILL of the leader, the other replica led {after_kill:?} later (lease 10 s)"
    );
    assert!(after_kill < Duration::from_secs(12), "{after_kill:?}");

    let _a = controller(plane, "replica-a", &admin, &args);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        holder(plane, &ns).as_deref(),
        Some("replica-b"),
        "a returning replica waits"
    );
    let stopping = Instant::now();
    b.terminate();
    let exited = stopping.elapsed();
    takes_over(plane, &ns, "replica-a", "after-term");
    let after_term = stopping.elapsed();
    eprintln!(
        "leader failover: SIGTERM of the leader (it exited in {exited:?}), the other replica led {after_term:?} after the signal"
    );
    assert!(after_term < Duration::from_secs(2), "{after_term:?}");
}

/// MetalLB's controller container as its manifest runs it: the binary is `/controller`
/// (here a link named so), with MetalLB's flags and environment. It starts, logs each
/// setting that has no meaning here once, answers the probes on the health port and
/// metrics on `--port`, and allocates.
#[test]
fn metallbs_controller_args_run_it_as_they_are() {
    let Some(plane) = plane() else { return };
    if !ironlb_lab::ready(&["curl"]) {
        return;
    }
    let ns = plane.namespace("metallb-args");
    plane.apply(&format!(
        "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {{name: lan, namespace: {ns}}}\nspec: {{addresses: [192.0.2.128/26]}}\n"
    ));
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("controller");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_ironlb"), &link).unwrap();
    let (metrics, health) = (free_port(), free_port());
    let args = [
        format!("--port={metrics}"),
        "--log-level=info".into(),
        "--webhook-mode=disabled".into(),
        "--tls-min-version=VersionTLS12".into(),
        "--disable-cert-rotation".into(),
        format!("--health-probe-port={health}"),
        format!("--kubeconfig={}", plane.admin_kubeconfig().display()),
        // Its own class, so the other tests' Services are none of its business.
        "--lb-class=ironlb.dev/metallb-args".into(),
    ];
    let log = plane.dir().join("metallb-args.log");
    let _controller = control_plane::spawn(
        &link,
        &args,
        &[
            ("METALLB_NAMESPACE", ns.as_str()),
            ("METALLB_ML_SECRET_NAME", "memberlist"),
            ("METALLB_DEPLOYMENT", "controller"),
        ],
        &log,
    );
    plane.apply(&service(
        &ns,
        "web",
        ", loadBalancerClass: ironlb.dev/metallb-args",
        "",
    ));
    until_ingress(plane, &ns, "web", &["192.0.2.128"], "metallb-args");
    let probe = |port: u16, path: &str| ironlb_lab::http_get(&format!("127.0.0.1:{port}"), path);
    assert_eq!(probe(health, "/healthz"), "ok");
    assert_eq!(probe(health, "/readyz"), "ready");
    // Metrics on --port are MetalLB 0.16's: HTTPS, and no token gets no metrics (the lab
    // with MetalLB's install scrapes them with one).
    let code = ironlb_lab::run(
        "curl",
        &[
            "-sk",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("https://127.0.0.1:{metrics}/metrics"),
        ],
    );
    assert_eq!(code.trim(), "401", "metrics on --port");
    let text = std::fs::read_to_string(&log).unwrap();
    let ignored = |setting: &str| {
        text.lines()
            .filter(|l| {
                l.contains("MetalLB setting ignored")
                    && l.contains(&format!("setting=\"{setting}\""))
            })
            .count()
    };
    assert_eq!(ignored("--tls-min-version"), 1, "logged once:\n{text}");
    // MetalLB's webhook flags are ironlb's now: disabled means no webhook server.
    assert_eq!(ignored("--webhook-mode"), 0, "{text}");
    assert!(!text.contains("serving the admission"), "{text}");
    assert!(!text.contains("unexpected argument"), "{text}");
    // --ml-secret-name and --deployment do what they do in MetalLB; here the Deployment does
    // not exist, which is one warning, and the controller goes on.
    assert_eq!(
        text.matches("cannot create the speakers' gossip key Secret")
            .count(),
        1,
        "{text}"
    );
    assert!(
        text.contains(r#"deployments.apps \"controller\" not found"#),
        "{text}"
    );
}
