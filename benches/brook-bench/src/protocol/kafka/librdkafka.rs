//! The [`Protocol`] over librdkafka (the `rdkafka` crate), set up as a user tuning for
//! throughput would: producers with `linger.ms`, `batch.size` and `batch.num.messages` sized
//! to `--batch`, no compression, `acks` from `--acks`; consumers assigned their partitions
//! (no group protocol, no commits) with librdkafka's default fetch size and `--isolation`.
//!
//! With `--transactional` each producer has its own `transactional.id` and sends in
//! transactions of `--txn-records` records: begun before its first batch, committed after the
//! batch that fills it (or the producer's last). Its batches go out with up to `--in-flight` in
//! flight like any others; each resolves its [`Ack`] once delivered, except the last, whose
//! [`Ack`] resolves once the commit returns. A producer runs one transaction at a time, as a
//! transactional producer must, so the next transaction's first batch waits for that commit.
//!
//! `-X KEY=VALUE` sets any librdkafka property on the producers and consumers, after all of
//! the above.
//!
//! librdkafka batches on its own: a bench batch is `--batch` records handed to it for one
//! partition, and its [`Ack`] resolves when librdkafka has reported every one of them
//! delivered. Admin calls that block (metadata, watermarks) run under `block_in_place`, off
//! the runtime's workers, which also serve the embedded broker.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{bail, Context};
use brook::broker::Durability;
use bytes::Bytes;
use futures::channel::oneshot;
use futures::future::BoxFuture;
use futures::FutureExt;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::super::{
    receive_ready, Ack, BenchConsumer, BenchProducer, ProducerShape, Protocol, TopicSpec,
};

/// How long an admin call or metadata request may take.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes librdkafka adds to a record's value in a batch, at most, for a record with no key or
/// headers (varint lengths and deltas).
const RECORD_OVERHEAD_BYTES: usize = 16;
/// librdkafka's `message.max.bytes` default, which caps `batch.size`; brook's default
/// `max.message.bytes` (1 MiB) takes it.
const BATCH_BYTES_MAX: usize = 1_000_000;
/// Linger a throughput-minded producer uses: batches fill within it under load.
const LINGER_MS: &str = "5";
/// Per-partition fetch size: librdkafka's default, 1 MiB. 8 MiB fetches (one fetch carrying
/// many batches) read 1 KiB records about a third slower against brook (docs/benchmarks.md,
/// "Kafka door", issue 14's fetch-size A/B).
const PARTITION_FETCH_BYTES: &str = "1048576";
/// Records librdkafka keeps fetched ahead per partition (default 100 000).
const QUEUED_RECORDS_MIN: &str = "1000000";
/// How long librdkafka waits for a retry when its queue is full.
const QUEUE_FULL_BACKOFF: Duration = Duration::from_millis(1);

/// How long a transaction call (init, commit) may take.
const TXN_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a transactional producer checks that its delivery reports are served before
/// committing.
const DRAIN_POLL: Duration = Duration::from_micros(20);
/// The most batches an idempotent (here: transactional) producer may have in flight.
const IDEMPOTENT_IN_FLIGHT_MAX: usize = 5;

/// What `--acks`, `--transactional` and `--isolation` ask of the clients.
#[derive(Debug, Clone)]
pub(super) struct Settings {
    pub acks: &'static str,
    pub transactional: bool,
    /// Records per transaction (`--txn-records`).
    pub txn_records: u64,
    pub isolation: &'static str,
    /// The PEM `--tls-ca` holds: connect over TLS trusting it.
    pub tls_ca: Option<String>,
    /// `-X KEY=VALUE`: set on every client after the bench's own settings.
    pub properties: Vec<(String, String)>,
}

impl Settings {
    /// Sets the `-X` properties on `config`, last, so they override the bench's.
    fn override_in(&self, config: &mut ClientConfig) {
        for (key, value) in &self.properties {
            config.set(key, value);
        }
    }
}

pub(super) fn connect(bootstrap: &str, settings: Settings) -> anyhow::Result<Box<dyn Protocol>> {
    let admin = base_config(bootstrap, &settings)
        .create()
        .context("cannot create a librdkafka admin client")?;
    Ok(Box::new(Kafka {
        bootstrap: bootstrap.to_owned(),
        settings,
        admin,
        producers: AtomicU64::new(0),
    }))
}

struct Kafka {
    bootstrap: String,
    settings: Settings,
    /// For admin calls; producers and consumers have their own clients and connections.
    admin: AdminClient<DefaultClientContext>,
    /// Producers made so far: numbers each transactional producer's `transactional.id`.
    producers: AtomicU64,
}

/// What every client of the bench sets: where to connect, and TLS when `--tls-ca` is set
/// (librdkafka checks the certificate and that it names the host: `ssl.endpoint.identification
/// .algorithm=https`, its default).
fn base_config(bootstrap: &str, settings: &Settings) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("socket.timeout.ms", "10000");
    if let Some(ca) = &settings.tls_ca {
        config.set("security.protocol", "ssl").set("ssl.ca.pem", ca);
    }
    config
}

impl Kafka {
    /// The topic's partition count, from a Metadata request.
    fn partition_count(&self, topic: &str) -> anyhow::Result<usize> {
        let metadata = tokio::task::block_in_place(|| {
            self.admin
                .inner()
                .fetch_metadata(Some(topic), ADMIN_TIMEOUT)
        })
        .with_context(|| format!("metadata of topic {topic}"))?;
        match metadata.topics().first() {
            Some(t) if t.error().is_none() => Ok(t.partitions().len()),
            Some(t) => bail!("metadata of topic {topic}: {:?}", t.error()),
            None => bail!("metadata of topic {topic}: not in the answer"),
        }
    }
}

impl Protocol for Kafka {
    fn prepare_topic<'a>(&'a self, spec: &'a TopicSpec) -> BoxFuture<'a, anyhow::Result<bool>> {
        async move {
            let durability = spec.durability.as_ref().map(Durability::to_string);
            let partitions = i32::try_from(spec.partitions).context("too many partitions")?;
            let mut topic = NewTopic::new(&spec.name, partitions, TopicReplication::Fixed(1));
            if let Some(durability) = &durability {
                topic = topic.set("brook.durability", durability);
            }
            let options = AdminOptions::new().operation_timeout(Some(ADMIN_TIMEOUT));
            let results = self.admin.create_topics([&topic], &options).await?;
            match results.into_iter().next() {
                Some(Ok(_)) => Ok(true),
                Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) => {
                    let existing = self.partition_count(&spec.name)?;
                    if existing != spec.partitions as usize {
                        bail!(
                            "topic {} exists with {existing} partitions, not {}: choose \
                             another --topic",
                            spec.name,
                            spec.partitions
                        );
                    }
                    Ok(false)
                }
                Some(Err((name, code))) => bail!("cannot create topic {name}: {code}"),
                None => bail!("CreateTopics answered nothing for {}", spec.name),
            }
        }
        .boxed()
    }

    fn end_offsets<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, anyhow::Result<Vec<u64>>> {
        async move {
            let partitions = self.partition_count(topic)?;
            let mut ends = Vec::with_capacity(partitions);
            for partition in 0..partitions as i32 {
                let (_, high) = tokio::task::block_in_place(|| {
                    self.admin
                        .inner()
                        .fetch_watermarks(topic, partition, ADMIN_TIMEOUT)
                })
                .with_context(|| format!("end offset of {topic}/{partition}"))?;
                ends.push(u64::try_from(high).context("negative end offset")?);
            }
            Ok(ends)
        }
        .boxed()
    }

    fn delete_topic<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, anyhow::Result<()>> {
        async move {
            let options = AdminOptions::new().operation_timeout(Some(ADMIN_TIMEOUT));
            match self.admin.delete_topics(&[topic], &options).await?.pop() {
                Some(Ok(_)) => Ok(()),
                Some(Err((name, code))) => bail!("cannot delete topic {name}: {code}"),
                None => bail!("DeleteTopics answered nothing for {topic}"),
            }
        }
        .boxed()
    }

    fn producer<'a>(
        &'a self,
        topic: &'a str,
        shape: ProducerShape,
    ) -> BoxFuture<'a, anyhow::Result<Box<dyn BenchProducer>>> {
        async move {
            let batch_bytes = shape.batch * (shape.record_bytes + RECORD_OVERHEAD_BYTES);
            // Room for every record the bench may have in flight, so sends rarely wait.
            let queued = (2 * shape.batch * shape.in_flight).max(100_000);
            let transactional = self.settings.transactional;
            let (acks, in_flight) = if transactional {
                ("all", shape.in_flight.min(IDEMPOTENT_IN_FLIGHT_MAX))
            } else {
                (self.settings.acks, shape.in_flight)
            };
            let mut config = base_config(&self.bootstrap, &self.settings);
            config
                .set("acks", acks)
                .set("compression.type", "none")
                .set("linger.ms", LINGER_MS)
                .set("batch.num.messages", shape.batch.to_string())
                .set(
                    "batch.size",
                    batch_bytes.clamp(1, BATCH_BYTES_MAX).to_string(),
                )
                .set("queue.buffering.max.messages", queued.to_string())
                .set(
                    "max.in.flight.requests.per.connection",
                    in_flight.to_string(),
                );
            self.settings.override_in(&mut config);
            if transactional {
                let n = self.producers.fetch_add(1, Ordering::Relaxed);
                config.set("transactional.id", format!("brook-bench-{topic}-{n}"));
            }
            let producer: ThreadedProducer<Deliveries> = config
                .create_with_context(Deliveries)
                .context("cannot create a librdkafka producer")?;
            let producer = Arc::new(producer);
            if transactional {
                let init = Arc::clone(&producer);
                tokio::task::spawn_blocking(move || init.init_transactions(TXN_TIMEOUT))
                    .await?
                    .context("init_transactions")?;
            }
            let transactions = transactional.then(|| Transactions {
                turn: Arc::new(tokio::sync::Mutex::new(())),
                cursor: tokio::sync::Mutex::new(Cursor::default()),
                records: self.settings.txn_records,
                total: shape.records,
            });
            Ok(Box::new(KafkaProducer {
                producer,
                topic: topic.to_owned(),
                transactions,
            }) as Box<dyn BenchProducer>)
        }
        .boxed()
    }

    fn consumer<'a>(
        &'a self,
        topic: &'a str,
        starts: Vec<(u32, u64)>,
    ) -> BoxFuture<'a, anyhow::Result<Box<dyn BenchConsumer>>> {
        async move {
            let mut config = base_config(&self.bootstrap, &self.settings);
            config
                // librdkafka wants a group id; assign() uses no group protocol and nothing
                // is committed.
                .set("group.id", "brook-bench")
                .set("enable.auto.commit", "false")
                .set("enable.auto.offset.store", "false")
                .set("enable.partition.eof", "false")
                .set("fetch.wait.max.ms", "100")
                .set("max.partition.fetch.bytes", PARTITION_FETCH_BYTES)
                // librdkafka stops fetching once this many records wait in its queue, and then
                // waits fetch.queue.backoff.ms (default 1 s) before fetching again: a reader
                // that keeps up needs a deep queue and a short backoff.
                .set("queued.min.messages", QUEUED_RECORDS_MIN)
                .set("fetch.queue.backoff.ms", "10")
                .set("isolation.level", self.settings.isolation);
            self.settings.override_in(&mut config);
            let consumer: StreamConsumer = config
                .create()
                .context("cannot create a librdkafka consumer")?;
            let mut assignment = TopicPartitionList::new();
            for (partition, offset) in starts {
                let offset = i64::try_from(offset).context("offset too large")?;
                assignment.add_partition_offset(
                    topic,
                    i32::try_from(partition).context("partition too large")?,
                    Offset::Offset(offset),
                )?;
            }
            consumer.assign(&assignment)?;
            Ok(Box::new(KafkaConsumer { consumer }) as Box<dyn BenchConsumer>)
        }
        .boxed()
    }
}

/// Delivery reports of one bench batch: resolves its [`Ack`] when the last record is
/// delivered, or at the first failure.
struct BatchAck {
    remaining: AtomicUsize,
    done: Mutex<Option<oneshot::Sender<Result<(), KafkaError>>>>,
}

impl BatchAck {
    fn settle(&self, result: Result<(), KafkaError>) {
        let last = self.remaining.fetch_sub(1, Ordering::AcqRel) == 1;
        if last || result.is_err() {
            let done = self
                .done
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if let Some(done) = done {
                // The bench may have stopped waiting (it failed elsewhere): nothing to tell.
                let _ = done.send(result);
            }
        }
    }
}

/// Routes each delivery report to its batch.
struct Deliveries;

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = Arc<BatchAck>;

    fn delivery(&self, result: &DeliveryResult<'_>, batch: Arc<BatchAck>) {
        batch.settle(result.as_ref().map(|_| ()).map_err(|(e, _)| e.clone()));
    }
}

struct KafkaProducer {
    /// Serves delivery reports on its own thread.
    producer: Arc<ThreadedProducer<Deliveries>>,
    topic: String,
    /// `--transactional`: where the producer is in its transactions.
    transactions: Option<Transactions>,
}

/// A transactional producer's transactions, one at a time.
struct Transactions {
    /// Held from a transaction's begin to its commit, so transactions take turns.
    turn: Arc<tokio::sync::Mutex<()>>,
    /// The open transaction; held while a batch joins it and its records are sent.
    cursor: tokio::sync::Mutex<Cursor>,
    /// Records per transaction.
    records: u64,
    /// Records the producer sends in the run.
    total: u64,
}

#[derive(Default)]
struct Cursor {
    /// The open transaction's turn and the records it has so far.
    open: Option<(tokio::sync::OwnedMutexGuard<()>, u64)>,
    /// Records sent in all.
    sent: u64,
}

impl BenchProducer for KafkaProducer {
    fn send_batch(&self, partition: u32, values: Vec<Bytes>) -> BoxFuture<'_, anyhow::Result<Ack>> {
        async move {
            let partition = i32::try_from(partition).context("partition too large")?;
            // Transactional: the batch joins the open transaction (beginning one once the
            // previous committed); `turn` is the transaction's when this batch ends it.
            let mut cursor = match &self.transactions {
                Some(txns) => Some(txns.cursor.lock().await),
                None => None,
            };
            let mut turn = None;
            if let (Some(txns), Some(cursor)) = (&self.transactions, cursor.as_mut()) {
                let (next, in_txn) = match cursor.open.take() {
                    Some(open) => open,
                    None => {
                        let next = Arc::clone(&txns.turn).lock_owned().await;
                        self.producer
                            .begin_transaction()
                            .context("begin_transaction")?;
                        (next, 0)
                    }
                };
                let in_txn = in_txn + values.len() as u64;
                cursor.sent += values.len() as u64;
                if in_txn >= txns.records || cursor.sent >= txns.total {
                    turn = Some(next);
                } else {
                    cursor.open = Some((next, in_txn));
                }
            }
            let (done, delivered) = oneshot::channel();
            let batch = Arc::new(BatchAck {
                remaining: AtomicUsize::new(values.len()),
                done: Mutex::new(Some(done)),
            });
            for value in &values {
                let mut record =
                    BaseRecord::<(), [u8], _>::with_opaque_to(&self.topic, Arc::clone(&batch))
                        .partition(partition)
                        .payload(value.as_ref());
                // A full queue is librdkafka's back-pressure: wait for deliveries to drain it.
                loop {
                    match self.producer.send(record) {
                        Ok(()) => break,
                        Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                            record = back;
                            tokio::time::sleep(QUEUE_FULL_BACKOFF).await;
                        }
                        Err((e, _)) => return Err(anyhow::Error::new(e).context("produce")),
                    }
                }
            }
            drop(cursor);
            let producer = Arc::clone(&self.producer);
            let ack = async move {
                delivered
                    .await
                    .context("the producer closed before every delivery report")?
                    .context("produce")?;
                if let Some(turn) = turn {
                    // The rdkafka crate's commit_transaction flushes first, and its flush
                    // polls for up to 100 ms when librdkafka still counts an event the
                    // producer's own polling thread is about to serve: a 100 ms stall in about
                    // one commit of three, the client's and not the broker's. Waiting here
                    // until that thread has served everything keeps it out of the figures
                    // (on a blocking thread: tokio's timer would round each look up to 1 ms).
                    // The wait and the commit share one trip to the blocking pool.
                    tokio::task::spawn_blocking(move || {
                        while producer.in_flight_count() > 0 {
                            std::thread::sleep(DRAIN_POLL);
                        }
                        producer.commit_transaction(TXN_TIMEOUT)
                    })
                    .await?
                    .context("commit_transaction")?;
                    drop(turn);
                }
                Ok(())
            };
            Ok(ack.boxed())
        }
        .boxed()
    }
}

struct KafkaConsumer {
    consumer: StreamConsumer,
}

impl BenchConsumer for KafkaConsumer {
    fn receive<'a>(
        &'a mut self,
        sink: &'a mut (dyn FnMut(&[u8]) + Send),
    ) -> BoxFuture<'a, anyhow::Result<usize>> {
        async move {
            let mut messages = self.consumer.stream();
            receive_ready(&mut messages, message_value, sink).await
        }
        .boxed()
    }
}

fn message_value<'m>(message: &'m BorrowedMessage<'_>) -> &'m [u8] {
    message.payload().unwrap_or_default()
}
