//! `ironlb looking-glass`: a passive BGP receiver that prints what peers announce, live, as
//! a router's `show ip bgp` would.

use crate::router_id::router_id;
use anyhow::{Context, Result, anyhow};
use ironlb_bgp::looking_glass::{Event, Options, serve};
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Address to listen on, with an optional port (default 179): 192.0.2.1, [2001:db8::1]:1179.
    #[arg(long)]
    listen: String,
    /// The AS number the looking glass speaks as (the router's, when it stands in for one).
    #[arg(long)]
    asn: u32,
    /// Accept only these peers: ADDR or ADDR:ASN ([IPv6]:ASN). Without any, anyone may connect
    /// and its AS is taken from its OPEN.
    #[arg(long = "peer")]
    peers: Vec<String>,
    /// BGP identifier; defaults to the listen address when it is IPv4.
    #[arg(long)]
    router_id: Option<Ipv4Addr>,
    #[arg(long, default_value_t = 90)]
    hold_time: u16,
}

fn listen_addr(s: &str) -> Result<SocketAddr> {
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let ip: IpAddr = s
        .trim_matches(|c| c == '[' || c == ']')
        .parse()
        .map_err(|_| anyhow!("--listen {s:?} is not an address (192.0.2.1 or 192.0.2.1:179)"))?;
    Ok(SocketAddr::new(ip, 179))
}

fn peer(s: &str) -> Result<(IpAddr, Option<u32>)> {
    let bad = || anyhow!("--peer {s:?}: write ADDR or ADDR:ASN, with IPv6 as [2001:db8::2]:64513");
    if let Some(rest) = s.strip_prefix('[') {
        let (ip, asn) = rest.split_once(']').ok_or_else(bad)?;
        let asn = asn
            .strip_prefix(':')
            .map(|a| a.parse().map_err(|_| bad()))
            .transpose()?;
        return Ok((ip.parse().map_err(|_| bad())?, asn));
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok((ip, None));
    }
    let (ip, asn) = s.split_once(':').ok_or_else(bad)?;
    Ok((
        ip.parse().map_err(|_| bad())?,
        Some(asn.parse().map_err(|_| bad())?),
    ))
}

pub fn run(args: &Args) -> Result<ExitCode> {
    let addr = listen_addr(&args.listen)?;
    let router_id = router_id(args.router_id, addr.ip())?;
    let peers = args
        .peers
        .iter()
        .map(|p| peer(p))
        .collect::<Result<Vec<_>>>()?;
    let options = Options {
        local_asn: args.asn,
        router_id,
        peers,
        hold_time: args.hold_time,
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let listener = ironlb_bgp::transport::listen(addr, &[]).with_context(|| format!("listening on {addr}"))?;
        println!("% looking glass: AS {} listening on {addr}", args.asn);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(serve(listener, options, tx));
        let mut out = std::io::stdout();
        loop {
            tokio::select! {
                event = rx.recv() => {
                    let Some(event) = event else { break };
                    let text = match event {
                        Event::Established { peer, asn } => format!("% {peer} (AS {asn}) established\n"),
                        Event::Down { peer, reason } => format!("% {peer} down: {reason}\n"),
                        Event::Table(table) => format!("\n{table}"),
                    };
                    // A closed stdout (a pipe whose reader left) ends the program.
                    if out.write_all(text.as_bytes()).and_then(|()| out.flush()).is_err() {
                        break;
                    }
                }
                _ = tokio::signal::ctrl_c() => break,
            }
        }
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_peers_parse() {
        assert_eq!(
            listen_addr("192.0.2.1").unwrap(),
            "192.0.2.1:179".parse().unwrap()
        );
        assert_eq!(
            listen_addr("[2001:db8::1]:1179").unwrap(),
            "[2001:db8::1]:1179".parse().unwrap()
        );
        assert_eq!(
            listen_addr("2001:db8::1").unwrap(),
            "[2001:db8::1]:179".parse().unwrap()
        );
        assert_eq!(
            peer("192.0.2.2").unwrap(),
            ("192.0.2.2".parse().unwrap(), None)
        );
        assert_eq!(
            peer("192.0.2.2:64513").unwrap(),
            ("192.0.2.2".parse().unwrap(), Some(64513))
        );
        assert_eq!(
            peer("2001:db8::2").unwrap(),
            ("2001:db8::2".parse().unwrap(), None)
        );
        assert_eq!(
            peer("[2001:db8::2]:64513").unwrap(),
            ("2001:db8::2".parse().unwrap(), Some(64513))
        );
        assert!(peer("router").is_err());
        assert!(listen_addr("gateway").is_err());
    }
}
