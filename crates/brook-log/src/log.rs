//! The partition log: an ordered run of segments that takes appends at its end, serves reads
//! from anywhere between its start and its high watermark, rolls, retains and truncates.
//!
//! # Durability modes
//!
//! - `sync` (default): `append` returns only after an fdatasync covering its batch (and, when
//!   a segment was created for it, a directory fsync). **Group commit**: the appender writes
//!   under the write lock, notes where its bytes end, releases the lock and then waits for a
//!   sync covering that point. Whoever finds no sync running becomes the leader and fsyncs
//!   everything written so far while the others wait on a condvar; every appender that wrote
//!   meanwhile is covered by that one fsync or the next. The write lock is never held across
//!   that fsync, so appends keep landing in the page cache while it runs. Loses nothing on
//!   `kill -9` or power loss.
//!
//!   One exception, in every mode: a roll fsyncs the old segment, then creates the new one and
//!   fsyncs the directory, under the write lock. It happens once per segment (1 GiB by
//!   default), and it is what lets recovery trust that a later segment never holds data while
//!   an earlier one misses some, so that damage in a rolled segment is corruption, never a
//!   torn tail.
//! - `interval(N)`: `append` returns once its batch is in the page cache. A flusher thread per
//!   log (started only in this mode, parked while nothing is unsynced) fsyncs at most once
//!   every N ms, and at the latest about N ms after an append. `kill -9` loses nothing; power
//!   loss loses up to the last N ms of acknowledged appends.
//! - `none`: no fsync on the append path. Rolled segments are fsynced when they roll (so a
//!   later segment never holds data while an earlier one might miss some), the rest on
//!   `flush` and `close`. `kill -9` loses nothing (the page cache survives); power loss loses
//!   whatever the OS had not written back.
//!
//! # High watermark
//!
//! Readers see only batches below the high watermark: in `sync` mode, fsynced batches; in the
//! other modes, written ones (an acknowledgement there does not wait for fsync either). So a
//! consumer never reads a batch that a crash could take back in `sync` mode.
//!
//! # Failure
//!
//! A failed fsync poisons the log for writes: that appender, every appender waiting on the same
//! sync and every later one get [`LogError::Poisoned`]. There is no retry: after a failed fsync
//! the kernel may have dropped the dirty pages, so a second fsync that succeeds would prove
//! nothing. Reads go on up to the high watermark. Reopening the log (a restart) recovers.
//!
//! # Crash recovery
//!
//! See [`crate::recovery`]. `close` writes the clean-shutdown marker last; dropping a log
//! without `close` is, for the next open, a crash (nothing written is lost, but the tail after
//! the last checkpoint is CRC-walked).

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use bytes::Bytes;
use parking_lot::{Condvar, Mutex, MutexGuard, RwLock};

use crate::batch::header::{patch_base_offset, restamp_header};
use crate::batch::{
    control_batch, validate, validate_keyed, BatchHeader, Batches, EndTxnMarker, HEADER_LEN,
};
use crate::checkpoint::{self, Checkpoint, CheckpointFile, LogPosition};
use crate::cleaner::{CleanerStats, LogCleaning, Swap};
use crate::config::{Durability, LogConfig};
use crate::error::{LogError, Result};
use crate::fs::{self, FsRef};
use crate::meta;
use crate::producer_state::{Check, KeptBatch, ProducerEntry};
use crate::recovery::{recover, Corruption, Recovered, RecoveryReport};
use crate::segment::{delete_segment_files, now_ms, segment_file, Opening, Segment, LOG_EXT};
use crate::txn_index::AbortedTxn;
use crate::txn_state::PartitionTxns;

/// How much newly fsynced log moves the persisted recovery point: after an unclean stop,
/// recovery CRC-walks what lies past it, so this bounds that walk (per partition) while
/// costing one checkpoint write (an in-place write and an fdatasync) per this many bytes.
const RECOVERY_POINT_EVERY_BYTES: u64 = 16 << 20;

/// The most a read returns beyond its first batch, whatever `max_bytes` asks for: a read
/// allocates what it returns, and a door's limits (Kafka's `fetch.max.bytes` is 50 MiB by
/// default) are no excuse for the log to trust a caller's number.
pub const READ_BYTES_MAX: usize = 64 << 20;

/// Bytes read at a time while replaying the log's batches into producer state.
const TXN_REPLAY_READ_BYTES: usize = 8 << 20;

/// Whether a partition serves, as [`PartitionLog::status`] says.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LogStatus {
    /// Reads and appends are served.
    Online,
    /// Reads are served up to the damage or the failure the reason names; appends are
    /// refused (recovery found corruption, or an fsync failed) until an operator repairs it
    /// (`brook log repair`) or, after a failed fsync, the broker restarts.
    ReadOnly { reason: String },
    /// Nothing is served: the partition could not be opened, for the reason given.
    Offline { reason: String },
}

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    /// The offset of the batch's first record.
    pub base_offset: u64,
    /// The offset of its last record.
    pub last_offset: u64,
    /// The batch's `maxTimestamp`.
    pub max_timestamp: i64,
    pub record_count: u32,
    /// The batch was a retry of one this producer already wrote: nothing was written, and
    /// the offsets are the first write's (`max_timestamp` is then -1).
    pub duplicate: bool,
}

// The broker shares one log between threads (and tokio's blocking pool).
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<PartitionLog>();
    send_sync::<PendingAppend>();
};

/// The function told of every high watermark move; see
/// [`PartitionLog::set_high_watermark_listener`].
pub type HighWatermarkListener = Box<dyn Fn(u64) + Send + Sync>;

/// A batch written to the log but not yet known durable; see
/// [`PartitionLog::append_pending`].
#[must_use = "an append is not acknowledged until wait_durable returns Ok"]
pub struct PendingAppend {
    shared: Arc<Shared>,
    /// The write sequence a sync must reach (`sync` mode only).
    wait_for: Option<u64>,
    info: AppendInfo,
    /// The header the batch was stored with; `None` for a duplicate (nothing written).
    stored_header: Option<[u8; HEADER_LEN]>,
}

impl PendingAppend {
    /// The offsets the batch was given (not yet durable).
    pub fn info(&self) -> &AppendInfo {
        &self.info
    }

    /// The header the log wrote in front of the batch's records (its offsets assigned, its
    /// epoch and maybe its timestamps restamped): the batch as stored is this followed by the
    /// appended batch's bytes after [`HEADER_LEN`]. `None` when nothing was written (a
    /// duplicate).
    pub fn stored_header(&self) -> Option<&[u8; HEADER_LEN]> {
        self.stored_header.as_ref()
    }

    /// Blocks until the batch is durable as the log's mode requires (in `sync` mode, joining
    /// the group commit; at once in the others) and returns what the append did.
    pub fn wait_durable(self) -> Result<AppendInfo> {
        if let Some(seq) = self.wait_for {
            self.shared.sync_to(seq, Caller::Unlocked)?;
        }
        Ok(self.info)
    }
}

impl std::fmt::Debug for PendingAppend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingAppend")
            .field("info", &self.info)
            .field("waits", &self.wait_for.is_some())
            .finish()
    }
}

/// A segmented, append-only log of record batches for one partition. `Send + Sync`: every
/// method takes `&self`; appends serialize on a write lock, reads take no lock across IO.
pub struct PartitionLog {
    shared: Arc<Shared>,
    recovery: RecoveryReport,
    flusher: Mutex<Option<JoinHandle<()>>>,
}

/// Everything the appenders, readers and the flusher thread share.
struct Shared {
    fs: FsRef,
    dir: PathBuf,
    /// Why the partition could not be opened; `Some` makes it an offline placeholder.
    offline: Option<String>,
    config: RwLock<Arc<LogConfig>>,
    /// Held to write: appends, roll, retention, truncation, flush, close.
    writer: Mutex<Writer>,
    /// Every open segment by base offset; the last one is the active one.
    segments: RwLock<BTreeMap<u64, Arc<Segment>>>,
    log_start: AtomicU64,
    log_end: AtomicU64,
    /// End of what readers may see. Only ever lowered by `truncate_to`.
    high_watermark: RwLock<LogPosition>,
    sync: Mutex<SyncState>,
    synced: Condvar,
    /// Set once writes are refused (failed fsync or corruption); the reason is in `sync` or
    /// `writer`.
    refusing_writes: AtomicBool,
    /// The last checkpoint written; its lock serializes writing the file. Taken before
    /// `recovery_point`.
    checkpoint: Mutex<Checkpoint>,
    /// Where checkpoints are written, and how far the persisted recovery point lags.
    recovery_point: Mutex<RecoveryPointState>,
    fsyncs: AtomicU64,
    /// Told of high watermark moves; its lock also keeps the calls in order.
    hw_listener: Mutex<Option<HighWatermarkListener>>,
    /// Told of the last stable offset after each high watermark move (it moves only then).
    stable_listener: Mutex<Option<HighWatermarkListener>>,
    /// Producer states and aborted transaction indexes; taken after `writer` when both are.
    txn: Mutex<PartitionTxns>,
    /// The cleaner's checkpoint, figures and the lock of a running clean (`crate::cleaner`).
    cleaning: LogCleaning,
    flusher: FlusherControl,
    #[cfg(test)]
    fail_fsync: AtomicBool,
}

/// Whether a [`Shared::sync_to`] caller holds the writer lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    Unlocked,
    HoldsWriter,
}

struct Writer {
    active: Arc<Segment>,
    /// Where the next batch goes.
    end: LogPosition,
    closed: bool,
    /// Damage found on open: appends are refused until `truncate_to` cuts it off.
    corruption: Option<Corruption>,
    /// Segment files after the damage, kept on disk, not opened.
    beyond_corruption: Vec<u64>,
}

/// What moving the recovery point as fsyncs progress needs: the checkpoint file, and what tells
/// a persist computed before a truncation from one computed after.
struct RecoveryPointState {
    file: CheckpointFile,
    /// Bumped by every truncation: a recovery point a sync computed before one may name bytes
    /// the truncation cut, and must not be written.
    truncations: u64,
    /// The write sequence (`SyncState::written_seq`) the persisted recovery point covers.
    persisted_seq: u64,
    /// How far it may lag: `RECOVERY_POINT_EVERY_BYTES` (tests set less).
    every: u64,
}

/// The group-commit state.
struct SyncState {
    /// Bytes written since open (never decreases, not even on truncation).
    written_seq: u64,
    /// The log end those bytes reach.
    written: LogPosition,
    /// `written_seq` as of the last successful sync.
    durable_seq: u64,
    /// A leader is fsyncing right now.
    in_progress: bool,
    /// Segments written since the last sync began.
    dirty: Vec<Arc<Segment>>,
    /// Appends written since the last sync began: the group commit's fill, a metric.
    appends: u64,
    /// Why the log is poisoned, once an fsync failed.
    failed: Option<String>,
}

#[derive(Default)]
struct FlusherControl {
    state: Mutex<FlusherState>,
    wake: Condvar,
    /// The flusher waits for an append; appenders must wake it.
    idle: AtomicBool,
}

#[derive(Default)]
struct FlusherState {
    stop: bool,
}

/// A producer's batch as [`PartitionLog::check_batch`] passed it.
struct CheckedBatch<'b> {
    /// A copy of its header, restamped as it will be stored (its base offset not yet set).
    head: [u8; HEADER_LEN],
    /// The rest of the batch, as sent.
    records: &'b [u8],
    header: BatchHeader,
    /// The config it was checked against.
    config: Arc<LogConfig>,
}

impl PartitionLog {
    /// Opens the log in `dir`, creating it if missing and recovering it after an unclean stop
    /// (see docs/storage.md, "Recovery"; the outcome is in [`PartitionLog::recovery`]).
    pub fn open(dir: impl Into<PathBuf>, config: LogConfig) -> Result<PartitionLog> {
        Self::open_in(fs::real(), dir.into(), config)
    }

    /// [`PartitionLog::open`] on the file system `fs`.
    pub(crate) fn open_in(fs: FsRef, dir: PathBuf, config: LogConfig) -> Result<PartitionLog> {
        config.validate()?;
        let recovered = recover(&fs, &dir, &config)?;
        let log = Self::from_recovered(fs, dir, config, recovered, None);
        log.load_transactions()?;
        Ok(log)
    }

    /// A partition that could not be opened (its directory unreadable, its topic file
    /// damaged, ...): it holds nothing and touches no file, every read and write fails with
    /// [`LogError::Offline`] saying `reason`, and [`PartitionLog::status`] says it is
    /// offline. The store puts one in place of a partition whose open failed, so that the
    /// other partitions serve; nothing on disk is changed.
    pub(crate) fn offline(fs: FsRef, dir: PathBuf, config: LogConfig, reason: String) -> Self {
        let recovered = Recovered::unavailable(&fs, &dir, &reason);
        Self::from_recovered(fs, dir, config, recovered, Some(reason))
    }

    /// The log over what recovery opened (`offline`: a placeholder, see
    /// [`PartitionLog::offline`]).
    fn from_recovered(
        fs: FsRef,
        dir: PathBuf,
        config: LogConfig,
        recovered: Recovered,
        offline: Option<String>,
    ) -> PartitionLog {
        let segments: BTreeMap<u64, Arc<Segment>> = recovered
            .segments
            .into_iter()
            .map(|s| (s.base_offset(), Arc::new(s)))
            .collect();
        let active = segments
            .values()
            .next_back()
            .cloned()
            .expect("recovery leaves at least one segment: it never removes the last");
        let corruption = recovered.report.corruption.clone();
        let end = recovered.end;
        let txn = Mutex::new(PartitionTxns::new(&fs, &dir));
        let refusing = corruption.is_some() || offline.is_some();
        let shared = Arc::new(Shared {
            fs,
            dir,
            offline,
            config: RwLock::new(Arc::new(config)),
            writer: Mutex::new(Writer {
                active,
                end,
                closed: false,
                corruption: corruption.clone(),
                beyond_corruption: recovered.beyond_corruption,
            }),
            segments: RwLock::new(segments),
            log_start: AtomicU64::new(recovered.log_start),
            log_end: AtomicU64::new(end.offset),
            high_watermark: RwLock::new(end),
            sync: Mutex::new(SyncState {
                written_seq: 0,
                written: end,
                durable_seq: 0,
                in_progress: false,
                dirty: Vec::new(),
                appends: 0,
                failed: None,
            }),
            synced: Condvar::new(),
            refusing_writes: AtomicBool::new(refusing),
            checkpoint: Mutex::new(recovered.checkpoint),
            recovery_point: Mutex::new(RecoveryPointState {
                file: recovered.checkpoint_file,
                truncations: 0,
                persisted_seq: 0,
                every: RECOVERY_POINT_EVERY_BYTES,
            }),
            fsyncs: AtomicU64::new(0),
            hw_listener: Mutex::new(None),
            stable_listener: Mutex::new(None),
            txn,
            cleaning: LogCleaning::new(recovered.cleaner),
            flusher: FlusherControl::default(),
            #[cfg(test)]
            fail_fsync: AtomicBool::new(false),
        });
        let log = PartitionLog {
            shared,
            recovery: recovered.report,
            flusher: Mutex::new(None),
        };
        log.start_or_stop_flusher();
        log
    }

    /// Loads producer states and aborted transaction indexes (see [`crate::txn_state`]).
    fn load_transactions(&self) -> Result<()> {
        let bases: Vec<u64> = self.shared.segments.read().keys().copied().collect();
        let (start, end) = (self.log_start_offset(), self.high_watermark());
        // A log with damage takes no appends until a truncation, which handles later
        // snapshots itself: they are kept for the operator until then.
        let damaged = self.recovery.corruption.is_some();
        let mut txn = self.shared.txn.lock();
        txn.load(&bases, start, end, damaged, &mut |offset| {
            self.read(offset, TXN_REPLAY_READ_BYTES)
        })
    }

    /// What opening the log found: clean or not, bytes walked and cut, indexes rebuilt, damage.
    pub fn recovery(&self) -> &RecoveryReport {
        &self.recovery
    }

    /// Validates `batch` (one whole RecordBatch v2 of at most `message_bytes_max` bytes),
    /// assigns its offsets, writes it (rolling first if the active segment is full or old), and
    /// makes it durable as the mode says. Many threads may append at once; in `sync` mode they
    /// share fsyncs. [`PartitionLog::append_pending`] then [`PendingAppend::wait_durable`],
    /// and `batch`'s header is rewritten as stored ([`PendingAppend::stored_header`]: its base
    /// offset assigned), so the caller holds the bytes the log holds.
    ///
    /// A log in which recovery found corruption refuses appends ([`LogError::Corrupt`]) until
    /// `truncate_to` drops the damaged batch: the valid batches after the damage still hold
    /// their offsets on disk, and new appends would be given offsets from the damage on,
    /// numbering different records with the same offsets; and appending after unreadable bytes
    /// would bury them where no reader could get past. An operator decides what is lost.
    pub fn append(&self, batch: &mut [u8]) -> Result<AppendInfo> {
        let pending = self.append_pending(batch)?;
        if let Some(stored) = pending.stored_header() {
            batch[..HEADER_LEN].copy_from_slice(stored);
        }
        pending.wait_durable()
    }

    /// The first half of [`PartitionLog::append`]: validates, assigns offsets and writes under
    /// the write lock, without waiting for any fsync. Calls made one after another get
    /// increasing offsets in that order, so a caller that must keep submission order issues
    /// these in order and then waits for durability ([`PendingAppend::wait_durable`]) outside
    /// its own ordering lock, sharing fsyncs with everyone else.
    ///
    /// `batch` is only read, never copied: the log writes a copy of its 61-byte header with
    /// the fields it assigns (base offset, leader epoch, and the timestamps Kafka restamps)
    /// followed by the rest of `batch` as it is, in one write. So a door can append a request's
    /// shared bytes as they arrived. [`PendingAppend::stored_header`] is the header written.
    pub fn append_pending(&self, batch: &[u8]) -> Result<PendingAppend> {
        self.write_checked(self.check_batch(batch)?, None)
    }

    /// What both appends of a producer's batch check first: the log takes writes, and `batch`
    /// is valid for it.
    fn check_batch<'b>(&self, batch: &'b [u8]) -> Result<CheckedBatch<'b>> {
        let s = &self.shared;
        if s.refusing_writes.load(Ordering::Acquire) {
            return Err(s.write_refusal());
        }
        let config = s.config();
        let header = if config.cleanup_policy.compacts() {
            validate_keyed(batch, config.message_bytes_max)?
        } else {
            validate(batch, config.message_bytes_max)?
        };
        let (mut head, records) = split_header(batch)?;
        // Kafka overwrites these rather than refusing the batch; so does brook.
        restamp_header(&mut head, records, &header);
        Ok(CheckedBatch {
            head,
            records,
            header,
            config,
        })
    }

    /// [`PartitionLog::append_pending`], but only if it can go ahead without waiting: the
    /// writer lock is free (no other append, roll, flush, retention or clean holds it) and no
    /// segment roll is due (a roll fsyncs). Then all it does is a write of `batch` to the page
    /// cache and bookkeeping in memory, which is what lets a caller on an async worker append
    /// a small batch in place of a hand-off to a blocking thread. `Ok(None)` when it would
    /// wait: nothing was written. Errors are [`PartitionLog::append_pending`]'s, final as
    /// there (a bad batch is refused either way).
    pub fn try_append_pending(&self, batch: &[u8]) -> Result<Option<PendingAppend>> {
        let checked = self.check_batch(batch)?;
        let s = &self.shared;
        let Some(w) = s.writer.try_lock() else {
            return Ok(None);
        };
        s.check_writable(&w)?;
        if w.active
            .should_roll(&checked.header, now_ms(), &checked.config)
        {
            return Ok(None);
        }
        self.write_locked(w, checked, None).map(Some)
    }

    /// Writes a transaction marker (a control batch: see [`crate::batch::control`]) ending
    /// `producer_id`'s transaction in this partition, the one way a control batch reaches a
    /// log: clients' control batches are refused by [`PartitionLog::append_pending`]. The
    /// marker's epoch may not be older than the producer's ([`LogError::ProducerFenced`]); a
    /// newer one fences the producer's older epoch from here on. An abort marker that ends an
    /// open transaction adds it to the segment's aborted transaction index. Durable, and in
    /// order with the appends around it, as [`PartitionLog::append_pending`].
    pub fn append_marker(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        marker: EndTxnMarker,
    ) -> Result<PendingAppend> {
        let s = &self.shared;
        if s.refusing_writes.load(Ordering::Acquire) {
            return Err(s.write_refusal());
        }
        let batch = control_batch(producer_id, producer_epoch, marker, now_ms());
        let header = BatchHeader::parse(&batch)?;
        let (head, records) = split_header(&batch)?;
        let checked = CheckedBatch {
            head,
            records,
            header,
            config: s.config(),
        };
        self.write_checked(checked, Some(marker))
    }

    /// Writes a checked batch, its `head` (a copy of its header) then its `records`, under the
    /// write lock (`marker`: the control record of a control batch), rolling first when due.
    fn write_checked(
        &self,
        checked: CheckedBatch<'_>,
        marker: Option<EndTxnMarker>,
    ) -> Result<PendingAppend> {
        let s = &self.shared;
        let mut w = s.writer.lock();
        s.check_writable(&w)?;
        if w.active
            .should_roll(&checked.header, now_ms(), &checked.config)
        {
            s.roll_locked(&mut w, &checked.config)?;
        }
        self.write_locked(w, checked, marker)
    }

    /// The write itself, once the writer lock `w` is held and the active segment has room:
    /// producer state first (a duplicate is answered, not written), then offsets (into
    /// `head`), the segment, producer state and the aborted transaction index. `w` is released
    /// before the high watermark is published.
    fn write_locked(
        &self,
        mut w: MutexGuard<'_, Writer>,
        checked: CheckedBatch<'_>,
        marker: Option<EndTxnMarker>,
    ) -> Result<PendingAppend> {
        let CheckedBatch {
            mut head,
            records,
            header,
            config,
        } = checked;
        let config = &*config;
        let s = &self.shared;
        let (seq, info) = {
            let mut txn = s.txn.lock();
            match marker {
                Some(_) => txn
                    .producers
                    .check_marker(header.producer_id, header.producer_epoch)?,
                None => {
                    if let Check::Duplicate(kept) = txn.producers.check(&header)? {
                        drop(txn);
                        return Ok(self.duplicate(kept, config));
                    }
                }
            }
            let base = w.end.offset;
            let header = BatchHeader {
                base_offset: base as i64,
                ..header
            };
            patch_base_offset(&mut head, header.base_offset);
            if let Err(failed) = w.active.append_parts(&[&head, records], &header, config) {
                if !failed.restored {
                    s.poison(format!(
                        "a failed write could not be undone: {}",
                        failed.error
                    ));
                }
                return Err(failed.error);
            }
            w.end = LogPosition {
                offset: header.next_offset() as u64,
                segment: w.active.base_offset(),
                position: w.active.size(),
            };
            s.log_end.store(w.end.offset, Ordering::Release);
            let seq = s.note_written(w.end, &w.active, header.total_len() as u64);
            if let Some(done) = txn.producers.apply(&header, marker) {
                txn.ended(done, w.active.base_offset(), config.durability)
                    .inspect_err(|e| s.poison(format!("{e}")))?;
            }
            drop(txn);
            if config.durability != Durability::Sync {
                s.raise_high_watermark(w.end);
            }
            let info = AppendInfo {
                base_offset: base,
                last_offset: header.last_offset() as u64,
                max_timestamp: header.max_timestamp,
                record_count: header.records_count as u32,
                duplicate: false,
            };
            (seq, info)
        };
        drop(w);
        let wait_for = match config.durability {
            Durability::Sync => Some(seq),
            Durability::Interval(_) => {
                s.wake_flusher();
                None
            }
            Durability::None => None,
        };
        if wait_for.is_none() {
            s.publish_high_watermark();
        }
        Ok(PendingAppend {
            shared: Arc::clone(s),
            wait_for,
            info,
            stored_header: Some(head),
        })
    }

    /// The answer to a retried batch: its first write's offsets, acknowledged once everything
    /// written so far (that write included) is durable.
    fn duplicate(&self, kept: KeptBatch, config: &LogConfig) -> PendingAppend {
        let wait_for =
            (config.durability == Durability::Sync).then(|| self.shared.sync.lock().written_seq);
        PendingAppend {
            shared: Arc::clone(&self.shared),
            wait_for,
            info: AppendInfo {
                base_offset: kept.base_offset,
                last_offset: kept.last_offset,
                max_timestamp: -1,
                record_count: (kept.last_offset - kept.base_offset + 1) as u32,
                duplicate: true,
            },
            stored_header: None,
        }
    }

    /// Sets the function called each time the high watermark moves (after a sync in `sync`
    /// mode, after the write in the others, down after `truncate_to`), with its new value.
    /// It runs on the thread that moved it, outside the log's locks but one call at a time, so
    /// the values it sees are in order; it must be quick and must not set another listener.
    pub fn set_high_watermark_listener(&self, listener: HighWatermarkListener) {
        *self.shared.hw_listener.lock() = Some(listener);
    }

    /// Whole batches starting with the one holding `offset`: as many as fit in `max_bytes`,
    /// but always at least that one, however large (as Kafka does). Empty at the high
    /// watermark; [`LogError::OffsetOutOfRange`] below the log start or above the high
    /// watermark. Never a byte at or past the high watermark. `max_bytes` is capped at
    /// [`READ_BYTES_MAX`].
    pub fn read(&self, offset: u64, max_bytes: usize) -> Result<Bytes> {
        let max_bytes = max_bytes.min(READ_BYTES_MAX);
        let s = &*self.shared;
        s.check_online()?;
        let hw = *s.high_watermark.read();
        let start = s.log_start.load(Ordering::Acquire);
        let out_of_range = || LogError::OffsetOutOfRange {
            offset,
            log_start: start,
            log_end: hw.offset,
        };
        if offset < start || offset > hw.offset {
            return Err(out_of_range());
        }
        if offset == hw.offset {
            return Ok(Bytes::new());
        }
        let config = s.config();
        let mut segment = s.segment_holding(offset);
        while let Some(seg) = segment {
            let limit = limit_in(&seg, &hw);
            if let Some(bytes) = seg.read(offset, max_bytes, limit, &config)? {
                return Ok(bytes);
            }
            segment = s.segment_after(seg.base_offset(), &hw);
        }
        // A concurrent truncation took the offset away.
        Err(out_of_range())
    }

    /// [`PartitionLog::read`] for a reader that may not see offsets at or past `upper` (the
    /// last stable offset, for read_committed): the batches returned end before it, and a read
    /// at or past it (but within the log) is empty. `upper` must be a batch boundary, as the
    /// last stable offset and the high watermark are.
    ///
    /// The cut trusts only sound batch headers: from a batch whose header does not parse, or
    /// whose base offset is not one this log holds (at or past the high watermark, below the
    /// previous batch's end), the bytes are handed on uncut, for the reader's checks to refuse
    /// as damage. Cutting there instead would answer an empty read below the end, again and
    /// again: a consumer stuck without an error. One such base offset the reader's checks
    /// cannot see is caught here: one between `upper` and the high watermark but not `upper`
    /// itself, where no batch starts (a batch boundary at `upper` means the first batch at or
    /// past it starts there; the base offset is outside the CRC). The read is cut before that
    /// batch, and a read that starts with it is [`LogError::Corrupt`], naming its offset.
    pub fn read_below(&self, offset: u64, max_bytes: usize, upper: u64) -> Result<Bytes> {
        self.shared.check_online()?;
        if offset >= upper && offset <= self.high_watermark() {
            return Ok(Bytes::new());
        }
        let bytes = self.read(offset, max_bytes)?;
        // After the read: the high watermark only grows, so every sound batch read is below.
        let hw = self.high_watermark();
        let mut end = 0;
        let mut next_base = 0u64;
        for batch in Batches::new(&bytes) {
            let Ok(batch) = batch else {
                return Ok(bytes);
            };
            let Ok(base) = u64::try_from(batch.header.base_offset) else {
                return Ok(bytes);
            };
            if base >= hw || base < next_base {
                return Ok(bytes);
            }
            if base > upper && end == 0 {
                return Err(self
                    .shared
                    .misplaced_batch(offset.max(next_base), base, upper, hw));
            }
            if base >= upper {
                break;
            }
            next_base = u64::try_from(batch.header.last_offset()).map_or(u64::MAX, |l| l + 1);
            end = batch.position + batch.bytes.len();
        }
        Ok(bytes.slice(..end))
    }

    /// `Ok` when the log can be read: [`LogError::Offline`] for an offline placeholder (see
    /// [`PartitionLog::status`]), whose offsets (all zero) must not be mistaken for an empty
    /// log's.
    pub fn check_readable(&self) -> Result<()> {
        self.shared.check_online()
    }

    /// The last stable offset: the first offset of the oldest transaction still open in this
    /// partition (or ended by a marker that is not yet durable), else the high watermark.
    /// read_committed readers see nothing at or past it.
    pub fn last_stable_offset(&self) -> u64 {
        self.shared.last_stable_offset()
    }

    /// The aborted transactions a read_committed reader of `[from, to)` must know to drop their
    /// records, from the segments' aborted transaction indexes (no batch is read).
    pub fn aborted_transactions(&self, from: u64, to: u64) -> Vec<AbortedTxn> {
        self.shared.txn.lock().aborted(from, to)
    }

    /// What the partition knows of each producer that wrote to it, sorted by producer id.
    pub fn producers(&self) -> Vec<ProducerEntry> {
        self.shared.txn.lock().producers.entries()
    }

    /// The first offset of `producer_id`'s transaction open in this partition, if any.
    pub fn open_transaction(&self, producer_id: i64) -> Option<u64> {
        self.shared
            .txn
            .lock()
            .producers
            .open_transaction(producer_id)
    }

    /// Sets the function told the last stable offset after each move of the high watermark
    /// (the only time it moves), as [`PartitionLog::set_high_watermark_listener`].
    pub fn set_stable_offset_listener(&self, listener: HighWatermarkListener) {
        *self.shared.stable_listener.lock() = Some(listener);
    }

    /// The offset of the first record at or after the log start whose timestamp is at least
    /// `timestamp`, with that timestamp; `None` if no record below the high watermark is that
    /// late.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<(u64, i64)>> {
        let s = &*self.shared;
        s.check_online()?;
        let hw = *s.high_watermark.read();
        let start = s.log_start.load(Ordering::Acquire);
        let config = s.config();
        let mut segment = s.segment_holding(start);
        while let Some(seg) = segment {
            if seg.max_timestamp() >= timestamp {
                let limit = limit_in(&seg, &hw);
                if let Some(found) = seg.find_timestamp(timestamp, start, limit, &config)? {
                    return Ok(Some(found));
                }
            }
            segment = s.segment_after(seg.base_offset(), &hw);
        }
        Ok(None)
    }

    /// The first record holding the greatest timestamp at or after the log start and below the
    /// high watermark: `(offset, timestamp)`; `None` when there is no such record. Kafka's
    /// ListOffsets `MAX_TIMESTAMP` (-3), which also answers the first of equals.
    pub fn max_timestamp_offset(&self) -> Result<Option<(u64, i64)>> {
        let s = &*self.shared;
        s.check_online()?;
        let hw = *s.high_watermark.read();
        let start = s.log_start.load(Ordering::Acquire);
        let config = s.config();
        let mut best: Option<(u64, i64)> = None;
        let mut segment = s.segment_holding(start);
        while let Some(seg) = segment {
            // A segment's greatest timestamp bounds what it can hold: skip those that cannot
            // beat the best so far (a later one must be strictly greater to win).
            if best.is_none_or(|(_, ts)| seg.max_timestamp() > ts) {
                let limit = limit_in(&seg, &hw);
                if let Some(found) = seg.max_timestamp_record(start, limit, &config)? {
                    if best.is_none_or(|(_, ts)| found.1 > ts) {
                        best = Some(found);
                    }
                }
            }
            segment = s.segment_after(seg.base_offset(), &hw);
        }
        Ok(best)
    }

    /// The first offset still in the log.
    pub fn log_start_offset(&self) -> u64 {
        self.shared.log_start.load(Ordering::Acquire)
    }

    /// The offset the next append gets.
    pub fn log_end_offset(&self) -> u64 {
        self.shared.log_end.load(Ordering::Acquire)
    }

    /// The end of what readers may see (durable per the mode).
    pub fn high_watermark(&self) -> u64 {
        self.shared.high_watermark.read().offset
    }

    /// Bytes of batches in the log's segment files (indexes not counted).
    pub fn size_bytes(&self) -> u64 {
        self.shared.segments.read().values().map(|s| s.size()).sum()
    }

    pub fn segment_count(&self) -> usize {
        self.shared.segments.read().len()
    }

    /// fdatasyncs of segment files since open: group commits, rolls, flushes. A metric, and
    /// how tests see fsyncs being shared.
    pub fn fsync_count(&self) -> u64 {
        self.shared.fsyncs.load(Ordering::Relaxed)
    }

    /// Starts a new segment at the log end, unless the active one is empty.
    pub fn roll(&self) -> Result<()> {
        let s = &*self.shared;
        let config = s.config();
        let mut w = s.writer.lock();
        s.check_writable(&w)?;
        s.roll_locked(&mut w, &config)
    }

    /// Deletes the oldest whole segments while the log is larger than `retention_bytes_max`,
    /// those whose newest record is older than `retention_ms_max` before `now_ms`, and those
    /// wholly below the log start (after `advance_log_start`, once a roll made them so). Never
    /// the active segment, never a segment holding offsets at or past the high watermark. The
    /// new log start is persisted before any file goes. Returns how many segments went.
    pub fn apply_retention(&self, now_ms: i64) -> Result<u64> {
        let s = &*self.shared;
        let config = s.config();
        let w = s.writer.lock();
        if w.closed {
            return Err(LogError::Closed);
        }
        if s.offline.is_some() {
            return Ok(0);
        }
        let segments: Vec<Arc<Segment>> = s.segments.read().values().cloned().collect();
        let inactive = &segments[..segments.len() - 1];
        let mut doomed = 0;
        // A compacted-only log keeps its old segments: the cleaner, not age or size, decides.
        let deletes = config.cleanup_policy.deletes();
        if let Some(limit) = config.retention_bytes_max.filter(|_| deletes) {
            let mut size: u64 = segments.iter().map(|s| s.size()).sum();
            while doomed < inactive.len() && size > limit {
                size -= inactive[doomed].size();
                doomed += 1;
            }
        }
        if let Some(ms) = config.retention_ms_max.filter(|_| deletes) {
            let cutoff = now_ms.saturating_sub(i64::try_from(ms).unwrap_or(i64::MAX));
            let expired = inactive
                .iter()
                .take_while(|s| s.max_timestamp() < cutoff)
                .count();
            doomed = doomed.max(expired);
        }
        let start = s.log_start.load(Ordering::Acquire);
        let below_start = segments
            .windows(2)
            .take_while(|pair| pair[1].base_offset() <= start)
            .count();
        doomed = doomed.max(below_start);
        let hw = s.high_watermark.read().offset;
        while doomed > 0 && segments[doomed].base_offset() > hw {
            doomed -= 1;
        }
        if doomed == 0 {
            return Ok(0);
        }
        let new_start = segments[doomed].base_offset();
        if new_start > s.log_start.load(Ordering::Acquire) {
            s.set_log_start(new_start)?;
        }
        s.delete_segments(&segments[..doomed])?;
        drop(w);
        Ok(doomed as u64)
    }

    /// Moves the log start forward to `offset` (Kafka's DeleteRecords): reads below it fail
    /// from now on, the new start is persisted, and segments wholly below it are deleted.
    /// `offset` may be at most the high watermark; one at or below the current start changes
    /// nothing.
    pub fn advance_log_start(&self, offset: u64) -> Result<()> {
        let s = &*self.shared;
        let w = s.writer.lock();
        if w.closed {
            return Err(LogError::Closed);
        }
        let start = s.log_start.load(Ordering::Acquire);
        let hw = s.high_watermark.read().offset;
        if offset > hw {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start: start,
                log_end: hw,
            });
        }
        if offset <= start {
            return Ok(());
        }
        s.set_log_start(offset)?;
        let segments: Vec<Arc<Segment>> = s.segments.read().values().cloned().collect();
        let below = segments
            .windows(2)
            .take_while(|pair| pair[1].base_offset() <= offset)
            .count();
        s.delete_segments(&segments[..below])?;
        drop(w);
        Ok(())
    }

    /// Removes every batch whose last offset is at or past `offset`, so that the log ends at
    /// `offset` when that is a batch boundary (a batch holding `offset` goes whole, and the log
    /// then ends where it began; if that is below the log start, the log is left empty and
    /// starts there). `offset` must lie in `[log start, log end]`; the log end is a
    /// no-op, except in a log with corruption, where it cuts the damaged bytes and everything
    /// after them and lets appends resume. Anything appended but not yet acknowledged is first
    /// made durable (and acknowledged), then cut.
    pub fn truncate_to(&self, offset: u64) -> Result<()> {
        let s = &*self.shared;
        let config = s.config();
        let mut w = s.writer.lock();
        if w.closed {
            return Err(LogError::Closed);
        }
        if let Some(reason) = s.sync.lock().failed.clone() {
            return Err(s.poisoned(reason));
        }
        let start = s.log_start.load(Ordering::Acquire);
        if offset < start || offset > w.end.offset {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start: start,
                log_end: w.end.offset,
            });
        }
        if offset == w.end.offset && w.corruption.is_none() {
            return Ok(());
        }
        let written = s.sync.lock().written_seq;
        s.sync_to(written, Caller::HoldsWriter)?;

        let cut = if offset == w.end.offset {
            w.end
        } else {
            let segment = s
                .segment_holding(offset)
                .expect("a log always has a segment");
            let (position, header) = segment
                .locate(offset, segment.size(), &config)?
                .ok_or_else(|| LogError::Corrupt {
                    segment: segment.log_path().to_path_buf(),
                    position: segment.size(),
                    offset,
                    reason: "no batch holds an offset below the log end".into(),
                })?;
            LogPosition {
                offset: header.base_offset as u64,
                segment: segment.base_offset(),
                position,
            }
        };
        // Recovery must not trust bytes past the cut that later appends will rewrite.
        // A log start moved into the batch that goes takes the log start down to its base
        // (the log is then empty), so the log never ends before it starts.
        let start = start.min(cut.offset);
        {
            let mut checkpoint = s.checkpoint.lock();
            // A recovery point a sync computed before now may lie past the cut.
            s.recovery_point.lock().truncations += 1;
            if checkpoint.recovery_point.offset >= cut.offset || checkpoint.log_start > start {
                let mut next = *checkpoint;
                if next.recovery_point.offset >= cut.offset {
                    next.recovery_point = cut;
                }
                next.log_start = start;
                s.store_checkpoint(&mut checkpoint, next)?;
            }
        }
        {
            let mut hw = s.high_watermark.write();
            if hw.offset > cut.offset {
                *hw = cut;
            }
        }
        s.log_start.store(start, Ordering::Release);
        let later: Vec<Arc<Segment>> = s
            .segments
            .read()
            .range((Bound::Excluded(cut.segment), Bound::Unbounded))
            .map(|(_, seg)| Arc::clone(seg))
            .collect();
        let segment = s
            .segments
            .read()
            .get(&cut.segment)
            .cloned()
            .expect("the cut's segment is in the map: only the writer, held here, removes any");
        segment.truncate_to(cut.position, cut.offset, &config)?;
        s.fsync(&segment)?;
        // The log ends at the cut from here on, even if removing the files after it fails.
        let was_active = Arc::ptr_eq(&segment, &w.active);
        w.active = Arc::clone(&segment);
        w.end = cut;
        s.log_end.store(cut.offset, Ordering::Release);
        s.sync.lock().written = cut;
        let beyond = std::mem::take(&mut w.beyond_corruption);
        if w.corruption.take().is_some() {
            tracing::warn!(
                dir = %s.dir.display(),
                offset = cut.offset,
                "truncated away the damaged batch and everything after it; appends resume"
            );
            s.refusing_writes.store(false, Ordering::Release);
        }
        let removed = s.delete_segments(&later).and_then(|()| {
            for base in beyond {
                delete_segment_files(&*s.fs, &s.dir, base)?;
            }
            meta::sync_dir_in(&*s.fs, &s.dir)?;
            // A sealed index only makes the next append roll, so this may fail harmlessly.
            if !was_active {
                segment.unseal(&config);
            }
            Ok(())
        });
        let removed = removed.and_then(|()| {
            let start = s.log_start.load(Ordering::Acquire);
            s.txn.lock().truncated(cut.offset, start, &mut |offset| {
                self.read(offset, TXN_REPLAY_READ_BYTES)
            })
        });
        drop(w);
        s.publish_high_watermark();
        removed
    }

    /// Makes everything appended so far durable, whatever the mode, and moves the recovery
    /// checkpoint to the end.
    pub fn flush(&self) -> Result<()> {
        let s = &*self.shared;
        let w = s.writer.lock();
        if w.closed {
            return Err(LogError::Closed);
        }
        s.check_online()?;
        s.flush_locked(&w)
    }

    /// Flushes, writes the checkpoint and then, last, the clean-shutdown marker, so that the
    /// next open trusts the files without walking them. Appends fail with
    /// [`LogError::Closed`] afterwards. A poisoned log is closed without the marker (and the
    /// error returned); a log with corruption too, so the next open reports it again.
    pub fn close(&self) -> Result<()> {
        let s = &*self.shared;
        // A running clean gives up (its files aside are removed) before the log closes.
        s.cleaning.stop();
        let result = {
            let mut w = s.writer.lock();
            if w.closed {
                return Ok(());
            }
            w.closed = true;
            if s.offline.is_some() {
                // Nothing was opened, nothing is written: the files stay as they were.
                return Ok(());
            }
            s.flush_locked(&w).and_then(|()| {
                // Trimmed, so the next open reads its entries, not megabytes of zeros.
                // The flush made every index durable and saved the producer states at the end.
                w.active.seal()?;
                if w.corruption.is_none() {
                    checkpoint::write_clean_marker(&*s.fs, &s.dir, w.end.offset)?;
                }
                Ok(())
            })
        };
        self.stop_flusher();
        result
    }

    /// Closes a log whose files are about to be removed (its topic is being deleted): appends
    /// fail with [`LogError::Closed`] afterwards, as after [`PartitionLog::close`], but nothing
    /// is flushed or written. An fsync of data being deleted costs its whole size in disk
    /// writes (a 500 MB partition took 150-230 ms here) and keeps nothing anyone can read.
    pub fn discard(&self) {
        let s = &*self.shared;
        s.cleaning.stop();
        s.writer.lock().closed = true;
        self.stop_flusher();
    }

    /// Persists the recovery point after every `bytes` of newly fsynced log instead of
    /// `RECOVERY_POINT_EVERY_BYTES`, so that tests exercise it with little data.
    #[cfg(test)]
    pub(crate) fn set_recovery_point_every(&self, bytes: u64) {
        self.shared.recovery_point.lock().every = bytes;
    }

    /// Snapshots the producer states at the log end now, as a recovery checkpoint does when
    /// appends landed after the sync it follows (the snapshot then covers bytes not yet
    /// fsynced): lets a single-threaded test leave a snapshot past what a crash keeps.
    #[cfg(test)]
    pub(crate) fn snapshot_producers_at_end(&self) -> Result<()> {
        let s = &*self.shared;
        let w = s.writer.lock();
        let result = s.txn.lock().checkpoint(w.end.offset);
        result
    }

    /// Whether the partition serves reads and appends, and if not, why: see [`LogStatus`].
    pub fn status(&self) -> LogStatus {
        let s = &*self.shared;
        if let Some(reason) = &s.offline {
            return LogStatus::Offline {
                reason: reason.clone(),
            };
        }
        if !s.refusing_writes.load(Ordering::Acquire) {
            return LogStatus::Online;
        }
        if let Some(reason) = s.sync.lock().failed.clone() {
            return LogStatus::ReadOnly {
                reason: s.poisoned(reason).to_string(),
            };
        }
        match &s.writer.lock().corruption {
            Some(c) => LogStatus::ReadOnly {
                reason: corruption_error(&s.dir, c).to_string(),
            },
            None => LogStatus::Online,
        }
    }

    /// Whether appends are refused: an fsync failed, or recovery found corruption.
    pub fn is_poisoned(&self) -> bool {
        self.shared.refusing_writes.load(Ordering::Acquire)
    }

    /// The log's settings.
    pub fn config(&self) -> LogConfig {
        (*self.shared.config()).clone()
    }

    /// Replaces the log's settings: limits apply from the next append or retention run, a new
    /// index size from the next segment, a new durability mode at once.
    pub fn set_config(&self, config: LogConfig) -> Result<()> {
        config.validate()?;
        *self.shared.config.write() = Arc::new(config);
        self.start_or_stop_flusher();
        Ok(())
    }

    /// The partition directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Runs a flusher thread exactly while the mode is `interval`.
    fn start_or_stop_flusher(&self) {
        let wanted = matches!(self.shared.config().durability, Durability::Interval(_));
        let running = self.flusher.lock().is_some();
        if wanted && !running {
            self.shared.flusher.state.lock().stop = false;
            let shared = Arc::clone(&self.shared);
            let spawned = std::thread::Builder::new()
                .name("brook-log-flush".into())
                .spawn(move || shared.run_flusher());
            match spawned {
                Ok(handle) => *self.flusher.lock() = Some(handle),
                Err(e) => tracing::error!(error = %e, "cannot start the interval flusher"),
            }
        } else if !wanted && running {
            self.stop_flusher();
        }
    }

    fn stop_flusher(&self) {
        let Some(handle) = self.flusher.lock().take() else {
            return;
        };
        {
            let mut state = self.shared.flusher.state.lock();
            state.stop = true;
            self.shared.flusher.wake.notify_all();
        }
        if handle.join().is_err() {
            tracing::error!("the interval flusher thread panicked");
        }
    }
}

/// What the cleaner (`crate::cleaner`) needs of a log: its state, its segments, and the swap of
/// a cleaned segment under the writer lock.
impl PartitionLog {
    /// What the cleaner has done to this log and how dirty it is.
    pub fn cleaner_stats(&self) -> CleanerStats {
        self.shared.cleaning.stats()
    }

    pub(crate) fn cleaning(&self) -> &LogCleaning {
        &self.shared.cleaning
    }

    pub(crate) fn fs(&self) -> &FsRef {
        &self.shared.fs
    }

    pub(crate) fn shared_config(&self) -> Arc<LogConfig> {
        self.shared.config()
    }

    /// Every segment in offset order; the last is the active one.
    pub(crate) fn segments(&self) -> Vec<Arc<Segment>> {
        self.shared.segments.read().values().cloned().collect()
    }

    /// Replaces each group of consecutive closed segments in `groups` by its cleaned segment
    /// (based at the group's first base), whose files are written aside and fsynced: under the
    /// writer lock, one swap of all of them is committed on disk (`cleaner::files::commit_swap`,
    /// one directory fsync for all), the new segments opened and put in the list in their
    /// places, and the aborted transaction indexes merged. Readers holding an old segment go on
    /// reading its (unlinked) files. Returns, for each group, whether it was swapped: not when
    /// its segments are no longer all in the log (retention or truncation got there first) or
    /// one became active; those change nothing.
    pub(crate) fn replace_segments(&self, groups: &[Vec<Arc<Segment>>]) -> Result<Vec<bool>> {
        let s = &*self.shared;
        let config = s.config();
        let w = s.writer.lock();
        if w.closed {
            return Err(LogError::Closed);
        }
        // Each group still there: its bases and the base of the segment after it.
        let (still_there, replaced) = {
            let segments = s.segments.read();
            let mut still_there = Vec::with_capacity(groups.len());
            let mut replaced: Vec<(Vec<u64>, u64)> = Vec::new();
            for old in groups {
                let there = !old.is_empty()
                    && old.iter().all(|seg| {
                        segments
                            .get(&seg.base_offset())
                            .is_some_and(|now| Arc::ptr_eq(now, seg))
                            && !Arc::ptr_eq(seg, &w.active)
                    });
                still_there.push(there);
                if there {
                    let bases: Vec<u64> = old.iter().map(|seg| seg.base_offset()).collect();
                    let next_base = segments
                        .range((Bound::Excluded(bases[bases.len() - 1]), Bound::Unbounded))
                        .next()
                        .map(|(base, _)| *base)
                        .unwrap_or(w.end.offset);
                    replaced.push((bases, next_base));
                }
            }
            (still_there, replaced)
        };
        if replaced.is_empty() {
            return Ok(still_there);
        }
        let after = |segment: u64| {
            replaced
                .iter()
                .find(|(bases, _)| bases.contains(&segment))
                .map(|(_, next_base)| *next_base)
        };
        // Positions inside the replaced segments mean nothing in the new ones: a recovery point
        // there moves to the start of the segment after them (everything before is fsynced).
        {
            let mut checkpoint = s.checkpoint.lock();
            if let Some(next_base) = after(checkpoint.recovery_point.segment) {
                let next = Checkpoint {
                    recovery_point: LogPosition {
                        offset: next_base,
                        segment: next_base,
                        position: 0,
                    },
                    ..*checkpoint
                };
                s.store_checkpoint(&mut checkpoint, next)?;
            }
        }
        let swap = Swap::new(replaced.iter().map(|(bases, _)| bases.clone()).collect());
        crate::cleaner::commit_swap(&*s.fs, &s.dir, &swap)?;
        let mut opened = Vec::with_capacity(replaced.len());
        for (bases, _) in &replaced {
            let path = segment_file(&s.dir, bases[0], LOG_EXT);
            let open =
                |len| Segment::open(&s.fs, &s.dir, bases[0], len, Opening::Sealed, true, &config);
            let segment =
                s.fs.metadata(&path)
                    .map_err(|e| LogError::io(&path, e))
                    .and_then(|m| open(m.len));
            match segment {
                Ok((segment, _)) => opened.push(Arc::new(segment)),
                Err(e) => {
                    // The files on disk are the new segments'; the list still names the old
                    // ones, which must not be written or deleted by name any more.
                    s.poison(format!(
                        "a cleaned segment could not be opened after its swap: {e}"
                    ));
                    return Err(e);
                }
            }
        }
        {
            let mut segments = s.segments.write();
            for ((bases, _), segment) in replaced.iter().zip(opened) {
                for base in bases {
                    segments.remove(base);
                }
                segments.insert(bases[0], segment);
            }
        }
        // The high watermark and the write position may name a replaced segment's end.
        for position in [&mut *s.high_watermark.write(), &mut s.sync.lock().written] {
            if let Some(next_base) = after(position.segment) {
                *position = LogPosition {
                    offset: position.offset,
                    segment: next_base,
                    position: 0,
                };
            }
        }
        {
            let mut txn = s.txn.lock();
            for (bases, _) in &replaced {
                txn.segments_merged(bases[0], bases)?;
            }
        }
        drop(w);
        Ok(still_there)
    }
}

impl Drop for PartitionLog {
    /// Stops the flusher; nothing is flushed and no marker written, so the next open treats
    /// this as a crash. Call [`PartitionLog::close`] for a clean stop.
    fn drop(&mut self) {
        self.stop_flusher();
    }
}

impl std::fmt::Debug for PartitionLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionLog")
            .field("dir", &self.shared.dir)
            .field("log_start", &self.log_start_offset())
            .field("log_end", &self.log_end_offset())
            .field("high_watermark", &self.high_watermark())
            .finish()
    }
}

/// A checked batch's header, copied for the log to fill in, and the rest of the batch.
fn split_header(batch: &[u8]) -> Result<([u8; HEADER_LEN], &[u8])> {
    let (head, records) =
        batch
            .split_first_chunk::<HEADER_LEN>()
            .ok_or(crate::batch::BatchError::Truncated {
                offset: 0,
                need: HEADER_LEN,
                have: batch.len(),
            })?;
    Ok((*head, records))
}

/// The first `limit` bytes of `segment` are below the high watermark `hw`.
fn limit_in(segment: &Segment, hw: &LogPosition) -> u64 {
    use std::cmp::Ordering::*;
    match segment.base_offset().cmp(&hw.segment) {
        Less => segment.size(),
        Equal => hw.position,
        Greater => 0,
    }
}

impl Shared {
    fn config(&self) -> Arc<LogConfig> {
        Arc::clone(&self.config.read())
    }

    /// The segment whose range holds `offset` (the last with a base at or below it).
    fn segment_holding(&self, offset: u64) -> Option<Arc<Segment>> {
        let segments = self.segments.read();
        segments
            .range(..=offset)
            .next_back()
            .or_else(|| segments.iter().next())
            .map(|(_, s)| Arc::clone(s))
    }

    /// The error for a batch read at `offset` whose base offset `base` lies between the reader's
    /// bound `upper` and the high watermark `hw`, where no batch starts (see
    /// [`PartitionLog::read_below`]).
    fn misplaced_batch(&self, offset: u64, base: u64, upper: u64, hw: u64) -> LogError {
        let segment = self.segment_holding(offset);
        let position = segment
            .as_ref()
            .and_then(|seg| {
                seg.locate(offset, seg.size(), &self.config())
                    .ok()
                    .flatten()
            })
            .map_or(0, |(position, _)| position);
        LogError::Corrupt {
            segment: segment.map_or_else(|| self.dir.clone(), |s| s.log_path().to_path_buf()),
            position,
            offset,
            reason: format!(
                "the batch read at offset {offset} says it starts at {base}, past the last \
                 stable offset {upper} and below the high watermark {hw}, where no batch \
                 starts: its base offset is damaged"
            ),
        }
    }

    /// The segment after the one at `base`, if it holds anything below the high watermark.
    fn segment_after(&self, base: u64, hw: &LogPosition) -> Option<Arc<Segment>> {
        if base >= hw.segment {
            return None;
        }
        self.segments
            .read()
            .range((Bound::Excluded(base), Bound::Included(hw.segment)))
            .next()
            .map(|(_, s)| Arc::clone(s))
    }

    /// `Err(LogError::Offline)` for an offline placeholder (see [`PartitionLog::offline`]).
    fn check_online(&self) -> Result<()> {
        match &self.offline {
            Some(reason) => Err(LogError::Offline {
                dir: self.dir.clone(),
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    fn check_writable(&self, w: &Writer) -> Result<()> {
        if w.closed {
            return Err(LogError::Closed);
        }
        if self.refusing_writes.load(Ordering::Acquire) {
            self.check_online()?;
            if let Some(c) = &w.corruption {
                return Err(corruption_error(&self.dir, c));
            }
            if let Some(reason) = self.sync.lock().failed.clone() {
                return Err(self.poisoned(reason));
            }
        }
        Ok(())
    }

    /// The error for an append to a log that refuses writes.
    fn write_refusal(&self) -> LogError {
        if let Err(offline) = self.check_online() {
            return offline;
        }
        if let Some(reason) = self.sync.lock().failed.clone() {
            return self.poisoned(reason);
        }
        match &self.writer.lock().corruption {
            Some(c) => corruption_error(&self.dir, c),
            None => LogError::Closed,
        }
    }

    fn poisoned(&self, reason: String) -> LogError {
        LogError::Poisoned {
            path: self.dir.clone(),
            reason,
        }
    }

    /// Refuses writes from now on and fails every appender waiting for a sync.
    fn poison(&self, reason: String) {
        tracing::error!(
            dir = %self.dir.display(),
            %reason,
            "the log is poisoned for writes; reads go on"
        );
        let mut st = self.sync.lock();
        st.failed.get_or_insert(reason);
        self.refusing_writes.store(true, Ordering::Release);
        self.synced.notify_all();
    }

    /// fdatasync of one segment, counted, poisoning the log if it fails.
    fn fsync(&self, segment: &Segment) -> Result<()> {
        #[cfg(test)]
        if self.fail_fsync.load(Ordering::Acquire) {
            let error = LogError::io(
                segment.log_path(),
                std::io::Error::other("injected fsync failure"),
            );
            self.poison(error.to_string());
            return Err(error);
        }
        self.fsyncs.fetch_add(1, Ordering::Relaxed);
        let started = std::time::Instant::now();
        let synced = segment.sync_data();
        brook_metrics::storage::fsync(started.elapsed());
        synced.inspect_err(|e| self.poison(e.to_string()))
    }

    /// Records that bytes up to `end` (of `len` more bytes, in `segment`) are written; returns
    /// the sequence number a sync must reach to cover them.
    fn note_written(&self, end: LogPosition, segment: &Arc<Segment>, len: u64) -> u64 {
        let mut st = self.sync.lock();
        st.written_seq += len;
        st.written = end;
        st.appends += 1;
        if !st.dirty.last().is_some_and(|d| Arc::ptr_eq(d, segment)) {
            st.dirty.push(Arc::clone(segment));
        }
        st.written_seq
    }

    fn raise_high_watermark(&self, to: LogPosition) {
        let mut hw = self.high_watermark.write();
        if to.offset > hw.offset {
            *hw = to;
        }
    }

    /// Returns once a sync has covered write sequence `target`: as the leader that runs it,
    /// or as a follower of someone else's. A leader that does not hold the writer lock then
    /// moves the recovery point (`advance_recovery_point`); one that does leaves that to its
    /// caller (a flush writes the checkpoint itself, a truncation rewrites it).
    fn sync_to(&self, target: u64, caller: Caller) -> Result<()> {
        let mut st = self.sync.lock();
        loop {
            if st.durable_seq >= target {
                return Ok(());
            }
            if let Some(reason) = st.failed.clone() {
                return Err(self.poisoned(reason));
            }
            if st.in_progress {
                self.synced.wait(&mut st);
                continue;
            }
            st.in_progress = true;
            let segments = std::mem::take(&mut st.dirty);
            let appends = std::mem::take(&mut st.appends);
            let (seq, written) = (st.written_seq, st.written);
            let truncations = self.recovery_point.lock().truncations;
            let result = MutexGuard::unlocked(&mut st, || {
                segments.iter().try_for_each(|seg| self.fsync(seg))
            });
            st.in_progress = false;
            let synced = result.is_ok();
            if synced {
                if appends > 0 {
                    brook_metrics::storage::group_commit(appends);
                }
                st.durable_seq = seq;
                self.raise_high_watermark(written);
            }
            self.synced.notify_all();
            if synced {
                MutexGuard::unlocked(&mut st, || {
                    self.publish_high_watermark();
                    if caller == Caller::Unlocked {
                        self.advance_recovery_point(seq, written, truncations);
                    }
                });
            }
        }
    }

    /// Tells the listener the current high watermark.
    fn publish_high_watermark(&self) {
        if let Some(listener) = &*self.hw_listener.lock() {
            listener(self.high_watermark.read().offset);
        }
        if let Some(listener) = &*self.stable_listener.lock() {
            listener(self.last_stable_offset());
        }
    }

    /// See [`PartitionLog::last_stable_offset`].
    fn last_stable_offset(&self) -> u64 {
        let hw = self.high_watermark.read().offset;
        self.txn.lock().last_stable_offset(hw)
    }

    fn has_unsynced(&self) -> bool {
        let st = self.sync.lock();
        st.written_seq > st.durable_seq && st.failed.is_none()
    }

    /// Rolls to a new segment at the log end (nothing to do if the active one is empty). The
    /// old one is fsynced first, so that no later segment holds data while it might miss some.
    fn roll_locked(&self, w: &mut Writer, config: &LogConfig) -> Result<()> {
        if w.active.is_empty() {
            return Ok(());
        }
        self.fsync(&w.active)?;
        w.active.seal()?;
        self.txn
            .lock()
            .rolled(w.active.base_offset(), w.end.offset)
            .inspect_err(|e| self.poison(e.to_string()))?;
        let segment = Arc::new(Segment::create(&self.fs, &self.dir, w.end.offset, config)?);
        meta::sync_dir_in(&*self.fs, &self.dir).inspect_err(|e| self.poison(e.to_string()))?;
        self.segments
            .write()
            .insert(segment.base_offset(), Arc::clone(&segment));
        w.active = segment;
        w.end = LogPosition {
            offset: w.end.offset,
            segment: w.active.base_offset(),
            position: 0,
        };
        self.write_recovery_point(w.end)
    }

    fn flush_locked(&self, w: &Writer) -> Result<()> {
        let written = self.sync.lock().written_seq;
        self.sync_to(written, Caller::HoldsWriter)?;
        w.active.sync_indexes()?;
        self.txn.lock().checkpoint(w.end.offset)?;
        self.write_recovery_point(w.end)?;
        self.recovery_point.lock().persisted_seq = written;
        Ok(())
    }

    /// Moves the persisted recovery point forward to `point` (never back: only a truncation
    /// does that, and a corrupt log keeps the point past its damage so that the next open
    /// reports the damage again rather than take it for a torn tail).
    fn write_recovery_point(&self, point: LogPosition) -> Result<()> {
        let mut checkpoint = self.checkpoint.lock();
        if checkpoint.recovery_point.offset > point.offset || checkpoint.recovery_point == point {
            return Ok(());
        }
        let next = Checkpoint {
            recovery_point: point,
            ..*checkpoint
        };
        self.store_checkpoint(&mut checkpoint, next)
    }

    /// Durably writes `next` as the checkpoint; `current` (the guard of `self.checkpoint`)
    /// follows only once it is written.
    fn store_checkpoint(&self, current: &mut Checkpoint, next: Checkpoint) -> Result<()> {
        self.recovery_point.lock().file.write(&*self.fs, &next)?;
        *current = next;
        Ok(())
    }

    /// After a sync that made write sequence `seq` (ending at `point`) durable: persists the
    /// recovery point there, if the persisted one lags by `RECOVERY_POINT_EVERY_BYTES` and no
    /// truncation (`truncations` was the count when the sync began) came in between. Under
    /// the writer lock (so that the log end and the producer states agree, and no roll,
    /// truncation or clean swap interleaves): the active segment's new index entries are
    /// written out and fsynced (recovery trusts the entries below the recovery point), then
    /// the producer states are snapshot at the log end
    /// ([`PartitionTxns::checkpoint`], fsynced), then the checkpoint file is written, so a
    /// recovery finds both and replays producer state only from there. A failure only leaves
    /// the point where it was (the data is durable; recovery walks a little more), so it is
    /// logged, not returned.
    fn advance_recovery_point(&self, seq: u64, point: LogPosition, truncations: u64) {
        {
            let state = self.recovery_point.lock();
            if seq < state.persisted_seq + state.every || state.truncations != truncations {
                return;
            }
        }
        let w = self.writer.lock();
        if w.closed || w.corruption.is_some() || self.sync.lock().failed.is_some() {
            return;
        }
        // A clean swap since the sync began replaced the segment `point` names.
        let Some(segment) = self.segments.read().get(&point.segment).cloned() else {
            return;
        };
        let result = segment
            .sync_indexes()
            .and_then(|()| self.txn.lock().checkpoint(w.end.offset))
            .and_then(|()| {
                let mut checkpoint = self.checkpoint.lock();
                let mut state = self.recovery_point.lock();
                if state.truncations != truncations
                    || checkpoint.recovery_point.offset >= point.offset
                {
                    return Ok(());
                }
                let next = Checkpoint {
                    recovery_point: point,
                    ..*checkpoint
                };
                state.file.write(&*self.fs, &next)?;
                state.persisted_seq = seq;
                *checkpoint = next;
                Ok(())
            });
        drop(w);
        if let Err(e) = result {
            tracing::warn!(dir = %self.dir.display(), error = %e, "could not move the recovery point; recovery will walk further");
        }
    }

    /// Persists a new log start, then publishes it.
    fn set_log_start(&self, offset: u64) -> Result<()> {
        let mut checkpoint = self.checkpoint.lock();
        let next = Checkpoint {
            log_start: offset,
            ..*checkpoint
        };
        self.store_checkpoint(&mut checkpoint, next)?;
        self.log_start.store(offset, Ordering::Release);
        Ok(())
    }

    /// Forgets `segments` and deletes their files (readers holding one keep reading it).
    fn delete_segments(&self, segments: &[Arc<Segment>]) -> Result<()> {
        if segments.is_empty() {
            return Ok(());
        }
        {
            let mut map = self.segments.write();
            for seg in segments {
                map.remove(&seg.base_offset());
            }
        }
        for seg in segments {
            seg.delete()?;
        }
        let bases: Vec<u64> = segments.iter().map(|s| s.base_offset()).collect();
        self.txn.lock().segments_deleted(&bases)?;
        meta::sync_dir_in(&*self.fs, &self.dir)
    }

    fn wake_flusher(&self) {
        if self.flusher.idle.load(Ordering::SeqCst) {
            let _state = self.flusher.state.lock();
            self.flusher.wake.notify_one();
        }
    }

    /// The interval flusher: parks until something is unsynced, waits out the interval since
    /// its last sync, syncs everything written, repeats. Exits when stopped or poisoned.
    fn run_flusher(self: Arc<Self>) {
        let ctl = &self.flusher;
        let mut last_sync: Option<Instant> = None;
        loop {
            let Durability::Interval(interval) = self.config().durability else {
                return;
            };
            {
                let mut state = ctl.state.lock();
                loop {
                    if state.stop {
                        return;
                    }
                    // Announce idleness before looking, so an appender either sees us idle
                    // (and wakes us) or we see its bytes.
                    ctl.idle.store(true, Ordering::SeqCst);
                    if self.has_unsynced() {
                        ctl.idle.store(false, Ordering::SeqCst);
                        break;
                    }
                    ctl.wake.wait(&mut state);
                }
                if let Some(deadline) = last_sync.map(|t| t + interval) {
                    while !state.stop && Instant::now() < deadline {
                        ctl.wake.wait_until(&mut state, deadline);
                    }
                }
                if state.stop {
                    return;
                }
            }
            let target = self.sync.lock().written_seq;
            if let Err(e) = self.sync_to(target, Caller::Unlocked) {
                tracing::error!(error = %e, "the interval flusher stops");
                return;
            }
            last_sync = Some(Instant::now());
        }
    }
}

/// The refusal of an append to the log in `dir`, whose recovery found `c`.
fn corruption_error(dir: &Path, c: &Corruption) -> LogError {
    LogError::ReadOnly {
        dir: dir.to_path_buf(),
        offset: c.offset,
        reason: format!(
            "{c}; appends are refused until an operator drops the damaged batch and everything \
             after it: {}",
            repair_hint(dir, c.offset)
        ),
    }
}

/// What an operator runs to cut the log in `dir` back to `offset`: `brook log repair` when
/// `dir` is a partition directory of a data directory (`<data>/<topic>-<partition>`), else
/// the API call.
pub(crate) fn repair_hint(dir: &Path, offset: u64) -> String {
    let name = dir.file_name().and_then(|n| n.to_str());
    match (
        name.and_then(crate::names::parse_partition_dir),
        dir.parent(),
    ) {
        (Some((topic, partition)), Some(data)) => format!(
            "stop the broker and run `brook log repair --data-dir {} --topic {topic} \
             --partition {partition} --truncate-to {offset}`",
            data.display()
        ),
        _ => format!("PartitionLog::truncate_to({offset})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::Batches;
    use crate::segment::tests::test_batch;
    use std::time::Duration;

    const TS: i64 = 1_700_000_000_000;

    fn small(durability: Durability) -> LogConfig {
        LogConfig {
            segment_bytes_max: 2048,
            index_interval_bytes: 128,
            index_bytes_max: 1024,
            retention_ms_max: None,
            durability,
            ..LogConfig::default()
        }
    }

    /// Appends `n` batches of `count` records; returns their bytes as stored.
    fn fill(log: &PartitionLog, n: usize, count: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| {
                let mut batch = test_batch(count, 50, TS + i as i64 * 100);
                log.append(&mut batch).expect("append");
                batch
            })
            .collect()
    }

    /// Every batch from `from` to the high watermark, read in `max_bytes` steps.
    fn read_all(log: &PartitionLog, from: u64, max_bytes: usize) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut offset = from;
        while offset < log.high_watermark() {
            let bytes = log.read(offset, max_bytes).expect("read");
            let mut batches = Batches::new(&bytes);
            for batch in batches.by_ref() {
                let batch = batch.expect("whole batch");
                offset = batch.header.next_offset() as u64;
                out.push(batch.bytes.to_vec());
            }
            assert!(
                batches.remainder().is_empty(),
                "read returned a partial batch"
            );
        }
        out
    }

    /// The append that never waits writes when it can, declines (writing nothing) while the
    /// writer lock is held or a roll is due, and refuses a bad batch as `append_pending` does.
    #[test]
    fn an_append_that_would_wait_declines_and_writes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = PartitionLog::open(dir.path(), small(Durability::None)).expect("open");
        let batch = test_batch(3, 50, TS);
        let written = log.try_append_pending(&batch).expect("append");
        let info = written
            .expect("written at once")
            .wait_durable()
            .expect("none");
        assert_eq!((info.base_offset, info.last_offset), (0, 2));
        assert_eq!(log.high_watermark(), 3);

        {
            let _held = log.shared.writer.lock();
            assert!(log.try_append_pending(&batch).expect("no error").is_none());
        }
        assert_eq!(
            log.log_end_offset(),
            3,
            "nothing written while the lock was held"
        );

        // Fill the 2 KiB segment until the next batch would roll it.
        let before = log.segment_count();
        while log.segment_count() == before {
            match log.try_append_pending(&batch).expect("append") {
                Some(pending) => drop(pending.wait_durable().expect("none")),
                None => break,
            }
        }
        assert_eq!(
            log.segment_count(),
            before,
            "a roll is left to a blocking append"
        );
        let end = log.log_end_offset();
        assert!(log.try_append_pending(&batch).expect("no error").is_none());
        assert_eq!(log.log_end_offset(), end);
        let rolled = log
            .append_pending(&batch)
            .expect("the blocking append rolls");
        rolled.wait_durable().expect("none");
        assert_eq!(log.segment_count(), before + 1);

        let mut bad = batch.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        assert!(matches!(
            log.try_append_pending(&bad),
            Err(LogError::Batch(_))
        ));
        assert_eq!(log.log_end_offset(), end + 3);
    }

    #[test]
    fn appends_read_back_in_every_mode_and_survive_a_clean_reopen() {
        for durability in [
            Durability::Sync,
            Durability::None,
            Durability::Interval(Duration::from_millis(5)),
        ] {
            let dir = tempfile::tempdir().expect("tempdir");
            let log = PartitionLog::open(dir.path(), small(durability)).expect("open");
            assert!(log.recovery().clean || log.recovery().scanned_bytes == 0);
            assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 0));
            assert!(log.read(0, 100).expect("read at the end").is_empty());
            let stored = fill(&log, 30, 3);
            assert_eq!(log.log_end_offset(), 90, "{durability}");
            assert_eq!(log.high_watermark(), 90, "{durability}");
            assert!(log.segment_count() > 2, "2 KiB segments roll");
            assert_eq!(read_all(&log, 0, 1), stored);
            assert_eq!(read_all(&log, 0, 1 << 20), stored);
            let size = log.size_bytes();
            assert_eq!(size, stored.iter().map(|b| b.len() as u64).sum::<u64>());
            log.close().expect("close");
            assert!(matches!(
                log.append(&mut test_batch(1, 1, TS)),
                Err(LogError::Closed)
            ));
            drop(log);

            let log = PartitionLog::open(dir.path(), small(durability)).expect("reopen");
            assert!(log.recovery().clean, "{:?}", log.recovery());
            assert_eq!(log.log_end_offset(), 90);
            assert_eq!(log.size_bytes(), size);
            assert_eq!(read_all(&log, 0, 700), stored);
            let mut more = test_batch(2, 10, TS);
            assert_eq!(log.append(&mut more).expect("append").base_offset, 90);
            log.close().expect("close");
        }
    }

    #[test]
    fn reads_start_at_the_batch_holding_the_offset_and_respect_the_range() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = PartitionLog::open(dir.path(), small(Durability::None)).expect("open");
        let stored = fill(&log, 20, 4);
        for offset in 0..80 {
            let bytes = log.read(offset, 1).expect("read");
            assert_eq!(bytes.as_ref(), stored[offset as usize / 4].as_slice());
        }
        assert!(matches!(
            log.read(81, 10),
            Err(LogError::OffsetOutOfRange {
                offset: 81,
                log_start: 0,
                log_end: 80
            })
        ));
        log.advance_log_start(10).expect("advance");
        assert!(matches!(
            log.read(9, 10),
            Err(LogError::OffsetOutOfRange { .. })
        ));
        // The batch holding the new start is returned whole.
        assert_eq!(
            log.read(10, 1).expect("read").as_ref(),
            stored[2].as_slice()
        );
        assert!(
            log.advance_log_start(81).is_err(),
            "past the high watermark"
        );
    }

    #[test]
    fn rolls_by_size_index_and_age_and_on_request() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = LogConfig {
            segment_bytes_max: 1 << 20,
            index_interval_bytes: 1,
            index_bytes_max: 1024, // 128 offset entries, 85 time entries
            ..small(Durability::None)
        };
        let log = PartitionLog::open(dir.path(), config.clone()).expect("open");
        fill(&log, 100, 1);
        assert_eq!(log.segment_count(), 2, "a full time index rolls");
        log.roll().expect("roll");
        assert_eq!(log.segment_count(), 3);
        log.roll().expect("an empty segment does not roll");
        assert_eq!(log.segment_count(), 3);

        log.set_config(LogConfig {
            segment_ms_max: 1,
            ..config
        })
        .expect("config");
        fill(&log, 1, 1);
        std::thread::sleep(Duration::from_millis(5));
        fill(&log, 1, 1);
        assert_eq!(log.segment_count(), 4, "an old segment rolls");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("ls")
            .map(|e| e.expect("entry").file_name().into_string().expect("utf8"))
            .filter(|n| n.ends_with(".log"))
            .collect();
        assert!(
            names.contains(&"00000000000000000086.log".to_string()),
            "{names:?}"
        );
    }

    #[test]
    fn retention_deletes_whole_old_segments_and_persists_the_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = PartitionLog::open(dir.path(), small(Durability::None)).expect("open");
        let stored = fill(&log, 60, 2);
        let segments = log.segment_count();
        assert!(segments >= 5);
        let size = log.size_bytes();
        assert_eq!(log.apply_retention(TS * 2).expect("nothing configured"), 0);

        log.set_config(LogConfig {
            retention_bytes_max: Some(size / 2),
            ..small(Durability::None)
        })
        .expect("config");
        let deleted = log.apply_retention(0).expect("retention");
        assert!(deleted > 0);
        assert!(log.size_bytes() <= size / 2 + 2048);
        let start = log.log_start_offset();
        assert!(start > 0 && start.is_multiple_of(2));
        assert_eq!(read_all(&log, start, 4096), stored[start as usize / 2..]);

        // By age: every segment but the active one is older than a day at `now`.
        log.set_config(LogConfig {
            retention_ms_max: Some(86_400_000),
            ..small(Durability::None)
        })
        .expect("config");
        let now = TS + 60 * 100 + 86_400_000 + 1;
        log.apply_retention(now).expect("retention");
        assert_eq!(log.segment_count(), 1, "only the active segment is left");
        let start = log.log_start_offset();
        drop(log); // a crash: the start must come back from the checkpoint
        let log = PartitionLog::open(dir.path(), small(Durability::None)).expect("reopen");
        assert_eq!(log.log_start_offset(), start);
        assert_eq!(log.log_end_offset(), 120);

        // Everything retained away: the log starts at its end, in a fresh segment.
        log.roll().expect("roll");
        log.set_config(LogConfig {
            retention_bytes_max: Some(0),
            ..small(Durability::None)
        })
        .expect("config");
        assert_eq!(log.apply_retention(0).expect("retention"), 1);
        assert_eq!(log.log_start_offset(), 120);
        assert_eq!(log.offset_for_timestamp(0).expect("ts"), None);
        assert!(log.read(120, 100).expect("read at the end").is_empty());
    }

    #[test]
    fn truncate_drops_the_tail_and_appends_continue_there() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = PartitionLog::open(dir.path(), small(Durability::Sync)).expect("open");
        let stored = fill(&log, 30, 2);
        let segments = log.segment_count();
        log.truncate_to(60).expect("no-op at the end");
        assert!(log.truncate_to(61).is_err());
        log.truncate_to(21).expect("mid-batch");
        assert_eq!(log.log_end_offset(), 20, "the batch holding 21 goes whole");
        assert_eq!(log.high_watermark(), 20);
        assert!(log.segment_count() < segments);
        assert_eq!(read_all(&log, 0, 4096), stored[..10]);
        let more = fill(&log, 12, 2);
        assert_eq!(log.log_end_offset(), 44);
        drop(log);
        let log = PartitionLog::open(dir.path(), small(Durability::Sync)).expect("reopen");
        assert_eq!(log.recovery().truncated_bytes, 0);
        let mut want = stored[..10].to_vec();
        want.extend(more);
        assert_eq!(read_all(&log, 0, 4096), want);
        log.truncate_to(0).expect("everything");
        assert_eq!(log.size_bytes(), 0);
        assert_eq!(log.segment_count(), 1);
        assert_eq!(fill(&log, 1, 1).len(), 1);
        assert_eq!(log.log_end_offset(), 1);
    }

    #[test]
    fn offset_for_timestamp_finds_the_first_record_at_or_after() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = PartitionLog::open(dir.path(), small(Durability::None)).expect("open");
        fill(&log, 30, 3); // batch i: offsets 3i.., timestamps TS + 100i + 0..3
        assert_eq!(log.offset_for_timestamp(0).expect("ts"), Some((0, TS)));
        assert_eq!(
            log.offset_for_timestamp(TS + 1001).expect("ts"),
            Some((31, TS + 1001))
        );
        assert_eq!(
            log.offset_for_timestamp(TS + 1003).expect("ts"),
            Some((33, TS + 1100))
        );
        assert_eq!(log.offset_for_timestamp(TS + 2903).expect("ts"), None);
        log.advance_log_start(40).expect("advance");
        assert_eq!(
            log.offset_for_timestamp(0).expect("ts"),
            Some((40, TS + 1301))
        );
    }

    #[test]
    fn max_timestamp_offset_finds_the_first_record_with_the_greatest_timestamp() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = PartitionLog::open(dir.path(), small(Durability::None)).expect("open");
        assert_eq!(log.max_timestamp_offset().expect("max"), None);
        // Batch i holds offsets 3i..3i+3; batches 7 and 20 carry the latest timestamps, in
        // different segments.
        for i in 0..30 {
            let ts = if i == 7 || i == 20 {
                TS + 10_000
            } else {
                TS + i * 100
            };
            log.append(&mut test_batch(3, 50, ts)).expect("append");
        }
        assert!(log.segment_count() > 2, "the batches span segments");
        assert_eq!(
            log.max_timestamp_offset().expect("max"),
            Some((23, TS + 10_002)),
            "the first of equals"
        );
        log.advance_log_start(24).expect("advance");
        assert_eq!(
            log.max_timestamp_offset().expect("max"),
            Some((62, TS + 10_002))
        );
        log.advance_log_start(63).expect("advance");
        assert_eq!(
            log.max_timestamp_offset().expect("max"),
            Some((89, TS + 2_902))
        );
    }

    #[test]
    fn a_crash_loses_nothing_written_and_recovery_walks_only_the_tail() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = PartitionLog::open(dir.path(), small(Durability::None)).expect("open");
        let stored = fill(&log, 25, 2);
        drop(log);
        let log = PartitionLog::open(dir.path(), small(Durability::None)).expect("reopen");
        let report = log.recovery().clone();
        assert!(!report.clean);
        assert!(
            report.scanned_bytes > 0 && report.scanned_bytes < 2048,
            "{report:?}"
        );
        assert_eq!(report.truncated_bytes, 0);
        assert_eq!(read_all(&log, 0, 4096), stored);
    }

    #[test]
    fn concurrent_appenders_share_fsyncs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = LogConfig {
            segment_bytes_max: 64 << 20,
            ..small(Durability::Sync)
        };
        let log = Arc::new(PartitionLog::open(dir.path(), config).expect("open"));
        let threads = 8;
        let per_thread = 50;
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let log = Arc::clone(&log);
                std::thread::spawn(move || {
                    let mut offsets = Vec::new();
                    for _ in 0..per_thread {
                        let mut batch = test_batch(1, 20, TS);
                        let info = log.append(&mut batch).expect("append");
                        // Acknowledged means visible to readers (durable).
                        assert!(log.high_watermark() > info.base_offset);
                        offsets.push(info.base_offset);
                    }
                    offsets
                })
            })
            .collect();
        let mut offsets: Vec<u64> = handles
            .into_iter()
            .flat_map(|h| h.join().expect("thread"))
            .collect();
        offsets.sort_unstable();
        let total = (threads * per_thread) as u64;
        assert_eq!(offsets, (0..total).collect::<Vec<_>>());
        let fsyncs = log.fsync_count();
        assert!(fsyncs >= 1);
        assert!(
            fsyncs < total,
            "{fsyncs} fsyncs for {total} appends: none was shared"
        );
    }

    #[test]
    fn a_failed_fsync_poisons_writes_but_not_reads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = PartitionLog::open(dir.path(), small(Durability::Sync)).expect("open");
        let stored = fill(&log, 3, 1);
        log.shared.fail_fsync.store(true, Ordering::Release);
        let mut batch = test_batch(1, 10, TS);
        assert!(matches!(
            log.append(&mut batch),
            Err(LogError::Poisoned { .. })
        ));
        assert!(log.is_poisoned());
        // Written but never durable: not visible.
        assert_eq!(log.log_end_offset(), 4);
        assert_eq!(log.high_watermark(), 3);
        assert!(log.read(3, 100).expect("read at the hw").is_empty());
        // No retry, even once fsync would work again.
        log.shared.fail_fsync.store(false, Ordering::Release);
        assert!(matches!(
            log.append(&mut test_batch(1, 10, TS)),
            Err(LogError::Poisoned { .. })
        ));
        assert!(log.truncate_to(1).is_err());
        assert_eq!(read_all(&log, 0, 100), stored);
        assert!(log.close().is_err(), "a poisoned log does not close clean");
        drop(log);
        let log = PartitionLog::open(dir.path(), small(Durability::Sync)).expect("reopen");
        assert!(!log.recovery().clean);
        assert!(!log.is_poisoned());
    }

    #[test]
    fn poisoning_fails_appenders_waiting_on_the_failed_sync() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = Arc::new(PartitionLog::open(dir.path(), small(Durability::Sync)).expect("open"));
        log.shared.fail_fsync.store(true, Ordering::Release);
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let log = Arc::clone(&log);
                std::thread::spawn(move || log.append(&mut test_batch(1, 10, TS)))
            })
            .collect();
        for handle in handles {
            let result = handle.join().expect("thread");
            assert!(
                matches!(result, Err(LogError::Poisoned { .. })),
                "{result:?}"
            );
        }
        assert_eq!(log.high_watermark(), 0);
    }

    #[test]
    fn interval_mode_syncs_soon_after_appends_stop() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = PartitionLog::open(
            dir.path(),
            small(Durability::Interval(Duration::from_millis(20))),
        )
        .expect("open");
        fill(&log, 3, 1);
        assert_eq!(log.high_watermark(), 3, "acknowledged appends are readable");
        let deadline = Instant::now() + Duration::from_secs(5);
        while log.fsync_count() == 0 || log.shared.has_unsynced() {
            assert!(
                Instant::now() < deadline,
                "the flusher never synced everything"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let synced = log.fsync_count();
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(log.fsync_count(), synced, "nothing new, no fsync");
        log.set_config(small(Durability::None)).expect("config");
        assert!(
            log.flusher.lock().is_none(),
            "the flusher stops with its mode"
        );
    }

    #[test]
    fn pending_appends_keep_their_order_and_share_one_fsync() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = PartitionLog::open(dir.path(), small(Durability::Sync)).expect("open");
        let pending: Vec<PendingAppend> = (0..5)
            .map(|_| log.append_pending(&test_batch(2, 10, TS)).expect("write"))
            .collect();
        let bases: Vec<u64> = pending.iter().map(|p| p.info().base_offset).collect();
        assert_eq!(bases, vec![0, 2, 4, 6, 8]);
        assert_eq!(log.high_watermark(), 0, "nothing is durable yet");
        assert_eq!(log.log_end_offset(), 10);
        let before = log.fsync_count();
        for p in pending {
            p.wait_durable().expect("durable");
        }
        assert_eq!(log.fsync_count() - before, 1, "one fsync covers all five");
        assert_eq!(log.high_watermark(), 10);
    }

    #[test]
    fn the_listener_hears_every_high_watermark_move_in_order() {
        for durability in [Durability::Sync, Durability::None] {
            let dir = tempfile::tempdir().expect("tempdir");
            let log = Arc::new(PartitionLog::open(dir.path(), small(durability)).expect("open"));
            let heard = Arc::new(Mutex::new(Vec::new()));
            let sink = Arc::clone(&heard);
            log.set_high_watermark_listener(Box::new(move |hw| sink.lock().push(hw)));
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    let log = Arc::clone(&log);
                    std::thread::spawn(move || fill(&log, 10, 1))
                })
                .collect();
            for h in handles {
                h.join().expect("thread");
            }
            let values = heard.lock().clone();
            assert!(values.windows(2).all(|w| w[0] <= w[1]), "{values:?}");
            assert_eq!(values.last(), Some(&40), "{durability}");
            log.truncate_to(30).expect("truncate");
            assert_eq!(heard.lock().last(), Some(&30));
        }
    }

    #[test]
    fn retention_deletes_segments_a_moved_start_left_behind() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = PartitionLog::open(dir.path(), small(Durability::None)).expect("open");
        fill(&log, 3, 1);
        log.advance_log_start(3).expect("advance");
        assert_eq!(log.segment_count(), 1, "the active segment stays");
        log.roll().expect("roll");
        fill(&log, 2, 1);
        assert_eq!(log.apply_retention(0).expect("retention"), 1);
        assert_eq!(log.segment_count(), 1);
        assert_eq!(log.log_start_offset(), 3);
        assert_eq!(read_all(&log, 3, 4096).len(), 2);
    }

    #[test]
    fn truncating_the_batch_holding_a_moved_start_empties_the_log_there() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = PartitionLog::open(dir.path(), small(Durability::None)).expect("open");
        fill(&log, 2, 5);
        log.advance_log_start(2).expect("advance mid-batch");
        assert!(log.truncate_to(1).is_err(), "below the start");
        log.truncate_to(3).expect("truncate");
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 0));
        assert!(log.read(0, 100).expect("empty").is_empty());
        drop(log);
        let log = PartitionLog::open(dir.path(), small(Durability::None)).expect("reopen");
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 0));
        assert_eq!(fill(&log, 1, 1).len(), 1);
        assert_eq!(log.log_end_offset(), 1);
    }

    /// What a door appends: a batch inside a larger shared buffer (the request's bytes), its
    /// header carrying the producer's own base offset, epoch and a `maxTimestamp` Kafka
    /// restamps. The log stores it with the offsets it assigned, the epoch and timestamp
    /// rewritten and a CRC that covers them, and the caller's bytes stay as they were.
    #[test]
    fn a_shared_batch_is_stored_with_its_offsets_and_left_untouched() {
        use crate::batch::header::{CRC_AT, CRC_COVERS_FROM};
        let dir = tempfile::tempdir().expect("tempdir");
        let log = PartitionLog::open(dir.path(), small(Durability::Sync)).expect("open");
        let mut expected = fill(&log, 1, 3);

        let mut sent = test_batch(2, 50, TS);
        let built = BatchHeader::parse(&sent).expect("header");
        let producers = BatchHeader {
            base_offset: 77,
            partition_leader_epoch: 9,
            max_timestamp: -1,
            ..built
        };
        sent[..HEADER_LEN].copy_from_slice(&producers.to_bytes());
        let crc = crc32c::crc32c(&sent[CRC_COVERS_FROM..]);
        sent[CRC_AT..][..4].copy_from_slice(&crc.to_be_bytes());
        let request = Bytes::from([&b"before"[..], &sent, b"after"].concat());
        let original = request.to_vec();
        let batch = request.slice(6..6 + sent.len());

        for base in [3u64, 5] {
            let pending = log.append_pending(&batch).expect("append");
            assert_eq!(pending.info().base_offset, base);
            let head = *pending.stored_header().expect("written");
            pending.wait_durable().expect("durable");
            assert_eq!(
                request, original,
                "the caller's bytes are left as they were"
            );

            let read = log.read(base, 1 << 20).expect("read");
            assert_eq!(
                &read[..HEADER_LEN],
                &head[..],
                "the header as the log reports it"
            );
            assert_eq!(
                &read[HEADER_LEN..],
                &sent[HEADER_LEN..],
                "the records as sent"
            );
            let stored = validate(&read, usize::MAX).expect("stored valid, CRC included");
            assert_eq!(
                stored,
                BatchHeader {
                    base_offset: base as i64,
                    partition_leader_epoch: -1,
                    crc: stored.crc,
                    ..built
                },
                "offsets assigned, epoch and maxTimestamp restamped"
            );
            expected.push(read.to_vec());
        }
        drop(log);
        let log = PartitionLog::open(dir.path(), small(Durability::Sync)).expect("reopen");
        assert_eq!(read_all(&log, 0, 1 << 20), expected, "and so on disk");
    }

    /// An append writes a batch in two parts (its patched header, then its records); when the
    /// second write fails after the first landed, the segment is cut back to where it was: no
    /// offsets taken, nothing for a reader or a restart to find, the next append in its place.
    #[test]
    fn a_failed_second_write_leaves_the_log_as_it_was() {
        use crate::fs::sim::SimFs;
        let fs = SimFs::new();
        let dir = PathBuf::from("/data/t-0");
        let log =
            PartitionLog::open_in(fs.clone(), dir.clone(), small(Durability::Sync)).expect("open");
        let mut expected = fill(&log, 2, 3);
        let segment = segment_file(&dir, 0, LOG_EXT);
        let before = fs.contents(&segment).expect("segment");

        fs.fail_write_in(2);
        let batch = test_batch(2, 50, TS);
        let err = log
            .append_pending(&batch)
            .expect_err("the records' write fails");
        let mut source: Option<&dyn std::error::Error> = Some(&err);
        let mut eio = false;
        while let Some(e) = source {
            eio |= e
                .downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.raw_os_error() == Some(libc::EIO));
            source = e.source();
        }
        assert!(eio, "the write's own error: {err}");
        assert_eq!(
            fs.contents(&segment).expect("segment"),
            before,
            "the header written first is cut off again"
        );
        assert!(!log.is_poisoned(), "the file was put back: appends go on");
        assert_eq!((log.log_end_offset(), log.high_watermark()), (6, 6));
        assert_eq!(read_all(&log, 0, 1 << 20), expected);

        let mut again = batch.clone();
        assert_eq!(log.append(&mut again).expect("append").base_offset, 6);
        expected.push(again);
        assert_eq!(read_all(&log, 0, 1 << 20), expected);
        drop(log);
        let log = PartitionLog::open_in(fs.clone(), dir, small(Durability::Sync)).expect("reopen");
        assert_eq!(log.recovery().truncated_bytes, 0, "no torn tail");
        assert!(log.recovery().corruption.is_none());
        assert_eq!(read_all(&log, 0, 1 << 20), expected);
    }
}
