//! A minimal ironlb speaker for benchmarks: one peer, COUNT /128 routes, and one more route
//! per `add PREFIX` line on stdin, handed over as a change of one prefix. It runs as its own process so its memory can be measured
//! like the other daemons'.
//!
//! usage: announce PEER_ADDRESS LOCAL_AS PEER_AS COUNT

use ipnet::IpNet;
use ironlb_bgp::routes::{Rib, RouteAttrs};
use ironlb_bgp::speaker::{PeerConfig, Speaker};
use std::collections::BTreeMap;
use std::io::BufRead;
use std::net::Ipv4Addr;
use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, peer, local, remote, count] = args.as_slice() else {
        eprintln!("usage: announce PEER_ADDRESS LOCAL_AS PEER_AS COUNT");
        std::process::exit(2);
    };
    let parse = |s: &str| {
        s.parse::<u32>()
            .unwrap_or_else(|_| panic!("{s} is not a number"))
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let _inside = rt.enter();
    let routes: Rib = ironlb_bench::host_routes(parse(count) as usize)
        .into_iter()
        .map(|p| (p, RouteAttrs::default()))
        .collect();
    let mut speaker = Speaker::new();
    speaker.set_peers(vec![PeerConfig {
        connect_time: Some(Duration::from_secs(1)),
        ..PeerConfig::new(
            "receiver",
            peer.parse::<std::net::IpAddr>().expect("peer address"),
            parse(local),
            parse(remote),
            Ipv4Addr::new(192, 0, 2, 2),
        )
    }]);
    speaker.set_routes(BTreeMap::from([("receiver".to_string(), routes)]));
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        if let Some(prefix) = line
            .strip_prefix("add ")
            .and_then(|p| p.trim().parse::<IpNet>().ok())
        {
            speaker.change_routes("receiver", vec![(prefix, Some(RouteAttrs::default()))]);
        }
    }
}
