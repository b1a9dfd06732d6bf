//! `--json` on every list and describe command: the server's answer as one JSON value on one
//! line, for scripts (`jq`), with the same field names as the HTTP door's answers where there
//! is one.

use brook_client::proto::{DescribeGroupResponse, GroupSummary, TopicDescription, TopicSummary};
use clap::Args;
use serde_json::{json, Value};

use super::remote::ServerArgs;

/// A list command's flags: `--json`, and the server.
#[derive(Debug, Args)]
pub(super) struct ListArgs {
    /// Print one JSON value instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Prints `value` on one line.
pub(super) fn print(out: &mut impl std::io::Write, value: &Value) -> std::io::Result<()> {
    writeln!(out, "{value}")
}

/// `[{"name", "partitions"}]`
pub(super) fn topics(topics: &[TopicSummary]) -> Value {
    topics
        .iter()
        .map(|t| json!({ "name": t.name, "partitions": t.partition_count }))
        .collect()
}

/// `{"name", "topic_id", "settings": {KEY: VALUE}, "partitions": [...]}`; `settings` is the
/// topic's settings as `brook topic describe` shows them.
pub(super) fn topic(topic: &TopicDescription, settings: &[(&str, String)]) -> Value {
    let partitions: Vec<Value> = topic
        .partitions
        .iter()
        .map(|p| {
            json!({
                "partition": p.partition,
                "log_start_offset": p.log_start_offset,
                "high_watermark": p.high_watermark,
                "log_end_offset": p.log_end_offset,
                "size_bytes": p.size_bytes,
                "segments": p.segment_count,
            })
        })
        .collect();
    let settings: serde_json::Map<String, Value> = settings
        .iter()
        .map(|(key, value)| ((*key).to_owned(), value.clone().into()))
        .collect();
    json!({
        "name": topic.name,
        "topic_id": topic.topic_id,
        "settings": settings,
        "partitions": partitions,
    })
}

/// `[{"group", "members", "state"}]`
pub(super) fn groups(
    groups: &[GroupSummary],
    state: impl Fn(&GroupSummary) -> &'static str,
) -> Value {
    groups
        .iter()
        .map(|g| json!({ "group": g.group_id, "members": g.member_count, "state": state(g) }))
        .collect()
}

/// `{"group", "state", "generation", "members": [...], "offsets": [...]}`, as the HTTP door's
/// `GET /v1/groups/{group}`.
pub(super) fn group(group: &DescribeGroupResponse, state: &str) -> Value {
    let members: Vec<Value> = group
        .members
        .iter()
        .map(|m| {
            let assigned: Vec<Value> = m
                .assigned
                .iter()
                .flat_map(|t| {
                    t.partitions
                        .iter()
                        .map(|p| json!({ "topic": t.topic, "partition": p }))
                })
                .collect();
            json!({
                "member_id": m.member_id,
                "client_id": m.client_id,
                "topics": m.topics,
                "assigned": assigned,
            })
        })
        .collect();
    let offsets: Vec<Value> = group
        .partitions
        .iter()
        .map(|p| {
            json!({
                "topic": p.topic,
                "partition": p.partition,
                "committed_offset": p.committed_offset,
                "high_watermark": p.high_watermark,
                "lag": p.lag,
                "member_id": (!p.member_id.is_empty()).then_some(&p.member_id),
            })
        })
        .collect();
    json!({
        "group": group.group_id,
        "state": state,
        "generation": group.generation,
        "members": members,
        "offsets": offsets,
    })
}
