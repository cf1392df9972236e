//! Pure planning: given the same snapshot, every node reaches the same decisions, so they
//! need no coordination beyond seeing the same inputs.

pub mod announce;
pub mod election;
pub mod service_key;
pub mod sessions;

pub use service_key::ServiceKey;

use announce::{Node, Plan, Service};
use config::Config;

/// Everything this node's engines run: what it announces (`announce::plan`), its sessions,
/// and the interfaces layer 2 leaves out.
pub fn node_plan(
    config: &Config,
    local: &sessions::Local,
    this: &Node,
    nodes: &[Node],
    services: &[impl std::borrow::Borrow<Service>],
) -> Plan {
    Plan {
        sessions: sessions::sessions(config, local),
        exclusions: config.interface_exclusions.clone(),
        ..announce::plan(config, this, nodes, services)
    }
}
