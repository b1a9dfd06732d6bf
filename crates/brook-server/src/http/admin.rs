//! The control plane: topics (list, create, describe, delete), consumer groups (list,
//! describe with committed offsets and lag), and committing a group's offsets.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use brook_broker::{
    BrokerError, GroupDescription, NewTopic, OffsetCommit, TopicConfig, TopicDescription,
    TopicPartition,
};
use serde::{Deserialize, Serialize};

use super::authorize::{Access, Op};
use super::error::ApiError;
use super::extract::{GroupPath, JsonBody, TopicPath};
use super::App;
use crate::metrics::group_lag;
use brook_broker::auth::Resource;

#[derive(Debug, Serialize)]
struct TopicSummaryOut {
    name: String,
    partitions: u32,
}

#[derive(Debug, Serialize)]
pub(crate) struct TopicsOut {
    topics: Vec<TopicSummaryOut>,
}

/// `GET /v1/topics`
pub(crate) async fn list_topics(
    State(app): State<App>,
    access: Access,
) -> Result<Json<TopicsOut>, ApiError> {
    let topics = app
        .broker
        .list_topics()
        .await?
        .into_iter()
        .filter(|t| access.may(Op::Describe, Resource::topic(&t.name)))
        .map(|t| TopicSummaryOut {
            name: t.name,
            partitions: t.partitions,
        })
        .collect();
    Ok(Json(TopicsOut { topics }))
}

/// `POST /v1/topics` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateTopicIn {
    name: String,
    /// `None`: the broker's default partition count.
    #[serde(default)]
    partitions: Option<u32>,
    /// Settings that differ from the broker's defaults: names as in `GET /v1/topics/{topic}`,
    /// values as numbers or strings (`null` or `"none"` switches a retention limit off).
    #[serde(default)]
    config: BTreeMap<String, serde_json::Value>,
    /// Answer 200 with the existing topic instead of 409 when it exists.
    #[serde(default)]
    if_not_exists: bool,
}

/// `POST /v1/topics`: 201 with the new topic.
pub(crate) async fn create_topic(
    State(app): State<App>,
    access: Access,
    JsonBody(body): JsonBody<CreateTopicIn>,
) -> Result<Response, ApiError> {
    access.create_topic(&body.name)?;
    let config = topic_config(&body.config)?;
    let new = NewTopic {
        name: body.name.clone(),
        partitions: body.partitions,
        config,
    };
    match app.broker.create_topic(new).await {
        Ok(topic) => Ok((StatusCode::CREATED, Json(TopicOut::from(topic))).into_response()),
        Err(BrokerError::TopicExists { .. }) if body.if_not_exists => {
            let topic = app.broker.describe_topic(&body.name).await?;
            Ok(Json(TopicOut::from(topic)).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

/// Topic overrides from their JSON form.
fn topic_config(entries: &BTreeMap<String, serde_json::Value>) -> Result<TopicConfig, ApiError> {
    let mut config = TopicConfig::default();
    for (key, value) in entries {
        let text = match value {
            serde_json::Value::String(text) => text.clone(),
            serde_json::Value::Number(number) => number.to_string(),
            serde_json::Value::Null => "none".to_owned(),
            other => {
                return Err(ApiError::bad_request(format!(
                    "config.{key}: give a number or a string, not {other}"
                )))
            }
        };
        config.set(key, &text).map_err(|e| {
            ApiError::from(BrokerError::InvalidConfig {
                reason: e.to_string(),
            })
        })?;
    }
    Ok(config)
}

#[derive(Debug, Serialize)]
struct PartitionOut {
    partition: u32,
    log_start_offset: u64,
    log_end_offset: u64,
    high_watermark: u64,
    size_bytes: u64,
    segments: usize,
    /// The log cleaner's figures, for a compacted topic.
    #[serde(skip_serializing_if = "Option::is_none")]
    compaction: Option<CompactionOut>,
}

/// What the log cleaner did to a partition of a compacted topic.
#[derive(Debug, Serialize)]
struct CompactionOut {
    /// Share of the cleanable bytes written since the last clean.
    dirty_ratio: f64,
    cleanable_bytes: u64,
    dirty_bytes: u64,
    first_dirty_offset: u64,
    cleans: u64,
    bytes_reclaimed: u64,
    records_removed: u64,
    /// The clean in progress: `[bytes read, bytes it reads in all]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    progress: Option<(u64, u64)>,
    /// Keys in the partition's key index (`GET .../keys/{key}`).
    keys: usize,
}

/// A topic in detail.
#[derive(Debug, Serialize)]
pub(crate) struct TopicOut {
    name: String,
    /// The topic id (a UUID v4) in hex, as Kafka shows it.
    id: String,
    partitions: Vec<PartitionOut>,
    /// Every effective setting, as text.
    config: BTreeMap<&'static str, String>,
    /// The settings this topic sets itself, as text.
    overrides: BTreeMap<&'static str, String>,
}

impl From<TopicDescription> for TopicOut {
    fn from(topic: TopicDescription) -> Self {
        Self {
            id: topic.id.iter().map(|b| format!("{b:02x}")).collect(),
            partitions: topic
                .partitions
                .iter()
                .map(|p| PartitionOut {
                    partition: p.partition,
                    log_start_offset: p.log_start_offset,
                    log_end_offset: p.log_end_offset,
                    high_watermark: p.high_watermark,
                    size_bytes: p.size_bytes,
                    segments: p.segments,
                    compaction: p.compaction.map(|c| CompactionOut {
                        dirty_ratio: c.dirty_ratio(),
                        cleanable_bytes: c.cleanable_bytes,
                        dirty_bytes: c.dirty_bytes,
                        first_dirty_offset: c.first_dirty_offset,
                        cleans: c.cleans,
                        bytes_reclaimed: c.bytes_reclaimed,
                        records_removed: c.records_removed,
                        progress: c.progress,
                        keys: c.keys,
                    }),
                })
                .collect(),
            config: brook_log::config_entries(&topic.config)
                .into_iter()
                .collect(),
            overrides: topic.overrides.into_iter().collect(),
            name: topic.name,
        }
    }
}

/// `GET /v1/topics/{topic}`
pub(crate) async fn describe_topic(
    State(app): State<App>,
    TopicPath { topic }: TopicPath,
) -> Result<Json<TopicOut>, ApiError> {
    Ok(Json(app.broker.describe_topic(&topic).await?.into()))
}

/// `DELETE /v1/topics/{topic}`: 204.
pub(crate) async fn delete_topic(
    State(app): State<App>,
    TopicPath { topic }: TopicPath,
) -> Result<StatusCode, ApiError> {
    app.broker.delete_topic(&topic).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize)]
struct GroupSummaryOut {
    group: String,
    /// `Stable` with members, `Empty` with only committed offsets.
    state: &'static str,
    members: usize,
}

#[derive(Debug, Serialize)]
pub(crate) struct GroupsOut {
    groups: Vec<GroupSummaryOut>,
}

fn group_state(members: usize) -> &'static str {
    if members > 0 {
        "Stable"
    } else {
        "Empty"
    }
}

/// `GET /v1/groups`
pub(crate) async fn list_groups(
    State(app): State<App>,
    access: Access,
) -> Result<Json<GroupsOut>, ApiError> {
    let groups = app
        .broker
        .list_groups()
        .await?
        .into_iter()
        .filter(|g| access.may(Op::Describe, Resource::group(&g.group)))
        .map(|g| GroupSummaryOut {
            state: group_state(g.members),
            members: g.members,
            group: g.group,
        })
        .collect();
    Ok(Json(GroupsOut { groups }))
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct TopicPartitionOut {
    topic: String,
    partition: u32,
}

impl From<TopicPartition> for TopicPartitionOut {
    fn from(tp: TopicPartition) -> Self {
        Self {
            topic: tp.topic,
            partition: tp.partition,
        }
    }
}

#[derive(Debug, Serialize)]
struct MemberOut {
    member_id: String,
    client_id: String,
    topics: Vec<String>,
    assignment: Vec<TopicPartitionOut>,
}

#[derive(Debug, Serialize)]
struct GroupPartitionOut {
    topic: String,
    partition: u32,
    /// The next offset the group consumes; `null` before its first commit.
    committed_offset: Option<u64>,
    metadata: Option<String>,
    log_start_offset: u64,
    high_watermark: u64,
    /// Records not consumed yet: from the committed offset (or the log start, without one)
    /// to the high watermark.
    lag: u64,
    member_id: Option<String>,
}

/// A group in detail.
#[derive(Debug, Serialize)]
pub(crate) struct GroupOut {
    group: String,
    state: &'static str,
    generation: u64,
    members: Vec<MemberOut>,
    partitions: Vec<GroupPartitionOut>,
}

impl From<GroupDescription> for GroupOut {
    fn from(group: GroupDescription) -> Self {
        Self {
            state: group_state(group.members.len()),
            generation: group.generation,
            members: group
                .members
                .into_iter()
                .map(|m| MemberOut {
                    member_id: m.member_id,
                    client_id: m.client_id,
                    topics: m.topics,
                    assignment: m.assignment.into_iter().map(Into::into).collect(),
                })
                .collect(),
            partitions: group
                .offsets
                .into_iter()
                .map(|lag| GroupPartitionOut {
                    lag: group_lag(&lag),
                    committed_offset: lag.committed.as_ref().map(|c| c.offset),
                    metadata: lag.committed.map(|c| c.metadata),
                    log_start_offset: lag.log_start_offset,
                    high_watermark: lag.high_watermark,
                    member_id: lag.member_id,
                    topic: lag.topic_partition.topic,
                    partition: lag.topic_partition.partition,
                })
                .collect(),
            group: group.group,
        }
    }
}

/// `GET /v1/groups/{group}`
pub(crate) async fn describe_group(
    State(app): State<App>,
    GroupPath { group }: GroupPath,
) -> Result<Json<GroupOut>, ApiError> {
    Ok(Json(app.broker.describe_group(&group).await?.into()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CommitIn {
    pub(crate) topic: String,
    partition: u32,
    /// The next offset to consume (the last processed one plus one), as in Kafka.
    offset: u64,
    #[serde(default)]
    metadata: String,
}

/// `POST /v1/groups/{group}/offsets` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CommitsIn {
    offsets: Vec<CommitIn>,
}

/// Offsets to commit as the broker takes them (here and in an atomic write).
pub(crate) fn into_commits(offsets: Vec<CommitIn>) -> Vec<OffsetCommit> {
    offsets
        .into_iter()
        .map(|c| OffsetCommit {
            metadata: c.metadata,
            ..OffsetCommit::new(c.topic, c.partition, c.offset)
        })
        .collect()
}

/// `POST /v1/groups/{group}/offsets`: 204 once durable; all or nothing.
pub(crate) async fn commit_offsets(
    State(app): State<App>,
    GroupPath { group }: GroupPath,
    access: Access,
    JsonBody(body): JsonBody<CommitsIn>,
) -> Result<StatusCode, ApiError> {
    access.group_and_topics(
        Op::Read,
        &group,
        body.offsets.iter().map(|o| o.topic.as_str()),
    )?;
    if body.offsets.is_empty() {
        return Err(ApiError::bad_request(
            "no offsets to commit: send {\"offsets\": [{\"topic\", \"partition\", \"offset\"}]}",
        ));
    }
    app.broker
        .commit_offsets(&group, into_commits(body.offsets))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
