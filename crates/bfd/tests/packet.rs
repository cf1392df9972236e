//! The Control packet codec: round trips, the RFC's example layout, and every discard rule.

use ironlb_bfd::packet::{DecodeError, Packet, State, diag};
use proptest::prelude::*;
use std::time::Duration;

fn packet() -> Packet {
    Packet {
        diag: diag::NONE,
        state: State::Up,
        poll: true,
        final_: false,
        control_plane_independent: false,
        demand: false,
        detect_mult: 3,
        my_discriminator: 0x0102_0304,
        your_discriminator: 7,
        desired_min_tx: Duration::from_millis(300),
        required_min_rx: Duration::from_millis(100),
        required_min_echo_rx: Duration::ZERO,
    }
}

#[test]
fn layout_matches_rfc_5880() {
    let bytes = packet().encode();
    assert_eq!(bytes[0], 0x20, "version 1, diag 0");
    assert_eq!(bytes[1], 0xc0 | 0x20, "state Up, Poll");
    assert_eq!((bytes[2], bytes[3]), (3, 24));
    assert_eq!(&bytes[4..8], &[1, 2, 3, 4]);
    assert_eq!(&bytes[12..16], &300_000u32.to_be_bytes());
    assert_eq!(&bytes[16..20], &100_000u32.to_be_bytes());
    assert_eq!(Packet::decode(&bytes), Ok(packet()));
}

#[test]
fn discard_rules() {
    let good = packet().encode();
    let with = |i: usize, v: u8| {
        let mut b = good;
        b[i] = v;
        b
    };
    assert_eq!(Packet::decode(&good[..23]), Err(DecodeError::Short(23)));
    assert_eq!(Packet::decode(&with(0, 0x40)), Err(DecodeError::Version(2)));
    assert_eq!(
        Packet::decode(&with(3, 23)),
        Err(DecodeError::Length { field: 23, got: 24 })
    );
    assert_eq!(
        Packet::decode(&with(3, 30)),
        Err(DecodeError::Length { field: 30, got: 24 })
    );
    assert_eq!(
        Packet::decode(&with(1, 0xc4)),
        Err(DecodeError::Authentication)
    );
    assert_eq!(Packet::decode(&with(2, 0)), Err(DecodeError::DetectMult));
    assert_eq!(Packet::decode(&with(1, 0xc1)), Err(DecodeError::Multipoint));
    let mut no_disc = good;
    no_disc[4..8].copy_from_slice(&[0; 4]);
    assert_eq!(Packet::decode(&no_disc), Err(DecodeError::Discriminator));
}

proptest! {
    #[test]
    fn what_decodes_encodes_back(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
        if let Ok(p) = Packet::decode(&bytes) {
            prop_assert_eq!(Packet::decode(&p.encode()), Ok(p.clone()));
        }
    }

    #[test]
    fn every_packet_round_trips(
        diag in 0u8..32, state in 0u8..4, flags in any::<[bool; 4]>(), mult in 1u8..,
        my in 1u32.., your in any::<u32>(), tx in any::<u32>(), rx in any::<u32>(), echo in any::<u32>(),
    ) {
        let state = [State::AdminDown, State::Down, State::Init, State::Up][usize::from(state)];
        let us = |v: u32| Duration::from_micros(u64::from(v));
        let p = Packet {
            diag, state, poll: flags[0], final_: flags[1], control_plane_independent: flags[2],
            demand: flags[3], detect_mult: mult, my_discriminator: my, your_discriminator: your,
            desired_min_tx: us(tx), required_min_rx: us(rx), required_min_echo_rx: us(echo),
        };
        prop_assert_eq!(Packet::decode(&p.encode()), Ok(p));
    }
}
