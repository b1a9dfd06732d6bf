//! ListOffsets (key 2): earliest (-2), latest (-1: the last stable offset under
//! read_committed), greatest-timestamp (-3, v7) and first-offset-at-or-after-a-timestamp
//! queries; and OffsetForLeaderEpoch (key 23), answered for the single, never-changing leader.

use brook_broker::{BrokerError, Isolation, OffsetSpec};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{
    ListOffsetsRequest, ListOffsetsResponse, OffsetForLeaderEpochRequest,
    OffsetForLeaderEpochResponse,
};

use crate::api::fetch::isolation_of;
use crate::codes;
use crate::state::ListenerState;

/// ListOffsets' timestamp sentinels.
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;

pub(crate) async fn list_offsets(
    door: &ListenerState,
    request: ListOffsetsRequest,
) -> ListOffsetsResponse {
    let isolation = isolation_of(request.isolation_level);
    let mut response = ListOffsetsResponse::default();
    for topic in request.topics {
        let mut entry = ListOffsetsTopicResponse::default();
        for asked in topic.partitions {
            let mut answer = ListOffsetsPartitionResponse::default();
            answer.partition_index = asked.partition_index;
            answer.leader_epoch = -1;
            let found = lookup(
                door,
                &topic.name.0,
                asked.partition_index,
                asked.timestamp,
                isolation,
            );
            match found.await {
                Ok((offset, timestamp)) => {
                    answer.offset = offset;
                    answer.timestamp = timestamp;
                }
                Err(error) => {
                    answer.error_code = error.code();
                    answer.offset = -1;
                    answer.timestamp = -1;
                }
            }
            entry.partitions.push(answer);
        }
        entry.name = topic.name;
        response.topics.push(entry);
    }
    response
}

/// The (offset, timestamp) answering one query; -1s when no record is at or after the time (or,
/// for the greatest timestamp, when the partition shows no record). Under read_committed,
/// latest is the last stable offset and a record found at or past it is not answered, as in
/// Kafka.
async fn lookup(
    door: &ListenerState,
    topic: &str,
    partition: i32,
    timestamp: i64,
    isolation: Isolation,
) -> Result<(i64, i64), ResponseError> {
    let partition = u32::try_from(partition).map_err(|_| ResponseError::UnknownTopicOrPartition)?;
    let committed = isolation == Isolation::ReadCommitted;
    let spec = match timestamp {
        LATEST if committed => OffsetSpec::LastStable,
        LATEST => OffsetSpec::Latest,
        EARLIEST => OffsetSpec::Earliest,
        MAX_TIMESTAMP => OffsetSpec::MaxTimestamp,
        t if t >= 0 => OffsetSpec::Timestamp(t),
        _ => return Err(ResponseError::InvalidRequest),
    };
    let mut listed = door
        .broker
        .list_offset(topic, partition, spec)
        .await
        .map_err(|e: BrokerError| codes::error_code(&e))?;
    if committed && matches!(spec, OffsetSpec::Timestamp(_) | OffsetSpec::MaxTimestamp) {
        let stable = door
            .broker
            .last_stable_offset(topic, partition)
            .map_err(|e| codes::error_code(&e))?;
        if listed.offset.is_some_and(|o| o >= stable) {
            listed.offset = None;
            listed.timestamp = None;
        }
    }
    Ok((
        listed.offset.map_or(-1, |o| o as i64),
        listed.timestamp.unwrap_or(-1),
    ))
}

/// There has only ever been one leader, so any epoch a client knows ends at the log end: no
/// client ever has to truncate. An unknown (negative) epoch has no end offset.
pub(crate) fn offset_for_leader_epoch(
    door: &ListenerState,
    request: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let mut response = OffsetForLeaderEpochResponse::default();
    for topic in request.topics {
        let mut entry = OffsetForLeaderTopicResult::default();
        for asked in topic.partitions {
            let mut answer = EpochEndOffset::default();
            answer.partition = asked.partition;
            let end = u32::try_from(asked.partition)
                .map_err(|_| ResponseError::UnknownTopicOrPartition)
                .and_then(|p| {
                    door.broker
                        .watch_high_watermark(&topic.topic.0, p)
                        .map_err(|e| codes::error_code(&e))
                });
            match end {
                Ok(hw) if asked.leader_epoch >= 0 => {
                    answer.leader_epoch = asked.leader_epoch;
                    answer.end_offset = *hw.borrow() as i64;
                }
                Ok(_) => {
                    answer.leader_epoch = -1;
                    answer.end_offset = -1;
                }
                Err(error) => {
                    answer.error_code = error.code();
                    answer.leader_epoch = -1;
                    answer.end_offset = -1;
                }
            }
            entry.partitions.push(answer);
        }
        entry.topic = topic.topic;
        response.topics.push(entry);
    }
    response
}
