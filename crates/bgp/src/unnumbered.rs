//! Unnumbered peering (BGPPeer `interface`): the router on a link is found from its Router
//! Advertisements, as FRR finds its unnumbered neighbours, and this node advertises itself
//! the same way, because FRR takes a session on an unnumbered interface only from a
//! neighbour it has heard an RA from. The RAs sent here have router lifetime 0: they make
//! this node known as a neighbour and never offer it as a default router (RFC 4861 §6.2.3).

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io;
use std::mem::MaybeUninit;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::time::Duration;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::watch;
use tokio::task::JoinHandle;

const ROUTER_SOLICITATION: u8 = 133;
const ROUTER_ADVERTISEMENT: u8 = 134;
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
const ALL_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);
/// RFC 4861's shortest MinRtrAdvInterval: a router that restarts, or a link that comes
/// back, knows this node again within this long.
const ADVERTISE_EVERY: Duration = Duration::from_secs(3);

/// What has been heard on the interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Heard {
    Nothing,
    /// The router's link-local address, from its latest Router Advertisement.
    Router(Ipv6Addr),
    /// The interface cannot be listened on (missing, or no NET_RAW); retried.
    Failed(String),
}

/// A Router Solicitation, so that a router answers at once instead of at its next RA. The
/// kernel fills in ICMPv6 checksums on raw ICMPv6 sockets.
pub fn solicitation() -> [u8; 8] {
    [ROUTER_SOLICITATION, 0, 0, 0, 0, 0, 0, 0]
}

/// A Router Advertisement with hop limit, flags, router lifetime and timers all 0
/// ("unspecified"): a neighbour, not a router to use.
pub fn advertisement() -> [u8; 16] {
    let mut ra = [0; 16];
    ra[0] = ROUTER_ADVERTISEMENT;
    ra
}

/// The router that sent `packet` from `source`, when it is a Router Advertisement from a
/// link-local address, as RFC 4861 §6.1.2 requires of a valid one. Pure.
pub fn router(packet: &[u8], source: Ipv6Addr) -> Option<Ipv6Addr> {
    let valid = packet.len() >= 16
        && packet[0] == ROUTER_ADVERTISEMENT
        && packet[1] == 0
        && source.is_unicast_link_local();
    valid.then_some(source)
}

/// The router on one interface, followed for as long as this lives. The latest RA's
/// sender is the router: an unnumbered link has one, and when it changes its address
/// (a new MAC, a replaced box) the session follows at its next RA.
pub struct Neighbor {
    heard: watch::Receiver<Heard>,
    task: JoinHandle<()>,
}

impl Drop for Neighbor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Neighbor {
    pub fn follow(interface: &str) -> Neighbor {
        let (tx, heard) = watch::channel(Heard::Nothing);
        let task = tokio::spawn(run(interface.to_string(), tx));
        Neighbor { heard, task }
    }

    pub fn heard(&self) -> Heard {
        self.heard.borrow().clone()
    }

    /// Resolves when something new is heard.
    pub async fn changed(&mut self) {
        if self.heard.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// The address to dial: the router's link-local address, scoped to the interface as it is
/// numbered now (it is renumbered if it is deleted and created again).
pub fn dial_address(router: Ipv6Addr, interface: &str, port: u16) -> io::Result<SocketAddr> {
    let index = nix::net::if_::if_nametoindex(interface).map_err(io::Error::from)?;
    Ok(SocketAddr::V6(SocketAddrV6::new(router, port, 0, index)))
}

async fn run(interface: String, tx: watch::Sender<Heard>) {
    loop {
        let failure = match open(&interface) {
            Ok(socket) => listen(&socket, &interface, &tx).await,
            Err(e) => e,
        };
        let why = format!("listening for Router Advertisements on {interface}: {failure}");
        tx.send_if_modified(|h| match h {
            // The last router stays: a session to it may well still be up.
            Heard::Router(_) => false,
            Heard::Failed(w) if *w == why => false,
            _ => {
                tracing::warn!(%interface, error = %failure, "cannot follow the unnumbered peer's interface; retrying");
                *h = Heard::Failed(why);
                true
            }
        });
        tokio::time::sleep(ADVERTISE_EVERY).await;
    }
}

fn open(interface: &str) -> io::Result<AsyncFd<Socket>> {
    let s = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6)).map_err(|e| {
        match e.raw_os_error() {
            Some(libc::EPERM | libc::EACCES) => io::Error::new(
                io::ErrorKind::PermissionDenied,
                "unnumbered BGP needs the NET_RAW capability, as layer 2 does: add NET_RAW to the speaker container's securityContext.capabilities.add",
            ),
            _ => e,
        }
    })?;
    s.bind_device(Some(interface.as_bytes()))?;
    // Neighbour Discovery is only accepted with hop limit 255, proof it was not routed.
    s.set_multicast_hops_v6(255)?;
    s.set_unicast_hops_v6(255)?;
    s.set_multicast_loop_v6(false)?;
    s.set_nonblocking(true)?;
    // SAFETY: the AsyncFd owns the socket, which stays open and the same until it is dropped.
    unsafe { AsyncFd::register_with_interest(s, Interest::READABLE) }.map_err(io::Error::from)
}

/// Solicits, then advertises this node every few seconds and reports each router heard,
/// until the socket fails.
async fn listen(socket: &AsyncFd<Socket>, interface: &str, tx: &watch::Sender<Heard>) -> io::Error {
    let send = |packet: &[u8], to: Ipv6Addr| -> io::Result<()> {
        let index = nix::net::if_::if_nametoindex(interface).map_err(io::Error::from)?;
        let to = SockAddr::from(SocketAddrV6::new(to, 0, 0, index));
        socket.get_ref().send_to(packet, &to).map(|_| ())
    };
    let mut tick = tokio::time::interval(ADVERTISE_EVERY);
    let mut solicited = false;
    let mut buf = [MaybeUninit::<u8>::uninit(); 1500];
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let sent = if solicited {
                    send(&advertisement(), ALL_NODES)
                } else {
                    send(&solicitation(), ALL_ROUTERS).and_then(|()| send(&advertisement(), ALL_NODES))
                };
                match sent {
                    Ok(()) => solicited = true,
                    Err(e) if transient(&e) => tracing::debug!(%interface, error = %e, "cannot advertise yet"),
                    Err(e) => return e,
                }
            }
            readable = socket.readable() => {
                let mut guard = match readable { Ok(g) => g, Err(e) => return e };
                let received = guard.try_io(|s| s.get_ref().recv_from(&mut buf));
                let (n, from) = match received {
                    Ok(Ok(r)) => r,
                    Ok(Err(e)) => return e,
                    Err(_would_block) => continue,
                };
                // SAFETY: recv_from initialised the first `n` bytes.
                let packet: Vec<u8> = buf[..n].iter().map(|b| unsafe { b.assume_init() }).collect();
                let Some(source) = from.as_socket_ipv6().map(|a| *a.ip()) else { continue };
                // Advertising at once when a router is new to us lets it take our
                // connection now rather than after our next tick.
                if router(&packet, source).is_some_and(|r| heard(tx, interface, r)) {
                    let _ = send(&advertisement(), ALL_NODES);
                }
            }
        }
    }
}

/// Why a send fails while the link is down, or up without its link-local address yet (DAD
/// running): the next tick tries again.
fn transient(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EADDRNOTAVAIL | libc::ENETUNREACH | libc::ENETDOWN)
    )
}

/// Records `router`; true when it is new.
fn heard(tx: &watch::Sender<Heard>, interface: &str, router: Ipv6Addr) -> bool {
    tx.send_if_modified(|h| {
        if *h == Heard::Router(router) {
            return false;
        }
        tracing::info!(%interface, %router, previous = ?h, "router heard on the unnumbered interface");
        *h = Heard::Router(router);
        true
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_router_advertisement_from_a_link_local_address_names_the_router() {
        let ll: Ipv6Addr = "fe80::1".parse().unwrap();
        let global: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let ra = advertisement();
        let cases: [(&[u8], Ipv6Addr, Option<Ipv6Addr>, &str); 5] = [
            (&ra, ll, Some(ll), "an RA from a link-local address"),
            (&ra, global, None, "an RA from a global address is invalid"),
            (&solicitation(), ll, None, "a solicitation is from a host"),
            (&ra[..8], ll, None, "a truncated RA"),
            (
                &[134, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                ll,
                None,
                "an RA with a nonzero code",
            ),
        ];
        for (packet, source, want, what) in cases {
            assert_eq!(router(packet, source), want, "{what}");
        }
    }

    #[test]
    fn the_advertisement_offers_no_default_router() {
        let ra = advertisement();
        assert_eq!(ra[0], ROUTER_ADVERTISEMENT);
        assert_eq!(u16::from_be_bytes([ra[6], ra[7]]), 0, "router lifetime");
    }
}
