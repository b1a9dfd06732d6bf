//! What the doors serve: brook's own log, or a cluster in front of which brook is a gateway.
//!
//! [`Backend`] is the one seam between the doors and where records live. A door holds a
//! `Backend` and calls it as it would call a [`Broker`]: the same names, arguments, answers
//! and errors, so no door's code forks per backend. `Backend::Local` is the broker itself,
//! called directly: a `match` per request, no boxing, no dynamic dispatch and no allocation
//! added on the local path (a produce is still queued when it is called). `Backend::Cluster`
//! holds any [`Cluster`] (gateway mode: `brook-cluster`'s Kafka cluster) behind one pointer,
//! one dynamic call per request.
//!
//! Calls that the local broker answers from memory (listing and describing topics and groups,
//! committed offsets) are `async` here, since a cluster answers them over the network.

mod cluster;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::{Either, Future};

use crate::broker::{Broker, TopicSummary};
use crate::config::BrokerConfig;
use crate::error::{BrokerError, Result};
use crate::group_admin::{OffsetCommit, Seek, SeekTo};
use crate::produce::Produced;
use crate::subscribe::{GroupSubscribe, PartitionSubscribe, Subscription};
use crate::types::{
    BatchAppended, CommittedOffset, ConsumerRecord, Fetched, GroupDescription, GroupListing,
    ListedOffset, NewTopic, OffsetSpec, ProduceRecord, TopicDescription, TopicPartition,
};
use crate::ConfigChange;

pub use cluster::Cluster;

/// Where the records a door serves live. Clone it freely (an `Arc` either way).
#[derive(Debug, Clone)]
pub enum Backend {
    /// brook's own log, in this process.
    Local(Broker),
    /// A cluster this process is a gateway to: no local log.
    Cluster(Arc<dyn Cluster>),
}

impl From<Broker> for Backend {
    fn from(broker: Broker) -> Self {
        Backend::Local(broker)
    }
}

impl Backend {
    /// The local broker, when the records live here (what the Kafka door, the offline tools
    /// and the log's own metrics need).
    pub fn local(&self) -> Option<&Broker> {
        match self {
            Backend::Local(broker) => Some(broker),
            Backend::Cluster(_) => None,
        }
    }

    /// The broker settings the doors go by: the local broker's, or those a gateway was started
    /// with (its limits and request-reply settings apply to the cluster's calls).
    pub fn config(&self) -> &BrokerConfig {
        match self {
            Backend::Local(broker) => broker.config(),
            Backend::Cluster(cluster) => cluster.config(),
        }
    }

    /// Where the records live, for logs and the console: `local` or the cluster's URL.
    pub fn describe(&self) -> String {
        match self {
            Backend::Local(_) => "local".to_owned(),
            Backend::Cluster(cluster) => cluster.url(),
        }
    }

    /// As [`Broker::create_topic`].
    pub async fn create_topic(&self, new: NewTopic) -> Result<TopicDescription> {
        match self {
            Backend::Local(broker) => broker.create_topic(new).await,
            Backend::Cluster(cluster) => cluster.create_topic(new).await,
        }
    }

    /// As [`Broker::delete_topic`].
    pub async fn delete_topic(&self, name: &str) -> Result<()> {
        match self {
            Backend::Local(broker) => broker.delete_topic(name).await,
            Backend::Cluster(cluster) => cluster.delete_topic(name).await,
        }
    }

    /// As [`Broker::list_topics`].
    pub async fn list_topics(&self) -> Result<Vec<TopicSummary>> {
        match self {
            Backend::Local(broker) => Ok(broker.list_topics()),
            Backend::Cluster(cluster) => cluster.list_topics().await,
        }
    }

    /// As [`Broker::describe_topic`].
    pub async fn describe_topic(&self, name: &str) -> Result<TopicDescription> {
        match self {
            Backend::Local(broker) => broker.describe_topic(name),
            Backend::Cluster(cluster) => cluster.describe_topic(name).await,
        }
    }

    /// As [`Broker::produce`]: not an `async fn`, so the records are ordered when this is
    /// called, on either backend.
    pub fn produce(
        &self,
        topic: &str,
        records: Vec<ProduceRecord>,
    ) -> impl Future<Output = Result<Produced>> + Send + 'static {
        self.produce_records(topic, records, false)
    }

    /// As [`Broker::produce_awaited`]: for a caller that awaits the outcome before it
    /// produces more. Through the cluster, the same as [`Backend::produce`].
    pub fn produce_awaited(
        &self,
        topic: &str,
        records: Vec<ProduceRecord>,
    ) -> impl Future<Output = Result<Produced>> + Send + 'static {
        self.produce_records(topic, records, true)
    }

    fn produce_records(
        &self,
        topic: &str,
        records: Vec<ProduceRecord>,
        awaited: bool,
    ) -> impl Future<Output = Result<Produced>> + Send + 'static {
        match self {
            Backend::Local(broker) if awaited => {
                Either::Left(Either::Left(broker.produce_awaited(topic, records)))
            }
            Backend::Local(broker) => Either::Left(Either::Right(broker.produce(topic, records))),
            Backend::Cluster(cluster) => Either::Right(cluster.produce(topic, records)),
        }
    }

    /// As [`Broker::produce_batch`], ordered at call time likewise.
    pub fn produce_batch(
        &self,
        topic: &str,
        partition: u32,
        batch: impl Into<Bytes>,
    ) -> impl Future<Output = Result<BatchAppended>> + Send + 'static {
        self.produce_whole_batch(topic, partition, batch.into(), false)
    }

    /// As [`Broker::produce_batch_awaited`]: for a caller that awaits the outcome before it
    /// produces more. Through the cluster, the same as [`Backend::produce_batch`].
    pub fn produce_batch_awaited(
        &self,
        topic: &str,
        partition: u32,
        batch: impl Into<Bytes>,
    ) -> impl Future<Output = Result<BatchAppended>> + Send + 'static {
        self.produce_whole_batch(topic, partition, batch.into(), true)
    }

    fn produce_whole_batch(
        &self,
        topic: &str,
        partition: u32,
        batch: Bytes,
        awaited: bool,
    ) -> impl Future<Output = Result<BatchAppended>> + Send + 'static {
        match self {
            Backend::Local(broker) if awaited => Either::Left(Either::Left(
                broker.produce_batch_awaited(topic, partition, batch),
            )),
            Backend::Local(broker) => {
                Either::Left(Either::Right(broker.produce_batch(topic, partition, batch)))
            }
            Backend::Cluster(cluster) => {
                Either::Right(cluster.produce_batch(topic, partition, batch))
            }
        }
    }

    /// As [`Broker::fetch`].
    pub async fn fetch(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        max_bytes: usize,
        max_wait: Duration,
    ) -> Result<Fetched> {
        match self {
            Backend::Local(broker) => {
                broker
                    .fetch(topic, partition, offset, max_bytes, max_wait)
                    .await
            }
            Backend::Cluster(cluster) => {
                cluster
                    .fetch(topic, partition, offset, max_bytes, max_wait)
                    .await
            }
        }
    }

    /// As [`Broker::fetch_isolated`]. A cluster reads as its own consumer is set up to.
    pub async fn fetch_isolated(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        max_bytes: usize,
        max_wait: Duration,
        isolation: crate::Isolation,
    ) -> Result<Fetched> {
        match self {
            Backend::Local(broker) => {
                broker
                    .fetch_isolated(topic, partition, offset, max_bytes, max_wait, isolation)
                    .await
            }
            Backend::Cluster(_) => {
                self.fetch(topic, partition, offset, max_bytes, max_wait)
                    .await
            }
        }
    }

    /// As [`Broker::list_offset`].
    pub async fn list_offset(
        &self,
        topic: &str,
        partition: u32,
        spec: OffsetSpec,
    ) -> Result<ListedOffset> {
        match self {
            Backend::Local(broker) => broker.list_offset(topic, partition, spec).await,
            Backend::Cluster(cluster) => cluster.list_offset(topic, partition, spec).await,
        }
    }

    /// As [`Broker::subscribe`].
    pub async fn subscribe(&self, request: PartitionSubscribe) -> Result<Subscription> {
        match self {
            Backend::Local(broker) => broker.subscribe(request).await,
            Backend::Cluster(cluster) => cluster.subscribe(request).await,
        }
    }

    /// As [`Broker::subscribe_group`]; on a cluster the group is coordinated by the cluster.
    pub async fn subscribe_group(&self, request: GroupSubscribe) -> Result<Subscription> {
        match self {
            Backend::Local(broker) => broker.subscribe_group(request).await,
            Backend::Cluster(cluster) => cluster.subscribe_group(request).await,
        }
    }

    /// As [`Broker::commit_offsets`].
    pub async fn commit_offsets(&self, group: &str, commits: Vec<OffsetCommit>) -> Result<()> {
        match self {
            Backend::Local(broker) => broker.commit_offsets(group, commits).await,
            Backend::Cluster(cluster) => cluster.commit_offsets(group, commits).await,
        }
    }

    /// As [`Broker::committed_offsets`].
    pub async fn committed_offsets(
        &self,
        group: &str,
        partitions: &[TopicPartition],
    ) -> Result<Vec<(TopicPartition, CommittedOffset)>> {
        match self {
            Backend::Local(broker) => broker.committed_offsets(group, partitions),
            Backend::Cluster(cluster) => cluster.committed_offsets(group, partitions).await,
        }
    }

    /// As [`Broker::list_groups`].
    pub async fn list_groups(&self) -> Result<Vec<GroupListing>> {
        match self {
            Backend::Local(broker) => Ok(broker.list_groups()),
            Backend::Cluster(cluster) => cluster.list_groups().await,
        }
    }

    /// As [`Broker::describe_group`].
    pub async fn describe_group(&self, group: &str) -> Result<GroupDescription> {
        match self {
            Backend::Local(broker) => broker.describe_group(group),
            Backend::Cluster(cluster) => cluster.describe_group(group).await,
        }
    }

    /// As [`Broker::get`]: a compacted topic's latest record for `key`. A Kafka cluster has no
    /// key lookup, so a cluster refuses it.
    pub async fn get(&self, topic: &str, key: &[u8]) -> Result<Option<ConsumerRecord>> {
        match self {
            Backend::Local(broker) => broker.get(topic, key).await,
            Backend::Cluster(_) => Err(BrokerError::InvalidRequest {
                reason: "looking a key up needs brook's own compacted log: a Kafka cluster has no \
                         key lookup (read the topic into a table instead)"
                    .into(),
            }),
        }
    }

    /// The partition count of `topic` (`UnknownTopic` when it does not exist): cheaper than a
    /// description on a cluster.
    pub async fn partition_count(&self, topic: &str) -> Result<u32> {
        match self {
            Backend::Local(broker) => Ok(broker.topic(topic)?.partition_count()),
            Backend::Cluster(cluster) => cluster.partition_count(topic).await,
        }
    }

    /// `topic`-`partition`'s log start offset and high watermark.
    pub async fn log_range(&self, topic: &str, partition: u32) -> Result<(u64, u64)> {
        match self {
            Backend::Local(broker) => {
                let handle = broker.topic(topic)?;
                let log = &handle.partition(partition)?.log;
                Ok((log.log_start_offset(), log.high_watermark()))
            }
            Backend::Cluster(cluster) => cluster.log_range(topic, partition).await,
        }
    }

    /// The metrics exposition text: every family this process recorded (the doors' requests,
    /// records in and out, ...), then the local log's state. A cluster's topics and groups are
    /// its own exporters' to report: a gateway reports its doors.
    pub fn metrics(&self) -> String {
        match self {
            Backend::Local(broker) => crate::metrics::encode(broker),
            Backend::Cluster(_) => brook_metrics::encode(|_| {}),
        }
    }

    /// As [`Broker::add_partitions`].
    pub async fn add_partitions(
        &self,
        topic: &str,
        partitions: u32,
        validate_only: bool,
    ) -> Result<TopicDescription> {
        match self {
            Backend::Local(broker) => {
                broker
                    .add_partitions(topic, partitions, validate_only)
                    .await
            }
            Backend::Cluster(cluster) => Err(cluster_admin(
                cluster.as_ref(),
                "kafka-topics --alter --partitions",
            )),
        }
    }

    /// As [`Broker::alter_topic_config`].
    pub async fn alter_topic_config(
        &self,
        topic: &str,
        changes: Vec<ConfigChange>,
        validate_only: bool,
    ) -> Result<TopicDescription> {
        match self {
            Backend::Local(broker) => {
                broker
                    .alter_topic_config(topic, changes, validate_only)
                    .await
            }
            Backend::Cluster(cluster) => {
                Err(cluster_admin(cluster.as_ref(), "kafka-configs --alter"))
            }
        }
    }

    /// As [`Broker::trim_topic`].
    pub async fn trim_topic(
        &self,
        topic: &str,
        partition: Option<u32>,
        before: Option<u64>,
    ) -> Result<Vec<(u32, u64)>> {
        match self {
            Backend::Local(broker) => broker.trim_topic(topic, partition, before).await,
            Backend::Cluster(cluster) => {
                Err(cluster_admin(cluster.as_ref(), "kafka-delete-records"))
            }
        }
    }

    /// As [`Broker::delete_group`].
    pub async fn delete_group(&self, group: &str) -> Result<()> {
        match self {
            Backend::Local(broker) => broker.delete_group(group).await,
            Backend::Cluster(cluster) => Err(cluster_admin(
                cluster.as_ref(),
                "kafka-consumer-groups --delete",
            )),
        }
    }

    /// As [`Broker::delete_committed_offsets`].
    pub async fn delete_committed_offsets(
        &self,
        group: &str,
        partitions: &[TopicPartition],
    ) -> Result<()> {
        match self {
            Backend::Local(broker) => broker.delete_committed_offsets(group, partitions).await,
            Backend::Cluster(cluster) => Err(cluster_admin(
                cluster.as_ref(),
                "kafka-consumer-groups --delete-offsets",
            )),
        }
    }

    /// As [`Broker::seek_group`]. On a cluster, offsets are moved with the cluster's own tools
    /// (`kafka-consumer-groups --reset-offsets`), which this refuses saying so.
    pub async fn seek_group(
        &self,
        group: &str,
        to: SeekTo,
        topics: &[String],
        dry_run: bool,
    ) -> Result<Vec<Seek>> {
        self.seek_group_checked(group, to, topics, dry_run, |_| Ok(()))
            .await
    }

    /// As [`Broker::seek_group_checked`]; refused on a cluster as [`Backend::seek_group`] is.
    pub async fn seek_group_checked<F>(
        &self,
        group: &str,
        to: SeekTo,
        topics: &[String],
        dry_run: bool,
        check: F,
    ) -> Result<Vec<Seek>>
    where
        F: FnOnce(&[Seek]) -> Result<()>,
    {
        match self {
            Backend::Local(broker) => {
                broker
                    .seek_group_checked(group, to, topics, dry_run, check)
                    .await
            }
            Backend::Cluster(cluster) => Err(cluster_admin(
                cluster.as_ref(),
                "kafka-consumer-groups --reset-offsets",
            )),
        }
    }

    /// As [`Broker::close`]; a cluster flushes what it is still sending.
    pub async fn close(&self) -> Result<()> {
        match self {
            Backend::Local(broker) => broker.close().await,
            Backend::Cluster(cluster) => cluster.close().await,
        }
    }
}

/// The refusal of an administrative change a gateway leaves to the cluster's own tools (`tool`).
fn cluster_admin(cluster: &dyn Cluster, tool: &str) -> BrokerError {
    BrokerError::InvalidRequest {
        reason: format!(
            "this change is not made through a gateway to {}: use the cluster's own tools ({tool})",
            cluster.url()
        ),
    }
}
