//! The wire codec: round trips, hostile input, packing limits, RFC 7606 handling, and a
//! cross-check against an independent implementation (netgauze-bgp-pkt).

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use ironlb_bgp::wire::{
    AsPathSegment, Attributes, Capability, Codec, MAX_EXTENDED_LEN, MAX_LEN, Message, MpReach,
    MpUnreach, NextHops, Notification, Open, Origin, Update, V4NextHop, decode, encode,
    pack_announcements, pack_withdrawals,
};
use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const BIG: Codec = Codec {
    four_octet_as: true,
    max_len: MAX_EXTENDED_LEN,
};

/// Unicast prefixes (below 224.0.0.0): a unicast family carries no multicast ranges.
fn v4() -> impl Strategy<Value = IpNet> {
    (0u32..0xe000_0000, 3u8..=32)
        .prop_map(|(a, l)| IpNet::V4(Ipv4Net::new(Ipv4Addr::from(a), l).unwrap().trunc()))
}

/// Global unicast prefixes, inside 2000::/3.
fn v6() -> impl Strategy<Value = IpNet> {
    (any::<u128>(), 3u8..=128).prop_map(|(a, l)| {
        let global = (a & !(0b111u128 << 125)) | (0b001u128 << 125);
        IpNet::V6(Ipv6Net::new(Ipv6Addr::from(global), l).unwrap().trunc())
    })
}

fn path() -> impl Strategy<Value = Vec<AsPathSegment>> {
    prop::collection::vec(
        (any::<bool>(), prop::collection::vec(any::<u32>(), 1..6)).prop_map(|(set, asns)| {
            if set {
                AsPathSegment::Set(asns)
            } else {
                AsPathSegment::Sequence(asns)
            }
        }),
        0..4,
    )
}

fn attributes(with_v4: bool, with_v6: bool) -> impl Strategy<Value = Attributes> {
    (
        path(),
        any::<u32>(),
        prop::option::of(any::<u32>()),
        prop::option::of(any::<u32>()),
        prop::collection::vec(any::<u32>(), 0..5),
        prop::collection::vec(any::<[u32; 3]>(), 0..3),
        prop::collection::vec(v6(), 1..8),
        any::<u128>(),
        any::<bool>(),
    )
        .prop_map(
            move |(path, nh, med, lp, communities, large, v6nlri, gua, with_ll)| {
                let mut next_hops = vec![IpAddr::V6(Ipv6Addr::from(gua))];
                if with_ll {
                    next_hops.push("fe80::1".parse().unwrap());
                }
                Attributes {
                    origin: Some(Origin::Igp),
                    as_path: Some(path),
                    next_hop: with_v4.then(|| Ipv4Addr::from(nh)),
                    med,
                    local_pref: lp,
                    communities,
                    large_communities: large,
                    mp_reach: with_v6.then_some(MpReach {
                        afi: 2,
                        safi: 1,
                        next_hops,
                        nlri: v6nlri,
                    }),
                    mp_unreach: None,
                    other: Vec::new(),
                }
            },
        )
}

fn update() -> impl Strategy<Value = Update> {
    (
        prop::collection::vec(v4(), 0..10),
        prop::collection::vec(v4(), 0..10),
        any::<bool>(),
        prop::collection::vec(v6(), 0..5),
    )
        .prop_flat_map(|(withdrawn, nlri, with_v6, unreach)| {
            let has_v4 = !nlri.is_empty();
            attributes(has_v4, with_v6).prop_map(move |mut a| {
                if !unreach.is_empty() {
                    a.mp_unreach = Some(MpUnreach {
                        afi: 2,
                        safi: 1,
                        withdrawn: unreach.clone(),
                    });
                }
                Update {
                    withdrawn: withdrawn.clone(),
                    attributes: a,
                    nlri: nlri.clone(),
                    treat_as_withdraw: None,
                }
            })
        })
}

fn open() -> impl Strategy<Value = Open> {
    (
        any::<u32>(),
        prop_oneof![Just(0u16), 3u16..],
        1u32..0xe000_0000,
        any::<bool>(),
        0u16..4096,
    )
        .prop_map(|(asn, hold, id, gr, time)| {
            let mut capabilities = vec![
                Capability::MultiProtocol { afi: 1, safi: 1 },
                Capability::MultiProtocol { afi: 2, safi: 1 },
                Capability::RouteRefresh,
                Capability::FourOctetAs(asn),
                Capability::ExtendedMessage,
            ];
            if gr {
                capabilities.push(Capability::GracefulRestart {
                    restarting: time % 2 == 0,
                    restart_time: time,
                    families: vec![(1, 1, true), (2, 1, false)],
                });
            }
            Open {
                asn,
                hold_time: hold,
                router_id: Ipv4Addr::from(id),
                capabilities,
            }
        })
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        open().prop_map(Message::Open),
        update().prop_map(Message::Update),
        (
            any::<u8>(),
            any::<u8>(),
            prop::collection::vec(any::<u8>(), 0..20)
        )
            .prop_map(|(c, s, d)| Message::Notification(Notification::new(c, s, d))),
        Just(Message::Keepalive),
        (1u16..3).prop_map(|afi| Message::RouteRefresh { afi, safi: 1 }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn every_message_round_trips(m in message()) {
        let bytes = encode(&m, &BIG);
        let (back, used) = decode(&bytes, &BIG).unwrap().expect("a whole message");
        prop_assert_eq!(used, bytes.len());
        prop_assert_eq!(back, m);
    }

    #[test]
    fn truncated_input_asks_for_more(m in message(), cut in 0usize..19) {
        let bytes = encode(&m, &BIG);
        let cut = cut.min(bytes.len() - 1);
        prop_assert_eq!(decode(&bytes[..cut], &BIG), Ok(None));
    }

    #[test]
    fn random_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..300), kind in 1u8..6) {
        let mut bytes = vec![0xff; 16];
        bytes.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
        bytes.push(kind);
        bytes.extend_from_slice(&body);
        let _ = decode(&bytes, &BIG);
        let _ = decode(&body, &BIG);
    }

    #[test]
    fn packed_updates_fit_and_carry_every_prefix(prefixes in prop::collection::vec(prop_oneof![v4(), v6()], 0..3000), extended in any::<bool>(), extended_next_hop in any::<bool>()) {
        let codec = Codec { four_octet_as: true, max_len: if extended { MAX_EXTENDED_LEN } else { MAX_LEN } };
        let attrs = Attributes { origin: Some(Origin::Igp), as_path: Some(vec![AsPathSegment::Sequence(vec![64513])]), communities: vec![1, 2], ..Default::default() };
        let updates = pack_announcements(&attrs, &next_hops(extended_next_hop), &prefixes, &codec);
        let mut carried: Vec<IpNet> = Vec::new();
        for u in &updates {
            let bytes = encode(&Message::Update(u.clone()), &codec);
            prop_assert!(bytes.len() <= codec.max_len, "{} bytes", bytes.len());
            let (back, _) = decode(&bytes, &codec).unwrap().unwrap();
            prop_assert_eq!(&back, &Message::Update(u.clone()));
            carried.extend(u.announced());
        }
        prop_assert_eq!(carried.len(), prefixes.len());
        let withdrawals = pack_withdrawals(&prefixes, &codec);
        let gone: usize = withdrawals.iter().map(|u| u.withdrawn_all().count()).sum();
        prop_assert_eq!(gone, prefixes.len());
        for u in &withdrawals {
            prop_assert!(encode(&Message::Update(u.clone()), &codec).len() <= codec.max_len);
        }
    }
}

#[test]
fn ten_thousand_host_routes_fit_in_eleven_updates() {
    let prefixes: Vec<IpNet> = (0..10_000u32)
        .map(|i| IpNet::V4(Ipv4Net::new(Ipv4Addr::from(0xC633_6400 + i), 32).unwrap()))
        .collect();
    let attrs = Attributes {
        origin: Some(Origin::Igp),
        as_path: Some(vec![AsPathSegment::Sequence(vec![64513])]),
        ..Default::default()
    };
    let updates = pack_announcements(&attrs, &next_hops(false), &prefixes, &Codec::default());
    // 4096 bytes minus header and attributes leave room for ~811 prefixes of 5 bytes.
    assert!(
        updates.len() <= 13,
        "{} UPDATEs (the target is at most 15)",
        updates.len()
    );
}

/// IPv4 routes with NEXT_HOP, or with an IPv6 next hop in MP_REACH_NLRI (RFC 8950).
fn next_hops(extended: bool) -> NextHops {
    let v6: std::net::IpAddr = "2001:db8::2".parse().unwrap();
    NextHops {
        v4: Some(if extended {
            V4NextHop::Ipv6(vec![v6])
        } else {
            V4NextHop::Ipv4(Ipv4Addr::new(192, 0, 2, 2))
        }),
        v6: vec![v6],
    }
}

fn reject(bytes: &[u8]) -> (u8, u8) {
    reject_with(bytes, &BIG)
}

fn reject_with(bytes: &[u8], codec: &Codec) -> (u8, u8) {
    match decode(bytes, codec) {
        Err(e) => (e.notification.code, e.notification.subcode),
        Ok(_) => panic!(
            "accepted a message that must be rejected ({} bytes)",
            bytes.len()
        ),
    }
}

fn update_bytes(withdrawn: &[u8], attrs: &[u8], nlri: &[u8]) -> Vec<u8> {
    let mut body = (withdrawn.len() as u16).to_be_bytes().to_vec();
    body.extend_from_slice(withdrawn);
    body.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    body.extend_from_slice(attrs);
    body.extend_from_slice(nlri);
    let mut out = vec![0xff; 16];
    out.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
    out.push(2);
    out.extend_from_slice(&body);
    out
}

const ORIGIN: [u8; 4] = [0x40, 1, 1, 0];
const PATH: [u8; 9] = [0x40, 2, 6, 2, 1, 0, 0, 0xfc, 0x01];
const NEXT_HOP: [u8; 7] = [0x40, 3, 4, 192, 0, 2, 2];
const NLRI: [u8; 5] = [32, 198, 51, 100, 1];

fn good_attrs() -> Vec<u8> {
    [&ORIGIN[..], &PATH[..], &NEXT_HOP[..]].concat()
}

#[test]
fn session_resetting_errors_name_the_right_notification() {
    let mut bad_marker = encode(&Message::Keepalive, &BIG);
    bad_marker[3] = 0;
    assert_eq!(reject(&bad_marker), (1, 1), "bad marker");
    let mut bad_type = encode(&Message::Keepalive, &BIG);
    bad_type[18] = 9;
    assert_eq!(reject(&bad_type), (1, 3), "unknown type");
    let mut long_keepalive = encode(&Message::Keepalive, &BIG);
    long_keepalive[17] = 20;
    long_keepalive.push(0);
    assert_eq!(reject(&long_keepalive), (1, 2), "bad length");
    let big = encode(
        &Message::Update(Update {
            nlri: (0..1200u32)
                .map(|i| IpNet::V4(Ipv4Net::new(Ipv4Addr::from(i << 8), 24).unwrap()))
                .collect(),
            ..Default::default()
        }),
        &BIG,
    );
    assert!(big.len() > MAX_LEN);
    assert_eq!(
        reject_with(&big, &Codec::default()),
        (1, 2),
        "over 4096 bytes without extended messages"
    );
    let open = |version: u8, hold: u16, id: [u8; 4]| {
        let mut m = vec![0xff; 16];
        m.extend_from_slice(&[0, 29, 1, version, 0xfc, 0x01]);
        m.extend_from_slice(&hold.to_be_bytes());
        m.extend_from_slice(&id);
        m.push(0);
        m
    };
    assert_eq!(reject(&open(3, 90, [192, 0, 2, 1])), (2, 1), "version 3");
    assert_eq!(reject(&open(4, 2, [192, 0, 2, 1])), (2, 6), "hold time 2");
    assert_eq!(reject(&open(4, 90, [0, 0, 0, 0])), (2, 3), "router id 0");
    let mut overrun = update_bytes(&[], &[], &[]);
    overrun[21] = 100; // the total path attribute length claims 100 bytes that are not there
    assert_eq!(
        reject(&overrun),
        (3, 1),
        "attribute length past the message"
    );
    assert_eq!(
        reject(&update_bytes(&[], &good_attrs(), &[33, 1, 2, 3, 4, 5])),
        (3, 10),
        "a /33"
    );
    assert_eq!(
        reject(&update_bytes(
            &[],
            &[&good_attrs()[..], &[0x40, 99, 1, 0]].concat(),
            &NLRI
        )),
        (3, 2),
        "unknown well-known attribute"
    );
}

fn treated_as_withdraw(attrs: &[u8]) -> Update {
    let Some((Message::Update(u), _)) = decode(&update_bytes(&[], attrs, &NLRI), &BIG).unwrap()
    else {
        panic!("an UPDATE")
    };
    assert!(u.treat_as_withdraw.is_some(), "{u:?}");
    assert!(
        u.nlri.is_empty() && u.withdrawn == vec!["198.51.100.1/32".parse::<IpNet>().unwrap()],
        "{u:?}"
    );
    u
}

#[test]
fn attribute_errors_withdraw_the_routes_and_keep_the_session() {
    treated_as_withdraw(&[&[0x40, 1, 1, 7][..], &PATH, &NEXT_HOP].concat()); // ORIGIN 7
    treated_as_withdraw(&[&ORIGIN[..], &[0x40, 2, 3, 2, 1, 0], &NEXT_HOP].concat()); // AS_PATH cut short
    treated_as_withdraw(&[&ORIGIN[..], &PATH, &[0x40, 3, 3, 192, 0, 2]].concat()); // NEXT_HOP of 3 bytes
    treated_as_withdraw(&[&good_attrs()[..], &[0xc0, 8, 3, 0, 0, 1]].concat()); // COMMUNITIES not a multiple of 4
    treated_as_withdraw(&[&good_attrs()[..], &[0xc0, 32, 4, 0, 0, 0, 1]].concat()); // LARGE_COMMUNITY of 4 bytes
    treated_as_withdraw(&[&good_attrs()[..], &[0xc0, 8, 0]].concat()); // COMMUNITIES empty (RFC 7606 §7.8)
    treated_as_withdraw(&[&good_attrs()[..], &[0xc0, 32, 0]].concat()); // LARGE_COMMUNITY empty (RFC 8092 §5)
    treated_as_withdraw(&[&ORIGIN[..], &PATH].concat()); // NEXT_HOP missing
    treated_as_withdraw(&[&[0xc0, 1, 1, 0][..], &PATH, &NEXT_HOP].concat()); // ORIGIN flagged optional
    treated_as_withdraw(&[&good_attrs()[..], &[0x40, 5, 2, 0, 1]].concat()); // LOCAL_PREF of 2 bytes
}

#[test]
fn duplicate_attributes_keep_the_first() {
    let attrs = [&good_attrs()[..], &[0x40, 1, 1, 2]].concat();
    let Some((Message::Update(u), _)) = decode(&update_bytes(&[], &attrs, &NLRI), &BIG).unwrap()
    else {
        panic!()
    };
    assert_eq!(
        (u.attributes.origin, u.treat_as_withdraw),
        (Some(Origin::Igp), None)
    );
}

#[test]
fn end_of_rib_markers() {
    assert_eq!(Update::end_of_rib(1).end_of_rib_afi(), Some(1));
    assert_eq!(Update::end_of_rib(2).end_of_rib_afi(), Some(2));
    for afi in [1, 2] {
        let bytes = encode(&Message::Update(Update::end_of_rib(afi)), &BIG);
        let Some((Message::Update(u), _)) = decode(&bytes, &BIG).unwrap() else {
            panic!()
        };
        assert_eq!(u.end_of_rib_afi(), Some(afi));
    }
}

mod netgauze_cross_check {
    use super::*;
    use netgauze_bgp_pkt::BgpMessage;
    use netgauze_bgp_pkt::wire::deserializer::BgpParsingContext;
    use netgauze_parse_utils::WritablePdu;
    use netgauze_parse_utils::reader::SliceReader;
    use netgauze_parse_utils::traits::ParseFromWithOneInput;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// netgauze reads every message we write, and writes it back to the same bytes:
        /// both implementations agree on every field.
        #[test]
        fn netgauze_reads_what_we_write(m in message().prop_filter("netgauze rejects NOTIFICATION codes it does not know", |m| !matches!(m, Message::Notification(_)))) {
            let bytes = encode(&m, &BIG);
            let parsed = BgpMessage::parse(&mut SliceReader::new(&bytes), &mut BgpParsingContext::default());
            let parsed = match parsed {
                Ok(p) => p,
                Err(e) => return Err(TestCaseError::fail(format!("netgauze rejected {m:?}: {e:?}"))),
            };
            let mut again = Vec::new();
            parsed.write(&mut again).unwrap();
            prop_assert_eq!(again, bytes);
        }
    }

    #[test]
    fn we_read_what_netgauze_writes_for_a_hold_timer_notification() {
        let bytes = encode(
            &Message::Notification(Notification::hold_timer_expired()),
            &BIG,
        );
        let parsed = BgpMessage::parse(
            &mut SliceReader::new(&bytes),
            &mut BgpParsingContext::default(),
        )
        .unwrap();
        let mut again = Vec::new();
        parsed.write(&mut again).unwrap();
        assert_eq!(
            decode(&again, &BIG).unwrap().unwrap().0,
            Message::Notification(Notification::hold_timer_expired())
        );
    }
}
