//! Property test: random sequences of append, roll, retention, log start moves (DeleteRecords),
//! truncate, reopen and crash agree with a model that is just a list of batches.
//!
//! The limits are tiny (2 KiB segments, an index entry every 128 bytes, 1 KiB index files) so a
//! few dozen batches roll segments, fill indexes and move the log start. Durability is `none`:
//! what is checked here is bookkeeping, not fsync (kill9.rs and damage.rs cover that).

mod common;

use brook_log::batch::records;
use brook_log::{Durability, LogConfig, LogError, PartitionLog, RecoveryReport};
use bytes::Bytes;
use common::{base_offset_of, numbered_batch, segment_files, small_config, split_batches};
use proptest::prelude::*;
use proptest::sample::Index;
use tempfile::TempDir;

/// A batch as the model keeps it: the bytes the log must give back, and what is in them.
#[derive(Debug, Clone)]
struct Stored {
    base: u64,
    next: u64,
    bytes: Vec<u8>,
    timestamps: Vec<i64>,
}

/// The whole truth about a log: the batches still on disk in offset order (some may lie below
/// the log start, in a segment that also holds later ones), and where the log starts and ends.
#[derive(Debug, Default)]
struct Model {
    batches: Vec<Stored>,
    start: u64,
    end: u64,
}

impl Model {
    fn size(&self) -> u64 {
        self.batches.iter().map(|b| b.bytes.len() as u64).sum()
    }

    /// The batch holding `offset`, by index.
    fn batch_holding(&self, offset: u64) -> Option<usize> {
        self.batches
            .iter()
            .position(|b| b.base <= offset && offset < b.next)
    }

    /// The batches a full read from the log start returns: from the one holding the start.
    fn live(&self) -> &[Stored] {
        let first = self.batch_holding(self.start).unwrap_or(self.batches.len());
        &self.batches[first..]
    }

    /// The first record at or after the log start with a timestamp >= `ts`.
    fn offset_for_timestamp(&self, ts: i64) -> Option<(u64, i64)> {
        self.batches.iter().find_map(|b| {
            b.timestamps
                .iter()
                .enumerate()
                .map(|(i, t)| (b.base + i as u64, *t))
                .find(|(o, t)| *o >= self.start && *t >= ts)
        })
    }

    /// The first record at or after the log start holding the greatest timestamp (Kafka's
    /// ListOffsets `MAX_TIMESTAMP`).
    fn max_timestamp_offset(&self) -> Option<(u64, i64)> {
        self.batches
            .iter()
            .flat_map(|b| {
                b.timestamps
                    .iter()
                    .enumerate()
                    .map(|(i, t)| (b.base + i as u64, *t))
            })
            .filter(|(o, _)| *o >= self.start && *o < self.end)
            .fold(None, |best: Option<(u64, i64)>, (o, t)| match best {
                Some((_, bt)) if bt >= t => best,
                _ => Some((o, t)),
            })
    }

    /// Forgets the batches of deleted segments: every batch before `first_kept`, the base
    /// offset of the oldest segment left.
    fn drop_segments_before(&mut self, first_kept: u64) {
        self.batches.retain(|b| b.base >= first_kept);
    }
}

#[derive(Debug, Clone)]
enum Op {
    /// `count` records of `value_len` bytes; timestamps start `ts_step` ms after the previous
    /// batch (possibly before it: producers' clocks are not monotonic).
    Append {
        count: usize,
        value_len: usize,
        ts_step: i64,
    },
    Roll,
    /// Size retention with a limit of `keep` bytes.
    Retain {
        keep: u64,
    },
    /// Move the log start to an offset chosen in [start, end] (Kafka's DeleteRecords).
    AdvanceStart {
        at: Index,
    },
    /// Truncate at an offset chosen in [start, end]: the batch holding it goes whole.
    Truncate {
        at: Index,
    },
    /// Clean close and open.
    Reopen,
    /// Drop the handle without closing (as a crash would), then open and recover.
    Crash,
    /// Read from an offset chosen in [start, end] with a byte limit.
    Read {
        at: Index,
        max_bytes: usize,
    },
    /// Look up the first offset at or after a timestamp.
    Time {
        ts_pick: Index,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (1usize..8, 0usize..300, -5i64..50).prop_map(|(count, value_len, ts_step)| Op::Append {
            count,
            value_len,
            ts_step,
        }),
        1 => Just(Op::Roll),
        1 => (0u64..8000).prop_map(|keep| Op::Retain { keep }),
        1 => any::<Index>().prop_map(|at| Op::AdvanceStart { at }),
        1 => any::<Index>().prop_map(|at| Op::Truncate { at }),
        1 => Just(Op::Reopen),
        1 => Just(Op::Crash),
        3 => (any::<Index>(), 1usize..1500).prop_map(|(at, max_bytes)| Op::Read { at, max_bytes }),
        2 => any::<Index>().prop_map(|ts_pick| Op::Time { ts_pick }),
    ]
}

struct Harness {
    dir: TempDir,
    config: LogConfig,
    log: Option<PartitionLog>,
    model: Model,
    /// Distinguishes the records of different batches.
    seq: u64,
    last_ts: i64,
}

impl Harness {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = small_config(Durability::None);
        let log = PartitionLog::open(dir.path(), config.clone()).expect("open a new log");
        Self {
            dir,
            config,
            log: Some(log),
            model: Model::default(),
            seq: 0,
            last_ts: 1_700_000_000_000,
        }
    }

    fn log(&self) -> &PartitionLog {
        self.log.as_ref().expect("the log is open")
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match op {
            Op::Append {
                count,
                value_len,
                ts_step,
            } => {
                let ts = self.last_ts + ts_step;
                let mut batch = numbered_batch(self.seq, *count, *value_len, ts);
                self.seq += *count as u64;
                let info = self.log().append(&mut batch).expect("append");
                prop_assert_eq!(info.base_offset, self.model.end);
                prop_assert_eq!(info.last_offset, self.model.end + *count as u64 - 1);
                prop_assert_eq!(info.record_count, *count as u32);
                prop_assert_eq!(info.max_timestamp, ts + *count as i64 - 1);
                // `append` assigned the offsets in the caller's buffer: those are the bytes a
                // read must return.
                self.model.batches.push(Stored {
                    base: info.base_offset,
                    next: info.last_offset + 1,
                    bytes: batch,
                    timestamps: (0..*count as i64).map(|i| ts + i).collect(),
                });
                self.model.end = info.last_offset + 1;
                self.last_ts = ts + *count as i64 - 1;
            }
            Op::Roll => {
                let before = self.log().segment_count();
                self.log().roll().expect("roll");
                let after = self.log().segment_count();
                prop_assert!(
                    after == before || after == before + 1,
                    "roll went from {} to {} segments",
                    before,
                    after
                );
            }
            Op::Retain { keep } => {
                let first_kept = self.first_segment_kept_by_retention(*keep);
                let mut config = self.config.clone();
                config.retention_bytes_max = Some(*keep);
                self.log().set_config(config).expect("set retention");
                self.log().apply_retention(0).expect("apply retention");
                self.log().set_config(self.config.clone()).expect("reset");
                self.model.drop_segments_before(first_kept);
                self.model.start = self.model.start.max(first_kept);
            }
            Op::AdvanceStart { at } => {
                let offset = self.pick_offset(*at);
                self.log()
                    .advance_log_start(offset)
                    .expect("advance log start");
                // Segments wholly below the new start go.
                if offset > self.model.start {
                    self.model.start = offset;
                    let first_kept = self.first_segment_at_or_below_start();
                    self.model.drop_segments_before(first_kept);
                }
            }
            Op::Truncate { at } => self.truncate(*at)?,
            Op::Reopen => {
                let log = self.log.take().expect("open");
                log.close().expect("close");
                drop(log);
                let report = self.reopen()?;
                prop_assert!(report.clean, "a closed log reopened unclean: {:?}", report);
            }
            Op::Crash => {
                drop(self.log.take().expect("open"));
                let report = self.reopen()?;
                prop_assert!(!report.clean, "a dropped log reopened clean");
                // Durability none, but the page cache survives a dropped handle: nothing is lost.
                prop_assert_eq!(report.truncated_bytes, 0, "{:?}", report);
            }
            Op::Read { at, max_bytes } => self.check_read(*at, *max_bytes)?,
            Op::Time { ts_pick } => {
                // Targets around every stored timestamp, plus one past all of them.
                let mut targets: Vec<i64> = self
                    .model
                    .batches
                    .iter()
                    .flat_map(|b| b.timestamps.iter().copied())
                    .collect();
                targets.push(self.last_ts + 1_000);
                let ts = targets[ts_pick.index(targets.len())];
                for target in [ts - 1, ts, ts + 1] {
                    let got = self
                        .log()
                        .offset_for_timestamp(target)
                        .expect("time lookup");
                    prop_assert_eq!(
                        got,
                        self.model.offset_for_timestamp(target),
                        "offset_for_timestamp({})",
                        target
                    );
                }
            }
        }
        self.check_everything()
    }

    /// Opens the log again. Opening removes segments wholly below the log start (left by a
    /// start that moved after they were last looked at), so the model forgets them too.
    fn reopen(&mut self) -> Result<RecoveryReport, TestCaseError> {
        let first_kept = self.first_segment_at_or_below_start();
        let log = PartitionLog::open(self.dir.path(), self.config.clone()).expect("reopen");
        let report = log.recovery().clone();
        prop_assert!(report.corruption.is_none(), "{:?}", report);
        self.log = Some(log);
        self.model.drop_segments_before(first_kept);
        Ok(report)
    }

    /// The segment files' base offsets: where the log's segment boundaries are now.
    fn segment_bases(&self) -> Vec<u64> {
        segment_files(self.dir.path())
            .iter()
            .map(|p| base_offset_of(p))
            .collect()
    }

    /// An offset in [start, end], chosen by `at`.
    fn pick_offset(&self, at: Index) -> u64 {
        let m = &self.model;
        m.start + at.index((m.end - m.start + 1) as usize) as u64
    }

    /// `truncate_to` an offset in [start, end]: every batch whose last offset is at or past it
    /// goes, and the log ends where the first of them began.
    fn truncate(&mut self, at: Index) -> Result<(), TestCaseError> {
        let offset = self.pick_offset(at);
        let m = &self.model;
        let cut = m.batch_holding(offset).map_or(m.end, |i| m.batches[i].base);
        let result = self.log().truncate_to(offset);
        let m = &mut self.model;
        if cut < m.start {
            // The batch holding the offset began below a log start moved mid-batch. Cutting it
            // must not leave the log ending before it starts (appends would then be given
            // offsets below the log start, unreadable): either refuse, or start the log at the
            // cut.
            match result {
                Err(LogError::OffsetOutOfRange { .. }) => return Ok(()),
                Err(e) => prop_assert!(false, "truncate_to({}) failed: {}", offset, e),
                Ok(()) => m.start = cut,
            }
        } else {
            result.map_err(|e| TestCaseError::fail(format!("truncate_to({offset}): {e}")))?;
        }
        m.batches.retain(|b| b.next <= offset);
        m.end = cut;
        Ok(())
    }

    /// The base offset of the oldest segment size retention must keep: it deletes whole
    /// segments, oldest first, while the log is larger than the limit, and those wholly below
    /// the log start; never the active (last) one.
    fn first_segment_kept_by_retention(&self, keep: u64) -> u64 {
        let bases = self.segment_bases();
        let holding_start = self.first_segment_at_or_below_start();
        let mut size = self.model.size();
        let mut first_kept = bases[0];
        for window in bases.windows(2) {
            let (seg_base, seg_next) = (window[0], window[1]);
            let seg_size: u64 = self
                .model
                .batches
                .iter()
                .filter(|b| b.base >= seg_base && b.base < seg_next)
                .map(|b| b.bytes.len() as u64)
                .sum();
            if size <= keep {
                break;
            }
            size -= seg_size;
            first_kept = seg_next;
        }
        first_kept.max(holding_start)
    }

    /// The base offset of the segment holding the log start: every segment before it is wholly
    /// below the start, and may go.
    fn first_segment_at_or_below_start(&self) -> u64 {
        let start = self.model.start;
        self.segment_bases()
            .into_iter()
            .rfind(|b| *b <= start)
            .unwrap_or(0)
    }

    fn check_read(&self, at: Index, max_bytes: usize) -> Result<(), TestCaseError> {
        let m = &self.model;
        let offset = self.pick_offset(at);
        let got = self.log().read(offset, max_bytes).expect("read in range");
        if offset == m.end {
            prop_assert!(
                got.is_empty(),
                "read at the end returned {} bytes",
                got.len()
            );
            return Ok(());
        }
        let first = m
            .batch_holding(offset)
            .expect("a live offset is in a batch");
        let batches = split_batches(&got);
        prop_assert!(!batches.is_empty(), "read({}) returned nothing", offset);
        if batches.len() > 1 {
            prop_assert!(
                got.len() <= max_bytes,
                "{} bytes of several batches for max_bytes {}",
                got.len(),
                max_bytes
            );
        }
        for (i, (_, bytes)) in batches.iter().enumerate() {
            let want = &m.batches[first + i];
            prop_assert_eq!(bytes, &want.bytes, "batch {} of read({})", i, offset);
        }
        Ok(())
    }

    /// Offsets, sizes, a full scan and every record match the model.
    fn check_everything(&self) -> Result<(), TestCaseError> {
        let log = self.log();
        let m = &self.model;
        prop_assert!(
            m.start <= m.end,
            "the model starts at {} after its end {}",
            m.start,
            m.end
        );
        prop_assert!(
            log.log_start_offset() <= log.log_end_offset(),
            "the log starts at {} after its end {}",
            log.log_start_offset(),
            log.log_end_offset()
        );
        prop_assert_eq!(log.log_start_offset(), m.start, "log start");
        prop_assert_eq!(log.log_end_offset(), m.end, "log end");
        prop_assert_eq!(log.high_watermark(), m.end, "high watermark");
        prop_assert_eq!(log.size_bytes(), m.size(), "size");

        let mut scanned = Vec::new();
        let mut offset = m.start;
        while offset < m.end {
            let bytes = log.read(offset, 4096).expect("scan read");
            let batches = split_batches(&bytes);
            prop_assert!(!batches.is_empty(), "scan stalled at {}", offset);
            for (header, bytes) in batches {
                offset = header.next_offset() as u64;
                scanned.push(bytes);
            }
        }
        prop_assert_eq!(scanned.len(), m.live().len(), "batches in a full scan");
        for (got, want) in scanned.iter().zip(m.live()) {
            prop_assert_eq!(got, &want.bytes, "batch at {}", want.base);
            let offsets: Vec<u64> = records(Bytes::from(got.clone()))
                .expect("records")
                .map(|r| r.expect("record").offset)
                .collect();
            prop_assert_eq!(offsets, (want.base..want.next).collect::<Vec<_>>());
        }
        prop_assert_eq!(
            log.max_timestamp_offset().expect("max timestamp lookup"),
            m.max_timestamp_offset(),
            "max_timestamp_offset"
        );
        // The earliest record, and nothing after the latest timestamp.
        for ts in [i64::MIN, self.last_ts + 1] {
            let got = log.offset_for_timestamp(ts).expect("time lookup");
            prop_assert_eq!(
                got,
                m.offset_for_timestamp(ts),
                "offset_for_timestamp({})",
                ts
            );
        }
        let outside = [m.start.checked_sub(1), Some(m.end + 1)];
        for offset in outside.into_iter().flatten() {
            match log.read(offset, 4096) {
                Err(LogError::OffsetOutOfRange { .. }) => {}
                other => prop_assert!(
                    false,
                    "read({}) outside [{}, {}] gave {:?}",
                    offset,
                    m.start,
                    m.end,
                    other.map(|b| b.len())
                ),
            }
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, max_shrink_iters: 200, ..ProptestConfig::default() })]

    #[test]
    fn log_agrees_with_model(ops in proptest::collection::vec(op(), 1..60)) {
        let mut h = Harness::new();
        for op in &ops {
            h.apply(op)?;
        }
        // Whatever happened, a clean close and reopen gives the same log.
        h.apply(&Op::Reopen)?;
    }
}
