//! Topic and consumer-group administration: thin, typed wrappers over the admin RPCs.
//!
//! Descriptions are returned as the protobuf messages themselves ([`crate::proto`]): they are
//! documented field by field in `proto/brook/v1/admin.proto`, and a copy in other types would
//! only drift from them.

use std::collections::BTreeMap;

use brook_proto::v1;

use crate::client::{call, Client};
use crate::error::{ClientError, Result};
use crate::record::TopicPartition;

/// A topic to create.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewTopic {
    pub name: String,
    /// Number of partitions; 0: the server's default.
    pub partitions: u32,
    /// Settings that differ from the server's defaults (absent fields inherit them).
    pub config: v1::TopicConfig,
    /// Settings by Kafka's name (`retention.ms`; brook's own names are aliases), values as
    /// Kafka writes them (`-1` for no limit); applied after `config`.
    pub configs: BTreeMap<String, String>,
    /// Succeed without change when the topic exists (else `AlreadyExists`).
    pub if_not_exists: bool,
}

impl NewTopic {
    pub fn new(name: impl Into<String>, partitions: u32) -> Self {
        NewTopic {
            name: name.into(),
            partitions,
            ..Self::default()
        }
    }
}

/// Administration calls on one connection.
#[derive(Debug, Clone)]
pub struct Admin {
    client: Client,
}

impl Admin {
    pub(crate) fn new(client: Client) -> Self {
        Admin { client }
    }

    /// Creates a topic and returns its description.
    pub async fn create_topic(&self, topic: NewTopic) -> Result<v1::TopicDescription> {
        const OPERATION: &str = "create topic";
        let request = v1::CreateTopicRequest {
            topic: topic.name,
            partitions: topic.partitions,
            config: Some(topic.config),
            if_not_exists: topic.if_not_exists,
            configs: topic
                .configs
                .into_iter()
                .map(|(key, value)| v1::ConfigSetting { key, value })
                .collect(),
        };
        let response = call(OPERATION, self.client.grpc().create_topic(request)).await?;
        response
            .topic
            .ok_or_else(|| ClientError::protocol(OPERATION, "no topic in the answer"))
    }

    /// Deletes a topic and all its data.
    pub async fn delete_topic(&self, topic: &str) -> Result<()> {
        let request = v1::DeleteTopicRequest {
            topic: topic.to_owned(),
        };
        call("delete topic", self.client.grpc().delete_topic(request)).await?;
        Ok(())
    }

    /// Every topic with its partition count, sorted by name.
    pub async fn list_topics(&self) -> Result<Vec<v1::TopicSummary>> {
        let request = v1::ListTopicsRequest {};
        let response = call("list topics", self.client.grpc().list_topics(request)).await?;
        Ok(response.topics)
    }

    /// A topic's partitions (offsets, sizes) and effective settings.
    pub async fn describe_topic(&self, topic: &str) -> Result<v1::TopicDescription> {
        const OPERATION: &str = "describe topic";
        let request = v1::DescribeTopicRequest {
            topic: topic.to_owned(),
        };
        let response = call(OPERATION, self.client.grpc().describe_topic(request)).await?;
        response
            .topic
            .ok_or_else(|| ClientError::protocol(OPERATION, "no topic in the answer"))
    }

    /// Every consumer group (with members or committed offsets), sorted by id.
    pub async fn list_groups(&self) -> Result<Vec<v1::GroupSummary>> {
        let request = v1::ListGroupsRequest {};
        let response = call("list groups", self.client.grpc().list_groups(request)).await?;
        Ok(response.groups)
    }

    /// A group's members, assignments, committed offsets and lag.
    pub async fn describe_group(&self, group: &str) -> Result<v1::DescribeGroupResponse> {
        let request = v1::DescribeGroupRequest {
            group_id: group.to_owned(),
        };
        call("describe group", self.client.grpc().describe_group(request)).await
    }

    /// Records `group`'s position (the next offset it will consume) in some partitions; all or
    /// nothing, durable when this returns.
    pub async fn commit_offsets(&self, group: &str, offsets: Vec<v1::OffsetCommit>) -> Result<()> {
        let request = v1::CommitOffsetsRequest {
            group_id: group.to_owned(),
            offsets,
        };
        call("commit offsets", self.client.grpc().commit_offsets(request)).await?;
        Ok(())
    }

    /// `group`'s committed offsets in `partitions` (empty: every partition it committed).
    /// Partitions without a commit are left out.
    pub async fn fetch_offsets(
        &self,
        group: &str,
        partitions: &[TopicPartition],
    ) -> Result<Vec<v1::CommittedOffset>> {
        let request = v1::FetchOffsetsRequest {
            group_id: group.to_owned(),
            partitions: group_by_topic(partitions),
        };
        let response = call("fetch offsets", self.client.grpc().fetch_offsets(request)).await?;
        Ok(response.offsets)
    }

    /// The transactional ids the server's transaction coordinator knows, sorted, filtered by
    /// state (Kafka's names: `Ongoing`, `CompleteCommit`, ...) when `states` is not empty.
    pub async fn list_transactions(
        &self,
        states: Vec<String>,
    ) -> Result<Vec<v1::TransactionListing>> {
        let request = v1::ListTransactionsRequest {
            states,
            ..Default::default()
        };
        let response = call(
            "list transactions",
            self.client.grpc().list_transactions(request),
        )
        .await?;
        Ok(response.transactions)
    }

    /// One transactional id's producer, state, timeout and open partitions.
    pub async fn describe_transaction(
        &self,
        transactional_id: &str,
    ) -> Result<v1::DescribeTransactionResponse> {
        let request = v1::DescribeTransactionRequest {
            transactional_id: transactional_id.to_owned(),
        };
        call(
            "describe transaction",
            self.client.grpc().describe_transaction(request),
        )
        .await
    }

    /// One partition's producers, open transactions and last stable offset.
    pub async fn describe_producers(
        &self,
        topic: &str,
        partition: u32,
    ) -> Result<v1::DescribeProducersResponse> {
        let request = v1::DescribeProducersRequest {
            topic: topic.to_owned(),
            partition,
        };
        call(
            "describe producers",
            self.client.grpc().describe_producers(request),
        )
        .await
    }
}

impl Admin {
    /// Grows `topic` to `partitions` partitions (Kafka's CreatePartitions); with
    /// `validate_only`, only checks. Returns the topic as it is now.
    pub async fn add_partitions(
        &self,
        topic: &str,
        partitions: u32,
        validate_only: bool,
    ) -> Result<v1::TopicDescription> {
        const OPERATION: &str = "add partitions";
        let request = v1::AddPartitionsRequest {
            topic: topic.to_owned(),
            partitions,
            validate_only,
        };
        let response = call(OPERATION, self.client.grpc().add_partitions(request)).await?;
        response
            .topic
            .ok_or_else(|| ClientError::protocol(OPERATION, "no topic in the answer"))
    }

    /// Changes `topic`'s settings, live and durably (Kafka's IncrementalAlterConfigs): keys by
    /// Kafka's name (brook's are aliases), all or nothing. Returns the topic as it is now.
    pub async fn alter_topic_config(
        &self,
        topic: &str,
        changes: Vec<v1::ConfigChange>,
        validate_only: bool,
    ) -> Result<v1::TopicDescription> {
        const OPERATION: &str = "alter topic config";
        let request = v1::AlterTopicConfigRequest {
            topic: topic.to_owned(),
            changes,
            validate_only,
        };
        let response = call(OPERATION, self.client.grpc().alter_topic_config(request)).await?;
        response
            .topic
            .ok_or_else(|| ClientError::protocol(OPERATION, "no topic in the answer"))
    }

    /// Deletes `topic`'s records below `before` (`None`: up to the high watermark) in one
    /// partition or, with `None`, every partition (Kafka's DeleteRecords). Returns each
    /// partition's log start offset afterwards.
    pub async fn delete_records(
        &self,
        topic: &str,
        partition: Option<u32>,
        before: Option<u64>,
    ) -> Result<Vec<v1::PartitionLogStart>> {
        let request = v1::DeleteRecordsRequest {
            topic: topic.to_owned(),
            partition,
            before_offset: before,
        };
        let response = call("delete records", self.client.grpc().delete_records(request)).await?;
        Ok(response.partitions)
    }

    /// Deletes a group without live members: its committed offsets (Kafka's DeleteGroups).
    pub async fn delete_group(&self, group: &str) -> Result<()> {
        let request = v1::DeleteGroupRequest {
            group_id: group.to_owned(),
        };
        call("delete group", self.client.grpc().delete_group(request)).await?;
        Ok(())
    }

    /// Deletes `group`'s committed offsets in `partitions` (Kafka's OffsetDelete).
    pub async fn delete_group_offsets(
        &self,
        group: &str,
        partitions: &[TopicPartition],
    ) -> Result<()> {
        let request = v1::DeleteGroupOffsetsRequest {
            group_id: group.to_owned(),
            partitions: group_by_topic(partitions),
        };
        call(
            "delete group offsets",
            self.client.grpc().delete_group_offsets(request),
        )
        .await?;
        Ok(())
    }

    /// Moves a group's committed offsets (kafka-consumer-groups --reset-offsets): in every
    /// partition of `topics`, or of every partition it committed when `topics` is empty. With
    /// `dry_run`, only says where they would go.
    pub async fn seek_group(
        &self,
        group: &str,
        to: v1::seek_group_request::To,
        topics: &[String],
        dry_run: bool,
    ) -> Result<Vec<v1::GroupSeek>> {
        let request = v1::SeekGroupRequest {
            group_id: group.to_owned(),
            topics: topics.to_vec(),
            to: Some(to),
            dry_run,
        };
        let response = call("seek group", self.client.grpc().seek_group(request)).await?;
        Ok(response.partitions)
    }
}

/// The wire's grouping of partitions: one entry per topic, partitions ascending.
fn group_by_topic(partitions: &[TopicPartition]) -> Vec<v1::TopicPartitions> {
    let mut by_topic: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    for tp in partitions {
        by_topic.entry(&tp.topic).or_default().push(tp.partition);
    }
    by_topic
        .into_iter()
        .map(|(topic, mut partitions)| {
            partitions.sort_unstable();
            partitions.dedup();
            v1::TopicPartitions {
                topic: topic.to_owned(),
                partitions,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_grouped_per_topic_sorted_and_deduplicated() {
        let tps = [
            TopicPartition::new("b", 1),
            TopicPartition::new("a", 2),
            TopicPartition::new("a", 0),
            TopicPartition::new("a", 2),
        ];
        let grouped = group_by_topic(&tps);
        assert_eq!(grouped.len(), 2);
        assert_eq!(
            (grouped[0].topic.as_str(), &grouped[0].partitions[..]),
            ("a", &[0, 2][..])
        );
        assert_eq!(
            (grouped[1].topic.as_str(), &grouped[1].partitions[..]),
            ("b", &[1][..])
        );
    }
}
