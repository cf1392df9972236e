//! BFD on the wire: listeners per address family on UDP 3784 for single hop (RFC 5881),
//! accepting only TTL 255, and on 4784 for multihop (RFC 5883), accepting the lowest TTL the
//! multihop peers allow; and one task per peer that owns its session and sends from its own
//! port in 49152–65535 with TTL 255.

use crate::echo::EchoPath;
use crate::packet::{Packet, State};
use crate::session::{Output, Session, Timers};
use rand::RngExt;
use rand::rngs::SmallRng;
use socket2::{Domain, Protocol, Socket, Type};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Single-hop BFD Control packets go to this port (RFC 5881 §4).
pub const PORT: u16 = 3784;
/// Multihop ones to this (RFC 5883 §5).
pub const MULTIHOP_PORT: u16 = 4784;

/// One peer's BFD session as configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerSpec {
    pub timers: Timers,
    /// The address to send from (the BGP session's); default the kernel's choice.
    pub source: Option<IpAddr>,
    /// `Some(minimum TTL)` for a multihop session; single-hop sessions require 255.
    pub multihop: Option<u8>,
}

/// A peer's session as its clients see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerState {
    pub state: State,
    /// The diagnostic code of the last change (RFC 5880 §4.1).
    pub diag: u8,
    /// The peer took the session down administratively: not a failure of the path, so a
    /// client takes no action (RFC 5882 §4.2).
    pub peer_admin_down: bool,
}

impl PeerState {
    pub fn down() -> PeerState {
        PeerState {
            state: State::Down,
            diag: 0,
            peer_admin_down: false,
        }
    }
}

/// Each peer's session state, as it changes.
pub type States = BTreeMap<IpAddr, PeerState>;

/// A session's packets and transitions since it started, as FRR counts them for MetalLB's
/// metrics. Kept apart from `States`, which changes only with the state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub control_received: u64,
    pub control_sent: u64,
    pub up_events: u64,
    pub down_events: u64,
    pub echo_received: u64,
    pub echo_sent: u64,
}

type Counters = Arc<Mutex<BTreeMap<IpAddr, Counts>>>;

/// Peer address → how many times its path failed (see `Bfd::path_failures`).
pub type PathFailures = BTreeMap<IpAddr, u64>;

/// What the sessions report: their states, how often each path failed, and the counts.
#[derive(Clone)]
struct Reports {
    states: watch::Sender<States>,
    failures: watch::Sender<PathFailures>,
    counters: Counters,
}

impl Reports {
    fn new() -> Reports {
        Reports {
            states: watch::Sender::new(States::new()),
            failures: watch::Sender::new(PathFailures::new()),
            counters: Counters::default(),
        }
    }
}

/// Whether a change means the path failed: the session was Up and is no longer, and not
/// because the peer took BFD down administratively (RFC 5882 §4.2: the client takes no
/// action then, so turning BFD off on the router never resets BGP).
fn fails_path(from: State, to: State, peer_admin_down: bool) -> bool {
    from == State::Up && to != State::Up && !peer_admin_down
}

fn count(counters: &Counters, peer: IpAddr, f: impl FnOnce(&mut Counts)) {
    if let Ok(mut all) = counters.lock() {
        f(all.entry(peer).or_default());
    }
}

/// Each peer's session inbox, and whether it is multihop (its packets must come on 4784).
type Inboxes = Arc<Mutex<BTreeMap<IpAddr, (bool, mpsc::Sender<Packet>)>>>;

struct Peer {
    spec: PeerSpec,
    /// Whether this session can run the Echo function (see `echo_path`).
    echo: bool,
    timers: watch::Sender<Timers>,
    task: JoinHandle<()>,
}

pub struct Bfd {
    peers: BTreeMap<IpAddr, Peer>,
    inboxes: Inboxes,
    /// The multihop listeners, whose minimum TTL follows the peers.
    multihop: Vec<Arc<UdpSocket>>,
    reports: Reports,
    listeners: Vec<JoinHandle<()>>,
    next_discriminator: u32,
}

impl Drop for Bfd {
    fn drop(&mut self) {
        for task in self
            .listeners
            .iter()
            .chain(self.peers.values().map(|p| &p.task))
        {
            task.abort();
        }
    }
}

fn set_int(socket: &Socket, level: i32, name: i32, value: i32) -> std::io::Result<()> {
    // SAFETY: a valid socket, and a pointer to an int of the size given.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&value as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Makes the kernel drop packets that arrived with a lower TTL (hop limit) than `min`.
fn set_min_ttl(s: &Socket, v4: bool, min: u8) -> std::io::Result<()> {
    if v4 {
        set_int(s, libc::IPPROTO_IP, libc::IP_MINTTL, i32::from(min))
    } else {
        set_int(
            s,
            libc::IPPROTO_IPV6,
            libc::IPV6_MINHOPCOUNT,
            i32::from(min),
        )
    }
}

/// A receiving socket on `port` that the kernel feeds only packets that arrived with at
/// least TTL `min`: 255 for single hop, so no one off-link reaches the sessions (RFC 5881
/// §5).
fn listener(ip: IpAddr, port: u16, min: u8) -> std::io::Result<UdpSocket> {
    let address = SocketAddr::new(ip, port);
    let s = Socket::new(
        Domain::for_address(address),
        Type::DGRAM,
        Some(Protocol::UDP),
    )?;
    s.set_reuse_address(true)?;
    if ip.is_ipv6() {
        s.set_only_v6(true)?;
    }
    set_min_ttl(&s, ip.is_ipv4(), min)?;
    s.set_nonblocking(true)?;
    s.bind(&address.into())?;
    UdpSocket::from_std(s.into())
}

/// A sending socket for one peer, from a free port in 49152–65535, TTL 255.
fn sender(peer: IpAddr, source: Option<IpAddr>, port: u16) -> std::io::Result<UdpSocket> {
    let to = SocketAddr::new(peer, port);
    let domain = Domain::for_address(to);
    let local = source.unwrap_or(if peer.is_ipv4() {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    });
    let mut rng = rand::make_rng::<SmallRng>();
    let mut last = None;
    for _ in 0..64 {
        let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
        if peer.is_ipv4() {
            s.set_ttl_v4(255)?;
        } else {
            s.set_unicast_hops_v6(255)?;
        }
        s.set_nonblocking(true)?;
        let source_port = rng.random_range(49152..=65535);
        match s.bind(&SocketAddr::new(local, source_port).into()) {
            Ok(()) => {
                s.connect(&to.into())?;
                return UdpSocket::from_std(s.into());
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free source port")))
}

impl Bfd {
    /// Listens on UDP 3784 and 4784 for both families (inside a tokio runtime). What this
    /// host cannot listen on is skipped with a warning; with nothing at all, this fails.
    pub fn start() -> std::io::Result<Bfd> {
        let inboxes = Inboxes::default();
        let mut listeners = Vec::new();
        let mut multihop = Vec::new();
        let mut last_error = None;
        for ip in [
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        ] {
            for (port, is_multihop) in [(PORT, false), (MULTIHOP_PORT, true)] {
                match listener(ip, port, 255) {
                    Ok(socket) => {
                        let socket = Arc::new(socket);
                        if is_multihop {
                            multihop.push(socket.clone());
                        }
                        let task = receive(socket, is_multihop, inboxes.clone());
                        listeners.push(tokio::spawn(task));
                    }
                    Err(e) => {
                        tracing::warn!(%ip, port, error = %e, "cannot listen for BFD");
                        last_error = Some(e);
                    }
                }
            }
        }
        if listeners.is_empty() {
            return Err(last_error.unwrap_or_else(|| std::io::Error::other("no BFD listener")));
        }
        Ok(Bfd {
            peers: BTreeMap::new(),
            inboxes,
            multihop,
            reports: Reports::new(),
            listeners,
            next_discriminator: rand::make_rng::<SmallRng>().random_range(1..u32::MAX / 2),
        })
    }

    /// How many times each peer's path has failed: the count goes up each time a session
    /// goes down from Up, unless the peer took it down administratively. Counts are never
    /// reset, so a client compares a count with the one it saw when its own session began.
    pub fn path_failures(&self) -> watch::Receiver<PathFailures> {
        self.reports.failures.subscribe()
    }

    pub fn states(&self) -> watch::Receiver<States> {
        self.reports.states.subscribe()
    }

    /// Each running session's counts.
    pub fn counts(&self) -> BTreeMap<IpAddr, Counts> {
        self.reports
            .counters
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default()
    }

    /// Runs exactly these sessions; an unchanged one is not disturbed, new timers go
    /// through the Poll sequence.
    pub fn set_peers(&mut self, wanted: &BTreeMap<IpAddr, PeerSpec>) {
        // Read once per call, and only when some session wants echo.
        let forwards = wanted.values().any(|s| s.timers.echo.is_some())
            && std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
                .is_ok_and(|v| v.trim() == "1");
        let gone: Vec<IpAddr> = self
            .peers
            .iter()
            .filter(|(ip, p)| {
                wanted.get(ip).is_none_or(|w| {
                    (w.source, w.multihop.is_some()) != (p.spec.source, p.spec.multihop.is_some())
                })
            })
            .map(|(ip, _)| *ip)
            .collect();
        for ip in gone {
            self.stop(ip);
        }
        for (ip, spec) in wanted {
            match self.peers.get_mut(ip) {
                Some(p) => {
                    p.spec = *spec;
                    let timers = usable(spec.timers, p.echo, *ip, forwards);
                    p.timers.send_if_modified(|t| {
                        let changed = *t != timers;
                        *t = timers;
                        changed
                    });
                }
                None => self.start_session(*ip, spec, forwards),
            }
        }
        self.set_multihop_ttl(wanted);
    }

    /// Ends the session with `ip` and forgets its state and counts.
    fn stop(&mut self, ip: IpAddr) {
        if let Some(p) = self.peers.remove(&ip) {
            p.task.abort();
        }
        if let Ok(mut inboxes) = self.inboxes.lock() {
            inboxes.remove(&ip);
        }
        self.reports
            .states
            .send_if_modified(|s| s.remove(&ip).is_some());
        if let Ok(mut counters) = self.reports.counters.lock() {
            counters.remove(&ip);
        }
    }

    /// Starts a session with `ip`, Down, with its own socket and task.
    fn start_session(&mut self, ip: IpAddr, spec: &PeerSpec, forwards: bool) {
        let port = if spec.multihop.is_some() {
            MULTIHOP_PORT
        } else {
            PORT
        };
        let socket = match sender(ip, spec.source, port) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(peer = %ip, error = %e, "cannot send BFD to this peer");
                return;
            }
        };
        let (inbox_tx, inbox) = mpsc::channel(16);
        if let Ok(mut inboxes) = self.inboxes.lock() {
            inboxes.insert(ip, (spec.multihop.is_some(), inbox_tx));
        }
        self.next_discriminator = self.next_discriminator.wrapping_add(1).max(1);
        let echo = echo_path(ip, spec, &socket, self.next_discriminator);
        let timers = usable(spec.timers, echo.is_some(), ip, forwards);
        let (timers_tx, timers_rx) = watch::channel(timers);
        let session = Session::new(timers, self.next_discriminator, std::time::Instant::now());
        let task = tokio::spawn(run(
            ip,
            session,
            (socket, echo),
            inbox,
            timers_rx,
            self.reports.clone(),
        ));
        self.reports.states.send_modify(|s| {
            s.insert(ip, PeerState::down());
        });
        self.peers.insert(
            ip,
            Peer {
                spec: *spec,
                echo: timers.echo.is_some(),
                timers: timers_tx,
                task,
            },
        );
    }

    fn set_multihop_ttl(&self, wanted: &BTreeMap<IpAddr, PeerSpec>) {
        // One multihop socket serves every multihop peer: it admits the lowest TTL any of
        // them allows.
        let min = wanted
            .values()
            .filter_map(|p| p.multihop)
            .min()
            .unwrap_or(255);
        for socket in &self.multihop {
            let v4 = socket.local_addr().is_ok_and(|a| a.is_ipv4());
            if let Err(e) = set_min_ttl(&socket2::SockRef::from(&**socket), v4, min) {
                tracing::warn!(error = %e, "cannot set the multihop BFD minimum TTL");
            }
        }
    }
}

/// The Echo function's path for a session that asks for it: single-hop IPv4 only (RFC 5883
/// leaves multihop without echo). None, with the reason logged, when it cannot be opened:
/// a session whose echoes could never return would only flap.
fn echo_path(
    peer: IpAddr,
    spec: &PeerSpec,
    socket: &UdpSocket,
    discriminator: u32,
) -> Option<EchoPath> {
    spec.timers.echo?;
    let (IpAddr::V4(peer), None) = (peer, spec.multihop) else {
        return None;
    };
    let local = match socket.local_addr().map(|a| a.ip()) {
        Ok(IpAddr::V4(local)) => local,
        _ => return None,
    };
    EchoPath::open(local, peer, discriminator)
        .inspect_err(|e| tracing::warn!(%peer, error = %e, "BFD echo mode cannot run; the session runs on control packets alone"))
        .ok()
}

/// The timers a session runs: without echo where it has no path, and asking the peer for
/// no echoes unless this host forwards IPv4, since the peer's echoes return only through
/// our forwarding plane.
fn usable(mut timers: Timers, echo: bool, peer: IpAddr, forwards: bool) -> Timers {
    if !echo {
        timers.echo = None;
    }
    if timers.echo.is_none() || !peer.is_ipv4() || !forwards {
        timers.echo_rx = Duration::ZERO;
    }
    timers
}

/// Hands each valid packet to the session of the peer it came from, if it came on the
/// port that session uses.
async fn receive(socket: Arc<UdpSocket>, multihop: bool, inboxes: Inboxes) {
    let mut buf = [0u8; 128];
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let peer = from.ip().to_canonical();
        let packet = match Packet::decode(&buf[..n]) {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "discarded a BFD packet");
                continue;
            }
        };
        let inbox = inboxes.lock().ok().and_then(|i| i.get(&peer).cloned());
        match inbox {
            Some((kind, inbox)) if kind == multihop => {
                let _ = inbox.try_send(packet);
            }
            _ => tracing::debug!(%peer, multihop, "BFD packet from a host that is not such a peer"),
        }
    }
}

async fn run(
    peer: IpAddr,
    mut session: Session,
    (socket, mut echo): (UdpSocket, Option<EchoPath>),
    mut inbox: mpsc::Receiver<Packet>,
    mut timers: watch::Receiver<Timers>,
    reports: Reports,
) {
    loop {
        let deadline = Instant::from_std(session.next_deadline());
        let returned = async {
            match &echo {
                Some(path) => path.returned().await,
                None => std::future::pending().await,
            }
        };
        let outputs = tokio::select! {
            got = inbox.recv() => match got {
                Some(p) => {
                    count(&reports.counters, peer, |c| c.control_received += 1);
                    session.receive(&p, std::time::Instant::now())
                }
                None => return,
            },
            () = tokio::time::sleep_until(deadline) => session.poll(std::time::Instant::now()),
            changed = timers.changed() => {
                if changed.is_err() {
                    return;
                }
                let t = *timers.borrow_and_update();
                session.set_timers(t, std::time::Instant::now());
                Vec::new()
            }
            back = returned => {
                match back {
                    Ok(()) => {
                        count(&reports.counters, peer, |c| c.echo_received += 1);
                        session.echo_returned(std::time::Instant::now());
                    }
                    Err(e) => tracing::debug!(%peer, error = %e, "BFD echo socket"),
                }
                Vec::new()
            }
        };
        for o in outputs {
            act(peer, o, &socket, echo.as_mut(), &session, &reports).await;
        }
    }
}

/// Carries out one of the session's outputs.
async fn act(
    peer: IpAddr,
    output: Output,
    socket: &UdpSocket,
    echo: Option<&mut EchoPath>,
    session: &Session,
    reports: &Reports,
) {
    match output {
        Output::Send(p) => match socket.send(&p.encode()).await {
            Ok(_) => count(&reports.counters, peer, |c| c.control_sent += 1),
            Err(e) => tracing::debug!(%peer, error = %e, "BFD packet not sent"),
        },
        Output::SendEcho => match echo.map(|path| path.send()) {
            Some(Ok(())) => count(&reports.counters, peer, |c| c.echo_sent += 1),
            Some(Err(e)) => tracing::debug!(%peer, error = %e, "BFD echo not sent"),
            None => {}
        },
        Output::Changed { from, to, diag } => {
            count(&reports.counters, peer, |c| match (from, to) {
                (_, State::Up) => c.up_events += 1,
                (State::Up, _) => c.down_events += 1,
                _ => {}
            });
            let peer_admin_down = session.remote_state() == State::AdminDown;
            tracing::info!(%peer, ?from, ?to, diag, peer_admin_down, "BFD session state");
            if fails_path(from, to, peer_admin_down) {
                reports
                    .failures
                    .send_modify(|f| *f.entry(peer).or_default() += 1);
            }
            reports.states.send_modify(|s| {
                s.insert(
                    peer,
                    PeerState {
                        state: to,
                        diag,
                        peer_admin_down,
                    },
                );
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_failed_path_counts_never_the_peers_admin_down() {
        let cases = [
            (
                State::Up,
                State::Down,
                false,
                true,
                "detection time expired, or Down signalled",
            ),
            (
                State::Up,
                State::Init,
                false,
                true,
                "the neighbor restarted",
            ),
            (
                State::Up,
                State::Down,
                true,
                false,
                "the neighbor went AdminDown",
            ),
            (State::Up, State::Up, false, false, "still up"),
            (State::Init, State::Down, false, false, "never was up"),
            (State::Down, State::Up, false, false, "coming up"),
        ];
        for (from, to, admin_down, fails, case) in cases {
            assert_eq!(fails_path(from, to, admin_down), fails, "{case}");
        }
    }
}
