//! Topic administration: CreateTopics (key 19), DeleteTopics (key 20) and DescribeConfigs
//! (key 32), with Kafka's config names mapped onto brook's settings (`topic_config`).

use brook_broker::{BrokerError, NewTopic, TopicConfig, TopicDescription};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::{
    CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
    DescribeConfigsRequest, DescribeConfigsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use crate::codes;
use crate::state::{ListenerState, NODE_ID};
use crate::topic_config::{self, Setting, SETTINGS};

/// DescribeConfigs resource types.
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
/// DescribeConfigs config sources.
const SOURCE_TOPIC_CONFIG: i8 = 1;
const SOURCE_DEFAULT_CONFIG: i8 = 5;

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

fn overridden_keys(description: &TopicDescription) -> Vec<&str> {
    description.overrides.iter().map(|(key, _)| *key).collect()
}

fn source(setting: &Setting, overridden: &[&str]) -> i8 {
    if setting.is_overridden(overridden) {
        SOURCE_TOPIC_CONFIG
    } else {
        SOURCE_DEFAULT_CONFIG
    }
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
                } else {
                    door.producers.forget_topic(&topic.0);
                }
            }
            None => result.error_code = ResponseError::UnknownTopicId.code(),
        }
        result.name = name;
        response.responses.push(result);
    }
    response
}

pub(crate) fn describe_configs(
    door: &ListenerState,
    request: DescribeConfigsRequest,
    version: i16,
) -> DescribeConfigsResponse {
    let mut response = DescribeConfigsResponse::default();
    for resource in request.resources {
        let mut result = DescribeConfigsResult::default();
        result.resource_type = resource.resource_type;
        result.resource_name = resource.resource_name.clone();
        let wanted = |name: &str| {
            resource
                .configuration_keys
                .as_ref()
                .is_none_or(|keys| keys.iter().any(|k| k.as_str() == name))
        };
        let configs = match resource.resource_type {
            RESOURCE_TOPIC => topic_configs(door, &resource.resource_name),
            RESOURCE_BROKER
                if resource.resource_name.is_empty()
                    || resource.resource_name.as_str() == NODE_ID.to_string() =>
            {
                Ok(broker_configs(door))
            }
            RESOURCE_BROKER => Err((
                ResponseError::InvalidRequest,
                format!(
                    "no broker {:?}: brook is node {NODE_ID}",
                    resource.resource_name.as_str()
                ),
            )),
            other => Err((
                ResponseError::InvalidRequest,
                format!("resource type {other} is not supported"),
            )),
        };
        match configs {
            Ok(configs) => {
                result.configs = configs
                    .into_iter()
                    .filter(|c| wanted(&c.name))
                    .map(|mut c| {
                        if version < 3 {
                            c.documentation = None;
                        }
                        c
                    })
                    .collect();
            }
            Err((error, message)) => {
                result.error_code = error.code();
                result.error_message = Some(text(message));
            }
        }
        response.results.push(result);
    }
    response
}

fn topic_configs(
    door: &ListenerState,
    name: &str,
) -> Result<Vec<DescribeConfigsResourceResult>, (ResponseError, String)> {
    let description = door
        .broker
        .describe_topic(name)
        .map_err(|e| (codes::error_code(&e), e.to_string()))?;
    let overridden = overridden_keys(&description);
    Ok(SETTINGS
        .iter()
        .map(|setting| {
            let mut config = described(
                setting.name,
                setting.value(&description.config),
                setting.config_type as i8,
            );
            config.config_source = source(setting, &overridden);
            config.documentation = Some(text(setting.doc));
            config
        })
        .collect())
}

/// The broker-wide defaults, under the names Kafka's broker uses for them.
fn broker_configs(door: &ListenerState) -> Vec<DescribeConfigsResourceResult> {
    let config = door.broker.config();
    let log = &config.log;
    let topic_value = |name: &str| {
        topic_config::lookup(name)
            .map(|s| s.value(log))
            .unwrap_or_default()
    };
    use crate::topic_config::ConfigType as T;
    let entries: Vec<(&str, String, T)> = vec![
        (
            "auto.create.topics.enable",
            config.auto_create_topics.to_string(),
            T::Boolean,
        ),
        (
            "num.partitions",
            config.default_partitions.to_string(),
            T::Int,
        ),
        ("default.replication.factor", "1".into(), T::Int),
        ("log.retention.ms", topic_value("retention.ms"), T::Long),
        (
            "log.retention.bytes",
            topic_value("retention.bytes"),
            T::Long,
        ),
        ("log.segment.bytes", topic_value("segment.bytes"), T::Int),
        ("log.roll.ms", topic_value("segment.ms"), T::Long),
        (
            "message.max.bytes",
            topic_value("max.message.bytes"),
            T::Int,
        ),
        (
            "socket.request.max.bytes",
            door.config.request_bytes_max.to_string(),
            T::Int,
        ),
        (
            "max.connections",
            door.config.connections_max.to_string(),
            T::Int,
        ),
        (
            "group.initial.rebalance.delay.ms",
            door.config
                .group_initial_rebalance_delay
                .as_millis()
                .to_string(),
            T::Int,
        ),
        ("brook.durability", log.durability.to_string(), T::String),
    ];
    entries
        .into_iter()
        .map(|(name, value, config_type)| {
            let mut config = described(name, value, config_type as i8);
            config.config_source = SOURCE_DEFAULT_CONFIG;
            config.read_only = true;
            config
        })
        .collect()
}

fn described(name: &str, value: String, config_type: i8) -> DescribeConfigsResourceResult {
    let mut config = DescribeConfigsResourceResult::default();
    config.name = text(name);
    config.value = Some(text(value));
    config.config_type = config_type;
    config
}
