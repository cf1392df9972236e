//! The layer-2 election: who is eligible, and the properties every node relies on.

use config::resources::Labels;
use config::{L2Advertisement, Selector};
use ironlb_plan::election::{
    EXCLUDE_LABEL, Node, Preferences, candidates, owner, preferences, preferred_owner,
};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn ad(selectors: &[Labels]) -> L2Advertisement {
    L2Advertisement {
        name: "ad".into(),
        pools: Default::default(),
        node_selectors: selectors.iter().map(Selector::from_labels).collect(),
        interfaces: Default::default(),
        service_selectors: Vec::new(),
        preferred: Vec::new(),
    }
}

#[test]
fn eligibility_rules() {
    let plain = labels(&[]);
    let rack_a = labels(&[("rack", "a")]);
    let excluded = labels(&[(EXCLUDE_LABEL, "")]);
    let node = |name, labels, live, network_available| Node {
        name,
        labels,
        live,
        network_available,
    };
    let nodes = [
        node("n1", &rack_a, true, true),
        node("n2", &plain, true, true),
        node("dead", &plain, false, true),
        node("nonet", &plain, true, false),
        node("excl", &excluded, true, true),
    ];
    let all = ad(&[]);
    assert_eq!(
        candidates(&nodes, &[&all], None),
        ["n1", "n2"],
        "dead, network-less and excluded nodes never answer"
    );
    let rack = ad(std::slice::from_ref(&rack_a));
    assert_eq!(
        candidates(&nodes, &[&rack], None),
        ["n1"],
        "nodeSelectors restrict"
    );
    assert_eq!(
        candidates(&nodes, &[&rack, &all], None),
        ["n1", "n2"],
        "advertisements add up"
    );
    let local = BTreeSet::from(["n2".to_string()]);
    assert_eq!(
        candidates(&nodes, &[&all], Some(&local)),
        ["n2"],
        "externalTrafficPolicy Local: only nodes with a serving endpoint"
    );
    assert!(
        candidates(&nodes, &[], None).is_empty(),
        "no advertisement, no announcement"
    );
}

#[test]
fn matches_metallb_choice() {
    // The owner is the node whose SHA-256("<node>#<ip>") hex digest sorts first, exactly as a
    // MetalLB speaker computes it.
    let ip: IpAddr = "192.0.2.130".parse().unwrap();
    let nodes = ["node-a", "node-b", "node-c"];
    let mut ranked: Vec<(String, &str)> = nodes
        .iter()
        .map(|n| {
            use sha2::Digest;
            let digest = sha2::Sha256::digest(format!("{n}#{ip}").as_bytes());
            (digest.iter().map(|b| format!("{b:02x}")).collect(), *n)
        })
        .collect();
    ranked.sort();
    assert_eq!(owner(&ip, &nodes), Some(ranked[0].1));
}

fn names() -> impl Strategy<Value = Vec<String>> {
    prop::collection::btree_set("[a-z]{1,8}", 1..12).prop_map(|s| s.into_iter().collect())
}

proptest! {
    #[test]
    fn every_node_computes_the_same_owner(nodes in names(), ip in any::<u32>(), seed in any::<u64>()) {
        let ip = IpAddr::V4(Ipv4Addr::from(ip));
        let view: Vec<&str> = nodes.iter().map(String::as_str).collect();
        let mut shuffled = view.clone();
        shuffled.rotate_left((seed as usize) % view.len());
        shuffled.reverse();
        prop_assert_eq!(owner(&ip, &view), owner(&ip, &shuffled));
    }

    #[test]
    fn a_non_owner_joining_or_leaving_never_moves_an_ip(nodes in names(), newcomer in "[A-Z]{1,8}", ip in any::<u32>()) {
        let ip = IpAddr::V4(Ipv4Addr::from(ip));
        let view: Vec<&str> = nodes.iter().map(String::as_str).collect();
        let before = owner(&ip, &view).unwrap();
        for leaving in view.iter().filter(|n| **n != before) {
            let rest: Vec<&str> = view.iter().copied().filter(|n| n != leaving).collect();
            prop_assert_eq!(owner(&ip, &rest), Some(before));
        }
        let mut grown = view.clone();
        grown.push(&newcomer);
        let after = owner(&ip, &grown).unwrap();
        prop_assert!(after == before || after == newcomer.as_str(), "only the newcomer can take it over");
    }
}

#[test]
fn ips_spread_over_the_nodes() {
    for k in [2usize, 3, 5, 8] {
        let nodes: Vec<String> = (0..k).map(|i| format!("node-{i}")).collect();
        let view: Vec<&str> = nodes.iter().map(String::as_str).collect();
        let mut count: BTreeMap<&str, usize> = BTreeMap::new();
        let ips = 2000u32;
        for i in 0..ips {
            let ip = IpAddr::V4(Ipv4Addr::from(0xC000_0280 + i));
            *count.entry(owner(&ip, &view).unwrap()).or_default() += 1;
        }
        let fair = ips as f64 / k as f64;
        for (node, n) in &count {
            assert!(
                (*n as f64) > fair * 0.75 && (*n as f64) < fair * 1.25,
                "{k} nodes: {node} owns {n}, fair share {fair:.0}"
            );
        }
        assert_eq!(count.len(), k, "every node owns some");
    }
}

fn node<'a>(name: &'a str, labels: &'a Labels) -> Node<'a> {
    Node {
        name,
        labels,
        live: true,
        network_available: true,
    }
}

#[test]
fn preferred_nodes_win_and_the_hash_decides_among_equals() {
    let ip: IpAddr = "192.0.2.130".parse().unwrap();
    let (fast, slow, plain) = (
        labels(&[("disk", "ssd"), ("zone", "a")]),
        labels(&[("zone", "a")]),
        labels(&[]),
    );
    let nodes = [node("n1", &fast), node("n2", &slow), node("n3", &plain)];
    let mut preferring = ad(&[]);
    preferring.preferred = vec![
        (50, Selector::from_labels(&labels(&[("disk", "ssd")]))),
        (10, Selector::from_labels(&labels(&[("zone", "a")]))),
    ];
    let view = candidates(&nodes, &[&preferring], None);
    let scores = preferences(&nodes, &[&preferring]);
    assert_eq!(
        scores,
        Preferences::from([("n1", 60), ("n2", 10)]),
        "weights that match sum"
    );
    assert_eq!(preferred_owner(&ip, &view, &scores), Some("n1"));
    // Without the most preferred node, the next preference, then the hash among the rest.
    assert_eq!(preferred_owner(&ip, &["n2", "n3"], &scores), Some("n2"));
    let unpreferred = preferred_owner(&ip, &["n3"], &scores);
    assert_eq!(
        unpreferred,
        Some("n3"),
        "when no preferred node is eligible, the rest serve"
    );
    // Equal preferences: the hash, as without any.
    let even = Preferences::from([("n1", 5), ("n2", 5), ("n3", 5)]);
    assert_eq!(preferred_owner(&ip, &view, &even), owner(&ip, &view));
}

#[test]
fn a_preference_counts_only_on_nodes_its_advertisement_selects() {
    let (zone_a, zone_b) = (labels(&[("zone", "a")]), labels(&[("zone", "b")]));
    let nodes = [node("n1", &zone_a), node("n2", &zone_b)];
    let mut only_a = ad(std::slice::from_ref(&zone_a));
    only_a.preferred = vec![(90, Selector::from_labels(&labels(&[])))];
    let mut every = ad(&[]);
    every.preferred = vec![(1, Selector::from_labels(&zone_b))];
    let scores = preferences(&nodes, &[&only_a, &every]);
    assert_eq!(
        scores,
        Preferences::from([("n1", 90), ("n2", 1)]),
        "advertisements add up"
    );
}

fn weighted() -> impl Strategy<Value = Vec<(String, u64)>> {
    prop::collection::btree_map("[a-z]{1,8}", 0u64..4, 1..12).prop_map(|m| m.into_iter().collect())
}

proptest! {
    #[test]
    fn with_preferences_every_node_computes_the_same_owner(nodes in weighted(), ip in any::<u32>(), seed in any::<u64>()) {
        let ip = IpAddr::V4(Ipv4Addr::from(ip));
        let scores: Preferences = nodes.iter().filter(|(_, w)| *w > 0).map(|(n, w)| (n.as_str(), *w)).collect();
        let view: Vec<&str> = nodes.iter().map(|(n, _)| n.as_str()).collect();
        let mut shuffled = view.clone();
        shuffled.rotate_left((seed as usize) % view.len());
        shuffled.reverse();
        prop_assert_eq!(preferred_owner(&ip, &view, &scores), preferred_owner(&ip, &shuffled, &scores));
    }

    #[test]
    fn with_preferences_a_non_owner_leaving_never_moves_an_ip(nodes in weighted(), ip in any::<u32>()) {
        let ip = IpAddr::V4(Ipv4Addr::from(ip));
        let scores: Preferences = nodes.iter().filter(|(_, w)| *w > 0).map(|(n, w)| (n.as_str(), *w)).collect();
        let view: Vec<&str> = nodes.iter().map(|(n, _)| n.as_str()).collect();
        let before = preferred_owner(&ip, &view, &scores).unwrap();
        let top = scores.get(before).copied().unwrap_or(0);
        prop_assert!(view.iter().all(|n| scores.get(n).copied().unwrap_or(0) <= top), "the owner is among the most preferred");
        for leaving in view.iter().filter(|n| **n != before) {
            let rest: Vec<&str> = view.iter().copied().filter(|n| n != leaving).collect();
            prop_assert_eq!(preferred_owner(&ip, &rest, &scores), Some(before));
        }
    }
}
