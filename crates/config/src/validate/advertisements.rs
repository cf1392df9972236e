//! L2Advertisement and BGPAdvertisement: which pools they select, and the BGP attributes.

use super::report_for;
use crate::addresses::parse_entry;
use crate::community::{Community, CommunityError};
use crate::model::{BgpAdvertisement, L2Advertisement, Peer, Pool};
use crate::problem::{Problem, Report, report_duplicates};
use crate::resources::{Object, Resources};
use crate::selector::{self, Selector, any_matches};
use api::LabelSelector;
use api::v1beta1::BGPAdvertisementSpec;
use std::collections::{BTreeMap, BTreeSet};

/// MetalLB's limit, so that one path's attributes stay well inside a BGP message.
const MAX_COMMUNITIES: usize = 63;

pub fn validate_l2(
    res: &Resources,
    pools: &BTreeMap<String, Pool>,
    out: &mut Vec<Problem>,
) -> Vec<L2Advertisement> {
    let mut ads = Vec::new();
    for object in &res.l2_advertisements {
        let mut report = report_for("L2Advertisement", object, out);
        let s = &object.spec;
        let selected = select_pools(
            &mut report,
            &s.ip_address_pools,
            &s.ip_address_pool_selectors,
            pools,
        );
        let preferred = preferences(&mut report, &s.preferred_node_selectors);
        report_duplicates(&mut report, "spec.interfaces", &s.interfaces);
        let ad = L2Advertisement {
            name: object.name.clone(),
            pools: selected,
            node_selectors: selector::parse_list(
                &mut report,
                "spec.nodeSelectors",
                &s.node_selectors,
            ),
            interfaces: s.interfaces.iter().cloned().collect(),
            service_selectors: selector::parse_list(
                &mut report,
                "spec.serviceSelectors",
                &s.service_selectors,
            ),
            preferred,
        };
        if report.errors() == 0 {
            ads.push(ad);
        }
    }
    ads
}

/// `preferredNodeSelectors`, each a weight from 1 to 100 (as MetalLB's schema bounds it) and
/// a selector.
fn preferences(
    report: &mut Report<'_>,
    list: &[api::v1beta1::PreferredNodeSelector],
) -> Vec<(u32, Selector)> {
    list.iter()
        .enumerate()
        .filter_map(|(i, p)| {
            let field = format!("spec.preferredNodeSelectors[{i}]");
            let selector = selector::parse(report, &format!("{field}.preference"), &p.preference);
            match u32::try_from(p.weight) {
                Ok(weight @ 1..=100) => Some((weight, selector)),
                _ => {
                    report.error(
                        &format!("{field}.weight"),
                        format!("weight {} is outside 1-100", p.weight),
                        "give each preference a weight from 1 to 100; higher wins",
                    );
                    None
                }
            }
        })
        .collect()
}

pub struct BgpInputs<'a> {
    pub pools: &'a BTreeMap<String, Pool>,
    pub peers: &'a BTreeMap<String, Peer>,
    pub aliases: &'a BTreeMap<String, Community>,
}

pub fn validate_bgp(
    res: &Resources,
    inputs: &BgpInputs<'_>,
    out: &mut Vec<Problem>,
) -> Vec<BgpAdvertisement> {
    let mut ads: Vec<(BgpAdvertisement, usize)> = Vec::new();
    for (index, object) in res.bgp_advertisements.iter().enumerate() {
        let mut report = report_for("BGPAdvertisement", object, out);
        let ad = bgp_advertisement(res, object, inputs, &mut report);
        if let Some((_, twin)) = ads.iter().find(|(a, _)| same_spec(a, &ad)) {
            report.error(
                "spec",
                format!(
                    "duplicate definition of bgpadvertisements: it is equal to BGPAdvertisement {:?}",
                    res.bgp_advertisements[*twin].name
                ),
                "remove one of the two identical advertisements",
            );
            continue;
        }
        if report.errors() == 0 {
            ads.push((ad, index));
        }
    }
    report_local_pref_conflicts(res, &ads, out);
    ads.into_iter().map(|(a, _)| a).collect()
}

/// One BGPAdvertisement as read, every problem of its own reported.
fn bgp_advertisement(
    res: &Resources,
    object: &Object<BGPAdvertisementSpec>,
    inputs: &BgpInputs<'_>,
    report: &mut Report<'_>,
) -> BgpAdvertisement {
    let s = &object.spec;
    let pools = select_pools(
        report,
        &s.ip_address_pools,
        &s.ip_address_pool_selectors,
        inputs.pools,
    );
    let v4 = length(report, "spec.aggregationLength", s.aggregation_length, 32);
    let v6 = length(
        report,
        "spec.aggregationLengthV6",
        s.aggregation_length_v6,
        128,
    );
    for pool in &pools {
        check_aggregation(report, res, pool, v4, v6);
    }
    let service_selectors =
        selector::parse_list(report, "spec.serviceSelectors", &s.service_selectors);
    if !service_selectors.is_empty() && (v4 != 32 || v6 != 128) {
        report.error(
            "spec.serviceSelectors",
            "serviceSelectors and aggregationLength are mutually exclusive: a per-Service advertisement cannot be aggregated",
            "remove serviceSelectors, or set aggregationLength 32 and aggregationLengthV6 128",
        );
    }
    check_peers(report, res, s, inputs.peers);
    BgpAdvertisement {
        name: object.name.clone(),
        pools,
        aggregation_length: v4,
        aggregation_length_v6: v6,
        local_pref: s.local_pref,
        communities: communities(report, &s.communities, inputs.aliases),
        node_selectors: selector::parse_list(report, "spec.nodeSelectors", &s.node_selectors),
        peers: s.peers.iter().cloned().collect(),
        service_selectors,
    }
}

/// The peers an advertisement names: no repeats, each one known, and LOCAL_PREF only
/// where some reached peer is iBGP.
fn check_peers(
    report: &mut Report<'_>,
    res: &Resources,
    s: &BGPAdvertisementSpec,
    peers: &BTreeMap<String, Peer>,
) {
    report_duplicates(report, "spec.peers", &s.peers);
    for (i, name) in s.peers.iter().enumerate() {
        if !peers.contains_key(name) && !res.peers.iter().any(|p| &p.name == name) {
            report.warning(
                &format!("spec.peers[{i}]"),
                format!("BGPPeer {name:?} does not exist; nothing is announced to it"),
                "correct the name, or create the BGPPeer",
            );
        }
    }
    let targets: Vec<&Peer> = peers
        .values()
        .filter(|p| s.peers.is_empty() || s.peers.contains(&p.name))
        .collect();
    if s.local_pref != 0 && !targets.is_empty() && targets.iter().all(|p| !p.is_ibgp()) {
        report.warning(
            "spec.localPref",
            "every peer this advertisement reaches is eBGP, and LOCAL_PREF is only sent on iBGP sessions",
            "remove localPref, or peer with the same AS number on both sides (iBGP)",
        );
    }
}

fn same_spec(a: &BgpAdvertisement, b: &BgpAdvertisement) -> bool {
    BgpAdvertisement {
        name: String::new(),
        ..a.clone()
    } == BgpAdvertisement {
        name: String::new(),
        ..b.clone()
    }
}

/// The union of pools named and pools whose labels match; both empty means every pool.
fn select_pools(
    report: &mut Report<'_>,
    names: &[String],
    selectors: &[LabelSelector],
    pools: &BTreeMap<String, Pool>,
) -> BTreeSet<String> {
    report_duplicates(report, "spec.ipAddressPools", names);
    let selectors = selector::parse_list(report, "spec.ipAddressPoolSelectors", selectors);
    if names.is_empty() && selectors.is_empty() {
        return pools.keys().cloned().collect();
    }
    for (i, name) in names.iter().enumerate() {
        if !pools.contains_key(name) {
            report.warning(
                &format!("spec.ipAddressPools[{i}]"),
                format!(
                    "IPAddressPool {name:?} does not exist; the advertisement does not apply to it"
                ),
                "correct the name, or create the pool",
            );
        }
    }
    pools
        .values()
        .filter(|p| names.contains(&p.name) || selectors.iter().any(|s| s.matches(&p.labels)))
        .map(|p| p.name.clone())
        .collect()
}

fn length(report: &mut Report<'_>, field: &str, value: Option<i32>, max: u8) -> u8 {
    match value {
        None => max,
        Some(v) if (1..=i32::from(max)).contains(&v) => v as u8,
        Some(v) => {
            report.error(
                field,
                format!("invalid aggregation length {v}: it must be between 1 and {max}"),
                &format!("use a prefix length from 1 to {max}; {max} announces each IP alone"),
            );
            max
        }
    }
}

/// An aggregate must not be shorter than a pool entry's own prefix, or it would cover
/// addresses outside the pool.
fn check_aggregation(report: &mut Report<'_>, res: &Resources, pool: &str, v4: u8, v6: u8) {
    let Some(object) = res.pools.iter().find(|p| p.name == pool) else {
        return;
    };
    for entry in &object.spec.addresses {
        let Ok(nets) = parse_entry(entry) else {
            continue;
        };
        for (is_v6, aggregation, field) in [
            (false, v4, "spec.aggregationLength"),
            (true, v6, "spec.aggregationLengthV6"),
        ] {
            let shortest = nets
                .iter()
                .filter(|n| n.addr().is_ipv6() == is_v6)
                .map(|n| n.prefix_len())
                .min();
            if let Some(prefix) = shortest
                && aggregation < prefix
            {
                report.error(
                    field,
                    format!(
                        "invalid aggregation length {aggregation}: prefix {prefix} in pool {pool:?} is more specific than the aggregation length for addresses {entry}"
                    ),
                    &format!("use an aggregation length of at least {prefix}"),
                );
            }
        }
    }
}

fn communities(
    report: &mut Report<'_>,
    values: &[String],
    aliases: &BTreeMap<String, Community>,
) -> BTreeSet<Community> {
    report_duplicates(report, "spec.communities", values);
    if values.len() > MAX_COMMUNITIES {
        report.error(
            "spec.communities",
            format!(
                "{} communities given; at most {MAX_COMMUNITIES} fit on one prefix",
                values.len()
            ),
            "remove communities, or split the pool",
        );
    }
    let mut set = BTreeSet::new();
    for (i, value) in values.iter().enumerate() {
        let field = format!("spec.communities[{i}]");
        match value.parse::<Community>() {
            Ok(c) => {
                set.insert(c);
            }
            Err(CommunityError::Invalid(message)) => report.error(
                &field,
                message,
                "write AA:NN, large:GLOBAL:LOCAL1:LOCAL2, or the name of a Community alias",
            ),
            Err(CommunityError::NotACommunity) => match aliases.get(value) {
                Some(c) => {
                    set.insert(*c);
                }
                None => report.transient(
                    &field,
                    format!("{value:?} is neither a community nor a known Community alias"),
                    "define the alias in a Community resource, or write AA:NN",
                ),
            },
        }
    }
    set
}

/// Two advertisements of one pool may set different LOCAL_PREFs only when they can never
/// describe the same route to the same peer from the same node.
fn report_local_pref_conflicts(
    res: &Resources,
    ads: &[(BgpAdvertisement, usize)],
    out: &mut Vec<Problem>,
) {
    for (j, (b, b_index)) in ads.iter().enumerate() {
        for (a, _) in &ads[..j] {
            if a.local_pref == b.local_pref
                || !a.service_selectors.is_empty()
                || !b.service_selectors.is_empty()
            {
                continue;
            }
            // Different aggregation lengths make different routes, in the families the
            // pool has.
            let same_route = |pool: &&String| {
                let (v4, v6) = families(res, pool);
                (v4 && a.aggregation_length == b.aggregation_length)
                    || (v6 && a.aggregation_length_v6 == b.aggregation_length_v6)
            };
            let Some(pool) = a.pools.intersection(&b.pools).find(same_route) else {
                continue;
            };
            let peers_disjoint =
                !a.peers.is_empty() && !b.peers.is_empty() && a.peers.is_disjoint(&b.peers);
            if peers_disjoint || nodes_disjoint(res, &a.node_selectors, &b.node_selectors) {
                continue;
            }
            report_for("BGPAdvertisement", &res.bgp_advertisements[*b_index], out).error(
                "spec.localPref",
                format!(
                    "invalid local preference {}: BGPAdvertisement {:?} announces pool {pool:?} with local preference {} to the same peers from the same nodes",
                    b.local_pref, a.name, a.local_pref
                ),
                "use one localPref, or separate the advertisements by peers, nodes or aggregation length",
            );
        }
    }
}

/// Whether pool `name` holds IPv4 and IPv6 addresses (both when it is unknown).
fn families(res: &Resources, name: &str) -> (bool, bool) {
    let Some(pool) = res.pools.iter().find(|p| p.name == name) else {
        return (true, true);
    };
    let nets: Vec<_> = pool
        .spec
        .addresses
        .iter()
        .filter_map(|e| parse_entry(e).ok())
        .flatten()
        .collect();
    (
        nets.iter().any(|n| n.addr().is_ipv4()),
        nets.iter().any(|n| n.addr().is_ipv6()),
    )
}

/// With no nodes known (offline validation) the node sets are assumed to overlap.
fn nodes_disjoint(res: &Resources, a: &[Selector], b: &[Selector]) -> bool {
    !res.nodes.is_empty()
        && !res
            .nodes
            .values()
            .any(|labels| any_matches(a, labels) && any_matches(b, labels))
}
