//! BGP for ironlb: the wire codec (sans-IO), the RFC 4271 session (sans-IO), route diffing,
//! TCP with MD5, and the speaker actor that ties them together.

mod connection;
pub mod looking_glass;
pub mod md5;
pub mod routes;
pub mod session;
pub mod speaker;
pub mod transport;
pub mod unnumbered;
pub mod wire;
