//! Pool address entries: CIDRs (host bits masked) and `A-B` ranges, turned into CIDRs.

use ipnet::{IpNet, Ipv4Net, Ipv4Subnets, Ipv6Net, Ipv6Subnets};
use std::net::IpAddr;

/// The CIDRs of one `addresses` entry, or why it cannot be read.
pub fn parse_entry(entry: &str) -> Result<Vec<IpNet>, String> {
    // As in MetalLB: a range's addresses may be padded, a CIDR may not.
    if let Some((start, end)) = entry.split_once('-') {
        return parse_range(start.trim(), end.trim());
    }
    if entry.trim() != entry {
        return Err(format!(
            "{entry:?} has spaces around it, which MetalLB refuses; remove them"
        ));
    }
    if entry.contains('/') {
        let net: IpNet = entry
            .parse()
            .map_err(|_| format!("{entry:?} is not a valid CIDR"))?;
        return Ok(vec![net.trunc()]);
    }
    if entry.parse::<IpAddr>().is_ok() {
        let len = if entry.contains(':') { 128 } else { 32 };
        return Err(format!(
            "{entry:?} is a single IP without a prefix length; write it as {entry}/{len}"
        ));
    }
    Err(format!(
        "{entry:?} is neither a CIDR (192.0.2.0/24) nor a range (192.0.2.10-192.0.2.20)"
    ))
}

fn parse_range(start: &str, end: &str) -> Result<Vec<IpNet>, String> {
    let parse = |s: &str| {
        s.parse::<IpAddr>()
            .map_err(|_| format!("{s:?} in range is not a valid IP address"))
    };
    match (parse(start)?, parse(end)?) {
        (IpAddr::V4(a), IpAddr::V4(b)) if a <= b => {
            Ok(Ipv4Subnets::new(a, b, 0).map(IpNet::V4).collect())
        }
        (IpAddr::V6(a), IpAddr::V6(b)) if a <= b => {
            Ok(Ipv6Subnets::new(a, b, 0).map(IpNet::V6).collect())
        }
        (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => Err(format!(
            "range {start}-{end} starts after it ends; swap the two addresses"
        )),
        _ => Err(format!(
            "range {start}-{end} mixes IPv4 and IPv6; use one family per range"
        )),
    }
}

/// The first and last address of a network as integers, to compare across entries.
pub fn bounds(net: &IpNet) -> (u128, u128) {
    match net {
        IpNet::V4(n) => (
            u32::from(n.network()) as u128,
            u32::from(n.broadcast()) as u128,
        ),
        IpNet::V6(n) => (u128::from(n.network()), u128::from(n.broadcast())),
    }
}

/// Whether two networks share any address.
pub fn overlap(a: &IpNet, b: &IpNet) -> bool {
    match (a, b) {
        (IpNet::V4(x), IpNet::V4(y)) => v4_overlap(x, y),
        (IpNet::V6(x), IpNet::V6(y)) => v6_overlap(x, y),
        _ => false,
    }
}

fn v4_overlap(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

fn v6_overlap(a: &Ipv6Net, b: &Ipv6Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}
