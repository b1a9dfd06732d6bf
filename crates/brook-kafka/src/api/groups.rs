//! Consumer groups on the wire: FindCoordinator (key 10), JoinGroup (11), Heartbeat (12),
//! LeaveGroup (13), SyncGroup (14), DescribeGroups (15) and ListGroups (16), translated to and
//! from the coordinator's plain types (`coordinator`).
//!
//! Groups that only exist in the broker (gRPC subscribers, or committed offsets alone) and
//! consumer-protocol groups (KIP-848, `consumer_group`) are listed and described too, so Kafka
//! admin tools see every group whichever door and protocol made it. ListGroups v5 reports each
//! group's type: `consumer` for consumer-protocol groups, `classic` for the others.

use std::time::Duration;

use brook_broker::GroupDescription;
use bytes::{Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedPartitions;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator as CoordinatorEntry;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{
    BrokerId, ConsumerProtocolAssignment, ConsumerProtocolSubscription, DescribeGroupsRequest,
    DescribeGroupsResponse, FindCoordinatorRequest, FindCoordinatorResponse, GroupId,
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse, SyncGroupRequest, SyncGroupResponse,
    TopicName,
};
use kafka_protocol::protocol::{Encodable, StrBytes};

use tokio::sync::watch;

use crate::coordinator::{GroupState, GroupSummary, Join, JoinError, MemberSummary};
use crate::dispatch::Session;
use crate::state::{ListenerState, NODE_ID};

/// Resolves when the listener starts shutting down.
async fn stopped(stop: &watch::Receiver<()>) {
    let _ = stop.clone().changed().await;
}

/// FindCoordinator key types.
const KEY_GROUP: i8 = 0;
/// FindCoordinator key type of a transactional id.
const KEY_TRANSACTION: i8 = 1;
/// The protocol type of consumer groups.
const CONSUMER: &str = "consumer";
/// ListGroups v5's group types (KIP-848).
const GROUP_TYPE_CLASSIC: &str = "classic";
const GROUP_TYPE_CONSUMER: &str = "consumer";

fn text(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

pub(crate) fn find_coordinator(
    door: &ListenerState,
    request: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let mut response = FindCoordinatorResponse::default();
    let answer = |key: StrBytes| {
        let mut entry = CoordinatorEntry::default();
        entry.key = key;
        // Groups and transactional ids (key types 0 and 1) both live on the one broker.
        if request.key_type == KEY_GROUP || request.key_type == KEY_TRANSACTION {
            entry.node_id = BrokerId(NODE_ID);
            entry.host = text(door.advertised_host.clone());
            entry.port = door.advertised_port;
        } else {
            entry.node_id = BrokerId(-1);
            entry.port = -1;
            entry.error_code = ResponseError::InvalidRequest.code();
            entry.error_message = Some(text(format!(
                "coordinator key type {} is neither a group (0) nor a transactional id (1)",
                request.key_type
            )));
        }
        entry
    };
    if version >= 4 {
        response.coordinators = request
            .coordinator_keys
            .iter()
            .cloned()
            .map(answer)
            .collect();
    } else {
        let entry = answer(request.key);
        response.error_code = entry.error_code;
        response.error_message = entry.error_message;
        response.node_id = entry.node_id;
        response.host = entry.host;
        response.port = entry.port;
    }
    response
}

pub(crate) async fn join_group(
    door: &ListenerState,
    session: &Session,
    request: JoinGroupRequest,
    version: i16,
    stop: &watch::Receiver<()>,
) -> JoinGroupResponse {
    let session_timeout = Duration::from_millis(request.session_timeout_ms.max(0) as u64);
    // Version 0 had no rebalance timeout: the session timeout served for both.
    let rebalance_timeout = if version >= 1 {
        Duration::from_millis(request.rebalance_timeout_ms.max(0) as u64)
    } else {
        session_timeout
    };
    let join = Join {
        group: request.group_id.0.to_string(),
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.map(|s| s.to_string()),
        client_id: session.client_id.clone(),
        client_host: format!("/{}", session.peer.ip()),
        session_timeout,
        rebalance_timeout,
        protocol_type: request.protocol_type.to_string(),
        protocols: request
            .protocols
            .into_iter()
            .map(|p| (p.name.to_string(), p.metadata))
            .collect(),
        require_known_member_id: version >= 4,
    };
    let mut response = JoinGroupResponse::default();
    let member_id = join.member_id.clone();
    let answer = tokio::select! {
        answer = door.groups.join(join) => answer,
        // The listener is stopping: do not hold shutdown for a whole rebalance.
        _ = stopped(stop) => Err(JoinError {
            error: ResponseError::CoordinatorNotAvailable,
            member_id,
        }),
    };
    match answer {
        Ok(joined) => {
            response.generation_id = joined.generation;
            response.protocol_type = Some(text(joined.protocol_type));
            response.protocol_name = Some(text(joined.protocol));
            response.leader = text(joined.leader);
            response.member_id = text(joined.member_id);
            response.members = joined
                .members
                .into_iter()
                .map(|m| {
                    let mut member = JoinGroupResponseMember::default();
                    member.member_id = text(m.member_id);
                    member.group_instance_id = m.group_instance_id.map(text);
                    member.metadata = m.metadata;
                    member
                })
                .collect();
        }
        Err(err) => {
            response.error_code = err.error.code();
            response.generation_id = -1;
            response.protocol_name = Some(StrBytes::new());
            response.member_id = text(err.member_id);
        }
    }
    response
}

pub(crate) async fn sync_group(
    door: &ListenerState,
    request: SyncGroupRequest,
    stop: &watch::Receiver<()>,
) -> SyncGroupResponse {
    let assignments = request
        .assignments
        .into_iter()
        .map(|a| (a.member_id.to_string(), a.assignment))
        .collect();
    let mut response = SyncGroupResponse::default();
    let synced = door.groups.sync(
        &request.group_id.0,
        &request.member_id,
        request.group_instance_id.as_deref(),
        request.generation_id,
        assignments,
    );
    let answer = tokio::select! {
        answer = synced => answer,
        _ = stopped(stop) => Err(ResponseError::CoordinatorNotAvailable),
    };
    match answer {
        Ok(synced) => {
            response.protocol_type = Some(text(synced.protocol_type));
            response.protocol_name = Some(text(synced.protocol));
            response.assignment = synced.assignment;
        }
        // The assignment is always sent, empty when there is none (franz-go needs it).
        Err(error) => response.error_code = error.code(),
    }
    response
}

pub(crate) fn heartbeat(door: &ListenerState, request: HeartbeatRequest) -> HeartbeatResponse {
    let mut response = HeartbeatResponse::default();
    if let Err(error) = door.groups.heartbeat(
        &request.group_id.0,
        &request.member_id,
        request.group_instance_id.as_deref(),
        request.generation_id,
    ) {
        response.error_code = error.code();
    }
    response
}

pub(crate) fn leave_group(
    door: &ListenerState,
    request: LeaveGroupRequest,
    version: i16,
) -> LeaveGroupResponse {
    let mut response = LeaveGroupResponse::default();
    if version < 3 {
        let results = door.groups.leave(
            &request.group_id.0,
            &[(request.member_id.to_string(), None)],
        );
        if let Some(Err(error)) = results.first() {
            response.error_code = error.code();
        }
        return response;
    }
    let identities: Vec<(String, Option<String>)> = request
        .members
        .iter()
        .map(|m| {
            (
                m.member_id.to_string(),
                m.group_instance_id.as_deref().map(str::to_owned),
            )
        })
        .collect();
    let results = door.groups.leave(&request.group_id.0, &identities);
    response.members = request
        .members
        .into_iter()
        .zip(results)
        .map(|(asked, result)| {
            let mut member = MemberResponse::default();
            member.member_id = asked.member_id;
            member.group_instance_id = asked.group_instance_id;
            if let Err(error) = result {
                member.error_code = error.code();
            }
            member
        })
        .collect();
    response
}

pub(crate) fn list_groups(door: &ListenerState, request: ListGroupsRequest) -> ListGroupsResponse {
    let mut response = ListGroupsResponse::default();
    let classic = all_groups(door)
        .into_iter()
        .map(|g| (g.group, g.protocol_type, g.state.name(), GROUP_TYPE_CLASSIC));
    let consumer = door
        .consumer_groups
        .groups()
        .into_iter()
        .map(|g| (g.group, CONSUMER.to_owned(), g.state, GROUP_TYPE_CONSUMER));
    let wanted = |filter: &[StrBytes], value: &str| {
        filter.is_empty()
            || filter
                .iter()
                .any(|s| s.as_str().eq_ignore_ascii_case(value))
    };
    let mut groups: Vec<ListedGroup> = classic
        .chain(consumer)
        .filter(|(_, _, state, kind)| {
            wanted(&request.states_filter, state) && wanted(&request.types_filter, kind)
        })
        .map(|(group, protocol_type, state, kind)| {
            let mut listed = ListedGroup::default();
            listed.group_id = GroupId(text(group));
            listed.protocol_type = text(protocol_type);
            listed.group_state = text(state);
            listed.group_type = text(kind);
            listed
        })
        .collect();
    groups.sort_by(|a, b| a.group_id.0.cmp(&b.group_id.0));
    response.groups = groups;
    response
}

pub(crate) fn describe_groups(
    door: &ListenerState,
    request: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let mut response = DescribeGroupsResponse::default();
    for group_id in request.groups {
        let mut described = DescribedGroup::default();
        if let Some(view) = door.consumer_groups.describe(&group_id.0) {
            // Kafka's classic API answers a consumer-protocol group too, as well as it can:
            // its members' subscriptions and assignments in the consumer protocol's bytes.
            described.group_state = text(view.state);
            described.protocol_type = text(CONSUMER);
            described.protocol_data = text(view.assignor);
            described.members = view
                .members
                .iter()
                .map(|m| {
                    let mut member = DescribedGroupMember::default();
                    member.member_id = text(m.member_id.clone());
                    member.group_instance_id = m.instance_id.clone().map(text);
                    member.client_id = text(m.client_id.clone());
                    member.client_host = text(m.client_host.clone());
                    member.member_metadata = subscription_bytes(&m.subscribed);
                    member.member_assignment = assignment_bytes(&view.named(&m.assigned));
                    member
                })
                .collect();
            described.group_id = group_id;
            response.groups.push(described);
            continue;
        }
        match describe_one(door, &group_id.0) {
            Some(group) => {
                described.group_state = text(group.state.name());
                described.protocol_type = text(group.protocol_type);
                described.protocol_data = text(group.protocol);
                described.members = group.members.into_iter().map(described_member).collect();
            }
            // Kafka describes a group it does not know as Dead, without an error.
            None => described.group_state = text("Dead"),
        }
        described.group_id = group_id;
        response.groups.push(described);
    }
    response
}

fn described_member(m: MemberSummary) -> DescribedGroupMember {
    let mut member = DescribedGroupMember::default();
    member.member_id = text(m.member_id);
    member.group_instance_id = m.group_instance_id.map(text);
    member.client_id = text(m.client_id);
    member.client_host = text(m.client_host);
    member.member_metadata = m.metadata;
    member.member_assignment = m.assignment;
    member
}

/// The coordinator's groups, then the broker's that the coordinator does not have.
fn all_groups(door: &ListenerState) -> Vec<GroupSummary> {
    let mut groups = door.groups.groups();
    for listing in door.broker.list_groups() {
        if groups.iter().any(|g| g.group == listing.group)
            || door.consumer_groups.describe(&listing.group).is_some()
        {
            continue;
        }
        if let Some(group) = broker_group(door, &listing.group) {
            groups.push(group);
        }
    }
    groups.sort_by(|a, b| a.group.cmp(&b.group));
    groups
}

fn describe_one(door: &ListenerState, group: &str) -> Option<GroupSummary> {
    door.groups
        .describe(group)
        .or_else(|| broker_group(door, group))
}

/// A group the broker knows (gRPC subscribers, committed offsets), in Kafka's terms: its
/// members' subscriptions and assignments encoded as the consumer protocol does, so Kafka
/// tools can show them.
fn broker_group(door: &ListenerState, group: &str) -> Option<GroupSummary> {
    let description: GroupDescription = door.broker.describe_group(group).ok()?;
    let state = if description.members.is_empty() {
        GroupState::Empty
    } else {
        GroupState::Stable
    };
    let members = description
        .members
        .into_iter()
        .map(|m| MemberSummary {
            metadata: subscription_bytes(&m.topics),
            assignment: assignment_bytes(&m.assignment),
            member_id: m.member_id,
            group_instance_id: None,
            client_host: String::new(),
            client_id: m.client_id,
        })
        .collect();
    Some(GroupSummary {
        group: description.group,
        state,
        generation: i32::try_from(description.generation).unwrap_or(i32::MAX),
        protocol_type: CONSUMER.to_owned(),
        protocol: if state == GroupState::Empty {
            String::new()
        } else {
            "range".to_owned()
        },
        members,
    })
}

/// Consumer protocol version 0, which every Kafka tool reads.
const CONSUMER_PROTOCOL_VERSION: i16 = 0;

fn encode_versioned<T: Encodable>(message: &T) -> Bytes {
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&CONSUMER_PROTOCOL_VERSION.to_be_bytes());
    // Encoding plain strings and integers at version 0 cannot fail; an empty answer is the
    // harmless fallback if it ever did.
    match message.encode(&mut buf, CONSUMER_PROTOCOL_VERSION) {
        Ok(()) => buf.freeze(),
        Err(_) => Bytes::new(),
    }
}

fn subscription_bytes(topics: &[String]) -> Bytes {
    let mut subscription = ConsumerProtocolSubscription::default();
    subscription.topics = topics.iter().map(|t| text(t.clone())).collect();
    encode_versioned(&subscription)
}

fn assignment_bytes(partitions: &[brook_broker::TopicPartition]) -> Bytes {
    let mut assignment = ConsumerProtocolAssignment::default();
    for tp in partitions {
        let name = TopicName(text(tp.topic.clone()));
        match assignment
            .assigned_partitions
            .iter_mut()
            .find(|a| a.topic == name)
        {
            Some(entry) => entry.partitions.push(tp.partition as i32),
            None => {
                let mut entry = AssignedPartitions::default();
                entry.topic = name;
                entry.partitions.push(tp.partition as i32);
                assignment.assigned_partitions.push(entry);
            }
        }
    }
    encode_versioned(&assignment)
}
