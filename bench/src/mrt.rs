//! Writing an MRT TABLE_DUMP_V2 file (RFC 6396), the bulk format GoBGP loads routes from
//! (`gobgp mrt inject global FILE`).

use ipnet::IpNet;
use std::net::Ipv6Addr;

const TABLE_DUMP_V2: u16 = 13;
const PEER_INDEX_TABLE: u16 = 1;
const RIB_IPV6_UNICAST: u16 = 4;

fn record(subtype: u16, body: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&TABLE_DUMP_V2.to_be_bytes());
    out.extend_from_slice(&subtype.to_be_bytes());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
}

/// One RIB entry per IPv6 prefix, each with ORIGIN IGP, an empty AS path and `next_hop`.
pub fn table_dump(prefixes: &[IpNet], next_hop: Ipv6Addr) -> Vec<u8> {
    let mut out = Vec::new();
    // Collector ID, an empty view name, and one peer: IPv6 address with a 4-octet AS.
    let mut index = vec![192, 0, 2, 2];
    index.extend_from_slice(&0u16.to_be_bytes());
    index.extend_from_slice(&1u16.to_be_bytes());
    index.push(0b11);
    index.extend_from_slice(&[192, 0, 2, 2]);
    index.extend_from_slice(&next_hop.octets());
    index.extend_from_slice(&64513u32.to_be_bytes());
    record(PEER_INDEX_TABLE, &index, &mut out);
    // ORIGIN IGP, empty AS_PATH, and MP_REACH_NLRI with the next hop. RFC 6396 §4.3.4 allows
    // an abbreviated MP_REACH_NLRI here, but GoBGP reads the full form: AFI, SAFI, next hop,
    // reserved octet, and (empty) NLRI.
    let mut attrs = vec![0x40, 1, 1, 0, 0x40, 2, 0, 0x90, 14, 0, 21, 0, 2, 1, 16];
    attrs.extend_from_slice(&next_hop.octets());
    attrs.push(0);
    for (seq, prefix) in prefixes.iter().enumerate() {
        let IpNet::V6(net) = prefix else { continue };
        let len = net.prefix_len();
        let mut body = (seq as u32).to_be_bytes().to_vec();
        body.push(len);
        body.extend_from_slice(&net.network().octets()[..usize::from(len).div_ceil(8)]);
        body.extend_from_slice(&1u16.to_be_bytes());
        body.extend_from_slice(&0u16.to_be_bytes());
        body.extend_from_slice(&0u32.to_be_bytes());
        body.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        body.extend_from_slice(&attrs);
        record(RIB_IPV6_UNICAST, &body, &mut out);
    }
    out
}
