//! Reads the node's links and their addresses from the kernel over rtnetlink,
//! for `interfaces::answering` to choose from, once or kept current.

use crate::interfaces::Link;
use futures::{StreamExt, TryStreamExt};
use ipnet::IpNet;
use netlink_packet_route::address::AddressAttribute;
use netlink_packet_route::link::{LinkAttribute, LinkFlags};
use rtnetlink::MulticastGroup;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use tokio::sync::watch;
use tokio::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("cannot open a netlink socket: {0}")]
    Socket(#[from] std::io::Error),
    #[error("netlink dump failed: {0}")]
    Dump(#[from] rtnetlink::Error),
}

/// Every link in this network namespace, in kernel index order (inside a tokio runtime).
pub async fn scan() -> Result<Vec<Link>, ScanError> {
    let (connection, handle, _) = rtnetlink::new_connection()?;
    let connection = tokio::spawn(connection);
    let result = dump(&handle).await;
    connection.abort();
    result
}

/// The links, kept current: rescanned on every link or address event from the kernel, so a
/// new or returning NIC answers within milliseconds, and every `backstop` in case events were
/// lost (the kernel drops them when the socket buffer overflows). Stops when every receiver
/// is gone.
pub async fn follow(backstop: Duration) -> Result<watch::Receiver<Vec<Link>>, ScanError> {
    let (connection, handle, mut events) = rtnetlink::new_multicast_connection(&[
        MulticastGroup::Link,
        MulticastGroup::Ipv4Ifaddr,
        MulticastGroup::Ipv6Ifaddr,
    ])?;
    let connection = tokio::spawn(connection);
    let (tx, rx) = watch::channel(dump(&handle).await?);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = tx.closed() => break,
                event = events.next() => {
                    if event.is_none() {
                        tracing::error!("netlink event stream ended; interfaces are no longer followed");
                        break;
                    }
                    // One rescan covers a burst of events.
                    while events.try_recv().is_ok() {}
                }
                () = tokio::time::sleep(backstop) => {}
            }
            match dump(&handle).await {
                Ok(links) => {
                    tx.send_if_modified(|current| {
                        let changed = *current != links;
                        *current = links;
                        changed
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "rescanning interfaces failed; keeping the last view")
                }
            }
        }
        connection.abort();
    });
    Ok(rx)
}

async fn dump(handle: &rtnetlink::Handle) -> Result<Vec<Link>, ScanError> {
    let mut with_link_local = BTreeSet::new();
    let mut networks: BTreeMap<u32, Vec<IpNet>> = BTreeMap::new();
    let mut addresses = handle.address().get().execute();
    while let Some(msg) = addresses.try_next().await? {
        for a in &msg.attributes {
            let AddressAttribute::Address(ip) = a else {
                continue;
            };
            match ip {
                IpAddr::V6(v6) if v6.is_unicast_link_local() => {
                    with_link_local.insert(msg.header.index);
                }
                _ => {
                    if let Ok(net) = IpNet::new(*ip, msg.header.prefix_len) {
                        networks.entry(msg.header.index).or_default().push(net);
                    }
                }
            }
        }
    }

    let mut links = Vec::new();
    let mut dump = handle.link().get().execute();
    while let Some(msg) = dump.try_next().await? {
        let flags = msg.header.flags;
        let mut link = Link {
            index: msg.header.index,
            up: flags.contains(LinkFlags::Up),
            noarp: flags.contains(LinkFlags::Noarp),
            broadcast: flags.contains(LinkFlags::Broadcast),
            ipv6_link_local: with_link_local.contains(&msg.header.index),
            networks: networks.remove(&msg.header.index).unwrap_or_default(),
            ..Link::default()
        };
        for attribute in msg.attributes {
            match attribute {
                LinkAttribute::IfName(name) => link.name = name,
                LinkAttribute::Controller(_) => link.enslaved = true,
                _ => {}
            }
        }
        links.push(link);
    }
    Ok(links)
}
