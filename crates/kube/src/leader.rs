//! Leader election on a coordination.k8s.io Lease, so two controller replicas are safe and a
//! failover takes seconds: client-go's algorithm, in short. The holder renews the Lease; the
//! others read it every second and take it once it has not changed for a lease duration by
//! their own clock (so clock skew between nodes does not matter), or at once when the holder
//! let go. A clean shutdown lets go, so the next replica leads within about a second.
//!
//! kube-lease-manager was used here before; its followers sleep until the lease's expiry
//! without reading it again, so a released lease waited out its whole duration.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::{Client, ResourceExt};
use std::time::{Duration, Instant};
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

/// How often a follower reads the Lease.
const RETRY: Duration = Duration::from_secs(1);
/// A leader that could not renew for this much less than the duration stops leading, so
/// it has stopped writing before anyone else can take over.
const RENEW_MARGIN: Duration = Duration::from_secs(2);

/// Starts competing for the lease. The receiver says whether this replica leads; dropping it
/// releases the lease, and the task ends once it has.
pub fn elect(client: Client, options: &LeaseOptions) -> (watch::Receiver<bool>, JoinHandle<()>) {
    let (tx, rx) = watch::channel(false);
    let elector = Elector {
        client: client.clone(),
        api: Api::namespaced(client, &options.namespace),
        options: options.clone(),
        seen: None,
        renewed: None,
    };
    (rx, tokio::spawn(elector.run(tx)))
}

struct Elector {
    client: Client,
    api: Api<Lease>,
    options: LeaseOptions,
    /// The Lease's resourceVersion when last read, and when (by our clock) it last changed.
    seen: Option<(String, Instant)>,
    /// When this replica last renewed successfully.
    renewed: Option<Instant>,
}

impl Elector {
    async fn run(mut self, leading: watch::Sender<bool>) {
        // Asked first rather than found out from a refusal, so a cluster installed from
        // MetalLB's manifests sees no refused request.
        if !self.leases_granted().await {
            self.single(&leading).await;
            return;
        }
        loop {
            let leads = match self.step().await {
                Ok(leads) => leads,
                Err(kube::Error::Api(s)) if s.code == 403 => {
                    self.single(&leading).await;
                    return;
                }
                Err(e) => {
                    tracing::warn!(lease = %self.options.name, error = crate::errors::describe(&e), "leader election");
                    self.renewed
                        .is_some_and(|at| at.elapsed() + RENEW_MARGIN < self.duration())
                }
            };
            if *leading.borrow() != leads {
                tracing::info!(lease = %self.options.name, identity = %self.options.identity, leads, "leadership changed");
                leading.send_replace(leads);
            }
            let wait = if leads { self.duration() / 4 } else { RETRY };
            tokio::select! {
                () = leading.closed() => break,
                () = tokio::time::sleep(wait) => {}
            }
        }
        if let Err(e) = self.release().await {
            tracing::warn!(lease = %self.options.name, error = crate::errors::describe(&e), "could not release the lease");
        }
    }

    /// Without leases (MetalLB's roles grant none) this replica is the one active
    /// controller, as MetalLB's is.
    async fn single(&self, leading: &watch::Sender<bool>) {
        tracing::warn!(
            lease = %self.options.name,
            "leases are not granted (MetalLB's roles grant none): running as the single active controller, as MetalLB does; run one replica, or grant get, create and update on leases for leader election"
        );
        leading.send_replace(true);
        leading.closed().await;
    }

    /// Whether this identity may get, create and update Leases here (SelfSubjectAccessReview,
    /// which every authenticated user may ask). An error asking counts as granted: the
    /// election then finds out for itself.
    async fn leases_granted(&self) -> bool {
        use k8s_openapi::api::authorization::v1::{
            ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
        };
        let reviews: Api<SelfSubjectAccessReview> = Api::all(self.client.clone());
        for verb in ["get", "create", "update"] {
            let review = SelfSubjectAccessReview {
                spec: SelfSubjectAccessReviewSpec {
                    resource_attributes: Some(ResourceAttributes {
                        group: Some("coordination.k8s.io".into()),
                        resource: Some("leases".into()),
                        namespace: Some(self.options.namespace.clone()),
                        verb: Some(verb.into()),
                        ..ResourceAttributes::default()
                    }),
                    ..SelfSubjectAccessReviewSpec::default()
                },
                ..SelfSubjectAccessReview::default()
            };
            match reviews.create(&PostParams::default(), &review).await {
                Ok(answer) if answer.status.as_ref().is_some_and(|s| !s.allowed) => return false,
                _ => {}
            }
        }
        true
    }

    fn duration(&self) -> Duration {
        Duration::from_secs(self.options.duration_seconds)
    }

    /// Reads the Lease and takes or renews it when it may; whether this replica leads.
    async fn step(&mut self) -> Result<bool, kube::Error> {
        let Some(lease) = self.api.get_opt(&self.options.name).await? else {
            return self.create().await;
        };
        let version = lease.resource_version().unwrap_or_default();
        if self.seen.as_ref().is_none_or(|(v, _)| *v != version) {
            self.seen = Some((version, Instant::now()));
        }
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.as_deref().filter(|h| !h.is_empty());
        let mine = holder == Some(self.options.identity.as_str());
        let stale = self
            .seen
            .as_ref()
            .is_some_and(|(_, at)| at.elapsed() > self.duration());
        if !mine && holder.is_some() && !stale {
            self.renewed = None;
            return Ok(false);
        }
        let transitions = spec.lease_transitions.unwrap_or(0) + i32::from(!mine);
        let acquired = if mine { spec.acquire_time } else { Some(now()) };
        self.write(lease, self.spec(acquired, transitions)).await
    }

    fn spec(&self, acquire_time: Option<MicroTime>, lease_transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.options.identity.clone()),
            lease_duration_seconds: Some(self.options.duration_seconds as i32),
            acquire_time,
            renew_time: Some(now()),
            lease_transitions: Some(lease_transitions),
            ..LeaseSpec::default()
        }
    }

    async fn create(&mut self) -> Result<bool, kube::Error> {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(self.options.name.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(self.spec(Some(now()), 0)),
        };
        match self.api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(self.took()),
            // Another replica created it first: read it on the next step.
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Replaces the Lease read (its resourceVersion makes this fail if anyone wrote in
    /// between, so two replicas never both win).
    async fn write(&mut self, mut lease: Lease, spec: LeaseSpec) -> Result<bool, kube::Error> {
        lease.spec = Some(spec);
        match self
            .api
            .replace(&self.options.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(self.took()),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn took(&mut self) -> bool {
        self.renewed = Some(Instant::now());
        true
    }

    /// Lets go of the lease if this replica holds it, as client-go's ReleaseOnCancel does: no
    /// holder, so the next replica takes it on its next read.
    async fn release(&mut self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.options.name).await? else {
            return Ok(());
        };
        let Some(spec) = lease.spec.as_mut() else {
            return Ok(());
        };
        if spec.holder_identity.as_deref() != Some(self.options.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(now());
        self.api
            .replace(&self.options.name, &PostParams::default(), &lease)
            .await
            .map(|_| tracing::info!(lease = %self.options.name, "released the lease"))
    }
}

fn now() -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::now())
}
