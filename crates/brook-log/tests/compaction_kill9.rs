//! kill -9 during compaction: a child process appends keyed updates in `sync` mode (printing
//! each acknowledged one) while another of its threads cleans the log over and over, slowly
//! (throttled), so kills land while cleaned segments are written, fsynced and swapped in, and
//! between. The parent SIGKILLs it at a random moment, reopens the log and checks that it
//! recovers without corruption, that its offsets only rise, that every record in it is one the
//! child wrote, and that each key's last record is its latest acknowledged value or a later
//! write.
//!
//! The child is this test binary run again with a filter that selects only `child_writer`
//! (an `#[ignore]`d test that does nothing unless the parent's environment variable is set).
//! Set `BROOK_KILL9_SEED` to replay the kill moments of a failed run (the seed is printed).
//! Every step of the swap is also crashed deterministically (on the simulated disk) by the
//! cleaner's unit tests; this test is the real process and the real file system.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use brook_log::batch::{records, BatchBuilder, Batches, Compression, RecordRef};
use brook_log::{clean_now, CleanerConfig, CleanupPolicy, Durability, LogConfig, PartitionLog};
use bytes::Bytes;
use common::{kill9_seed, run_killed, Rng};

const DIR_ENV: &str = "BROOK_KILL9_DIR";
const ROUND_ENV: &str = "BROOK_KILL9_ROUND";
const ROUNDS: u64 = 16;
const KEYS: u64 = 40;

fn config() -> LogConfig {
    let mut config = LogConfig::default();
    config.segment_bytes_max = 4096;
    config.index_interval_bytes = 256;
    config.index_bytes_max = 4096;
    config.durability = Durability::Sync;
    config.cleanup_policy = CleanupPolicy::Compact;
    config
}

fn cleaner() -> CleanerConfig {
    let mut cleaner = CleanerConfig::default();
    // About 64 keys a round, so a clean takes several; slow, so a kill lands inside one.
    cleaner.dedupe_buffer_bytes = 24 * 90;
    cleaner.io_bytes_per_sec = Some(256 << 10);
    cleaner
}

fn key(k: u64) -> Vec<u8> {
    format!("key-{k:03}").into_bytes()
}

/// The value of update `seq` of round `round`: it names its round, sequence and key.
fn value(round: u64, seq: u64) -> Vec<u8> {
    let mut v = format!("{round}:{seq}:{}:", seq % KEYS).into_bytes();
    v.resize(40 + (seq % 50) as usize, b'.');
    v
}

#[test]
#[ignore = "the child process of latest_values_survive_kill_9_during_cleaning; does nothing on its own"]
fn child_writer() {
    let Some(dir) = std::env::var_os(DIR_ENV) else {
        return;
    };
    let round: u64 = std::env::var(ROUND_ENV)
        .expect("round")
        .parse()
        .expect("round number");
    let log = Arc::new(PartitionLog::open(&dir, config()).expect("child: open"));
    let started = Instant::now();
    let cleaning = Arc::clone(&log);
    // The parent kills us long before the limit; it only stops an orphan.
    std::thread::spawn(move || {
        while started.elapsed() < Duration::from_secs(30) {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock")
                .as_millis() as i64;
            clean_now(&cleaning, &cleaner(), now).expect("child: clean");
            std::thread::sleep(Duration::from_millis(2));
        }
    });
    let mut seq = 0;
    while started.elapsed() < Duration::from_secs(30) {
        let (k, v) = (key(seq % KEYS), value(round, seq));
        let mut builder = BatchBuilder::new(if seq % 3 == 0 {
            Compression::Lz4
        } else {
            Compression::None
        });
        builder.push(RecordRef {
            key: Some(&k),
            value: Some(&v),
            headers: &[],
            timestamp: 1_700_000_000_000 + seq as i64,
        });
        let mut batch = builder.build().expect("build").to_vec();
        let info = log.append(&mut batch).expect("child: append");
        // One write per line, after the append returned: printed means acknowledged.
        let line = format!("ack {seq} {}\n", info.base_offset);
        let mut out = std::io::stdout().lock();
        out.write_all(line.as_bytes()).expect("child: stdout");
        out.flush().expect("child: flush");
        seq += 1;
        if seq % 8 == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// One acknowledged update: its round, sequence and offset.
#[derive(Debug, Clone, Copy)]
struct Ack {
    round: u64,
    seq: u64,
    offset: u64,
}

fn run_child(dir: &Path, round: u64, delay: Duration) -> Vec<Ack> {
    let env = [
        (DIR_ENV, dir.display().to_string()),
        (ROUND_ENV, round.to_string()),
    ];
    run_killed("child_writer", &env, delay)
        .lines()
        .filter_map(|line| line.strip_prefix("ack "))
        .map(|rest| {
            let n: Vec<u64> = rest
                .split_whitespace()
                .map(|x| x.parse().expect("ack number"))
                .collect();
            Ack {
                round,
                seq: n[0],
                offset: n[1],
            }
        })
        .collect()
}

/// Reopens the log and checks it against every acknowledged update so far.
fn verify(dir: &Path, acks: &[Ack]) {
    let log = PartitionLog::open(dir, config()).expect("reopen after kill -9");
    assert!(
        log.recovery().corruption.is_none(),
        "kill -9 is not corruption: {:?}",
        log.recovery()
    );
    // Every record: offsets rising, each one the child wrote (its value names its key).
    let mut last: BTreeMap<Vec<u8>, (u64, Vec<u8>)> = BTreeMap::new();
    let mut offset = log.log_start_offset();
    let mut previous = None;
    while offset < log.high_watermark() {
        let bytes = log.read(offset, 256 << 10).expect("read");
        let mut next = offset;
        for batch in Batches::new(&bytes) {
            let batch = batch.expect("a whole batch");
            next = batch.header.next_offset() as u64;
            for record in records(Bytes::copy_from_slice(batch.bytes)).expect("records") {
                let record = record.expect("record");
                if record.offset < offset {
                    continue;
                }
                assert!(previous.is_none_or(|p| record.offset > p), "offsets rise");
                previous = Some(record.offset);
                let k = record.key.expect("keyed").to_vec();
                let v = record.value.expect("a value").to_vec();
                let text = String::from_utf8(v.clone()).expect("utf8");
                let named: u64 = text
                    .split(':')
                    .nth(2)
                    .expect("key field")
                    .parse()
                    .expect("key");
                assert_eq!(
                    k,
                    key(named),
                    "record {} holds a value written for its key",
                    record.offset
                );
                last.insert(k, (record.offset, v));
            }
        }
        assert!(next > offset, "reads move on");
        offset = next;
    }
    // Each key's latest acknowledged update is its last record, or something later is.
    let mut latest: BTreeMap<Vec<u8>, Ack> = BTreeMap::new();
    for ack in acks {
        latest.insert(key(ack.seq % KEYS), *ack);
    }
    for (k, ack) in &latest {
        let (offset, v) = last
            .get(k)
            .unwrap_or_else(|| panic!("key {k:?}: its acknowledged value {ack:?} is gone"));
        if *offset == ack.offset {
            assert_eq!(v, &value(ack.round, ack.seq), "{ack:?}");
        } else {
            assert!(
                *offset > ack.offset,
                "key {k:?}: {offset} is older than {ack:?}"
            );
        }
    }
    log.close().expect("close");
}

#[test]
fn latest_values_survive_kill_9_during_cleaning() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rng = Rng(kill9_seed("compaction kill -9 test"));
    let mut acks = Vec::new();
    for round in 0..ROUNDS {
        let delay = 150 + rng.below(600);
        acks.extend(run_child(dir.path(), round, Duration::from_millis(delay)));
        verify(dir.path(), &acks);
    }
    let log = PartitionLog::open(dir.path(), config()).expect("open");
    let stats_dir = std::fs::read_dir(dir.path()).expect("ls").count();
    eprintln!(
        "kill -9 during cleaning: {} acknowledged updates over {ROUNDS} rounds, {} bytes left of \
         them in {stats_dir} files, cleaned up to offset {} of {}",
        acks.len(),
        log.size_bytes(),
        log.cleaner_stats().first_dirty_offset,
        log.log_end_offset()
    );
    assert!(
        acks.len() as u64 > ROUNDS * 10,
        "the child wrote too little to prove anything"
    );
    assert!(
        dir.path().join("cleaner-checkpoint").exists(),
        "no clean ever finished: the test proved little"
    );
}
