//! `ironlb doctor`: run on a node, it says why traffic to a Service IP may not arrive,
//! from this node's point of view: the configuration, the interfaces that would answer ARP
//! and NDP, whether each layer-2 pool lies on a LAN this node is on, and whether each BGP
//! peer is reachable and accepts a connection. With `--webhooks`, whether the API server can
//! call the controller's webhooks (`webhooks`). Every finding names its fix.

mod webhooks;

use crate::inputs;
use anyhow::{Context, Result};
use config::documents::ReadOptions;
use config::{Config, PeerRemote};
use ipnet::IpNet;
use ironlb_bgp::unnumbered::{self, Heard, Neighbor};
use ironlb_l2::interfaces::{Answering, Exclusions, answering};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(clap::Args)]
pub struct Args {
    /// The configuration: metallb.io resources, the legacy ConfigMap, or a standalone file.
    #[arg(required_unless_present = "webhooks")]
    paths: Vec<PathBuf>,
    /// Check through the API server that it can call the controller's webhooks.
    #[arg(long)]
    webhooks: bool,
    /// The Secret the controller keeps the webhooks' keys in.
    #[arg(long, default_value = "metallb-webhook-cert")]
    webhook_secret: String,
    #[command(flatten)]
    cluster: crate::cluster::Cluster,
    /// This node's name, for the peers' and advertisements' nodeSelectors (with Node objects
    /// in the files).
    #[arg(long, env = "IRONLB_NODE")]
    node: Option<String>,
    /// How long to wait for a BGP peer to accept a connection.
    #[arg(long, default_value = "2s", value_parser = humantime_secs)]
    timeout: Duration,
}

fn humantime_secs(s: &str) -> Result<Duration, String> {
    let n = s.strip_suffix('s').unwrap_or(s);
    n.parse::<f64>()
        .ok()
        .filter(|v| *v > 0.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("{s:?}: write seconds, e.g. 2s or 0.5s"))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Ok,
    Warn,
    Fail,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub level: Level,
    pub what: String,
    pub fix: Option<String>,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.level {
            Level::Ok => "ok  ",
            Level::Warn => "warn",
            Level::Fail => "FAIL",
        };
        write!(f, "{level} {}", self.what)?;
        if let Some(fix) = &self.fix {
            write!(f, "\n     fix: {fix}")?;
        }
        Ok(())
    }
}

fn finding(level: Level, what: String, fix: Option<&str>) -> Finding {
    Finding {
        level,
        what,
        fix: fix.map(str::to_string),
    }
}

/// What the interfaces mean for layer 2. Pure.
pub fn layer2(config: &Config, interfaces: &[Answering]) -> Vec<Finding> {
    let mut out = Vec::new();
    let l2_pools: Vec<&config::Pool> = config
        .pools
        .values()
        .filter(|p| config.l2_advertisements_for(&p.name).next().is_some())
        .collect();
    if l2_pools.is_empty() {
        return out;
    }
    let arp: Vec<&Answering> = interfaces.iter().filter(|a| a.arp).collect();
    if arp.is_empty() {
        out.push(finding(
            Level::Fail,
            "no interface here can answer ARP (all are down, excluded, NOARP or bridge members)"
                .into(),
            Some("bring the LAN interface up, or remove it from metallb-excludel2"),
        ));
    } else {
        let names: Vec<&str> = arp.iter().map(|a| a.name.as_str()).collect();
        out.push(finding(
            Level::Ok,
            format!("interfaces answering ARP: {}", names.join(", ")),
            None,
        ));
    }
    let networks: Vec<(&str, IpNet)> = interfaces
        .iter()
        .flat_map(|a| a.networks.iter().map(move |n| (a.name.as_str(), *n)))
        .collect();
    for pool in l2_pools {
        for cidr in &pool.cidrs {
            let holder = networks
                .iter()
                .find(|(_, n)| n.contains(&cidr.network()) && n.contains(&cidr.broadcast()));
            match holder {
                Some((name, net)) => out.push(finding(
                    Level::Ok,
                    format!("pool {} {cidr} lies in {name}'s network {net}", pool.name),
                    None,
                )),
                None => out.push(finding(
                    Level::Warn,
                    format!(
                        "pool {} {cidr} lies in no network of this node: hosts on the LAN will not ask for its IPs by ARP",
                        pool.name
                    ),
                    Some("take the pool's addresses from the LAN's subnet, or announce the pool over BGP instead"),
                )),
            }
            let own: Vec<String> = interfaces
                .iter()
                .flat_map(|a| a.networks.iter())
                .filter(|n| cidr.contains(&n.addr()))
                .map(|n| n.addr().to_string())
                .collect();
            if !own.is_empty() {
                out.push(finding(
                    Level::Fail,
                    format!(
                        "pool {} {cidr} contains this node's own address {}",
                        pool.name,
                        own.join(", ")
                    ),
                    Some("leave the nodes' addresses out of the pool"),
                ));
            }
        }
    }
    out
}

/// How a TCP connection to a peer went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reach {
    Accepted,
    Refused,
    NoAnswer,
    /// Unnumbered: no router advertised itself on the interface.
    Unheard(String),
    Error(String),
}

/// What the peers selecting `labels` mean, given how reaching each went. Pure.
pub fn peers(
    config: &Config,
    labels: &config::resources::Labels,
    interfaces: &[Answering],
    reach: impl Fn(&config::Peer) -> Reach,
) -> Vec<Finding> {
    let mut out = Vec::new();
    for p in config.peers_for(labels) {
        let at = match &p.remote {
            PeerRemote::Address(a) => SocketAddr::new(*a, p.port).to_string(),
            PeerRemote::Interface(i) => format!("interface {i}, port {}", p.port),
        };
        // An unnumbered peer is on its interface's link by definition.
        let connected = p.remote.address().is_none_or(|address| {
            interfaces
                .iter()
                .flat_map(|a| a.networks.iter())
                .any(|n| n.contains(&address))
        });
        if !connected && !p.ebgp_multihop && !p.is_ibgp() {
            out.push(finding(
                Level::Warn,
                format!(
                    "peer {} ({at}) is on no network of this node, and ebgpMultiHop is off",
                    p.name
                ),
                Some("set ebgpMultiHop: true on the BGPPeer (and multihop on the router)"),
            ));
        }
        out.push(match reach(p) {
            Reach::Accepted => finding(Level::Ok, format!("peer {} ({at}) accepts connections", p.name), None),
            Reach::Refused => finding(
                Level::Fail,
                format!("peer {} ({at}) refuses connections: nothing listens for BGP there", p.name),
                Some("configure the router to peer with this node (see `ironlb router-config`), and check the address and port"),
            ),
            Reach::NoAnswer => finding(
                Level::Fail,
                format!("peer {} ({at}) does not answer", p.name),
                Some("check the route to the router and that a firewall lets TCP 179 through"),
            ),
            Reach::Unheard(e) => finding(
                Level::Fail,
                format!("peer {} ({at}): {e}", p.name),
                Some("make the router advertise itself on that link (FRR does for `neighbor IFACE interface`), and check the interface name"),
            ),
            Reach::Error(e) => finding(
                Level::Fail,
                format!("peer {} ({at}): {e}", p.name),
                Some("check this node's routes towards the router"),
            ),
        });
    }
    out
}

pub fn run(args: &Args) -> Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let mut findings = Vec::new();
    if !args.paths.is_empty() {
        findings.extend(node_findings(args, &runtime)?);
    }
    if args.webhooks {
        let client = runtime.block_on(args.cluster.client())?;
        let namespace = args.cluster.namespace();
        let check = webhooks::check(&client, &namespace, &args.webhook_secret);
        findings.extend(runtime.block_on(check));
    }
    for f in &findings {
        println!("{f}");
    }
    let worst = findings.iter().map(|f| f.level).max().unwrap_or(Level::Ok);
    Ok(if worst == Level::Fail {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The configuration in `args.paths` as this node sees it: its interfaces and its peers.
fn node_findings(args: &Args, runtime: &tokio::runtime::Runtime) -> Result<Vec<Finding>> {
    let (resources, problems) = inputs::read(&args.paths, &ReadOptions::default())?;
    let outcome = config::build_read(&resources, problems);
    let mut findings: Vec<Finding> = outcome
        .problems
        .iter()
        .map(|p| {
            let level = match p.severity {
                config::Severity::Error => Level::Fail,
                config::Severity::Warning => Level::Warn,
            };
            finding(level, format!("configuration: {p}"), None)
        })
        .collect();
    let Some(config) = &outcome.config else {
        findings.push(finding(
            Level::Fail,
            "the configuration is invalid, so nothing else was checked".into(),
            Some("correct the problems above (ironlb validate lists them too)"),
        ));
        return Ok(findings);
    };
    let links = runtime
        .block_on(ironlb_l2::links::scan())
        .context("reading this node's interfaces over netlink")?;
    let exclusions = Exclusions::configured(config.interface_exclusions.as_deref());
    let interfaces = answering(&links, &exclusions);
    findings.extend(layer2(config, &interfaces));
    let labels = args
        .node
        .as_ref()
        .and_then(|n| resources.nodes.get(n).cloned())
        .unwrap_or_default();
    let timeout = args.timeout;
    let reach = |p: &config::Peer| {
        runtime.block_on(async {
            let at = match &p.remote {
                PeerRemote::Address(a) => SocketAddr::new(*a, p.port),
                PeerRemote::Interface(i) => match router_on(i, p.port, timeout).await {
                    Ok(at) => at,
                    Err(unheard) => return unheard,
                },
            };
            connect(at, p.source_address, timeout).await
        })
    };
    findings.extend(peers(config, &labels, &interfaces, reach));
    Ok(findings)
}

/// The unnumbered router on `interface`, as the speaker finds it: from its Router
/// Advertisements, solicited.
async fn router_on(interface: &str, port: u16, timeout: Duration) -> Result<SocketAddr, Reach> {
    let mut neighbor = Neighbor::follow(interface);
    let heard = tokio::time::timeout(timeout, async {
        loop {
            if let Heard::Router(r) = neighbor.heard() {
                return r;
            }
            neighbor.changed().await;
        }
    })
    .await;
    let router = match heard {
        Ok(r) => r,
        Err(_) => {
            return Err(Reach::Unheard(match neighbor.heard() {
                Heard::Failed(why) => why,
                _ => format!("no Router Advertisement heard on {interface} within {timeout:?}"),
            }));
        }
    };
    unnumbered::dial_address(router, interface, port)
        .map_err(|e| Reach::Error(format!("interface {interface}: {e}")))
}

async fn connect(at: SocketAddr, source: Option<IpAddr>, timeout: Duration) -> Reach {
    let socket = match if at.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    } {
        Ok(s) => s,
        Err(e) => return Reach::Error(e.to_string()),
    };
    if let Some(source) = source
        && let Err(e) = socket.bind(SocketAddr::new(source, 0))
    {
        return Reach::Error(format!("binding the source address {source}: {e}"));
    }
    match tokio::time::timeout(timeout, socket.connect(at)).await {
        Ok(Ok(_)) => Reach::Accepted,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => Reach::Refused,
        Ok(Err(e)) => Reach::Error(e.to_string()),
        Err(_) => Reach::NoAnswer,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Config {
        let text = format!(
            "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {{name: lan}}\nspec: {{addresses: [192.0.2.128/25]}}\n---\napiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {{name: lan}}\nspec: {{ipAddressPools: [lan]}}\n---\napiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {{name: gw}}\nspec: {{myASN: 64513, peerASN: 64512, peerAddress: 192.0.2.1}}\n{extra}"
        );
        ironlb_lab::fixtures::config(&text)
    }

    fn nic(name: &str, net: &str) -> Answering {
        Answering {
            name: name.into(),
            arp: true,
            networks: vec![net.parse().unwrap()],
            ..Answering::default()
        }
    }

    fn levels(findings: &[Finding]) -> Vec<(Level, &str)> {
        findings
            .iter()
            .map(|f| (f.level, f.what.as_str()))
            .collect()
    }

    #[test]
    fn layer2_pools_on_and_off_the_lan() {
        let cfg = config("");
        let on = layer2(&cfg, &[nic("eth0", "192.0.2.2/24")]);
        assert_eq!(
            levels(&on),
            [
                (Level::Ok, "interfaces answering ARP: eth0"),
                (
                    Level::Ok,
                    "pool lan 192.0.2.128/25 lies in eth0's network 192.0.2.2/24"
                ),
            ]
        );
        let off = layer2(&cfg, &[nic("eth0", "198.51.100.2/24")]);
        assert_eq!(off[1].level, Level::Warn, "{off:?}");
        let own = layer2(&cfg, &[nic("eth0", "192.0.2.130/24")]);
        assert!(
            own.iter()
                .any(|f| f.level == Level::Fail && f.what.contains("own address 192.0.2.130"))
        );
        let none = layer2(&cfg, &[]);
        assert_eq!(none[0].level, Level::Fail);
    }

    #[test]
    fn peers_reached_refused_silent_and_off_network() {
        let cfg = config("");
        let lan = [nic("eth0", "192.0.2.2/24")];
        let labels = Default::default();
        let ok = peers(&cfg, &labels, &lan, |_| Reach::Accepted);
        assert_eq!(
            levels(&ok),
            [(Level::Ok, "peer gw (192.0.2.1:179) accepts connections")]
        );
        let refused = peers(&cfg, &labels, &lan, |_| Reach::Refused);
        assert_eq!(refused[0].level, Level::Fail);
        assert!(refused[0].fix.as_deref().unwrap().contains("router-config"));
        let far = peers(&cfg, &labels, &[nic("eth0", "198.51.100.2/24")], |_| {
            Reach::NoAnswer
        });
        assert_eq!(far[0].level, Level::Warn);
        assert!(far[0].what.contains("ebgpMultiHop is off"));
        assert_eq!(far[1].level, Level::Fail);
    }
}
