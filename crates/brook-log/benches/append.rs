//! Append throughput, each figure printed next to a raw-file baseline measured in the same run:
//!
//! - `none` durability, 1 KiB records in batches of 100: MB/s against `write()` of the same
//!   bytes to a file in the same directory (goal: at least 0.8 of raw);
//! - `sync` durability, 1, 4 and 16 threads appending one-record batches: appends/s against one
//!   `write()` + `fdatasync()` per record (goal: 16 appenders at least 8x raw, by group commit).
//!
//! Run with `cargo bench -p brook-log --bench append`. Files go to cargo's target scratch
//! directory (or `BROOK_BENCH_DIR`), so the baseline shares the log's file system.

mod support;

use std::fs::File;
use std::io::Write;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use brook_log::{Durability, LogConfig, PartitionLog};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use parking_lot::Mutex;
use support::{batch, bench_dir, print_ratio, Rates};

fn config(durability: Durability) -> LogConfig {
    let mut config = LogConfig::default();
    config.durability = durability;
    config
}

/// The baseline: `iters` plain `write()`s of `bytes` to a new file in a bench directory, each
/// followed by `fdatasync()` if `sync`. Records bytes/s (no sync) or writes/s (sync).
fn raw_writes(bytes: &[u8], iters: u64, sync: bool, rates: &Rates) -> Duration {
    let dir = bench_dir();
    let mut file = File::create(dir.path().join("raw.log")).expect("create");
    let start = Instant::now();
    for _ in 0..iters {
        file.write_all(bytes).expect("write");
        if sync {
            file.sync_data().expect("fdatasync");
        }
    }
    let elapsed = start.elapsed();
    let units = if sync {
        iters
    } else {
        iters * bytes.len() as u64
    };
    rates.record(units, elapsed);
    elapsed
}

fn append_none(c: &mut Criterion) {
    let batch = batch(100, 1024);
    let len = batch.len() as u64;
    let (brook, raw) = (Rates::default(), Rates::default());
    let mut group = c.benchmark_group("append_none_1KiB_x100");
    group
        .throughput(Throughput::Bytes(len))
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    group.bench_function("brook", |b| {
        b.iter_custom(|iters| {
            let dir = bench_dir();
            let log = PartitionLog::open(dir.path(), config(Durability::None)).expect("open");
            let mut buf = batch.clone();
            let start = Instant::now();
            for _ in 0..iters {
                log.append(&mut buf).expect("append");
            }
            let elapsed = start.elapsed();
            brook.record(iters * len, elapsed);
            elapsed
        })
    });
    group.bench_function("raw_write", |b| {
        b.iter_custom(|iters| raw_writes(&batch, iters, false, &raw))
    });
    group.finish();
    print_ratio(
        "append none 1KiB x100",
        &brook,
        "raw write",
        &raw,
        1e-6,
        "MB/s",
    );
}

/// `threads` appenders share `iters` one-record appends to one `sync` log; returns the time
/// for all of them.
fn sync_appends(batch: &[u8], threads: u64, iters: u64, side: &SyncSide) -> Duration {
    let dir = bench_dir();
    let log = PartitionLog::open(dir.path(), config(Durability::Sync)).expect("open");
    let per_thread = iters.div_ceil(threads);
    let barrier = Barrier::new(threads as usize + 1);
    let elapsed = std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut buf = batch.to_vec();
                barrier.wait();
                for _ in 0..per_thread {
                    log.append(&mut buf).expect("append");
                }
            });
        }
        barrier.wait();
        let start = Instant::now();
        // The scope joins every appender before returning.
        start
    })
    .elapsed();
    side.rates.record(per_thread * threads, elapsed);
    let mut shared = side.appends_and_fsyncs.lock();
    shared.0 += per_thread * threads;
    shared.1 += log.fsync_count();
    // Criterion asked for `iters`; scale the time of the `per_thread * threads` done.
    elapsed.mul_f64(iters as f64 / (per_thread * threads) as f64)
}

/// What the runs with one number of appenders measured.
#[derive(Default)]
struct SyncSide {
    rates: Rates,
    /// Appends and the fdatasyncs they took, over all runs: how well group commit shares.
    appends_and_fsyncs: Mutex<(u64, u64)>,
}

fn append_sync(c: &mut Criterion) {
    let batch = batch(1, 1024);
    let raw = Rates::default();
    let brook: Vec<(u64, SyncSide)> = [1, 4, 16].map(|t| (t, SyncSide::default())).into();
    let mut group = c.benchmark_group("append_sync_1_record");
    group
        .throughput(Throughput::Elements(1))
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    // The baseline runs before and after the appenders: fsync latency on a shared disk
    // drifts, and the median of both brackets it.
    group.bench_function("raw_write_fdatasync", |b| {
        b.iter_custom(|iters| raw_writes(&batch, iters, true, &raw))
    });
    for (threads, side) in &brook {
        group.bench_function(format!("brook_{threads}_appenders"), |b| {
            b.iter_custom(|iters| sync_appends(&batch, *threads, iters, side))
        });
    }
    group.bench_function("raw_write_fdatasync_again", |b| {
        b.iter_custom(|iters| raw_writes(&batch, iters, true, &raw))
    });
    group.finish();
    for (threads, side) in &brook {
        print_ratio(
            &format!("append sync 1KiB x1, {threads} appenders"),
            &side.rates,
            "raw write+fdatasync",
            &raw,
            1.0,
            "appends/s",
        );
        let (appends, fsyncs) = *side.appends_and_fsyncs.lock();
        if fsyncs > 0 {
            println!(
                "  {threads} appenders: {:.1} appends per fdatasync",
                appends as f64 / fsyncs as f64
            );
        }
    }
}

criterion_group!(benches, append_none, append_sync);
criterion_main!(benches);
