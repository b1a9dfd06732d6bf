//! Produce (key 0): each partition's record batch is stored as the client built it (the broker
//! validates it: CRC-32C, lengths, magic, record framing, and assigns the offsets), and the
//! partitions of one request are appended concurrently so their fsyncs overlap.
//!
//! Idempotence and transactions are the partition log's and the coordinator's: a retried batch
//! of an idempotent producer is answered with its first write's offsets, out-of-order and
//! fenced batches are refused there; a Produce with a `transactional_id` appends only to
//! partitions its open transaction holds (`Broker::produce_transactional_batch`). Fencing is
//! `INVALID_PRODUCER_EPOCH` here, in every version, as Kafka answers it.
//!
//! A refusal says why in `error_message` (v8+); one that is about particular records (a
//! compacted topic's keyless ones) also lists them by index in the batch in `record_errors`,
//! as Kafka's broker does.
//!
//! acks: 0 gets no response at all; 1 and -1 (all) both answer once the batch is stored under
//! the broker's durability setting, the only replica being brook itself.

use brook_broker::{BatchAppended, BrokerError};
use brook_log::BatchError;
use bytes::Bytes;
use futures::future::join_all;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;

use crate::codes;
use crate::producers::{fenced_since, for_version};
use crate::state::ListenerState;

/// The answer for one partition.
struct Outcome {
    /// The error and why, in words (Produce v8+ carries the words); `None` when stored.
    error: Option<(ResponseError, String)>,
    /// The records that made the batch refused, by index in the batch, and why (Produce v8+
    /// `record_errors`, as Kafka's broker lists them); empty when the batch as a whole is.
    record_errors: Vec<(i32, String)>,
    base_offset: i64,
    log_start_offset: i64,
}

impl Outcome {
    fn stored(base_offset: u64, log_start_offset: u64) -> Self {
        Self {
            error: None,
            record_errors: Vec::new(),
            base_offset: base_offset as i64,
            log_start_offset: log_start_offset as i64,
        }
    }

    fn failed(error: ResponseError, message: impl Into<String>) -> Self {
        Self {
            error: Some((error, message.into())),
            record_errors: Vec::new(),
            base_offset: -1,
            log_start_offset: -1,
        }
    }
}

/// Answers a Produce request from `client_id`; `None` for acks=0, which wants no response.
pub(crate) async fn handle(
    door: &ListenerState,
    request: ProduceRequest,
    client_id: &str,
) -> Option<ProduceResponse> {
    let acks = request.acks;
    let bad_acks = !matches!(acks, -1..=1);
    let transactional_id = request.transactional_id.as_ref().map(|id| id.0.to_string());
    // The connection answers this request before it reads the next, so a request of one
    // partition's batch is awaited at once (a lone record's fsync may run in place); batches of
    // several partitions are queued together, their fsyncs running side by side.
    let awaited = request
        .topic_data
        .iter()
        .map(|t| t.partition_data.len())
        .sum::<usize>()
        == 1;
    let mut jobs = Vec::new();
    for topic in &request.topic_data {
        for partition in &topic.partition_data {
            let name = topic.name.0.to_string();
            let index = partition.index;
            let records = partition.records.clone();
            let transactional_id = transactional_id.as_deref();
            jobs.push(async move {
                let outcome = if bad_acks {
                    Outcome::failed(
                        ResponseError::InvalidRequiredAcks,
                        format!("acks {acks} is not -1, 0 or 1"),
                    )
                } else {
                    produce_partition(door, transactional_id, &name, index, records, awaited).await
                };
                (name, index, outcome)
            });
        }
    }
    let outcomes = join_all(jobs).await;
    for (name, index, outcome) in &outcomes {
        if let Some((error, reason)) = &outcome.error {
            if matches!(
                error,
                ResponseError::CorruptMessage | ResponseError::InvalidRecord
            ) {
                // The client shows only a code (librdkafka: "CRC error"): say why here.
                tracing::warn!(topic = %name, partition = index, client = client_id, error = error.code(), %reason, "produce refused");
            }
        }
    }
    if acks == 0 {
        return None;
    }
    let mut response = ProduceResponse::default();
    for (name, index, outcome) in outcomes {
        let mut partition = PartitionProduceResponse::default();
        partition.index = index;
        if let Some((error, message)) = outcome.error {
            partition.error_code = error.code();
            partition.error_message = Some(StrBytes::from_string(message));
        }
        partition.record_errors = outcome
            .record_errors
            .into_iter()
            .map(|(batch_index, message)| {
                BatchIndexAndErrorMessage::default()
                    .with_batch_index(batch_index)
                    .with_batch_index_error_message(Some(StrBytes::from_string(message)))
            })
            .collect();
        partition.base_offset = outcome.base_offset;
        partition.log_append_time_ms = -1;
        partition.log_start_offset = outcome.log_start_offset;
        match response
            .responses
            .iter_mut()
            .find(|t| t.name.0.as_str() == name)
        {
            Some(topic) => topic.partition_responses.push(partition),
            None => {
                let mut topic = TopicProduceResponse::default();
                topic.name = StrBytes::from_string(name).into();
                topic.partition_responses.push(partition);
                response.responses.push(topic);
            }
        }
    }
    Some(response)
}

/// Stores one partition's batch (a transactional producer's through its transaction).
async fn produce_partition(
    door: &ListenerState,
    transactional_id: Option<&str>,
    topic: &str,
    index: i32,
    records: Option<Bytes>,
    awaited: bool,
) -> Outcome {
    let Ok(partition) = u32::try_from(index) else {
        return Outcome::failed(
            ResponseError::UnknownTopicOrPartition,
            format!("partition {index} does not exist"),
        );
    };
    let Some(records) = records.filter(|r| !r.is_empty()) else {
        return Outcome::failed(ResponseError::CorruptMessage, "no record batch");
    };
    // Handed on as a slice of the request: the log writes its own copy of the header in front
    // of these bytes, which it never changes.
    let bytes = records.len();
    let appended = match transactional_id {
        Some(id) => {
            door.broker
                .produce_transactional_batch(id, topic, partition, records)
                .await
        }
        None if awaited => {
            door.broker
                .produce_batch_awaited(topic, partition, records)
                .await
        }
        None => door.broker.produce_batch(topic, partition, records).await,
    };
    if let Ok(appended) = &appended {
        crate::observe::records_in(topic, partition, appended.record_count, bytes);
    }
    to_outcome(appended)
}

fn to_outcome(result: Result<BatchAppended, BrokerError>) -> Outcome {
    match result {
        Ok(appended) => Outcome::stored(appended.base_offset, appended.log_start_offset),
        Err(err) => {
            let code = for_version(codes::error_code(&err), 0, fenced_since::PRODUCE);
            let mut outcome = Outcome::failed(code, err.to_string());
            outcome.record_errors = record_errors(&err);
            outcome
        }
    }
}

/// The records a refusal names, each with its own reason: a compacted topic's keyless records.
fn record_errors(err: &BrokerError) -> Vec<(i32, String)> {
    match err {
        BrokerError::InvalidBatch {
            source: BatchError::MissingKey { indexes },
            ..
        } => indexes
            .iter()
            .map(|&index| {
                let reason = format!(
                    "record {index} has a null key: every record of a compacted topic needs a key"
                );
                (index, reason)
            })
            .collect(),
        _ => Vec::new(),
    }
}
