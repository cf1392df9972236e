//! Layer-2 failover with real processes: the owner's agent is killed with SIGKILL (or its
//! interface goes down), and the client's own kernel must reach the new owner within a
//! second, with never two responders once the switch is done.

use ironlb_bench::l2lab::L2Lab;
use ironlb_lab::ready;
use std::time::Duration;

#[test]
fn killing_the_owner_moves_the_ip_within_a_second_and_it_comes_back_by_the_hash() {
    if !ready(&["ip", "ping", "arping"]) {
        return;
    }
    let mut lab = L2Lab::new("l2fo", env!("CARGO_BIN_EXE_l2_agent"));
    let all = [0, 1, 2];
    let (old, took) = lab.failover(&all);
    eprintln!("failover after SIGKILL: the client moved in {took:?}");
    assert!(
        took < Duration::from_secs(1),
        "the client moved after {took:?}"
    );
    let rest: Vec<usize> = all.iter().copied().filter(|i| *i != old).collect();
    let new_mac = lab.macs[L2Lab::owner_among(&rest)].clone();
    let replies = lab.responders();
    assert!(
        !replies.is_empty() && replies.iter().all(|m| *m == new_mac),
        "one responder once the switch is done: {replies:?}"
    );

    // The old owner comes back: the IP goes where the hash says (back to it), and stays.
    lab.start(old);
    let owner = lab.settled(&all);
    assert_eq!(owner, lab.macs[L2Lab::owner_among(&all)]);
    std::thread::sleep(Duration::from_secs(2));
    let replies = lab.responders();
    assert!(
        replies.iter().all(|m| *m == owner),
        "no flapping after the return: {replies:?}"
    );
}

#[test]
fn the_owner_losing_its_interface_moves_the_ip() {
    if !ready(&["ip", "ping"]) {
        return;
    }
    let lab = L2Lab::new("l2if", env!("CARGO_BIN_EXE_l2_agent"));
    let all = [0, 1, 2];
    lab.settled(&all);
    let old = L2Lab::owner_among(&all);
    lab.link(old, false);
    let rest: Vec<usize> = all.iter().copied().filter(|i| *i != old).collect();
    let moved = lab.settled(&rest);
    assert_eq!(moved, lab.macs[L2Lab::owner_among(&rest)]);
}
