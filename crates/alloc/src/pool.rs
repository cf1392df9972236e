//! One pool's free addresses, per CIDR in spec order, and its capacity.

use crate::freeset::FreeSet;
use crate::service::{Family, Service};
use config::Pool;
use config::selector::any_matches;
use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A place in pool order: CIDRs in the order written, then ascending address.
pub type Position = (usize, u128);

#[derive(Clone, Debug)]
pub struct PoolState {
    pub def: Pool,
    free: Vec<FreeSet>,
}

impl PoolState {
    pub fn new(def: Pool) -> Self {
        let free = def
            .cidrs
            .iter()
            .map(|net| initial_free(net, def.avoid_buggy_ips))
            .collect();
        PoolState { def, free }
    }

    /// Where `ip` is in this pool, if it is a usable address of it.
    pub fn position(&self, ip: &IpAddr) -> Option<Position> {
        if self.def.avoid_buggy_ips && is_buggy(ip) {
            return None;
        }
        self.def
            .cidrs
            .iter()
            .position(|net| net.contains(ip))
            .map(|i| (i, to_int(ip)))
    }

    /// The lowest free address of `family`, in pool order.
    pub fn first_free(&self, family: Family) -> Option<(Position, IpAddr)> {
        self.def
            .cidrs
            .iter()
            .zip(&self.free)
            .enumerate()
            .find_map(|(i, (net, free))| {
                (Family::of(&net.addr()) == family)
                    .then(|| free.first())
                    .flatten()
                    .map(|x| ((i, x), from_int(family, x)))
            })
    }

    pub fn take(&mut self, ip: &IpAddr) {
        if let Some((i, x)) = self.position(ip) {
            self.free[i].take(x);
        }
    }

    pub fn give(&mut self, ip: &IpAddr) {
        if let Some((i, x)) = self.position(ip) {
            self.free[i].give(x);
        }
    }

    /// Whether the pool's `serviceAllocation` lets this Service use it.
    pub fn allows(&self, svc: &Service) -> bool {
        let Some(a) = &self.def.allocation else {
            return true;
        };
        let any_namespace = a.namespaces.is_empty() && a.namespace_selectors.is_empty();
        let namespace_ok = any_namespace
            || a.namespaces.contains(&svc.namespace)
            || a.namespace_selectors
                .iter()
                .any(|s| s.matches(&svc.namespace_labels));
        namespace_ok && any_matches(&a.service_selectors, &svc.labels)
    }

    /// Usable addresses per family, as MetalLB counts them (IPv6 CIDRs with 62 or more host
    /// bits count as `i64::MAX`).
    pub fn capacity(&self, family: Family) -> i64 {
        self.def
            .cidrs
            .iter()
            .filter(|net| Family::of(&net.addr()) == family)
            .map(|net| cidr_capacity(net, self.def.avoid_buggy_ips))
            .fold(0i64, i64::saturating_add)
    }
}

fn cidr_capacity(net: &IpNet, avoid_buggy: bool) -> i64 {
    let host_bits = u32::from(net.max_prefix_len() - net.prefix_len());
    if host_bits >= 62 {
        return i64::MAX;
    }
    let size = 1i64 << host_bits;
    match net {
        IpNet::V4(n) if avoid_buggy && n.prefix_len() <= 24 => size - 2 * (size / 256),
        IpNet::V4(n) if avoid_buggy => {
            let ends = [n.network(), n.broadcast()];
            let buggy = ends.iter().filter(|a| is_buggy(&IpAddr::V4(**a))).count() as i64;
            size - if n.network() == n.broadcast() {
                buggy.min(1)
            } else {
                buggy
            }
        }
        _ => size,
    }
}

/// `.0` and `.255` IPv4 addresses, which some old clients and routers mishandle.
pub fn is_buggy(ip: &IpAddr) -> bool {
    matches!(ip, IpAddr::V4(a) if matches!(a.octets()[3], 0 | 255))
}

fn initial_free(net: &IpNet, avoid_buggy: bool) -> FreeSet {
    let (start, end) = (to_int(&net.network()), to_int(&net.broadcast()));
    let mut free = FreeSet::full(start, end);
    if avoid_buggy && net.addr().is_ipv4() {
        // At most two addresses per /24 inside the CIDR.
        let mut block = start & !0xff;
        while block <= end {
            for x in [block, block | 0xff] {
                if (start..=end).contains(&x) {
                    free.take(x);
                }
            }
            block += 0x100;
        }
    }
    free
}

pub fn to_int(ip: &IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(*a)),
        IpAddr::V6(a) => u128::from(*a),
    }
}

fn from_int(family: Family, x: u128) -> IpAddr {
    match family {
        Family::V4 => IpAddr::V4(Ipv4Addr::from(x as u32)),
        Family::V6 => IpAddr::V6(Ipv6Addr::from(x)),
    }
}
