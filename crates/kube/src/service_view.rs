//! A Kubernetes Service, seen as the allocator needs it. Pure.

use crate::annotations;
use ironlb_alloc::{Families, Family, Labels, Port, Protocol, Service as AllocService};
use k8s_openapi::api::core::v1::{Service, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::BTreeMap;
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
    let (namespace, name) = namespaced_name(&svc.metadata);
    format!("{namespace}/{name}")
}

/// The Service's key, as the planner names it.
pub fn service_key(svc: &Service) -> ironlb_plan::ServiceKey {
    let (namespace, name) = namespaced_name(&svc.metadata);
    ironlb_plan::ServiceKey::new(namespace, name)
}

/// An object's (namespace, name), borrowed: a map key that costs no allocation.
pub fn namespaced_name(meta: &ObjectMeta) -> (&str, &str) {
    (
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default(),
    )
}

/// Whether the Service is `type: LoadBalancer` with the class ironlb handles (no class by
/// default, or exactly `lb_class` when one is configured).
pub fn is_ours(svc: &Service, lb_class: Option<&str>) -> bool {
    is_load_balancer(svc)
        && svc
            .spec
            .as_ref()
            .and_then(|s| s.load_balancer_class.as_deref())
            == lb_class
}

/// Whether the Service is `type: LoadBalancer`, of whatever class.
pub fn is_load_balancer(svc: &Service) -> bool {
    svc.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("LoadBalancer")
}

pub fn view(svc: &Service, namespace_labels: &Labels, lb_class: Option<&str>) -> View {
    if !is_ours(svc, lb_class) {
        return View::Ignored;
    }
    let no_spec = ServiceSpec::default();
    let spec = svc.spec.as_ref().unwrap_or(&no_spec);
    let no_annotations = BTreeMap::new();
    let annotations = svc.metadata.annotations.as_ref().unwrap_or(&no_annotations);
    // MetalLB warns about every key of its old prefix, read or not.
    let deprecated: Vec<String> = annotations
        .keys()
        .filter(|k| k.starts_with(annotations::OLD_PREFIX))
        .cloned()
        .collect();
    let families = match families(spec) {
        Ok(f) => f,
        Err(refusal) => return View::Refused(refusal),
    };
    let requested = match requested(spec, annotations) {
        Ok(ips) => ips,
        Err(refusal) => return View::Refused(refusal),
    };
    let pool = annotations::get(annotations, annotations::ADDRESS_POOL);
    let sharing_key = annotations::get(annotations, annotations::ALLOW_SHARED_IP);
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
            backend_key: backend_key(spec),
            ports: ports(spec),
        }),
        deprecated,
    }
}

/// The address families the Service wants, from its cluster IPs and family policy.
fn families(spec: &ServiceSpec) -> Result<Families, Refusal> {
    let cluster_ips: Vec<IpAddr> = match &spec.cluster_ips {
        Some(ips) if !ips.is_empty() => ips.iter().filter_map(|ip| ip.parse().ok()).collect(),
        _ => spec
            .cluster_ip
            .iter()
            .filter_map(|ip| ip.parse().ok())
            .collect(),
    };
    let Some(first) = cluster_ips.first() else {
        return Err(refusal(
            "noclusterIPsIPFamily",
            "failed to determine the family of the clusterIPs: the Service has no cluster IP"
                .to_string(),
        ));
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
    Ok(match spec.ip_family_policy.as_deref() {
        Some("RequireDualStack") if !dual => {
            return Err(refusal(
                "not enough clusterips",
                format!("Service requires dual stack but not enough clusterips {cluster_ips:?}"),
            ));
        }
        Some("RequireDualStack") => Families::RequireDual,
        Some("PreferDualStack") => Families::PreferDual {
            primary,
            dual_cluster: dual,
        },
        _ => Families::Single(Family::of(first)),
    })
}

/// The IPs asked for, by MetalLB's annotation or the deprecated `spec.loadBalancerIP`.
fn requested(
    spec: &ServiceSpec,
    annotations: &BTreeMap<String, String>,
) -> Result<Vec<IpAddr>, Refusal> {
    let annotated = annotations::get(annotations, annotations::LOAD_BALANCER_IPS);
    let from_spec = spec.load_balancer_ip.as_deref().filter(|ip| !ip.is_empty());
    let invalid = |message: String| {
        refusal(
            "LoadBalancerFailed",
            format!("invalid requested loadbalancer IPs: {message}"),
        )
    };
    match (annotated, from_spec) {
        (Some(_), Some(_)) => Err(invalid(
            "service can not have both metallb.io/loadBalancerIPs and svc.Spec.LoadBalancerIP"
                .to_string(),
        )),
        (Some(list), None) => parse_ips(list).map_err(invalid),
        (None, Some(one)) => one
            .trim()
            .parse()
            .map(|ip| vec![ip])
            .map_err(|_| invalid(format!("{one:?} is not an IP"))),
        (None, None) => Ok(Vec::new()),
    }
}

/// What Services sharing an IP with `externalTrafficPolicy: Local` must agree on: their
/// selector, so the same pods back them.
fn backend_key(spec: &ServiceSpec) -> String {
    if spec.external_traffic_policy.as_deref() != Some("Local") {
        return String::new();
    }
    spec.selector
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn ports(spec: &ServiceSpec) -> Vec<Port> {
    spec.ports
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
        .collect()
}

fn refusal(reason: &'static str, message: String) -> Refusal {
    Refusal { reason, message }
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
