//! Configs: DescribeConfigs (key 32), AlterConfigs (key 33) and IncrementalAlterConfigs
//! (key 44), with Kafka's config names over brook's settings (`topic_config`, itself over
//! brook-log's one table of topic settings).
//!
//! A topic's configs change live and persist (the broker writes the topic file and hands the
//! new settings to every partition), so DescribeConfigs, `brook topic describe` and every other
//! door show the change at once. AlterConfigs replaces a topic's whole set of overrides (a
//! config it leaves out goes back to the broker's default, as in Kafka);
//! IncrementalAlterConfigs sets, deletes, appends to or subtracts from single configs. The
//! broker's own configs are set when `brook serve` starts (flags, `BROOK_*`, the TOML file)
//! and cannot change while it runs: altering one is refused with a message saying so.

use brook_broker::{BrokerError, ConfigChange, TopicConfig, TopicDescription};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::{alter_configs_response, incremental_alter_configs_response};
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;

use crate::codes;
use crate::state::{ListenerState, NODE_ID};
use crate::topic_config::{self, ConfigType, Op, Setting, SETTINGS};

/// Config resource types.
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
/// DescribeConfigs config sources.
const SOURCE_TOPIC_CONFIG: i8 = 1;
const SOURCE_DEFAULT_CONFIG: i8 = 5;
/// IncrementalAlterConfigs operations.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

/// A failed resource: the Kafka error and why, in words.
type Failure = (ResponseError, String);

fn text(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

fn broker_failure(err: BrokerError) -> Failure {
    (codes::error_code(&err), err.to_string())
}

/// The Kafka names of the configs `description` overrides.
pub(crate) fn overridden_keys(description: &TopicDescription) -> Vec<&str> {
    description.overrides.iter().map(|(key, _)| *key).collect()
}

/// Where a topic's value of `setting` comes from.
pub(crate) fn source(setting: &Setting, overridden: &[&str]) -> i8 {
    if setting.is_overridden(overridden) {
        SOURCE_TOPIC_CONFIG
    } else {
        SOURCE_DEFAULT_CONFIG
    }
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
            RESOURCE_BROKER => check_broker(&resource.resource_name).map(|()| broker_configs(door)),
            other => Err(unsupported_resource(other)),
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

fn unsupported_resource(resource_type: i8) -> Failure {
    (
        ResponseError::InvalidRequest,
        format!("resource type {resource_type} is not supported (topics: 2, the broker: 4)"),
    )
}

/// The broker resource names brook answers to: its node id, or empty (the cluster default).
fn check_broker(name: &str) -> Result<(), Failure> {
    if name.is_empty() || name == NODE_ID.to_string() {
        Ok(())
    } else {
        Err((
            ResponseError::InvalidRequest,
            format!("no broker {name:?}: brook is node {NODE_ID}"),
        ))
    }
}

fn topic_configs(
    door: &ListenerState,
    name: &str,
) -> Result<Vec<DescribeConfigsResourceResult>, Failure> {
    let description = door.broker.describe_topic(name).map_err(broker_failure)?;
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
    use ConfigType as T;
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

fn known(name: &str) -> Result<&'static Setting, Failure> {
    topic_config::lookup(name).ok_or_else(|| {
        (
            ResponseError::InvalidConfig,
            format!("unknown or unsupported topic config {name:?}"),
        )
    })
}

/// The broker's change for one config of a request, if any (see [`Setting::change`]).
fn change(name: &str, op: Op, value: Option<&str>) -> Result<Option<ConfigChange>, Failure> {
    let setting = known(name)?;
    let value = match (op, value) {
        (Op::Delete, _) => "",
        (_, Some(value)) => value,
        (_, None) => {
            return Err((
                ResponseError::InvalidRequest,
                format!("{name}: a null value is only for DELETE"),
            ))
        }
    };
    if matches!(op, Op::Append | Op::Subtract) && setting.config_type != ConfigType::List {
        return Err((
            ResponseError::InvalidConfig,
            format!("{op:?} is only for list configs, and {name} is not one"),
        ));
    }
    setting
        .change(op, value)
        .map_err(|reason| (ResponseError::InvalidConfig, reason))
}

/// Applies `changes` to topic `name`, all or none.
async fn alter_topic(
    door: &ListenerState,
    name: &str,
    changes: Vec<ConfigChange>,
    validate_only: bool,
) -> Result<(), Failure> {
    door.broker
        .alter_topic_config(name, changes, validate_only)
        .await
        .map(drop)
        .map_err(broker_failure)
}

/// Why a broker config cannot be altered: brook's are fixed at start.
fn broker_is_fixed(name: &str, keys: &[String]) -> Result<(), Failure> {
    check_broker(name)?;
    if keys.is_empty() {
        return Ok(());
    }
    Err((
        ResponseError::InvalidRequest,
        format!(
            "broker config {} cannot change while brook runs: set it with `brook serve` (a \
             flag, a BROOK_* variable or the TOML file; see docs/operations.md) and restart. \
             Topic configs change live.",
            keys.join(", ")
        ),
    ))
}

/// What one resource of an alter request asks: its type and name, the changes for a topic
/// (or why they cannot be made), and the config names (for a broker).
struct Alter {
    resource_type: i8,
    name: StrBytes,
    changes: Result<Vec<ConfigChange>, Failure>,
    keys: Vec<String>,
}

/// Applies one resource's changes (a topic's), or refuses them (a broker's);
/// `(error code, message)` for the response, `(0, None)` when done.
async fn alter_resource(
    door: &ListenerState,
    alter: Alter,
    validate_only: bool,
) -> (i16, Option<StrBytes>) {
    let outcome = match alter.resource_type {
        RESOURCE_TOPIC => match alter.changes {
            Ok(changes) => alter_topic(door, &alter.name, changes, validate_only).await,
            Err(failure) => Err(failure),
        },
        RESOURCE_BROKER => broker_is_fixed(&alter.name, &alter.keys),
        other => Err(unsupported_resource(other)),
    };
    match outcome {
        Ok(()) => (codes::NONE, None),
        Err((error, message)) => (error.code(), Some(text(message))),
    }
}

pub(crate) async fn alter_configs(
    door: &ListenerState,
    request: AlterConfigsRequest,
) -> AlterConfigsResponse {
    let mut response = AlterConfigsResponse::default();
    for resource in request.resources {
        let alter = Alter {
            resource_type: resource.resource_type,
            name: resource.resource_name.clone(),
            // The whole set is replaced: every override not given goes back to the default.
            changes: TopicConfig::KEYS
                .iter()
                .map(|key| Ok(Some(ConfigChange::unset(*key))))
                .chain(resource.configs.iter().map(|c| match &c.value {
                    Some(value) => change(&c.name, Op::Set, Some(value)),
                    None => change(&c.name, Op::Delete, None),
                }))
                .filter_map(Result::transpose)
                .collect(),
            keys: resource
                .configs
                .iter()
                .map(|c| c.name.to_string())
                .collect(),
        };
        let (error_code, error_message) = alter_resource(door, alter, request.validate_only).await;
        let mut result = alter_configs_response::AlterConfigsResourceResponse::default();
        result.resource_type = resource.resource_type;
        result.resource_name = resource.resource_name;
        result.error_code = error_code;
        result.error_message = error_message;
        response.responses.push(result);
    }
    response
}

pub(crate) async fn incremental_alter_configs(
    door: &ListenerState,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut response = IncrementalAlterConfigsResponse::default();
    for resource in request.resources {
        let alter = Alter {
            resource_type: resource.resource_type,
            name: resource.resource_name.clone(),
            changes: resource
                .configs
                .iter()
                .map(|c| incremental_change(&c.name, c.config_operation, c.value.as_deref()))
                .filter_map(Result::transpose)
                .collect(),
            keys: resource
                .configs
                .iter()
                .map(|c| c.name.to_string())
                .collect(),
        };
        let (error_code, error_message) = alter_resource(door, alter, request.validate_only).await;
        let mut result =
            incremental_alter_configs_response::AlterConfigsResourceResponse::default();
        result.resource_type = resource.resource_type;
        result.resource_name = resource.resource_name;
        result.error_code = error_code;
        result.error_message = error_message;
        response.responses.push(result);
    }
    response
}

/// One IncrementalAlterConfigs entry: the broker's change, if any.
fn incremental_change(
    name: &str,
    operation: i8,
    value: Option<&str>,
) -> Result<Option<ConfigChange>, Failure> {
    let op = match operation {
        OP_SET => Op::Set,
        OP_DELETE => Op::Delete,
        OP_APPEND => Op::Append,
        OP_SUBTRACT => Op::Subtract,
        other => {
            return Err((
                ResponseError::InvalidRequest,
                format!(
                    "{name}: config operation {other} is not 0 (SET), 1 (DELETE), 2 (APPEND) \
                     or 3 (SUBTRACT)"
                ),
            ))
        }
    };
    change(name, op, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incremental_operations_become_the_brokers_changes() {
        assert_eq!(
            incremental_change("retention.ms", OP_SET, Some("1000")),
            Ok(Some(ConfigChange::set("retention.ms", "1000")))
        );
        assert_eq!(
            incremental_change("retention_ms_max", OP_DELETE, None),
            Ok(Some(ConfigChange::unset("retention.ms"))),
            "by Kafka's name, whichever was given"
        );
        // cleanup.policy is a list: the broker appends to what the topic holds.
        assert_eq!(
            incremental_change("cleanup.policy", OP_APPEND, Some("compact")),
            Ok(Some(ConfigChange::Append {
                key: "cleanup.policy".into(),
                value: "compact".into()
            }))
        );
        assert!(matches!(
            incremental_change("compression.type", OP_SET, Some("gzip")),
            Err((ResponseError::InvalidConfig, _))
        ));
        assert!(matches!(
            incremental_change("retention.ms", OP_APPEND, Some("1")),
            Err((ResponseError::InvalidConfig, _))
        ));
        assert!(matches!(
            incremental_change("retention.ms", OP_SET, None),
            Err((ResponseError::InvalidRequest, _))
        ));
        assert!(matches!(
            incremental_change("retention.ms", 9, Some("1")),
            Err((ResponseError::InvalidRequest, _))
        ));
        assert!(matches!(
            incremental_change("no.such.config", OP_SET, Some("1")),
            Err((ResponseError::InvalidConfig, _))
        ));
    }

    #[test]
    fn broker_configs_are_refused_with_where_to_set_them() {
        let (error, message) = broker_is_fixed("1", &["log.retention.ms".into()]).unwrap_err();
        assert_eq!(error, ResponseError::InvalidRequest);
        assert!(message.contains("brook serve"), "{message}");
        assert!(broker_is_fixed("", &[]).is_ok(), "nothing to change");
        assert!(broker_is_fixed("7", &[]).is_err(), "no broker 7");
    }
}
