//! One node of a layer-2 lab: membership, the election and the responder, as a process the
//! failover test and benchmark can kill with SIGKILL.
//!
//! usage: l2_agent NAME INTERFACE VIP GOSSIP_ADDR [OTHER_NAME=OTHER_GOSSIP_ADDR ...]
//! Prints `owner NAME` each time the owner it computes changes.

use ironlb_l2::responder::Responder;
use ironlb_membership::{Timers, join};
use ironlb_plan::election::owner;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Until gossip has been heard, a node would think it is alone and claim everything.
const BOOTSTRAP: Duration = Duration::from_secs(2);

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
        let responder = Responder::start(interface).expect("responder");
        let seeds: Vec<SocketAddr> = names.keys().copied().filter(|a| *a != local).collect();
        let membership = join(local, seeds, Timers::default(), names.len() as u32).await.expect("membership");
        let mut live = membership.live.clone();
        let started = tokio::time::Instant::now();
        let mut last: Option<String> = None;
        loop {
            let members = live.borrow_and_update().clone();
            if members.len() > 1 || started.elapsed() >= BOOTSTRAP {
                let alive: Vec<&str> = members.iter().filter_map(|a| names.get(a).map(String::as_str)).collect();
                let winner = owner(&vip, &alive).map(str::to_string);
                let claims: BTreeSet<IpAddr> = if winner.as_deref() == Some(me.as_str()) { BTreeSet::from([vip]) } else { BTreeSet::new() };
                responder.set_claims(claims);
                if winner != last {
                    println!("owner {}", winner.as_deref().unwrap_or("-"));
                    let _ = std::io::stdout().flush();
                    last = winner;
                }
            }
            tokio::select! {
                changed = live.changed() => if changed.is_err() { return },
                () = tokio::time::sleep_until(started + BOOTSTRAP), if started.elapsed() < BOOTSTRAP => {}
            }
        }
    });
}
