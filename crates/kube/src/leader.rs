//! Leader election on a coordination.k8s.io Lease, so two controller replicas are safe and a
//! failover takes seconds.

use kube::Client;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

#[derive(Clone, Debug)]
pub struct LeaseOptions {
    pub namespace: String,
    pub name: String,
    /// This replica, as it appears in `holderIdentity`: the pod name.
    pub identity: String,
    /// How long a leader that stopped renewing blocks the others.
    pub duration_seconds: u64,
}

/// Starts competing for the lease. The receiver says whether this replica leads; dropping it
/// releases the lease, so a clean shutdown hands over at once.
pub async fn elect(
    client: Client,
    options: &LeaseOptions,
) -> Result<
    (
        watch::Receiver<bool>,
        JoinHandle<Result<LeaseManager, LeaseManagerError>>,
    ),
    LeaseManagerError,
> {
    let manager = LeaseManagerBuilder::new(client, &options.name)
        .with_namespace(&options.namespace)
        .with_identity(&options.identity)
        .with_duration(options.duration_seconds)
        // Renew well before expiry, so a slow API server round trip does not lose the lease.
        .with_grace(2)
        .build()
        .await?;
    Ok(manager.watch().await)
}
