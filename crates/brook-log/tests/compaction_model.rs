//! The cleaner's model test: random keyed writes, updates and tombstones in batches of every
//! codec, rolls, cleans at random times with random offset-map budgets, clean closes and
//! crashes (a drop without close) followed by a reopen. After every step the whole log, read
//! from its start, must hold:
//!
//! - offsets strictly increasing, and every record one that was written at that offset with
//!   that key and value (nothing that was never written);
//! - for each key, its latest value as the last record of that key; for a key whose latest
//!   write is a tombstone, the tombstone or nothing (once its delete horizon has passed);
//! - the log end where the writes left it.
//!
//! The segments are tiny (1 KiB) so a few dozen batches roll many segments and the cleaner
//! merges and rewrites them; `delete.retention.ms` is one second of the test's clock, which
//! each step moves on by up to two.

use std::collections::{BTreeMap, HashMap};

use brook_log::batch::{records, BatchBuilder, Batches, Compression, RecordRef};
use brook_log::{clean_now, CleanerConfig, CleanupPolicy, Durability, LogConfig, PartitionLog};
use bytes::Bytes;
use proptest::prelude::*;

const TS: i64 = 1_700_000_000_000;
const KEYS: u8 = 12;

#[derive(Debug, Clone)]
enum Op {
    /// One batch: `(key, value)` pairs, `None` a tombstone.
    Write(Compression, Vec<(u8, Option<u16>)>),
    Roll,
    /// A clean after `elapsed_ms`, with an offset map of about `keys` keys.
    Clean {
        elapsed_ms: i64,
        keys: usize,
    },
    Restart {
        clean: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let codec = prop::sample::select(Compression::ALL.to_vec());
    let record = (0..KEYS, prop::option::weighted(0.85, any::<u16>()));
    prop_oneof![
        6 => (codec, prop::collection::vec(record, 1..6)).prop_map(|(c, r)| Op::Write(c, r)),
        2 => Just(Op::Roll),
        3 => (0..2000i64, 1..20usize).prop_map(|(elapsed_ms, keys)| Op::Clean { elapsed_ms, keys }),
        1 => any::<bool>().prop_map(|clean| Op::Restart { clean }),
    ]
}

fn config() -> LogConfig {
    let mut config = LogConfig::default();
    config.segment_bytes_max = 1024;
    config.index_interval_bytes = 64;
    config.index_bytes_max = 1024;
    config.durability = Durability::None;
    config.cleanup_policy = CleanupPolicy::Compact;
    config.delete_retention_ms = 1000;
    config
}

fn batch(codec: Compression, pairs: &[(u8, Option<u16>)], timestamp: i64) -> Vec<u8> {
    let keys: Vec<[u8; 4]> = pairs.iter().map(|(k, _)| [b'k', b'e', b'y', *k]).collect();
    let values: Vec<Option<[u8; 2]>> = pairs.iter().map(|(_, v)| v.map(u16::to_be_bytes)).collect();
    let mut builder = BatchBuilder::new(codec);
    for (key, value) in keys.iter().zip(&values) {
        builder.push(RecordRef {
            key: Some(key),
            value: value.as_ref().map(|v| &v[..]),
            headers: &[],
            timestamp,
        });
    }
    builder.build().expect("build").to_vec()
}

/// What the model knows: every record ever written by offset, and each key's latest write.
#[derive(Debug, Default)]
struct Model {
    written: HashMap<u64, (Vec<u8>, Option<Vec<u8>>)>,
    latest: BTreeMap<Vec<u8>, (u64, Option<Vec<u8>>)>,
    end: u64,
}

type Read = Vec<(u64, Vec<u8>, Option<Vec<u8>>)>;

fn read_all(log: &PartitionLog) -> Read {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.high_watermark() {
        let bytes = log.read(offset, 4096).expect("read");
        let mut next = offset;
        for batch in Batches::new(&bytes) {
            let batch = batch.expect("a whole batch");
            assert!(
                batch.header.next_offset() as u64 > next,
                "batches move forward"
            );
            next = batch.header.next_offset() as u64;
            for record in records(Bytes::copy_from_slice(batch.bytes)).expect("records") {
                let record = record.expect("a record");
                if record.offset >= offset {
                    out.push((
                        record.offset,
                        record.key.expect("keyed").to_vec(),
                        record.value.map(|v| v.to_vec()),
                    ));
                }
            }
        }
        offset = next;
    }
    out
}

fn check(log: &PartitionLog, model: &Model, step: usize) {
    assert_eq!(log.log_end_offset(), model.end, "step {step}: log end");
    let read = read_all(log);
    let mut last_seen: BTreeMap<Vec<u8>, (u64, Option<Vec<u8>>)> = BTreeMap::new();
    let mut previous = None;
    for (offset, key, value) in &read {
        assert!(
            previous.is_none_or(|p| *offset > p),
            "step {step}: offsets rise at {offset}"
        );
        previous = Some(*offset);
        let written = model.written.get(offset);
        assert_eq!(
            written,
            Some(&(key.clone(), value.clone())),
            "step {step}: offset {offset} holds what was written there"
        );
        last_seen.insert(key.clone(), (*offset, value.clone()));
    }
    for (key, (offset, value)) in &model.latest {
        match (value, last_seen.get(key)) {
            (Some(_), seen) => assert_eq!(
                seen,
                Some(&(*offset, value.clone())),
                "step {step}: key {key:?} reads as its latest value"
            ),
            (None, None) => {}
            (None, Some(seen)) => assert_eq!(
                seen,
                &(*offset, None),
                "step {step}: key {key:?} reads as its tombstone or not at all"
            ),
        }
    }
}

fn run(ops: Vec<Op>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = PartitionLog::open(dir.path(), config()).expect("open");
    let mut model = Model::default();
    let mut now = TS;
    for (step, op) in ops.into_iter().enumerate() {
        match op {
            Op::Write(codec, pairs) => {
                let mut bytes = batch(codec, &pairs, now);
                let info = log.append(&mut bytes).expect("append");
                for (i, (key, value)) in pairs.iter().enumerate() {
                    let offset = info.base_offset + i as u64;
                    let key = vec![b'k', b'e', b'y', *key];
                    let value = value.map(|v| v.to_be_bytes().to_vec());
                    model.written.insert(offset, (key.clone(), value.clone()));
                    model.latest.insert(key, (offset, value));
                }
                model.end = info.last_offset + 1;
            }
            Op::Roll => log.roll().expect("roll"),
            Op::Clean { elapsed_ms, keys } => {
                now += elapsed_ms;
                let mut cleaner = CleanerConfig::default();
                cleaner.dedupe_buffer_bytes = (keys as u64 * 32).max(1024);
                clean_now(&log, &cleaner, now).expect("clean");
            }
            Op::Restart { clean } => {
                if clean {
                    log.close().expect("close");
                }
                drop(log);
                log = PartitionLog::open(dir.path(), config()).expect("reopen");
                assert_eq!(log.recovery().corruption, None, "step {step}");
            }
        }
        check(&log, &model, step);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn cleaning_keeps_every_keys_latest_value(ops in prop::collection::vec(op(), 1..80)) {
        run(ops);
    }
}

/// A long fixed run: many cleans over the same keys, so tombstones come and go.
#[test]
fn a_long_history_of_updates_and_deletes() {
    let mut ops = Vec::new();
    for i in 0..250u32 {
        let key = (i % KEYS as u32) as u8;
        let value = (i % 7 != 3).then_some(i as u16);
        ops.push(Op::Write(
            Compression::ALL[i as usize % 5],
            vec![(key, value), ((key + 1) % KEYS, Some(1))],
        ));
        if i % 13 == 0 {
            ops.push(Op::Clean {
                elapsed_ms: 700,
                keys: 5 + (i as usize % 11),
            });
        }
        if i % 97 == 0 {
            ops.push(Op::Restart { clean: i % 2 == 0 });
        }
    }
    run(ops);
}
