//! `ironlb router-config`: the router side of the peering, derived from the peers and pools.
//! The peering is computed once (`peering.rs`); each router dialect only renders it.

mod bird;
mod edgeos;
mod frr;
mod opnsense;
mod peering;
mod routeros;
mod vyos;

use crate::inputs;
use anyhow::{Result, bail};
use config::documents::ReadOptions;
pub use peering::{Nodes, Peering};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Router {
    /// FRR, and FRR-based gateways: UniFi OS (UDM, UCG, UXG), pfSense FRR.
    Frr,
    /// BIRD 2 (plain Linux routers, OpenWrt).
    Bird,
    /// EdgeRouter / UniFi USG `set` commands.
    Edgeos,
    /// UniFi USG `config.gateway.json`.
    UsgJson,
    /// VyOS 1.4+.
    Vyos,
    /// MikroTik RouterOS 7.
    Routeros7,
    /// OPNsense os-frr plugin, as GUI settings.
    Opnsense,
}

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, value_enum)]
    router: Router,
    /// The nodes that peer: IPs separated by commas, or one CIDR for a listen range.
    #[arg(long)]
    nodes: Option<String>,
    /// The BGPPeer to generate for, when the config has peers for several routers.
    #[arg(long)]
    peer: Option<String>,
    #[arg(long, default_value = api::legacy::CONFIGMAP_NAMESPACE)]
    namespace: String,
    /// Files or directories of the MetalLB configuration.
    #[arg(required = true)]
    config: Vec<PathBuf>,
}

/// What a renderer produces: the configuration, and what the user must know about it.
pub struct Rendered {
    pub text: String,
    pub warnings: Vec<String>,
}

pub fn render(router: Router, peering: &Peering) -> Result<Rendered> {
    let mut warnings = peering::warnings(peering);
    let text = match router {
        Router::Frr => frr::render(peering, &mut warnings),
        Router::Bird => bird::render(peering, &warnings),
        Router::Edgeos => edgeos::render_commands(peering, &mut warnings)?,
        Router::UsgJson => edgeos::render_json(peering, &mut warnings)?,
        Router::Vyos => vyos::render(peering, &warnings),
        Router::Routeros7 => routeros::render(peering, &mut warnings),
        Router::Opnsense => opnsense::render(peering, &mut warnings),
    };
    Ok(Rendered { text, warnings })
}

pub fn run(args: &Args) -> Result<ExitCode> {
    let options = ReadOptions {
        namespace: args.namespace.clone(),
    };
    let (resources, problems) = inputs::read(&args.config, &options)?;
    let outcome = config::build_read(&resources, problems);
    let Some(config) = outcome.config else {
        for problem in outcome.errors() {
            eprintln!("{problem}");
        }
        eprintln!("the configuration is invalid; run `ironlb validate` for every problem");
        return Ok(ExitCode::FAILURE);
    };
    let Some(nodes) = &args.nodes else {
        bail!(
            "pass --nodes with the nodes' IPs (192.0.2.2,192.0.2.3) or their subnet (192.0.2.0/24)"
        );
    };
    let nodes: Nodes = nodes.parse()?;
    let peering = Peering::from_config(&config, nodes, args.peer.as_deref())?;
    let rendered = render(args.router, &peering)?;
    for warning in &rendered.warnings {
        eprintln!("warning: {warning}");
    }
    print!("{}", rendered.text);
    Ok(ExitCode::SUCCESS)
}

/// The title and the warnings as comment lines, so a saved file still carries them.
fn header(prefix: &str, p: &Peering, warnings: &[String]) -> String {
    let mut out = format!(
        "{prefix} ironlb: router side of the BGP peering with the cluster (AS {})\n",
        p.cluster_asn
    );
    for w in warnings {
        out.push_str(&format!("{prefix} WARNING: {w}\n"));
    }
    out
}
