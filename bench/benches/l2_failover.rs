//! Layer-2 failover: the owner's `ironlb standalone` is killed with SIGKILL, ten times, and
//! each time the time until the client's own kernel has the new owner's MAC, for the
//! service's IPv4 and IPv6 address, is measured.
//! Prints median and maximum against the 1 s target. Needs root, iproute2 and ping; prints
//! SKIPPED otherwise.
//! (MetalLB, by its users' reports, takes seconds to minutes; it cannot run here to be
//! measured beside us.)

use ironlb_bench::ironlb_binary;
use ironlb_lab::l2::L2Lab;
use std::time::Duration;

const KILLS: usize = 10;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if !ironlb_lab::ready(&["ip", "ping"]) {
        println!("SKIPPED l2_failover: needs root, iproute2 and ping");
        return;
    }
    let mut lab = L2Lab::new("l2bench", &ironlb_binary());
    let all = [0, 1, 2];
    // Per family: the times until the client's kernel had the new MAC.
    let mut times: [Vec<Duration>; 2] = Default::default();
    for _ in 0..KILLS {
        let (old, took) = lab.failover(&all);
        for (family, t) in times.iter_mut().zip(took) {
            family.push(t);
        }
        lab.start(old);
        lab.settled(&all);
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "\nlayer-2 failover after SIGKILL, {KILLS} kills, until the client's kernel has the new MAC"
    );
    for (family, mut t) in ["IPv4 (ARP)", "IPv6 (NDP)"].into_iter().zip(times) {
        t.sort();
        println!(
            "{family}: median {:.0} ms, max {:.0} ms, min {:.0} ms (target: at most 1000 ms)",
            ms(t[KILLS / 2]),
            ms(t[KILLS - 1]),
            ms(t[0])
        );
    }
}
