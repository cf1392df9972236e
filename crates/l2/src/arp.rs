//! ARP frames, pure: which requests to answer and with what, and the gratuitous frames that
//! announce a takeover.

use etherparse::{ArpEthIpv4Packet, ArpOperation, ArpPacket, EtherType, Ethernet2Header};
use std::collections::BTreeSet;
use std::net::Ipv4Addr;

pub type Mac = [u8; 6];
const BROADCAST: Mac = [0xff; 6];

/// The reply to `frame` when it is an ARP request, sent to us or to everyone, for an IP in
/// `claims`; requests for anything else are left to others. The IP comes with the reply,
/// for the log.
pub fn answer(frame: &[u8], mac: Mac, claims: &BTreeSet<Ipv4Addr>) -> Option<(Ipv4Addr, Vec<u8>)> {
    let (eth, payload) = Ethernet2Header::from_slice(frame).ok()?;
    if eth.ether_type != EtherType::ARP || (eth.destination != BROADCAST && eth.destination != mac)
    {
        return None;
    }
    let request = ArpPacket::from_slice(payload).ok()?.try_eth_ipv4().ok()?;
    if request.operation != ArpOperation::REQUEST || !claims.contains(&request.target_ipv4_addr()) {
        return None;
    }
    let reply = ArpEthIpv4Packet {
        operation: ArpOperation::REPLY,
        sender_mac: mac,
        sender_ipv4: request.target_ipv4,
        target_mac: request.sender_mac,
        target_ipv4: request.sender_ipv4,
    };
    Some((
        request.target_ipv4_addr(),
        frame_of(request.sender_mac, mac, &reply),
    ))
}

/// The frames that tell the LAN `ip` is now at `mac`: a broadcast request and a broadcast
/// reply, both with sender and target set to `ip`, as MetalLB sends them (some hosts heed
/// only one kind).
pub fn gratuitous(ip: Ipv4Addr, mac: Mac) -> [Vec<u8>; 2] {
    let packet = |operation| ArpEthIpv4Packet {
        operation,
        sender_mac: mac,
        sender_ipv4: ip.octets(),
        target_mac: BROADCAST,
        target_ipv4: ip.octets(),
    };
    [
        frame_of(BROADCAST, mac, &packet(ArpOperation::REQUEST)),
        frame_of(BROADCAST, mac, &packet(ArpOperation::REPLY)),
    ]
}

fn frame_of(destination: Mac, source: Mac, arp: &ArpEthIpv4Packet) -> Vec<u8> {
    let eth = Ethernet2Header {
        source,
        destination,
        ether_type: EtherType::ARP,
    };
    let mut out = eth.to_bytes().to_vec();
    out.extend_from_slice(&arp.to_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: Mac = [2, 0, 0, 0, 0, 1];
    const CLIENT: Mac = [2, 0, 0, 0, 0, 0x64];

    fn request(destination: Mac, target: Ipv4Addr) -> Vec<u8> {
        let arp = ArpEthIpv4Packet {
            operation: ArpOperation::REQUEST,
            sender_mac: CLIENT,
            sender_ipv4: [192, 0, 2, 100],
            target_mac: [0; 6],
            target_ipv4: target.octets(),
        };
        frame_of(destination, CLIENT, &arp)
    }

    fn parse(frame: &[u8]) -> (Ethernet2Header, ArpEthIpv4Packet) {
        let (eth, payload) = Ethernet2Header::from_slice(frame).unwrap();
        (
            eth,
            ArpPacket::from_slice(payload)
                .unwrap()
                .try_eth_ipv4()
                .unwrap(),
        )
    }

    #[test]
    fn answers_requests_for_claimed_ips_only() {
        let vip = Ipv4Addr::new(192, 0, 2, 130);
        let claims = BTreeSet::from([vip]);
        let (ip, reply) = answer(&request(BROADCAST, vip), OURS, &claims).expect("a reply");
        assert_eq!(ip, vip);
        let (eth, arp) = parse(&reply);
        assert_eq!((eth.destination, eth.source), (CLIENT, OURS));
        assert_eq!(arp.operation, ArpOperation::REPLY);
        assert_eq!((arp.sender_mac, arp.sender_ipv4_addr()), (OURS, vip));
        assert_eq!(
            (arp.target_mac, arp.target_ipv4_addr()),
            (CLIENT, Ipv4Addr::new(192, 0, 2, 100))
        );
        assert!(
            answer(&request(OURS, vip), OURS, &claims).is_some(),
            "unicast requests too (ARP refresh)"
        );
        assert!(
            answer(
                &request(BROADCAST, Ipv4Addr::new(192, 0, 2, 131)),
                OURS,
                &claims
            )
            .is_none(),
            "not ours"
        );
        assert!(
            answer(&request([2, 0, 0, 0, 0, 9], vip), OURS, &claims).is_none(),
            "sent to another host"
        );
        assert!(
            answer(&reply, OURS, &claims).is_none(),
            "replies are not answered"
        );
        assert!(
            answer(&[0u8; 10], OURS, &claims).is_none(),
            "garbage is ignored"
        );
    }

    #[test]
    fn gratuitous_frames_claim_the_ip() {
        let vip = Ipv4Addr::new(192, 0, 2, 130);
        for (frame, op) in gratuitous(vip, OURS)
            .iter()
            .zip([ArpOperation::REQUEST, ArpOperation::REPLY])
        {
            let (eth, arp) = parse(frame);
            assert_eq!(
                (eth.destination, eth.source, arp.operation),
                (BROADCAST, OURS, op)
            );
            assert_eq!(
                (
                    arp.sender_ipv4_addr(),
                    arp.target_ipv4_addr(),
                    arp.sender_mac
                ),
                (vip, vip, OURS)
            );
        }
    }
}
