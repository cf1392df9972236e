//! The product at cluster scale, against the real control plane of `ironlb_lab`:
//! - the controller half (`controller.rs`): a real `ironlb controller` given N Services at
//!   once, against the API server's own limit measured in the same run;
//! - the speaker half (`speaker.rs`): a real `ironlb speaker` with N Services and their
//!   EndpointSlices, announcing to BIRD in a namespace, timed at the router.
//!
//! Run: `cargo bench -p ironlb-bench --bench cluster_scale [-- controller|speaker] [-- 1000
//! 10000]`. Needs the envtest binaries (KUBEBUILDER_ASSETS) and etcd, and for the speaker
//! half root and bird2; prints SKIPPED otherwise.

mod controller;
mod speaker;

use ironlb_bench::ironlb_binary;
use ironlb_lab::control_plane;

/// Requests in flight from the bench's own clients (creating objects, the limit's writes).
const IN_FLIGHT: usize = 32;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") || !control_plane::ready() {
        return;
    }
    let mut sizes: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    if sizes.is_empty() {
        sizes = vec![1_000, 10_000];
    }
    let only = |half: &str| {
        !args.iter().any(|a| a == "controller" || a == "speaker") || args.iter().any(|a| a == half)
    };
    let ironlb = ironlb_binary();
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    if only("controller") {
        let (plane, kubeconfig) = controller::install();
        controller::heading();
        for &n in &sizes {
            let row = controller::measure(&runtime, plane, (&ironlb, &kubeconfig), n);
            controller::print(n, &row);
        }
    }
    if only("speaker") {
        if !speaker::can_run() {
            println!("SKIPPED cluster_scale speaker half: needs root, ip and bird");
            return;
        }
        speaker::heading();
        for &n in &sizes {
            let row = speaker::measure(&runtime, &ironlb, n);
            speaker::print(n, &row);
        }
        speaker::targets();
    }
}

fn name(i: usize) -> String {
    format!("svc{i:05}")
}
