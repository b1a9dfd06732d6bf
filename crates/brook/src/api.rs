//! One API, three places: application code written against [`Brook`] runs unchanged on an
//! embedded [`Broker`] (in-process: no server, no socket), on a remote `brook serve` through
//! a [`Client`] (gRPC), and on a Kafka cluster through `brook::kafka::connect` (the
//! `kafka-backend` feature; see `docs/scale-out.md`).
//!
//! ```no_run
//! use brook::api::{Brook, Subscribe};
//! use brook::{ProduceRecord, StartAt};
//! use futures::StreamExt;
//!
//! async fn app(brook: &impl Brook) -> brook::api::Result<()> {
//!     brook.create_topic("orders", 3).await?;
//!     let positions = brook.produce("orders", vec![ProduceRecord::keyed("alice", "2 apples")]).await?;
//!     let p = positions[0].partition;
//!     let mut records = brook.subscribe(Subscribe::partition("orders", p, StartAt::Earliest)).await?;
//!     let first = records.next().await.expect("a record")?;
//!     assert_eq!(first.value.as_deref(), Some(&b"2 apples"[..]));
//!     Ok(())
//! }
//!
//! # async fn both() -> Result<(), Box<dyn std::error::Error>> {
//! app(&brook::Broker::ephemeral().await?).await?;                            // embedded
//! app(&brook::Client::connect("http://127.0.0.1:50051").await?).await?;      // remote
//! # Ok(()) }
//! ```
//!
//! What the trait promises, whichever side implements it:
//! - the vocabulary is the broker's own types ([`ProduceRecord`], [`ConsumerRecord`],
//!   [`RecordPosition`], [`TopicPartition`], [`StartAt`], [`OffsetReset`]);
//! - one `produce` call is one request: records bound for one partition are appended as one
//!   batch, in call order; the partition is the explicit one, else Kafka's murmur2 of the key;
//! - `fetch` is a long poll; `subscribe` streams records as they are appended, from one
//!   partition or as a consumer-group member; nothing is committed unless the application
//!   calls `commit` (at-least-once: commit after processing);
//! - errors carry the same classes ([`Error::kind`]), whichever transport raised them.
//!
//! The remote side calls the server's unary RPCs one to one, so each result is what the
//! embedded broker would have answered. The embedded broker and a Kafka cluster are both a
//! [`Backend`] of the broker API, mapped onto this trait once. For throughput, use the client's batching
//! [`brook_client::Producer`] directly: it pipelines many requests, which a single call
//! cannot.

use std::future::Future;
use std::time::Duration;

use brook_broker::{
    Backend, Broker, BrokerError, ConsumerRecord, ErrorKind, GroupSubscribe, OffsetCommit,
    OffsetReset, PartitionSubscribe, ProduceRecord, RecordPosition, StartAt, TopicPartition,
};
use brook_client::{Client, ClientError, Code};
use futures::stream::{BoxStream, StreamExt, TryStreamExt};

/// Result alias for [`Brook`] calls.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Records as a stream, from [`Brook::subscribe`].
pub type RecordStream = BoxStream<'static, Result<ConsumerRecord>>;

/// A failure on either transport.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Raised by the embedded broker.
    #[error(transparent)]
    Embedded(#[from] BrokerError),
    /// Raised by the client or by the remote server.
    #[error(transparent)]
    Remote(#[from] ClientError),
}

impl Error {
    /// The class of the error, the same for both transports (a remote `NOT_FOUND` is the
    /// embedded broker's `NotFound`).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Embedded(e) => e.kind(),
            Error::Remote(e) => match e.code() {
                Code::NotFound => ErrorKind::NotFound,
                Code::InvalidArgument => ErrorKind::InvalidArgument,
                Code::AlreadyExists => ErrorKind::AlreadyExists,
                Code::OutOfRange => ErrorKind::OutOfRange,
                Code::ResourceExhausted => ErrorKind::TooLarge,
                Code::Unavailable => ErrorKind::Unavailable,
                _ => ErrorKind::Internal,
            },
        }
    }
}

/// What a [`Brook::fetch`] returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// Records from the requested offset on; empty when none arrived within the wait.
    pub records: Vec<ConsumerRecord>,
    /// Offsets below this were readable when the fetch was answered.
    pub high_watermark: u64,
}

/// Where a partition's log starts and ends, from [`Brook::partitions`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionOffsets {
    pub partition: u32,
    /// The first offset still in the log.
    pub log_start_offset: u64,
    /// Offsets below this are readable.
    pub high_watermark: u64,
}

/// What a [`Brook::subscribe`] reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subscribe {
    /// One partition from `start` (which may be a group's committed offset).
    Partition {
        topic: String,
        partition: u32,
        start: StartAt,
    },
    /// Membership of `group` over `topics`: the partitions the group assigns to this stream,
    /// each from the group's committed offset, else `reset`.
    Group {
        group: String,
        topics: Vec<String>,
        reset: OffsetReset,
    },
}

impl Subscribe {
    pub fn partition(topic: impl Into<String>, partition: u32, start: StartAt) -> Self {
        Subscribe::Partition {
            topic: topic.into(),
            partition,
            start,
        }
    }

    pub fn group(group: impl Into<String>, topics: Vec<String>, reset: OffsetReset) -> Self {
        Subscribe::Group {
            group: group.into(),
            topics,
            reset,
        }
    }
}

/// The operations an application needs, embedded or remote. See the module docs.
pub trait Brook: Send + Sync {
    /// Creates `topic` with `partitions` partitions.
    fn create_topic(&self, topic: &str, partitions: u32)
        -> impl Future<Output = Result<()>> + Send;

    /// The topic's partitions, by number, with their offsets.
    fn partitions(&self, topic: &str)
        -> impl Future<Output = Result<Vec<PartitionOffsets>>> + Send;

    /// Appends `records` to `topic`; each record's position, in call order.
    fn produce(
        &self,
        topic: &str,
        records: Vec<ProduceRecord>,
    ) -> impl Future<Output = Result<Vec<RecordPosition>>> + Send;

    /// Reads one partition from `offset`, waiting up to `max_wait` when nothing is there yet.
    fn fetch(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        max_wait: Duration,
    ) -> impl Future<Output = Result<Fetched>> + Send;

    /// Streams records as they are appended.
    fn subscribe(&self, to: Subscribe) -> impl Future<Output = Result<RecordStream>> + Send;

    /// Commits `group`'s positions (the next offset it will consume per partition).
    fn commit(
        &self,
        group: &str,
        offsets: Vec<(TopicPartition, u64)>,
    ) -> impl Future<Output = Result<()>> + Send;

    /// `group`'s committed offsets in `partitions` (empty: all); partitions without a commit
    /// are left out.
    fn committed(
        &self,
        group: &str,
        partitions: &[TopicPartition],
    ) -> impl Future<Output = Result<Vec<(TopicPartition, u64)>>> + Send;
}

/// Fetches answer at once at most this much (the servers' default too).
const FETCH_BYTES: usize = 1 << 20;

/// The embedded broker: the [`Backend`] of this process's log, called directly.
impl Brook for Broker {
    async fn create_topic(&self, topic: &str, partitions: u32) -> Result<()> {
        Brook::create_topic(&local(self), topic, partitions).await
    }

    async fn partitions(&self, topic: &str) -> Result<Vec<PartitionOffsets>> {
        Brook::partitions(&local(self), topic).await
    }

    async fn produce(
        &self,
        topic: &str,
        records: Vec<ProduceRecord>,
    ) -> Result<Vec<RecordPosition>> {
        Brook::produce(&local(self), topic, records).await
    }

    async fn fetch(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        max_wait: Duration,
    ) -> Result<Fetched> {
        Brook::fetch(&local(self), topic, partition, offset, max_wait).await
    }

    async fn subscribe(&self, to: Subscribe) -> Result<RecordStream> {
        Brook::subscribe(&local(self), to).await
    }

    async fn commit(&self, group: &str, offsets: Vec<(TopicPartition, u64)>) -> Result<()> {
        Brook::commit(&local(self), group, offsets).await
    }

    async fn committed(
        &self,
        group: &str,
        partitions: &[TopicPartition],
    ) -> Result<Vec<(TopicPartition, u64)>> {
        Brook::committed(&local(self), group, partitions).await
    }
}

/// `broker` as a backend (a handle clone: one reference count per call).
fn local(broker: &Broker) -> Backend {
    Backend::Local(broker.clone())
}

/// Any backend of the broker API: the embedded broker, or a Kafka cluster (`brook::kafka`,
/// with the `kafka-backend` feature). The one mapping of the broker's calls onto this trait.
impl Brook for Backend {
    async fn create_topic(&self, topic: &str, partitions: u32) -> Result<()> {
        Backend::create_topic(self, brook_broker::NewTopic::new(topic, partitions)).await?;
        Ok(())
    }

    async fn partitions(&self, topic: &str) -> Result<Vec<PartitionOffsets>> {
        let described = Backend::describe_topic(self, topic).await?;
        Ok(described
            .partitions
            .into_iter()
            .map(|p| PartitionOffsets {
                partition: p.partition,
                log_start_offset: p.log_start_offset,
                high_watermark: p.high_watermark,
            })
            .collect())
    }

    async fn produce(
        &self,
        topic: &str,
        records: Vec<ProduceRecord>,
    ) -> Result<Vec<RecordPosition>> {
        Ok(Backend::produce(self, topic, records).await?.records)
    }

    async fn fetch(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        max_wait: Duration,
    ) -> Result<Fetched> {
        let fetched = Backend::fetch(self, topic, partition, offset, FETCH_BYTES, max_wait).await?;
        Ok(Fetched {
            records: fetched.records()?,
            high_watermark: fetched.high_watermark,
        })
    }

    async fn subscribe(&self, to: Subscribe) -> Result<RecordStream> {
        let subscription = match to {
            Subscribe::Partition {
                topic,
                partition,
                start,
            } => Backend::subscribe(self, PartitionSubscribe::new(topic, partition, start)).await?,
            Subscribe::Group {
                group,
                topics,
                reset,
            } => {
                let mut request = GroupSubscribe::new(group, topics);
                request.reset = reset;
                self.subscribe_group(request).await?
            }
        };
        Ok(subscription.records().err_into().boxed())
    }

    async fn commit(&self, group: &str, offsets: Vec<(TopicPartition, u64)>) -> Result<()> {
        let commits = offsets
            .into_iter()
            .map(|(tp, offset)| OffsetCommit::new(tp.topic, tp.partition, offset))
            .collect();
        Ok(self.commit_offsets(group, commits).await?)
    }

    async fn committed(
        &self,
        group: &str,
        partitions: &[TopicPartition],
    ) -> Result<Vec<(TopicPartition, u64)>> {
        let committed = self.committed_offsets(group, partitions).await?;
        Ok(committed
            .into_iter()
            .map(|(tp, c)| (tp, c.offset))
            .collect())
    }
}

impl Brook for Client {
    async fn create_topic(&self, topic: &str, partitions: u32) -> Result<()> {
        let new = brook_client::NewTopic::new(topic, partitions);
        self.admin().create_topic(new).await?;
        Ok(())
    }

    async fn partitions(&self, topic: &str) -> Result<Vec<PartitionOffsets>> {
        let described = self.admin().describe_topic(topic).await?;
        Ok(described
            .partitions
            .into_iter()
            .map(|p| PartitionOffsets {
                partition: p.partition,
                log_start_offset: p.log_start_offset,
                high_watermark: p.high_watermark,
            })
            .collect())
    }

    async fn produce(
        &self,
        topic: &str,
        records: Vec<ProduceRecord>,
    ) -> Result<Vec<RecordPosition>> {
        let records = records.into_iter().map(to_client_record).collect();
        let positions = Client::produce(self, topic, records).await?;
        Ok(positions
            .into_iter()
            .map(|p| RecordPosition {
                partition: p.partition,
                offset: p.offset,
                timestamp: p.timestamp_ms,
            })
            .collect())
    }

    async fn fetch(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        max_wait: Duration,
    ) -> Result<Fetched> {
        let request = brook_client::FetchRequest {
            max_wait,
            ..brook_client::FetchRequest::new(topic, partition, offset)
        };
        let fetched = Client::fetch(self, request).await?;
        Ok(Fetched {
            records: fetched
                .records
                .into_iter()
                .map(from_client_record)
                .collect(),
            high_watermark: fetched.high_watermark,
        })
    }

    async fn subscribe(&self, to: Subscribe) -> Result<RecordStream> {
        // Commits are the application's call on both transports.
        let config = |group: Option<String>, reset| {
            let mut config = brook_client::ConsumerConfig::default();
            config.group = group;
            config.reset = reset;
            config.auto_commit_interval_ms = None;
            config
        };
        let stream = match to {
            Subscribe::Partition {
                topic,
                partition,
                start,
            } => {
                let tp = brook_client::TopicPartition::new(topic.as_str(), partition);
                let start = client_start(self, &tp, start).await?;
                let consumer = self.consumer(config(None, Default::default()))?;
                consumer.assign(vec![(tp, start)]).await?
            }
            Subscribe::Group {
                group,
                topics,
                reset,
            } => {
                let consumer = self.consumer(config(Some(group), client_reset(reset)))?;
                consumer.subscribe(topics).await?
            }
        };
        Ok(stream.map_ok(from_client_record).err_into().boxed())
    }

    async fn commit(&self, group: &str, offsets: Vec<(TopicPartition, u64)>) -> Result<()> {
        let commits = offsets
            .into_iter()
            .map(|(tp, offset)| brook_client::proto::OffsetCommit {
                topic: tp.topic,
                partition: tp.partition,
                offset,
                metadata: String::new(),
            })
            .collect();
        Ok(self.admin().commit_offsets(group, commits).await?)
    }

    async fn committed(
        &self,
        group: &str,
        partitions: &[TopicPartition],
    ) -> Result<Vec<(TopicPartition, u64)>> {
        let partitions: Vec<_> = partitions
            .iter()
            .map(|tp| brook_client::TopicPartition::new(tp.topic.as_str(), tp.partition))
            .collect();
        let committed = self.admin().fetch_offsets(group, &partitions).await?;
        Ok(committed
            .into_iter()
            .map(|c| (TopicPartition::new(c.topic, c.partition), c.offset))
            .collect())
    }
}

/// The client-side start for a broker [`StartAt`]: a group's committed offset is looked up
/// first, as the embedded broker does itself.
async fn client_start(
    client: &Client,
    tp: &brook_client::TopicPartition,
    start: StartAt,
) -> Result<brook_client::StartAt> {
    Ok(match start {
        StartAt::Earliest => brook_client::StartAt::Earliest,
        StartAt::Latest => brook_client::StartAt::Latest,
        StartAt::Offset(offset) => brook_client::StartAt::Offset(offset),
        StartAt::Committed { group, reset } => {
            let tps = std::slice::from_ref(tp);
            let committed = client.admin().fetch_offsets(&group, tps).await?;
            match (committed.first(), reset) {
                (Some(c), _) => brook_client::StartAt::Offset(c.offset),
                (None, OffsetReset::Earliest) => brook_client::StartAt::Earliest,
                (None, OffsetReset::Latest) => brook_client::StartAt::Latest,
            }
        }
    })
}

fn client_reset(reset: OffsetReset) -> brook_client::OffsetReset {
    match reset {
        OffsetReset::Earliest => brook_client::OffsetReset::Earliest,
        OffsetReset::Latest => brook_client::OffsetReset::Latest,
    }
}

fn to_client_record(r: ProduceRecord) -> brook_client::ProducerRecord {
    brook_client::ProducerRecord {
        key: r.key,
        value: r.value,
        headers: r.headers,
        timestamp_ms: r.timestamp,
        partition: r.partition,
    }
}

fn from_client_record(r: brook_client::ConsumerRecord) -> ConsumerRecord {
    ConsumerRecord {
        topic: r.topic,
        partition: r.partition,
        offset: r.offset,
        timestamp: r.timestamp_ms,
        key: r.key,
        value: r.value,
        headers: r.headers,
    }
}
