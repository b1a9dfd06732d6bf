//! The cleaner on real partition logs: what stays, what goes, offsets, merging, tombstones,
//! producers' last batches, reopening after a clean, and a clean cut short.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::*;
use crate::batch::{records, BatchBuilder, BatchHeader, Batches, Compression, RecordRef};
use crate::config::{CleanupPolicy, Durability, LogConfig};

const TS: i64 = 1_700_000_000_000;
const DAY: i64 = 86_400_000;

fn compacted() -> LogConfig {
    LogConfig {
        segment_bytes_max: 1024,
        index_interval_bytes: 128,
        index_bytes_max: 4096,
        durability: Durability::None,
        cleanup_policy: CleanupPolicy::Compact,
        ..LogConfig::default()
    }
}

fn cleaner() -> CleanerConfig {
    CleanerConfig {
        dedupe_buffer_bytes: 1 << 20,
        ..CleanerConfig::default()
    }
}

/// One batch of `(key, value)` records (`None`: a tombstone) with `codec`.
fn batch(
    codec: Compression,
    records: &[(&str, Option<&str>)],
    producer: Option<(i64, i32)>,
) -> Vec<u8> {
    let mut builder = BatchBuilder::new(codec);
    if let Some((id, sequence)) = producer {
        builder = builder.with_producer(id, 0, sequence);
    }
    for (key, value) in records {
        builder.push(RecordRef {
            key: Some(key.as_bytes()),
            value: value.map(str::as_bytes),
            headers: &[],
            timestamp: TS,
        });
    }
    builder.build().expect("build").to_vec()
}

/// Every record from the log start: `(offset, key, value)`.
fn read_all(log: &PartitionLog) -> Vec<(u64, String, Option<String>)> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.high_watermark() {
        let bytes = log.read(offset, 1 << 20).expect("read");
        let mut next = offset;
        for b in Batches::new(&bytes) {
            let b = b.expect("batch");
            next = b.header.next_offset() as u64;
            if b.header.is_control() {
                continue;
            }
            for r in records(Bytes::copy_from_slice(b.bytes)).expect("records") {
                let r = r.expect("record");
                if r.offset >= offset {
                    let text = |b: Bytes| String::from_utf8(b.to_vec()).expect("utf8");
                    out.push((r.offset, text(r.key.expect("key")), r.value.map(text)));
                }
            }
        }
        assert!(next > offset, "the read moved on");
        offset = next;
    }
    out
}

/// The latest value per key among `read_all`'s records.
fn latest(records: &[(u64, String, Option<String>)]) -> BTreeMap<String, Option<String>> {
    records
        .iter()
        .map(|(_, k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Writes `rounds` updates of keys `k0..k{keys}` (one batch per round), rolling now and then.
fn fill(log: &PartitionLog, keys: usize, rounds: usize) -> BTreeMap<String, Option<String>> {
    let mut want = BTreeMap::new();
    for round in 0..rounds {
        let pairs: Vec<(String, String)> = (0..keys)
            .map(|k| (format!("k{k}"), format!("v{k}-{round}")))
            .collect();
        let records: Vec<(&str, Option<&str>)> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), Some(v.as_str())))
            .collect();
        log.append(&mut batch(Compression::None, &records, None))
            .expect("append");
        for (k, v) in pairs {
            want.insert(k, Some(v));
        }
    }
    log.roll().expect("roll");
    want
}

#[test]
fn a_clean_keeps_the_latest_value_of_each_key_at_its_offset_and_merges_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = PartitionLog::open(dir.path(), compacted()).expect("open");
    let want = fill(&log, 10, 30);
    let before = read_all(&log);
    let segments_before = log.segment_count();
    let size_before = log.size_bytes();
    assert!(segments_before > 5, "{segments_before} segments");

    let report = clean_now(&log, &cleaner(), TS)
        .expect("clean")
        .expect("cleaned");
    assert_eq!(report.first_dirty, 0);
    assert_eq!(report.end, 300);
    let after = read_all(&log);
    assert_eq!(latest(&after), want);
    assert_eq!(after.len(), 10, "one record per key: {after:?}");
    for record in &after {
        assert!(
            before.contains(record),
            "{record:?} kept its offset and value"
        );
    }
    // Full segments are grouped by their size before the clean (as Kafka does): each is
    // rewritten alone the first time, and the small results merge at the next clean.
    assert_eq!(log.segment_count(), segments_before);
    assert!(log.size_bytes() < size_before / 5);
    let stats = log.cleaner_stats();
    assert_eq!(stats.cleans, 1);
    assert_eq!(stats.bytes_reclaimed, size_before - log.size_bytes());
    assert_eq!(stats.first_dirty_offset, 300);
    // Nothing dirty is left: a second clean has nothing to do.
    assert_eq!(clean_now(&log, &cleaner(), TS).expect("clean"), None);

    // Appends go on after the clean, and the next clean takes the new updates.
    let want = fill(&log, 10, 3);
    clean_now(&log, &cleaner(), TS)
        .expect("clean")
        .expect("cleaned");
    assert!(
        log.segment_count() <= 3,
        "{} segments: small ones merged",
        log.segment_count()
    );
    assert_eq!(latest(&read_all(&log)), want);
    assert_eq!(read_all(&log).len(), 10);
    assert_eq!(log.log_end_offset(), 330);
}

#[test]
fn cleaned_segments_reopen_after_a_clean_close_and_after_a_crash() {
    for clean_close in [true, false] {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = PartitionLog::open(dir.path(), compacted()).expect("open");
        let want = fill(&log, 7, 20);
        clean_now(&log, &cleaner(), TS)
            .expect("clean")
            .expect("cleaned");
        let records = read_all(&log);
        if clean_close {
            log.close().expect("close");
        }
        drop(log);
        // Without the checkpoint, recovery walks every segment, cleaned ones included.
        for entry in std::fs::read_dir(dir.path()).expect("ls") {
            let path = entry.expect("entry").path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if name.starts_with("checkpoint") || name == "clean-shutdown" {
                std::fs::remove_file(&path).expect("rm");
            }
        }
        let log = PartitionLog::open(dir.path(), compacted()).expect("reopen");
        assert_eq!(log.recovery().corruption, None, "{:?}", log.recovery());
        assert_eq!(read_all(&log), records);
        assert_eq!(latest(&records), want);
        assert_eq!(log.log_end_offset(), 140);
        log.append(&mut batch(Compression::None, &[("k0", Some("new"))], None))
            .expect("append");
        assert_eq!(log.log_end_offset(), 141);
    }
}

#[test]
fn tombstones_stay_until_their_delete_horizon_passes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = PartitionLog::open(dir.path(), compacted()).expect("open");
    fill(&log, 5, 4);
    log.append(&mut batch(
        Compression::Zstd,
        &[("k1", None), ("k3", None)],
        None,
    ))
    .expect("tombstones");
    log.roll().expect("roll");
    clean_now(&log, &cleaner(), TS)
        .expect("clean")
        .expect("cleaned");
    let records = read_all(&log);
    let tombstones: Vec<_> = records.iter().filter(|r| r.2.is_none()).collect();
    assert_eq!(
        tombstones.len(),
        2,
        "kept within delete.retention.ms: {records:?}"
    );
    assert_eq!(records.len(), 5);

    // A day later (the default delete.retention.ms) the next clean drops them; it needs
    // something dirty to run, so one more record.
    log.append(&mut batch(Compression::None, &[("k0", Some("x"))], None))
        .expect("append");
    log.roll().expect("roll");
    clean_now(&log, &cleaner(), TS + DAY - 1)
        .expect("clean")
        .expect("cleaned");
    assert_eq!(
        read_all(&log).iter().filter(|r| r.2.is_none()).count(),
        2,
        "not yet"
    );
    log.append(&mut batch(Compression::None, &[("k0", Some("y"))], None))
        .expect("append");
    log.roll().expect("roll");
    clean_now(&log, &cleaner(), TS + DAY + 1)
        .expect("clean")
        .expect("cleaned");
    let records = read_all(&log);
    assert!(records.iter().all(|r| r.2.is_some()), "{records:?}");
    let keys: Vec<&str> = records.iter().map(|r| r.1.as_str()).collect();
    assert_eq!(keys, ["k2", "k4", "k0"]);
}

#[test]
fn a_producers_last_batch_stays_even_when_every_record_in_it_is_superseded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = PartitionLog::open(dir.path(), compacted()).expect("open");
    // Producer 9's last batch (sequence 2) holds k0 and k1; both are overwritten later by a
    // plain producer.
    for sequence in 0..3 {
        let mut b = batch(
            Compression::Lz4,
            &[("k0", Some("p")), ("k1", Some("p"))],
            Some((9, sequence * 2)),
        );
        log.append(&mut b).expect("append");
    }
    log.append(&mut batch(
        Compression::None,
        &[("k0", Some("a")), ("k1", Some("b"))],
        None,
    ))
    .expect("append");
    log.roll().expect("roll");
    clean_now(&log, &cleaner(), TS)
        .expect("clean")
        .expect("cleaned");
    let bytes = log.read(0, 1 << 20).expect("read");
    let headers: Vec<BatchHeader> = Batches::new(&bytes)
        .map(|b| b.expect("batch").header)
        .collect();
    let producer: Vec<&BatchHeader> = headers.iter().filter(|h| h.producer_id == 9).collect();
    assert_eq!(
        producer.len(),
        1,
        "only the producer's last batch: {headers:?}"
    );
    let last = producer[0];
    assert_eq!(
        (
            last.base_offset,
            last.last_offset_delta,
            last.records_count,
            last.base_sequence
        ),
        (4, 1, 0, 4),
        "kept empty, with its offsets and sequence"
    );
    assert_eq!(latest(&read_all(&log)).len(), 2);
}

#[test]
fn a_small_offset_map_cleans_in_several_rounds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = PartitionLog::open(dir.path(), compacted()).expect("open");
    let want = fill(&log, 200, 4);
    // Room for about 100 keys per clean.
    let small = CleanerConfig {
        dedupe_buffer_bytes: 24 * 140,
        ..CleanerConfig::default()
    };
    let mut rounds = 0;
    while let Some(report) = clean_now(&log, &small, TS).expect("clean") {
        rounds += 1;
        assert!(report.keys_mapped <= report.map_capacity);
        assert!(rounds < 20, "the cleans make progress");
    }
    assert!(rounds >= 3, "{rounds} rounds");
    let records = read_all(&log);
    assert_eq!(latest(&records), want);
    assert_eq!(records.len(), 200);
}

#[test]
fn a_clean_stopped_by_close_leaves_the_log_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = std::sync::Arc::new(PartitionLog::open(dir.path(), compacted()).expect("open"));
    let want = fill(&log, 10, 30);
    let before = read_all(&log);
    // Slow enough (1 KiB/s) that the close lands inside the clean.
    let slow = CleanerConfig {
        io_bytes_per_sec: Some(1024),
        ..cleaner()
    };
    let cleaning = std::sync::Arc::clone(&log);
    let handle = std::thread::spawn(move || clean_now(&cleaning, &slow, TS));
    std::thread::sleep(std::time::Duration::from_millis(300));
    log.close().expect("close");
    let outcome = handle.join().expect("thread");
    assert!(matches!(outcome, Err(LogError::Closed)), "{outcome:?}");
    drop(log);
    let leftovers: Vec<String> = std::fs::read_dir(dir.path())
        .expect("ls")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".cleaned") || n == "cleaner-swap")
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let log = PartitionLog::open(dir.path(), compacted()).expect("reopen");
    assert!(log.recovery().clean);
    let after = read_all(&log);
    assert_eq!(latest(&after), want);
    assert!(after.iter().all(|r| before.contains(r)));
}

#[test]
fn a_log_that_is_not_compacted_is_not_cleaned_and_null_keys_are_refused_on_one_that_is() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plain = LogConfig {
        cleanup_policy: CleanupPolicy::Delete,
        ..compacted()
    };
    let log = PartitionLog::open(dir.path(), plain).expect("open");
    fill(&log, 3, 3);
    assert_eq!(clean_now(&log, &cleaner(), TS).expect("clean"), None);
    drop(log);
    let dir = tempfile::tempdir().expect("tempdir");
    let log = PartitionLog::open(dir.path(), compacted()).expect("open");
    // Every keyless record is named by its index in the batch, not just the first.
    let mut keyless = BatchBuilder::new(Compression::Gzip);
    for key in [None, Some(&b"k"[..]), None] {
        keyless.push(RecordRef {
            key,
            value: Some(b"v"),
            headers: &[],
            timestamp: TS,
        });
    }
    let mut keyless = keyless.build().expect("build").to_vec();
    assert!(matches!(
        log.append(&mut keyless),
        Err(LogError::Batch(crate::BatchError::MissingKey { indexes })) if indexes == [0, 2]
    ));
    assert_eq!(log.log_end_offset(), 0, "nothing written");
}

#[test]
fn retention_leaves_a_compacted_only_log_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        retention_ms_max: Some(1),
        retention_bytes_max: Some(1),
        ..compacted()
    };
    let log = PartitionLog::open(dir.path(), config.clone()).expect("open");
    fill(&log, 5, 20);
    let segments = log.segment_count();
    assert_eq!(log.apply_retention(TS + DAY).expect("retention"), 0);
    assert_eq!(log.segment_count(), segments);
    log.set_config(LogConfig {
        cleanup_policy: CleanupPolicy::CompactDelete,
        ..config
    })
    .expect("config");
    assert!(log.apply_retention(TS + DAY).expect("retention") > 0);
}

/// The power is cut at every mutating file operation of a clean in turn (writing the cleaned
/// segment, its fsync, the checkpoint, the swap file, each rename and removal), the disk keeps
/// what a crash leaves, and the log reopens with every key's latest value, nothing damaged and
/// no file of the clean left behind.
#[test]
fn a_power_cut_at_any_step_of_a_clean_loses_no_latest_value() {
    use crate::fs::sim::{SimFs, SimRng, Writeback};
    use crate::fs::FsRef;

    let dir = std::path::PathBuf::from("/data/t-0");
    let config = LogConfig {
        durability: Durability::Sync,
        ..compacted()
    };
    let mut cut = 1;
    loop {
        let fs = SimFs::new();
        let fs_ref: FsRef = fs.clone();
        let log = PartitionLog::open_in(fs_ref.clone(), dir.clone(), config.clone()).expect("open");
        let want = fill(&log, 6, 12);
        fs.cut_power_after(cut);
        let outcome = clean_now(&log, &cleaner(), TS);
        let finished = !fs.is_off();
        if finished {
            outcome.expect("a clean the power did not stop");
        }
        drop(log);
        let writeback = if cut % 2 == 0 {
            Writeback::InOrder
        } else {
            Writeback::AnyOrder
        };
        fs.crash(&mut SimRng::new(cut), writeback);
        let log = PartitionLog::open_in(fs_ref.clone(), dir.clone(), config.clone())
            .unwrap_or_else(|e| panic!("cut at {cut}: recovery failed: {e}"));
        assert_eq!(log.recovery().corruption, None, "cut at {cut}");
        let records = read_all(&log);
        assert_eq!(latest(&records), want, "cut at {cut}");
        assert_eq!(log.log_end_offset(), 72, "cut at {cut}");
        let leftovers: Vec<String> = fs_ref
            .read_dir(&dir)
            .expect("ls")
            .into_iter()
            .map(|e| e.name.to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".cleaned") || n == "cleaner-swap")
            .collect();
        assert!(leftovers.is_empty(), "cut at {cut}: {leftovers:?}");
        // The log cleans on after the crash, to the same values.
        clean_now(&log, &cleaner(), TS).expect("clean after the crash");
        assert_eq!(latest(&read_all(&log)), want, "cut at {cut}, cleaned again");
        if finished {
            assert!(
                cut > 20,
                "the clean took {cut} operations: too few to be real"
            );
            break;
        }
        cut += 1;
        assert!(cut < 5000, "the clean never finished");
    }
}

/// A consumer in the middle of segments being cleaned reads on correctly: bytes it read before a
/// swap stay whole after it (the replaced files are unlinked, not overwritten), and a reader
/// walking the log one batch at a time while cleans swap segments under it sees offsets only
/// rise, only records that were written at those offsets, and every key's latest value.
#[test]
fn readers_in_the_middle_of_a_clean_read_on_correctly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = std::sync::Arc::new(PartitionLog::open(dir.path(), compacted()).expect("open"));
    fill(&log, 10, 30);
    let before = read_all(&log);
    let held = log.read(0, 1 << 20).expect("read before the clean");
    // A consumer stopped halfway through the log while a clean rewrites it resumes at its
    // next offset and reads the kept records from there.
    let halfway = before[before.len() / 2].0;
    clean_now(&log, &cleaner(), TS)
        .expect("clean")
        .expect("cleaned");
    let resumed = Batches::new(&log.read(halfway + 1, 1 << 20).expect("resume"))
        .flat_map(|b| {
            let b = b.expect("a whole batch");
            records(Bytes::copy_from_slice(b.bytes)).expect("records")
        })
        .map(|r| r.expect("record").offset)
        .filter(|&o| o > halfway)
        .collect::<Vec<_>>();
    let kept_after: Vec<u64> = read_all(&log)
        .iter()
        .map(|r| r.0)
        .filter(|&o| o > halfway)
        .collect();
    assert_eq!(
        resumed, kept_after,
        "the resumed read gives what the clean kept after it"
    );
    let want = fill(&log, 10, 30);
    let before = read_all(&log);

    let reading = std::sync::Arc::clone(&log);
    let reader = std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut offset = 0;
        while offset < reading.high_watermark() {
            // One batch at a time, slowly, so the cleans swap segments between reads.
            let bytes = reading.read(offset, 1).expect("read during the clean");
            let mut next = offset;
            for b in Batches::new(&bytes) {
                let b = b.expect("a whole batch");
                next = b.header.next_offset() as u64;
                for r in records(Bytes::copy_from_slice(b.bytes)).expect("records") {
                    let r = r.expect("record");
                    if r.offset >= offset {
                        let text = |b: Bytes| String::from_utf8(b.to_vec()).expect("utf8");
                        seen.push((r.offset, text(r.key.expect("key")), r.value.map(text)));
                    }
                }
            }
            assert!(next > offset, "the read moved on");
            offset = next;
            std::thread::sleep(std::time::Duration::from_millis(15));
        }
        seen
    });
    let slow = CleanerConfig {
        io_bytes_per_sec: Some(64 << 10),
        ..cleaner()
    };
    clean_now(&log, &slow, TS).expect("clean").expect("cleaned");
    fill(&log, 10, 1);
    clean_now(&log, &slow, TS).expect("clean").expect("cleaned");
    let seen = reader.join().expect("reader");

    assert!(seen.windows(2).all(|w| w[0].0 < w[1].0), "offsets rise");
    let written = read_all(&log);
    for record in &seen {
        assert!(
            before.contains(record) || written.contains(record),
            "{record:?} was written at its offset"
        );
    }
    let mut latest_seen = latest(&seen);
    latest_seen.retain(|k, _| want.contains_key(k));
    assert_eq!(latest_seen.len(), want.len(), "every key seen");
    // The bytes read before the clean are whole: every batch parses with its CRC.
    let mut held_batches = 0;
    for b in Batches::new(&held) {
        b.expect("a whole batch held across the swap");
        held_batches += 1;
    }
    assert!(held_batches > 1);
    assert!(log.cleaner_stats().cleans >= 2);
}

/// kill -9 on the real disk at every mutating file operation of a clean in turn, and check the
/// log after each: a child process (this test binary, running [`kill_9_child`]) opens the log
/// through [`KillingFs`], cleans it, and SIGKILLs itself just before operation number `cut`
/// (creating, writing, fsyncing, renaming or removing a file, fsyncing the directory). So the
/// kills land before the cleaned segment is written, while and after it is written and
/// fsynced, at the swap's commit point (the rename of `cleaner-swap.tmp`), between its renames
/// and the removals of merged segments, and after it. The
/// parent reopens the log after each: recovery finds no corruption, the segment files scan
/// clean as `brook log check` scans them (offsets may skip only in cleaned segments, indexes
/// right), every key holds its latest value, no file of the clean is left, and it cleans on.
#[test]
fn kill_9_at_each_file_operation_of_a_clean_loses_no_latest_value() {
    use crate::inspect::{cleaned_below, segment_files, IndexCheck, LogScanner, ScanEnd, Severity};

    let pristine = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        durability: Durability::Sync,
        ..compacted()
    };
    let log = PartitionLog::open(pristine.path(), config.clone()).expect("open");
    // Cleaned once already, so the clean under test merges small cleaned segments too.
    fill(&log, 6, 12);
    clean_now(&log, &cleaner(), TS).expect("first clean");
    let want = fill(&log, 6, 12);
    let end = log.log_end_offset();
    log.close().expect("close");
    drop(log);

    let mut killed_at = Vec::new();
    let mut cut = 1;
    loop {
        let work = tempfile::tempdir().expect("tempdir");
        for entry in std::fs::read_dir(pristine.path()).expect("ls") {
            let path = entry.expect("entry").path();
            std::fs::copy(&path, work.path().join(path.file_name().expect("name"))).expect("cp");
        }
        let output = std::process::Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "cleaner::tests::kill_9_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(KILL9_DIR_ENV, work.path())
            .env(KILL9_CUT_ENV, cut.to_string())
            .output()
            .expect("start the child");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let finished = stdout.contains("clean finished");
        if !finished {
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(
                output.status.signal(),
                Some(9),
                "cut {cut}: the child was not killed: {}\n{stdout}\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
            let step = stdout
                .lines()
                .find_map(|l| l.split_once("kill -9 before ").map(|(_, step)| step))
                .unwrap_or_else(|| panic!("cut {cut}: no kill line in {stdout}"));
            killed_at.push(step.to_string());
        }

        let dir = work.path();
        let log = PartitionLog::open(dir, config.clone())
            .unwrap_or_else(|e| panic!("cut {cut}: recovery failed: {e}"));
        assert_eq!(log.recovery().corruption, None, "cut {cut}");
        assert_eq!(latest(&read_all(&log)), want, "cut {cut}");
        assert_eq!(log.log_end_offset(), end, "cut {cut}");
        log.close().expect("close");
        drop(log);
        // As `brook log check` scans: each batch's shape, CRC and offsets, and the indexes.
        let cleaned = cleaned_below(dir);
        let segments = segment_files(dir).expect("segments");
        for (i, segment) in segments.iter().enumerate() {
            let mut scanner = LogScanner::open(&segment.log, Some(segment.base_offset))
                .expect("scanner")
                .with_gaps(segment.base_offset < cleaned);
            let mut indexes =
                IndexCheck::open(segment, i + 1 == segments.len()).expect("index check");
            while let Some(batch) = scanner.next_batch().expect("scan") {
                indexes.on_batch(&batch).expect("index check");
            }
            assert_eq!(
                scanner.end(),
                Some(&ScanEnd::Clean),
                "cut {cut}: {segment:?}"
            );
            let problems: Vec<_> = indexes
                .finish()
                .expect("index check")
                .into_iter()
                .filter(|f| f.severity == Severity::Problem)
                .collect();
            assert!(problems.is_empty(), "cut {cut}: {problems:?}");
        }
        let leftovers: Vec<String> = std::fs::read_dir(dir)
            .expect("ls")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".cleaned") || n == "cleaner-swap")
            .collect();
        assert!(leftovers.is_empty(), "cut {cut}: {leftovers:?}");
        let log = PartitionLog::open(dir, config.clone()).expect("reopen");
        clean_now(&log, &cleaner(), TS).expect("clean after the kill");
        assert_eq!(latest(&read_all(&log)), want, "cut {cut}, cleaned again");
        if finished {
            break;
        }
        cut += 1;
        assert!(cut < 2000, "the clean never finished");
    }
    // The kills covered each phase of a clean: before the cleaned segment is written, while
    // and after it is written, at the swap's commit point, during and after the swap.
    for (verb, file) in [
        ("create", ".log.cleaned"),
        ("write", ".log.cleaned"),
        ("fsync", ".log.cleaned"),
        ("create", "cleaner-swap.tmp"),
        ("rename", "cleaner-swap.tmp"),
        ("rename", ".log.cleaned"),
        ("remove", ".log"),
        ("fsync the directory", ""),
        ("remove", "cleaner-swap"),
    ] {
        assert!(
            killed_at
                .iter()
                .any(|s| s.starts_with(verb) && s.ends_with(file)),
            "no kill at {verb} {file}: {killed_at:#?}"
        );
    }
    assert!(killed_at.len() > 20, "{killed_at:#?}");
    // The fsyncs are batched: every cleaned group is written before the first is fsynced, all
    // are fsynced before the one swap file, and a kill landed in between (the last fsync done,
    // the swap not begun): the schedule of a crash between the batched fsyncs and the swap.
    let first = |pred: &dyn Fn(&str) -> bool| killed_at.iter().position(|s| pred(s));
    let last = |pred: &dyn Fn(&str) -> bool| killed_at.iter().rposition(|s| pred(s));
    let is_cleaned_fsync = |s: &str| s.starts_with("fsync ") && s.ends_with(".cleaned");
    let groups: std::collections::BTreeSet<&str> = killed_at
        .iter()
        .filter(|s| s.starts_with("fsync ") && s.ends_with(".log.cleaned"))
        .map(String::as_str)
        .collect();
    assert!(groups.len() >= 2, "one group only: {killed_at:#?}");
    let swap_at = first(&|s| s == "create cleaner-swap.tmp").expect("a kill at the swap file");
    assert_eq!(
        last(&|s| s == "create cleaner-swap.tmp"),
        Some(swap_at),
        "one swap for all groups: {killed_at:#?}"
    );
    assert!(
        last(&|s| s.starts_with("write ") && s.ends_with(".log.cleaned"))
            < first(&is_cleaned_fsync),
        "every group written before the first fsync: {killed_at:#?}"
    );
    assert!(last(&is_cleaned_fsync) < Some(swap_at), "{killed_at:#?}");
    assert!(
        killed_at[..swap_at]
            .iter()
            .rev()
            .take_while(|s| !is_cleaned_fsync(s))
            .all(|s| !s.contains(".cleaned")),
        "nothing of the cleaned files between their fsyncs and the swap: {killed_at:#?}"
    );
}

const KILL9_DIR_ENV: &str = "BROOK_CLEANER_KILL9_DIR";
const KILL9_CUT_ENV: &str = "BROOK_CLEANER_KILL9_CUT";

/// The child of [`kill_9_at_each_file_operation_of_a_clean_loses_no_latest_value`]: does nothing
/// unless the parent set its environment.
#[test]
#[ignore = "the child process of kill_9_at_each_file_operation_of_a_clean_loses_no_latest_value"]
fn kill_9_child() {
    let (Some(dir), Some(cut)) = (
        std::env::var_os(KILL9_DIR_ENV),
        std::env::var(KILL9_CUT_ENV).ok(),
    ) else {
        return;
    };
    let state = std::sync::Arc::new(KillState {
        armed: std::sync::atomic::AtomicBool::new(false),
        count: std::sync::atomic::AtomicU64::new(0),
        cut: cut.parse().expect("cut"),
    });
    let fs: crate::fs::FsRef = std::sync::Arc::new(KillingFs {
        inner: crate::fs::real(),
        state: std::sync::Arc::clone(&state),
    });
    let config = LogConfig {
        durability: Durability::Sync,
        ..compacted()
    };
    let log = PartitionLog::open_in(fs, dir.into(), config).expect("child: open");
    state.armed.store(true, std::sync::atomic::Ordering::SeqCst);
    clean_now(&log, &cleaner(), TS)
        .expect("child: clean")
        .expect("child: something to clean");
    println!("clean finished");
}

/// Counts a clean's mutating file operations and SIGKILLs the process before number `cut`.
struct KillState {
    armed: std::sync::atomic::AtomicBool,
    count: std::sync::atomic::AtomicU64,
    cut: u64,
}

impl KillState {
    fn before(&self, what: &str, path: &std::path::Path) {
        use std::io::Write;
        use std::sync::atomic::Ordering;
        if !self.armed.load(Ordering::SeqCst) {
            return;
        }
        if self.count.fetch_add(1, Ordering::SeqCst) + 1 != self.cut {
            return;
        }
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "kill -9 before {what} {name}");
        let _ = out.flush();
        let _ = std::process::Command::new("kill")
            .args(["-9", &std::process::id().to_string()])
            .status();
        loop {
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
    }
}

/// The real file system, with [`KillState::before`] ahead of each operation that changes it.
#[derive(Debug)]
struct KillingFs {
    inner: crate::fs::FsRef,
    state: std::sync::Arc<KillState>,
}

impl std::fmt::Debug for KillState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KillState").field("cut", &self.cut).finish()
    }
}

impl crate::fs::Fs for KillingFs {
    fn open(
        &self,
        path: &std::path::Path,
        how: crate::fs::Open,
    ) -> std::io::Result<crate::fs::FileRef> {
        if matches!(how, crate::fs::Open::Create | crate::fs::Open::Truncate) && !path.exists() {
            self.state.before("create", path);
        }
        let inner = self.inner.open(path, how)?;
        Ok(Box::new(KillingFile {
            inner,
            path: path.to_path_buf(),
            state: std::sync::Arc::clone(&self.state),
        }))
    }
    fn metadata(&self, path: &std::path::Path) -> std::io::Result<crate::fs::Metadata> {
        self.inner.metadata(path)
    }
    fn read_dir(&self, path: &std::path::Path) -> std::io::Result<Vec<crate::fs::DirEntry>> {
        self.inner.read_dir(path)
    }
    fn create_dir_all(&self, path: &std::path::Path) -> std::io::Result<()> {
        self.inner.create_dir_all(path)
    }
    fn remove_file(&self, path: &std::path::Path) -> std::io::Result<()> {
        if path.exists() {
            self.state.before("remove", path);
        }
        self.inner.remove_file(path)
    }
    fn remove_dir_all(&self, path: &std::path::Path) -> std::io::Result<()> {
        self.state.before("remove", path);
        self.inner.remove_dir_all(path)
    }
    fn rename(&self, from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
        if from.exists() {
            self.state.before("rename", from);
        }
        self.inner.rename(from, to)
    }
    fn sync_dir(&self, path: &std::path::Path) -> std::io::Result<()> {
        self.state.before("fsync the directory", path);
        self.inner.sync_dir(path)
    }
}

#[derive(Debug)]
struct KillingFile {
    inner: crate::fs::FileRef,
    path: std::path::PathBuf,
    state: std::sync::Arc<KillState>,
}

impl crate::fs::FileIo for KillingFile {
    fn read_at(&self, buf: &mut [u8], position: u64) -> std::io::Result<usize> {
        self.inner.read_at(buf, position)
    }
    fn write_all_at(&self, buf: &[u8], position: u64) -> std::io::Result<()> {
        self.state.before("write", &self.path);
        self.inner.write_all_at(buf, position)
    }
    fn len(&self) -> std::io::Result<u64> {
        self.inner.len()
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.state.before("set_len", &self.path);
        self.inner.set_len(len)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        self.state.before("fsync", &self.path);
        self.inner.sync_data()
    }
    fn map(&self) -> std::io::Result<crate::fs::FileMap> {
        self.inner.map()
    }
    fn try_lock(&self, exclusive: bool) -> std::io::Result<bool> {
        self.inner.try_lock(exclusive)
    }
    fn unlock(&self) -> std::io::Result<()> {
        self.inner.unlock()
    }
}
