//! The transaction half of a partition log: every producer's state, the aborted transaction
//! index of each segment, and from them the last stable offset (LSO), kept consistent with
//! the segments through appends, rolls, retention, truncation, close and open.
//!
//! The partition log holds one [`PartitionTxns`] behind a lock taken after its writer lock.
//! Appends check and record batches in [`ProducerStates`]; a marker that ends a transaction
//! is recorded here ([`PartitionTxns::ended`]): an abort gets an entry in the index of the
//! marker's segment, and in `sync` mode the transaction keeps holding the LSO back until its
//! marker is below the high watermark (durable), so no reader sees a transaction's records as
//! settled before its end is.
//!
//! **Last stable offset**: the first offset of the oldest transaction still open (or ended
//! by a marker not yet durable), else the high watermark. read_committed readers see nothing
//! at or past it.
//!
//! **Snapshots** of the producer states are written at a roll, at each recovery checkpoint the
//! log persists ([`PartitionTxns::checkpoint`], under the log's writer lock, before the
//! checkpoint file) and at a clean close, each named by the log end it covers. Every aborted
//! transaction index is made durable before a snapshot is written, so the entries below a
//! snapshot's offset never need the log. A checkpoint's snapshot covers the log end at that
//! moment, which may lie past the recovery point (bytes written, not yet fsynced): a crash that
//! takes those bytes leaves a snapshot past the recovered end, which the next open never uses.
//!
//! **Open**: each segment's index file is checked ([`TxnIndex::load`]); if any is wrong, all
//! are rebuilt from the log. The newest snapshot not past the recovered end is loaded (newer
//! ones are deleted, so that appends never meet them; a log that refuses appends because
//! recovery found damage only skips them) and the batches after it are replayed (headers, and
//! the one record of each control batch), re-deriving the producer states and every index
//! entry from the snapshot's offset on: whatever a crash left of that tail's index entries is
//! replaced. Without a snapshot the whole log is replayed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::batch::{Batches, ControlType, EndTxnMarker};
use crate::config::Durability;
use crate::error::Result;
use crate::fs::FsRef;
use crate::producer_state::{self, CompletedTxn, ProducerStates};
use crate::txn_index::{AbortedEntry, AbortedTxn, TxnIndex};

/// Reads whole batches starting with the one holding an offset (the log's `read`).
pub(crate) type ReadFn<'a> = dyn FnMut(u64) -> Result<Bytes> + 'a;

/// Producer states, aborted transaction indexes and ended-but-not-durable transactions.
#[derive(Debug)]
pub(crate) struct PartitionTxns {
    fs: FsRef,
    dir: PathBuf,
    pub(crate) producers: ProducerStates,
    /// Each segment's aborted transaction index, by the segment's base offset.
    indexes: BTreeMap<u64, TxnIndex>,
    /// `(first offset, marker offset)` of transactions ended by a marker that may not be
    /// durable yet (`sync` mode): they hold the LSO until the high watermark passes the marker.
    completing: Vec<(u64, u64)>,
    /// The offset of the snapshot last written or loaded, whose file holds the states below
    /// it: writing the same snapshot again is skipped.
    snapshot_at: Option<u64>,
}

impl PartitionTxns {
    /// Nothing known yet: [`PartitionTxns::load`] fills it in at open.
    pub(crate) fn new(fs: &FsRef, dir: &Path) -> Self {
        Self {
            fs: FsRef::clone(fs),
            dir: dir.to_path_buf(),
            producers: ProducerStates::default(),
            indexes: BTreeMap::new(),
            completing: Vec::new(),
            snapshot_at: None,
        }
    }

    /// Loads the indexes of `segments` (base offsets, in order), the newest producer snapshot
    /// not past `log_end`, and replays the log after it up to `log_end` (see the module doc).
    /// `keep_later`: the log refuses appends (damage found), so snapshots past its end are
    /// skipped, not deleted.
    pub(crate) fn load(
        &mut self,
        segments: &[u64],
        log_start: u64,
        log_end: u64,
        keep_later: bool,
        read: &mut ReadFn<'_>,
    ) -> Result<()> {
        let mut rebuild = false;
        for (i, &base) in segments.iter().enumerate() {
            let end = segments.get(i + 1).copied();
            let index = match TxnIndex::load(&self.fs, &self.dir, base, end)? {
                Ok(index) => index,
                Err(reason) => {
                    tracing::warn!(
                        dir = %self.dir.display(),
                        segment = base,
                        %reason,
                        "rebuilding the aborted transaction indexes from the log"
                    );
                    rebuild = true;
                    TxnIndex::empty(&self.fs, &self.dir, base)
                }
            };
            self.indexes.insert(base, index);
        }
        let snapshot = if rebuild {
            None
        } else {
            let later = if keep_later {
                producer_state::Later::Skip
            } else {
                producer_state::Later::Delete
            };
            producer_state::load_snapshot(&*self.fs, &self.dir, log_start, log_end, later)?
        };
        self.snapshot_at = snapshot.as_ref().map(|(offset, _)| *offset);
        let (from, states) = snapshot.unwrap_or((log_start, ProducerStates::default()));
        self.producers = states;
        if rebuild {
            for index in self.indexes.values_mut() {
                index.truncate_to(0)?;
            }
        }
        if from < log_end {
            self.replay(from, log_end, read)?;
        }
        Ok(())
    }

    /// Applies the batches in `[from, to)` to the producer states and re-derives the index
    /// entries of the aborts among them.
    fn replay(&mut self, from: u64, to: u64, read: &mut ReadFn<'_>) -> Result<()> {
        let mut derived: BTreeMap<u64, Vec<AbortedEntry>> = BTreeMap::new();
        let mut offset = from;
        'reading: while offset < to {
            let bytes = read(offset)?;
            let mut next = offset;
            for batch in Batches::new(&bytes) {
                let batch = batch?;
                let header = batch.header;
                if header.base_offset as u64 >= to {
                    break 'reading;
                }
                next = header.next_offset() as u64;
                let marker = if header.is_control() {
                    let whole = bytes.slice(batch.position..batch.position + batch.bytes.len());
                    match EndTxnMarker::from_batch(whole) {
                        Ok(marker) => Some(marker),
                        Err(e) => {
                            tracing::warn!(
                                dir = %self.dir.display(),
                                offset = header.base_offset,
                                error = %e,
                                "a control batch without a readable marker; ignored"
                            );
                            None
                        }
                    }
                } else {
                    None
                };
                if let Some(done) = self.producers.apply(&header, marker) {
                    if done.control == ControlType::Abort {
                        derived
                            .entry(self.segment_of(done.last_offset))
                            .or_default()
                            .push(entry(&done));
                    }
                }
            }
            if next <= offset {
                break;
            }
            offset = next;
        }
        let first = self.segment_of(from);
        for (base, index) in self.indexes.range_mut(first..) {
            index.replace_from(from, derived.remove(base).unwrap_or_default())?;
        }
        Ok(())
    }

    /// The base offset of the segment holding `offset`.
    fn segment_of(&self, offset: u64) -> u64 {
        self.indexes
            .range(..=offset)
            .next_back()
            .map_or(0, |(base, _)| *base)
    }

    /// Records a transaction a marker in the segment at `segment` just ended.
    pub(crate) fn ended(
        &mut self,
        done: CompletedTxn,
        segment: u64,
        durability: Durability,
    ) -> Result<()> {
        if durability == Durability::Sync {
            self.completing.push((done.first_offset, done.last_offset));
        }
        if done.control == ControlType::Abort {
            let index = self
                .indexes
                .entry(segment)
                .or_insert_with(|| TxnIndex::empty(&self.fs, &self.dir, segment));
            index.append(entry(&done))?;
        }
        Ok(())
    }

    /// The last stable offset, given the high watermark `hw`.
    pub(crate) fn last_stable_offset(&mut self, hw: u64) -> u64 {
        self.completing.retain(|&(_, marker)| marker >= hw);
        let completing = self.completing.iter().map(|&(first, _)| first).min();
        [Some(hw), self.producers.first_unstable_offset(), completing]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(hw)
    }

    /// The aborted transactions a reader of `[from, to)` must know: those with records in
    /// that range (first offset below `to`) whose abort marker is at or after `from`.
    pub(crate) fn aborted(&self, from: u64, to: u64) -> Vec<AbortedTxn> {
        let mut out = Vec::new();
        for index in self.indexes.range(self.segment_of(from)..).map(|(_, i)| i) {
            for e in index.entries() {
                if e.last_offset >= from && e.first_offset < to {
                    out.push(AbortedTxn {
                        producer_id: e.producer_id,
                        first_offset: e.first_offset,
                    });
                }
                // Every transaction ending after this one started at or after its LSO.
                if e.last_stable_offset > to {
                    return out;
                }
            }
        }
        out
    }

    /// A segment rolled at `end`: the old one's index is made durable with it, the producer
    /// state below `end` is saved, and the new segment gets an empty index.
    pub(crate) fn rolled(&mut self, old: u64, end: u64) -> Result<()> {
        if let Some(index) = self.indexes.get_mut(&old) {
            index.sync()?;
        }
        self.snapshot(end)?;
        self.indexes
            .insert(end, TxnIndex::empty(&self.fs, &self.dir, end));
        Ok(())
    }

    /// Makes every index durable (a flush).
    pub(crate) fn sync(&mut self) -> Result<()> {
        self.indexes.values_mut().try_for_each(TxnIndex::sync)
    }

    /// A recovery checkpoint (or a clean close) with the log ending at `end`: every index
    /// durable, then the producer states below `end` saved, so that the next open replays only
    /// what lies past `end`. The log calls it under its writer lock (`end` is the log end, and
    /// nothing is appended meanwhile) and before it writes the checkpoint file.
    pub(crate) fn checkpoint(&mut self, end: u64) -> Result<()> {
        self.sync()?;
        self.snapshot(end)
    }

    /// Saves the producer states as the snapshot at `end` (once: the same again is skipped).
    fn snapshot(&mut self, end: u64) -> Result<()> {
        if self.snapshot_at == Some(end) {
            return Ok(());
        }
        producer_state::write_snapshot(&*self.fs, &self.dir, end, &self.producers)?;
        self.snapshot_at = Some(end);
        Ok(())
    }

    /// Segments deleted (retention, truncation): their indexes go too.
    pub(crate) fn segments_deleted(&mut self, bases: &[u64]) -> Result<()> {
        for base in bases {
            if let Some(index) = self.indexes.remove(base) {
                index.delete()?;
            }
        }
        Ok(())
    }

    /// A clean merged the segments `bases` into one at `into` (the first of them). Their
    /// entries all stay (a clean keeps every marker) and now belong to the merged segment's
    /// index; the others' index files go.
    pub(crate) fn segments_merged(&mut self, into: u64, bases: &[u64]) -> Result<()> {
        let mut entries = Vec::new();
        for base in bases {
            if let Some(index) = self.indexes.remove(base) {
                entries.extend_from_slice(index.entries());
                if *base != into {
                    index.delete()?;
                }
            }
        }
        let mut merged = TxnIndex::empty(&self.fs, &self.dir, into);
        merged.replace_from(0, entries)?;
        self.indexes.insert(into, merged);
        Ok(())
    }

    /// The log was cut at `cut` (segments after its segment already deleted): index entries
    /// and snapshots past it go, and the producer states are rebuilt from the newest snapshot
    /// at or below it.
    pub(crate) fn truncated(
        &mut self,
        cut: u64,
        log_start: u64,
        read: &mut ReadFn<'_>,
    ) -> Result<()> {
        for index in self.indexes.values_mut() {
            index.truncate_to(cut)?;
        }
        producer_state::delete_snapshots_after(&*self.fs, &self.dir, cut)?;
        let snapshot = producer_state::load_snapshot(
            &*self.fs,
            &self.dir,
            log_start,
            cut,
            producer_state::Later::Delete,
        )?;
        self.snapshot_at = snapshot.as_ref().map(|(offset, _)| *offset);
        let (from, states) = snapshot.unwrap_or((log_start, ProducerStates::default()));
        self.producers = states;
        self.completing.clear();
        if from < cut {
            self.replay(from, cut, read)?;
        }
        Ok(())
    }
}

fn entry(done: &CompletedTxn) -> AbortedEntry {
    AbortedEntry {
        producer_id: done.producer_id,
        first_offset: done.first_offset,
        last_offset: done.last_offset,
        last_stable_offset: done.last_stable_offset,
    }
}

#[cfg(test)]
mod tests {
    use crate::batch::{BatchBuilder, Batches, Compression, EndTxnMarker, RecordRef};
    use crate::config::{Durability, LogConfig};
    use crate::error::LogError;
    use crate::log::PartitionLog;
    use crate::txn_index::AbortedTxn;

    fn config(durability: Durability) -> LogConfig {
        LogConfig {
            segment_bytes_max: 1024,
            durability,
            ..LogConfig::default()
        }
    }

    /// A batch of `count` records of producer `pid`, transactional or not.
    fn batch(pid: i64, epoch: i16, seq: i32, count: usize, txn: bool) -> Vec<u8> {
        let mut b = BatchBuilder::new(Compression::None).with_producer(pid, epoch, seq);
        if txn {
            b = b.transactional();
        }
        for i in 0..count {
            b.push(RecordRef {
                key: None,
                value: Some(format!("v{i:040}").as_bytes()),
                headers: &[],
                timestamp: 1_000,
            });
        }
        b.build().expect("build").to_vec()
    }

    fn append(log: &PartitionLog, mut b: Vec<u8>) -> (u64, bool) {
        let info = log.append(&mut b).expect("append");
        (info.base_offset, info.duplicate)
    }

    fn marker(log: &PartitionLog, pid: i64, epoch: i16, commit: bool) -> u64 {
        let m = if commit {
            EndTxnMarker::commit(0)
        } else {
            EndTxnMarker::abort(0)
        };
        log.append_marker(pid, epoch, m)
            .expect("marker")
            .wait_durable()
            .expect("durable")
            .base_offset
    }

    /// Offsets of the data batches below `upper`.
    fn visible(log: &PartitionLog, upper: u64) -> Vec<u64> {
        let bytes = log.read_below(0, 1 << 20, upper).expect("read");
        Batches::new(&bytes)
            .map(|b| b.expect("batch").header)
            .filter(|h| !h.is_control())
            .map(|h| h.base_offset as u64)
            .collect()
    }

    #[test]
    fn the_lso_waits_for_open_transactions_and_aborts_are_indexed() {
        for durability in [Durability::Sync, Durability::None] {
            let dir = tempfile::tempdir().expect("tempdir");
            let log = PartitionLog::open(dir.path(), config(durability)).expect("open");
            assert_eq!(append(&log, batch(-1, -1, -1, 2, false)), (0, false));
            assert_eq!(append(&log, batch(1, 0, 0, 2, true)), (2, false));
            assert_eq!(append(&log, batch(2, 0, 0, 1, true)), (4, false));
            assert_eq!(append(&log, batch(-1, -1, -1, 1, false)), (5, false));
            assert_eq!(log.high_watermark(), 6);
            assert_eq!(log.last_stable_offset(), 2, "{durability}");
            assert_eq!(visible(&log, log.last_stable_offset()), vec![0]);
            assert_eq!(marker(&log, 1, 0, false), 6);
            assert_eq!(log.last_stable_offset(), 4, "producer 2 still open");
            assert_eq!(marker(&log, 2, 0, true), 7);
            assert_eq!(log.last_stable_offset(), 8);
            assert_eq!(visible(&log, 8), vec![0, 2, 4, 5]);
            assert_eq!(
                log.aborted_transactions(0, 8),
                vec![AbortedTxn {
                    producer_id: 1,
                    first_offset: 2
                }]
            );
            assert_eq!(log.aborted_transactions(7, 8), vec![], "ended before 7");
            assert_eq!(log.aborted_transactions(0, 2), vec![], "began at 2");
            // A reader below an open transaction's start sees an empty read, not an error.
            append(&log, batch(3, 0, 0, 1, true));
            assert_eq!(log.last_stable_offset(), 8);
            assert!(log.read_below(8, 100, 8).expect("empty").is_empty());
            assert!(
                log.read_below(10, 100, 8).is_err(),
                "past the high watermark"
            );
        }
    }

    #[test]
    fn producer_rules_are_enforced_at_append() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = PartitionLog::open(dir.path(), config(Durability::None)).expect("open");
        assert_eq!(append(&log, batch(7, 0, 0, 3, false)), (0, false));
        assert_eq!(append(&log, batch(7, 0, 0, 3, false)), (0, true), "a retry");
        assert_eq!(log.log_end_offset(), 3, "nothing written for it");
        assert!(matches!(
            log.append(&mut batch(7, 0, 5, 1, false)),
            Err(LogError::OutOfOrderSequence { expected: 3, .. })
        ));
        assert!(matches!(
            log.append(&mut batch(8, 0, 2, 1, false)),
            Err(LogError::UnknownProducerId { .. })
        ));
        append(&log, batch(7, 0, 3, 1, true));
        assert!(matches!(
            log.append(&mut batch(7, 0, 4, 1, false)),
            Err(LogError::InvalidTxnState { .. })
        ));
        // The coordinator fences epoch 0 with an abort at epoch 1.
        marker(&log, 7, 1, false);
        assert!(matches!(
            log.append(&mut batch(7, 0, 4, 1, true)),
            Err(LogError::ProducerFenced { current: 1, .. })
        ));
        assert!(log.append_marker(7, 0, EndTxnMarker::commit(0)).is_err());
        let mut control = crate::batch::control_batch(9, 0, EndTxnMarker::commit(0), 0);
        assert!(matches!(
            log.append(&mut control),
            Err(LogError::Batch(crate::error::BatchError::ControlBatch))
        ));
        let producers = log.producers();
        assert_eq!(producers.len(), 1);
        assert_eq!((producers[0].producer_id, producers[0].epoch), (7, 1));
        assert_eq!(producers[0].txn_first_offset, None);
    }

    #[test]
    fn state_survives_clean_and_unclean_restarts_and_truncation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = config(Durability::Sync);
        let log = PartitionLog::open(dir.path(), cfg.clone()).expect("open");
        let mut seq = 0;
        // Enough batches to roll segments (and snapshots) several times.
        for round in 0..12 {
            append(&log, batch(1, 0, seq, 3, true));
            seq += 3;
            marker(&log, 1, 0, round % 2 == 0);
        }
        append(&log, batch(2, 0, 0, 2, true));
        let open_at = log.log_end_offset() - 2;
        assert!(log.segment_count() > 2, "rolled");
        let lso = log.last_stable_offset();
        assert_eq!(lso, open_at);
        let aborted = log.aborted_transactions(0, lso);
        assert_eq!(aborted.len(), 6);
        log.close().expect("close");
        drop(log);

        let log = PartitionLog::open(dir.path(), cfg.clone()).expect("clean reopen");
        assert_eq!(log.last_stable_offset(), open_at);
        assert_eq!(log.aborted_transactions(0, lso), aborted);
        assert!(
            append(&log, batch(1, 0, seq - 3, 3, true)).1,
            "kept batches"
        );
        // A crash: the snapshot is older than the tail, which is replayed.
        append(&log, batch(1, 0, seq, 1, true));
        marker(&log, 1, 0, false);
        let aborted_now = log.aborted_transactions(0, open_at);
        assert_eq!(aborted_now.len(), 6, "the new abort began after {open_at}");
        drop(log);
        // Damage every index: all are rebuilt from the log.
        for entry in std::fs::read_dir(dir.path()).expect("ls") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "txnindex") {
                std::fs::write(&path, b"bad").expect("damage");
            }
        }
        let log = PartitionLog::open(dir.path(), cfg.clone()).expect("unclean reopen");
        assert_eq!(log.last_stable_offset(), open_at);
        let end = log.log_end_offset();
        assert_eq!(log.aborted_transactions(0, end).len(), 7);
        assert!(
            append(&log, batch(1, 0, seq, 1, true)).1,
            "the tail's batch is known"
        );
        // Cutting the tail takes the last abort and producer 2's open transaction away.
        log.truncate_to(open_at).expect("truncate");
        assert_eq!(log.last_stable_offset(), open_at);
        assert_eq!(log.aborted_transactions(0, open_at).len(), 6);
        assert_eq!(log.open_transaction(2), None);
        assert!(matches!(
            log.append(&mut batch(1, 0, seq, 1, true)),
            Ok(info) if !info.duplicate
        ));
    }
}
