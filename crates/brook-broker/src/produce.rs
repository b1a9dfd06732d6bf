//! Producing: records turned into batches and appended, or a client's own batch appended as is.
//!
//! A request is checked whole (partitions, sizes, counts) and encoded before anything is queued,
//! so a bad request changes nothing. Its batches then go to the partitions' append queues
//! ([`crate::append`]) at call time, which keep call order per partition, write on tokio's
//! blocking pool and share fsyncs among every producer waiting under `sync` durability.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use brook_log::batch::{BatchBuilder, Compression, RecordRef};
use bytes::{Bytes, BytesMut};
use tokio::sync::oneshot;

use crate::append::{outcome, Appender, ProduceGuard};
use crate::broker::{Broker, TopicHandle};
use crate::error::{BrokerError, Result};
use crate::txn::ProducerIdAndEpoch;
use crate::types::{BatchAppended, ProduceRecord, RecordPosition};

/// Bytes a record adds to a batch beyond its key, value and header bytes, at most: length,
/// attributes, timestamp delta, offset delta, key/value lengths and header count varints.
const RECORD_OVERHEAD_BYTES_MAX: usize = 5 + 1 + 10 + 5 + 5 + 5 + 5;
/// Bytes a header adds beyond its key and value: two length varints.
const HEADER_OVERHEAD_BYTES_MAX: usize = 10;

/// What a records produce did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Produced {
    /// One entry per record, in request order.
    pub records: Vec<RecordPosition>,
    /// One entry per batch appended, with the partition it went to.
    pub batches: Vec<(u32, BatchAppended)>,
}

/// The current time in ms since the epoch.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// An upper bound of the bytes `record` adds to a batch.
fn record_bytes(record: &ProduceRecord) -> usize {
    let len = |b: &Option<bytes::Bytes>| b.as_ref().map_or(0, |b| b.len());
    RECORD_OVERHEAD_BYTES_MAX
        + len(&record.key)
        + len(&record.value)
        + record
            .headers
            .iter()
            .map(|(k, v)| HEADER_OVERHEAD_BYTES_MAX + k.len() + v.len())
            .sum::<usize>()
}

/// The bytes `record` adds to a batch (an upper bound); `TooLarge` when a batch of it alone
/// would exceed `message_bytes_max`.
fn fitting_record_bytes(record: &ProduceRecord, message_bytes_max: usize) -> Result<usize> {
    let size = record_bytes(record);
    if size > message_bytes_max.saturating_sub(brook_log::batch::HEADER_LEN) {
        return Err(BrokerError::TooLarge {
            what: "record",
            size: size + brook_log::batch::HEADER_LEN,
            max: message_bytes_max,
            limit: "message_bytes_max",
        });
    }
    Ok(size)
}

/// The records bound for one partition, as indexes into the request, cut into batches that
/// each fit `message_bytes_max`.
fn plan_batches(
    records: &[ProduceRecord],
    indexes: &[usize],
    message_bytes_max: usize,
) -> Result<Vec<Vec<usize>>> {
    let room = message_bytes_max.saturating_sub(brook_log::batch::HEADER_LEN);
    let mut batches: Vec<Vec<usize>> = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let mut current_bytes = 0;
    for &i in indexes {
        let size = fitting_record_bytes(&records[i], message_bytes_max)?;
        if current_bytes + size > room {
            batches.push(std::mem::take(&mut current));
            current_bytes = 0;
        }
        current.push(i);
        current_bytes += size;
    }
    if !current.is_empty() {
        batches.push(current);
    }
    Ok(batches)
}

/// Encodes `records[indexes]` as one uncompressed batch, started by `builder` (which may carry
/// a producer id).
fn build_batch(
    mut builder: BatchBuilder,
    records: &[ProduceRecord],
    indexes: &[usize],
    timestamps: &[i64],
) -> Result<BytesMut> {
    let mut headers: Vec<(&str, &[u8])> = Vec::new();
    for &i in indexes {
        let record = &records[i];
        headers.clear();
        headers.extend(record.headers.iter().map(|(k, v)| (k.as_str(), v.as_ref())));
        builder.push(RecordRef {
            key: record.key.as_deref(),
            value: record.value.as_deref(),
            headers: &headers,
            timestamp: timestamps[i],
        });
    }
    builder
        .build()
        .map_err(|e| BrokerError::invalid(e.to_string()))
}

/// Per batch to write, its partition and the request indexes of its records.
pub(crate) type Planned = Vec<(u32, Vec<usize>)>;

/// Routes `records` to partitions and cuts each partition's share into batches that fit
/// `message_bytes_max`.
pub(crate) fn plan_records(handle: &TopicHandle, records: &[ProduceRecord]) -> Result<Planned> {
    let message_bytes_max = handle.topic.config().message_bytes_max;
    let mut planned = Vec::new();
    for (partition, indexes) in route(handle, records)? {
        for batch in plan_batches(records, &indexes, message_bytes_max)? {
            planned.push((partition, batch));
        }
    }
    Ok(planned)
}

/// Encodes planned batches. With a transactional producer each batch is marked transactional
/// and given the next sequence of its partition in `sequences` (which starts at 0).
pub(crate) fn encode_planned(
    records: &[ProduceRecord],
    planned: Planned,
    timestamps: &[i64],
    mut producer: Option<(ProducerIdAndEpoch, &mut BTreeMap<u32, i32>)>,
) -> Result<Vec<(u32, Vec<usize>, BytesMut)>> {
    planned
        .into_iter()
        .map(|(partition, indexes)| {
            let mut builder = BatchBuilder::new(Compression::None);
            if let Some((p, sequences)) = &mut producer {
                let seq = sequences.entry(partition).or_default();
                builder = builder
                    .with_producer(p.producer_id, p.epoch, *seq)
                    .transactional();
                *seq = seq.saturating_add(indexes.len() as i32);
            }
            let batch = build_batch(builder, records, &indexes, timestamps)?;
            Ok((partition, indexes, batch))
        })
        .collect()
}

/// Queues `batch` for its outcome on a channel: the record's partition and timestamp, and
/// the receiver ([`Broker::queue_record`]'s `submit` for an awaited produce).
fn submit(
    appender: &Arc<Appender>,
    batch: BytesMut,
    open: ProduceGuard,
    (partition, timestamp): (u32, i64),
) -> Result<(u32, i64, oneshot::Receiver<Result<BatchAppended>>)> {
    Ok((partition, timestamp, appender.submit(batch, open)?))
}

/// The timestamp of each record: its own, else `now`.
pub(crate) fn timestamps(records: &[ProduceRecord], now: i64) -> Vec<i64> {
    records.iter().map(|r| r.timestamp.unwrap_or(now)).collect()
}

/// A records produce whose batches are queued: what is left is waiting for the outcomes.
pub(crate) struct QueuedRecords {
    /// Per queued batch: its partition, the request indexes of its records, its outcome.
    pub(crate) batches: Vec<(u32, Vec<usize>, oneshot::Receiver<Result<BatchAppended>>)>,
    pub(crate) timestamps: Vec<i64>,
}

impl QueuedRecords {
    pub(crate) async fn finish(self) -> Result<Produced> {
        let mut positions = vec![None; self.timestamps.len()];
        let mut batches = Vec::with_capacity(self.batches.len());
        for (partition, indexes, receiver) in self.batches {
            let info = outcome(receiver).await?;
            for (delta, &i) in indexes.iter().enumerate() {
                positions[i] = Some(RecordPosition {
                    partition,
                    offset: info.base_offset + delta as u64,
                    timestamp: self.timestamps[i],
                });
            }
            batches.push((partition, info));
        }
        let records = positions
            .into_iter()
            .map(|p| p.ok_or_else(|| BrokerError::invalid("a record was not appended")))
            .collect::<Result<_>>()?;
        Ok(Produced { records, batches })
    }
}

impl Broker {
    /// Appends `records` to `topic`, and answers once they are durable per the topic's
    /// durability, with each record's partition and offset in request order.
    ///
    /// A record goes to its `partition` if given, else to `murmur2(key) % partitions` (where a
    /// Kafka client would put it), else (no key) to one partition for all keyless records of
    /// this call, rotating between calls. Records bound for one partition are appended in
    /// request order, as one batch when they fit `message_bytes_max` (else as several, in
    /// order). The topic is created when missing and `auto_create_topics` is on.
    ///
    /// Ordering: the records are queued when `produce` is *called* (for an existing topic), so
    /// calls made one after another are appended in call order per partition even when their
    /// futures are awaited later or together (pipelining).
    ///
    /// Errors, with nothing appended: `UnknownTopic`, `UnknownPartition`, `InvalidTopicName`,
    /// `InvalidRequest` (no records, too many), `TooLarge` (one record exceeds
    /// `message_bytes_max`), `Closed`. `Poisoned` when a partition's log refuses writes (other
    /// partitions of the same call may then have been appended).
    pub fn produce(
        &self,
        topic: &str,
        records: Vec<ProduceRecord>,
    ) -> impl Future<Output = Result<Produced>> + Send + 'static {
        self.produce_records(topic, records, false)
    }

    /// [`Broker::produce`] for a caller that awaits the outcome before it produces anything
    /// more (a unary gRPC call, an HTTP request): when the records make one batch, it is
    /// queued as [`Broker::produce_batch_awaited`] queues its batch, so under durability
    /// `sync` a lone record's write and fsync may run on the caller's thread. A caller with
    /// more in flight should use [`Broker::produce`], whose queued batches share fsyncs.
    pub fn produce_awaited(
        &self,
        topic: &str,
        records: Vec<ProduceRecord>,
    ) -> impl Future<Output = Result<Produced>> + Send + 'static {
        self.produce_records(topic, records, true)
    }

    /// [`Broker::produce`] (`awaited` false) or [`Broker::produce_awaited`].
    fn produce_records(
        &self,
        topic: &str,
        records: Vec<ProduceRecord>,
        awaited: bool,
    ) -> impl Future<Output = Result<Produced>> + Send + 'static {
        let now = now_ms();
        let checked = self.check_records(topic, &records);
        let queued =
            self.queue_on_topic(topic, checked, records, move |broker, handle, records| {
                broker.queue_records(handle, records, now, awaited)
            });
        async move { queued.await?.finish().await }
    }

    /// Appends one record to `topic`, as [`Broker::produce`] with a request of that record
    /// alone (the same checks, routing, batch, ordering at call time and errors), and answers
    /// with its position. The request-reply path calls it for each request and reply: it
    /// skips the per-request bookkeeping a many-record produce needs.
    pub fn produce_record(
        &self,
        topic: &str,
        record: ProduceRecord,
    ) -> impl Future<Output = Result<RecordPosition>> + Send + 'static {
        let now = now_ms();
        let checked = self.check_records(topic, std::slice::from_ref(&record));
        let queued = self.queue_on_topic(topic, checked, record, move |broker, handle, record| {
            broker.queue_record(handle, &record, now, submit)
        });
        async move {
            let (partition, timestamp, receiver) = queued.await?;
            let info = outcome(receiver).await?;
            Ok(RecordPosition {
                partition,
                offset: info.base_offset,
                timestamp,
            })
        }
    }

    /// Queues one record as [`Broker::produce_record`] does, and hands its outcome to `then`
    /// on the append's own thread (see [`crate::append::Then`]: short, never blocking) instead
    /// of to a waiting task: a caller that has something else to wait for is not woken just
    /// to learn that its record was appended. The future ends once the record is queued
    /// (at once when the topic exists); `then` is called exactly when it ends with `Ok`.
    pub(crate) fn produce_record_then(
        &self,
        topic: &str,
        record: ProduceRecord,
        then: impl FnOnce(Result<RecordPosition>) + Send + 'static,
    ) -> impl Future<Output = Result<()>> + Send + 'static {
        let now = now_ms();
        let checked = self.check_records(topic, std::slice::from_ref(&record));
        self.queue_on_topic(
            topic,
            checked,
            (record, then),
            move |broker, handle, (record, then)| {
                broker.queue_record_then(handle, &record, now, then)
            },
        )
    }

    fn queue_record_then(
        &self,
        handle: &TopicHandle,
        record: &ProduceRecord,
        now: i64,
        then: impl FnOnce(Result<RecordPosition>) + Send + 'static,
    ) -> Result<()> {
        self.queue_record(
            handle,
            record,
            now,
            |appender, batch, open, (partition, timestamp)| {
                let then = move |appended: Result<BatchAppended>| {
                    then(appended.map(|info| RecordPosition {
                        partition,
                        offset: info.base_offset,
                        timestamp,
                    }))
                };
                appender.submit_then(batch, open, Box::new(then))
            },
        )
    }

    /// Appends one Kafka RecordBatch v2 that a door received whole (Kafka Produce, gRPC raw
    /// batch) to `topic`-`partition`, stored byte for byte except the base offset, which the
    /// log assigns (and the header fields Kafka restamps: see `brook_log::batch::restamp`).
    /// The batch is validated first (CRC, lengths, record framing): a bad one gets
    /// `InvalidBatch` or `TooLarge` and nothing is stored. Queued at call time, like
    /// [`Broker::produce`], so successive calls keep their order.
    ///
    /// `batch` may share its buffer (a slice of a request's bytes): the log writes its own
    /// copy of the 61-byte header before the untouched records, so the bytes are neither
    /// copied nor changed.
    pub fn produce_batch(
        &self,
        topic: &str,
        partition: u32,
        batch: impl Into<Bytes>,
    ) -> impl Future<Output = Result<BatchAppended>> + Send + 'static {
        self.produce_whole_batch(topic, partition, batch.into(), false)
    }

    /// [`Broker::produce_batch`] for a caller that awaits the outcome before it produces
    /// anything more (a door answering one request at a time). Under durability `sync`, on an
    /// idle partition and tokio's multi-threaded runtime, the write and its fsync then run on
    /// the caller's thread (in `tokio::task::block_in_place`), two thread wake-ups fewer on a
    /// lone record's path. A caller with more batches in flight should use
    /// [`Broker::produce_batch`], whose queued batches share fsyncs.
    pub fn produce_batch_awaited(
        &self,
        topic: &str,
        partition: u32,
        batch: impl Into<Bytes>,
    ) -> impl Future<Output = Result<BatchAppended>> + Send + 'static {
        self.produce_whole_batch(topic, partition, batch.into(), true)
    }

    /// [`Broker::produce_batch`] (`awaited` false) or [`Broker::produce_batch_awaited`].
    fn produce_whole_batch(
        &self,
        topic: &str,
        partition: u32,
        batch: Bytes,
        awaited: bool,
    ) -> impl Future<Output = Result<BatchAppended>> + Send + 'static {
        let checked = crate::names::validate_topic_name(topic)
            .and_then(|()| crate::txn::refuse_untracked(&batch));
        let queued = self.queue_on_topic(topic, checked, batch, move |broker, handle, batch| {
            broker.queue_batch(handle, partition, batch, awaited)
        });
        async move { outcome(queued.await?).await }
    }

    /// The one rule of every produce about its topic: after `checked` (what can be checked
    /// without the topic) passes, `payload` is queued by `queue` at once when the topic exists
    /// (so calls keep their call order), or once the topic is created when it is missing and
    /// `auto_create_topics` is on; any other lookup error is returned, with nothing queued.
    fn queue_on_topic<P, Q>(
        &self,
        topic: &str,
        checked: Result<()>,
        payload: P,
        queue: impl Fn(&Broker, &TopicHandle, P) -> Result<Q> + Send + 'static,
    ) -> impl Future<Output = Result<Q>> + Send + 'static
    where
        P: Send + 'static,
        Q: Send + 'static,
    {
        let early = checked.and_then(|()| match self.topic(topic) {
            Ok(handle) => queue(self, &handle, payload).map(Ok),
            Err(BrokerError::UnknownTopic { .. }) if self.inner.config.auto_create_topics => {
                Ok(Err((payload, topic.to_owned())))
            }
            Err(e) => Err(e),
        });
        let broker = self.clone();
        async move {
            match early? {
                Ok(queued) => Ok(queued),
                Err((payload, topic)) => {
                    let handle = broker.topic_or_create(&topic).await?;
                    queue(&broker, &handle, payload)
                }
            }
        }
    }

    /// Checks what can be checked of a records produce without its topic.
    pub(crate) fn check_records(&self, topic: &str, records: &[ProduceRecord]) -> Result<()> {
        self.inner.config.limits.check_produce(topic, records)
    }

    /// Routes, checks and encodes `records`, then queues their batches. Nothing is queued
    /// unless every record is good. `awaited`: the caller waits for them before producing
    /// more, which lets a lone batch be queued with [`Appender::submit_awaited`] (several
    /// batches are queued together, so that their fsyncs run side by side).
    fn queue_records(
        &self,
        handle: &TopicHandle,
        records: Vec<ProduceRecord>,
        now: i64,
        awaited: bool,
    ) -> Result<QueuedRecords> {
        let planned = plan_records(handle, &records)?;
        let timestamps = timestamps(&records, now);
        let built = encode_planned(&records, planned, &timestamps, None)?;
        refuse_keyless(handle, &built)?;
        let open = self.enter_produce()?;
        let lone = awaited && built.len() == 1;
        let batches = built
            .into_iter()
            .map(|(partition, indexes, batch)| {
                let appender = &handle.partition(partition)?.appender;
                let open = Arc::clone(&open);
                let queued = if lone {
                    appender.submit_awaited(batch, open)?
                } else {
                    appender.submit(batch, open)?
                };
                Ok((partition, indexes, queued))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(QueuedRecords {
            batches,
            timestamps,
        })
    }

    /// Routes, checks and encodes one record, then queues its batch with `submit` (given its
    /// partition's appender, the batch, the produce guard, and the record's partition and
    /// timestamp). Nothing is queued unless the record is good.
    fn queue_record<T>(
        &self,
        handle: &TopicHandle,
        record: &ProduceRecord,
        now: i64,
        submit: impl FnOnce(&Arc<Appender>, BytesMut, ProduceGuard, (u32, i64)) -> Result<T>,
    ) -> Result<T> {
        let partitions = handle.partition_count();
        let partition = crate::partitioner::partition_of(record, partitions, || {
            handle.cursor.next_partition(partitions)
        })
        .map_err(|partition| unknown_partition(handle, partition))?;
        fitting_record_bytes(record, handle.topic.config().message_bytes_max)?;
        let timestamp = record.timestamp.unwrap_or(now);
        let builder = BatchBuilder::new(Compression::None);
        let batch = build_batch(builder, std::slice::from_ref(record), &[0], &[timestamp])?;
        refuse_keyless_batch(handle, partition, &batch)?;
        let open = self.enter_produce()?;
        let appender = &handle.partition(partition)?.appender;
        submit(appender, batch, open, (partition, timestamp))
    }

    /// Queues one whole batch for `partition`; `awaited` when the caller waits for it before
    /// producing more ([`Broker::produce_batch_awaited`]).
    fn queue_batch(
        &self,
        handle: &TopicHandle,
        partition: u32,
        batch: Bytes,
        awaited: bool,
    ) -> Result<oneshot::Receiver<Result<BatchAppended>>> {
        let appender = &handle.partition(partition)?.appender;
        let open = self.enter_produce()?;
        if awaited {
            appender.submit_awaited(batch, open)
        } else {
            appender.submit(batch, open)
        }
    }
}

/// On a compacted topic, refuses the whole request when any record lacks a key, before
/// anything is queued: the log's own check (`validate_keyed`, which the append runs again)
/// would otherwise refuse only that partition's batch while others were written.
fn refuse_keyless(handle: &TopicHandle, built: &[(u32, Vec<usize>, BytesMut)]) -> Result<()> {
    built
        .iter()
        .try_for_each(|(partition, _, batch)| refuse_keyless_batch(handle, *partition, batch))
}

/// On a compacted topic, refuses `batch` for `partition` when a record of it lacks a key.
fn refuse_keyless_batch(handle: &TopicHandle, partition: u32, batch: &[u8]) -> Result<()> {
    let log = &handle.partition(partition)?.log;
    if log.config().cleanup_policy.compacts() {
        brook_log::batch::validate_keyed(batch, usize::MAX).map_err(|source| {
            BrokerError::InvalidBatch {
                topic: handle.name.to_string(),
                partition,
                source,
            }
        })?;
    }
    Ok(())
}

/// Assigns each record its partition: indexes per partition, in request order.
fn route(handle: &TopicHandle, records: &[ProduceRecord]) -> Result<BTreeMap<u32, Vec<usize>>> {
    let partitions = handle.partition_count();
    crate::partitioner::route(records, partitions, || {
        handle.cursor.next_partition(partitions)
    })
    .map_err(|partition| unknown_partition(handle, partition))
}

fn unknown_partition(handle: &TopicHandle, partition: u32) -> BrokerError {
    BrokerError::UnknownPartition {
        topic: handle.name.to_string(),
        partition,
        partitions: handle.partition_count(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn batches_are_cut_to_fit_and_oversized_records_refused() {
        let records: Vec<ProduceRecord> = (0..10)
            .map(|_| ProduceRecord::value(Bytes::from(vec![0u8; 100])))
            .collect();
        let all: Vec<usize> = (0..10).collect();
        let one = plan_batches(&records, &all, 1 << 20).expect("fits");
        assert_eq!(one, vec![all.clone()]);
        let per = record_bytes(&records[0]);
        let limit = brook_log::batch::HEADER_LEN + 3 * per;
        let cut = plan_batches(&records, &all, limit).expect("fits in several");
        assert_eq!(cut.len(), 4);
        assert_eq!(cut.concat(), all, "order kept");
        let err = plan_batches(&records, &all, brook_log::batch::HEADER_LEN + 50).unwrap_err();
        assert!(matches!(err, BrokerError::TooLarge { what: "record", .. }));
    }

    /// `produce_record` routes, stamps and refuses as a one-record `produce` does, and leaves
    /// nothing behind when it refuses.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_record_goes_where_a_one_record_produce_puts_it() {
        let broker = Broker::ephemeral().await.expect("broker");
        let mut topic = crate::NewTopic::new("t", 4);
        topic.config.message_bytes_max = Some(1024);
        broker.create_topic(topic).await.expect("create");
        let records = [
            ProduceRecord::keyed("k1", "a"),
            ProduceRecord::keyed("k2", "b"),
            ProduceRecord {
                partition: Some(3),
                ..ProduceRecord::value("c")
            },
            ProduceRecord {
                timestamp: Some(42),
                headers: vec![("h".into(), Bytes::from_static(b"x"))],
                ..ProduceRecord::keyed("k3", "d")
            },
        ];
        for record in records {
            let many = broker
                .produce("t", vec![record.clone()])
                .await
                .expect("produce");
            let many = many.records[0];
            let one = broker
                .produce_record("t", record.clone())
                .await
                .expect("produce_record");
            assert_eq!(one.partition, many.partition, "{record:?}");
            assert_eq!(one.offset, many.offset + 1, "the next in its partition");
            if let Some(ts) = record.timestamp {
                assert_eq!(one.timestamp, ts);
            }
        }
        let keyless = broker
            .produce_record("t", ProduceRecord::value("e"))
            .await
            .expect("keyless");
        assert!(keyless.partition < 4);
        let ends = |broker: Broker| async move {
            let mut ends = Vec::new();
            for p in 0..4 {
                let at = broker.list_offset("t", p, crate::OffsetSpec::Latest).await;
                ends.push(at.expect("offset").offset);
            }
            ends
        };
        let before = ends(broker.clone()).await;
        let out_of_range = ProduceRecord {
            partition: Some(4),
            ..ProduceRecord::value("x")
        };
        let err = broker.produce_record("t", out_of_range).await.unwrap_err();
        assert!(
            matches!(err, BrokerError::UnknownPartition { partition: 4, .. }),
            "{err}"
        );
        let big = ProduceRecord::value(vec![0u8; 2048]);
        let err = broker.produce_record("t", big).await.unwrap_err();
        assert!(
            matches!(err, BrokerError::TooLarge { what: "record", .. }),
            "{err}"
        );
        let err = broker
            .produce_record("bad/name", ProduceRecord::value("x"))
            .await
            .unwrap_err();
        assert!(matches!(err, BrokerError::InvalidTopicName { .. }), "{err}");
        assert_eq!(ends(broker.clone()).await, before, "nothing appended");
        let fresh = broker
            .produce_record("fresh", ProduceRecord::value("x"))
            .await
            .expect("a missing topic is created");
        assert_eq!((fresh.partition, fresh.offset), (0, 0));
    }

    #[test]
    fn built_batches_validate_and_decode() {
        let records = vec![
            ProduceRecord::keyed("k", "v"),
            ProduceRecord {
                headers: vec![("h".into(), Bytes::from_static(b"x"))],
                ..ProduceRecord::value("w")
            },
        ];
        let builder = BatchBuilder::new(Compression::None);
        let batch = build_batch(builder, &records, &[0, 1], &[5, 6]).expect("build");
        let header = brook_log::batch::validate(&batch, 1 << 20).expect("valid");
        assert_eq!(header.records_count, 2);
        let decoded: Vec<_> = brook_log::batch::records(batch.freeze())
            .expect("records")
            .collect::<std::result::Result<_, _>>()
            .expect("decode");
        assert_eq!(decoded[0].key.as_deref(), Some(&b"k"[..]));
        assert_eq!(decoded[1].headers[0].0, "h");
        assert_eq!(decoded[1].timestamp, 6);
    }
}
