//! The session state machine, driven by hand: two sessions talking to each other, and a
//! session fed hostile or silent peers, with the clock under the test's control.

use ironlb_bgp::session::{Action, PeerAs, Session, SessionConfig, State};
use ironlb_bgp::wire::{self, Codec, Message, Notification, Update};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

fn config(asn: u32, peer: Option<u32>, id: u8, hold: u16) -> SessionConfig {
    SessionConfig {
        local_asn: asn,
        peer_asn: peer.map_or(PeerAs::Any, PeerAs::Is),
        router_id: Ipv4Addr::new(192, 0, 2, id),
        hold_time: hold,
        keepalive: None,
        families: vec![(1, 1), (2, 1)],
        graceful_restart: Some(120),
        extended_next_hop: false,
    }
}

fn sent(actions: &[Action]) -> Vec<u8> {
    actions
        .iter()
        .filter_map(|a| {
            if let Action::Send(b) = a {
                Some(b.clone())
            } else {
                None
            }
        })
        .flatten()
        .collect()
}

fn notification(actions: &[Action]) -> Option<(u8, u8)> {
    let bytes = sent(actions);
    let mut rest = &bytes[..];
    while let Ok(Some((m, used))) = wire::decode(rest, &Codec::default()) {
        if let Message::Notification(n) = m {
            return Some((n.code, n.subcode));
        }
        rest = &rest[used..];
    }
    None
}

fn closed(actions: &[Action]) -> bool {
    actions.iter().any(|a| matches!(a, Action::Close { .. }))
}

/// Runs two sessions to Established, passing bytes both ways.
fn handshake(a: &mut Session, b: &mut Session, now: Instant) {
    let to_b = sent(&a.connected(now));
    let to_a = sent(&b.connected(now));
    let a_reply = a.received(&to_a, now);
    let b_reply = b.received(&to_b, now);
    let a_up = a.received(&sent(&b_reply), now);
    let b_up = b.received(&sent(&a_reply), now);
    assert!(
        a_up.iter().any(|x| matches!(x, Action::Established { .. })),
        "{a_up:?}"
    );
    assert!(
        b_up.iter().any(|x| matches!(x, Action::Established { .. })),
        "{b_up:?}"
    );
}

#[test]
fn two_sessions_reach_established_and_negotiate() {
    let now = Instant::now();
    let mut a = Session::new(config(64513, Some(64512), 2, 90));
    let mut b = Session::new(config(64512, None, 1, 9));
    handshake(&mut a, &mut b, now);
    assert_eq!(
        (a.state(), b.state()),
        (State::Established, State::Established)
    );
    assert_eq!(
        a.codec(),
        Codec {
            four_octet_as: true,
            max_len: wire::MAX_EXTENDED_LEN
        }
    );
    assert_eq!(
        b.peer().map(|o| o.asn),
        Some(64513),
        "the passive side learns the AS from the OPEN"
    );
    // Hold is the smaller of the two (9s), so keepalives go every 3s.
    assert_eq!(a.next_deadline(), Some(now + Duration::from_secs(3)));
    let ka = a.tick(now + Duration::from_secs(3));
    assert_eq!(sent(&ka), wire::encode(&Message::Keepalive, &a.codec()));
}

#[test]
fn updates_flow_once_established() {
    let now = Instant::now();
    let mut a = Session::new(config(64513, Some(64512), 2, 90));
    let mut b = Session::new(config(64512, Some(64513), 1, 90));
    handshake(&mut a, &mut b, now);
    let eor = a.update(&Update::end_of_rib(1), now);
    let got = b.received(&eor, now);
    assert_eq!(got, vec![Action::Received(Box::new(Update::end_of_rib(1)))]);
}

#[test]
fn the_hold_timer_expires_with_a_notification() {
    let now = Instant::now();
    let mut a = Session::new(config(64513, Some(64512), 2, 9));
    let mut b = Session::new(config(64512, Some(64513), 1, 9));
    handshake(&mut a, &mut b, now);
    let quiet = a.tick(now + Duration::from_millis(8_999));
    assert!(!closed(&quiet));
    let expired = a.tick(now + Duration::from_secs(9));
    assert_eq!(notification(&expired), Some((4, 0)));
    assert!(closed(&expired) && a.state() == State::Idle);
}

#[test]
fn messages_keep_the_session_alive() {
    let now = Instant::now();
    let mut a = Session::new(config(64513, Some(64512), 2, 9));
    let mut b = Session::new(config(64512, Some(64513), 1, 9));
    handshake(&mut a, &mut b, now);
    let later = now + Duration::from_secs(6);
    a.received(&wire::encode(&Message::Keepalive, &b.codec()), later);
    assert!(
        !closed(&a.tick(now + Duration::from_secs(10))),
        "a keepalive at 6s pushed the deadline to 15s"
    );
}

#[test]
fn a_peer_with_the_wrong_as_gets_bad_peer_as() {
    let now = Instant::now();
    let mut a = Session::new(config(64513, Some(64512), 2, 90));
    let mut wrong = Session::new(config(64999, None, 1, 90));
    a.connected(now);
    let open = sent(&wrong.connected(now));
    let actions = a.received(&open, now);
    assert_eq!(notification(&actions), Some((2, 2)));
    assert!(closed(&actions));
}

#[test]
fn an_update_before_open_is_a_state_machine_error() {
    let now = Instant::now();
    let mut a = Session::new(config(64513, Some(64512), 2, 90));
    a.connected(now);
    let actions = a.received(
        &wire::encode(&Message::Update(Update::end_of_rib(1)), &Codec::default()),
        now,
    );
    assert_eq!(notification(&actions), Some((5, 1)));
}

#[test]
fn a_peer_notification_closes_without_answering() {
    let now = Instant::now();
    let mut a = Session::new(config(64513, Some(64512), 2, 90));
    let mut b = Session::new(config(64512, Some(64513), 1, 90));
    handshake(&mut a, &mut b, now);
    let actions = a.received(
        &wire::encode(
            &Message::Notification(Notification::admin_shutdown()),
            &b.codec(),
        ),
        now,
    );
    assert!(sent(&actions).is_empty());
    assert!(
        matches!(&actions[..], [Action::Close { peer_notification: Some(n), .. }] if n.code == 6 && n.subcode == 2)
    );
}

#[test]
fn a_malformed_update_resets_only_with_the_right_notification() {
    let now = Instant::now();
    let mut a = Session::new(config(64513, Some(64512), 2, 90));
    let mut b = Session::new(config(64512, Some(64513), 1, 90));
    handshake(&mut a, &mut b, now);
    let mut bad = wire::encode(&Message::Update(Update::end_of_rib(1)), &b.codec());
    bad[20] = 50; // the withdrawn-routes length overruns the message
    let actions = a.received(&bad, now);
    assert_eq!(notification(&actions), Some((3, 1)));
    assert!(closed(&actions));
}

#[test]
fn split_reads_are_reassembled() {
    let now = Instant::now();
    let mut a = Session::new(config(64513, Some(64512), 2, 90));
    let mut b = Session::new(config(64512, Some(64513), 1, 90));
    a.connected(now);
    let open = sent(&b.connected(now));
    let mut actions = Vec::new();
    for byte in &open {
        actions.extend(a.received(std::slice::from_ref(byte), now));
    }
    assert_eq!(a.state(), State::OpenConfirm, "{actions:?}");
}

#[test]
fn only_families_both_sides_announce_are_negotiated() {
    let now = Instant::now();
    let mut a = Session::new(config(64513, Some(64512), 2, 90));
    let mut v4_only = Session::new(SessionConfig {
        families: vec![(1, 1)],
        ..config(64512, Some(64513), 1, 90)
    });
    handshake(&mut a, &mut v4_only, now);
    assert_eq!(a.negotiated_families(), vec![(1, 1)]);
}

/// RFC 8950 §4: IPv4 routes get IPv6 next hops only when both sides offered it.
#[test]
fn extended_next_hop_needs_both_sides() {
    let now = Instant::now();
    let offering = || SessionConfig {
        extended_next_hop: true,
        ..config(64513, Some(64512), 2, 90)
    };
    for (theirs, negotiated) in [(true, true), (false, false)] {
        let mut ours = Session::new(offering());
        let mut router = Session::new(SessionConfig {
            extended_next_hop: theirs,
            ..config(64512, Some(64513), 1, 90)
        });
        handshake(&mut ours, &mut router, now);
        assert_eq!(
            ours.extended_next_hop(),
            negotiated,
            "router offers: {theirs}"
        );
    }
    let mut silent = Session::new(config(64513, Some(64512), 2, 90));
    let mut router = Session::new(SessionConfig {
        extended_next_hop: true,
        ..config(64512, Some(64513), 1, 90)
    });
    handshake(&mut silent, &mut router, now);
    assert!(!silent.extended_next_hop(), "not offered by us");
}

#[test]
fn a_shorter_hold_time_from_the_router_caps_the_configured_keepalive_at_a_third() {
    let now = Instant::now();
    let mut ours = config(64513, Some(64512), 2, 90);
    ours.keepalive = Some(Duration::from_secs(30));
    let mut a = Session::new(ours);
    let mut b = Session::new(config(64512, None, 1, 9));
    handshake(&mut a, &mut b, now);
    // Hold time 9 s is negotiated: keepalives every 3 s, not 9 (which would let the
    // router's hold timer race our keepalive) nor the configured 30.
    assert_eq!(a.next_deadline(), Some(now + Duration::from_secs(3)));
}

#[test]
fn route_refresh_asks_for_the_table_again_in_negotiated_families_only() {
    let now = Instant::now();
    let mut a = Session::new(config(64513, Some(64512), 2, 90));
    let mut ipv4_only = config(64512, None, 1, 90);
    ipv4_only.families = vec![(1, 1)];
    let mut b = Session::new(ipv4_only);
    handshake(&mut a, &mut b, now);
    let refresh = |afi, safi| wire::encode(&Message::RouteRefresh { afi, safi }, &Codec::default());
    let asked = a.received(&refresh(1, 1), now);
    assert!(
        asked
            .iter()
            .any(|x| matches!(x, Action::RouteRefresh { afi: 1, safi: 1 })),
        "{asked:?}"
    );
    // IPv6 was not negotiated with this peer: ignored, and the session stays up.
    let ignored = a.received(&refresh(2, 1), now);
    assert!(ignored.is_empty(), "{ignored:?}");
    assert_eq!(a.state(), State::Established);
}

#[test]
fn every_message_is_counted_by_type_and_direction() {
    let now = Instant::now();
    let mut a = Session::new(config(64512, Some(64513), 1, 90));
    let mut b = Session::new(config(64513, Some(64512), 2, 90));
    handshake(&mut a, &mut b, now);
    let update = a.update(&Update::end_of_rib(1), now);
    b.received(&update, now);
    let shutdown = a.shutdown();
    b.received(&shutdown, now);
    let (a, b) = (a.counts(), b.counts());
    assert_eq!(
        (
            a.sent.opens,
            a.sent.keepalives,
            a.sent.updates,
            a.sent.notifications
        ),
        (1, 1, 1, 1)
    );
    assert_eq!(
        (
            b.received.opens,
            b.received.keepalives,
            b.received.updates,
            b.received.notifications
        ),
        (1, 1, 1, 1)
    );
    assert_eq!(a.sent.total(), 4);
    assert_eq!(b.sent.total(), 2, "an OPEN and a KEEPALIVE");
}

/// MetalLB's dynamicASN: the AS comes from the peer's OPEN, ours for internal and any other
/// for external; the wrong one is refused with Bad Peer AS (2/2).
#[test]
fn dynamic_asn_takes_the_peer_as_from_its_open_within_its_kind() {
    let now = Instant::now();
    let cases = [
        (PeerAs::Internal, 64512, None),
        (PeerAs::Internal, 64513, Some((2, 2))),
        (PeerAs::External, 64513, None),
        (PeerAs::External, 64512, Some((2, 2))),
    ];
    for (kind, router_asn, refused) in cases {
        let mut ours = Session::new(SessionConfig {
            peer_asn: kind,
            ..config(64512, None, 1, 90)
        });
        let mut router = Session::new(config(router_asn, None, 2, 90));
        let to_router = sent(&ours.connected(now));
        let to_us = sent(&router.connected(now));
        router.received(&to_router, now);
        let answer = ours.received(&to_us, now);
        assert_eq!(
            notification(&answer),
            refused,
            "{kind:?} with AS {router_asn}"
        );
        assert_eq!(
            closed(&answer),
            refused.is_some(),
            "{kind:?} with AS {router_asn}"
        );
    }
}
