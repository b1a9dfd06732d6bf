//! Fetch (key 1): the stored batches of each asked-for partition go out as they are on disk
//! (no record is decoded or re-encoded on this path, and the buffer the log read them into is
//! written to the socket as it is: [`stored_batches`], `frame::ResponseFrame`), within the
//! request's byte limits, after a long poll: when fewer than `min_bytes` are ready, the request
//! waits on the partitions' high-watermark channels (woken by appends) until enough arrive or
//! `max_wait_ms` passes.
//!
//! Up to version 12 topics are named; from 13 they are identified by their topic id.
//!
//! Fetch sessions (KIP-227) are not kept: every response carries session id 0, which tells a
//! client to keep sending full requests.
//!
//! `isolation_level` read_committed (1, librdkafka's default) reads below each partition's last
//! stable offset and carries the aborted transactions of the range read, whose batches the
//! client drops (with the control batches); read_uncommitted (0) reads to the high watermark.

use std::collections::HashMap;
use std::time::Duration;

use brook_broker::{BrokerError, Isolation};
use bytes::Bytes;
use futures::future::select_all;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{FetchRequest, FetchResponse, ProducerId, TopicName};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::watch;
use tokio::time::Instant;
use uuid::Uuid;

use crate::codes;
use crate::state::ListenerState;

pub(crate) async fn handle(
    door: &ListenerState,
    mut request: FetchRequest,
    version: i16,
    stop: &watch::Receiver<()>,
) -> FetchResponse {
    if version >= 13 {
        name_topics_by_id(door, &mut request);
    }
    let limits = &door.broker.config().limits;
    let max_wait =
        Duration::from_millis(request.max_wait_ms.max(0) as u64).min(limits.fetch_wait_max());
    let deadline = Instant::now() + max_wait;
    let min_bytes = request.min_bytes.max(0) as usize;
    let max_bytes = match request.max_bytes {
        n if n > 0 => (n as usize).min(limits.fetch_bytes_max),
        _ => limits.fetch_bytes_max,
    };
    let isolation = isolation_of(request.isolation_level);
    let mut stop = stop.clone();
    loop {
        // Subscribe before reading, so an append landing in between still wakes the wait.
        let mut watches = watch_partitions(door, &request, isolation);
        let (response, bytes, failed) = fetch_once(door, &request, max_bytes, isolation).await;
        if bytes >= min_bytes || failed || watches.is_empty() || Instant::now() >= deadline {
            return response;
        }
        let woken = select_all(watches.iter_mut().map(|w| Box::pin(w.changed())));
        tokio::select! {
            _ = woken => {}
            () = tokio::time::sleep_until(deadline) => {}
            _ = stop.changed() => return response,
        }
        if Instant::now() >= deadline {
            // Data may have landed right at the deadline: one last look.
            return fetch_once(door, &request, max_bytes, isolation).await.0;
        }
    }
}

/// The record batches `response` carries, one buffer per partition: what its frame passes on
/// uncopied (`frame::ResponseFrame`).
pub(crate) fn stored_batches(response: &FetchResponse) -> Vec<Bytes> {
    response
        .responses
        .iter()
        .flat_map(|topic| &topic.partitions)
        .filter_map(|partition| partition.records.clone())
        .filter(|records| !records.is_empty())
        .collect()
}

/// From version 13 a fetch names topics by id: fills in each topic's name, or leaves it empty
/// (never a valid name) when no topic has that id, which is answered UNKNOWN_TOPIC_ID.
pub(crate) fn name_topics_by_id(door: &ListenerState, request: &mut FetchRequest) {
    let ids: HashMap<Uuid, String> = door
        .broker
        .list_topics()
        .into_iter()
        .filter_map(|t| door.broker.describe_topic(&t.name).ok())
        .map(|d| (Uuid::from_bytes(d.id), d.name))
        .collect();
    for topic in &mut request.topics {
        let name = ids.get(&topic.topic_id).cloned().unwrap_or_default();
        topic.topic = TopicName(StrBytes::from_string(name));
    }
}

/// The isolation a Fetch or ListOffsets asks for: 1 is read_committed, anything else
/// read_uncommitted (as Kafka reads it).
pub(crate) fn isolation_of(level: i8) -> Isolation {
    if level == 1 {
        Isolation::ReadCommitted
    } else {
        Isolation::ReadUncommitted
    }
}

/// A receiver of what the request may read (high watermark or last stable offset) for every
/// asked-for partition that exists.
fn watch_partitions(
    door: &ListenerState,
    request: &FetchRequest,
    isolation: Isolation,
) -> Vec<watch::Receiver<u64>> {
    request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.topic.0.as_str(), p.partition))
        })
        .filter_map(|(topic, p)| {
            let p = u32::try_from(p).ok()?;
            let mut rx = door.broker.watch_readable_end(topic, p, isolation).ok()?;
            rx.borrow_and_update();
            Some(rx)
        })
        .collect()
}

/// Reads every asked-for partition without waiting. Returns the response, the record bytes in
/// it, and whether any partition failed (an error answers at once, as Kafka does).
async fn fetch_once(
    door: &ListenerState,
    request: &FetchRequest,
    max_bytes: usize,
    isolation: Isolation,
) -> (FetchResponse, usize, bool) {
    let mut response = FetchResponse::default();
    let mut used = 0usize;
    let mut failed = false;
    for topic in &request.topics {
        let mut entry = FetchableTopicResponse::default();
        entry.topic = topic.topic.clone();
        entry.topic_id = topic.topic_id;
        for asked in &topic.partitions {
            let budget = max_bytes
                .saturating_sub(used)
                .min(asked.partition_max_bytes.max(0) as usize);
            let data = fetch_partition(
                door,
                topic.topic.0.as_str(),
                asked.partition,
                asked.fetch_offset,
                budget,
                isolation,
            )
            .await;
            if data.error_code != codes::NONE {
                failed = true;
            }
            used += data.records.as_ref().map_or(0, Bytes::len);
            entry.partitions.push(data);
        }
        response.responses.push(entry);
    }
    (response, used, failed)
}

async fn fetch_partition(
    door: &ListenerState,
    topic: &str,
    index: i32,
    offset: i64,
    budget: usize,
    isolation: Isolation,
) -> PartitionData {
    let mut data = PartitionData::default();
    data.partition_index = index;
    data.records = Some(Bytes::new());
    if topic.is_empty() {
        data.error_code = ResponseError::UnknownTopicId.code();
        return data;
    }
    let (Ok(partition), Ok(offset)) = (u32::try_from(index), u64::try_from(offset)) else {
        data.error_code = if index < 0 {
            ResponseError::UnknownTopicOrPartition.code()
        } else {
            ResponseError::OffsetOutOfRange.code()
        };
        return data;
    };
    if budget == 0 {
        // Over the response's byte limit: report where the partition stands, no records.
        let ends = door
            .broker
            .watch_high_watermark(topic, partition)
            .and_then(|hw| {
                let lso = door.broker.last_stable_offset(topic, partition)?;
                Ok((*hw.borrow(), lso))
            });
        return match ends {
            Ok((hw, lso)) => {
                data.high_watermark = hw as i64;
                data.last_stable_offset = lso as i64;
                data
            }
            Err(err) => failed(data, &err),
        };
    }
    match door
        .broker
        .fetch_isolated(topic, partition, offset, budget, Duration::ZERO, isolation)
        .await
    {
        Ok(fetched) => {
            data.high_watermark = fetched.high_watermark as i64;
            data.last_stable_offset = fetched.last_stable_offset as i64;
            data.log_start_offset = fetched.log_start_offset as i64;
            if isolation == Isolation::ReadCommitted {
                let aborted = fetched.aborted.iter().map(|a| {
                    let mut txn = AbortedTransaction::default();
                    txn.producer_id = ProducerId(a.producer_id);
                    txn.first_offset = a.first_offset as i64;
                    txn
                });
                data.aborted_transactions = Some(aborted.collect());
            }
            crate::observe::records_out(topic, partition, &fetched.batches);
            data.records = Some(fetched.batches);
            data
        }
        Err(err) => failed(data, &err),
    }
}

fn failed(mut data: PartitionData, err: &BrokerError) -> PartitionData {
    data.error_code = codes::code(err);
    if let BrokerError::OffsetOutOfRange {
        log_start_offset,
        high_watermark,
        ..
    } = err
    {
        data.high_watermark = *high_watermark as i64;
        data.last_stable_offset = *high_watermark as i64;
        data.log_start_offset = *log_start_offset as i64;
    }
    data
}
