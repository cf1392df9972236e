//! Pure planning: given the same snapshot, every node reaches the same decisions, so they
//! need no coordination beyond seeing the same inputs. The `Planner` keeps its answers
//! between passes only to skip what did not change: its plan is the one a fresh pass gives.

pub mod announce;
pub mod election;
pub mod planner;
pub mod service_key;
pub mod sessions;

pub use planner::Planner;
pub use service_key::ServiceKey;
