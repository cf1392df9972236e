//! A real Kubernetes control plane for tests: etcd, kube-apiserver and, when a test asks,
//! kube-controller-manager, started from the binaries controller-runtime's envtest uses
//! (`KUBEBUILDER_ASSETS`; etcd from there or from PATH), on free loopback ports, with
//! certificates made in the test process and RBAC on.
//!
//! Processes are started by one keeper thread that lives as long as the test binary, with
//! the kernel told to kill them when it goes (`PR_SET_PDEATHSIG`). So no process outlives its
//! test binary, even when a test panics or the binary is killed, and a control plane shared
//! by every test of a binary (`ControlPlane::shared`) is torn down when the binary exits.

mod apply;
pub mod audit;
mod keeper;
mod pki;

pub use apply::{apply_yaml, documents};
pub use pki::Pki;

use crate::wait_for;
pub use keeper::{Process, spawn};
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How a control plane is started.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Also run kube-controller-manager (EndpointSlices from Pods, namespace deletion,
    /// garbage collection, `default` ServiceAccounts).
    pub controller_manager: bool,
    /// Addresses besides loopback that clients use to reach the API server (through
    /// `Netns::forward`), for its serving certificate.
    pub addresses: Vec<IpAddr>,
    /// Serve IPv6 Services too (dual-stack Service ranges), for labs whose Services need
    /// more addresses than IPv4's documentation ranges hold.
    pub dual_stack: bool,
}

/// The ClusterIP ranges: plain data, as nothing routes to a ClusterIP in a lab.
const SERVICE_RANGE: &str = "10.96.0.0/16";
const SERVICE_RANGE_V6: &str = "2001:db8:96::/112";

/// A running control plane. Dropping it stops its processes and removes its files.
pub struct ControlPlane {
    dir: tempfile::TempDir,
    pub pki: Pki,
    /// The API server's secure port on 127.0.0.1.
    pub port: u16,
    etcd_port: u16,
    assets: Assets,
    processes: Mutex<Processes>,
    /// How long the API server took to become ready the first time.
    pub started_in: Duration,
    dual_stack: bool,
}

#[derive(Default)]
struct Processes {
    etcd: Option<Process>,
    apiserver: Option<Process>,
    controller_manager: Option<Process>,
}

/// Where the binaries are.
#[derive(Clone, Debug)]
struct Assets {
    apiserver: PathBuf,
    controller_manager: PathBuf,
    etcd: PathBuf,
}

impl Assets {
    /// `KUBEBUILDER_ASSETS`, or the workspace's `../shared/envtest` as `scripts/test.sh` sets
    /// it; etcd from there or PATH.
    fn find() -> Result<Assets, String> {
        let dir = std::env::var_os("KUBEBUILDER_ASSETS")
            .map(PathBuf::from)
            .or_else(|| {
                let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/envtest");
                shared.exists().then_some(shared)
            })
            .ok_or("KUBEBUILDER_ASSETS is not set")?;
        let bin = |name: &str| {
            let path = dir.join(name);
            path.exists()
                .then_some(path)
                .ok_or_else(|| format!("{name} is not in {}", dir.display()))
        };
        Ok(Assets {
            apiserver: bin("kube-apiserver")?,
            controller_manager: bin("kube-controller-manager")?,
            etcd: bin("etcd")
                .ok()
                .or_else(|| crate::which("etcd"))
                .ok_or("etcd is neither in KUBEBUILDER_ASSETS nor on PATH (Debian: etcd-server)")?,
        })
    }
}

/// Whether a control plane can start here. In CI a missing binary fails the test; elsewhere
/// it is skipped with one line saying how to get the binaries.
pub fn ready() -> bool {
    match Assets::find() {
        Ok(_) => true,
        Err(reason) if std::env::var_os("CI").is_some() => {
            panic!("control-plane test cannot run in CI: {reason} (run scripts/test.sh)")
        }
        Err(reason) => {
            eprintln!(
                "SKIPPED control-plane test: {reason}; get the binaries with `setup-envtest use -p path` and set KUBEBUILDER_ASSETS, and install etcd"
            );
            false
        }
    }
}

/// A free TCP port on loopback (bound, read and released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl ControlPlane {
    /// One control plane for the whole test binary, with kube-controller-manager and the
    /// given addresses in its certificate; tests share it with a namespace each. The first
    /// caller's options win.
    pub fn shared(options: Options) -> &'static ControlPlane {
        static SHARED: OnceLock<ControlPlane> = OnceLock::new();
        SHARED.get_or_init(|| {
            let plane = ControlPlane::start(options);
            keeper::at_exit(plane.dir.path());
            plane
        })
    }

    /// The shared control plane (`shared`) with `deploy/crds/` installed and Established, for
    /// tests of what ironlb reads and writes.
    pub fn shared_with_crds() -> &'static ControlPlane {
        static INSTALLED: OnceLock<()> = OnceLock::new();
        let plane = ControlPlane::shared(Options::default());
        INSTALLED.get_or_init(|| {
            plane.apply(&crate::seed_cluster::manifests(
                &crate::seed_cluster::deploy_dir().join("crds"),
            ));
            plane.until_established();
        });
        plane
    }

    /// Waits until every CustomResourceDefinition is Established (served).
    pub fn until_established(&self) {
        wait_for(Duration::from_secs(30), || {
            let crds = self.list("/apis/apiextensions.k8s.io/v1/customresourcedefinitions");
            let established = |crd: &serde_json::Value| {
                crd["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == "Established" && c["status"] == "True")
            };
            (!crds.is_empty() && crds.iter().all(established)).then_some(())
        })
        .expect("every CRD becomes Established within 30 s");
    }

    /// Creates namespace `name` (a test's own, in a shared control plane).
    pub fn namespace(&self, name: &str) -> String {
        self.apply(&format!(
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {name}}}\n"
        ));
        name.to_string()
    }

    pub fn start(options: Options) -> ControlPlane {
        let assets = Assets::find().unwrap_or_else(|e| panic!("{e}"));
        // etcd's fsyncs cost seconds on a busy disk; a tmpfs makes them free.
        let base = Path::new("/dev/shm");
        let dir = tempfile::Builder::new()
            .prefix("ilb-cp-")
            .tempdir_in(if base.is_dir() {
                base
            } else {
                Path::new("/tmp")
            })
            .expect("a directory for the control plane");
        let pki = Pki::create(dir.path(), &options.addresses);
        let mut plane = ControlPlane {
            pki,
            port: free_port(),
            etcd_port: free_port(),
            assets,
            processes: Mutex::default(),
            started_in: Duration::ZERO,
            dual_stack: options.dual_stack,
            dir,
        };
        std::fs::write(plane.dir.path().join("audit-policy.yaml"), audit::POLICY)
            .expect("writing the audit policy");
        let began = Instant::now();
        plane.start_servers();
        plane.started_in = began.elapsed();
        if options.controller_manager {
            plane.start_controller_manager();
        }
        plane
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `https://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    pub fn admin_kubeconfig(&self) -> PathBuf {
        self.dir.path().join("admin.kubeconfig")
    }

    fn write_admin_kubeconfig(&self) {
        let user = format!(
            "{{client-certificate: '{}', client-key: '{}'}}",
            self.pki.admin_cert.display(),
            self.pki.admin_key.display()
        );
        std::fs::write(self.admin_kubeconfig(), self.kubeconfig(&self.url(), &user))
            .expect("writing the admin kubeconfig");
    }

    /// A kubeconfig for `server` with the CA and `user` (a YAML flow mapping).
    fn kubeconfig(&self, server: &str, user: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: test, cluster: {{server: '{server}', certificate-authority: '{}'}}}}]\nusers: [{{name: test, user: {user}}}]\ncontexts: [{{name: test, context: {{cluster: test, user: test}}}}]\ncurrent-context: test\n",
            self.pki.ca.display()
        )
    }

    /// A client with the admin's certificate (`system:masters`).
    pub async fn client(&self) -> kube::Client {
        client_from(&self.admin_kubeconfig()).await
    }

    /// Runs `f` with an admin client, from sync code (see `block_on`).
    pub fn with_client<T, F, Fut>(&self, f: F) -> T
    where
        F: FnOnce(kube::Client) -> Fut + Send + 'static,
        Fut: Future<Output = T>,
        T: Send + 'static,
    {
        let admin = self.admin_kubeconfig();
        block_on(move || async move { f(client_from(&admin).await).await })
    }

    /// Applies a YAML stream as the admin (see `apply_yaml`); panics naming what failed.
    pub fn apply(&self, yaml: &str) -> Vec<serde_json::Value> {
        let yaml = yaml.to_string();
        self.with_client(|client| async move { apply_yaml(&client, &yaml, false).await })
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// `GET path` as the admin, as JSON; None when the server answers with an error.
    pub fn get(&self, path: &str) -> Option<serde_json::Value> {
        self.get_as(path, "application/json")
    }

    /// The list at `path` as the Table `kubectl get` prints (the CRD's printer columns).
    pub fn table(&self, path: &str) -> Option<serde_json::Value> {
        self.get_as(path, "application/json;as=Table;v=v1;g=meta.k8s.io")
    }

    fn get_as(&self, path: &str, accept: &str) -> Option<serde_json::Value> {
        let (path, accept) = (path.to_string(), accept.to_string());
        self.with_client(move |client| async move {
            let request = http::Request::get(&path)
                .header("accept", accept)
                .body(Vec::new())
                .ok()?;
            let text = client.request_text(request).await.ok()?;
            serde_json::from_str(&text).ok()
        })
    }

    /// The IPs in Service `namespace/name`'s `status.loadBalancer.ingress` (none when it has
    /// none, or does not exist).
    pub fn ingress(&self, namespace: &str, name: &str) -> Vec<String> {
        let svc = self
            .get(&format!("/api/v1/namespaces/{namespace}/services/{name}"))
            .unwrap_or_default();
        svc["status"]["loadBalancer"]["ingress"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i["ip"].as_str().map(str::to_string))
            .collect()
    }

    /// `DELETE path` as the admin; panics when the server refuses.
    pub fn delete(&self, path: &str) {
        let path = path.to_string();
        self.with_client(move |client| async move {
            let request = http::Request::delete(&path)
                .body(Vec::new())
                .expect("a request");
            client
                .request_text(request)
                .await
                .map_err(|e| format!("DELETE {path}: {e}"))
        })
        .unwrap_or_else(|e| panic!("{e}"));
    }

    /// The `items` of the list at `path` (empty when the server answers with an error).
    pub fn list(&self, path: &str) -> Vec<serde_json::Value> {
        self.get(path)
            .and_then(|l| l["items"].as_array().cloned())
            .unwrap_or_default()
    }

    /// A kubeconfig holding ServiceAccount `namespace/name`'s own token (TokenRequest, one
    /// hour), so a process runs under exactly the RBAC granted to it. `server` replaces the
    /// loopback URL, for a process in a lab namespace that reaches the API server through a
    /// forward.
    pub fn service_account_kubeconfig(
        &self,
        namespace: &str,
        name: &str,
        server: Option<&str>,
    ) -> PathBuf {
        let (ns, sa) = (namespace.to_string(), name.to_string());
        let token = self.with_client(|client| async move { token(&client, &ns, &sa).await });
        let path = self
            .dir
            .path()
            .join(format!("sa-{namespace}-{name}.kubeconfig"));
        let server = server.map(str::to_string).unwrap_or_else(|| self.url());
        std::fs::write(
            &path,
            self.kubeconfig(&server, &format!("{{token: '{token}'}}")),
        )
        .expect("writing a ServiceAccount kubeconfig");
        path
    }

    /// Starts etcd and the API server. A port another process took between being chosen and
    /// being bound (tests start planes in parallel) shows as an exit; the pair then starts
    /// again on fresh ports.
    fn start_servers(&mut self) {
        for attempt in 1.. {
            self.write_admin_kubeconfig();
            if self.start_etcd() && self.try_start_apiserver() {
                return;
            }
            if attempt == 3 {
                panic!(
                    "the control plane did not start\n--- etcd\n{}\n--- apiserver\n{}",
                    self.log("etcd"),
                    self.log("apiserver")
                );
            }
            *self.processes.lock().unwrap() = Processes::default();
            (self.port, self.etcd_port) = (free_port(), free_port());
        }
    }

    /// Whether etcd came up healthy (and is ours: a health answer from a process that took
    /// the port first does not count).
    fn start_etcd(&self) -> bool {
        let peer = free_port();
        let client = format!("http://127.0.0.1:{}", self.etcd_port);
        let peer = format!("http://127.0.0.1:{peer}");
        let data = self.dir.path().join("etcd");
        let args = [
            "--data-dir".to_string(),
            data.display().to_string(),
            format!("--listen-client-urls={client}"),
            format!("--advertise-client-urls={client}"),
            format!("--listen-peer-urls={peer}"),
            format!("--initial-advertise-peer-urls={peer}"),
            format!("--initial-cluster=default={peer}"),
        ];
        let process = self.spawn(&self.assets.etcd, &args, "etcd");
        self.processes.lock().unwrap().etcd = Some(process);
        let etcd = SocketAddr::from(([127, 0, 0, 1], self.etcd_port));
        let exited = || {
            self.processes
                .lock()
                .unwrap()
                .etcd
                .as_mut()
                .is_none_or(Process::exited)
        };
        wait_for(Duration::from_secs(30), || {
            let healthy = http(etcd, "GET", "/health", "").is_some_and(|b| b.contains("true"));
            (healthy || exited()).then_some(())
        });
        !exited()
    }

    fn apiserver_args(&self) -> Vec<String> {
        let d = self.dir.path();
        let p = |path: &Path| path.display().to_string();
        let cert_dir = d.join("apiserver-certs");
        vec![
            format!("--etcd-servers=http://127.0.0.1:{}", self.etcd_port),
            "--bind-address=127.0.0.1".into(),
            "--advertise-address=127.0.0.1".into(),
            format!("--secure-port={}", self.port),
            format!("--tls-cert-file={}", p(&self.pki.serving_cert)),
            format!("--tls-private-key-file={}", p(&self.pki.serving_key)),
            format!("--client-ca-file={}", p(&self.pki.ca)),
            format!(
                "--service-account-key-file={}",
                p(&self.pki.service_account_pub)
            ),
            format!(
                "--service-account-signing-key-file={}",
                p(&self.pki.service_account_key)
            ),
            "--service-account-issuer=https://kubernetes.default.svc".into(),
            "--authorization-mode=RBAC".into(),
            if self.dual_stack {
                format!("--service-cluster-ip-range={SERVICE_RANGE},{SERVICE_RANGE_V6}")
            } else {
                format!("--service-cluster-ip-range={SERVICE_RANGE}")
            },
            // 127.0.0.1 is not a valid Endpoints address.
            "--endpoint-reconciler-type=none".into(),
            "--allow-privileged=true".into(),
            // There is no kubelet: Pods never get their token volume, so the plugin that
            // requires their ServiceAccount to exist first only gets in the way.
            "--disable-admission-plugins=ServiceAccount".into(),
            format!("--cert-dir={}", p(&cert_dir)),
            format!("--audit-policy-file={}", p(&d.join("audit-policy.yaml"))),
            format!("--audit-log-path={}", p(&self.audit_log())),
            "--audit-log-format=json".into(),
            // Written as they happen, so a test reads its own requests at once.
            "--audit-log-mode=blocking".into(),
        ]
    }

    /// Starts the API server (again, on the same etcd, port and certificates) and waits until
    /// `/readyz` says ok.
    pub fn start_apiserver(&self) {
        if !self.try_start_apiserver() {
            panic!(
                "kube-apiserver did not become ready\n{}",
                self.log("apiserver")
            );
        }
    }

    fn try_start_apiserver(&self) -> bool {
        let process = self.spawn(&self.assets.apiserver, &self.apiserver_args(), "apiserver");
        self.processes.lock().unwrap().apiserver = Some(process);
        wait_for(Duration::from_secs(60), || {
            let exited = self.processes.lock().unwrap().apiserver.as_mut()?.exited();
            (exited || readyz(&self.admin_kubeconfig())).then_some(())
        })
        .is_some_and(|()| {
            !self
                .processes
                .lock()
                .unwrap()
                .apiserver
                .as_mut()
                .is_none_or(Process::exited)
        })
    }

    /// The API server's process id, for benchmarks that time its CPU.
    pub fn apiserver_pid(&self) -> Option<u32> {
        self.processes
            .lock()
            .unwrap()
            .apiserver
            .as_ref()
            .map(Process::pid)
    }

    /// Kills the API server (SIGKILL); etcd and everything stored stay.
    pub fn kill_apiserver(&self) {
        self.processes.lock().unwrap().apiserver.take();
    }

    pub fn start_controller_manager(&self) {
        let p = |path: &Path| path.display().to_string();
        let args = vec![
            format!("--kubeconfig={}", p(&self.admin_kubeconfig())),
            "--bind-address=127.0.0.1".into(),
            "--secure-port=0".into(),
            "--leader-elect=false".into(),
            format!(
                "--service-account-private-key-file={}",
                p(&self.pki.service_account_key)
            ),
            format!("--root-ca-file={}", p(&self.pki.ca)),
            "--use-service-account-credentials=false".into(),
        ];
        let process = self.spawn(&self.assets.controller_manager, &args, "controller-manager");
        self.processes.lock().unwrap().controller_manager = Some(process);
    }

    fn spawn(&self, program: &Path, args: &[String], name: &str) -> Process {
        let log = self.dir.path().join(format!("{name}.log"));
        keeper::spawn(program, args, &[], &log)
    }

    /// A process's log (stderr and stdout), for a failing test to print.
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{name}.log"))).unwrap_or_default()
    }

    pub fn audit_log(&self) -> PathBuf {
        self.dir.path().join("audit.log")
    }

    /// Every request the API server has logged so far.
    pub fn audit(&self) -> Vec<audit::Event> {
        audit::read(&self.audit_log())
    }

    /// Compacts etcd's history up to its current revision, so any watch or list from an
    /// older resourceVersion is answered 410 Gone. Returns the revision.
    pub fn compact_etcd(&self) -> u64 {
        let etcd = SocketAddr::from(([127, 0, 0, 1], self.etcd_port));
        // The key "/" exists in no cluster; the answer's header has the revision anyway.
        let range = http(etcd, "POST", "/v3/kv/range", r#"{"key": "Lw=="}"#)
            .expect("etcd answers a range request");
        let revision: u64 = serde_json::from_str::<serde_json::Value>(&range)
            .ok()
            .and_then(|v| v["header"]["revision"].as_str()?.parse().ok())
            .unwrap_or_else(|| panic!("no revision in etcd's answer: {range}"));
        let body = format!(r#"{{"revision": "{revision}", "physical": true}}"#);
        http(etcd, "POST", "/v3/kv/compaction", &body).expect("etcd compacts");
        revision
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        // Each process is killed as it is dropped: the ones that use the others go first.
        let mut processes = self.processes.lock().unwrap_or_else(|e| e.into_inner());
        processes.controller_manager.take();
        processes.apiserver.take();
        processes.etcd.take();
    }
}

/// A client from a kubeconfig file.
pub async fn client_from(kubeconfig: &Path) -> kube::Client {
    let file = kube::config::Kubeconfig::read_from(kubeconfig)
        .unwrap_or_else(|e| panic!("reading {}: {e}", kubeconfig.display()));
    let config = kube::Config::from_custom_kubeconfig(file, &Default::default())
        .await
        .expect("a client config from the kubeconfig");
    kube::Client::try_from(config).expect("a client")
}

/// ServiceAccount `namespace/name`'s own token, from the TokenRequest API.
pub async fn token(client: &kube::Client, namespace: &str, name: &str) -> String {
    use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
    use k8s_openapi::api::core::v1::ServiceAccount;
    let api: kube::Api<ServiceAccount> = kube::Api::namespaced(client.clone(), namespace);
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec!["https://kubernetes.default.svc".into()],
            expiration_seconds: Some(3600),
            ..Default::default()
        },
        ..Default::default()
    };
    let answer = api
        .create_token_request(name, &Default::default(), &request)
        .await
        .unwrap_or_else(|e| panic!("a token for ServiceAccount {namespace}/{name}: {e}"));
    answer
        .status
        .map(|s| s.token)
        .expect("the TokenRequest has a token")
}

/// Runs the future `make` makes to completion on a runtime of its own, on a thread of its
/// own, so that sync tests and async ones alike can call the harness (the future is made on
/// that thread, so it need not be `Send`).
pub fn block_on<T, F, Fut>(make: F) -> T
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T>,
    T: Send + 'static,
{
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(make())
    })
    .join()
    .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

/// One plain HTTP/1.0 request to `addr` (etcd's client port); the body of a 2xx answer.
fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let request = format!(
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    head.split_whitespace()
        .nth(1)
        .filter(|code| code.starts_with('2'))
        .map(|_| body.to_string())
}

/// Whether the API server answers `/readyz` with ok.
fn readyz(kubeconfig: &Path) -> bool {
    let kubeconfig = kubeconfig.to_path_buf();
    block_on(move || async move {
        let client = client_from(&kubeconfig).await;
        let request = http::Request::get("/readyz")
            .body(Vec::new())
            .expect("a request");
        let answer = tokio::time::timeout(Duration::from_secs(2), client.request_text(request));
        matches!(answer.await, Ok(Ok(text)) if text.trim() == "ok")
    })
}
