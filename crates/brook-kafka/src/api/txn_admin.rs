//! What transaction tools (`kafka-transactions`, admin clients) ask to find a stuck
//! transaction: ListTransactions (key 66), DescribeTransactions (key 65) and DescribeProducers
//! (key 61), answered from the broker's transaction coordinator and the partitions' producer
//! states.

use std::collections::BTreeMap;

use brook_broker::TxnState;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::describe_transactions_response::{
    TopicData, TransactionState as DescribedState,
};
use kafka_protocol::messages::list_transactions_response::TransactionState as ListedState;
use kafka_protocol::messages::{
    DescribeProducersRequest, DescribeProducersResponse, DescribeTransactionsRequest,
    DescribeTransactionsResponse, ListTransactionsRequest, ListTransactionsResponse, ProducerId,
    TopicName, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;

use crate::codes;
use crate::state::ListenerState;

fn text(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

pub(crate) fn list(
    door: &ListenerState,
    request: ListTransactionsRequest,
) -> ListTransactionsResponse {
    let mut response = ListTransactionsResponse::default();
    let mut states = Vec::new();
    for name in &request.state_filters {
        match TxnState::from_name(name) {
            Some(state) => states.push(state),
            None => response.unknown_state_filters.push(name.clone()),
        }
    }
    // Only unknown states asked for: nothing can match.
    if states.is_empty() && !request.state_filters.is_empty() {
        return response;
    }
    let producers: Vec<i64> = request.producer_id_filters.iter().map(|p| p.0).collect();
    let min_duration = u64::try_from(request.duration_filter).ok();
    for listing in door
        .broker
        .list_transactions(&states, &producers, min_duration)
    {
        let mut entry = ListedState::default();
        entry.transactional_id = TransactionalId(text(listing.transactional_id));
        entry.producer_id = ProducerId(listing.producer_id);
        entry.transaction_state = text(listing.state.name());
        response.transaction_states.push(entry);
    }
    response
}

pub(crate) fn describe(
    door: &ListenerState,
    request: DescribeTransactionsRequest,
) -> DescribeTransactionsResponse {
    let mut response = DescribeTransactionsResponse::default();
    for id in request.transactional_ids {
        let mut entry = DescribedState::default();
        match door.broker.describe_transaction(&id.0) {
            Ok(described) => {
                entry.transaction_state = text(described.state.name());
                entry.transaction_timeout_ms =
                    i32::try_from(described.timeout_ms).unwrap_or(i32::MAX);
                entry.transaction_start_time_ms = described.start_ms.unwrap_or(-1);
                entry.producer_id = ProducerId(described.producer_id);
                entry.producer_epoch = described.producer_epoch;
                let mut topics: BTreeMap<String, Vec<i32>> = BTreeMap::new();
                for tp in described.partitions {
                    topics
                        .entry(tp.topic)
                        .or_default()
                        .push(i32::try_from(tp.partition).unwrap_or(i32::MAX));
                }
                for (topic, partitions) in topics {
                    let mut data = TopicData::default();
                    data.topic = TopicName(text(topic));
                    data.partitions = partitions;
                    entry.topics.push(data);
                }
            }
            Err(err) => {
                entry.error_code = codes::code(&err);
                entry.producer_id = ProducerId(-1);
                entry.producer_epoch = -1;
                entry.transaction_start_time_ms = -1;
            }
        }
        entry.transactional_id = id;
        response.transaction_states.push(entry);
    }
    response
}

pub(crate) fn describe_producers(
    door: &ListenerState,
    request: DescribeProducersRequest,
) -> DescribeProducersResponse {
    let mut response = DescribeProducersResponse::default();
    for topic in request.topics {
        let mut entry = TopicResponse::default();
        for index in topic.partition_indexes {
            let mut partition = PartitionResponse::default();
            partition.partition_index = index;
            let described = u32::try_from(index).map_err(|_| None).and_then(|p| {
                door.broker
                    .describe_producers(&topic.name.0, p)
                    .map_err(Some)
            });
            match described {
                Ok(producers) => {
                    for p in producers {
                        let mut state = ProducerState::default();
                        state.producer_id = ProducerId(p.producer_id);
                        state.producer_epoch = i32::from(p.producer_epoch);
                        state.last_sequence = p.last_sequence;
                        state.last_timestamp = p.last_timestamp;
                        state.coordinator_epoch = p.coordinator_epoch;
                        state.current_txn_start_offset =
                            p.current_txn_start_offset.map_or(-1, |o| o as i64);
                        partition.active_producers.push(state);
                    }
                }
                Err(Some(err)) => {
                    partition.error_code = codes::code(&err);
                    partition.error_message = Some(text(err.to_string()));
                }
                Err(None) => {
                    partition.error_code = ResponseError::UnknownTopicOrPartition.code();
                }
            }
            entry.partitions.push(partition);
        }
        entry.name = topic.name;
        response.topics.push(entry);
    }
    response
}
