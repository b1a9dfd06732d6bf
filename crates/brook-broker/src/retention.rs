//! Retention: a background task that applies every partition's size and age limits.
//!
//! The log deletes whole segments when asked ([`apply_retention`]); this task asks, every
//! `retention_check_ms` (Kafka's `log.retention.check.interval.ms`), on the blocking pool. It
//! holds only a weak reference to the broker between rounds, so it never keeps a dropped broker
//! alive, and it stops when the broker closes.
//!
//! [`apply_retention`]: brook_log::PartitionLog::apply_retention

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::watch;

use crate::broker::{Broker, Inner};
use crate::produce::now_ms;

/// Starts the retention task of `broker` on the current runtime.
pub(crate) fn spawn(broker: &Broker, every: Duration) {
    let weak = Arc::downgrade(&broker.inner);
    let shutdown = broker.shutdown_signal();
    tokio::spawn(run(weak, shutdown, every));
}

async fn run(weak: Weak<Inner>, mut shutdown: watch::Receiver<bool>, every: Duration) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            // Closed, or the broker is gone (the sender dropped).
            _ = shutdown.wait_for(|closed| *closed) => return,
        }
        let Some(inner) = weak.upgrade() else {
            return;
        };
        let broker = Broker { inner };
        let logs = broker.all_partition_logs();
        drop(broker);
        let round = tokio::task::spawn_blocking(move || {
            let now = now_ms();
            for (name, log) in logs {
                match log.apply_retention(now) {
                    Ok(0) => {}
                    Ok(deleted) => {
                        tracing::info!(partition = %name, deleted, "retention deleted segments")
                    }
                    Err(e) => tracing::warn!(partition = %name, error = %e, "retention failed"),
                }
            }
        });
        if let Err(e) = round.await {
            tracing::error!(error = %e, "retention round panicked");
        }
    }
}
