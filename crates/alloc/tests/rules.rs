//! One case per allocation rule (MetalLB behaviour §3–§4, and ironlb's deterministic order).

mod common;
use common::{config, svc};
use ironlb_alloc::{AllocError, Allocator, Families, Family, Port, Protocol, Service};
use std::collections::BTreeMap;
use std::net::IpAddr;

pub fn shared(key: &str, sharing: &str, port: u16) -> Service {
    Service {
        sharing_key: Some(sharing.to_string()),
        ports: vec![Port {
            protocol: Protocol::Tcp,
            port,
        }],
        ..svc(key)
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn first_address_of_the_pool_comes_first_like_metallb() {
    let mut a = Allocator::new(&config(&[("p", "{addresses: [192.0.2.0/30]}")]));
    let got: Vec<String> = ["d/a", "d/b", "d/c", "d/d"]
        .iter()
        .map(|k| a.allocate(&svc(k)).unwrap().ips[0].to_string())
        .collect();
    assert_eq!(got, ["192.0.2.0", "192.0.2.1", "192.0.2.2", "192.0.2.3"]);
    assert_eq!(a.allocate(&svc("d/e")), Err(AllocError::NoAvailableIps));
}

#[test]
fn avoid_buggy_ips_skips_dot_zero_and_dot_255_everywhere() {
    let mut a = Allocator::new(&config(&[(
        "p",
        "{addresses: [192.0.2.254-192.0.3.1], avoidBuggyIPs: true}",
    )]));
    let got: Vec<String> = ["d/a", "d/b"]
        .iter()
        .map(|k| a.allocate(&svc(k)).unwrap().ips[0].to_string())
        .collect();
    assert_eq!(got, ["192.0.2.254", "192.0.3.1"]);
    assert_eq!(a.allocate(&svc("d/c")), Err(AllocError::NoAvailableIps));
    let mut want = svc("d/x");
    want.requested = vec![ip("192.0.2.255")];
    assert_eq!(
        a.allocate(&want),
        Err(AllocError::NotInAnyPool(ip("192.0.2.255")))
    );
}

#[test]
fn released_addresses_are_reused_lowest_first() {
    let mut a = Allocator::new(&config(&[("p", "{addresses: [198.51.100.0/29]}")]));
    for k in ["d/a", "d/b", "d/c"] {
        a.allocate(&svc(k)).unwrap();
    }
    a.release("d/b");
    assert_eq!(
        a.allocate(&svc("d/z")).unwrap().ips,
        vec![ip("198.51.100.1")]
    );
}

#[test]
fn requested_ip_is_granted_even_from_a_pool_without_auto_assign() {
    let mut a = Allocator::new(&config(&[(
        "p",
        "{addresses: [198.51.100.0/24], autoAssign: false}",
    )]));
    let mut s = svc("d/a");
    s.requested = vec![ip("198.51.100.32")];
    assert_eq!(a.allocate(&s).unwrap().ips, vec![ip("198.51.100.32")]);
    assert_eq!(
        a.allocate(&svc("d/b")),
        Err(AllocError::NoAvailableIps),
        "no auto assignment from it"
    );
}

#[test]
fn requested_ip_rules() {
    let cfg = config(&[
        ("a", "{addresses: [198.51.100.0/25]}"),
        ("b", "{addresses: [198.51.100.128/25, '2001:db8::/120']}"),
    ]);
    let mut a = Allocator::new(&cfg);
    let request = |ips: &[&str], families| Service {
        requested: ips.iter().map(|s| ip(s)).collect(),
        families,
        ..svc("d/r")
    };
    let cases: Vec<(Service, AllocError)> = vec![
        (
            request(&["203.0.113.1"], Families::Single(Family::V4)),
            AllocError::NotInAnyPool(ip("203.0.113.1")),
        ),
        (
            request(&["198.51.100.1", "2001:db8::1"], Families::RequireDual),
            AllocError::DifferentPools(vec![ip("198.51.100.1"), ip("2001:db8::1")]),
        ),
        (
            request(&["2001:db8::1"], Families::Single(Family::V4)),
            AllocError::FamilyMismatch(vec![ip("2001:db8::1")]),
        ),
        (
            request(&["198.51.100.1"], Families::RequireDual),
            AllocError::FamilyMismatch(vec![ip("198.51.100.1")]),
        ),
        (
            Service {
                pool: Some("b".into()),
                ..request(&["198.51.100.1"], Families::Single(Family::V4))
            },
            AllocError::NotInRequestedPool {
                ip: ip("198.51.100.1"),
                pool: "b".into(),
            },
        ),
    ];
    for (s, want) in cases {
        assert_eq!(a.allocate(&s), Err(want.clone()), "{s:?}");
    }
    let dual = request(&["198.51.100.130", "2001:db8::5"], Families::RequireDual);
    assert_eq!(a.allocate(&dual).unwrap().pool, "b");
}

#[test]
fn address_pool_annotation() {
    let cfg = config(&[
        ("a", "{addresses: [198.51.100.0/25]}"),
        ("b", "{addresses: [198.51.100.128/25], autoAssign: false}"),
        (
            "team",
            "{addresses: [203.0.113.0/24], serviceAllocation: {namespaces: [team]}}",
        ),
    ]);
    let mut a = Allocator::new(&cfg);
    let with_pool = |key: &str, pool: &str| Service {
        pool: Some(pool.into()),
        ..svc(key)
    };
    assert_eq!(
        a.allocate(&with_pool("d/a", "b")).unwrap().ips,
        vec![ip("198.51.100.128")]
    );
    assert_eq!(
        a.allocate(&with_pool("d/b", "nope")),
        Err(AllocError::UnknownPool("nope".into()))
    );
    assert_eq!(
        a.allocate(&with_pool("d/c", "team")),
        Err(AllocError::PoolNotAllowed("team".into()))
    );
    assert_eq!(
        a.allocate(&with_pool("team/c", "team")).unwrap().pool,
        "team"
    );
}

#[test]
fn pinned_pools_by_priority_then_general_pools_by_name() {
    let cfg = config(&[
        ("zz-general", "{addresses: [198.51.100.0/28]}"),
        ("aa-general", "{addresses: [198.51.100.16/28]}"),
        (
            "low",
            "{addresses: [203.0.113.0/28], serviceAllocation: {priority: 20, namespaces: [team]}}",
        ),
        (
            "high",
            "{addresses: [203.0.113.16/28], serviceAllocation: {priority: 10, namespaces: [team]}}",
        ),
        (
            "unset",
            "{addresses: [203.0.113.32/28], serviceAllocation: {namespaces: [team]}}",
        ),
        (
            "web",
            "{addresses: [203.0.113.48/28], serviceAllocation: {serviceSelectors: [{matchLabels: {app: web}}]}}",
        ),
    ]);
    let mut a = Allocator::new(&cfg);
    assert_eq!(a.allocate(&svc("team/x")).unwrap().pool, "high");
    assert_eq!(
        a.allocate(&svc("other/x")).unwrap().pool,
        "aa-general",
        "general pools in name order, pinned pools never"
    );
    let mut web = svc("other/web");
    web.labels.insert("app".into(), "web".into());
    assert_eq!(a.allocate(&web).unwrap().pool, "web");
}

#[test]
fn namespace_selectors_pin_pools() {
    let cfg = config(&[
        ("general", "{addresses: [198.51.100.0/28]}"),
        (
            "prod",
            "{addresses: [203.0.113.0/28], serviceAllocation: {namespaceSelectors: [{matchLabels: {env: prod}}]}}",
        ),
    ]);
    let mut a = Allocator::new(&cfg);
    let mut s = svc("shop/x");
    s.namespace_labels.insert("env".into(), "prod".into());
    assert_eq!(a.allocate(&s).unwrap().pool, "prod");
    assert_eq!(a.allocate(&svc("dev/x")).unwrap().pool, "general");
}

#[test]
fn pinned_pool_exhausted_falls_back_to_general() {
    let cfg = config(&[
        ("general", "{addresses: [198.51.100.0/28]}"),
        (
            "team",
            "{addresses: [203.0.113.0/32], serviceAllocation: {namespaces: [team]}}",
        ),
    ]);
    let mut a = Allocator::new(&cfg);
    assert_eq!(a.allocate(&svc("team/a")).unwrap().pool, "team");
    assert_eq!(a.allocate(&svc("team/b")).unwrap().pool, "general");
}

#[test]
fn dual_stack_policies() {
    let cfg = config(&[
        ("v4only", "{addresses: [198.51.100.0/28]}"),
        ("v6only", "{addresses: ['2001:db8::/124']}"),
        ("zdual", "{addresses: [203.0.113.0/28, '2001:db8:1::/124']}"),
    ]);
    let mut a = Allocator::new(&cfg);
    let with = |key: &str, families| Service {
        families,
        ..svc(key)
    };
    let require = a.allocate(&with("d/req", Families::RequireDual)).unwrap();
    assert_eq!((require.pool.as_str(), require.ips.len()), ("zdual", 2));
    assert!(
        require.ips[0].is_ipv4() && require.ips[1].is_ipv6(),
        "IPv4 listed first"
    );
    let prefer = a
        .allocate(&with(
            "d/pref",
            Families::PreferDual {
                primary: Family::V6,
                dual_cluster: true,
            },
        ))
        .unwrap();
    assert_eq!(
        (prefer.pool.as_str(), prefer.ips.len()),
        ("zdual", 2),
        "a pool with both families wins"
    );
    let single = a
        .allocate(&with(
            "d/single",
            Families::PreferDual {
                primary: Family::V6,
                dual_cluster: false,
            },
        ))
        .unwrap();
    assert_eq!(single.pool, "v6only", "one IP of the primary family");
    let v6 = a
        .allocate(&with("d/v6", Families::Single(Family::V6)))
        .unwrap();
    assert!(v6.ips[0].is_ipv6());
}

#[test]
fn prefer_dual_falls_back_to_the_secondary_family() {
    let mut a = Allocator::new(&config(&[("v4", "{addresses: [198.51.100.0/28]}")]));
    let s = Service {
        families: Families::PreferDual {
            primary: Family::V6,
            dual_cluster: true,
        },
        ..svc("d/a")
    };
    assert_eq!(a.allocate(&s).unwrap().ips, vec![ip("198.51.100.0")]);
}

#[test]
fn prefer_dual_gains_the_missing_family_from_the_same_pool() {
    let s = Service {
        families: Families::PreferDual {
            primary: Family::V4,
            dual_cluster: true,
        },
        ..svc("d/a")
    };
    let mut a = Allocator::new(&config(&[("p", "{addresses: [198.51.100.0/28]}")]));
    assert_eq!(a.allocate(&s).unwrap().ips.len(), 1);
    a.set_config(&config(&[(
        "p",
        "{addresses: [198.51.100.0/28, '2001:db8::/124']}",
    )]));
    assert_eq!(
        a.allocate(&s).unwrap().ips,
        vec![ip("198.51.100.0"), ip("2001:db8::")]
    );
}

#[test]
fn sharing_rules() {
    let mut a = Allocator::new(&config(&[("p", "{addresses: [198.51.100.0/28]}")]));
    let first = a.allocate(&shared("d/dns-tcp", "dns", 53)).unwrap().ips;
    assert_eq!(
        a.allocate(&shared("d/dns-udp", "dns", 54)).unwrap().ips,
        first,
        "same key, other port: same IP"
    );
    assert_ne!(
        a.allocate(&shared("d/other", "web", 53)).unwrap().ips,
        first,
        "another key takes the next IP"
    );
    let mut same_port = shared("d/clash", "dns", 53);
    same_port.requested = first.clone();
    assert_eq!(
        a.allocate(&same_port),
        Err(AllocError::PortInUse {
            port: "TCP/53".into(),
            ip: first[0]
        })
    );
    let mut udp = shared("d/dns-udp53", "dns", 53);
    udp.ports = vec![Port {
        protocol: Protocol::Udp,
        port: 53,
    }];
    assert_eq!(
        a.allocate(&udp).unwrap().ips,
        first,
        "TCP/53 and UDP/53 can share"
    );
    let mut local = shared("d/local", "dns", 99);
    local.backend_key = "app=dns".into();
    local.requested = first.clone();
    assert!(matches!(
        a.allocate(&local),
        Err(AllocError::BackendKeyMismatch { .. })
    ));
    let mut no_key = svc("d/nokey");
    no_key.requested = first.clone();
    assert_eq!(a.allocate(&no_key), Err(AllocError::NewDoesNotShare));
    let lone = a.allocate(&svc("d/lone")).unwrap().ips;
    let mut onto_lone = shared("d/onto", "dns", 1);
    onto_lone.requested = lone;
    assert_eq!(
        a.allocate(&onto_lone),
        Err(AllocError::ExistingDoesNotShare)
    );
    let mut wrong_key = shared("d/wrong", "web", 1);
    wrong_key.requested = first;
    assert!(matches!(
        a.allocate(&wrong_key),
        Err(AllocError::SharingKeyMismatch { .. })
    ));
}

#[test]
fn shared_ip_is_freed_only_when_its_last_holder_goes() {
    let mut a = Allocator::new(&config(&[("p", "{addresses: [198.51.100.0/30]}")]));
    let ip0 = a.allocate(&shared("d/a", "k", 1)).unwrap().ips;
    a.allocate(&shared("d/b", "k", 2)).unwrap();
    a.release("d/a");
    assert_eq!(
        a.allocate(&svc("d/c")).unwrap().ips,
        vec![ip("198.51.100.1")],
        "still held by d/b"
    );
    a.release("d/b");
    assert_eq!(a.allocate(&svc("d/d")).unwrap().ips, ip0);
}

#[test]
fn config_edits_keep_move_or_orphan() {
    let mut a = Allocator::new(&config(&[
        ("old", "{addresses: [198.51.100.0/28]}"),
        ("zgone", "{addresses: [203.0.113.0/28]}"),
    ]));
    a.allocate(&svc("d/keep")).unwrap();
    let mut orphan = svc("d/orphan");
    orphan.pool = Some("zgone".into());
    a.allocate(&orphan).unwrap();
    let orphans = a.set_config(&config(&[("renamed", "{addresses: [198.51.100.0/27]}")]));
    assert_eq!(
        orphans.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(),
        ["d/orphan"]
    );
    let kept = a.assignment("d/keep").unwrap();
    assert_eq!(
        (kept.pool.as_str(), kept.ips.clone()),
        ("renamed", vec![ip("198.51.100.0")]),
        "moved to the pool that now holds it"
    );
}

#[test]
fn turning_on_avoid_buggy_ips_orphans_dot_zero() {
    let mut a = Allocator::new(&config(&[("p", "{addresses: [198.51.100.0/28]}")]));
    a.allocate(&svc("d/a")).unwrap();
    let orphans = a.set_config(&config(&[(
        "p",
        "{addresses: [198.51.100.0/28], avoidBuggyIPs: true}",
    )]));
    assert_eq!(orphans.len(), 1);
    assert_eq!(
        a.allocate(&svc("d/a")).unwrap().ips,
        vec![ip("198.51.100.1")]
    );
}

#[test]
fn an_allocated_ip_never_moves_while_allowed() {
    let mut a = Allocator::new(&config(&[("b", "{addresses: [198.51.100.0/28]}")]));
    let before = a.allocate(&svc("d/a")).unwrap();
    a.set_config(&config(&[
        ("a", "{addresses: [203.0.113.0/28]}"),
        ("b", "{addresses: [198.51.100.0/28]}"),
    ]));
    assert_eq!(
        a.allocate(&svc("d/a")).unwrap(),
        before,
        "a new, earlier-named pool does not pull it"
    );
}

#[test]
fn a_changed_request_moves_the_service() {
    let mut a = Allocator::new(&config(&[("p", "{addresses: [198.51.100.0/28]}")]));
    a.allocate(&svc("d/a")).unwrap();
    let mut s = svc("d/a");
    s.requested = vec![ip("198.51.100.9")];
    assert_eq!(a.allocate(&s).unwrap().ips, vec![ip("198.51.100.9")]);
    assert_eq!(
        a.allocate(&svc("d/b")).unwrap().ips,
        vec![ip("198.51.100.0")],
        "the old IP was released"
    );
}

#[test]
fn restore_takes_status_ips_before_new_allocations() {
    let cfg = config(&[("p", "{addresses: [198.51.100.0/28]}")]);
    let mut a = Allocator::new(&cfg);
    a.restore(&svc("d/old"), &[ip("198.51.100.0")]).unwrap();
    let result = a.reconcile(&[svc("d/new"), svc("d/old")]);
    assert_eq!(
        result["d/old"].as_ref().unwrap().ips,
        vec![ip("198.51.100.0")]
    );
    assert_eq!(
        result["d/new"].as_ref().unwrap().ips,
        vec![ip("198.51.100.1")]
    );
    assert_eq!(
        a.restore(&svc("d/x"), &[ip("203.0.113.1")]),
        Err(AllocError::NotInAnyPool(ip("203.0.113.1")))
    );
}

#[test]
fn reconcile_frees_services_no_longer_listed() {
    let mut a = Allocator::new(&config(&[("p", "{addresses: [198.51.100.0/30]}")]));
    a.reconcile(&[svc("d/a"), svc("d/b")]);
    let r = a.reconcile(&[svc("d/b"), svc("d/c")]);
    assert_eq!(
        r["d/c"].as_ref().unwrap().ips,
        vec![ip("198.51.100.0")],
        "d/a's IP came back"
    );
    assert!(a.assignment("d/a").is_none());
}

#[test]
fn capacity_and_use_are_counted_like_metallb() {
    let cfg = config(&[
        ("c24", "{addresses: [192.0.2.0/24], avoidBuggyIPs: true}"),
        ("c16", "{addresses: [198.18.0.0/16], avoidBuggyIPs: true}"),
        (
            "small",
            "{addresses: [203.0.113.254/31], avoidBuggyIPs: true}",
        ),
        ("v6", "{addresses: ['2001:db8::/120']}"),
        ("huge", "{addresses: ['2001:db8:1::/64']}"),
    ]);
    let mut a = Allocator::new(&cfg);
    let got: BTreeMap<&str, i64> = [
        ("c24", Family::V4),
        ("c16", Family::V4),
        ("small", Family::V4),
        ("v6", Family::V6),
        ("huge", Family::V6),
    ]
    .into_iter()
    .map(|(p, f)| (p, a.capacity(p, f)))
    .collect();
    assert_eq!(
        got,
        BTreeMap::from([
            ("c24", 254),
            ("c16", 65536 - 512),
            ("small", 1),
            ("v6", 256),
            ("huge", i64::MAX)
        ])
    );
    a.allocate(&shared("d/a", "k", 1)).unwrap();
    a.allocate(&shared("d/b", "k", 2)).unwrap();
    assert_eq!(a.in_use("c16", Family::V4), 1, "distinct IPs, not Services");
}
