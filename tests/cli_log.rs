//! `brook log dump` and `brook log check`, run as the built binary on real data directories
//! written by brook-log, then damaged the ways a crash or a bad disk damages them.

use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use brook_log::batch::{BatchBuilder, Compression, RecordRef};
use brook_log::inspect::{self, LogScanner, SegmentFiles};
use brook_log::{Durability, LogConfig, PartitionLog, Store, TopicConfig};

/// Batches appended to partition 0 of `orders`: 3 records each.
const BATCHES: u64 = 6;
const RECORDS_PER_BATCH: u64 = 3;

fn brook(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_brook"))
        .args(args)
        .output()
        .expect("run brook")
}

fn run(args: &[&str], path: &Path) -> Output {
    let mut all: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_ref()).collect();
    all.push(path.as_os_str());
    brook(&all)
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A data directory with topic `orders` (2 partitions; partition 0 holds 6 batches over
/// several small segments, indexed at every batch) and topic `empty`.
fn data_dir() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut config = LogConfig::default();
    config.segment_bytes_max = 1024;
    config.index_interval_bytes = 1;
    config.index_bytes_max = 1024;
    config.durability = Durability::None;
    let store = Store::open(tmp.path(), config).expect("open store");
    let orders = store
        .create_topic("orders", 2, TopicConfig::default())
        .expect("create orders");
    store
        .create_topic("empty", 1, TopicConfig::default())
        .expect("create empty");
    let value = [b'v'; 100];
    for b in 0..BATCHES {
        let mut builder = BatchBuilder::new(Compression::None);
        for r in 0..RECORDS_PER_BATCH {
            let key = format!("key-{}", b * RECORDS_PER_BATCH + r);
            builder.push(RecordRef {
                key: Some(key.as_bytes()),
                value: Some(&value),
                headers: &[("h", b"1")],
                timestamp: 1_700_000_000_000 + (b * RECORDS_PER_BATCH + r) as i64,
            });
        }
        let mut batch = builder.build().expect("build");
        orders
            .partition(0)
            .expect("partition 0")
            .append(&mut batch)
            .expect("append");
    }
    drop(orders);
    store.close().expect("close store");
    let partition = tmp.path().join("orders-0");
    (tmp, partition)
}

/// `(base offset, path)` of each segment of a partition, in order.
fn segments(partition: &Path) -> Vec<(u64, PathBuf)> {
    inspect::segment_files(partition)
        .expect("list")
        .into_iter()
        .map(|segment| (segment.base_offset, segment.log))
        .collect()
}

/// `(position, base offset)` of each batch of a segment, read with brook-log's own scanner.
fn batches(segment: &Path) -> Vec<(u64, i64)> {
    let mut scanner = LogScanner::open(segment, None).expect("scan");
    let mut found = Vec::new();
    while let Some(b) = scanner.next_batch().expect("scan") {
        found.push((b.position, b.header.base_offset));
    }
    found
}

fn flip_byte(path: &Path, position: u64) {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .expect("open");
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, position).expect("read");
    file.write_all_at(&[byte[0] ^ 0x5a], position)
        .expect("write");
}

/// The first line of `text` that starts with `prefix`.
fn line_starting<'a>(text: &'a str, prefix: &str) -> &'a str {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting {prefix:?} in\n{text}"))
}

/// The `A..=B` offset ranges of the batch lines of a dump.
fn dumped_ranges(text: &str) -> Vec<(u64, u64)> {
    text.lines()
        .filter_map(|line| line.strip_prefix("offset "))
        .map(|rest| {
            let range = rest.split_whitespace().next().expect("range");
            let (a, b) = range.split_once("..=").expect("A..=B");
            (a.parse().expect("A"), b.parse().expect("B"))
        })
        .collect()
}

#[test]
fn dump_prints_every_batch_of_a_partition_with_its_offsets() {
    let (_tmp, partition) = data_dir();
    let output = run(&["log", "dump"], &partition);
    let text = stdout(&output);
    assert!(output.status.success(), "{text}");
    let expected: Vec<(u64, u64)> = (0..BATCHES)
        .map(|b| {
            (
                b * RECORDS_PER_BATCH,
                b * RECORDS_PER_BATCH + RECORDS_PER_BATCH - 1,
            )
        })
        .collect();
    assert_eq!(dumped_ranges(&text), expected, "{text}");
    assert!(
        segments(&partition).len() > 1,
        "the test wants several segments"
    );
    assert_eq!(
        text.lines().filter(|l| l.starts_with("segment ")).count(),
        segments(&partition).len()
    );
    let first = line_starting(&text, "offset 0..=2 ");
    for field in [
        "records 3",
        "position 0",
        "first_ts 1700000000000",
        "max_ts 1700000000002",
        "compression none",
        "crc ok",
    ] {
        assert!(first.contains(field), "{field:?} missing from {first:?}");
    }
}

#[test]
fn dump_of_one_segment_with_records_prints_keys_and_values() {
    let (_tmp, partition) = data_dir();
    let (base, second) = segments(&partition)[1].clone();
    let output = run(&["log", "dump", "--records"], &second);
    let text = stdout(&output);
    assert!(output.status.success(), "{text}");
    let first_offset = base;
    let record = text
        .lines()
        .find(|l| {
            l.trim_start()
                .starts_with(&format!("offset {first_offset} ts"))
        })
        .unwrap_or_else(|| panic!("no record line for offset {first_offset} in {text}"));
    assert!(
        record.contains(&format!("key \"key-{first_offset}\"")),
        "{record}"
    );
    assert!(
        record.contains(&format!("value \"{}\"", "v".repeat(100))),
        "{record}"
    );
    assert!(record.contains("headers [\"h\"=\"1\"]"), "{record}");
}

#[test]
fn check_passes_a_good_data_directory() {
    let (tmp, _) = data_dir();
    let output = run(&["log", "check"], tmp.path());
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    let summary = text.lines().last().expect("summary");
    assert!(
        summary.starts_with("checked 3 partition(s)") && summary.contains(": ok, 0 warning(s)"),
        "{summary}"
    );
    assert!(
        summary.contains(&format!("{BATCHES} batch(es)")),
        "{summary}"
    );
}

#[test]
fn check_names_the_segment_and_position_of_a_flipped_byte() {
    let (tmp, partition) = data_dir();
    let (_, first) = segments(&partition)[0].clone();
    let found = batches(&first);
    assert!(found.len() >= 2, "the first segment needs two batches");
    let (position, offset) = found[1];
    // A byte in the records of the second batch: its CRC no longer matches.
    flip_byte(&first, position + 70);

    let output = run(&["log", "check"], tmp.path());
    let text = stdout(&output);
    eprintln!(
        "PEEK\n{text}\n{}",
        stdout(&run(&["log", "dump"], &partition))
    );
    assert_eq!(output.status.code(), Some(1), "{text}");
    let error = line_starting(&text, "error: ");
    assert!(error.contains(&first.display().to_string()), "{error}");
    assert!(
        error.contains(&format!("position {position} (offset {offset})")),
        "{error}"
    );
    assert!(error.contains("CRC-32C mismatch"), "{error}");
    assert!(text
        .lines()
        .last()
        .expect("summary")
        .contains("problem(s) found"));

    let dump = run(&["log", "dump"], &partition);
    assert_eq!(dump.status.code(), Some(1));
    assert!(
        stdout(&dump).contains(&format!("DAMAGE: torn tail at position {position}"))
            || stdout(&dump).contains(&format!("DAMAGE: corrupt batch at position {position}"))
    );
}

/// Appends one more batch to partition 0 of `orders` and stops as a crash does (no clean
/// close): with durability `none` the recovery point stays where the clean close left it, so
/// the new batch lies past it, where an interrupted append may tear.
fn append_and_crash(partition: &Path) {
    let mut config = LogConfig::default();
    config.segment_bytes_max = 1024;
    config.index_interval_bytes = 1;
    config.durability = Durability::None;
    let log = PartitionLog::open(partition, config).expect("open");
    let mut builder = BatchBuilder::new(Compression::None);
    builder.push(RecordRef {
        key: None,
        value: Some(&[b'x'; 100]),
        headers: &[],
        timestamp: 1_700_000_001_000,
    });
    log.append(&mut builder.build().expect("build"))
        .expect("append");
    std::mem::forget(log);
}

#[test]
fn check_warns_but_passes_a_torn_tail_in_the_last_segment() {
    let (tmp, partition) = data_dir();
    append_and_crash(&partition);
    let (_, last) = segments(&partition).last().cloned().expect("a segment");
    let (position, _) = *batches(&last).last().expect("a batch");
    let len = fs::metadata(&last).expect("meta").len();
    // An append the crash cut short: half of the last batch is on disk.
    OpenOptions::new()
        .write(true)
        .open(&last)
        .expect("open")
        .set_len(position + (len - position) / 2)
        .expect("truncate");

    let output = run(&["log", "check"], tmp.path());
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    let warning = line_starting(&text, "warning: ");
    assert!(warning.contains("torn tail"), "{warning}");
    assert!(
        warning.contains(&format!("position {position}"))
            && warning.contains("the next open cuts it"),
        "{warning}"
    );
    // The check changed nothing: the next real open is the one that cuts.
    assert_eq!(
        fs::metadata(&last).expect("meta").len(),
        position + (len - position) / 2
    );
}

/// The case: a cleanly stopped log cut short loses acknowledged records, so it is
/// corruption (exit 1, naming the repair command), never a torn tail; repair then cuts it.
#[test]
fn a_cut_tail_of_a_cleanly_stopped_log_is_an_error_and_repair_cuts_it() {
    let (tmp, partition) = data_dir();
    let (_, last) = segments(&partition).last().cloned().expect("a segment");
    let (position, offset) = *batches(&last).last().expect("a batch");
    let len = fs::metadata(&last).expect("meta").len();
    OpenOptions::new()
        .write(true)
        .open(&last)
        .expect("open")
        .set_len(len - 10)
        .expect("cut");
    let output = run(&["log", "check"], tmp.path());
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    let error = line_starting(&text, "error: ");
    assert!(
        error.contains(&format!("position {position}")) && error.contains("read-only"),
        "{error}"
    );
    let command = format!(
        "brook log repair --data-dir {} --topic orders --partition 0 --truncate-to {offset}",
        tmp.path().display()
    );
    assert!(error.contains(&command), "{error}");

    let data = tmp.path().display().to_string();
    let repair = [
        "log",
        "repair",
        "--data-dir",
        &data,
        "--topic",
        "orders",
        "--partition",
        "0",
        "--truncate-to",
        &offset.to_string(),
        "--yes",
    ];
    let output = brook(&repair.map(std::ffi::OsStr::new));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout(&output).contains(&format!("truncated from offset {offset} to {offset}")));
    let output = run(&["log", "check"], tmp.path());
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    assert_eq!(fs::metadata(&last).expect("meta").len(), position);

    // A running broker's directory is refused.
    let store = Store::open(tmp.path(), LogConfig::default()).expect("open");
    let output = brook(&repair.map(std::ffi::OsStr::new));
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("locked"));
    store.close().expect("close");
}

#[test]
fn check_finds_a_wrong_index_entry_and_says_it_will_be_rebuilt() {
    // Entry 0's position (.index bytes 4..8) one byte off points inside a batch; entry 0's
    // timestamp (.timeindex bytes 0..8) moved far beyond any record's.
    for (time_index, byte, reason) in [
        (false, 7, "not the start of a batch"),
        (true, 2, "time index timestamp"),
    ] {
        let (tmp, partition) = data_dir();
        let (base, first) = segments(&partition)[0].clone();
        let files = SegmentFiles::new(&partition, base);
        let index = if time_index {
            &files.time_index
        } else {
            &files.index
        };
        assert!(
            fs::metadata(index).expect("index").len() >= 8,
            "an entry to damage"
        );
        flip_byte(index, byte);

        // Derived data the next open (or first lookup) rebuilds: a warning, exit 0.
        let output = run(&["log", "check"], tmp.path());
        let text = stdout(&output);
        assert_eq!(output.status.code(), Some(0), "{text}");
        let warning = line_starting(&text, "warning: ");
        assert!(
            warning.contains(&files.index.display().to_string()),
            "{warning}"
        );
        assert!(
            warning.contains("entry 0") && warning.contains(reason) && warning.contains("rebuilt"),
            "{warning}"
        );
        assert!(
            !text.contains(&format!("{}:", first.display())),
            "the log itself is fine"
        );
    }
}

#[test]
fn check_tells_corruption_before_valid_batches_from_a_torn_tail() {
    let (tmp, partition) = data_dir();
    let (base, middle) = segments(&partition)[1].clone();
    let found = batches(&middle);
    assert!(
        found.len() >= 2,
        "the segment needs a batch after the damaged one"
    );
    flip_byte(&middle, 70);

    let output = run(&["log", "check"], tmp.path());
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    let expected = format!(
        "error: {}: corrupt batch at position 0 (offset {base}): batch CRC-32C mismatch",
        middle.display()
    );
    assert!(
        text.lines().any(|l| l.starts_with(&expected)),
        "{expected}\nin\n{text}"
    );
    assert!(
        text.contains(&format!("valid batches follow at position {}", found[1].0)),
        "{text}"
    );
    // The batches after the damage are still counted: the scan went on past it.
    let summary = text.lines().last().expect("summary");
    assert!(
        summary.contains(&format!("{} batch(es)", BATCHES - 1)),
        "{summary}"
    );
}

#[test]
fn check_reports_topic_files_and_partition_directories_that_disagree() {
    let (tmp, _) = data_dir();
    let data = tmp.path();
    // An interrupted create: a partition directory no topic file names.
    fs::create_dir(data.join("ghost-0")).expect("mkdir");
    let output = run(&["log", "check"], data);
    let text = stdout(&output);
    assert_eq!(
        output.status.code(),
        Some(0),
        "an orphan is a warning: {text}"
    );
    let warning = line_starting(&text, "warning: ");
    assert!(
        warning.contains("ghost-0") && warning.contains("no topic file claims it"),
        "{warning}"
    );

    // A partition directory a topic file names, gone.
    fs::remove_dir_all(data.join("orders-1")).expect("rm");
    let output = run(&["log", "check"], data);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    let error = line_starting(&text, "error: ");
    assert!(error.contains("orders-1: missing"), "{error}");

    // A damaged topic file.
    let topic_file = inspect::topic_file(data, "empty");
    flip_byte(&topic_file, 12);
    let output = run(&["log", "check"], data);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.lines().any(|l| l.starts_with("error: bad topic file")
            && l.contains(&topic_file.display().to_string())),
        "{text}"
    );
    assert!(
        !text.contains("empty-0: no topic file"),
        "its directory is not an orphan: {text}"
    );
}

#[test]
fn check_says_an_orphan_holding_records_is_set_aside_and_notes_it_once_it_is() {
    let (tmp, _) = data_dir();
    let data = tmp.path();
    // A lost topic file: orders-0 holds records, orders-1 none.
    fs::remove_file(inspect::topic_file(data, "orders")).expect("rm topic file");
    let output = run(&["log", "check"], data);
    let text = stdout(&output);
    assert_eq!(
        output.status.code(),
        Some(0),
        "orphans are warnings: {text}"
    );
    let aside = data.join("orders-0.orphaned");
    assert!(
        text.lines().any(|l| l.starts_with("warning: ")
            && l.contains("orders-0: no topic file claims it, yet it holds records")
            && l.contains(&format!("sets it aside as {}", aside.display()))
            && l.contains("restore the topic file")),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.starts_with("warning: ")
            && l.contains("orders-1: no topic file claims it and it holds no record")
            && l.contains("the next open removes it")),
        "{text}"
    );

    // The next open does what check said.
    Store::open(data, LogConfig::default())
        .expect("open")
        .close()
        .expect("close");
    assert!(aside.is_dir() && !data.join("orders-0").exists() && !data.join("orders-1").exists());
    let output = run(&["log", "check"], data);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(!text.contains("warning:"), "{text}");
    let note = line_starting(&text, "note: ");
    assert!(
        note.contains(&aside.display().to_string())
            && note.contains("partition 0 of topic \"orders\"")
            && note.contains("never served"),
        "{note}"
    );
}

#[test]
fn check_notes_a_running_broker_and_reads_anyway() {
    let (tmp, _) = data_dir();
    let store = Store::open(tmp.path(), LogConfig::default()).expect("open");
    let output = run(&["log", "check"], tmp.path());
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(
        text.contains(&format!("in use by pid {} on host", std::process::id())),
        "{text}"
    );
    store.close().expect("close");
}

#[test]
fn bad_paths_are_one_line_errors_with_exit_2() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let missing = tmp.path().join("nope");
    for args in [&["log", "dump"][..], &["log", "check"][..]] {
        let output = run(args, &missing);
        let err = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("error: "), "{err}");
        assert!(err.contains("nope"), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}
