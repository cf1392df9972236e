//! `ironlb speaker` on two nodes against a stand-in API server, with FRR as the gateway: the
//! speakers read Services, EndpointSlices, Nodes and the legacy ConfigMap exactly as from a
//! cluster, announce to FRR and answer ARP, write their status objects and events; an
//! endpoint turning unready withdraws that node's route at once; a broken ConfigMap changes
//! nothing; and without gossip, node readiness moves the layer-2 IP (`--ignore-exclude-lb`
//! honoured).

mod common;
use common::apiserver::{FakeApiServer, kubeconfig};
use ironlb_lab::seed::{self, BGP_IP, LEGACY_CONFIGMAP, NODES, ROUTER_IP, SeedLan};
use ironlb_lab::{Daemon, Netns, ready, time_until, wait_for};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

fn node(name: &str, ip: &str, ready: bool) -> Value {
    let ready = if ready { "True" } else { "False" };
    json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
           "status": {"conditions": [{"type": "Ready", "status": ready}],
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

/// The seed LAN with FRR as the gateway, the stand-in API server on the router, and a
/// speaker on each node started with `extra` arguments.
struct SpeakerLab {
    lab: SeedLan,
    api: Arc<FakeApiServer>,
    dir: tempfile::TempDir,
    frr: std::path::PathBuf,
    l2_ip: String,
    /// Each node's speaker process.
    speakers: Vec<u32>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<std::thread::JoinHandle<()>>,
}

impl SpeakerLab {
    fn new(tag: &str, extra: &[&str]) -> SpeakerLab {
        let scratch = tempfile::Builder::new()
            .prefix("ilb-spk")
            .tempdir()
            .unwrap();
        let dir = scratch.path();
        let mut lab = SeedLan::new(|role| Netns::new(&format!("{tag}{role}")));
        let l2_ip = seed::l2_ip_owned_by(NODES[0].0).to_string();
        let api = FakeApiServer::new(vec![
            node(NODES[0].0, NODES[0].1, true),
            node(NODES[1].0, NODES[1].1, true),
            configmap(),
            service("web", BGP_IP, "routed", "Local"),
            slice("web", &[(NODES[0].0, true), (NODES[1].0, true)]),
            service("lan", &l2_ip, "lan", "Cluster"),
            slice("lan", &[(NODES[1].0, true)]),
        ]);
        let addr: SocketAddr = format!("{ROUTER_IP}:6443").parse().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = {
            let api = api.clone();
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
        let kube = kube.display().to_string();
        let mut speakers = Vec::new();
        for (i, (name, _)) in NODES.iter().enumerate() {
            let mut args = vec!["speaker", "--kubeconfig", &kube, "--node", name];
            args.extend(["--metrics-addr", "127.0.0.1:7472"]);
            args.extend(extra);
            speakers.push(lab.nodes[i].spawn_logs(
                env!("CARGO_BIN_EXE_ironlb"),
                &args,
                &dir.join(format!("{name}.out")),
                &seed::log(dir, name),
            ));
        }
        SpeakerLab {
            lab,
            api,
            dir: scratch,
            frr,
            l2_ip,
            speakers,
            stop: Some(stop),
            server: Some(server),
        }
    }

    fn logs(&self) -> String {
        seed::logs(self.dir.path())
    }

    fn next_hops(&self) -> Vec<String> {
        seed::frr_next_hops(&self.frr, &format!("{BGP_IP}/32"))
    }

    /// Waits until FRR has exactly `hops` for the BGP service; how long that took.
    fn until_next_hops(&self, hops: &[&str]) -> Duration {
        time_until(Duration::from_secs(30), || self.next_hops() == hops).unwrap_or_else(|| {
            panic!(
                "FRR has {:?}, not {hops:?}\n{}",
                self.next_hops(),
                self.logs()
            )
        })
    }

    /// Waits until the client's kernel resolves the layer-2 IP to node `i`.
    fn until_answered_by(&self, i: usize) -> Duration {
        let mac = &self.lab.macs[i];
        time_until(Duration::from_secs(10), || {
            self.lab.client.resolve(&self.l2_ip).as_ref() == Some(mac)
        })
        .unwrap_or_else(|| {
            panic!(
                "{} never answered {}\n{}",
                NODES[i].0,
                self.l2_ip,
                self.logs()
            )
        })
    }
}

impl Drop for SpeakerLab {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.join();
        }
    }
}

#[test]
fn speakers_read_the_cluster_announce_and_report() {
    if !ready(&["/usr/lib/frr/bgpd", "vtysh", "ping", "ip"]) {
        return;
    }
    let lab = SpeakerLab::new("spk", &[]);
    let (api, logs) = (&lab.api, || lab.logs());
    lab.until_next_hops(&[NODES[0].1, NODES[1].1]);
    lab.until_answered_by(0);

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
        let path = format!("/configurationstates/speaker-{node}/status");
        let state = writes.iter().find(|w| w.path.ends_with(&path));
        let state = state.unwrap_or_else(|| panic!("{node} reports its configuration state"));
        assert_eq!(state.body["status"]["result"], "Valid");
    }

    // A broken ConfigMap: reported as Invalid, and nothing that was announced changes.
    let mut broken = configmap();
    broken["data"]["config"] = Value::from("address-pools: [name: lan");
    api.put(broken);
    wait_for(Duration::from_secs(5), || {
        api.writes()
            .iter()
            .any(|w| w.path.ends_with("/status") && w.body["status"]["result"] == "Invalid")
            .then_some(())
    })
    .unwrap_or_else(|| panic!("the broken ConfigMap was not reported\n{}", logs()));
    assert_eq!(
        lab.next_hops(),
        [NODES[0].1, NODES[1].1],
        "the last valid config runs on"
    );
    api.put(configmap());

    // node1's pod turns unready: under externalTrafficPolicy Local, node1 withdraws.
    api.put(slice("web", &[(NODES[0].0, false), (NODES[1].0, true)]));
    let took = lab.until_next_hops(&[NODES[1].1]);
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

    // Through all of that, neither BGP session was reset: changes travel as UPDATEs.
    let established = seed::frr_sessions_established(&lab.frr);
    assert_eq!(
        established,
        BTreeMap::from([(NODES[0].1.to_string(), 1), (NODES[1].1.to_string(), 1)]),
        "each node's session was established once and never flapped"
    );

    // node1's speaker dies (SIGKILL, as when its pod is evicted): gossip notices, node2
    // claims the layer-2 IP, and its gratuitous ARP moves the client without asking.
    ironlb_lab::run("kill", &["-9", &lab.speakers[0].to_string()]);
    let moved = time_until(Duration::from_secs(5), || {
        lab.lab.client.neighbor(&lab.l2_ip).as_ref() == Some(&lab.lab.macs[1])
    });
    let took = moved.unwrap_or_else(|| {
        panic!(
            "the client still has {:?} for {}\n{}",
            lab.lab.client.neighbor(&lab.l2_ip),
            lab.l2_ip,
            logs()
        )
    });
    eprintln!("speaker lab: node1's speaker killed, the client moved to node2 in {took:?}");
    assert!(took < Duration::from_secs(1), "{took:?}");
}

/// Also with `--ignore-exclude-lb`: node2 carries kubeadm's exclusion label and still takes
/// over, which it would never do without the flag.
#[test]
fn without_gossip_node_readiness_moves_the_layer2_ip() {
    if !ready(&["/usr/lib/frr/bgpd", "vtysh", "ping", "ip"]) {
        return;
    }
    let lab = SpeakerLab::new("spknog", &["--no-gossip", "--ignore-exclude-lb"]);
    let mut excluded = node(NODES[1].0, NODES[1].1, true);
    excluded["metadata"]["labels"]["node.kubernetes.io/exclude-from-external-load-balancers"] =
        Value::from("");
    lab.api.put(excluded);
    lab.until_answered_by(0);
    lab.api.put(node(NODES[0].0, NODES[0].1, false));
    lab.until_answered_by(1);
    lab.api.put(node(NODES[0].0, NODES[0].1, true));
    lab.until_answered_by(0);
}
