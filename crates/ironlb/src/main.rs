//! `ironlb`: a bare-metal load balancer for Kubernetes that reads MetalLB's configuration.

mod agent;
mod cluster;
mod controller;
mod convert;
mod crds;
mod demo;
mod doctor;
mod engines;
mod gossip;
mod http;
mod inputs;
mod logs;
mod looking_glass;
mod metallb_flags;
mod router_config;
mod router_id;
mod secure_metrics;
mod signals;
mod speaker;
mod speaker_metrics;
mod standalone;
mod validate;
mod webhook;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "ironlb", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Allocate IPs for LoadBalancer Services (run in the cluster, two replicas for HA).
    Controller(controller::Args),
    /// Show the seed setup working in network namespaces on this machine (run as root).
    Demo(demo::Args),
    /// Say why traffic may not arrive, from this node: interfaces, pools, BGP peers.
    Doctor(doctor::Args),
    /// Check metallb.io resources and/or the legacy ConfigMap; exit 1 listing every error.
    Validate(validate::Args),
    /// Turn the legacy metallb-system/config ConfigMap into the equivalent metallb.io resources.
    Convert(convert::Args),
    /// Print the CustomResourceDefinitions, or write one file per CRD.
    Crds {
        /// Write `metallb.io_<plural>.yaml` files into this directory instead of stdout.
        #[arg(long)]
        out_dir: Option<PathBuf>,
    },
    /// Receive BGP from peers and print what they announce, like a router's `show ip bgp`.
    LookingGlass(looking_glass::Args),
    /// Announce Services from this node over BGP and layer 2 (run on every node).
    Speaker(speaker::Args),
    /// Announce services from a host without Kubernetes, with local health checks.
    Standalone(standalone::Args),
    /// Print the router side of the BGP peering (FRR, BIRD, EdgeOS, UniFi, VyOS, MikroTik, OPNsense).
    RouterConfig(router_config::Args),
}

impl Command {
    /// MetalLB's `--log-level`, where the daemon takes it.
    fn log_level(&self) -> Option<metallb_flags::LogLevel> {
        match self {
            Command::Controller(args) => args.metallb.log_level,
            Command::Speaker(args) => args.metallb.log_level,
            _ => None,
        }
    }

    /// The long-running daemons log as MetalLB's do; the one-shot commands as text.
    fn log_format(&self) -> logs::Format {
        match self {
            Command::Controller(_) | Command::Speaker(_) | Command::Standalone(_) => {
                logs::Format::for_daemon()
            }
            _ => logs::Format::Text,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse_from(metallb_flags::arguments(std::env::args_os()));
    // Daemons log what they do at info (or MetalLB's --log-level); RUST_LOG narrows or
    // widens it. kube's watcher logs its errors as debug dumps of the server's Status; ours
    // say the same in one line (ironlb_kube::sources), so its own are left out.
    let filter = match cli.command.log_level().map_or("info", |l| l.directive()) {
        "off" => "off".to_string(),
        level => format!("{level},kube_runtime::watcher=error"),
    };
    let format = cli.command.log_format();
    logs::init(
        tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter)),
        format,
    );
    let result = match cli.command {
        Command::Controller(args) => controller::run(&args),
        Command::Demo(args) => demo::run(&args),
        Command::Doctor(args) => doctor::run(&args),
        Command::Validate(args) => validate::run(&args),
        Command::Convert(args) => convert::run(&args),
        Command::Crds { out_dir } => crds::run(out_dir.as_deref()),
        Command::RouterConfig(args) => router_config::run(&args),
        Command::LookingGlass(args) => looking_glass::run(&args),
        Command::Speaker(args) => speaker::run(&args),
        Command::Standalone(args) => standalone::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            // A log pipeline reading JSON lines sees why the daemon stopped, too.
            if format == logs::Format::Json {
                tracing::error!(error = format!("{e:#}"), "exiting");
            } else {
                eprintln!("ironlb: {e:#}");
            }
            ExitCode::from(2)
        }
    }
}
