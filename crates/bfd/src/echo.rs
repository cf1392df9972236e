//! The Echo function on the wire, single-hop IPv4 (RFC 5880 §6.4, RFC 5881 §4). An echo
//! leaves as a frame to the peer's MAC, from and to our own address on UDP 3785, so the
//! peer's forwarding plane routes it straight back; nothing of the peer's BFD is involved.
//! It comes back on an AF_PACKET socket, because the kernel drops a packet bearing its own
//! source address as a martian before any UDP socket could see it. This is how FRR's
//! bfdd sends and takes back its IPv4 echoes, so the two interwork.

use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};
use socket2::{Domain, Protocol, SockAddr, SockAddrStorage, SockFilter, Socket, Type};
use std::io::{self, Read};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

pub const ECHO_PORT: u16 = 3785;
const ETH_P_IP: u16 = 0x0800;
/// Marks our echoes. Shorter than FRR's 24-byte echo, which FRR's bfdd then never takes
/// for one of its own when it sees ours pass.
const MAGIC: [u8; 4] = *b"ILBe";
/// The ARP table is read again after this long, so a peer that changes its MAC (a
/// failover pair, a replaced router) gets the echoes at its new one.
const NEIGHBOR_TTL: Duration = Duration::from_secs(1);

/// One session's echo path: an AF_PACKET socket on the interface toward the peer.
pub struct EchoPath {
    socket: AsyncFd<Socket>,
    interface: (String, u32),
    local: Ipv4Addr,
    peer: Ipv4Addr,
    discriminator: u32,
    peer_mac: Option<([u8; 6], Instant)>,
}

impl EchoPath {
    /// Opens the path for the session `discriminator` from `local` to `peer`, on the
    /// interface that holds `local`.
    pub fn open(local: Ipv4Addr, peer: Ipv4Addr, discriminator: u32) -> io::Result<EchoPath> {
        let interface = interface_of(local)?;
        // Protocol 0 receives nothing until the filter is on and the bind names IPv4.
        let s = Socket::new(Domain::PACKET, Type::DGRAM, Some(Protocol::from(0)))
            .map_err(needs_net_raw)?;
        s.attach_filter(&filter(local))?;
        s.bind(&link_address(interface.1, None))?;
        s.set_nonblocking(true)?;
        // SAFETY: the AsyncFd owns the socket, which stays open and the same until dropped.
        let socket = unsafe { AsyncFd::register_with_interest(s, Interest::READABLE) }
            .map_err(io::Error::from)?;
        Ok(EchoPath {
            socket,
            interface,
            local,
            peer,
            discriminator,
            peer_mac: None,
        })
    }

    /// Sends one echo; a peer whose MAC is not known yet gets none.
    pub fn send(&mut self) -> io::Result<()> {
        let Some(mac) = self.peer_mac() else {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no ARP entry for {} yet", self.peer),
            ));
        };
        let frame = packet(self.local, self.discriminator);
        let to = link_address(self.interface.1, Some(mac));
        self.socket.get_ref().send_to(&frame, &to).map(drop)
    }

    fn peer_mac(&mut self) -> Option<[u8; 6]> {
        let now = Instant::now();
        let fresh = self
            .peer_mac
            .filter(|(_, at)| now.duration_since(*at) < NEIGHBOR_TTL);
        if fresh.is_none() {
            let table = std::fs::read_to_string("/proc/net/arp").unwrap_or_default();
            self.peer_mac = neighbor(&table, self.peer, &self.interface.0).map(|mac| (mac, now));
        }
        self.peer_mac.map(|(mac, _)| mac)
    }

    /// Resolves when one of our echoes has come back.
    pub async fn returned(&self) -> io::Result<()> {
        let mut buf = [0u8; 128];
        loop {
            let mut guard = self.socket.readable().await?;
            let Ok(received) = guard.try_io(|s| s.get_ref().read(&mut buf)) else {
                continue;
            };
            let n = received?;
            if ours(&buf[..n], self.local, self.discriminator) {
                return Ok(());
            }
        }
    }
}

fn needs_net_raw(e: io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(libc::EPERM | libc::EACCES) => io::Error::new(
            io::ErrorKind::PermissionDenied,
            "BFD echo mode needs the NET_RAW capability, as layer 2 does: add NET_RAW to the speaker container's securityContext.capabilities.add",
        ),
        _ => e,
    }
}

/// The interface that holds `local`: its name and index.
fn interface_of(local: Ipv4Addr) -> io::Result<(String, u32)> {
    let addrs = nix::ifaddrs::getifaddrs().map_err(io::Error::from)?;
    let name = addrs
        .filter(|a| {
            a.address
                .as_ref()
                .and_then(|s| s.as_sockaddr_in())
                .is_some_and(|s| s.ip() == local)
        })
        .map(|a| a.interface_name)
        .next()
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("no interface holds {local}"),
            )
        })?;
    let index = nix::net::if_::if_nametoindex(name.as_str()).map_err(io::Error::from)?;
    Ok((name, index))
}

/// An AF_PACKET address on interface `index` for IPv4, to `mac` when sending.
fn link_address(index: u32, mac: Option<[u8; 6]>) -> SockAddr {
    let mut storage = SockAddrStorage::zeroed();
    // SAFETY: a sockaddr_ll fits in the storage, and all zeroes is a valid one.
    let ll = unsafe { storage.view_as::<libc::sockaddr_ll>() };
    ll.sll_family = libc::AF_PACKET as u16;
    ll.sll_protocol = ETH_P_IP.to_be();
    ll.sll_ifindex = index as i32;
    if let Some(mac) = mac {
        ll.sll_halen = 6;
        ll.sll_addr[..6].copy_from_slice(&mac);
    }
    let len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: the storage holds an initialised sockaddr_ll of that length.
    unsafe { SockAddr::new(storage, len) }
}

/// Our echo for session `discriminator`: IPv4 from and to `local`, TTL 255, UDP 3785 both
/// ways (as FRR sends), carrying the magic and the discriminator. Pure.
pub fn packet(local: Ipv4Addr, discriminator: u32) -> Vec<u8> {
    let payload = payload(discriminator);
    let builder =
        PacketBuilder::ipv4(local.octets(), local.octets(), 255).udp(ECHO_PORT, ECHO_PORT);
    let mut out = Vec::with_capacity(builder.size(payload.len()));
    builder
        .write(&mut out, &payload)
        .expect("writing to a Vec cannot fail");
    out
}

/// Whether `data` (from the IP header on) is one of our echoes for `discriminator`. Pure.
pub fn ours(data: &[u8], local: Ipv4Addr, discriminator: u32) -> bool {
    let Ok(p) = SlicedPacket::from_ip(data) else {
        return false;
    };
    let (Some(NetSlice::Ipv4(ip)), Some(TransportSlice::Udp(udp))) = (p.net, p.transport) else {
        return false;
    };
    let h = ip.header();
    h.source_addr() == local
        && h.destination_addr() == local
        && udp.destination_port() == ECHO_PORT
        && udp.payload() == payload(discriminator)
}

/// What our echoes carry: the magic, then the session's discriminator.
fn payload(discriminator: u32) -> [u8; 8] {
    let mut out = [0; 8];
    out[..4].copy_from_slice(&MAGIC);
    out[4..].copy_from_slice(&discriminator.to_be_bytes());
    out
}

/// A classic BPF program that passes only IPv4 UDP to port 3785 from and to `local` that
/// arrived (not our own outgoing copies), so the socket sees nothing of the rest of the
/// interface's traffic. Offsets count from the IP header (a SOCK_DGRAM packet socket).
fn filter(local: Ipv4Addr) -> [SockFilter; 15] {
    const LD_B_ABS: u16 = 0x30;
    const LD_H_ABS: u16 = 0x28;
    const LD_W_ABS: u16 = 0x20;
    const LD_H_IND: u16 = 0x48;
    const LDX_B_MSH: u16 = 0xb1;
    const JEQ: u16 = 0x15;
    const JSET: u16 = 0x45;
    const RET: u16 = 0x06;
    const PKTTYPE: u32 = 0xffff_f004; // SKF_AD_OFF + SKF_AD_PKTTYPE
    let addr = u32::from(local);
    // Each jump counts instructions after the next one; 14 drops, 13 accepts.
    [
        SockFilter::new(LD_B_ABS, 0, 0, PKTTYPE),
        SockFilter::new(JEQ, 12, 0, libc::PACKET_OUTGOING as u32),
        SockFilter::new(LD_W_ABS, 0, 0, 12),
        SockFilter::new(JEQ, 0, 10, addr),
        SockFilter::new(LD_W_ABS, 0, 0, 16),
        SockFilter::new(JEQ, 0, 8, addr),
        SockFilter::new(LD_B_ABS, 0, 0, 9),
        SockFilter::new(JEQ, 0, 6, u32::from(libc::IPPROTO_UDP as u8)),
        SockFilter::new(LD_H_ABS, 0, 0, 6),
        SockFilter::new(JSET, 4, 0, 0x1fff),
        SockFilter::new(LDX_B_MSH, 0, 0, 0),
        SockFilter::new(LD_H_IND, 0, 0, 2),
        SockFilter::new(JEQ, 0, 1, u32::from(ECHO_PORT)),
        SockFilter::new(RET, 0, 0, 0xffff),
        SockFilter::new(RET, 0, 0, 0),
    ]
}

/// The MAC that `table` (`/proc/net/arp`) holds for `ip` on `interface`, if resolved. Pure.
pub fn neighbor(table: &str, ip: Ipv4Addr, interface: &str) -> Option<[u8; 6]> {
    const COMPLETE: u32 = 0x2;
    table.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let [addr, _, flags, mac, _, dev] = cols.as_slice() else {
            return None;
        };
        let flags = u32::from_str_radix(flags.trim_start_matches("0x"), 16).ok()?;
        if addr.parse::<Ipv4Addr>().ok()? != ip || *dev != interface || flags & COMPLETE == 0 {
            return None;
        }
        let bytes: Vec<u8> = mac
            .split(':')
            .map(|b| u8::from_str_radix(b, 16))
            .collect::<Result<_, _>>()
            .ok()?;
        bytes.try_into().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCAL: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

    #[test]
    fn an_echo_is_recognised_only_by_its_own_session() {
        let echo = packet(LOCAL, 7);
        assert!(ours(&echo, LOCAL, 7));
        assert!(!ours(&echo, LOCAL, 8), "another session's");
        assert!(
            !ours(&echo, Ipv4Addr::new(192, 0, 2, 3), 7),
            "another address"
        );
        assert!(!ours(&echo[..echo.len() - 1], LOCAL, 7), "truncated");
        let frr = packet(Ipv4Addr::new(192, 0, 2, 1), 7);
        assert!(!ours(&frr, LOCAL, 7), "the peer's own echo passing through");
    }

    #[test]
    fn the_echo_is_ipv4_udp_3785_with_ttl_255() {
        let echo = packet(LOCAL, 7);
        assert_eq!(echo[0], 0x45);
        assert_eq!(echo[8], 255, "TTL");
        assert_eq!(echo[9], 17, "UDP");
        assert_eq!(u16::from_be_bytes([echo[22], echo[23]]), ECHO_PORT);
        assert!(echo.len() - 28 < 24, "shorter than FRR's echo");
    }

    #[test]
    fn the_peer_mac_comes_from_a_complete_arp_entry_on_its_interface() {
        let table = "IP address       HW type     Flags       HW address            Mask     Device
192.0.2.1        0x1         0x2         02:00:00:00:00:01     *        eth0
192.0.2.5        0x1         0x0         00:00:00:00:00:00     *        eth0
192.0.2.1        0x1         0x2         02:00:00:00:00:09     *        eth1
";
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert_eq!(
            neighbor(table, ip("192.0.2.1"), "eth0"),
            Some([2, 0, 0, 0, 0, 1])
        );
        assert_eq!(
            neighbor(table, ip("192.0.2.1"), "eth1"),
            Some([2, 0, 0, 0, 0, 9])
        );
        assert_eq!(neighbor(table, ip("192.0.2.5"), "eth0"), None, "incomplete");
        assert_eq!(neighbor(table, ip("192.0.2.9"), "eth0"), None, "absent");
    }
}
