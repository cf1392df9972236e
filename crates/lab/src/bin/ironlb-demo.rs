//! `ironlb-demo` (also started by `ironlb demo`): the seed setup on one machine, in network
//! namespaces. A looking glass stands in for the home gateway (AS 64512); two nodes run
//! `ironlb standalone` (AS 64513) with the pools of `examples/legacy-configmap.yaml`; a client
//! sits on the same LAN. It shows the ECMP route and the layer-2 answer, then a failing health
//! check and a killed speaker, and removes everything on exit, Ctrl-C included.
//!
//! It lives in the lab crate, not in the `ironlb` binary, so that the product ships without
//! the lab code.

use anyhow::{Context, Result, bail};
use ironlb_lab::seed::{self, BGP_IP, CLIENT_IP, NODES, ROUTER_IP, SeedLan};
use ironlb_lab::{Netns, time_until, which};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The namespaces the demo creates, named as in the README so users can explore them.
const NAMESPACES: [&str; 5] = ["lan", "router", "node1", "node2", "client"];

const USAGE: &str = "usage: ironlb-demo [--keep] [--ironlb PATH]\n  --keep          stay up after the walkthrough until Ctrl-C, to explore with `ip netns exec client ...`\n  --ironlb PATH   the ironlb binary to run (default: the one beside this program)";

struct Args {
    keep: bool,
    ironlb: PathBuf,
}

fn main() -> ExitCode {
    match parse(std::env::args().skip(1)).and_then(|args| run(&args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ironlb-demo: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn parse(mut argv: impl Iterator<Item = String>) -> Result<Args> {
    let mut keep = false;
    let mut ironlb = None;
    while let Some(arg) = argv.next() {
        match arg.as_str() {
            "--keep" => keep = true,
            "--ironlb" => {
                ironlb = Some(PathBuf::from(argv.next().context("--ironlb needs a path")?))
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    let ironlb = match ironlb {
        Some(path) => path,
        None => std::env::current_exe()
            .context("finding this program")?
            .with_file_name("ironlb"),
    };
    if !ironlb.is_file() {
        bail!(
            "no ironlb binary at {}: build it with `cargo build --release`, or pass --ironlb PATH",
            ironlb.display()
        );
    }
    Ok(Args { keep, ironlb })
}

fn run(args: &Args) -> Result<ExitCode> {
    preflight()?;
    watch_signals();
    let dir = std::env::temp_dir().join(format!("ironlb-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let outcome = walkthrough(args, &dir);
    // The namespaces, with every process in them, went with the lab at the end of the walkthrough.
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "\nCleaned up: namespaces {} removed.",
        NAMESPACES.join(", ")
    );
    match outcome {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) if e.is::<Interrupted>() => Ok(ExitCode::from(130)),
        Err(e) => Err(e),
    }
}

fn preflight() -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("the demo creates network namespaces: run it as root (sudo ironlb demo)");
    }
    for program in ["ip", "ping"] {
        if which(program).is_none() {
            bail!("{program} is not installed: install iproute2 and iputils-ping");
        }
    }
    let existing = ironlb_lab::run("ip", &["netns", "list"]);
    for name in NAMESPACES {
        if existing
            .lines()
            .any(|l| l.split_whitespace().next() == Some(name))
        {
            bail!(
                "network namespace {name:?} already exists (another demo running?); remove it with `ip netns del {name}`"
            );
        }
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
#[error("interrupted")]
struct Interrupted;

/// Set by Ctrl-C or SIGTERM; the walkthrough notices and unwinds, cleaning up.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

fn watch_signals() {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { libc::signal(signal, on_signal as *const () as libc::sighandler_t) };
    }
}

/// Sleeps, returning early with `Interrupted` on Ctrl-C or SIGTERM.
fn sleep(d: Duration) -> Result<()> {
    let until = Instant::now() + d;
    while Instant::now() < until {
        if STOP.load(Ordering::Relaxed) {
            return Err(Interrupted.into());
        }
        std::thread::sleep(Duration::from_millis(5).min(until - Instant::now()));
    }
    Ok(())
}

/// Polls `f` (as the labs do) until it gives a value; how long that took, or `what` as the
/// error, or `Interrupted` on Ctrl-C.
fn until<T>(
    what: &str,
    timeout: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> Result<(T, Duration)> {
    let mut found = None;
    let took = time_until(timeout, || {
        STOP.load(Ordering::Relaxed) || {
            found = f();
            found.is_some()
        }
    });
    if STOP.load(Ordering::Relaxed) {
        return Err(Interrupted.into());
    }
    match (found, took) {
        (Some(v), Some(took)) => Ok((v, took)),
        _ => bail!("{what} did not happen within {timeout:?}"),
    }
}

fn step(text: &str) {
    println!("\n==> {text}");
}

/// The looking glass's latest table.
fn router_table(out: &Path) -> String {
    let text = std::fs::read_to_string(out).unwrap_or_default();
    text.rfind("BGP table")
        .map(|at| text[at..].trim_end().to_string())
        .unwrap_or_default()
}

/// The next hops the router's latest table has for `prefix`.
fn next_hops(table: &str, prefix: &str) -> Vec<String> {
    let mut hops: Vec<String> = table
        .lines()
        .filter(|l| l.split_whitespace().nth(1) == Some(prefix))
        .filter_map(|l| l.split_whitespace().nth(2).map(str::to_string))
        .collect();
    hops.sort();
    hops
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("    {l}\n")).collect()
}

/// The seed LAN with the router and both speakers running.
struct Demo {
    lab: SeedLan,
    flags: PathBuf,
    router_out: PathBuf,
    speakers: Vec<u32>,
    l2_ip: String,
}

impl Demo {
    fn start(ironlb: &Path, dir: &Path) -> Result<Demo> {
        let flags = dir.to_path_buf();
        let l2_ip = seed::l2_ip_owned_by(NODES[0].0).to_string();
        let config = dir.join("standalone.yaml");
        std::fs::write(
            &config,
            seed::standalone_file(&flags, l2_ip.parse()?, "200ms"),
        )?;
        seed::all_healthy(&flags);

        step("Building the LAN 192.0.2.0/24 in namespaces router, node1, node2 and client");
        let mut lab = SeedLan::new(Netns::create);
        println!(
            "    router {ROUTER_IP}   node1 {} ({})   node2 {} ({})   client {CLIENT_IP}",
            NODES[0].1, lab.macs[0], NODES[1].1, lab.macs[1]
        );

        step(
            "Starting the router (ironlb looking-glass, AS 64512) and a speaker on each node (AS 64513)",
        );
        let router_out = dir.join("router.out");
        let peers: Vec<String> = NODES
            .iter()
            .map(|(_, ip)| format!("--peer={ip}:{}", seed::NODE_ASN))
            .collect();
        let asn = seed::ROUTER_ASN.to_string();
        let mut lg = vec!["looking-glass", "--listen", ROUTER_IP, "--asn", &asn];
        lg.extend(peers.iter().map(String::as_str));
        lab.router
            .spawn_logged(&ironlb.display().to_string(), &lg, &router_out);
        let speakers = (0..NODES.len())
            .map(|i| lab.start_speaker(i, ironlb, &config, dir))
            .collect();
        println!(
            "    config: {} (the example ConfigMap plus two StandaloneServices)",
            config.display()
        );
        println!("    logs:   {}", dir.display());
        Ok(Demo {
            lab,
            flags,
            router_out,
            speakers,
            l2_ip,
        })
    }

    /// Waits until the router's table has exactly `hops` for `prefix`, prints the table, and
    /// says how long that took.
    fn show_table_once(&self, hops: &[String], timeout: Duration) -> Result<Duration> {
        let prefix = format!("{BGP_IP}/32");
        let what = format!("{prefix} via {}", hops.join(" and "));
        let (table, took) = until(&what, timeout, || {
            let table = router_table(&self.router_out);
            (next_hops(&table, &prefix) == hops).then_some(table)
        })?;
        print!("{}", indent(&table));
        Ok(took)
    }

    fn ecmp(&self) -> Result<()> {
        step(&format!(
            "The router learns {BGP_IP}/32 from both nodes (ECMP)"
        ));
        let both: Vec<String> = NODES.iter().map(|(_, ip)| ip.to_string()).collect();
        let took = self.show_table_once(&both, Duration::from_secs(30))?;
        println!("    (after {took:.1?})");
        Ok(())
    }

    fn layer2_answer(&self) -> Result<()> {
        let l2_ip = &self.l2_ip;
        step(&format!("The client resolves the layer-2 IP {l2_ip}"));
        let (mac, _) = until("the ARP answer", Duration::from_secs(10), || {
            self.lab.client.resolve(l2_ip)
        })?;
        let owner = self
            .lab
            .macs
            .iter()
            .position(|m| *m == mac)
            .map_or("?", |i| NODES[i].0);
        println!("    {l2_ip} is-at {mac}  ({owner})");
        Ok(())
    }

    fn failing_health_check(&self) -> Result<()> {
        step("node1's health check fails: node1 withdraws the route");
        std::fs::remove_file(seed::health_flag(&self.flags, "web", NODES[0].0))?;
        let only_node2 = vec![NODES[1].1.to_string()];
        let took = self.show_table_once(&only_node2, Duration::from_secs(10))?;
        println!("    (withdrawn {took:.1?} after the check started failing)");
        Ok(())
    }

    fn killed_speaker(&mut self) -> Result<()> {
        let l2_ip = &self.l2_ip;
        step("node1's speaker is killed (SIGKILL): node2 takes over the layer-2 IP");
        self.lab.nodes[0].kill(self.speakers[0]);
        let node2_mac = self.lab.macs[1].clone();
        let (_, took) = until("the takeover", Duration::from_secs(10), || {
            (self.lab.client.neighbor(l2_ip).as_ref() == Some(&node2_mac)).then_some(())
        })?;
        println!(
            "    client's ARP cache: {l2_ip} is-at {node2_mac}  (node2, {took:.1?} after the kill)"
        );
        Ok(())
    }

    fn stay(&self) -> Result<()> {
        step("Staying up; press Ctrl-C to clean up. Try:");
        println!("    ip netns exec client ip neigh");
        println!("    ip netns exec node2 curl -s 127.0.0.1:7472/metrics | grep metallb_");
        println!("    cat {}", self.router_out.display());
        loop {
            sleep(Duration::from_secs(3600))?;
        }
    }
}

fn walkthrough(args: &Args, dir: &Path) -> Result<()> {
    let mut demo = Demo::start(&args.ironlb, dir)?;
    demo.ecmp()?;
    demo.layer2_answer()?;
    demo.failing_health_check()?;
    demo.killed_speaker()?;
    if args.keep {
        demo.stay()?;
    }
    Ok(())
}
