//! The power-loss simulation: a partition log on the simulated disk ([`crate::fs::sim`]) is
//! driven through appends, rolls and flushes, the power is cut at a seeded operation, the disk
//! keeps what a seeded crash leaves, and the log is reopened. After every crash:
//!
//! - every acknowledged append (in `sync` durability: every append that returned `Ok`) is
//!   there, byte for byte, at its offset;
//! - everything a read serves is exactly a batch that was appended at that offset (never a
//!   damaged or foreign byte), and offsets run on without a gap;
//! - damage the crash left is reported by recovery (cut as a torn tail, or reported as
//!   corruption), never served.
//!
//! Each schedule runs several crash rounds on the same disk. `SCHEDULES` seeds run in the
//! normal test run (a few seconds on two cores); `power_loss_soak` runs many more and is
//! `#[ignore]`d: `cargo test -p brook-log --lib power_loss_soak -- --ignored` (set
//! `BROOK_SOAK_SCHEDULES` for how many). A failure names its seed; rerun one schedule with
//! `BROOK_SOAK_SEED=<seed>` on the soak test.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::batch::{BatchBuilder, BatchHeader, Compression, RecordRef};
use crate::config::{Durability, LogConfig};
use crate::fs::sim::{SimFs, SimRng, Writeback};
use crate::fs::FsRef;
use crate::log::PartitionLog;

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

/// A batch of 1..=4 records whose values name `id`, so every batch of a run is distinct.
fn batch(id: u64, rng: &mut SimRng) -> Vec<u8> {
    let count = 1 + rng.below(4) as usize;
    let len = 1 + rng.below(150) as usize;
    let values: Vec<Vec<u8>> = (0..count)
        .map(|i| {
            let mut v = format!("{id}.{i}:").into_bytes();
            v.resize(len.max(v.len()), (id as u8) ^ (i as u8));
            v
        })
        .collect();
    let mut builder = BatchBuilder::new(Compression::None);
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

/// One schedule: `ROUNDS` times, open (recovering), check, append until the power is cut, crash.
fn run_schedule(seed: u64, durability: Durability, writeback: Writeback) {
    let fs = SimFs::new();
    let fs_ref: FsRef = fs.clone();
    let dir = PathBuf::from("/data/t-0");
    let mut rng = SimRng::new(seed);
    let mut model = Model::default();
    let mut next_id = 0u64;
    let config = config(durability);
    for round in 0..ROUNDS {
        let what = format!("seed {seed} ({durability}, {writeback:?}) round {round}");
        let log = PartitionLog::open_in(fs_ref.clone(), dir.clone(), config.clone())
            .unwrap_or_else(|e| panic!("{what}: recovery failed: {e}"));
        let end = log.log_end_offset();
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
        // The recovery point follows the fsyncs: at every one, or every few batches.
        log.set_recovery_point_every([1, 400, 4000][rng.below(3) as usize]);
        fs.cut_power_after(1 + rng.below(300));
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
            }
            let base = log.log_end_offset();
            let mut bytes = batch(next_id, &mut rng);
            next_id += 1;
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
#[ignore = "a soak: minutes; see the module docs"]
fn power_loss_soak() {
    let schedules = std::env::var("BROOK_SOAK_SCHEDULES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000u64);
    let seeds: Vec<u64> = match std::env::var("BROOK_SOAK_SEED") {
        Ok(seed) => vec![seed.parse().expect("a seed")],
        Err(_) => (0..schedules).collect(),
    };
    for seed in seeds {
        for durability in [Durability::Sync, Durability::None] {
            for writeback in [Writeback::InOrder, Writeback::AnyOrder] {
                run_schedule(seed, durability, writeback);
            }
        }
    }
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
