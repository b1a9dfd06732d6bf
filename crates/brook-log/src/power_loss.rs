//! The power-loss simulation: a partition log on the simulated disk ([`crate::fs::sim`]) is
//! driven through appends, rolls and flushes, the power is cut at a seeded operation, the disk
//! keeps what a seeded crash leaves, and the log is reopened. After every crash:
//!
//! - every acknowledged append (in `sync` durability: every append that returned `Ok`) is
//!   there, byte for byte, at its offset;
//! - everything a read serves is exactly a batch that was appended at that offset (never a
//!   damaged or foreign byte), and offsets run on without a gap;
//! - damage the crash left is reported by recovery (cut as a torn tail, or reported as
//!   corruption), never served;
//! - in the schedules whose batches come from an idempotent producer, the producer state
//!   recovered (from the newest snapshot not past the recovered end, and the batches after it)
//!   is exactly what the surviving batches say: its last sequence is the last surviving
//!   batch's, a retry of that batch is answered as a duplicate, and the next sequence is taken.
//!   Some of them aim the crash at the checkpoint write that follows a producer state snapshot
//!   (the snapshot may then lie past the recovered end, and must not be used).
//!
//! Each schedule runs several crash rounds on the same disk. `SCHEDULES` seeds run in the
//! normal test run (a few seconds on two cores); `power_loss_soak` runs many more and is
//! `#[ignore]`d: `cargo test -p brook-log --lib power_loss_soak -- --ignored --nocapture`
//! (`BROOK_SOAK_SCHEDULES` seeds, of 12 schedules each, from `BROOK_SOAK_FROM`). It runs
//! every schedule and lists the failing ones by seed; rerun one seed's with
//! `BROOK_SOAK_SEED=<seed>` on the soak test.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::batch::{BatchBuilder, BatchHeader, Compression, RecordRef};
use crate::checkpoint::CHECKPOINT_FILE;
use crate::config::{Durability, LogConfig};
use crate::fs::sim::{SimFs, SimRng, Writeback};
use crate::fs::FsRef;
use crate::log::PartitionLog;
use crate::producer_state::list_snapshots;

/// Schedules in the normal test run.
const SCHEDULES: u64 = 120;
/// Crash rounds per schedule.
const ROUNDS: usize = 3;

fn config(durability: Durability) -> LogConfig {
    LogConfig {
        segment_bytes_max: 2048,
        index_interval_bytes: 128,
        index_bytes_max: 1024,
        retention_ms_max: None,
        durability,
        ..LogConfig::default()
    }
}

/// The producer id of the idempotent schedules' batches.
const PRODUCER: i64 = 7;

/// How a schedule's batches are written and where its power cuts aim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// No producer id; the power goes at a random operation.
    Plain,
    /// From producer [`PRODUCER`] with sequences; the power goes at a random operation.
    Idempotent,
    /// As `Idempotent`, the recovery point moved at every sync, snapshots also taken at the
    /// log end between appends (as a checkpoint that appends overtook takes them), and the
    /// power going either as the checkpoint file is opened for writing (right after a
    /// producer state snapshot) or at a random operation.
    SnapshotCrash,
}

/// A batch of 1..=4 records whose values name `id`, so every batch of a run is distinct;
/// from producer [`PRODUCER`] starting at sequence `seq` when there is one.
fn batch(id: u64, rng: &mut SimRng) -> Vec<u8> {
    batch_from(id, None, rng)
}

fn batch_from(id: u64, seq: Option<i32>, rng: &mut SimRng) -> Vec<u8> {
    let count = 1 + rng.below(4) as usize;
    let len = 1 + rng.below(150) as usize;
    sized_batch(id, seq, count, len)
}

/// A batch of `count` records with values of `len` bytes (at least), naming `id`.
fn sized_batch(id: u64, seq: Option<i32>, count: usize, len: usize) -> Vec<u8> {
    let values: Vec<Vec<u8>> = (0..count)
        .map(|i| {
            let mut v = format!("{id}.{i}:").into_bytes();
            v.resize(len.max(v.len()), (id as u8) ^ (i as u8));
            v
        })
        .collect();
    let mut builder = BatchBuilder::new(Compression::None);
    if let Some(seq) = seq {
        builder = builder.with_producer(PRODUCER, 0, seq);
    }
    for (i, value) in values.iter().enumerate() {
        builder.push(RecordRef {
            key: None,
            value: Some(value),
            headers: &[],
            timestamp: 1_700_000_000_000 + id as i64 * 10 + i as i64,
        });
    }
    builder.build().expect("a valid batch").to_vec()
}

/// What the test knows of the log: every batch written, by base offset (with its bytes as
/// stored, offsets assigned), and the end below which everything was acknowledged.
#[derive(Debug, Default)]
struct Model {
    written: BTreeMap<u64, Vec<u8>>,
    acked_end: u64,
}

impl Model {
    /// After a recovery (or a truncation) that ends the log at `end`, batches at or past it
    /// are gone.
    fn cut(&mut self, end: u64) {
        self.written.retain(|&base, _| base < end);
        self.acked_end = self.acked_end.min(end);
    }

    /// A truncation to `to` failed (the power went): it may or may not have taken effect, so
    /// what it would have removed (the batch holding `to` whole, and everything after) is no
    /// longer owed, but may still be served.
    fn maybe_cut(&mut self, to: u64) {
        let holding = self
            .written
            .range(..=to)
            .next_back()
            .and_then(|(base, bytes)| {
                let header = BatchHeader::parse(bytes).expect("a batch the test built");
                (header.last_offset() as u64 >= to).then_some(*base)
            });
        self.acked_end = self.acked_end.min(holding.unwrap_or(to));
    }

    /// The last surviving batch (the log ends at `end`), and its producer's last sequence.
    fn last_batch(&self, end: u64) -> Option<(u64, &Vec<u8>, i32)> {
        let (base, bytes) = self.written.range(..end).next_back()?;
        let header = BatchHeader::parse(bytes).expect("a batch the test built");
        Some((
            *base,
            bytes,
            header.base_sequence + header.records_count - 1,
        ))
    }
}

/// In an idempotent schedule: the recovered producer state is what the surviving batches say
/// (see the module docs). Returns the next sequence, or `None` if the power went during the
/// retry.
fn check_producer(log: &PartitionLog, model: &Model, what: &str) -> Option<i32> {
    let end = log.log_end_offset();
    let last = model.last_batch(end);
    let state = log
        .producers()
        .into_iter()
        .find(|p| p.producer_id == PRODUCER);
    let Some((base, bytes, last_seq)) = last else {
        assert!(
            state.as_ref().is_none_or(|p| p.last_sequence() == -1),
            "{what}: producer state {state:?} for an empty log"
        );
        return Some(0);
    };
    let state = state.unwrap_or_else(|| panic!("{what}: no producer state, log ends at {end}"));
    assert_eq!(
        state.last_sequence(),
        last_seq,
        "{what}: producer state disagrees with the last batch (at {base}; log end {end})"
    );
    if !log.is_poisoned() {
        let mut retry = bytes.clone();
        let info = log.append(&mut retry).ok()?;
        assert!(
            info.duplicate,
            "{what}: a retry of {base} was written again"
        );
        assert_eq!(
            info.base_offset, base,
            "{what}: the retry's original offset"
        );
    }
    Some(last_seq + 1)
}

/// Everything the log serves from its start to its high watermark, checked against the model.
fn check_served(log: &PartitionLog, model: &Model, what: &str) {
    let mut offset = log.log_start_offset();
    let hw = log.high_watermark();
    while offset < hw {
        let bytes = log
            .read(offset, 4096)
            .unwrap_or_else(|e| panic!("{what}: read at {offset} failed: {e}"));
        assert!(
            !bytes.is_empty(),
            "{what}: nothing served at {offset} < hw {hw}"
        );
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let header = BatchHeader::parse_checked(rest, usize::MAX)
                .unwrap_or_else(|e| panic!("{what}: served a bad batch at {offset}: {e}"));
            let len = header.total_len();
            let base = header.base_offset as u64;
            assert_eq!(base, offset, "{what}: offsets do not run on");
            let expected = model
                .written
                .get(&base)
                .unwrap_or_else(|| panic!("{what}: served a batch at {base} never written"));
            assert_eq!(&rest[..len], &expected[..], "{what}: batch {base} differs");
            offset = header.next_offset() as u64;
            rest = &rest[len..];
        }
    }
}

/// What the idempotent schedules saw of the snapshots across their crashes.
#[derive(Debug, Default)]
struct Seen {
    /// Recoveries that found a snapshot past the recovered end (its bytes lost).
    snapshot_past_end: u64,
    /// Recoveries whose newest snapshot lay past the persisted recovery point: the crash came
    /// between the snapshot and the checkpoint, or before the end's fsync.
    snapshot_past_recovery_point: u64,
}

/// One schedule: `ROUNDS` times, open (recovering), check, append until the power is cut, crash.
fn run_schedule(seed: u64, durability: Durability, writeback: Writeback) {
    run_schedule_in(seed, durability, writeback, Mode::Plain);
}

fn run_schedule_in(seed: u64, durability: Durability, writeback: Writeback, mode: Mode) -> Seen {
    let mut seen = Seen::default();
    let fs = SimFs::new();
    let fs_ref: FsRef = fs.clone();
    let dir = PathBuf::from("/data/t-0");
    let mut rng = SimRng::new(seed);
    let mut model = Model::default();
    let mut next_id = 0u64;
    let config = config(durability);
    for round in 0..ROUNDS {
        let what = format!("seed {seed} ({durability}, {writeback:?}, {mode:?}) round {round}");
        let snapshots = list_snapshots(&*fs_ref, &dir).unwrap_or_default();
        let recovery_point = crate::checkpoint::CheckpointFile::open(&*fs_ref, &dir)
            .ok()
            .and_then(|(_, read)| read.checkpoint)
            .map_or(0, |c| c.recovery_point.offset);
        let log = PartitionLog::open_in(fs_ref.clone(), dir.clone(), config.clone())
            .unwrap_or_else(|e| panic!("{what}: recovery failed: {e}"));
        let end = log.log_end_offset();
        if let Some(&newest) = snapshots.first() {
            seen.snapshot_past_end += u64::from(newest > end);
            seen.snapshot_past_recovery_point += u64::from(newest > recovery_point);
        }
        assert!(
            end >= model.acked_end,
            "{what}: acknowledged offsets {end}..{} lost ({:?})",
            model.acked_end,
            log.recovery()
        );
        model.cut(end);
        check_served(&log, &model, &what);
        if log.recovery().corruption.is_some() {
            // Damage in unacknowledged bytes that a valid batch follows (only a disk that
            // writes back out of order leaves that): reported, readable up to it, appends
            // refused until an operator truncates.
            assert_eq!(
                writeback,
                Writeback::AnyOrder,
                "{what}: {:?}",
                log.recovery()
            );
            assert!(log.is_poisoned());
            log.truncate_to(end).expect("repair");
        }
        let mut next_seq = (mode != Mode::Plain).then(|| {
            check_producer(&log, &model, &what).expect("the power is on before the cut is set")
        });
        if mode == Mode::SnapshotCrash {
            log.set_recovery_point_every(1);
            if rng.below(2) == 0 {
                fs.cut_power_at_open(CHECKPOINT_FILE, 1 + rng.below(12));
            } else {
                fs.cut_power_after(1 + rng.below(300));
            }
        } else {
            // The recovery point follows the fsyncs: at every one, or every few batches.
            log.set_recovery_point_every([1, 400, 4000][rng.below(3) as usize]);
            fs.cut_power_after(1 + rng.below(300));
        }
        loop {
            if rng.below(40) == 0 {
                // An operator's truncation: everything from `to` on goes, acknowledged or not.
                let (start, end) = (log.log_start_offset(), log.log_end_offset());
                let to = start + rng.below(end - start + 1);
                if log.truncate_to(to).is_err() {
                    model.maybe_cut(to);
                    break;
                }
                model.cut(log.log_end_offset());
                if next_seq.is_some() {
                    let Some(seq) = check_producer(&log, &model, &what) else {
                        break;
                    };
                    next_seq = Some(seq);
                }
            }
            let base = log.log_end_offset();
            let mut bytes = batch_from(next_id, next_seq, &mut rng);
            next_id += 1;
            if mode == Mode::SnapshotCrash && rng.below(8) == 0 {
                // A checkpoint that appends overtook: its snapshot lies past the fsynced end.
                if log.snapshot_producers_at_end().is_err() {
                    break;
                }
            }
            let result = match rng.below(20) {
                0 => log.roll().and_then(|()| log.append(&mut bytes)),
                1 => log.flush().and_then(|()| log.append(&mut bytes)),
                _ => log.append(&mut bytes),
            };
            // Written (if at all) at `base`: what a recovery may find there.
            model.written.insert(base, bytes);
            match result {
                Ok(info) => {
                    assert_eq!(info.base_offset, base);
                    if let Some(seq) = &mut next_seq {
                        *seq += info.record_count as i32;
                    }
                    if durability == Durability::Sync {
                        model.acked_end = info.last_offset + 1;
                    }
                }
                Err(_) => break,
            }
        }
        assert!(fs.is_off(), "{what}: the log failed with the power on");
        drop(log);
        fs.crash(&mut rng, writeback);
    }
    seen
}

#[test]
fn acknowledged_appends_survive_power_loss_in_sync_mode() {
    for seed in 0..SCHEDULES {
        run_schedule(seed, Durability::Sync, Writeback::InOrder);
    }
}

#[test]
fn out_of_order_writeback_loses_nothing_acknowledged_and_serves_no_damage() {
    for seed in 0..SCHEDULES / 2 {
        run_schedule(seed, Durability::Sync, Writeback::AnyOrder);
        run_schedule(seed, Durability::None, Writeback::AnyOrder);
    }
}

#[test]
fn recovered_producer_state_matches_the_surviving_batches() {
    for seed in 0..SCHEDULES / 4 {
        run_schedule_in(seed, Durability::Sync, Writeback::InOrder, Mode::Idempotent);
        run_schedule_in(
            seed,
            Durability::None,
            Writeback::AnyOrder,
            Mode::Idempotent,
        );
    }
}

/// Crashes aimed between a checkpoint's producer state snapshot and its checkpoint file: the
/// snapshot is used when the recovered log reaches it and never when it does not (both seen).
#[test]
fn a_crash_between_snapshot_and_checkpoint_loses_no_producer_state() {
    let mut past_end = 0;
    let mut past_point = 0;
    for seed in 0..SCHEDULES / 4 {
        for (durability, writeback) in [
            (Durability::Sync, Writeback::InOrder),
            (Durability::Sync, Writeback::AnyOrder),
            (Durability::None, Writeback::AnyOrder),
        ] {
            let seen = run_schedule_in(seed, durability, writeback, Mode::SnapshotCrash);
            past_end += seen.snapshot_past_end;
            past_point += seen.snapshot_past_recovery_point;
        }
    }
    assert!(
        past_end > 0,
        "no crash left a snapshot past the recovered end"
    );
    assert!(
        past_point > past_end,
        "no crash left a usable snapshot past the recovery point ({past_point}, {past_end})"
    );
}

/// With a checkpoint at every sync, a crash after the last append leaves the producer state
/// snapshot at the log end: recovery replays no batch into producer state.
#[test]
fn each_checkpoint_snapshots_producer_state_at_the_log_end() {
    let fs = SimFs::new();
    let dir = PathBuf::from("/data/t-0");
    let log =
        PartitionLog::open_in(fs.clone(), dir.clone(), config(Durability::Sync)).expect("open");
    log.set_recovery_point_every(1);
    let mut rng = SimRng::new(3);
    let mut seq = 0;
    for id in 0..30 {
        let info = log
            .append(&mut batch_from(id, Some(seq), &mut rng))
            .expect("append");
        seq += info.record_count as i32;
    }
    let end = log.log_end_offset();
    drop(log);
    fs.crash(&mut rng, Writeback::InOrder);
    assert_eq!(
        list_snapshots(&*fs, &dir).expect("list").first(),
        Some(&end),
        "the newest snapshot covers the whole log"
    );
    let log = PartitionLog::open_in(fs.clone(), dir, config(Durability::Sync)).expect("reopen");
    assert_eq!(log.log_end_offset(), end);
    let state = log.producers();
    assert_eq!(state[0].last_sequence(), seq - 1);
}

/// Seed 1142 of the soak (sync, out-of-order writeback, plain batches): in its round 2 an
/// operator's `truncate_to(18)` failed as Corrupt ("magic 7") with the power on, because
/// recovery had trusted an index entry a crash tore. Its own schedule, as it ran.
#[test]
fn soak_seed_1142_truncates_after_recovery() {
    run_schedule(1142, Durability::Sync, Writeback::AnyOrder);
}

/// Seed 1142's crash, made exact (so that no change to the number of file operations moves
/// it away): the active segment's first index entry, written out but not synced, lost its
/// position's last byte (now inside the batch before), while the later entries, written
/// after it, reached the disk whole; all past the recovery point, the segment start where
/// the roll left it. Every check of shape, order and last entry passes. Recovery derives
/// those entries again from the log, so the truncation that starts its walk at the torn entry
/// works and the files hold the right entries again.
#[test]
fn a_torn_index_entry_past_the_recovery_point_is_derived_again() {
    use crate::fs::{Fs, Open};
    use crate::segment::{segment_file, INDEX_EXT, TIME_INDEX_EXT};

    let fs = SimFs::new();
    let dir = PathBuf::from("/data/t-0");
    let config = config(Durability::Sync);
    let log = PartitionLog::open_in(fs.clone(), dir.clone(), config.clone()).expect("open");
    let mut rng = SimRng::new(1142);
    let mut written = BTreeMap::new();
    for id in 0..3 {
        let mut bytes = batch(id, &mut rng);
        written.insert(log.append(&mut bytes).expect("append").base_offset, bytes);
    }
    log.roll().expect("roll");
    let base = log.log_end_offset();
    // Every batch is due an entry after the first (each is longer than the interval), and
    // the first is longer than 256 bytes, so the torn position still points inside it.
    let (mut position, mut max_ts) = (0u64, i64::MIN);
    let mut entries = Vec::new();
    for id in 3..7 {
        let mut bytes = sized_batch(id, None, 2, 150);
        let info = log.append(&mut bytes).expect("append");
        let header = BatchHeader::parse(&bytes).expect("a batch");
        max_ts = max_ts.max(header.max_timestamp);
        if position > 0 {
            entries.push((info.base_offset - base, position, max_ts));
        }
        position += bytes.len() as u64;
        written.insert(info.base_offset, bytes);
    }
    drop(log);
    fs.crash(&mut rng, Writeback::InOrder);
    let point = crate::checkpoint::CheckpointFile::open(&*fs, &dir)
        .expect("checkpoint")
        .1
        .checkpoint
        .expect("a checkpoint")
        .recovery_point;
    assert_eq!(
        (point.segment, point.position),
        (base, 0),
        "the roll's point"
    );

    let encode = |torn: bool| {
        let (mut offsets, mut times) = (Vec::new(), Vec::new());
        for (i, &(relative, position, ts)) in entries.iter().enumerate() {
            let mut position = position as u32;
            if torn && i == 0 {
                position &= !0xff;
                assert!(position > 0 && u64::from(position) != entries[0].1);
            }
            offsets.extend_from_slice(&(relative as u32).to_be_bytes());
            offsets.extend_from_slice(&position.to_be_bytes());
            times.extend_from_slice(&ts.to_be_bytes());
            times.extend_from_slice(&(relative as u32).to_be_bytes());
        }
        (offsets, times)
    };
    let (torn_offsets, torn_times) = encode(true);
    let files = [
        (segment_file(&dir, base, INDEX_EXT), torn_offsets),
        (segment_file(&dir, base, TIME_INDEX_EXT), torn_times),
    ];
    for (path, bytes) in &files {
        let file = fs.open(path, Open::Truncate).expect("open");
        file.write_all_at(bytes, 0).expect("write");
        file.sync_data().expect("sync");
    }

    let log = PartitionLog::open_in(fs.clone(), dir.clone(), config.clone()).expect("recover");
    assert!(log.recovery().rebuilt_indexes > 0, "{:?}", log.recovery());
    let (good_offsets, good_times) = encode(false);
    assert_eq!(fs.contents(&files[0].0), Some(good_offsets), "the index");
    assert_eq!(fs.contents(&files[1].0), Some(good_times), "the time index");
    let model = Model {
        written,
        acked_end: log.log_end_offset(),
    };
    check_served(&log, &model, "after recovery");
    // The offset of the batch after the torn entry's: the walk starts at that entry.
    let to = base + entries[1].0;
    log.truncate_to(to)
        .expect("a truncation in the recovered segment");
    assert_eq!(log.log_end_offset(), to);
    let mut model = model;
    model.cut(to);
    check_served(&log, &model, "after the truncation");
}

#[test]
#[ignore = "a soak: minutes; see the module docs"]
fn power_loss_soak() {
    let var = |name: &str| std::env::var(name).ok().and_then(|n| n.parse::<u64>().ok());
    let from = var("BROOK_SOAK_FROM").unwrap_or(0);
    let seeds: Vec<u64> = match var("BROOK_SOAK_SEED") {
        Some(seed) => vec![seed],
        None => (from..from + var("BROOK_SOAK_SCHEDULES").unwrap_or(20_000)).collect(),
    };
    let started = std::time::Instant::now();
    // Every schedule runs, failing or not, so that one soak lists every failing seed.
    let mut failed = Vec::new();
    for &seed in &seeds {
        for durability in [Durability::Sync, Durability::None] {
            for writeback in [Writeback::InOrder, Writeback::AnyOrder] {
                for mode in [Mode::Plain, Mode::Idempotent, Mode::SnapshotCrash] {
                    let run = || run_schedule_in(seed, durability, writeback, mode);
                    if std::panic::catch_unwind(run).is_err() {
                        failed.push(format!(
                            "seed {seed} ({durability}, {writeback:?}, {mode:?})"
                        ));
                    }
                }
            }
        }
    }
    eprintln!(
        "power-loss soak: {} seed(s), {} schedules, {:.1} s, {} failed",
        seeds.len(),
        seeds.len() * 12,
        started.elapsed().as_secs_f64(),
        failed.len()
    );
    assert!(failed.is_empty(), "failing schedules: {failed:#?}");
}

#[test]
fn a_failed_fsync_is_an_error_and_a_restart_recovers() {
    let fs = SimFs::new();
    let dir = Path::new("/data/t-0");
    let log = PartitionLog::open_in(fs.clone(), dir.to_path_buf(), config(Durability::Sync))
        .expect("open");
    let mut rng = SimRng::new(7);
    let first = log.append(&mut batch(0, &mut rng)).expect("append");
    let syncs = fs.syncs();
    fs.fail_syncs(true);
    assert!(log.append(&mut batch(1, &mut rng)).is_err());
    assert!(log.is_poisoned());
    assert_eq!(fs.syncs(), syncs, "the failed sync made nothing durable");
    drop(log);
    fs.crash(&mut rng, Writeback::InOrder);
    let log = PartitionLog::open_in(fs.clone(), dir.to_path_buf(), config(Durability::Sync))
        .expect("reopen");
    assert!(log.log_end_offset() > first.last_offset);
    assert!(!log.is_poisoned());
}

/// A discarded log (its topic is being deleted) syncs nothing and refuses appends as a closed
/// one does; a close of a log like it syncs.
#[test]
fn a_discarded_log_syncs_nothing_and_refuses_appends() {
    let fs = SimFs::new();
    let mut rng = SimRng::new(7);
    let open = |name: &str| {
        let dir = Path::new("/data").join(name);
        PartitionLog::open_in(fs.clone(), dir, config(Durability::None)).expect("open")
    };
    let (kept, deleted) = (open("kept-0"), open("deleted-0"));
    for log in [&kept, &deleted] {
        log.append(&mut batch(0, &mut rng)).expect("append");
    }
    let syncs = fs.syncs();
    deleted.discard();
    assert_eq!(fs.syncs(), syncs, "a discard syncs nothing");
    assert!(matches!(
        deleted.append(&mut batch(1, &mut rng)),
        Err(crate::LogError::Closed)
    ));
    deleted
        .close()
        .expect("a close after a discard does nothing");
    assert_eq!(fs.syncs(), syncs);
    kept.close().expect("close");
    assert!(fs.syncs() > syncs, "a close syncs");
}

/// A full disk, mid-run, with rolls and index write-outs among the appends: every append that
/// does not fit fails with an error that says `ENOSPC` (never a fault or a panic), what was
/// acknowledged before stays readable, and a restart with space again recovers all of it.
#[test]
fn a_full_disk_is_an_enospc_error_and_loses_nothing_acknowledged() {
    let fs = SimFs::new();
    let dir = Path::new("/data/t-0");
    let log = PartitionLog::open_in(fs.clone(), dir.to_path_buf(), config(Durability::Sync))
        .expect("open");
    let mut rng = SimRng::new(11);
    let mut acknowledged = Vec::new();
    for id in 0..40 {
        let mut bytes = batch(id, &mut rng);
        let info = log.append(&mut bytes).expect("append with room");
        acknowledged.push((info.base_offset, bytes));
    }
    // Leave room for a few more batches, then run into the wall.
    fs.limit_space(Some(fs.used_bytes() + 600));
    let mut refused = 0;
    for id in 40..80 {
        let mut bytes = batch(id, &mut rng);
        match log.append(&mut bytes) {
            Ok(info) => acknowledged.push((info.base_offset, bytes)),
            Err(e) => {
                let mut source: Option<&dyn std::error::Error> = Some(&e);
                let mut enospc = false;
                while let Some(err) = source {
                    if let Some(io) = err.downcast_ref::<std::io::Error>() {
                        enospc |= io.raw_os_error() == Some(libc::ENOSPC);
                    }
                    source = err.source();
                }
                // A write that could not be undone poisons the log; its reason names the
                // failure (ENOSPC) in words.
                enospc |= e.to_string().contains("os error 28");
                assert!(enospc, "a full disk must say so: {e}");
                refused += 1;
            }
        }
    }
    assert!(refused > 0, "the disk filled up");
    for (base, bytes) in &acknowledged {
        let read = log
            .read(*base, bytes.len())
            .expect("acknowledged data stays readable");
        assert_eq!(&read[..bytes.len()], &bytes[..], "batch at {base}");
    }
    drop(log);
    fs.limit_space(None);
    let log = PartitionLog::open_in(fs.clone(), dir.to_path_buf(), config(Durability::Sync))
        .expect("reopen with room");
    for (base, bytes) in &acknowledged {
        let read = log.read(*base, bytes.len()).expect("read after restart");
        assert_eq!(
            &read[..bytes.len()],
            &bytes[..],
            "batch at {base} after restart"
        );
    }
    let mut more = batch(99, &mut rng);
    log.append(&mut more).expect("appends work again with room");
}
