//! The speaker: one task per peer that connects, keeps the session up, and converges the
//! routes the peer has to the routes it should have. `set_routes` (a whole table) and
//! `change_routes` (some prefixes) hand each peer task only what changed, which it sends at
//! once when established: a change costs O(k log n) in the task, not a walk of the table.

use crate::connection::{Connection, Input};
use crate::routes::{self, Change, PeerContext, Rib, carried_count, next_hops};
use crate::session::{Action, MessageCounts, PeerAs, Session, SessionConfig};
use crate::transport::{self, Dial};
use crate::unnumbered::{self, Heard, Neighbor};
use crate::wire::{AFI_IPV4, AFI_IPV6, NextHops, SAFI_UNICAST, Update};
use ipnet::IpNet;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::Instrument;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerConfig {
    pub name: String,
    pub remote: Remote,
    pub port: u16,
    pub local_asn: u32,
    pub peer_asn: PeerAs,
    pub router_id: Ipv4Addr,
    pub hold_time: u16,
    pub keepalive: Option<Duration>,
    pub source_address: Option<IpAddr>,
    pub password: Option<String>,
    pub ebgp_multihop: bool,
    /// Offer graceful restart (RFC 4724), so the router keeps our routes across a restart.
    pub graceful_restart: bool,
    /// Fixed time between connection attempts; `None` backs off exponentially.
    pub connect_time: Option<Duration>,
    /// Wait for the router to connect instead of dialling it.
    pub passive: bool,
    /// Carry both address families over this session (dualStackAddressFamily); otherwise
    /// only the peer address's own.
    pub dual_stack: bool,
}

/// Where the router is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Remote {
    Address(IpAddr),
    /// Unnumbered: the router heard on this interface, at its IPv6 link-local address
    /// (`unnumbered`). Both families, IPv4 with an IPv6 next hop (RFC 8950).
    Interface(String),
}

impl From<IpAddr> for Remote {
    fn from(a: IpAddr) -> Self {
        Remote::Address(a)
    }
}

impl std::fmt::Display for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Remote::Address(a) => a.fmt(f),
            Remote::Interface(i) => write!(f, "interface {i}"),
        }
    }
}

impl PeerConfig {
    /// A peer at `remote` on port 179 with the usual defaults: hold time 90 s (keepalive a
    /// third of it), no password, single hop, no graceful restart, active, exponential backoff.
    pub fn new(
        name: impl Into<String>,
        remote: impl Into<Remote>,
        local_asn: u32,
        peer_asn: u32,
        router_id: Ipv4Addr,
    ) -> Self {
        PeerConfig {
            name: name.into(),
            remote: remote.into(),
            port: 179,
            local_asn,
            peer_asn: PeerAs::Is(peer_asn),
            router_id,
            hold_time: 90,
            keepalive: None,
            source_address: None,
            password: None,
            ebgp_multihop: false,
            graceful_restart: false,
            connect_time: None,
            passive: false,
            dual_stack: false,
        }
    }

    /// The families offered: the peer address's own, or both with `dual_stack` and on an
    /// unnumbered session, as MetalLB's FRR mode configures them.
    fn families(&self) -> Vec<(u16, u8)> {
        match (self.dual_stack, &self.remote) {
            (true, _) | (_, Remote::Interface(_)) => {
                vec![(AFI_IPV4, SAFI_UNICAST), (AFI_IPV6, SAFI_UNICAST)]
            }
            (false, Remote::Address(IpAddr::V4(_))) => vec![(AFI_IPV4, SAFI_UNICAST)],
            (false, Remote::Address(IpAddr::V6(_))) => vec![(AFI_IPV6, SAFI_UNICAST)],
        }
    }

    /// Whether IPv4 may ride this session with an IPv6 next hop: a dual-stack IPv6 session,
    /// or an unnumbered one, which has no IPv4 address at all.
    fn offers_extended_next_hop(&self) -> bool {
        match &self.remote {
            Remote::Address(a) => self.dual_stack && a.is_ipv6(),
            Remote::Interface(_) => true,
        }
    }

    /// The address a passive peer's connections come from.
    fn passive_address(&self) -> Option<IpAddr> {
        match &self.remote {
            Remote::Address(a) if self.passive => Some(*a),
            _ => None,
        }
    }
}

/// What a peer's session is doing, for status and metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerStatus {
    pub established: bool,
    pub since: Option<SystemTime>,
    pub prefixes_sent: usize,
    /// Messages sent and received over every connection to the peer so far.
    pub messages: MessageCounts,
    pub last_error: Option<String>,
}

struct PeerHandle {
    config: PeerConfig,
    /// Where the listener hands this peer's incoming connections (passive peers only).
    inbox: Option<mpsc::Sender<TcpStream>>,
    /// What the peer should have: what its task was last told.
    desired: Rib,
    routes: mpsc::UnboundedSender<Vec<Change>>,
    stop: watch::Sender<Stop>,
    status: Arc<Mutex<PeerStatus>>,
    task: JoinHandle<()>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    Run,
    /// Cease / Administrative Shutdown: the router withdraws our routes now.
    Shutdown,
    /// Close without NOTIFICATION, so a graceful-restart helper keeps our routes.
    Restart,
}

/// Restart time offered with graceful restart.
const RESTART_TIME: u16 = 120;

/// Passive peers' inboxes by address, shared with the listener.
type Inboxes = Arc<Mutex<BTreeMap<IpAddr, mpsc::Sender<TcpStream>>>>;

/// The listening socket for passive peers, and the MD5 keys it was opened with.
struct Listener {
    keys: Vec<(IpAddr, String)>,
    task: JoinHandle<()>,
}

/// Active peers dial out and passive peers only accept, so a peer never has two connections
/// at once: an incoming connection from an active peer is refused, and RFC 4271's collision
/// procedure never has anything to resolve.
pub struct Speaker {
    peers: BTreeMap<String, PeerHandle>,
    listen_port: u16,
    inboxes: Inboxes,
    listener: Option<Listener>,
    /// How many times each peer address's path has failed, as BFD counts it; every peer
    /// task watches its own address. Relayed from `follow_bfd`'s source.
    path_failures: watch::Sender<PathFailures>,
    relay: Option<JoinHandle<()>>,
}

/// Peer address → how many times BFD saw its path fail (only ever counts up).
pub type PathFailures = BTreeMap<IpAddr, u64>;

impl Default for Speaker {
    fn default() -> Self {
        Speaker::with_listen_port(179)
    }
}

impl Speaker {
    pub fn new() -> Self {
        Speaker::default()
    }

    /// A speaker whose passive peers connect to `port` instead of 179.
    pub fn with_listen_port(port: u16) -> Self {
        Speaker {
            peers: BTreeMap::new(),
            listen_port: port,
            inboxes: Arc::default(),
            listener: None,
            path_failures: watch::Sender::new(PathFailures::new()),
            relay: None,
        }
    }

    /// Follows BFD's count of path failures: a peer whose path fails while its session is
    /// up drops the connection and dials again, instead of waiting out the hold time.
    pub fn follow_bfd(&mut self, mut failures: watch::Receiver<PathFailures>) {
        let relay = self.path_failures.clone();
        if let Some(old) = self.relay.replace(tokio::spawn(async move {
            loop {
                relay.send_replace(failures.borrow_and_update().clone());
                if failures.changed().await.is_err() {
                    return;
                }
            }
        })) {
            old.abort();
        }
    }

    /// Adds, changes and removes peers; a peer whose config is unchanged is not disturbed.
    pub fn set_peers(&mut self, peers: Vec<PeerConfig>) {
        let wanted: BTreeMap<String, PeerConfig> =
            peers.into_iter().map(|p| (p.name.clone(), p)).collect();
        let stale: Vec<String> = self
            .peers
            .iter()
            .filter(|(name, h)| wanted.get(*name) != Some(&h.config))
            .map(|(name, _)| name.clone())
            .collect();
        let mut carried_routes = BTreeMap::new();
        for name in stale {
            if let Some(h) = self.peers.remove(&name) {
                carried_routes.insert(name, h.desired);
                let _ = h.stop.send(Stop::Shutdown);
            }
        }
        for (name, config) in wanted {
            if self.peers.contains_key(&name) {
                continue;
            }
            let routes = carried_routes.remove(&name).unwrap_or_default();
            self.spawn(config, routes);
        }
        self.listen();
    }

    fn spawn(&mut self, config: PeerConfig, desired: Rib) {
        let (routes_tx, routes_rx) = mpsc::unbounded_channel();
        let routes = PeerRoutes {
            rib: desired.clone(),
            changes: routes_rx,
            carried: 0,
        };
        let (stop_tx, stop_rx) = watch::channel(Stop::Run);
        let status = Arc::new(Mutex::new(PeerStatus::default()));
        let (inbox, incoming) = if config.passive_address().is_some() {
            let (tx, rx) = mpsc::channel(1);
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        // The span goes with the task (`instrument`), never entered across an await: an
        // entered span stays on the worker thread and labels other tasks' logs with this peer.
        let span = tracing::info_span!("bgp_peer", peer = %config.name, remote = %config.remote);
        let task = tokio::spawn(
            run_peer(
                config.clone(),
                routes,
                stop_rx,
                self.path_failures.subscribe(),
                status.clone(),
                incoming,
            )
            .instrument(span),
        );
        self.peers.insert(
            config.name.clone(),
            PeerHandle {
                config,
                inbox,
                desired,
                routes: routes_tx,
                stop: stop_tx,
                status,
                task,
            },
        );
    }

    /// Keeps the listener in step with the passive peers: open while there are any, with an
    /// MD5 key for each that has a password.
    fn listen(&mut self) {
        let passive: Vec<(&PeerHandle, IpAddr)> = self
            .peers
            .values()
            .filter_map(|p| Some((p, p.config.passive_address()?)))
            .collect();
        let named: Vec<(&str, IpAddr)> = passive
            .iter()
            .map(|(p, address)| (p.config.name.as_str(), *address))
            .collect();
        let shadowed = shadowed(&named);
        for (peer, owner) in &shadowed {
            let address = &self.peers[*peer].config.remote;
            let why = format!(
                "passive peer {owner} already takes the connections from {address}, and a router's connection cannot say which peer it is for: give each passive peer its own address"
            );
            let status = &self.peers[*peer].status;
            let known = status
                .lock()
                .is_ok_and(|s| s.last_error.as_deref() == Some(why.as_str()));
            if !known {
                tracing::error!(peer = %peer, %address, "{why}");
                set(status, |s| s.last_error = Some(why));
            }
        }
        if let Ok(mut inboxes) = self.inboxes.lock() {
            *inboxes = passive
                .iter()
                .filter(|(p, _)| !shadowed.iter().any(|(s, _)| *s == p.config.name))
                .filter_map(|(p, address)| Some((*address, p.inbox.clone()?)))
                .collect();
        }
        let keys: Vec<(IpAddr, String)> = passive
            .iter()
            .filter_map(|(p, address)| Some((*address, p.config.password.clone()?)))
            .collect();
        if passive.is_empty() {
            if let Some(old) = self.listener.take() {
                old.task.abort();
            }
            return;
        }
        if self.listener.as_ref().is_some_and(|l| l.keys == keys) {
            return;
        }
        if let Some(old) = self.listener.take() {
            old.task.abort();
        }
        let addr = SocketAddr::new(
            IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
            self.listen_port,
        );
        match transport::listen(addr, &keys) {
            Ok(listener) => {
                let task = tokio::spawn(accept(listener, self.inboxes.clone()));
                self.listener = Some(Listener { keys, task });
            }
            Err(e) => {
                tracing::error!(error = %e, port = self.listen_port, "cannot listen for passive peers");
                for (p, _) in passive {
                    set(&p.status, |s| {
                        s.last_error = Some(format!("listening on port {}: {e}", self.listen_port))
                    });
                }
            }
        }
    }

    /// The routes each peer should have; peers not named get none. Each peer's task is
    /// told only the difference.
    pub fn set_routes(&mut self, mut routes: BTreeMap<String, Rib>) {
        for (name, peer) in &mut self.peers {
            let desired = routes.remove(name).unwrap_or_default();
            let diff = routes::diff(&peer.desired, &desired);
            peer.desired = desired;
            if !diff.is_empty() {
                let _ = peer.routes.send(diff);
            }
        }
    }

    /// Changes some of `peer`'s routes (a later change to a prefix wins); the rest stay.
    pub fn change_routes(&mut self, peer: &str, changes: Vec<Change>) {
        let Some(peer) = self.peers.get_mut(peer) else {
            return;
        };
        let effective: Vec<Change> = changes
            .into_iter()
            .filter(|(prefix, attrs)| routes::apply(&mut peer.desired, prefix, attrs.clone()))
            .collect();
        if !effective.is_empty() {
            let _ = peer.routes.send(effective);
        }
    }

    pub fn status(&self) -> BTreeMap<String, PeerStatus> {
        self.peers
            .iter()
            .map(|(name, p)| {
                (
                    name.clone(),
                    p.status.lock().map(|s| s.clone()).unwrap_or_default(),
                )
            })
            .collect()
    }

    /// Ends every session: with Cease / Administrative Shutdown, or for a planned restart
    /// with graceful restart, silently so that routers keep forwarding meanwhile.
    pub async fn shutdown(self, restarting: bool) {
        if let Some(listener) = &self.listener {
            listener.task.abort();
        }
        for p in self.peers.values() {
            let restart = restarting && p.config.graceful_restart;
            let _ = p.stop.send(if restart {
                Stop::Restart
            } else {
                Stop::Shutdown
            });
        }
        for (_, p) in self.peers {
            let _ = p.task.await;
        }
    }
}

/// The passive peers that share an address with an earlier one (by name), each with that
/// one, which gets the address's connections. Pure.
fn shadowed<'a>(peers: &[(&'a str, IpAddr)]) -> Vec<(&'a str, &'a str)> {
    let mut owners: BTreeMap<IpAddr, &str> = BTreeMap::new();
    let mut sorted = peers.to_vec();
    sorted.sort();
    sorted
        .into_iter()
        .filter_map(|(name, address)| match owners.get(&address) {
            Some(owner) => Some((name, *owner)),
            None => {
                owners.insert(address, name);
                None
            }
        })
        .collect()
}

/// Hands each incoming connection to its passive peer; anyone else is refused.
async fn accept(listener: tokio::net::TcpListener, inboxes: Inboxes) {
    loop {
        let (stream, from) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors (EMFILE) and the like fail again at once: wait
                // instead of spinning a core on the same error.
                tracing::warn!(error = %e, "accepting a BGP connection failed; retrying in 1s");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let peer = from.ip().to_canonical();
        let inbox = inboxes.lock().ok().and_then(|i| i.get(&peer).cloned());
        match inbox {
            Some(inbox) => {
                if inbox.try_send(stream).is_err() {
                    tracing::info!(%peer, "refused a second connection from a passive peer that already has one");
                }
            }
            None => tracing::info!(%peer, "refused a connection: not a passive peer"),
        }
    }
}

/// Connect retry: exponential from 1 s to 60 s with ±25% jitter, or a fixed interval.
struct Backoff {
    fixed: Option<Duration>,
    next: Duration,
}

impl Backoff {
    fn new(fixed: Option<Duration>) -> Self {
        Backoff {
            fixed,
            next: Duration::from_secs(1),
        }
    }

    fn reset(&mut self) {
        self.next = Duration::from_secs(1);
    }

    /// A peer that refused us (`Notification::is_refusal`) is not hammered.
    fn refused(&mut self) {
        self.next = self.next.max(Duration::from_secs(10));
    }

    fn delay(&mut self) -> Duration {
        if let Some(fixed) = self.fixed {
            return fixed;
        }
        let base = self.next;
        self.next = (self.next * 2).min(Duration::from_secs(60));
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let jitter = 0.75 + f64::from(nanos % 1000) / 2000.0;
        base.mul_f64(jitter)
    }
}

/// How long a Cease on shutdown may take to leave.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

enum Ended {
    Stopped,
    Closed { established: bool, refused: bool },
}

async fn run_peer(
    config: PeerConfig,
    mut routes: PeerRoutes,
    mut stop: watch::Receiver<Stop>,
    mut failures: watch::Receiver<PathFailures>,
    status: Arc<Mutex<PeerStatus>>,
    incoming: Option<mpsc::Receiver<TcpStream>>,
) {
    let Some(mut incoming) = incoming else {
        return run_active(&config, &mut routes, (&mut stop, &mut failures), &status).await;
    };
    // Passive: each connection the router opens is driven until it ends.
    loop {
        let stream = tokio::select! {
            s = incoming.recv() => match s { Some(s) => s, None => return },
            _ = stop.changed() => return,
        };
        let ended = tokio::select! {
            ended = drive(stream, &config, &mut routes, &mut stop, &status) => ended,
            () = path_fails(&mut failures, config.passive_address()) => bfd_down(&status),
        };
        if let Ended::Stopped = ended {
            return;
        }
    }
}

/// An active peer: dials the router, drives each connection until it ends, and dials again
/// after a backoff.
async fn run_active(
    config: &PeerConfig,
    routes: &mut PeerRoutes,
    (stop, failures): (
        &mut watch::Receiver<Stop>,
        &mut watch::Receiver<PathFailures>,
    ),
    status: &Mutex<PeerStatus>,
) {
    let mut backoff = Backoff::new(config.connect_time);
    let mut target = Target::new(config);
    loop {
        let Some(peer) = target.next(config.port, stop, status).await else {
            return;
        };
        let connected = match peer {
            Err(e) => Err(e),
            Ok(peer) => {
                let dial = dial(config, peer);
                tokio::select! {
                    c = transport::connect(&dial) => c.map(|s| (s, peer)).map_err(|e| e.to_string()),
                    _ = stop.changed() => return,
                }
            }
        };
        match connected {
            Err(e) => {
                tracing::debug!(error = %e, "connect failed");
                set(status, |s| s.last_error = Some(e));
            }
            Ok((stream, peer)) => {
                let ended = tokio::select! {
                    ended = drive(stream, config, routes, stop, status) => ended,
                    () = path_fails(failures, Some(peer.ip())) => bfd_down(status),
                    () = target.moved(peer.ip()) => {
                        let why = format!("the router on {} moved away from {}", config.remote, peer.ip());
                        tracing::info!("{why}; connecting to its new address");
                        set(status, |s| { s.established = false; s.since = None; s.last_error = Some(why); });
                        Ended::Closed { established: true, refused: false }
                    }
                };
                match ended {
                    Ended::Stopped => return,
                    Ended::Closed {
                        established,
                        refused,
                    } => {
                        if established {
                            backoff.reset();
                        }
                        if refused {
                            backoff.refused();
                        }
                    }
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(backoff.delay()) => {}
            _ = stop.changed() => return,
        }
    }
}

fn dial(config: &PeerConfig, peer: SocketAddr) -> Dial {
    Dial {
        peer,
        source: config.source_address,
        password: config.password.clone(),
        multihop: config.ebgp_multihop,
        timeout: Duration::from_secs(10),
    }
}

/// Resolves when BFD counts a failure of the path to `at` after this call; never without
/// an address.
async fn path_fails(failures: &mut watch::Receiver<PathFailures>, at: Option<IpAddr>) {
    let Some(at) = at else {
        return std::future::pending().await;
    };
    let count = |f: &PathFailures| f.get(&at).copied().unwrap_or(0);
    let before = count(&failures.borrow_and_update());
    loop {
        if failures.changed().await.is_err() {
            return std::future::pending().await;
        }
        if count(&failures.borrow_and_update()) > before {
            return;
        }
    }
}

/// The connection is dropped for a failed BFD session: the peer dials again as soon as
/// the backoff allows, rather than after the hold time.
fn bfd_down(status: &Mutex<PeerStatus>) -> Ended {
    tracing::warn!("BFD session down; resetting the BGP session");
    set(status, |s| {
        s.established = false;
        s.since = None;
        s.last_error = Some("BFD session down".into());
    });
    Ended::Closed {
        established: true,
        refused: false,
    }
}

/// Where an active peer dials.
enum Target {
    Fixed(SocketAddr),
    Heard {
        interface: String,
        neighbor: Neighbor,
    },
}

impl Target {
    fn new(config: &PeerConfig) -> Target {
        match &config.remote {
            Remote::Address(a) => Target::Fixed(SocketAddr::new(*a, config.port)),
            Remote::Interface(i) => Target::Heard {
                interface: i.clone(),
                neighbor: Neighbor::follow(i),
            },
        }
    }

    /// The address to dial, once there is one; `None` when stopped while waiting.
    async fn next(
        &mut self,
        port: u16,
        stop: &mut watch::Receiver<Stop>,
        status: &Mutex<PeerStatus>,
    ) -> Option<Result<SocketAddr, String>> {
        let (interface, neighbor) = match self {
            Target::Fixed(at) => return Some(Ok(*at)),
            Target::Heard {
                interface,
                neighbor,
            } => (interface, neighbor),
        };
        loop {
            let why = match neighbor.heard() {
                Heard::Router(r) => {
                    return Some(
                        unnumbered::dial_address(r, interface, port)
                            .map_err(|e| format!("interface {interface}: {e}")),
                    );
                }
                Heard::Nothing => format!(
                    "waiting for a Router Advertisement from the router on {interface} (FRR sends them on an interface neighbor)"
                ),
                Heard::Failed(why) => why,
            };
            set(status, |s| s.last_error = Some(why));
            tokio::select! {
                () = neighbor.changed() => {}
                _ = stop.changed() => return None,
            }
        }
    }

    /// Resolves when the router on the interface is heard at another address than `from`;
    /// never for a fixed address.
    async fn moved(&mut self, from: IpAddr) {
        let Target::Heard { neighbor, .. } = self else {
            return std::future::pending().await;
        };
        loop {
            neighbor.changed().await;
            if matches!(neighbor.heard(), Heard::Router(r) if IpAddr::V6(r) != from) {
                return;
            }
        }
    }
}

fn set(status: &Mutex<PeerStatus>, f: impl FnOnce(&mut PeerStatus)) {
    if let Ok(mut s) = status.lock() {
        f(&mut s);
    }
}

/// Runs one connection until it closes or the peer is stopped.
async fn drive(
    stream: TcpStream,
    config: &PeerConfig,
    routes: &mut PeerRoutes,
    stop: &mut watch::Receiver<Stop>,
    status: &Mutex<PeerStatus>,
) -> Ended {
    // A dual-stack listener reports IPv4 sessions as IPv4-mapped IPv6 addresses.
    let local = stream.local_addr().ok().map(|a| a.ip().to_canonical());
    let mut conn = Connection::new(stream);
    let mut turn = Turn::new(config, status);
    loop {
        if let Some(ended) = turn.flush(&mut conn, routes).await {
            return ended;
        }
        let was_established = turn.established;
        tokio::select! {
            input = conn.next(turn.session.next_deadline()) => turn.received(input, routes),
            batch = routes.next() => turn.batch(batch, routes),
            _ = stop.changed() => {
                let restart = *stop.borrow() == Stop::Restart;
                return turn.stop(conn, restart).await;
            }
        }
        if turn.established && !was_established {
            turn.established_now(local, routes);
        }
    }
}

/// One connection's session, and what its loop carries from one turn to the next.
struct Turn<'a> {
    config: &'a PeerConfig,
    status: &'a Mutex<PeerStatus>,
    session: Session,
    /// Filled in once established, from what was negotiated.
    ctx: PeerContext,
    established: bool,
    out: Vec<u8>,
    /// Why the session ended, and whether the peer refused it.
    ended: Option<(String, bool)>,
    /// A batch already sent, to record in the peer's routes once its UPDATEs are written.
    unrecorded: Option<Vec<Change>>,
    /// The message counts of this peer's earlier connections.
    before: MessageCounts,
}

impl<'a> Turn<'a> {
    fn new(config: &'a PeerConfig, status: &'a Mutex<PeerStatus>) -> Self {
        let mut session = Session::new(session_config(config));
        let ctx = PeerContext {
            local_asn: config.local_asn,
            ibgp: false,
            next_hops: NextHops::default(),
            codec: session.codec(),
        };
        let connected = session.connected(Instant::now());
        let mut turn = Turn {
            config,
            status,
            session,
            ctx,
            established: false,
            out: Vec::new(),
            ended: None,
            unrecorded: None,
            before: status.lock().map(|s| s.messages).unwrap_or_default(),
        };
        let _ = turn.handle(connected);
        turn
    }

    /// Writes what the last turn produced and records its batch; how the session ended, if it did.
    async fn flush(&mut self, conn: &mut Connection, routes: &mut PeerRoutes) -> Option<Ended> {
        let counts = self.before + self.session.counts();
        set(self.status, |s| s.messages = counts);
        if !conn.write(&self.out).await {
            let reason = format!("writing to {}: connection lost", self.config.remote);
            self.ended.get_or_insert((reason, false));
        }
        self.out.clear();
        if let Some(batch) = self.unrecorded.take() {
            routes.record(batch, self.established.then_some(&self.ctx));
            set(self.status, |s| s.prefixes_sent = routes.carried);
        }
        let (reason, refused) = self.ended.take()?;
        tracing::info!(%reason, "session closed");
        set(self.status, |s| {
            s.established = false;
            s.since = None;
            s.last_error = Some(reason);
        });
        Some(Ended::Closed {
            established: self.established,
            refused,
        })
    }

    fn received(&mut self, input: Input, routes: &PeerRoutes) {
        let actions = match input {
            Input::Received(bytes) => self.session.received(bytes, Instant::now()),
            Input::Tick => self.session.tick(Instant::now()),
            Input::Closed => {
                let reason = format!("{} closed the connection", self.config.remote);
                self.ended = Some((reason, false));
                Vec::new()
            }
        };
        for afi in self.handle(actions) {
            resend(
                &mut self.session,
                &routes.rib,
                afi,
                &self.ctx,
                &mut self.out,
            );
        }
    }

    fn batch(&mut self, batch: Vec<Change>, routes: &PeerRoutes) {
        if self.established {
            routes.send(&batch, &mut self.session, &self.ctx, &mut self.out);
        }
        // Recorded once its UPDATEs are written: the bookkeeping of a large batch must not
        // hold them back.
        self.unrecorded = Some(batch);
    }

    async fn stop(mut self, conn: Connection, restart: bool) -> Ended {
        // A graceful-restart helper keeps our routes only if we close without a Cease.
        let goodbye = if restart {
            Vec::new()
        } else {
            self.session.shutdown()
        };
        // A peer that stopped reading must not hold up the shutdown.
        conn.close(&goodbye, SHUTDOWN_GRACE).await;
        let counts = self.before + self.session.counts();
        set(self.status, |s| {
            s.established = false;
            s.since = None;
            s.messages = counts;
        });
        Ended::Stopped
    }

    fn established_now(&mut self, local: Option<IpAddr>, routes: &mut PeerRoutes) {
        self.ctx = negotiated(&self.session, self.config, local);
        send_table(&mut self.session, &self.ctx, routes, &mut self.out);
        set(self.status, |s| {
            s.established = true;
            s.since = Some(SystemTime::now());
            s.last_error = None;
            s.prefixes_sent = routes.carried;
        });
        tracing::info!("session established");
    }

    /// The session's actions: bytes to send, an end, or families the peer asked to be re-sent.
    fn handle(&mut self, actions: Vec<Action>) -> Vec<u16> {
        handle(
            actions,
            &mut self.out,
            &mut self.ended,
            &mut self.established,
        )
    }
}

/// A newly established session's whole table, then End-of-RIB for each family.
fn send_table(
    session: &mut Session,
    ctx: &PeerContext,
    routes: &mut PeerRoutes,
    out: &mut Vec<u8>,
) {
    routes.send_all(session, ctx, out);
    for (afi, _) in session.negotiated_families() {
        out.extend(session.update(&Update::end_of_rib(afi), Instant::now()));
    }
}

fn session_config(config: &PeerConfig) -> SessionConfig {
    SessionConfig {
        local_asn: config.local_asn,
        peer_asn: config.peer_asn,
        router_id: config.router_id,
        hold_time: config.hold_time,
        keepalive: config.keepalive,
        families: config.families(),
        graceful_restart: config.graceful_restart.then_some(RESTART_TIME),
        extended_next_hop: config.offers_extended_next_hop(),
    }
}

/// How routes go to an established session: the codec and next hops it negotiated, and
/// whether it is iBGP.
fn negotiated(session: &Session, config: &PeerConfig, local: Option<IpAddr>) -> PeerContext {
    let next_hops = local.map_or_else(NextHops::default, |local| {
        let link = transport::interface_addresses(local);
        next_hops(
            local,
            &link,
            &session.negotiated_families(),
            session.extended_next_hop(),
        )
    });
    PeerContext {
        local_asn: config.local_asn,
        ibgp: session.peer().is_some_and(|p| p.asn == config.local_asn),
        next_hops,
        codec: session.codec(),
    }
}

/// A peer task's routes: what the peer should have, which is also what it has been sent
/// while the session is established, since every change is sent as it is applied.
struct PeerRoutes {
    rib: Rib,
    changes: mpsc::UnboundedReceiver<Vec<Change>>,
    /// How many routes of `rib` the established session carries.
    carried: usize,
}

impl PeerRoutes {
    /// The next changes, with any queued behind them, as one batch.
    async fn next(&mut self) -> Vec<Change> {
        let Some(mut batch) = self.changes.recv().await else {
            // The speaker let go of this peer; its stop signal ends the task.
            return std::future::pending().await;
        };
        while let Ok(more) = self.changes.try_recv() {
            batch.extend(more);
        }
        batch
    }

    /// Sends `batch` to the established session: what it changes of `rib`.
    fn send(&self, batch: &[Change], session: &mut Session, ctx: &PeerContext, out: &mut Vec<u8>) {
        let now = Instant::now();
        for u in routes::changes(&self.rib, batch, ctx) {
            out.extend(session.update(&u, now));
        }
    }

    /// Applies `batch` to `rib`, counting what an established session (`ctx`) carries.
    fn record(&mut self, batch: Vec<Change>, ctx: Option<&PeerContext>) {
        let carried = &mut self.carried;
        routes::apply_all(&mut self.rib, batch, |prefix, had, has| {
            if ctx.is_some_and(|c| c.carries(prefix)) {
                *carried = (*carried + usize::from(has)).saturating_sub(usize::from(had));
            }
        });
    }

    /// Sends the whole table to a session just established.
    fn send_all(&mut self, session: &mut Session, ctx: &PeerContext, out: &mut Vec<u8>) {
        let now = Instant::now();
        for u in routes::announce_all(&self.rib, ctx) {
            out.extend(session.update(&u, now));
        }
        self.carried = carried_count(&self.rib, ctx);
    }
}

/// Performs the session's actions; the speaker ignores what peers announce to it. Returns
/// the families the peer asked to be sent again.
fn handle(
    actions: Vec<Action>,
    out: &mut Vec<u8>,
    ended: &mut Option<(String, bool)>,
    established: &mut bool,
) -> Vec<u16> {
    let mut refresh = Vec::new();
    for action in actions {
        match action {
            Action::Send(bytes) => out.extend(bytes),
            Action::Established { .. } => *established = true,
            Action::Received(_) => {}
            Action::RouteRefresh { afi, .. } => refresh.push(afi),
            Action::Close {
                reason,
                peer_notification,
            } => {
                let refused = peer_notification.is_some_and(|n| n.is_refusal());
                *ended = Some((reason, refused));
            }
        }
    }
    refresh
}

/// Sends the peer its whole Adj-RIB-Out of family `afi` again, as ROUTE-REFRESH asks.
fn resend(session: &mut Session, sent: &Rib, afi: u16, ctx: &PeerContext, out: &mut Vec<u8>) {
    let family: Rib = sent
        .iter()
        .filter(|(prefix, _)| matches!(prefix, IpNet::V4(_)) == (afi == AFI_IPV4))
        .map(|(p, a)| (*p, a.clone()))
        .collect();
    let now = Instant::now();
    for u in routes::announce_all(&family, ctx) {
        out.extend(session.update(&u, now));
    }
    tracing::info!(
        afi,
        prefixes = family.len(),
        "route refresh: sent the table again"
    );
}

#[cfg(test)]
mod tests {
    use super::{Backoff, shadowed};

    #[test]
    fn of_two_passive_peers_at_one_address_the_second_is_named_not_silently_starved() {
        let a: std::net::IpAddr = "192.0.2.1".parse().unwrap();
        let b: std::net::IpAddr = "192.0.2.2".parse().unwrap();
        assert_eq!(
            shadowed(&[("edge", a), ("core", a), ("other", b)]),
            [("edge", "core")]
        );
        assert!(shadowed(&[("edge", a), ("other", b)]).is_empty());
    }
    use crate::wire::Notification;
    use std::time::Duration;

    #[test]
    fn only_a_peer_turning_us_down_counts_as_a_refusal() {
        let cases = [
            ((2, 2), true, "bad peer AS"),
            ((2, 7), true, "unsupported capability"),
            ((6, 1), true, "over the prefix limit"),
            ((6, 2), true, "administrative shutdown"),
            ((6, 3), true, "peer de-configured"),
            ((6, 4), false, "administrative reset"),
            (
                (6, 5),
                false,
                "connection rejected, as by a router restarting its session",
            ),
            ((6, 7), false, "connection collision resolution"),
            ((6, 8), false, "out of resources"),
            ((4, 0), false, "hold timer expired"),
            ((3, 1), false, "UPDATE error"),
        ];
        for ((code, subcode), refusal, what) in cases {
            let n = Notification::new(code, subcode, Vec::new());
            assert_eq!(n.is_refusal(), refusal, "{what}: {n}");
        }
    }

    #[test]
    fn backoff_grows_with_jitter_and_a_refusal_waits_longer() {
        let mut b = Backoff::new(None);
        let delays: Vec<Duration> = (0..8).map(|_| b.delay()).collect();
        for (i, d) in delays.iter().enumerate() {
            let base = Duration::from_secs(1 << i.min(6)).min(Duration::from_secs(60));
            assert!(
                *d >= base.mul_f64(0.75) && *d <= base.mul_f64(1.25),
                "attempt {i}: {d:?} around {base:?}"
            );
        }
        b.reset();
        b.refused();
        assert!(
            b.delay() >= Duration::from_millis(7500),
            "a peer that refused us is not retried at once"
        );
        let mut fixed = Backoff::new(Some(Duration::from_secs(5)));
        assert_eq!(
            (fixed.delay(), fixed.delay()),
            (Duration::from_secs(5), Duration::from_secs(5))
        );
    }
}
