//! Layer 2: this node answers ARP for the IPs it owns, and announces a takeover at once with
//! gratuitous ARP. Which node owns an IP is decided elsewhere (`plan::election`).

pub mod arp;
pub mod ndp;
pub mod responder;
mod socket;
