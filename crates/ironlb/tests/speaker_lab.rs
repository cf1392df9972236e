//! `ironlb speaker` on two nodes against a stand-in API server, with FRR as the gateway: the
//! speakers read Services, EndpointSlices, Nodes and the legacy ConfigMap exactly as from a
//! cluster, announce to FRR and answer ARP, write their status objects and events, and an
//! endpoint turning unready withdraws that node's route at once.

mod common;
use common::apiserver::{FakeApiServer, kubeconfig};
use ironlb_lab::seed::{self, BGP_IP, LEGACY_CONFIGMAP, NODES, ROUTER_IP, SeedLan};
use ironlb_lab::{Daemon, Netns, ready, time_until, wait_for};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

fn node(name: &str, ip: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
           "status": {"conditions": [{"type": "Ready", "status": "True"}],
                      "addresses": [{"type": "InternalIP", "address": ip}]}})
}

fn service(name: &str, ip: &str, pool: &str, policy: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"),
                        "annotations": {"metallb.io/ip-allocated-from-pool": pool}},
           "spec": {"type": "LoadBalancer", "externalTrafficPolicy": policy, "clusterIP": "10.96.0.10",
                    "ports": [{"port": 80, "protocol": "TCP"}]},
           "status": {"loadBalancer": {"ingress": [{"ip": ip}]}}})
}

/// One EndpointSlice for `service` with an endpoint on each (node, ready).
fn slice(service: &str, endpoints: &[(&str, bool)]) -> Value {
    let endpoints: Vec<Value> = endpoints
        .iter()
        .enumerate()
        .map(|(i, (node, ready))| json!({"addresses": [format!("10.244.0.{}", i + 1)], "nodeName": node, "conditions": {"ready": ready}}))
        .collect();
    json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
           "metadata": {"name": format!("{service}-abcde"), "namespace": "default",
                        "labels": {"kubernetes.io/service-name": service}},
           "addressType": "IPv4", "endpoints": endpoints})
}

/// The legacy ConfigMap of the example, as the API server returns it.
fn configmap() -> Value {
    let doc: Value = serde_saphyr::from_str(LEGACY_CONFIGMAP).unwrap();
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": "config", "namespace": "metallb-system"}, "data": doc["data"]})
}

#[test]
fn speakers_read_the_cluster_announce_and_report() {
    if !ready(&["/usr/lib/frr/bgpd", "vtysh", "ping", "ip"]) {
        return;
    }
    let dir = std::env::temp_dir().join(format!("ilb-spk-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut lab = SeedLan::new(|role| Netns::new(&format!("spk{role}")));

    let l2_ip = seed::l2_ip_owned_by(NODES[0].0).to_string();
    let api = FakeApiServer::new(vec![
        node(NODES[0].0, NODES[0].1),
        node(NODES[1].0, NODES[1].1),
        configmap(),
        service("web", BGP_IP, "routed", "Local"),
        slice("web", &[(NODES[0].0, true), (NODES[1].0, true)]),
        service("lan", &l2_ip, "lan", "Cluster"),
        slice("lan", &[(NODES[1].0, true)]),
    ]);
    let addr: SocketAddr = format!("{ROUTER_IP}:6443").parse().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = {
        let api: Arc<FakeApiServer> = api.clone();
        let router = Netns::named(&lab.router.name);
        std::thread::spawn(move || {
            router.run_inside(move || {
                let rt = tokio::runtime::Runtime::new().unwrap();
                rt.block_on(api.serve(addr, async {
                    let _ = stopped.await;
                }));
            })
        })
    };

    let frr = dir.join("frr");
    std::fs::create_dir_all(&frr).unwrap();
    std::fs::write(frr.join("frr.conf"), seed::frr_gateway_config()).unwrap();
    lab.router.start(&Daemon::bgpd(&frr));

    let kube = dir.join("kubeconfig");
    std::fs::write(&kube, kubeconfig(addr)).unwrap();
    for (i, (name, _)) in NODES.iter().enumerate() {
        let log = dir.join(format!("{name}.log"));
        lab.nodes[i].spawn_logs(
            env!("CARGO_BIN_EXE_ironlb"),
            &[
                "speaker",
                "--kubeconfig",
                &kube.display().to_string(),
                "--node",
                name,
                "--metrics-addr",
                "127.0.0.1:7472",
            ],
            &dir.join(format!("{name}.out")),
            &log,
        );
    }
    let logs = || {
        NODES
            .iter()
            .map(|(n, _)| std::fs::read_to_string(dir.join(format!("{n}.log"))).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n----\n")
    };

    let prefix = format!("{BGP_IP}/32");
    let both: Vec<String> = NODES.iter().map(|(_, ip)| ip.to_string()).collect();
    wait_for(Duration::from_secs(30), || {
        (seed::frr_next_hops(&frr, &prefix) == both).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "FRR has {:?}, not both nodes\n{}",
            seed::frr_next_hops(&frr, &prefix),
            logs()
        )
    });
    let owner_mac = lab.macs[0].clone();
    let resolved = wait_for(Duration::from_secs(10), || {
        lab.client.resolve(&l2_ip).filter(|m| *m == owner_mac)
    });
    assert_eq!(
        resolved,
        Some(owner_mac),
        "node1 answers {l2_ip}\n{}",
        logs()
    );

    // Status objects and events, as MetalLB's speakers write them.
    let writes = wait_for(Duration::from_secs(10), || {
        let w = api.writes();
        let created = |plural: &str| {
            w.iter()
                .filter(|w| w.method == "POST" && w.path.ends_with(plural))
                .count()
        };
        (created("servicebgpstatuses") == 2 && created("servicel2statuses") == 1).then_some(w)
    })
    .unwrap_or_else(|| {
        panic!(
            "status objects not created: {:#?}\n{}",
            api.writes(),
            logs()
        )
    });
    let l2 = writes
        .iter()
        .find(|w| w.path.ends_with("/servicel2statuses/l2-fake1/status"))
        .expect("the layer-2 status is set");
    assert_eq!(
        l2.body["status"],
        json!({"node": "node1", "serviceName": "lan", "serviceNamespace": "default", "interfaces": []})
    );
    let assigned: Vec<&str> = writes
        .iter()
        .filter(|w| w.path.ends_with("/events") && w.body["reason"] == "nodeAssigned")
        .filter_map(|w| w.body["note"].as_str())
        .collect();
    assert!(
        assigned.contains(&"announcing from node \"node1\" with protocol \"layer2\"")
            && assigned.contains(&"announcing from node \"node2\" with protocol \"bgp\""),
        "{assigned:?}"
    );

    for (node, _) in NODES {
        let state = writes.iter().find(|w| {
            w.path
                .ends_with(&format!("/configurationstates/speaker-{node}/status"))
        });
        let state = state.unwrap_or_else(|| panic!("{node} reports its configuration state"));
        assert_eq!(state.body["status"]["result"], "Valid");
    }

    // node1's pod turns unready: under externalTrafficPolicy Local, node1 withdraws.
    api.put(slice("web", &[(NODES[0].0, false), (NODES[1].0, true)]));
    let only_node2 = vec![NODES[1].1.to_string()];
    let took = time_until(Duration::from_secs(10), || {
        seed::frr_next_hops(&frr, &prefix) == only_node2
    });
    let took = took.unwrap_or_else(|| {
        panic!(
            "FRR kept node1: {:?}\n{}",
            seed::frr_next_hops(&frr, &prefix),
            logs()
        )
    });
    eprintln!("speaker lab: an unready endpoint withdrew node1's next hop from FRR in {took:?}");
    assert!(took < Duration::from_secs(1), "{took:?}");
    let deleted = wait_for(Duration::from_secs(5), || {
        api.writes()
            .iter()
            .any(|w| w.method == "DELETE" && w.path.contains("/servicebgpstatuses/"))
            .then_some(())
    });
    assert!(
        deleted.is_some(),
        "node1 deletes its ServiceBGPStatus for web: {:#?}",
        api.writes()
    );

    let _ = stop.send(());
    drop(lab);
    server.join().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}
