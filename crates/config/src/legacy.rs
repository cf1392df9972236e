//! The pre-0.13 ConfigMap: its own rules, and its conversion into the equivalent custom
//! resources, named as MetalLB's `configmaptocrs` names them. Problems in the converted
//! objects point back at the ConfigMap's own paths and spellings.

use crate::problem::{Problem, Report, report_duplicates};
use crate::resources::{Object, Origin, Resources};
use api::legacy::{LegacyConfig, LegacyNodeSelector, LegacyPeer, LegacyPool};
use api::v1beta1::{
    BFDProfileSpec, BGPAdvertisementSpec, CommunityAlias, CommunitySpec, IPAddressPoolSpec,
    L2AdvertisementSpec,
};
use api::v1beta2::BGPPeerSpec;
use api::{Duration, LabelSelector, LabelSelectorRequirement};
use std::time::Duration as StdDuration;

/// Converts the legacy configuration into custom resources. Legacy-only rules (protocol,
/// names, durations) are reported here; everything else is checked on the result.
pub fn to_resources(legacy: &Object<LegacyConfig>, out: &mut Vec<Problem>) -> Resources {
    let mut res = Resources::default();
    pools(legacy, out, &mut res);
    bfd_profiles(legacy, out, &mut res);
    for (i, peer) in legacy.spec.peers.iter().enumerate() {
        let path = format!("peers[{i}]");
        let spec = peer_spec(&mut report_at(legacy, &path, out), peer);
        res.peers
            .push(object(legacy, &path, &format!("peer{}", i + 1), spec));
    }
    communities(legacy, &mut res);
    res
}

/// `address-pools`: each an IPAddressPool and the advertisements its protocol implies.
fn pools(legacy: &Object<LegacyConfig>, out: &mut Vec<Problem>, res: &mut Resources) {
    let mut names = Vec::new();
    for (i, pool) in legacy.spec.address_pools.iter().enumerate() {
        let path = format!("address-pools[{i}]");
        let mut report = report_at(legacy, &path, out);
        let Some(name) = pool_name(&mut report, pool) else {
            continue;
        };
        res.pools.push(object(
            legacy,
            &path,
            &name,
            IPAddressPoolSpec {
                addresses: pool.addresses.clone(),
                auto_assign: pool.auto_assign,
                avoid_buggy_ips: pool.avoid_buggy_ips,
                service_allocation: None,
            },
        ));
        advertisements(legacy, (&path, &name), pool, &mut report, res);
        names.push(name);
    }
    report_duplicates(
        &mut report_at(legacy, "", out),
        "address-pools[].name",
        &names,
    );
}

/// The advertisements of the pool at `path` named `name`, numbered across the file as
/// configmaptocrs numbers them.
fn advertisements(
    legacy: &Object<LegacyConfig>,
    (path, name): (&str, &str),
    pool: &LegacyPool,
    report: &mut Report<'_>,
    res: &mut Resources,
) {
    let pools = vec![name.to_string()];
    let bgp_name =
        |res: &Resources| format!("bgpadvertisement{}", res.bgp_advertisements.len() + 1);
    match pool.protocol.as_deref() {
        None | Some("") => report.error(
            "protocol",
            "address pool is missing the protocol field",
            "set protocol: layer2 or protocol: bgp",
        ),
        Some("layer2") => {
            if !pool.bgp_advertisements.is_empty() {
                report.error(
                    "bgp-advertisements",
                    "bgp advertisements are not allowed on a layer2 pool",
                    "remove bgp-advertisements, or set protocol: bgp",
                );
            }
            let ad = format!("l2advertisement{}", res.l2_advertisements.len() + 1);
            res.l2_advertisements.push(object(
                legacy,
                path,
                &ad,
                L2AdvertisementSpec {
                    ip_address_pools: pools,
                    ..Default::default()
                },
            ));
        }
        Some("bgp") if pool.bgp_advertisements.is_empty() => {
            let ad = bgp_name(res);
            res.bgp_advertisements.push(object(
                legacy,
                path,
                &ad,
                BGPAdvertisementSpec {
                    ip_address_pools: pools,
                    ..Default::default()
                },
            ));
        }
        Some("bgp") => {
            for (k, ad) in pool.bgp_advertisements.iter().enumerate() {
                let name = bgp_name(res);
                res.bgp_advertisements.push(object(
                    legacy,
                    &format!("{path}.bgp-advertisements[{k}]"),
                    &name,
                    BGPAdvertisementSpec {
                        aggregation_length: ad.aggregation_length.or(Some(32)),
                        aggregation_length_v6: ad.aggregation_length_v6.or(Some(128)),
                        local_pref: ad.localpref.unwrap_or(0),
                        communities: ad.communities.clone(),
                        ip_address_pools: pools.clone(),
                        ..Default::default()
                    },
                ));
            }
        }
        Some(other) => report.error(
            "protocol",
            format!("unknown protocol {other:?}"),
            "use layer2 or bgp",
        ),
    }
}

fn bfd_profiles(legacy: &Object<LegacyConfig>, out: &mut Vec<Problem>, res: &mut Resources) {
    let mut names = Vec::new();
    for (i, profile) in legacy.spec.bfd_profiles.iter().enumerate() {
        let path = format!("bfd-profiles[{i}]");
        let Some(name) = sanitized(&mut report_at(legacy, &path, out), "name", &profile.name)
        else {
            continue;
        };
        names.push(name.clone());
        res.bfd_profiles.push(object(
            legacy,
            &path,
            &name,
            BFDProfileSpec {
                receive_interval: profile.receive_interval,
                transmit_interval: profile.transmit_interval,
                detect_multiplier: profile.detect_multiplier,
                echo_interval: profile.echo_interval,
                echo_mode: Some(profile.echo_mode.unwrap_or(false)),
                passive_mode: Some(profile.passive_mode.unwrap_or(false)),
                minimum_ttl: profile.minimum_ttl,
            },
        ));
    }
    report_duplicates(
        &mut report_at(legacy, "", out),
        "bfd-profiles[].name",
        &names,
    );
}

/// `bgp-communities`: one Community object, its aliases sorted by name as configmaptocrs
/// writes them (the BTreeMap's order).
fn communities(legacy: &Object<LegacyConfig>, res: &mut Resources) {
    if legacy.spec.bgp_communities.is_empty() {
        return;
    }
    let communities = legacy
        .spec
        .bgp_communities
        .iter()
        .map(|(name, value)| CommunityAlias {
            name: name.clone(),
            value: value.clone(),
        })
        .collect();
    res.communities.push(object(
        legacy,
        "bgp-communities",
        "communities",
        CommunitySpec { communities },
    ));
}

fn report_at<'a>(
    legacy: &Object<LegacyConfig>,
    path: &str,
    out: &'a mut Vec<Problem>,
) -> Report<'a> {
    Report::new(
        crate::problem::ObjectRef::new("ConfigMap", &legacy.name),
        legacy.source.clone(),
        out,
    )
    .in_legacy(path)
}

fn object<T>(legacy: &Object<LegacyConfig>, path: &str, name: &str, spec: T) -> Object<T> {
    Object {
        name: name.to_string(),
        labels: Default::default(),
        spec,
        source: legacy.source.clone(),
        origin: Origin::Legacy(path.to_string()),
    }
}

fn pool_name(report: &mut Report<'_>, pool: &LegacyPool) -> Option<String> {
    if pool.name.is_empty() {
        report.error(
            "name",
            "address pool is missing the name field",
            "give every pool a unique name",
        );
        return None;
    }
    sanitized(report, "name", &pool.name)
}

/// configmaptocrs' sanitising: a name that is not a DNS label is cut to 63 characters,
/// lower-cased, `_` becomes `-`, and everything before the first letter is dropped.
pub fn sanitize(name: &str) -> Option<String> {
    if is_dns_label(name) {
        return Some(name.to_string());
    }
    let cut: String = name
        .chars()
        .take(63)
        .collect::<String>()
        .to_lowercase()
        .replace('_', "-");
    let start = cut.find(|c: char| c.is_ascii_lowercase())?;
    Some(cut[start..].to_string())
}

fn is_dns_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    (2..=63).contains(&bytes.len())
        && bytes[0].is_ascii_lowercase()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[bytes.len() - 1] != b'-'
}

fn sanitized(report: &mut Report<'_>, field: &str, name: &str) -> Option<String> {
    let clean = sanitize(name);
    if clean.is_none() {
        report.error(
            field,
            format!("name {name:?} has no letter to build a resource name from"),
            "use a name that starts with a letter",
        );
    }
    clean
}

fn peer_spec(report: &mut Report<'_>, peer: &LegacyPeer) -> BGPPeerSpec {
    let mut duration = |field: &str, value: &Option<String>| {
        value.as_ref().and_then(|v| match v.parse::<Duration>() {
            Ok(d) => Some(d),
            Err(e) => {
                report.error(
                    field,
                    format!("invalid duration {v:?}: {e}"),
                    "write a Go duration such as 90s",
                );
                None
            }
        })
    };
    let hold_time =
        duration("hold-time", &peer.hold_time).or_else(|| Some(StdDuration::from_secs(90).into()));
    let keepalive_time = duration("keepalive-time", &peer.keepalive_time);
    BGPPeerSpec {
        my_asn: peer.my_asn,
        peer_asn: Some(peer.peer_asn),
        peer_address: (!peer.peer_address.is_empty()).then(|| peer.peer_address.clone()),
        source_address: peer.source_address.clone(),
        peer_port: peer.peer_port.or(Some(179)),
        hold_time,
        keepalive_time,
        router_id: peer.router_id.clone(),
        node_selectors: peer.node_selectors.iter().map(label_selector).collect(),
        password: peer.password.clone(),
        password_secret: Some(Default::default()),
        bfd_profile: peer.bfd_profile.as_deref().and_then(sanitize),
        ebgp_multi_hop: peer.ebgp_multihop,
        ..Default::default()
    }
}

fn label_selector(s: &LegacyNodeSelector) -> LabelSelector {
    LabelSelector {
        match_labels: (!s.match_labels.is_empty()).then(|| s.match_labels.clone()),
        match_expressions: (!s.match_expressions.is_empty()).then(|| {
            s.match_expressions
                .iter()
                .map(|e| LabelSelectorRequirement {
                    key: e.key.clone(),
                    operator: e.operator.clone(),
                    values: (!e.values.is_empty()).then(|| e.values.clone()),
                })
                .collect()
        }),
    }
}
