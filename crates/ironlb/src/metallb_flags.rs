//! MetalLB's process interface: the flags and environment of MetalLB's controller and
//! speaker, so MetalLB's own Deployment, DaemonSet and Helm chart start ironlb with only the
//! image changed. Flags that mean something here do what they do in MetalLB; the others are
//! accepted and logged once at start as ignored, with the reason. None is a startup error.

use crate::http::{Endpoint, Secure};
use crate::secure_metrics::{self, Gate};
use std::net::SocketAddr;

/// `--log-level`, with MetalLB's values.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogLevel {
    All,
    Debug,
    Info,
    Warn,
    Error,
    None,
}

impl LogLevel {
    /// The tracing filter directive for it.
    pub fn directive(self) -> &'static str {
        match self {
            LogLevel::All => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
            LogLevel::None => "off",
        }
    }
}

/// What both of MetalLB's daemons take.
#[derive(clap::Args, Debug, Default)]
pub struct Common {
    /// MetalLB's log level (all, debug, info, warn, error, none); RUST_LOG, when set, wins.
    #[arg(long, value_enum)]
    pub log_level: Option<LogLevel>,
    /// MetalLB's metrics port: /metrics on every address at this port; 0 turns metrics off.
    /// Overrides --metrics-addr.
    #[arg(long)]
    pub port: Option<u16>,
    /// Where MetalLB's liveness and readiness probes ask (/healthz, /readyz); 0 turns it off.
    #[arg(long, default_value_t = 17472)]
    pub health_probe_port: u16,
    /// `tls.crt` and `tls.key` for the metrics on --port; without it, a self-signed one.
    #[arg(long)]
    pub metrics_cert_dir: Option<std::path::PathBuf>,
    #[command(flatten)]
    ignored: Ignored,
}

/// The controller's `memberlist` Secret: created when missing, as MetalLB's controller does.
#[derive(clap::Args, Debug, Default)]
pub struct MemberlistSecret {
    /// Create this Secret (key `secretkey`), which the speakers mount, when it is missing.
    #[arg(long, env = "METALLB_ML_SECRET_NAME")]
    pub ml_secret_name: Option<String>,
    /// The controller's Deployment, which owns the Secret.
    #[arg(long, env = "METALLB_DEPLOYMENT")]
    pub deployment: Option<String>,
}

/// MetalLB's flags that have no meaning for ironlb: kept so its manifests' `args:` work.
#[derive(clap::Args, Debug, Default)]
struct Ignored {
    #[arg(long, hide = true)]
    pprof_bind_address: Option<String>,
    #[arg(long, hide = true)]
    tls_min_version: Option<String>,
    #[arg(long, hide = true)]
    tls_cipher_suites: Option<String>,
    #[arg(long, hide = true)]
    tls_curve_preferences: Option<String>,
    #[arg(long, env = "METALLB_BGP_TYPE", hide = true)]
    bgp_type: Option<String>,
    // The speaker's.
    #[arg(long, env = "METALLB_ML_LABELS", hide = true)]
    ml_labels: Option<String>,
    #[arg(long, hide = true)]
    ml_wan_config: Option<String>,
    #[arg(long, env = "METALLB_HOST", hide = true)]
    host: Option<String>,
    #[arg(long, env = "METALLB_BGP_DEBOUNCE_TIMEOUT", hide = true)]
    bgp_debounce_timeout: Option<String>,
    #[arg(long, env = "FRRK8S_NAMESPACE", hide = true)]
    frrk8s_namespace: Option<String>,
    #[arg(long, hide = true, num_args = 0..=1, default_missing_value = "true")]
    frrk8s_secret_passthrough: Option<String>,
}

impl Common {
    /// Where /metrics is served: `--port` on every address, over HTTPS for authorised
    /// scrapers as MetalLB 0.16 serves it (None for 0); else plain at `default`.
    pub fn metrics_at(&self, default: SocketAddr) -> Option<(SocketAddr, bool)> {
        match self.port {
            Some(0) => None,
            Some(port) => Some((SocketAddr::from(([0, 0, 0, 0], port)), true)),
            None => Some((default, false)),
        }
    }

    /// The endpoints to serve: metrics (see `metrics_at`) and the probes on
    /// `--health-probe-port`.
    pub fn endpoints(
        &self,
        default: SocketAddr,
        client: &kube::Client,
    ) -> anyhow::Result<Vec<Endpoint>> {
        let metrics = match self.metrics_at(default) {
            Some((addr, true)) => Some(Endpoint {
                addr,
                secure: Some(Secure {
                    gate: Gate::new(client.clone()),
                    tls: secure_metrics::tls(self.metrics_cert_dir.as_deref())?,
                }),
            }),
            Some((addr, false)) => Some(Endpoint::plain(addr)),
            None => None,
        };
        let health = (self.health_probe_port != 0)
            .then(|| Endpoint::plain(SocketAddr::from(([0, 0, 0, 0], self.health_probe_port))));
        Ok(metrics.into_iter().chain(health).collect())
    }

    /// Logs once each MetalLB setting given that does nothing here, with why.
    pub fn log_ignored(&self) {
        for (setting, why) in self.ignored.given() {
            tracing::info!(setting, reason = why, "MetalLB setting ignored");
        }
    }
}

impl Ignored {
    /// Each setting given, with why it has no effect.
    fn given(&self) -> Vec<(&'static str, &'static str)> {
        const FRR: &str = "ironlb runs its own BGP speaker; there is no FRR to configure";
        const TLS: &str = "the metrics' TLS takes rustls' safe defaults (TLS 1.2 and 1.3, modern suites and curves)";
        let set = |v: &Option<String>| v.is_some();
        [
            (
                set(&self.pprof_bind_address),
                "--pprof-bind-address",
                "ironlb has no Go profiler",
            ),
            (set(&self.tls_min_version), "--tls-min-version", TLS),
            (set(&self.tls_cipher_suites), "--tls-cipher-suites", TLS),
            (
                set(&self.tls_curve_preferences),
                "--tls-curve-preferences",
                TLS,
            ),
            (set(&self.bgp_type), "METALLB_BGP_TYPE", FRR),
            (
                set(&self.ml_labels),
                "--ml-labels",
                "gossip finds its members from the Nodes' addresses, not from speaker Pods",
            ),
            (
                set(&self.ml_wan_config),
                "--ml-wan-config",
                "gossip uses LAN timers tuned for sub-second failover",
            ),
            (
                set(&self.host),
                "--host",
                "deprecated in MetalLB, and without effect there too",
            ),
            (
                set(&self.bgp_debounce_timeout),
                "--bgp-debounce-timeout",
                "ironlb sends each change at once as an UPDATE; there is no FRR reload to debounce",
            ),
            (set(&self.frrk8s_namespace), "--frrk8s-namespace", FRR),
            (
                set(&self.frrk8s_secret_passthrough),
                "--frrk8s-secret-passthrough",
                FRR,
            ),
        ]
        .into_iter()
        .filter(|(given, _, _)| *given)
        .map(|(_, setting, why)| (setting, why))
        .collect()
    }
}

/// `ironlb` started as `/controller` or `/speaker` (MetalLB's images' entrypoints, or links
/// to ironlb) is that subcommand: MetalLB's manifests run it with their own `args`.
pub fn arguments(args: impl IntoIterator<Item = std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = args.into_iter().collect();
    let called = args
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .and_then(|n| n.to_str())
        .map(str::to_string);
    if let Some(role @ ("controller" | "speaker")) = called.as_deref() {
        args.insert(1, role.into());
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invoked_as_controller_or_speaker_it_is_that_subcommand() {
        let run = |argv: &[&str]| -> Vec<String> {
            arguments(argv.iter().map(std::ffi::OsString::from))
                .into_iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect()
        };
        assert_eq!(
            run(&["/controller", "--port=7472"]),
            ["/controller", "controller", "--port=7472"]
        );
        assert_eq!(run(&["/speaker"]), ["/speaker", "speaker"]);
        assert_eq!(
            run(&["/usr/bin/ironlb", "validate", "x"]),
            ["/usr/bin/ironlb", "validate", "x"]
        );
    }

    #[test]
    fn port_zero_turns_metrics_off_and_a_port_listens_everywhere() {
        let default: SocketAddr = "0.0.0.0:7472".parse().unwrap();
        let with = |port| Common {
            port,
            ..Common::default()
        };
        assert_eq!(with(None).metrics_at(default), Some((default, false)));
        assert_eq!(with(Some(0)).metrics_at(default), None);
        assert_eq!(
            with(Some(9120)).metrics_at(default),
            Some(("0.0.0.0:9120".parse().unwrap(), true)),
            "MetalLB's port is HTTPS"
        );
    }
}
