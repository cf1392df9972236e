//! A Kubernetes Service, seen as the allocator needs it. Pure.

use crate::annotations;
use ironlb_alloc::{Families, Family, Labels, Port, Protocol, Service as AllocService};
use k8s_openapi::api::core::v1::Service;
use std::net::IpAddr;

/// Why a LoadBalancer Service cannot be allocated as written; each becomes a Warning event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub reason: &'static str,
    pub message: String,
}

/// What the controller makes of a Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum View {
    /// Not ours: another type, or another `loadBalancerClass`.
    Ignored,
    /// Ours, but its spec cannot be satisfied.
    Refused(Refusal),
    /// Ours: allocate for it. `deprecated` lists old-prefix annotation keys in use.
    Handled {
        service: Box<AllocService>,
        deprecated: Vec<String>,
    },
}

pub fn key(svc: &Service) -> String {
    format!(
        "{}/{}",
        svc.metadata.namespace.as_deref().unwrap_or_default(),
        svc.metadata.name.as_deref().unwrap_or_default()
    )
}

/// The Service's key, as the planner names it.
pub fn service_key(svc: &Service) -> ironlb_plan::ServiceKey {
    ironlb_plan::ServiceKey::new(
        svc.metadata.namespace.as_deref().unwrap_or_default(),
        svc.metadata.name.as_deref().unwrap_or_default(),
    )
}

/// Whether the Service is `type: LoadBalancer` with the class ironlb handles (no class by
/// default, or exactly `lb_class` when one is configured).
pub fn is_ours(svc: &Service, lb_class: Option<&str>) -> bool {
    let Some(spec) = &svc.spec else { return false };
    spec.type_.as_deref() == Some("LoadBalancer") && spec.load_balancer_class.as_deref() == lb_class
}

pub fn view(svc: &Service, namespace_labels: &Labels, lb_class: Option<&str>) -> View {
    if !is_ours(svc, lb_class) {
        return View::Ignored;
    }
    let spec = svc.spec.clone().unwrap_or_default();
    let annotations = svc.metadata.annotations.clone().unwrap_or_default();
    // MetalLB warns about every key of its old prefix, read or not.
    let deprecated: Vec<String> = annotations
        .keys()
        .filter(|k| k.starts_with(annotations::OLD_PREFIX))
        .cloned()
        .collect();

    let cluster_ips: Vec<IpAddr> = spec
        .cluster_ips
        .clone()
        .filter(|ips| !ips.is_empty())
        .or_else(|| spec.cluster_ip.clone().map(|ip| vec![ip]))
        .unwrap_or_default()
        .iter()
        .filter_map(|ip| ip.parse().ok())
        .collect();
    let Some(first) = cluster_ips.first() else {
        return refused(
            "noclusterIPsIPFamily",
            "failed to determine the family of the clusterIPs: the Service has no cluster IP"
                .to_string(),
        );
    };
    let dual = cluster_ips.len() > 1;
    let primary = match spec
        .ip_families
        .as_ref()
        .and_then(|f| f.first())
        .map(String::as_str)
    {
        Some("IPv6") => Family::V6,
        Some(_) => Family::V4,
        None => Family::of(first),
    };
    let families = match spec.ip_family_policy.as_deref() {
        Some("RequireDualStack") if !dual => {
            return refused(
                "not enough clusterips",
                format!("Service requires dual stack but not enough clusterips {cluster_ips:?}"),
            );
        }
        Some("RequireDualStack") => Families::RequireDual,
        Some("PreferDualStack") => Families::PreferDual {
            primary,
            dual_cluster: dual,
        },
        _ => Families::Single(Family::of(first)),
    };

    let annotated = annotations::get(&annotations, annotations::LOAD_BALANCER_IPS);
    let from_spec = spec.load_balancer_ip.clone().filter(|ip| !ip.is_empty());
    let requested: Vec<IpAddr> = match (annotated, from_spec) {
        (Some(_), Some(_)) => {
            return refused("LoadBalancerFailed", "invalid requested loadbalancer IPs: service can not have both metallb.io/loadBalancerIPs and svc.Spec.LoadBalancerIP".to_string());
        }
        (Some(list), None) => match parse_ips(list) {
            Ok(ips) => ips,
            Err(message) => {
                return refused(
                    "LoadBalancerFailed",
                    format!("invalid requested loadbalancer IPs: {message}"),
                );
            }
        },
        (None, Some(one)) => match one.trim().parse() {
            Ok(ip) => vec![ip],
            Err(_) => {
                return refused(
                    "LoadBalancerFailed",
                    format!("invalid requested loadbalancer IPs: {one:?} is not an IP"),
                );
            }
        },
        (None, None) => Vec::new(),
    };
    let pool = annotations::get(&annotations, annotations::ADDRESS_POOL);
    let sharing_key = annotations::get(&annotations, annotations::ALLOW_SHARED_IP);

    let backend_key = if spec.external_traffic_policy.as_deref() == Some("Local") {
        let selector = spec.selector.clone().unwrap_or_default();
        selector
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    } else {
        String::new()
    };
    let ports = spec
        .ports
        .iter()
        .flatten()
        .map(|p| Port {
            protocol: match p.protocol.as_deref() {
                Some("UDP") => Protocol::Udp,
                Some("SCTP") => Protocol::Sctp,
                _ => Protocol::Tcp,
            },
            port: u16::try_from(p.port).unwrap_or_default(),
        })
        .collect();
    View::Handled {
        service: Box::new(AllocService {
            key: key(svc),
            namespace: svc.metadata.namespace.clone().unwrap_or_default(),
            labels: svc.metadata.labels.clone().unwrap_or_default(),
            namespace_labels: namespace_labels.clone(),
            families,
            requested,
            pool: pool.filter(|p| !p.is_empty()).map(str::to_string),
            sharing_key: sharing_key.map(str::to_string),
            backend_key,
            ports,
        }),
        deprecated,
    }
}

fn refused(reason: &'static str, message: String) -> View {
    View::Refused(Refusal { reason, message })
}

/// The `loadBalancerIPs` annotation: one or two comma-separated IPs of different families.
fn parse_ips(list: &str) -> Result<Vec<IpAddr>, String> {
    let ips = list
        .split(',')
        .map(|s| {
            s.trim()
                .parse::<IpAddr>()
                .map_err(|_| format!("{:?} is not an IP", s.trim()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    match ips.as_slice() {
        [_] => Ok(ips),
        [a, b] if a.is_ipv4() != b.is_ipv4() => Ok(ips),
        [_, _] => Err(format!("{list:?}: two IPs must be of different families")),
        _ => Err(format!("{list:?}: give one IP, or one IPv4 and one IPv6")),
    }
}

/// The IPs in a Service's `status.loadBalancer.ingress`.
pub fn status_ips(svc: &Service) -> Vec<IpAddr> {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|i| i.ip.as_deref().and_then(|ip| ip.parse().ok()))
        .collect()
}

/// The pool annotation ironlb wrote, if any.
pub fn allocated_pool(svc: &Service) -> Option<&str> {
    svc.metadata
        .annotations
        .as_ref()?
        .get(annotations::ALLOCATED_FROM_POOL)
        .map(String::as_str)
}
