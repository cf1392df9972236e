//! Session behaviour against real routers and a hand-made hostile peer: TCP MD5, reconnecting
//! after the router restarts, detecting a frozen router by the hold timer, and malformed
//! messages that must get the right NOTIFICATION without disturbing other sessions.

mod common;
use common::*;
use ironlb_bgp::speaker::Speaker;
use ironlb_bgp::wire::{self, Capability, Codec, Message, Open};
use ironlb_lab::Netns;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::time::{Duration, Instant};

fn one_route(speaker: &mut Speaker, peer: &str, prefix: &str) {
    speaker.set_routes(BTreeMap::from([(
        peer.to_string(),
        rib(&[(prefix, attrs(&[], &[], None))]),
    )]));
}

fn wait_status(
    speaker: &Speaker,
    peer: &str,
    timeout: Duration,
    f: impl Fn(&ironlb_bgp::speaker::PeerStatus) -> bool,
) -> bool {
    ironlb_lab::wait_for(timeout, || {
        speaker.status().get(peer).filter(|s| f(s)).map(|_| ())
    })
    .is_some()
}

#[test]
fn md5_matching_password_establishes() {
    if !ready(&programs(Daemon::Bird)) {
        return;
    }
    let lab = lab(
        "md5ok",
        Daemon::Bird,
        RouterSide {
            password: Some("s3cret"),
            ..Default::default()
        },
    );
    let gw = ironlb_bgp::speaker::PeerConfig {
        password: Some("s3cret".into()),
        ..peer("gw4", "192.0.2.1", 64513, 64512)
    };
    with_speaker(&lab, vec![gw], |speaker, router| {
        one_route(speaker, "gw4", "198.51.100.40/32");
        router.has("198.51.100.40/32", speaker);
    });
}

#[test]
fn md5_mismatched_password_never_establishes() {
    if !ready(&programs(Daemon::Bird)) {
        return;
    }
    let lab = lab(
        "md5bad",
        Daemon::Bird,
        RouterSide {
            password: Some("s3cret"),
            ..Default::default()
        },
    );
    let gw = ironlb_bgp::speaker::PeerConfig {
        password: Some("wrong".into()),
        ..peer("gw4", "192.0.2.1", 64513, 64512)
    };
    with_speaker(&lab, vec![gw], |speaker, router| {
        one_route(speaker, "gw4", "198.51.100.41/32");
        assert!(
            !wait_status(speaker, "gw4", Duration::from_secs(5), |s| s.established),
            "a wrong key must never establish"
        );
        assert!(router.show("198.51.100.41/32").is_empty());
        // A wrong key makes the router drop our segments silently, so the attempt times out,
        // and the peer status says what that may mean.
        let said = wait_status(speaker, "gw4", Duration::from_secs(12), |s| {
            s.last_error
                .as_deref()
                .is_some_and(|e| e.contains("TCP MD5"))
        });
        assert!(
            said,
            "the status names the likely cause: {:?}",
            speaker.status()["gw4"].last_error
        );
    });
}

#[test]
fn the_speaker_reconnects_after_the_router_restarts() {
    if !ready(&programs(Daemon::Bird)) {
        return;
    }
    let mut lab = lab("restart", Daemon::Bird, RouterSide::default());
    // Exponential backoff (no fixed connect time): the first retries come within seconds.
    let gw = ironlb_bgp::speaker::PeerConfig {
        connect_time: None,
        ..peer("gw4", "192.0.2.1", 64513, 64512)
    };
    let node = lab.node.name.clone();
    let router = lab.router.clone();
    let (to_test, from_speaker) = std::sync::mpsc::channel::<&'static str>();
    let (to_speaker, from_test) = std::sync::mpsc::channel::<()>();
    let speaker_thread = std::thread::spawn(move || {
        let ns = ironlb_lab::Netns::named(&node);
        ns.run_inside(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            let _inside = rt.enter();
            let mut speaker = Speaker::new();
            speaker.set_peers(vec![gw]);
            one_route(&mut speaker, "gw4", "198.51.100.42/32");
            router.has("198.51.100.42/32", &speaker);
            to_test.send("up").unwrap();
            from_test.recv().unwrap();
            assert!(
                wait_status(&speaker, "gw4", Duration::from_secs(10), |s| !s.established),
                "the speaker notices the dead router"
            );
            to_test.send("down").unwrap();
            from_test.recv().unwrap();
            router.has("198.51.100.42/32", &speaker);
            assert!(speaker.status()["gw4"].established);
            rt.block_on(speaker.shutdown(false));
        })
    });
    assert_eq!(from_speaker.recv().unwrap(), "up");
    lab.restart_daemon_stopped();
    to_speaker.send(()).unwrap();
    assert_eq!(from_speaker.recv().unwrap(), "down");
    lab.start_daemon();
    to_speaker.send(()).unwrap();
    speaker_thread.join().unwrap();
}

#[test]
fn a_frozen_router_is_detected_within_the_hold_time() {
    if !ready(&programs(Daemon::Bird)) {
        return;
    }
    let lab = lab("frozen", Daemon::Bird, RouterSide::default());
    let pid = lab.pid.to_string();
    with_speaker(
        &lab,
        vec![peer("gw4", "192.0.2.1", 64513, 64512)],
        move |speaker, router| {
            one_route(speaker, "gw4", "198.51.100.43/32");
            router.has("198.51.100.43/32", speaker);
            ironlb_lab::run("kill", &["-STOP", &pid]);
            let frozen = Instant::now();
            let noticed = wait_status(speaker, "gw4", Duration::from_secs(15), |s| !s.established);
            let took = frozen.elapsed();
            ironlb_lab::run("kill", &["-CONT", &pid]);
            assert!(noticed, "the hold timer fired");
            // Hold time 9 s; the last keepalive from BIRD may have arrived up to 3 s before the freeze.
            assert!(
                took <= Duration::from_secs(10),
                "detected after {took:?}, the hold time is 9 s"
            );
            let error = speaker.status()["gw4"]
                .last_error
                .clone()
                .unwrap_or_default();
            assert!(error.contains("Hold Timer Expired"), "{error}");
        },
    );
}

/// A well-formed OPEN and KEEPALIVE from the hostile peer.
fn open_bytes() -> Vec<u8> {
    let open = Open {
        asn: 64512,
        hold_time: 9,
        router_id: Ipv4Addr::new(192, 0, 2, 1),
        capabilities: vec![
            Capability::MultiProtocol { afi: 1, safi: 1 },
            Capability::FourOctetAs(64512),
        ],
    };
    let codec = Codec::default();
    [
        wire::encode(&Message::Open(open), &codec),
        wire::encode(&Message::Keepalive, &codec),
    ]
    .concat()
}

/// A peer that sends `greeting` (normally a good OPEN and KEEPALIVE), then `misbehave`, and
/// returns the NOTIFICATION the speaker answers with.
fn hostile_peer(listener: TcpListener, greeting: Vec<u8>, misbehave: Vec<u8>) -> Option<(u8, u8)> {
    let (mut stream, _) = listener.accept().ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    stream.write_all(&greeting).ok()?;
    std::thread::sleep(Duration::from_millis(300));
    stream.write_all(&misbehave).ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut rest = &buf[..];
        while let Ok(Some((m, used))) = wire::decode(
            rest,
            &Codec {
                four_octet_as: true,
                max_len: wire::MAX_EXTENDED_LEN,
            },
        ) {
            if let Message::Notification(n) = m {
                return Some((n.code, n.subcode));
            }
            rest = &rest[used..];
        }
    }
}

fn malformed_update() -> Vec<u8> {
    let mut bytes = wire::encode(
        &Message::Update(wire::Update::end_of_rib(1)),
        &Codec::default(),
    );
    bytes[20] = 60; // withdrawn routes length past the end of the message
    bytes
}

/// An OPEN that claims BGP version 3.
fn old_version_open() -> Vec<u8> {
    let mut bytes = open_bytes();
    bytes[19] = 3;
    bytes
}

fn bad_marker() -> Vec<u8> {
    let mut bytes = wire::encode(&Message::Keepalive, &Codec::default());
    bytes[0] = 0;
    bytes
}

#[test]
fn a_hostile_peer_gets_the_right_notification_and_other_sessions_stay_up() {
    if !ready(&programs(Daemon::Bird)) {
        return;
    }
    let lab = lab("hostile", Daemon::Bird, RouterSide::default());
    let cases = [
        ("malformed UPDATE", open_bytes(), malformed_update(), (3, 1)),
        ("bad marker", open_bytes(), bad_marker(), (1, 1)),
        ("OPEN of version 3", old_version_open(), Vec::new(), (2, 1)),
    ];
    for (name, greeting, misbehave, want) in cases {
        // The hostile peer listens on port 1179 in the router namespace, beside BIRD.
        let listener = lab
            .netns
            .run_inside(|| TcpListener::bind("192.0.2.1:1179").unwrap());
        let hostile = std::thread::spawn(move || hostile_peer(listener, greeting, misbehave));
        let bad = ironlb_bgp::speaker::PeerConfig {
            port: 1179,
            ..peer("bad", "192.0.2.1", 64513, 64512)
        };
        let good = peer("gw6", "2001:db8::1", 64513, 64512);
        with_speaker(&lab, vec![good, bad], move |speaker, router| {
            speaker.set_routes(BTreeMap::from([(
                "gw6".to_string(),
                rib(&[("2001:db8:100::44/128", attrs(&[], &[], None))]),
            )]));
            router.has("2001:db8:100::44/128", speaker);
            let got = hostile.join().unwrap();
            assert_eq!(
                got,
                Some(want),
                "{name}: the speaker answers with NOTIFICATION {want:?}"
            );
            assert!(
                speaker.status()["gw6"].established,
                "{name}: the other session stays up"
            );
            assert!(
                !router.show("2001:db8:100::44/128").is_empty(),
                "{name}: its route stays"
            );
        });
    }
}

/// Starts a speaker in the node namespace, announces `prefix`, waits for the router to have
/// it, then shuts the speaker down (`restarting` as for a planned restart).
fn announce_then_stop(
    lab: &Lab,
    gw: ironlb_bgp::speaker::PeerConfig,
    prefix: &'static str,
    restarting: bool,
) {
    let router = lab.router.clone();
    lab.node.run_inside(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let _inside = rt.enter();
        let mut speaker = Speaker::new();
        speaker.set_peers(vec![gw]);
        one_route(&mut speaker, "gw4", prefix);
        router.has(prefix, &speaker);
        rt.block_on(speaker.shutdown(restarting));
    });
}

#[test]
fn graceful_restart_keeps_routes_across_a_planned_restart() {
    if !ready(&programs(Daemon::Frr)) {
        return;
    }
    let lab = lab(
        "gr",
        Daemon::Frr,
        RouterSide {
            graceful_restart: true,
            ..Default::default()
        },
    );
    let gw = ironlb_bgp::speaker::PeerConfig {
        graceful_restart: true,
        ..peer("gw4", "192.0.2.1", 64513, 64512)
    };

    announce_then_stop(&lab, gw.clone(), "198.51.100.70/32", true);
    // The helper keeps the route, marked stale, while the speaker is away.
    std::thread::sleep(Duration::from_secs(2));
    let stale = lab.router.show("198.51.100.70/32");
    assert!(
        stale.contains("\"stale\":true"),
        "the route is kept as stale:\n{stale}"
    );

    // The restarted speaker re-announces it and sends End-of-RIB: the route is fresh again.
    let router = lab.router.clone();
    let again = gw.clone();
    lab.node.run_inside(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let _inside = rt.enter();
        let mut speaker = Speaker::new();
        speaker.set_peers(vec![again]);
        one_route(&mut speaker, "gw4", "198.51.100.70/32");
        router
            .route("198.51.100.70/32", |o| {
                o.contains("\"valid\":true") && !o.contains("\"stale\":true")
            })
            .expect("fresh after the restart");
        rt.block_on(speaker.shutdown(false));
    });

    // A plain shutdown (Cease) withdraws at once, graceful restart or not.
    announce_then_stop(&lab, gw, "198.51.100.71/32", false);
    assert!(
        lab.router.lacks("198.51.100.71/32"),
        "withdrawn after Cease"
    );
}

/// A passive peer: BIRD dials the speaker's port 1179 (with MD5), while the speaker keeps an
/// active session to BIRD's port 179. A third BIRD protocol, from an address that is no
/// passive peer, dials the same port and must be refused without disturbing either session.
#[test]
fn a_passive_peer_waits_for_the_router_and_strangers_are_refused() {
    if !ready(&programs(Daemon::Bird)) {
        return;
    }
    let lab = lab("passive", Daemon::Bird, RouterSide::default());
    let Router::Bird { netns, sock } = lab.router.clone() else {
        unreachable!()
    };
    ironlb_lab::run(
        "ip",
        &["-n", &netns, "addr", "add", "192.0.2.11/24", "dev", "veth0"],
    );
    let dial = |name: &str, local: &str, password: &str| {
        format!(
            "protocol bgp {name} {{\n  local {local} as 64512;\n  neighbor 192.0.2.2 port 1179 as 64513;\n  password \"{password}\";\n  ipv4 {{ import all; export none; }};\n  hold time 9;\n  connect retry time 1;\n}}\n"
        )
    };
    let conf = Netns::named(&netns).scratch().join("bird.conf");
    let mut text = std::fs::read_to_string(&conf).unwrap();
    text.push_str(&dial("dialer", "192.0.2.1", "p4ss"));
    text.push_str(&dial("intruder", "192.0.2.11", "p4ss"));
    std::fs::write(&conf, text).unwrap();
    ironlb_lab::run(
        "ip",
        &["netns", "exec", &netns, "birdc", "-s", &sock, "configure"],
    );

    let passive = ironlb_bgp::speaker::PeerConfig {
        passive: true,
        password: Some("p4ss".into()),
        ..peer("dialer", "192.0.2.1", 64513, 64512)
    };
    // BIRD keys its listening socket by neighbor address, so the active session to its port
    // 179 from the same address needs the same key.
    let active = ironlb_bgp::speaker::PeerConfig {
        password: Some("p4ss".into()),
        ..peer("gw4", "192.0.2.1", 64513, 64512)
    };
    let router = lab.router.clone();
    lab.node.run_inside(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let _inside = rt.enter();
        let mut speaker = Speaker::with_listen_port(1179);
        speaker.set_peers(vec![passive, active]);
        speaker.set_routes(BTreeMap::from([
            (
                "dialer".to_string(),
                rib(&[("198.51.100.80/32", attrs(&[], &[], None))]),
            ),
            (
                "gw4".to_string(),
                rib(&[("198.51.100.81/32", attrs(&[], &[], None))]),
            ),
        ]));
        let out = router.has("198.51.100.80/32", &speaker);
        assert!(
            out.contains("dialer"),
            "learned over the passive session:\n{out}"
        );
        router.has("198.51.100.81/32", &speaker);
        std::thread::sleep(Duration::from_secs(3));
        let protocols = router.diagnose();
        let intruder = protocols
            .lines()
            .find(|l| l.starts_with("intruder"))
            .unwrap_or_default()
            .to_string();
        assert!(
            !intruder.contains("Established"),
            "a stranger never gets a session:\n{protocols}"
        );
        let status = speaker.status();
        assert!(
            status["dialer"].established && status["gw4"].established,
            "{status:?}"
        );
        rt.block_on(speaker.shutdown(false));
    });
}

#[test]
fn changing_or_removing_one_peer_leaves_the_others_alone() {
    if !ready(&programs(Daemon::Bird)) {
        return;
    }
    let lab = lab("peers", Daemon::Bird, RouterSide::default());
    let (gw4, gw6) = (
        peer("gw4", "192.0.2.1", 64513, 64512),
        peer("gw6", "2001:db8::1", 64513, 64512),
    );
    with_speaker(
        &lab,
        vec![gw4.clone(), gw6.clone()],
        move |speaker, router| {
            speaker.set_routes(BTreeMap::from([
                (
                    "gw4".to_string(),
                    rib(&[("198.51.100.90/32", attrs(&[], &[], None))]),
                ),
                (
                    "gw6".to_string(),
                    rib(&[("2001:db8:100::90/128", attrs(&[], &[], None))]),
                ),
            ]));
            router.has("198.51.100.90/32", speaker);
            router.has("2001:db8:100::90/128", speaker);
            let v6_since = speaker.status()["gw6"].since;
            assert!(v6_since.is_some());

            // Changing one peer restarts only that session, and it keeps its routes.
            let changed = ironlb_bgp::speaker::PeerConfig {
                hold_time: 30,
                ..gw4.clone()
            };
            speaker.set_peers(vec![changed.clone(), gw6.clone()]);
            assert!(
                wait_status(speaker, "gw4", Duration::from_secs(15), |s| s.established
                    && s.prefixes_sent == 1),
                "gw4 comes back with its route"
            );
            router.has("198.51.100.90/32", speaker);
            assert_eq!(
                speaker.status()["gw6"].since,
                v6_since,
                "gw6 was not touched"
            );

            // Removing it withdraws its routes (Cease) and still leaves gw6 alone.
            speaker.set_peers(vec![gw6]);
            assert!(router.lacks("198.51.100.90/32"), "gw4's route goes with it");
            assert_eq!(
                speaker.status()["gw6"].since,
                v6_since,
                "gw6 was not touched"
            );
            assert!(!router.show("2001:db8:100::90/128").is_empty());
        },
    );
}

#[test]
fn the_session_uses_the_configured_source_address() {
    if !ready(&programs(Daemon::Bird)) {
        return;
    }
    let lab = lab("source", Daemon::Bird, RouterSide::default());
    ironlb_lab::run(
        "ip",
        &[
            "-n",
            &lab.node.name,
            "addr",
            "add",
            "192.0.2.12/24",
            "dev",
            "veth1",
        ],
    );
    let Router::Bird { netns, sock } = lab.router.clone() else {
        unreachable!()
    };
    let conf = Netns::named(&netns).scratch().join("bird.conf");
    let mut text = std::fs::read_to_string(&conf).unwrap();
    text.push_str("protocol bgp from12 from node { neighbor 192.0.2.12 as 64513; }\n");
    std::fs::write(&conf, text).unwrap();
    ironlb_lab::run(
        "ip",
        &["netns", "exec", &netns, "birdc", "-s", &sock, "configure"],
    );
    let sourced = ironlb_bgp::speaker::PeerConfig {
        source_address: Some("192.0.2.12".parse().unwrap()),
        ..peer("gw4", "192.0.2.1", 64513, 64512)
    };
    with_speaker(&lab, vec![sourced], |speaker, router| {
        one_route(speaker, "gw4", "198.51.100.95/32");
        let out = router.has("198.51.100.95/32", speaker);
        assert!(
            out.contains("from12") && out.contains("BGP.next_hop: 192.0.2.12"),
            "the session and next hop use the source address:\n{out}"
        );
    });
}

/// With GTSM (RFC 5082) the router drops every packet below TTL 255, so only a speaker that
/// really sends at TTL 255 for multihop gets a session; the system default of 64 never does.
#[test]
fn multihop_sends_at_ttl_255_which_a_gtsm_router_requires() {
    if !ready(&programs(Daemon::Bird)) {
        return;
    }
    let lab = lab(
        "gtsm",
        Daemon::Bird,
        RouterSide {
            ttl_security: true,
            ..Default::default()
        },
    );
    let Router::Bird { netns, sock } = lab.router.clone() else {
        unreachable!()
    };
    let single_hop = peer("gw4", "192.0.2.1", 64513, 64512);
    let multihop = ironlb_bgp::speaker::PeerConfig {
        ebgp_multihop: true,
        ..single_hop.clone()
    };
    with_speaker(&lab, vec![single_hop], move |speaker, router| {
        // Asked of the router: our side can see Established when our OPEN reached BIRD
        // before it set its minimum TTL on the accepted socket, while our KEEPALIVE, sent
        // later, is dropped and BIRD never gets there.
        let established = ironlb_lab::wait_for(Duration::from_secs(4), || {
            router.diagnose().contains("Established").then_some(())
        });
        assert!(
            established.is_none(),
            "a session at the default TTL got past GTSM:\n{}",
            router.diagnose()
        );
        // BIRD applies GTSM only after accepting, so it sits in OpenSent on a connection
        // whose every later segment (our FIN included) it drops; reset it as an operator would.
        speaker.set_peers(vec![]);
        ironlb_lab::run(
            "ip",
            &[
                "netns", "exec", &netns, "birdc", "-s", &sock, "restart", "n4",
            ],
        );
        speaker.set_peers(vec![multihop]);
        one_route(speaker, "gw4", "198.51.100.96/32");
        router.has("198.51.100.96/32", speaker);
    });
}
