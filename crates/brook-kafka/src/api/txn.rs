//! The transaction APIs a transactional producer calls between InitProducerId and its next
//! transaction: AddPartitionsToTxn (key 24), AddOffsetsToTxn (key 25), EndTxn (key 26) and
//! TxnOffsetCommit (key 28), over the broker's transaction coordinator (KIP-98, KIP-447).
//!
//! AddPartitionsToTxn is served up to version 3, the last a client sends (version 4 batches
//! several transactions for brokers, KIP-890). Refusals are Kafka's codes, with
//! `INVALID_PRODUCER_EPOCH` for fencing in the versions before KIP-588 (`producers`).

use brook_broker::{
    BrokerError, OffsetCommit, ProducerIdAndEpoch, TopicPartition, TxnError, TxnResult,
};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse, EndTxnRequest, EndTxnResponse, TxnOffsetCommitRequest,
    TxnOffsetCommitResponse,
};

use crate::codes;
use crate::producers::{fenced_since, for_version};
use crate::state::ListenerState;

fn producer(id: i64, epoch: i16) -> ProducerIdAndEpoch {
    ProducerIdAndEpoch::new(id, epoch)
}

/// The code of a refusal in `version` of an API whose fencing code came in `fenced`.
fn refusal(err: &BrokerError, version: i16, fenced: i16) -> ResponseError {
    for_version(codes::error_code(err), version, fenced)
}

pub(crate) async fn add_partitions(
    door: &ListenerState,
    request: AddPartitionsToTxnRequest,
    version: i16,
) -> AddPartitionsToTxnResponse {
    let id = request.v3_and_below_transactional_id.0.to_string();
    let asked: Vec<(String, Vec<i32>)> = request
        .v3_and_below_topics
        .iter()
        .map(|t| (t.name.0.to_string(), t.partitions.clone()))
        .collect();
    let partitions: Vec<TopicPartition> = asked
        .iter()
        .flat_map(|(topic, ps)| {
            ps.iter().map(move |p| {
                TopicPartition::new(topic.clone(), u32::try_from(*p).unwrap_or(u32::MAX))
            })
        })
        .collect();
    let outcome = door
        .broker
        .add_partitions_to_txn(
            &id,
            producer(
                request.v3_and_below_producer_id.0,
                request.v3_and_below_producer_epoch,
            ),
            partitions,
        )
        .await;
    // Per partition: the partitions that do not exist get UNKNOWN_TOPIC_OR_PARTITION and the
    // others OPERATION_NOT_ATTEMPTED; any other refusal is every partition's.
    let code_of = |tp: &TopicPartition| -> ResponseError {
        match &outcome {
            Ok(()) => ResponseError::UnknownServerError,
            Err(BrokerError::Transaction(TxnError::UnknownPartitions(unknown))) => {
                if unknown.contains(tp) {
                    ResponseError::UnknownTopicOrPartition
                } else {
                    ResponseError::OperationNotAttempted
                }
            }
            Err(err) => refusal(err, version, fenced_since::ADD_PARTITIONS_TO_TXN),
        }
    };
    let mut response = AddPartitionsToTxnResponse::default();
    for (topic, ps) in asked {
        let mut entry = AddPartitionsToTxnTopicResult::default();
        for p in ps {
            let mut result = AddPartitionsToTxnPartitionResult::default();
            result.partition_index = p;
            if outcome.is_err() {
                let tp = TopicPartition::new(topic.clone(), u32::try_from(p).unwrap_or(u32::MAX));
                result.partition_error_code = code_of(&tp).code();
            }
            entry.results_by_partition.push(result);
        }
        entry.name = kafka_protocol::messages::TopicName(topic.into());
        response.results_by_topic_v3_and_below.push(entry);
    }
    response
}

pub(crate) async fn add_offsets(
    door: &ListenerState,
    request: AddOffsetsToTxnRequest,
    version: i16,
) -> AddOffsetsToTxnResponse {
    let mut response = AddOffsetsToTxnResponse::default();
    let outcome = door
        .broker
        .add_offsets_to_txn(
            &request.transactional_id.0,
            producer(request.producer_id.0, request.producer_epoch),
            &request.group_id.0,
        )
        .await;
    if let Err(err) = outcome {
        response.error_code = refusal(&err, version, fenced_since::ADD_OFFSETS_TO_TXN).code();
    }
    response
}

pub(crate) async fn end(
    door: &ListenerState,
    request: EndTxnRequest,
    version: i16,
) -> EndTxnResponse {
    let mut response = EndTxnResponse::default();
    let result = if request.committed {
        TxnResult::Commit
    } else {
        TxnResult::Abort
    };
    let outcome = door
        .broker
        .end_txn_decided(
            &request.transactional_id.0,
            producer(request.producer_id.0, request.producer_epoch),
            result,
        )
        .await;
    response.producer_id = request.producer_id;
    response.producer_epoch = request.producer_epoch;
    if let Err(err) = outcome {
        response.error_code = refusal(&err, version, fenced_since::END_TXN).code();
    }
    response
}

pub(crate) async fn offset_commit(
    door: &ListenerState,
    request: TxnOffsetCommitRequest,
    version: i16,
) -> TxnOffsetCommitResponse {
    let group = request.group_id.0.as_str();
    // KIP-447: a producer that says which consumer generation it commits for is checked
    // against the group, as OffsetCommit is; one that does not (-1, or v0-2) is not.
    let member_check = if request.generation_id >= 0 {
        // A consumer-protocol member (KIP-848) commits at its member epoch.
        door.consumer_groups
            .check_commit(group, &request.member_id, request.generation_id, None)
            .unwrap_or_else(|| {
                door.groups.check_commit(
                    group,
                    &request.member_id,
                    request.group_instance_id.as_deref(),
                    request.generation_id,
                )
            })
    } else {
        Ok(())
    };
    let commits: Vec<OffsetCommit> = request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(move |p| OffsetCommit {
                topic_partition: TopicPartition::new(
                    t.name.0.to_string(),
                    u32::try_from(p.partition_index).unwrap_or(u32::MAX),
                ),
                offset: u64::try_from(p.committed_offset).unwrap_or(0),
                metadata: p.committed_metadata.as_deref().unwrap_or("").to_owned(),
            })
        })
        .collect();
    let negative = request
        .topics
        .iter()
        .flat_map(|t| &t.partitions)
        .any(|p| p.committed_offset < 0 || p.partition_index < 0);
    let error = match member_check {
        Err(error) => Some(error),
        Ok(()) if negative => Some(ResponseError::InvalidRequest),
        Ok(()) => door
            .broker
            .txn_offset_commit(
                &request.transactional_id.0,
                producer(request.producer_id.0, request.producer_epoch),
                group,
                commits,
            )
            .await
            .err()
            .map(|err| refusal(&err, version, fenced_since::TXN_OFFSET_COMMIT)),
    };
    let mut response = TxnOffsetCommitResponse::default();
    for topic in request.topics {
        let mut entry = TxnOffsetCommitResponseTopic::default();
        for p in &topic.partitions {
            let mut answer = TxnOffsetCommitResponsePartition::default();
            answer.partition_index = p.partition_index;
            if let Some(error) = error {
                answer.error_code = error.code();
            }
            entry.partitions.push(answer);
        }
        entry.name = topic.name;
        response.topics.push(entry);
    }
    response
}
