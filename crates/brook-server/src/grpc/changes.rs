//! The RPCs that change a topic or a group after its creation: `AddPartitions`,
//! `AlterTopicConfig`, `DeleteRecords`, `DeleteGroup`, `DeleteGroupOffsets` and `SeekGroup`,
//! brook's own door onto what Kafka's CreatePartitions, IncrementalAlterConfigs,
//! DeleteRecords, DeleteGroups, OffsetDelete and `kafka-consumer-groups --reset-offsets` do.
//! Each is one broker call (`brook_broker::admin`, `group_admin`), so the change shows on every
//! door at once.

use brook_broker::{Backend, BrokerError, ConfigChange, SeekTo};
use brook_proto::v1 as pb;
use tonic::{Request, Response, Status};

use super::convert;
use super::status::{invalid, to_status};
use crate::authorize::Access;

fn status(err: BrokerError) -> Status {
    to_status(&err)
}

pub(crate) async fn add_partitions(
    broker: &Backend,
    request: Request<pb::AddPartitionsRequest>,
) -> Result<Response<pb::AddPartitionsResponse>, Status> {
    let request = request.into_inner();
    let topic = broker
        .add_partitions(&request.topic, request.partitions, request.validate_only)
        .await
        .map_err(status)?;
    Ok(Response::new(pb::AddPartitionsResponse {
        topic: Some(convert::topic_description(topic)),
    }))
}

/// A protobuf change as the broker's.
fn config_change(change: pb::ConfigChange) -> Result<ConfigChange, Status> {
    let pb::ConfigChange {
        key,
        operation,
        value,
    } = change;
    Ok(match pb::ConfigOperation::try_from(operation) {
        Ok(pb::ConfigOperation::Set) => ConfigChange::set(key, value),
        Ok(pb::ConfigOperation::Delete) => ConfigChange::unset(key),
        Ok(pb::ConfigOperation::Append) => ConfigChange::Append { key, value },
        Ok(pb::ConfigOperation::Subtract) => ConfigChange::Subtract { key, value },
        Ok(pb::ConfigOperation::Unspecified) | Err(_) => {
            return Err(invalid(format!(
                "{key}: operation {operation} is not SET, DELETE, APPEND or SUBTRACT"
            )))
        }
    })
}

pub(crate) async fn alter_topic_config(
    broker: &Backend,
    request: Request<pb::AlterTopicConfigRequest>,
) -> Result<Response<pb::AlterTopicConfigResponse>, Status> {
    let request = request.into_inner();
    if request.changes.is_empty() {
        return Err(invalid("no changes: give at least one ConfigChange"));
    }
    let changes = request
        .changes
        .into_iter()
        .map(config_change)
        .collect::<Result<Vec<_>, _>>()?;
    let topic = broker
        .alter_topic_config(&request.topic, changes, request.validate_only)
        .await
        .map_err(status)?;
    Ok(Response::new(pb::AlterTopicConfigResponse {
        topic: Some(convert::topic_description(topic)),
    }))
}

pub(crate) async fn delete_records(
    broker: &Backend,
    request: Request<pb::DeleteRecordsRequest>,
) -> Result<Response<pb::DeleteRecordsResponse>, Status> {
    let request = request.into_inner();
    let starts = broker
        .trim_topic(&request.topic, request.partition, request.before_offset)
        .await
        .map_err(status)?;
    Ok(Response::new(pb::DeleteRecordsResponse {
        partitions: starts
            .into_iter()
            .map(|(partition, log_start_offset)| pb::PartitionLogStart {
                partition,
                log_start_offset,
            })
            .collect(),
    }))
}

pub(crate) async fn delete_group(
    broker: &Backend,
    request: Request<pb::DeleteGroupRequest>,
) -> Result<Response<pb::DeleteGroupResponse>, Status> {
    broker
        .delete_group(&request.into_inner().group_id)
        .await
        .map_err(status)?;
    Ok(Response::new(pb::DeleteGroupResponse {}))
}

pub(crate) async fn delete_group_offsets(
    broker: &Backend,
    request: Request<pb::DeleteGroupOffsetsRequest>,
) -> Result<Response<pb::DeleteGroupOffsetsResponse>, Status> {
    let request = request.into_inner();
    let partitions = convert::flatten(request.partitions);
    if partitions.is_empty() {
        return Err(invalid(
            "no partitions: give the partitions whose offsets go",
        ));
    }
    broker
        .delete_committed_offsets(&request.group_id, &partitions)
        .await
        .map_err(status)?;
    Ok(Response::new(pb::DeleteGroupOffsetsResponse {}))
}

/// Moves a group's offsets once `access` may move every topic it touches.
pub(crate) async fn seek_group(
    broker: &Backend,
    access: &Access,
    request: Request<pb::SeekGroupRequest>,
) -> Result<Response<pb::SeekGroupResponse>, Status> {
    let request = request.into_inner();
    let to = match request.to {
        Some(pb::seek_group_request::To::Position(position)) => {
            match pb::SeekPosition::try_from(position) {
                Ok(pb::SeekPosition::Earliest) => SeekTo::Earliest,
                Ok(pb::SeekPosition::Latest) => SeekTo::Latest,
                Ok(pb::SeekPosition::Unspecified) | Err(_) => {
                    return Err(invalid(format!(
                        "position {position} is not EARLIEST or LATEST"
                    )))
                }
            }
        }
        Some(pb::seek_group_request::To::Offset(offset)) => SeekTo::Offset(offset),
        Some(pb::seek_group_request::To::TimestampMs(ms)) => SeekTo::Timestamp(ms),
        Some(pb::seek_group_request::To::ShiftBy(by)) => SeekTo::Shift(by),
        None => {
            return Err(invalid(
                "where to: give position, offset, timestamp_ms or shift_by",
            ))
        }
    };
    let seeks = access
        .seek(
            broker,
            &request.group_id,
            to,
            &request.topics,
            request.dry_run,
        )
        .await
        .map_err(status)?;
    Ok(Response::new(pb::SeekGroupResponse {
        partitions: seeks
            .into_iter()
            .map(|seek| pb::GroupSeek {
                topic: seek.topic_partition.topic,
                partition: seek.topic_partition.partition,
                from_offset: seek.from,
                to_offset: seek.to,
            })
            .collect(),
    }))
}
