//! Two session machines talking through a simulated wire and clock: the three-way
//! handshake, the Poll sequence that follows, detection, the peer going AdminDown, passive
//! mode, the transmit timing rules, and the Echo function.

use ironlb_bfd::packet::{Packet, State, diag};
use ironlb_bfd::session::{Output, Session, Timers};
use std::time::{Duration, Instant};

fn fast() -> Timers {
    Timers {
        desired_min_tx: Duration::from_millis(100),
        required_min_rx: Duration::from_millis(100),
        detect_mult: 3,
        passive: false,
        echo: None,
        echo_rx: Duration::ZERO,
    }
}

/// `fast`, sending Echo packets every 50 ms and looping the peer's back.
fn echoing() -> Timers {
    Timers {
        echo: Some(Duration::from_millis(50)),
        echo_rx: Duration::from_millis(50),
        ..fast()
    }
}

/// A packet from b (discriminator 0x0b) in `state`, addressed to `your` discriminator,
/// at the slow pre-Up rate.
fn from_b(state: State, your: u32) -> Packet {
    Packet {
        diag: 0,
        state,
        poll: false,
        final_: false,
        control_plane_independent: false,
        demand: false,
        detect_mult: 3,
        my_discriminator: 0x0b,
        your_discriminator: your,
        desired_min_tx: Duration::from_secs(1),
        required_min_rx: Duration::from_secs(1),
        required_min_echo_rx: Duration::ZERO,
    }
}

/// Two sessions, `a` and `b`, and the time; a link that can be cut.
struct Wire {
    a: Session,
    b: Session,
    now: Instant,
    cut: bool,
    /// Echo packets are lost while control packets pass (the peer stopped forwarding).
    echo_cut: bool,
    echoes: Vec<(char, Instant)>,
    changes: Vec<(char, State, State, u8, Instant)>,
    sent: Vec<(char, Packet)>,
}

impl Wire {
    fn new(a: Timers, b: Timers) -> Wire {
        let now = Instant::now();
        Wire {
            a: Session::new(a, 0x0a, now),
            b: Session::new(b, 0x0b, now),
            now,
            cut: false,
            echo_cut: false,
            echoes: Vec::new(),
            changes: Vec::new(),
            sent: Vec::new(),
        }
    }

    fn deliver(&mut self, from: char, outputs: Vec<Output>) {
        for o in outputs {
            match o {
                Output::Changed { from: f, to, diag } => {
                    self.changes.push((from, f, to, diag, self.now))
                }
                // The peer's forwarding plane sends it straight back to its sender.
                Output::SendEcho => {
                    self.echoes.push((from, self.now));
                    if !self.cut && !self.echo_cut {
                        let sender = if from == 'a' {
                            &mut self.a
                        } else {
                            &mut self.b
                        };
                        sender.echo_returned(self.now);
                    }
                }
                Output::Send(p) => {
                    self.sent.push((from, p.clone()));
                    if self.cut {
                        continue;
                    }
                    let bytes = p.encode();
                    let p = Packet::decode(&bytes).expect("what we send decodes");
                    let (to, name) = if from == 'a' {
                        (&mut self.b, 'b')
                    } else {
                        (&mut self.a, 'a')
                    };
                    let replies = to.receive(&p, self.now);
                    self.deliver(name, replies);
                }
            }
        }
    }

    /// Advances the clock in 1 ms steps for `d`, running both machines' timers.
    fn run(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.now += Duration::from_millis(1);
            let now = self.now;
            let out = self.a.poll(now);
            self.deliver('a', out);
            let out = self.b.poll(now);
            self.deliver('b', out);
        }
    }
}

#[test]
fn three_way_handshake_then_poll_to_the_fast_rate() {
    let mut w = Wire::new(fast(), fast());
    w.run(Duration::from_secs(3));
    assert_eq!(
        (w.a.state(), w.b.state()),
        (State::Up, State::Up),
        "{:?}",
        w.changes
    );
    let side = |who: char| -> Vec<(State, State)> {
        w.changes
            .iter()
            .filter(|c| c.0 == who)
            .map(|c| (c.1, c.2))
            .collect()
    };
    // a speaks first: b answers Init, a goes Up on that, b on a's Up. No flap after.
    assert_eq!(side('a'), [(State::Down, State::Up)]);
    assert_eq!(
        side('b'),
        [(State::Down, State::Init), (State::Init, State::Up)]
    );
    // Before Up, nobody sends faster than once a second; once Up and polled, 100 ms less jitter.
    let before_up = w
        .sent
        .iter()
        .filter(|(_, p)| p.state != State::Up)
        .all(|(_, p)| p.desired_min_tx >= Duration::from_secs(1));
    assert!(before_up);
    let polls = w.sent.iter().filter(|(_, p)| p.poll).count();
    let finals = w.sent.iter().filter(|(_, p)| p.final_).count();
    assert!(polls >= 1 && finals >= 1, "polls {polls}, finals {finals}");
    assert!(
        w.sent.iter().all(|(_, p)| !(p.poll && p.final_)),
        "never P and F together"
    );
    let before = w.sent.len();
    w.run(Duration::from_secs(1));
    let per_side = (w.sent.len() - before) / 2;
    assert!(
        (9..=14).contains(&per_side),
        "about 10 packets a second each, got {per_side}"
    );
}

#[test]
fn silence_is_detected_within_the_detection_time_and_recovers() {
    let mut w = Wire::new(fast(), fast());
    w.run(Duration::from_secs(3));
    w.cut = true;
    let cut_at = w.now;
    w.changes.clear();
    w.run(Duration::from_millis(500));
    let down = w
        .changes
        .iter()
        .find(|c| c.0 == 'a' && c.2 == State::Down)
        .expect("a declares b down");
    assert_eq!(down.3, diag::DETECTION_TIME_EXPIRED);
    // 3 × 100 ms after b's last packet, which left at most one period before the cut.
    let after = down.4 - cut_at;
    assert!(
        after > Duration::from_millis(200) && after <= Duration::from_millis(300),
        "{after:?}"
    );
    // Reconnected, they come back up by themselves.
    w.cut = false;
    w.run(Duration::from_secs(4));
    assert_eq!((w.a.state(), w.b.state()), (State::Up, State::Up));
}

#[test]
fn a_peer_going_admin_down_brings_us_down_with_its_reason() {
    let mut w = Wire::new(fast(), fast());
    w.run(Duration::from_secs(3));
    let admin_down = Packet {
        diag: diag::ADMIN_DOWN,
        ..from_b(State::AdminDown, 0x0a)
    };
    let out = w.a.receive(&admin_down, w.now);
    assert!(out.contains(&Output::Changed {
        from: State::Up,
        to: State::Down,
        diag: diag::NEIGHBOR_SIGNALED_DOWN
    }));
}

#[test]
fn packets_for_someone_else_or_claiming_up_without_knowing_us_are_ignored() {
    let now = Instant::now();
    let mut s = Session::new(fast(), 0x0a, now);
    let mut p = from_b(State::Up, 0);
    assert!(
        s.receive(&p, now).is_empty(),
        "Up with your discriminator 0"
    );
    p.your_discriminator = 0x99;
    assert!(s.receive(&p, now).is_empty(), "not our discriminator");
    assert_eq!(s.state(), State::Down);
}

#[test]
fn a_passive_session_waits_for_the_peer() {
    let now = Instant::now();
    let mut s = Session::new(
        Timers {
            passive: true,
            ..fast()
        },
        0x0a,
        now,
    );
    assert!(
        s.poll(now + Duration::from_secs(5)).is_empty(),
        "silent until spoken to"
    );
    let mut w = Wire::new(
        Timers {
            passive: true,
            ..fast()
        },
        fast(),
    );
    w.run(Duration::from_secs(4));
    assert_eq!((w.a.state(), w.b.state()), (State::Up, State::Up));
}

#[test]
fn a_peer_asking_for_nothing_gets_nothing() {
    let now = Instant::now();
    let mut s = Session::new(fast(), 0x0a, now);
    let p = Packet {
        required_min_rx: Duration::ZERO,
        ..from_b(State::Down, 0)
    };
    let out = s.receive(&p, now);
    assert!(out.iter().all(|o| !matches!(o, Output::Send(_))), "{out:?}");
    assert!(
        s.poll(now + Duration::from_secs(5))
            .iter()
            .all(|o| !matches!(o, Output::Send(_)))
    );
}

#[test]
fn echo_runs_once_up_and_the_control_packets_slow_to_a_second() {
    let mut w = Wire::new(echoing(), echoing());
    w.run(Duration::from_secs(3));
    assert_eq!((w.a.state(), w.b.state()), (State::Up, State::Up));
    let first_up = w.changes.iter().map(|c| c.4).min().unwrap();
    assert!(
        w.echoes.iter().all(|(_, at)| *at >= first_up),
        "no echo before Up"
    );
    // Each side now asks for control packets at most once a second (RFC 5880 §6.8.3).
    let (sent, echoes) = (w.sent.len(), w.echoes.len());
    w.run(Duration::from_secs(3));
    let control = w.sent[sent..].iter().filter(|(who, _)| *who == 'b').count();
    assert!(
        (2..=5).contains(&control),
        "b sent {control} control packets in 3 s"
    );
    assert!(
        w.sent[sent..]
            .iter()
            .all(|(_, p)| p.required_min_rx >= Duration::from_secs(1)),
        "slow control while echo runs"
    );
    // Every 50 ms less up to a quarter: 60 to 80 echoes each in 3 s.
    let a_echoes = w.echoes[echoes..]
        .iter()
        .filter(|(who, _)| *who == 'a')
        .count();
    assert!(
        (60..=81).contains(&a_echoes),
        "a sent {a_echoes} echoes in 3 s"
    );
}

#[test]
fn lost_echoes_bring_the_session_down_within_echo_interval_times_multiplier() {
    let mut w = Wire::new(echoing(), echoing());
    w.run(Duration::from_secs(4));
    w.echo_cut = true;
    let cut_at = w.now;
    w.changes.clear();
    w.run(Duration::from_millis(400));
    let down = w
        .changes
        .iter()
        .find(|c| c.0 == 'a' && c.2 == State::Down)
        .expect("a declares the path down");
    assert_eq!(down.3, diag::ECHO_FUNCTION_FAILED);
    // 3 × 50 ms after the last echo came back, which left at most one period before the cut.
    let after = down.4 - cut_at;
    assert!(
        after > Duration::from_millis(100) && after <= Duration::from_millis(150),
        "{after:?}"
    );
}

#[test]
fn no_echo_toward_a_peer_that_does_not_loop_them_back() {
    let plain = fast();
    let mut w = Wire::new(echoing(), plain);
    w.run(Duration::from_secs(3));
    assert_eq!((w.a.state(), w.b.state()), (State::Up, State::Up));
    // a's would not come back; b has no echo interval of its own.
    assert!(w.echoes.is_empty(), "{} echoes", w.echoes.len());
    // Control stays at the fast rate: it is the only detection there is.
    let before = w.sent.len();
    w.run(Duration::from_secs(1));
    let per_side = (w.sent.len() - before) / 2;
    assert!((9..=14).contains(&per_side), "{per_side}");
}

#[test]
fn a_path_that_keeps_losing_echoes_is_held_down_longer_each_time() {
    let mut w = Wire::new(echoing(), echoing());
    w.run(Duration::from_secs(4));
    w.echo_cut = true;
    w.changes.clear();
    // Control packets still pass: only the hold-down keeps a from coming back Up at once.
    w.run(Duration::from_secs(12));
    let downs: Vec<Instant> = w
        .changes
        .iter()
        .filter(|c| c.0 == 'a' && c.2 == State::Down && c.3 == diag::ECHO_FUNCTION_FAILED)
        .map(|c| c.4)
        .collect();
    let gaps: Vec<Duration> = downs.windows(2).map(|d| d[1] - d[0]).collect();
    // Down for 2 s, then 4 s, then 8 s, each followed by a short Up whose echoes fail.
    assert!(downs.len() >= 3 && downs.len() <= 4, "{gaps:?}");
    assert!(
        gaps[0] >= Duration::from_secs(2) && gaps[0] < Duration::from_secs(4),
        "{gaps:?}"
    );
    assert!(
        gaps[1] >= Duration::from_secs(4) && gaps[1] < Duration::from_secs(6),
        "{gaps:?}"
    );
    // Mended, it comes back once the hold-down ends, and stays.
    w.echo_cut = false;
    w.run(Duration::from_secs(20));
    assert_eq!(w.a.state(), State::Up);
}
