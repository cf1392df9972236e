//! The controller's decisions, pure: from a snapshot of the cluster to the writes that make
//! Service statuses, events, pool counters and ConfigurationState match. The runtime
//! (`run.rs`) feeds it snapshots and hands its plans to the writer.

pub mod run;
pub mod writes;

pub use writes::{EventWrite, PoolCounts, ServiceWrite, Writes};

use crate::service_view::{self, View};
use api::v1beta1::{ConfigurationStateStatus, IPAddressPoolStatus};
use config::{LastValid, Resources};
use ironlb_alloc::{AllocError, Allocator, Assignment, Families, Family, Labels};
use k8s_openapi::api::core::v1::Service;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

/// Everything the controller reads, at one moment.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Shared with the watch's store: a snapshot of ten thousand Services copies none of them.
    pub services: Vec<Arc<Service>>,
    pub namespaces: BTreeMap<String, Labels>,
    pub resources: Resources,
    /// Problems found reading the resources (a malformed ConfigMap), before validation.
    pub problems: Vec<config::Problem>,
}

/// The controller's memory between snapshots. A new leader starts from `new()` and rebuilds
/// it from Service statuses, as MetalLB does after a restart.
#[derive(Debug)]
pub struct Controller {
    lb_class: Option<String>,
    allocator: Allocator,
    config: LastValid,
    restored: bool,
    /// The failure last reported per Service, so a pending Service gets one event, not one
    /// per pass.
    failures: HashMap<String, String>,
    pool_status: BTreeMap<String, IPAddressPoolStatus>,
    config_state: Option<ConfigurationStateStatus>,
}

impl Controller {
    pub fn new(lb_class: Option<String>) -> Self {
        Controller {
            lb_class,
            allocator: Allocator::default(),
            config: LastValid::default(),
            restored: false,
            failures: HashMap::new(),
            pool_status: BTreeMap::new(),
            config_state: None,
        }
    }

    /// After a failed write, the next pass writes pool and configuration status again.
    pub fn forget_written_status(&mut self) {
        self.pool_status.clear();
        self.config_state = None;
    }

    pub fn reconcile(&mut self, snap: &Snapshot) -> Writes {
        let mut writes = Writes::default();
        self.take_config(snap, &mut writes);
        let Some(config) = self.config.config() else {
            return writes;
        };
        let pools: Vec<String> = config.pools.keys().cloned().collect();
        let views = views(snap, self.lb_class.as_deref());
        if !self.restored {
            self.restore(&views);
        }
        let handled: Vec<ironlb_alloc::Service> = views
            .iter()
            .filter_map(|(_, v)| match v {
                View::Handled { service, .. } => Some((**service).clone()),
                _ => None,
            })
            .collect();
        let served: HashSet<String> = self
            .allocator
            .assignments()
            .map(|(key, _)| key.to_string())
            .collect();
        let mut results = self.allocator.reconcile(&handled);
        for (svc, view) in &views {
            let key = service_view::key(svc);
            let Some(desired) = self.decide(svc, view, &key, &mut results, &served, &mut writes)
            else {
                continue;
            };
            service_writes(&mut writes, svc, view, desired);
        }
        let objects: BTreeSet<&str> = snap
            .resources
            .pools
            .iter()
            .filter(|p| p.origin == config::Origin::Resource)
            .map(|p| p.name.as_str())
            .collect();
        self.pool_counters(&pools, &objects, &mut writes);
        writes
    }

    /// What `svc` should hold now (`Some(None)`: nothing), from its view and the
    /// allocator's result, reporting a refusal or a failure; None leaves it as it is.
    fn decide(
        &mut self,
        svc: &Service,
        view: &View,
        key: &str,
        results: &mut BTreeMap<String, Result<Assignment, AllocError>>,
        served: &HashSet<String>,
        writes: &mut Writes,
    ) -> Option<Option<Assignment>> {
        match view {
            View::Ignored => {
                // A Service that stopped being ours loses what we gave it: one this
                // controller served until its class changed, or one that is no longer a
                // LoadBalancer at all. A Service of another class that it never served
                // belongs to another controller (the annotation is MetalLB's, whoever
                // wrote it) and is left alone.
                let not_load_balancer =
                    svc.spec.as_ref().and_then(|s| s.type_.as_deref()) != Some("LoadBalancer");
                let ours = served.contains(key) || not_load_balancer;
                (service_view::allocated_pool(svc).is_some() && ours).then_some(None)
            }
            View::Refused(refusal) => {
                self.report_failure(writes, svc, key, refusal.reason, refusal.message.clone());
                Some(None)
            }
            View::Handled { .. } => match results.remove(key)? {
                Ok(assignment) => {
                    self.failures.remove(key);
                    Some(Some(assignment))
                }
                Err(e) => {
                    self.report_failure(
                        writes,
                        svc,
                        key,
                        "AllocationFailed",
                        format!("Failed to allocate IP for {key:?}: {e}"),
                    );
                    Some(None)
                }
            },
        }
    }

    /// Validates the configuration; a valid one replaces the last, an invalid one is reported
    /// and the last valid one keeps running.
    fn take_config(&mut self, snap: &Snapshot, writes: &mut Writes) {
        let replaced = self
            .config
            .take(config::build_read(&snap.resources, snap.problems.clone()));
        writes.metrics.config_stale = self.config.stale();
        writes.metrics.config_loaded = self.config.config().is_some();
        if replaced {
            self.clear_orphans(snap, writes);
        }
        let state = self.config.state();
        if self.config_state.as_ref() != Some(&state) {
            writes.config_state = Some(state.clone());
            self.config_state = Some(state);
        }
    }

    /// Frees the IPs the new configuration puts in no pool, with MetalLB's event on each
    /// Service that held one.
    fn clear_orphans(&mut self, snap: &Snapshot, writes: &mut Writes) {
        let Some(config) = self.config.config() else {
            return;
        };
        for orphan in self.allocator.set_config(config) {
            let Some(svc) = snap
                .services
                .iter()
                .find(|s| service_view::key(s) == orphan.key)
            else {
                continue;
            };
            let ips: Vec<String> = orphan.ips.iter().map(IpAddr::to_string).collect();
            writes.events.push(EventWrite::normal(
                svc,
                "ClearAssignment",
                format!(
                    "current IP for {:?} not allowed by config, will attempt for new IP assignment: {} is in no pool",
                    orphan.key,
                    ips.join(", ")
                ),
            ));
        }
    }

    /// After a restart, Services keep the IPs in their status before anything is allocated;
    /// those holding more IPs go first, as in MetalLB.
    fn restore(&mut self, views: &[(&Service, View)]) {
        let mut held: Vec<(&ironlb_alloc::Service, Vec<IpAddr>)> = views
            .iter()
            .filter_map(|(svc, view)| match view {
                View::Handled { service, .. } => Some((&**service, service_view::status_ips(svc))),
                _ => None,
            })
            .filter(|(_, ips)| !ips.is_empty())
            .collect();
        held.sort_by(|(a, ai), (b, bi)| bi.len().cmp(&ai.len()).then_with(|| a.key.cmp(&b.key)));
        for (service, ips) in held {
            if let Err(e) = self.allocator.restore(service, &ips) {
                tracing::info!(service = %service.key, ?ips, error = %e, "status IPs cannot be kept; the Service will be reallocated");
            }
        }
        self.restored = true;
    }

    fn report_failure(
        &mut self,
        writes: &mut Writes,
        svc: &Service,
        key: &str,
        reason: &str,
        message: String,
    ) {
        if self.failures.get(key) == Some(&message) {
            return;
        }
        writes
            .events
            .push(EventWrite::warning(svc, reason, message.clone()));
        self.failures.insert(key.to_string(), message);
    }

    /// Counts every pool for the metrics, and writes the status of those that are
    /// IPAddressPool objects: the legacy ConfigMap's pools have no object to hold one.
    fn pool_counters(&mut self, pools: &[String], objects: &BTreeSet<&str>, writes: &mut Writes) {
        self.pool_status.retain(|name, _| pools.contains(name));
        for name in pools {
            let count = |f| {
                (
                    self.allocator.in_use(name, f),
                    self.allocator.capacity(name, f),
                )
            };
            let ((used4, cap4), (used6, cap6)) = (count(Family::V4), count(Family::V6));
            writes.metrics.pools.push(PoolCounts {
                pool: name.clone(),
                in_use: (used4, used6),
                total: (cap4, cap6),
                services: self.allocator.services(name),
            });
            let status = IPAddressPoolStatus {
                assigned_ipv4: used4,
                assigned_ipv6: used6,
                available_ipv4: cap4 - used4,
                available_ipv6: cap6 - used6,
            };
            if objects.contains(name.as_str()) && self.pool_status.get(name) != Some(&status) {
                writes.pool_status.push((name.clone(), status.clone()));
                self.pool_status.insert(name.clone(), status);
            }
        }
    }
}

/// MetalLB's `AdditionalAssignFailed`: a PreferDualStack Service with cluster IPs of both
/// families was given an IP of one family only.
fn missing_family(
    svc: &Service,
    view: &View,
    ips: &[IpAddr],
    pool: Option<&str>,
) -> Option<EventWrite> {
    let View::Handled { service, .. } = view else {
        return None;
    };
    let Families::PreferDual {
        dual_cluster: true, ..
    } = service.families
    else {
        return None;
    };
    let [ip] = ips else {
        return None;
    };
    let missing = if ip.is_ipv4() { "IPv6" } else { "IPv4" };
    Some(EventWrite::normal(
        svc,
        "AdditionalAssignFailed",
        format!(
            "cannot assign additional IP in PreferDualStack: pool {:?} has no free {missing} address",
            pool.unwrap_or_default()
        ),
    ))
}

/// Each Service with how the controller sees it.
fn views<'a>(snap: &'a Snapshot, lb_class: Option<&str>) -> Vec<(&'a Service, View)> {
    let no_labels = Labels::new();
    snap.services
        .iter()
        .map(|svc| {
            let ns = svc.metadata.namespace.as_deref().unwrap_or_default();
            let labels = snap.namespaces.get(ns).unwrap_or(&no_labels);
            (&**svc, service_view::view(svc, labels, lb_class))
        })
        .collect()
}

/// The writes that give `svc` what it should hold (`desired`), with MetalLB's events;
/// none when its status already says it.
fn service_writes(writes: &mut Writes, svc: &Service, view: &View, desired: Option<Assignment>) {
    let (ips, pool) = desired.map(|a| (a.ips, Some(a.pool))).unwrap_or_default();
    if ips == service_view::status_ips(svc) && pool.as_deref() == service_view::allocated_pool(svc)
    {
        return;
    }
    if !ips.is_empty() {
        let list: Vec<String> = ips
            .iter()
            .map(|ip| format!("{:?}", ip.to_string()))
            .collect();
        writes.events.push(EventWrite::normal(
            svc,
            "IPAllocated",
            format!("Assigned IP [{}]", list.join(" ")),
        ));
    }
    writes
        .events
        .extend(missing_family(svc, view, &ips, pool.as_deref()));
    if let View::Handled { deprecated, .. } = view {
        for old in deprecated {
            writes.events.push(EventWrite::warning(
                svc,
                "deprecatedAnnotation",
                format!("Service uses deprecated annotation {old}"),
            ));
        }
    }
    writes.services.push(ServiceWrite::new(svc, ips, pool));
}
