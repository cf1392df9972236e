//! The node agents' view of gossip: which other nodes are live, by name, once gossip has
//! proven itself. Until someone has been heard (or with nobody to gossip with) it has no
//! answer, and the caller falls back to what its source says: a blocked gossip port must
//! not make every node think it is alone and answer for every IP.
//!
//! The members follow the cluster's Nodes as they come and go. Each node also spreads the
//! live set it last applied, so that a node taking an IP over from a live one (a newcomer,
//! most of all) waits until that node has seen it and let go: two nodes never answer at
//! once (see `plan::announce`'s handover).

use anyhow::{Context, Result, bail};
use ironlb_membership::{Key, MAX_NOTE, Membership, Settings, join};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// Long enough for the other members to answer a fresh member on a LAN.
const BOOTSTRAP: Duration = Duration::from_secs(2);

pub struct Gossip {
    me: String,
    /// Other members' gossip addresses → node names.
    names: BTreeMap<SocketAddr, String>,
    live: watch::Receiver<BTreeSet<SocketAddr>>,
    notes: watch::Receiver<ironlb_membership::Notes>,
    started: Instant,
    heard: bool,
    /// The view this node last applied, as spread in its note.
    applied: Applied,
    /// The caller's part of this node's note.
    note: Vec<u8>,
    membership: Option<Membership>,
}

/// The shared secret in `path` (MetalLB mounts its `memberlist` Secret's `secretkey`).
pub fn key(path: &Path) -> Result<Key> {
    let secret = std::fs::read(path)
        .with_context(|| format!("reading the gossip key {}", path.display()))?;
    let secret = secret.trim_ascii();
    if secret.is_empty() {
        bail!("the gossip key file {} is empty", path.display());
    }
    Ok(Key::from_secret(secret))
}

impl Gossip {
    /// Joins the gossip as node `me` on `local`, through the members in `names` (this node
    /// excluded; more may come with `set_names`). Until someone answers, `live` has no
    /// answer.
    pub async fn join(
        me: &str,
        local: SocketAddr,
        names: BTreeMap<SocketAddr, String>,
        key: Option<Key>,
    ) -> Result<Gossip> {
        let settings = Settings {
            expected_size: u32::try_from(names.len() + 1).unwrap_or(u32::MAX),
            key,
            ..Settings::default()
        };
        let seeds = names.keys().copied().collect();
        let membership = join(local, seeds, settings)
            .await
            .with_context(|| format!("joining the gossip on {local}"))?;
        Ok(Gossip {
            live: membership.live.clone(),
            notes: membership.notes.clone(),
            membership: Some(membership),
            ..Gossip::off(me, names)
        })
    }

    /// No gossip: `live` never answers, and the nodes' readiness decides.
    pub fn off(me: &str, names: BTreeMap<SocketAddr, String>) -> Gossip {
        Gossip {
            me: me.to_string(),
            names,
            live: watch::channel(BTreeSet::new()).1,
            notes: watch::channel(Default::default()).1,
            started: Instant::now(),
            heard: false,
            applied: Applied::default(),
            note: Vec::new(),
            membership: None,
        }
    }

    /// The other members as the cluster's Nodes come and go.
    pub fn set_names(&mut self, mut names: BTreeMap<SocketAddr, String>) {
        names.retain(|_, name| *name != self.me);
        if let Some(m) = &self.membership {
            m.set_seeds(names.keys().copied().collect());
        }
        self.names = names;
    }

    /// The other live nodes, once gossip has been heard; `None` before, or when it is off.
    pub fn live(&mut self) -> Option<BTreeSet<String>> {
        let others: BTreeSet<String> = self
            .live
            .borrow_and_update()
            .iter()
            .filter_map(|a| self.names.get(a).cloned())
            .collect();
        // Once anyone has answered, gossip works and its word is final, even when it later
        // says everyone else is gone.
        self.heard |= !others.is_empty();
        self.heard.then_some(others)
    }

    /// What the other live nodes say about themselves, by node name. Read without marking
    /// the notes seen: `seen_by` marks them, so a note that lands between the two reads
    /// still wakes `changed` and is planned with.
    pub fn notes(&self) -> BTreeMap<String, Vec<u8>> {
        self.notes
            .borrow()
            .iter()
            .filter_map(|(a, note)| {
                let (_, said) = Applied::decode(note)?;
                Some((self.names.get(a)?.clone(), said.to_vec()))
            })
            .collect()
    }

    /// Spreads a note about this node to the others (nothing when gossip is off).
    pub fn set_note(&mut self, note: Vec<u8>) {
        self.note = note;
        self.spread();
    }

    /// Tells the others which nodes this one counted live in the plan it just applied, so
    /// that a node that joined knows when this one has let go of its IPs.
    pub fn applied(&mut self, live: impl IntoIterator<Item = String>) {
        let live: BTreeSet<String> = live.into_iter().collect();
        let room = MAX_NOTE.saturating_sub(self.note.len());
        self.applied = Applied::of(&live, room);
        self.spread();
    }

    fn spread(&self) {
        if let Some(m) = &self.membership {
            let mut note = self.applied.encode();
            note.extend_from_slice(&self.note);
            m.set_note(note);
        }
    }

    /// The other nodes that have applied a view holding this node, if gossip can tell: not
    /// when it is off, nor once it has stayed silent past the start (then nobody can).
    /// Marks the notes seen: a note that lands after this read wakes `changed` again, so a
    /// handover a runner-up has just applied is never missed.
    pub fn seen_by(&mut self) -> Option<BTreeSet<String>> {
        if self.membership.is_none() || !(self.heard || self.bootstrapping()) {
            return None;
        }
        let notes = self.notes.borrow_and_update();
        let seen = self
            .names
            .iter()
            .filter(|(addr, _)| {
                notes
                    .get(addr)
                    .and_then(|note| Applied::decode(note))
                    .is_some_and(|(view, _)| view.holds(&self.me, &self.applied))
            })
            .map(|(_, name)| name.clone())
            .collect();
        Some(seen)
    }

    /// Just started, and not heard from anyone yet: the others may simply not have answered.
    pub fn bootstrapping(&self) -> bool {
        self.membership.is_some() && !self.heard && self.started.elapsed() < BOOTSTRAP
    }

    /// Resolves when `live` may answer differently.
    pub async fn changed(&mut self) {
        if self.membership.is_none() {
            return std::future::pending().await;
        }
        let bootstrap_ends = self.started + BOOTSTRAP;
        tokio::select! {
            changed = self.live.changed() => if changed.is_err() { std::future::pending::<()>().await },
            changed = self.notes.changed() => if changed.is_err() { std::future::pending::<()>().await },
            () = tokio::time::sleep_until(bootstrap_ends), if self.bootstrapping() => {}
        }
    }
}

/// A view of the live nodes as spread in a note: the first four bytes of each name's
/// SHA-256, or, when there are too many to fit, one digest of the whole set (then a peer
/// counts as having seen this node only when its whole view matches this node's).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
enum Applied {
    #[default]
    Nothing,
    Names(BTreeSet<[u8; 4]>),
    Digest([u8; 8]),
}

/// The tag of a digest; below it, the count of names.
const DIGEST: u8 = u8::MAX;

impl Applied {
    fn of(live: &BTreeSet<String>, room: usize) -> Applied {
        let fits = live.len() < usize::from(DIGEST) && 4 * live.len() < room;
        if fits {
            return Applied::Names(live.iter().map(|n| short(n)).collect());
        }
        let mut h = Sha256::new();
        for name in live {
            h.update(name.as_bytes());
            h.update([0]);
        }
        Applied::Digest(h.finalize()[..8].try_into().unwrap_or_default())
    }

    /// Whether this view holds `me`, whose own view is `mine`.
    fn holds(&self, me: &str, mine: &Applied) -> bool {
        match self {
            Applied::Nothing => false,
            Applied::Names(names) => names.contains(&short(me)),
            Applied::Digest(_) => self == mine,
        }
    }

    fn encode(&self) -> Vec<u8> {
        match self {
            Applied::Nothing => vec![0],
            Applied::Names(names) => {
                let mut out = vec![names.len() as u8];
                names.iter().for_each(|n| out.extend_from_slice(n));
                out
            }
            Applied::Digest(d) => [&[DIGEST][..], d].concat(),
        }
    }

    /// The view and the rest of the note.
    fn decode(note: &[u8]) -> Option<(Applied, &[u8])> {
        let (&tag, rest) = note.split_first()?;
        if tag == DIGEST {
            let (d, rest) = rest.split_first_chunk::<8>()?;
            return Some((Applied::Digest(*d), rest));
        }
        let (names, rest) = rest.split_at_checked(4 * usize::from(tag))?;
        let names: BTreeSet<[u8; 4]> = names
            .chunks_exact(4)
            .filter_map(|c| c.try_into().ok())
            .collect();
        let view = if tag == 0 {
            Applied::Nothing
        } else {
            Applied::Names(names)
        };
        Some((view, rest))
    }
}

fn short(name: &str) -> [u8; 4] {
    Sha256::digest(name.as_bytes())[..4]
        .try_into()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn a_view_round_trips_with_the_note_behind_it() {
        let view = Applied::of(&set(&["a", "b"]), MAX_NOTE);
        let mut note = view.encode();
        note.extend_from_slice(b"checks");
        let (back, rest) = Applied::decode(&note).unwrap();
        assert_eq!((back.clone(), rest), (view, &b"checks"[..]));
        assert!(back.holds("a", &Applied::Nothing));
        assert!(!back.holds("c", &Applied::Nothing));
        let empty = Applied::Nothing.encode();
        let (nothing, rest) = Applied::decode(&empty).unwrap();
        assert!(!nothing.holds("a", &Applied::Nothing) && rest.is_empty());
    }

    #[test]
    fn too_many_names_to_fit_are_one_digest_that_must_match_exactly() {
        let many: BTreeSet<String> = (0..200).map(|i| format!("node-{i}")).collect();
        let view = Applied::of(&many, MAX_NOTE);
        assert!(matches!(view, Applied::Digest(_)));
        let (back, _) = Applied::decode(&view.encode()).unwrap();
        assert!(back.holds("node-1", &view));
        let mut fewer = many.clone();
        fewer.remove("node-7");
        assert!(!back.holds("node-1", &Applied::of(&fewer, MAX_NOTE)));
    }
}
