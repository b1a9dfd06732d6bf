//! kill -9: a child process appends in `sync` mode from several threads and prints each
//! acknowledged batch; the parent SIGKILLs it at a random moment, reopens the log and finds
//! every acknowledged record, byte for byte, at dense offsets, with no corrupt batch readable.
//!
//! The child is this test binary run again with a filter that selects only `child_appender`
//! (an `#[ignore]`d test that does nothing unless the parent's environment variable is set).
//! Set `BROOK_KILL9_SEED` to replay the kill moments of a failed run (the seed is printed).

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use brook_log::batch::{records, validate};
use brook_log::{Durability, LogConfig, PartitionLog};
use bytes::Bytes;
use common::{build, kill9_seed, payload, run_killed, split_batches, Rec, Rng};

const DIR_ENV: &str = "BROOK_KILL9_DIR";
const ROUND_ENV: &str = "BROOK_KILL9_ROUND";
const ROUNDS: u64 = 24;
const THREADS: u64 = 3;

fn config() -> LogConfig {
    // Small segments and a dense index, so kills also land in rolls and index writes.
    let mut config = LogConfig::default();
    config.segment_bytes_max = 64 << 10;
    config.index_interval_bytes = 1024;
    config.index_bytes_max = 4096;
    config.durability = Durability::Sync;
    config
}

/// What a child's batch `seq` of thread `thread` in round `round` holds: its records are fully
/// determined by these numbers, so the parent can check them without being told.
fn records_of(round: u64, thread: u64, seq: u64) -> Vec<Rec> {
    let count = 1 + seq % 3;
    (0..count)
        .map(|i| {
            let id = (round << 48) | (thread << 40) | (seq << 8) | i;
            Rec {
                key: Some(id.to_be_bytes().to_vec()),
                value: Some(payload(id, 10 + (id % 211) as usize)),
                timestamp: 1_700_000_000_000 + seq as i64,
            }
        })
        .collect()
}

/// One acknowledged batch, as the child printed it: `ack <thread> <seq> <base> <last>`.
#[derive(Debug, Clone, Copy)]
struct Ack {
    round: u64,
    thread: u64,
    seq: u64,
    base: u64,
    last: u64,
}

fn parse_acks(round: u64, stdout: &str) -> Vec<Ack> {
    stdout
        .lines()
        .filter_map(|line| line.strip_prefix("ack "))
        .map(|rest| {
            let n: Vec<u64> = rest
                .split_whitespace()
                .map(|x| x.parse().expect("ack number"))
                .collect();
            assert_eq!(n.len(), 4, "ack line {rest:?}");
            Ack {
                round,
                thread: n[0],
                seq: n[1],
                base: n[2],
                last: n[3],
            }
        })
        .collect()
}

#[test]
#[ignore = "the child process of acknowledged_appends_survive_kill_9; does nothing on its own"]
fn child_appender() {
    let Some(dir) = std::env::var_os(DIR_ENV) else {
        return;
    };
    let round: u64 = std::env::var(ROUND_ENV)
        .expect("round")
        .parse()
        .expect("round number");
    let log = Arc::new(PartitionLog::open(&dir, config()).expect("child: open"));
    let started = Instant::now();
    let threads: Vec<_> = (0..THREADS)
        .map(|thread| {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                // The parent kills us long before this; the limit only stops an orphan.
                let mut seq = 0;
                while started.elapsed() < Duration::from_secs(30) {
                    let mut batch = build(&records_of(round, thread, seq));
                    let info = log.append(&mut batch).expect("child: append");
                    let line = format!(
                        "ack {thread} {seq} {} {}\n",
                        info.base_offset, info.last_offset
                    );
                    // One write per line, after the append returned: printed means acknowledged.
                    let mut out = std::io::stdout().lock();
                    out.write_all(line.as_bytes()).expect("child: stdout");
                    out.flush().expect("child: flush");
                    seq += 1;
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("child thread");
    }
}

/// Runs one child for `delay`, SIGKILLs it and returns what it acknowledged.
fn run_child(dir: &Path, round: u64, delay: Duration) -> Vec<Ack> {
    let env = [
        (DIR_ENV, dir.display().to_string()),
        (ROUND_ENV, round.to_string()),
    ];
    parse_acks(round, &run_killed("child_appender", &env, delay))
}

/// A record's key and value.
type KeyValue = (Option<Vec<u8>>, Option<Vec<u8>>);

/// Reopens the log and checks it: dense offsets from 0, every batch valid, every acknowledged
/// record present with its exact key and value.
fn verify(dir: &Path, acks: &[Ack]) {
    let log = PartitionLog::open(dir, config()).expect("reopen after kill -9");
    let report = log.recovery();
    assert!(
        report.corruption.is_none(),
        "kill -9 is not corruption: {report:?}"
    );
    assert_eq!(log.log_start_offset(), 0);
    let end = log.log_end_offset();

    let mut found: BTreeMap<u64, KeyValue> = BTreeMap::new();
    let mut offset = 0;
    while offset < end {
        let bytes = log.read(offset, 256 << 10).expect("read");
        let batches = split_batches(&bytes);
        assert!(
            !batches.is_empty(),
            "read({offset}) returned nothing below the end {end}"
        );
        for (header, batch) in batches {
            assert_eq!(header.base_offset as u64, offset, "offsets are dense");
            validate(&batch, config().message_bytes_max)
                .unwrap_or_else(|e| panic!("a readable batch at {offset} is corrupt: {e}"));
            for record in records(Bytes::from(batch)).expect("records") {
                let record = record.expect("record");
                let (key, value) = (
                    record.key.map(|k| k.to_vec()),
                    record.value.map(|v| v.to_vec()),
                );
                found.insert(record.offset, (key, value));
            }
            offset = header.next_offset() as u64;
        }
    }
    assert_eq!(found.len() as u64, end, "one record per offset");

    for ack in acks {
        let want = records_of(ack.round, ack.thread, ack.seq);
        assert_eq!(ack.last - ack.base + 1, want.len() as u64, "{ack:?}");
        for (i, rec) in want.iter().enumerate() {
            let offset = ack.base + i as u64;
            let got = found
                .get(&offset)
                .unwrap_or_else(|| panic!("acknowledged offset {offset} ({ack:?}) is gone"));
            assert_eq!(
                got,
                &(rec.key.clone(), rec.value.clone()),
                "record {offset} of {ack:?}"
            );
        }
    }
    log.close().expect("close");
}

#[test]
fn acknowledged_appends_survive_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rng = Rng(kill9_seed("kill -9 test"));
    let mut acks = Vec::new();
    let mut killed_with_acks = 0;
    for round in 0..ROUNDS {
        // Mostly mid-append; now and then during the child's start or recovery.
        let delay = if round % 6 == 5 {
            rng.below(40)
        } else {
            50 + rng.below(200)
        };
        let got = run_child(dir.path(), round, Duration::from_millis(delay));
        if !got.is_empty() {
            killed_with_acks += 1;
        }
        acks.extend(got);
        verify(dir.path(), &acks);
    }
    assert!(
        killed_with_acks >= ROUNDS / 2,
        "only {killed_with_acks} of {ROUNDS} rounds acknowledged anything: the test proved little"
    );
    eprintln!(
        "kill -9: {} acknowledged batches over {ROUNDS} rounds, all found",
        acks.len()
    );
}
