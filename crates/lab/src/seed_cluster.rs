//! The seed setup as a real cluster: a control plane of its own (with
//! kube-controller-manager, so EndpointSlices come from Pods), the seed LAN with FRR as the
//! gateway, `deploy/`'s CRDs and RBAC applied, and `ironlb controller` and one `ironlb
//! speaker` per node running as the kubelet would run them: under their ServiceAccounts'
//! own tokens, with the downward API's environment, reaching the API server at
//! 192.0.2.1:6443 from their namespaces.
//!
//! The workloads are Pods the test creates and marks Ready by hand (there is no kubelet):
//! `web` (BGP, pinned to BGP_IP, `externalTrafficPolicy: Local`, a Pod on each node) and
//! `lan` (layer 2, asking for the IP node1 owns, a Pod on node2).

use crate::control_plane::{ControlPlane, Options, documents};
use crate::seed::{self, BGP_IP, LEGACY_CONFIGMAP, NODES, ROUTER_IP, SeedLan};
use crate::{Daemon, Forward, Netns, time_until};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the speakers' and the controller's namespace live, as in MetalLB.
pub const NAMESPACE: &str = "metallb-system";
/// Where the workloads live.
pub const APPS: &str = "default";
pub const API_PORT: u16 = 6443;

pub struct SeedCluster {
    pub lab: SeedLan,
    pub frr: PathBuf,
    /// The layer-2 Service's IP, owned by node1 while both nodes are live.
    pub l2_ip: String,
    pub controller: u32,
    /// The speakers of the nodes that have joined, in the order they joined.
    pub speakers: Vec<u32>,
    daemons: Daemons,
    speaker_args: Vec<String>,
    speaker_kubeconfig: String,
    dir: tempfile::TempDir,
    _forward: Forward,
    /// Dropped last: the daemons above talk to it until they are gone.
    pub plane: ControlPlane,
}

/// The workspace's `deploy/` directory.
pub fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

/// Every YAML file in `dir`, in name order, as one stream.
pub fn manifests(dir: &Path) -> String {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap_or_else(|e| panic!("{}: {e}", f.display())))
        .collect::<Vec<_>>()
        .join("\n---\n")
}

/// The ServiceAccounts and RBAC of `deploy/<file>`: the test runs the processes itself, and
/// a lab has no Service routing, so the webhooks' Service and configuration stay out (the
/// webhook lab registers them by URL).
pub fn rbac_of(file: &str) -> String {
    let text = std::fs::read_to_string(deploy_dir().join(file)).expect("reading a manifest");
    let rbac = |kind: &str| {
        matches!(
            kind,
            "ServiceAccount" | "Role" | "ClusterRole" | "RoleBinding" | "ClusterRoleBinding"
        )
    };
    let kept: Vec<String> = documents(&text)
        .into_iter()
        .filter(|d| d["kind"].as_str().is_some_and(rbac))
        .map(|d| d.to_string())
        .collect();
    kept.join("\n---\n")
}

/// How the daemons are installed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Install {
    /// `deploy/`'s manifests: ServiceAccounts `ironlb-controller` and `ironlb-speaker`.
    Ironlb,
    /// MetalLB v0.16's native manifest with only the images changed: its ServiceAccounts
    /// (`controller`, `speaker`) and roles (`metallb_rbac`), the binary started as
    /// `/controller` and `/speaker` with MetalLB's args and environment.
    MetalLb,
}

impl Install {
    pub fn service_accounts(self) -> (&'static str, &'static str) {
        match self {
            Install::Ironlb => ("ironlb-controller", "ironlb-speaker"),
            Install::MetalLb => ("controller", "speaker"),
        }
    }

    /// The environment a speaker on `node` (name, address) runs with as Pod `pod` (name,
    /// uid): the downward API's variables its manifest sets, and the kubeconfig that stands in
    /// for the in-cluster one.
    pub fn speaker_env<'a>(
        self,
        kubeconfig: &'a str,
        (node, ip): (&'a str, &'a str),
        (pod, uid): (&'a str, &'a str),
    ) -> Vec<(&'static str, &'a str)> {
        let mut env = vec![
            ("KUBECONFIG", kubeconfig),
            ("METALLB_NODE_NAME", node),
            ("METALLB_POD_NAME", pod),
            ("METALLB_ML_BIND_ADDR", ip),
        ];
        env.extend(match self {
            Install::Ironlb => vec![("METALLB_POD_UID", uid), ("METALLB_NAMESPACE", NAMESPACE)],
            // No Pod UID: MetalLB's DaemonSet does not set it.
            Install::MetalLb => vec![
                ("IRONLB_LOG_FORMAT", "auto"),
                ("METALLB_HOST", ip),
                ("METALLB_ML_LABELS", "app=metallb,component=speaker"),
                ("METALLB_ML_SECRET_KEY_PATH", "/etc/ml_secret_key"),
            ],
        });
        env
    }

    /// The CRDs as this install ships them.
    pub fn crds(self) -> String {
        match self {
            Install::Ironlb => manifests(&deploy_dir().join("crds")),
            Install::MetalLb => metallb_crds(),
        }
    }

    /// The ServiceAccounts, (Cluster)Roles and bindings.
    pub fn rbac(self) -> String {
        match self {
            Install::Ironlb => format!(
                "{}\n---\n{}",
                rbac_of("controller.yaml"),
                rbac_of("speaker.yaml")
            ),
            Install::MetalLb => metallb_rbac(),
        }
    }

    /// The (Cluster)Roles each ServiceAccount is bound to: (controller's, speaker's).
    pub fn roles(self) -> (Vec<Value>, Vec<Value>) {
        match self {
            Install::Ironlb => (roles_of("controller.yaml"), roles_of("speaker.yaml")),
            Install::MetalLb => {
                let docs = documents(&metallb_rbac());
                let named = |names: &[&str]| -> Vec<Value> {
                    docs.iter()
                        .filter(|d| matches!(d["kind"].as_str(), Some("Role" | "ClusterRole")))
                        .filter(|d| {
                            names.contains(&d["metadata"]["name"].as_str().unwrap_or_default())
                        })
                        .cloned()
                        .collect()
                };
                (
                    named(&["controller", "pod-lister", "metallb-system:controller"]),
                    named(&["pod-lister", "metallb-system:speaker"]),
                )
            }
        }
    }
}

/// MetalLB's CRDs as its native manifest installs them. Its published files are read from
/// `METALLB_CRDS` (its `config/crd/bases`) when set. Otherwise they are `deploy/crds/`:
/// `crates/api/tests/metallb_shape.rs` and `crd_compat` hold those to MetalLB's, and both
/// convert BGPPeer through the controller's webhook at MetalLB's Service.
pub fn metallb_crds() -> String {
    match std::env::var_os("METALLB_CRDS") {
        Some(dir) => manifests(Path::new(&dir)),
        None => manifests(&deploy_dir().join("crds")),
    }
}

/// MetalLB v0.16's RBAC, as its native manifest grants it (written from the rules it
/// lists, not copied; the PodSecurityPolicy rule, which means nothing on a current API
/// server, is left out).
pub fn metallb_rbac() -> String {
    let rule = |groups: &str, resources: &str, verbs: &str| {
        format!("- {{apiGroups: [{groups}], resources: [{resources}], verbs: [{verbs}]}}\n")
    };
    let named = |groups: &str, resources: &str, names: &str, verbs: &str| {
        format!(
            "- {{apiGroups: [{groups}], resources: [{resources}], resourceNames: [{names}], verbs: [{verbs}]}}\n"
        )
    };
    let watch = "get, list, watch";
    let all = "create, delete, get, list, patch, update, watch";
    let kinds =
        "bfdprofiles, bgppeers, l2advertisements, bgpadvertisements, ipaddresspools, communities";
    let role = |kind: &str, name: &str, rules: String| {
        let ns = if kind == "Role" {
            format!(", namespace: {NAMESPACE}")
        } else {
            String::new()
        };
        format!(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: {kind}\nmetadata: {{name: {name}{ns}}}\nrules:\n{rules}"
        )
    };
    let binding = |kind: &str, name: &str, subjects: &[&str]| {
        let ns = if kind == "RoleBinding" {
            format!(", namespace: {NAMESPACE}")
        } else {
            String::new()
        };
        let role_kind = kind.trim_end_matches("Binding");
        let subjects: Vec<String> = subjects
            .iter()
            .map(|s| format!("{{kind: ServiceAccount, name: {s}, namespace: {NAMESPACE}}}"))
            .collect();
        format!(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: {kind}\nmetadata: {{name: {name}{ns}}}\nroleRef: {{apiGroup: rbac.authorization.k8s.io, kind: {role_kind}, name: {name}}}\nsubjects: [{}]\n",
            subjects.join(", ")
        )
    };
    let accounts = ["controller", "speaker"]
        .map(|sa| format!("apiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: {sa}, namespace: {NAMESPACE}}}\n"));
    let controller_role = [
        rule("''", "secrets", all),
        rule("apps", "deployments", "get"),
        rule("metallb.io", "bgppeers", "get, list"),
        rule(
            "metallb.io",
            "bfdprofiles, ipaddresspools, bgpadvertisements, l2advertisements, communities",
            watch,
        ),
        rule("metallb.io", "ipaddresspools/status", "update"),
    ]
    .concat();
    let pod_lister = [
        rule("''", "pods", "list, get"),
        rule("''", "secrets, configmaps", watch),
        rule("metallb.io", kinds, watch),
        rule(
            "metallb.io",
            "servicebgpstatuses, servicebgpstatuses/status",
            "'*'",
        ),
    ]
    .concat();
    // Since v0.16 both daemons check a metrics scraper's token themselves.
    let review_tokens = [
        rule("authentication.k8s.io", "tokenreviews", "create"),
        rule("authorization.k8s.io", "subjectaccessreviews", "create"),
    ]
    .concat();
    let controller_cluster = [
        review_tokens.clone(),
        rule("''", "services, namespaces", watch),
        rule("''", "nodes", "list"),
        rule("''", "services/status", "update"),
        rule("''", "events", "create, patch"),
        named(
            "admissionregistration.k8s.io",
            "validatingwebhookconfigurations",
            "metallb-webhook-configuration",
            all,
        ),
        rule(
            "admissionregistration.k8s.io",
            "validatingwebhookconfigurations",
            "list, watch",
        ),
        named(
            "apiextensions.k8s.io",
            "customresourcedefinitions",
            "bfdprofiles.metallb.io, bgpadvertisements.metallb.io, bgppeers.metallb.io, ipaddresspools.metallb.io, l2advertisements.metallb.io, communities.metallb.io, configurationstates.metallb.io",
            all,
        ),
        rule(
            "apiextensions.k8s.io",
            "customresourcedefinitions",
            "list, watch",
        ),
        rule("metallb.io", "configurationstates", all),
        rule(
            "metallb.io",
            "configurationstates/status",
            "get, patch, update",
        ),
    ]
    .concat();
    let speaker_cluster = [
        review_tokens,
        rule("metallb.io", "servicel2statuses, servicel2statuses/status, configurationstates, configurationstates/status", "'*'"),
        rule("''", "services, endpoints, nodes, namespaces", watch),
        rule("discovery.k8s.io", "endpointslices", watch),
        rule("''", "events", "create, patch"),
    ]
    .concat();
    let mut docs: Vec<String> = accounts.to_vec();
    docs.extend([
        role("Role", "controller", controller_role),
        role("Role", "pod-lister", pod_lister),
        role(
            "ClusterRole",
            "metallb-system:controller",
            controller_cluster,
        ),
        role("ClusterRole", "metallb-system:speaker", speaker_cluster),
        binding("RoleBinding", "controller", &["controller"]),
        binding("RoleBinding", "pod-lister", &["controller", "speaker"]),
        binding(
            "ClusterRoleBinding",
            "metallb-system:controller",
            &["controller"],
        ),
        binding("ClusterRoleBinding", "metallb-system:speaker", &["speaker"]),
    ]);
    docs.join("---\n")
}

/// The (Cluster)Roles in `deploy/<file>`.
pub fn roles_of(file: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(deploy_dir().join(file)).expect("reading a manifest");
    documents(&text)
        .into_iter()
        .filter(|d| matches!(d["kind"].as_str(), Some("Role" | "ClusterRole")))
        .collect()
}

/// A ready Node with its InternalIP.
pub fn node(name: &str, ip: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Node",
           "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
           "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
                      "addresses": [{"type": "InternalIP", "address": ip}]}})
}

/// A ready Pod of `app` bound to `node`, with the IP it would have been given.
pub fn pod(app: &str, node: &str, ip: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": format!("{app}-{node}"), "namespace": APPS, "labels": {"app": app}},
           "spec": {"nodeName": node, "containers": [{"name": app, "image": "example.invalid/app",
                    "ports": [{"containerPort": 80}]}]},
           "status": pod_status(ip, true)["status"]})
}

/// A Pod's status as the kubelet reports it, ready or not.
pub fn pod_status(ip: &str, ready: bool) -> Value {
    let ready = if ready { "True" } else { "False" };
    json!({"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                      "conditions": [{"type": "Ready", "status": ready}, {"type": "ContainersReady", "status": ready}]}})
}

fn service(name: &str, ip: &str, policy: &str, port: u16, protocol: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": name, "namespace": APPS, "annotations": {"metallb.io/loadBalancerIPs": ip}},
           "spec": {"type": "LoadBalancer", "externalTrafficPolicy": policy, "selector": {"app": name},
                    "ports": [{"port": port, "protocol": protocol, "targetPort": 80}]}})
}

/// The Pods of the workloads: (app, node, pod IP).
pub const PODS: [(&str, &str, &str); 3] = [
    ("web", "node1", "10.244.1.10"),
    ("web", "node2", "10.244.2.10"),
    ("lan", "node2", "10.244.2.11"),
];

impl SeedCluster {
    /// Starts everything, the speakers with `speaker_args` added, and waits until FRR holds
    /// the BGP Service via both nodes.
    pub fn start(tag: &str, ironlb: &Path, speaker_args: &[&str]) -> SeedCluster {
        SeedCluster::install(tag, ironlb, speaker_args, Install::Ironlb)
    }

    /// `start`, installed as `install` says.
    pub fn install(
        tag: &str,
        ironlb: &Path,
        speaker_args: &[&str],
        install: Install,
    ) -> SeedCluster {
        let mut cluster = SeedCluster::without_nodes(tag, ironlb, speaker_args, install);
        for i in 0..NODES.len() {
            cluster.join(i);
        }
        cluster.until_next_hops(&[NODES[0].1, NODES[1].1], Duration::from_secs(60));
        cluster
    }

    /// The control plane, the LAN, FRR and the controller, with no Node yet: each joins
    /// with `join`.
    pub fn without_nodes(
        tag: &str,
        ironlb: &Path,
        speaker_args: &[&str],
        install: Install,
    ) -> SeedCluster {
        let plane = ControlPlane::start(Options {
            controller_manager: true,
            addresses: vec![ROUTER_IP.parse().expect("the router's address")],
            ..Options::default()
        });
        let scratch = tempfile::Builder::new()
            .prefix("ilb-cluster")
            .tempdir()
            .expect("a scratch directory");
        let dir = scratch.path();
        let mut lab = SeedLan::new(|role| Netns::new(&format!("{tag}{role}")));
        let api: SocketAddr = format!("{ROUTER_IP}:{API_PORT}")
            .parse()
            .expect("an address");
        let forward = lab
            .router
            .forward(api, SocketAddr::from(([127, 0, 0, 1], plane.port)));
        let l2_ip = seed::l2_ip_owned_by(NODES[0].0).to_string();

        install_objects(&plane, install, &l2_ip);
        let (controller_sa, speaker_sa) = install.service_accounts();
        let frr = start_frr(&mut lab, dir);

        let server = format!("https://{api}");
        let kubeconfig = |sa: &str| {
            let path = plane.service_account_kubeconfig(NAMESPACE, sa, Some(&server));
            path.display().to_string()
        };
        let (controller_config, speaker_kubeconfig) =
            (kubeconfig(controller_sa), kubeconfig(speaker_sa));
        let daemons = Daemons::new(install, ironlb, dir);
        let controller_config = daemons.readable(&controller_config, &plane.pki.ca, dir);
        let mut env = vec![
            ("KUBECONFIG", controller_config.as_str()),
            ("METALLB_POD_NAME", "controller-0"),
        ];
        env.extend(daemons.controller_env());
        let controller_args: Vec<&str> = daemons.controller.1.iter().map(String::as_str).collect();
        let controller = lab.router.spawn_env(
            &daemons.controller.0,
            &controller_args,
            &env,
            &dir.join("controller.out"),
            &seed::log(dir, "controller"),
        );
        SeedCluster {
            lab,
            frr,
            l2_ip,
            controller,
            speakers: Vec::new(),
            daemons,
            speaker_args: speaker_args.iter().map(|a| a.to_string()).collect(),
            speaker_kubeconfig,
            dir: scratch,
            _forward: forward,
            plane,
        }
    }

    /// Node `i` joins: its Node object, its workload Pods and its speaker Pod appear, and
    /// the speaker starts as the kubelet would start it.
    pub fn join(&mut self, i: usize) {
        let (name, ip) = NODES[i];
        create(&self.plane, node(name, ip));
        let (_, speaker_sa) = self.daemons.install.service_accounts();
        let (pod_name, uid) = speaker_pod(&self.plane, name, speaker_sa);
        for (app, on, pod_ip) in PODS.iter().filter(|(_, on, _)| *on == name) {
            create(&self.plane, pod(app, on, pod_ip));
        }
        let mut args: Vec<&str> = self.daemons.speaker.1.iter().map(String::as_str).collect();
        args.extend(self.speaker_args.iter().map(String::as_str));
        let env = self.daemons.install.speaker_env(
            &self.speaker_kubeconfig,
            (name, ip),
            (&pod_name, &uid),
        );
        let dir = self.dir.path();
        let pid = self.lab.nodes[i].spawn_env(
            &self.daemons.speaker.0,
            &args,
            &env,
            &dir.join(format!("{name}.out")),
            &seed::log(dir, name),
        );
        self.speakers.push(pid);
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The speakers' and the controller's logs, for a failing test to print.
    pub fn logs(&self) -> String {
        let controller =
            std::fs::read_to_string(seed::log(self.dir(), "controller")).unwrap_or_default();
        format!("{}\n---- controller\n{controller}", seed::logs(self.dir()))
    }

    pub fn next_hops(&self) -> Vec<String> {
        seed::frr_next_hops(&self.frr, &format!("{BGP_IP}/32"))
    }

    /// Waits until FRR has exactly `hops` for the BGP Service; how long that took.
    pub fn until_next_hops(&self, hops: &[&str], timeout: Duration) -> Duration {
        time_until(timeout, || self.next_hops() == hops).unwrap_or_else(|| {
            panic!(
                "FRR has {:?}, not {hops:?}\n{}\n---- apiserver (tail)\n{}",
                self.next_hops(),
                self.logs(),
                tail(&self.plane.log("apiserver"), 30)
            )
        })
    }

    /// Waits until the client's kernel resolves the layer-2 IP to node `i`.
    pub fn until_answered_by(&self, i: usize) -> Duration {
        let mac = &self.lab.macs[i];
        time_until(Duration::from_secs(20), || {
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

    /// A Service with no selector, asking for `ip` (in the BGP pool), and its EndpointSlice
    /// with a ready endpoint on each node, written by hand: a change that reaches the
    /// controller and the speakers through their own watches only, with no other controller
    /// in between. Waits until FRR has `ip` via both nodes; how long that took.
    pub fn probe(&self, name: &str, ip: &str) -> Duration {
        let mut svc = service(name, ip, "Cluster", 80, "TCP");
        svc["spec"]
            .as_object_mut()
            .expect("a spec")
            .remove("selector");
        let endpoints: Vec<Value> = NODES
            .iter()
            .enumerate()
            .map(|(i, (node, _))| json!({"addresses": [format!("10.244.{}.99", i + 1)], "nodeName": node, "conditions": {"ready": true}}))
            .collect();
        let slice = json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": format!("{name}-probe"), "namespace": APPS,
                         "labels": {"kubernetes.io/service-name": name, "endpointslice.kubernetes.io/managed-by": "ironlb-test"}},
            "addressType": "IPv4", "endpoints": endpoints, "ports": [{"port": 80, "protocol": "TCP"}]});
        let began = std::time::Instant::now();
        self.plane.apply(&format!(
            "{svc}
---
{slice}"
        ));
        let prefix = format!("{ip}/32");
        let took = time_until(Duration::from_secs(30), || {
            seed::frr_next_hops(&self.frr, &prefix) == [NODES[0].1, NODES[1].1]
        })
        .map(|_| began.elapsed())
        .unwrap_or_else(|| panic!("FRR never learned {prefix} via both nodes\n{}", self.logs()));
        self.until_bgp_statuses(name, NODES.len());
        took
    }

    /// Deletes the probe Service; waits until FRR has withdrawn its IP and the speakers have
    /// removed their status objects, so that nothing of the probe is still being written.
    pub fn unprobe(&self, name: &str, ip: &str) {
        self.plane
            .delete(&format!("/api/v1/namespaces/{APPS}/services/{name}"));
        let prefix = format!("{ip}/32");
        time_until(Duration::from_secs(30), || {
            seed::frr_next_hops(&self.frr, &prefix).is_empty()
        })
        .unwrap_or_else(|| panic!("FRR kept {prefix}\n{}", self.logs()));
        self.until_bgp_statuses(name, 0);
    }

    /// Waits until `count` nodes keep a ServiceBGPStatus for Service `name`.
    fn until_bgp_statuses(&self, name: &str, count: usize) {
        let path = format!("/apis/metallb.io/v1beta1/namespaces/{NAMESPACE}/servicebgpstatuses");
        time_until(Duration::from_secs(30), || {
            let statuses = self.plane.list(&path);
            let of = statuses
                .iter()
                .filter(|s| s["status"]["serviceName"] == name);
            of.count() == count
        })
        .unwrap_or_else(|| panic!("{name}: not {count} ServiceBGPStatuses\n{}", self.logs()));
    }

    /// Marks a workload Pod ready or not, as its kubelet would.
    pub fn set_ready(&self, app: &str, node: &str, ready: bool) {
        let (_, _, ip) = PODS
            .iter()
            .find(|(a, n, _)| *a == app && *n == node)
            .expect("one of PODS");
        patch_status(
            &self.plane,
            "pods",
            APPS,
            &format!("{app}-{node}"),
            pod_status(ip, ready),
        );
    }
}

impl SeedCluster {
    /// A layer-2 Service `name` asking for `ip` (in the `lan` pool), with a ready Pod on
    /// `node` behind it.
    pub fn layer2_service(&self, name: &str, ip: &str, node: &str, pod_ip: &str) {
        self.plane
            .apply(&service(name, ip, "Cluster", 53, "UDP").to_string());
        create(&self.plane, pod(name, node, pod_ip));
    }
}

/// Creates `object` (without its status), then sets its status through the subresource, as
/// a kubelet does for its Node and Pods.
pub fn create(plane: &ControlPlane, object: Value) {
    let status = object["status"].clone();
    let mut bare = object.clone();
    bare.as_object_mut().expect("an object").remove("status");
    plane.apply(&bare.to_string());
    if !status.is_null() {
        let kind = object["kind"].as_str().unwrap_or_default().to_lowercase() + "s";
        let ns = object["metadata"]["namespace"].as_str().unwrap_or_default();
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        patch_status(plane, &kind, ns, name, json!({"status": status}));
    }
}

/// A merge patch on a core object's status subresource.
pub fn patch_status(plane: &ControlPlane, plural: &str, namespace: &str, name: &str, patch: Value) {
    let path = if namespace.is_empty() {
        format!("/api/v1/{plural}/{name}/status")
    } else {
        format!("/api/v1/namespaces/{namespace}/{plural}/{name}/status")
    };
    plane
        .with_client(move |client| async move {
            let request = http::Request::patch(&path)
                .header("content-type", "application/merge-patch+json")
                .body(patch.to_string().into_bytes())
                .expect("a request");
            client
                .request_text(request)
                .await
                .map_err(|e| format!("PATCH {path}: {e}"))
        })
        .unwrap_or_else(|e| panic!("{e}"));
}

/// How each daemon is started: the program and its arguments.
struct Daemons {
    install: Install,
    controller: (String, Vec<String>),
    speaker: (String, Vec<String>),
}

impl Daemons {
    fn new(install: Install, ironlb: &Path, dir: &Path) -> Daemons {
        let binary = ironlb.display().to_string();
        match install {
            Install::Ironlb => Daemons {
                install,
                controller: (binary.clone(), strings(&["controller"])),
                speaker: (
                    binary,
                    strings(&["speaker", "--metrics-addr", "127.0.0.1:7472"]),
                ),
            },
            // MetalLB's images run /controller and /speaker with these args, under its
            // securityContexts: the controller as uid 65534 with no capability, the speaker
            // as root with NET_RAW only, both unable to gain privileges.
            Install::MetalLb => {
                let link = |role: &str| {
                    let path = dir.join(role);
                    std::os::unix::fs::symlink(ironlb, &path).expect("linking the binary");
                    path.display().to_string()
                };
                let (controller, speaker) = (link("controller"), link("speaker"));
                let as_pod = |caps: &[&str], binary: String| {
                    let mut args = strings(caps);
                    args.push(binary);
                    args.extend(strings(&["--port=9120", "--log-level=info"]));
                    ("setpriv".to_string(), args)
                };
                Daemons {
                    install,
                    controller: as_pod(
                        &[
                            "--reuid=65534",
                            "--regid=65534",
                            "--clear-groups",
                            "--inh-caps=-all",
                            "--bounding-set=-all",
                            "--no-new-privs",
                        ],
                        controller,
                    ),
                    speaker: as_pod(
                        &[
                            "--inh-caps=-all,+net_raw",
                            "--ambient-caps=-all,+net_raw",
                            "--bounding-set=-all,+net_raw",
                            "--no-new-privs",
                        ],
                        speaker,
                    ),
                }
            }
        }
    }

    /// A kubeconfig the controller can read as the user its manifest runs it as: MetalLB's
    /// runs it as 65534, which may not enter the root-owned scratch directories.
    fn readable(&self, kubeconfig: &str, ca: &Path, dir: &Path) -> String {
        if self.install == Install::Ironlb {
            return kubeconfig.to_string();
        }
        use std::os::unix::fs::PermissionsExt;
        let public = |path: &Path, mode| {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                .expect("opening a lab file to the Pod's user");
        };
        let ca_copy = dir.join("ca.crt");
        std::fs::copy(ca, &ca_copy).expect("copying the CA");
        let text = std::fs::read_to_string(kubeconfig).expect("reading the kubeconfig");
        let copy = dir.join("controller.kubeconfig");
        let ca_path = ca.display().to_string();
        std::fs::write(
            &copy,
            text.replace(&ca_path, &ca_copy.display().to_string()),
        )
        .expect("writing the kubeconfig");
        public(dir, 0o755);
        public(&ca_copy, 0o644);
        public(&copy, 0o644);
        copy.display().to_string()
    }

    /// The downward API's variables each manifest sets, beyond the Pod name.
    fn controller_env(&self) -> Vec<(&'static str, &'static str)> {
        match self.install {
            Install::Ironlb => vec![("METALLB_NAMESPACE", NAMESPACE)],
            // MetalLB's manifest sets no log format: off a terminal, the logs are JSON.
            Install::MetalLb => vec![
                ("IRONLB_LOG_FORMAT", "auto"),
                ("METALLB_ML_SECRET_NAME", "memberlist"),
                ("METALLB_DEPLOYMENT", "controller"),
            ],
        }
    }
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

/// The speaker Pod on `node`, as its DaemonSet would have made it: its name and UID.
pub fn speaker_pod(plane: &ControlPlane, node: &str, account: &str) -> (String, String) {
    let name = format!("speaker-{node}");
    let pod = json!({"apiVersion": "v1", "kind": "Pod",
                     "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"app": "ironlb", "component": "speaker"}},
                     "spec": {"nodeName": node, "hostNetwork": true, "serviceAccountName": account,
                              "containers": [{"name": "speaker", "image": "ironlb:latest"}]}});
    let created = plane.apply(&pod.to_string());
    let uid = created[0]["metadata"]["uid"]
        .as_str()
        .expect("a Pod UID")
        .to_string();
    (name, uid)
}

/// The last `lines` lines of `text`.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The objects a MetalLB or ironlb install puts in the cluster before its daemons start: the
/// namespace, CRDs, RBAC, the seed ConfigMap and the two seed Services.
fn install_objects(plane: &ControlPlane, install: Install, l2_ip: &str) {
    plane.apply(&format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {NAMESPACE}}}\n"
    ));
    plane.apply(&install.crds());
    plane.until_established();
    plane.apply(&install.rbac());
    if install == Install::MetalLb {
        // The owner of the memberlist Secret; no replicas, as no kubelet would run them.
        plane.apply(&format!(
                "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: controller, namespace: {NAMESPACE}}}\nspec: {{replicas: 0, selector: {{matchLabels: {{component: controller}}}}, template: {{metadata: {{labels: {{component: controller}}}}, spec: {{containers: [{{name: controller, image: ironlb:latest}}]}}}}}}\n"
            ));
    }
    plane.apply(LEGACY_CONFIGMAP);
    plane.apply(
        &[
            service("web", BGP_IP, "Local", 80, "TCP"),
            service("lan", l2_ip, "Cluster", 53, "UDP"),
        ]
        .map(|s| s.to_string())
        .join("\n---\n"),
    );
}

/// FRR as the seed's home gateway, in the router namespace; its directory.
fn start_frr(lab: &mut SeedLan, dir: &Path) -> PathBuf {
    let frr = dir.join("frr");
    std::fs::create_dir_all(&frr).expect("FRR's directory");
    std::fs::write(frr.join("frr.conf"), seed::frr_gateway_config()).expect("FRR's config");
    lab.router.start(&Daemon::bgpd(&frr));
    frr
}
