//! What to send a peer: the difference between the routes it has (Adj-RIB-Out) and the
//! routes it should have, grouped so that prefixes sharing attributes share UPDATEs. Pure.

use crate::wire::{
    AFI_IPV4, AFI_IPV6, AsPathSegment, Attributes, Codec, NextHops, Origin, SAFI_UNICAST, Update,
    V4NextHop, pack_announcements, pack_withdrawals,
};
use ipnet::IpNet;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// The attributes a route carries beyond what the session decides (AS path, next hop).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RouteAttrs {
    /// RFC 1997 communities as `AA << 16 | NN`.
    pub communities: BTreeSet<u32>,
    pub large_communities: BTreeSet<[u32; 3]>,
    /// Sent on iBGP sessions only; unset means 100, the usual default.
    pub local_pref: Option<u32>,
    pub med: Option<u32>,
}

/// Prefix → attributes: what a peer should have, or has been sent.
pub type Rib = BTreeMap<IpNet, RouteAttrs>;

/// What the session contributes to every route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerContext {
    pub local_asn: u32,
    pub ibgp: bool,
    pub next_hops: NextHops,
    pub codec: Codec,
}

impl PeerContext {
    /// Whether a prefix can be announced on this session at all.
    pub fn carries(&self, prefix: &IpNet) -> bool {
        if prefix.addr().is_ipv4() {
            self.next_hops.v4.is_some()
        } else {
            !self.next_hops.v6.is_empty()
        }
    }

    fn attributes(&self, route: &RouteAttrs) -> Attributes {
        Attributes {
            origin: Some(Origin::Igp),
            as_path: Some(if self.ibgp {
                Vec::new()
            } else {
                vec![AsPathSegment::Sequence(vec![self.local_asn])]
            }),
            med: route.med,
            local_pref: self.ibgp.then(|| route.local_pref.unwrap_or(100)),
            communities: route.communities.iter().copied().collect(),
            large_communities: route.large_communities.iter().copied().collect(),
            ..Default::default()
        }
    }
}

/// Where a session from `local` points the routes of the families it negotiated: at its own
/// address for its own family. The other family (dualStackAddressFamily) gets, for IPv4
/// over IPv6, the IPv6 address itself once extended next hop is negotiated (RFC 8950), else
/// an IPv4 address of the same interface (`link`); for IPv6 over IPv4, a global IPv6
/// address of the interface, else the IPv4-mapped address, as FRR sends then. A session
/// from a link-local address (unnumbered) points at it and the interface's global address.
pub fn next_hops(
    local: IpAddr,
    link: &[IpAddr],
    families: &[(u16, u8)],
    extended: bool,
) -> NextHops {
    let has = |afi| families.contains(&(afi, SAFI_UNICAST));
    let v4_on_link = link.iter().find_map(|ip| match ip {
        IpAddr::V4(a) => Some(*a),
        IpAddr::V6(_) => None,
    });
    let v6_on_link = link
        .iter()
        .copied()
        .find(|ip| matches!(ip, IpAddr::V6(a) if !a.is_unicast_link_local()));
    let v6 = match local {
        // Unnumbered: the global address where the interface has one, with the link-local
        // beside it (RFC 2545 §3), else the link-local alone, which the router ties to the
        // interface the session runs on.
        IpAddr::V6(a) if a.is_unicast_link_local() => match v6_on_link {
            Some(global) => vec![global, local],
            None => vec![local],
        },
        IpAddr::V6(_) => vec![local],
        IpAddr::V4(a) => vec![v6_on_link.unwrap_or(IpAddr::V6(a.to_ipv6_mapped()))],
    };
    let v4 = match local {
        IpAddr::V4(a) => Some(V4NextHop::Ipv4(a)),
        IpAddr::V6(_) if extended => Some(V4NextHop::Ipv6(v6.clone())),
        IpAddr::V6(_) => v4_on_link.map(V4NextHop::Ipv4),
    };
    NextHops {
        v4: v4.filter(|_| has(AFI_IPV4)),
        v6: if has(AFI_IPV6) { v6 } else { Vec::new() },
    }
}

/// UPDATEs announcing every route of `rib` this session carries, grouped by attributes:
/// the whole table, for a session just established or a ROUTE-REFRESH.
pub fn announce_all(rib: &Rib, ctx: &PeerContext) -> Vec<Update> {
    let mut groups: BTreeMap<&RouteAttrs, Vec<IpNet>> = BTreeMap::new();
    for (prefix, attrs) in rib.iter().filter(|(p, _)| ctx.carries(p)) {
        groups.entry(attrs).or_default().push(*prefix);
    }
    pack(&[], groups, ctx)
}

/// A change to one prefix of a peer's routes: its new attributes, or `None` to withdraw it.
pub type Change = (IpNet, Option<RouteAttrs>);

/// UPDATEs that carry `changes` to a peer that has `sent`, counting only the prefixes this
/// session carries (a later change to a prefix wins): withdrawals first, then
/// announcements grouped by attributes. O(k log n) for k changes; `diff` gives the changes
/// between two whole tables.
pub fn changes(sent: &Rib, changes: &[Change], ctx: &PeerContext) -> Vec<Update> {
    let carried = changes
        .iter()
        .filter(|(p, _)| ctx.carries(p))
        .map(|(p, a)| (p, a.as_ref()));
    // A diff's changes are sorted with one per prefix already; others are put in order,
    // the latest change to a prefix winning.
    let last: Vec<(&IpNet, Option<&RouteAttrs>)> = if changes.windows(2).all(|w| w[0].0 < w[1].0) {
        carried.collect()
    } else {
        carried.collect::<BTreeMap<_, _>>().into_iter().collect()
    };
    let mut gone = Vec::new();
    let mut groups: BTreeMap<&RouteAttrs, Vec<IpNet>> = BTreeMap::new();
    for (prefix, new) in last {
        match (sent.get(prefix), new) {
            (Some(_), None) => gone.push(*prefix),
            (old, Some(attrs)) if old != Some(attrs) => {
                groups.entry(attrs).or_default().push(*prefix)
            }
            _ => {}
        }
    }
    pack(&gone, groups, ctx)
}

/// The changes that turn `old` into `new`: one merge walk over both.
pub fn diff(old: &Rib, new: &Rib) -> Vec<Change> {
    let mut out = Vec::new();
    let mut o = old.iter().peekable();
    let mut n = new.iter().peekable();
    loop {
        match (o.peek(), n.peek()) {
            (None, None) => return out,
            (Some((op, _)), Some((np, _))) if op < np => {
                out.push((**op, None));
                o.next();
            }
            (Some((op, oa)), Some((np, na))) if op == np => {
                if oa != na {
                    out.push((**np, Some((*na).clone())));
                }
                o.next();
                n.next();
            }
            (_, Some((np, na))) => {
                out.push((**np, Some((*na).clone())));
                n.next();
            }
            (Some((op, _)), None) => {
                out.push((**op, None));
                o.next();
            }
        }
    }
}

/// Applies one change to `rib`; true when it changed anything.
pub fn apply(rib: &mut Rib, prefix: &IpNet, attrs: Option<RouteAttrs>) -> bool {
    match attrs {
        Some(a) if rib.get(prefix) == Some(&a) => false,
        Some(a) => {
            rib.insert(*prefix, a);
            true
        }
        None => rib.remove(prefix).is_some(),
    }
}

/// Applies `changes` to `rib` in order (a later change to a prefix wins), telling
/// `changed` of each prefix that changed: whether the rib had it, and has it now. A few
/// changes go in one at a time; many go in by one merge into a new table, since k inserts
/// into a large table cost more than rebuilding it (100,000 inserts take tens of ms).
pub fn apply_all(
    rib: &mut Rib,
    mut changes: Vec<Change>,
    mut changed: impl FnMut(&IpNet, bool, bool),
) {
    if changes.len() <= rib.len() / 16 + 64 {
        for (prefix, attrs) in changes {
            let had = rib.contains_key(&prefix);
            let has = attrs.is_some();
            if apply(rib, &prefix, attrs) {
                changed(&prefix, had, has);
            }
        }
        return;
    }
    // Stable: of two changes to one prefix the later stays last, and is the one kept.
    changes.sort_by_key(|c| c.0);
    let mut latest: Vec<Change> = Vec::with_capacity(changes.len());
    for change in changes {
        match latest.last_mut() {
            Some(last) if last.0 == change.0 => *last = change,
            _ => latest.push(change),
        }
    }
    let mut old = std::mem::take(rib).into_iter().peekable();
    let mut merged = Vec::with_capacity(old.len() + latest.len());
    for (prefix, attrs) in latest {
        while let Some(kept) = old.next_if(|(p, _)| *p < prefix) {
            merged.push(kept);
        }
        let before = old.next_if(|(p, _)| *p == prefix).map(|(_, a)| a);
        if before != attrs {
            changed(&prefix, before.is_some(), attrs.is_some());
        }
        if let Some(a) = attrs {
            merged.push((prefix, a));
        }
    }
    merged.extend(old);
    *rib = merged.into_iter().collect();
}

/// Withdrawals first, then announcements grouped by attributes.
fn pack(
    gone: &[IpNet],
    groups: BTreeMap<&RouteAttrs, Vec<IpNet>>,
    ctx: &PeerContext,
) -> Vec<Update> {
    let mut out = pack_withdrawals(gone, &ctx.codec);
    for (attrs, prefixes) in groups {
        out.extend(pack_announcements(
            &ctx.attributes(attrs),
            &ctx.next_hops,
            &prefixes,
            &ctx.codec,
        ));
    }
    out
}

/// How many routes of `desired` this session carries.
pub fn carried_count(desired: &Rib, ctx: &PeerContext) -> usize {
    desired.keys().filter(|p| ctx.carries(p)).count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    #[test]
    fn next_hops_per_family_and_session() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let v4 = |s: &str| Some(V4NextHop::Ipv4(s.parse().unwrap()));
        let both = [(AFI_IPV4, SAFI_UNICAST), (AFI_IPV6, SAFI_UNICAST)];
        let link = [ip("fe80::11"), ip("2001:db8::11"), ip("192.0.2.11")];
        /// Local address, its interface's others, families, extended next hop, then the
        /// expected IPv4 and IPv6 next hops.
        type Case<'a> = (
            &'a str,
            &'a [IpAddr],
            &'a [(u16, u8)],
            bool,
            Option<V4NextHop>,
            Vec<IpAddr>,
            &'a str,
        );
        #[rustfmt::skip]
        let cases: [Case; 10] = [
            ("192.0.2.11", &link, &both[..1], false, v4("192.0.2.11"), vec![], "IPv4 only"),
            ("192.0.2.11", &link, &both, false, v4("192.0.2.11"), vec![ip("2001:db8::11")], "IPv6 over IPv4: the global address, never link-local"),
            ("192.0.2.11", &[ip("fe80::11")], &both, false, v4("192.0.2.11"), vec![ip("::ffff:192.0.2.11")], "no global IPv6: mapped"),
            ("2001:db8::11", &link, &both[1..], true, None, vec![ip("2001:db8::11")], "IPv6 only"),
            ("2001:db8::11", &link, &both, true, Some(V4NextHop::Ipv6(vec![ip("2001:db8::11")])), vec![ip("2001:db8::11")], "RFC 8950"),
            ("2001:db8::11", &link, &both, false, v4("192.0.2.11"), vec![ip("2001:db8::11")], "no extended next hop: the interface's IPv4"),
            ("2001:db8::11", &[], &both, false, None, vec![ip("2001:db8::11")], "no IPv4 to point at: not carried"),
            ("fe80::11", &[ip("2001:db8::11")], &both, true, Some(V4NextHop::Ipv6(vec![ip("2001:db8::11"), ip("fe80::11")])), vec![ip("2001:db8::11"), ip("fe80::11")], "unnumbered with a global address: both"),
            ("fe80::11", &[], &both, true, Some(V4NextHop::Ipv6(vec![ip("fe80::11")])), vec![ip("fe80::11")], "unnumbered, link-local only"),
            ("fe80::11", &[ip("192.0.2.11")], &both, false, v4("192.0.2.11"), vec![ip("fe80::11")], "link-local session without extended next hop: the interface's IPv4"),
        ];
        for (local, link, families, extended, want_v4, want_v6, case) in cases {
            let got = next_hops(ip(local), link, families, extended);
            assert_eq!((got.v4, got.v6), (want_v4, want_v6), "{case}");
        }
    }

    fn ctx(ibgp: bool) -> PeerContext {
        PeerContext {
            local_asn: 64513,
            ibgp,
            next_hops: NextHops {
                v4: Some(V4NextHop::Ipv4(Ipv4Addr::new(192, 0, 2, 2))),
                v6: Vec::new(),
            },
            codec: Codec::default(),
        }
    }

    fn rib(entries: &[(&str, Option<u32>)]) -> Rib {
        entries
            .iter()
            .map(|(p, lp)| {
                (
                    p.parse().unwrap(),
                    RouteAttrs {
                        local_pref: *lp,
                        ..Default::default()
                    },
                )
            })
            .collect()
    }

    #[test]
    fn local_pref_and_as_path_follow_the_session_type() {
        let route = RouteAttrs {
            local_pref: Some(250),
            ..Default::default()
        };
        let ebgp = ctx(false).attributes(&route);
        assert_eq!(
            (ebgp.local_pref, ebgp.as_path),
            (None, Some(vec![AsPathSegment::Sequence(vec![64513])]))
        );
        let ibgp = ctx(true).attributes(&route);
        assert_eq!(
            (ibgp.local_pref, ibgp.as_path),
            (Some(250), Some(Vec::new()))
        );
        assert_eq!(
            ctx(true).attributes(&RouteAttrs::default()).local_pref,
            Some(100)
        );
    }

    #[test]
    fn only_the_difference_is_sent() {
        let c = ctx(true);
        let sent = rib(&[
            ("198.51.100.1/32", None),
            ("198.51.100.2/32", None),
            ("198.51.100.3/32", Some(200)),
        ]);
        let desired = rib(&[
            ("198.51.100.1/32", None),
            ("198.51.100.3/32", Some(300)),
            ("198.51.100.4/32", Some(300)),
        ]);
        let batch = changes(&sent, &diff(&sent, &desired), &c);
        assert_eq!(
            batch.len(),
            2,
            "one withdrawal, one announcement for the two prefixes sharing attributes: {batch:?}"
        );
        assert_eq!(
            batch[0].withdrawn,
            vec!["198.51.100.2/32".parse::<IpNet>().unwrap()]
        );
        assert_eq!(
            batch[1].nlri,
            vec![
                "198.51.100.3/32".parse::<IpNet>().unwrap(),
                "198.51.100.4/32".parse().unwrap()
            ]
        );
        assert!(changes(&desired, &diff(&desired, &desired), &c).is_empty());
    }

    #[test]
    fn a_session_carries_only_families_it_has_a_next_hop_for() {
        let desired = rib(&[("198.51.100.1/32", None), ("2001:db8::1/128", None)]);
        assert_eq!(carried_count(&desired, &ctx(false)), 1);
        let batch = announce_all(&desired, &ctx(false));
        assert_eq!(
            batch.iter().map(|u| u.announced().count()).sum::<usize>(),
            1,
            "the IPv6 route is not sent"
        );
    }

    /// Prefixes from a small space, so that changes hit sent routes often.
    fn prefix() -> impl Strategy<Value = IpNet> {
        (0u8..24).prop_map(|i| format!("198.51.100.{i}/32").parse().unwrap())
    }

    fn attrs() -> impl Strategy<Value = Option<RouteAttrs>> {
        proptest::option::of((0u32..3).prop_map(|lp| RouteAttrs {
            local_pref: Some(lp),
            ..Default::default()
        }))
    }

    /// What a batch of UPDATEs leaves at a peer that had `start`.
    fn applied(start: &Rib, batch: &[Update]) -> BTreeMap<IpNet, Option<u32>> {
        let mut at: BTreeMap<IpNet, Option<u32>> =
            start.iter().map(|(p, a)| (*p, a.local_pref)).collect();
        for u in batch {
            for p in &u.withdrawn {
                at.remove(p);
            }
            for p in u.announced() {
                at.insert(*p, u.attributes.local_pref);
            }
        }
        at
    }

    proptest! {
        #[test]
        fn changes_leave_the_peer_with_the_changed_table_and_send_nothing_else(
            start in proptest::collection::btree_map(prefix(), attrs().prop_filter_map("some", |a| a), 0..16),
            batch in proptest::collection::vec((prefix(), attrs()), 0..16),
        ) {
            let c = ctx(true);
            let mut after = start.clone();
            for (p, a) in &batch {
                match a {
                    Some(a) => { after.insert(*p, a.clone()); }
                    None => { after.remove(p); }
                }
            }
            let incremental = changes(&start, &batch, &c);
            let want: BTreeMap<IpNet, Option<u32>> = after.iter().map(|(p, a)| (*p, a.local_pref)).collect();
            prop_assert_eq!(applied(&start, &incremental), want);
            // Nothing that did not change is sent again: one prefix per changed route.
            let sent = |b: &[Update]| b.iter().map(|u| u.withdrawn.len() + u.announced().count()).sum::<usize>();
            prop_assert_eq!(sent(&incremental), diff(&start, &after).len());
        }

        #[test]
        fn a_diff_applied_turns_the_old_table_into_the_new(
            old in proptest::collection::btree_map(prefix(), attrs().prop_filter_map("some", |a| a), 0..16),
            new in proptest::collection::btree_map(prefix(), attrs().prop_filter_map("some", |a| a), 0..16),
        ) {
            let mut at = old.clone();
            let diff = diff(&old, &new);
            for (p, a) in &diff {
                prop_assert!(apply(&mut at, p, a.clone()), "every change in a diff changes something");
            }
            prop_assert_eq!(at, new);
        }

        /// Both ways of applying a batch, one at a time and by merge, agree with each other
        /// and report the same changes.
        #[test]
        fn a_batch_applies_the_same_few_at_a_time_or_merged(
            start in proptest::collection::btree_map(prefix(), attrs().prop_filter_map("some", |a| a), 0..16),
            batch in proptest::collection::vec((prefix(), attrs()), 0..120),
        ) {
            let mut one_by_one = start.clone();
            let mut seen_one = Vec::new();
            for (p, a) in batch.clone() {
                let had = one_by_one.contains_key(&p);
                let has = a.is_some();
                if apply(&mut one_by_one, &p, a) {
                    seen_one.push((p, had, has));
                }
            }
            let mut merged = start.clone();
            let mut seen_merged = Vec::new();
            apply_all(&mut merged, batch, |p, had, has| seen_merged.push((*p, had, has)));
            prop_assert_eq!(&merged, &one_by_one);
            // Net effect per prefix: had at the start, has at the end.
            let net = |seen: &[(IpNet, bool, bool)]| {
                let mut m: BTreeMap<IpNet, (bool, bool)> = BTreeMap::new();
                for (p, had, has) in seen {
                    m.entry(*p).and_modify(|e| e.1 = *has).or_insert((*had, *has));
                }
                m.into_iter().filter(|(_, (a, b))| a != b).collect::<Vec<_>>()
            };
            prop_assert_eq!(net(&seen_merged), net(&seen_one));
        }
    }
}
