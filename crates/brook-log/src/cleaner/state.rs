//! What a partition log keeps for its cleaner: the cleaner checkpoint, one clean at a time, a
//! way for `close` to stop a clean, and the figures `brook topic describe` and the metrics show.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::{Mutex, MutexGuard};

use super::files::CleanerCheckpoint;

/// A partition log's cleaning state (one per [`crate::PartitionLog`]).
#[derive(Debug)]
pub(crate) struct LogCleaning {
    checkpoint: Mutex<CleanerCheckpoint>,
    /// Held by the clean running on this log.
    busy: Mutex<()>,
    /// Set by `close`: a running clean gives up at its next batch, and none starts.
    stopped: AtomicBool,
    /// Bytes the running clean has read, and will read in all (0 when idle).
    progress_done: AtomicU64,
    progress_total: AtomicU64,
    stats: Mutex<CleanerStats>,
}

/// What the cleaner has done to one partition since it was opened, and how dirty it is.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct CleanerStats {
    /// Share of the cleanable log written since its last clean, as of the cleaner's last look
    /// (0 for a log that is not compacted or has nothing to clean).
    pub dirty_ratio: f64,
    /// Bytes of closed segments below the first uncleanable offset, as of that look.
    pub cleanable_bytes: u64,
    /// The part of them written since the last clean.
    pub dirty_bytes: u64,
    /// Where the next clean starts mapping keys: every record before it has been compared
    /// with the keys written after it.
    pub first_dirty_offset: u64,
    /// Cleans finished since the log was opened.
    pub cleans: u64,
    /// Bytes the cleaner removed since the log was opened.
    pub bytes_reclaimed: u64,
    /// Records the cleaner removed since the log was opened.
    pub records_removed: u64,
    /// The clean in progress: bytes read so far and bytes it will read in all.
    pub progress: Option<(u64, u64)>,
    /// When the last clean ended, in ms since the Unix epoch.
    pub last_clean_ms: Option<i64>,
    /// Why the last clean failed, if it did (cleared by the next that succeeds).
    pub last_error: Option<String>,
}

/// What one clean did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CleanReport {
    /// The offsets whose keys were mapped: `[first_dirty, end)`; the next clean starts at `end`.
    pub first_dirty: u64,
    pub end: u64,
    /// Segments rewritten, and the segments they became.
    pub segments_in: usize,
    pub segments_out: usize,
    /// Bytes read (mapping and rewriting) and bytes written.
    pub bytes_read: u64,
    pub bytes_written: u64,
    /// Segment bytes before and after.
    pub size_before: u64,
    pub size_after: u64,
    pub records_read: u64,
    pub records_kept: u64,
    /// Keys in the offset map, how many it could have taken, and the bytes it takes.
    pub keys_mapped: usize,
    pub map_capacity: usize,
    pub map_bytes: usize,
}

impl LogCleaning {
    pub(crate) fn new(checkpoint: CleanerCheckpoint) -> Self {
        Self {
            checkpoint: Mutex::new(checkpoint),
            busy: Mutex::new(()),
            stopped: AtomicBool::new(false),
            progress_done: AtomicU64::new(0),
            progress_total: AtomicU64::new(0),
            stats: Mutex::new(CleanerStats {
                first_dirty_offset: checkpoint.first_dirty,
                ..CleanerStats::default()
            }),
        }
    }

    pub(crate) fn checkpoint(&self) -> CleanerCheckpoint {
        *self.checkpoint.lock()
    }

    pub(crate) fn set_checkpoint(&self, checkpoint: CleanerCheckpoint) {
        *self.checkpoint.lock() = checkpoint;
        self.stats.lock().first_dirty_offset = checkpoint.first_dirty;
    }

    /// The right to clean this log now; `None` once stopped.
    pub(crate) fn begin(&self) -> Option<MutexGuard<'_, ()>> {
        let guard = self.busy.lock();
        (!self.is_stopped()).then_some(guard)
    }

    pub(crate) fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    /// Stops cleaning this log: waits for a running clean to give up (it checks between
    /// batches), and refuses any later one.
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        drop(self.busy.lock());
    }

    pub(crate) fn start_progress(&self, total: u64) {
        self.progress_done.store(0, Ordering::Relaxed);
        self.progress_total.store(total.max(1), Ordering::Relaxed);
    }

    pub(crate) fn add_progress(&self, bytes: u64) {
        self.progress_done.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Records what the cleaner's last look found.
    pub(crate) fn observed(&self, dirty_bytes: u64, cleanable_bytes: u64) {
        let mut stats = self.stats.lock();
        stats.dirty_bytes = dirty_bytes;
        stats.cleanable_bytes = cleanable_bytes;
        stats.dirty_ratio = if cleanable_bytes == 0 {
            0.0
        } else {
            dirty_bytes as f64 / cleanable_bytes as f64
        };
    }

    /// A clean ended without doing anything (nothing to map, or the log closing).
    pub(crate) fn idle(&self) {
        self.progress_total.store(0, Ordering::Relaxed);
    }

    /// Records the end of a clean.
    pub(crate) fn finished(&self, outcome: Result<&CleanReport, String>, now_ms: i64) {
        self.progress_total.store(0, Ordering::Relaxed);
        let mut stats = self.stats.lock();
        stats.last_clean_ms = Some(now_ms);
        match outcome {
            Ok(report) => {
                stats.cleans += 1;
                stats.bytes_reclaimed += report.size_before.saturating_sub(report.size_after);
                stats.records_removed += report.records_read - report.records_kept;
                stats.last_error = None;
            }
            Err(reason) => stats.last_error = Some(reason),
        }
    }

    pub(crate) fn stats(&self) -> CleanerStats {
        let total = self.progress_total.load(Ordering::Relaxed);
        let done = self.progress_done.load(Ordering::Relaxed);
        CleanerStats {
            progress: (total > 0).then_some((done.min(total), total)),
            ..self.stats.lock().clone()
        }
    }
}
