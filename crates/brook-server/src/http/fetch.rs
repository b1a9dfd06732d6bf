//! `GET /v1/topics/{topic}/partitions/{partition}/records`: a fetch, request-reply.
//!
//! A long poll: at the end of the log it waits up to `max_wait_ms` for a record to arrive and
//! answers as soon as one does (the broker wakes it; nothing sleeps). On shutdown a waiting
//! fetch answers at once with what is there. `next_offset` in the answer is where the next
//! fetch starts: taken from the batches read, not the last record, so a trailing batch with
//! no user records (a transaction marker) is stepped over instead of fetched forever.

use std::time::Duration;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use brook_broker::Isolation;
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::extract::{PartitionPath, Query};
use super::records::{show_record, Encodings, RecordOut};
use super::App;
use crate::metrics;

/// The query of a fetch.
#[derive(Debug, Deserialize)]
pub(crate) struct FetchQuery {
    /// The first offset wanted.
    offset: u64,
    /// Bytes of batches to read at most (whole batches: the first always comes whole).
    /// Default: the door's `read_bytes_default`.
    #[serde(default)]
    max_bytes: Option<usize>,
    /// How long to wait at the end of the log. Default 0: answer at once.
    #[serde(default)]
    max_wait_ms: Option<u64>,
    /// What transactions show.
    #[serde(default)]
    isolation: IsolationParam,
}

/// `isolation=read_committed` (the default: only settled records, none of an aborted
/// transaction) or `read_uncommitted` (everything written, transaction markers excepted).
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum IsolationParam {
    #[default]
    ReadCommitted,
    ReadUncommitted,
}

impl From<IsolationParam> for Isolation {
    fn from(param: IsolationParam) -> Self {
        match param {
            IsolationParam::ReadCommitted => Isolation::ReadCommitted,
            IsolationParam::ReadUncommitted => Isolation::ReadUncommitted,
        }
    }
}

/// A fetch's answer.
#[derive(Debug, Serialize)]
pub(crate) struct FetchedOut<'a> {
    topic: &'a str,
    partition: u32,
    records: Vec<RecordOut<'a>>,
    /// Where the next fetch starts.
    next_offset: u64,
    high_watermark: u64,
    /// Where read committed reads stop.
    last_stable_offset: u64,
    log_start_offset: u64,
}

/// `GET /v1/topics/{topic}/partitions/{partition}/records`
pub(crate) async fn fetch(
    State(app): State<App>,
    PartitionPath { topic, partition }: PartitionPath,
    Query(query): Query<FetchQuery>,
    Query(encodings): Query<Encodings>,
) -> Result<Response, ApiError> {
    let max_bytes = query.max_bytes.unwrap_or(app.config.read_bytes_default);
    let isolation = query.isolation.into();
    let read = |wait| {
        app.broker
            .fetch_isolated(&topic, partition, query.offset, max_bytes, wait, isolation)
    };
    let wait = Duration::from_millis(query.max_wait_ms.unwrap_or(0));
    let fetched = tokio::select! {
        biased;
        fetched = read(wait) => fetched,
        // Shutting down: answer with what is there now instead of waiting out the poll.
        () = app.draining.wait() => read(Duration::ZERO).await,
    }?;
    let next_offset = fetched.next_offset();
    let stored = fetched.records()?;
    metrics::consumed(metrics::HTTP, &topic, partition, &stored);
    let records = stored.iter().map(|r| show_record(r, encodings)).collect();
    let out = FetchedOut {
        topic: &topic,
        partition,
        records,
        next_offset,
        high_watermark: fetched.high_watermark,
        last_stable_offset: fetched.last_stable_offset,
        log_start_offset: fetched.log_start_offset,
    };
    // Serialized here, while the topic name the answer borrows is alive.
    Ok(Json(out).into_response())
}
