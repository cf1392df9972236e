//! The speaker against a real BIRD 2 in a network namespace; what BIRD learned is read with
//! its own CLI (`birdc show route all`).

use ipnet::IpNet;
use ironlb_bgp::routes::{Rib, RouteAttrs};
use ironlb_bgp::speaker::{PeerConfig, Speaker};
use ironlb_lab::{Netns, link, ready, wait_for};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

/// A router namespace running BIRD, linked to a node namespace.
struct Lab {
    /// Held so the router namespace, and BIRD in it, live until the test ends.
    _router: Netns,
    node: Netns,
    bird: Bird,
}

/// How to query the lab's BIRD from any thread.
#[derive(Clone)]
struct Bird {
    netns: String,
    sock: String,
}

impl Bird {
    fn cli(&self, args: &[&str]) -> String {
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", &self.netns, "birdc", "-s", &self.sock])
            .args(args)
            .output();
        out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    /// Waits until `show route all for prefix` satisfies `check`, and returns it.
    fn route(&self, prefix: &str, check: impl Fn(&str) -> bool) -> Option<String> {
        wait_for(Duration::from_secs(15), || {
            Some(self.cli(&["show", "route", "all", "for", prefix])).filter(|o| check(o))
        })
    }
}

fn lab(tag: &str, local_as: u32, protocols: &str) -> Lab {
    let mut router = Netns::new(&format!("{tag}r"));
    let node = Netns::new(&format!("{tag}n"));
    link(
        &router,
        &["192.0.2.1/24", "2001:db8::1/64"],
        &node,
        &["192.0.2.2/24", "2001:db8::2/64"],
    );
    let dir = std::env::temp_dir().join(&router.name);
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("bird.conf");
    let sock = dir.join("bird.ctl").display().to_string();
    let template = format!(
        "router id 192.0.2.1;\nprotocol device {{}}\ntemplate bgp node {{\n  local as {local_as};\n  ipv4 {{ import all; export none; }};\n  ipv6 {{ import all; export none; }};\n  hold time 9;\n  connect retry time 1;\n}}\n"
    );
    std::fs::write(&conf, format!("{template}{protocols}\n")).unwrap();
    router.spawn(
        "bird",
        &[
            "-f",
            "-c",
            conf.to_str().unwrap(),
            "-s",
            &sock,
            "-P",
            dir.join("bird.pid").to_str().unwrap(),
        ],
    );
    let bird = Bird {
        netns: router.name.clone(),
        sock,
    };
    wait_for(Duration::from_secs(5), || {
        Some(bird.cli(&["show", "status"])).filter(|o| o.contains("Daemon is up"))
    })
    .expect("BIRD starts");
    Lab { _router: router, node, bird }
}

fn peer(name: &str, address: &str, local_asn: u32, peer_asn: u32) -> PeerConfig {
    PeerConfig {
        name: name.into(),
        address: address.parse().unwrap(),
        port: 179,
        local_asn,
        peer_asn,
        router_id: Ipv4Addr::new(192, 0, 2, 2),
        hold_time: 9,
        keepalive: None,
        source_address: None,
        password: None,
        ebgp_multihop: false,
        graceful_restart: false,
        connect_time: Some(Duration::from_secs(1)),
    }
}

fn rib(routes: &[(&str, RouteAttrs)]) -> Rib {
    routes
        .iter()
        .map(|(p, a)| (p.parse::<IpNet>().unwrap(), a.clone()))
        .collect()
}

fn attrs(communities: &[u32], large: &[[u32; 3]], local_pref: Option<u32>) -> RouteAttrs {
    RouteAttrs {
        communities: communities.iter().copied().collect(),
        large_communities: large.iter().copied().collect(),
        local_pref,
        med: None,
    }
}

/// Runs `f` with a speaker inside the node namespace.
fn with_speaker(
    lab: &Lab,
    peers: Vec<PeerConfig>,
    f: impl FnOnce(&Speaker, &Bird) + Send + 'static,
) {
    let bird = lab.bird.clone();
    lab.node.run_inside(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let _inside = rt.enter();
        let mut speaker = Speaker::new();
        speaker.set_peers(peers);
        f(&speaker, &bird);
        rt.block_on(speaker.shutdown(false));
    });
}

#[test]
fn ebgp_v4_and_v6_routes_arrive_with_attributes_and_are_withdrawn() {
    if !ready(&["bird", "birdc", "ip"]) {
        return;
    }
    let lab = lab(
        "bgpe",
        64512,
        "protocol bgp n4 from node { neighbor 192.0.2.2 as 64513; }\nprotocol bgp n6 from node { neighbor 2001:db8::2 as 64513; }",
    );
    let peers = vec![
        peer("gw4", "192.0.2.1", 64513, 64512),
        peer("gw6", "2001:db8::1", 64513, 64512),
    ];
    with_speaker(&lab, peers, |speaker, bird| {
        let tagged = attrs(&[64512 << 16 | 100], &[[64512, 1, 2]], None);
        speaker.set_routes(BTreeMap::from([
            (
                "gw4".to_string(),
                rib(&[("198.51.100.32/32", tagged.clone())]),
            ),
            ("gw6".to_string(), rib(&[("2001:db8:100::32/128", tagged)])),
        ]));
        let v4 = bird
            .route("198.51.100.32/32", |o| o.contains("BGP.as_path"))
            .expect("BIRD learns the /32");
        for want in [
            "BGP.origin: IGP",
            "BGP.as_path: 64513",
            "BGP.next_hop: 192.0.2.2",
            "BGP.community: (64512,100)",
            "BGP.large_community: (64512, 1, 2)",
        ] {
            assert!(v4.contains(want), "missing {want:?} in:\n{v4}");
        }
        let v6 = bird
            .route("2001:db8:100::32/128", |o| o.contains("BGP.as_path"))
            .expect("BIRD learns the /128");
        for want in [
            "BGP.as_path: 64513",
            "BGP.next_hop: 2001:db8::2",
            "BGP.community: (64512,100)",
            "BGP.large_community: (64512, 1, 2)",
        ] {
            assert!(v6.contains(want), "missing {want:?} in:\n{v6}");
        }
        let status = speaker.status();
        assert!(
            status["gw4"].established && status["gw4"].prefixes_sent == 1,
            "{status:?}"
        );

        speaker.set_routes(BTreeMap::new());
        bird.route("198.51.100.32/32", |o| !o.contains("198.51.100.32"))
            .expect("the /32 is withdrawn");
        bird.route("2001:db8:100::32/128", |o| !o.contains("2001:db8:100::32"))
            .expect("the /128 is withdrawn");
    });
}

#[test]
fn ibgp_carries_local_pref() {
    if !ready(&["bird", "birdc", "ip"]) {
        return;
    }
    let lab = lab(
        "bgpi",
        64513,
        "protocol bgp n4 from node { neighbor 192.0.2.2 as 64513; }",
    );
    with_speaker(
        &lab,
        vec![peer("gw4", "192.0.2.1", 64513, 64513)],
        |speaker, bird| {
            speaker.set_routes(BTreeMap::from([(
                "gw4".to_string(),
                rib(&[("198.51.100.33/32", attrs(&[], &[], Some(250)))]),
            )]));
            let out = bird
                .route("198.51.100.33/32", |o| o.contains("BGP.local_pref"))
                .expect("BIRD learns the iBGP route");
            assert!(out.contains("BGP.local_pref: 250"), "{out}");
            assert!(
                out.contains("BGP.as_path: \n")
                    || out.contains("BGP.as_path:\n")
                    || out.lines().any(|l| l.trim() == "BGP.as_path:"),
                "empty AS path on iBGP:\n{out}"
            );
        },
    );
}
