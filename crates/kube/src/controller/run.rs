//! The controller at run time: reflectors feed snapshots, the leader turns each into a plan
//! and writes it. Snapshots travel through a watch channel, so bursts of changes coalesce
//! into one pass over the latest state.

use super::{Controller, Snapshot};
use crate::metrics::ControllerMetrics;
use crate::writer::Writer;
use std::time::Duration;
use tokio::sync::watch;

/// How long to wait before retrying after a failed write.
const RETRY_AFTER: Duration = Duration::from_secs(2);

/// Runs passes while `leader` is true. Each time leadership is gained the controller starts
/// afresh and restores IPs from Service statuses first; while not leader nothing is written.
pub async fn lead(
    mut leader: watch::Receiver<bool>,
    mut snapshots: watch::Receiver<Option<Snapshot>>,
    writer: &Writer,
    metrics: &ControllerMetrics,
    lb_class: Option<String>,
) {
    loop {
        if leader.wait_for(|is| *is).await.is_err() {
            return;
        }
        tracing::info!("leading: reconciling Services");
        let mut controller = Controller::new(lb_class.clone());
        snapshots.mark_changed();
        loop {
            tokio::select! {
                changed = snapshots.changed() => if changed.is_err() { return },
                changed = leader.changed() => if changed.is_err() { return },
            }
            if !*leader.borrow() {
                tracing::warn!("lost the lease: stopped writing");
                break;
            }
            let Some(snapshot) = snapshots.borrow_and_update().clone() else {
                continue;
            };
            let plan = controller.reconcile(&snapshot);
            metrics.update(&plan.metrics);
            // Leadership may have moved while planning; a stale leader must not write.
            if !*leader.borrow() {
                continue;
            }
            let failures = writer.apply(&plan, &snapshot.services).await;
            metrics.client.record(plan.writes(), failures.len());
            if !failures.is_empty() {
                for failure in &failures {
                    tracing::warn!(error = %failure, "write failed; will retry");
                }
                controller.forget_written_status();
                tokio::time::sleep(RETRY_AFTER).await;
                snapshots.mark_changed();
            }
        }
    }
}
