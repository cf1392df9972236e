//! What the speaker reads from the cluster, turned into the planner's inputs. Pure.

use super::records::{LoadBalancer, ServiceRecord, SliceRecord};
use config::Config;
use ironlb_plan::announce::{Node as PlanNode, Service as PlanService};
use k8s_openapi::api::core::v1::Node;
use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// The planner's Services, kept from pass to pass. The watch stores hand out a new `Arc`
/// for every record that changed, so a Service whose object and EndpointSlices are the very
/// ones of the last pass is not read again: a change costs one Service's reading, not ten
/// thousand. A new configuration (pools decide a Service's pool) reads every one again.
#[derive(Default)]
pub struct ServiceViews {
    /// By the address of the Service record read; the entry holds that `Arc`, so the address
    /// cannot be reused by another object while it is here. The same holds for `slices`.
    read: HashMap<usize, Read>,
    /// The slices of the last pass, by address.
    slices: HashMap<usize, Slice>,
    /// Counts passes, to drop what a pass did not see.
    pass: u64,
}

struct Read {
    _service: Arc<ServiceRecord>,
    /// None: not ours, or without an IP.
    view: Option<Arc<PlanService>>,
    /// The Service's `name_id`, so that a pass need not read the object to match it with
    /// its slices.
    name: u64,
    /// The last pass that saw it.
    seen: u64,
}

struct Slice {
    _slice: Arc<SliceRecord>,
    /// The `name_id` of the Service it is a slice of.
    service: Option<u64>,
    seen: u64,
}

/// Keys here are addresses and short names, which need no defence against chosen
/// collisions; the default hasher cost a tenth of a pass at ten thousand Services.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
type HashSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

impl ServiceViews {
    /// Forgets every reading: the configuration changed.
    pub fn clear(&mut self) {
        self.read.clear();
    }

    /// Every LoadBalancer Service of ours that has an IP, with its endpoints, in `services'`
    /// order. Only the Services that are new records, or whose slices are, are read.
    pub fn services(
        &mut self,
        services: &[Arc<ServiceRecord>],
        slices: &[Arc<SliceRecord>],
        config: &Config,
        lb_class: Option<&str>,
    ) -> Vec<Arc<PlanService>> {
        self.pass += 1;
        let moved: Vec<u64> = self.moved_slices(slices);
        let mut out: Vec<Option<Arc<PlanService>>> = Vec::with_capacity(services.len());
        let mut unread = Vec::new();
        let mut seen = 0;
        for svc in services {
            match self.read.get_mut(&address(svc)) {
                Some(read) if !moved.contains(&read.name) => {
                    read.seen = self.pass;
                    seen += 1;
                    out.push(read.view.clone());
                }
                _ => {
                    unread.push((out.len(), svc));
                    out.push(None);
                }
            }
        }
        let wanted: HashSet<(&str, &str)> = unread
            .iter()
            .map(|(_, svc)| svc.namespaced_name())
            .collect();
        let by_service = slices_by_service(slices, &wanted);
        for (i, svc) in unread {
            let now = by_service
                .get(&svc.namespaced_name())
                .map_or(&[][..], Vec::as_slice);
            let read = Read::new(svc, now, (config, lb_class), self.pass);
            out[i].clone_from(&read.view);
            self.read.insert(address(svc), read);
            seen += 1;
        }
        if seen != self.read.len() {
            let pass = self.pass;
            self.read.retain(|_, read| read.seen == pass);
        }
        out.into_iter().flatten().collect()
    }

    /// Takes in this pass's slices; the names (`name_id`) of the Services whose slices are
    /// new, changed or gone.
    fn moved_slices(&mut self, slices: &[Arc<SliceRecord>]) -> Vec<u64> {
        let pass = self.pass;
        let mut moved = Vec::new();
        for slice in slices {
            self.slices
                .entry(address(slice))
                .and_modify(|s| s.seen = pass)
                .or_insert_with(|| {
                    let service = service_of(slice);
                    moved.extend(service);
                    Slice {
                        _slice: Arc::clone(slice),
                        service,
                        seen: pass,
                    }
                });
        }
        if self.slices.len() != slices.len() {
            self.slices.retain(|_, s| {
                if s.seen != pass {
                    moved.extend(s.service);
                }
                s.seen == pass
            });
        }
        moved
    }
}

impl Read {
    fn new(
        svc: &Arc<ServiceRecord>,
        slices: &[&Arc<SliceRecord>],
        (config, lb_class): (&Config, Option<&str>),
        pass: u64,
    ) -> Read {
        Read {
            _service: Arc::clone(svc),
            view: read_service(svc, slices, config, lb_class).map(Arc::new),
            name: name_id(&svc.namespace, &svc.name),
            seen: pass,
        }
    }
}

/// A Service's (namespace, name) as a number, cheap to compare on every pass; two names
/// that share one only make both be read again.
fn name_id(namespace: &str, name: &str) -> u64 {
    use std::hash::BuildHasher;
    foldhash::fast::FixedState::default().hash_one((namespace, name))
}

fn address<T>(object: &Arc<T>) -> usize {
    Arc::as_ptr(object) as usize
}

/// The Service `slice` belongs to, by its label, as `name_id`.
fn service_of(slice: &SliceRecord) -> Option<u64> {
    let name = slice.kept.service.as_ref()?;
    Some(name_id(&slice.namespace, name))
}

/// The slices of the `wanted` Services, by the Service's (namespace, name), borrowed from
/// the slices.
fn slices_by_service<'a>(
    slices: &'a [Arc<SliceRecord>],
    wanted: &HashSet<(&str, &str)>,
) -> HashMap<(&'a str, &'a str), Vec<&'a Arc<SliceRecord>>> {
    let mut by_service: HashMap<(&str, &str), Vec<&Arc<SliceRecord>>> = HashMap::default();
    if wanted.is_empty() {
        return by_service;
    }
    for slice in slices {
        let Some(name) = &slice.kept.service else {
            continue;
        };
        let key = (slice.namespace.as_str(), name.as_str());
        if wanted.contains(&key) {
            by_service.entry(key).or_default().push(slice);
        }
    }
    by_service
}

/// One Service as the planner sees it, with the endpoints of `slices`; None when it is not
/// ours or has no IP.
fn read_service(
    svc: &ServiceRecord,
    slices: &[&Arc<SliceRecord>],
    config: &Config,
    lb_class: Option<&str>,
) -> Option<PlanService> {
    let lb = svc.ours(lb_class)?;
    Some(PlanService {
        labels: lb.labels.clone(),
        ips: lb.ips.clone(),
        pool: pool_of(lb, config)?,
        local_traffic: lb.local_traffic,
        shared: lb.shared,
        endpoints: slices
            .iter()
            .flat_map(|s| s.kept.endpoints.iter().cloned())
            .collect(),
        key: svc.key(),
        uid: lb.uid.clone(),
    })
}

/// The pool the controller recorded, else the pool holding the first IP (a Service from
/// before the annotation existed); `None` when neither is known.
fn pool_of(lb: &LoadBalancer, config: &Config) -> Option<String> {
    if let Some(pool) = &lb.pool {
        return Some(pool.clone());
    }
    let first = lb.ips.first()?;
    config
        .pools
        .values()
        .find(|p| p.cidrs.iter().any(|c| c.contains(first)))
        .map(|p| p.name.clone())
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
    use crate::speaker::records::SLICE_SERVICE_LABEL;
    use serde_json::{Value, json};

    fn from<T: serde::de::DeserializeOwned>(v: Value) -> T {
        serde_json::from_value(v).unwrap()
    }

    fn config() -> Config {
        ironlb_lab::fixtures::config(
            "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: lan}\nspec: {addresses: [192.0.2.128/25]}\n",
        )
    }

    fn svc(name: &str, extra: Value) -> ServiceRecord {
        let mut v = json!({
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Cluster"},
            "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.130"}]}},
        });
        ironlb_lab::fixtures::merge(&mut v, extra);
        ServiceRecord::read(&from(v))
    }

    fn slice(service: &str, endpoints: Value) -> SliceRecord {
        SliceRecord::read(&from(json!({
            "metadata": {"name": format!("{service}-abc"), "namespace": "default",
                         "labels": {SLICE_SERVICE_LABEL: service}},
            "addressType": "IPv4",
            "endpoints": endpoints,
        })))
    }

    fn node(name: &str, conditions: Value, ip: &str) -> Node {
        from(json!({
            "metadata": {"name": name, "labels": {"zone": "a"}},
            "status": {"conditions": conditions, "addresses": [
                {"type": "Hostname", "address": name}, {"type": "InternalIP", "address": ip}]},
        }))
    }

    fn arcs<T>(objects: impl IntoIterator<Item = T>) -> Vec<Arc<T>> {
        objects.into_iter().map(Arc::new).collect()
    }

    /// A pass reads again only the Services whose object or slices are new objects; the
    /// others are the very readings of the last pass.
    #[test]
    fn a_pass_reads_again_only_what_changed() {
        let ready = |ready: bool| json!([{"addresses": ["10.0.0.1"], "nodeName": "n1", "conditions": {"ready": ready}}]);
        let services = arcs([svc("a", json!({})), svc("b", json!({}))]);
        let mut slices = arcs([slice("a", ready(true)), slice("b", ready(true))]);
        let mut views = ServiceViews::default();
        let first = views.services(&services, &slices, &config(), None);
        slices[1] = Arc::new(slice("b", ready(false)));
        let second = views.services(&services, &slices, &config(), None);
        assert!(Arc::ptr_eq(&first[0], &second[0]), "a is not read again");
        assert!(!Arc::ptr_eq(&first[1], &second[1]), "b's slice changed");
        assert_eq!(second[1].endpoints[0].ready, Some(false));
        slices.pop();
        let gone = views.services(&services, &slices, &config(), None);
        assert!(
            Arc::ptr_eq(&first[0], &gone[0]),
            "a is still not read again"
        );
        assert!(gone[1].endpoints.is_empty(), "b's slice is gone");
        slices.push(Arc::new(slice("b", ready(true))));
        let back = views.services(&services, &slices, &config(), None);
        assert_eq!(
            back[1].endpoints[0].ready,
            Some(true),
            "b has a slice again"
        );
        views.clear();
        let third = views.services(&services, &slices, &config(), None);
        assert!(
            !Arc::ptr_eq(&second[0], &third[0]),
            "a new configuration reads all again"
        );
        assert_eq!(*second[0], *third[0]);
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
        let (services_in, slices) = (arcs(services_in), arcs(slices));
        let out = ServiceViews::default().services(&services_in, &slices, &config(), None);
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
