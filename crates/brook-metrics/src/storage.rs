//! What the log records about its disk: how long each fdatasync takes, and how many appends one
//! group commit makes durable at once (its fill: 1 means no sharing; more means producers on
//! every door shared one fsync).
//!
//! Process-wide, without topic labels: the numbers describe the disk and the group commit, and
//! a per-partition fsync count is read from the log at scrape time
//! (`brook_partition_fsyncs_total`).

use std::time::Duration;

use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::{add_to, family, Lazy};

/// Upper bounds of the fsync latency buckets, in seconds: 50 µs (a fast NVMe drive or a tmpfs)
/// to 10 s (a disk in trouble).
pub const FSYNC_BUCKETS: [f64; 14] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 10.0,
];

/// Upper bounds of the group-commit fill buckets, in appends.
pub const FILL_BUCKETS: [f64; 12] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0,
];

static FSYNC_SECONDS: Lazy<Histogram> = family!(
    "brook_log_fsync_duration_seconds",
    "Time one fdatasync of a segment file took",
    Histogram::new(FSYNC_BUCKETS)
);
static GROUP_COMMIT_APPENDS: Lazy<Histogram> = family!(
    "brook_log_group_commit_appends",
    "Appends (batches) one group-commit fsync made durable",
    Histogram::new(FILL_BUCKETS)
);

pub(crate) fn register(registry: &mut Registry) {
    add_to(registry, &FSYNC_SECONDS);
    add_to(registry, &GROUP_COMMIT_APPENDS);
}

/// One fdatasync that took `elapsed` (whether it succeeded or not).
pub fn fsync(elapsed: Duration) {
    FSYNC_SECONDS.metric.observe(elapsed.as_secs_f64());
}

/// One group commit that made `appends` appends durable.
pub fn group_commit(appends: u64) {
    GROUP_COMMIT_APPENDS.metric.observe(appends as f64);
}
