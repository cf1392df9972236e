//! BGP for ironlb: the wire codec (sans-IO), the RFC 4271 session, and the speaker.

pub mod session;
pub mod wire;
