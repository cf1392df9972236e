//! Pure planning: given the same snapshot, every node reaches the same decisions, so they
//! need no coordination beyond seeing the same inputs.

pub mod announce;
pub mod election;
