//! Transactions at the HTTP door:
//!
//! - `POST /v1/transactions`: an atomic write, records for one or more topics and optionally
//!   consumer group offsets, all or nothing ([`brook_broker::Broker::transaction`]). The body is
//!   `{"topics": [{"topic", "records": [...]}], "offsets": [{"group", "offsets": [...]}]}` (records
//!   and offsets as `POST /v1/topics/{topic}/records` and `POST /v1/groups/{group}/offsets`
//!   take them, encodings likewise); the answer lists each topic entry's record positions, in
//!   request order. Readers (read committed, the default) see all of it at once or none.
//! - `GET /v1/transactions` (`?state=Ongoing&producer_id=..&min_duration_ms=..`, each may
//!   repeat) and `GET /v1/transactions/{transactional_id}`: what the transaction coordinator
//!   knows, as Kafka's ListTransactions and DescribeTransactions.
//! - `GET /v1/topics/{topic}/partitions/{partition}/producers`: a partition's producers and
//!   open transactions, its last stable offset and high watermark (DescribeProducers).
//!
//! They need brook's own log: a gateway to a Kafka cluster answers 501 `not_supported`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use brook_broker::{Broker, TopicPartition, TxnState};
use serde::{Deserialize, Serialize};

use super::admin::{into_commits, CommitIn};
use super::authorize::{Access, Op};
use super::error::ApiError;
use super::extract::{JsonBody, PartitionPath, Query};
use super::records::{Encoding, Encodings, PositionOut, RecordIn};
use super::App;
use brook_broker::auth::Resource;

/// The local broker, or the refusal of a gateway.
fn local(app: &App) -> Result<&Broker, ApiError> {
    app.broker.local().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "not_supported",
            "transactions need brook's own log; this server is a gateway to a Kafka cluster \
             (use the cluster's transactional producer)",
        )
    })
}

/// One topic's records in an atomic write.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TopicRecordsIn {
    topic: String,
    records: Vec<RecordIn>,
}

/// One group's offsets in an atomic write.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GroupOffsetsIn {
    group: String,
    offsets: Vec<CommitIn>,
}

/// `POST /v1/transactions` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AtomicIn {
    #[serde(default)]
    key_encoding: Option<Encoding>,
    #[serde(default)]
    value_encoding: Option<Encoding>,
    #[serde(default)]
    header_encoding: Option<Encoding>,
    #[serde(default)]
    topics: Vec<TopicRecordsIn>,
    #[serde(default)]
    offsets: Vec<GroupOffsetsIn>,
}

#[derive(Debug, Serialize)]
pub(crate) struct TopicPositionsOut {
    topic: String,
    offsets: Vec<PositionOut>,
}

#[derive(Debug, Serialize)]
pub(crate) struct AtomicOut {
    topics: Vec<TopicPositionsOut>,
}

/// `POST /v1/transactions`
pub(crate) async fn produce_atomic(
    State(app): State<App>,
    access: Access,
    JsonBody(body): JsonBody<AtomicIn>,
) -> Result<Json<AtomicOut>, ApiError> {
    for t in &body.topics {
        access.topic(Op::Write, &t.topic)?;
    }
    for g in &body.offsets {
        access.group_and_topics(
            Op::Read,
            &g.group,
            g.offsets.iter().map(|c| c.topic.as_str()),
        )?;
    }
    let broker = local(&app)?;
    let defaults = Encodings::default();
    let encodings = Encodings {
        key_encoding: body.key_encoding.unwrap_or(defaults.key_encoding),
        value_encoding: body.value_encoding.unwrap_or(defaults.value_encoding),
        header_encoding: body.header_encoding.unwrap_or(defaults.header_encoding),
    };
    if body.topics.is_empty() && body.offsets.is_empty() {
        return Err(ApiError::bad_request(
            "nothing to write: send {\"topics\": [{\"topic\", \"records\": [...]}]} and/or \
             {\"offsets\": [{\"group\", \"offsets\": [...]}]}",
        ));
    }
    let mut txn = broker.transaction();
    let mut topics = Vec::with_capacity(body.topics.len());
    for (t, entry) in body.topics.into_iter().enumerate() {
        brook_broker::validate_topic_name(&entry.topic)?;
        let records = entry
            .records
            .into_iter()
            .enumerate()
            .map(|(i, r)| r.into_record(encodings, &format!("topics[{t}].records[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        txn.produce(entry.topic.clone(), records);
        topics.push(entry.topic);
    }
    for group in body.offsets {
        txn.commit_offsets(group.group, into_commits(group.offsets));
    }
    let produced = txn.commit().await?;
    let topics = topics
        .into_iter()
        .zip(produced)
        .map(|(topic, produced)| TopicPositionsOut {
            topic,
            offsets: produced.records.into_iter().map(Into::into).collect(),
        })
        .collect();
    Ok(Json(AtomicOut { topics }))
}

#[derive(Debug, Serialize)]
pub(crate) struct ListingOut {
    transactional_id: String,
    producer_id: i64,
    state: &'static str,
}

#[derive(Debug, Serialize)]
pub(crate) struct ListingsOut {
    transactions: Vec<ListingOut>,
}

/// `GET /v1/transactions` filters; lists are comma-separated.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    /// Kafka's state names.
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    producer_id: Option<String>,
    #[serde(default)]
    min_duration_ms: Option<u64>,
}

/// `GET /v1/transactions`
pub(crate) async fn list_transactions(
    State(app): State<App>,
    access: Access,
    Query(query): Query<ListQuery>,
) -> Result<Json<ListingsOut>, ApiError> {
    let broker = local(&app)?;
    let items = |list: &Option<String>| -> Vec<String> {
        list.iter()
            .flat_map(|l| l.split(','))
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect()
    };
    let states = items(&query.state)
        .iter()
        .map(|name| {
            TxnState::from_name(name).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "state {name:?} is not a transaction state: use Empty, Ongoing, \
                     PrepareCommit, PrepareAbort, CompleteCommit or CompleteAbort"
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let producers = items(&query.producer_id)
        .iter()
        .map(|id| {
            id.parse::<i64>()
                .map_err(|_| ApiError::bad_request(format!("producer_id {id:?} is not a number")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let transactions = broker
        .list_transactions(&states, &producers, query.min_duration_ms)
        .into_iter()
        .filter(|t| {
            access.may(
                Op::Describe,
                Resource::transactional_id(&t.transactional_id),
            )
        })
        .map(|t| ListingOut {
            transactional_id: t.transactional_id,
            producer_id: t.producer_id,
            state: t.state.name(),
        })
        .collect();
    Ok(Json(ListingsOut { transactions }))
}

#[derive(Debug, Serialize)]
pub(crate) struct PartitionOut {
    topic: String,
    partition: u32,
}

#[derive(Debug, Serialize)]
pub(crate) struct TransactionOut {
    transactional_id: String,
    producer_id: i64,
    producer_epoch: i16,
    state: &'static str,
    timeout_ms: u32,
    start_time_ms: Option<i64>,
    partitions: Vec<PartitionOut>,
    groups: Vec<String>,
    internal: bool,
}

/// `GET /v1/transactions/{transactional_id}`
pub(crate) async fn describe_transaction(
    State(app): State<App>,
    Path(transactional_id): Path<String>,
) -> Result<Json<TransactionOut>, ApiError> {
    let described = local(&app)?.describe_transaction(&transactional_id)?;
    Ok(Json(TransactionOut {
        transactional_id: described.transactional_id,
        producer_id: described.producer_id,
        producer_epoch: described.producer_epoch,
        state: described.state.name(),
        timeout_ms: described.timeout_ms,
        start_time_ms: described.start_ms,
        partitions: described
            .partitions
            .into_iter()
            .map(|TopicPartition { topic, partition }| PartitionOut { topic, partition })
            .collect(),
        groups: described.groups,
        internal: described.internal,
    }))
}

#[derive(Debug, Serialize)]
pub(crate) struct ProducerOut {
    producer_id: i64,
    producer_epoch: i16,
    last_sequence: i32,
    last_timestamp: i64,
    coordinator_epoch: i32,
    current_txn_start_offset: Option<u64>,
}

#[derive(Debug, Serialize)]
pub(crate) struct ProducersOut {
    topic: String,
    partition: u32,
    last_stable_offset: u64,
    high_watermark: u64,
    producers: Vec<ProducerOut>,
}

/// `GET /v1/topics/{topic}/partitions/{partition}/producers`
pub(crate) async fn describe_producers(
    State(app): State<App>,
    PartitionPath { topic, partition }: PartitionPath,
) -> Result<Json<ProducersOut>, ApiError> {
    let broker = local(&app)?;
    let producers = broker
        .describe_producers(&topic, partition)?
        .into_iter()
        .map(|p| ProducerOut {
            producer_id: p.producer_id,
            producer_epoch: p.producer_epoch,
            last_sequence: p.last_sequence,
            last_timestamp: p.last_timestamp,
            coordinator_epoch: p.coordinator_epoch,
            current_txn_start_offset: p.current_txn_start_offset,
        })
        .collect();
    let last_stable_offset = broker.last_stable_offset(&topic, partition)?;
    let high_watermark = *broker.watch_high_watermark(&topic, partition)?.borrow();
    Ok(Json(ProducersOut {
        topic,
        partition,
        last_stable_offset,
        high_watermark,
        producers,
    }))
}
