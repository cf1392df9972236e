//! The BGP identifier a daemon gives peers that set no `routerID`.

use anyhow::{Result, bail};
use std::net::{IpAddr, Ipv4Addr};

/// `explicit` (the `--router-id` flag), else the daemon's own `address` when it is IPv4: a
/// BGP identifier is four bytes, so an IPv6 address cannot serve.
pub fn router_id(explicit: Option<Ipv4Addr>, address: IpAddr) -> Result<Ipv4Addr> {
    match (explicit, address) {
        (Some(id), _) => Ok(id),
        (None, IpAddr::V4(ip)) => Ok(ip),
        (None, IpAddr::V6(_)) => {
            bail!("{address} is IPv6: pass --router-id with an IPv4 identifier")
        }
    }
}
