//! The cluster as admin tools see it: DescribeCluster (key 60), DescribeLogDirs (key 35) and
//! ElectLeaders (key 43), answered as a one-node cluster would.
//!
//! brook is the only broker, the controller, and the leader and only replica of every
//! partition: DescribeCluster lists it alone; DescribeLogDirs reports one log directory (the
//! data directory) with each partition's size on disk; ElectLeaders finds every leader already
//! the preferred one (`ELECTION_NOT_NEEDED`), as Kafka answers when there is nothing to move.

use brook_broker::TopicDescription;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{
    BrokerId, DescribeClusterRequest, DescribeClusterResponse, DescribeLogDirsRequest,
    DescribeLogDirsResponse, ElectLeadersRequest, ElectLeadersResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::api::metadata::CLUSTER_ID;
use crate::state::{ListenerState, NODE_ID};

/// DescribeCluster endpoint types (v1+): brokers, or the controllers of a KRaft quorum.
const ENDPOINT_BROKERS: i8 = 1;
const ENDPOINT_CONTROLLERS: i8 = 2;
/// "Authorized operations not asked for", in every response that can carry them.
const OPERATIONS_NOT_REQUESTED: i32 = i32::MIN;

fn text(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

pub(crate) fn describe_cluster(
    door: &ListenerState,
    request: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let mut response = DescribeClusterResponse::default();
    response.endpoint_type = request.endpoint_type;
    response.cluster_id = text(CLUSTER_ID);
    response.controller_id = BrokerId(NODE_ID);
    response.cluster_authorized_operations = OPERATIONS_NOT_REQUESTED;
    match request.endpoint_type {
        // brook is its own controller: the one node answers for both.
        ENDPOINT_BROKERS | ENDPOINT_CONTROLLERS => {
            let mut broker = DescribeClusterBroker::default();
            broker.broker_id = BrokerId(NODE_ID);
            broker.host = text(door.advertised_host.clone());
            broker.port = door.advertised_port;
            response.brokers = vec![broker];
        }
        other => {
            response.error_code = ResponseError::UnsupportedEndpointType.code();
            response.error_message = Some(text(format!("endpoint type {other} is not 1 or 2")));
        }
    }
    response
}

pub(crate) fn describe_log_dirs(
    door: &ListenerState,
    request: DescribeLogDirsRequest,
) -> DescribeLogDirsResponse {
    // A null topic list asks for every partition.
    let wanted: Option<Vec<(String, Vec<i32>)>> = request.topics.map(|topics| {
        topics
            .into_iter()
            .map(|t| (t.topic.0.to_string(), t.partitions))
            .collect()
    });
    let descriptions: Vec<TopicDescription> = match &wanted {
        None => door
            .broker
            .list_topics()
            .into_iter()
            .filter_map(|t| door.broker.describe_topic(&t.name).ok())
            .collect(),
        Some(wanted) => wanted
            .iter()
            .filter_map(|(topic, _)| door.broker.describe_topic(topic).ok())
            .collect(),
    };
    let mut dir = DescribeLogDirsResult::default();
    dir.log_dir = text(door.broker.data_dir().display().to_string());
    // Volume sizes are not measured: -1, as Kafka answers when it does not know them.
    dir.total_bytes = -1;
    dir.usable_bytes = -1;
    for description in descriptions {
        let asked = wanted.as_ref().and_then(|w| {
            w.iter()
                .find(|(topic, _)| *topic == description.name)
                .map(|(_, partitions)| partitions)
        });
        let mut topic = DescribeLogDirsTopic::default();
        topic.name = TopicName(text(description.name.clone()));
        topic.partitions = description
            .partitions
            .iter()
            .filter(|p| asked.is_none_or(|asked| asked.contains(&(p.partition as i32))))
            .map(|p| {
                let mut partition = DescribeLogDirsPartition::default();
                partition.partition_index = p.partition as i32;
                partition.partition_size = i64::try_from(p.size_bytes).unwrap_or(i64::MAX);
                // The only replica is the leader: nothing to catch up on.
                partition.offset_lag = 0;
                partition
            })
            .collect();
        if !topic.partitions.is_empty() {
            dir.topics.push(topic);
        }
    }
    let mut response = DescribeLogDirsResponse::default();
    response.results = vec![dir];
    response
}

pub(crate) fn elect_leaders(
    door: &ListenerState,
    request: ElectLeadersRequest,
) -> ElectLeadersResponse {
    let mut response = ElectLeadersResponse::default();
    // Null: every partition. Kafka then lists only the partitions whose leader changed,
    // which on one node is none.
    let Some(topics) = request.topic_partitions else {
        return response;
    };
    for asked in topics {
        let partitions = door
            .broker
            .describe_topic(&asked.topic.0)
            .map(|d| d.partitions.len())
            .ok();
        let mut result = ReplicaElectionResult::default();
        result.partition_result = asked
            .partitions
            .iter()
            .map(|&partition| {
                let mut outcome = PartitionResult::default();
                outcome.partition_id = partition;
                let exists =
                    partitions.is_some_and(|n| usize::try_from(partition).is_ok_and(|p| p < n));
                let (error, message) = if exists {
                    (
                        ResponseError::ElectionNotNeeded,
                        "brook is the only replica and already the leader",
                    )
                } else {
                    (
                        ResponseError::UnknownTopicOrPartition,
                        "no such topic or partition",
                    )
                };
                outcome.error_code = error.code();
                outcome.error_message = Some(text(message));
                outcome
            })
            .collect();
        result.topic = asked.topic;
        response.replica_election_results.push(result);
    }
    response
}
