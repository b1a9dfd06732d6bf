//! What a partition knows of each producer that wrote to it: the state behind idempotent
//! producing (a retried batch is answered with its first offsets, not stored twice) and behind
//! transactions (which producers have a transaction open here, from which offset), Kafka's
//! `ProducerStateManager` (KIP-98).
//!
//! Per producer id: its epoch, its last [`BATCHES_KEPT`] batches (first and last sequence, base
//! and last offset), the first offset of its ongoing transaction, the last timestamp and the
//! coordinator epoch of its last marker. The partition log owns one [`ProducerStates`] and
//! updates it under its writer lock: [`ProducerStates::check`] decides about a batch before it
//! is written, [`ProducerStates::apply`] records it after. So every door (the Kafka door and
//! gRPC raw batches alike) deduplicates the same way.
//!
//! # Rules for a batch of producer id `p` (>= 0)
//!
//! - A control batch (a transaction marker) must carry an epoch at least `p`'s; it ends `p`'s
//!   ongoing transaction, if any, and a higher epoch replaces `p`'s (the coordinator fencing a
//!   producer). Only the broker writes markers.
//! - A data batch with an older epoch is fenced ([`LogError::ProducerFenced`]); a newer epoch
//!   must start at sequence 0; the same epoch must continue right after the last sequence (a
//!   batch equal to a kept one is a [`Check::Duplicate`]), else
//!   [`LogError::OutOfOrderSequence`]. A producer new to the partition must start at 0, else
//!   [`LogError::UnknownProducerId`]. Sequences wrap from `i32::MAX` to 0.
//! - A transactional data batch opens a transaction at its base offset unless one is open; a
//!   non-transactional batch while one is open is refused ([`LogError::InvalidTxnState`]).
//!
//! # Persistence
//!
//! The state is derived from the log (every batch header carries producer id, epoch, first
//! sequence and offsets), and saved as `{offset:020}.snapshot` files (brook's checked
//! [`crate::meta`] envelope, magic `BRPS`) when a segment rolls and on a clean close: the
//! state of every batch below `offset`. At open, the newest valid snapshot at or below the log
//! end is loaded and the batch headers after it are replayed (no record is decoded); without
//! one, the whole log is replayed. Snapshots are derived data: a damaged one is skipped, ones
//! past the log end (a cut tail) or older than the two newest are deleted.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};

use crate::batch::{BatchHeader, ControlType, EndTxnMarker};
use crate::error::{LogError, Result};
use crate::fs::Fs;
use crate::meta;

/// How many of a producer's last batches are kept (Kafka's
/// `max.in.flight.requests.per.connection` ceiling for idempotence).
pub const BATCHES_KEPT: usize = 5;
/// File extension of producer state snapshots.
pub(crate) const SNAPSHOT_EXT: &str = "snapshot";
/// Snapshots kept on disk; older ones are deleted when a new one is written.
const SNAPSHOTS_KEPT: usize = 2;
const SNAPSHOT_MAGIC: [u8; 4] = *b"BRPS";
const SNAPSHOT_VERSION: u16 = 1;

/// One batch a producer wrote, as remembered for deduplication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeptBatch {
    pub first_seq: i32,
    pub last_seq: i32,
    pub base_offset: u64,
    pub last_offset: u64,
}

/// One producer's state in a partition (what Kafka's DescribeProducers shows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerEntry {
    pub producer_id: i64,
    pub epoch: i16,
    /// Its last batches, oldest first (at most [`BATCHES_KEPT`]).
    pub batches: VecDeque<KeptBatch>,
    /// The first offset of its open transaction in this partition.
    pub txn_first_offset: Option<u64>,
    /// The greatest timestamp of its last batch (ms since the epoch).
    pub last_timestamp: i64,
    /// The coordinator epoch of its last transaction marker, -1 before any.
    pub coordinator_epoch: i32,
}

impl ProducerEntry {
    fn new(producer_id: i64, epoch: i16) -> Self {
        Self {
            producer_id,
            epoch,
            batches: VecDeque::new(),
            txn_first_offset: None,
            last_timestamp: -1,
            coordinator_epoch: -1,
        }
    }

    /// The sequence of its last record, -1 when it has written nothing in this epoch.
    pub fn last_sequence(&self) -> i32 {
        self.batches.back().map_or(-1, |b| b.last_seq)
    }

    /// A new epoch restarts the sequence: the kept batches belong to the old one.
    fn set_epoch(&mut self, epoch: i16) {
        if epoch != self.epoch {
            self.epoch = epoch;
            self.batches.clear();
        }
    }
}

/// What to do with a data batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// Write it (then [`ProducerStates::apply`] it).
    Append,
    /// Already stored: answer with this batch's offsets and write nothing.
    Duplicate(KeptBatch),
}

/// A transaction a marker ended in this partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CompletedTxn {
    pub producer_id: i64,
    pub first_offset: u64,
    /// The marker's offset.
    pub last_offset: u64,
    pub control: ControlType,
    /// The last stable offset once it ended: the first offset of the oldest transaction still
    /// open, else the offset after the marker (what Kafka's transaction index records).
    pub last_stable_offset: u64,
}

/// Every producer's state in one partition, and the open transactions by first offset.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct ProducerStates {
    by_id: HashMap<i64, ProducerEntry>,
    /// First offset of each open transaction -> its producer id.
    ongoing: BTreeMap<u64, i64>,
}

/// The sequence after `seq`: sequences wrap from i32::MAX to 0.
fn next_seq(seq: i32) -> i32 {
    if seq == i32::MAX {
        0
    } else {
        seq + 1
    }
}

/// The sequence of the last record of a batch of `count` records starting at `first_seq`.
pub(crate) fn last_seq(first_seq: i32, count: i32) -> i32 {
    // Wraps past i32::MAX back to 0, as Kafka's DefaultRecordBatch.incrementSequence does.
    let last = i64::from(first_seq) + i64::from(count.max(1)) - 1;
    (last % (i64::from(i32::MAX) + 1)) as i32
}

impl ProducerStates {
    /// Decides about a data batch (not a control batch) before it is written.
    pub(crate) fn check(&self, header: &BatchHeader) -> Result<Check> {
        let producer_id = header.producer_id;
        if producer_id < 0 {
            if header.is_transactional() {
                return Err(LogError::InvalidTxnState {
                    producer_id,
                    reason: "a transactional batch without a producer id".into(),
                });
            }
            return Ok(Check::Append);
        }
        let (epoch, first_seq) = (header.producer_epoch, header.base_sequence);
        let out_of_order = |expected: i32| LogError::OutOfOrderSequence {
            producer_id,
            epoch,
            expected,
            got: first_seq,
        };
        if first_seq < 0 {
            return Err(out_of_order(0));
        }
        let Some(entry) = self.by_id.get(&producer_id) else {
            return if first_seq == 0 {
                Ok(Check::Append)
            } else {
                Err(LogError::UnknownProducerId {
                    producer_id,
                    sequence: first_seq,
                })
            };
        };
        if epoch < entry.epoch {
            return Err(LogError::ProducerFenced {
                producer_id,
                epoch,
                current: entry.epoch,
            });
        }
        if entry.txn_first_offset.is_some() && !header.is_transactional() {
            return Err(LogError::InvalidTxnState {
                producer_id,
                reason: "a non-transactional batch while the producer's transaction is open".into(),
            });
        }
        if epoch > entry.epoch {
            return if first_seq == 0 {
                Ok(Check::Append)
            } else {
                Err(out_of_order(0))
            };
        }
        let last = last_seq(first_seq, header.records_count);
        if let Some(kept) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == first_seq && b.last_seq == last)
        {
            return Ok(Check::Duplicate(*kept));
        }
        let expected = entry.batches.back().map_or(0, |b| next_seq(b.last_seq));
        if first_seq == expected {
            Ok(Check::Append)
        } else {
            Err(out_of_order(expected))
        }
    }

    /// Decides about a transaction marker before it is written: its epoch may not be older
    /// than the producer's.
    pub(crate) fn check_marker(&self, producer_id: i64, epoch: i16) -> Result<()> {
        match self.by_id.get(&producer_id) {
            Some(entry) if epoch < entry.epoch => Err(LogError::ProducerFenced {
                producer_id,
                epoch,
                current: entry.epoch,
            }),
            _ => Ok(()),
        }
    }

    /// Records a batch written at `header.base_offset` (data or control, from an append or a
    /// replay of the log). A marker that ended a transaction returns it.
    pub(crate) fn apply(
        &mut self,
        header: &BatchHeader,
        marker: Option<EndTxnMarker>,
    ) -> Option<CompletedTxn> {
        let producer_id = header.producer_id;
        if producer_id < 0 {
            return None;
        }
        let base = header.base_offset as u64;
        let entry = self
            .by_id
            .entry(producer_id)
            .or_insert_with(|| ProducerEntry::new(producer_id, header.producer_epoch));
        if header.producer_epoch > entry.epoch || !header.is_control() {
            entry.set_epoch(header.producer_epoch);
        }
        entry.last_timestamp = header.max_timestamp;
        if header.is_control() {
            let marker = marker?;
            entry.coordinator_epoch = marker.coordinator_epoch;
            let first_offset = entry.txn_first_offset.take()?;
            self.ongoing.remove(&first_offset);
            let last_stable_offset = self
                .ongoing
                .keys()
                .next()
                .copied()
                .unwrap_or(base + 1)
                .min(base + 1);
            return Some(CompletedTxn {
                producer_id,
                first_offset,
                last_offset: base,
                control: marker.control,
                last_stable_offset,
            });
        }
        if header.base_sequence >= 0 {
            if entry.batches.len() == BATCHES_KEPT {
                entry.batches.pop_front();
            }
            entry.batches.push_back(KeptBatch {
                first_seq: header.base_sequence,
                last_seq: last_seq(header.base_sequence, header.records_count),
                base_offset: base,
                last_offset: header.last_offset() as u64,
            });
        }
        if header.is_transactional() && entry.txn_first_offset.is_none() {
            entry.txn_first_offset = Some(base);
            self.ongoing.insert(base, producer_id);
        }
        None
    }

    /// The first offset of the oldest open transaction.
    pub(crate) fn first_unstable_offset(&self) -> Option<u64> {
        self.ongoing.keys().next().copied()
    }

    /// The first offset of `producer_id`'s open transaction here.
    pub(crate) fn open_transaction(&self, producer_id: i64) -> Option<u64> {
        self.by_id.get(&producer_id)?.txn_first_offset
    }

    /// Every producer, sorted by id.
    pub(crate) fn entries(&self) -> Vec<ProducerEntry> {
        let mut entries: Vec<ProducerEntry> = self.by_id.values().cloned().collect();
        entries.sort_by_key(|e| e.producer_id);
        entries
    }

    fn encode(&self) -> Vec<u8> {
        let entries = self.entries();
        let mut out = Vec::with_capacity(4 + entries.len() * 64);
        out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
        for e in &entries {
            out.extend_from_slice(&e.producer_id.to_be_bytes());
            out.extend_from_slice(&e.epoch.to_be_bytes());
            out.extend_from_slice(&e.coordinator_epoch.to_be_bytes());
            out.extend_from_slice(&e.last_timestamp.to_be_bytes());
            let txn = e.txn_first_offset.map_or(-1, |o| o as i64);
            out.extend_from_slice(&txn.to_be_bytes());
            out.push(e.batches.len() as u8);
            for b in &e.batches {
                out.extend_from_slice(&b.first_seq.to_be_bytes());
                out.extend_from_slice(&b.last_seq.to_be_bytes());
                out.extend_from_slice(&b.base_offset.to_be_bytes());
                out.extend_from_slice(&b.last_offset.to_be_bytes());
            }
        }
        out
    }

    fn decode(payload: &[u8]) -> std::result::Result<Self, String> {
        let mut r = Reader {
            bytes: payload,
            at: 0,
        };
        let count = u32::from_be_bytes(r.array()?);
        let mut states = Self::default();
        for _ in 0..count {
            let producer_id = i64::from_be_bytes(r.array()?);
            let epoch = i16::from_be_bytes(r.array()?);
            let coordinator_epoch = i32::from_be_bytes(r.array()?);
            let last_timestamp = i64::from_be_bytes(r.array()?);
            let txn = i64::from_be_bytes(r.array()?);
            let kept = r.array::<1>()?[0] as usize;
            if producer_id < 0 || kept > BATCHES_KEPT || txn < -1 {
                return Err(format!("bad entry for producer {producer_id}"));
            }
            let mut batches = VecDeque::with_capacity(kept);
            for _ in 0..kept {
                batches.push_back(KeptBatch {
                    first_seq: i32::from_be_bytes(r.array()?),
                    last_seq: i32::from_be_bytes(r.array()?),
                    base_offset: u64::from_be_bytes(r.array()?),
                    last_offset: u64::from_be_bytes(r.array()?),
                });
            }
            let txn_first_offset = u64::try_from(txn).ok();
            if let Some(first) = txn_first_offset {
                states.ongoing.insert(first, producer_id);
            }
            states.by_id.insert(
                producer_id,
                ProducerEntry {
                    producer_id,
                    epoch,
                    batches,
                    txn_first_offset,
                    last_timestamp,
                    coordinator_epoch,
                },
            );
        }
        if r.at != payload.len() {
            return Err(format!(
                "{} bytes after the last entry",
                payload.len() - r.at
            ));
        }
        Ok(states)
    }
}

/// A cursor over a payload that refuses to read past its end.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn array<const N: usize>(&mut self) -> std::result::Result<[u8; N], String> {
        let Some(slice) = self.bytes.get(self.at..self.at + N) else {
            return Err(format!("truncated at byte {}", self.at));
        };
        self.at += N;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        Ok(out)
    }
}

/// The path of the snapshot of the state below `offset`.
pub(crate) fn snapshot_path(dir: &Path, offset: u64) -> PathBuf {
    dir.join(format!("{offset:020}.{SNAPSHOT_EXT}"))
}

/// The offsets of the snapshots in `dir`, newest first.
pub(crate) fn list_snapshots(fs: &dyn Fs, dir: &Path) -> Result<Vec<u64>> {
    let mut offsets = Vec::new();
    for entry in fs.read_dir(dir).map_err(|e| LogError::io(dir, e))? {
        let Some(name) = entry.name.to_str() else {
            continue;
        };
        if let Some(offset) = name
            .strip_suffix(&format!(".{SNAPSHOT_EXT}"))
            .filter(|stem| stem.len() == 20)
            .and_then(|stem| stem.parse::<u64>().ok())
        {
            offsets.push(offset);
        }
    }
    offsets.sort_unstable_by(|a, b| b.cmp(a));
    Ok(offsets)
}

/// Writes the snapshot of `states` (every batch below `offset`) and deletes all but the
/// newest [`SNAPSHOTS_KEPT`].
pub(crate) fn write_snapshot(
    fs: &dyn Fs,
    dir: &Path,
    offset: u64,
    states: &ProducerStates,
) -> Result<()> {
    meta::write_in(
        fs,
        &snapshot_path(dir, offset),
        SNAPSHOT_MAGIC,
        SNAPSHOT_VERSION,
        &states.encode(),
    )?;
    for old in list_snapshots(fs, dir)?.into_iter().skip(SNAPSHOTS_KEPT) {
        meta::remove_in(fs, &snapshot_path(dir, old))?;
    }
    Ok(())
}

/// What [`load_snapshot`] does with a snapshot past the log end: one a crash left (it covers
/// bytes that did not survive) must go before anything is appended, or it would later pass
/// for the state of different batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Later {
    Delete,
    /// The log takes no appends (damage found); only a truncation, which deletes them, lets it.
    Skip,
}

/// The newest valid snapshot at or below `log_end` and at or above `log_start`, as
/// `(offset, states)`; snapshots past the log end are deleted or skipped as `later` says,
/// damaged ones skipped (and logged).
pub(crate) fn load_snapshot(
    fs: &dyn Fs,
    dir: &Path,
    log_start: u64,
    log_end: u64,
    later: Later,
) -> Result<Option<(u64, ProducerStates)>> {
    for offset in list_snapshots(fs, dir)? {
        let path = snapshot_path(dir, offset);
        if offset > log_end {
            tracing::info!(
                dir = %dir.display(),
                snapshot = offset,
                log_end,
                "a producer state snapshot past the recovered log end (its bytes did not survive the crash); not used"
            );
            if later == Later::Delete {
                meta::remove_in(fs, &path)?;
            }
            continue;
        }
        if offset < log_start {
            break;
        }
        let loaded =
            meta::read_in(fs, &path, SNAPSHOT_MAGIC, "producer state snapshot").and_then(|found| {
                let (version, payload) = found.ok_or_else(|| LogError::BadMetaFile {
                    what: "producer state snapshot",
                    path: path.clone(),
                    reason: "vanished while being read".into(),
                })?;
                if version != SNAPSHOT_VERSION {
                    return Err(LogError::BadMetaFile {
                        what: "producer state snapshot",
                        path: path.clone(),
                        reason: format!("version {version} is not {SNAPSHOT_VERSION}"),
                    });
                }
                ProducerStates::decode(&payload).map_err(|reason| LogError::BadMetaFile {
                    what: "producer state snapshot",
                    path: path.clone(),
                    reason,
                })
            });
        match loaded {
            Ok(states) => return Ok(Some((offset, states))),
            Err(e) => tracing::warn!(error = %e, "skipping a damaged producer state snapshot"),
        }
    }
    Ok(None)
}

/// Deletes the snapshots past `offset` (after a truncation to it).
pub(crate) fn delete_snapshots_after(fs: &dyn Fs, dir: &Path, offset: u64) -> Result<()> {
    for old in list_snapshots(fs, dir)?.into_iter().filter(|o| *o > offset) {
        meta::remove_in(fs, &snapshot_path(dir, old))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::header::HEADER_LEN;

    fn header(producer_id: i64, epoch: i16, seq: i32, count: i32, base: i64) -> BatchHeader {
        BatchHeader {
            base_offset: base,
            batch_length: (HEADER_LEN - 12) as i32,
            partition_leader_epoch: -1,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: count - 1,
            base_timestamp: 0,
            max_timestamp: 5,
            producer_id,
            producer_epoch: epoch,
            base_sequence: seq,
            records_count: count,
        }
    }

    fn txn(h: BatchHeader) -> BatchHeader {
        BatchHeader {
            attributes: 0x10,
            ..h
        }
    }

    fn marker(producer_id: i64, epoch: i16, base: i64) -> BatchHeader {
        BatchHeader {
            attributes: 0x30,
            base_sequence: -1,
            ..header(producer_id, epoch, -1, 1, base)
        }
    }

    fn kept(first_seq: i32, last_seq: i32, base_offset: u64, last_offset: u64) -> KeptBatch {
        KeptBatch {
            first_seq,
            last_seq,
            base_offset,
            last_offset,
        }
    }

    #[test]
    fn sequences_continue_retries_are_duplicates_and_gaps_are_refused() {
        let mut s = ProducerStates::default();
        let first = header(7, 0, 0, 3, 100);
        assert_eq!(s.check(&first).expect("new"), Check::Append);
        s.apply(&first, None);
        let second = header(7, 0, 3, 2, 103);
        assert_eq!(s.check(&second).expect("next"), Check::Append);
        s.apply(&second, None);
        assert_eq!(
            s.check(&header(7, 0, 0, 3, 0)).expect("retry"),
            Check::Duplicate(kept(0, 2, 100, 102))
        );
        assert!(matches!(
            s.check(&header(7, 0, 6, 1, 0)),
            Err(LogError::OutOfOrderSequence { expected: 5, .. })
        ));
        assert!(matches!(
            s.check(&header(8, 0, 5, 1, 0)),
            Err(LogError::UnknownProducerId { .. })
        ));
        assert!(matches!(
            s.check(&header(7, 0, -1, 1, 0)),
            Err(LogError::OutOfOrderSequence { .. })
        ));
        assert_eq!(
            s.check(&header(-1, -1, -1, 4, 0)).expect("plain"),
            Check::Append
        );
    }

    #[test]
    fn epochs_fence_old_producers_and_restart_sequences() {
        let mut s = ProducerStates::default();
        s.apply(&header(7, 1, 0, 1, 10), None);
        assert!(matches!(
            s.check(&header(7, 0, 1, 1, 0)),
            Err(LogError::ProducerFenced { current: 1, .. })
        ));
        assert!(s.check(&header(7, 2, 5, 1, 0)).is_err());
        assert_eq!(
            s.check(&header(7, 2, 0, 1, 0)).expect("bumped"),
            Check::Append
        );
        for i in 0..6 {
            s.apply(&header(9, 0, i, 1, 20 + i as i64), None);
        }
        assert!(s.check(&header(9, 0, 0, 1, 0)).is_err(), "only 5 are kept");
        assert_eq!(
            s.check(&header(9, 0, 1, 1, 0)).expect("kept"),
            Check::Duplicate(kept(1, 1, 21, 21))
        );
    }

    #[test]
    fn transactions_open_at_their_first_batch_and_end_at_their_marker() {
        let mut s = ProducerStates::default();
        s.apply(&txn(header(1, 0, 0, 2, 10)), None);
        s.apply(&txn(header(2, 0, 0, 1, 12)), None);
        s.apply(&txn(header(1, 0, 2, 1, 13)), None);
        assert_eq!(s.first_unstable_offset(), Some(10));
        assert_eq!(s.open_transaction(2), Some(12));
        assert!(matches!(
            s.check(&header(1, 0, 3, 1, 0)),
            Err(LogError::InvalidTxnState { .. })
        ));
        let done = s
            .apply(&marker(1, 0, 14), Some(EndTxnMarker::abort(0)))
            .expect("ended");
        assert_eq!(
            (done.first_offset, done.last_offset, done.last_stable_offset),
            (10, 14, 12)
        );
        assert_eq!(done.control, ControlType::Abort);
        assert_eq!(s.first_unstable_offset(), Some(12));
        let done = s
            .apply(&marker(2, 0, 15), Some(EndTxnMarker::commit(0)))
            .expect("ended");
        assert_eq!(done.last_stable_offset, 16);
        assert_eq!(s.first_unstable_offset(), None);
        // A marker for a producer with nothing open ends nothing; a bumped one fences.
        assert_eq!(
            s.apply(&marker(1, 3, 16), Some(EndTxnMarker::abort(0))),
            None
        );
        assert!(s.check_marker(1, 2).is_err());
        assert!(matches!(
            s.check(&txn(header(1, 2, 0, 1, 0))),
            Err(LogError::ProducerFenced { current: 3, .. })
        ));
        // Sequences go on across transactions of one epoch.
        s.apply(&txn(header(2, 0, 1, 1, 17)), None);
        assert_eq!(
            s.check(&txn(header(2, 0, 2, 1, 0))).expect("next"),
            Check::Append
        );
    }

    #[test]
    fn snapshots_round_trip_and_damage_is_refused() {
        let mut s = ProducerStates::default();
        s.apply(&txn(header(1, 0, 0, 2, 10)), None);
        s.apply(&header(5, 4, 7, 3, 12), None);
        let bytes = s.encode();
        assert_eq!(ProducerStates::decode(&bytes).expect("decodes"), s);
        for cut in 0..bytes.len() {
            assert!(
                ProducerStates::decode(&bytes[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let fs = &*crate::fs::real();
        for offset in [5, 15, 25] {
            write_snapshot(fs, dir.path(), offset, &s).expect("write");
        }
        assert_eq!(list_snapshots(fs, dir.path()).expect("list"), vec![25, 15]);
        // A log that refuses appends skips a snapshot past its end and keeps it.
        let (offset, _) = load_snapshot(fs, dir.path(), 0, 20, Later::Skip)
            .expect("load")
            .expect("one");
        assert_eq!(offset, 15);
        assert_eq!(list_snapshots(fs, dir.path()).expect("list"), vec![25, 15]);
        let (offset, loaded) = load_snapshot(fs, dir.path(), 0, 20, Later::Delete)
            .expect("load")
            .expect("one");
        assert_eq!((offset, loaded), (15, s.clone()));
        assert_eq!(
            list_snapshots(fs, dir.path()).expect("list"),
            vec![15],
            "25 > end"
        );
        std::fs::write(snapshot_path(dir.path(), 15), b"garbage").expect("damage");
        assert_eq!(
            load_snapshot(fs, dir.path(), 0, 20, Later::Delete).expect("load"),
            None
        );
    }
}
