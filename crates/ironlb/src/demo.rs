//! `ironlb demo`: the seed setup on one machine, in network namespaces. A looking glass
//! stands in for the home gateway (AS 64512); two nodes run `ironlb standalone` (AS 64513)
//! with the pools of `examples/legacy-configmap.yaml`; a client sits on the same LAN. It
//! shows the ECMP route and the layer-2 answer, then a failing health check and a killed
//! speaker, and removes everything on exit, Ctrl-C included.

use anyhow::{Context, Result, bail};
use ironlb_lab::seed::{self, BGP_IP, CLIENT_IP, NODES, ROUTER_IP, SeedLan};
use ironlb_lab::{Netns, which};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The namespaces the demo creates, named as in the README so users can explore them.
const NAMESPACES: [&str; 5] = ["lan", "router", "node1", "node2", "client"];

#[derive(clap::Args)]
pub struct Args {
    /// Stay up after the walkthrough until Ctrl-C, to explore with `ip netns exec client ...`.
    #[arg(long)]
    keep: bool,
}

pub fn run(args: &Args) -> Result<ExitCode> {
    preflight()?;
    let stop = Arc::new(AtomicBool::new(false));
    watch_signals(stop.clone())?;
    let dir = std::env::temp_dir().join(format!("ironlb-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let outcome = walkthrough(args, &dir, &Stop(stop));
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

struct Stop(Arc<AtomicBool>);

impl Stop {
    /// Sleeps, returning early with `Interrupted` on Ctrl-C or SIGTERM.
    fn sleep(&self, d: Duration) -> Result<()> {
        let until = Instant::now() + d;
        while Instant::now() < until {
            if self.0.load(Ordering::Relaxed) {
                return Err(Interrupted.into());
            }
            std::thread::sleep(Duration::from_millis(5).min(until - Instant::now()));
        }
        Ok(())
    }

    /// Polls `f` until it gives a value; how long that took, or `what` as the error.
    fn until<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut f: impl FnMut() -> Option<T>,
    ) -> Result<(T, Duration)> {
        let start = Instant::now();
        loop {
            if let Some(v) = f() {
                return Ok((v, start.elapsed()));
            }
            if start.elapsed() > timeout {
                bail!("{what} did not happen within {timeout:?}");
            }
            self.sleep(Duration::from_millis(5))?;
        }
    }
}

/// Ctrl-C and SIGTERM set `stop`; the walkthrough notices and unwinds, cleaning up.
fn watch_signals(stop: Arc<AtomicBool>) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the signal handler")?;
    std::thread::spawn(move || {
        runtime.block_on(crate::signals::shutdown());
        stop.store(true, Ordering::Relaxed);
    });
    Ok(())
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

/// Waits until the router's table has exactly `hops` for `prefix`, prints the table, and
/// says how long that took.
fn show_table_once(
    stop: &Stop,
    router_out: &Path,
    prefix: &str,
    hops: &[String],
    timeout: Duration,
) -> Result<Duration> {
    let what = format!("{prefix} via {}", hops.join(" and "));
    let (table, took) = stop.until(&what, timeout, || {
        let table = router_table(router_out);
        (next_hops(&table, prefix) == hops).then_some(table)
    })?;
    print!("{}", indent(&table));
    Ok(took)
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("    {l}\n")).collect()
}

fn walkthrough(args: &Args, dir: &Path, stop: &Stop) -> Result<()> {
    let ironlb: PathBuf = std::env::current_exe().context("finding the ironlb binary")?;
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
    let speakers: Vec<u32> = (0..NODES.len())
        .map(|i| lab.start_speaker(i, &ironlb, &config, dir))
        .collect();
    println!(
        "    config: {} (the example ConfigMap plus two StandaloneServices)",
        config.display()
    );
    println!("    logs:   {}", dir.display());

    let prefix = format!("{BGP_IP}/32");
    let both: Vec<String> = NODES.iter().map(|(_, ip)| ip.to_string()).collect();
    step(&format!(
        "The router learns {prefix} from both nodes (ECMP)"
    ));
    let took = show_table_once(stop, &router_out, &prefix, &both, Duration::from_secs(30))?;
    println!("    (after {took:.1?})");

    step(&format!("The client resolves the layer-2 IP {l2_ip}"));
    let (mac, _) = stop.until("the ARP answer", Duration::from_secs(10), || {
        lab.client.resolve(&l2_ip)
    })?;
    let owner = lab
        .macs
        .iter()
        .position(|m| *m == mac)
        .map_or("?", |i| NODES[i].0);
    println!("    {l2_ip} is-at {mac}  ({owner})");

    step("node1's health check fails: node1 withdraws the route");
    std::fs::remove_file(seed::health_flag(&flags, "web", NODES[0].0))?;
    let only_node2 = vec![NODES[1].1.to_string()];
    let took = show_table_once(
        stop,
        &router_out,
        &prefix,
        &only_node2,
        Duration::from_secs(10),
    )?;
    println!("    (withdrawn {took:.1?} after the check started failing)");

    step("node1's speaker is killed (SIGKILL): node2 takes over the layer-2 IP");
    lab.nodes[0].kill(speakers[0]);
    let node2_mac = lab.macs[1].clone();
    let (_, took) = stop.until("the takeover", Duration::from_secs(10), || {
        (lab.client.neighbor(&l2_ip).as_deref() == Some(node2_mac.as_str())).then_some(())
    })?;
    println!(
        "    client's ARP cache: {l2_ip} is-at {node2_mac}  (node2, {took:.1?} after the kill)"
    );

    if args.keep {
        step("Staying up; press Ctrl-C to clean up. Try:");
        println!("    ip netns exec client ip neigh");
        println!("    ip netns exec node2 curl -s 127.0.0.1:7472/metrics | grep metallb_");
        println!("    cat {}", router_out.display());
        loop {
            stop.sleep(Duration::from_secs(3600))?;
        }
    }
    Ok(())
}
