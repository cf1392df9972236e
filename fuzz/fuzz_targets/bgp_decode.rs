//! Any bytes from a peer: the decoder and the session must never panic, and whatever decodes
//! must encode again to bytes that decode to the same message.
#![no_main]

use ironlb_bgp::session::{Session, SessionConfig};
use ironlb_bgp::wire::{self, Codec, MAX_EXTENDED_LEN};
use libfuzzer_sys::fuzz_target;
use std::net::Ipv4Addr;
use std::time::Instant;

fuzz_target!(|data: &[u8]| {
    for codec in [Codec::default(), Codec { four_octet_as: false, max_len: MAX_EXTENDED_LEN }] {
        let mut rest = data;
        while let Ok(Some((message, used))) = wire::decode(rest, &codec) {
            let again = wire::encode(&message, &codec);
            if let Ok(Some((back, _))) = wire::decode(&again, &codec) {
                // A decoded UPDATE may carry a treat-as-withdraw verdict that re-encoding drops.
                if !matches!(back, wire::Message::Update(_)) {
                    assert_eq!(back, message);
                }
            }
            rest = &rest[used..];
        }
    }
    let mut session = Session::new(SessionConfig {
        local_asn: 64513,
        peer_asn: None,
        router_id: Ipv4Addr::new(192, 0, 2, 2),
        hold_time: 90,
        keepalive: None,
        families: vec![(1, 1), (2, 1)],
        graceful_restart: Some(120),
    });
    let now = Instant::now();
    session.connected(now);
    for chunk in data.chunks(97) {
        session.received(chunk, now);
    }
    session.tick(now);
});
