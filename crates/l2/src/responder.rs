//! The ARP responder for one interface: answers requests for the IPs this node claims, and
//! on each new claim sends gratuitous ARP at once and a few times more over two seconds.

use crate::arp::{self, Mac};
use crate::socket::PacketSocket;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Duration, Instant};

/// After the first gratuitous ARP, repeats at these offsets, for hosts that missed it.
const REPEATS: [Duration; 3] = [
    Duration::from_millis(500),
    Duration::from_millis(1000),
    Duration::from_millis(2000),
];

/// Counters under MetalLB's metric names (`metallb_layer2_*`).
#[derive(Debug, Default)]
pub struct Stats {
    pub requests_received: AtomicU64,
    pub responses_sent: AtomicU64,
    pub gratuitous_sent: AtomicU64,
}

pub struct Responder {
    pub interface: String,
    pub mac: Mac,
    claims: watch::Sender<BTreeSet<Ipv4Addr>>,
    pub stats: Arc<Stats>,
    task: JoinHandle<()>,
}

impl Responder {
    /// Starts answering on `interface` (inside a tokio runtime); nothing is claimed yet.
    pub fn start(interface: &str) -> std::io::Result<Responder> {
        let (socket, mac) = PacketSocket::open(interface)?;
        let (claims, rx) = watch::channel(BTreeSet::new());
        let stats = Arc::new(Stats::default());
        let task = tokio::spawn(run(socket, mac, rx, stats.clone(), interface.to_string()));
        Ok(Responder {
            interface: interface.to_string(),
            mac,
            claims,
            stats,
            task,
        })
    }

    /// The IPs this node answers for from now on; a released IP is no longer answered at once.
    pub fn set_claims(&self, claims: BTreeSet<Ipv4Addr>) {
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

async fn run(
    socket: PacketSocket,
    mac: Mac,
    mut claims: watch::Receiver<BTreeSet<Ipv4Addr>>,
    stats: Arc<Stats>,
    interface: String,
) {
    let mut current = BTreeSet::new();
    // Claimed IP → the gratuitous repeats still due.
    let mut due: BTreeMap<Ipv4Addr, Vec<Instant>> = BTreeMap::new();
    let mut buf = vec![0u8; 2048];
    loop {
        let next = due.values().flatten().min().copied();
        tokio::select! {
            got = socket.recv(&mut buf) => {
                let Ok(n) = got else { continue };
                stats.requests_received.fetch_add(1, Ordering::Relaxed);
                if let Some(reply) = arp::answer(&buf[..n], mac, &current)
                    && socket.send(&reply).await.is_ok()
                {
                    stats.responses_sent.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%interface, "answered an ARP request");
                }
            }
            changed = claims.changed() => {
                if changed.is_err() {
                    return;
                }
                let new = claims.borrow_and_update().clone();
                let now = Instant::now();
                for ip in new.difference(&current) {
                    tracing::info!(%ip, %interface, "claimed: announcing with gratuitous ARP");
                    announce(&socket, *ip, mac, &stats).await;
                    due.insert(*ip, REPEATS.iter().map(|d| now + *d).collect());
                }
                due.retain(|ip, _| new.contains(ip));
                for ip in current.difference(&new) {
                    tracing::info!(%ip, %interface, "released");
                }
                current = new;
            }
            () = async { match next { Some(at) => tokio::time::sleep_until(at).await, None => std::future::pending().await } } => {
                let now = Instant::now();
                let ready: Vec<Ipv4Addr> = due.iter().filter(|(_, at)| at.iter().any(|t| *t <= now)).map(|(ip, _)| *ip).collect();
                for ip in ready {
                    announce(&socket, ip, mac, &stats).await;
                    if let Some(at) = due.get_mut(&ip) {
                        at.retain(|t| *t > now);
                    }
                }
                due.retain(|_, at| !at.is_empty());
            }
        }
    }
}

async fn announce(socket: &PacketSocket, ip: Ipv4Addr, mac: Mac, stats: &Stats) {
    for frame in arp::gratuitous(ip, mac) {
        if socket.send(&frame).await.is_ok() {
            stats.gratuitous_sent.fetch_add(1, Ordering::Relaxed);
        }
    }
}
