//! TCP for BGP: outgoing connections with a source address, TCP MD5 and TTL, and
//! listeners that hold an MD5 key per expected peer.

use crate::md5;
use socket2::{Domain, Socket, Type};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::net::{TcpListener, TcpSocket, TcpStream};

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("creating the socket: {0}")]
    Socket(std::io::Error),
    #[error("binding the source address {0}: {1} (is it configured on a local interface?)")]
    Bind(IpAddr, std::io::Error),
    #[error(
        "listening on port {0} needs the NET_BIND_SERVICE capability, which MetalLB's speaker securityContext does not add: add NET_BIND_SERVICE to the speaker container's securityContext.capabilities.add (passive peers only)"
    )]
    Privileged(u16),
    #[error(transparent)]
    Md5(#[from] md5::Md5Error),
    #[error("connecting to {0}: {1}")]
    Connect(SocketAddr, std::io::Error),
    #[error("connecting to {0}: no answer within {1:?} (a TCP MD5 mismatch looks like this too)")]
    Timeout(SocketAddr, Duration),
}

/// How to reach a peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dial {
    pub peer: SocketAddr,
    pub source: Option<IpAddr>,
    pub password: Option<String>,
    /// eBGP multihop: send with TTL 255. Otherwise the system default TTL is kept, as
    /// MetalLB's native speaker does, so existing setups keep working.
    pub multihop: bool,
    pub timeout: Duration,
}

fn socket(addr: &SocketAddr) -> Result<Socket, TransportError> {
    let socket = Socket::new(Domain::for_address(*addr), Type::STREAM, None)
        .map_err(TransportError::Socket)?;
    socket
        .set_nonblocking(true)
        .map_err(TransportError::Socket)?;
    socket
        .set_tcp_nodelay(true)
        .map_err(TransportError::Socket)?;
    Ok(socket)
}

pub async fn connect(dial: &Dial) -> Result<TcpStream, TransportError> {
    let s = socket(&dial.peer)?;
    if let Some(source) = dial.source {
        s.bind(&SocketAddr::new(source, 0).into())
            .map_err(|e| TransportError::Bind(source, e))?;
    }
    if let Some(password) = &dial.password {
        md5::set_key(&s, dial.peer.ip(), password.as_bytes())?;
    }
    if dial.multihop {
        let ttl = if dial.peer.is_ipv4() {
            s.set_ttl_v4(255)
        } else {
            s.set_unicast_hops_v6(255)
        };
        ttl.map_err(TransportError::Socket)?;
    }
    let socket = TcpSocket::from_std_stream(std::net::TcpStream::from(s));
    match tokio::time::timeout(dial.timeout, socket.connect(dial.peer)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err(TransportError::Connect(dial.peer, e)),
        Err(_) => Err(TransportError::Timeout(dial.peer, dial.timeout)),
    }
}

/// A listening socket that requires `key` from each of `keys`' peers.
pub fn listen(addr: SocketAddr, keys: &[(IpAddr, String)]) -> Result<TcpListener, TransportError> {
    let s = socket(&addr)?;
    s.set_reuse_address(true).map_err(TransportError::Socket)?;
    if addr.is_ipv6() {
        // Accept IPv4-mapped peers too when listening on [::].
        let _ = s.set_only_v6(false);
    }
    for (peer, key) in keys {
        // On an IPv6 socket, Linux takes an IPv4 peer's key as its IPv4-mapped address.
        let peer = match (addr.is_ipv6(), peer) {
            (true, IpAddr::V4(v4)) => IpAddr::V6(v4.to_ipv6_mapped()),
            _ => *peer,
        };
        md5::set_key(&s, peer, key.as_bytes())?;
    }
    s.bind(&addr.into()).map_err(|e| match e.kind() {
        std::io::ErrorKind::PermissionDenied if addr.port() < 1024 => {
            TransportError::Privileged(addr.port())
        }
        _ => TransportError::Bind(addr.ip(), e),
    })?;
    s.listen(128).map_err(TransportError::Socket)?;
    TcpListener::from_std(std::net::TcpListener::from(s)).map_err(TransportError::Socket)
}

/// The other addresses of the interface that holds `local`; empty when none holds it.
pub fn interface_addresses(local: IpAddr) -> Vec<IpAddr> {
    let Ok(all) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    let all: Vec<(String, IpAddr)> = all
        .filter_map(|i| {
            let a = i.address?;
            let ip = match (a.as_sockaddr_in(), a.as_sockaddr_in6()) {
                (Some(v4), _) => IpAddr::V4(v4.ip()),
                (_, Some(v6)) => IpAddr::V6(v6.ip()),
                _ => return None,
            };
            Some((i.interface_name, ip))
        })
        .collect();
    let Some((name, _)) = all.iter().find(|(_, ip)| *ip == local) else {
        return Vec::new();
    };
    all.iter()
        .filter(|(n, ip)| n == name && *ip != local)
        .map(|(_, ip)| *ip)
        .collect()
}
