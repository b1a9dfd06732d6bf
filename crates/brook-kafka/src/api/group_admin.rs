//! Group administration: DeleteGroups (key 42) and OffsetDelete (key 47), over the broker's
//! committed offsets, so a group deleted here is gone for every door.
//!
//! Both need the group without live members where it matters, as Kafka does: DeleteGroups
//! refuses a group with members (`NON_EMPTY_GROUP`), OffsetDelete a partition whose topic a
//! live member subscribes to (`GROUP_SUBSCRIBED_TO_TOPIC`). Offset resets
//! (`kafka-consumer-groups --reset-offsets`) need nothing of their own here: the tool lists
//! offsets and commits them with OffsetCommit to the empty group.

use brook_broker::TopicPartition;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, OffsetDeleteRequest, OffsetDeleteResponse,
};

use crate::codes;
use crate::state::ListenerState;

pub(crate) async fn delete_groups(
    door: &ListenerState,
    request: DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    let mut response = DeleteGroupsResponse::default();
    for group in request.groups_names {
        let mut result = DeletableGroupResult::default();
        if let Err(err) = door.broker.delete_group(&group.0).await {
            result.error_code = codes::code(&err);
        }
        result.group_id = group;
        response.results.push(result);
    }
    response
}

pub(crate) async fn offset_delete(
    door: &ListenerState,
    request: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    let mut response = OffsetDeleteResponse::default();
    let group = request.group_id.0.as_str();
    let description = match door.broker.describe_group(group) {
        Ok(description) => description,
        Err(err) => {
            response.error_code = codes::code(&err);
            return response;
        }
    };
    let subscribed = |topic: &str| {
        description.members.iter().any(|m| {
            m.topics.iter().any(|t| t == topic) || m.assignment.iter().any(|tp| tp.topic == topic)
        })
    };
    let mut doomed = Vec::new();
    for topic in request.topics {
        let partitions = door
            .broker
            .describe_topic(&topic.name.0)
            .map(|d| d.partitions.len())
            .ok();
        let mut result = OffsetDeleteResponseTopic::default();
        for asked in &topic.partitions {
            let mut partition = OffsetDeleteResponsePartition::default();
            partition.partition_index = asked.partition_index;
            let index = u32::try_from(asked.partition_index).ok();
            let exists = index.is_some_and(|p| partitions.is_some_and(|n| (p as usize) < n));
            let error = if !exists {
                Some(ResponseError::UnknownTopicOrPartition)
            } else if subscribed(&topic.name.0) {
                Some(ResponseError::GroupSubscribedToTopic)
            } else {
                None
            };
            match (error, index) {
                (None, Some(index)) => {
                    doomed.push(TopicPartition::new(topic.name.0.to_string(), index))
                }
                (error, _) => {
                    partition.error_code = error.map_or(codes::NONE, |e| e.code());
                }
            }
            result.partitions.push(partition);
        }
        result.name = topic.name;
        response.topics.push(result);
    }
    if !doomed.is_empty() {
        if let Err(err) = door.broker.delete_committed_offsets(group, &doomed).await {
            // A member subscribed in the meantime, or the store failed: nothing was deleted.
            let code = match err {
                brook_broker::BrokerError::GroupNotEmpty { .. } => {
                    ResponseError::GroupSubscribedToTopic.code()
                }
                other => codes::code(&other),
            };
            for topic in &mut response.topics {
                for partition in &mut topic.partitions {
                    if partition.error_code == codes::NONE {
                        partition.error_code = code;
                    }
                }
            }
        }
    }
    response
}
