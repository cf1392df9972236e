//! Fitting many prefixes into few UPDATEs: all prefixes sharing attributes go into as few
//! messages as the negotiated size allows (MetalLB's native speaker sends one per prefix).

use super::attributes::{MpReach, MpUnreach, prefix_size};
use super::{AFI_IPV6, Attributes, Codec, HEADER_LEN, SAFI_UNICAST, Update};
use ipnet::IpNet;
use std::net::IpAddr;

/// UPDATEs announcing `prefixes` with `attributes`. IPv4 prefixes use NEXT_HOP
/// (`next_hop_v4`); IPv6 prefixes go in MP_REACH_NLRI with `next_hops_v6`.
pub fn pack_announcements(
    attributes: &Attributes,
    next_hop_v4: Option<std::net::Ipv4Addr>,
    next_hops_v6: &[IpAddr],
    prefixes: &[IpNet],
    codec: &Codec,
) -> Vec<Update> {
    let (v4, v6): (Vec<IpNet>, Vec<IpNet>) = prefixes.iter().partition(|p| p.addr().is_ipv4());
    let mut out = Vec::new();
    if !v4.is_empty() {
        let base = Update {
            attributes: Attributes {
                next_hop: next_hop_v4,
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
    if !v6.is_empty() {
        let reach = MpReach {
            afi: AFI_IPV6,
            safi: SAFI_UNICAST,
            next_hops: next_hops_v6.to_vec(),
            nlri: Vec::new(),
        };
        let base = Update {
            attributes: Attributes {
                next_hop: None,
                mp_reach: Some(reach),
                ..attributes.clone()
            },
            ..Default::default()
        };
        for chunk in chunks(&base, &v6, codec) {
            let mut u = base.clone();
            if let Some(m) = u.attributes.mp_reach.as_mut() {
                m.nlri = chunk.to_vec();
            }
            out.push(u);
        }
    }
    out
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
