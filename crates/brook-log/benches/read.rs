//! Read speed, each figure printed next to its baseline from the same run:
//!
//! - a sequential read of the whole log in 1 MiB fetches against `read()` of the segment files
//!   into a 1 MiB buffer (goal: at least 0.8 of raw);
//! - the latency of a read at a random offset on a small and on a log four times larger
//!   (goal: within 1.5x of each other: the index lookup keeps it independent of the log size),
//!   each next to one `pread` of a whole batch at a random batch of the same files (what the
//!   page cache and memory alone cost as the files grow).
//!
//! By default the logs are 256 MiB (sequential) and 256 MiB vs 1 GiB (random), so a casual
//! `cargo bench -p brook-log --bench read` takes a few minutes. `BROOK_BENCH_BIG=1` uses the
//! sizes of the goal: 1 GiB sequential, and 1 GiB vs 4 GiB for random reads (about 6 GiB of
//! disk and page cache). Both sides read from the page cache: the logs were just written.

mod support;

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use brook_log::batch::BatchHeader;
use brook_log::{Durability, LogConfig, PartitionLog};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use support::{batch, bench_dir, big, human, print_ratio, Rates};
use tempfile::TempDir;

const MIB: u64 = 1 << 20;
const FETCH_BYTES: usize = 1 << 20;

fn config() -> LogConfig {
    let mut config = LogConfig::default();
    config.durability = Durability::None;
    config
}

/// A closed log of about `bytes` made of `batch`es, and its first and end offsets.
fn filled_log(bytes: u64, batch: &[u8]) -> (TempDir, PartitionLog) {
    let dir = bench_dir();
    let log = PartitionLog::open(dir.path(), config()).expect("open");
    let mut buf = batch.to_vec();
    for _ in 0..bytes / batch.len() as u64 {
        log.append(&mut buf).expect("append");
    }
    log.close().expect("close");
    drop(log);
    let log = PartitionLog::open(dir.path(), config()).expect("reopen");
    (dir, log)
}

/// Reads the whole log in `FETCH_BYTES` fetches, as a consumer would; returns the bytes read.
fn read_all(log: &PartitionLog) -> u64 {
    let (mut offset, end, mut total) = (log.log_start_offset(), log.log_end_offset(), 0);
    while offset < end {
        let bytes = log.read(offset, FETCH_BYTES).expect("read");
        // The next fetch starts after the last whole batch returned: walk the headers.
        let mut at = 0;
        while at < bytes.len() {
            let header = BatchHeader::parse(&bytes[at..]).expect("header");
            offset = header.next_offset() as u64;
            at += header.total_len();
        }
        total += bytes.len() as u64;
    }
    total
}

/// The segment files of a log directory, in offset order.
fn segment_paths(dir: &Path) -> Vec<PathBuf> {
    let mut segments: Vec<_> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    segments.sort();
    segments
}

/// Reads every segment file with `read()` into one reused buffer; returns the bytes read.
fn raw_read_all(dir: &Path) -> u64 {
    let mut buf = vec![0u8; FETCH_BYTES];
    let mut total = 0;
    for path in segment_paths(dir) {
        let mut file = File::open(&path).expect("open segment");
        loop {
            let n = file.read(&mut buf).expect("read");
            if n == 0 {
                break;
            }
            total += n as u64;
        }
    }
    total
}

fn sequential(c: &mut Criterion) {
    let size = if big() { 1024 * MIB } else { 256 * MIB };
    let (dir, log) = filled_log(size, &batch(100, 1024));
    let bytes = log.size_bytes();
    assert_eq!(read_all(&log), bytes, "a full read returns every byte");
    assert_eq!(raw_read_all(dir.path()), bytes);
    let (brook, raw) = (Rates::default(), Rates::default());
    let mut group = c.benchmark_group(format!("read_sequential_{}MiB", size / MIB));
    group
        .throughput(Throughput::Bytes(bytes))
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    group.bench_function("brook", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                std::hint::black_box(read_all(&log));
            }
            let elapsed = start.elapsed();
            brook.record(iters * bytes, elapsed);
            elapsed
        })
    });
    group.bench_function("raw_read", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                std::hint::black_box(raw_read_all(dir.path()));
            }
            let elapsed = start.elapsed();
            raw.record(iters * bytes, elapsed);
            elapsed
        })
    });
    group.finish();
    print_ratio(
        &format!("read sequential {} MiB", size / MIB),
        &brook,
        "raw read",
        &raw,
        1e-6,
        "MB/s",
    );
}

/// The `i`th of a sequence of offsets below `end` spread evenly over the log in scrambled
/// order (a Weyl sequence), so neither a cache nor read-ahead sees a pattern.
fn scattered(i: u64, end: u64) -> u64 {
    i.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17) % end
}

/// The baseline of a random read: one `pread` of one whole batch at a random batch of the
/// segment files, found by arithmetic (every batch of these logs has the same length). That is
/// the least any lookup could cost; it shows what the page cache and memory alone add as a
/// file grows.
struct RawBatches {
    /// Each segment file and how many batches it holds.
    files: Vec<(File, u64)>,
    batch_len: u64,
    buf: Vec<u8>,
}

impl RawBatches {
    fn open(dir: &Path, batch_len: usize) -> Self {
        let files = segment_paths(dir)
            .into_iter()
            .map(|path| {
                let file = File::open(&path).expect("open segment");
                let len = file.metadata().expect("metadata").len();
                (file, len / batch_len as u64)
            })
            .collect();
        Self {
            files,
            batch_len: batch_len as u64,
            buf: vec![0; batch_len],
        }
    }

    fn count(&self) -> u64 {
        self.files.iter().map(|(_, n)| n).sum()
    }

    /// Reads batch `k` (counting across files).
    fn read(&mut self, mut k: u64) -> &[u8] {
        for (file, n) in &self.files {
            if k < *n {
                file.read_exact_at(&mut self.buf, k * self.batch_len)
                    .expect("pread");
                break;
            }
            k -= n;
        }
        &self.buf
    }
}

fn random(c: &mut Criterion) {
    let (small, large) = if big() {
        (1024 * MIB, 4096 * MIB)
    } else {
        (256 * MIB, 1024 * MIB)
    };
    // Small batches (10 records of 100 bytes), so a lookup, not a copy, is what is timed.
    let batch = batch(10, 100);
    let mut group = c.benchmark_group("read_random_offset");
    group
        .throughput(Throughput::Elements(1))
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    // (size, brook latency us, raw pread latency us)
    let mut latencies = Vec::new();
    for size in [small, large] {
        let (dir, log) = filled_log(size, &batch);
        let end = log.log_end_offset();
        let (brook, raw) = (Rates::default(), Rates::default());
        let mut i = 0u64;
        group.bench_function(format!("{}MiB_log", size / MIB), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    i += 1;
                    let bytes = log.read(scattered(i, end), 1).expect("read");
                    std::hint::black_box(bytes);
                }
                let elapsed = start.elapsed();
                brook.record(iters, elapsed);
                elapsed
            })
        });
        let mut files = RawBatches::open(dir.path(), batch.len());
        let batches = files.count();
        group.bench_function(format!("{}MiB_raw_pread", size / MIB), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    i += 1;
                    std::hint::black_box(files.read(scattered(i, batches)));
                }
                let elapsed = start.elapsed();
                raw.record(iters, elapsed);
                elapsed
            })
        });
        if let (Some(brook), Some(raw)) = (brook.median(), raw.median()) {
            latencies.push((size, 1e6 / brook, 1e6 / raw));
        }
    }
    group.finish();
    // Both sizes ran unless a filter on the command line left some out.
    let [(small_size, small_us, small_raw), (large_size, large_us, large_raw)] = latencies[..]
    else {
        return;
    };
    println!(
        "read random offset: {} MiB log {} us vs {} MiB log {} us ({:.2}x); \
         raw pread of one batch: {} us vs {} us ({:.2}x)",
        large_size / MIB,
        human(large_us),
        small_size / MIB,
        human(small_us),
        large_us / small_us,
        human(large_raw),
        human(small_raw),
        large_raw / small_raw
    );
}

criterion_group!(benches, sequential, random);
criterion_main!(benches);
