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

use brook_broker::{BrokerError, TopicConfig, TopicDescription};
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
use crate::topic_config::{self, ConfigType, Setting, SETTINGS};

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

/// One change to a topic's configs, checked against the config table.
#[derive(Debug, Clone)]
enum Change {
    Set(&'static Setting, String),
    Delete(&'static Setting),
    Append(&'static Setting, String),
    Subtract(&'static Setting, String),
}

impl Change {
    /// Applies the change to a topic's overrides; `current` is the value in force.
    fn apply(&self, overrides: &mut TopicConfig, current: &str) -> Result<(), String> {
        match self {
            Change::Set(setting, value) => setting.apply(overrides, value),
            Change::Delete(setting) => {
                setting.unset(overrides);
                Ok(())
            }
            Change::Append(setting, value) => {
                let mut items: Vec<&str> = list_items(current);
                for item in list_items(value) {
                    if !items.contains(&item) {
                        items.push(item);
                    }
                }
                setting.apply(overrides, &items.join(","))
            }
            Change::Subtract(setting, value) => {
                let gone = list_items(value);
                let items: Vec<&str> = list_items(current)
                    .into_iter()
                    .filter(|item| !gone.contains(item))
                    .collect();
                setting.apply(overrides, &items.join(","))
            }
        }
    }

    fn setting(&self) -> &'static Setting {
        match self {
            Change::Set(s, _)
            | Change::Delete(s)
            | Change::Append(s, _)
            | Change::Subtract(s, _) => s,
        }
    }
}

fn list_items(list: &str) -> Vec<&str> {
    list.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .collect()
}

fn known(name: &str) -> Result<&'static Setting, Failure> {
    topic_config::lookup(name).ok_or_else(|| {
        (
            ResponseError::InvalidConfig,
            format!("unknown or unsupported topic config {name:?}"),
        )
    })
}

/// Applies `changes` to topic `name` (all or none), starting from no overrides at all when
/// `replace` (AlterConfigs), else from the topic's own.
async fn alter_topic(
    door: &ListenerState,
    name: &str,
    changes: Vec<Change>,
    replace: bool,
    validate_only: bool,
) -> Result<(), Failure> {
    door.broker
        .alter_topic_config(name, validate_only, move |overrides, defaults| {
            if replace {
                *overrides = TopicConfig::default();
            }
            for change in &changes {
                let current = change.setting().value(&overrides.merged_over(defaults));
                change
                    .apply(overrides, &current)
                    .map_err(|reason| BrokerError::InvalidConfig { reason })?;
            }
            Ok(())
        })
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
    changes: Result<Vec<Change>, Failure>,
    keys: Vec<String>,
}

/// Applies one resource's changes: a topic's (with `replace`: AlterConfigs' whole set), or
/// refuses a broker's; `(error code, message)` for the response, `(0, None)` when done.
async fn alter_resource(
    door: &ListenerState,
    alter: Alter,
    replace: bool,
    validate_only: bool,
) -> (i16, Option<StrBytes>) {
    let outcome = match alter.resource_type {
        RESOURCE_TOPIC => match alter.changes {
            Ok(changes) => alter_topic(door, &alter.name, changes, replace, validate_only).await,
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
            changes: resource
                .configs
                .iter()
                .map(|c| {
                    let setting = known(&c.name)?;
                    Ok(match &c.value {
                        Some(value) => Change::Set(setting, value.to_string()),
                        None => Change::Delete(setting),
                    })
                })
                .collect(),
            keys: resource
                .configs
                .iter()
                .map(|c| c.name.to_string())
                .collect(),
        };
        let (error_code, error_message) =
            alter_resource(door, alter, true, request.validate_only).await;
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
                .collect(),
            keys: resource
                .configs
                .iter()
                .map(|c| c.name.to_string())
                .collect(),
        };
        let (error_code, error_message) =
            alter_resource(door, alter, false, request.validate_only).await;
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

/// One IncrementalAlterConfigs entry as a [`Change`]; APPEND and SUBTRACT only for lists.
fn incremental_change(name: &str, operation: i8, value: Option<&str>) -> Result<Change, Failure> {
    let setting = known(name)?;
    let value = || {
        value.map(str::to_owned).ok_or_else(|| {
            (
                ResponseError::InvalidRequest,
                format!("{name}: a null value is only for DELETE"),
            )
        })
    };
    let list_only = |op: &str| {
        if setting.config_type == ConfigType::List {
            Ok(())
        } else {
            Err((
                ResponseError::InvalidConfig,
                format!("{op} is only for list configs, and {name} is not one"),
            ))
        }
    };
    match operation {
        OP_SET => Ok(Change::Set(setting, value()?)),
        OP_DELETE => Ok(Change::Delete(setting)),
        OP_APPEND => {
            list_only("APPEND")?;
            Ok(Change::Append(setting, value()?))
        }
        OP_SUBTRACT => {
            list_only("SUBTRACT")?;
            Ok(Change::Subtract(setting, value()?))
        }
        other => Err((
            ResponseError::InvalidRequest,
            format!("{name}: config operation {other} is not 0 (SET), 1 (DELETE), 2 (APPEND) or 3 (SUBTRACT)"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use brook_broker::LogConfig;

    #[test]
    fn incremental_operations_apply_to_overrides() {
        let defaults = LogConfig::default();
        let mut overrides = TopicConfig::default();
        let set = incremental_change("retention.ms", OP_SET, Some("1000")).expect("set");
        set.apply(&mut overrides, "").expect("applies");
        assert_eq!(overrides.retention_ms_max, Some(Some(1000)));
        let delete = incremental_change("retention_ms_max", OP_DELETE, None).expect("alias");
        delete.apply(&mut overrides, "").expect("applies");
        assert_eq!(overrides, TopicConfig::default());
        // cleanup.policy is a list: appending what it already holds changes nothing.
        let append = incremental_change("cleanup.policy", OP_APPEND, Some("delete")).expect("list");
        let current = append.setting().value(&overrides.merged_over(&defaults));
        append
            .apply(&mut overrides, &current)
            .expect("delete,delete is delete");
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
