//! The pure IP allocator for `type: LoadBalancer` Services.
//!
//! Differences from MetalLB, on purpose:
//! - Allocation is O(log n): each CIDR keeps its free addresses as intervals, so nothing
//!   scans from the first address of a pool.
//! - Order is deterministic: pinned pools by priority then name, then auto-assign pools by
//!   name (MetalLB: random); `reconcile` processes Services holding IPs first, then new ones
//!   by `namespace/name`, so the same Services always get the same IPs.

mod allocator;
mod error;
mod freeset;
mod pool;
mod service;

pub use allocator::{Allocator, Assignment, Orphan};
pub use error::AllocError;
pub use pool::is_buggy;
pub use service::{Families, Family, Labels, Port, Protocol, Service};
