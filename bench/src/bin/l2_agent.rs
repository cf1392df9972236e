//! One node of a layer-2 lab: membership, the election and the announcer following the
//! node's interfaces, as a process the failover test and benchmark can kill with SIGKILL.
//!
//! usage: l2_agent NAME INTERFACE VIP GOSSIP_ADDR [OTHER_NAME=OTHER_GOSSIP_ADDR ...]
//! The VIP is answered on INTERFACE, as an L2Advertisement listing it would.
//! Prints `owner NAME` each time the owner it computes changes.

use ironlb_l2::announcer::{Announcer, Claims};
use ironlb_l2::interfaces::Exclusions;
use ironlb_l2::links;
use ironlb_membership::{Settings, join};
use ironlb_plan::election::owner;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Until gossip has been heard, a node would think it is alone and claim everything.
const BOOTSTRAP: Duration = Duration::from_secs(2);

/// MetalLB rescans interfaces every 10 s; here that is only the backstop behind netlink events.
const RESCAN: Duration = Duration::from_secs(10);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, me, interface, vip, gossip, others @ ..] = args.as_slice() else {
        eprintln!(
            "usage: l2_agent NAME INTERFACE VIP GOSSIP_ADDR [OTHER_NAME=OTHER_GOSSIP_ADDR ...]"
        );
        std::process::exit(2);
    };
    let vip: IpAddr = vip.parse().expect("VIP");
    let local: SocketAddr = gossip.parse().expect("gossip address");
    let mut names: BTreeMap<SocketAddr, String> = BTreeMap::from([(local, me.clone())]);
    for o in others {
        let (name, addr) = o.split_once('=').expect("NAME=ADDR");
        names.insert(addr.parse().expect("gossip address"), name.to_string());
    }
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async move {
        let mut links = links::follow(RESCAN).await.expect("netlink");
        let mut announcer = Announcer::new(Exclusions::default());
        let on_interface = BTreeSet::from([interface.clone()]);
        let seeds: Vec<SocketAddr> = names.keys().copied().filter(|a| *a != local).collect();
        let settings = Settings {
            expected_size: names.len() as u32,
            ..Settings::default()
        };
        let membership = join(local, seeds, settings).await.expect("membership");
        let mut live = membership.live.clone();
        let started = tokio::time::Instant::now();
        let mut last: Option<String> = None;
        loop {
            let members = live.borrow_and_update().clone();
            let mut claims = Claims::new();
            if members.len() > 1 || started.elapsed() >= BOOTSTRAP {
                let alive: Vec<&str> = members.iter().filter_map(|a| names.get(a).map(String::as_str)).collect();
                let winner = owner(&vip, &alive).map(str::to_string);
                if winner.as_deref() == Some(me.as_str()) {
                    claims.insert(vip, on_interface.clone());
                }
                if winner != last {
                    println!("owner {}", winner.as_deref().unwrap_or("-"));
                    let _ = std::io::stdout().flush();
                    last = winner;
                }
            }
            let now = links.borrow_and_update().clone();
            for ip in announcer.update(&now, &claims).keys() {
                eprintln!("announceFailed: {ip} cannot be answered on {interface}");
            }
            tokio::select! {
                changed = live.changed() => if changed.is_err() { return },
                changed = links.changed() => if changed.is_err() { return },
                () = tokio::time::sleep_until(started + BOOTSTRAP), if started.elapsed() < BOOTSTRAP => {}
            }
        }
    });
}
