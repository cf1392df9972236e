//! One BFD session in Asynchronous mode (RFC 5880 §6.8): reception, state changes,
//! transmit and detection timers, and the Poll/Final sequence. Pure: the caller passes the
//! time, delivers packets, and sends what it is told to.

use crate::packet::{Packet, State, diag};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use std::time::{Duration, Instant};

/// Outside Up, packets go at most once a second (§6.8.3).
const SLOW: Duration = Duration::from_secs(1);

/// The local timers, as a BFDProfile gives them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timers {
    pub desired_min_tx: Duration,
    pub required_min_rx: Duration,
    pub detect_mult: u8,
    /// Send nothing until the peer has spoken (§6.1).
    pub passive: bool,
}

impl Default for Timers {
    /// FRR's defaults, which MetalLB's BFDProfile documents: 300 ms, 300 ms, 3.
    fn default() -> Self {
        Timers {
            desired_min_tx: Duration::from_millis(300),
            required_min_rx: Duration::from_millis(300),
            detect_mult: 3,
            passive: false,
        }
    }
}

/// What the caller must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    Send(Packet),
    Changed { from: State, to: State, diag: u8 },
}

#[derive(Debug)]
pub struct Session {
    timers: Timers,
    local_discriminator: u32,
    state: State,
    diag: u8,
    remote_discriminator: u32,
    remote_state: State,
    /// The peer's Required Min RX: the fastest it wants our packets; zero means none.
    remote_min_rx: Duration,
    remote_min_tx: Duration,
    remote_detect_mult: u8,
    /// A Poll sequence is running: our packets carry P until an F comes back.
    polling: bool,
    last_rx: Option<Instant>,
    next_tx: Instant,
    rng: SmallRng,
}

impl Session {
    pub fn new(timers: Timers, local_discriminator: u32, now: Instant) -> Session {
        Session {
            timers,
            local_discriminator,
            state: State::Down,
            diag: diag::NONE,
            remote_discriminator: 0,
            remote_state: State::Down,
            // §6.8.1: initialised to 1 µs, so the first packets are not held back.
            remote_min_rx: Duration::from_micros(1),
            remote_min_tx: Duration::ZERO,
            remote_detect_mult: 0,
            polling: false,
            last_rx: None,
            next_tx: now,
            rng: SmallRng::seed_from_u64(u64::from(local_discriminator)),
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// The state the peer last said it was in.
    pub fn remote_state(&self) -> State {
        self.remote_state
    }

    pub fn local_discriminator(&self) -> u32 {
        self.local_discriminator
    }

    /// New local timers take effect through a Poll sequence when the session is Up.
    pub fn set_timers(&mut self, timers: Timers, now: Instant) {
        if timers == self.timers {
            return;
        }
        self.timers = timers;
        if self.state == State::Up {
            self.polling = true;
        }
        self.hurry(now);
    }

    /// The Desired Min TX we advertise: the configured one when Up, else at least 1 s.
    fn advertised_min_tx(&self) -> Duration {
        if self.state == State::Up {
            self.timers.desired_min_tx
        } else {
            self.timers.desired_min_tx.max(SLOW)
        }
    }

    /// How long without a packet before the peer is declared down (§6.8.4).
    fn detection_time(&self) -> Duration {
        self.timers.required_min_rx.max(self.remote_min_tx) * u32::from(self.remote_detect_mult)
    }

    fn detection_deadline(&self) -> Option<Instant> {
        matches!(self.state, State::Init | State::Up)
            .then_some(())
            .and(self.last_rx)
            .map(|at| at + self.detection_time())
    }

    fn may_send(&self) -> bool {
        !self.remote_min_rx.is_zero() && (!self.timers.passive || self.remote_discriminator != 0)
    }

    /// When `poll` next has something to do.
    pub fn next_deadline(&self) -> Instant {
        let tx = self.may_send().then_some(self.next_tx);
        [tx, self.detection_deadline()]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(self.next_tx + SLOW)
    }

    fn packet(&self, final_: bool) -> Packet {
        Packet {
            diag: self.diag,
            state: self.state,
            poll: self.polling && !final_,
            final_,
            control_plane_independent: false,
            demand: false,
            detect_mult: self.timers.detect_mult,
            my_discriminator: self.local_discriminator,
            your_discriminator: self.remote_discriminator,
            desired_min_tx: self.advertised_min_tx(),
            required_min_rx: self.timers.required_min_rx,
            required_min_echo_rx: Duration::ZERO,
        }
    }

    /// The next periodic transmission: the slower of our rate and what the peer accepts,
    /// less up to a quarter for jitter (up to 25 % less, and at least 10 % less with a
    /// multiplier of 1, §6.8.7).
    fn schedule(&mut self, now: Instant) {
        self.next_tx = now + self.jittered_period();
    }

    fn jittered_period(&mut self) -> Duration {
        let period = self.advertised_min_tx().max(self.remote_min_rx);
        let top = if self.timers.detect_mult == 1 {
            0.9
        } else {
            1.0
        };
        period.mul_f64(self.rng.random_range(0.75..top))
    }

    /// After a change that can speed up our packets (a state or timer change, or the peer
    /// accepting more), the next one is due no later than a new period from now: the peer
    /// times us out by the rate we now advertise.
    fn hurry(&mut self, now: Instant) {
        let sooner = now + self.jittered_period();
        self.next_tx = self.next_tx.min(sooner);
    }

    fn go(&mut self, to: State, diag: u8, out: &mut Vec<Output>) {
        if self.state == to {
            return;
        }
        let from = self.state;
        self.state = to;
        self.diag = diag;
        if to == State::Up && self.timers.desired_min_tx < SLOW {
            // Leaving the slow pre-Up rate is a timer change the peer must acknowledge.
            self.polling = true;
        }
        out.push(Output::Changed { from, to, diag });
    }

    /// A packet arrived from the peer (already decoded, so the context-free checks passed).
    pub fn receive(&mut self, p: &Packet, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        if p.your_discriminator == 0 && !matches!(p.state, State::Down | State::AdminDown) {
            return out;
        }
        if p.your_discriminator != 0 && p.your_discriminator != self.local_discriminator {
            return out;
        }
        self.remote_discriminator = p.my_discriminator;
        self.remote_state = p.state;
        self.remote_min_tx = p.desired_min_tx;
        self.remote_detect_mult = p.detect_mult;
        if p.required_min_rx != self.remote_min_rx {
            self.remote_min_rx = p.required_min_rx;
            self.hurry(now);
        }
        if p.final_ {
            self.polling = false;
        }
        self.last_rx = Some(now);
        if self.state == State::AdminDown {
            return out;
        }
        match (self.state, p.state) {
            (State::Init | State::Up, State::AdminDown) | (State::Up, State::Down) => {
                self.go(State::Down, diag::NEIGHBOR_SIGNALED_DOWN, &mut out)
            }
            (State::Down, State::Down) => self.go(State::Init, diag::NONE, &mut out),
            (State::Down, State::Init) | (State::Init, State::Init | State::Up) => {
                self.go(State::Up, diag::NONE, &mut out)
            }
            _ => {}
        }
        let changed = out.iter().any(|o| matches!(o, Output::Changed { .. }));
        if changed {
            self.hurry(now);
        }
        if p.poll {
            out.push(Output::Send(self.packet(true)));
        } else if changed && self.may_send() {
            // Tell the peer about our new state at once rather than at the next period.
            out.push(Output::Send(self.packet(false)));
            self.schedule(now);
        }
        out
    }

    /// Runs the timers due at `now`: detection, then the periodic packet.
    pub fn poll(&mut self, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        if self.detection_deadline().is_some_and(|at| now >= at) {
            self.go(State::Down, diag::DETECTION_TIME_EXPIRED, &mut out);
            self.remote_discriminator = 0;
            self.remote_state = State::Down;
            self.polling = false;
        }
        if self.may_send() && now >= self.next_tx {
            out.push(Output::Send(self.packet(false)));
            self.schedule(now);
        }
        out
    }
}
