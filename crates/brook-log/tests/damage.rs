//! Damage tests: torn and zero-filled tails, flipped bits, broken indexes. Each builds a log,
//! stops it as a crash would (the handle is leaked, so no clean-shutdown marker is written),
//! damages a copy of its files and checks exactly what a reopen gives back.

mod common;

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use brook_log::{Durability, LogConfig, LogError, PartitionLog};
use common::{numbered_batch, par_each, segment_files, small_config, split_batches};
use tempfile::TempDir;

/// A batch as appended: where it lives and the exact bytes a read must return.
#[derive(Debug, Clone)]
struct Placed {
    base: u64,
    next: u64,
    segment: PathBuf,
    position: u64,
    bytes: Vec<u8>,
}

/// A log left behind by a crash, and what was acknowledged in it.
struct Crashed {
    dir: TempDir,
    config: LogConfig,
    batches: Vec<Placed>,
}

impl Crashed {
    /// Appends `count` batches of varied sizes (1..=5 records, values up to ~200 bytes) and
    /// leaks the handle, as `kill -9` would leave things.
    fn new(config: LogConfig, count: usize) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = PartitionLog::open(dir.path(), config.clone()).expect("open");
        let mut batches: Vec<Placed> = Vec::new();
        let mut seq = 0u64;
        for i in 0..count {
            // The last batch is small (one 8-byte value), so that cutting it at every point
            // stays quick.
            let last = i + 1 == count;
            let records = if last { 1 } else { 1 + i % 5 };
            let value_len = if last { 8 } else { 20 + (i * 37) % 180 };
            // Timestamps mostly rise but step back now and then, as producers' clocks do.
            let ts = 1_700_000_000_000 + (i as i64) * 10 - if i % 4 == 3 { 25 } else { 0 };
            let mut batch = numbered_batch(seq, records, value_len, ts);
            seq += records as u64;
            let info = log.append(&mut batch).expect("append");
            batches.push(Placed {
                base: info.base_offset,
                next: info.last_offset + 1,
                segment: PathBuf::new(),
                position: 0,
                bytes: batch,
            });
        }
        std::mem::forget(log);
        locate(dir.path(), &mut batches);
        Self {
            dir,
            config,
            batches,
        }
    }

    /// A fresh copy of the crashed directory, to damage.
    fn copy(&self) -> TempDir {
        let copy = tempfile::tempdir().expect("tempdir");
        for entry in fs::read_dir(self.dir.path()).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_file() {
                fs::copy(&path, copy.path().join(path.file_name().expect("name"))).expect("copy");
            }
        }
        copy
    }

    fn last(&self) -> &Placed {
        self.batches.last().expect("batches")
    }
}

/// Finds each batch's segment and file position by walking the segment files, and checks that
/// the files hold exactly the acknowledged batches in order.
fn locate(dir: &Path, batches: &mut [Placed]) {
    let mut next = 0;
    for segment in segment_files(dir) {
        let bytes = fs::read(&segment).expect("read segment");
        let mut position = 0usize;
        for (_, batch) in split_batches(&bytes) {
            let placed = &mut batches[next];
            assert_eq!(batch, placed.bytes, "batch {next} on disk");
            placed.segment = segment.clone();
            placed.position = position as u64;
            position += batch.len();
            next += 1;
        }
    }
    assert_eq!(next, batches.len(), "every appended batch is on disk");
}

fn open(dir: &Path, config: &LogConfig) -> PartitionLog {
    PartitionLog::open(dir, config.clone()).expect("reopen the damaged log")
}

/// Every batch in `want` reads back byte-exact from every offset it holds, and nothing else is
/// there.
fn assert_reads(log: &PartitionLog, want: &[Placed]) {
    let end = want.last().map_or(log.log_start_offset(), |b| b.next);
    assert_eq!(log.log_end_offset(), end, "log end");
    for batch in want {
        for offset in batch.base..batch.next {
            let got = log.read(offset, 1).expect("read");
            let got = split_batches(&got);
            assert_eq!(got.len(), 1, "read({offset}, 1) gives one batch");
            assert_eq!(got[0].1, batch.bytes, "read({offset}) bytes");
        }
    }
    assert!(log.read(end, 1 << 20).expect("read at end").is_empty());
    assert!(matches!(
        log.read(end + 1, 1 << 20),
        Err(LogError::OffsetOutOfRange { .. })
    ));
}

/// Appends one more batch and checks it lands at `expected` and reads back.
fn assert_appends_at(log: &PartitionLog, expected: u64) {
    let mut batch = numbered_batch(1_000_000, 3, 50, 1_800_000_000_000);
    let info = log.append(&mut batch).expect("append after recovery");
    assert_eq!(
        info.base_offset, expected,
        "appends continue at the right offset"
    );
    let got = log.read(expected, 1).expect("read the new batch");
    assert_eq!(split_batches(&got)[0].1, batch);
}

fn set_len(path: &Path, len: u64) {
    OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| f.set_len(len))
        .expect("set_len");
}

#[test]
fn torn_last_batch_at_every_cut_point_is_truncated() {
    let crashed = Crashed::new(small_config(Durability::None), 24);
    let last = crashed.last().clone();
    let kept = &crashed.batches[..crashed.batches.len() - 1];
    let name = last.segment.file_name().expect("name").to_owned();
    let cuts: Vec<u64> = (last.position..last.position + last.bytes.len() as u64).collect();
    par_each(&cuts, |&cut| {
        let copy = crashed.copy();
        let segment = copy.path().join(&name);
        set_len(&segment, cut);
        let log = open(copy.path(), &crashed.config);
        let report = log.recovery();
        assert!(!report.clean, "cut {cut}: a crashed log reported clean");
        assert!(report.corruption.is_none(), "cut {cut}: {report:?}");
        assert_eq!(
            report.truncated_bytes,
            cut - last.position,
            "cut {cut}: truncated bytes"
        );
        assert_reads(&log, kept);
        assert_eq!(
            fs::metadata(&segment).expect("segment").len(),
            last.position,
            "cut {cut}: the torn bytes are gone from the file"
        );
        assert_appends_at(&log, last.base);
    });
}

#[test]
fn zero_filled_tail_is_truncated() {
    let crashed = Crashed::new(small_config(Durability::None), 24);
    let last = crashed.last().clone();
    let name = last.segment.file_name().expect("name").to_owned();

    // Zeros after the last batch (a file extended but never written): nothing acknowledged is lost.
    let copy = crashed.copy();
    let segment = copy.path().join(&name);
    let mut file = OpenOptions::new()
        .append(true)
        .open(&segment)
        .expect("open");
    file.write_all(&[0u8; 4096]).expect("zeros");
    drop(file);
    let log = open(copy.path(), &crashed.config);
    assert_eq!(log.recovery().truncated_bytes, 4096);
    assert!(log.recovery().corruption.is_none());
    assert_reads(&log, &crashed.batches);
    assert_appends_at(&log, last.next);
    log.close().expect("close");

    // The last batch's blocks were allocated but its data never reached them: zeros in its place.
    let copy = crashed.copy();
    let segment = copy.path().join(&name);
    let mut bytes = fs::read(&segment).expect("read");
    bytes[last.position as usize..].fill(0);
    fs::write(&segment, &bytes).expect("write");
    let log = open(copy.path(), &crashed.config);
    assert_eq!(log.recovery().truncated_bytes, last.bytes.len() as u64);
    assert!(log.recovery().corruption.is_none());
    assert_reads(&log, &crashed.batches[..crashed.batches.len() - 1]);
    assert_appends_at(&log, last.base);
    log.close().expect("close");
}

/// Where in a batch a bit is flipped, and which bit.
const FLIPS: &[(&str, usize, u8)] = &[
    ("a value byte", 80, 0x10),
    ("the CRC", 18, 0x01),
    ("the attributes", 22, 0x04),
    ("the base offset", 7, 0x02),
    ("the magic", 16, 0x01),
    ("the length, low bit", 11, 0x01),
    ("the length, sign bit", 8, 0x80),
    ("the length, past the end of the file", 9, 0x10),
];

#[test]
fn flipped_bit_mid_log_is_reported_and_nothing_after_it_is_deleted() {
    // One big segment, so the damaged batch has valid batches after it in the same file.
    let mut config = small_config(Durability::None);
    config.segment_bytes_max = 1 << 20;
    let crashed = Crashed::new(config, 12);
    let bad = crashed.batches[6].clone();
    assert!(bad.bytes.len() > 81, "the value byte is inside the batch");
    let name = bad.segment.file_name().expect("name").to_owned();
    for &(what, at, bit) in FLIPS {
        let copy = crashed.copy();
        let segment = copy.path().join(&name);
        let mut damaged = fs::read(&segment).expect("read");
        damaged[bad.position as usize + at] ^= bit;
        fs::write(&segment, &damaged).expect("write");

        let log = open(copy.path(), &crashed.config);
        let corruption = log
            .recovery()
            .corruption
            .clone()
            .unwrap_or_else(|| panic!("{what}: a flipped bit was not reported"));
        assert!(
            corruption.segment.ends_with(&name),
            "{what}: reported segment {}",
            corruption.segment.display()
        );
        assert_eq!(corruption.position, bad.position, "{what}: position");
        assert_eq!(corruption.offset, bad.base, "{what}: offset");
        assert!(!corruption.reason.is_empty());
        // Readable up to the damage, exactly.
        assert_reads(&log, &crashed.batches[..6]);
        // Appending would bury the damage under new offsets: refused, and nothing written.
        let mut batch = numbered_batch(9_999, 1, 10, 0);
        assert!(
            matches!(log.append(&mut batch), Err(LogError::ReadOnly { .. })),
            "{what}: append after corruption"
        );
        assert!(log.is_poisoned(), "{what}: a damaged log takes appends");
        // A close does not vouch for damaged files: the next open finds the damage again.
        assert!(log.close().is_ok());
        drop(log);
        assert_eq!(
            fs::read(&segment).expect("read"),
            damaged,
            "{what}: the bytes after the damage are still on disk"
        );
        let log = open(copy.path(), &crashed.config);
        assert_eq!(
            log.recovery().corruption.as_ref(),
            Some(&corruption),
            "{what}: reported again after a close"
        );
        drop(log);
        assert_eq!(
            fs::read(&segment).expect("read"),
            damaged,
            "{what}: still there"
        );
    }
}

/// Bytes of one entry: (relative offset u32, position u32) in `.index`,
/// (timestamp i64, relative offset u32) in `.timeindex`.
fn entry_len(index: &Path) -> usize {
    if index.extension().is_some_and(|e| e == "timeindex") {
        12
    } else {
        8
    }
}

/// What a log answers: a read at every offset, and time lookups across its timestamps.
#[derive(Debug, PartialEq, Eq)]
struct Answers {
    reads: Vec<Vec<u8>>,
    times: Vec<Option<(u64, i64)>>,
}

/// Reads every offset and looks up every timestamp of a log, for comparison after damage.
fn answers(log: &PartitionLog, crashed: &Crashed) -> Answers {
    let end = crashed.last().next;
    let reads = (0..end)
        .map(|o| log.read(o, 1).expect("read").to_vec())
        .collect();
    let times = (1_699_999_999_900..1_700_000_000_400)
        .step_by(3)
        .map(|ts| log.offset_for_timestamp(ts).expect("time lookup"))
        .collect();
    Answers { reads, times }
}

/// Damages one index file in a fresh copy and checks that the reopened log gives the same
/// answers, having rebuilt the index.
fn check_index_damage(
    crashed: &Crashed,
    expected: &Answers,
    what: &str,
    damage: impl Fn(&Path) + Sync,
) {
    let targets: Vec<(PathBuf, &str)> = segment_files(crashed.dir.path())
        .into_iter()
        .flat_map(|segment| [(segment.clone(), "index"), (segment, "timeindex")])
        .collect();
    par_each(&targets, |(segment, ext)| {
        let copy = crashed.copy();
        let name = segment.with_extension(ext);
        let name = name.file_name().expect("name");
        let original = fs::read(crashed.dir.path().join(name)).expect("the undamaged index");
        let index = copy.path().join(name);
        damage(&index);
        let log = open(copy.path(), &crashed.config);
        let got = answers(&log, crashed);
        // Rebuilt on open (the active segment's, or files that do not pair up) or before
        // first use (a sealed segment's are checked whole then): either way back to the
        // index the log was written with.
        let now = fs::read(&index).unwrap_or_default();
        assert!(
            log.recovery().rebuilt_indexes >= 1 || now == original,
            "{what} .{ext} of {}: not rebuilt: {:?}",
            segment.display(),
            log.recovery()
        );
        assert!(
            got.reads == expected.reads,
            "{what} .{ext} of {}: reads differ",
            segment.display()
        );
        assert!(
            got.times == expected.times,
            "{what} .{ext} of {}: timestamp lookups differ",
            segment.display()
        );
        assert_reads(&log, &crashed.batches);
    });
}

/// A cleanly closed log of several segments with several index entries each.
fn closed_log() -> (Crashed, Answers) {
    let crashed = Crashed::new(small_config(Durability::None), 40);
    let log = open(crashed.dir.path(), &crashed.config);
    let expected = answers(&log, &crashed);
    log.close().expect("close");
    assert!(segment_files(crashed.dir.path()).len() >= 3);
    (crashed, expected)
}

#[test]
fn missing_short_or_garbled_indexes_are_rebuilt() {
    let (crashed, expected) = closed_log();
    check_index_damage(&crashed, &expected, "deleted", |p| {
        fs::remove_file(p).expect("remove")
    });
    check_index_damage(&crashed, &expected, "emptied", |p| set_len(p, 0));
    check_index_damage(&crashed, &expected, "cut mid-entry", |p| {
        let len = fs::metadata(p).expect("meta").len();
        set_len(p, len.saturating_sub(3).max(5));
    });
    check_index_damage(&crashed, &expected, "random bytes", |p| {
        let len = fs::metadata(p).expect("meta").len() as usize;
        let noise: Vec<u8> = (0..len.max(4 * entry_len(p)))
            .map(|i| (i as u8).wrapping_mul(151) ^ 0x5a)
            .collect();
        fs::write(p, noise).expect("write");
    });
    check_index_damage(&crashed, &expected, "every position off by one", |p| {
        let mut bytes = fs::read(p).expect("read");
        let entry = entry_len(p);
        for e in bytes.chunks_exact_mut(entry) {
            // The last byte of each entry is the low byte of its position (.index) or of
            // its relative offset (.timeindex): both now point mid-batch or at the wrong record.
            e[entry - 1] = e[entry - 1].wrapping_add(1);
        }
        fs::write(p, bytes).expect("write");
    });
}

#[test]
fn deleted_time_index_is_rebuilt_with_the_same_answers() {
    let (crashed, expected) = closed_log();
    for segment in segment_files(crashed.dir.path()) {
        let copy = crashed.copy();
        let index = copy.path().join(
            segment
                .with_extension("timeindex")
                .file_name()
                .expect("name"),
        );
        fs::remove_file(&index).expect("remove");
        let log = open(copy.path(), &crashed.config);
        assert!(log.recovery().rebuilt_indexes >= 1, "{:?}", log.recovery());
        assert!(answers(&log, &crashed) == expected, "answers differ");
        log.close().expect("close");
        assert!(index.exists(), "the time index was written back");
    }
}

/// A base offset damaged (outside the CRC) so that it lands between the last stable offset
/// and the high watermark, read by a read_committed reader while a transaction is open: the
/// read from that batch is a `Corrupt` error naming its offset, never an empty answer below
/// the end (a consumer stuck without an error), and a read before it stops short of it.
#[test]
fn a_base_offset_damaged_past_the_last_stable_offset_is_reported_not_read_as_empty() {
    use brook_log::batch::{BatchBuilder, Compression, RecordRef};
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path(), &small_config(Durability::None));
    let mut placed = Vec::new();
    let mut position = 0u64;
    for i in 0..6u64 {
        // Offsets 0, 1, 2 plain; 3 opens producer 9's transaction; 4, 5 plain again.
        let mut builder = BatchBuilder::new(Compression::None);
        if i == 3 {
            builder = builder.with_producer(9, 0, 0).transactional();
        }
        let value = format!("value {i}").into_bytes();
        builder.push(RecordRef {
            key: None,
            value: Some(&value),
            headers: &[],
            timestamp: 1_700_000_000_000 + i as i64,
        });
        let mut bytes = builder.build().expect("batch").to_vec();
        let info = log.append(&mut bytes).expect("append");
        assert_eq!(info.base_offset, i);
        placed.push((position, bytes.len()));
        position += bytes.len() as u64;
    }
    assert_eq!(log.high_watermark(), 6);
    assert_eq!(log.last_stable_offset(), 3);
    // The batch at 1 now says it starts at 5.
    let segment = segment_files(dir.path())[0].clone();
    let mut file = OpenOptions::new().write(true).open(&segment).expect("open");
    std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(placed[1].0)).expect("seek");
    file.write_all(&5i64.to_be_bytes()).expect("damage");
    file.sync_all().expect("sync");
    drop(file);

    match log.read_below(1, 1 << 20, 3) {
        Err(LogError::Corrupt {
            offset, position, ..
        }) => {
            assert_eq!(offset, 1, "names the offset the damaged batch holds");
            assert_eq!(position, placed[1].0, "and where it lies");
        }
        other => panic!("a damaged batch read as {other:?}"),
    }
    let before = log
        .read_below(0, 1 << 20, 3)
        .expect("read before the damage");
    assert_eq!(
        before.len(),
        placed[0].1,
        "stops short of the damaged batch"
    );
    // Below the high watermark the reader's own checks see the damage (base 5 after 0).
    let all = log.read_below(0, 1 << 20, 6).expect("read_uncommitted");
    assert!(all.len() > placed[0].1, "handed on for the reader's checks");
}
