//! Kubernetes sources and writers for ironlb. Decisions stay pure (`controller::Controller`,
//! `service_view`); this crate's I/O only reads snapshots and writes plans.

pub mod admission;
pub mod annotations;
pub mod controller;
pub mod errors;
mod events;
pub mod leader;
pub mod memberlist_secret;
pub mod metrics;
pub mod service_view;
pub mod sources;
pub mod speaker;
pub mod webhook_cert;
pub mod writer;
