//! How long a store takes to open after `kill -9`, against how much it holds, next to what
//! reading every byte of it would take (what recovery did before it trusted the fsynced
//! recovery point: the issue measured 4.3 s for 2.9 GiB from a cold page cache). Goal
//! (docs/reliability.md, "Benchmarks"): ready in under 1 s after kill -9 with 10 GiB on disk.
//!
//! For each size, a child process (this program run again) creates a topic of 4 partitions
//! with `sync` durability, appends 1 MiB batches round-robin until the size is reached, says
//! so, and is SIGKILLed while the store is open: no clean-shutdown marker, so the next open
//! is a recovery. The parent then times `Store::open` (printing the bytes recovery CRC-walked
//! and the index files it rebuilt), closes, and times a plain read of every segment file.
//!
//! Run with `cargo bench -p brook-log --bench recovery` (64 MiB, 256 MiB, 1 GiB).
//! `BROOK_BENCH_BIG=1` adds 4 GiB and 10 GiB (that much free disk needed).
//! `BROOK_BENCH_DROP_CACHES=1` (root only; it empties the whole machine's page cache) drops
//! the page cache before each timed open and each read, for cold-cache figures.
//! `BROOK_BENCH_DIR` says where the files go (default: cargo's target scratch directory).

mod support;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use brook_log::{Durability, LogConfig, Store, TopicConfig};
use support::{batch, bench_dir, big};

const CHILD_ENV: &str = "BROOK_RECOVERY_BENCH_CHILD";
const PARTITIONS: u32 = 4;
const MIB: u64 = 1 << 20;

fn config() -> LogConfig {
    let mut config = LogConfig::default();
    config.durability = Durability::Sync;
    config
}

/// The child: fills `dir` with `bytes` of log, prints `filled`, then waits to be killed.
fn child(spec: &str) {
    let (dir, bytes) = spec.split_once('|').expect("DIR|BYTES");
    let bytes: u64 = bytes.parse().expect("bytes");
    let store = Store::open(dir, config()).expect("open store");
    let topic = store
        .create_topic("bench", PARTITIONS, TopicConfig::default())
        .expect("create topic");
    // 1,000 records of ~1 KiB: one fsync per MiB.
    let one = batch(1000, 1024);
    let mut written = 0u64;
    let mut p = 0u32;
    while written < bytes {
        let mut bytes = one.clone();
        topic
            .partition(p % PARTITIONS)
            .expect("partition")
            .append(&mut bytes)
            .expect("append");
        written += one.len() as u64;
        p += 1;
    }
    println!("filled");
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

fn drop_caches() {
    if std::env::var("BROOK_BENCH_DROP_CACHES").is_ok_and(|v| v == "1") {
        std::fs::write("/proc/sys/vm/drop_caches", "3\n")
            .expect("BROOK_BENCH_DROP_CACHES=1 needs root (writes /proc/sys/vm/drop_caches)");
    }
}

/// Reads every file under `dir` (two levels): the cost of walking everything.
fn read_everything(dir: &Path) -> (u64, Duration) {
    let started = Instant::now();
    let mut total = 0u64;
    let mut buf = vec![0u8; 4 * MIB as usize];
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if !path.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&path).expect("read dir") {
            let file = file.expect("entry").path();
            if file.extension().is_some_and(|e| e == "log") {
                let mut f = std::fs::File::open(&file).expect("open");
                loop {
                    let n = f.read(&mut buf).expect("read");
                    if n == 0 {
                        break;
                    }
                    total += n as u64;
                }
            }
        }
    }
    (total, started.elapsed())
}

fn main() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        child(&spec);
        return;
    }
    let mut sizes = vec![64 * MIB, 256 * MIB, 1024 * MIB];
    if big() {
        sizes.extend([4096 * MIB, 10240 * MIB]);
    }
    let exe = std::env::current_exe().expect("this program");
    println!(
        "{PARTITIONS} partitions, sync durability, kill -9 after the last acknowledged append; \
         page cache {}",
        if std::env::var("BROOK_BENCH_DROP_CACHES").is_ok_and(|v| v == "1") {
            "dropped before each timing (cold)"
        } else {
            "as left (warm)"
        }
    );
    println!("     data   open after kill -9   walked    rebuilt   read every byte");
    for size in sizes {
        let dir = bench_dir();
        let mut child = Command::new(&exe)
            .env(CHILD_ENV, format!("{}|{size}", dir.path().display()))
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn the writer");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("the writer's line");
        assert_eq!(line.trim(), "filled", "the writer failed");
        child.kill().expect("kill -9 the writer");
        child.wait().expect("wait");

        drop_caches();
        let started = Instant::now();
        let store = Store::open(dir.path(), config()).expect("reopen after kill -9");
        let opened = started.elapsed();
        let topic = store.topic("bench").expect("topic");
        let (mut walked, mut rebuilt, mut clean) = (0u64, 0usize, 0u32);
        for p in 0..PARTITIONS {
            let partition = topic.partition(p).expect("partition");
            let report = partition.recovery();
            walked += report.scanned_bytes;
            rebuilt += report.rebuilt_indexes;
            clean += u32::from(report.clean);
        }
        assert_eq!(clean, 0, "kill -9 left no clean-shutdown marker");
        store.close().expect("close");
        drop(store);
        drop_caches();
        let (total, read) = read_everything(dir.path());
        println!(
            "{:>6} MiB   {:>10.3} s        {:>6.1} MiB  {:>3} files  {:>7.3} s ({} MiB)",
            size / MIB,
            opened.as_secs_f64(),
            walked as f64 / MIB as f64,
            rebuilt,
            read.as_secs_f64(),
            total / MIB
        );
    }
}
