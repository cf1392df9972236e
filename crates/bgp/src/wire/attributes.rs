//! Path attributes. Errors follow RFC 7606: a malformed attribute makes the UPDATE's routes
//! withdrawn ("treat-as-withdraw") rather than resetting the session, except where the
//! message can no longer be trusted at all.

use super::{AFI_IPV4, AFI_IPV6, Codec, DecodeError, Reader};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const OPTIONAL: u8 = 0x80;
const TRANSITIVE: u8 = 0x40;
const EXTENDED: u8 = 0x10;

pub(super) const ORIGIN: u8 = 1;
pub(super) const AS_PATH: u8 = 2;
pub(super) const NEXT_HOP: u8 = 3;
pub(super) const MED: u8 = 4;
pub(super) const LOCAL_PREF: u8 = 5;
pub(super) const COMMUNITIES: u8 = 8;
pub(super) const MP_REACH: u8 = 14;
pub(super) const MP_UNREACH: u8 = 15;
pub(super) const LARGE_COMMUNITIES: u8 = 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Origin {
    Igp,
    Egp,
    Incomplete,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AsPathSegment {
    Set(Vec<u32>),
    Sequence(Vec<u32>),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MpReach {
    pub afi: u16,
    pub safi: u8,
    /// A global next hop, optionally followed by an IPv6 link-local one.
    pub next_hops: Vec<IpAddr>,
    pub nlri: Vec<IpNet>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MpUnreach {
    pub afi: u16,
    pub safi: u8,
    pub withdrawn: Vec<IpNet>,
}

/// An attribute this codec does not interpret, passed through as received.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RawAttribute {
    pub flags: u8,
    pub code: u8,
    pub value: Vec<u8>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Attributes {
    pub origin: Option<Origin>,
    /// `Some(vec![])` is the empty path an iBGP speaker sends for its own routes.
    pub as_path: Option<Vec<AsPathSegment>>,
    pub next_hop: Option<Ipv4Addr>,
    pub med: Option<u32>,
    pub local_pref: Option<u32>,
    /// RFC 1997 communities, `AA:NN` as `AA << 16 | NN`.
    pub communities: Vec<u32>,
    pub large_communities: Vec<[u32; 3]>,
    pub mp_reach: Option<MpReach>,
    pub mp_unreach: Option<MpUnreach>,
    pub other: Vec<RawAttribute>,
}

impl Attributes {
    pub fn is_empty(&self) -> bool {
        *self == Attributes::default()
    }
}

/// The outcome of reading the attribute list: the attributes, or why the UPDATE's routes
/// must be treated as withdrawn.
pub(super) struct Parsed {
    pub attributes: Attributes,
    pub treat_as_withdraw: Option<String>,
}

pub(super) fn decode(buf: &[u8], codec: &Codec) -> Result<Parsed, DecodeError> {
    let mut a = Attributes::default();
    let mut seen = [false; 256];
    let mut withdraw: Option<String> = None;
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        let header = (r.u8(), r.u8());
        let (Some(flags), Some(code)) = header else {
            withdraw.get_or_insert_with(|| "truncated attribute header".into());
            break;
        };
        let len = if flags & EXTENDED != 0 {
            r.u16().map(usize::from)
        } else {
            r.u8().map(usize::from)
        };
        let Some(value) = len.and_then(|l| r.take(l)) else {
            withdraw.get_or_insert_with(|| format!("attribute {code} overruns the attribute list"));
            break;
        };
        let mp = code == MP_REACH || code == MP_UNREACH;
        if seen[usize::from(code)] {
            if mp {
                return Err(DecodeError::new(
                    3,
                    1,
                    Vec::new(),
                    format!("attribute {code} appears twice"),
                ));
            }
            continue; // RFC 7606 3(g): keep the first, discard the rest.
        }
        seen[usize::from(code)] = true;
        if let Some(want) = expected_flags(code)
            && flags & (OPTIONAL | TRANSITIVE) != want
        {
            withdraw.get_or_insert_with(|| format!("attribute {code} has flags {flags:#04x}"));
            continue;
        }
        if let Some(problem) = read_value(&mut a, (flags, code), value, codec)? {
            withdraw.get_or_insert(problem);
        }
    }
    Ok(Parsed {
        attributes: a,
        treat_as_withdraw: withdraw,
    })
}

/// Reads one attribute's value into `a`: the problem that makes the UPDATE
/// treat-as-withdraw, if any, or the error that resets the session.
fn read_value(
    a: &mut Attributes,
    (flags, code): (u8, u8),
    value: &[u8],
    codec: &Codec,
) -> Result<Option<String>, DecodeError> {
    let bad = |what: &str| {
        Some(format!(
            "malformed {what} attribute (length {})",
            value.len()
        ))
    };
    Ok(match code {
        ORIGIN => match value {
            [0] => set(&mut a.origin, Origin::Igp),
            [1] => set(&mut a.origin, Origin::Egp),
            [2] => set(&mut a.origin, Origin::Incomplete),
            _ => bad("ORIGIN"),
        },
        AS_PATH => match as_path(value, codec.four_octet_as) {
            Some(p) => set(&mut a.as_path, p),
            None => bad("AS_PATH"),
        },
        NEXT_HOP => match <[u8; 4]>::try_from(value) {
            Ok(b) => set(&mut a.next_hop, Ipv4Addr::from(b)),
            Err(_) => bad("NEXT_HOP"),
        },
        MED => match <[u8; 4]>::try_from(value) {
            Ok(b) => set(&mut a.med, u32::from_be_bytes(b)),
            Err(_) => bad("MULTI_EXIT_DISC"),
        },
        LOCAL_PREF => match <[u8; 4]>::try_from(value) {
            Ok(b) => set(&mut a.local_pref, u32::from_be_bytes(b)),
            Err(_) => bad("LOCAL_PREF"),
        },
        // Empty is malformed too: RFC 7606 §7.8 and RFC 8092 §5 make it treat-as-withdraw.
        COMMUNITIES if !value.is_empty() && value.len().is_multiple_of(4) => {
            a.communities = value
                .chunks_exact(4)
                .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            None
        }
        COMMUNITIES => bad("COMMUNITIES"),
        LARGE_COMMUNITIES if !value.is_empty() && value.len().is_multiple_of(12) => {
            a.large_communities = value
                .chunks_exact(12)
                .map(|c| {
                    [0, 4, 8].map(|i| u32::from_be_bytes([c[i], c[i + 1], c[i + 2], c[i + 3]]))
                })
                .collect();
            None
        }
        LARGE_COMMUNITIES => bad("LARGE_COMMUNITY"),
        MP_REACH => {
            a.mp_reach =
                Some(mp_reach(value).ok_or_else(|| {
                    DecodeError::new(3, 9, Vec::new(), "malformed MP_REACH_NLRI")
                })?);
            None
        }
        MP_UNREACH => {
            a.mp_unreach =
                Some(mp_unreach(value).ok_or_else(|| {
                    DecodeError::new(3, 9, Vec::new(), "malformed MP_UNREACH_NLRI")
                })?);
            None
        }
        _ if flags & OPTIONAL == 0 => {
            return Err(DecodeError::new(
                3,
                2,
                [&[flags, code, value.len() as u8][..], value].concat(),
                format!("unrecognized well-known attribute {code}"),
            ));
        }
        _ => {
            a.other.push(RawAttribute {
                flags,
                code,
                value: value.to_vec(),
            });
            None
        }
    })
}

fn set<T>(slot: &mut Option<T>, value: T) -> Option<String> {
    *slot = Some(value);
    None
}

/// The optional and transitive bits each known attribute must carry.
fn expected_flags(code: u8) -> Option<u8> {
    match code {
        ORIGIN | AS_PATH | NEXT_HOP | LOCAL_PREF => Some(TRANSITIVE),
        MED | MP_REACH | MP_UNREACH => Some(OPTIONAL),
        COMMUNITIES | LARGE_COMMUNITIES => Some(OPTIONAL | TRANSITIVE),
        _ => None,
    }
}

fn as_path(value: &[u8], four_octet: bool) -> Option<Vec<AsPathSegment>> {
    let mut r = Reader::new(value);
    let mut segments = Vec::new();
    while !r.is_empty() {
        let kind = r.u8()?;
        let count = usize::from(r.u8()?);
        if count == 0 {
            return None;
        }
        let asns = (0..count)
            .map(|_| {
                if four_octet {
                    r.u32()
                } else {
                    r.u16().map(u32::from)
                }
            })
            .collect::<Option<Vec<u32>>>()?;
        segments.push(match kind {
            1 => AsPathSegment::Set(asns),
            2 => AsPathSegment::Sequence(asns),
            _ => return None,
        });
    }
    Some(segments)
}

pub(super) fn prefixes(buf: &[u8], afi: u16) -> Option<Vec<IpNet>> {
    let mut r = Reader::new(buf);
    let mut out = Vec::new();
    while !r.is_empty() {
        let len = r.u8()?;
        let max = if afi == AFI_IPV4 { 32 } else { 128 };
        if len > max {
            return None;
        }
        let bytes = r.take(usize::from(len).div_ceil(8))?;
        let mut full = [0u8; 16];
        full[..bytes.len()].copy_from_slice(bytes);
        out.push(if afi == AFI_IPV4 {
            IpNet::V4(
                Ipv4Net::new(Ipv4Addr::new(full[0], full[1], full[2], full[3]), len)
                    .ok()?
                    .trunc(),
            )
        } else {
            IpNet::V6(Ipv6Net::new(Ipv6Addr::from(full), len).ok()?.trunc())
        });
    }
    Some(out)
}

fn mp_reach(value: &[u8]) -> Option<MpReach> {
    let mut r = Reader::new(value);
    let afi = r.u16()?;
    let safi = r.u8()?;
    let nh_len = usize::from(r.u8()?);
    let nh = r.take(nh_len)?;
    r.u8()?; // reserved
    let next_hops = match (afi, nh_len) {
        (AFI_IPV4, 4) => vec![IpAddr::V4(Ipv4Addr::new(nh[0], nh[1], nh[2], nh[3]))],
        // IPv4 routes may carry IPv6 next hops (RFC 8950 §3).
        (AFI_IPV4 | AFI_IPV6, 16) => {
            vec![IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(nh).ok()?))]
        }
        (AFI_IPV4 | AFI_IPV6, 32) => vec![
            IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(&nh[..16]).ok()?)),
            IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(&nh[16..]).ok()?)),
        ],
        _ => return None,
    };
    Some(MpReach {
        afi,
        safi,
        next_hops,
        nlri: prefixes(r.rest(), afi)?,
    })
}

fn mp_unreach(value: &[u8]) -> Option<MpUnreach> {
    let mut r = Reader::new(value);
    let afi = r.u16()?;
    let safi = r.u8()?;
    if afi != AFI_IPV4 && afi != AFI_IPV6 {
        return None;
    }
    Some(MpUnreach {
        afi,
        safi,
        withdrawn: prefixes(r.rest(), afi)?,
    })
}

pub(super) fn write_prefix(net: &IpNet, out: &mut Vec<u8>) {
    let len = net.prefix_len();
    out.push(len);
    let bytes = usize::from(len).div_ceil(8);
    match net {
        IpNet::V4(n) => out.extend_from_slice(&n.network().octets()[..bytes]),
        IpNet::V6(n) => out.extend_from_slice(&n.network().octets()[..bytes]),
    }
}

pub(super) fn prefix_size(net: &IpNet) -> usize {
    1 + usize::from(net.prefix_len()).div_ceil(8)
}

fn attribute(flags: u8, code: u8, value: &[u8], out: &mut Vec<u8>) {
    if value.len() > 255 || code == MP_REACH || code == MP_UNREACH {
        // MP attributes always use the 2-octet length, so packing can count exactly.
        out.extend_from_slice(&[flags | EXTENDED, code]);
        out.extend_from_slice(&(value.len() as u16).to_be_bytes());
    } else {
        out.extend_from_slice(&[flags, code, value.len() as u8]);
    }
    out.extend_from_slice(value);
}

pub(super) fn encode(a: &Attributes, codec: &Codec, out: &mut Vec<u8>) {
    if let Some(origin) = a.origin {
        let v = match origin {
            Origin::Igp => 0,
            Origin::Egp => 1,
            Origin::Incomplete => 2,
        };
        attribute(TRANSITIVE, ORIGIN, &[v], out);
    }
    if let Some(path) = &a.as_path {
        attribute(TRANSITIVE, AS_PATH, &as_path_value(path, codec), out);
    }
    if let Some(nh) = a.next_hop {
        attribute(TRANSITIVE, NEXT_HOP, &nh.octets(), out);
    }
    if let Some(med) = a.med {
        attribute(OPTIONAL, MED, &med.to_be_bytes(), out);
    }
    if let Some(lp) = a.local_pref {
        attribute(TRANSITIVE, LOCAL_PREF, &lp.to_be_bytes(), out);
    }
    // Empty community lists are left out: a receiver must treat them as a withdraw.
    if !a.communities.is_empty() {
        let v: Vec<u8> = a.communities.iter().flat_map(|c| c.to_be_bytes()).collect();
        attribute(OPTIONAL | TRANSITIVE, COMMUNITIES, &v, out);
    }
    if !a.large_communities.is_empty() {
        let v: Vec<u8> = a
            .large_communities
            .iter()
            .flatten()
            .flat_map(|c| c.to_be_bytes())
            .collect();
        attribute(OPTIONAL | TRANSITIVE, LARGE_COMMUNITIES, &v, out);
    }
    if let Some(mp) = &a.mp_reach {
        attribute(OPTIONAL, MP_REACH, &mp_reach_value(mp), out);
    }
    if let Some(mp) = &a.mp_unreach {
        let mut v = family_value(mp.afi, mp.safi);
        for net in &mp.withdrawn {
            write_prefix(net, &mut v);
        }
        attribute(OPTIONAL, MP_UNREACH, &v, out);
    }
    for raw in &a.other {
        attribute(raw.flags & !EXTENDED, raw.code, &raw.value, out);
    }
}

/// AS numbers go out in two octets to a speaker without four-octet AS support, with AS_TRANS
/// standing in for those that do not fit (RFC 6793 §4.2.2).
fn as_path_value(path: &[AsPathSegment], codec: &Codec) -> Vec<u8> {
    let mut v = Vec::new();
    for segment in path {
        let (kind, asns) = match segment {
            AsPathSegment::Set(asns) => (1, asns),
            AsPathSegment::Sequence(asns) => (2, asns),
        };
        v.extend_from_slice(&[kind, asns.len() as u8]);
        for asn in asns {
            if codec.four_octet_as {
                v.extend_from_slice(&asn.to_be_bytes());
            } else {
                let short = u16::try_from(*asn).unwrap_or(super::AS_TRANS as u16);
                v.extend_from_slice(&short.to_be_bytes());
            }
        }
    }
    v
}

fn family_value(afi: u16, safi: u8) -> Vec<u8> {
    let mut v = afi.to_be_bytes().to_vec();
    v.push(safi);
    v
}

fn mp_reach_value(mp: &MpReach) -> Vec<u8> {
    let mut v = family_value(mp.afi, mp.safi);
    let nh: Vec<u8> = mp
        .next_hops
        .iter()
        .flat_map(|ip| match ip {
            IpAddr::V4(a) => a.octets().to_vec(),
            IpAddr::V6(a) => a.octets().to_vec(),
        })
        .collect();
    v.push(nh.len() as u8);
    v.extend_from_slice(&nh);
    // The reserved octet (RFC 4760 §3).
    v.push(0);
    for net in &mp.nlri {
        write_prefix(net, &mut v);
    }
    v
}
