//! How the broker sees this door's groups: both coordinators (classic and consumer protocol) are
//! `GroupObserver`s, so the broker's `list_groups` / `describe_group` (and the gRPC and HTTP admin
//! built on them) show live Kafka members beside the committed offsets every door shares.
//!
//! Kafka members carry their subscription and assignment as consumer-protocol bytes, which the
//! coordinator relays without reading; they are decoded here, for display only. Bytes that do
//! not decode (another protocol type, a broken client) show as no topics and no partitions.

use brook_broker::{GroupListing, GroupObserver, LiveGroup, MemberDescription, TopicPartition};
use bytes::{Buf, Bytes};
use kafka_protocol::messages::{ConsumerProtocolAssignment, ConsumerProtocolSubscription};
use kafka_protocol::protocol::Decodable;

use crate::consumer_group::{ConsumerGroups, GroupView};
use crate::coordinator::{Coordinator, GroupSummary, MemberSummary};

/// The protocol type of consumer groups, the only one whose bytes are decoded.
const CONSUMER: &str = "consumer";

impl GroupObserver for Coordinator {
    fn list_groups(&self) -> Vec<GroupListing> {
        self.groups()
            .into_iter()
            .filter(|g| !g.members.is_empty())
            .map(|g| GroupListing {
                group: g.group,
                members: g.members.len(),
            })
            .collect()
    }

    fn describe_group(&self, group: &str) -> Option<LiveGroup> {
        let summary = self.describe(group).filter(|g| !g.members.is_empty())?;
        Some(live_group(summary))
    }
}

impl GroupObserver for ConsumerGroups {
    fn list_groups(&self) -> Vec<GroupListing> {
        self.groups()
            .into_iter()
            .map(|g| GroupListing {
                group: g.group,
                members: g.members.len(),
            })
            .collect()
    }

    fn describe_group(&self, group: &str) -> Option<LiveGroup> {
        self.describe(group).map(|view| consumer_live_group(&view))
    }
}

fn consumer_live_group(view: &GroupView) -> LiveGroup {
    LiveGroup {
        state: view.state,
        generation: u64::try_from(view.epoch).unwrap_or(0),
        members: view
            .members
            .iter()
            .map(|m| MemberDescription {
                member_id: m.member_id.clone(),
                client_id: m.client_id.clone(),
                topics: m.subscribed.clone(),
                assignment: view.named(&m.assigned),
            })
            .collect(),
    }
}

fn live_group(summary: GroupSummary) -> LiveGroup {
    let consumer = summary.protocol_type == CONSUMER;
    LiveGroup {
        state: summary.state.name(),
        generation: u64::try_from(summary.generation).unwrap_or(0),
        members: summary
            .members
            .into_iter()
            .map(|m| member(m, consumer))
            .collect(),
    }
}

fn member(m: MemberSummary, consumer: bool) -> MemberDescription {
    let (topics, assignment) = if consumer {
        (
            subscribed_topics(m.metadata),
            assigned_partitions(m.assignment),
        )
    } else {
        (Vec::new(), Vec::new())
    };
    MemberDescription {
        member_id: m.member_id,
        client_id: m.client_id,
        topics,
        assignment,
    }
}

/// Decodes a consumer-protocol message: a version, then the body. Versions newer than the codec
/// knows are read as its newest, as Kafka does (fields are only ever appended).
fn decode_versioned<T: Decodable>(mut bytes: Bytes, newest: i16) -> Option<T> {
    if bytes.remaining() < 2 {
        return None;
    }
    let version = bytes.get_i16();
    if version < 0 {
        return None;
    }
    T::decode(&mut bytes, version.min(newest)).ok()
}

/// The topics a consumer-protocol subscription (a member's metadata) names; none when the
/// bytes do not decode.
pub fn subscribed_topics(metadata: Bytes) -> Vec<String> {
    decode_versioned::<ConsumerProtocolSubscription>(metadata, 3)
        .map(|s| s.topics.into_iter().map(|t| t.to_string()).collect())
        .unwrap_or_default()
}

/// The partitions a consumer-protocol assignment gives a member; none when the bytes do not
/// decode.
pub fn assigned_partitions(assignment: Bytes) -> Vec<TopicPartition> {
    let Some(assignment) = decode_versioned::<ConsumerProtocolAssignment>(assignment, 3) else {
        return Vec::new();
    };
    assignment
        .assigned_partitions
        .into_iter()
        .flat_map(|tp| {
            let topic = tp.topic.0.to_string();
            tp.partitions.into_iter().filter_map(move |p| {
                Some(TopicPartition::new(topic.clone(), u32::try_from(p).ok()?))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as Assigned;
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::protocol::{Encodable, StrBytes};

    fn versioned<T: Encodable>(message: &T, version: i16) -> Bytes {
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&version.to_be_bytes());
        message.encode(&mut buf, version).expect("encode");
        buf.freeze()
    }

    #[test]
    fn consumer_protocol_bytes_decode_to_topics_and_partitions() {
        let mut subscription = ConsumerProtocolSubscription::default();
        subscription.topics = vec![
            StrBytes::from_static_str("a"),
            StrBytes::from_static_str("b"),
        ];
        assert_eq!(subscribed_topics(versioned(&subscription, 1)), ["a", "b"]);
        let mut assignment = ConsumerProtocolAssignment::default();
        let mut entry = Assigned::default();
        entry.topic = TopicName(StrBytes::from_static_str("a"));
        entry.partitions = vec![0, 2, -1];
        assignment.assigned_partitions = vec![entry];
        assert_eq!(
            assigned_partitions(versioned(&assignment, 0)),
            [TopicPartition::new("a", 0), TopicPartition::new("a", 2)]
        );
    }

    #[test]
    fn bytes_that_do_not_decode_show_nothing() {
        assert!(subscribed_topics(Bytes::new()).is_empty());
        assert!(subscribed_topics(Bytes::from_static(&[0, 0, 0x7f, 0xff, 0xff, 0xff])).is_empty());
        assert!(assigned_partitions(Bytes::from_static(&[0xff, 0xff, 0, 0])).is_empty());
    }
}
