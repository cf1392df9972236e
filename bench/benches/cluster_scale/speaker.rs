//! The speaker half: one real `ironlb speaker` in a node's namespace, under its own
//! ServiceAccount (deploy/speaker.yaml's RBAC), with N LoadBalancer Services, each with its
//! IP in status and a ready endpoint on the node, and BIRD as the router in a namespace of
//! its own. Timed at the router:
//! - from the session's Established to the full table of N /128s;
//! - from a new Service's status write to its /128, `PROBES` times, one after another;
//! - from its endpoint turning unready to the withdraw, `PROBES` times;
//! - the speaker's resident memory, and its CPU time per change over those probes.
//!
//! Each probe is also timed to a bare watch of the bench's own on the same API server: the
//! API server's delivery of the change, which no speaker can beat, is the limit.
//!
//! The Services are IPv6, as the IPv4 documentation ranges hold only 768 addresses, so the
//! API server serves a second Service range. Each size gets a control plane of its own: the
//! speaker watches every namespace, so one size's Services would weigh on the next.

use crate::{IN_FLIGHT, name};
use futures::{StreamExt, TryStreamExt, stream};
use ironlb_bench::receiver::{Receiver, poll};
use ironlb_bench::{cpu_time, peak_rss_kb, rss_kb};
use ironlb_lab::control_plane::{ControlPlane, Options};
use ironlb_lab::seed_cluster::{
    API_PORT, APPS, Install, NAMESPACE, create, node, rbac_of, speaker_pod, tail,
};
use ironlb_lab::{Forward, Netns, link};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use serde_json::{Value, json};
use std::net::{Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;

/// The router's IPv4 address (where the speaker reaches the API server) and IPv6 address
/// (its BGP peer); the node's name and addresses.
const ROUTER: (&str, &str) = ("192.0.2.1", "2001:db8::1");
const NODE: (&str, &str, &str) = ("node1", "192.0.2.2", "2001:db8::2");
const POOL: &str = "2001:db8:100::/112";
const PROBES: usize = 100;
/// The targets at 10,000 Services.
const TARGET_P50: Duration = Duration::from_millis(20);
const TARGET_P99: Duration = Duration::from_millis(100);
const TARGET_RSS_MB: u64 = 60;

pub fn can_run() -> bool {
    ironlb_lab::ready(&["ip", "bird"])
}

pub struct Row {
    full_table: Duration,
    announce: Probes,
    withdraw: Probes,
    rss_kb: u64,
    peak_rss_kb: u64,
    cpu_per_change: Duration,
    round_trip: Duration,
}

/// One kind of probe's timings: to the router, and to the bench's own watch (the limit).
#[derive(Default)]
struct Probes {
    router: Vec<Duration>,
    watch: Vec<Duration>,
}

/// The namespaces, the router and the control plane of one size's run.
struct Lab {
    node: Netns,
    receiver: Receiver,
    dir: PathBuf,
    _router: Netns,
    _forward: Forward,
    /// Dropped last: the speaker talks to it until its namespace is gone.
    plane: ControlPlane,
}

pub fn measure(runtime: &Runtime, ironlb: &Path, n: usize) -> Row {
    let mut lab = lab(n);
    let client = runtime.block_on(lab.plane.client());
    runtime.block_on(async {
        stream::iter(0..n)
            .map(|i| add(&client, i))
            .buffer_unordered(IN_FLIGHT)
            .collect::<Vec<_>>()
            .await
    });
    let (pid, full_table) = start_speaker(&mut lab, ironlb, n);
    settle(pid, &lab.dir);
    let cpu_before = cpu_time(pid);
    let announce = probes(runtime, &lab, n, |i| add(&client, i));
    let withdraw = probes(runtime, &lab, n, |i| unready(&client, i));
    settle(pid, &lab.dir);
    let cpu = cpu_time(pid).saturating_sub(cpu_before);
    Row {
        full_table,
        announce,
        withdraw,
        rss_kb: rss_kb(pid),
        peak_rss_kb: peak_rss_kb(pid),
        cpu_per_change: cpu / (2 * PROBES) as u32,
        round_trip: lab.receiver.round_trip(),
    }
}

fn lab(n: usize) -> Lab {
    let plane = ControlPlane::start(Options {
        addresses: vec![ROUTER.0.parse().expect("an address")],
        dual_stack: true,
        ..Options::default()
    });
    install(&plane);
    let mut router = Netns::new(&format!("cs{n}r"));
    let node = Netns::new(&format!("cs{n}n"));
    link(
        &router,
        &[&format!("{}/24", ROUTER.0), &format!("{}/64", ROUTER.1)],
        &node,
        &[&format!("{}/24", NODE.1), &format!("{}/64", NODE.2)],
    );
    let api = SocketAddr::new(ROUTER.0.parse().expect("an address"), API_PORT);
    let forward = router.forward(api, SocketAddr::from(([127, 0, 0, 1], plane.port)));
    let dir = router.scratch();
    let receiver = Receiver::start(&mut router, &dir, NODE.2, false);
    Lab {
        node,
        receiver,
        dir,
        _router: router,
        _forward: forward,
        plane,
    }
}

/// deploy/'s CRDs and the speaker's RBAC, one peer, one pool with an advertisement, and the
/// node.
fn install(plane: &ControlPlane) {
    plane.namespace(NAMESPACE);
    plane.apply(&Install::Ironlb.crds());
    plane.until_established();
    plane.apply(&rbac_of("speaker.yaml"));
    plane.apply(&format!(
        "apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {{name: router, namespace: {NAMESPACE}}}\nspec: {{myASN: 64513, peerASN: 64512, peerAddress: '{}'}}\n---\napiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {{name: scale, namespace: {NAMESPACE}}}\nspec: {{addresses: ['{POOL}']}}\n---\napiVersion: metallb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {{name: scale, namespace: {NAMESPACE}}}\n",
        ROUTER.1
    ));
    plane.namespace(APPS);
    create(plane, node(NODE.0, NODE.1));
}

/// Starts the speaker as its DaemonSet would; its pid, once the router holds all `n` routes,
/// and how long that took from the session's Established.
fn start_speaker(lab: &mut Lab, ironlb: &Path, n: usize) -> (u32, Duration) {
    // Polling from before the speaker starts, so the moment of Established is not missed.
    let poller = {
        let receiver = lab.receiver.clone();
        std::thread::spawn(move || {
            let timeout = Duration::from_secs(300);
            let established = poll(timeout, || {
                receiver
                    .count()
                    .filter(|(up, _)| *up)
                    .map(|_| Instant::now())
            })?;
            let full = poll(timeout, || (receiver.routes() >= n).then(Instant::now))?;
            Some(full - established)
        })
    };
    let server = format!("https://{}:{API_PORT}", ROUTER.0);
    let (_, account) = Install::Ironlb.service_accounts();
    let kubeconfig = lab
        .plane
        .service_account_kubeconfig(NAMESPACE, account, Some(&server));
    let kubeconfig = kubeconfig.display().to_string();
    let (pod, uid) = speaker_pod(&lab.plane, NODE.0, account);
    let pid = lab.node.spawn_env(
        &ironlb.display().to_string(),
        &["speaker", "--metrics-addr", "127.0.0.1:7472"],
        &Install::Ironlb.speaker_env(&kubeconfig, (NODE.0, NODE.1), (&pod, &uid)),
        &lab.dir.join("speaker.out"),
        &lab.dir.join("speaker.log"),
    );
    let full_table = poller
        .join()
        .ok()
        .flatten()
        .unwrap_or_else(|| fail(&lab.dir, &format!("the router never held {n} routes")));
    (pid, full_table)
}

/// Waits until the speaker is idle: at most one clock tick of CPU in each of two half
/// seconds in a row, so that no probe is timed against the tail of its start-up writes.
fn settle(pid: u32, dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(300);
    let (mut last, mut quiet) = (cpu_time(pid), 0);
    while quiet < 2 {
        if Instant::now() > deadline {
            fail(dir, "the speaker never went idle");
        }
        std::thread::sleep(Duration::from_millis(500));
        let now = cpu_time(pid);
        quiet = if now - last <= Duration::from_millis(10) {
            quiet + 1
        } else {
            0
        };
        last = now;
    }
}

/// `PROBES` changes one after another, to Services `n..n + PROBES`: `change(i)` makes one
/// and returns when it was written and when the bench's own watch saw it; each is timed
/// until the router's route count moves.
fn probes<Fut>(runtime: &Runtime, lab: &Lab, n: usize, change: impl Fn(usize) -> Fut) -> Probes
where
    Fut: Future<Output = (Instant, Instant)>,
{
    let mut probes = Probes::default();
    for i in n..n + PROBES {
        let before = lab.receiver.routes();
        let poller = {
            let receiver = lab.receiver.clone();
            std::thread::spawn(move || {
                poll(Duration::from_secs(30), || {
                    (receiver.routes() != before).then(Instant::now)
                })
            })
        };
        let (written, watched) = runtime.block_on(change(i));
        let routed = poller
            .join()
            .ok()
            .flatten()
            .unwrap_or_else(|| fail(&lab.dir, &format!("{} never moved the router", name(i))));
        probes.router.push(routed - written);
        probes.watch.push(watched - written);
    }
    probes
}

/// The `i`th Service's IP in the pool.
fn ip(i: usize) -> Ipv6Addr {
    let base: Ipv6Addr = "2001:db8:100::".parse().expect("an address");
    Ipv6Addr::from(u128::from(base) + i as u128 + 1)
}

/// The `i`th Service's EndpointSlice, its one endpoint on the node `ready` or not.
fn slice(i: usize, ready: bool) -> Value {
    json!({"metadata": {"name": format!("{}-bench", name(i)),
                        "labels": {"kubernetes.io/service-name": name(i), "endpointslice.kubernetes.io/managed-by": "bench.ironlb.dev"}},
           "addressType": "IPv6",
           "endpoints": [{"addresses": [format!("2001:db8:244::{:x}", i + 1)], "nodeName": NODE.0, "conditions": {"ready": ready}}],
           "ports": [{"port": 80, "protocol": "TCP"}]})
}

/// Service `i` with a ready endpoint, and its IP written to its status as the controller
/// would: when the status write was sent, and when the bench's own watch saw it.
async fn add(client: &kube::Client, i: usize) -> (Instant, Instant) {
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), APPS);
    let services: Api<Service> = Api::namespaced(client.clone(), APPS);
    let created = PostParams::default();
    slices
        .create(&created, &from(slice(i, true)))
        .await
        .expect("creating an EndpointSlice");
    let svc = json!({"metadata": {"name": name(i)},
                     "spec": {"type": "LoadBalancer", "ipFamilyPolicy": "SingleStack", "ipFamilies": ["IPv6"],
                              "allocateLoadBalancerNodePorts": false, "ports": [{"port": 80}]}});
    let svc = services
        .create(&created, &from(svc))
        .await
        .expect("creating a Service");
    let status = json!({"status": {"loadBalancer": {"ingress": [{"ip": ip(i).to_string()}]}}});
    let version = svc.metadata.resource_version.unwrap_or_default();
    timed_write(&services, &name(i), &version, async {
        services
            .patch_status(&name(i), &PatchParams::default(), &Patch::Merge(&status))
            .await
            .expect("writing a Service's status");
    })
    .await
}

/// Service `i`'s one endpoint turns unready: when the write was sent, and when the bench's
/// own watch saw it.
async fn unready(client: &kube::Client, i: usize) -> (Instant, Instant) {
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), APPS);
    let slice_name = format!("{}-bench", name(i));
    let version = slices
        .get(&slice_name)
        .await
        .expect("reading an EndpointSlice")
        .metadata
        .resource_version
        .unwrap_or_default();
    let patch = json!({"endpoints": slice(i, false)["endpoints"]});
    timed_write(&slices, &slice_name, &version, async {
        slices
            .patch(&slice_name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect("marking an endpoint unready");
    })
    .await
}

/// Runs `write` on object `name` of `api`, watched from resource `version`: when the write
/// was sent, and when the watch delivered the change.
async fn timed_write<K>(
    api: &Api<K>,
    name: &str,
    version: &str,
    write: impl Future<Output = ()>,
) -> (Instant, Instant)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let params = WatchParams::default().fields(&format!("metadata.name={name}"));
    let mut events = api.watch(&params, version).await.expect("watching").boxed();
    let written = Instant::now();
    write.await;
    loop {
        match events.try_next().await.expect("a watch event") {
            Some(WatchEvent::Modified(_)) => return (written, Instant::now()),
            Some(_) => continue,
            None => panic!("the watch of {name} ended"),
        }
    }
}

fn from<T: serde::de::DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).expect("a valid object")
}

/// Panics with `what` and the tail of the speaker's log.
fn fail(dir: &Path, what: &str) -> ! {
    let log = std::fs::read_to_string(dir.join("speaker.log")).unwrap_or_default();
    panic!("{what}\n---- speaker log (tail)\n{}", tail(&log, 40))
}

pub fn heading() {
    println!(
        "\ncluster scale, speaker: one `ironlb speaker`, BIRD as the router; N Services with a ready endpoint each"
    );
    println!(
        "  announce: a Service's status written → its /128 at the router; withdraw: its endpoint unready → gone"
    );
    println!(
        "  limit: the same change delivered to a bare watch of the bench's own (the API server's own latency)"
    );
    println!(
        "  {:>6}  {:>10}  {:>38}  {:>38}  {:>17}  {:>10}  {:>8}",
        "N",
        "full table",
        "announce p50 / p99",
        "withdraw p50 / p99",
        "RSS (peak)",
        "CPU/change",
        "poll RTT"
    );
}

pub fn print(n: usize, row: &Row) {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let pair = |p: &Probes| {
        let (router, watch) = (quantiles(&p.router), quantiles(&p.watch));
        format!(
            "{:>5.1} / {:>5.1} ms (limit {:.1} / {:.1}, {:.1}x)",
            ms(router.0),
            ms(router.1),
            ms(watch.0),
            ms(watch.1),
            ms(router.0) / ms(watch.0).max(0.001)
        )
    };
    println!(
        "  {n:>6}  {:>7.1} ms  {}  {}  {:>5.1} MB ({:>5.1})  {:>7.2} ms  {:>5.2} ms",
        ms(row.full_table),
        pair(&row.announce),
        pair(&row.withdraw),
        row.rss_kb as f64 / 1024.0,
        row.peak_rss_kb as f64 / 1024.0,
        ms(row.cpu_per_change),
        ms(row.round_trip),
    );
}

pub fn targets() {
    println!(
        "  target at 10,000: announce and withdraw p50 ≤ {} ms, p99 ≤ {} ms; RSS ≤ {TARGET_RSS_MB} MB",
        TARGET_P50.as_millis(),
        TARGET_P99.as_millis()
    );
}

/// (p50, p99) of `samples`.
fn quantiles(samples: &[Duration]) -> (Duration, Duration) {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let at = |q: usize| sorted[(sorted.len() * q / 100).min(sorted.len() - 1)];
    (at(50), at(99))
}
