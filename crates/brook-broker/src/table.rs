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
//! about 56 bytes (a 16-byte boxed-slice pointer and an 8-byte offset per bucket, the map's
//! control byte and spare capacity at its 7/8 load, and the allocator's rounding of the key).
//! A million 20-byte keys take about 80 MB. Tombstoned keys take nothing.
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
                match record.value {
                    Some(_) => {
                        state.keys.insert(Box::from(&key[..]), record.offset);
                    }
                    None => {
                        state.keys.remove(&key[..]);
                    }
                }
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
