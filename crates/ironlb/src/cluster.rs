//! What both cluster daemons need to reach the API server and find their configuration.

use anyhow::{Context, Result};
use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Cluster {
    /// Use this kubeconfig instead of the in-cluster service account.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// The namespace of the configuration and of what the daemon writes there; default the
    /// Pod's own (from its ServiceAccount mount), as MetalLB's, else metallb-system.
    #[arg(long = "namespace", env = "METALLB_NAMESPACE")]
    namespace_flag: Option<String>,
    /// Handle only Services of this loadBalancerClass (default: only Services with no class).
    #[arg(long, env = "METALLB_LB_CLASS")]
    pub lb_class: Option<String>,
}

/// Where a Pod's ServiceAccount mount says which namespace it runs in.
const POD_NAMESPACE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

impl Cluster {
    pub fn namespace(&self) -> String {
        self.namespace_flag.clone().unwrap_or_else(|| {
            std::fs::read_to_string(POD_NAMESPACE)
                .ok()
                .map(|ns| ns.trim().to_string())
                .filter(|ns| !ns.is_empty())
                .unwrap_or_else(|| api::legacy::CONFIGMAP_NAMESPACE.to_string())
        })
    }

    pub async fn client(&self) -> Result<Client> {
        match &self.kubeconfig {
            Some(path) => {
                let kubeconfig = Kubeconfig::read_from(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                let config =
                    kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                        .await?;
                Ok(Client::try_from(config)?)
            }
            None => Client::try_default()
                .await
                .context("connecting to the API server (in cluster)"),
        }
    }
}
