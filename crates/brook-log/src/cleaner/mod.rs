//! The log cleaner: compaction of logs whose `cleanup.policy` includes `compact`, keeping the
//! latest record of every key (Kafka's `LogCleaner` is the model; docs/storage.md,
//! "Compaction", says what it promises).
//!
//! [`Cleaner`] runs its own threads, synchronous, no tokio. Each round a thread asks for the
//! logs (a function the owner gives, so deleted topics drop out by themselves), measures every
//! compacted one ([`clean::cleanable`]), takes the dirtiest whose dirty ratio is over its
//! `min.cleanable.dirty.ratio` (or that holds a record older than `max.compaction.lag.ms`),
//! and cleans it ([`clean::clean`]); with nothing to do it sleeps `backoff_ms`. Threads share
//! the memory budget (`dedupe_buffer_bytes`, split evenly; each clean's offset map grows with
//! its keys, within the thread's share) and the I/O rate (`io_bytes_per_sec`, each thread
//! paced to its share).
//!
//! - `offset_map`: key hash -> latest offset, in a fixed budget.
//! - `clean`: one clean of one log.
//! - `files`: the cleaner checkpoint, the cleaned files aside, the swap and its recovery.
//! - `state`: what a log keeps for its cleaner (checkpoint, figures, stopping).
//! - `throttle`: the I/O pace.

mod clean;
mod files;
mod offset_map;
mod state;
mod throttle;

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use crate::bounds::{check_bounds, Bounded, Bounds, DAY_MS};
use crate::error::{LogError, Result};
use crate::log::PartitionLog;
use crate::segment::now_ms;

pub(crate) use files::{
    cleaned_file, commit_swap, load_checkpoint, recover_swap, CleanerCheckpoint, Swap,
};
pub(crate) use state::LogCleaning;
pub use state::{CleanReport, CleanerStats};

use offset_map::OffsetMap;
use throttle::Throttle;

/// The cleaner's settings (Kafka's `log.cleaner.*`). Broker-wide; a topic's own settings
/// (`cleanup.policy`, the ratio, the lags, `delete.retention.ms`) are in its `LogConfig`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CleanerConfig {
    /// Run the cleaner at all. Default on (Kafka's `log.cleaner.enable`).
    pub enabled: bool,
    /// Cleaner threads; each cleans one log at a time. Default 1.
    pub threads: usize,
    /// Memory for the offset maps of all threads together: `B` bytes map between `B / 64` and
    /// `B / 32` keys per clean (a larger dirty section is cleaned over several rounds). A
    /// clean uses only what its keys need (about 32 bytes a key, and a bit per offset of its
    /// dirty section). Default 128 MiB (Kafka's `log.cleaner.dedupe.buffer.size`).
    pub dedupe_buffer_bytes: u64,
    /// The most bytes per second all threads together read and write; `None`: no limit
    /// (Kafka's `log.cleaner.io.max.bytes.per.second`, unlimited there). Default 64 MiB/s: a
    /// 1 GiB dirty log (read twice, for its keys and for the rewrite) is cleaned in about 32 s,
    /// and appends to the same partition keep their pace beside it (docs/benchmarks.md,
    /// "Compaction").
    pub io_bytes_per_sec: Option<u64>,
    /// How long a thread sleeps when no log needs cleaning. Default 15 s (Kafka's
    /// `log.cleaner.backoff.ms`).
    pub backoff_ms: u64,
}

impl Default for CleanerConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            threads: 1,
            dedupe_buffer_bytes: 128 << 20,
            io_bytes_per_sec: Some(64 << 20),
            backoff_ms: 15_000,
        }
    }
}

impl CleanerConfig {
    /// The range of each setting, by the name `brook serve` gives it (`cleaner_threads`, ...).
    pub const BOUNDS: &'static [Bounded<CleanerConfig>] = &[
        Bounded::new("cleaner_threads", Bounds::new(1, 16), |c| {
            Some(c.threads as u64)
        }),
        // At least one key per thread; at most what a 64-bit machine sensibly lends one map.
        Bounded::new(
            "cleaner_dedupe_buffer_bytes",
            Bounds::new(1024, 64 << 30),
            |c| Some(c.dedupe_buffer_bytes),
        ),
        Bounded::new(
            "cleaner_io_bytes_per_sec",
            Bounds::new(1024, u64::MAX),
            |c| c.io_bytes_per_sec,
        ),
        Bounded::new("cleaner_backoff_ms", Bounds::new(1, DAY_MS), |c| {
            Some(c.backoff_ms)
        }),
    ];

    /// Refuses a setting outside its range.
    pub fn validate(&self) -> Result<()> {
        check_bounds(self, Self::BOUNDS).map_err(LogError::InvalidConfig)
    }

    /// The offset map budget of one thread.
    fn map_bytes(&self) -> usize {
        usize::try_from(self.dedupe_buffer_bytes / self.threads.max(1) as u64).unwrap_or(usize::MAX)
    }
}

/// The logs a cleaner looks at each round, named for its messages (`topic-partition`).
pub type LogSource = Box<dyn Fn() -> Vec<(String, Arc<PartitionLog>)> + Send + Sync>;

/// The running cleaner: its threads, stopped by [`Cleaner::stop`] or on drop.
pub struct Cleaner {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

struct Shared {
    config: CleanerConfig,
    source: LogSource,
    throttle: Throttle,
    control: Mutex<Control>,
    wake: Condvar,
}

#[derive(Default)]
struct Control {
    stop: bool,
    /// Logs a thread is cleaning now, so another thread takes a different one.
    busy: Vec<String>,
    /// Bumped by [`Cleaner::wake`]: a sleeping thread looks again.
    wakes: u64,
}

impl std::fmt::Debug for Cleaner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cleaner")
            .field("config", &self.shared.config)
            .field("threads", &self.threads.lock().len())
            .finish()
    }
}

impl Cleaner {
    /// Starts `config.threads` cleaner threads over the logs `source` lists (none when the
    /// cleaner is disabled). Each thread sizes its offset map at each clean, within its share.
    pub fn start(config: CleanerConfig, source: LogSource) -> Result<Cleaner> {
        config.validate()?;
        let threads = if config.enabled { config.threads } else { 0 };
        let rate = config
            .io_bytes_per_sec
            .map(|total| (total / config.threads as u64).max(1));
        let shared = Arc::new(Shared {
            throttle: Throttle::new(rate),
            config,
            source,
            control: Mutex::new(Control::default()),
            wake: Condvar::new(),
        });
        let mut handles = Vec::with_capacity(threads);
        for i in 0..threads {
            let thread = Arc::clone(&shared);
            let handle = std::thread::Builder::new()
                .name(format!("brook-cleaner-{i}"))
                .spawn(move || thread.run())
                .map_err(|e| LogError::io("cleaner thread", e))?;
            handles.push(handle);
        }
        Ok(Cleaner {
            shared,
            threads: Mutex::new(handles),
        })
    }

    /// Makes sleeping threads look at the logs now (after a topic is created or its settings
    /// change, or in tests).
    pub fn wake(&self) {
        self.shared.control.lock().wakes += 1;
        self.shared.wake.notify_all();
    }

    /// Stops the threads: a clean in progress gives up at its next pause or batch and its files
    /// aside are removed. Waits for them. Calling it again does nothing.
    pub fn stop(&self) {
        self.shared.control.lock().stop = true;
        self.shared.wake.notify_all();
        self.shared.throttle.interrupt();
        for handle in self.threads.lock().drain(..) {
            if handle.join().is_err() {
                tracing::error!("a cleaner thread panicked");
            }
        }
    }
}

impl Drop for Cleaner {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Shared {
    fn run(&self) {
        let mut map = OffsetMap::with_budget(self.config.map_bytes());
        tracing::debug!(map = ?map, "cleaner thread started");
        loop {
            let seen = {
                let control = self.control.lock();
                if control.stop {
                    return;
                }
                control.wakes
            };
            let cleaned = self.clean_dirtiest(&mut map);
            let mut control = self.control.lock();
            if cleaned || control.stop || control.wakes != seen {
                continue;
            }
            let backoff = Duration::from_millis(self.config.backoff_ms);
            self.wake.wait_for(&mut control, backoff);
        }
    }

    /// Cleans the dirtiest log that is due; whether it cleaned one.
    fn clean_dirtiest(&self, map: &mut OffsetMap) -> bool {
        let now = now_ms();
        let mut dirtiest: Option<(f64, String, Arc<PartitionLog>, clean::Cleanable)> = None;
        for (name, log) in (self.source)() {
            if log.is_poisoned() || log.cleaning().is_stopped() {
                continue;
            }
            if self.control.lock().busy.contains(&name) {
                continue;
            }
            match clean::cleanable(&log, now) {
                Ok(Some(cleanable)) if clean::is_due(&log, &cleanable) => {
                    let ratio = cleanable.ratio();
                    if dirtiest.as_ref().is_none_or(|(best, ..)| ratio > *best) {
                        dirtiest = Some((ratio, name, log, cleanable));
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(partition = %name, error = %e, "cannot measure a log for cleaning")
                }
            }
        }
        let Some((ratio, name, log, cleanable)) = dirtiest else {
            return false;
        };
        {
            let mut control = self.control.lock();
            if control.stop || control.busy.contains(&name) {
                return false;
            }
            control.busy.push(name.clone());
        }
        tracing::info!(partition = %name, dirty_ratio = ratio, "cleaning");
        let outcome = clean_log(&log, cleanable, map, &self.throttle, now);
        match &outcome {
            Ok(Some(report)) => tracing::info!(
                partition = %name,
                end = report.end,
                segments_in = report.segments_in,
                segments_out = report.segments_out,
                bytes_before = report.size_before,
                bytes_after = report.size_after,
                "cleaned"
            ),
            Ok(None) | Err(LogError::Closed) => {}
            Err(e) => {
                tracing::warn!(partition = %name, error = %e, "cleaning failed; retrying after the backoff")
            }
        }
        self.control.lock().busy.retain(|n| n != &name);
        matches!(outcome, Ok(Some(_)))
    }
}

/// Cleans `log` once: the clean state's lock, the clean, its figures.
fn clean_log(
    log: &PartitionLog,
    cleanable: clean::Cleanable,
    map: &mut OffsetMap,
    throttle: &Throttle,
    now_ms: i64,
) -> Result<Option<CleanReport>> {
    let Some(_busy) = log.cleaning().begin() else {
        return Err(LogError::Closed);
    };
    let outcome = clean::clean(log, cleanable, map, throttle, now_ms);
    match &outcome {
        Ok(Some(report)) => log.cleaning().finished(Ok(report), now_ms),
        Ok(None) | Err(LogError::Closed) => log.cleaning().idle(),
        Err(e) => log.cleaning().finished(Err(e.to_string()), now_ms),
    }
    outcome
}

/// Cleans `log` now, in the calling thread, whatever its dirty ratio: what a cleaner thread
/// does once it has picked a log, for tests, tools and benchmarks. `dedupe_buffer_bytes` is
/// the offset map's budget, `io_bytes_per_sec` its pace; `now_ms` is the clock tombstones and
/// compaction lags are judged by. `Ok(None)` when the log is not compacted or has nothing
/// dirty to clean.
pub fn clean_now(
    log: &PartitionLog,
    config: &CleanerConfig,
    now_ms: i64,
) -> Result<Option<CleanReport>> {
    config.validate()?;
    let Some(cleanable) = clean::cleanable(log, now_ms)? else {
        return Ok(None);
    };
    if cleanable.dirty_bytes == 0 {
        return Ok(None);
    }
    let mut map =
        OffsetMap::with_budget(usize::try_from(config.dedupe_buffer_bytes).unwrap_or(usize::MAX));
    let throttle = Throttle::new(config.io_bytes_per_sec);
    clean_log(log, cleanable, &mut map, &throttle, now_ms)
}

#[cfg(test)]
mod tests;
