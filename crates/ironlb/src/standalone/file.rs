//! The standalone source: one file with the metallb.io resources (or the legacy ConfigMap),
//! optional `v1` Nodes for their labels, and `ironlb.dev/v1alpha1` StandaloneServices.
//! Every problem names the object, the field and the fix, as `ironlb validate` does.

use super::health::{Check, Probe};
use super::snapshot::{Allocations, MAX_SERVICES, allocate};
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
pub struct HostFile {
    pub config: Config,
    pub services: Vec<ServiceDef>,
    /// Node name → labels, from `v1` Node documents.
    pub nodes: BTreeMap<String, Labels>,
}

/// What reading the file gave: the services and config when valid, and every problem.
pub struct Loaded {
    pub desired: Option<HostFile>,
    /// When valid, the allocator that gave every service its IPs, carried on from the one
    /// the file was checked against, and what each service got: validating a reload and
    /// applying it are one computation, so an accepted file never leaves a service without
    /// its IP.
    pub allocated: Option<(Allocator, Allocations)>,
    pub problems: Vec<Problem>,
}

/// Reads and validates `path`. Any error leaves `desired` empty.
pub fn read(path: &Path, current: &Allocator) -> anyhow::Result<Loaded> {
    let (resources, problems) = inputs::read(&[path.to_path_buf()], &ReadOptions::default())?;
    Ok(build(&resources, problems, current))
}

/// Validates resources read with `problems` already found: the configuration, each
/// StandaloneService, and that every service gets its IPs from `current` (the running
/// allocator on a reload, so IPs already held count; an empty one otherwise): a pinned IP
/// outside every pool or held by another service, or a pool too small, is an error of the
/// file.
pub fn build(resources: &Resources, problems: Vec<Problem>, current: &Allocator) -> Loaded {
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
            allocated: None,
            problems,
        };
    };
    let desired = HostFile {
        config,
        services,
        nodes: resources.nodes.clone(),
    };
    let mut allocator = current.clone();
    let allocations = allocate(&mut allocator, &desired);
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
        allocated: valid.then_some((allocator, allocations)),
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

#[cfg(test)]
mod tests {
    use super::*;

    const POOL: &str = "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: tiny, namespace: metallb-system}\nspec: {addresses: [198.51.100.1-198.51.100.2]}\n";

    fn service(name: &str, spec: &str) -> String {
        format!(
            "---\napiVersion: ironlb.dev/v1alpha1\nkind: StandaloneService\nmetadata: {{name: {name}}}\nspec: {spec}\n"
        )
    }

    fn load(text: &str, current: &Allocator) -> Loaded {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        read(file.path(), current).unwrap()
    }

    #[test]
    fn a_reload_is_checked_against_the_ips_already_held_as_it_will_be_applied() {
        let first = format!(
            "{POOL}{}{}",
            service("a", "{pool: tiny, ports: [{port: 80}]}"),
            service("b", "{pool: tiny, ports: [{port: 80}]}")
        );
        let (running, got) = load(&first, &Allocator::default()).allocated.unwrap();
        assert_eq!(
            got["b"].as_ref().unwrap().0,
            ["198.51.100.2".parse::<IpAddr>().unwrap()]
        );

        // A goes, C is pinned to the IP B holds. A fresh host would give C .2 and B .1, but
        // this host keeps B on .2 (IPs never move while the config allows them): so C
        // cannot have it, and the reload must be refused rather than accepted and applied
        // without C's IP.
        let reload = format!(
            "{POOL}{}{}",
            service("b", "{pool: tiny, ports: [{port: 80}]}"),
            service(
                "c",
                "{loadBalancerIPs: [198.51.100.2], ports: [{port: 80}]}"
            )
        );
        let refused = load(&reload, &running);
        assert!(refused.desired.is_none() && refused.allocated.is_none());
        let problem = refused
            .problems
            .iter()
            .find(|p| p.severity == Severity::Error)
            .map(ToString::to_string)
            .unwrap();
        assert!(
            problem.contains("\"c\"") && problem.contains("spec.loadBalancerIPs"),
            "{problem}"
        );
        assert!(
            load(&reload, &Allocator::default()).desired.is_some(),
            "valid on a fresh host"
        );
    }
}
