//! The status objects a speaker owns: one ServiceL2Status per Service it answers for on
//! layer 2, one ServiceBGPStatus per Service it announces to at least one peer (MetalLB
//! behaviour §1.7, §1.8). Pure bookkeeping: what to create, update and delete.

use api::v1beta1::{ServiceBGPStatus, ServiceL2Status};
use ironlb_plan::ServiceKey;
use ironlb_plan::announce::Announcement;
use kube::ResourceExt;
use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::sync::Arc;

pub const NODE_LABEL: &str = "metallb.io/node";
pub const SERVICE_NAME_LABEL: &str = "metallb.io/service-name";
pub const SERVICE_NAMESPACE_LABEL: &str = "metallb.io/service-namespace";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Layer2,
    Bgp,
}

impl Kind {
    /// The `generateName` prefix MetalLB uses.
    pub fn prefix(self) -> &'static str {
        match self {
            Kind::Layer2 => "l2-",
            Kind::Bgp => "bgp-",
        }
    }

    /// The event action; one per protocol, since events that share an action collapse into
    /// one series.
    pub fn action(self) -> &'static str {
        match self {
            Kind::Layer2 => "AnnounceLayer2",
            Kind::Bgp => "AnnounceBGP",
        }
    }

    /// The protocol as the `nodeAssigned` event names it.
    pub fn protocol(self) -> &'static str {
        match self {
            Kind::Layer2 => "layer2",
            Kind::Bgp => "bgp",
        }
    }
}

/// One status object: which Service it is about, and its interfaces (layer 2) or peers (BGP).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub service: ServiceKey,
    pub detail: Detail,
}

impl Status {
    fn new(kind: Kind, service: &ServiceKey, names: &[String]) -> Status {
        Status {
            service: service.clone(),
            detail: Detail::of(kind, names.to_vec()),
        }
    }
}

/// What a status object lists besides its Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Detail {
    /// The interfaces answering for it on layer 2 (empty: every eligible one).
    Interfaces(Vec<String>),
    /// The BGP peers it is announced to.
    Peers(Vec<String>),
}

impl Detail {
    pub fn of(kind: Kind, names: Vec<String>) -> Detail {
        match kind {
            Kind::Layer2 => Detail::Interfaces(names),
            Kind::Bgp => Detail::Peers(names),
        }
    }

    pub fn kind(&self) -> Kind {
        match self {
            Detail::Interfaces(_) => Kind::Layer2,
            Detail::Peers(_) => Kind::Bgp,
        }
    }

    pub fn names(&self) -> &[String] {
        match self {
            Detail::Interfaces(names) | Detail::Peers(names) => names,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StatusWrite {
    Create(Status),
    /// The object's name, and its new status.
    Update(String, Status),
    Delete(String, Kind),
}

/// Brings what this node's status objects should say up to date with its plan, for the
/// `services` whose announcement may have changed; true when anything did.
pub fn update_desired<'a>(
    desired: &mut BTreeMap<(Kind, ServiceKey), Vec<String>>,
    announced: &BTreeMap<ServiceKey, Arc<Announcement>>,
    services: impl IntoIterator<Item = &'a ServiceKey>,
) -> bool {
    let mut changed = false;
    for service in services {
        let a = announced.get(service);
        let layer2 = a.and_then(|a| a.layer2.as_ref());
        let layer2 = layer2.map(|n| n.iter().cloned().collect());
        let peers = a.map(|a| &a.peers).filter(|p| !p.is_empty()).cloned();
        for (kind, want) in [(Kind::Layer2, layer2), (Kind::Bgp, peers)] {
            let key = (kind, service.clone());
            if desired.get(&key) == want.as_ref() {
                continue;
            }
            changed = true;
            match want {
                Some(names) => desired.insert(key, names),
                None => desired.remove(&key),
            };
        }
    }
    changed
}

/// The status objects this node has written, by (kind, Service): the object's name and
/// what it says. Read from the cluster once at start; afterwards this node's own record,
/// so a pass that runs before the watch shows a new object never creates a second one.
#[derive(Debug, Default)]
pub struct Book {
    written: BTreeMap<(Kind, ServiceKey), (String, Vec<String>)>,
}

impl Book {
    /// Starts from the objects the cluster holds for this node; repeats are to be deleted.
    pub fn from_cluster(
        l2: &[impl Borrow<ServiceL2Status>],
        bgp: &[impl Borrow<ServiceBGPStatus>],
    ) -> (Book, Vec<StatusWrite>) {
        let mut book = Book::default();
        let mut repeats = Vec::new();
        let found = l2
            .iter()
            .map(Borrow::borrow)
            .map(|o| {
                let s = o.status.clone().unwrap_or_default();
                let detail = s.interfaces.into_iter().map(|i| i.name).collect();
                (
                    Kind::Layer2,
                    o.name_any(),
                    s.service_namespace,
                    s.service_name,
                    detail,
                )
            })
            .chain(bgp.iter().map(Borrow::borrow).map(|o| {
                let s = o.status.clone().unwrap_or_default();
                (
                    Kind::Bgp,
                    o.name_any(),
                    s.service_namespace,
                    s.service_name,
                    s.peers,
                )
            }));
        for (kind, name, ns, svc, detail) in found {
            let key = (kind, ServiceKey::new(ns, svc));
            match book.written.entry(key) {
                std::collections::btree_map::Entry::Occupied(_) => {
                    repeats.push(StatusWrite::Delete(name, kind))
                }
                std::collections::btree_map::Entry::Vacant(slot) => {
                    slot.insert((name, detail));
                }
            }
        }
        (book, repeats)
    }

    /// The writes that bring the objects to `desired`, in one walk of both sorted maps.
    pub fn writes(&self, desired: &BTreeMap<(Kind, ServiceKey), Vec<String>>) -> Vec<StatusWrite> {
        use std::cmp::Ordering::{Equal, Greater, Less};
        let mut out = Vec::new();
        let (mut w, mut d) = (self.written.iter().peekable(), desired.iter().peekable());
        loop {
            let order = match (w.peek(), d.peek()) {
                (None, None) => return out,
                (Some(_), None) => Less,
                (None, Some(_)) => Greater,
                (Some((wk, _)), Some((dk, _))) => wk.cmp(dk),
            };
            match order {
                Less => {
                    let ((kind, _), (name, _)) = w.next().expect("peeked");
                    out.push(StatusWrite::Delete(name.clone(), *kind));
                }
                Greater => {
                    let ((kind, service), want) = d.next().expect("peeked");
                    out.push(StatusWrite::Create(Status::new(*kind, service, want)));
                }
                Equal => {
                    let ((kind, service), (name, detail)) = w.next().expect("peeked");
                    let (_, want) = d.next().expect("peeked");
                    if want != detail {
                        let status = Status::new(*kind, service, want);
                        out.push(StatusWrite::Update(name.clone(), status));
                    }
                }
            }
        }
    }

    /// Records a write that succeeded; `name` is the created object's (server-chosen) name.
    pub fn record(&mut self, write: &StatusWrite, name: Option<String>) {
        match write {
            StatusWrite::Create(s) => {
                if let Some(name) = name {
                    self.written.insert(
                        (s.detail.kind(), s.service.clone()),
                        (name, s.detail.names().to_vec()),
                    );
                }
            }
            StatusWrite::Update(name, s) => {
                self.written.insert(
                    (s.detail.kind(), s.service.clone()),
                    (name.clone(), s.detail.names().to_vec()),
                );
            }
            StatusWrite::Delete(name, kind) => {
                self.written
                    .retain(|(k, _), (n, _)| !(k == kind && n == name));
            }
        }
    }

    /// Whether this node has written the object for `service` of `kind`.
    pub fn holds(&self, kind: Kind, service: &ServiceKey) -> bool {
        self.written.contains_key(&(kind, service.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeSet;

    /// Service (in `default`), its peers, and its layer-2 interfaces (None: not on layer 2
    /// here).
    type Entry<'a> = (&'a str, &'a [&'a str], Option<&'a [&'a str]>);

    fn announced(entries: &[Entry<'_>]) -> BTreeMap<ServiceKey, Arc<Announcement>> {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        entries
            .iter()
            .map(|(svc, peers, l2)| {
                (
                    ServiceKey::new("default", *svc),
                    Arc::new(Announcement {
                        ips: Vec::new(),
                        peers: names(peers),
                        layer2: l2.map(set),
                        uid: None,
                    }),
                )
            })
            .collect()
    }

    fn desired(
        announced: &BTreeMap<ServiceKey, Arc<Announcement>>,
    ) -> BTreeMap<(Kind, ServiceKey), Vec<String>> {
        let mut out = BTreeMap::new();
        update_desired(&mut out, announced, announced.keys());
        out
    }

    fn kinds(writes: &[StatusWrite]) -> Vec<String> {
        writes
            .iter()
            .map(|w| match w {
                StatusWrite::Create(s) => {
                    format!(
                        "create {:?} {} {:?}",
                        s.detail.kind(),
                        s.service,
                        s.detail.names()
                    )
                }
                StatusWrite::Update(n, s) => format!("update {n} {:?}", s.detail.names()),
                StatusWrite::Delete(n, k) => format!("delete {k:?} {n}"),
            })
            .collect()
    }

    #[test]
    fn creates_updates_and_deletes_follow_the_plan() {
        let mut book = Book::default();
        let plan = announced(&[("web", &["gw"], Some(&[])), ("dns", &[], Some(&["eth0"]))]);
        let writes = book.writes(&desired(&plan));
        assert_eq!(
            kinds(&writes),
            [
                "create Layer2 default/dns [\"eth0\"]",
                "create Layer2 default/web []",
                "create Bgp default/web [\"gw\"]",
            ]
        );
        for (i, w) in writes.iter().enumerate() {
            book.record(w, Some(format!("obj-{i}")));
        }
        assert!(
            book.writes(&desired(&plan)).is_empty(),
            "nothing to do twice"
        );

        let later = announced(&[("web", &["gw", "gw6"], None)]);
        assert_eq!(
            kinds(&book.writes(&desired(&later))),
            [
                "delete Layer2 obj-0",
                "delete Layer2 obj-1",
                "update obj-2 [\"gw\", \"gw6\"]"
            ]
        );
    }

    #[test]
    fn only_the_named_services_are_brought_up_to_date() {
        let web = ServiceKey::new("default", "web");
        let mut want = desired(&announced(&[
            ("web", &["gw"], None),
            ("dns", &["gw"], None),
        ]));
        let later = announced(&[("web", &["gw2"], Some(&[]))]);
        assert!(update_desired(&mut want, &later, [&web]));
        let dns = ServiceKey::new("default", "dns");
        assert_eq!(
            want,
            BTreeMap::from([
                ((Kind::Layer2, web.clone()), vec![]),
                ((Kind::Bgp, dns), vec!["gw".to_string()]),
                ((Kind::Bgp, web.clone()), vec!["gw2".to_string()]),
            ]),
            "dns was not named, so it stays"
        );
        assert!(!update_desired(&mut want, &later, [&web]), "nothing new");
    }

    #[test]
    fn a_failed_create_is_tried_again_and_repeats_in_the_cluster_are_deleted() {
        let plan = announced(&[("web", &["gw"], None)]);
        let mut book = Book::default();
        let writes = book.writes(&desired(&plan));
        book.record(&writes[0], None);
        assert_eq!(
            book.writes(&desired(&plan)).len(),
            1,
            "no name, not written"
        );

        let status = |name: &str| -> ServiceBGPStatus {
            serde_json::from_value(json!({
                "apiVersion": "metallb.io/v1beta1", "kind": "ServiceBGPStatus",
                "metadata": {"name": name, "namespace": "metallb-system"},
                "spec": {},
                "status": {"node": "n1", "serviceName": "web", "serviceNamespace": "default", "peers": ["gw"]},
            }))
            .unwrap()
        };
        let no_l2: [ServiceL2Status; 0] = [];
        let (book, repeats) = Book::from_cluster(&no_l2, &[status("bgp-a"), status("bgp-b")]);
        assert_eq!(kinds(&repeats), ["delete Bgp bgp-b"]);
        assert!(
            book.writes(&desired(&plan)).is_empty(),
            "the surviving object already says it"
        );
    }
}
