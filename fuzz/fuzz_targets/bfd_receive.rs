//! Any bytes on UDP 3784: the decoder never panics, what decodes encodes back, and a
//! session fed a stream of such packets never panics either.
#![no_main]

use ironlb_bfd::packet::Packet;
use ironlb_bfd::session::{Session, Timers};
use libfuzzer_sys::fuzz_target;
use std::time::{Duration, Instant};

fuzz_target!(|data: &[u8]| {
    let start = Instant::now();
    let mut session = Session::new(Timers::default(), 0x0a, start);
    for (i, chunk) in data.chunks(24).enumerate() {
        let now = start + Duration::from_millis(i as u64 * 37);
        if let Ok(p) = Packet::decode(chunk) {
            assert_eq!(Packet::decode(&p.encode()), Ok(p.clone()));
            let _ = session.receive(&p, now);
        }
        let _ = session.poll(now);
        let _ = session.next_deadline();
    }
});
