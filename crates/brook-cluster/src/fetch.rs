//! Fetching from the cluster: the broker's long poll, answered by a pooled consumer.
//!
//! A fetch takes a consumer from the pool (at most `fetch_consumers_max` run at once), asks the
//! cluster for the partition's log start and high watermark (an offset outside them is
//! `OffsetOutOfRange`, as on the local log), assigns the partition at the offset and polls:
//! until it has read up to that high watermark or `max_bytes`, or, at the high watermark, until
//! the first record arrives or `max_wait` passes. The records go out encoded as batches
//! ([`crate::encode`]). All of it runs on the blocking pool; the consumer is unassigned and put
//! back afterwards.

use std::time::{Duration, Instant};

use brook_broker::{BrokerError, ConsumerRecord, Fetched, Result};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaResult;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use crate::admin::offset;
use crate::cluster::KafkaCluster;
use crate::encode;
use crate::error::{task_failed, ConfigError, Context};

/// What one fetch asks for.
struct Ask {
    topic: String,
    partition: u32,
    offset: u64,
    max_bytes: usize,
    max_wait: Duration,
    timeout: Duration,
}

impl KafkaCluster {
    /// Reads `topic`-`partition` from `offset`: what the cluster has up to `max_bytes` (at least
    /// one record when there is one), or at the high watermark the first records to arrive
    /// within `max_wait` (none after it). Errors as the local broker's fetch.
    pub async fn fetch(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        max_bytes: usize,
        max_wait: Duration,
    ) -> Result<Fetched> {
        self.inner
            .config
            .broker
            .limits
            .check_fetch(max_bytes, max_wait)?;
        brook_broker::validate_topic_name(topic)?;
        self.check_partition(topic, partition).await?;
        let _permit = self
            .inner
            .fetch_permits
            .acquire()
            .await
            .map_err(|_| BrokerError::Closed)?;
        let reader = match self.inner.readers.lock().pop() {
            Some(reader) => reader,
            None => self.inner.config.reader().create().map_err(|source| {
                Context::new("fetch").cluster(ConfigError::Client { source }.to_string(), false)
            })?,
        };
        let ask = Ask {
            topic: topic.to_owned(),
            partition,
            offset,
            max_bytes,
            max_wait,
            timeout: self.inner.config.request_timeout(),
        };
        let (reader, read) = tokio::task::spawn_blocking(move || {
            let read = read(&reader, &ask);
            // A consumer that could not be unassigned is not reused.
            let reusable = reader.unassign().is_ok();
            (reusable.then_some(reader), read)
        })
        .await
        .map_err(task_failed)?;
        if let Some(reader) = reader {
            self.inner.readers.lock().push(reader);
        }
        read
    }
}

/// The blocking part of a fetch; see the module docs.
fn read(reader: &BaseConsumer, ask: &Ask) -> Result<Fetched> {
    let context = Context::new("fetch")
        .topic(&ask.topic)
        .partition(ask.partition);
    let (low, high) = reader
        .fetch_watermarks(&ask.topic, ask.partition as i32, ask.timeout)
        .map_err(|e| context.error(&e))?;
    let (low, high) = (offset(low), offset(high));
    if ask.offset < low || ask.offset > high {
        return Err(BrokerError::OffsetOutOfRange {
            topic: ask.topic.clone(),
            partition: ask.partition,
            offset: ask.offset,
            log_start_offset: low,
            high_watermark: high,
        });
    }
    let mut records: Vec<ConsumerRecord> = Vec::new();
    if ask.offset < high || !ask.max_wait.is_zero() {
        assign(reader, ask).map_err(|e| context.error(&e))?;
        // Records are there: wait as long as the cluster may take to send them.
        let wait = if ask.offset < high {
            ask.timeout
        } else {
            ask.max_wait
        };
        let deadline = Instant::now() + wait;
        let mut bytes = 0;
        loop {
            let left = if records.is_empty() {
                deadline.saturating_duration_since(Instant::now())
            } else {
                Duration::ZERO
            };
            match reader.poll(left) {
                Some(Ok(message)) => {
                    let record = encode::record(&message);
                    if record.partition != ask.partition
                        || *record.topic != *ask.topic
                        || record.offset < ask.offset
                    {
                        continue;
                    }
                    bytes += encode::size(&record);
                    let next = record.offset + 1;
                    records.push(record);
                    if bytes >= ask.max_bytes || (ask.offset < high && next >= high) {
                        break;
                    }
                }
                Some(Err(e)) => return Err(context.error(&e)),
                None if records.is_empty() && Instant::now() < deadline => {}
                None => break,
            }
        }
    }
    let batches = encode::batches(&records)?;
    let high_watermark = records.last().map_or(high, |r| high.max(r.offset + 1));
    Ok(Fetched {
        topic: ask.topic.clone(),
        partition: ask.partition,
        offset: ask.offset,
        batches,
        high_watermark,
        // The cluster's consumer reads what its isolation lets it: nothing is left to drop.
        last_stable_offset: high_watermark,
        log_start_offset: low,
        aborted: Vec::new(),
    })
}

/// Points `reader` at the asked partition and offset.
fn assign(reader: &BaseConsumer, ask: &Ask) -> KafkaResult<()> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(
        &ask.topic,
        ask.partition as i32,
        Offset::Offset(i64::try_from(ask.offset).unwrap_or(i64::MAX)),
    )?;
    reader.assign(&tpl)
}
