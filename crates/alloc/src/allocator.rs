//! The allocator: pools, assignments and the rules of §3–§4 of MetalLB's behaviour, with
//! deterministic order where MetalLB's is random.

use crate::error::AllocError;
use crate::pool::{PoolState, Position};
use crate::service::{Families, Family, Port, Service};
use config::Config;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

/// The IPs a Service holds, and what other Services need to know to share them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assignment {
    pub pool: String,
    /// IPv4 before IPv6 for dual-stack allocations; requested IPs keep their order.
    pub ips: Vec<IpAddr>,
    /// Only for Services with a sharing key: nobody may share with the others.
    sharing: Option<Arc<Sharing>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Sharing {
    key: String,
    backend_key: String,
    ports: Vec<Port>,
}

/// A Service whose IPs fit no pool after a configuration change; it must be reallocated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Orphan {
    pub key: String,
    pub ips: Vec<IpAddr>,
}

#[derive(Clone, Debug, Default)]
pub struct Allocator {
    pools: BTreeMap<String, PoolState>,
    assigned: BTreeMap<Arc<str>, Assignment>,
    /// Which Services hold each IP (more than one only when shared).
    holders: HashMap<IpAddr, Vec<Arc<str>>>,
    /// Sharing key → the IPs held under it, to find a shareable IP without a scan.
    shared: HashMap<String, BTreeSet<IpAddr>>,
}

impl Allocator {
    pub fn new(config: &Config) -> Self {
        let mut allocator = Allocator::default();
        allocator.set_config(config);
        allocator
    }

    /// Replaces the pools. Assignments whose IPs now lie in another pool move there silently;
    /// those whose IPs fit no pool are dropped and returned.
    pub fn set_config(&mut self, config: &Config) -> Vec<Orphan> {
        self.pools = config
            .pools
            .iter()
            .map(|(name, pool)| (name.clone(), PoolState::new(pool.clone())))
            .collect();
        let old = std::mem::take(&mut self.assigned);
        self.holders.clear();
        self.shared.clear();
        let mut orphans = Vec::new();
        for (key, mut assignment) in old {
            match self.pool_of_all(&assignment.ips) {
                Ok(pool) => {
                    assignment.pool = pool;
                    self.record(key, assignment);
                }
                Err(_) => orphans.push(Orphan {
                    key: key.to_string(),
                    ips: assignment.ips,
                }),
            }
        }
        orphans
    }

    pub fn assignment(&self, key: &str) -> Option<&Assignment> {
        self.assigned.get(key)
    }

    pub fn assignments(&self) -> impl Iterator<Item = (&str, &Assignment)> {
        self.assigned.iter().map(|(k, a)| (&**k, a))
    }

    /// Gives back the Service's IPs.
    pub fn release(&mut self, key: &str) {
        let Some(assignment) = self.assigned.remove(key) else {
            return;
        };
        for ip in &assignment.ips {
            let last = self.holders.get_mut(ip).is_some_and(|h| {
                h.retain(|k| &**k != key);
                h.is_empty()
            });
            if last {
                self.holders.remove(ip);
                if let Some(pool) = self.pools.get_mut(&assignment.pool) {
                    pool.give(ip);
                }
            }
            if let Some(sharing) = &assignment.sharing
                && !self.holders.contains_key(ip)
                && let Some(ips) = self.shared.get_mut(&sharing.key)
            {
                ips.remove(ip);
            }
        }
    }

    /// Takes back IPs a Service already had (from its status, after a restart) before
    /// anything new is allocated.
    pub fn restore(&mut self, svc: &Service, ips: &[IpAddr]) -> Result<Assignment, AllocError> {
        self.release(&svc.key);
        let assignment = self.check_ips(svc, ips)?;
        self.record(svc.key.as_str().into(), assignment.clone());
        Ok(assignment)
    }

    /// Every Service's allocation, processed in a fixed order so that the same Services give
    /// the same IPs in whatever order they are listed: Services that already hold IPs are
    /// re-validated first, then new ones by key. Assignments of Services not listed are freed.
    pub fn reconcile(
        &mut self,
        services: &[Service],
    ) -> BTreeMap<String, Result<Assignment, AllocError>> {
        let wanted: BTreeSet<&str> = services.iter().map(|s| s.key.as_str()).collect();
        let gone: Vec<Arc<str>> = self
            .assigned
            .keys()
            .filter(|k| !wanted.contains(&***k))
            .cloned()
            .collect();
        for key in gone {
            self.release(&key);
        }
        let mut order: Vec<(bool, &Service)> = services
            .iter()
            .map(|s| (!self.assigned.contains_key(s.key.as_str()), s))
            .collect();
        order.sort_by(|(new_a, a), (new_b, b)| (new_a, &a.key).cmp(&(new_b, &b.key)));
        order
            .into_iter()
            .map(|(_, svc)| (svc.key.clone(), self.allocate(svc)))
            .collect()
    }

    /// One Service: keeps its IPs while the config still allows them, otherwise allocates.
    pub fn allocate(&mut self, svc: &Service) -> Result<Assignment, AllocError> {
        if let Some(current) = self.assigned.get(svc.key.as_str()).cloned() {
            if self.still_valid(svc, &current) {
                let refreshed = self.with_missing_family(svc, current);
                self.release(&svc.key);
                self.record(svc.key.as_str().into(), refreshed.clone());
                return Ok(refreshed);
            }
            self.release(&svc.key);
        }
        let assignment = self.choose(svc)?;
        self.record(svc.key.as_str().into(), assignment.clone());
        Ok(assignment)
    }

    /// Addresses in use in a pool, per family (distinct IPs, not Services).
    pub fn in_use(&self, pool: &str, family: Family) -> i64 {
        let ips: BTreeSet<&IpAddr> = self
            .assigned
            .values()
            .filter(|a| a.pool == pool)
            .flat_map(|a| &a.ips)
            .filter(|ip| Family::of(ip) == family)
            .collect();
        ips.len() as i64
    }

    /// Services holding IPs from a pool.
    pub fn services(&self, pool: &str) -> i64 {
        self.assigned.values().filter(|a| a.pool == pool).count() as i64
    }

    pub fn capacity(&self, pool: &str, family: Family) -> i64 {
        self.pools.get(pool).map_or(0, |p| p.capacity(family))
    }

    fn choose(&self, svc: &Service) -> Result<Assignment, AllocError> {
        if !svc.requested.is_empty() {
            return self.check_ips(svc, &svc.requested);
        }
        if let Some(name) = &svc.pool {
            let pool = self
                .pools
                .get(name)
                .ok_or_else(|| AllocError::UnknownPool(name.clone()))?;
            if !pool.allows(svc) {
                return Err(AllocError::PoolNotAllowed(name.clone()));
            }
            return self
                .pick_families(svc, &[pool])
                .ok_or(AllocError::NoAvailableIps);
        }
        let mut pinned: Vec<&PoolState> = self
            .pools
            .values()
            .filter(|p| p.def.allocation.is_some() && p.def.auto_assign && p.allows(svc))
            .collect();
        // Lower priority numbers first, unset last, then by name: deterministic where
        // MetalLB's order is random.
        pinned.sort_by_key(|p| {
            (
                p.def
                    .allocation
                    .as_ref()
                    .and_then(|a| a.priority)
                    .unwrap_or(u32::MAX),
                p.def.name.clone(),
            )
        });
        if let Some(a) = self.pick_families(svc, &pinned) {
            return Ok(a);
        }
        let general: Vec<&PoolState> = self
            .pools
            .values()
            .filter(|p| p.def.allocation.is_none() && p.def.auto_assign)
            .collect();
        self.pick_families(svc, &general)
            .ok_or(AllocError::NoAvailableIps)
    }

    /// The first pool (in the given order) that provides the Service's families.
    fn pick_families(&self, svc: &Service, pools: &[&PoolState]) -> Option<Assignment> {
        let passes: Vec<Vec<Family>> = match svc.families {
            Families::Single(f) => vec![vec![f]],
            Families::RequireDual => vec![vec![Family::V4, Family::V6]],
            Families::PreferDual {
                primary,
                dual_cluster: true,
            } => vec![
                vec![Family::V4, Family::V6],
                vec![primary],
                vec![primary.other()],
            ],
            Families::PreferDual {
                primary,
                dual_cluster: false,
            } => vec![vec![primary], vec![primary.other()]],
        };
        passes.iter().find_map(|families| {
            pools.iter().find_map(|pool| {
                let ips: Option<Vec<IpAddr>> = families
                    .iter()
                    .map(|f| self.candidate(svc, pool, *f))
                    .collect();
                ips.map(|ips| self.assignment_for(svc, &pool.def.name, ips))
            })
        })
    }

    /// The first usable IP of `family` in pool order: a free one, or one this Service may
    /// share, whichever comes first.
    fn candidate(&self, svc: &Service, pool: &PoolState, family: Family) -> Option<IpAddr> {
        let free = pool.first_free(family);
        let shareable = svc.sharing().and_then(|key| {
            self.shared
                .get(key)?
                .iter()
                .filter(|ip| Family::of(ip) == family)
                .filter_map(|ip| pool.position(ip).map(|pos| (pos, *ip)))
                .filter(|(_, ip)| self.can_share(svc, ip).is_ok())
                .min()
        });
        let best: Option<(Position, IpAddr)> = match (free, shareable) {
            (Some(f), Some(s)) => Some(f.min(s)),
            (f, s) => f.or(s),
        };
        best.map(|(_, ip)| ip)
    }

    /// Requested (or restored) IPs: all in one pool the Service may use, of its families,
    /// and free or legally shareable.
    fn check_ips(&self, svc: &Service, ips: &[IpAddr]) -> Result<Assignment, AllocError> {
        let families: BTreeSet<Family> = ips.iter().map(Family::of).collect();
        let fits = match svc.families {
            Families::Single(f) => ips.len() == 1 && families.contains(&f),
            Families::RequireDual => ips.len() == 2 && families.len() == 2,
            Families::PreferDual { .. } => {
                (1..=2).contains(&ips.len()) && families.len() == ips.len()
            }
        };
        if !fits {
            return Err(AllocError::FamilyMismatch(ips.to_vec()));
        }
        let pool = self.pool_of_all(ips)?;
        if let Some(wanted) = &svc.pool
            && wanted != &pool
        {
            return Err(AllocError::NotInRequestedPool {
                ip: ips[0],
                pool: wanted.clone(),
            });
        }
        if !self.pools[&pool].allows(svc) {
            return Err(AllocError::PoolNotAllowed(pool));
        }
        for ip in ips {
            self.can_share(svc, ip)?;
        }
        Ok(self.assignment_for(svc, &pool, ips.to_vec()))
    }

    fn still_valid(&self, svc: &Service, a: &Assignment) -> bool {
        let requested_ok = svc.requested.is_empty() || {
            let mut want = svc.requested.clone();
            let mut have = a.ips.clone();
            want.sort();
            have.sort();
            want == have
        };
        let pool_ok = svc.pool.as_ref().is_none_or(|p| p == &a.pool);
        let families: BTreeSet<Family> = a.ips.iter().map(Family::of).collect();
        let families_ok = match svc.families {
            Families::Single(f) => a.ips.len() == 1 && families.contains(&f),
            Families::RequireDual => families.len() == 2,
            Families::PreferDual { .. } => !a.ips.is_empty(),
        };
        requested_ok
            && pool_ok
            && families_ok
            && self
                .pools
                .get(&a.pool)
                .is_some_and(|p| p.allows(svc) && a.ips.iter().all(|ip| p.position(ip).is_some()))
            && a.ips.iter().all(|ip| self.can_share(svc, ip).is_ok())
    }

    /// Under PreferDualStack, a Service holding one family gets the other from the same pool
    /// as soon as it is available.
    fn with_missing_family(&self, svc: &Service, current: Assignment) -> Assignment {
        let Families::PreferDual {
            dual_cluster: true, ..
        } = svc.families
        else {
            return current;
        };
        let [only] = current.ips.as_slice() else {
            return current;
        };
        let missing = Family::of(only).other();
        match self
            .pools
            .get(&current.pool)
            .and_then(|p| self.candidate(svc, p, missing))
        {
            Some(ip) => {
                let mut ips = vec![*only, ip];
                ips.sort_by_key(Family::of);
                self.assignment_for(svc, &current.pool, ips)
            }
            None => self.assignment_for(svc, &current.pool, current.ips),
        }
    }

    /// MetalLB's sharing rules, checked against every other holder of `ip`.
    fn can_share(&self, svc: &Service, ip: &IpAddr) -> Result<(), AllocError> {
        let Some(holders) = self.holders.get(ip) else {
            return Ok(());
        };
        for other in holders
            .iter()
            .filter(|k| ***k != *svc.key)
            .filter_map(|k| self.assigned.get(k))
        {
            let existing = other
                .sharing
                .as_deref()
                .ok_or(AllocError::ExistingDoesNotShare)?;
            let new = svc.sharing().ok_or(AllocError::NewDoesNotShare)?;
            if existing.key != new {
                return Err(AllocError::SharingKeyMismatch {
                    new: new.to_string(),
                    existing: existing.key.clone(),
                });
            }
            if existing.backend_key != svc.backend_key {
                return Err(AllocError::BackendKeyMismatch {
                    new: svc.backend_key.clone(),
                    existing: existing.backend_key.clone(),
                });
            }
            if let Some(port) = svc.ports.iter().find(|p| existing.ports.contains(p)) {
                return Err(AllocError::PortInUse {
                    port: format!("{}/{}", port.protocol, port.port),
                    ip: *ip,
                });
            }
        }
        Ok(())
    }

    /// The one pool holding every IP.
    fn pool_of_all(&self, ips: &[IpAddr]) -> Result<String, AllocError> {
        let mut found: Option<&str> = None;
        for ip in ips {
            let pool = self
                .pools
                .values()
                .find(|p| p.position(ip).is_some())
                .ok_or(AllocError::NotInAnyPool(*ip))?;
            if found.is_some_and(|f| f != pool.def.name) {
                return Err(AllocError::DifferentPools(ips.to_vec()));
            }
            found = Some(&pool.def.name);
        }
        found.map(str::to_string).ok_or(AllocError::NoAvailableIps)
    }

    fn assignment_for(&self, svc: &Service, pool: &str, ips: Vec<IpAddr>) -> Assignment {
        Assignment {
            pool: pool.to_string(),
            ips,
            sharing: svc.sharing().map(|key| {
                Arc::new(Sharing {
                    key: key.to_string(),
                    backend_key: svc.backend_key.clone(),
                    ports: svc.ports.clone(),
                })
            }),
        }
    }

    fn record(&mut self, key: Arc<str>, assignment: Assignment) {
        for ip in &assignment.ips {
            if let Some(pool) = self.pools.get_mut(&assignment.pool) {
                pool.take(ip);
            }
            self.holders.entry(*ip).or_default().push(key.clone());
            if let Some(sharing) = &assignment.sharing {
                self.shared
                    .entry(sharing.key.clone())
                    .or_default()
                    .insert(*ip);
            }
        }
        self.assigned.insert(key, assignment);
    }
}
