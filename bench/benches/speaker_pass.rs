//! One speaker pass at scale: from the cluster's objects (Services, their EndpointSlices,
//! Nodes) to this node's plan, as `ironlb speaker` runs it on every change. There is no peer
//! to run beside it here (MetalLB's speaker needs a cluster), so it prints absolute times,
//! and the ratio to the layer-2 failover budget of one second.

use config::Config;
use ironlb_kube::speaker::view;
use ironlb_plan::announce::plan;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::json;
use std::time::{Duration, Instant};

const SIZES: [usize; 2] = [1_000, 10_000];
const NODES: usize = 10;

fn config() -> Config {
    ironlb_bench::config(
        "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: big}\nspec: {addresses: ['2001:db8::/110']}\n---\napiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {name: gw}\nspec: {myASN: 64513, peerASN: 64512, peerAddress: '2001:db8:ffff::1'}\n---\napiVersion: metallb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {name: all}\nspec: {ipAddressPools: [big]}\n",
    )
}

fn cluster(n: usize) -> (Vec<Service>, Vec<EndpointSlice>, Vec<Node>) {
    let nodes = (0..NODES)
        .map(|i| {
            serde_json::from_value(json!({"metadata": {"name": format!("node{i}")},
                "status": {"conditions": [{"type": "Ready", "status": "True"}]}}))
            .unwrap()
        })
        .collect();
    let services = (0..n)
        .map(|i| {
            serde_json::from_value(json!({
                "metadata": {"name": format!("svc{i}"), "namespace": "default",
                             "annotations": {"metallb.io/ip-allocated-from-pool": "big"}},
                "spec": {"type": "LoadBalancer", "externalTrafficPolicy": if i % 2 == 0 { "Local" } else { "Cluster" }},
                "status": {"loadBalancer": {"ingress": [{"ip": format!("2001:db8::{:x}", i + 1)}]}},
            }))
            .unwrap()
        })
        .collect();
    let slices = (0..n)
        .map(|i| {
            let endpoints: Vec<_> = (0..3)
                .map(|e| json!({"addresses": [format!("10.0.{}.{}", i % 250, e)], "nodeName": format!("node{}", (i + e) % NODES), "conditions": {"ready": true}}))
                .collect();
            serde_json::from_value(json!({
                "metadata": {"name": format!("svc{i}-x"), "namespace": "default",
                             "labels": {"kubernetes.io/service-name": format!("svc{i}")}},
                "addressType": "IPv4", "endpoints": endpoints,
            }))
            .unwrap()
        })
        .collect();
    (services, slices, nodes)
}

fn main() {
    let config = config();
    println!("speaker pass: objects -> this node's plan ({NODES} nodes, 3 endpoints per Service)");
    for n in SIZES {
        let (services, slices, nodes) = cluster(n);
        let best = (0..5)
            .map(|_| {
                let start = Instant::now();
                let planned = view::services(&services, &slices, &config, None);
                let all = view::nodes(&nodes, "node-0", None, None);
                let p = plan(&config, &all[0], &all, &planned);
                std::hint::black_box(p);
                start.elapsed()
            })
            .min()
            .unwrap_or(Duration::ZERO);
        println!(
            "  {n:>6} Services: {:>8.2} ms per pass ({:.3} of a one-second budget)",
            best.as_secs_f64() * 1e3,
            best.as_secs_f64()
        );
    }
}
