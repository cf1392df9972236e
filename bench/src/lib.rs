//! Shared pieces of the benchmarks: a counting allocator for peak memory, a process's
//! memory and CPU time, and fixtures.

pub mod mrt;
pub mod receiver;

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Wraps the system allocator to track live and peak heap bytes.
pub struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwards the caller's layout to the system allocator unchanged.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was returned by `alloc` above with this same layout.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

/// Runs `f` and returns its result with the peak heap growth it caused, in bytes.
pub fn peak_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let out = f();
    (out, PEAK.load(Ordering::Relaxed).saturating_sub(base))
}

pub use ironlb_lab::fixtures::config;

/// A process's resident memory, in kB (0 once it is gone).
pub fn rss_kb(pid: u32) -> u64 {
    memory_kb(pid, "VmRSS:")
}

/// The most resident memory a process has had, in kB (0 once it is gone).
pub fn peak_rss_kb(pid: u32) -> u64 {
    memory_kb(pid, "VmHWM:")
}

fn memory_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix(field)
                    .map(|v| v.trim().trim_end_matches(" kB").trim().parse().unwrap_or(0))
            })
        })
        .unwrap_or(0)
}

/// The CPU time (user and system) a process has used so far.
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command's closing parenthesis, which may itself hold spaces:
    // utime and stime are the 12th and 13th of them, in clock ticks.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: u64 = after
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|t| t.parse::<u64>().ok())
        .sum();
    Duration::from_millis(ticks * 1000 / CLOCK_TICKS_PER_SECOND)
}

/// `sysconf(_SC_CLK_TCK)`, 100 on every Linux this runs on.
const CLOCK_TICKS_PER_SECOND: u64 = 100;

/// `count` distinct /128 host routes inside 2001:db8:1::/48 (documentation space).
pub fn host_routes(count: usize) -> Vec<ipnet::IpNet> {
    let base = u128::from(
        "2001:db8:1::"
            .parse::<std::net::Ipv6Addr>()
            .expect("a valid address"),
    );
    (0..count as u128)
        .map(|i| {
            ipnet::IpNet::V6(
                ipnet::Ipv6Net::new(std::net::Ipv6Addr::from(base + i + 1), 128)
                    .expect("/128 is valid"),
            )
        })
        .collect()
}

/// The `ironlb` binary in release mode, beside the benchmark's own. A benchmark cannot
/// depend on another package's binary, so it asks cargo to build it.
pub fn ironlb_binary() -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    // Cargo runs the benchmark with its package's variables set; build scripts (ring's)
    // watch some of them, so passed on they would rebuild half the tree on every run.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        let package = [
            "CARGO_PKG_",
            "CARGO_MANIFEST_",
            "CARGO_CRATE_",
            "CARGO_BIN_",
        ];
        if package.iter().any(|p| name.starts_with(p))
            || name == "CARGO_PRIMARY_PACKAGE"
            || name == "OUT_DIR"
        {
            build.env_remove(name.as_ref());
        }
    }
    let built = build
        .args([
            "build",
            "--release",
            "--locked",
            "-p",
            "ironlb",
            "--bin",
            "ironlb",
        ])
        .status()
        .expect("running cargo");
    assert!(built.success(), "building ironlb failed");
    // target/release/deps/<benchmark> → target/release/ironlb
    let exe = std::env::current_exe().expect("the benchmark's own path");
    exe.parent()
        .and_then(Path::parent)
        .expect("the benchmark runs from target/release/deps")
        .join("ironlb")
}
