//! Neighbor Discovery (RFC 4861), pure: which Neighbor Solicitations to answer, the
//! Advertisements that answer them or announce a takeover, and solicited-node groups.
//! Messages are ICMPv6 bodies as a raw ICMPv6 socket reads and writes them; the kernel
//! fills in the checksum.

use crate::arp::Mac;
use std::collections::BTreeSet;
use std::net::Ipv6Addr;

const SOLICITATION: u8 = 135;
const ADVERTISEMENT: u8 = 136;
const SOLICITED: u8 = 0x40;
const OVERRIDE: u8 = 0x20;
const TARGET_LINK_LAYER: u8 = 2;

/// An Advertisement ready to send: its ICMPv6 body and its IPv6 source and destination.
#[derive(Debug, PartialEq, Eq)]
pub struct Advertisement {
    pub message: Vec<u8>,
    /// The target itself, as the Linux kernel sends for its own addresses. Strict clients
    /// such as `ndisc6` drop an answer for a global target that comes from a link-local
    /// source.
    pub from: Ipv6Addr,
    pub to: Ipv6Addr,
}

/// The Advertisement answering `message`, when `message` is a Neighbor
/// Solicitation for a claimed target that arrived with hop limit 255 (anything else may
/// come from off-link and is dropped, RFC 4861 §7.1.1).
pub fn answer(
    message: &[u8],
    hop_limit: u8,
    source: Ipv6Addr,
    mac: Mac,
    claims: &BTreeSet<Ipv6Addr>,
) -> Option<Advertisement> {
    if message.len() < 24 || message[0] != SOLICITATION || message[1] != 0 || hop_limit != 255 {
        return None;
    }
    let target = Ipv6Addr::from(<[u8; 16]>::try_from(&message[8..24]).ok()?);
    if !claims.contains(&target) {
        return None;
    }
    // A solicitation from the unspecified address is duplicate address detection: the
    // answer goes to all nodes and is not "solicited".
    if source.is_unspecified() {
        return Some(unsolicited(target, mac));
    }
    Some(advertisement(target, mac, SOLICITED | OVERRIDE, source))
}

/// The unsolicited Advertisement that tells all nodes `target` is now at `mac`.
pub fn unsolicited(target: Ipv6Addr, mac: Mac) -> Advertisement {
    advertisement(target, mac, OVERRIDE, all_nodes())
}

fn advertisement(target: Ipv6Addr, mac: Mac, flags: u8, to: Ipv6Addr) -> Advertisement {
    let mut message = vec![ADVERTISEMENT, 0, 0, 0, flags, 0, 0, 0];
    message.extend_from_slice(&target.octets());
    message.extend_from_slice(&[TARGET_LINK_LAYER, 1]);
    message.extend_from_slice(&mac);
    Advertisement {
        message,
        from: target,
        to,
    }
}

pub fn all_nodes() -> Ipv6Addr {
    Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1)
}

/// The solicited-node multicast group of `ip` (ff02::1:ffXX:XXXX), where solicitations for
/// it are sent.
pub fn solicited_node(ip: Ipv6Addr) -> Ipv6Addr {
    let o = ip.octets();
    Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(o[13]),
        u16::from_be_bytes([o[14], o[15]]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: Mac = [2, 0, 0, 0, 0, 1];

    fn solicitation(target: Ipv6Addr) -> Vec<u8> {
        let mut m = vec![SOLICITATION, 0, 0, 0, 0, 0, 0, 0];
        m.extend_from_slice(&target.octets());
        m.extend_from_slice(&[1, 1, 2, 0, 0, 0, 0, 0x64]);
        m
    }

    #[test]
    fn answers_solicitations_for_claimed_targets_at_hop_limit_255() {
        let vip: Ipv6Addr = "2001:db8::130".parse().unwrap();
        let client: Ipv6Addr = "2001:db8::100".parse().unwrap();
        let claims = BTreeSet::from([vip]);
        let Advertisement {
            message: na,
            from,
            to,
        } = answer(&solicitation(vip), 255, client, MAC, &claims).expect("an advertisement");
        assert_eq!((from, to), (vip, client));
        assert_eq!((na[0], na[4]), (ADVERTISEMENT, SOLICITED | OVERRIDE));
        assert_eq!(&na[8..24], &vip.octets());
        assert_eq!(&na[24..32], &[2, 1, 2, 0, 0, 0, 0, 1]);
        assert!(
            answer(&solicitation(vip), 64, client, MAC, &claims).is_none(),
            "hop limit below 255"
        );
        assert!(
            answer(
                &solicitation("2001:db8::131".parse().unwrap()),
                255,
                client,
                MAC,
                &claims
            )
            .is_none(),
            "not ours"
        );
        assert!(
            answer(&na, 255, client, MAC, &claims).is_none(),
            "advertisements are not answered"
        );
        assert!(
            answer(&[SOLICITATION; 10], 255, client, MAC, &claims).is_none(),
            "truncated"
        );
        let dad = answer(&solicitation(vip), 255, Ipv6Addr::UNSPECIFIED, MAC, &claims).unwrap();
        assert_eq!(
            (dad.to, dad.message[4]),
            (all_nodes(), OVERRIDE),
            "duplicate address detection gets an unsolicited answer"
        );
    }

    #[test]
    fn solicited_node_groups() {
        assert_eq!(
            solicited_node("2001:db8::1:2:130".parse().unwrap()),
            "ff02::1:ff02:130".parse::<Ipv6Addr>().unwrap()
        );
        let vip: Ipv6Addr = "2001:db8::130".parse().unwrap();
        let na = unsolicited(vip, MAC);
        assert_eq!(
            (na.from, na.to, na.message[4]),
            (vip, all_nodes(), OVERRIDE)
        );
    }
}
