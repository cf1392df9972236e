//! The layer-2 responder for one interface: answers ARP and Neighbor Solicitations for the
//! IPs this node claims, and on each new claim announces it at once (gratuitous ARP or an
//! unsolicited Advertisement) and a few times more over two seconds.

use crate::arp::{self, Mac};
use crate::ndp;
use crate::socket::{IcmpSocket, PacketSocket};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::sync::Mutex;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Duration, Instant};

/// After the first announcement, repeats at these offsets, for hosts that missed it.
const REPEATS: [Duration; 3] = [
    Duration::from_millis(500),
    Duration::from_millis(1000),
    Duration::from_millis(2000),
];

/// One IP's counters under MetalLB's metric names (`metallb_layer2_*`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub requests_received: u64,
    pub responses_sent: u64,
    pub gratuitous_sent: u64,
}

/// An interface's counters, per IP, as MetalLB labels them.
#[derive(Debug, Default)]
pub struct Stats(Mutex<BTreeMap<IpAddr, Counts>>);

impl Stats {
    fn count(&self, ip: IpAddr, bump: impl FnOnce(&mut Counts)) {
        if let Ok(mut per_ip) = self.0.lock() {
            bump(per_ip.entry(ip).or_default());
        }
    }

    /// Every IP's counters so far.
    pub fn per_ip(&self) -> BTreeMap<IpAddr, Counts> {
        self.0.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

pub struct Responder {
    pub interface: String,
    pub mac: Mac,
    claims: watch::Sender<BTreeSet<IpAddr>>,
    pub stats: Arc<Stats>,
    task: JoinHandle<()>,
}

impl Responder {
    /// Starts answering on `interface` (inside a tokio runtime); nothing is claimed yet. An
    /// interface without IPv6 still answers ARP.
    pub fn start(interface: &str) -> std::io::Result<Responder> {
        let (arp_socket, mac) = PacketSocket::open(interface)?;
        let ndp_socket = IcmpSocket::open(interface)
            .inspect_err(|e| tracing::warn!(%interface, error = %e, "no Neighbor Discovery on this interface"))
            .ok();
        let (claims, rx) = watch::channel(BTreeSet::new());
        let stats = Arc::new(Stats::default());
        let sockets = Sockets {
            arp: arp_socket,
            ndp: ndp_socket,
            mac,
            stats: stats.clone(),
            interface: interface.to_string(),
        };
        let task = tokio::spawn(run(sockets, rx));
        Ok(Responder {
            interface: interface.to_string(),
            mac,
            claims,
            stats,
            task,
        })
    }

    /// The IPs this node answers for from now on; a released IP is no longer answered at once.
    pub fn set_claims(&self, claims: BTreeSet<IpAddr>) {
        self.claims.send_if_modified(|current| {
            let changed = *current != claims;
            *current = claims;
            changed
        });
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Sockets {
    arp: PacketSocket,
    ndp: Option<IcmpSocket>,
    mac: Mac,
    stats: Arc<Stats>,
    interface: String,
}

impl Sockets {
    async fn announce(&self, ip: IpAddr) {
        match ip {
            IpAddr::V4(v4) => {
                for frame in arp::gratuitous(v4, self.mac) {
                    if self.arp.send(&frame).await.is_ok() {
                        self.stats.count(ip, |c| c.gratuitous_sent += 1);
                    }
                }
            }
            IpAddr::V6(v6) => {
                if let Some(s) = &self.ndp
                    && s.send(&ndp::unsolicited(v6, self.mac)).await.is_ok()
                {
                    self.stats.count(ip, |c| c.gratuitous_sent += 1);
                }
            }
        }
    }

    /// Joins the solicited-node groups the claims need and leaves the others.
    fn follow_groups(&self, old: &BTreeSet<Ipv6Addr>, new: &BTreeSet<Ipv6Addr>) {
        let Some(s) = &self.ndp else { return };
        let groups = |ips: &BTreeSet<Ipv6Addr>| {
            ips.iter()
                .map(|ip| ndp::solicited_node(*ip))
                .collect::<BTreeSet<_>>()
        };
        let (before, after) = (groups(old), groups(new));
        for g in after.difference(&before) {
            if let Err(e) = s.membership(*g, true) {
                tracing::warn!(group = %g, error = %e, interface = %self.interface, "cannot join the solicited-node group");
            }
        }
        for g in before.difference(&after) {
            let _ = s.membership(*g, false);
        }
    }
}

/// The claims split by family: ARP answers the IPv4 ones, NDP the IPv6 ones.
fn by_family(claims: &BTreeSet<IpAddr>) -> (BTreeSet<Ipv4Addr>, BTreeSet<Ipv6Addr>) {
    let (mut v4, mut v6) = (BTreeSet::new(), BTreeSet::new());
    for ip in claims {
        match ip {
            IpAddr::V4(a) => v4.insert(*a),
            IpAddr::V6(a) => v6.insert(*a),
        };
    }
    (v4, v6)
}

async fn recv_ndp(
    s: &Option<IcmpSocket>,
    buf: &mut [u8],
) -> std::io::Result<(usize, Ipv6Addr, u8)> {
    match s {
        Some(s) => s.recv(buf).await,
        None => std::future::pending().await,
    }
}

async fn run(s: Sockets, mut claims: watch::Receiver<BTreeSet<IpAddr>>) {
    let mut current: BTreeSet<IpAddr> = BTreeSet::new();
    let (mut current_v4, mut current_v6) = (BTreeSet::new(), BTreeSet::new());
    // Claimed IP → the announcement repeats still due.
    let mut due: BTreeMap<IpAddr, Vec<Instant>> = BTreeMap::new();
    let mut arp_buf = vec![0u8; 2048];
    let mut ndp_buf = vec![0u8; 2048];
    loop {
        let next = due.values().flatten().min().copied();
        tokio::select! {
            got = s.arp.recv(&mut arp_buf) => {
                let Ok(n) = got else { continue };
                // Counted as MetalLB counts: requests for the IPs this node owns.
                if let Some((ip, reply)) = arp::answer(&arp_buf[..n], s.mac, &current_v4) {
                    let ip = IpAddr::V4(ip);
                    s.stats.count(ip, |c| c.requests_received += 1);
                    if s.arp.send(&reply).await.is_ok() {
                        s.stats.count(ip, |c| c.responses_sent += 1);
                        tracing::debug!(%ip, interface = %s.interface, "answered ARP");
                    }
                }
            }
            got = recv_ndp(&s.ndp, &mut ndp_buf) => {
                let Ok((n, from, hop_limit)) = got else { continue };
                if let Some(reply) = ndp::answer(&ndp_buf[..n], hop_limit, from, s.mac, &current_v6)
                    && let Some(socket) = &s.ndp
                {
                    let ip = IpAddr::V6(reply.from);
                    s.stats.count(ip, |c| c.requests_received += 1);
                    if socket.send(&reply).await.is_ok() {
                        s.stats.count(ip, |c| c.responses_sent += 1);
                        tracing::debug!(ip = %reply.from, asker = %from, interface = %s.interface, "answered a Neighbor Solicitation");
                    }
                }
            }
            changed = claims.changed() => {
                if changed.is_err() {
                    return;
                }
                let new = claims.borrow_and_update().clone();
                let (new_v4, new_v6) = by_family(&new);
                s.follow_groups(&current_v6, &new_v6);
                let now = Instant::now();
                for ip in new.difference(&current) {
                    tracing::info!(%ip, interface = %s.interface, "claimed: announcing");
                    s.announce(*ip).await;
                    due.insert(*ip, REPEATS.iter().map(|d| now + *d).collect());
                }
                for ip in current.difference(&new) {
                    tracing::info!(%ip, interface = %s.interface, "released");
                }
                due.retain(|ip, _| new.contains(ip));
                (current_v4, current_v6) = (new_v4, new_v6);
                current = new;
            }
            () = async { match next { Some(at) => tokio::time::sleep_until(at).await, None => std::future::pending().await } } => {
                let now = Instant::now();
                let ready: Vec<IpAddr> = due.iter().filter(|(_, at)| at.iter().any(|t| *t <= now)).map(|(ip, _)| *ip).collect();
                for ip in ready {
                    s.announce(ip).await;
                    if let Some(at) = due.get_mut(&ip) {
                        at.retain(|t| *t > now);
                    }
                }
                due.retain(|_, at| !at.is_empty());
            }
        }
    }
}
