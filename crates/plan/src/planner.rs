//! The plan kept from pass to pass. Each Service's part (`announce::part`) is kept with the
//! very `Arc` it was planned from; a pass plans again only the Services that are new
//! objects, and every Service only when what all parts depend on (the configuration, this
//! node, the nodes) changed. The parts are joined into the `Plan` in place, and the plan
//! says what changed (`Plan::changes`), so one change at ten thousand Services costs one
//! Service's planning and the engines hear only that. The answer is the same as planning
//! every Service afresh: the property test below holds the two together.

use crate::ServiceKey;
use crate::announce::{self, Node, Part, Plan, Route, Service};
use crate::sessions::{self, Local};
use config::Config;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Arc;

/// Keys are Service names, prefixes and addresses, which need no defence against chosen
/// collisions.
type Hasher = foldhash::fast::RandomState;

#[derive(Default)]
pub struct Planner {
    plan: Plan,
    /// What the parts were planned against.
    context: Option<Context>,
    /// By the address of the Service planned: a pass looks every Service up, and an
    /// address is cheaper to find than a name.
    parts: HashMap<usize, Planned, Hasher>,
    /// Which entry of `parts` holds each Service.
    by_key: HashMap<ServiceKey, usize, Hasher>,
    /// How many Services this pass saw: when all of `parts`, none went away.
    seen: usize,
    /// What each Service gives each (peer, prefix), and each layer-2 IP: Services that share
    /// an IP share these.
    routes: Shares<(String, ipnet::IpNet), Route>,
    l2: Shares<IpAddr, BTreeSet<String>>,
    pass: u64,
}

/// Everything a Service's part depends on besides the Service itself and whether this node
/// answers its IP already.
#[derive(PartialEq)]
struct Context {
    config: Config,
    /// This node, without the IPs it answers.
    this: Node,
    nodes: Vec<Node>,
}

struct Planned {
    /// The object planned; holding it keeps its address from being reused.
    service: Arc<Service>,
    /// Whether this node answered the Service's first IP.
    answering: bool,
    /// Boxed, so that the table a pass walks stays small.
    part: Box<Part>,
    /// The last pass that saw the Service.
    seen: u64,
}

/// The keys a pass touched, to join again.
#[derive(Default)]
struct Touched {
    routes: BTreeSet<(String, ipnet::IpNet)>,
    l2: BTreeSet<IpAddr>,
}

impl Planner {
    /// Everything this node's engines run: what it announces, its sessions, and the
    /// interfaces layer 2 leaves out.
    pub fn node_plan(
        &mut self,
        config: &Config,
        local: &Local,
        this: &Node,
        nodes: &[Node],
        services: &[Arc<Service>],
    ) -> &Plan {
        self.announce(config, this, nodes, services);
        self.plan.sessions = sessions::sessions(config, local);
        self.plan
            .exclusions
            .clone_from(&config.interface_exclusions);
        &self.plan
    }

    /// What this node announces, planning again only what changed since the last pass.
    pub fn announce(
        &mut self,
        config: &Config,
        this: &Node,
        nodes: &[Node],
        services: &[Arc<Service>],
    ) {
        self.pass += 1;
        self.seen = 0;
        self.plan.changes = Default::default();
        let fresh = self.take_context(config, this, nodes);
        let peers: Vec<&config::Peer> = config.peers_for(&this.labels).collect();
        let mut touched = Touched::default();
        for svc in services {
            let answering = svc
                .ips
                .first()
                .is_some_and(|ip| this.answering.contains(ip));
            if !fresh && self.keeps(svc, answering) {
                continue;
            }
            let part = announce::part(config, this, nodes, &peers, svc);
            self.replace(svc, answering, part, &mut touched);
        }
        self.forget_unseen(&mut touched);
        self.join(touched);
    }

    /// Whether `svc`'s part stands: planned from this very object, with this node answering
    /// its IP as it did then.
    fn keeps(&mut self, svc: &Arc<Service>, answering: bool) -> bool {
        let Some(p) = self.parts.get_mut(&address(svc)) else {
            return false;
        };
        if p.answering != answering {
            return false;
        }
        p.seen = self.pass;
        self.seen += 1;
        true
    }

    fn replace(&mut self, svc: &Arc<Service>, answering: bool, part: Part, touched: &mut Touched) {
        let old = self.by_key.get(&svc.key).and_then(|a| self.parts.remove(a));
        let old = old.map(|p| *p.part).unwrap_or_default();
        self.change(&svc.key, &old, &part, touched);
        let planned = Planned {
            service: Arc::clone(svc),
            answering,
            part: Box::new(part),
            seen: self.pass,
        };
        self.parts.insert(address(svc), planned);
        self.by_key.insert(svc.key.clone(), address(svc));
        self.seen += 1;
    }

    pub fn into_plan(self) -> Plan {
        self.plan
    }

    /// Keeps the context; true when it differs from the last one.
    fn take_context(&mut self, config: &Config, this: &Node, nodes: &[Node]) -> bool {
        let this = Node {
            answering: BTreeSet::new(),
            ..this.clone()
        };
        let same = self
            .context
            .as_ref()
            .is_some_and(|c| c.this == this && c.nodes == nodes && c.config == *config);
        if !same {
            self.context = Some(Context {
                config: config.clone(),
                this,
                nodes: nodes.to_vec(),
            });
        }
        !same
    }

    /// Drops the parts of Services the pass did not see.
    fn forget_unseen(&mut self, touched: &mut Touched) {
        if self.seen == self.parts.len() {
            return;
        }
        let pass = self.pass;
        let mut gone = Vec::new();
        self.parts.retain(|_, p| {
            let seen = p.seen == pass;
            if !seen {
                gone.push((p.service.key.clone(), std::mem::take(&mut *p.part)));
            }
            seen
        });
        for (key, part) in gone {
            self.by_key.remove(&key);
            self.change(&key, &part, &Part::default(), touched);
        }
    }

    /// Replaces `key`'s part `old` with `new` in the shares, the announcements and the
    /// skip reasons.
    fn change(&mut self, key: &ServiceKey, old: &Part, new: &Part, touched: &mut Touched) {
        if old == new {
            return;
        }
        self.routes
            .replace(key, &old.routes, &new.routes, &mut touched.routes);
        self.l2.replace(key, &old.l2, &new.l2, &mut touched.l2);
        if old.announced != new.announced || old.skipped != new.skipped {
            self.plan.changes.services.insert(key.clone());
        }
        set(&mut self.plan.announced, key, new.announced.clone());
        let skipped = (!new.skipped.is_empty()).then(|| new.skipped.clone());
        set(&mut self.plan.skipped, key, skipped);
    }

    /// Joins what the Services give each touched key into the plan, recording the routes
    /// that changed.
    fn join(&mut self, touched: Touched) {
        for key in touched.routes {
            let route = self.routes.of(&key).map(|shares| {
                let mut route = Route::default();
                shares.for_each(|r| route.merge(r));
                route
            });
            let (peer, prefix) = key;
            let table = self.plan.bgp.entry(peer.clone()).or_default();
            if table.get(&prefix) == route.as_ref() {
                continue;
            }
            set(table, &prefix, route.clone());
            if table.is_empty() {
                self.plan.bgp.remove(&peer);
            }
            self.plan
                .changes
                .routes
                .entry(peer)
                .or_default()
                .push((prefix, route));
        }
        for ip in touched.l2 {
            // Services sharing an IP: the last one's interfaces, as a full pass would leave.
            let interfaces = self
                .l2
                .of(&ip)
                .and_then(|mut shares| shares.next_back().cloned());
            set(&mut self.plan.l2, &ip, interfaces);
        }
    }
}

fn address<T>(object: &Arc<T>) -> usize {
    Arc::as_ptr(object) as usize
}

/// Sets `key` to `value`, or removes it for None.
fn set<K: Ord + Clone, V>(map: &mut BTreeMap<K, V>, key: &K, value: Option<V>) {
    match value {
        Some(v) => {
            map.insert(key.clone(), v);
        }
        None => {
            map.remove(key);
        }
    }
}

/// The value paired with `key`.
fn value_of<'a, K: PartialEq, V>(pairs: &'a [(K, V)], key: &K) -> Option<&'a V> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// What each Service gives a key that several may share, in Service order (a vector: most
/// keys have one Service).
struct Shares<K, V>(HashMap<K, Vec<(ServiceKey, V)>, Hasher>);

impl<K, V> Default for Shares<K, V> {
    fn default() -> Self {
        Shares(HashMap::default())
    }
}

impl<K: Hash + Ord + Clone, V: Clone + PartialEq> Shares<K, V> {
    /// Replaces what `service` gives: `old` by `new` (a part's few pairs), noting each key
    /// whose share changed.
    fn replace(
        &mut self,
        service: &ServiceKey,
        old: &[(K, V)],
        new: &[(K, V)],
        touched: &mut BTreeSet<K>,
    ) {
        for (key, _) in old.iter().filter(|(k, _)| value_of(new, k).is_none()) {
            if let Some(shares) = self.0.get_mut(key) {
                shares.retain(|(s, _)| s != service);
                if shares.is_empty() {
                    self.0.remove(key);
                }
            }
            touched.insert(key.clone());
        }
        for (key, value) in new.iter().filter(|(k, v)| value_of(old, k) != Some(v)) {
            let shares = self.0.entry(key.clone()).or_default();
            match shares.binary_search_by(|(s, _)| s.cmp(service)) {
                Ok(i) => shares[i].1 = value.clone(),
                Err(i) => {
                    // Room for one more, not the four a push makes: most keys stay at one.
                    shares.reserve_exact(1);
                    shares.insert(i, (service.clone(), value.clone()));
                }
            }
            touched.insert(key.clone());
        }
    }

    /// What the Services give `key`, in their order; None when none does.
    fn of(&self, key: &K) -> Option<impl DoubleEndedIterator<Item = &V>> {
        self.0.get(key).map(|shares| shares.iter().map(|(_, v)| v))
    }
}
