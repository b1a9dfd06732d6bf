//! The log cleaner's cost (issue 10's benchmark; figures in docs/benchmarks.md, "Compaction").
//! A plain program that prints figures (no criterion), each beside its baseline from the same
//! run:
//!
//! 1. **Clean rate against raw I/O.** A compacted log of `BROOK_BENCH_CLEAN_MIB` MiB (default
//!    256; 1024 with `BROOK_BENCH_BIG=1`) of keyed 200-byte updates, 100 records a batch,
//!    uncompressed, over 50,000 keys (about 20 updates a key), in 8 MiB segments. Baseline:
//!    its segment files copied raw (1 MiB `read`s and `write`s, one `fdatasync` per file, as
//!    the cleaner syncs each cleaned segment), in MB/s of log bytes. Then `clean_now` on the
//!    whole log, in MB/s of log bytes cleaned (bytes before / wall time). The cleaner reads the
//!    dirty bytes twice (the key map, then the rewrite) and writes only what stays; the copy
//!    reads and writes everything once. Goal: >= 0.5x. Median of three rounds, each on a fresh
//!    log, both sides warm in the page cache (the log was just written).
//! 2. **Peak memory against the budget.** The resident set's peak (`VmHWM`, reset through
//!    `/proc/self/clear_refs` just before the clean) less the resident set before it, against
//!    the offset map's budget (`dedupe_buffer_bytes`, 128 MiB, brook's default).
//! 3. **Produce throughput during a clean.** On a fresh log like the one above, one thread
//!    appends 100-record batches to the same partition while another cleans it, until the
//!    clean ends; the baseline is the same appends alone, for 1 s before the clean and as long
//!    as it took after it (so a machine whose load drifts weighs on both sides). Goal: >= 0.8x. Four ways: appends
//!    not fsynced (`Durability::None`, CPU-bound) and fsynced (`Durability::Sync`, acks=all),
//!    each with the cleaner unthrottled and at its default pace (`io_bytes_per_sec`,
//!    `cleaner_io_bytes_per_sec`). Median of three rounds each.
//!
//! Run with `cargo bench -p brook-log --bench cleaner` (release build). `BROOK_BENCH_DIR` says
//! where the files go (default: cargo's target scratch directory, on the build's disk);
//! `BROOK_BENCH_CLEANER_PARTS` which parts run (default `123`; e.g. `12` or `3`);
//! `BROOK_BENCH_CLEANER_BUDGET_MIB` the offset map's budget (default 128);
//! `BROOK_BENCH_CLEANER_PACE_MIB` a pace in MiB/s to use instead of the default one in part 3.

mod support;

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use brook_log::batch::{BatchBuilder, Compression, RecordRef};
use brook_log::{
    clean_now, CleanReport, CleanerConfig, CleanupPolicy, Durability, LogConfig, PartitionLog,
};
use support::{bench_dir, big, human};

const KEYS: u64 = 50_000;
const RECORDS_PER_BATCH: u64 = 100;
const VALUE_BYTES: usize = 200;
const SEGMENT_BYTES: u64 = 8 << 20;
const ROUNDS: usize = 3;
const TS: i64 = 1_700_000_000_000;
const MIB: f64 = 1024.0 * 1024.0;

fn log_bytes() -> u64 {
    let default = if big() { 1024 } else { 256 };
    std::env::var("BROOK_BENCH_CLEAN_MIB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(default)
        << 20
}

fn config(durability: Durability) -> LogConfig {
    let mut config = LogConfig::default();
    config.segment_bytes_max = SEGMENT_BYTES;
    config.cleanup_policy = CleanupPolicy::Compact;
    config.durability = durability;
    config.retention_ms_max = None;
    config.retention_bytes_max = None;
    config
}

/// The offset map's budget: `BROOK_BENCH_CLEANER_BUDGET_MIB`, default brook's 128 MiB.
fn budget_bytes() -> u64 {
    std::env::var("BROOK_BENCH_CLEANER_BUDGET_MIB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(128)
        << 20
}

/// The cleaner's pace part 3 measures beside none: `BROOK_BENCH_CLEANER_PACE_MIB`, default
/// brook's default.
fn paced() -> Option<u64> {
    std::env::var("BROOK_BENCH_CLEANER_PACE_MIB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map(|mib| mib << 20)
        .or(CleanerConfig::default().io_bytes_per_sec)
}

fn cleaner(io_bytes_per_sec: Option<u64>) -> CleanerConfig {
    let mut cleaner = CleanerConfig::default();
    cleaner.dedupe_buffer_bytes = budget_bytes();
    cleaner.io_bytes_per_sec = io_bytes_per_sec;
    cleaner
}

/// Batch number `n`: records `n * 100 ..`, each an update of key `record % KEYS`.
fn batch(n: u64, value: &[u8]) -> Vec<u8> {
    let keys: Vec<Vec<u8>> = (0..RECORDS_PER_BATCH)
        .map(|i| format!("key-{:08}", (n * RECORDS_PER_BATCH + i) % KEYS).into_bytes())
        .collect();
    let mut builder = BatchBuilder::new(Compression::None);
    for (i, key) in keys.iter().enumerate() {
        builder.push(RecordRef {
            key: Some(key),
            value: Some(value),
            headers: &[],
            timestamp: TS + i as i64,
        });
    }
    builder.build().expect("bench batch").to_vec()
}

/// A compacted log in `dir` of about `bytes`, rolled so all of it is closed; the number of
/// batches written.
fn build(dir: &Path, bytes: u64, durability: Durability) -> (PartitionLog, u64) {
    let log = PartitionLog::open(dir, config(Durability::None)).expect("open");
    let value = vec![b'v'; VALUE_BYTES];
    let mut n = 0;
    while log.size_bytes() < bytes {
        log.append(&mut batch(n, &value)).expect("append");
        n += 1;
    }
    log.roll().expect("roll");
    log.set_config(config(durability)).expect("config");
    (log, n)
}

/// Copies every segment file of `dir` into `to` (1 MiB reads and writes, an fdatasync per
/// file); the bytes copied.
fn raw_copy(dir: &Path, to: &Path) -> u64 {
    std::fs::create_dir_all(to).expect("copy dir");
    let mut buf = vec![0u8; 1 << 20];
    let mut copied = 0;
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("ls")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    for path in files {
        let mut from = File::open(&path).expect("open segment");
        let mut out = File::create(to.join(path.file_name().expect("name"))).expect("create");
        loop {
            let n = from.read(&mut buf).expect("read");
            if n == 0 {
                break;
            }
            out.write_all(&buf[..n]).expect("write");
            copied += n as u64;
        }
        out.sync_data().expect("fdatasync");
    }
    copied
}

/// A `/proc/self/status` field in KiB (`VmRSS`, `VmHWM`).
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/self/status"))
}

/// Resets `VmHWM` to the current resident set (Linux: `5` to `/proc/self/clear_refs`).
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// One round of part 1 and 2: (raw MB/s, clean MB/s, peak growth in bytes, the clean's report).
fn clean_round(bytes: u64) -> (f64, f64, Option<u64>, CleanReport) {
    let root = bench_dir();
    let dir = root.path().join("compacted-0");
    let (log, _) = build(&dir, bytes, Durability::None);
    let size = log.size_bytes();

    let started = Instant::now();
    let copied = raw_copy(&dir, &root.path().join("copy"));
    let raw = copied as f64 / started.elapsed().as_secs_f64();
    std::fs::remove_dir_all(root.path().join("copy")).expect("rm copy");

    let rss_before = status_kib("VmRSS");
    let peak_known = reset_peak();
    let started = Instant::now();
    let report = clean_now(&log, &cleaner(None), TS)
        .expect("clean")
        .expect("something to clean");
    let elapsed = started.elapsed();
    let peak = peak_known.then(|| status_kib("VmHWM").saturating_sub(rss_before) * 1024);
    assert!(
        report.size_before * 10 > size * 9,
        "the clean took the whole log"
    );
    let cleaned = report.size_before as f64 / elapsed.as_secs_f64();
    log.close().expect("close");
    (raw, cleaned, peak, report)
}

/// Part 3 for one setting: (appends' MB/s during the clean, alone, the clean's time).
fn produce_round(bytes: u64, durability: Durability, throttle: Option<u64>) -> (f64, f64, f64) {
    let root = bench_dir();
    let (log, mut n) = build(&root.path().join("compacted-0"), bytes, durability);
    let log = Arc::new(log);
    let value = vec![b'p'; VALUE_BYTES];
    let batch_len = batch(0, &value).len() as u64;
    let mut alone_bytes = 0u64;
    let alone_for = |log: &PartitionLog, n: &mut u64, secs: f64| {
        let started = Instant::now();
        let mut bytes = 0u64;
        while started.elapsed().as_secs_f64() < secs {
            log.append(&mut batch(*n, &value)).expect("append alone");
            *n += 1;
            bytes += batch_len;
        }
        (bytes, started.elapsed().as_secs_f64())
    };
    let (bytes, mut alone_secs) = alone_for(&log, &mut n, 1.0);
    alone_bytes += bytes;
    let done = Arc::new(AtomicBool::new(false));
    let cleaning = Arc::clone(&log);
    let finished = Arc::clone(&done);
    let started = Instant::now();
    let clean = std::thread::spawn(move || {
        let report = clean_now(&cleaning, &cleaner(throttle), TS);
        finished.store(true, Ordering::Release);
        report
    });
    let mut appended = 0u64;
    while !done.load(Ordering::Acquire) {
        log.append(&mut batch(n, &value))
            .expect("append during the clean");
        n += 1;
        appended += batch_len;
    }
    let during_time = started.elapsed();
    clean
        .join()
        .expect("clean thread")
        .expect("clean")
        .expect("something to clean");
    let during = appended as f64 / during_time.as_secs_f64();

    let (bytes, secs) = alone_for(&log, &mut n, during_time.as_secs_f64());
    alone_bytes += bytes;
    alone_secs += secs;
    let alone = alone_bytes as f64 / alone_secs;
    log.close().expect("close");
    (during, alone, during_time.as_secs_f64())
}

fn main() {
    // `cargo bench` passes `--bench`; a filter that is not ours leaves nothing to do.
    if std::env::args()
        .skip(1)
        .any(|a| !a.starts_with('-') && !"cleaner".contains(a.as_str()))
    {
        return;
    }
    let bytes = log_bytes();
    println!(
        "cleaner: a {} MiB compacted log, {KEYS} keys, {RECORDS_PER_BATCH} records of \
         {VALUE_BYTES} bytes a batch, {} MiB segments, offset map budget {} MiB",
        bytes >> 20,
        SEGMENT_BYTES >> 20,
        budget_bytes() >> 20
    );

    let parts = std::env::var("BROOK_BENCH_CLEANER_PARTS").unwrap_or_else(|_| "123".into());
    if parts.contains('1') || parts.contains('2') {
        clean_rates(bytes);
    }
    if parts.contains('3') {
        produce_rates(bytes);
    }
}

/// Parts 1 and 2.
fn clean_rates(bytes: u64) {
    let mut raws = Vec::new();
    let mut cleans = Vec::new();
    let mut peaks = Vec::new();
    for round in 0..ROUNDS {
        let (raw, cleaned, peak, report) = clean_round(bytes);
        println!(
            "  round {round}: raw copy {} MB/s, clean {} MB/s ({:.2}x); {} -> {} MiB, {} \
             segments -> {}, {} records kept of {}, {} keys mapped; peak RSS growth {}",
            human(raw / 1e6),
            human(cleaned / 1e6),
            cleaned / raw,
            report.size_before >> 20,
            report.size_after >> 20,
            report.segments_in,
            report.segments_out,
            report.records_kept,
            report.records_read,
            report.keys_mapped,
            peak.map_or("unknown (no /proc/self/clear_refs)".into(), |p| format!(
                "{:.1} MiB",
                p as f64 / MIB
            )),
        );
        raws.push(raw);
        cleans.push(cleaned);
        peaks.extend(peak);
    }
    let (raw, cleaned) = (median(raws), median(cleans));
    println!(
        "clean: {} MB/s vs raw read+write {} MB/s ({:.2}x; goal >= 0.5x)",
        human(cleaned / 1e6),
        human(raw / 1e6),
        cleaned / raw
    );
    if let Some(peak) = peaks.iter().max() {
        println!(
            "peak memory of a clean: {:.1} MiB over the resident set before it, vs the offset \
             map budget {} MiB ({:.2}x)",
            *peak as f64 / MIB,
            budget_bytes() >> 20,
            *peak as f64 / budget_bytes() as f64
        );
    }
}

/// Part 3.
fn produce_rates(bytes: u64) {
    let pace = paced();
    let pace_label = pace.map_or("none".to_string(), |p| format!("{} MiB/s", p >> 20));
    for (durability_label, durability) in [
        ("not fsynced", Durability::None),
        ("fsynced (sync)", Durability::Sync),
    ] {
        for (throttle_label, throttle) in [("unthrottled", None), (pace_label.as_str(), pace)] {
            let mut ratios = Vec::new();
            let mut rounds = Vec::new();
            for _ in 0..ROUNDS {
                let (during, alone, secs) = produce_round(bytes, durability, throttle);
                ratios.push(during / alone);
                rounds.push(format!(
                    "{}/{} MB/s in {secs:.1} s",
                    human(during / 1e6),
                    human(alone / 1e6)
                ));
            }
            println!(
                "produce during a clean, appends {durability_label}, cleaner {throttle_label}: \
                 {:.2}x of alone (median of {ROUNDS}; goal >= 0.8x); during/alone per round: {}",
                median(ratios),
                rounds.join(", ")
            );
        }
    }
}
