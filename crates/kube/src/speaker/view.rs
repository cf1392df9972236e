//! What the speaker reads from the cluster, turned into the planner's inputs. Pure.

use crate::annotations;
use crate::service_view::{is_ours, service_key, status_ips};
use config::Config;
use ironlb_plan::ServiceKey;
use ironlb_plan::announce::{Endpoint, Node as PlanNode, Service as PlanService};
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Every LoadBalancer Service of ours that has an IP, with its endpoints.
pub fn services(
    services: &[impl Borrow<Service>],
    slices: &[impl Borrow<EndpointSlice>],
    config: &Config,
    lb_class: Option<&str>,
) -> Vec<PlanService> {
    let mut by_service: BTreeMap<ServiceKey, Vec<&EndpointSlice>> = BTreeMap::new();
    for slice in slices.iter().map(Borrow::borrow) {
        let Some(name) = slice
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SERVICE_NAME_LABEL))
        else {
            continue;
        };
        let ns = slice.metadata.namespace.clone().unwrap_or_default();
        by_service
            .entry(ServiceKey::new(ns, name))
            .or_default()
            .push(slice);
    }
    services
        .iter()
        .map(Borrow::borrow)
        .filter(|svc| is_ours(svc, lb_class))
        .filter_map(|svc| {
            let ips = status_ips(svc);
            let pool = pool_of(svc, &ips, config)?;
            let spec = svc.spec.as_ref()?;
            let key = service_key(svc);
            Some(PlanService {
                labels: svc.metadata.labels.clone().unwrap_or_default(),
                ips,
                pool,
                local_traffic: spec.external_traffic_policy.as_deref() == Some("Local"),
                shared: svc.metadata.annotations.as_ref().is_some_and(|a| {
                    annotations::get(a, annotations::ALLOW_SHARED_IP).is_some_and(|k| !k.is_empty())
                }),
                endpoints: by_service
                    .get(&key)
                    .into_iter()
                    .flatten()
                    .flat_map(|s| endpoints(s))
                    .collect(),
                key,
            })
        })
        .collect()
}

/// The pool the controller recorded, else the pool holding the first IP (a Service from
/// before the annotation existed); `None` when neither is known.
fn pool_of(svc: &Service, ips: &[IpAddr], config: &Config) -> Option<String> {
    if let Some(pool) = crate::service_view::allocated_pool(svc) {
        return Some(pool.to_string());
    }
    let first = ips.first()?;
    config
        .pools
        .values()
        .find(|p| p.cidrs.iter().any(|c| c.contains(first)))
        .map(|p| p.name.clone())
}

fn endpoints(slice: &EndpointSlice) -> impl Iterator<Item = Endpoint> + '_ {
    slice.endpoints.iter().map(|e| {
        let conditions = e.conditions.as_ref();
        Endpoint {
            node: e.node_name.clone(),
            ready: conditions.and_then(|c| c.ready),
            serving: conditions.and_then(|c| c.serving),
            has_address: !e.addresses.is_empty(),
        }
    })
}

/// Whether a node condition of `type_` is "True".
fn condition(node: &Node, type_: &str) -> Option<bool> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.status == "True")
}

/// The nodes as the planner sees them. Liveness comes from gossip when it works; without
/// it (disabled, or not heard from anyone yet) from each node's `Ready` condition, so a
/// node Kubernetes knows is down stops answering, unlike MetalLB, which then counts every
/// node as live. `seen_by` holds the nodes gossip says have seen `me`; without it every
/// node counts as having seen it.
pub fn nodes(
    nodes: &[impl Borrow<Node>],
    me: &str,
    gossip: Option<&BTreeSet<String>>,
    seen_by: Option<&BTreeSet<String>>,
) -> Vec<PlanNode> {
    nodes
        .iter()
        .map(Borrow::borrow)
        .map(|n| {
            let name = n.metadata.name.clone().unwrap_or_default();
            let live = match gossip {
                Some(members) => members.contains(&name),
                None => condition(n, "Ready") == Some(true),
            };
            PlanNode {
                labels: n.metadata.labels.clone().unwrap_or_default(),
                live,
                network_available: condition(n, "NetworkUnavailable") != Some(true),
                sees_this: name == me || seen_by.is_none_or(|s| s.contains(&name)),
                answering: Default::default(),
                name,
            }
        })
        .collect()
}

/// A node's first InternalIP.
pub fn internal_ip(node: &Node) -> Option<IpAddr> {
    node.status
        .as_ref()?
        .addresses
        .as_ref()?
        .iter()
        .find(|a| a.type_ == "InternalIP")?
        .address
        .parse()
        .ok()
}

/// Each node's gossip address (its InternalIP, where a hostNetwork speaker binds) → its
/// name, so gossip members map back to nodes.
pub fn gossip_addresses(nodes: &[impl Borrow<Node>], port: u16) -> BTreeMap<SocketAddr, String> {
    nodes
        .iter()
        .map(Borrow::borrow)
        .filter_map(|n| {
            Some((
                SocketAddr::new(internal_ip(n)?, port),
                n.metadata.name.clone()?,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn from<T: serde::de::DeserializeOwned>(v: Value) -> T {
        serde_json::from_value(v).unwrap()
    }

    fn config() -> Config {
        ironlb_lab::fixtures::config(
            "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: lan}\nspec: {addresses: [192.0.2.128/25]}\n",
        )
    }

    fn svc(name: &str, extra: Value) -> Service {
        let mut v = json!({
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Cluster"},
            "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.130"}]}},
        });
        ironlb_lab::fixtures::merge(&mut v, extra);
        from(v)
    }

    fn slice(service: &str, endpoints: Value) -> EndpointSlice {
        from(json!({
            "metadata": {"name": format!("{service}-abc"), "namespace": "default",
                         "labels": {SERVICE_NAME_LABEL: service}},
            "addressType": "IPv4",
            "endpoints": endpoints,
        }))
    }

    fn node(name: &str, conditions: Value, ip: &str) -> Node {
        from(json!({
            "metadata": {"name": name, "labels": {"zone": "a"}},
            "status": {"conditions": conditions, "addresses": [
                {"type": "Hostname", "address": name}, {"type": "InternalIP", "address": ip}]},
        }))
    }

    #[test]
    fn services_carry_ips_pool_policy_sharing_and_endpoint_conditions() {
        let services_in = [
            svc(
                "web",
                json!({"spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local"},
                       "metadata": {"name": "web", "namespace": "default",
                                    "annotations": {"metallb.io/allow-shared-ip": "k"}}}),
            ),
            svc("old", json!({})),
            svc(
                "pending",
                json!({"status": {"loadBalancer": {"ingress": null}}}),
            ),
            svc(
                "other-class",
                json!({"spec": {"type": "LoadBalancer", "loadBalancerClass": "x"}}),
            ),
            svc("not-lb", json!({"spec": {"type": "ClusterIP"}})),
        ];
        let slices = [
            slice(
                "web",
                json!([
                    {"addresses": ["10.0.0.1"], "nodeName": "n1", "conditions": {"ready": true}},
                    {"addresses": ["10.0.0.2"], "nodeName": "n2", "conditions": {"ready": false, "serving": true, "terminating": true}},
                    {"addresses": [], "nodeName": "n3"},
                ]),
            ),
            slice(
                "other",
                json!([{"addresses": ["10.0.0.9"], "nodeName": "n9"}]),
            ),
        ];
        let out = services(&services_in, &slices, &config(), None);
        let keys: Vec<String> = out.iter().map(|s| s.key.to_string()).collect();
        assert_eq!(
            keys,
            ["default/web", "default/old"],
            "only ours, with an IP"
        );
        let web = &out[0];
        assert!(web.local_traffic && web.shared);
        assert_eq!(
            web.pool, "lan",
            "found by IP when the annotation is missing"
        );
        assert_eq!(web.endpoints.len(), 3);
        assert!(web.endpoints[1].can_serve(), "terminating but serving");
        assert!(!web.endpoints[2].has_address);
        assert_eq!(
            web.endpoints[2].ready, None,
            "no conditions: unknown, not false"
        );
        assert!(out[1].endpoints.is_empty());
    }

    #[test]
    fn liveness_is_gossip_when_it_works_and_node_readiness_without_it() {
        let all = [
            node(
                "n1",
                json!([{"type": "Ready", "status": "True"}]),
                "192.0.2.2",
            ),
            node(
                "n2",
                json!([{"type": "Ready", "status": "False"},
                       {"type": "NetworkUnavailable", "status": "True"}]),
                "192.0.2.3",
            ),
            node("n3", json!([]), "192.0.2.4"),
        ];
        let live = |g: Option<&BTreeSet<String>>| -> Vec<bool> {
            nodes(&all, "a", g, None).iter().map(|n| n.live).collect()
        };
        assert_eq!(
            live(None),
            [true, false, false],
            "readiness; unknown is not live"
        );
        let gossip = BTreeSet::from(["n2".to_string(), "n3".to_string()]);
        assert_eq!(
            live(Some(&gossip)),
            [false, true, true],
            "gossip's word is final"
        );
        let planned = nodes(&all, "a", None, None);
        assert!(planned[0].network_available && !planned[1].network_available);
        assert_eq!(planned[0].labels["zone"], "a");
        let seen = BTreeSet::from(["n2".to_string()]);
        let sees: Vec<bool> = nodes(&all, "n3", Some(&gossip), Some(&seen))
            .iter()
            .map(|n| n.sees_this)
            .collect();
        assert_eq!(sees, [false, true, true], "n2 has seen n3; n3 is itself");
        assert!(planned.iter().all(|n| n.sees_this), "gossip cannot tell");
        let addrs = gossip_addresses(&all, 7946);
        assert_eq!(addrs[&"192.0.2.3:7946".parse().unwrap()], "n2");
        assert_eq!(addrs.len(), 3);
    }
}
