//! The node agents' view of gossip: which other nodes are live, by name, once gossip has
//! proven itself. Until someone has been heard (or with nobody to gossip with) it has no
//! answer, and the caller falls back to what its source says: a blocked gossip port must
//! not make every node think it is alone and answer for every IP.

use anyhow::{Context, Result, bail};
use ironlb_membership::{Key, Membership, Settings, join};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// Long enough for the other members to answer a fresh member on a LAN.
const BOOTSTRAP: Duration = Duration::from_secs(2);

pub struct Gossip {
    /// Other members' gossip addresses → node names.
    names: BTreeMap<SocketAddr, String>,
    live: watch::Receiver<BTreeSet<SocketAddr>>,
    notes: watch::Receiver<ironlb_membership::Notes>,
    started: Instant,
    heard: bool,
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
    /// Joins the members in `names` (this node excluded) from `local`; with none, gossip is
    /// off and `live` never answers.
    pub async fn join(
        local: SocketAddr,
        names: BTreeMap<SocketAddr, String>,
        key: Option<Key>,
    ) -> Result<Gossip> {
        if names.is_empty() {
            tracing::info!("no other node to gossip with");
            return Ok(Gossip::off());
        }
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
            names,
            live: membership.live.clone(),
            notes: membership.notes.clone(),
            started: Instant::now(),
            heard: false,
            membership: Some(membership),
        })
    }

    pub fn off() -> Gossip {
        Gossip {
            names: BTreeMap::new(),
            live: watch::channel(BTreeSet::new()).1,
            notes: watch::channel(Default::default()).1,
            started: Instant::now(),
            heard: false,
            membership: None,
        }
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

    /// What the other live nodes say about themselves, by node name.
    pub fn notes(&mut self) -> BTreeMap<String, Vec<u8>> {
        self.notes
            .borrow_and_update()
            .iter()
            .filter_map(|(a, note)| Some((self.names.get(a)?.clone(), note.clone())))
            .collect()
    }

    /// Spreads a note about this node to the others (nothing when gossip is off).
    pub fn set_note(&self, note: Vec<u8>) {
        if let Some(m) = &self.membership {
            m.set_note(note);
        }
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
