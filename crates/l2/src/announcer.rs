//! This node's layer-2 presence: one responder per answering interface, started and stopped
//! as links come and go, each answering for the claims placed on it.

use crate::interfaces::{Exclusions, Link, answering, place};
use crate::responder::{Counts, Responder};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// IP → the interfaces its L2Advertisements name (empty: every answering interface).
pub type Claims = BTreeMap<IpAddr, BTreeSet<String>>;

pub struct Announcer {
    exclude: Exclusions,
    responders: BTreeMap<String, (u32, Responder)>,
}

impl Announcer {
    pub fn new(exclude: Exclusions) -> Announcer {
        Announcer {
            exclude,
            responders: BTreeMap::new(),
        }
    }

    /// Interfaces matching `exclude` stop answering at the next `update`.
    pub fn set_exclusions(&mut self, exclude: Exclusions) {
        self.exclude = exclude;
    }

    /// Brings the responders in line with the links and claims (inside a tokio runtime).
    /// Returns the claims no interface can carry, for an `announceFailed` event.
    pub fn update(&mut self, links: &[Link], claims: &Claims) -> Claims {
        let answering = answering(links, &self.exclude);
        // A link that went away, or came back under the same name with a new index, has a
        // responder bound to a dead socket.
        self.responders.retain(|name, (index, _)| {
            let keep = answering
                .iter()
                .any(|a| a.name == *name && a.index == *index);
            if !keep {
                tracing::info!(interface = %name, "interface gone; no longer answering on it");
            }
            keep
        });
        let placement = place(claims, &answering);
        for a in &answering {
            let ips = placement
                .by_interface
                .get(&a.name)
                .cloned()
                .unwrap_or_default();
            if !self.responders.contains_key(&a.name) {
                match Responder::start(&a.name) {
                    Ok(r) => {
                        tracing::info!(interface = %a.name, arp = a.arp, ndp = a.ndp, "answering on interface");
                        self.responders.insert(a.name.clone(), (a.index, r));
                    }
                    Err(e) => {
                        tracing::warn!(interface = %a.name, error = %e, "cannot answer on interface");
                        continue;
                    }
                }
            }
            self.responders[&a.name].1.set_claims(ips);
        }
        placement.unplaced
    }

    /// The interfaces answering now.
    pub fn interfaces(&self) -> Vec<String> {
        self.responders.keys().cloned().collect()
    }

    /// The counters per IP, summed over the interfaces answering for it (MetalLB counts
    /// per IP).
    pub fn counts(&self) -> BTreeMap<IpAddr, Counts> {
        let mut out: BTreeMap<IpAddr, Counts> = BTreeMap::new();
        for (_, r) in self.responders.values() {
            for (ip, c) in r.stats.per_ip() {
                let sum = out.entry(ip).or_default();
                sum.requests_received += c.requests_received;
                sum.responses_sent += c.responses_sent;
                sum.gratuitous_sent += c.gratuitous_sent;
            }
        }
        out
    }
}
