//! BFD (RFC 5880, single hop per RFC 5881) for ironlb's BGP peers, so a router that runs BFD
//! learns within a fraction of a second that a node is gone, instead of after the BGP hold
//! time. `packet` and `session` are pure; `driver` owns the UDP sockets, `echo` the
//! echo function's packet socket.

pub mod driver;
pub mod echo;
pub mod packet;
pub mod session;
