//! Metadata (key 3): the broker list (brook alone, at its advertised address) and the topics a
//! client asks about, created on the fly when automatic creation is allowed.
//!
//! brook is the leader of every partition, with itself as the only replica. Leader epochs are
//! reported as -1 (unknown): clients then never need OffsetForLeaderEpoch to validate their
//! positions, which on a single node with one unchanging leader would tell them nothing.

use brook_broker::{BrokerError, NewTopic, TopicDescription};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use crate::codes;
use crate::state::{ListenerState, NODE_ID};

/// The cluster id brook reports (a single-node "cluster").
pub(crate) const CLUSTER_ID: &str = "brook";

pub(crate) async fn handle(
    door: &ListenerState,
    request: MetadataRequest,
    version: i16,
) -> MetadataResponse {
    let mut response = MetadataResponse::default();
    response.brokers = vec![broker_entry(door)];
    response.cluster_id = Some(StrBytes::from_static_str(CLUSTER_ID));
    response.controller_id = BrokerId(NODE_ID);
    // Version 0 has no null: an empty list asks for every topic.
    let requested = match request.topics {
        Some(topics) if !(version == 0 && topics.is_empty()) => Some(topics),
        _ => None,
    };
    let Some(requested) = requested else {
        response.topics = door
            .broker
            .list_topics()
            .into_iter()
            .filter_map(|t| door.broker.describe_topic(&t.name).ok())
            .map(|d| topic_entry(&d))
            .collect();
        return response;
    };
    // Before version 4 clients could not say, and Kafka created topics for them.
    let may_create = (version < 4 || request.allow_auto_topic_creation)
        && door.broker.config().auto_create_topics;
    for wanted in requested {
        let entry = match wanted.name {
            Some(name) => named_topic(door, &name.0, may_create).await,
            None => by_id(door, wanted.topic_id),
        };
        response.topics.push(entry);
    }
    response
}

/// brook itself, as the one broker of the cluster.
pub(crate) fn broker_entry(door: &ListenerState) -> MetadataResponseBroker {
    let mut broker = MetadataResponseBroker::default();
    broker.node_id = BrokerId(NODE_ID);
    broker.host = StrBytes::from_string(door.advertised_host.clone());
    broker.port = door.advertised_port;
    broker
}

/// The entry for a topic asked for by name, creating it when allowed.
async fn named_topic(door: &ListenerState, name: &str, may_create: bool) -> MetadataResponseTopic {
    match describe_or_create(door, name, may_create).await {
        Ok(description) => topic_entry(&description),
        Err(err) => error_entry(Some(name), Uuid::nil(), codes::error_code(&err)),
    }
}

async fn describe_or_create(
    door: &ListenerState,
    name: &str,
    may_create: bool,
) -> Result<TopicDescription, BrokerError> {
    brook_broker::validate_topic_name(name)?;
    match door.broker.describe_topic(name) {
        Err(BrokerError::UnknownTopic { .. }) if may_create => {
            let new = NewTopic {
                name: name.to_owned(),
                partitions: None,
                config: Default::default(),
            };
            match door.broker.create_topic(new).await {
                // Another client created it first: fine, describe theirs.
                Err(BrokerError::TopicExists { .. }) => door.broker.describe_topic(name),
                other => other,
            }
        }
        other => other,
    }
}

/// The entry for a topic asked for by id (Metadata v10+ allows it).
fn by_id(door: &ListenerState, id: Uuid) -> MetadataResponseTopic {
    door.broker
        .list_topics()
        .into_iter()
        .filter_map(|t| door.broker.describe_topic(&t.name).ok())
        .find(|d| Uuid::from_bytes(d.id) == id)
        .map(|d| topic_entry(&d))
        .unwrap_or_else(|| error_entry(None, id, ResponseError::UnknownTopicId))
}

fn topic_entry(description: &TopicDescription) -> MetadataResponseTopic {
    let mut topic = MetadataResponseTopic::default();
    topic.name = Some(TopicName(StrBytes::from_string(description.name.clone())));
    topic.topic_id = Uuid::from_bytes(description.id);
    topic.partitions = description
        .partitions
        .iter()
        .map(|p| {
            let mut partition = MetadataResponsePartition::default();
            partition.partition_index = p.partition as i32;
            partition.leader_id = BrokerId(NODE_ID);
            partition.leader_epoch = -1;
            partition.replica_nodes = vec![BrokerId(NODE_ID)];
            partition.isr_nodes = vec![BrokerId(NODE_ID)];
            partition
        })
        .collect();
    topic
}

fn error_entry(name: Option<&str>, id: Uuid, error: ResponseError) -> MetadataResponseTopic {
    let mut topic = MetadataResponseTopic::default();
    topic.error_code = error.code();
    topic.name = name.map(|n| TopicName(StrBytes::from_string(n.to_owned())));
    topic.topic_id = id;
    topic
}
