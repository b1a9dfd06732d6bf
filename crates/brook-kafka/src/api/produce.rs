//! Produce (key 0): each partition's record batch is stored as the client built it (the broker
//! validates it: CRC-32C, lengths, magic, record framing, and assigns the offsets), batches of
//! an idempotent producer are deduplicated first, and the partitions of one request are
//! appended concurrently so their fsyncs overlap.
//!
//! acks: 0 gets no response at all; 1 and -1 (all) both answer once the batch is stored under
//! the broker's durability setting, the only replica being brook itself.

use std::time::Duration;

use brook_broker::{BatchAppended, BrokerError, OffsetSpec};
use brook_log::batch::BatchHeader;
use bytes::{Bytes, BytesMut};
use futures::future::join_all;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;

use crate::codes;
use crate::producers::{last_seq, KeptBatch, PartitionProducers, Verdict};
use crate::state::ListenerState;

/// Bytes read at a time while rebuilding idempotence state from a partition's log.
const REBUILD_READ_BYTES: usize = 4 << 20;

/// The answer for one partition.
struct Outcome {
    /// The error and why, in words (Produce v8+ carries the words); `None` when stored.
    error: Option<(ResponseError, String)>,
    base_offset: i64,
    log_start_offset: i64,
}

impl Outcome {
    fn stored(base_offset: u64, log_start_offset: u64) -> Self {
        Self {
            error: None,
            base_offset: base_offset as i64,
            log_start_offset: log_start_offset as i64,
        }
    }

    fn failed(error: ResponseError, message: impl Into<String>) -> Self {
        Self {
            error: Some((error, message.into())),
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
    let transactional = request.transactional_id.is_some();
    let mut jobs = Vec::new();
    for topic in &request.topic_data {
        for partition in &topic.partition_data {
            let name = topic.name.0.to_string();
            let index = partition.index;
            let records = partition.records.clone();
            jobs.push(async move {
                let outcome = if bad_acks {
                    Outcome::failed(
                        ResponseError::InvalidRequiredAcks,
                        format!("acks {acks} is not -1, 0 or 1"),
                    )
                } else if transactional {
                    Outcome::failed(
                        ResponseError::TransactionalIdAuthorizationFailed,
                        "transactions are not supported by brook",
                    )
                } else {
                    produce_partition(door, &name, index, records).await
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

/// Stores one partition's batch, deduplicating an idempotent producer's retries.
async fn produce_partition(
    door: &ListenerState,
    topic: &str,
    index: i32,
    records: Option<Bytes>,
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
    // The broker validates the whole batch; only the fields deciding idempotence are read here.
    let header = match BatchHeader::parse(&records) {
        Ok(header) => header,
        Err(err) => return Outcome::failed(ResponseError::CorruptMessage, err.to_string()),
    };
    if header.is_transactional() {
        return Outcome::failed(
            ResponseError::TransactionalIdAuthorizationFailed,
            "transactional batches are not supported by brook",
        );
    }
    if header.producer_id < 0 {
        return store(door, topic, partition, &records).await;
    }
    let state = door.producers.partition(topic, partition);
    let mut state = state.lock().await;
    if !state.is_loaded() {
        if let Err(err) = rebuild(door, topic, partition, &mut state).await {
            return Outcome::failed(codes::error_code(&err), err.to_string());
        }
    }
    let verdict = state.check(
        header.producer_id,
        header.producer_epoch,
        header.base_sequence,
        header.records_count,
    );
    match verdict {
        Err(error) => Outcome::failed(
            error,
            format!(
                "producer {} epoch {} sequence {} rejected",
                header.producer_id, header.producer_epoch, header.base_sequence
            ),
        ),
        Ok(Verdict::Duplicate(kept)) => Outcome::stored(kept.base_offset, kept.log_start_offset),
        Ok(Verdict::Append) => {
            let outcome = append(door, topic, partition, &records).await;
            if let Ok(appended) = &outcome {
                state.record(
                    header.producer_id,
                    header.producer_epoch,
                    KeptBatch {
                        first_seq: header.base_sequence,
                        last_seq: last_seq(header.base_sequence, header.records_count),
                        base_offset: appended.base_offset,
                        log_start_offset: appended.log_start_offset,
                    },
                );
            }
            to_outcome(outcome)
        }
    }
}

/// Rebuilds a partition's idempotence state from its log, once after the door starts, so
/// batches written before a restart are still known.
async fn rebuild(
    door: &ListenerState,
    topic: &str,
    partition: u32,
    state: &mut PartitionProducers,
) -> Result<(), BrokerError> {
    let high_watermark = match door.broker.watch_high_watermark(topic, partition) {
        Ok(hw) => *hw.borrow(),
        // A topic that does not exist yet has no history (producing may create it).
        Err(BrokerError::UnknownTopic { .. }) => 0,
        Err(err) => return Err(err),
    };
    let mut offset = match high_watermark {
        0 => 0,
        _ => door
            .broker
            .list_offset(topic, partition, OffsetSpec::Earliest)
            .await?
            .offset
            .unwrap_or(0),
    };
    while offset < high_watermark {
        let fetched = door
            .broker
            .fetch(topic, partition, offset, REBUILD_READ_BYTES, Duration::ZERO)
            .await?;
        let next = state
            .replay(&fetched.batches, fetched.log_start_offset)
            .map_err(|source| BrokerError::InvalidBatch {
                topic: topic.to_owned(),
                partition,
                source,
            })?;
        if next <= offset {
            break; // nothing more readable
        }
        offset = next;
    }
    state.mark_loaded();
    Ok(())
}

async fn store(door: &ListenerState, topic: &str, partition: u32, records: &Bytes) -> Outcome {
    to_outcome(append(door, topic, partition, records).await)
}

async fn append(
    door: &ListenerState,
    topic: &str,
    partition: u32,
    records: &Bytes,
) -> Result<BatchAppended, BrokerError> {
    // The broker patches the base offset in place, so it needs its own copy of the bytes.
    let appended = door
        .broker
        .produce_batch(topic, partition, BytesMut::from(&records[..]))
        .await?;
    crate::observe::records_in(topic, partition, appended.record_count, records.len());
    Ok(appended)
}

fn to_outcome(result: Result<BatchAppended, BrokerError>) -> Outcome {
    match result {
        Ok(appended) => Outcome::stored(appended.base_offset, appended.log_start_offset),
        Err(err) => Outcome::failed(codes::error_code(&err), err.to_string()),
    }
}
