//! The speaker's metrics under MetalLB's names, so existing dashboards keep working. They are
//! gauges read from the engines' own counters; as OpenMetrics counters they would gain a
//! `_total` suffix and stop matching MetalLB's names.

use ironlb_bgp::speaker::PeerStatus;
use ironlb_l2::responder::Counts;
use ironlb_plan::announce::Announcement;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeerLabel {
    peer: String,
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

type PerPeer = Family<PeerLabel, Gauge>;
type PerIp = Family<IpLabel, Gauge>;

#[derive(Clone)]
pub struct SpeakerMetrics {
    registry: Arc<Registry>,
    session_up: PerPeer,
    announced: PerPeer,
    updates: PerPeer,
    requests: PerIp,
    responses: PerIp,
    gratuitous: PerIp,
    speaker_announced: Family<AnnouncedLabel, Gauge>,
    bfd_up: PerPeer,
    /// The status writer's updates and errors.
    pub client: ironlb_kube::metrics::ClientMetrics,
}

impl Default for SpeakerMetrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let session_up = register(
            &mut registry,
            "metallb_bgp_session_up",
            "BGP session state (1 is up, 0 is down)",
        );
        let announced = register(
            &mut registry,
            "metallb_bgp_announced_prefixes_total",
            "Number of prefixes currently being advertised on the BGP session",
        );
        let updates = register(
            &mut registry,
            "metallb_bgp_updates_total",
            "Number of BGP UPDATE messages sent",
        );
        let requests = register(
            &mut registry,
            "metallb_layer2_requests_received",
            "Number of layer 2 requests received for owned IPs",
        );
        let responses = register(
            &mut registry,
            "metallb_layer2_responses_sent",
            "Number of layer 2 responses sent for owned IPs",
        );
        let gratuitous = register(
            &mut registry,
            "metallb_layer2_gratuitous_sent",
            "Number of gratuitous layer 2 packets sent for owned IPs",
        );
        let speaker_announced = register(
            &mut registry,
            "metallb_speaker_announced",
            "Services being announced from this node (desired state, not confirmation)",
        );
        let bfd_up = register(
            &mut registry,
            "metallb_bfd_session_up",
            "BFD session state (1 is up, 0 is down)",
        );
        let client = ironlb_kube::metrics::ClientMetrics::default();
        client.register(&mut registry);
        SpeakerMetrics {
            client,
            speaker_announced,
            bfd_up,
            registry: Arc::new(registry),
            session_up,
            announced,
            updates,
            requests,
            responses,
            gratuitous,
        }
    }
}

fn register<L>(registry: &mut Registry, name: &str, help: &str) -> Family<L, Gauge>
where
    L: EncodeLabelSet + Clone + Eq + std::hash::Hash + std::fmt::Debug + Send + Sync + 'static,
{
    let family = Family::<L, Gauge>::default();
    registry.register(name, help, family.clone());
    family
}

impl SpeakerMetrics {
    /// Replaces every series with the engines' current figures (peers keyed by their
    /// `address:port` label); peers and interfaces that went away lose theirs.
    pub fn refresh(&self, peers: &BTreeMap<String, PeerStatus>, l2: &BTreeMap<IpAddr, Counts>) {
        for f in [&self.session_up, &self.announced, &self.updates] {
            f.clear();
        }
        for (peer, s) in peers {
            let label = PeerLabel { peer: peer.clone() };
            self.session_up
                .get_or_create(&label)
                .set(i64::from(s.established));
            self.announced
                .get_or_create(&label)
                .set(i64::try_from(s.prefixes_sent).unwrap_or(i64::MAX));
            self.updates
                .get_or_create(&label)
                .set(i64::try_from(s.updates_sent).unwrap_or(i64::MAX));
        }
        for f in [&self.requests, &self.responses, &self.gratuitous] {
            f.clear();
        }
        let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        for (ip, c) in l2 {
            let label = IpLabel { ip: ip.to_string() };
            self.requests
                .get_or_create(&label)
                .set(gauge(c.requests_received));
            self.responses
                .get_or_create(&label)
                .set(gauge(c.responses_sent));
            self.gratuitous
                .get_or_create(&label)
                .set(gauge(c.gratuitous_sent));
        }
    }

    /// Each BFD session's state, labelled by the peer's address as MetalLB's FRR mode does.
    pub fn set_bfd(&self, states: &ironlb_bfd::driver::States) {
        self.bfd_up.clear();
        for (peer, state) in states {
            let label = PeerLabel {
                peer: peer.to_string(),
            };
            let up = state.state == ironlb_bfd::packet::State::Up;
            self.bfd_up.get_or_create(&label).set(i64::from(up));
        }
    }

    /// What this node means to announce, one series per (Service, protocol, IP).
    pub fn set_announced(&self, node: &str, announced: &BTreeMap<String, Announcement>) {
        self.speaker_announced.clear();
        for (service, a) in announced {
            let protocols = [
                (!a.peers.is_empty()).then_some("bgp"),
                a.layer2.is_some().then_some("layer2"),
            ];
            for protocol in protocols.into_iter().flatten() {
                for ip in &a.ips {
                    let label = AnnouncedLabel {
                        service: service.clone(),
                        protocol,
                        node: node.to_string(),
                        ip: ip.to_string(),
                    };
                    self.speaker_announced.get_or_create(&label).set(1);
                }
            }
        }
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        ironlb_kube::metrics::encode(&self.registry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_labels_match_metallb() {
        let m = SpeakerMetrics::default();
        let peers = BTreeMap::from([(
            "192.0.2.1:179".to_string(),
            PeerStatus {
                established: true,
                prefixes_sent: 2,
                updates_sent: 5,
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
        let web = Announcement {
            ips: vec!["198.51.100.32".parse().unwrap()],
            peers: ["gw".to_string()].into(),
            layer2: None,
        };
        m.set_announced("node1", &BTreeMap::from([("default/web".to_string(), web)]));
        let text = m.encode();
        for line in [
            "metallb_bgp_session_up{peer=\"192.0.2.1:179\"} 1",
            "metallb_bgp_announced_prefixes_total{peer=\"192.0.2.1:179\"} 2",
            "metallb_bgp_updates_total{peer=\"192.0.2.1:179\"} 5",
            "metallb_layer2_requests_received{ip=\"192.0.2.130\"} 2",
            "metallb_layer2_responses_sent{ip=\"192.0.2.130\"} 2",
            "metallb_layer2_gratuitous_sent{ip=\"192.0.2.130\"} 4",
            "metallb_speaker_announced{service=\"default/web\",protocol=\"bgp\",node=\"node1\",ip=\"198.51.100.32\"} 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in:\n{text}"
            );
        }
        m.refresh(&BTreeMap::new(), &BTreeMap::new());
        assert!(
            !m.encode().contains("192.0.2.1"),
            "a removed peer loses its series"
        );
    }
}
