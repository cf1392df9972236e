//! Which sessions a node runs, from the config: the peers its labels select, with their
//! timers, AS and identifier, and a BFD session for each addressed peer with a profile.

use ironlb_bgp::session::PeerAs;
use ironlb_bgp::speaker::Remote;
use ironlb_lab::fixtures::config;
use ironlb_plan::sessions::{Local, sessions};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

const PEERS: &str = "
apiVersion: metallb.io/v1beta1
kind: BFDProfile
metadata: {name: fast}
spec: {receiveInterval: 100, transmitInterval: 150, detectMultiplier: 4, echoMode: true, echoInterval: 40}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: gw}
spec: {myASN: 64513, peerASN: 64512, peerAddress: 192.0.2.1, holdTime: 9s, keepaliveTime: 3s, bfdProfile: fast}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: rack-a}
spec: {myASN: 64513, dynamicASN: external, peerAddress: 192.0.2.254, routerID: 192.0.2.99, ebgpMultiHop: true, bfdProfile: fast, nodeSelectors: [{matchLabels: {rack: a}}]}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: uplink}
spec: {myASN: 64513, peerASN: 64512, interface: eth1, nodeSelectors: [{matchLabels: {rack: b}}]}
";

fn local(labels: &[(&str, &str)]) -> Local {
    Local {
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        router_id: Ipv4Addr::new(192, 0, 2, 11),
    }
}

#[test]
fn a_node_runs_the_sessions_of_the_peers_that_select_it() {
    let c = config(PEERS);
    let names = |labels: &[(&str, &str)]| -> Vec<String> {
        sessions(&c, &local(labels))
            .bgp
            .iter()
            .map(|p| p.name.clone())
            .collect()
    };
    assert_eq!(names(&[]), ["gw"]);
    assert_eq!(names(&[("rack", "a")]), ["gw", "rack-a"]);
    assert_eq!(names(&[("rack", "b")]), ["gw", "uplink"]);
}

#[test]
fn each_session_carries_its_peers_settings() {
    let s = sessions(&config(PEERS), &local(&[("rack", "a")]));
    let gw = &s.bgp[0];
    assert_eq!(gw.remote, Remote::Address("192.0.2.1".parse().unwrap()));
    assert_eq!(
        (gw.hold_time, gw.keepalive),
        (9, Some(Duration::from_secs(3)))
    );
    assert_eq!(
        gw.router_id,
        Ipv4Addr::new(192, 0, 2, 11),
        "the node's identifier"
    );
    let rack = &s.bgp[1];
    assert_eq!(rack.peer_asn, PeerAs::External);
    assert_eq!(
        rack.router_id,
        Ipv4Addr::new(192, 0, 2, 99),
        "routerID wins"
    );
    let uplink = &sessions(&config(PEERS), &local(&[("rack", "b")])).bgp[1];
    assert_eq!(uplink.remote, Remote::Interface("eth1".into()));
}

#[test]
fn bfd_runs_for_addressed_peers_with_a_profile_multihop_where_the_peer_is() {
    let s = sessions(&config(PEERS), &local(&[("rack", "a")]));
    let ip = |a: &str| a.parse::<IpAddr>().unwrap();
    let gw = s.bfd[&ip("192.0.2.1")];
    assert_eq!(gw.timers.desired_min_tx, Duration::from_millis(150));
    assert_eq!(gw.timers.required_min_rx, Duration::from_millis(100));
    assert_eq!(gw.timers.detect_mult, 4);
    assert_eq!(gw.timers.echo, Some(Duration::from_millis(40)));
    assert_eq!(gw.multihop, None);
    assert_eq!(
        s.bfd[&ip("192.0.2.254")].multihop,
        Some(254),
        "the profile's minimum TTL"
    );
    let b = sessions(&config(PEERS), &local(&[("rack", "b")]));
    assert_eq!(
        b.bfd.len(),
        1,
        "the unnumbered peer has no profile and no address"
    );
}
