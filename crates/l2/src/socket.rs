//! An AF_PACKET socket that sees and sends the ARP frames of one interface.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use tokio::io::unix::AsyncFd;

const ETH_P_ARP: u16 = 0x0806;

pub struct PacketSocket {
    fd: AsyncFd<OwnedFd>,
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
        let protocol = i32::from(ETH_P_ARP.to_be());
        // SAFETY: plain socket(2) call; the result is checked before use.
        let raw = check(unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                protocol,
            )
        })?;
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
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
        loop {
            let mut guard = self.fd.readable().await?;
            // SAFETY: `buf` is valid for `buf.len()` bytes.
            let got = guard.try_io(|fd| {
                check(
                    unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) }
                        as libc::c_int,
                )
                .map(|n| n as usize)
            });
            if let Ok(result) = got {
                return result;
            }
        }
    }

    pub async fn send(&self, frame: &[u8]) -> io::Result<()> {
        loop {
            let mut guard = self.fd.writable().await?;
            // SAFETY: `frame` is valid for `frame.len()` bytes; the socket is bound to one interface.
            let sent = guard.try_io(|fd| {
                check(
                    unsafe { libc::send(fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) }
                        as libc::c_int,
                )
            });
            if let Ok(result) = sent {
                return result.map(drop);
            }
        }
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
