//! The standalone host's view turned into the planner's inputs. Pure.
//!
//! A service's endpoints are the live hosts, each ready while its check passes there: this
//! host's checks are its own, the others' come from the failing checks they spread over
//! gossip (a host not heard from yet counts as passing). Under the planner's `Local` rule
//! that means: BGP is announced by each host whose own check passes, and the layer-2 owner
//! is elected among the live hosts whose check passes.

use super::file::{HostFile, ServiceDef};
use super::health::Passing;
use ironlb_alloc::{Allocator, Families, Family};
use ironlb_membership::MAX_NOTE;
use ironlb_plan::ServiceKey;
use ironlb_plan::announce::{Endpoint, Node, Service};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// A service's IPs and pool, or why it has none.
pub type Allocations = BTreeMap<String, Result<(Vec<IpAddr>, String), String>>;

/// The same file gives the same IPs on every host: the allocator is deterministic, and it
/// is kept across reloads so a service keeps its IPs while the config allows them.
pub fn allocate(alloc: &mut Allocator, desired: &HostFile) -> Allocations {
    alloc.set_config(&desired.config);
    let services: Vec<ironlb_alloc::Service> = desired.services.iter().map(alloc_service).collect();
    alloc
        .reconcile(&services)
        .into_iter()
        .map(|(name, got)| {
            let got = got.map(|a| (a.ips, a.pool)).map_err(|e| e.to_string());
            (name, got)
        })
        .collect()
}

fn alloc_service(s: &ServiceDef) -> ironlb_alloc::Service {
    let mut families: BTreeSet<Family> = s.requested.iter().map(Family::of).collect();
    let families = match (families.pop_first(), families.pop_first()) {
        (Some(_), Some(_)) => Families::RequireDual,
        (Some(f), None) => Families::Single(f),
        _ => Families::PreferDual {
            primary: Family::V4,
            dual_cluster: true,
        },
    };
    ironlb_alloc::Service {
        key: s.name.clone(),
        namespace: String::new(),
        labels: s.labels.clone(),
        namespace_labels: Default::default(),
        families,
        requested: s.requested.clone(),
        pool: s.pool.clone(),
        sharing_key: None,
        backend_key: String::new(),
        ports: s.ports.clone(),
    }
}

/// The hosts: `me` and every other member, with labels from the file's Nodes; `seen_by`
/// holds the members gossip says have seen `me` (none: gossip cannot tell).
pub fn nodes(
    desired: &HostFile,
    me: &str,
    members: &BTreeSet<String>,
    live: &BTreeSet<String>,
    seen_by: Option<&BTreeSet<String>>,
) -> Vec<Node> {
    let mut names = members.clone();
    names.insert(me.to_string());
    names
        .into_iter()
        .map(|name| Node {
            labels: desired.nodes.get(&name).cloned().unwrap_or_default(),
            live: name == me || live.contains(&name),
            network_available: true,
            sees_this: name == me || seen_by.is_none_or(|s| s.contains(&name)),
            answering: Default::default(),
            name,
        })
        .collect()
}

/// The bytes of a note that tell which service list it counts over.
const FINGERPRINT: usize = 8;

/// The most services a file may hold: each host spreads its failing checks as one bit per
/// service in a gossip note (names would not fit in a packet).
pub const MAX_SERVICES: usize = (MAX_NOTE - FINGERPRINT) * 8;

/// How a note lays out a file's services: their names in the order the bits follow, and
/// the fingerprint of that list (hosts running different files cannot read each other's
/// bits). Made once per loaded file, not on every pass.
pub struct NoteLayout {
    names: Vec<String>,
    fingerprint: [u8; FINGERPRINT],
}

impl NoteLayout {
    pub fn of(desired: &HostFile) -> NoteLayout {
        let mut names: Vec<String> = desired.services.iter().map(|s| s.name.clone()).collect();
        names.sort_unstable();
        let mut hash = Sha256::new();
        for name in &names {
            hash.update(name.as_bytes());
            hash.update([0]);
        }
        let digest = hash.finalize();
        let mut fingerprint = [0; FINGERPRINT];
        fingerprint.copy_from_slice(&digest[..FINGERPRINT]);
        NoteLayout { names, fingerprint }
    }

    /// This host's note for the others: the fingerprint, then a bit per service, set while
    /// its check fails here.
    pub fn failing_note(&self, passing: &Passing) -> Vec<u8> {
        let mut note = self.fingerprint.to_vec();
        note.resize(FINGERPRINT + self.names.len().div_ceil(8), 0);
        for (i, name) in self.names.iter().enumerate() {
            if passing.get(name) == Some(&false) {
                note[FINGERPRINT + i / 8] |= 1 << (i % 8);
            }
        }
        note
    }

    /// The services failing on each other host, from their notes. A host whose note counts
    /// over another service list (it runs another file) tells nothing, like one not heard
    /// from yet.
    pub fn failing_elsewhere(
        &self,
        notes: &BTreeMap<String, Vec<u8>>,
    ) -> BTreeMap<String, BTreeSet<String>> {
        notes
            .iter()
            .filter_map(|(node, note)| {
                let bits = note.strip_prefix(self.fingerprint.as_slice())?;
                let failing = self
                    .names
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| bits.get(i / 8).is_some_and(|b| b & (1 << (i % 8)) != 0))
                    .map(|(_, name)| name.clone())
                    .collect();
                Some((node.clone(), failing))
            })
            .collect()
    }
}

pub fn services(
    desired: &HostFile,
    allocations: &Allocations,
    me: &str,
    live: &BTreeSet<String>,
    passing: &Passing,
    failing_elsewhere: &BTreeMap<String, BTreeSet<String>>,
) -> Vec<Service> {
    desired
        .services
        .iter()
        .filter_map(|s| {
            let Ok((ips, pool)) = allocations.get(&s.name)? else {
                return None;
            };
            let mine = Endpoint {
                node: Some(me.to_string()),
                ready: Some(passing.get(&s.name).copied().unwrap_or(false)),
                serving: None,
                has_address: true,
            };
            let others = live.iter().filter(|n| *n != me).map(|n| Endpoint {
                node: Some(n.clone()),
                ready: failing_elsewhere
                    .get(n)
                    .is_some_and(|f| f.contains(&s.name))
                    .then_some(false),
                serving: None,
                has_address: true,
            });
            Some(Service {
                key: ServiceKey::standalone(&s.name),
                labels: s.labels.clone(),
                ips: ips.clone(),
                pool: pool.clone(),
                local_traffic: true,
                shared: false,
                endpoints: std::iter::once(mine).chain(others).collect(),
                uid: None,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironlb_plan::announce::plan;

    const FILE: &str = r#"
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: routed, namespace: metallb-system}
spec: {addresses: [198.51.100.0/24], autoAssign: false}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: lan, namespace: metallb-system}
spec: {addresses: [192.0.2.128/25]}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: gw, namespace: metallb-system}
spec: {peerAddress: 192.0.2.1, peerASN: 64512, myASN: 64513}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: routed, namespace: metallb-system}
spec: {ipAddressPools: [routed]}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: lan, namespace: metallb-system}
spec: {ipAddressPools: [lan]}
---
apiVersion: ironlb.dev/v1alpha1
kind: StandaloneService
metadata: {name: web}
spec: {loadBalancerIPs: [198.51.100.32], ports: [{port: 80}]}
---
apiVersion: ironlb.dev/v1alpha1
kind: StandaloneService
metadata: {name: dns}
spec: {pool: lan, ports: [{port: 53, protocol: UDP}]}
"#;

    fn desired() -> HostFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), FILE).unwrap();
        super::super::file::read(file.path(), &Allocator::default())
            .unwrap()
            .desired
            .unwrap()
    }

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn every_host_allocates_the_same_ips_whatever_the_order() {
        let d = desired();
        let mut reversed = d.clone();
        reversed.services.reverse();
        let a = allocate(&mut Allocator::new(&d.config), &d);
        let b = allocate(&mut Allocator::new(&reversed.config), &reversed);
        assert_eq!(a, b);
        assert_eq!(
            a["web"],
            Ok((vec!["198.51.100.32".parse().unwrap()], "routed".into()))
        );
        assert_eq!(
            a["dns"],
            Ok((vec!["192.0.2.128".parse().unwrap()], "lan".into()))
        );
    }

    #[test]
    fn bgp_follows_this_hosts_check_and_layer2_has_one_owner() {
        let d = desired();
        let allocations = allocate(&mut Allocator::new(&d.config), &d);
        let members = set(&["node1", "node2"]);
        let all_pass = Passing::from([("web".into(), true), ("dns".into(), true)]);
        type Elsewhere = BTreeMap<String, BTreeSet<String>>;
        let plan_with = |me: &str, live: &BTreeSet<String>, passing: &Passing, told: &Elsewhere| {
            let nodes = nodes(&d, me, &members, live, None);
            let this = nodes.iter().find(|n| n.name == me).unwrap().clone();
            let services = services(&d, &allocations, me, live, passing, told);
            plan(&d.config, &this, &nodes, &services)
        };
        let plan_for = |me: &str, live: &BTreeSet<String>, passing: &Passing| {
            plan_with(me, live, passing, &Elsewhere::new())
        };
        let live = set(&["node1", "node2"]);
        let p1 = plan_for("node1", &live, &all_pass);
        let p2 = plan_for("node2", &live, &all_pass);
        for p in [&p1, &p2] {
            assert!(p.bgp["gw"].contains_key(&"198.51.100.32/32".parse().unwrap()));
        }
        assert_eq!(
            p1.l2.len() + p2.l2.len(),
            1,
            "exactly one host answers {p1:?} {p2:?}"
        );

        let web_fails = Passing::from([("web".into(), false), ("dns".into(), true)]);
        let p1 = plan_for("node1", &live, &web_fails);
        assert!(p1.bgp.get("gw").is_none_or(|r| r.is_empty()), "{p1:?}");
        assert_eq!(
            p1.skipped.values().flatten().collect::<Vec<_>>(),
            [&"noLocalEndpoints"]
        );

        let alone = set(&["node2"]);
        assert_eq!(
            plan_for("node2", &alone, &all_pass).l2.len(),
            1,
            "the survivor takes the IP"
        );

        // The layer-2 owner's check fails: it lets go, and the other host, told over
        // gossip, takes the IP.
        let (owner, other) = if p2.l2.is_empty() {
            ("node1", "node2")
        } else {
            ("node2", "node1")
        };
        let dns_fails = Passing::from([("web".into(), true), ("dns".into(), false)]);
        assert!(
            plan_for(owner, &live, &dns_fails).l2.is_empty(),
            "the owner lets go"
        );
        let layout = NoteLayout::of(&d);
        let note = layout.failing_note(&dns_fails);
        let told = layout.failing_elsewhere(&BTreeMap::from([(owner.to_string(), note)]));
        assert_eq!(
            plan_with(other, &live, &all_pass, &told).l2.len(),
            1,
            "{other} takes over"
        );
        assert!(
            plan_for(other, &live, &all_pass).l2.is_empty(),
            "not before it is told"
        );
    }

    /// A file with `n` services, named s0, s1, …
    fn with_services(n: usize) -> HostFile {
        let mut d = desired();
        let template = d.services[0].clone();
        d.services = (0..n)
            .map(|i| ServiceDef {
                name: format!("s{i}"),
                ..template.clone()
            })
            .collect();
        d
    }

    #[test]
    fn notes_carry_every_failing_check_of_the_largest_file_allowed() {
        let d = with_services(MAX_SERVICES);
        let passing: Passing = d
            .services
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.clone(), i % 7 != 3))
            .collect();
        let layout = NoteLayout::of(&d);
        let note = layout.failing_note(&passing);
        assert!(note.len() <= MAX_NOTE, "{} bytes", note.len());
        let told = layout.failing_elsewhere(&BTreeMap::from([("node2".to_string(), note)]));
        let failing: BTreeSet<String> = passing
            .iter()
            .filter(|(_, ok)| !**ok)
            .map(|(name, _)| name.clone())
            .collect();
        assert_eq!(told["node2"], failing);
    }

    #[test]
    fn a_note_over_another_service_list_tells_nothing() {
        let (ours, theirs) = (with_services(3), with_services(4));
        let all_fail: Passing = theirs
            .services
            .iter()
            .map(|s| (s.name.clone(), false))
            .collect();
        let notes = BTreeMap::from([
            (
                "other-file".to_string(),
                NoteLayout::of(&theirs).failing_note(&all_fail),
            ),
            ("garbage".to_string(), b"s0".to_vec()),
            (
                "same-file".to_string(),
                NoteLayout::of(&ours).failing_note(&all_fail),
            ),
        ]);
        let told = NoteLayout::of(&ours).failing_elsewhere(&notes);
        assert_eq!(told.keys().collect::<Vec<_>>(), ["same-file"]);
        assert_eq!(told["same-file"], set(&["s0", "s1", "s2"]));
    }
}
