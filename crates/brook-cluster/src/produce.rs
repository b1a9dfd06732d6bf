//! Producing to the cluster: records routed by the broker's own rule, then handed to the one
//! idempotent librdkafka producer.
//!
//! Each record's partition is chosen here, by the rule the local broker uses
//! ([`brook_broker::partitioner::route`]: the explicit partition, else murmur2 of the key, else
//! one partition for the call's keyless records, rotating between calls), so a key lands on the
//! same partition number on the cluster as on brook. Records are enqueued in call order
//! (librdkafka keeps that order per partition, idempotence keeps it across retries, and its
//! linger batches a call's records together) and the call answers once every one is
//! acknowledged by all in-sync replicas. What the producer can refuse before sending (a record
//! over `message.max.bytes`) is checked for every record first, so such a call appends nothing.

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use brook_broker::{BatchAppended, BrokerError, ProduceRecord, Produced, RecordPosition, Result};
use brook_log::batch::{records, validate};
use bytes::Bytes;
use parking_lot::Mutex;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::future_producer::OwnedDeliveryResult;
use rdkafka::producer::FutureRecord;
use tokio::sync::oneshot;

use crate::cluster::KafkaCluster;
use crate::error::Context;

/// librdkafka's default `message.max.bytes`: the largest record the producer sends.
const MESSAGE_BYTES_MAX_DEFAULT: usize = 1_000_000;
/// How long a produce waits before trying again when the producer's queue is full.
const QUEUE_FULL_BACKOFF: Duration = Duration::from_millis(10);
/// Bytes a record adds beyond its key, value and headers in librdkafka's size check, at most.
const RECORD_OVERHEAD_BYTES: usize = 64;

/// The current time in ms since the epoch: the timestamp of a record produced without one.
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// One record to send, borrowed.
struct Outgoing<'a> {
    partition: u32,
    key: Option<&'a [u8]>,
    value: Option<&'a [u8]>,
    headers: &'a [(String, Bytes)],
    timestamp: i64,
}

/// A produce call's place in the order of calls: it hands its records to the producer after
/// the call before it has, whenever their futures run.
pub(crate) struct Turn {
    after: oneshot::Receiver<()>,
    done: oneshot::Sender<()>,
}

impl Turn {
    /// Waits for the call before to have handed its records over (or to have given up).
    async fn wait(self) -> oneshot::Sender<()> {
        // A call that failed before handing anything over drops its sender: go on.
        let _ = self.after.await;
        self.done
    }
}

/// The end of the chain of produce calls: the next call's turn comes after it.
#[derive(Debug)]
pub(crate) struct Order(Mutex<oneshot::Receiver<()>>);

impl Default for Order {
    fn default() -> Self {
        let (done, after) = oneshot::channel();
        // The first call waits for nobody.
        let _ = done.send(());
        Order(Mutex::new(after))
    }
}

impl KafkaCluster {
    /// Takes the next place in the order of produce calls: call this when the call is made.
    fn turn(&self) -> Turn {
        let (done, next) = oneshot::channel();
        let after = std::mem::replace(&mut *self.inner.order.0.lock(), next);
        Turn { after, done }
    }

    /// Appends `records` to `topic` (created first when missing and `auto_create_topics` is
    /// on); each record's position, in call order. Not an `async fn`: the call takes its place
    /// in the order of calls and starts on a task of its own when it is made, so calls made one
    /// after another keep their order per partition whenever (and whether) their futures are
    /// awaited, as on the local log. See the module docs.
    pub fn produce(
        &self,
        topic: &str,
        records: Vec<ProduceRecord>,
    ) -> impl Future<Output = Result<Produced>> + Send + 'static {
        let (cluster, topic, turn) = (self.clone(), topic.to_owned(), self.turn());
        started(async move { cluster.produce_in_turn(&topic, records, turn).await })
    }

    async fn produce_in_turn(
        &self,
        topic: &str,
        records: Vec<ProduceRecord>,
        turn: Turn,
    ) -> Result<Produced> {
        self.inner
            .config
            .broker
            .limits
            .check_produce(topic, &records)?;
        let partitions = self.partition_count_or_create(topic).await?;
        let cursor = self.cursor(topic);
        let routed = brook_broker::partitioner::route(&records, partitions, || {
            cursor.next_partition(partitions)
        })
        .map_err(|partition| BrokerError::UnknownPartition {
            topic: topic.to_owned(),
            partition,
            partitions,
        })?;
        let mut partition_of = vec![0; records.len()];
        for (partition, indexes) in &routed {
            for &i in indexes {
                partition_of[i] = *partition;
            }
        }
        let now = now_ms();
        let outgoing: Vec<Outgoing<'_>> = records
            .iter()
            .zip(&partition_of)
            .map(|(record, &partition)| Outgoing {
                partition,
                key: record.key.as_deref(),
                value: record.value.as_deref(),
                headers: &record.headers,
                timestamp: record.timestamp.unwrap_or(now),
            })
            .collect();
        let records = self.send_all(topic, &outgoing, turn).await?;
        let batches = routed
            .iter()
            .map(|(&partition, indexes)| {
                let positions: Vec<&RecordPosition> =
                    indexes.iter().map(|&i| &records[i]).collect();
                (partition, appended(&positions))
            })
            .collect();
        Ok(Produced { records, batches })
    }

    /// Appends the records of one RecordBatch v2 that a door received whole (a gRPC raw batch)
    /// to `topic`-`partition`: validated first (CRC, framing), then sent record by record with
    /// their keys, values, headers and timestamps. The cluster assigns the offsets, so the
    /// batch's producer fields do not travel; a transactional batch is refused. Ordered at
    /// call time, as [`KafkaCluster::produce`].
    pub fn produce_batch(
        &self,
        topic: &str,
        partition: u32,
        batch: Bytes,
    ) -> impl Future<Output = Result<BatchAppended>> + Send + 'static {
        let (cluster, topic, turn) = (self.clone(), topic.to_owned(), self.turn());
        started(async move {
            cluster
                .produce_batch_in_turn(&topic, partition, batch, turn)
                .await
        })
    }

    async fn produce_batch_in_turn(
        &self,
        topic: &str,
        partition: u32,
        batch: Bytes,
        turn: Turn,
    ) -> Result<BatchAppended> {
        brook_broker::validate_topic_name(topic)?;
        let limit = self.inner.config.broker.limits.fetch_bytes_max;
        let invalid = |source| BrokerError::InvalidBatch {
            topic: topic.to_owned(),
            partition,
            source,
        };
        let header = validate(&batch, limit).map_err(invalid)?;
        if header.is_transactional() || header.is_control() {
            return Err(BrokerError::InvalidRequest {
                reason: "a transactional or control batch cannot be forwarded to a Kafka \
                         cluster: produce it with a transactional producer on the cluster"
                    .into(),
            });
        }
        self.partition_count_or_create(topic).await?;
        self.check_partition(topic, partition).await?;
        let decoded = records(batch)
            .map_err(invalid)?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(invalid)?;
        let outgoing: Vec<Outgoing<'_>> = decoded
            .iter()
            .map(|r| Outgoing {
                partition,
                key: r.key.as_deref(),
                value: r.value.as_deref(),
                headers: &r.headers,
                timestamp: r.timestamp,
            })
            .collect();
        let positions = self.send_all(topic, &outgoing, turn).await?;
        let positions: Vec<&RecordPosition> = positions.iter().collect();
        Ok(appended(&positions))
    }

    /// Sends `outgoing` in order, in `turn`, and waits for every acknowledgement.
    async fn send_all(
        &self,
        topic: &str,
        outgoing: &[Outgoing<'_>],
        turn: Turn,
    ) -> Result<Vec<RecordPosition>> {
        let max = self.message_bytes_max();
        for record in outgoing {
            let size = record_bytes(record);
            if size > max {
                return Err(BrokerError::TooLarge {
                    what: "record",
                    size,
                    max,
                    limit: "the Kafka producer's message.max.bytes",
                });
            }
        }
        let handed_over = turn.wait().await;
        let mut pending = Vec::with_capacity(outgoing.len());
        for record in outgoing {
            pending.push(self.enqueue(topic, record).await?);
        }
        // The next call may hand its records over now.
        let _ = handed_over.send(());
        let mut positions = Vec::with_capacity(outgoing.len());
        for (delivery, record) in pending.into_iter().zip(outgoing) {
            let context = Context::new("produce")
                .topic(topic)
                .partition(record.partition);
            let delivered: OwnedDeliveryResult = delivery
                .await
                .map_err(|_| context.cluster("the producer dropped the record".into(), true))?;
            let delivery = delivered.map_err(|(e, _)| {
                if e.rdkafka_error_code().is_some_and(crate::admin::is_unknown) {
                    self.forget_topic(topic);
                }
                context.error(&e)
            })?;
            positions.push(RecordPosition {
                partition: u32::try_from(delivery.partition).unwrap_or(record.partition),
                offset: u64::try_from(delivery.offset).unwrap_or_default(),
                timestamp: delivery.timestamp.to_millis().unwrap_or(record.timestamp),
            });
        }
        Ok(positions)
    }

    /// Hands one record to the producer, waiting while its queue is full.
    async fn enqueue(
        &self,
        topic: &str,
        record: &Outgoing<'_>,
    ) -> Result<rdkafka::producer::DeliveryFuture> {
        let context = Context::new("produce")
            .topic(topic)
            .partition(record.partition);
        loop {
            let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
            for (key, value) in record.headers {
                headers = headers.insert(Header {
                    key,
                    value: Some(value.as_ref()),
                });
            }
            let mut outgoing: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic)
                .partition(record.partition as i32)
                .timestamp(record.timestamp)
                .headers(headers);
            if let Some(key) = record.key {
                outgoing = outgoing.key(key);
            }
            if let Some(value) = record.value {
                outgoing = outgoing.payload(value);
            }
            match self.inner.producer.send_result(outgoing) {
                Ok(delivery) => return Ok(delivery),
                Err((e, _)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) => {
                    tokio::time::sleep(QUEUE_FULL_BACKOFF).await;
                }
                Err((e, _)) => return Err(context.error(&e)),
            }
        }
    }

    /// The largest record the producer sends: its `message.max.bytes`.
    fn message_bytes_max(&self) -> usize {
        self.inner
            .config
            .properties
            .iter()
            .find(|(key, _)| key == "message.max.bytes")
            .and_then(|(_, value)| value.parse().ok())
            .unwrap_or(MESSAGE_BYTES_MAX_DEFAULT)
    }
}

/// Runs `work` on a task of its own from now on; the returned future is its outcome.
fn started<T: Send + 'static>(
    work: impl Future<Output = Result<T>> + Send + 'static,
) -> impl Future<Output = Result<T>> + Send + 'static {
    let task = tokio::spawn(work);
    async move { task.await.map_err(crate::error::task_failed)? }
}

/// The bytes librdkafka counts for `record` against `message.max.bytes`, at most.
fn record_bytes(record: &Outgoing<'_>) -> usize {
    RECORD_OVERHEAD_BYTES
        + record.key.map_or(0, <[u8]>::len)
        + record.value.map_or(0, <[u8]>::len)
        + record
            .headers
            .iter()
            .map(|(k, v)| k.len() + v.len() + 8)
            .sum::<usize>()
}

/// What appending the records at `positions` (one partition's, in order) came to.
fn appended(positions: &[&RecordPosition]) -> BatchAppended {
    BatchAppended {
        base_offset: positions.iter().map(|p| p.offset).min().unwrap_or_default(),
        last_offset: positions.iter().map(|p| p.offset).max().unwrap_or_default(),
        record_count: u32::try_from(positions.len()).unwrap_or(u32::MAX),
        max_timestamp: positions.iter().map(|p| p.timestamp).max().unwrap_or(-1),
        // The produce acknowledgement does not say; a describe does.
        log_start_offset: 0,
    }
}
