//! Prometheus metrics under MetalLB's names, so existing dashboards keep working.

use crate::controller::plan::Metrics as PassMetrics;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabel {
    pool: String,
}

/// A registry's OpenMetrics text exposition.
pub fn encode(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, registry);
    out
}

/// How the writes to the API server went, under MetalLB's names: every object write
/// attempted, and those that failed (a refused permission, a conflict, an unreachable
/// server). Both daemons register them; clones count into the same series.
#[derive(Clone, Debug, Default)]
pub struct ClientMetrics {
    updates: Counter,
    errors: Counter,
}

impl ClientMetrics {
    /// Registers both counters (the registry adds `_total`).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "metallb_k8s_client_updates",
            "Number of k8s object updates that have been processed",
            self.updates.clone(),
        );
        registry.register(
            "metallb_k8s_client_update_errors",
            "Number of k8s object updates that failed for some reason",
            self.errors.clone(),
        );
    }

    pub fn record(&self, attempted: usize, failed: usize) {
        self.updates.inc_by(attempted as u64);
        self.errors.inc_by(failed as u64);
    }
}

/// The controller's metrics. The `_total` names are gauges in MetalLB too.
pub struct ControllerMetrics {
    registry: Registry,
    pub client: ClientMetrics,
    in_use: Family<PoolLabel, Gauge>,
    total: Family<PoolLabel, Gauge>,
    stale: Gauge,
    loaded: Gauge,
}

impl Default for ControllerMetrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let in_use = Family::<PoolLabel, Gauge>::default();
        let total = Family::<PoolLabel, Gauge>::default();
        let stale = Gauge::default();
        let loaded = Gauge::default();
        let client = ClientMetrics::default();
        client.register(&mut registry);
        registry.register(
            "metallb_allocator_addresses_in_use_total",
            "Number of IP addresses in use, per pool",
            in_use.clone(),
        );
        registry.register(
            "metallb_allocator_addresses_total",
            "Number of usable IP addresses, per pool",
            total.clone(),
        );
        registry.register(
            "metallb_k8s_client_config_stale_bool",
            "1 when running on a stale configuration because the latest one is invalid",
            stale.clone(),
        );
        registry.register(
            "metallb_k8s_client_config_loaded_bool",
            "1 when a valid configuration has been loaded",
            loaded.clone(),
        );
        ControllerMetrics {
            registry,
            client,
            in_use,
            total,
            stale,
            loaded,
        }
    }
}

impl ControllerMetrics {
    pub fn update(&self, m: &PassMetrics) {
        self.stale.set(i64::from(m.config_stale));
        self.loaded.set(i64::from(m.config_loaded));
        // Pools that disappeared lose their series.
        self.in_use.clear();
        self.total.clear();
        for (pool, used, total) in &m.pools {
            let label = PoolLabel { pool: pool.clone() };
            self.in_use.get_or_create(&label).set(*used);
            self.total.get_or_create(&label).set(*total);
        }
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        encode(&self.registry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_types_match_metallb() {
        let m = ControllerMetrics::default();
        m.update(&PassMetrics {
            config_stale: true,
            config_loaded: true,
            pools: vec![("lan".into(), 3, 128)],
        });
        let text = m.encode();
        for line in [
            "# TYPE metallb_allocator_addresses_in_use_total gauge",
            "metallb_allocator_addresses_in_use_total{pool=\"lan\"} 3",
            "# TYPE metallb_allocator_addresses_total gauge",
            "metallb_allocator_addresses_total{pool=\"lan\"} 128",
            "metallb_k8s_client_config_stale_bool 1",
            "metallb_k8s_client_config_loaded_bool 1",
            "# TYPE metallb_k8s_client_updates counter",
            "metallb_k8s_client_updates_total 0",
            "# TYPE metallb_k8s_client_update_errors counter",
            "metallb_k8s_client_update_errors_total 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in:\n{text}"
            );
        }
        m.update(&PassMetrics::default());
        assert!(
            !m.encode().contains("pool=\"lan\""),
            "a removed pool loses its series"
        );
    }
}
