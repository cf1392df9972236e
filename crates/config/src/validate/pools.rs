//! IPAddressPool: address syntax, overlaps across every pool, and service allocation.

use super::report_for;
use crate::addresses::{bounds, parse_entry};
use crate::model::{Pool, ServiceAllocation};
use crate::problem::{Problem, report_duplicates};
use crate::resources::Resources;
use crate::selector;
use ipnet::IpNet;
use std::collections::BTreeMap;

const KIND: &str = "IPAddressPool";

pub fn validate(res: &Resources, out: &mut Vec<Problem>) -> BTreeMap<String, Pool> {
    let mut pools = BTreeMap::new();
    // (network, pool index, entry index) of every CIDR, to find overlaps in one sweep.
    let mut all: Vec<(IpNet, usize, usize)> = Vec::new();
    for (index, object) in res.pools.iter().enumerate() {
        let mut report = report_for(KIND, object, out);
        let spec = &object.spec;
        if spec.addresses.is_empty() {
            report.error(
                "spec.addresses",
                "pool has no prefixes defined",
                "list at least one CIDR or range, for example 192.0.2.128/25",
            );
        }
        let mut cidrs = Vec::new();
        for (i, entry) in spec.addresses.iter().enumerate() {
            match parse_entry(entry) {
                Ok(nets) => {
                    all.extend(nets.iter().map(|n| (*n, index, i)));
                    cidrs.extend(nets);
                }
                Err(message) => report.error(
                    &format!("spec.addresses[{i}]"),
                    message,
                    "write a CIDR such as 192.0.2.0/25 or a range such as 192.0.2.10-192.0.2.20",
                ),
            }
        }
        let allocation = spec.service_allocation.as_ref().map(|a| {
            if a.priority.is_some_and(|p| p < 0) {
                report.error(
                    "spec.serviceAllocation.priority",
                    "priority must not be negative",
                    "use a positive number (lower wins), or 0 for the lowest priority",
                );
            }
            report_duplicates(
                &mut report,
                "spec.serviceAllocation.namespaces",
                &a.namespaces,
            );
            ServiceAllocation {
                priority: a.priority.filter(|p| *p > 0).map(|p| p as u32),
                namespaces: a.namespaces.iter().cloned().collect(),
                namespace_selectors: selector::parse_list(
                    &mut report,
                    "spec.serviceAllocation.namespaceSelectors",
                    &a.namespace_selectors,
                ),
                service_selectors: selector::parse_list(
                    &mut report,
                    "spec.serviceAllocation.serviceSelectors",
                    &a.service_selectors,
                ),
            }
        });
        pools.insert(
            object.name.clone(),
            Pool {
                name: object.name.clone(),
                labels: object.labels.clone(),
                cidrs,
                auto_assign: spec.auto_assign.unwrap_or(true),
                avoid_buggy_ips: spec.avoid_buggy_ips,
                allocation,
            },
        );
    }
    report_overlaps(res, &mut all, out);
    pools
}

/// CIDRs nest or are disjoint, so after sorting by start (widest first) a CIDR overlaps an
/// earlier one exactly when it starts before the widest earlier one ends.
fn report_overlaps(res: &Resources, all: &mut [(IpNet, usize, usize)], out: &mut Vec<Problem>) {
    all.sort_by_key(|(net, pool, entry)| {
        (
            net.addr().is_ipv6(),
            bounds(net).0,
            net.prefix_len(),
            *pool,
            *entry,
        )
    });
    let mut cover: Option<(IpNet, usize)> = None;
    for &(net, pool, entry) in all.iter() {
        if let Some((earlier, earlier_pool)) = cover
            && earlier.addr().is_ipv6() == net.addr().is_ipv6()
            && bounds(&net).0 <= bounds(&earlier).1
        {
            let object = &res.pools[pool];
            report_for(KIND, object, out).error(
                &format!("spec.addresses[{entry}]"),
                format!(
                    "CIDR \"{net}\" in pool {:?} overlaps with already defined CIDR \"{earlier}\" in pool {:?}",
                    object.name, res.pools[earlier_pool].name
                ),
                "make the pools' address ranges disjoint",
            );
            continue;
        }
        cover = Some((net, pool));
    }
}
