//! The routes that change a topic or a group after its creation, brook's HTTP door onto what
//! Kafka's CreatePartitions, IncrementalAlterConfigs, DeleteRecords, DeleteGroups, OffsetDelete
//! and `kafka-consumer-groups --reset-offsets` do. Each is one broker call, so the change shows
//! on every door at once.
//!
//! | route | what |
//! |-------|------|
//! | `POST /v1/topics/{topic}/partitions` | grow the topic: `{"partitions": N}` |
//! | `PATCH /v1/topics/{topic}/config` | change settings: `{"set": {...}, "delete": [...]}` |
//! | `DELETE /v1/topics/{topic}/records?before_offset=N&partition=P` | delete records below N |
//! | `DELETE /v1/groups/{group}` | delete a group without live members |
//! | `DELETE /v1/groups/{group}/offsets?topic=T&partition=P` | delete some committed offsets |
//! | `POST /v1/groups/{group}/seek` | move a group's offsets: `{"to": "earliest"}`, ... |

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use brook_broker::{ConfigChange, SeekTo, TopicPartition};
use serde::{Deserialize, Serialize};

use super::admin::TopicOut;
use super::authorize::Access;
use super::error::ApiError;
use super::extract::{GroupPath, JsonBody, Query, TopicPath};
use super::App;

/// `POST /v1/topics/{topic}/partitions` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AddPartitionsIn {
    /// The new count, higher than the current one.
    partitions: u32,
    #[serde(default)]
    validate_only: bool,
}

/// `POST /v1/topics/{topic}/partitions`: 200 with the topic.
pub(crate) async fn add_partitions(
    State(app): State<App>,
    TopicPath { topic }: TopicPath,
    JsonBody(body): JsonBody<AddPartitionsIn>,
) -> Result<Json<TopicOut>, ApiError> {
    let topic = app
        .broker
        .add_partitions(&topic, body.partitions, body.validate_only)
        .await?;
    Ok(Json(topic.into()))
}

/// `PATCH /v1/topics/{topic}/config` body: by Kafka's names (brook's are aliases), applied in
/// the order delete, set, append, subtract.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AlterConfigIn {
    /// Settings to set, values as numbers or strings.
    #[serde(default)]
    set: BTreeMap<String, serde_json::Value>,
    /// Settings whose topic value goes: the broker's default applies again.
    #[serde(default)]
    delete: Vec<String>,
    /// Items added to list settings (cleanup.policy).
    #[serde(default)]
    append: BTreeMap<String, String>,
    /// Items removed from list settings.
    #[serde(default)]
    subtract: BTreeMap<String, String>,
    #[serde(default)]
    validate_only: bool,
}

/// `PATCH /v1/topics/{topic}/config`: 200 with the topic; all or nothing.
pub(crate) async fn alter_config(
    State(app): State<App>,
    TopicPath { topic }: TopicPath,
    JsonBody(body): JsonBody<AlterConfigIn>,
) -> Result<Json<TopicOut>, ApiError> {
    let mut changes: Vec<ConfigChange> = body.delete.into_iter().map(ConfigChange::unset).collect();
    for (key, value) in body.set {
        let text = match value {
            serde_json::Value::String(text) => text,
            serde_json::Value::Number(number) => number.to_string(),
            other => {
                return Err(ApiError::bad_request(format!(
                    "set.{key}: give a number or a string, not {other}"
                )))
            }
        };
        changes.push(ConfigChange::set(key, text));
    }
    changes.extend(
        body.append
            .into_iter()
            .map(|(key, value)| ConfigChange::Append { key, value }),
    );
    changes.extend(
        body.subtract
            .into_iter()
            .map(|(key, value)| ConfigChange::Subtract { key, value }),
    );
    if changes.is_empty() {
        return Err(ApiError::bad_request(
            "no changes: send {\"set\": {\"retention.ms\": 3600000}} or {\"delete\": [...]}",
        ));
    }
    let topic = app
        .broker
        .alter_topic_config(&topic, changes, body.validate_only)
        .await?;
    Ok(Json(topic.into()))
}

/// `DELETE /v1/topics/{topic}/records` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeleteRecordsQuery {
    /// Records below it go; absent: every record up to the high watermark.
    before_offset: Option<u64>,
    /// Absent: every partition.
    partition: Option<u32>,
}

#[derive(Debug, Serialize)]
struct LogStartOut {
    partition: u32,
    log_start_offset: u64,
}

#[derive(Debug, Serialize)]
pub(crate) struct LogStartsOut {
    partitions: Vec<LogStartOut>,
}

/// `DELETE /v1/topics/{topic}/records`: 200 with each partition's new log start.
pub(crate) async fn delete_records(
    State(app): State<App>,
    TopicPath { topic }: TopicPath,
    Query(query): Query<DeleteRecordsQuery>,
) -> Result<Json<LogStartsOut>, ApiError> {
    let starts = app
        .broker
        .trim_topic(&topic, query.partition, query.before_offset)
        .await?;
    Ok(Json(LogStartsOut {
        partitions: starts
            .into_iter()
            .map(|(partition, log_start_offset)| LogStartOut {
                partition,
                log_start_offset,
            })
            .collect(),
    }))
}

/// `DELETE /v1/groups/{group}`: 204.
pub(crate) async fn delete_group(
    State(app): State<App>,
    GroupPath { group }: GroupPath,
) -> Result<StatusCode, ApiError> {
    app.broker.delete_group(&group).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /v1/groups/{group}/offsets` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeleteOffsetsQuery {
    topic: String,
    /// Absent: every partition of the topic.
    partition: Option<u32>,
}

/// `DELETE /v1/groups/{group}/offsets`: 204.
pub(crate) async fn delete_offsets(
    State(app): State<App>,
    access: Access,
    GroupPath { group }: GroupPath,
    Query(query): Query<DeleteOffsetsQuery>,
) -> Result<StatusCode, ApiError> {
    access.delete_offsets(&group, [query.topic.as_str()])?;
    let partitions: Vec<TopicPartition> = match query.partition {
        Some(p) => vec![TopicPartition::new(query.topic, p)],
        None => {
            let count = app
                .broker
                .describe_topic(&query.topic)
                .await?
                .partitions
                .len() as u32;
            (0..count)
                .map(|p| TopicPartition::new(query.topic.clone(), p))
                .collect()
        }
    };
    app.broker
        .delete_committed_offsets(&group, &partitions)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Where a seek goes: `"earliest"`, `"latest"`, or one of the objects.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum SeekToIn {
    Position(Position),
    Offset { offset: u64 },
    Timestamp { timestamp_ms: i64 },
    Shift { shift_by: i64 },
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Position {
    Earliest,
    Latest,
}

/// `POST /v1/groups/{group}/seek` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SeekIn {
    to: SeekToIn,
    /// Topics whose every partition moves; empty: every partition the group has committed.
    #[serde(default)]
    topics: Vec<String>,
    #[serde(default)]
    dry_run: bool,
}

#[derive(Debug, Serialize)]
struct SeekOut {
    topic: String,
    partition: u32,
    /// The committed offset before; `null` when there was none.
    from_offset: Option<u64>,
    to_offset: u64,
}

#[derive(Debug, Serialize)]
pub(crate) struct SeeksOut {
    partitions: Vec<SeekOut>,
    dry_run: bool,
}

/// `POST /v1/groups/{group}/seek`: 200 with where each partition went (or would go).
pub(crate) async fn seek_group(
    State(app): State<App>,
    access: Access,
    GroupPath { group }: GroupPath,
    JsonBody(body): JsonBody<SeekIn>,
) -> Result<Json<SeeksOut>, ApiError> {
    let to = match body.to {
        SeekToIn::Position(Position::Earliest) => SeekTo::Earliest,
        SeekToIn::Position(Position::Latest) => SeekTo::Latest,
        SeekToIn::Offset { offset } => SeekTo::Offset(offset),
        SeekToIn::Timestamp { timestamp_ms } => SeekTo::Timestamp(timestamp_ms),
        SeekToIn::Shift { shift_by } => SeekTo::Shift(shift_by),
    };
    let seeks = access
        .seek(&app.broker, &group, to, &body.topics, body.dry_run)
        .await?;
    Ok(Json(SeeksOut {
        partitions: seeks
            .into_iter()
            .map(|seek| SeekOut {
                topic: seek.topic_partition.topic,
                partition: seek.topic_partition.partition,
                from_offset: seek.from,
                to_offset: seek.to,
            })
            .collect(),
        dry_run: body.dry_run,
    }))
}
