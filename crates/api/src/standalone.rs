//! `ironlb.dev/v1alpha1` StandaloneService: a service on hosts without Kubernetes, read from
//! the same file as the metallb.io resources. Not a CRD; only `ironlb standalone` reads it.

use crate::Duration;
use serde::{Deserialize, Serialize};

/// The API group of ironlb's own (non-MetalLB) objects.
pub const GROUP: &str = "ironlb.dev";
pub const VERSION: &str = "v1alpha1";
pub const KIND: &str = "StandaloneService";

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StandaloneServiceSpec {
    /// The IPs to announce, as MetalLB's `loadBalancerIPs` annotation; empty means allocate.
    #[serde(default, rename = "loadBalancerIPs")]
    pub load_balancer_ips: Vec<String>,
    /// The pool to allocate from (MetalLB's `address-pool` annotation).
    #[serde(default)]
    pub pool: Option<String>,
    #[serde(default)]
    pub ports: Vec<ServicePort>,
    /// Without a check the service is always announced.
    #[serde(default)]
    pub health_check: Option<HealthCheck>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct ServicePort {
    pub port: u16,
    /// TCP (default), UDP or SCTP.
    #[serde(default)]
    pub protocol: Option<String>,
}

/// Exactly one of `tcp`, `http` and `exec`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheck {
    #[serde(default)]
    pub tcp: Option<TcpCheck>,
    #[serde(default)]
    pub http: Option<HttpCheck>,
    #[serde(default)]
    pub exec: Option<ExecCheck>,
    /// Time between checks; default 1s.
    #[serde(default)]
    pub interval: Option<Duration>,
    /// How long one check may take; default the interval.
    #[serde(default)]
    pub timeout: Option<Duration>,
}

/// Passes when a TCP connection to `host:port` opens.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct TcpCheck {
    /// Default 127.0.0.1.
    #[serde(default)]
    pub host: Option<String>,
    pub port: u16,
}

/// Passes on a 2xx or 3xx answer to `GET http://host:port/path`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct HttpCheck {
    /// Default 127.0.0.1.
    #[serde(default)]
    pub host: Option<String>,
    pub port: u16,
    /// Default `/`.
    #[serde(default)]
    pub path: Option<String>,
}

/// Passes when the command exits 0. It runs with `IRONLB_NODE` and `IRONLB_SERVICE` set.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct ExecCheck {
    /// The program and its arguments; no shell unless you name one.
    pub command: Vec<String>,
}
