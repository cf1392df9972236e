//! What the allocator needs to know about a Service; the Kubernetes layer fills it in.

use std::collections::BTreeMap;
use std::net::IpAddr;

pub type Labels = BTreeMap<String, String>;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn of(ip: &IpAddr) -> Family {
        if ip.is_ipv4() { Family::V4 } else { Family::V6 }
    }

    pub fn other(self) -> Family {
        match self {
            Family::V4 => Family::V6,
            Family::V6 => Family::V4,
        }
    }
}

/// The families a Service wants, from `ipFamilyPolicy`, `ipFamilies` and `clusterIPs`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Families {
    /// `SingleStack` (or no policy): one IP of the cluster IP's family.
    Single(Family),
    /// `PreferDualStack`: both families when the Service has two cluster IPs and a pool has
    /// both; otherwise one, the primary family first.
    PreferDual { primary: Family, dual_cluster: bool },
    /// `RequireDualStack`: one IPv4 and one IPv6 from the same pool.
    RequireDual,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Port {
    pub protocol: Protocol,
    pub port: u16,
}

/// A `type: LoadBalancer` Service, as far as allocation is concerned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    /// `namespace/name`; also the deterministic processing order.
    pub key: String,
    pub namespace: String,
    pub labels: Labels,
    /// Labels of the Service's namespace, for `namespaceSelectors`.
    pub namespace_labels: Labels,
    pub families: Families,
    /// `spec.loadBalancerIP` or the `loadBalancerIPs` annotation.
    pub requested: Vec<IpAddr>,
    /// The `address-pool` annotation.
    pub pool: Option<String>,
    /// The `allow-shared-ip` annotation; `None` or empty means no sharing.
    pub sharing_key: Option<String>,
    /// "" under `externalTrafficPolicy: Cluster`; the sorted selector under `Local`, so
    /// Services sharing an IP under Local select the same pods.
    pub backend_key: String,
    pub ports: Vec<Port>,
}

impl Service {
    pub fn sharing(&self) -> Option<&str> {
        self.sharing_key.as_deref().filter(|k| !k.is_empty())
    }
}
