//! The table view of a compacted topic: the latest value of each key, looked up by key
//! ([`Broker::get`], gRPC `GetKey`, HTTP `GET /v1/topics/{topic}/keys/{key}`).
//!
//! Each partition of a compacted topic keeps an index from key to the offset of its latest
//! committed record. It follows the partition's log as a read_committed consumer does: a task
//! per partition wakes on every move of the last stable offset and reads, on the blocking pool,
//! what was committed since it last looked (control batches and aborted transactions skipped,
//! a tombstone removing its key). At open it reads the partition once from its log start (a
//! compacted log holds about one record per key). A lookup first catches the index up to the
//! current last stable offset, so a record acknowledged before the lookup is seen; then it
//! reads the one batch holding the key's offset and returns that record. So the index holds
//! offsets, not values: values stay in the log (and in the page cache).
//!
//! **Memory**: one hash map entry per live key: the key's bytes in their own allocation plus
//! 50 to 75 bytes (a 16-byte boxed-slice pointer and an 8-byte offset per bucket, the map's
//! control byte and spare capacity, which is largest just after its table doubled, and the
//! allocator's rounding of the key). Measured (`tests::the_key_index_takes_what_the_docs_say_per_key`,
//! resident set of a child process): 94.5 bytes per 20-byte key at a million keys (the table
//! just doubled), 70.2 at 1.8 million (nearly full); so a million 20-byte keys take 70 to 95 MB.
//! Tombstoned keys take nothing.
//!
//! The key's partition is the one the topic's partitioner gives it (Kafka's murmur2 of the key,
//! [`crate::partitioner`]); a record produced with a key to another partition explicitly is
//! not found by key.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use brook_log::PartitionLog;
use parking_lot::Mutex;

use crate::broker::{blocking, Broker, PartitionHandle, TopicHandle};
use crate::error::{BrokerError, Result};
use crate::fetch::{checked_read, decode_records, next_offset};
use crate::partitioner::partition_for_key;
use crate::types::ConsumerRecord;

/// Bytes a catch-up reads from the log at a time.
const CATCH_UP_READ_BYTES: usize = 1 << 20;
/// Bytes a lookup reads to find its record (at least the batch holding it, however large).
const LOOKUP_READ_BYTES: usize = 64 << 10;

/// The key index of one partition of a compacted topic.
#[derive(Debug)]
pub(crate) struct KeyIndex {
    state: Mutex<IndexState>,
    /// Serializes catch-ups, so records are applied in offset order.
    catching_up: Mutex<()>,
}

#[derive(Debug, Default)]
struct IndexState {
    keys: HashMap<Box<[u8]>, u64>,
    /// Every committed record before this offset has been applied.
    applied: u64,
}

impl IndexState {
    /// A committed record of `key` at `offset`: its latest, or, a tombstone, its end.
    fn apply(&mut self, key: &[u8], tombstone: bool, offset: u64) {
        if tombstone {
            self.keys.remove(key);
        } else {
            self.keys.insert(Box::from(key), offset);
        }
    }
}

impl KeyIndex {
    pub(crate) fn new() -> Self {
        Self {
            state: Mutex::new(IndexState::default()),
            catching_up: Mutex::new(()),
        }
    }

    /// Keys in the index.
    pub(crate) fn len(&self) -> usize {
        self.state.lock().keys.len()
    }

    /// The offset of `key`'s latest committed record.
    fn offset_of(&self, key: &[u8]) -> Option<u64> {
        self.state.lock().keys.get(key).copied()
    }

    /// Applies what `topic`-`partition`'s log committed since the last catch-up (blocking).
    pub(crate) fn catch_up(
        &self,
        log: &PartitionLog,
        handle: &PartitionHandle,
        topic: &Arc<str>,
        partition: u32,
    ) -> Result<()> {
        let _one = self.catching_up.lock();
        let mut from = self.state.lock().applied.max(log.log_start_offset());
        loop {
            let upper = log.last_stable_offset();
            if from >= upper {
                break;
            }
            let bytes = checked_read(
                log,
                &handle.corrupt_reads,
                topic,
                partition,
                from,
                CATCH_UP_READ_BYTES,
                upper,
            )?;
            let Some(next) = next_offset(&bytes) else {
                break;
            };
            let aborted = log.aborted_transactions(from, next);
            let records = decode_records(topic, partition, &bytes, from, &aborted)?;
            let mut state = self.state.lock();
            for record in records {
                let Some(key) = record.key else { continue };
                state.apply(&key, record.value.is_none(), record.offset);
            }
            state.applied = next;
            from = next;
        }
        Ok(())
    }
}

/// Starts following `partition` of `topic` for its key index: a task that catches the index up
/// each time the partition's last stable offset moves, until the topic goes or the broker
/// closes. The first catch-up reads the partition from its start.
pub(crate) fn follow(broker: &Broker, topic: &Arc<TopicHandle>, partition: u32) {
    let Some(index) = topic
        .partitions
        .get(partition as usize)
        .and_then(|p| p.keys.clone())
    else {
        return;
    };
    let weak: Weak<TopicHandle> = Arc::downgrade(topic);
    let mut stable = topic.partitions[partition as usize].lso.subscribe();
    let mut shutdown = broker.shutdown_signal();
    tokio::spawn(async move {
        loop {
            let Some(topic) = weak.upgrade().filter(|t| !t.is_deleted()) else {
                return;
            };
            let index = Arc::clone(&index);
            let caught_up = blocking(move || {
                let handle = &topic.partitions[partition as usize];
                index.catch_up(&handle.log, handle, &topic.name, partition)
            })
            .await;
            if let Err(e) = caught_up {
                tracing::warn!(partition, error = %e, "the key index could not follow the log; it retries at the next write");
            }
            tokio::select! {
                changed = stable.changed() => if changed.is_err() { return },
                _ = shutdown.wait_for(|closed| *closed) => return,
            }
        }
    });
}

impl Broker {
    /// The latest value of `key` in the compacted topic `topic`: its record (partition, offset,
    /// timestamp, key, value, headers), or `None` when the key was never written, or its latest
    /// record is a tombstone. Served from the partition's key index (see the module docs), as
    /// of every record committed before the call.
    ///
    /// Errors: `UnknownTopic`; `InvalidRequest` when the topic is not compacted (it has no
    /// key index: create it with `cleanup.policy=compact`).
    pub async fn get(&self, topic: &str, key: &[u8]) -> Result<Option<ConsumerRecord>> {
        let handle = self.topic(topic)?;
        let partition = partition_for_key(key, handle.partition_count());
        let target = handle.partition(partition)?;
        if target.keys.is_none() {
            return Err(BrokerError::invalid(format!(
                "topic {topic:?} is not compacted, so it has no key index: create it with \
                 cleanup.policy=compact (or compact,delete) to look records up by key"
            )));
        }
        let key: Arc<[u8]> = Arc::from(key);
        blocking(move || {
            let target = &handle.partitions[partition as usize];
            let Some(index) = &target.keys else {
                return Ok(None);
            };
            // Twice at most: a clean may remove the record found when a newer one for the key
            // came in meanwhile; the catch-up after that finds the newer one.
            for _ in 0..2 {
                index.catch_up(&target.log, target, &handle.name, partition)?;
                let Some(offset) = index.offset_of(&key) else {
                    return Ok(None);
                };
                let upper = target.log.last_stable_offset();
                let read = checked_read(
                    &target.log,
                    &target.corrupt_reads,
                    &handle.name,
                    partition,
                    offset,
                    LOOKUP_READ_BYTES,
                    upper,
                );
                let bytes = match read {
                    Ok(bytes) => bytes,
                    // Retention or DeleteRecords took it.
                    Err(BrokerError::OffsetOutOfRange { .. }) => return Ok(None),
                    Err(e) => return Err(e),
                };
                let records = decode_records(&handle.name, partition, &bytes, offset, &[])?;
                if let Some(record) = records.into_iter().find(|r| r.offset == offset) {
                    return Ok(Some(record));
                }
            }
            Ok(None)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys the child of [`the_key_index_takes_what_the_docs_say_per_key`] measures at.
    const MEMORY_CHILD_ENV: &str = "BROOK_KEY_INDEX_MEMORY_CHILD";
    /// Key counts measured: just past a growth of the map's table (its emptiest) and just
    /// before the next (its fullest).
    const MEASURED_KEYS: [u64; 2] = [1_000_000, 1_800_000];

    /// Measures the key index's memory per live key (docs/storage.md, "The key index", quotes
    /// the figures): a child process (this test binary running [`key_index_memory_child`])
    /// reads its resident set before and after putting 20-byte keys in an index the way a
    /// catch-up does, at a million keys and at 1.8 million. Each figure must lie within what
    /// the docs say: the key's 20 bytes plus 40 to 90.
    #[test]
    fn the_key_index_takes_what_the_docs_say_per_key() {
        let output = std::process::Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "table::tests::key_index_memory_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(MEMORY_CHILD_ENV, "1")
            .output()
            .expect("start the child");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{stdout}");
        let figures: Vec<(u64, f64)> = stdout
            .lines()
            .filter_map(|l| Some(&l[l.find("key index: ")? + "key index: ".len()..]))
            .filter_map(|l| {
                let (keys, per_key) = l.split_once(" keys, bytes per key ")?;
                Some((keys.parse().ok()?, per_key.parse().ok()?))
            })
            .collect();
        assert_eq!(figures.len(), MEASURED_KEYS.len(), "{stdout}");
        for (keys, per_key) in figures {
            println!("key index: {keys} 20-byte keys, {per_key:.1} bytes per key");
            assert!(
                (20.0 + 40.0..=20.0 + 90.0).contains(&per_key),
                "{keys} keys: {per_key} bytes per key"
            );
        }
    }

    #[test]
    #[ignore = "the child process of the_key_index_takes_what_the_docs_say_per_key"]
    fn key_index_memory_child() {
        if std::env::var_os(MEMORY_CHILD_ENV).is_none() {
            return;
        }
        let resident = || {
            let status = std::fs::read_to_string("/proc/self/status").expect("status");
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches(" kB").parse::<u64>().ok())
                .expect("VmRSS")
                * 1024
        };
        let before = resident();
        let mut state = IndexState::default();
        let mut next = 0u64;
        for keys in MEASURED_KEYS {
            while next < keys {
                let key = format!("key-{next:016}");
                state.apply(key.as_bytes(), false, next);
                next += 1;
            }
            let grown = resident().saturating_sub(before);
            println!(
                "key index: {keys} keys, bytes per key {:.1}",
                grown as f64 / keys as f64
            );
        }
        assert_eq!(state.keys.len() as u64, next);
    }
}
