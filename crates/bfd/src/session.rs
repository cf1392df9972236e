//! One BFD session in Asynchronous mode (RFC 5880 §6.8): reception, state changes,
//! transmit and detection timers, the Poll/Final sequence, and the Echo function (§6.4,
//! §6.8.9). Pure: the caller passes the time, delivers packets and returned echoes, and
//! sends what it is told to.

use crate::packet::{Packet, State, diag};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use std::time::{Duration, Instant};

/// Outside Up, packets go at most once a second (§6.8.3).
const SLOW: Duration = Duration::from_secs(1);
/// After the Echo function fails, the session stays Down this long before it may come Up
/// again, doubling (up to `HOLD_DOWN_MAX`) while failures follow each other within a
/// minute. A forwarding plane that stays broken while the peer's control plane answers
/// would otherwise bring the session Up and down again every few hundred milliseconds, and
/// BGP with it: the dampening routers apply to BFD.
const HOLD_DOWN: Duration = Duration::from_secs(2);
const HOLD_DOWN_MAX: Duration = Duration::from_secs(60);
const HOLD_DOWN_MEMORY: Duration = Duration::from_secs(60);

/// The local timers, as a BFDProfile gives them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timers {
    pub desired_min_tx: Duration,
    pub required_min_rx: Duration,
    pub detect_mult: u8,
    /// Send nothing until the peer has spoken (§6.1).
    pub passive: bool,
    /// The Echo function's transmit interval; `None` runs without it.
    pub echo: Option<Duration>,
    /// Our Required Min Echo RX Interval: how fast this host's forwarding plane may be sent
    /// the peer's echoes; zero asks for none.
    pub echo_rx: Duration,
}

impl Default for Timers {
    /// FRR's defaults, which MetalLB's BFDProfile documents: 300 ms, 300 ms, 3.
    fn default() -> Self {
        Timers {
            desired_min_tx: Duration::from_millis(300),
            required_min_rx: Duration::from_millis(300),
            detect_mult: 3,
            passive: false,
            echo: None,
            echo_rx: Duration::ZERO,
        }
    }
}

/// What the caller must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    Send(Packet),
    /// Send one Echo packet: to ourselves, through the peer's forwarding plane.
    SendEcho,
    Changed {
        from: State,
        to: State,
        diag: u8,
    },
}

/// The Echo function while it runs: when the next echo goes, and when one last came back.
#[derive(Clone, Copy, Debug)]
struct Echo {
    next_tx: Instant,
    last_rx: Instant,
}

/// The last echo failure: when, and how long it holds the session Down.
#[derive(Clone, Copy, Debug)]
struct HoldDown {
    at: Instant,
    length: Duration,
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
    /// The peer's Required Min Echo RX: zero when it does not loop echoes back.
    remote_min_echo_rx: Duration,
    echo: Option<Echo>,
    hold_down: Option<HoldDown>,
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
            remote_min_echo_rx: Duration::ZERO,
            echo: None,
            hold_down: None,
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
        self.follow_echo(now);
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

    /// The Required Min RX we advertise: while echoes detect failures, control packets
    /// need come only once a second (§6.8.3).
    fn advertised_min_rx(&self) -> Duration {
        if self.echo.is_some() {
            self.timers.required_min_rx.max(SLOW)
        } else {
            self.timers.required_min_rx
        }
    }

    /// How long without a packet before the peer is declared down (§6.8.4).
    fn detection_time(&self) -> Duration {
        self.advertised_min_rx().max(self.remote_min_tx) * u32::from(self.remote_detect_mult)
    }

    /// The echo interval: ours, or slower if the peer asks (§6.8.9).
    fn echo_interval(&self) -> Duration {
        self.timers
            .echo
            .unwrap_or_default()
            .max(self.remote_min_echo_rx)
    }

    /// When the path is declared down for want of returned echoes: our multiplier times
    /// the echo interval after the last one came back.
    fn echo_deadline(&self) -> Option<Instant> {
        let e = self.echo?;
        Some(e.last_rx + self.echo_interval() * u32::from(self.timers.detect_mult))
    }

    /// Starts or stops the Echo function: it runs while Up, wanted here, and looped back
    /// by the peer (a nonzero Required Min Echo RX, §6.8.9).
    fn follow_echo(&mut self, now: Instant) {
        let wanted = self.state == State::Up
            && self.timers.echo.is_some()
            && !self.remote_min_echo_rx.is_zero();
        if wanted == self.echo.is_some() {
            return;
        }
        self.echo = wanted.then_some(Echo {
            next_tx: now,
            last_rx: now,
        });
        // Our Required Min RX moves with it: a timer change the peer must acknowledge.
        self.polling = true;
    }

    /// Whether an echo failure still holds the session Down.
    fn held_down(&self, now: Instant) -> bool {
        self.hold_down
            .is_some_and(|h| now.duration_since(h.at) < h.length)
    }

    /// One of our Echo packets came back.
    pub fn echo_returned(&mut self, now: Instant) {
        if let Some(e) = &mut self.echo {
            e.last_rx = now;
        }
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
        let echo_tx = self.echo.map(|e| e.next_tx);
        [tx, self.detection_deadline(), echo_tx, self.echo_deadline()]
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
            required_min_rx: self.advertised_min_rx(),
            required_min_echo_rx: self.timers.echo_rx,
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
        self.jittered(period)
    }

    fn jittered(&mut self, period: Duration) -> Duration {
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
        if to != State::Up {
            self.echo = None;
        }
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
        self.remote_min_echo_rx = p.required_min_echo_rx;
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
            (State::Down, _) if self.held_down(now) => {}
            (State::Down, State::Down) => self.go(State::Init, diag::NONE, &mut out),
            (State::Down, State::Init) | (State::Init, State::Init | State::Up) => {
                self.go(State::Up, diag::NONE, &mut out)
            }
            _ => {}
        }
        self.follow_echo(now);
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

    /// Runs the timers due at `now`: detection, then the periodic packet and echo.
    pub fn poll(&mut self, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        if self.echo_deadline().is_some_and(|at| now >= at) {
            self.go(State::Down, diag::ECHO_FUNCTION_FAILED, &mut out);
            let length = match self.hold_down {
                Some(h) if now.duration_since(h.at) < h.length + HOLD_DOWN_MEMORY => {
                    (h.length * 2).min(HOLD_DOWN_MAX)
                }
                _ => HOLD_DOWN,
            };
            self.hold_down = Some(HoldDown { at: now, length });
            // The peer still hears us: tell it now rather than at the next slow period.
            if self.may_send() {
                out.push(Output::Send(self.packet(false)));
                self.schedule(now);
            }
        }
        if self.echo.is_some_and(|e| now >= e.next_tx) {
            let period = self.jittered(self.echo_interval());
            if let Some(e) = &mut self.echo {
                e.next_tx = now + period;
            }
            out.push(Output::SendEcho);
        }
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
