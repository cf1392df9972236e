//! The speaker's metrics under MetalLB's names, types and labels, so existing dashboards and
//! alerts keep working: those of MetalLB's native speaker (`{peer}`), and those its FRR mode
//! adds for the message and BFD counters (`{peer, vrf}`; ironlb has only the default VRF).
//! Every series is read from the engines' own figures on each refresh.

use ironlb_bfd::driver::{Counts as BfdCounts, States as BfdStates};
use ironlb_bgp::session::MessageCounts;
use ironlb_bgp::speaker::PeerStatus;
use ironlb_l2::responder::Counts;
use ironlb_plan::ServiceKey;
use ironlb_plan::announce::Announcement;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeerLabel {
    peer: String,
}

/// FRR mode's labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VrfLabel {
    peer: String,
    vrf: &'static str,
}

impl VrfLabel {
    fn new(peer: String) -> VrfLabel {
        VrfLabel {
            peer,
            vrf: "default",
        }
    }
}

/// The layer-2 counters' label, as MetalLB's.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IpLabel {
    ip: String,
}

/// MetalLB's `metallb_speaker_announced` labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AnnouncedLabel {
    service: String,
    protocol: &'static str,
    node: String,
    ip: String,
}

/// One family: its name, help, whether MetalLB declares it a counter, and how to read it.
type Spec<T> = (&'static str, &'static str, bool, Read<T>);

const PEER: [Spec<PeerStatus>; 4] = [
    (
        "metallb_bgp_session_up",
        "BGP session state (1 is up, 0 is down)",
        false,
        |s| u64::from(s.established),
    ),
    (
        "metallb_bgp_announced_prefixes_total",
        "Number of prefixes currently being advertised on the BGP session",
        false,
        |s| s.prefixes_sent as u64,
    ),
    (
        "metallb_bgp_updates_total",
        "Number of BGP UPDATE messages sent",
        true,
        |s| s.messages.sent.updates,
    ),
    // Every change is sent at once: nothing ever waits.
    (
        "metallb_bgp_pending_prefixes_total",
        "Number of prefixes that should be advertised on the BGP session",
        false,
        |_| 0,
    ),
];

const MESSAGES: [Spec<MessageCounts>; 9] = [
    (
        "metallb_bgp_opens_sent",
        "Number of BGP open messages sent",
        true,
        |m| m.sent.opens,
    ),
    (
        "metallb_bgp_opens_received",
        "Number of BGP open messages received",
        true,
        |m| m.received.opens,
    ),
    (
        "metallb_bgp_notifications_sent",
        "Number of BGP notification messages sent",
        true,
        |m| m.sent.notifications,
    ),
    (
        "metallb_bgp_updates_total_received",
        "Number of BGP UPDATE messages received",
        true,
        |m| m.received.updates,
    ),
    (
        "metallb_bgp_keepalives_sent",
        "Number of BGP keepalive messages sent",
        true,
        |m| m.sent.keepalives,
    ),
    (
        "metallb_bgp_keepalives_received",
        "Number of BGP keepalive messages received",
        true,
        |m| m.received.keepalives,
    ),
    (
        "metallb_bgp_route_refresh_sent",
        "Number of BGP route refresh messages sent",
        true,
        |m| m.sent.route_refreshes,
    ),
    (
        "metallb_bgp_total_sent",
        "Number of total BGP messages sent",
        true,
        |m| m.sent.total(),
    ),
    (
        "metallb_bgp_total_received",
        "Number of total BGP messages received",
        true,
        |m| m.received.total(),
    ),
];

const LAYER2: [Spec<Counts>; 3] = [
    (
        "metallb_layer2_requests_received",
        "Number of layer 2 requests received for owned IPs",
        true,
        |c| c.requests_received,
    ),
    (
        "metallb_layer2_responses_sent",
        "Number of layer 2 responses sent for owned IPs",
        true,
        |c| c.responses_sent,
    ),
    (
        "metallb_layer2_gratuitous_sent",
        "Number of gratuitous layer 2 packets sent for owned IPs",
        true,
        |c| c.gratuitous_sent,
    ),
];

/// FRR's counters, which MetalLB exports.
const BFD: [Spec<BfdCounts>; 6] = [
    (
        "metallb_bfd_control_packet_input",
        "Number of received BFD control packets",
        true,
        |c| c.control_received,
    ),
    (
        "metallb_bfd_control_packet_output",
        "Number of sent BFD control packets",
        true,
        |c| c.control_sent,
    ),
    (
        "metallb_bfd_echo_packet_input",
        "Number of received BFD echo packets",
        true,
        |c| c.echo_received,
    ),
    (
        "metallb_bfd_echo_packet_output",
        "Number of sent BFD echo packets",
        true,
        |c| c.echo_sent,
    ),
    (
        "metallb_bfd_session_up_events",
        "Number of BFD session up events",
        true,
        |c| c.up_events,
    ),
    (
        "metallb_bfd_session_down_events",
        "Number of BFD session down events",
        true,
        |c| c.down_events,
    ),
];

/// How a family reads its figure from the engines' value.
type Read<T> = fn(&T) -> u64;

/// The families of one table, registered.
struct Table<T, L> {
    families: Vec<(Read<T>, Family<L, Gauge>)>,
}

impl<T, L> Table<T, L>
where
    L: EncodeLabelSet + Clone + Eq + std::hash::Hash + std::fmt::Debug + Send + Sync + 'static,
{
    fn register(
        registry: &mut Registry,
        specs: &[Spec<T>],
        counters: &mut Vec<&'static str>,
    ) -> Self {
        let families = specs
            .iter()
            .map(|(name, help, counter, read)| {
                if *counter {
                    counters.push(name);
                }
                let family = Family::<L, Gauge>::default();
                registry.register(*name, *help, family.clone());
                (*read, family)
            })
            .collect();
        Table { families }
    }

    /// Replaces every series with `values`' figures; labels not among them lose theirs.
    fn set<'a>(&self, values: impl IntoIterator<Item = (L, &'a T)> + Clone)
    where
        T: 'a,
    {
        for (read, family) in &self.families {
            family.clear();
            for (label, value) in values.clone() {
                family
                    .get_or_create(&label)
                    .set(i64::try_from(read(value)).unwrap_or(i64::MAX));
            }
        }
    }
}

#[derive(Clone)]
pub struct SpeakerMetrics {
    inner: Arc<Inner>,
    /// The status writer's updates and errors.
    pub client: ironlb_kube::metrics::ClientMetrics,
}

struct Inner {
    registry: Registry,
    counters: Vec<&'static str>,
    peer: Table<PeerStatus, PeerLabel>,
    messages: Table<MessageCounts, VrfLabel>,
    layer2: Table<Counts, IpLabel>,
    bfd: Table<BfdCounts, VrfLabel>,
    bfd_up: Family<VrfLabel, Gauge>,
    announced: Family<AnnouncedLabel, Gauge>,
    /// What `announced` holds series for, to change only what changed; shared with the plan
    /// that made them.
    last_announced: Mutex<BTreeMap<ServiceKey, Arc<Announcement>>>,
}

impl Default for SpeakerMetrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let mut counters = ironlb_kube::metrics::ClientMetrics::COUNTERS.to_vec();
        let peer = Table::register(&mut registry, &PEER, &mut counters);
        let messages = Table::register(&mut registry, &MESSAGES, &mut counters);
        let layer2 = Table::register(&mut registry, &LAYER2, &mut counters);
        let bfd = Table::register(&mut registry, &BFD, &mut counters);
        let bfd_up = Family::<VrfLabel, Gauge>::default();
        registry.register(
            "metallb_bfd_session_up",
            "BFD session state (1 is up, 0 is down)",
            bfd_up.clone(),
        );
        let announced = Family::<AnnouncedLabel, Gauge>::default();
        registry.register(
            "metallb_speaker_announced",
            "Services being announced from this node (desired state, not confirmation)",
            announced.clone(),
        );
        let client = ironlb_kube::metrics::ClientMetrics::default();
        client.register(&mut registry);
        SpeakerMetrics {
            inner: Arc::new(Inner {
                registry,
                counters,
                peer,
                messages,
                layer2,
                bfd,
                bfd_up,
                announced,
                last_announced: Mutex::default(),
            }),
            client,
        }
    }
}

impl SpeakerMetrics {
    /// Replaces every series with the engines' current figures (peers keyed by their
    /// `address:port` label); peers and interfaces that went away lose theirs.
    pub fn refresh(&self, peers: &BTreeMap<String, PeerStatus>, l2: &BTreeMap<IpAddr, Counts>) {
        let m = &self.inner;
        m.peer.set(
            peers
                .iter()
                .map(|(p, s)| (PeerLabel { peer: p.clone() }, s)),
        );
        m.messages.set(
            peers
                .iter()
                .map(|(p, s)| (VrfLabel::new(p.clone()), &s.messages)),
        );
        m.layer2
            .set(l2.iter().map(|(ip, c)| (IpLabel { ip: ip.to_string() }, c)));
    }

    /// Each BFD session's state and counts, labelled by the peer's address as MetalLB's FRR
    /// mode does.
    pub fn set_bfd(&self, states: &BfdStates, counts: &BTreeMap<IpAddr, BfdCounts>) {
        let m = &self.inner;
        m.bfd_up.clear();
        for (peer, state) in states {
            let up = state.state == ironlb_bfd::packet::State::Up;
            m.bfd_up
                .get_or_create(&VrfLabel::new(peer.to_string()))
                .set(i64::from(up));
        }
        m.bfd.set(
            counts
                .iter()
                .map(|(ip, c)| (VrfLabel::new(ip.to_string()), c)),
        );
    }

    /// What this node means to announce, one series per (Service, protocol, IP). Only the
    /// `changed` Services (the plan's `changes`) touch the series: a pass over ten thousand
    /// Services formats no label for the ones that stayed.
    pub fn set_announced(
        &self,
        node: &str,
        announced: &BTreeMap<ServiceKey, Arc<Announcement>>,
        changed: &BTreeSet<ServiceKey>,
    ) {
        let family = &self.inner.announced;
        let mut last = self.inner.last_announced.lock().expect("not poisoned");
        for service in changed {
            let now = announced.get(service);
            if last.get(service) == now {
                continue;
            }
            if let Some(was) = last.remove(service) {
                for label in announced_labels(node, service, &was) {
                    family.remove(&label);
                }
            }
            if let Some(a) = now {
                for label in announced_labels(node, service, a) {
                    family.get_or_create(&label).set(1);
                }
                last.insert(service.clone(), Arc::clone(a));
            }
        }
    }

    /// The text exposition, as MetalLB's.
    pub fn encode(&self) -> String {
        ironlb_kube::metrics::encode(&self.inner.registry, &self.inner.counters)
    }
}

/// The series one Service's announcement makes: one per protocol it goes out on, per IP.
fn announced_labels<'a>(
    node: &'a str,
    service: &'a ServiceKey,
    a: &'a Announcement,
) -> impl Iterator<Item = AnnouncedLabel> + 'a {
    let protocols = [
        (!a.peers.is_empty()).then_some("bgp"),
        a.layer2.is_some().then_some("layer2"),
    ];
    protocols.into_iter().flatten().flat_map(move |protocol| {
        a.ips.iter().map(move |ip| AnnouncedLabel {
            service: service.to_string(),
            protocol,
            node: node.to_string(),
            ip: ip.to_string(),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironlb_bgp::session::KindCounts;

    #[test]
    fn names_types_and_labels_match_metallb() {
        let m = SpeakerMetrics::default();
        let sent = KindCounts {
            opens: 1,
            updates: 5,
            keepalives: 3,
            ..KindCounts::default()
        };
        let peers = BTreeMap::from([(
            "192.0.2.1:179".to_string(),
            PeerStatus {
                established: true,
                prefixes_sent: 2,
                messages: MessageCounts {
                    sent,
                    received: KindCounts {
                        opens: 1,
                        keepalives: 4,
                        ..KindCounts::default()
                    },
                },
                ..PeerStatus::default()
            },
        )]);
        let counts = Counts {
            requests_received: 2,
            responses_sent: 2,
            gratuitous_sent: 4,
        };
        m.refresh(
            &peers,
            &BTreeMap::from([("192.0.2.130".parse().unwrap(), counts)]),
        );
        let bfd = BfdCounts {
            control_received: 7,
            control_sent: 8,
            up_events: 1,
            down_events: 0,
            echo_received: 30,
            echo_sent: 31,
        };
        let gw: IpAddr = "192.0.2.1".parse().unwrap();
        m.set_bfd(
            &BTreeMap::from([(gw, ironlb_bfd::driver::PeerState::down())]),
            &BTreeMap::from([(gw, bfd)]),
        );
        let web = Arc::new(Announcement {
            ips: vec!["198.51.100.32".parse().unwrap()],
            peers: vec!["gw".to_string()],
            layer2: None,
            uid: None,
        });
        let web_key = ServiceKey::new("default", "web");
        m.set_announced(
            "node1",
            &BTreeMap::from([(web_key.clone(), web)]),
            &BTreeSet::from([web_key]),
        );
        let text = m.encode();
        for line in [
            "# TYPE metallb_bgp_session_up gauge",
            "metallb_bgp_session_up{peer=\"192.0.2.1:179\"} 1",
            "metallb_bgp_announced_prefixes_total{peer=\"192.0.2.1:179\"} 2",
            "# TYPE metallb_bgp_updates_total counter",
            "metallb_bgp_updates_total{peer=\"192.0.2.1:179\"} 5",
            "metallb_bgp_pending_prefixes_total{peer=\"192.0.2.1:179\"} 0",
            "# TYPE metallb_bgp_opens_sent counter",
            "metallb_bgp_opens_sent{peer=\"192.0.2.1:179\",vrf=\"default\"} 1",
            "metallb_bgp_keepalives_received{peer=\"192.0.2.1:179\",vrf=\"default\"} 4",
            "metallb_bgp_total_sent{peer=\"192.0.2.1:179\",vrf=\"default\"} 9",
            "metallb_bgp_total_received{peer=\"192.0.2.1:179\",vrf=\"default\"} 5",
            "# TYPE metallb_layer2_requests_received counter",
            "metallb_layer2_requests_received{ip=\"192.0.2.130\"} 2",
            "metallb_layer2_responses_sent{ip=\"192.0.2.130\"} 2",
            "metallb_layer2_gratuitous_sent{ip=\"192.0.2.130\"} 4",
            "metallb_bfd_session_up{peer=\"192.0.2.1\",vrf=\"default\"} 0",
            "# TYPE metallb_bfd_control_packet_input counter",
            "metallb_bfd_control_packet_input{peer=\"192.0.2.1\",vrf=\"default\"} 7",
            "metallb_bfd_session_up_events{peer=\"192.0.2.1\",vrf=\"default\"} 1",
            "metallb_bfd_echo_packet_input{peer=\"192.0.2.1\",vrf=\"default\"} 30",
            "metallb_bfd_echo_packet_output{peer=\"192.0.2.1\",vrf=\"default\"} 31",
            "metallb_speaker_announced{service=\"default/web\",protocol=\"bgp\",node=\"node1\",ip=\"198.51.100.32\"} 1",
            "# TYPE metallb_k8s_client_updates_total counter",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in:\n{text}"
            );
        }
        assert!(!text.contains("# EOF"), "{text}");
        m.refresh(&BTreeMap::new(), &BTreeMap::new());
        assert!(
            !m.encode().contains("192.0.2.1:179"),
            "a removed peer loses its series"
        );
    }

    #[test]
    fn announced_series_follow_each_change_of_the_announcements() {
        let m = SpeakerMetrics::default();
        let a = |ip: &str, bgp: bool, l2: bool| {
            Arc::new(Announcement {
                ips: vec![ip.parse().unwrap()],
                peers: if bgp {
                    vec!["gw".to_string()]
                } else {
                    Vec::new()
                },
                layer2: l2.then(Default::default),
                uid: None,
            })
        };
        let key = |name: &str| ServiceKey::new("default", name);
        let series = |m: &SpeakerMetrics| -> Vec<String> {
            let text = m.encode();
            let mut lines: Vec<String> = text
                .lines()
                .filter(|l| l.starts_with("metallb_speaker_announced{"))
                .map(str::to_string)
                .collect();
            lines.sort();
            lines
        };
        let keys = |names: &[&str]| names.iter().map(|n| key(n)).collect::<BTreeSet<_>>();
        m.set_announced(
            "node1",
            &BTreeMap::from([
                (key("kept"), a("192.0.2.10", true, false)),
                (key("moved"), a("192.0.2.11", true, false)),
                (key("gone"), a("192.0.2.12", false, true)),
            ]),
            &keys(&["kept", "moved", "gone"]),
        );
        assert_eq!(series(&m).len(), 3);
        m.set_announced(
            "node1",
            &BTreeMap::from([
                (key("kept"), a("192.0.2.10", true, false)),
                (key("moved"), a("192.0.2.21", true, true)),
            ]),
            &keys(&["moved", "gone"]),
        );
        let line = |svc: &str, protocol: &str, ip: &str| {
            format!(
                "metallb_speaker_announced{{service=\"default/{svc}\",protocol=\"{protocol}\",node=\"node1\",ip=\"{ip}\"}} 1"
            )
        };
        let mut want = vec![
            line("kept", "bgp", "192.0.2.10"),
            line("moved", "bgp", "192.0.2.21"),
            line("moved", "layer2", "192.0.2.21"),
        ];
        want.sort();
        assert_eq!(series(&m), want);
    }
}
