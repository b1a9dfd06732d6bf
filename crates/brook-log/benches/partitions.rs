//! What an open partition costs in memory: a store of many small partitions (default 10,000:
//! 100 topics of 100 partitions, one batch of ten 100-byte records each), its resident set
//! (`VmRSS`) measured at each step and printed per partition. Goal (docs/reliability.md,
//! "Benchmarks"): 10,000 partitions open under 500 MiB, so idle partitions cost kilobytes.
//!
//! The steps: create and fill the partitions, close; reopen (a clean start, nothing walked);
//! read one batch from every partition (each read maps and checks the indexes it needs);
//! close. Each line gives the RSS, its growth over the process's RSS before the store
//! existed, that growth divided by the partition count, and the step's time.
//!
//! Run with `cargo bench -p brook-log --bench partitions` (release build). Set
//! `BROOK_BENCH_PARTITIONS` for another count (rounded to whole topics of 100), and
//! `BROOK_BENCH_DIR` for where the files go (default: cargo's target scratch directory).
//! Each partition holds open files (its segment and indexes): the count needs a file-descriptor
//! limit above it (`ulimit -n`).

mod support;

use std::time::Instant;

use brook_log::{Durability, LogConfig, Store, TopicConfig};
use support::{batch, bench_dir};

const PER_TOPIC: u32 = 100;

/// A `/proc/self/status` field in KiB (`VmRSS`, `VmHWM`).
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/self/status"))
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

struct Meter {
    base_kib: u64,
    partitions: u64,
}

impl Meter {
    fn print(&self, step: &str, started: Instant) {
        let rss = status_kib("VmRSS");
        let grown = rss.saturating_sub(self.base_kib);
        println!(
            "{step:<34} RSS {:>8.1} MiB  +{:>7.1} MiB  {:>6.1} KiB/partition  {:>6} fds  {:>7.2} s",
            rss as f64 / 1024.0,
            grown as f64 / 1024.0,
            grown as f64 / self.partitions as f64,
            open_fds(),
            started.elapsed().as_secs_f64()
        );
    }
}

fn main() {
    let wanted: u32 = std::env::var("BROOK_BENCH_PARTITIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let topics = wanted.div_ceil(PER_TOPIC).max(1);
    let partitions = u64::from(topics * PER_TOPIC);
    let dir = bench_dir();
    let mut config = LogConfig::default();
    // Filling 10,000 partitions one fsync each would measure the disk, not the memory.
    config.durability = Durability::None;
    let one = batch(10, 100);
    let meter = Meter {
        base_kib: status_kib("VmRSS"),
        partitions,
    };
    println!(
        "{partitions} partitions ({topics} topics of {PER_TOPIC}) in {}; RSS before the store {:.1} MiB",
        dir.path().display(),
        meter.base_kib as f64 / 1024.0
    );

    let started = Instant::now();
    let store = Store::open(dir.path(), config.clone()).expect("open store");
    for t in 0..topics {
        let topic = store
            .create_topic(&format!("t{t:03}"), PER_TOPIC, TopicConfig::default())
            .expect("create topic");
        for p in 0..PER_TOPIC {
            let mut bytes = one.clone();
            topic
                .partition(p)
                .expect("partition")
                .append(&mut bytes)
                .expect("append");
        }
    }
    meter.print("created and filled, open", started);
    let started = Instant::now();
    store.close().expect("close");
    drop(store);
    meter.print("closed", started);

    let started = Instant::now();
    let store = Store::open(dir.path(), config).expect("reopen store");
    meter.print("reopened (clean)", started);
    let started = Instant::now();
    let mut read = 0usize;
    for t in 0..topics {
        let topic = store.topic(&format!("t{t:03}")).expect("topic");
        for p in 0..PER_TOPIC {
            read += topic
                .partition(p)
                .expect("partition")
                .read(0, 64 * 1024)
                .expect("read")
                .len();
        }
    }
    assert_eq!(
        read,
        one.len() * partitions as usize,
        "every batch read back"
    );
    meter.print("reopened, every partition read", started);
    let started = Instant::now();
    store.close().expect("close");
    drop(store);
    meter.print("closed again", started);
    println!(
        "peak RSS (VmHWM) {:.1} MiB; goal: {partitions} partitions open under 500 MiB",
        status_kib("VmHWM") as f64 / 1024.0
    );
}
