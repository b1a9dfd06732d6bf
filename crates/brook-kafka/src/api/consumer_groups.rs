//! The consumer group protocol on the wire (KIP-848): ConsumerGroupHeartbeat (key 68) and
//! ConsumerGroupDescribe (69), translated to and from the coordinator's plain types
//! (`consumer_group`). Topics travel by id in assignments; the broker's topic ids are the ones
//! Metadata reports, so a client resolves them there.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment as DescribedAssignment, DescribedGroup, Member as DescribedMember,
    TopicPartitions as DescribedPartitions,
};
use kafka_protocol::messages::consumer_group_heartbeat_response::{
    Assignment as HeartbeatAssignment, TopicPartitions,
};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, ConsumerGroupHeartbeatRequest,
    ConsumerGroupHeartbeatResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use crate::assignor::{Assignment, TopicId};
use crate::consumer_group::{GroupView, Heartbeat, TopicMeta};
use crate::dispatch::Session;
use crate::state::ListenerState;

fn text(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

/// Kafka's "authorized operations not asked for".
const NO_AUTHORIZED_OPERATIONS: i32 = i32::MIN;
/// ConsumerGroupDescribe v1's member type of a consumer-protocol member (KIP-1099).
const MEMBER_TYPE_CONSUMER: i8 = 1;

pub(crate) fn heartbeat(
    door: &ListenerState,
    session: &Session,
    request: ConsumerGroupHeartbeatRequest,
    version: i16,
) -> ConsumerGroupHeartbeatResponse {
    let hb = Heartbeat {
        group: request.group_id.0.to_string(),
        member_id: request.member_id.to_string(),
        member_epoch: request.member_epoch,
        instance_id: request.instance_id.map(|s| s.to_string()),
        rack_id: request.rack_id.map(|s| s.to_string()),
        rebalance_timeout_ms: request.rebalance_timeout_ms,
        subscribed_topics: request
            .subscribed_topic_names
            .map(|names| names.into_iter().map(|n| n.0.to_string()).collect()),
        subscribed_regex: request.subscribed_topic_regex.map(|s| s.to_string()),
        assignor: request.server_assignor.map(|s| s.to_string()),
        owned: request.topic_partitions.map(|topics| {
            let mut owned = Assignment::new();
            for t in topics {
                owned
                    .entry(*t.topic_id.as_bytes())
                    .or_default()
                    .extend(t.partitions);
            }
            owned
        }),
        client_id: session.client_id.clone(),
        client_host: format!("/{}", session.peer.ip()),
        version,
    };
    let lookup = |name: &str| {
        door.broker.describe_topic(name).ok().map(|d| TopicMeta {
            id: d.id,
            partitions: u32::try_from(d.partitions.len()).unwrap_or(u32::MAX),
        })
    };
    let mut response = ConsumerGroupHeartbeatResponse::default();
    match door.consumer_groups.heartbeat(hb, &lookup) {
        Ok(answer) => {
            response.member_id = Some(text(answer.member_id));
            response.member_epoch = answer.member_epoch;
            response.heartbeat_interval_ms =
                i32::try_from(answer.heartbeat_interval.as_millis()).unwrap_or(i32::MAX);
            response.assignment = answer.assignment.map(|assigned| {
                let mut assignment = HeartbeatAssignment::default();
                assignment.topic_partitions = assigned
                    .into_iter()
                    .map(|(id, partitions)| {
                        let mut entry = TopicPartitions::default();
                        entry.topic_id = Uuid::from_bytes(id);
                        entry.partitions = partitions.into_iter().collect();
                        entry
                    })
                    .collect();
                assignment
            });
        }
        Err(refusal) => {
            tracing::debug!(error = ?refusal.error, message = %refusal.message, client = %session.client_id, "ConsumerGroupHeartbeat refused");
            response.error_code = refusal.error.code();
            response.error_message = Some(text(refusal.message));
        }
    }
    response
}

pub(crate) fn describe(
    door: &ListenerState,
    request: ConsumerGroupDescribeRequest,
) -> ConsumerGroupDescribeResponse {
    let mut response = ConsumerGroupDescribeResponse::default();
    for group_id in request.group_ids {
        let mut described = DescribedGroup::default();
        described.authorized_operations = NO_AUTHORIZED_OPERATIONS;
        match door.consumer_groups.describe(&group_id.0) {
            Some(view) => fill(&mut described, view),
            None => {
                described.group_state = text("Dead");
                described.error_code = ResponseError::GroupIdNotFound.code();
                let why = match door.groups.describe(&group_id.0) {
                    Some(_) => "is a classic group",
                    None => "has no consumer-protocol members",
                };
                described.error_message = Some(text(format!("Group {} {why}.", &*group_id.0)));
            }
        }
        described.group_id = group_id;
        response.groups.push(described);
    }
    response
}

fn fill(described: &mut DescribedGroup, view: GroupView) {
    described.group_state = text(view.state);
    described.group_epoch = view.epoch;
    described.assignment_epoch = view.assignment_epoch;
    described.assignor_name = text(view.assignor);
    let names = &view.topic_names;
    described.members = view
        .members
        .into_iter()
        .map(|m| {
            let mut member = DescribedMember::default();
            member.member_id = text(m.member_id);
            member.instance_id = m.instance_id.map(text);
            member.rack_id = m.rack_id.map(text);
            member.member_epoch = m.epoch;
            member.client_id = text(m.client_id);
            member.client_host = text(m.client_host);
            member.subscribed_topic_names = m
                .subscribed
                .into_iter()
                .map(|t| TopicName(text(t)))
                .collect();
            member.assignment = described_assignment(&m.assigned, names);
            member.target_assignment = described_assignment(&m.target, names);
            member.member_type = MEMBER_TYPE_CONSUMER;
            member
        })
        .collect();
}

fn described_assignment(
    assignment: &Assignment,
    names: &BTreeMap<TopicId, String>,
) -> DescribedAssignment {
    let mut described = DescribedAssignment::default();
    described.topic_partitions = assignment
        .iter()
        .map(|(id, partitions): (&TopicId, &BTreeSet<i32>)| {
            let mut entry = DescribedPartitions::default();
            entry.topic_id = Uuid::from_bytes(*id);
            entry.topic_name = TopicName(text(names.get(id).cloned().unwrap_or_default()));
            entry.partitions = partitions.iter().copied().collect();
            entry
        })
        .collect();
    described
}
