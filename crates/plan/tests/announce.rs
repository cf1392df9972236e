//! One case per announcement rule: which node announces which prefix to which peer with
//! which attributes, and which node claims a layer-2 IP.

use config::{Community, Config};
use ironlb_lab::fixtures::config;
use ironlb_plan::announce::{Endpoint, Node, Plan, Service, plan};
use ironlb_plan::election::{EXCLUDE_LABEL, owner};
use std::collections::BTreeSet;

const BGP: &str = "
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: routed}
spec: {addresses: [198.51.100.0/24, '2001:db8:100::/120']}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: gw}
spec: {myASN: 64513, peerASN: 64512, peerAddress: 192.0.2.1}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: rack-a-gw}
spec: {myASN: 64513, peerASN: 64512, peerAddress: 192.0.2.254, nodeSelectors: [{matchLabels: {rack: a}}]}
";

fn with(extra: &str) -> Config {
    config(&format!("{BGP}---\n{extra}"))
}

fn node(name: &str, labels: &[(&str, &str)]) -> Node {
    Node {
        name: name.into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        live: true,
        network_available: true,
        sees_this: true,
        answering: BTreeSet::new(),
    }
}

fn ready(node: &str) -> Endpoint {
    Endpoint {
        node: Some(node.into()),
        ready: Some(true),
        serving: Some(true),
        has_address: true,
    }
}

fn svc(ips: &[&str], endpoints: Vec<Endpoint>) -> Service {
    Service {
        key: ironlb_plan::ServiceKey::new("default", "web"),
        labels: Default::default(),
        ips: ips.iter().map(|i| i.parse().unwrap()).collect(),
        pool: "routed".into(),
        local_traffic: false,
        shared: false,
        endpoints,
        uid: None,
    }
}

/// The one reason the plan gives for not announcing its one Service.
fn reason(p: &Plan) -> &'static str {
    p.skipped
        .values()
        .flatten()
        .next()
        .copied()
        .unwrap_or_default()
}

fn prefixes(p: &Plan, peer: &str) -> Vec<String> {
    p.bgp
        .get(peer)
        .map(|r| r.keys().map(ToString::to_string).collect())
        .unwrap_or_default()
}

const AD: &str = "apiVersion: metallb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {name: ad}\nspec: {ipAddressPools: [routed]}\n";

#[test]
fn cluster_traffic_every_eligible_node_announces_while_some_endpoint_serves() {
    let cfg = with(AD);
    let s = svc(&["198.51.100.32", "2001:db8:100::32"], vec![ready("n2")]);
    for n in ["n1", "n2"] {
        let p = plan(&cfg, &node(n, &[]), &[], std::slice::from_ref(&s));
        assert_eq!(
            prefixes(&p, "gw"),
            ["198.51.100.32/32", "2001:db8:100::32/128"],
            "{n}"
        );
        assert!(
            prefixes(&p, "rack-a-gw").is_empty(),
            "the rack-a peer is not for this node"
        );
    }
}

#[test]
fn no_serving_endpoint_means_no_route_at_all() {
    let cfg = with(AD);
    let not_ready = Endpoint {
        ready: Some(false),
        serving: Some(false),
        ..ready("n1")
    };
    let p = plan(
        &cfg,
        &node("n1", &[]),
        &[],
        &[svc(&["198.51.100.32"], vec![not_ready])],
    );
    assert!(p.bgp.is_empty());
    assert_eq!(reason(&p), "noEndpoints");
}

#[test]
fn terminating_but_serving_endpoints_count_and_address_less_ones_do_not() {
    let cfg = with(AD);
    let terminating = Endpoint {
        ready: Some(false),
        serving: Some(true),
        ..ready("n1")
    };
    assert_eq!(
        prefixes(
            &plan(
                &cfg,
                &node("n1", &[]),
                &[],
                &[svc(&["198.51.100.32"], vec![terminating])]
            ),
            "gw"
        )
        .len(),
        1
    );
    let no_address = Endpoint {
        has_address: false,
        ..ready("n1")
    };
    assert!(
        plan(
            &cfg,
            &node("n1", &[]),
            &[],
            &[svc(&["198.51.100.32"], vec![no_address])]
        )
        .bgp
        .is_empty()
    );
}

#[test]
fn local_traffic_only_nodes_with_a_local_endpoint_announce() {
    let cfg = with(AD);
    let s = Service {
        local_traffic: true,
        ..svc(&["198.51.100.32"], vec![ready("n2")])
    };
    assert!(
        plan(&cfg, &node("n1", &[]), &[], std::slice::from_ref(&s))
            .bgp
            .is_empty()
    );
    assert_eq!(
        reason(&plan(&cfg, &node("n1", &[]), &[], std::slice::from_ref(&s))),
        "noLocalEndpoints"
    );
    assert_eq!(
        prefixes(&plan(&cfg, &node("n2", &[]), &[], &[s]), "gw").len(),
        1
    );
}

#[test]
fn excluded_and_network_less_nodes_never_announce() {
    let cfg = with(AD);
    let s = svc(&["198.51.100.32"], vec![ready("n2")]);
    assert!(
        plan(
            &cfg,
            &node("n1", &[(EXCLUDE_LABEL, "")]),
            &[],
            std::slice::from_ref(&s)
        )
        .bgp
        .is_empty()
    );
    let down = Node {
        network_available: false,
        ..node("n1", &[])
    };
    assert!(plan(&cfg, &down, &[], &[s]).bgp.is_empty());
}

#[test]
fn aggregation_communities_local_pref_and_merging() {
    let cfg = with(
        "apiVersion: metallb.io/v1beta1\nkind: Community\nmetadata: {name: c}\nspec: {communities: [{name: no-export, value: '65535:65281'}]}\n---\napiVersion: metallb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {name: agg}\nspec: {ipAddressPools: [routed], aggregationLength: 24, localPref: 50, communities: [no-export]}\n---\napiVersion: metallb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {name: tag}\nspec: {ipAddressPools: [routed], aggregationLength: 24, localPref: 50, communities: ['64512:100']}\n",
    );
    let p = plan(
        &cfg,
        &node("n1", &[]),
        &[],
        &[svc(&["198.51.100.32"], vec![ready("n1")])],
    );
    let route = &p.bgp["gw"][&"198.51.100.0/24".parse::<ipnet::IpNet>().unwrap()];
    assert_eq!(
        route.communities,
        BTreeSet::from([
            Community::Standard(65535, 65281),
            Community::Standard(64512, 100)
        ]),
        "communities add up"
    );
    assert_eq!(route.local_pref, Some(50));
}

#[test]
fn peers_and_node_selectors_of_advertisements_and_peers() {
    let only_rack = with(
        "apiVersion: metallb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {name: ad}\nspec: {ipAddressPools: [routed], peers: [rack-a-gw]}\n",
    );
    let s = svc(&["198.51.100.32"], vec![ready("n1")]);
    let rack_a = plan(
        &only_rack,
        &node("n1", &[("rack", "a")]),
        &[],
        std::slice::from_ref(&s),
    );
    assert!(
        prefixes(&rack_a, "gw").is_empty(),
        "the advertisement names only rack-a-gw"
    );
    assert_eq!(prefixes(&rack_a, "rack-a-gw").len(), 1);
    assert!(
        plan(&only_rack, &node("n2", &[]), &[], std::slice::from_ref(&s))
            .bgp
            .is_empty(),
        "n2 has no session to rack-a-gw"
    );
    let selected = with(
        "apiVersion: metallb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {name: ad}\nspec: {ipAddressPools: [routed], nodeSelectors: [{matchLabels: {edge: 'yes'}}]}\n",
    );
    assert!(
        plan(&selected, &node("n1", &[]), &[], std::slice::from_ref(&s))
            .bgp
            .is_empty()
    );
    assert_eq!(
        prefixes(
            &plan(&selected, &node("n1", &[("edge", "yes")]), &[], &[s]),
            "gw"
        )
        .len(),
        1
    );
}

#[test]
fn service_selectors_pick_services() {
    let cfg = with(
        "apiVersion: metallb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {name: ad}\nspec: {ipAddressPools: [routed], serviceSelectors: [{matchLabels: {expose: bgp}}]}\n",
    );
    let plain = svc(&["198.51.100.32"], vec![ready("n1")]);
    assert!(
        plan(&cfg, &node("n1", &[]), &[], std::slice::from_ref(&plain))
            .bgp
            .is_empty()
    );
    let mut labelled = plain;
    labelled.labels.insert("expose".into(), "bgp".into());
    assert_eq!(
        prefixes(&plan(&cfg, &node("n1", &[]), &[], &[labelled]), "gw").len(),
        1
    );
}

const L2: &str = "
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: lan}
spec: {addresses: [192.0.2.128/25, '2001:db8::100/120']}
";

fn l2(extra: &str) -> Config {
    config(&format!("{L2}---\n{extra}"))
}

fn lan_svc(endpoints: Vec<Endpoint>) -> Service {
    Service {
        pool: "lan".into(),
        ..svc(&["192.0.2.130", "2001:db8::130"], endpoints)
    }
}

fn owners(cfg: &Config, nodes: &[Node], s: &Service) -> Vec<String> {
    nodes
        .iter()
        .filter(|n| !plan(cfg, n, nodes, std::slice::from_ref(s)).l2.is_empty())
        .map(|n| n.name.clone())
        .collect()
}

const L2AD: &str = "apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: l2}\nspec: {ipAddressPools: [lan]}\n";

#[test]
fn exactly_one_node_claims_both_families_of_a_service() {
    let cfg = l2(L2AD);
    let nodes = [node("n1", &[]), node("n2", &[]), node("n3", &[])];
    let s = lan_svc(vec![ready("n3")]);
    let who = owners(&cfg, &nodes, &s);
    assert_eq!(who.len(), 1, "{who:?}");
    let p = plan(
        &cfg,
        nodes.iter().find(|n| n.name == who[0]).unwrap(),
        &nodes,
        &[s],
    );
    assert_eq!(
        p.l2.len(),
        2,
        "both IPs of the dual-stack Service go to the same node"
    );
}

#[test]
fn layer2_rules() {
    let nodes = [node("n1", &[]), node("n2", &[]), node("n3", &[])];
    let cfg = l2(L2AD);
    assert!(
        owners(&cfg, &nodes, &lan_svc(vec![])).is_empty(),
        "no endpoint: nobody answers"
    );
    let local = Service {
        local_traffic: true,
        ..lan_svc(vec![ready("n2")])
    };
    assert_eq!(
        owners(&cfg, &nodes, &local),
        ["n2"],
        "Local: the owner hosts an endpoint"
    );
    let dead = [
        Node {
            live: false,
            ..node("n2", &[])
        },
        node("n1", &[]),
        node("n3", &[]),
    ];
    assert!(
        owners(&cfg, &dead, &local).is_empty(),
        "the only endpoint node is dead"
    );
    let selected = l2(
        "apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: l2}\nspec: {ipAddressPools: [lan], nodeSelectors: [{matchLabels: {lb: 'yes'}}]}\n",
    );
    let labelled = [
        node("n1", &[]),
        node("n2", &[("lb", "yes")]),
        node("n3", &[]),
    ];
    assert_eq!(
        owners(&selected, &labelled, &lan_svc(vec![ready("n1")])),
        ["n2"]
    );
    let shared = l2(
        "apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: l2}\nspec: {ipAddressPools: [lan], serviceSelectors: [{matchLabels: {app: web}}]}\n",
    );
    let mut sharing = Service {
        shared: true,
        ..lan_svc(vec![ready("n1")])
    };
    sharing.labels.insert("app".into(), "web".into());
    let p = plan(&shared, &nodes[0], &nodes, &[sharing]);
    assert!(p.l2.is_empty() && reason(&p) == "sharedIPWithServiceSelector");
}

#[test]
fn interfaces_are_the_union_of_the_advertisements_for_this_node() {
    let cfg = l2(
        "apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: a}\nspec: {ipAddressPools: [lan], interfaces: [eth0]}\n---\napiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: b}\nspec: {ipAddressPools: [lan], interfaces: [eth1]}\n",
    );
    let only = [node("n1", &[])];
    let p = plan(&cfg, &only[0], &only, &[lan_svc(vec![ready("n1")])]);
    let ifs: Vec<&String> = p.l2.values().next().unwrap().iter().collect();
    assert_eq!(ifs, ["eth0", "eth1"]);
    let all = l2(L2AD);
    let p = plan(&all, &only[0], &only, &[lan_svc(vec![ready("n1")])]);
    assert!(
        p.l2.values().all(BTreeSet::is_empty),
        "an advertisement without interfaces means all"
    );
}

#[test]
fn each_announced_service_records_its_peers_and_layer2_interfaces() {
    let s = svc(&["198.51.100.32"], vec![ready("n1")]);
    let p = plan(
        &with(AD),
        &node("n1", &[("rack", "a")]),
        &[],
        std::slice::from_ref(&s),
    );
    let a = &p.announced[&ironlb_plan::ServiceKey::new("default", "web")];
    assert_eq!(a.peers, ["gw", "rack-a-gw"], "sorted");
    assert_eq!(a.layer2, None);
    let skipped = plan(
        &with(AD),
        &node("n1", &[]),
        &[],
        &[svc(&["198.51.100.32"], vec![])],
    );
    assert!(skipped.announced.is_empty(), "no endpoint, no record");

    let cfg = l2(
        "apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: a}\nspec: {ipAddressPools: [lan], interfaces: [eth0]}\n",
    );
    let only = [node("n1", &[])];
    let p = plan(&cfg, &only[0], &only, &[lan_svc(vec![ready("n1")])]);
    let key = lan_svc(vec![]).key;
    assert_eq!(
        p.announced[&key].layer2,
        Some(BTreeSet::from(["eth0".to_string()]))
    );
    assert!(p.announced[&key].peers.is_empty());
}

/// A node that joins takes an IP only once the node that answers for it now (the owner
/// without the newcomer) has seen it join: until then both would answer.
#[test]
fn a_newcomer_takes_an_ip_over_only_once_the_runner_up_has_seen_it() {
    let cfg = l2(L2AD);
    let s = lan_svc(vec![ready("n1")]);
    let names = ["n1", "n2", "n3"];
    let all: Vec<&str> = names.to_vec();
    let ip = s.ips[0];
    let newcomer = owner(&ip, &all).unwrap();
    let others: Vec<&str> = all.iter().copied().filter(|n| *n != newcomer).collect();
    let runner_up = owner(&ip, &others).unwrap();
    let bystander = others.iter().copied().find(|n| *n != runner_up).unwrap();
    let seen_by = |seeing: &[&str]| -> Vec<Node> {
        names
            .iter()
            .map(|n| Node {
                sees_this: *n == newcomer || seeing.contains(n),
                ..node(n, &[])
            })
            .collect()
    };
    let claims = |nodes: &[Node]| {
        let this = nodes.iter().find(|n| n.name == newcomer).unwrap();
        plan(&cfg, this, nodes, std::slice::from_ref(&s))
    };
    let waiting = claims(&seen_by(&[bystander]));
    assert!(waiting.l2.is_empty(), "{newcomer} waits for {runner_up}");
    assert_eq!(reason(&waiting), "waitingForHandover");
    assert_eq!(
        claims(&seen_by(&[runner_up])).l2.len(),
        2,
        "the bystander {bystander} does not hold the handover up"
    );
    let mut holding = seen_by(&[]);
    for n in holding.iter_mut().filter(|n| n.name == newcomer) {
        n.answering = s.ips.iter().copied().collect();
    }
    assert_eq!(
        claims(&holding).l2.len(),
        2,
        "an IP already answered here stays, whoever has seen this node"
    );

    // Taking over from the owner when it dies waits for nothing: the dead node has seen
    // nobody, and the next in line answers at once.
    let heirs_view: Vec<Node> = names
        .iter()
        .map(|n| Node {
            live: *n != newcomer,
            sees_this: *n != newcomer,
            ..node(n, &[])
        })
        .collect();
    let heir = heirs_view.iter().find(|n| n.name == runner_up).unwrap();
    assert_eq!(
        plan(&cfg, heir, &heirs_view, std::slice::from_ref(&s))
            .l2
            .len(),
        2
    );
}
