//! The standalone source: one file with the metallb.io resources (or the legacy ConfigMap),
//! optional `v1` Nodes for their labels, and `ironlb.dev/v1alpha1` StandaloneServices.
//! Every problem names the object, the field and the fix, as `ironlb validate` does.

use super::health::{Check, Probe};
use super::snapshot::{MAX_SERVICES, allocate};
use crate::inputs;
use api::standalone::{HealthCheck, StandaloneServiceSpec};
use config::Resources;
use config::documents::ReadOptions;
use config::problem::{ObjectRef, Report};
use config::resources::{Labels, Object};
use config::{Config, Problem, Severity};
use ironlb_alloc::{Allocator, Port, Protocol};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);

/// A service as the standalone host runs it.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceDef {
    pub name: String,
    pub labels: Labels,
    pub requested: Vec<IpAddr>,
    pub pool: Option<String>,
    pub ports: Vec<Port>,
    pub check: Option<Check>,
}

/// Everything the file describes, valid.
#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    pub config: Config,
    pub services: Vec<ServiceDef>,
    /// Node name → labels, from `v1` Node documents.
    pub nodes: BTreeMap<String, Labels>,
}

/// What reading the file gave: the services and config when valid, and every problem.
pub struct Loaded {
    pub desired: Option<Desired>,
    pub problems: Vec<Problem>,
}

/// Reads and validates `path`. Any error leaves `desired` empty.
pub fn read(path: &Path) -> anyhow::Result<Loaded> {
    let (resources, problems) = inputs::read(&[path.to_path_buf()], &ReadOptions::default())?;
    Ok(build(&resources, problems))
}

/// Validates resources read with `problems` already found: the configuration, each
/// StandaloneService, and that every service gets its IPs (a pinned IP outside every pool,
/// or a pool too small, is an error of the file).
pub fn build(resources: &Resources, problems: Vec<Problem>) -> Loaded {
    let outcome = config::build_read(resources, problems);
    let mut problems = outcome.problems;
    let services: Vec<ServiceDef> = resources
        .services
        .iter()
        .filter_map(|o| service(o, &mut problems))
        .collect();
    if let Some(first_over) = resources.services.get(MAX_SERVICES) {
        Report::new(
            ObjectRef::new(api::standalone::KIND, &first_over.name),
            first_over.source.clone(),
            &mut problems,
        )
        .error(
            "metadata.name",
            format!(
                "the file holds {} StandaloneServices; hosts share their checks in one gossip packet, which has room for {MAX_SERVICES}",
                resources.services.len()
            ),
            "split the hosts into groups, each with its own file and --member list",
        );
    }
    let valid = !problems.iter().any(|p| p.severity == Severity::Error);
    let Some(config) = outcome.config.filter(|_| valid) else {
        return Loaded {
            desired: None,
            problems,
        };
    };
    let desired = Desired {
        config,
        services,
        nodes: resources.nodes.clone(),
    };
    let allocations = allocate(&mut Allocator::new(&desired.config), &desired);
    for s in &desired.services {
        if let Some(Err(why)) = allocations.get(&s.name) {
            let source = resources
                .services
                .iter()
                .find(|o| o.name == s.name)
                .and_then(|o| o.source.clone());
            let mut report = Report::new(
                ObjectRef::new(api::standalone::KIND, &s.name),
                source,
                &mut problems,
            );
            let (field, fix) = if s.requested.is_empty() {
                (
                    "spec.pool",
                    "name a pool with free addresses, or pin an IP with loadBalancerIPs",
                )
            } else {
                (
                    "spec.loadBalancerIPs",
                    "pin an IP inside an IPAddressPool, or allocate with pool instead",
                )
            };
            report.error(field, format!("no IP for this service: {why}"), fix);
        }
    }
    let valid = !problems.iter().any(|p| p.severity == Severity::Error);
    Loaded {
        desired: valid.then_some(desired),
        problems,
    }
}

fn service(o: &Object<StandaloneServiceSpec>, problems: &mut Vec<Problem>) -> Option<ServiceDef> {
    let mut report = Report::new(
        ObjectRef::new(api::standalone::KIND, &o.name),
        o.source.clone(),
        problems,
    );
    let mut requested = Vec::new();
    for (i, ip) in o.spec.load_balancer_ips.iter().enumerate() {
        match ip.parse::<IpAddr>() {
            Ok(ip) => requested.push(ip),
            Err(_) => report.error(
                &format!("spec.loadBalancerIPs[{i}]"),
                format!("{ip:?} is not an IP address"),
                "write a single address such as 198.51.100.32 or 2001:db8::32",
            ),
        }
    }
    if o.spec.load_balancer_ips.is_empty() && o.spec.pool.is_none() {
        report.error(
            "spec",
            "neither loadBalancerIPs nor pool is set",
            "set loadBalancerIPs to pin an IP, or pool to allocate one from that IPAddressPool",
        );
    }
    let mut ports = Vec::new();
    for (i, p) in o.spec.ports.iter().enumerate() {
        let protocol = match p.protocol.as_deref().unwrap_or("TCP") {
            "TCP" => Protocol::Tcp,
            "UDP" => Protocol::Udp,
            "SCTP" => Protocol::Sctp,
            other => {
                report.error(
                    &format!("spec.ports[{i}].protocol"),
                    format!("unknown protocol {other:?}"),
                    "use TCP, UDP or SCTP",
                );
                continue;
            }
        };
        ports.push(Port {
            protocol,
            port: p.port,
        });
    }
    let check = o
        .spec
        .health_check
        .as_ref()
        .and_then(|h| health_check(h, &mut report));
    (report.errors() == 0).then(|| ServiceDef {
        name: o.name.clone(),
        labels: o.labels.clone(),
        requested,
        pool: o.spec.pool.clone(),
        ports,
        check,
    })
}

fn health_check(h: &HealthCheck, report: &mut Report<'_>) -> Option<Check> {
    let host = |h: &Option<String>| h.clone().unwrap_or_else(|| "127.0.0.1".to_string());
    let mut probes = Vec::new();
    if let Some(t) = &h.tcp {
        probes.push(Probe::Tcp {
            host: host(&t.host),
            port: t.port,
        });
    }
    if let Some(t) = &h.http {
        probes.push(Probe::Http {
            host: host(&t.host),
            port: t.port,
            path: t.path.clone().unwrap_or_else(|| "/".to_string()),
        });
    }
    if let Some(e) = &h.exec {
        if e.command.is_empty() {
            report.error(
                "spec.healthCheck.exec.command",
                "the command is empty",
                "give the program and its arguments, e.g. [\"curl\", \"-fs\", \"http://127.0.0.1/\"]",
            );
            return None;
        }
        probes.push(Probe::Exec {
            command: e.command.clone(),
        });
    }
    let [probe] = <[Probe; 1]>::try_from(probes).ok().or_else(|| {
        report.error(
            "spec.healthCheck",
            "a health check needs exactly one of tcp, http and exec",
            "keep one of tcp, http and exec",
        );
        None
    })?;
    let interval = positive(report, "spec.healthCheck.interval", h.interval)?;
    let timeout = positive(report, "spec.healthCheck.timeout", h.timeout)?;
    let interval = interval.unwrap_or(DEFAULT_INTERVAL);
    Some(Check {
        probe,
        interval,
        timeout: timeout.unwrap_or(interval),
    })
}

/// `None` when the duration is zero or negative (reported); `Some(None)` when unset.
fn positive(
    report: &mut Report<'_>,
    field: &str,
    d: Option<api::Duration>,
) -> Option<Option<Duration>> {
    let Some(d) = d else { return Some(None) };
    if d.is_negative() || Duration::from(d).is_zero() {
        report.error(
            field,
            format!("{d} is not a positive duration"),
            "use a duration such as 1s or 500ms",
        );
        return None;
    }
    Some(Some(d.into()))
}
