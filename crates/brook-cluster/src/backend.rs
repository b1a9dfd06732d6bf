//! The Kafka cluster as the doors' backend: [`brook_broker::Cluster`] answered by
//! [`KafkaCluster`]'s calls of the same names, so `Backend::Cluster` serves gRPC and HTTP in
//! gateway mode, and the broker's request-reply runs over it (this cluster keeps its state).

use std::time::Duration;

use brook_broker::reqreply::Hub;
use brook_broker::BrokerConfig;
use brook_broker::{
    BatchAppended, Cluster, CommittedOffset, Fetched, GroupDescription, GroupListing,
    GroupSubscribe, ListedOffset, NewTopic, OffsetCommit, OffsetSpec, PartitionSubscribe,
    ProduceRecord, Produced, Result, Subscription, TopicDescription, TopicPartition, TopicSummary,
};
use bytes::Bytes;
use futures::future::{BoxFuture, FutureExt};
use tokio::sync::watch;

use crate::cluster::KafkaCluster;

impl Cluster for KafkaCluster {
    fn url(&self) -> String {
        self.inner.config.url()
    }

    fn create_topic(&self, new: NewTopic) -> BoxFuture<'_, Result<TopicDescription>> {
        KafkaCluster::create_topic(self, new).boxed()
    }

    fn delete_topic<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>> {
        KafkaCluster::delete_topic(self, name).boxed()
    }

    fn list_topics(&self) -> BoxFuture<'_, Result<Vec<TopicSummary>>> {
        KafkaCluster::list_topics(self).boxed()
    }

    fn describe_topic<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<TopicDescription>> {
        KafkaCluster::describe_topic(self, name).boxed()
    }

    fn produce(
        &self,
        topic: &str,
        records: Vec<ProduceRecord>,
    ) -> BoxFuture<'static, Result<Produced>> {
        KafkaCluster::produce(self, topic, records).boxed()
    }

    fn produce_batch(
        &self,
        topic: &str,
        partition: u32,
        batch: Bytes,
    ) -> BoxFuture<'static, Result<BatchAppended>> {
        KafkaCluster::produce_batch(self, topic, partition, batch).boxed()
    }

    fn fetch<'a>(
        &'a self,
        topic: &'a str,
        partition: u32,
        offset: u64,
        max_bytes: usize,
        max_wait: Duration,
    ) -> BoxFuture<'a, Result<Fetched>> {
        KafkaCluster::fetch(self, topic, partition, offset, max_bytes, max_wait).boxed()
    }

    fn list_offset<'a>(
        &'a self,
        topic: &'a str,
        partition: u32,
        spec: OffsetSpec,
    ) -> BoxFuture<'a, Result<ListedOffset>> {
        KafkaCluster::list_offset(self, topic, partition, spec).boxed()
    }

    fn subscribe(&self, request: PartitionSubscribe) -> BoxFuture<'_, Result<Subscription>> {
        KafkaCluster::subscribe(self, request).boxed()
    }

    fn subscribe_group(&self, request: GroupSubscribe) -> BoxFuture<'_, Result<Subscription>> {
        KafkaCluster::subscribe_group(self, request).boxed()
    }

    fn commit_offsets<'a>(
        &'a self,
        group: &'a str,
        commits: Vec<OffsetCommit>,
    ) -> BoxFuture<'a, Result<()>> {
        KafkaCluster::commit_offsets(self, group, commits).boxed()
    }

    fn committed_offsets<'a>(
        &'a self,
        group: &'a str,
        partitions: &'a [TopicPartition],
    ) -> BoxFuture<'a, Result<Vec<(TopicPartition, CommittedOffset)>>> {
        KafkaCluster::committed_offsets(self, group, partitions).boxed()
    }

    fn list_groups(&self) -> BoxFuture<'_, Result<Vec<GroupListing>>> {
        KafkaCluster::list_groups(self).boxed()
    }

    fn describe_group<'a>(&'a self, group: &'a str) -> BoxFuture<'a, Result<GroupDescription>> {
        KafkaCluster::describe_group(self, group).boxed()
    }

    fn partition_count<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<u32>> {
        KafkaCluster::partition_count(self, topic).boxed()
    }

    fn log_range<'a>(
        &'a self,
        topic: &'a str,
        partition: u32,
    ) -> BoxFuture<'a, Result<(u64, u64)>> {
        async move {
            self.check_partition(topic, partition).await?;
            self.watermarks(topic, partition).await
        }
        .boxed()
    }

    fn config(&self) -> &BrokerConfig {
        &self.inner.config.broker
    }

    fn reqreply_hub(&self) -> &Hub {
        &self.inner.reqreply
    }

    fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.inner.shutdown.subscribe()
    }

    fn close(&self) -> BoxFuture<'_, Result<()>> {
        KafkaCluster::close(self).boxed()
    }
}
