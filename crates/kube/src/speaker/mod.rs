//! The speaker's Kubernetes side: what it reads (`view`), the status objects and events it
//! writes (`status`), and the reflectors that feed it (`sources`) with what it keeps of
//! each object (`records`).

pub mod records;
pub mod sources;
pub mod status;
pub mod view;
pub mod writer;
