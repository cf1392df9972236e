//! Builders for allocator tests: a config from pool YAML, and Services.

use config::Config;
use ironlb_alloc::{Families, Family, Port, Protocol, Service};

/// A config from `(name, spec)` pool pairs written as YAML flow mappings.
pub fn config(pools: &[(&str, &str)]) -> Config {
    let text: String = pools
        .iter()
        .map(|(name, spec)| format!("---\napiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {{name: {name}, labels: {{tier: {name}}}}}\nspec: {spec}\n"))
        .collect();
    ironlb_lab::fixtures::config(&text)
}

pub fn svc(key: &str) -> Service {
    let namespace = key.split('/').next().unwrap_or("default").to_string();
    Service {
        key: key.to_string(),
        namespace,
        labels: Default::default(),
        namespace_labels: Default::default(),
        families: Families::Single(Family::V4),
        requested: Vec::new(),
        pool: None,
        sharing_key: None,
        backend_key: String::new(),
        ports: vec![Port {
            protocol: Protocol::Tcp,
            port: 80,
        }],
    }
}
