//! Helpers shared by the brook-log integration tests: batches with known contents, logs with
//! small limits (so a few kilobytes exercise rolls and indexes), a byte-exact snapshot of a
//! directory, and a splitter for what `read` returns.
// Each test binary compiles this module on its own and uses a different subset of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use brook_log::batch::{BatchBuilder, BatchHeader, Compression, RecordRef};
use brook_log::{Durability, LogConfig};

/// A log config small enough that a test's few kilobytes roll segments and fill indexes.
pub(crate) fn small_config(durability: Durability) -> LogConfig {
    let mut config = LogConfig::default();
    config.segment_bytes_max = 2048;
    config.index_interval_bytes = 128;
    config.index_bytes_max = 1024;
    config.retention_ms_max = None;
    config.retention_bytes_max = None;
    config.durability = durability;
    config
}

/// One record to put in a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rec {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub timestamp: i64,
}

/// Builds an uncompressed batch (base offset 0) of `records`.
pub(crate) fn build(records: &[Rec]) -> Vec<u8> {
    let mut builder = BatchBuilder::new(Compression::None);
    for r in records {
        builder.push(RecordRef {
            key: r.key.as_deref(),
            value: r.value.as_deref(),
            headers: &[],
            timestamp: r.timestamp,
        });
    }
    builder.build().expect("a valid batch builds").to_vec()
}

/// A batch of `count` records whose values are `value_len` bytes derived from `seed + i`, so
/// that every record of a test is distinct and checkable.
pub(crate) fn numbered_batch(seed: u64, count: usize, value_len: usize, timestamp: i64) -> Vec<u8> {
    let records: Vec<Rec> = (0..count as u64)
        .map(|i| Rec {
            key: (i % 2 == 1).then(|| format!("k{}", seed + i).into_bytes()),
            value: Some(payload(seed + i, value_len)),
            timestamp: timestamp + i as i64,
        })
        .collect();
    build(&records)
}

/// `len` bytes that name `id`: its decimal digits then a pattern derived from it.
pub(crate) fn payload(id: u64, len: usize) -> Vec<u8> {
    let mut out = format!("{id}:").into_bytes();
    let mut x = id.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.push(x as u8);
    }
    out.truncate(len);
    out
}

/// Splits bytes returned by `read` into whole batches, checking every header and CRC.
pub(crate) fn split_batches(mut bytes: &[u8]) -> Vec<(BatchHeader, Vec<u8>)> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let header = BatchHeader::parse_checked(bytes, usize::MAX)
            .unwrap_or_else(|e| panic!("read returned a bad batch: {e}"));
        let len = header.total_len();
        out.push((header, bytes[..len].to_vec()));
        bytes = &bytes[len..];
    }
    out
}

/// Every file under `dir` (recursively) with its bytes, to prove an operation changed nothing.
pub(crate) fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read_dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).expect("read file");
                out.insert(
                    path.strip_prefix(dir).expect("under dir").to_path_buf(),
                    bytes,
                );
            }
        }
    }
    out
}

/// Asserts that two snapshots hold the same files with the same bytes, naming the first difference.
pub(crate) fn assert_same_files(
    before: &BTreeMap<PathBuf, Vec<u8>>,
    after: &BTreeMap<PathBuf, Vec<u8>>,
    what: &str,
) {
    let names_before: Vec<_> = before.keys().collect();
    let names_after: Vec<_> = after.keys().collect();
    assert_eq!(names_before, names_after, "{what}: the file list changed");
    for (name, bytes) in before {
        let now = &after[name];
        if bytes != now {
            let first = bytes
                .iter()
                .zip(now.iter())
                .position(|(a, b)| a != b)
                .unwrap_or(bytes.len().min(now.len()));
            panic!(
                "{what}: {} changed (length {} -> {}, first difference at byte {first})",
                name.display(),
                bytes.len(),
                now.len()
            );
        }
    }
}

/// The segment files (`.log`) in a partition directory, in offset order.
pub(crate) fn segment_files(dir: &Path) -> Vec<PathBuf> {
    files_with_extension(dir, "log")
}

/// Files in `dir` (not recursive) whose extension is `ext`, sorted by name (= base offset).
pub(crate) fn files_with_extension(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    out.sort();
    out
}

/// The base offset a segment file is named after (`{base_offset:020}.log`).
pub(crate) fn base_offset_of(path: &Path) -> u64 {
    path.file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{} is not named by a base offset", path.display()))
}

/// Runs `f` on every item from four threads. Recovery is bound by fsync latency, not CPU, so
/// tests that reopen many damaged copies finish several times sooner this way.
pub(crate) fn par_each<T: Sync>(items: &[T], f: impl Fn(&T) + Sync) {
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                f(item);
            });
        }
    });
}

/// For the kill -9 tests: runs this test binary again, selecting only the `#[ignore]`d test
/// `child` (which does nothing unless one of `env` is set), for `delay`; then SIGKILLs it and
/// returns the whole lines it printed (a line the kill cut short was never printed). Panics,
/// with its output, if the child ended by itself before the kill.
pub(crate) fn run_killed(
    child: &str,
    env: &[(&str, String)],
    delay: std::time::Duration,
) -> String {
    use std::io::Read;
    let mut command = std::process::Command::new(std::env::current_exe().expect("current exe"));
    command
        .args([
            child,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut process = command.spawn().expect("spawn child");
    // Drain stdout while the child runs, so a full pipe never slows it down.
    let mut stdout = process.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        stdout.read_to_string(&mut text).expect("child stdout");
        text
    });
    std::thread::sleep(delay);
    let exited_early = process.try_wait().expect("try_wait");
    process.kill().expect("SIGKILL");
    let status = process.wait().expect("wait");
    let stdout = reader.join().expect("reader");
    if exited_early.is_some() {
        let mut stderr = String::new();
        process
            .stderr
            .take()
            .expect("stderr")
            .read_to_string(&mut stderr)
            .expect("child stderr");
        panic!("the child exited by itself ({status}) before the kill:\n{stdout}\n{stderr}");
    }
    stdout
        .split_inclusive('\n')
        .filter(|line| line.ends_with('\n'))
        .collect()
}

/// The seed of a kill -9 test's kill moments: `BROOK_KILL9_SEED`, else the clock (printed, so
/// a failed run can be replayed).
pub(crate) fn kill9_seed(test: &str) -> u64 {
    let seed = std::env::var("BROOK_KILL9_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock")
                .as_nanos() as u64
                | 1
        });
    eprintln!("{test} seed: BROOK_KILL9_SEED={seed}");
    seed
}

/// xorshift64*, seeded per run: enough to spread kill moments, and replayable.
pub(crate) struct Rng(pub u64);

impl Rng {
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}
