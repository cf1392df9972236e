//! The speaker against real BIRD 2, FRR 8 and GoBGP 3; what each learned is read with its
//! own CLI.

mod common;
use common::*;
use std::collections::BTreeMap;

/// eBGP: a /32 and a /128 arrive with next hop, AS path, communities and large communities,
/// and are withdrawn.
fn ebgp_routes(tag: &str, daemon: Daemon, expect_v4: &[&str], expect_v6: &[&str]) {
    if !ready(&programs(daemon)) {
        return;
    }
    let lab = lab(tag, daemon, RouterSide::default());
    let peers = vec![
        peer("gw4", "192.0.2.1", 64513, 64512),
        peer("gw6", "2001:db8::1", 64513, 64512),
    ];
    let (expect_v4, expect_v6): (Vec<String>, Vec<String>) = (
        expect_v4.iter().map(|s| s.to_string()).collect(),
        expect_v6.iter().map(|s| s.to_string()).collect(),
    );
    with_speaker(&lab, peers, move |speaker, router| {
        let tagged = attrs(&[64512 << 16 | 100], &[[64512, 1, 2]], None);
        speaker.set_routes(BTreeMap::from([
            (
                "gw4".to_string(),
                rib(&[("198.51.100.32/32", tagged.clone())]),
            ),
            ("gw6".to_string(), rib(&[("2001:db8:100::32/128", tagged)])),
        ]));
        let v4 = router.has("198.51.100.32/32", speaker);
        for want in &expect_v4 {
            assert!(v4.contains(want.as_str()), "missing {want:?} in:\n{v4}");
        }
        let v6 = router.has("2001:db8:100::32/128", speaker);
        for want in &expect_v6 {
            assert!(v6.contains(want.as_str()), "missing {want:?} in:\n{v6}");
        }
        let status = speaker.status();
        assert!(
            status["gw4"].established && status["gw4"].prefixes_sent == 1,
            "{status:?}"
        );
        // A prefix at a time: added, then withdrawn, the table's other route untouched.
        let added: ipnet::IpNet = "198.51.100.34/32".parse().unwrap();
        speaker.change_routes("gw4", vec![(added, Some(attrs(&[], &[], None)))]);
        router.has("198.51.100.34/32", speaker);
        assert_eq!(speaker.status()["gw4"].prefixes_sent, 2);
        speaker.change_routes("gw4", vec![(added, None)]);
        assert!(
            router.lacks("198.51.100.34/32"),
            "the added /32 is withdrawn"
        );
        router.has("198.51.100.32/32", speaker);
        speaker.set_routes(BTreeMap::new());
        assert!(router.lacks("198.51.100.32/32"), "the /32 is withdrawn");
        assert!(
            router.lacks("2001:db8:100::32/128"),
            "the /128 is withdrawn"
        );
    });
}

/// iBGP: LOCAL_PREF arrives.
fn ibgp_local_pref(tag: &str, daemon: Daemon, expect: &str) {
    if !ready(&programs(daemon)) {
        return;
    }
    let lab = lab(
        tag,
        daemon,
        RouterSide {
            local_as: 64513,
            node_as: 64513,
            ..Default::default()
        },
    );
    let expect = expect.to_string();
    with_speaker(
        &lab,
        vec![peer("gw4", "192.0.2.1", 64513, 64513)],
        move |speaker, router| {
            speaker.set_routes(BTreeMap::from([(
                "gw4".to_string(),
                rib(&[("198.51.100.33/32", attrs(&[], &[], Some(250)))]),
            )]));
            let out = router.has("198.51.100.33/32", speaker);
            assert!(out.contains(&expect), "missing {expect:?} in:\n{out}");
        },
    );
}

const BIRD_V4: &[&str] = &[
    "BGP.origin: IGP",
    "BGP.as_path: 64513",
    "BGP.next_hop: 192.0.2.2",
    "BGP.community: (64512,100)",
    "BGP.large_community: (64512, 1, 2)",
];
const BIRD_V6: &[&str] = &[
    "BGP.as_path: 64513",
    "BGP.next_hop: 2001:db8::2",
    "BGP.community: (64512,100)",
    "BGP.large_community: (64512, 1, 2)",
];
const FRR_V4: &[&str] = &[
    "\"string\":\"64513\"",
    "\"ip\":\"192.0.2.2\"",
    "\"string\":\"64512:100\"",
    "\"string\":\"64512:1:2\"",
    "\"origin\":\"IGP\"",
];
const FRR_V6: &[&str] = &[
    "\"string\":\"64513\"",
    "\"ip\":\"2001:db8::2\"",
    "\"string\":\"64512:100\"",
    "\"string\":\"64512:1:2\"",
];
/// GoBGP prints communities as numbers: 64512:100 is 64512 * 65536 + 100.
const GOBGP_V4: &[&str] = &[
    "\"asns\":[64513]",
    "\"nexthop\":\"192.0.2.2\"",
    "\"communities\":[4227858532]",
    "{\"ASN\":64512,\"LocalData1\":1,\"LocalData2\":2}",
];
const GOBGP_V6: &[&str] = &[
    "\"asns\":[64513]",
    "2001:db8::2",
    "\"communities\":[4227858532]",
    "{\"ASN\":64512,\"LocalData1\":1,\"LocalData2\":2}",
];

#[test]
fn bird_ebgp() {
    ebgp_routes("bird-e", Daemon::Bird, BIRD_V4, BIRD_V6);
}

#[test]
fn frr_ebgp() {
    ebgp_routes("frr-e", Daemon::Frr, FRR_V4, FRR_V6);
}

#[test]
fn gobgp_ebgp() {
    ebgp_routes("gobgp-e", Daemon::Gobgp, GOBGP_V4, GOBGP_V6);
}

#[test]
fn bird_ibgp() {
    ibgp_local_pref("bird-i", Daemon::Bird, "BGP.local_pref: 250");
}

#[test]
fn frr_ibgp() {
    ibgp_local_pref("frr-i", Daemon::Frr, "\"locPrf\":250");
}

#[test]
fn gobgp_ibgp() {
    ibgp_local_pref("gobgp-i", Daemon::Gobgp, "\"value\":250");
}

/// `clear bgp … soft in` makes FRR send ROUTE-REFRESH (the speaker advertises the
/// capability); the speaker must send its table again (RFC 2918 §4), which FRR counts as
/// UPDATEs received.
#[test]
fn frr_route_refresh_gets_the_table_again() {
    if !ready(&programs(Daemon::Frr)) {
        return;
    }
    let lab = lab("frr-rr", Daemon::Frr, RouterSide::default());
    with_speaker(
        &lab,
        vec![peer("gw4", "192.0.2.1", 64513, 64512)],
        move |speaker, router| {
            let Router::Frr { netns, dir } = router.clone() else {
                unreachable!("an FRR lab")
            };
            let vtysh = |command: &str| {
                ironlb_lab::Netns::named(&netns)
                    .stdout("vtysh", &["--vty_socket", &dir, "-c", command])
            };
            let updates = || {
                let json: serde_json::Value =
                    serde_json::from_str(&vtysh("show bgp neighbors 192.0.2.2 json"))
                        .unwrap_or_default();
                json["192.0.2.2"]["messageStats"]["updatesRecv"]
                    .as_u64()
                    .unwrap_or(0)
            };
            speaker.set_routes(BTreeMap::from([(
                "gw4".to_string(),
                rib(&[("198.51.100.34/32", attrs(&[], &[], None))]),
            )]));
            router.has("198.51.100.34/32", speaker);
            let before = updates();
            vtysh("clear bgp ipv4 unicast 192.0.2.2 soft in");
            let again = ironlb_lab::wait_for(std::time::Duration::from_secs(10), || {
                Some(updates()).filter(|n| *n > before)
            });
            assert!(
                again.is_some(),
                "FRR received no UPDATE after its ROUTE-REFRESH ({before} before)"
            );
            eprintln!("route refresh: FRR counted {before} UPDATEs before, {again:?} after");
            router.has("198.51.100.34/32", speaker);
        },
    );
}
