//! Which speakers are alive, fast: SWIM gossip over UDP (foca), so layer-2 ownership moves
//! within a second of a node dying, instead of waiting for Kubernetes to mark it NotReady.
//!
//! Members are known by their gossip address plus an incarnation (when the process
//! started), so a restarted node is a newer member that replaces its old, dead self at once;
//! callers map addresses to node names.
//! Default timers, for a LAN: a probe every 100 ms allowing a 60 ms round trip, and a
//! suspect declared down after 100 ms. With three nodes a dead one is probed at least every
//! other period, then suspected, then declared down: bench/l2_failover measures the whole
//! failover, and its stress run that busy cores cause no false one.

mod notes;
mod seal;

pub use notes::{MAX_NOTE, Notes};
pub use seal::Key;

use notes::NoteBoard;

use foca::{AccumulatingRuntime, Config, Foca, OwnedNotification, PostcardCodec, Timer};
use rand::rngs::SmallRng;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// MetalLB's memberlist port, kept so existing firewall rules apply.
pub const DEFAULT_PORT: u16 = 7946;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timers {
    pub probe_period: Duration,
    pub probe_rtt: Duration,
    pub suspect_to_down_after: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            probe_period: Duration::from_millis(100),
            probe_rtt: Duration::from_millis(60),
            suspect_to_down_after: Duration::from_millis(100),
        }
    }
}

/// How a member runs.
#[derive(Debug, Default)]
pub struct Settings {
    pub timers: Timers,
    /// How many members to expect, which sizes foca's gossip fan-out.
    pub expected_size: u32,
    /// Seal every packet with this key; without one gossip is plain UDP.
    pub key: Option<Key>,
}

/// A member's identity: its address, and an incarnation that grows with every restart.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Member {
    pub addr: SocketAddr,
    pub incarnation: u64,
}

impl foca::Identity for Member {
    type Addr = SocketAddr;

    /// Declared down by mistake (a pause, a lost packet): come back as a newer self.
    fn renew(&self) -> Option<Self> {
        Some(Member {
            addr: self.addr,
            incarnation: self.incarnation + 1,
        })
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        self.incarnation > adversary.incarnation
    }
}

/// A running member: the live set (this node included) as it changes, and the notes the
/// other live members spread about themselves.
pub struct Membership {
    pub live: watch::Receiver<BTreeSet<SocketAddr>>,
    pub notes: watch::Receiver<Notes>,
    note: watch::Sender<Vec<u8>>,
    seeds: watch::Sender<BTreeSet<SocketAddr>>,
    task: JoinHandle<()>,
}

impl Membership {
    /// Spreads `note` about this member (at most `MAX_NOTE` bytes; longer ones are cut).
    pub fn set_note(&self, mut note: Vec<u8>) {
        note.truncate(MAX_NOTE);
        self.note.send_if_modified(|n| {
            let changed = *n != note;
            *n = note;
            changed
        });
    }

    /// The other members' addresses, as they come and go (a node joins the cluster): the
    /// ones not yet heard from are knocked on until they answer.
    pub fn set_seeds(&self, seeds: BTreeSet<SocketAddr>) {
        self.seeds.send_if_modified(|s| {
            let changed = *s != seeds;
            *s = seeds;
            changed
        });
    }
}

impl Drop for Membership {
    /// Stops at once, without a goodbye: to the others this is a crash, and they find out
    /// through the failure detector.
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Binds `local` and joins the cluster through `seeds` (other members' addresses).
pub async fn join(
    local: SocketAddr,
    seeds: Vec<SocketAddr>,
    settings: Settings,
) -> std::io::Result<Membership> {
    let Settings {
        timers,
        expected_size,
        key,
    } = settings;
    if key.is_none() {
        tracing::warn!(%local, "gossip is not encrypted: any host that reaches this port can join");
    }
    let socket = UdpSocket::bind(local).await?;
    let mut config =
        Config::new_lan(NonZeroU32::new(expected_size.max(1)).unwrap_or(NonZeroU32::MIN));
    config.probe_period = timers.probe_period;
    config.probe_rtt = timers.probe_rtt;
    config.suspect_to_down_after = timers.suspect_to_down_after;
    config.periodic_gossip = config.periodic_gossip.map(|mut g| {
        g.frequency = timers.probe_period;
        g
    });
    let incarnation = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    let (notes_tx, notes) = watch::channel(Notes::new());
    let foca = Foca::with_custom_broadcast(
        Member {
            addr: local,
            incarnation,
        },
        config,
        rand::make_rng::<SmallRng>(),
        PostcardCodec,
        NoteBoard::new(notes_tx.clone()),
    );
    let (tx, live) = watch::channel(BTreeSet::from([local]));
    let (note, note_rx) = watch::channel(Vec::new());
    let (seeds, seeds_rx) = watch::channel(seeds.into_iter().collect());
    let published = Published {
        live: tx,
        notes: notes_tx,
        note: note_rx,
    };
    let task = tokio::spawn(run(Wire { socket, key }, foca, seeds_rx, published));
    Ok(Membership {
        live,
        notes,
        note,
        seeds,
        task,
    })
}

type Swim = Foca<Member, PostcardCodec, SmallRng, NoteBoard>;

/// What the gossip task shares with its owner.
struct Published {
    live: watch::Sender<BTreeSet<SocketAddr>>,
    notes: watch::Sender<Notes>,
    /// This member's own note, to spread.
    note: watch::Receiver<Vec<u8>>,
}

/// A version for this member's next note: its clock in microseconds, never going back, so
/// a restarted member's notes replace its old ones.
fn next_version(last: &mut u64) -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0);
    *last = now.max(*last + 1);
    *last
}

/// The gossip socket, sealing and opening packets when there is a key.
struct Wire {
    socket: UdpSocket,
    key: Option<Key>,
}

impl Wire {
    async fn send(&self, data: &[u8], to: SocketAddr) {
        let sealed;
        let packet = match &self.key {
            Some(key) => match key.seal(data) {
                Some(s) => {
                    sealed = s;
                    &sealed
                }
                None => return,
            },
            None => data,
        };
        let _ = self.socket.send_to(packet, to).await;
    }

    /// The next packet's payload; packets that do not open under the key are dropped.
    async fn recv(&self, buf: &mut [u8]) -> Vec<u8> {
        loop {
            let Ok((n, from)) = self.socket.recv_from(buf).await else {
                continue;
            };
            match &self.key {
                None => return buf[..n].to_vec(),
                Some(key) => match key.open(&buf[..n]) {
                    Some(plain) => return plain,
                    None => {
                        tracing::debug!(%from, "dropped a gossip packet that does not open with the shared key")
                    }
                },
            }
        }
    }
}

async fn run(
    wire: Wire,
    mut foca: Swim,
    mut seeds: watch::Receiver<BTreeSet<SocketAddr>>,
    mut published: Published,
) {
    let local = foca.identity().addr;
    let mut version = 0;
    let spread = |foca: &mut Swim, note: &[u8], version: &mut u64| {
        // An empty note still has to replace an older, non-empty one.
        let data = notes::encode(local, next_version(version), note);
        if let Err(e) = foca.add_broadcast(&data) {
            tracing::debug!(error = %e, "note not spread");
        }
    };
    let mut runtime = AccumulatingRuntime::new();
    let mut timers: Vec<(Instant, Timer<Member>)> = Vec::new();
    // Room for a full foca packet plus the seal's nonce and tag.
    let mut buf = vec![0u8; 2048];
    let mut reannounce = tokio::time::interval(Duration::from_secs(1));
    loop {
        drain(&wire, &mut runtime, &mut timers, &foca, &published).await;
        let next = timers.iter().map(|(at, _)| *at).min();
        tokio::select! {
            data = wire.recv(&mut buf) => {
                if let Err(e) = foca.handle_data(&data, &mut runtime) {
                    tracing::debug!(error = %e, "ignored a gossip packet");
                }
            }
            () = async { match next { Some(at) => tokio::time::sleep_until(at).await, None => std::future::pending().await } } => {
                let now = Instant::now();
                let (due, later): (Vec<_>, Vec<_>) = timers.drain(..).partition(|(at, _)| *at <= now);
                timers = later;
                for (_, timer) in due {
                    let _ = foca.handle_timer(timer, &mut runtime);
                }
            }
            changed = published.note.changed() => {
                if changed.is_ok() {
                    let note = published.note.borrow_and_update().clone();
                    spread(&mut foca, &note, &mut version);
                }
            }
            changed = seeds.changed() => {
                if changed.is_ok() {
                    knock(&mut foca, &seeds.borrow_and_update(), &mut runtime);
                }
            }
            _ = reannounce.tick() => {
                // Custom broadcasts are sent a few times only: repeat ours for members that
                // joined since.
                let note = published.note.borrow().clone();
                spread(&mut foca, &note, &mut version);
                // Until the seeds answer (they may start later), keep knocking.
                knock(&mut foca, &seeds.borrow(), &mut runtime);
            }
        }
    }
}

/// Announces this member to every seed not yet among the members.
fn knock(foca: &mut Swim, seeds: &BTreeSet<SocketAddr>, runtime: &mut AccumulatingRuntime<Member>) {
    let members: BTreeSet<SocketAddr> = foca.iter_members().map(|m| m.id().addr).collect();
    for seed in seeds.difference(&members) {
        // The seed's incarnation is unknown; its real identity wins the address conflict as
        // soon as it answers.
        let _ = foca.announce(
            Member {
                addr: *seed,
                incarnation: 0,
            },
            &mut *runtime,
        );
    }
}

/// Carries out what foca asked for: packets, timers, and membership changes.
async fn drain(
    wire: &Wire,
    runtime: &mut AccumulatingRuntime<Member>,
    timers: &mut Vec<(Instant, Timer<Member>)>,
    foca: &Swim,
    published: &Published,
) {
    while let Some((to, data)) = runtime.to_send() {
        wire.send(&data, to.addr).await;
    }
    while let Some((after, timer)) = runtime.to_schedule() {
        timers.push((Instant::now() + after, timer));
    }
    let mut changed = false;
    while let Some(n) = runtime.to_notify() {
        match n {
            OwnedNotification::MemberUp(m) => tracing::info!(member = %m.addr, "member up"),
            OwnedNotification::MemberDown(m) => tracing::warn!(member = %m.addr, "member down"),
            _ => {}
        }
        changed = true;
    }
    if changed {
        let mut set: BTreeSet<SocketAddr> = foca.iter_members().map(|m| m.id().addr).collect();
        set.insert(foca.identity().addr);
        // A member that went down takes its note with it.
        published.notes.send_if_modified(|n| {
            let before = n.len();
            n.retain(|author, _| set.contains(author));
            n.len() != before
        });
        published.live.send_replace(set);
    }
}
