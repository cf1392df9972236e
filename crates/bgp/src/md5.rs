//! TCP MD5 signatures (RFC 2385) through Linux's TCP_MD5SIG socket option. The key is bound
//! to the peer's address, so one listening socket can hold a key per peer.

use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;

/// Longest key Linux accepts (TCP_MD5SIG_MAXKEYLEN).
pub const MAX_KEY_LEN: usize = 80;

/// Linux's `struct tcp_md5sig` (include/uapi/linux/tcp.h).
#[repr(C)]
struct TcpMd5Sig {
    addr: libc::sockaddr_storage,
    flags: u8,
    prefix_len: u8,
    key_len: u16,
    ifindex: libc::c_int,
    key: [u8; MAX_KEY_LEN],
}

#[derive(Debug, thiserror::Error)]
pub enum Md5Error {
    #[error("the TCP MD5 key is {0} bytes; Linux accepts at most {MAX_KEY_LEN}")]
    KeyTooLong(usize),
    #[error("setting TCP_MD5SIG: {0}")]
    Os(#[from] std::io::Error),
}

/// Requires `key` on every segment to and from `peer` on this socket; an empty key removes it.
pub fn set_key(socket: &impl AsRawFd, peer: IpAddr, key: &[u8]) -> Result<(), Md5Error> {
    if key.len() > MAX_KEY_LEN {
        return Err(Md5Error::KeyTooLong(key.len()));
    }
    let sockaddr: socket2::SockAddr = SocketAddr::new(peer, 0).into();
    // SAFETY: an all-zero `sockaddr_storage` is a valid (unspecified) address.
    let mut sig = TcpMd5Sig {
        addr: unsafe { std::mem::zeroed() },
        flags: 0,
        prefix_len: 0,
        key_len: key.len() as u16,
        ifindex: 0,
        key: [0; MAX_KEY_LEN],
    };
    sig.key[..key.len()].copy_from_slice(key);
    // SAFETY: `sockaddr` holds at most `sockaddr_storage` bytes, and `addr` is that big.
    unsafe {
        std::ptr::copy_nonoverlapping(
            sockaddr.as_ptr().cast::<u8>(),
            (&mut sig.addr as *mut libc::sockaddr_storage).cast::<u8>(),
            sockaddr.len() as usize,
        );
    }
    // SAFETY: `sig` is a valid `tcp_md5sig` that outlives the call, and the length is its size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_MD5SIG,
            (&sig as *const TcpMd5Sig).cast::<libc::c_void>(),
            std::mem::size_of::<TcpMd5Sig>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(Md5Error::Os(std::io::Error::last_os_error()));
    }
    Ok(())
}
