//! The controller half: a real `ironlb controller` process under its own ServiceAccount
//! (deploy/controller.yaml's RBAC) given N LoadBalancer Services at once. It measures the time
//! until every one has its IP, the API requests per Service (from the API server's audit
//! log), and, as the limit, the API server's own time to take N bare status writes from a
//! minimal client in the same run.

use crate::{IN_FLIGHT, name};
use futures::{StreamExt, TryStreamExt, stream};
use ironlb_bench::cpu_time;
use ironlb_lab::control_plane::{self, ControlPlane, audit, free_port};
use ironlb_lab::seed_cluster::rbac_of;
use k8s_openapi::api::core::v1::Service;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub const TARGET_RATIO: f64 = 1.2;

/// The shared control plane with deploy/'s CRDs, the controller's RBAC and one pool big
/// enough for every size (its addresses are data in the API server only); the controller's
/// kubeconfig.
pub fn install() -> (&'static ControlPlane, PathBuf) {
    let plane = ControlPlane::shared_with_crds();
    plane.namespace("metallb-system");
    plane.apply(&rbac_of("controller.yaml"));
    plane.apply("apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: scale, namespace: metallb-system}\nspec: {addresses: [10.200.0.0/16]}\n");
    let kubeconfig = plane.service_account_kubeconfig("metallb-system", "ironlb-controller", None);
    (plane, kubeconfig)
}

/// Prints the half's table: a heading, then `row` for each size.
pub fn heading() {
    println!("cluster scale, controller: N Services created at once, until every one has its IP");
    println!(
        "  CPU: the API server's during the limit's writes and during ironlb's run, and ironlb's own"
    );
    println!(
        "  {:>6}  {:>12}  {:>16}  {:>14}  {:>8}  {:>8}  {:>24}  {:>10}",
        "N",
        "ironlb",
        "requests/Service",
        "limit (bare)",
        "ratio",
        "target",
        "API server CPU bare/ours",
        "ironlb CPU"
    );
}

pub fn print(n: usize, row: &Row) {
    let s = |d: Duration| d.as_secs_f64();
    println!(
        "  {n:>6}  {:>10.2} s  {:>16.2}  {:>12.2} s  {:>7.2}x  {:>7.1}x  {:>9.2} s / {:>8.2} s  {:>8.2} s",
        s(row.controller),
        row.requests_per_service,
        s(row.limit),
        s(row.controller) / s(row.limit),
        TARGET_RATIO,
        s(row.server_cpu.0),
        s(row.server_cpu.1),
        s(row.controller_cpu),
    );
}

pub struct Row {
    controller: Duration,
    requests_per_service: f64,
    limit: Duration,
    /// The API server's CPU time during the limit's writes, and during the controller's run.
    server_cpu: (Duration, Duration),
    controller_cpu: Duration,
}

pub fn measure(
    runtime: &tokio::runtime::Runtime,
    plane: &ControlPlane,
    (ironlb, kubeconfig): (&Path, &Path),
    n: usize,
) -> Row {
    // The limit first, in a namespace of its own: N Services, then one bare status write
    // each, as fast as the API server takes them.
    let bare = plane.namespace(&format!("bare{n}"));
    let server = plane.apiserver_pid().expect("the API server runs");
    let (limit, bare_cpu) = runtime.block_on(async {
        let client = plane.client().await;
        // Of another class, so the controller leaves them alone.
        create_services(&client, &bare, n, Some("bench.ironlb.dev/bare")).await;
        let api: Api<Service> = Api::namespaced(client, &bare);
        let (start, cpu) = (Instant::now(), cpu_time(server));
        stream::iter(0..n)
            .map(|i| {
                let api = api.clone();
                async move {
                    let ip = format!("10.201.{}.{}", i / 256, i % 256);
                    let status = json!({"status": {"loadBalancer": {"ingress": [{"ip": ip}]}}});
                    api.patch_status(&name(i), &PatchParams::default(), &Patch::Merge(&status))
                        .await
                        .expect("a bare status write");
                }
            })
            .buffer_unordered(IN_FLIGHT)
            .collect::<()>()
            .await;
        (start.elapsed(), cpu_time(server) - cpu)
    });

    // The controller: Services waiting, then the controller started; timed from its start
    // until every Service has an IP.
    let ns = plane.namespace(&format!("scale{n}"));
    runtime.block_on(async { create_services(&plane.client().await, &ns, n, None).await });
    let since = plane.audit().len();
    let client = runtime.block_on(plane.client());
    let (start, cpu) = (Instant::now(), cpu_time(server));
    let mut controller = control_plane::spawn(
        ironlb,
        &[
            "controller".into(),
            "--kubeconfig".into(),
            kubeconfig.display().to_string(),
            "--metrics-addr".into(),
            format!("127.0.0.1:{}", free_port()),
            "--health-probe-port=0".into(),
            format!("--webhook-addr=127.0.0.1:{}", free_port()),
            "--webhook-mode=disabled".into(),
        ],
        &[("METALLB_POD_NAME", "scale")],
        &plane.dir().join(format!("scale{n}.log")),
    );
    runtime.block_on(all_have_ips(&client, &ns, n));
    let controller_time = start.elapsed();
    let our_cpu = cpu_time(server) - cpu;
    let controller_cpu = cpu_time(controller.pid());
    controller.kill();
    let user = audit::service_account("metallb-system", "ironlb-controller");
    let requests = plane.audit()[since..]
        .iter()
        .filter(|e| e.user == user && e.uri.contains(&format!("/namespaces/{ns}/")))
        .count();
    Row {
        controller: controller_time,
        requests_per_service: requests as f64 / n as f64,
        limit,
        server_cpu: (bare_cpu, our_cpu),
        controller_cpu,
    }
}

/// `n` LoadBalancer Services in `ns`, of `class` (None: the controller's).
async fn create_services(client: &kube::Client, ns: &str, n: usize, class: Option<&str>) {
    let api: Api<Service> = Api::namespaced(client.clone(), ns);
    stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            async move {
                // No node ports: the API server has room for fewer than 3,000 of them.
                let mut spec = json!({"type": "LoadBalancer", "allocateLoadBalancerNodePorts": false, "ports": [{"port": 80}]});
                if let Some(class) = class {
                    spec["loadBalancerClass"] = json!(class);
                }
                let svc: Service = serde_json::from_value(json!({
                    "metadata": {"name": name(i)},
                    "spec": spec,
                }))
                .expect("a Service");
                api.create(&PostParams::default(), &svc)
                    .await
                    .expect("creating a Service");
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect::<()>()
        .await;
}

/// Waits until all `n` Services of `ns` have an ingress IP: one list, then a watch from it.
/// Listing ten thousand Services every 100 ms instead kept one of the API server's two
/// cores busy serving the bench, and the controller measured against it waited for that.
async fn all_have_ips(client: &kube::Client, ns: &str, n: usize) {
    let api: Api<Service> = Api::namespaced(client.clone(), ns);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    let mut done = HashSet::new();
    while done.len() < n {
        let list = api.list(&ListParams::default()).await.expect("listing");
        done = list
            .items
            .iter()
            .filter(|s| has_ip(s))
            .filter_map(|s| s.metadata.name.clone())
            .collect();
        let version = list.metadata.resource_version.unwrap_or_default();
        let mut events = api
            .watch(&WatchParams::default(), &version)
            .await
            .expect("watching")
            .boxed();
        while done.len() < n {
            let event = tokio::time::timeout_at(deadline, events.try_next()).await;
            let Ok(Ok(Some(event))) = event else {
                assert!(
                    event.is_ok(),
                    "only {} of {n} Services have an IP after 600 s",
                    done.len()
                );
                // The watch ended or expired: list again.
                break;
            };
            if let WatchEvent::Added(s) | WatchEvent::Modified(s) = event
                && has_ip(&s)
            {
                done.insert(s.metadata.name.unwrap_or_default());
            }
        }
    }
}

fn has_ip(service: &Service) -> bool {
    service
        .status
        .as_ref()
        .and_then(|st| st.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .is_some_and(|i| !i.is_empty())
}
