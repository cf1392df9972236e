//! OPEN and its capabilities (RFC 5492): multiprotocol (4760), route refresh (2918),
//! 4-octet AS (6793), graceful restart (4724), extended message (8654), extended next hop
//! (8950).

use super::{AS_TRANS, DecodeError, Reader};
use std::net::Ipv4Addr;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Open {
    /// The real AS number; 2-octet peers see AS_TRANS in the header field.
    pub asn: u32,
    pub hold_time: u16,
    pub router_id: Ipv4Addr,
    pub capabilities: Vec<Capability>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Capability {
    MultiProtocol {
        afi: u16,
        safi: u8,
    },
    RouteRefresh,
    ExtendedMessage,
    GracefulRestart {
        restarting: bool,
        restart_time: u16,
        families: Vec<(u16, u8, bool)>,
    },
    FourOctetAs(u32),
    /// (NLRI AFI, NLRI SAFI, next-hop AFI) triples the sender takes (RFC 8950 §4); ironlb
    /// offers IPv4 unicast with IPv6 next hops.
    ExtendedNextHop(Vec<(u16, u16, u16)>),
    Unknown {
        code: u8,
        value: Vec<u8>,
    },
}

impl Open {
    pub fn four_octet_as(&self) -> Option<u32> {
        self.capabilities.iter().find_map(|c| match c {
            Capability::FourOctetAs(asn) => Some(*asn),
            _ => None,
        })
    }

    pub fn has(&self, wanted: &Capability) -> bool {
        self.capabilities.contains(wanted)
    }

    /// Whether the sender takes IPv4 unicast routes with IPv6 next hops (RFC 8950).
    pub fn extended_next_hop_v4(&self) -> bool {
        self.capabilities.iter().any(|c| {
            matches!(c, Capability::ExtendedNextHop(t)
                if t.contains(&(super::AFI_IPV4, u16::from(super::SAFI_UNICAST), super::AFI_IPV6)))
        })
    }

    pub fn families(&self) -> Vec<(u16, u8)> {
        self.capabilities
            .iter()
            .filter_map(|c| match c {
                Capability::MultiProtocol { afi, safi } => Some((*afi, *safi)),
                _ => None,
            })
            .collect()
    }
}

pub(super) fn decode(body: &[u8]) -> Result<Open, DecodeError> {
    let short = || DecodeError::new(1, 2, Vec::new(), "short OPEN");
    let mut r = Reader::new(body);
    let version = r.u8().ok_or_else(short)?;
    if version != 4 {
        return Err(DecodeError::new(
            2,
            1,
            vec![0, 4],
            format!("BGP version {version}, only 4 is spoken"),
        ));
    }
    let my_as = r.u16().ok_or_else(short)?;
    let hold_time = r.u16().ok_or_else(short)?;
    if hold_time == 1 || hold_time == 2 {
        return Err(DecodeError::new(
            2,
            6,
            Vec::new(),
            format!("hold time {hold_time}s: it must be 0 or at least 3s"),
        ));
    }
    let id = r.u32().ok_or_else(short)?;
    if id == 0 {
        return Err(DecodeError::new(2, 3, Vec::new(), "BGP identifier 0.0.0.0"));
    }
    let params_len = usize::from(r.u8().ok_or_else(short)?);
    let params = r.take(params_len).ok_or_else(short)?;
    if !r.is_empty() {
        return Err(DecodeError::new(
            1,
            2,
            Vec::new(),
            "OPEN longer than its parameters",
        ));
    }
    let mut capabilities = Vec::new();
    let mut p = Reader::new(params);
    while !p.is_empty() {
        let bad = || DecodeError::new(2, 0, Vec::new(), "malformed optional parameter");
        let kind = p.u8().ok_or_else(bad)?;
        let len = usize::from(p.u8().ok_or_else(bad)?);
        let value = p.take(len).ok_or_else(bad)?;
        if kind != 2 {
            // Only capabilities (type 2) are defined; authentication (type 1) is deprecated.
            return Err(DecodeError::new(
                2,
                4,
                Vec::new(),
                format!("unsupported optional parameter {kind}"),
            ));
        }
        let mut c = Reader::new(value);
        while !c.is_empty() {
            let code = c.u8().ok_or_else(bad)?;
            let len = usize::from(c.u8().ok_or_else(bad)?);
            let v = c.take(len).ok_or_else(bad)?;
            capabilities.push(capability(code, v).ok_or_else(|| {
                DecodeError::new(2, 0, Vec::new(), format!("malformed capability {code}"))
            })?);
        }
    }
    let open = Open {
        asn: u32::from(my_as),
        hold_time,
        router_id: Ipv4Addr::from(id),
        capabilities,
    };
    let asn = open.four_octet_as().unwrap_or(open.asn);
    Ok(Open { asn, ..open })
}

fn capability(code: u8, v: &[u8]) -> Option<Capability> {
    let mut r = Reader::new(v);
    Some(match code {
        1 => {
            let afi = r.u16()?;
            r.u8()?;
            Capability::MultiProtocol { afi, safi: r.u8()? }
        }
        2 if v.is_empty() => Capability::RouteRefresh,
        5 if !v.is_empty() && v.len().is_multiple_of(6) => {
            let mut triples = Vec::new();
            while !r.is_empty() {
                triples.push((r.u16()?, r.u16()?, r.u16()?));
            }
            Capability::ExtendedNextHop(triples)
        }
        6 if v.is_empty() => Capability::ExtendedMessage,
        64 => {
            let flags_time = r.u16()?;
            let mut families = Vec::new();
            while !r.is_empty() {
                families.push((r.u16()?, r.u8()?, r.u8()? & 0x80 != 0));
            }
            Capability::GracefulRestart {
                restarting: flags_time & 0x8000 != 0,
                restart_time: flags_time & 0x0fff,
                families,
            }
        }
        65 if v.len() == 4 => Capability::FourOctetAs(r.u32()?),
        _ => Capability::Unknown {
            code,
            value: v.to_vec(),
        },
    })
}

pub(super) fn encode(o: &Open, out: &mut Vec<u8>) {
    out.push(4);
    let two = u16::try_from(o.asn).unwrap_or(AS_TRANS as u16);
    out.extend_from_slice(&two.to_be_bytes());
    out.extend_from_slice(&o.hold_time.to_be_bytes());
    out.extend_from_slice(&o.router_id.octets());
    let mut caps = Vec::new();
    for c in &o.capabilities {
        let (code, value): (u8, Vec<u8>) = match c {
            Capability::MultiProtocol { afi, safi } => {
                (1, [&afi.to_be_bytes()[..], &[0, *safi]].concat())
            }
            Capability::RouteRefresh => (2, Vec::new()),
            Capability::ExtendedMessage => (6, Vec::new()),
            Capability::GracefulRestart {
                restarting,
                restart_time,
                families,
            } => {
                let flags = (u16::from(*restarting) << 15) | (restart_time & 0x0fff);
                let mut v = flags.to_be_bytes().to_vec();
                for (afi, safi, forwarding) in families {
                    v.extend_from_slice(&afi.to_be_bytes());
                    v.push(*safi);
                    v.push(if *forwarding { 0x80 } else { 0 });
                }
                (64, v)
            }
            Capability::FourOctetAs(asn) => (65, asn.to_be_bytes().to_vec()),
            Capability::ExtendedNextHop(triples) => (
                5,
                triples
                    .iter()
                    .flat_map(|(a, s, n)| [a.to_be_bytes(), s.to_be_bytes(), n.to_be_bytes()])
                    .flatten()
                    .collect(),
            ),
            Capability::Unknown { code, value } => (*code, value.clone()),
        };
        // One capability per optional parameter, as most implementations send them.
        caps.extend_from_slice(&[2, value.len() as u8 + 2, code, value.len() as u8]);
        caps.extend_from_slice(&value);
    }
    out.push(caps.len() as u8);
    out.extend_from_slice(&caps);
}
