//! Allocating 1k, 10k and 100k Services into one pool, with time per Service, peak heap,
//! and the ratio to a model of MetalLB's allocator (scan from the pool's first address for
//! each Service) measured in the same run.
//!
//! The pool is 2001:db8::/110: there is no IPv4 /16 among the documentation ranges, and
//! 100k Services do not fit in a /16's 65,536 addresses anyway.

use criterion::{BenchmarkId, Criterion, Throughput};
use ironlb_alloc::{Allocator, Families, Family, Service};
use ironlb_bench::{Counting, config, peak_during};
use std::collections::HashSet;
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: Counting = Counting;

const POOL: &str = "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: big}\nspec: {addresses: ['2001:db8::/110']}\n";
const SIZES: [usize; 3] = [1_000, 10_000, 100_000];
/// Beyond this the quadratic model takes minutes; it is reported as not run.
const SCAN_LIMIT: usize = 10_000;

fn services(n: usize) -> Vec<Service> {
    (0..n)
        .map(|i| Service {
            key: format!("ns{}/svc{i:06}", i % 50),
            namespace: format!("ns{}", i % 50),
            labels: Default::default(),
            namespace_labels: Default::default(),
            families: Families::Single(Family::V6),
            requested: Vec::new(),
            pool: None,
            sharing_key: None,
            backend_key: String::new(),
            ports: Vec::new(),
        })
        .collect()
}

/// MetalLB's choice inside a pool: walk from the first address and take the first unused.
fn scan_model(n: usize) -> Vec<Ipv6Addr> {
    let first = u128::from("2001:db8::".parse::<Ipv6Addr>().unwrap());
    let mut used: HashSet<u128> = HashSet::new();
    (0..n)
        .map(|_| {
            let ip = (first..).find(|x| !used.contains(x)).unwrap();
            used.insert(ip);
            Ipv6Addr::from(ip)
        })
        .collect()
}

fn best_of<T>(runs: usize, mut f: impl FnMut() -> T) -> Duration {
    (0..runs)
        .map(|_| {
            let start = Instant::now();
            std::hint::black_box(f());
            start.elapsed()
        })
        .min()
        .unwrap()
}

fn summary() {
    let cfg = config(POOL);
    println!("\nallocation: ironlb vs a model of MetalLB's scan, same run, best of 3");
    println!(
        "{:>9} {:>12} {:>14} {:>12} {:>14} {:>10}",
        "services", "ironlb", "per service", "peak heap", "scan model", "ratio"
    );
    let mut per_service = Vec::new();
    for n in SIZES {
        let svcs = services(n);
        let ironlb = best_of(3, || Allocator::new(&cfg).reconcile(&svcs));
        let (_, peak) = peak_during(|| Allocator::new(&cfg).reconcile(&svcs));
        let (scan, ratio) = if n <= SCAN_LIMIT {
            let scan = best_of(3, || scan_model(n));
            (
                format!("{:.1} ms", scan.as_secs_f64() * 1e3),
                format!("{:.1}x", scan.as_secs_f64() / ironlb.as_secs_f64()),
            )
        } else {
            ("not run".to_string(), "-".to_string())
        };
        let us = ironlb.as_secs_f64() * 1e6 / n as f64;
        per_service.push(us);
        println!(
            "{n:>9} {:>9.2} ms {:>11.2} us {:>9.1} MB {scan:>14} {ratio:>10}",
            ironlb.as_secs_f64() * 1e3,
            us,
            peak as f64 / 1e6
        );
    }
    println!(
        "growth: time per Service 100k/1k = {:.2} (1.0 is linear; target: 10k in <= 50 ms)\n",
        per_service[2] / per_service[0]
    );
}

fn main() {
    summary();
    let cfg = config(POOL);
    let mut c = Criterion::default()
        .sample_size(10)
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let mut group = c.benchmark_group("allocate");
    for n in SIZES {
        let svcs = services(n);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &svcs, |b, svcs| {
            b.iter(|| Allocator::new(&cfg).reconcile(svcs))
        });
    }
    group.finish();
    c.final_summary();
}
