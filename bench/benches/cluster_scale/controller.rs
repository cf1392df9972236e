//! The controller half: a real `ironlb controller` process under its own ServiceAccount
//! (deploy/controller.yaml's RBAC) given N LoadBalancer Services at once. It measures the time
//! until every one has its IP, the API requests per Service (from the API server's audit
//! log), and, as the limit, the API server's own time to take N bare status writes from a
//! minimal client in the same run.

use crate::{IN_FLIGHT, name};
use futures::{StreamExt, stream};
use ironlb_lab::control_plane::{self, ControlPlane, audit, free_port};
use ironlb_lab::seed_cluster::rbac_of;
use k8s_openapi::api::core::v1::Service;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
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
        "  {:>6}  {:>12}  {:>16}  {:>14}  {:>8}  {:>8}",
        "N", "ironlb", "requests/Service", "limit (bare)", "ratio", "target"
    );
}

pub fn print(n: usize, row: &Row) {
    println!(
        "  {n:>6}  {:>10.2} s  {:>16.2}  {:>12.2} s  {:>7.2}x  {:>7.1}x",
        row.controller.as_secs_f64(),
        row.requests_per_service,
        row.limit.as_secs_f64(),
        row.controller.as_secs_f64() / row.limit.as_secs_f64(),
        TARGET_RATIO
    );
}

pub struct Row {
    controller: Duration,
    requests_per_service: f64,
    limit: Duration,
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
    let limit = runtime.block_on(async {
        let client = plane.client().await;
        // Of another class, so the controller leaves them alone.
        create_services(&client, &bare, n, Some("bench.ironlb.dev/bare")).await;
        let api: Api<Service> = Api::namespaced(client, &bare);
        let start = Instant::now();
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
        start.elapsed()
    });

    // The controller: Services waiting, then the controller started; timed from its start
    // until every Service has an IP.
    let ns = plane.namespace(&format!("scale{n}"));
    runtime.block_on(async { create_services(&plane.client().await, &ns, n, None).await });
    let since = plane.audit().len();
    let start = Instant::now();
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
    runtime.block_on(async { all_have_ips(&plane.client().await, &ns, n).await });
    let controller_time = start.elapsed();
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

/// Waits until all `n` Services of `ns` have an ingress IP.
async fn all_have_ips(client: &kube::Client, ns: &str, n: usize) {
    let api: Api<Service> = Api::namespaced(client.clone(), ns);
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let list = api.list(&ListParams::default()).await.expect("listing");
        let done = list
            .items
            .iter()
            .filter(|s| {
                s.status
                    .as_ref()
                    .and_then(|st| st.load_balancer.as_ref())
                    .and_then(|lb| lb.ingress.as_ref())
                    .is_some_and(|i| !i.is_empty())
            })
            .count();
        if done == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "only {done} of {n} Services have an IP after 600 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
