//! The allocator's invariants over random pools and Services.

mod common;
use common::{config, svc};
use ironlb_alloc::{Allocator, Assignment, Port, Protocol, Service, is_buggy};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// Two small pools inside 198.51.100.0/24 (one with avoidBuggyIPs), so that exhaustion and
/// sharing happen often.
fn pools() -> impl Strategy<Value = Vec<(String, String)>> {
    (25u8..=30, 25u8..=30, any::<bool>()).prop_map(|(a, b, buggy)| {
        vec![
            (
                "first".to_string(),
                format!("{{addresses: [198.51.100.0/{a}]}}"),
            ),
            (
                "second".to_string(),
                format!("{{addresses: [198.51.100.128/{b}], avoidBuggyIPs: {buggy}}}"),
            ),
        ]
    })
}

fn service() -> impl Strategy<Value = Service> {
    (
        0u8..40,
        prop::option::of(0u8..3),
        0u8..2,
        1u16..4,
        prop::option::of(0u8..140),
    )
        .prop_map(|(n, key, backend, port, requested)| Service {
            sharing_key: key.map(|k| format!("k{k}")),
            backend_key: if backend == 0 {
                String::new()
            } else {
                "app=x".into()
            },
            ports: vec![Port {
                protocol: Protocol::Tcp,
                port,
            }],
            requested: requested
                .map(|r| vec![format!("198.51.100.{r}").parse().unwrap()])
                .unwrap_or_default(),
            ..svc(&format!("ns/s{n:02}"))
        })
}

fn services() -> impl Strategy<Value = Vec<Service>> {
    prop::collection::vec(service(), 0..40).prop_map(|mut v| {
        // Service keys are unique in a cluster.
        v.sort_by(|a, b| a.key.cmp(&b.key));
        v.dedup_by(|a, b| a.key == b.key);
        v
    })
}

fn granted(
    result: &BTreeMap<String, Result<Assignment, ironlb_alloc::AllocError>>,
) -> BTreeMap<String, Vec<IpAddr>> {
    result
        .iter()
        .filter_map(|(k, r)| r.as_ref().ok().map(|a| (k.clone(), a.ips.clone())))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn no_ip_is_given_twice_except_by_legal_sharing(pools in pools(), services in services()) {
        let cfg = config(&pools.iter().map(|(n, s)| (n.as_str(), s.as_str())).collect::<Vec<_>>());
        let mut a = Allocator::new(&cfg);
        a.reconcile(&services);
        let by_key: BTreeMap<&str, &Service> = services.iter().map(|s| (s.key.as_str(), s)).collect();
        let mut holders: BTreeMap<IpAddr, Vec<&Service>> = BTreeMap::new();
        for (key, assignment) in a.assignments() {
            for ip in &assignment.ips {
                holders.entry(*ip).or_default().push(by_key[key]);
            }
        }
        for (ip, users) in holders {
            for (i, x) in users.iter().enumerate() {
                for y in &users[i + 1..] {
                    prop_assert!(x.sharing().is_some() && x.sharing() == y.sharing(), "{ip} held by {} and {} without a common sharing key", x.key, y.key);
                    prop_assert_eq!(&x.backend_key, &y.backend_key);
                    prop_assert!(x.ports.iter().all(|p| !y.ports.contains(p)), "{} and {} both use a port on {}", x.key, y.key, ip);
                }
            }
        }
    }

    #[test]
    fn nothing_is_allocated_outside_a_pool(pools in pools(), services in services()) {
        let cfg = config(&pools.iter().map(|(n, s)| (n.as_str(), s.as_str())).collect::<Vec<_>>());
        let mut a = Allocator::new(&cfg);
        a.reconcile(&services);
        for (key, assignment) in a.assignments() {
            let pool = &cfg.pools[&assignment.pool];
            for ip in &assignment.ips {
                prop_assert!(pool.cidrs.iter().any(|c| c.contains(ip)), "{key}: {ip} outside pool {}", pool.name);
                prop_assert!(!(pool.avoid_buggy_ips && is_buggy(ip)), "{key}: buggy {ip}");
            }
        }
    }

    #[test]
    fn the_same_inputs_in_any_order_give_the_same_allocations(pools in pools(), services in services(), seed in any::<u64>()) {
        let cfg = config(&pools.iter().map(|(n, s)| (n.as_str(), s.as_str())).collect::<Vec<_>>());
        let mut shuffled = services.clone();
        let mut state = seed | 1;
        for i in (1..shuffled.len()).rev() {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17;
            shuffled.swap(i, (state % (i as u64 + 1)) as usize);
        }
        let first = Allocator::new(&cfg).reconcile(&services);
        let second = Allocator::new(&cfg).reconcile(&shuffled);
        prop_assert_eq!(first, second);
    }

    #[test]
    fn restoring_from_status_then_reconciling_moves_nothing(pools in pools(), services in services(), reverse in any::<bool>()) {
        let cfg = config(&pools.iter().map(|(n, s)| (n.as_str(), s.as_str())).collect::<Vec<_>>());
        let before = granted(&Allocator::new(&cfg).reconcile(&services));
        // A restarted controller: restore every status first (in any order), then reconcile.
        let mut restarted = Allocator::new(&cfg);
        let mut order: Vec<&Service> = services.iter().collect();
        if reverse { order.reverse(); }
        for s in order {
            if let Some(ips) = before.get(&s.key) {
                prop_assert!(restarted.restore(s, ips).is_ok(), "restoring {} {:?}", s.key, ips);
            }
        }
        let after = granted(&restarted.reconcile(&services));
        for (key, ips) in &before {
            prop_assert_eq!(Some(ips), after.get(key), "{} moved after restart", key);
        }
    }
}
