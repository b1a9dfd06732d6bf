//! OffsetCommit (key 8) and OffsetFetch (key 9) over the broker's committed offsets, so a
//! group's position is the same fact for every door. Commit metadata is kept and returned.
//!
//! A commit by a member of a live Kafka group is checked against its generation first (a
//! member that missed a rebalance must not move offsets of partitions it no longer owns); in a
//! consumer-protocol group (KIP-848) against its member epoch (v9: STALE_MEMBER_EPOCH,
//! UNKNOWN_MEMBER_ID). OffsetFetch v8+ asks for several groups at once and is answered group by
//! group; v9 names a member, whose epoch is checked the same way.

use std::collections::HashMap;

use brook_broker::{OffsetCommit, TopicPartition};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::codes;
use crate::state::ListenerState;

pub(crate) async fn offset_commit(
    door: &ListenerState,
    request: OffsetCommitRequest,
    version: i16,
) -> OffsetCommitResponse {
    let group = request.group_id.0.as_str();
    let member_check = door
        .consumer_groups
        .check_commit(
            group,
            &request.member_id,
            request.generation_id_or_member_epoch,
            Some(version),
        )
        .unwrap_or_else(|| {
            door.groups.check_commit(
                group,
                &request.member_id,
                request.group_instance_id.as_deref(),
                request.generation_id_or_member_epoch,
            )
        });
    let metadata_max = door.broker.config().limits.offset_metadata_bytes_max;
    // Per partition: the error found before committing, or the commit to make.
    let mut errors: HashMap<(String, i32), ResponseError> = HashMap::new();
    let mut commits = Vec::new();
    for topic in &request.topics {
        let partitions = door
            .broker
            .describe_topic(&topic.name.0)
            .map(|d| d.partitions.len());
        for p in &topic.partitions {
            let key = (topic.name.0.to_string(), p.partition_index);
            let metadata = p.committed_metadata.as_deref().unwrap_or("");
            let error = if let Err(error) = member_check {
                Some(error)
            } else if !partitions
                .as_ref()
                .is_ok_and(|n| (0..*n as i64).contains(&i64::from(p.partition_index)))
            {
                Some(ResponseError::UnknownTopicOrPartition)
            } else if p.committed_offset < 0 {
                Some(ResponseError::InvalidRequest)
            } else if metadata.len() > metadata_max {
                Some(ResponseError::OffsetMetadataTooLarge)
            } else {
                None
            };
            match error {
                Some(error) => {
                    errors.insert(key, error);
                }
                None => commits.push(OffsetCommit {
                    topic_partition: TopicPartition::new(key.0, p.partition_index as u32),
                    offset: p.committed_offset as u64,
                    metadata: metadata.to_owned(),
                }),
            }
        }
    }
    // The valid partitions are committed together; if that fails, they all get its error.
    let commit_error = if commits.is_empty() {
        None
    } else {
        door.broker
            .commit_offsets(group, commits)
            .await
            .err()
            .map(|e| codes::error_code(&e))
    };
    let mut response = OffsetCommitResponse::default();
    for topic in request.topics {
        let mut entry = OffsetCommitResponseTopic::default();
        for p in &topic.partitions {
            let mut answer = OffsetCommitResponsePartition::default();
            answer.partition_index = p.partition_index;
            let key = (topic.name.0.to_string(), p.partition_index);
            if let Some(error) = errors.get(&key).copied().or(commit_error) {
                answer.error_code = error.code();
            }
            entry.partitions.push(answer);
        }
        entry.name = topic.name;
        response.topics.push(entry);
    }
    response
}

/// `fetch_group`'s answer as OffsetFetch topics: `$topic` and `$partition` are the v0-7 or the
/// v8+ (batched groups) message types, which have the same fields.
macro_rules! fetched {
    ($topics:expr, $topic:ident, $partition:ident) => {
        $topics
            .into_iter()
            .map(|(topic, partitions)| {
                let mut entry = $topic::default();
                entry.name = TopicName(StrBytes::from_string(topic));
                entry.partitions = partitions
                    .into_iter()
                    .map(|p: Fetched| {
                        let mut answer = $partition::default();
                        answer.partition_index = p.partition;
                        answer.committed_offset = p.offset;
                        answer.committed_leader_epoch = -1;
                        answer.metadata = Some(StrBytes::from_string(p.metadata));
                        answer
                    })
                    .collect();
                entry
            })
            .collect()
    };
}

pub(crate) fn offset_fetch(
    door: &ListenerState,
    request: OffsetFetchRequest,
    version: i16,
) -> OffsetFetchResponse {
    let mut response = OffsetFetchResponse::default();
    if version < 8 {
        let asked = request.topics.map(|topics| {
            topics
                .into_iter()
                .map(|t| (t.name.0.to_string(), t.partition_indexes))
                .collect()
        });
        match fetch_group(door, &request.group_id.0, asked) {
            Ok(topics) => {
                response.topics = fetched!(
                    topics,
                    OffsetFetchResponseTopic,
                    OffsetFetchResponsePartition
                )
            }
            Err(code) => response.error_code = code,
        }
        return response;
    }
    for asked_group in request.groups {
        let mut group = OffsetFetchResponseGroup::default();
        let member_check = door.consumer_groups.check_fetch(
            &asked_group.group_id.0,
            asked_group.member_id.as_deref(),
            asked_group.member_epoch,
        );
        let asked = asked_group.topics.map(|topics| {
            topics
                .into_iter()
                .map(|t| (t.name.0.to_string(), t.partition_indexes))
                .collect()
        });
        let answer = match member_check {
            Some(Err(error)) => Err(error.code()),
            _ => fetch_group(door, &asked_group.group_id.0, asked),
        };
        match answer {
            Ok(topics) => {
                group.topics = fetched!(
                    topics,
                    OffsetFetchResponseTopics,
                    OffsetFetchResponsePartitions
                )
            }
            Err(code) => group.error_code = code,
        }
        group.group_id = asked_group.group_id;
        response.groups.push(group);
    }
    response
}

/// One partition's committed position as OffsetFetch reports it (-1 and no metadata when
/// nothing is committed).
struct Fetched {
    partition: i32,
    offset: i64,
    metadata: String,
}

/// The committed offsets of `group` for the partitions asked (`None`: every partition the
/// group has committed), by topic; an error code for the whole group when they cannot be read.
fn fetch_group(
    door: &ListenerState,
    group: &str,
    asked: Option<Vec<(String, Vec<i32>)>>,
) -> Result<Vec<(String, Vec<Fetched>)>, i16> {
    let committed = door
        .broker
        .committed_offsets(group, &[])
        .map_err(|err| codes::code(&err))?;
    let lookup = |topic: &str, partition: i32| {
        committed
            .iter()
            .find(|(tp, _)| tp.topic == topic && i64::from(tp.partition) == i64::from(partition))
            .map(|(_, c)| c)
    };
    // A null topic list (v2+) asks for every partition the group has committed.
    let asked: Vec<(String, Vec<i32>)> = match asked {
        Some(asked) => asked,
        None => {
            let mut all: Vec<(String, Vec<i32>)> = Vec::new();
            for (tp, _) in &committed {
                match all.iter_mut().find(|(t, _)| *t == tp.topic) {
                    Some((_, ps)) => ps.push(tp.partition as i32),
                    None => all.push((tp.topic.clone(), vec![tp.partition as i32])),
                }
            }
            all
        }
    };
    Ok(asked
        .into_iter()
        .map(|(topic, partitions)| {
            let fetched = partitions
                .into_iter()
                .map(|partition| match lookup(&topic, partition) {
                    Some(c) => Fetched {
                        partition,
                        offset: c.offset as i64,
                        metadata: c.metadata.clone(),
                    },
                    None => Fetched {
                        partition,
                        offset: -1,
                        metadata: String::new(),
                    },
                })
                .collect();
            (topic, fetched)
        })
        .collect())
}
