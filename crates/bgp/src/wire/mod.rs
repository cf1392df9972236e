//! The BGP-4 wire format (RFC 4271 and extensions), sans-IO: bytes in, messages out, and
//! back. Decoding never panics; a malformed message yields the NOTIFICATION to send.

mod attributes;
mod open;
mod pack;
mod update;

pub use attributes::{AsPathSegment, Attributes, MpReach, MpUnreach, Origin, RawAttribute};
pub use open::{Capability, Open};
pub use pack::{NextHops, V4NextHop, pack_announcements, pack_withdrawals};
pub use update::Update;

use std::net::IpAddr;

pub const HEADER_LEN: usize = 19;
/// RFC 4271's limit, until both sides announce extended messages (RFC 8654).
pub const MAX_LEN: usize = 4096;
pub const MAX_EXTENDED_LEN: usize = 65535;
pub const AS_TRANS: u32 = 23456;

pub const AFI_IPV4: u16 = 1;
pub const AFI_IPV6: u16 = 2;
pub const SAFI_UNICAST: u8 = 1;

/// What both ends agreed on, which changes how messages are written and read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Codec {
    pub four_octet_as: bool,
    pub max_len: usize,
}

impl Default for Codec {
    /// Before OPENs are exchanged: classic limits, 4-octet AS (both ends here always offer it).
    fn default() -> Self {
        Codec {
            four_octet_as: true,
            max_len: MAX_LEN,
        }
    }
}

// Messages live only between the socket and the session, one at a time; boxing the large
// UPDATE variant would cost an allocation per UPDATE for no memory saved.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    Open(Open),
    Update(Update),
    Notification(Notification),
    Keepalive,
    RouteRefresh { afi: u16, safi: u8 },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    pub code: u8,
    pub subcode: u8,
    pub data: Vec<u8>,
}

impl Notification {
    pub fn new(code: u8, subcode: u8, data: Vec<u8>) -> Self {
        Notification {
            code,
            subcode,
            data,
        }
    }

    /// Cease / Administrative Shutdown (RFC 4486), sent when the speaker stops a session.
    pub fn admin_shutdown() -> Self {
        Notification::new(6, 2, Vec::new())
    }

    pub fn hold_timer_expired() -> Self {
        Notification::new(4, 0, Vec::new())
    }

    /// Whether the peer turned the session down for good, as opposed to a passing event
    /// worth retrying soon: an OPEN it will not accept (wrong AS, identifier, hold time,
    /// capability), or a Cease saying we are over its prefix limit, shut down or not
    /// configured. A rejected connection, a collision, a reset or running out of resources
    /// (Cease 4, 5, 7, 8) passes.
    pub fn is_refusal(&self) -> bool {
        matches!((self.code, self.subcode), (2, _) | (6, 1..=3))
    }
}

impl std::fmt::Display for Notification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match (self.code, self.subcode) {
            (1, 1) => "Message Header Error / Connection Not Synchronized",
            (1, 2) => "Message Header Error / Bad Message Length",
            (1, 3) => "Message Header Error / Bad Message Type",
            (1, _) => "Message Header Error",
            (2, 1) => "OPEN Message Error / Unsupported Version Number",
            (2, 2) => "OPEN Message Error / Bad Peer AS",
            (2, 3) => "OPEN Message Error / Bad BGP Identifier",
            (2, 6) => "OPEN Message Error / Unacceptable Hold Time",
            (2, _) => "OPEN Message Error",
            (3, 1) => "UPDATE Message Error / Malformed Attribute List",
            (3, 2) => "UPDATE Message Error / Unrecognized Well-known Attribute",
            (3, 10) => "UPDATE Message Error / Invalid Network Field",
            (3, _) => "UPDATE Message Error",
            (4, _) => "Hold Timer Expired",
            (5, _) => "Finite State Machine Error",
            (6, 2) => "Cease / Administrative Shutdown",
            (6, 4) => "Cease / Administrative Reset",
            (6, 7) => "Cease / Connection Collision Resolution",
            (6, _) => "Cease",
            _ => "unknown error",
        };
        write!(f, "{name} ({}/{})", self.code, self.subcode)
    }
}

/// A message that cannot be accepted, with the NOTIFICATION that says why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{notification}: {reason}")]
pub struct DecodeError {
    pub notification: Notification,
    pub reason: String,
}

impl DecodeError {
    pub(crate) fn new(code: u8, subcode: u8, data: Vec<u8>, reason: impl Into<String>) -> Self {
        DecodeError {
            notification: Notification::new(code, subcode, data),
            reason: reason.into(),
        }
    }
}

/// A cursor over a byte slice whose reads fail instead of panicking.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn rest(&self) -> &'a [u8] {
        self.buf
    }

    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.buf.len() < n {
            return None;
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Some(head)
    }

    pub fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    pub fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }

    pub fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// Reads one message from the front of `buf`: `Ok(None)` when more bytes are needed,
/// otherwise the message and how many bytes it used.
pub fn decode(buf: &[u8], codec: &Codec) -> Result<Option<(Message, usize)>, DecodeError> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    if buf[..16].iter().any(|b| *b != 0xff) {
        return Err(DecodeError::new(
            1,
            1,
            Vec::new(),
            "the marker is not all ones",
        ));
    }
    let len = usize::from(u16::from_be_bytes([buf[16], buf[17]]));
    let kind = buf[18];
    let min = match kind {
        1 => 29,
        2 => 23,
        3 => 21,
        4 => 19,
        5 => 23,
        _ => {
            return Err(DecodeError::new(
                1,
                3,
                vec![kind],
                format!("unknown message type {kind}"),
            ));
        }
    };
    if len < min || len > codec.max_len || (kind == 4 && len != 19) {
        return Err(DecodeError::new(
            1,
            2,
            (len as u16).to_be_bytes().to_vec(),
            format!("bad length {len} for message type {kind}"),
        ));
    }
    if buf.len() < len {
        return Ok(None);
    }
    let body = &buf[HEADER_LEN..len];
    let message = match kind {
        1 => Message::Open(open::decode(body)?),
        2 => Message::Update(update::decode(body, codec)?),
        3 => Message::Notification(Notification {
            code: body[0],
            subcode: body[1],
            data: body[2..].to_vec(),
        }),
        4 => Message::Keepalive,
        _ => {
            let mut r = Reader::new(body);
            let (afi, _, safi) = (r.u16(), r.u8(), r.u8());
            match (afi, safi) {
                (Some(afi), Some(safi)) => Message::RouteRefresh { afi, safi },
                _ => return Err(DecodeError::new(1, 2, Vec::new(), "short ROUTE-REFRESH")),
            }
        }
    };
    Ok(Some((message, len)))
}

/// Writes one message, header included.
pub fn encode(message: &Message, codec: &Codec) -> Vec<u8> {
    let mut out = vec![0xff; 16];
    out.extend_from_slice(&[0, 0, 0]);
    match message {
        Message::Open(o) => {
            out[18] = 1;
            open::encode(o, &mut out);
        }
        Message::Update(u) => {
            out[18] = 2;
            update::encode(u, codec, &mut out);
        }
        Message::Notification(n) => {
            out[18] = 3;
            out.push(n.code);
            out.push(n.subcode);
            out.extend_from_slice(&n.data);
        }
        Message::Keepalive => out[18] = 4,
        Message::RouteRefresh { afi, safi } => {
            out[18] = 5;
            out.extend_from_slice(&afi.to_be_bytes());
            out.push(0);
            out.push(*safi);
        }
    }
    let len = out.len() as u16;
    out[16..18].copy_from_slice(&len.to_be_bytes());
    out
}

/// An address's AFI.
pub fn afi_of(ip: &IpAddr) -> u16 {
    if ip.is_ipv4() { AFI_IPV4 } else { AFI_IPV6 }
}
