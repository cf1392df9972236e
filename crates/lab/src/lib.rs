//! Network-namespace labs for tests: namespaces that clean up after themselves, links
//! between them, daemons started inside them, and running test code inside one.
//!
//! Lab rules (DESIGN.md): namespace names carry a per-test prefix and the process id; only
//! documentation addresses; nothing touches the host's own interfaces or routes.

pub mod capture;
#[cfg(feature = "control-plane")]
pub mod control_plane;
pub mod crd_compat;
pub mod fixtures;
mod forward;
pub mod l2;
pub mod seed;
#[cfg(feature = "control-plane")]
pub mod seed_cluster;

pub use forward::Forward;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Whether a lab can run: root and the given programs. In CI a missing prerequisite fails
/// loudly; elsewhere the test is skipped with the reason.
pub fn ready(programs: &[&str]) -> bool {
    let mut missing: Vec<String> = programs
        .iter()
        .filter(|p| which(p).is_none())
        .map(|p| format!("{p} is not installed"))
        .collect();
    if !is_root() {
        missing.push("the test is not running as root".to_string());
    }
    if missing.is_empty() {
        return true;
    }
    let reason = missing.join(", ");
    if std::env::var_os("CI").is_some() {
        panic!(
            "lab test cannot run in CI: {reason} (run scripts/test.sh, which installs the packages)"
        );
    }
    eprintln!("SKIPPED lab test: {reason}");
    false
}

pub fn which(program: &str) -> Option<PathBuf> {
    if program.starts_with('/') {
        return Path::new(program).exists().then(|| PathBuf::from(program));
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain(["/usr/sbin".into(), "/sbin".into(), "/usr/lib/frr".into()])
        .map(|d| d.join(program))
        .find(|p| p.exists())
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Runs a command and returns its stdout; panics with its stderr when it fails.
pub fn run(program: &str, args: &[&str]) -> String {
    let o = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    assert!(
        o.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Polls `f` until it returns Some or the timeout passes.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn create(path: &Path) -> std::fs::File {
    std::fs::File::create(path).unwrap_or_else(|e| panic!("creating {}: {e}", path.display()))
}

/// Polls `done` every few milliseconds, for timing; how long until it held, if within
/// `timeout`.
pub fn time_until(timeout: Duration, mut done: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if done() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

/// The body of `GET http://addr/path` (HTTP/1.0, no client library), or an empty string
/// when nothing answers.
pub fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    let mut response = String::new();
    if let Ok(mut stream) = std::net::TcpStream::connect(addr) {
        let _ = stream.write_all(request.as_bytes());
        let _ = stream.read_to_string(&mut response);
    }
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default()
}

/// A network namespace for one test, deleted with everything started in it when dropped,
/// also when the test fails.
pub struct Netns {
    pub name: String,
    children: Vec<Child>,
    owned: bool,
}

impl Netns {
    /// `ilb-<tag>-<pid>`: unique per test and per test run.
    pub fn new(tag: &str) -> Netns {
        Netns::create(&format!("ilb-{tag}-{}", std::process::id()))
    }

    /// A namespace with exactly this name, replacing one left over by an earlier run.
    pub fn create(name: &str) -> Netns {
        let name = name.to_string();
        let _ = Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(Stdio::null())
            .status();
        run("ip", &["netns", "add", &name]);
        run("ip", &["-n", &name, "link", "set", "lo", "up"]);
        Netns {
            name,
            children: Vec::new(),
            owned: true,
        }
    }

    /// A handle on a namespace another `Netns` owns (for another thread); it deletes nothing.
    pub fn named(name: &str) -> Netns {
        Netns {
            name: name.to_string(),
            children: Vec::new(),
            owned: false,
        }
    }

    /// A directory for this namespace's configs, sockets and logs, created on first use and
    /// removed with the namespace.
    pub fn scratch(&self) -> PathBuf {
        let dir = self.scratch_path();
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn scratch_path(&self) -> PathBuf {
        std::env::temp_dir().join(&self.name)
    }

    /// Runs a command inside the namespace and returns its stdout.
    pub fn exec(&self, program: &str, args: &[&str]) -> String {
        let mut all = vec!["netns", "exec", &self.name, program];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// Like `exec`, but returns None instead of panicking on failure.
    pub fn try_exec(&self, program: &str, args: &[&str]) -> Option<String> {
        let o = Command::new("ip")
            .args(["netns", "exec", &self.name, program])
            .args(args)
            .output()
            .ok()?;
        o.status
            .success()
            .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
    }

    /// A command's stdout, whatever its exit status (probes such as `arping` and `ndisc6 -m`
    /// exit non-zero after printing what they saw).
    pub fn stdout(&self, program: &str, args: &[&str]) -> String {
        Command::new("ip")
            .args(["netns", "exec", &self.name, program])
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    /// The MAC address of interface `dev`, lower case.
    pub fn mac(&self, dev: &str) -> String {
        self.stdout("ip", &["link", "show", dev])
            .split_whitespace()
            .skip_while(|w| *w != "link/ether")
            .nth(1)
            .unwrap_or_default()
            .to_lowercase()
    }

    /// The MAC this host's kernel has for `ip` on eth0, if any.
    pub fn neighbor(&self, ip: &str) -> Option<String> {
        self.stdout("ip", &["neigh", "show", ip, "dev", "eth0"])
            .split_whitespace()
            .skip_while(|w| *w != "lladdr")
            .nth(1)
            .map(str::to_lowercase)
    }

    /// Resolves `ip` afresh on eth0, as a host sending traffic would, and returns the MAC.
    pub fn resolve(&self, ip: &str) -> Option<String> {
        let _ = self.stdout("ip", &["neigh", "flush", "to", ip, "dev", "eth0"]);
        let _ = self.stdout("ping", &["-c", "1", "-W", "1", ip]);
        self.neighbor(ip)
    }

    /// The MACs that answer three ARP requests for `ip` on `dev`, one entry per reply.
    pub fn arping(&self, dev: &str, ip: &str) -> Vec<String> {
        self.stdout("arping", &["-c", "3", "-w", "3", "-i", dev, ip])
            .lines()
            .filter(|l| l.contains("bytes from"))
            .filter_map(|l| l.split_whitespace().nth(3).map(str::to_lowercase))
            .collect()
    }

    /// The MACs that answer one Neighbor Solicitation for `ip` on `dev`, one entry per
    /// Advertisement (`-m` keeps `ndisc6` listening for a whole second after the first).
    pub fn ndisc6(&self, dev: &str, ip: &str) -> Vec<String> {
        self.stdout("ndisc6", &["-m", "-n", "-r", "1", "-w", "1000", ip, dev])
            .lines()
            .filter_map(|l| l.strip_prefix("Target link-layer address: "))
            .map(|mac| mac.trim().to_lowercase())
            .collect()
    }

    /// Starts a long-running program inside the namespace; it is killed on drop.
    pub fn spawn(&mut self, program: &str, args: &[&str]) -> u32 {
        self.spawn_to(program, args, Stdio::null(), Stdio::null())
    }

    /// Like `spawn`, with the program's stdout going to `log`.
    pub fn spawn_logged(&mut self, program: &str, args: &[&str], log: &Path) -> u32 {
        self.spawn_to(program, args, Stdio::from(create(log)), Stdio::null())
    }

    /// Like `spawn`, with the program's stdout going to `out` and its stderr to `err`.
    pub fn spawn_logs(&mut self, program: &str, args: &[&str], out: &Path, err: &Path) -> u32 {
        let (out, err) = (create(out), create(err));
        self.spawn_to(program, args, Stdio::from(out), Stdio::from(err))
    }

    /// Like `spawn_logs`, with `env` added to the program's environment (the downward API's
    /// variables, as a kubelet sets them).
    pub fn spawn_env(
        &mut self,
        program: &str,
        args: &[&str],
        env: &[(&str, &str)],
        out: &Path,
        err: &Path,
    ) -> u32 {
        let (out, err) = (create(out), create(err));
        self.spawn_with(program, args, env, Stdio::from(out), Stdio::from(err))
    }

    fn spawn_to(&mut self, program: &str, args: &[&str], stdout: Stdio, stderr: Stdio) -> u32 {
        self.spawn_with(program, args, &[], stdout, stderr)
    }

    fn spawn_with(
        &mut self,
        program: &str,
        args: &[&str],
        env: &[(&str, &str)],
        stdout: Stdio,
        stderr: Stdio,
    ) -> u32 {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.name, program])
            .args(args)
            // The labs read ironlb's logs as text; a test that wants MetalLB's JSON says so.
            .env("IRONLB_LOG_FORMAT", "text")
            .envs(env.iter().copied())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {program}: {e}"));
        let pid = child.id();
        self.children.push(child);
        pid
    }

    /// The body of `GET http://addr/path` from inside the namespace (see `http_get`).
    pub fn http_get(&self, addr: &str, path: &str) -> String {
        let (addr, path) = (addr.to_string(), path.to_string());
        self.run_inside(move || http_get(&addr, &path))
    }

    /// Kills a program `spawn` started with SIGKILL (no goodbye, no cleanup) and reaps it.
    pub fn kill(&mut self, pid: u32) {
        if let Some(i) = self.children.iter().position(|c| c.id() == pid) {
            let mut child = self.children.swap_remove(i);
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Runs `f` on a thread that lives inside this namespace: sockets it opens are the
    /// namespace's. The calling thread stays where it was.
    pub fn run_inside<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/var/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("opening {path}: {e}"));
            use std::os::fd::AsRawFd;
            // SAFETY: the fd is a valid network-namespace file; setns only affects this thread.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(
                rc,
                0,
                "setns into {path}: {}",
                std::io::Error::last_os_error()
            );
            f()
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if !self.owned {
            return;
        }
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Ok(o) = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
        {
            for pid in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
        let _ = std::fs::remove_dir_all(self.scratch_path());
    }
}

/// Connects two namespaces with a veth pair, `veth0` in `a` and `veth1` in `b`, and gives
/// each end its addresses (CIDR form).
pub fn link(a: &Netns, a_addrs: &[&str], b: &Netns, b_addrs: &[&str]) {
    link_named((a, "veth0", a_addrs), (b, "veth1", b_addrs));
}

/// `link` with the ends' names given, for a namespace with more than one link.
pub fn link_named((a, ea, a_addrs): End, (b, eb, b_addrs): End) {
    run(
        "ip",
        &[
            "link", "add", ea, "netns", &a.name, "type", "veth", "peer", "name", eb, "netns",
            &b.name,
        ],
    );
    for (ns, dev, addrs) in [(a, ea, a_addrs), (b, eb, b_addrs)] {
        for addr in addrs {
            // nodad: IPv6 addresses are usable at once, not after duplicate detection.
            let mut args = vec!["-n", &ns.name, "addr", "add", addr, "dev", dev];
            if addr.contains(':') {
                args.push("nodad");
            }
            run("ip", &args);
        }
        run("ip", &["-n", &ns.name, "link", "set", dev, "up"]);
    }
}

/// One end of a veth pair: its namespace, its name and its addresses.
pub type End<'a> = (&'a Netns, &'a str, &'a [&'a str]);

/// A LAN: a bridge in `switch` with one port per host. Each host's end is `eth0`, with its
/// addresses (CIDR form).
pub fn lan(switch: &Netns, hosts: &[(&Netns, &[&str])]) {
    run(
        "ip",
        &["-n", &switch.name, "link", "add", "br0", "type", "bridge"],
    );
    run("ip", &["-n", &switch.name, "link", "set", "br0", "up"]);
    for (i, (host, addrs)) in hosts.iter().enumerate() {
        let port = format!("p{i}");
        run(
            "ip",
            &[
                "link",
                "add",
                &port,
                "netns",
                &switch.name,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                &host.name,
            ],
        );
        // No duplicate address detection on the host side, so its link-local address (which
        // NDP tools send from) is usable at once.
        run(
            "ip",
            &[
                "netns",
                "exec",
                &host.name,
                "sysctl",
                "-qw",
                "net.ipv6.conf.eth0.accept_dad=0",
            ],
        );
        run(
            "ip",
            &["-n", &switch.name, "link", "set", &port, "master", "br0"],
        );
        run("ip", &["-n", &switch.name, "link", "set", &port, "up"]);
        for addr in addrs.iter() {
            run(
                "ip",
                &["-n", &host.name, "addr", "add", addr, "dev", "eth0"],
            );
        }
        run("ip", &["-n", &host.name, "link", "set", "eth0", "up"]);
    }
}

/// A routing daemon's command line, kept so a lab can start it (again).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Daemon {
    pub program: String,
    pub args: Vec<String>,
}

/// Where a lab's gobgpd serves its gRPC API, inside the daemon's namespace.
const GOBGP_HOST: &str = "127.0.0.1";
const GOBGP_PORT: &str = "50051";

/// A `gobgp` command line for the lab's gobgpd: its API address, then `args`.
pub fn gobgp_cli<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut all = vec!["-u", GOBGP_HOST, "-p", GOBGP_PORT];
    all.extend_from_slice(args);
    all
}

impl Daemon {
    /// BIRD 2 in the foreground with `dir/<name>.conf`; its control socket is
    /// `dir/<name>.ctl` (see `bird_socket`).
    pub fn bird(dir: &Path, name: &str) -> Daemon {
        let file = |ext: &str| dir.join(format!("{name}.{ext}")).display().to_string();
        Daemon {
            program: "bird".into(),
            args: vec![
                "-f".into(),
                "-c".into(),
                file("conf"),
                "-s".into(),
                file("ctl"),
                "-P".into(),
                file("pid"),
            ],
        }
    }

    pub fn bird_socket(dir: &Path, name: &str) -> String {
        dir.join(format!("{name}.ctl")).display().to_string()
    }

    /// GoBGP's gobgpd with `dir/gobgp.toml`; `gobgp_cli` talks to it.
    pub fn gobgpd(dir: &Path) -> Daemon {
        Daemon {
            program: "gobgpd".into(),
            args: vec![
                "-f".into(),
                dir.join("gobgp.toml").display().to_string(),
                "--api-hosts".into(),
                format!("{GOBGP_HOST}:{GOBGP_PORT}"),
            ],
        }
    }

    /// FRR's bgpd with `dir/frr.conf` and its vty socket in `dir`, without zebra. The
    /// directory is handed to the frr user, which bgpd drops to.
    pub fn bgpd(dir: &Path) -> Daemon {
        let mut bgpd = Daemon::frr("bgpd", dir);
        bgpd.args.push("-Z".into());
        bgpd
    }

    /// FRR's zebra with `dir/frr.conf`: what unnumbered peering and BFD need, since zebra
    /// sends the Router Advertisements and hears the neighbour's, and relays bgpd's BFD
    /// peers to bfdd. Start it with `Netns::start_zebra`, before the others.
    pub fn zebra(dir: &Path) -> Daemon {
        Daemon::frr("zebra", dir)
    }

    /// FRR's bgpd talking to the zebra started with `zebra`.
    pub fn bgpd_on_zebra(dir: &Path) -> Daemon {
        Daemon::frr("bgpd", dir)
    }

    /// FRR's bfdd talking to the zebra started with `zebra`, its control socket in `dir`.
    pub fn bfdd(dir: &Path) -> Daemon {
        let mut bfdd = Daemon::frr("bfdd", dir);
        bfdd.args.extend([
            "--bfdctl".into(),
            dir.join("bfdd.sock").display().to_string(),
        ]);
        bfdd
    }

    fn frr(program: &str, dir: &Path) -> Daemon {
        let d = dir.display().to_string();
        run("chown", &["-R", "frr:frr", &d]);
        Daemon {
            program: format!("/usr/lib/frr/{program}"),
            args: vec![
                "-f".into(),
                format!("{d}/frr.conf"),
                "-i".into(),
                format!("{d}/{program}.pid"),
                "-z".into(),
                format!("{d}/zserv.api"),
                "--vty_socket".into(),
                d,
            ],
        }
    }
}

impl Netns {
    /// Starts FRR's zebra (see `Daemon::zebra`) and returns once it takes clients: a
    /// daemon that finds no zebra yet retries only 10 s later.
    pub fn start_zebra(&mut self, dir: &Path) -> u32 {
        let pid = self.start(&Daemon::zebra(dir));
        let socket = dir.join("zserv.api");
        wait_for(std::time::Duration::from_secs(10), || {
            socket.exists().then_some(())
        })
        .unwrap_or_else(|| panic!("zebra never opened {}", socket.display()));
        pid
    }

    /// Starts a daemon inside the namespace; it is killed on drop.
    pub fn start(&mut self, daemon: &Daemon) -> u32 {
        let args: Vec<&str> = daemon.args.iter().map(String::as_str).collect();
        self.spawn(&daemon.program, &args)
    }
}
