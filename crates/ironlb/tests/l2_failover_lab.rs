//! Layer-2 failover between three `ironlb standalone` hosts: the owner's speaker is killed
//! with SIGKILL (or its interface goes down), and the client's own kernel must reach the
//! new owner within a second, with never two responders once the switch is done.

use ironlb_lab::capture::Capture;
use ironlb_lab::l2::{L2Lab, VIP, VIP6, vip_answers};
use ironlb_lab::ready;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// How long after the new owner's first answer a switch counts as done: the old owner may
/// still answer a request that was already on its way, and nothing after that.
const SWITCH: Duration = Duration::from_millis(200);

#[test]
fn killing_the_owner_moves_the_ip_within_a_second_and_it_comes_back_by_the_hash() {
    if !ready(&["ip", "ping", "arping", "tcpdump"]) {
        return;
    }
    let mut lab = L2Lab::new("l2fo", Path::new(env!("CARGO_BIN_EXE_ironlb")));
    let all = [0, 1, 2];
    lab.settled(&all);
    // The client asks 20 times a second throughout, so a node that still answered after
    // losing the IP would show in the capture.
    let capture = Capture::start(&lab.client, "eth0", "arp");
    lab.client.spawn(
        "arping",
        &["-q", "-W", "0.05", "-c", "2000", "-i", "eth0", VIP],
    );

    let (old, [v4, v6]) = lab.failover(&all);
    eprintln!("failover after SIGKILL: the client moved in {v4:?} (ARP) and {v6:?} (NDP)");
    assert!(
        v4 < Duration::from_secs(1) && v6 < Duration::from_secs(1),
        "the client moved after {v4:?} (ARP) and {v6:?} (NDP)"
    );
    let rest: Vec<usize> = all.iter().copied().filter(|i| *i != old).collect();
    let interim = lab.macs[L2Lab::owner_among(&rest)].clone();

    // The old owner comes back: the IP goes where the hash says (back to it), and stays.
    lab.start(old);
    let owner = lab.settled(&all);
    assert_eq!(owner, lab.macs[L2Lab::owner_among(&all)]);
    std::thread::sleep(Duration::from_secs(2));

    let answers = vip_answers(&capture.stop());
    let overlaps = one_owner_at_a_time(&answers, &[&owner, &interim, &owner]);
    eprintln!(
        "{} answers captured; the previous owner answered at most {overlaps:?} into each switch",
        answers.len()
    );
}

/// A host that starts after the others, and owns the VIP by the hash, takes it only once
/// the host answering for it has seen it join and let go: at no moment do both answer.
#[test]
fn a_host_that_starts_after_the_others_takes_its_ip_without_two_answering() {
    if !ready(&["ip", "ping", "arping", "tcpdump"]) {
        return;
    }
    let newcomer = L2Lab::owner_among(&[0, 1, 2]);
    let first: Vec<usize> = [0, 1, 2].into_iter().filter(|i| *i != newcomer).collect();
    let mut lab = L2Lab::with("l2jn", Path::new(env!("CARGO_BIN_EXE_ironlb")), &first);
    let interim = lab.macs[L2Lab::owner_among(&first)].clone();
    let capture = Capture::start(&lab.client, "eth0", "arp");
    // A hundred requests a second: a second answerer for even 20 ms would show.
    lab.client.spawn(
        "arping",
        &["-q", "-W", "0.01", "-c", "600", "-i", "eth0", VIP],
    );
    std::thread::sleep(Duration::from_millis(500));
    lab.start(newcomer);
    let owner = lab.settled(&[0, 1, 2]);
    std::thread::sleep(Duration::from_secs(1));
    let answers = vip_answers(&capture.stop());
    let overlaps = one_owner_at_a_time(&answers, &[&interim, &owner]);
    eprintln!(
        "join: {} answers captured; the interim owner answered {overlaps:?} into the newcomer's turn",
        answers.len()
    );
    assert_eq!(
        overlaps,
        [Duration::ZERO],
        "both answered after the newcomer began:\n{}",
        lab.logs()
    );
}

/// Checks that the VIP's answers in the capture come from `owners` in turn: each one from
/// its first answer on, and once `SWITCH` has passed, from it alone until the next takes
/// over. Returns how long the previous owner went on answering after each switch.
fn one_owner_at_a_time(answers: &[(SystemTime, String)], owners: &[&str]) -> Vec<Duration> {
    let t0 = answers.first().expect("the capture holds answers").0;
    let listing = || {
        answers
            .iter()
            .map(|(at, mac)| format!("{:>6.3}s {mac}", since(t0, *at).as_secs_f64()))
            .collect::<Vec<_>>()
            .join("\n")
    };
    // Where each owner's turn begins: at the start for the first, then its first answer
    // after the previous turn began.
    let mut starts = vec![0];
    for owner in &owners[1..] {
        let from = *starts.last().unwrap();
        let start = (from..answers.len())
            .find(|i| answers[*i].1 == *owner)
            .unwrap_or_else(|| panic!("{owner} never answered after the switch:\n{}", listing()));
        starts.push(start);
    }
    starts.push(answers.len());
    let mut overlaps = Vec::new();
    for (turn, owner) in owners.iter().enumerate() {
        let (from, to) = (starts[turn], starts[turn + 1]);
        let began = answers[from].0;
        let mut overlap = Duration::ZERO;
        for (at, mac) in &answers[from..to] {
            if mac == owner {
                continue;
            }
            let after = since(began, *at);
            assert!(
                turn > 0 && after < SWITCH,
                "{mac} answered {after:?} into {owner}'s turn:\n{}",
                listing()
            );
            overlap = overlap.max(after);
        }
        if turn > 0 {
            overlaps.push(overlap);
        }
    }
    overlaps
}

fn since(earlier: SystemTime, later: SystemTime) -> Duration {
    later.duration_since(earlier).unwrap_or_default()
}

#[test]
fn the_owner_losing_its_interface_moves_the_ip() {
    if !ready(&["ip", "ping"]) {
        return;
    }
    let lab = L2Lab::new("l2if", Path::new(env!("CARGO_BIN_EXE_ironlb")));
    let all = [0, 1, 2];
    lab.settled(&all);
    let old = L2Lab::owner_among(&all);
    lab.link(old, false);
    let rest: Vec<usize> = all.iter().copied().filter(|i| *i != old).collect();
    let moved = lab.settled(&rest);
    assert_eq!(moved, lab.macs[L2Lab::owner_among(&rest)]);
}

/// `preferredNodeSelectors`: the preferred host answers although the hash picks another;
/// when it dies the hash picks among the others, and when it is back it answers again. At
/// each stage one host alone answers the client's ARP and NDP requests.
#[test]
fn the_preferred_node_answers_and_another_takes_over_when_it_dies() {
    if !ready(&["ip", "ping", "arping", "ndisc6"]) {
        return;
    }
    let all = [0, 1, 2];
    // Not the hash's pick, so that only the preference can put the IP there.
    let preferred = (L2Lab::owner_among(&all) + 1) % 3;
    let ironlb = Path::new(env!("CARGO_BIN_EXE_ironlb"));
    let mut lab = L2Lab::preferring("l2pf", ironlb, preferred);
    only_answerer(&lab, preferred);
    lab.kill(preferred);
    let rest: Vec<usize> = all.into_iter().filter(|i| *i != preferred).collect();
    lab.settled(&rest);
    only_answerer(&lab, L2Lab::owner_among(&rest));
    lab.start(preferred);
    lab.answered_by(preferred);
    only_answerer(&lab, preferred);
}

/// Every answer to the client's ARP requests for VIP, and its Neighbor Solicitation for
/// VIP6, comes from host `i`.
fn only_answerer(lab: &L2Lab, i: usize) {
    let want = &lab.macs[i];
    let arp = lab.client.arping("eth0", VIP);
    let ndp = lab.client.ndisc6("eth0", VIP6);
    for (what, macs) in [("ARP", arp), ("NDP", ndp)] {
        assert!(
            !macs.is_empty() && macs.iter().all(|mac| mac == want),
            "{what} answers {macs:?}, not only {want}:\n{}",
            lab.logs()
        );
    }
}
