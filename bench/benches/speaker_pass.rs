//! One speaker pass at scale: from what the watches keep of the cluster's objects
//! (`records` of Services and their EndpointSlices, and Nodes) to this node's plan, as `ironlb speaker` runs it on every change: the first pass,
//! which reads and plans every Service, and a pass after one EndpointSlice changed, which
//! reads (`view::ServiceViews`) and plans (`Planner`) only its Service again. There is no
//! peer to run beside it here (MetalLB's speaker needs a cluster), so it prints absolute
//! times against the target of 2 ms per change at 10,000 Services.

use config::Config;
use ironlb_kube::speaker::records::{ServiceRecord, SliceRecord};
use ironlb_kube::speaker::view;
use ironlb_plan::Planner;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

const SIZES: [usize; 2] = [1_000, 10_000];
const NODES: usize = 10;
const TARGET_PER_CHANGE: Duration = Duration::from_millis(2);

fn config() -> Config {
    ironlb_bench::config(
        "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: big}\nspec: {addresses: ['2001:db8::/110']}\n---\napiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {name: gw}\nspec: {myASN: 64513, peerASN: 64512, peerAddress: '2001:db8:ffff::1'}\n---\napiVersion: metallb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {name: all}\nspec: {ipAddressPools: [big]}\n",
    )
}

type Cluster = (Vec<Arc<ServiceRecord>>, Vec<Arc<SliceRecord>>, Vec<Node>);

fn cluster(n: usize) -> Cluster {
    let nodes = (0..NODES)
        .map(|i| {
            serde_json::from_value(json!({"metadata": {"name": format!("node{i}")},
                "status": {"conditions": [{"type": "Ready", "status": "True"}]}}))
            .unwrap()
        })
        .collect();
    let services = (0..n)
        .map(|i| {
            let svc: Service = serde_json::from_value(json!({
                "metadata": {"name": format!("svc{i}"), "namespace": "default",
                             "annotations": {"metallb.io/ip-allocated-from-pool": "big"}},
                "spec": {"type": "LoadBalancer", "externalTrafficPolicy": if i % 2 == 0 { "Local" } else { "Cluster" }},
                "status": {"loadBalancer": {"ingress": [{"ip": format!("2001:db8::{:x}", i + 1)}]}},
            }))
            .unwrap();
            Arc::new(ServiceRecord::read(&svc))
        })
        .collect();
    let slices = (0..n)
        .map(|i| {
            let endpoints: Vec<_> = (0..3)
                .map(|e| json!({"addresses": [format!("10.0.{}.{}", i % 250, e)], "nodeName": format!("node{}", (i + e) % NODES), "conditions": {"ready": true}}))
                .collect();
            let slice: EndpointSlice = serde_json::from_value(json!({
                "metadata": {"name": format!("svc{i}-x"), "namespace": "default",
                             "labels": {"kubernetes.io/service-name": format!("svc{i}")}},
                "addressType": "IPv4", "endpoints": endpoints,
            }))
            .unwrap();
            Arc::new(SliceRecord::read(&slice))
        })
        .collect();
    (services, slices, nodes)
}

/// What a speaker keeps between passes.
type Kept = (view::ServiceViews, Planner);

/// The best of five timings of `f`.
fn best(mut f: impl FnMut() -> Duration) -> Duration {
    (0..5).map(|_| f()).min().unwrap_or(Duration::ZERO)
}

fn main() {
    let config = config();
    println!("speaker pass: objects -> this node's plan ({NODES} nodes, 3 endpoints per Service)");
    println!(
        "  {:>8}  {:>12}  {:>16}  {:>22}",
        "Services", "first pass", "after one change", "ratio to 2 ms target"
    );
    for n in SIZES {
        let (services, mut slices, nodes) = cluster(n);
        let all = view::nodes(&nodes, "node-0", None, None);
        let pass = |(views, planner): &mut Kept, slices: &[Arc<SliceRecord>]| {
            let start = Instant::now();
            let planned = views.services(&services, slices, &config, None);
            planner.announce(&config, &all[0], &all, &planned);
            start.elapsed()
        };
        let first = best(|| pass(&mut Kept::default(), &slices));
        let mut kept = Kept::default();
        pass(&mut kept, &slices);
        let changed = best(|| {
            // A new object for one slice, as the watch store hands out on a change.
            slices[n / 2] = Arc::new((*slices[n / 2]).clone());
            pass(&mut kept, &slices)
        });
        println!(
            "  {n:>8}  {:>9.2} ms  {:>13.2} ms  {:>21.1}x",
            first.as_secs_f64() * 1e3,
            changed.as_secs_f64() * 1e3,
            changed.as_secs_f64() / TARGET_PER_CHANGE.as_secs_f64()
        );
    }
}
