//! One BGP session as a sans-IO state machine (RFC 4271 §8): the caller feeds it connection
//! events, received bytes and the clock, and performs the actions it returns. Timers are
//! deadlines the caller sleeps until, so tests can drive time by hand.

use crate::wire::{
    self, Capability, Codec, DecodeError, MAX_EXTENDED_LEN, Message, Notification, Open, Update,
};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

/// RFC 4271's large hold time while waiting for the peer's OPEN.
const OPEN_WAIT: Duration = Duration::from_secs(240);

/// The AS a peer must speak from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerAs {
    Is(u32),
    /// MetalLB's `dynamicASN: internal`: whatever the OPEN says, as long as it is ours.
    Internal,
    /// `dynamicASN: external`: whatever the OPEN says, as long as it is not ours.
    External,
    /// Any AS (the looking glass takes it from the peer's OPEN).
    Any,
}

impl PeerAs {
    /// Why a peer speaking from `asn` is not this one, if it is not.
    fn refuses(self, asn: u32, local: u32) -> Option<String> {
        match self {
            PeerAs::Is(want) if asn != want => {
                Some(format!("peer AS {asn} is not the configured {want}"))
            }
            PeerAs::Internal if asn != local => Some(format!(
                "peer AS {asn} is not ours ({local}), which dynamicASN internal requires"
            )),
            PeerAs::External if asn == local => Some(format!(
                "peer AS {asn} is ours, and dynamicASN external requires another"
            )),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionConfig {
    pub local_asn: u32,
    pub peer_asn: PeerAs,
    pub router_id: Ipv4Addr,
    /// Proposed hold time in seconds; 0 disables keepalives.
    pub hold_time: u16,
    /// Keepalive interval; `None` means a third of the negotiated hold time, which also caps
    /// it when the peer offers a shorter hold time than ours.
    pub keepalive: Option<Duration>,
    /// Address families to offer, as (AFI, SAFI).
    pub families: Vec<(u16, u8)>,
    /// Offer graceful restart with this restart time (seconds).
    pub graceful_restart: Option<u16>,
    /// Offer to take and send IPv4 unicast routes with IPv6 next hops (RFC 8950): for IPv6
    /// sessions that carry IPv4 too.
    pub extended_next_hop: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Idle,
    OpenSent,
    OpenConfirm,
    Established,
}

/// What the caller must do.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    Send(Vec<u8>),
    /// The session is up; `peer` is the peer's OPEN.
    Established {
        peer: Open,
    },
    /// An UPDATE arrived (already sanitised per RFC 7606).
    Received(Box<Update>),
    /// The peer asked for everything it was sent in this negotiated family again
    /// (ROUTE-REFRESH, RFC 2918 §4).
    RouteRefresh {
        afi: u16,
        safi: u8,
    },
    /// Close the connection; `reason` says why (and whether a NOTIFICATION was sent).
    Close {
        reason: String,
        peer_notification: Option<Notification>,
    },
}

/// Messages of one direction, by type, as FRR counts them for MetalLB's metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KindCounts {
    pub opens: u64,
    pub updates: u64,
    pub keepalives: u64,
    pub notifications: u64,
    pub route_refreshes: u64,
}

impl KindCounts {
    fn count(&mut self, message: &Message) {
        let counter = match message {
            Message::Open(_) => &mut self.opens,
            Message::Update(_) => &mut self.updates,
            Message::Keepalive => &mut self.keepalives,
            Message::Notification(_) => &mut self.notifications,
            Message::RouteRefresh { .. } => &mut self.route_refreshes,
        };
        *counter += 1;
    }

    pub fn total(&self) -> u64 {
        self.opens + self.updates + self.keepalives + self.notifications + self.route_refreshes
    }
}

impl std::ops::Add for KindCounts {
    type Output = KindCounts;
    fn add(self, o: KindCounts) -> KindCounts {
        KindCounts {
            opens: self.opens + o.opens,
            updates: self.updates + o.updates,
            keepalives: self.keepalives + o.keepalives,
            notifications: self.notifications + o.notifications,
            route_refreshes: self.route_refreshes + o.route_refreshes,
        }
    }
}

/// Every message a session sent and received.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MessageCounts {
    pub sent: KindCounts,
    pub received: KindCounts,
}

impl std::ops::Add for MessageCounts {
    type Output = MessageCounts;
    fn add(self, o: MessageCounts) -> MessageCounts {
        MessageCounts {
            sent: self.sent + o.sent,
            received: self.received + o.received,
        }
    }
}

pub struct Session {
    config: SessionConfig,
    counts: MessageCounts,
    state: State,
    codec: Codec,
    buffer: Vec<u8>,
    peer: Option<Open>,
    hold: Duration,
    keepalive: Duration,
    hold_deadline: Option<Instant>,
    keepalive_deadline: Option<Instant>,
}

impl Session {
    pub fn new(config: SessionConfig) -> Self {
        Session {
            config,
            counts: MessageCounts::default(),
            state: State::Idle,
            codec: Codec::default(),
            buffer: Vec::new(),
            peer: None,
            hold: Duration::ZERO,
            keepalive: Duration::ZERO,
            hold_deadline: None,
            keepalive_deadline: None,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// The messages sent and received so far on this connection.
    pub fn counts(&self) -> MessageCounts {
        self.counts
    }

    /// Encodes a message to send, counting it.
    fn encode(&mut self, message: &Message) -> Vec<u8> {
        self.counts.sent.count(message);
        wire::encode(message, &self.codec)
    }

    pub fn codec(&self) -> Codec {
        self.codec
    }

    pub fn peer(&self) -> Option<&Open> {
        self.peer.as_ref()
    }

    /// The address families both sides announced; a peer that announces none speaks IPv4
    /// unicast only (RFC 4760 §8).
    /// Whether both sides offered IPv4 unicast with IPv6 next hops (RFC 8950 §4).
    pub fn extended_next_hop(&self) -> bool {
        self.config.extended_next_hop && self.peer.as_ref().is_some_and(Open::extended_next_hop_v4)
    }

    pub fn negotiated_families(&self) -> Vec<(u16, u8)> {
        let Some(peer) = &self.peer else {
            return Vec::new();
        };
        let theirs = peer.families();
        let theirs = if theirs.is_empty() {
            vec![(wire::AFI_IPV4, wire::SAFI_UNICAST)]
        } else {
            theirs
        };
        self.config
            .families
            .iter()
            .filter(|f| theirs.contains(f))
            .copied()
            .collect()
    }

    /// The connection is up: send our OPEN.
    pub fn connected(&mut self, now: Instant) -> Vec<Action> {
        self.state = State::OpenSent;
        self.buffer.clear();
        self.hold_deadline = Some(now + OPEN_WAIT);
        let open = Message::Open(self.open());
        vec![Action::Send(self.encode(&open))]
    }

    fn open(&self) -> Open {
        let mut capabilities: Vec<Capability> = self
            .config
            .families
            .iter()
            .map(|(afi, safi)| Capability::MultiProtocol {
                afi: *afi,
                safi: *safi,
            })
            .collect();
        capabilities.push(Capability::RouteRefresh);
        capabilities.push(Capability::FourOctetAs(self.config.local_asn));
        capabilities.push(Capability::ExtendedMessage);
        if self.config.extended_next_hop {
            capabilities.push(Capability::ExtendedNextHop(vec![(
                wire::AFI_IPV4,
                u16::from(wire::SAFI_UNICAST),
                wire::AFI_IPV6,
            )]));
        }
        if let Some(restart_time) = self.config.graceful_restart {
            capabilities.push(Capability::GracefulRestart {
                restarting: false,
                restart_time,
                families: self
                    .config
                    .families
                    .iter()
                    .map(|(afi, safi)| (*afi, *safi, false))
                    .collect(),
            });
        }
        Open {
            asn: self.config.local_asn,
            hold_time: self.config.hold_time,
            router_id: self.config.router_id,
            capabilities,
        }
    }

    /// Bytes from the peer.
    pub fn received(&mut self, data: &[u8], now: Instant) -> Vec<Action> {
        self.buffer.extend_from_slice(data);
        let mut actions = Vec::new();
        loop {
            match wire::decode(&self.buffer, &self.codec) {
                Ok(None) => break,
                Ok(Some((message, used))) => {
                    self.buffer.drain(..used);
                    self.counts.received.count(&message);
                    // Any message proves the peer alive. Until OPENs are exchanged the hold
                    // time is zero and the OPEN wait set on connecting stays.
                    if !self.hold.is_zero() {
                        self.hold_deadline = Some(now + self.hold);
                    }
                    self.handle(message, now, &mut actions);
                }
                Err(e) => {
                    self.fail(e, &mut actions);
                }
            }
            if self.state == State::Idle {
                break;
            }
        }
        actions
    }

    fn handle(&mut self, message: Message, now: Instant, actions: &mut Vec<Action>) {
        match (self.state, message) {
            (_, Message::Notification(n)) => {
                self.state = State::Idle;
                actions.push(Action::Close {
                    reason: format!("peer sent NOTIFICATION {n}"),
                    peer_notification: Some(n),
                });
            }
            (State::OpenSent, Message::Open(open)) => self.open_received(open, now, actions),
            (State::OpenConfirm, Message::Keepalive) => {
                self.state = State::Established;
                if let Some(peer) = self.peer.clone() {
                    actions.push(Action::Established { peer });
                }
            }
            (State::Established, Message::Keepalive) => {}
            // A family that was not negotiated is ignored (RFC 2918 §4).
            (State::Established, Message::RouteRefresh { afi, safi }) => {
                if self.negotiated_families().contains(&(afi, safi)) {
                    actions.push(Action::RouteRefresh { afi, safi });
                }
            }
            (State::Established, Message::Update(update)) => {
                actions.push(Action::Received(Box::new(update)))
            }
            (state, other) => {
                let kind = match other {
                    Message::Open(_) => "OPEN",
                    Message::Update(_) => "UPDATE",
                    Message::Keepalive => "KEEPALIVE",
                    Message::RouteRefresh { .. } => "ROUTE-REFRESH",
                    Message::Notification(_) => "NOTIFICATION",
                };
                let subcode = match state {
                    State::OpenSent => 1,
                    State::OpenConfirm => 2,
                    _ => 3,
                };
                self.fail(
                    DecodeError {
                        notification: Notification::new(5, subcode, Vec::new()),
                        reason: format!("unexpected {kind} in {state:?}"),
                    },
                    actions,
                );
            }
        }
    }

    fn open_received(&mut self, open: Open, now: Instant, actions: &mut Vec<Action>) {
        if let Some(reason) = self
            .config
            .peer_asn
            .refuses(open.asn, self.config.local_asn)
        {
            let data = u16::try_from(open.asn)
                .unwrap_or(wire::AS_TRANS as u16)
                .to_be_bytes()
                .to_vec();
            self.fail(
                DecodeError {
                    notification: Notification::new(2, 2, data),
                    reason,
                },
                actions,
            );
            return;
        }
        if open.router_id == self.config.router_id && open.asn == self.config.local_asn {
            self.fail(
                DecodeError {
                    notification: Notification::new(2, 3, Vec::new()),
                    reason: "the peer uses our own BGP identifier".to_string(),
                },
                actions,
            );
            return;
        }
        let extended = open.has(&Capability::ExtendedMessage);
        self.codec = Codec {
            four_octet_as: open.four_octet_as().is_some(),
            max_len: if extended {
                MAX_EXTENDED_LEN
            } else {
                wire::MAX_LEN
            },
        };
        let hold = open.hold_time.min(self.config.hold_time);
        self.hold = Duration::from_secs(u64::from(hold));
        self.keepalive = match (hold, self.config.keepalive) {
            (0, _) => Duration::ZERO,
            // RFC 4271 §4.4 and §10: a third of the hold time the peer agreed to, at most.
            (_, Some(k)) => k.min(self.hold / 3),
            (_, None) => self.hold / 3,
        };
        self.peer = Some(open);
        self.state = State::OpenConfirm;
        self.hold_deadline = (!self.hold.is_zero()).then(|| now + self.hold);
        actions.push(Action::Send(self.encode(&Message::Keepalive)));
        self.keepalive_deadline = (!self.keepalive.is_zero()).then(|| now + self.keepalive);
    }

    /// Sends a NOTIFICATION for `error` and closes.
    fn fail(&mut self, error: DecodeError, actions: &mut Vec<Action>) {
        let notification = Message::Notification(error.notification.clone());
        actions.push(Action::Send(self.encode(&notification)));
        actions.push(Action::Close {
            reason: format!("sent NOTIFICATION {}: {}", error.notification, error.reason),
            peer_notification: None,
        });
        self.state = State::Idle;
        self.buffer.clear();
    }

    /// The earliest moment `tick` has work to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        [self.hold_deadline, self.keepalive_deadline]
            .into_iter()
            .flatten()
            .min()
    }

    /// Fires due timers: a KEEPALIVE, or the hold timer's NOTIFICATION.
    pub fn tick(&mut self, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        if self.state == State::Idle {
            return actions;
        }
        if self.hold_deadline.is_some_and(|d| now >= d) {
            self.fail(
                DecodeError {
                    notification: Notification::hold_timer_expired(),
                    reason: format!(
                        "nothing heard for {:?}",
                        self.hold.max(Duration::from_secs(1))
                    ),
                },
                &mut actions,
            );
            return actions;
        }
        if matches!(self.state, State::OpenConfirm | State::Established)
            && self.keepalive_deadline.is_some_and(|d| now >= d)
        {
            actions.push(Action::Send(self.encode(&Message::Keepalive)));
            self.keepalive_deadline = Some(now + self.keepalive);
        }
        actions
    }

    /// Encodes an UPDATE for the established session; sending it also counts as a keepalive.
    pub fn update(&mut self, update: &Update, now: Instant) -> Vec<u8> {
        if !self.keepalive.is_zero() {
            self.keepalive_deadline = Some(now + self.keepalive);
        }
        self.encode(&Message::Update(update.clone()))
    }

    /// The NOTIFICATION that ends the session on purpose (Cease / Administrative Shutdown).
    pub fn shutdown(&mut self) -> Vec<u8> {
        self.state = State::Idle;
        self.encode(&Message::Notification(Notification::admin_shutdown()))
    }
}
