//! Topic administration: CreateTopics (key 19), DeleteTopics (key 20), CreatePartitions
//! (key 37) and DeleteRecords (key 21). Configs are `configs`.
//!
//! A topic grown by CreatePartitions routes keyed records by the new count from then on, as in
//! Kafka (the murmur2 partitioner takes the count), and groups subscribed to it rebalance.
//! DeleteRecords moves a partition's log start forward: reads below it fail with
//! `OFFSET_OUT_OF_RANGE` on every door.

use brook_broker::{BrokerError, NewTopic, TopicConfig, TopicDescription};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteRecordsRequest, DeleteRecordsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use crate::api::configs::{overridden_keys, source};
use crate::codes;
use crate::state::{ListenerState, NODE_ID};
use crate::topic_config::{self, SETTINGS};

/// DeleteRecords' offset for "up to the high watermark".
const HIGH_WATERMARK: i64 = -1;

fn text(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

pub(crate) async fn create_topics(
    door: &ListenerState,
    request: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let mut response = CreateTopicsResponse::default();
    for topic in request.topics {
        let mut result = CreatableTopicResult::default();
        result.name = topic.name.clone();
        match create_one(door, topic, request.validate_only).await {
            Ok(None) => {
                // validate_only: it would be created.
                result.num_partitions = -1;
                result.replication_factor = 1;
            }
            Ok(Some(description)) => {
                result.topic_id = Uuid::from_bytes(description.id);
                result.num_partitions = description.partitions.len() as i32;
                result.replication_factor = 1;
                result.configs = Some(created_configs(&description));
            }
            Err((error, message)) => {
                result.error_code = error.code();
                result.error_message = Some(text(message));
                result.num_partitions = -1;
                result.replication_factor = -1;
            }
        }
        response.topics.push(result);
    }
    response
}

/// Creates one topic; with `validate_only`, checks that it could be (and answers `None`).
async fn create_one(
    door: &ListenerState,
    topic: CreatableTopic,
    validate_only: bool,
) -> Result<Option<TopicDescription>, (ResponseError, String)> {
    let name = topic.name.0.to_string();
    if !matches!(topic.replication_factor, -1 | 1) {
        return Err((
            ResponseError::InvalidReplicationFactor,
            format!(
                "replication factor {} is not possible on a single node; use 1 or -1",
                topic.replication_factor
            ),
        ));
    }
    if !topic.assignments.is_empty() {
        return Err((
            ResponseError::InvalidReplicaAssignment,
            "manual replica assignment is not supported: brook is the only replica".into(),
        ));
    }
    let partitions = match topic.num_partitions {
        -1 => None,
        n if n > 0 => Some(n as u32),
        n => {
            return Err((
                ResponseError::InvalidPartitions,
                format!("{n} partitions: must be at least 1 (or -1 for the default)"),
            ))
        }
    };
    let mut config = TopicConfig::default();
    for entry in &topic.configs {
        let Some(setting) = topic_config::lookup(&entry.name) else {
            return Err((
                ResponseError::InvalidConfig,
                format!(
                    "unknown or unsupported topic config {:?}",
                    entry.name.as_str()
                ),
            ));
        };
        let Some(value) = &entry.value else {
            continue; // null: the default
        };
        setting
            .apply(&mut config, value)
            .map_err(|message| (ResponseError::InvalidConfig, message))?;
    }
    let broker_error = |e: BrokerError| (codes::error_code(&e), e.to_string());
    if validate_only {
        brook_broker::validate_topic_name(&name).map_err(broker_error)?;
        return match door.broker.describe_topic(&name) {
            Ok(_) => Err(broker_error(BrokerError::TopicExists { topic: name })),
            Err(_) => Ok(None),
        };
    }
    door.broker
        .create_topic(NewTopic {
            name,
            partitions,
            config,
        })
        .await
        .map(Some)
        .map_err(broker_error)
}

fn created_configs(description: &TopicDescription) -> Vec<CreatableTopicConfigs> {
    let overridden = overridden_keys(description);
    SETTINGS
        .iter()
        .map(|setting| {
            let mut config = CreatableTopicConfigs::default();
            config.name = text(setting.name);
            config.value = Some(text(setting.value(&description.config)));
            config.config_source = source(setting, &overridden);
            config
        })
        .collect()
}

pub(crate) async fn delete_topics(
    door: &ListenerState,
    request: DeleteTopicsRequest,
    version: i16,
) -> DeleteTopicsResponse {
    // Version 6 names topics by state (name or id); earlier versions by name only.
    let names: Vec<Option<TopicName>> = if version >= 6 {
        request.topics.into_iter().map(|t| t.name).collect()
    } else {
        request.topic_names.into_iter().map(Some).collect()
    };
    let mut response = DeleteTopicsResponse::default();
    for name in names {
        let mut result = DeletableTopicResult::default();
        match &name {
            Some(topic) => {
                if let Ok(description) = door.broker.describe_topic(&topic.0) {
                    result.topic_id = Uuid::from_bytes(description.id);
                }
                if let Err(err) = door.broker.delete_topic(&topic.0).await {
                    result.error_code = codes::code(&err);
                    result.error_message = Some(text(err.to_string()));
                }
            }
            None => result.error_code = ResponseError::UnknownTopicId.code(),
        }
        result.name = name;
        response.responses.push(result);
    }
    response
}

pub(crate) async fn create_partitions(
    door: &ListenerState,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let mut response = CreatePartitionsResponse::default();
    let mut seen: Vec<TopicName> = Vec::new();
    for topic in request.topics {
        let mut result = CreatePartitionsTopicResult::default();
        let outcome = if seen.contains(&topic.name) {
            Err((
                ResponseError::InvalidRequest,
                "the topic is named twice in one request".to_owned(),
            ))
        } else {
            seen.push(topic.name.clone());
            grow(
                door,
                &topic.name,
                topic.count,
                topic.assignments.as_deref(),
                request.validate_only,
            )
            .await
        };
        if let Err((error, message)) = outcome {
            result.error_code = error.code();
            result.error_message = Some(text(message));
        }
        result.name = topic.name;
        response.results.push(result);
    }
    response
}

/// Grows one topic to `count` partitions; assignments may only name brook itself.
async fn grow(
    door: &ListenerState,
    topic: &str,
    count: i32,
    assignments: Option<
        &[kafka_protocol::messages::create_partitions_request::CreatePartitionsAssignment],
    >,
    validate_only: bool,
) -> Result<(), (ResponseError, String)> {
    let count = u32::try_from(count).map_err(|_| {
        (
            ResponseError::InvalidPartitions,
            format!("{count} partitions: the count must be positive"),
        )
    })?;
    let only_brook =
        |a: &kafka_protocol::messages::create_partitions_request::CreatePartitionsAssignment| {
            a.broker_ids.len() == 1 && a.broker_ids[0].0 == NODE_ID
        };
    if assignments.is_some_and(|all| !all.iter().all(only_brook)) {
        return Err((
            ResponseError::InvalidReplicaAssignment,
            format!("brook is the only replica: each new partition's replicas must be [{NODE_ID}]"),
        ));
    }
    door.broker
        .add_partitions(topic, count, validate_only)
        .await
        .map(drop)
        .map_err(|e| (codes::error_code(&e), e.to_string()))
}

pub(crate) async fn delete_records(
    door: &ListenerState,
    request: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let mut response = DeleteRecordsResponse::default();
    for topic in request.topics {
        let mut result = DeleteRecordsTopicResult::default();
        for asked in &topic.partitions {
            let mut partition = DeleteRecordsPartitionResult::default();
            partition.partition_index = asked.partition_index;
            partition.low_watermark = -1;
            match delete_below(door, &topic.name, asked.partition_index, asked.offset).await {
                Ok(start) => partition.low_watermark = start as i64,
                Err(error) => partition.error_code = error.code(),
            }
            result.partitions.push(partition);
        }
        result.name = topic.name;
        response.topics.push(result);
    }
    response
}

/// Deletes one partition's records below `offset` (-1: the high watermark); the new log start.
async fn delete_below(
    door: &ListenerState,
    topic: &str,
    partition: i32,
    offset: i64,
) -> Result<u64, ResponseError> {
    let Ok(partition) = u32::try_from(partition) else {
        return Err(ResponseError::UnknownTopicOrPartition);
    };
    let offset = match offset {
        HIGH_WATERMARK => {
            door.broker
                .describe_topic(topic)
                .map_err(|e| codes::error_code(&e))?
                .partitions
                .get(partition as usize)
                .ok_or(ResponseError::UnknownTopicOrPartition)?
                .high_watermark
        }
        offset => u64::try_from(offset).map_err(|_| ResponseError::OffsetOutOfRange)?,
    };
    door.broker
        .delete_records(topic, partition, offset)
        .await
        .map_err(|e| codes::error_code(&e))
}
