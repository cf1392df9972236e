//! Service annotations ironlb reads and writes, under MetalLB's names so nothing changes
//! for users. The old `metallb.universe.tf/` prefix is still read, with a deprecation event.

pub const PREFIX: &str = "metallb.io/";
pub const OLD_PREFIX: &str = "metallb.universe.tf/";

pub const ADDRESS_POOL: &str = "address-pool";
pub const LOAD_BALANCER_IPS: &str = "loadBalancerIPs";
pub const ALLOW_SHARED_IP: &str = "allow-shared-ip";
/// Written by the controller: the pool the IP came from.
pub const ALLOCATED_FROM_POOL: &str = "metallb.io/ip-allocated-from-pool";

use std::collections::BTreeMap;

/// The value of `metallb.io/<name>`, else of the old prefix.
pub fn get<'a>(annotations: &'a BTreeMap<String, String>, name: &str) -> Option<&'a str> {
    annotations
        .get(&format!("{PREFIX}{name}"))
        .or_else(|| annotations.get(&format!("{OLD_PREFIX}{name}")))
        .map(String::as_str)
}
