//! Leader election on a real Lease (the shared control plane of `ironlb_lab`): one replica
//! leads, the other waits, and a clean shutdown hands the lease over at once.

mod common;
use common::{client, plane};
use ironlb_kube::leader::{LeaseOptions, elect};
use ironlb_lab::control_plane::block_on;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use std::time::{Duration, Instant};

fn options(ns: &str, identity: &str) -> LeaseOptions {
    LeaseOptions {
        namespace: ns.into(),
        name: "ironlb-controller".into(),
        identity: identity.into(),
        duration_seconds: 10,
    }
}

#[test]
fn one_replica_leads_and_a_clean_shutdown_hands_over_at_once() {
    let Some(plane) = plane() else { return };
    let ns = plane.namespace("lease");
    block_on(move || async move {
        let client = client(plane).await;
        let (mut first, first_task) = elect(client.clone(), &options(&ns, "controller-0"));
        tokio::time::timeout(Duration::from_secs(10), first.wait_for(|is| *is))
            .await
            .expect("leads within 10 s")
            .unwrap();
        let lease = Api::<Lease>::namespaced(client.clone(), &ns)
            .get("ironlb-controller")
            .await
            .expect("the Lease exists");
        let spec = lease.spec.expect("a Lease spec");
        assert_eq!(spec.holder_identity.as_deref(), Some("controller-0"));
        assert_eq!(spec.lease_duration_seconds, Some(10));

        let (mut second, _second_task) = elect(client.clone(), &options(&ns, "controller-1"));
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(
            !*second.borrow(),
            "the lease is held: the second replica waits"
        );

        // Dropping the receiver releases the lease; the other replica takes it well before
        // the 10 s it would otherwise wait for the lease to expire.
        let released = Instant::now();
        drop(first);
        let _ = tokio::time::timeout(Duration::from_secs(10), first_task).await;
        tokio::time::timeout(Duration::from_secs(3), second.wait_for(|is| *is))
            .await
            .expect("the second replica leads within 3 s, long before the lease would expire")
            .unwrap();
        eprintln!(
            "lease: handed over {:?} after a clean shutdown",
            released.elapsed()
        );
        let lease = Api::<Lease>::namespaced(client.clone(), &ns)
            .get("ironlb-controller")
            .await
            .unwrap();
        let spec = lease.spec.unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some("controller-1"));
        assert_eq!(spec.lease_transitions, Some(1));
    });
}
