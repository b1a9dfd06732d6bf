//! The calls a backend other than the local log answers: what a door may ask of a Kafka
//! cluster in gateway mode.
//!
//! Object-safe (boxed futures), so [`super::Backend`] holds any implementation behind one
//! pointer and the doors never name it; the dispatch is one per request, never per record. The
//! arguments, answers and errors are the local broker's own types, and each call promises what
//! [`crate::Broker`]'s call of the same name promises, save what the implementation documents
//! it cannot do (with an error saying so).

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use tokio::sync::watch;

use crate::error::Result;
use crate::group_admin::OffsetCommit;
use crate::produce::Produced;
use crate::reqreply::Hub;
use crate::subscribe::{GroupSubscribe, PartitionSubscribe, Subscription};
use crate::types::{
    BatchAppended, CommittedOffset, Fetched, GroupDescription, GroupListing, ListedOffset,
    NewTopic, OffsetSpec, ProduceRecord, TopicDescription, TopicPartition,
};
use crate::TopicSummary;

/// A cluster the doors serve instead of the local log. See the module docs.
pub trait Cluster: Send + Sync + fmt::Debug + 'static {
    /// Where the cluster is, for logs and the console (`kafka://HOST:PORT,...`).
    fn url(&self) -> String;

    /// The broker settings the gateway runs with: its limits, request-reply settings, topic
    /// creation defaults.
    fn config(&self) -> &crate::BrokerConfig;

    fn create_topic(&self, new: NewTopic) -> BoxFuture<'_, Result<TopicDescription>>;

    fn delete_topic<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>>;

    fn list_topics(&self) -> BoxFuture<'_, Result<Vec<TopicSummary>>>;

    fn describe_topic<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<TopicDescription>>;

    /// As [`crate::Broker::produce`]: the records are ordered at call time, so calls made one
    /// after another keep their order per partition while their futures are awaited together.
    fn produce(
        &self,
        topic: &str,
        records: Vec<ProduceRecord>,
    ) -> BoxFuture<'static, Result<Produced>>;

    /// As [`crate::Broker::produce_batch`], ordered at call time likewise.
    fn produce_batch(
        &self,
        topic: &str,
        partition: u32,
        batch: Bytes,
    ) -> BoxFuture<'static, Result<BatchAppended>>;

    fn fetch<'a>(
        &'a self,
        topic: &'a str,
        partition: u32,
        offset: u64,
        max_bytes: usize,
        max_wait: Duration,
    ) -> BoxFuture<'a, Result<Fetched>>;

    fn list_offset<'a>(
        &'a self,
        topic: &'a str,
        partition: u32,
        spec: OffsetSpec,
    ) -> BoxFuture<'a, Result<ListedOffset>>;

    fn subscribe(&self, request: PartitionSubscribe) -> BoxFuture<'_, Result<Subscription>>;

    fn subscribe_group(&self, request: GroupSubscribe) -> BoxFuture<'_, Result<Subscription>>;

    fn commit_offsets<'a>(
        &'a self,
        group: &'a str,
        commits: Vec<OffsetCommit>,
    ) -> BoxFuture<'a, Result<()>>;

    fn committed_offsets<'a>(
        &'a self,
        group: &'a str,
        partitions: &'a [TopicPartition],
    ) -> BoxFuture<'a, Result<Vec<(TopicPartition, CommittedOffset)>>>;

    fn list_groups(&self) -> BoxFuture<'_, Result<Vec<GroupListing>>>;

    fn describe_group<'a>(&'a self, group: &'a str) -> BoxFuture<'a, Result<GroupDescription>>;

    /// The partition count of `topic` (`UnknownTopic` when it has none).
    fn partition_count<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<u32>>;

    /// `topic`-`partition`'s log start offset and high watermark.
    fn log_range<'a>(&'a self, topic: &'a str, partition: u32)
        -> BoxFuture<'a, Result<(u64, u64)>>;

    /// Request-reply's state on this cluster: the backend keeps it, request-reply runs it.
    fn reqreply_hub(&self) -> &Hub;

    /// Turns `true` once the cluster is closed: calls waiting for replies end.
    fn shutdown_signal(&self) -> watch::Receiver<bool>;

    /// Lets go of the cluster: what is still being sent is flushed first.
    fn close(&self) -> BoxFuture<'_, Result<()>>;
}
