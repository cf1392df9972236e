//! Layer 2: this node answers ARP and NDP for the IPs it owns, on the interfaces MetalLB would
//! choose, and announces a takeover at once with gratuitous ARP or an unsolicited
//! Advertisement. Which node owns an IP is decided elsewhere (`plan::election`).

pub mod announcer;
pub mod arp;
pub mod interfaces;
pub mod links;
pub mod ndp;
pub mod responder;
mod socket;
