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
    /// The namespace of the configuration and of what the daemon writes there.
    #[arg(long, env = "METALLB_NAMESPACE", default_value = api::legacy::CONFIGMAP_NAMESPACE)]
    pub namespace: String,
    /// Handle only Services of this loadBalancerClass (default: only Services with no class).
    #[arg(long, env = "METALLB_LB_CLASS")]
    pub lb_class: Option<String>,
}

impl Cluster {
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
