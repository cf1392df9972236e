//! A passive BGP receiver: accepts sessions, learns what peers announce, and renders it in
//! the shape of a router's `show ip bgp`, so users can check what the cluster announces
//! before touching the real router.

use crate::connection::{Connection, Input};
use crate::session::{Action, PeerAs, Session, SessionConfig};
use crate::wire::{AFI_IPV4, AFI_IPV6, AsPathSegment, Origin, SAFI_UNICAST, Update};
use ipnet::IpNet;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// One peer's path to a prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Path {
    pub next_hop: Option<IpAddr>,
    pub as_path: Vec<AsPathSegment>,
    pub origin: Option<Origin>,
    pub med: Option<u32>,
    pub local_pref: Option<u32>,
    pub communities: Vec<u32>,
    pub large_communities: Vec<[u32; 3]>,
}

/// Prefix → peer → path.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Table {
    pub routes: BTreeMap<IpNet, BTreeMap<IpAddr, Path>>,
}

impl Table {
    /// Applies one UPDATE from `peer`.
    pub fn apply(&mut self, peer: IpAddr, update: &Update) {
        for prefix in update.withdrawn_all() {
            if let Some(paths) = self.routes.get_mut(prefix) {
                paths.remove(&peer);
                if paths.is_empty() {
                    self.routes.remove(prefix);
                }
            }
        }
        let a = &update.attributes;
        let base = Path {
            next_hop: None,
            as_path: a.as_path.clone().unwrap_or_default(),
            origin: a.origin,
            med: a.med,
            local_pref: a.local_pref,
            communities: a.communities.clone(),
            large_communities: a.large_communities.clone(),
        };
        for prefix in &update.nlri {
            let path = Path {
                next_hop: a.next_hop.map(IpAddr::V4),
                ..base.clone()
            };
            self.routes.entry(*prefix).or_default().insert(peer, path);
        }
        if let Some(reach) = &a.mp_reach {
            for prefix in &reach.nlri {
                let path = Path {
                    next_hop: reach.next_hops.first().copied(),
                    ..base.clone()
                };
                self.routes.entry(*prefix).or_default().insert(peer, path);
            }
        }
    }

    /// A peer's session ended: its routes go.
    pub fn forget(&mut self, peer: IpAddr) {
        self.routes.retain(|_, paths| {
            paths.remove(&peer);
            !paths.is_empty()
        });
    }

    /// The table as a router prints it. Equal paths from several peers are all valid (`*`);
    /// the first is marked best (`>`), the others multipath (`=`).
    pub fn render(&self, router_id: Ipv4Addr) -> String {
        let mut out = format!(
            "BGP table, local router ID is {router_id}\nStatus codes: * valid, > best, = multipath\nOrigin codes: i - IGP, e - EGP, ? - incomplete\n\n"
        );
        let _ = writeln!(
            out,
            "   {:<24} {:<24} {:>6} {:>6}  {:<20} Communities",
            "Network", "Next Hop", "Metric", "LocPrf", "Path"
        );
        for (prefix, paths) in &self.routes {
            for (i, path) in paths.values().enumerate() {
                let status = if i == 0 { "*>" } else { "*=" };
                let next_hop = path
                    .next_hop
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| "-".into());
                let metric = path.med.map(|m| m.to_string()).unwrap_or_default();
                let local_pref = path.local_pref.map(|m| m.to_string()).unwrap_or_default();
                let mut as_path: Vec<String> = path
                    .as_path
                    .iter()
                    .map(|s| match s {
                        AsPathSegment::Sequence(asns) => asns
                            .iter()
                            .map(u32::to_string)
                            .collect::<Vec<_>>()
                            .join(" "),
                        AsPathSegment::Set(asns) => format!(
                            "{{{}}}",
                            asns.iter()
                                .map(u32::to_string)
                                .collect::<Vec<_>>()
                                .join(",")
                        ),
                    })
                    .collect();
                as_path.push(match path.origin {
                    Some(Origin::Igp) => "i".into(),
                    Some(Origin::Egp) => "e".into(),
                    Some(Origin::Incomplete) | None => "?".into(),
                });
                let communities: Vec<String> = path
                    .communities
                    .iter()
                    .map(|c| format!("{}:{}", c >> 16, c & 0xffff))
                    .chain(
                        path.large_communities
                            .iter()
                            .map(|[g, a, b]| format!("{g}:{a}:{b}")),
                    )
                    .collect();
                let _ = writeln!(
                    out,
                    "{status} {:<24} {:<24} {:>6} {:>6}  {:<20} {}",
                    prefix.to_string(),
                    next_hop,
                    metric,
                    local_pref,
                    as_path.join(" "),
                    communities.join(" ")
                );
            }
        }
        let _ = writeln!(out, "\nTotal number of prefixes {}", self.routes.len());
        out
    }
}

/// Who may connect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    pub local_asn: u32,
    pub router_id: Ipv4Addr,
    /// Expected peers with their AS (None: take it from the OPEN); empty accepts anyone.
    pub peers: Vec<(IpAddr, Option<u32>)>,
    pub hold_time: u16,
}

/// What the looking glass reports as it runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Established {
        peer: IpAddr,
        asn: u32,
    },
    Down {
        peer: IpAddr,
        reason: String,
    },
    /// The table changed; here it is, rendered.
    Table(String),
}

/// Accepts sessions forever, sending events to `events`.
pub async fn serve(listener: TcpListener, options: Options, events: mpsc::UnboundedSender<Event>) {
    let table = Arc::new(Mutex::new(Table::default()));
    loop {
        let Ok((stream, from)) = listener.accept().await else {
            continue;
        };
        let peer = from.ip().to_canonical();
        let allowed = options.peers.is_empty() || options.peers.iter().any(|(a, _)| *a == peer);
        if !allowed {
            let _ = events.send(Event::Down {
                peer,
                reason: "not a configured peer; connection refused".into(),
            });
            continue;
        }
        let asn = options
            .peers
            .iter()
            .find(|(a, _)| *a == peer)
            .and_then(|(_, asn)| *asn);
        tokio::spawn(receive(
            stream,
            peer,
            asn,
            options.clone(),
            table.clone(),
            events.clone(),
        ));
    }
}

async fn receive(
    stream: TcpStream,
    peer: IpAddr,
    peer_asn: Option<u32>,
    options: Options,
    table: Arc<Mutex<Table>>,
    events: mpsc::UnboundedSender<Event>,
) {
    let mut session = Session::new(SessionConfig {
        local_asn: options.local_asn,
        peer_asn: peer_asn.map_or(PeerAs::Any, PeerAs::Is),
        router_id: options.router_id,
        hold_time: options.hold_time,
        keepalive: None,
        families: vec![(AFI_IPV4, SAFI_UNICAST), (AFI_IPV6, SAFI_UNICAST)],
        graceful_restart: None,
        // A receiver takes IPv4 routes with IPv6 next hops from speakers that send them.
        extended_next_hop: true,
    });
    let mut conn = Connection::new(stream);
    let mut actions = session.connected(Instant::now());
    loop {
        let mut out = Vec::new();
        let mut changed = false;
        for action in actions.drain(..) {
            match action {
                Action::Send(bytes) => out.extend(bytes),
                Action::Established { peer: open } => {
                    let _ = events.send(Event::Established {
                        peer,
                        asn: open.asn,
                    });
                }
                Action::Received(update) => {
                    if let Ok(mut t) = table.lock() {
                        t.apply(peer, &update);
                        changed = true;
                    }
                }
                // The looking glass announces nothing, so a refresh has nothing to resend.
                Action::RouteRefresh { .. } => {}
                Action::Close { reason, .. } => {
                    let _ = conn.write(&out).await;
                    finish(peer, reason, &options, &table, &events);
                    return;
                }
            }
        }
        if !conn.write(&out).await {
            finish(peer, "connection lost".into(), &options, &table, &events);
            return;
        }
        if changed {
            render(&options, &table, &events);
        }
        actions = match conn.next(session.next_deadline()).await {
            Input::Received(bytes) => session.received(bytes, Instant::now()),
            Input::Tick => session.tick(Instant::now()),
            Input::Closed => {
                finish(
                    peer,
                    "the peer closed the connection".into(),
                    &options,
                    &table,
                    &events,
                );
                return;
            }
        };
    }
}

fn finish(
    peer: IpAddr,
    reason: String,
    options: &Options,
    table: &Mutex<Table>,
    events: &mpsc::UnboundedSender<Event>,
) {
    let _ = events.send(Event::Down { peer, reason });
    if let Ok(mut t) = table.lock() {
        t.forget(peer);
    }
    render(options, table, events);
}

fn render(options: &Options, table: &Mutex<Table>, events: &mpsc::UnboundedSender<Event>) {
    if let Ok(t) = table.lock() {
        let _ = events.send(Event::Table(t.render(options.router_id)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Attributes, MpReach};

    #[test]
    fn renders_like_show_ip_bgp_with_multipath() {
        let mut t = Table::default();
        let attrs = Attributes {
            origin: Some(Origin::Igp),
            as_path: Some(vec![AsPathSegment::Sequence(vec![64513])]),
            next_hop: Some(Ipv4Addr::new(192, 0, 2, 2)),
            communities: vec![64512 << 16 | 100],
            ..Default::default()
        };
        let prefix: IpNet = "198.51.100.32/32".parse().unwrap();
        t.apply(
            "192.0.2.2".parse().unwrap(),
            &Update {
                attributes: attrs.clone(),
                nlri: vec![prefix],
                ..Default::default()
            },
        );
        let second = Attributes {
            next_hop: Some(Ipv4Addr::new(192, 0, 2, 3)),
            ..attrs.clone()
        };
        t.apply(
            "192.0.2.3".parse().unwrap(),
            &Update {
                attributes: second,
                nlri: vec![prefix],
                ..Default::default()
            },
        );
        let v6 = Attributes {
            next_hop: None,
            mp_reach: Some(MpReach {
                afi: 2,
                safi: 1,
                next_hops: vec!["2001:db8::2".parse().unwrap()],
                nlri: vec!["2001:db8:100::32/128".parse().unwrap()],
            }),
            ..attrs
        };
        t.apply(
            "2001:db8::2".parse().unwrap(),
            &Update {
                attributes: v6,
                ..Default::default()
            },
        );
        let text = t.render(Ipv4Addr::new(192, 0, 2, 1));
        let lines: Vec<&str> = text.lines().filter(|l| l.starts_with('*')).collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(
            lines[0].starts_with("*> 198.51.100.32/32")
                && lines[0].contains("192.0.2.2")
                && lines[0].contains("64513 i")
                && lines[0].contains("64512:100"),
            "{text}"
        );
        assert!(
            lines[1].starts_with("*= 198.51.100.32/32") && lines[1].contains("192.0.2.3"),
            "{text}"
        );
        assert!(
            lines[2].contains("2001:db8:100::32/128") && lines[2].contains("2001:db8::2"),
            "{text}"
        );
        assert!(text.contains("Total number of prefixes 2"));

        t.apply(
            "192.0.2.2".parse().unwrap(),
            &Update {
                withdrawn: vec![prefix],
                ..Default::default()
            },
        );
        t.forget("2001:db8::2".parse().unwrap());
        let text = t.render(Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(
            text.lines().filter(|l| l.starts_with('*')).count(),
            1,
            "{text}"
        );
    }
}
