//! What one reconcile pass wants written.

use api::v1beta1::{ConfigurationStateStatus, IPAddressPoolStatus};
use k8s_openapi::api::core::v1::Service;
use std::net::IpAddr;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Writes {
    pub services: Vec<ServiceWrite>,
    pub events: Vec<EventWrite>,
    pub pool_status: Vec<(String, IPAddressPoolStatus)>,
    /// Set when the ConfigurationState changed.
    pub config_state: Option<ConfigurationStateStatus>,
    pub metrics: Metrics,
}

impl Writes {
    /// How many objects applying it writes (a ConfigurationState is one object).
    pub fn writes(&self) -> usize {
        self.services.len()
            + self.events.len()
            + self.pool_status.len()
            + usize::from(self.config_state.is_some())
    }
}

/// Gauges, refreshed on every pass.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Metrics {
    pub config_stale: bool,
    pub config_loaded: bool,
    pub pools: Vec<PoolCounts>,
}

/// One pool's addresses, as (IPv4, IPv6), and the Services given IPs from it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PoolCounts {
    pub pool: String,
    pub in_use: (i64, i64),
    pub total: (i64, i64),
    pub services: i64,
}

/// A Service's new `status.loadBalancer.ingress` and pool annotation (empty and `None` clear them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceWrite {
    pub namespace: String,
    pub name: String,
    pub ips: Vec<IpAddr>,
    pub pool: Option<String>,
}

impl ServiceWrite {
    pub fn new(svc: &Service, ips: Vec<IpAddr>, pool: Option<String>) -> Self {
        ServiceWrite {
            namespace: svc.metadata.namespace.clone().unwrap_or_default(),
            name: svc.metadata.name.clone().unwrap_or_default(),
            ips,
            pool,
        }
    }
}

/// An Event about a Service, with MetalLB's reason and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventWrite {
    pub namespace: String,
    pub name: String,
    pub uid: Option<String>,
    pub warning: bool,
    pub reason: String,
    pub note: String,
}

impl EventWrite {
    fn new(svc: &Service, warning: bool, reason: &str, note: String) -> Self {
        EventWrite {
            namespace: svc.metadata.namespace.clone().unwrap_or_default(),
            name: svc.metadata.name.clone().unwrap_or_default(),
            uid: svc.metadata.uid.clone(),
            warning,
            reason: reason.to_string(),
            note,
        }
    }

    pub fn normal(svc: &Service, reason: &str, note: String) -> Self {
        Self::new(svc, false, reason, note)
    }

    pub fn warning(svc: &Service, reason: &str, note: String) -> Self {
        Self::new(svc, true, reason, note)
    }
}
