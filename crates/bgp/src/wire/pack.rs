//! Fitting many prefixes into few UPDATEs: all prefixes sharing attributes go into as few
//! messages as the negotiated size allows (MetalLB's native speaker sends one per prefix).

use super::attributes::{MpReach, MpUnreach, prefix_size};
use super::{AFI_IPV6, Attributes, Codec, HEADER_LEN, SAFI_UNICAST, Update};
use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr};

/// Where a session's routes point, per family; a family without one is not carried.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NextHops {
    pub v4: Option<V4NextHop>,
    /// A global IPv6 next hop, optionally followed by a link-local one.
    pub v6: Vec<IpAddr>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum V4NextHop {
    /// In NEXT_HOP, with the prefixes in the UPDATE's NLRI field.
    Ipv4(Ipv4Addr),
    /// IPv6 next hops in MP_REACH_NLRI (RFC 8950 extended next hop, once negotiated).
    Ipv6(Vec<IpAddr>),
}

/// UPDATEs announcing `prefixes` with `attributes`: IPv4 prefixes with NEXT_HOP or, over
/// an extended next hop, in MP_REACH_NLRI like IPv6 prefixes always are.
pub fn pack_announcements(
    attributes: &Attributes,
    next_hops: &NextHops,
    prefixes: &[IpNet],
    codec: &Codec,
) -> Vec<Update> {
    let (v4, v6): (Vec<IpNet>, Vec<IpNet>) = prefixes.iter().partition(|p| p.addr().is_ipv4());
    let mut out = Vec::new();
    match &next_hops.v4 {
        Some(V4NextHop::Ipv4(next_hop)) if !v4.is_empty() => {
            let base = Update {
                attributes: Attributes {
                    next_hop: Some(*next_hop),
                    ..attributes.clone()
                },
                ..Default::default()
            };
            for chunk in chunks(&base, &v4, codec) {
                out.push(Update {
                    nlri: chunk.to_vec(),
                    ..base.clone()
                });
            }
        }
        Some(V4NextHop::Ipv6(hops)) => {
            out.extend(reach(attributes, super::AFI_IPV4, hops, &v4, codec))
        }
        _ => {}
    }
    out.extend(reach(attributes, AFI_IPV6, &next_hops.v6, &v6, codec));
    out
}

/// UPDATEs carrying `prefixes` of `afi` in MP_REACH_NLRI.
fn reach(
    attributes: &Attributes,
    afi: u16,
    next_hops: &[IpAddr],
    prefixes: &[IpNet],
    codec: &Codec,
) -> Vec<Update> {
    let base = Update {
        attributes: Attributes {
            next_hop: None,
            mp_reach: Some(MpReach {
                afi,
                safi: SAFI_UNICAST,
                next_hops: next_hops.to_vec(),
                nlri: Vec::new(),
            }),
            ..attributes.clone()
        },
        ..Default::default()
    };
    chunks(&base, prefixes, codec)
        .into_iter()
        .map(|chunk| {
            let mut u = base.clone();
            if let Some(m) = u.attributes.mp_reach.as_mut() {
                m.nlri = chunk.to_vec();
            }
            u
        })
        .collect()
}

/// UPDATEs withdrawing `prefixes`: IPv4 in the withdrawn routes field, IPv6 in MP_UNREACH_NLRI.
pub fn pack_withdrawals(prefixes: &[IpNet], codec: &Codec) -> Vec<Update> {
    let (v4, v6): (Vec<IpNet>, Vec<IpNet>) = prefixes.iter().partition(|p| p.addr().is_ipv4());
    let mut out = Vec::new();
    for chunk in chunks(&Update::default(), &v4, codec) {
        out.push(Update {
            withdrawn: chunk.to_vec(),
            ..Default::default()
        });
    }
    let base = Update {
        attributes: Attributes {
            mp_unreach: Some(MpUnreach {
                afi: AFI_IPV6,
                safi: SAFI_UNICAST,
                withdrawn: Vec::new(),
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    for chunk in chunks(&base, &v6, codec) {
        let mut u = base.clone();
        if let Some(m) = u.attributes.mp_unreach.as_mut() {
            m.withdrawn = chunk.to_vec();
        }
        out.push(u);
    }
    out
}

/// Splits `prefixes` into runs that fit beside `base` in one message. Every prefix costs its
/// own encoded size whether it sits in NLRI, withdrawn routes or an MP attribute (which is
/// always written with a 2-octet length, so nothing else grows).
fn chunks<'a>(base: &Update, prefixes: &'a [IpNet], codec: &Codec) -> Vec<&'a [IpNet]> {
    let mut fixed = Vec::new();
    super::update::encode(base, codec, &mut fixed);
    let budget = codec.max_len.saturating_sub(HEADER_LEN + fixed.len());
    let mut out = Vec::new();
    let mut start = 0;
    let mut used = 0;
    for (i, p) in prefixes.iter().enumerate() {
        let size = prefix_size(p);
        if used + size > budget && i > start {
            out.push(&prefixes[start..i]);
            start = i;
            used = 0;
        }
        used += size;
    }
    if start < prefixes.len() {
        out.push(&prefixes[start..]);
    }
    out
}
