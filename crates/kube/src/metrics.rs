//! Prometheus metrics under MetalLB's names, so existing dashboards keep working.

use crate::controller::writes::{Metrics as PassMetrics, PoolCounts};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabel {
    pool: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WebhookLabel {
    path: &'static str,
}

/// The metrics as MetalLB serves them: Prometheus' text format 0.0.4 (what the Go client
/// writes), in which a counter keeps its name as MetalLB spells it, `_total` or not. The
/// registry holds every series as a gauge (OpenMetrics would rename counters), and the
/// families named in `counters` are declared counters here; they only ever grow.
pub fn encode(registry: &Registry, counters: &[&str]) -> String {
    let mut open_metrics = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut open_metrics, registry);
    let mut out = String::with_capacity(open_metrics.len());
    for line in open_metrics.lines().filter(|l| *l != "# EOF") {
        let counter = line
            .strip_prefix("# TYPE ")
            .and_then(|rest| rest.strip_suffix(" gauge"))
            .filter(|name| counters.contains(name));
        match counter {
            Some(name) => out.push_str(&format!("# TYPE {name} counter")),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// Where the text format is served with its content type.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How the writes to the API server went, under MetalLB's names: every object write
/// attempted, and those that failed (a refused permission, a conflict, an unreachable
/// server). Both daemons register them; clones count into the same series.
#[derive(Clone, Debug, Default)]
pub struct ClientMetrics {
    updates: Gauge,
    errors: Gauge,
}

impl ClientMetrics {
    /// MetalLB's counter names for them, for `encode`.
    pub const COUNTERS: [&str; 2] = [
        "metallb_k8s_client_updates_total",
        "metallb_k8s_client_update_errors_total",
    ];

    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            Self::COUNTERS[0],
            "Number of k8s object updates that have been processed",
            self.updates.clone(),
        );
        registry.register(
            Self::COUNTERS[1],
            "Number of k8s object updates that failed for some reason",
            self.errors.clone(),
        );
    }

    pub fn record(&self, attempted: usize, failed: usize) {
        self.updates.inc_by(attempted as i64);
        self.errors.inc_by(failed as i64);
    }
}

type PoolRead = fn(&PoolCounts) -> i64;

/// The allocator's gauges, per pool: MetalLB's names (its `_total`s are gauges too).
const POOL_GAUGES: [(&str, &str, PoolRead); 7] = [
    (
        "metallb_allocator_addresses_in_use_total",
        "Number of IP addresses in use, per pool",
        |p| p.in_use.0 + p.in_use.1,
    ),
    (
        "metallb_allocator_addresses_total",
        "Number of usable IP addresses, per pool",
        |p| p.total.0.saturating_add(p.total.1),
    ),
    (
        "metallb_allocator_ipv4_addresses_in_use_total",
        "Number of IPv4 addresses in use, per pool",
        |p| p.in_use.0,
    ),
    (
        "metallb_allocator_ipv6_addresses_in_use_total",
        "Number of IPv6 addresses in use, per pool",
        |p| p.in_use.1,
    ),
    (
        "metallb_allocator_ipv4_addresses_total",
        "Number of usable IPv4 addresses, per pool",
        |p| p.total.0,
    ),
    (
        "metallb_allocator_ipv6_addresses_total",
        "Number of usable IPv6 addresses, per pool",
        |p| p.total.1,
    ),
    (
        "metallb_allocator_services_allocated_total",
        "Number of Services given IPs from the pool",
        |p| p.services,
    ),
];

/// The controller's metrics.
pub struct ControllerMetrics {
    registry: Registry,
    pub client: ClientMetrics,
    pools: Vec<(PoolRead, Family<PoolLabel, Gauge>)>,
    stale: Gauge,
    loaded: Gauge,
    reachable: Family<WebhookLabel, Gauge>,
}

impl Default for ControllerMetrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let client = ClientMetrics::default();
        client.register(&mut registry);
        let pools = POOL_GAUGES
            .iter()
            .map(|(name, help, read)| {
                let family = Family::<PoolLabel, Gauge>::default();
                registry.register(*name, *help, family.clone());
                (*read, family)
            })
            .collect();
        let stale = Gauge::default();
        let loaded = Gauge::default();
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
        let reachable = Family::<WebhookLabel, Gauge>::default();
        registry.register(
            "ironlb_webhooks_reachable",
            "1 when the API server could call the webhooks when last asked (through the BGPPeer conversion), 0 when it could not; absent while unknown",
            reachable.clone(),
        );
        ControllerMetrics {
            registry,
            client,
            pools,
            stale,
            loaded,
            reachable,
        }
    }
}

impl ControllerMetrics {
    pub fn update(&self, m: &PassMetrics) {
        self.stale.set(i64::from(m.config_stale));
        self.loaded.set(i64::from(m.config_loaded));
        for (read, family) in &self.pools {
            // Pools that disappeared lose their series.
            family.clear();
            for pool in &m.pools {
                let label = PoolLabel {
                    pool: pool.pool.clone(),
                };
                family.get_or_create(&label).set(read(pool));
            }
        }
    }

    pub fn set_webhooks_reachable(&self, reachable: Option<bool>) {
        self.reachable.clear();
        if let Some(up) = reachable {
            let label = WebhookLabel { path: "/convert" };
            self.reachable.get_or_create(&label).set(i64::from(up));
        }
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        encode(&self.registry, &ClientMetrics::COUNTERS)
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
            pools: vec![PoolCounts {
                pool: "lan".into(),
                in_use: (2, 1),
                total: (64, 64),
                services: 2,
            }],
        });
        let text = m.encode();
        for line in [
            "# TYPE metallb_allocator_addresses_in_use_total gauge",
            "metallb_allocator_addresses_in_use_total{pool=\"lan\"} 3",
            "# TYPE metallb_allocator_addresses_total gauge",
            "metallb_allocator_addresses_total{pool=\"lan\"} 128",
            "metallb_allocator_ipv4_addresses_in_use_total{pool=\"lan\"} 2",
            "metallb_allocator_ipv6_addresses_total{pool=\"lan\"} 64",
            "metallb_allocator_services_allocated_total{pool=\"lan\"} 2",
            "metallb_k8s_client_config_stale_bool 1",
            "metallb_k8s_client_config_loaded_bool 1",
            "# TYPE metallb_k8s_client_updates_total counter",
            "metallb_k8s_client_updates_total 0",
            "# TYPE metallb_k8s_client_update_errors_total counter",
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
