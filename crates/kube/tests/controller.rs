//! The controller's decisions, without any API server: what it writes for each situation.

mod common;
use common::{LAN, holding, service, snapshot, with_status};
use ironlb_kube::controller::{Controller, ServiceWrite};
use serde_json::json;

fn write(ns: &str, name: &str, ips: &[&str], pool: Option<&str>) -> ServiceWrite {
    ServiceWrite {
        namespace: ns.into(),
        name: name.into(),
        ips: ips.iter().map(|i| i.parse().unwrap()).collect(),
        pool: pool.map(Into::into),
    }
}

fn reasons(writes: &ironlb_kube::controller::Writes) -> Vec<String> {
    writes
        .events
        .iter()
        .map(|e| format!("{} {}", e.reason, e.note))
        .collect()
}

#[test]
fn first_allocation_writes_status_event_and_counters() {
    let mut c = Controller::new(None);
    let writes = c.reconcile(&snapshot(vec![service("default", "web", json!({}))], LAN));
    assert_eq!(
        writes.services,
        vec![write("default", "web", &["192.0.2.128"], Some("lan"))]
    );
    assert_eq!(
        reasons(&writes),
        ["IPAllocated Assigned IP [\"192.0.2.128\"]"]
    );
    let (pool, status) = &writes.pool_status[0];
    assert_eq!(
        (pool.as_str(), status.assigned_ipv4, status.available_ipv4),
        ("lan", 1, 3)
    );
    assert_eq!(
        writes.config_state.as_ref().and_then(|s| s.result),
        Some(api::v1beta1::ConfigurationResult::Valid)
    );
    assert!(writes.metrics.config_loaded && !writes.metrics.config_stale);
}

#[test]
fn a_converged_cluster_gets_no_writes() {
    let mut c = Controller::new(None);
    c.reconcile(&snapshot(vec![service("default", "web", json!({}))], LAN));
    let done = holding("web", "192.0.2.128");
    let writes = c.reconcile(&snapshot(vec![done], LAN));
    assert!(
        writes.services.is_empty()
            && writes.events.is_empty()
            && writes.pool_status.is_empty()
            && writes.config_state.is_none(),
        "{writes:?}"
    );
}

#[test]
fn a_restart_keeps_existing_ips_before_allocating_new_ones() {
    // Sorted by key, "a-new" would take .128 first if statuses were not restored first.
    let old = holding("z-old", "192.0.2.128");
    let new = service("default", "a-new", json!({}));
    let mut restarted = Controller::new(None);
    let writes = restarted.reconcile(&snapshot(vec![new, old], LAN));
    assert_eq!(
        writes.services,
        vec![write("default", "a-new", &["192.0.2.129"], Some("lan"))]
    );
}

#[test]
fn a_service_that_stops_being_a_load_balancer_is_cleared_and_its_ip_freed() {
    let mut c = Controller::new(None);
    let web = holding("web", "192.0.2.128");
    c.reconcile(&snapshot(vec![web.clone()], LAN));
    let mut cluster_ip = web;
    cluster_ip.spec.as_mut().unwrap().type_ = Some("ClusterIP".into());
    let writes = c.reconcile(&snapshot(
        vec![cluster_ip, service("default", "next", json!({}))],
        LAN,
    ));
    assert!(
        writes
            .services
            .contains(&write("default", "web", &[], None)),
        "{:?}",
        writes.services
    );
    assert!(
        writes
            .services
            .contains(&write("default", "next", &["192.0.2.128"], Some("lan"))),
        "the freed IP is reused"
    );
}

#[test]
fn a_deleted_service_releases_its_ip() {
    let mut c = Controller::new(None);
    c.reconcile(&snapshot(vec![holding("web", "192.0.2.128")], LAN));
    let writes = c.reconcile(&snapshot(vec![service("default", "other", json!({}))], LAN));
    assert_eq!(
        writes.services,
        vec![write("default", "other", &["192.0.2.128"], Some("lan"))]
    );
}

#[test]
fn a_pool_edit_that_orphans_an_ip_moves_the_service_and_says_so() {
    let mut c = Controller::new(None);
    let web = holding("web", "192.0.2.128");
    c.reconcile(&snapshot(vec![web.clone()], LAN));
    let moved = "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: lan}\nspec: {addresses: [192.0.2.200/30]}\n";
    let writes = c.reconcile(&snapshot(vec![web], moved));
    assert_eq!(
        writes.services,
        vec![write("default", "web", &["192.0.2.200"], Some("lan"))]
    );
    let events = reasons(&writes);
    assert!(
        events[0]
            .starts_with("ClearAssignment current IP for \"default/web\" not allowed by config"),
        "{events:?}"
    );
    assert_eq!(events[1], "IPAllocated Assigned IP [\"192.0.2.200\"]");
}

#[test]
fn an_invalid_config_keeps_the_last_valid_one_running() {
    let mut c = Controller::new(None);
    c.reconcile(&snapshot(vec![], LAN));
    let broken = "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: lan}\nspec: {addresses: [192.0.2.5]}\n";
    let writes = c.reconcile(&snapshot(
        vec![service("default", "web", json!({}))],
        broken,
    ));
    let state = writes.config_state.expect("ConfigurationState changes");
    assert_eq!(
        state.result,
        Some(api::v1beta1::ConfigurationResult::Invalid)
    );
    assert!(
        state
            .error_summary
            .contains("IPAddressPool \"lan\" spec.addresses[0]"),
        "{}",
        state.error_summary
    );
    assert!(writes.metrics.config_stale && writes.metrics.config_loaded);
    assert_eq!(
        writes.services,
        vec![write("default", "web", &["192.0.2.128"], Some("lan"))],
        "the last valid pools still serve"
    );
}

#[test]
fn without_any_valid_config_nothing_is_allocated() {
    let mut c = Controller::new(None);
    let broken = "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: lan}\nspec: {addresses: []}\n";
    let writes = c.reconcile(&snapshot(
        vec![service("default", "web", json!({}))],
        broken,
    ));
    assert!(writes.services.is_empty() && !writes.metrics.config_loaded);
}

#[test]
fn the_legacy_configmap_is_used_when_no_resources_exist() {
    let legacy = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: config}\ndata:\n  config: |\n    address-pools:\n    - name: lan\n      protocol: layer2\n      addresses: [192.0.2.128/25]\n";
    let writes = Controller::new(None).reconcile(&snapshot(
        vec![service("default", "web", json!({}))],
        legacy,
    ));
    assert_eq!(
        writes.services,
        vec![write("default", "web", &["192.0.2.128"], Some("lan"))]
    );
}

#[test]
fn load_balancer_class_selects_services() {
    let classed = service(
        "default",
        "mine",
        json!({"spec": {"loadBalancerClass": "ironlb"}}),
    );
    let plain = service("default", "plain", json!({}));
    let writes = Controller::new(Some("ironlb".into()))
        .reconcile(&snapshot(vec![classed.clone(), plain.clone()], LAN));
    assert_eq!(
        writes
            .services
            .iter()
            .map(|w| w.name.as_str())
            .collect::<Vec<_>>(),
        ["mine"]
    );
    let writes = Controller::new(None).reconcile(&snapshot(vec![classed, plain], LAN));
    assert_eq!(
        writes
            .services
            .iter()
            .map(|w| w.name.as_str())
            .collect::<Vec<_>>(),
        ["plain"]
    );
}

#[test]
fn failures_are_reported_once_not_every_pass() {
    let both = service(
        "default",
        "web",
        json!({"metadata": {"annotations": {"metallb.io/loadBalancerIPs": "192.0.2.129"}}, "spec": {"loadBalancerIP": "192.0.2.130"}}),
    );
    let mut c = Controller::new(None);
    let first = c.reconcile(&snapshot(vec![both.clone()], LAN));
    assert_eq!(
        reasons(&first),
        [
            "LoadBalancerFailed invalid requested loadbalancer IPs: service can not have both metallb.io/loadBalancerIPs and svc.Spec.LoadBalancerIP"
        ]
    );
    assert!(first.events[0].warning);
    assert!(c.reconcile(&snapshot(vec![both], LAN)).events.is_empty());
}

#[test]
fn exhausted_pool_reports_allocation_failed() {
    let services: Vec<_> = (0..5)
        .map(|i| service("default", &format!("s{i}"), json!({})))
        .collect();
    let writes = Controller::new(None).reconcile(&snapshot(services, LAN));
    assert_eq!(writes.services.len(), 4);
    assert_eq!(
        reasons(&writes).last().unwrap(),
        "AllocationFailed Failed to allocate IP for \"default/s4\": no available IPs"
    );
}

#[test]
fn deprecated_annotations_work_and_warn() {
    let old = service(
        "default",
        "web",
        json!({"metadata": {"annotations": {"metallb.universe.tf/loadBalancerIPs": "192.0.2.130", "metallb.universe.tf/anything": "x"}}}),
    );
    let writes = Controller::new(None).reconcile(&snapshot(vec![old], LAN));
    assert_eq!(
        writes.services,
        vec![write("default", "web", &["192.0.2.130"], Some("lan"))]
    );
    // As MetalLB: every key of the old prefix warns, read or not.
    for key in ["loadBalancerIPs", "anything"] {
        let warned = format!(
            "deprecatedAnnotation Service uses deprecated annotation metallb.universe.tf/{key}"
        );
        assert!(reasons(&writes).contains(&warned), "{:?}", reasons(&writes));
    }
}

#[test]
fn a_prefer_dual_stack_service_given_one_family_is_told_why() {
    let dual = service(
        "default",
        "web",
        json!({"spec": {"ipFamilyPolicy": "PreferDualStack", "ipFamilies": ["IPv4", "IPv6"], "clusterIPs": ["198.51.100.10", "2001:db8:1::10"]}}),
    );
    let writes = Controller::new(None).reconcile(&snapshot(vec![dual], LAN));
    assert_eq!(
        writes.services,
        vec![write("default", "web", &["192.0.2.128"], Some("lan"))]
    );
    assert!(
        reasons(&writes).contains(&"AdditionalAssignFailed cannot assign additional IP in PreferDualStack: pool \"lan\" has no free IPv6 address".to_string()),
        "{:?}",
        reasons(&writes)
    );
}

#[test]
fn require_dual_stack_needs_two_cluster_ips() {
    let svc = service(
        "default",
        "web",
        json!({"spec": {"ipFamilyPolicy": "RequireDualStack"}}),
    );
    let writes = Controller::new(None).reconcile(&snapshot(vec![svc], LAN));
    assert!(writes.services.is_empty());
    assert!(reasons(&writes)[0].starts_with("not enough clusterips Service requires dual stack"));
}

#[test]
fn dual_stack_services_get_both_families_from_one_pool() {
    let dual_pool = "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: dual}\nspec: {addresses: [192.0.2.128/30, '2001:db8::/126']}\n";
    let svc = service(
        "default",
        "web",
        json!({"spec": {"ipFamilyPolicy": "RequireDualStack", "ipFamilies": ["IPv4", "IPv6"], "clusterIPs": ["198.51.100.10", "2001:db8:1::10"]}}),
    );
    let writes = Controller::new(None).reconcile(&snapshot(vec![svc], dual_pool));
    assert_eq!(
        writes.services,
        vec![write(
            "default",
            "web",
            &["192.0.2.128", "2001:db8::"],
            Some("dual")
        )]
    );
}

#[test]
fn pools_from_the_legacy_configmap_are_counted_but_have_no_status_to_write() {
    let legacy = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: config, namespace: metallb-system}\ndata:\n  config: |\n    address-pools:\n    - name: lan\n      protocol: layer2\n      addresses: [192.0.2.128/30]\n";
    let mut c = Controller::new(None);
    let writes = c.reconcile(&snapshot(
        vec![service("default", "web", json!({}))],
        legacy,
    ));
    assert_eq!(
        writes.services,
        vec![write("default", "web", &["192.0.2.128"], Some("lan"))]
    );
    assert!(
        writes.pool_status.is_empty(),
        "no IPAddressPool object exists to take it: {:?}",
        writes.pool_status
    );
    let counted = ironlb_kube::controller::PoolCounts {
        pool: "lan".into(),
        in_use: (1, 0),
        total: (4, 0),
        services: 1,
    };
    assert_eq!(writes.metrics.pools, [counted]);
}

#[test]
fn a_service_of_another_class_is_never_touched_even_with_the_pool_annotation() {
    // Another controller (another --lb-class) allocated it and wrote MetalLB's annotation.
    let theirs = with_status(
        service(
            "default",
            "theirs",
            json!({"spec": {"loadBalancerClass": "other"}}),
        ),
        &["192.0.2.200"],
        "their-pool",
    );
    let mut c = Controller::new(None);
    let writes = c.reconcile(&snapshot(vec![theirs.clone()], LAN));
    assert!(writes.services.is_empty(), "{:?}", writes.services);
    // One this controller served until its class changed does lose what it was given.
    let mut c = Controller::new(None);
    c.reconcile(&snapshot(vec![holding("web", "192.0.2.128")], LAN));
    let mut moved = holding("web", "192.0.2.128");
    moved.spec.as_mut().unwrap().load_balancer_class = Some("other".into());
    let writes = c.reconcile(&snapshot(vec![moved], LAN));
    assert_eq!(writes.services, vec![write("default", "web", &[], None)]);
}
