//! The raw sockets of one interface: AF_PACKET for its ARP frames, and ICMPv6 for Neighbor
//! Discovery.

use crate::ndp::Advertisement;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

const ETH_P_ARP: u16 = 0x0806;

pub struct PacketSocket {
    fd: AsyncFd<OwnedFd>,
}

/// The interface's name as a C string, and its index.
fn lookup(interface: &str) -> io::Result<(CString, u32)> {
    let name = CString::new(interface).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "interface name with a NUL byte",
        )
    })?;
    // SAFETY: `name` is a valid C string.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no interface {interface:?}"),
        ));
    }
    Ok((name, index))
}

/// A non-blocking raw socket.
fn raw_socket(domain: libc::c_int, protocol: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the result is checked before use.
    let raw = check(unsafe {
        libc::socket(
            domain,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            protocol,
        )
    })
    .map_err(|e| match e.raw_os_error() {
        Some(libc::EPERM | libc::EACCES) => io::Error::new(
            io::ErrorKind::PermissionDenied,
            "answering ARP and NDP needs the NET_RAW capability: add NET_RAW to the speaker container's securityContext.capabilities.add, as MetalLB's manifest does",
        ),
        _ => e,
    })?;
    // SAFETY: `raw` is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

impl PacketSocket {
    /// Opens the socket on `interface`, and returns it with the interface's MAC address.
    pub fn open(interface: &str) -> io::Result<(PacketSocket, [u8; 6])> {
        let (name, index) = lookup(interface)?;
        let protocol = i32::from(ETH_P_ARP.to_be());
        let fd = raw_socket(libc::AF_PACKET, protocol)?;
        // SAFETY: an all-zero sockaddr_ll is valid; the fields that matter are set below.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = ETH_P_ARP.to_be();
        addr.sll_ifindex = index as i32;
        // SAFETY: `addr` is a valid sockaddr_ll and the length is its size.
        check(unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        })?;
        let mac = hardware_address(&fd, &name)?;
        Ok((
            PacketSocket {
                // SAFETY: the AsyncFd owns `fd`, which stays open and the same until it is dropped.
                fd: unsafe { AsyncFd::register(fd) }?,
            },
            mac,
        ))
    }

    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.fd
            .async_io(Interest::READABLE, |fd| {
                // SAFETY: `buf` is valid for `buf.len()` bytes.
                check(
                    unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) }
                        as libc::c_int,
                )
                .map(|n| n as usize)
            })
            .await
    }

    pub async fn send(&self, frame: &[u8]) -> io::Result<()> {
        self.fd
            .async_io(Interest::WRITABLE, |fd| {
                // SAFETY: `frame` is valid for `frame.len()` bytes; the socket is bound to one
                // interface.
                check(
                    unsafe { libc::send(fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) }
                        as libc::c_int,
                )
                .map(drop)
            })
            .await
    }
}

/// The interface's MAC, asked of the kernel through the socket (sysfs would show the host's
/// interfaces to a thread that only entered a network namespace).
fn hardware_address(fd: &OwnedFd, name: &CString) -> io::Result<[u8; 6]> {
    // SAFETY: an all-zero ifreq is valid; the name is copied in below, NUL-terminated.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req
        .ifr_name
        .iter_mut()
        .zip(name.as_bytes().iter().take(libc::IFNAMSIZ - 1))
    {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFHWADDR fills `req.ifr_ifru.ifru_hwaddr`; `req` outlives the call.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFHWADDR, &mut req) })?;
    // SAFETY: after SIOCGIFHWADDR the union holds the hardware address.
    let data = unsafe { req.ifr_ifru.ifru_hwaddr.sa_data };
    let mut mac = [0u8; 6];
    for (m, d) in mac.iter_mut().zip(data.iter()) {
        *m = *d as u8;
    }
    Ok(mac)
}

/// A raw ICMPv6 socket on one interface, for Neighbor Discovery. Sends use hop limit 255,
/// and every read reports the hop limit it arrived with.
pub struct IcmpSocket {
    fd: AsyncFd<OwnedFd>,
    index: u32,
}

fn set<T>(fd: &OwnedFd, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` is a live `T` and the length passed is its size.
    check(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    })
    .map(drop)
}

impl IcmpSocket {
    pub fn open(interface: &str) -> io::Result<IcmpSocket> {
        let (name, index) = lookup(interface)?;
        let fd = raw_socket(libc::AF_INET6, libc::IPPROTO_ICMPV6)?;
        // SAFETY: the name's bytes are valid for their length.
        check(unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_BINDTODEVICE,
                name.as_ptr().cast(),
                name.as_bytes().len() as libc::socklen_t,
            )
        })?;
        set(&fd, libc::IPPROTO_IPV6, libc::IPV6_RECVHOPLIMIT, &1i32)?;
        set(&fd, libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS, &255i32)?;
        set(&fd, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_HOPS, &255i32)?;
        // Advertisements are sent from the claimed IP, which is not on the interface.
        set(&fd, libc::IPPROTO_IPV6, libc::IPV6_FREEBIND, &1i32)?;
        // SAFETY: the AsyncFd owns `fd`, which stays open and the same until it is dropped.
        Ok(IcmpSocket {
            fd: unsafe { AsyncFd::register(fd) }?,
            index,
        })
    }

    /// Joins (or leaves) a multicast group on the interface.
    pub fn membership(&self, group: std::net::Ipv6Addr, join: bool) -> io::Result<()> {
        let req = libc::ipv6_mreq {
            ipv6mr_multiaddr: libc::in6_addr {
                s6_addr: group.octets(),
            },
            ipv6mr_interface: self.index,
        };
        let option = if join {
            libc::IPV6_ADD_MEMBERSHIP
        } else {
            libc::IPV6_DROP_MEMBERSHIP
        };
        set(self.fd.get_ref(), libc::IPPROTO_IPV6, option, &req)
    }

    /// One ICMPv6 message, with its source and the hop limit it arrived with.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<(usize, std::net::Ipv6Addr, u8)> {
        self.fd
            .async_io(Interest::READABLE, |fd| {
                recv_with_hop_limit(fd.as_raw_fd(), buf)
            })
            .await
    }

    /// Sends an Advertisement from its own source address (the claimed IP, which is not
    /// configured on the interface; the socket is freebind for that).
    pub async fn send(&self, na: &Advertisement) -> io::Result<()> {
        self.fd
            .async_io(Interest::WRITABLE, |fd| {
                send_from(fd.as_raw_fd(), self.index, na)
            })
            .await
    }
}

fn send_from(fd: libc::c_int, index: u32, na: &Advertisement) -> io::Result<()> {
    // SAFETY: all-zero sockaddr_in6 and in6_pktinfo are valid.
    let mut to: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    to.sin6_family = libc::AF_INET6 as u16;
    to.sin6_addr.s6_addr = na.to.octets();
    to.sin6_scope_id = index;
    let mut info: libc::in6_pktinfo = unsafe { std::mem::zeroed() };
    info.ipi6_addr.s6_addr = na.from.octets();
    info.ipi6_ifindex = index;
    let mut control = [0u64; 8];
    let mut iov = libc::iovec {
        iov_base: na.message.as_ptr().cast_mut().cast(),
        iov_len: na.message.len(),
    };
    let mut msg = message_header(&mut to, &mut iov, &mut control);
    // SAFETY: CMSG_SPACE and the header writes stay within `control` (64 bytes, more than
    // one in6_pktinfo cmsg needs).
    unsafe {
        let size = std::mem::size_of::<libc::in6_pktinfo>() as u32;
        msg.msg_controllen = libc::CMSG_SPACE(size) as usize;
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = libc::IPPROTO_IPV6;
        (*c).cmsg_type = libc::IPV6_PKTINFO;
        (*c).cmsg_len = libc::CMSG_LEN(size) as usize;
        (libc::CMSG_DATA(c) as *mut libc::in6_pktinfo).write_unaligned(info);
    }
    // SAFETY: `msg` describes buffers valid for reading.
    check(unsafe { libc::sendmsg(fd, &msg, 0) } as libc::c_int).map(drop)
}

/// A msghdr over one peer address, one buffer and a control area (its whole length, for
/// receiving). The caller keeps all three alive while the header is in use.
fn message_header(
    peer: &mut libc::sockaddr_in6,
    iov: &mut libc::iovec,
    control: &mut [u64; 8],
) -> libc::msghdr {
    // SAFETY: an all-zero msghdr is valid; the fields that matter are set below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (peer as *mut libc::sockaddr_in6).cast();
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
    msg.msg_iov = iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(control);
    msg
}

fn recv_with_hop_limit(
    fd: libc::c_int,
    buf: &mut [u8],
) -> io::Result<(usize, std::net::Ipv6Addr, u8)> {
    // SAFETY: an all-zero sockaddr_in6 is valid.
    let mut from: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    let mut control = [0u64; 8];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut msg = message_header(&mut from, &mut iov, &mut control);
    // SAFETY: `msg` describes buffers that are valid for writing.
    let n = unsafe { libc::recvmsg(fd, &mut msg, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut hop_limit = 0u8;
    // SAFETY: the CMSG macros walk the control buffer the kernel filled, within its length.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::IPPROTO_IPV6 && (*c).cmsg_type == libc::IPV6_HOPLIMIT {
                hop_limit = (libc::CMSG_DATA(c) as *const libc::c_int).read_unaligned() as u8;
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok((
        n as usize,
        std::net::Ipv6Addr::from(from.sin6_addr.s6_addr),
        hop_limit,
    ))
}
