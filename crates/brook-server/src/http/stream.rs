//! Streaming consume over server-sent events (`text/event-stream`).
//!
//! - `GET /v1/topics/{topic}/partitions/{partition}/stream?offset=`: one event per record,
//!   its `id` the record's offset. A client that reconnects with `Last-Event-ID: N` (as every
//!   `EventSource` does) resumes at `N + 1`: nothing skipped, nothing repeated. Without it,
//!   `offset` says where to start: a number, `earliest` or `latest` (the default).
//! - `GET /v1/groups/{group}/stream?topics=a,b`: the stream joins the consumer group; the
//!   group splits the topics' partitions among its open streams (and rebalances as they come
//!   and go). An `assignment` event says which partitions this stream owns, then records
//!   follow (no `id`: a group resumes from its committed offsets, committed with
//!   `POST /v1/groups/{group}/offsets`).
//!
//! Records are data events of the default type (`message`), so `EventSource.onmessage` sees
//! them. A failure mid-stream (the topic deleted, say) is an `error` event with the error JSON,
//! and the stream ends. On shutdown the stream just ends; a client reconnects and resumes.
//!
//! Nothing buffers per stream: the log is read when the connection can take more, and each
//! read (at most `max_bytes` of batches) goes out as one chunk of events, so a reader that
//! stops reading holds at most one read's worth of records until the connection's write-stall
//! limit drops it (see [`super::connection`]).

use std::convert::Infallible;

use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use brook_broker::{
    BrokerError, GroupSubscribe, OffsetReset, PartitionBatches, PartitionSubscribe, StartAt,
    SubscriptionEvent,
};
use bytes::{BufMut, Bytes, BytesMut};
use futures::stream::{Stream, StreamExt};
use serde::Deserialize;

use super::admin::TopicPartitionOut;
use super::connection::Peer;
use super::error::ApiError;
use super::extract::{GroupPath, PartitionPath, Query};
use super::fetch::IsolationParam;
use super::records::{show_record, Encodings};
use super::App;
use crate::metrics;

/// The query of a partition stream.
#[derive(Debug, Deserialize)]
pub(crate) struct PartitionStreamQuery {
    /// A number, `earliest` or `latest` (default). `Last-Event-ID` takes precedence.
    #[serde(default)]
    offset: Option<String>,
    /// Bytes of batches one read of the log covers. Default: the door's `read_bytes_default`.
    #[serde(default)]
    max_bytes: Option<usize>,
    /// What transactions show (read committed by default).
    #[serde(default)]
    isolation: IsolationParam,
}

/// Where a partition stream starts: after `Last-Event-ID`, else at `offset`.
fn start_at(headers: &HeaderMap, offset: Option<&str>) -> Result<StartAt, ApiError> {
    if let Some(id) = headers.get("last-event-id") {
        let last = id
            .to_str()
            .ok()
            .and_then(|id| id.trim().parse::<u64>().ok())
            .ok_or_else(|| {
                ApiError::bad_request(
                    "Last-Event-ID must be the offset of the last record received",
                )
            })?;
        let next = last
            .checked_add(1)
            .ok_or_else(|| ApiError::bad_request("Last-Event-ID is the largest offset there is"))?;
        return Ok(StartAt::Offset(next));
    }
    match offset.unwrap_or("latest") {
        "earliest" => Ok(StartAt::Earliest),
        "latest" => Ok(StartAt::Latest),
        number => number.parse().map(StartAt::Offset).map_err(|_| {
            ApiError::bad_request(format!(
                "offset {number:?} is not a number, earliest or latest"
            ))
        }),
    }
}

/// `GET /v1/topics/{topic}/partitions/{partition}/stream`
pub(crate) async fn partition_stream(
    State(app): State<App>,
    PartitionPath { topic, partition }: PartitionPath,
    Query(query): Query<PartitionStreamQuery>,
    Query(encodings): Query<Encodings>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let start = start_at(&headers, query.offset.as_deref())?;
    let mut to = PartitionSubscribe::new(topic, partition, start);
    to.max_bytes = Some(query.max_bytes.unwrap_or(app.config.read_bytes_default));
    to.isolation = query.isolation.into();
    let subscription = app.broker.subscribe(to).await?;
    Ok(sse(&app, subscription, encodings, true))
}

/// Where a group stream starts a partition the group has no committed offset in.
#[derive(Debug, Clone, Copy, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
enum Reset {
    Earliest,
    #[default]
    Latest,
}

/// The query of a group stream.
#[derive(Debug, Deserialize)]
pub(crate) struct GroupStreamQuery {
    /// Comma-separated topic names.
    topics: String,
    #[serde(default)]
    reset: Reset,
    #[serde(default)]
    max_bytes: Option<usize>,
    #[serde(default)]
    isolation: IsolationParam,
}

/// `GET /v1/groups/{group}/stream`
pub(crate) async fn group_stream(
    State(app): State<App>,
    GroupPath { group }: GroupPath,
    Query(query): Query<GroupStreamQuery>,
    Query(encodings): Query<Encodings>,
    ConnectInfo(peer): ConnectInfo<Peer>,
) -> Result<Response, ApiError> {
    let topics: Vec<String> = query
        .topics
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    if topics.is_empty() {
        return Err(ApiError::bad_request(
            "topics is empty: give the topics to consume, comma-separated (?topics=a,b)",
        ));
    }
    let mut to = GroupSubscribe::new(group, topics);
    to.reset = match query.reset {
        Reset::Earliest => OffsetReset::Earliest,
        Reset::Latest => OffsetReset::Latest,
    };
    to.client_id = format!("http {}", peer.0);
    to.max_bytes = Some(query.max_bytes.unwrap_or(app.config.read_bytes_default));
    to.isolation = query.isolation.into();
    let subscription = app.broker.subscribe_group(to).await?;
    Ok(sse(&app, subscription, encodings, false))
}

/// The SSE response for a subscription: one body chunk per read of the log (every record of
/// it an event), keep-alive comments while idle, ended on shutdown, counted while open.
fn sse(
    app: &App,
    subscription: brook_broker::Subscription,
    encodings: Encodings,
    with_ids: bool,
) -> Response {
    let open = metrics::stream_opened(metrics::HTTP, "sse");
    let chunks = subscription
        .map(move |event| {
            let _counted = &open;
            Ok::<_, Infallible>(chunk(event, encodings, with_ids))
        })
        .take_until(app.draining.wait());
    let body = keep_alive(chunks, app.config.keepalive_interval());
    (
        [
            (CONTENT_TYPE, "text/event-stream"),
            (CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

/// `chunks`, with a comment line whenever `interval` passes without one.
fn keep_alive(
    chunks: impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static,
    interval: Duration,
) -> impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
    let idle = Box::pin(tokio::time::sleep(interval));
    futures::stream::unfold(
        (chunks.boxed(), idle),
        move |(mut chunks, mut idle)| async move {
            let item = tokio::select! {
                chunk = chunks.next() => chunk?,
                () = &mut idle => Ok(Bytes::from_static(b":\n\n")),
            };
            idle.as_mut().reset(tokio::time::Instant::now() + interval);
            Some((item, (chunks, idle)))
        },
    )
}

/// The events of one subscription event, as SSE text.
fn chunk(
    event: brook_broker::Result<SubscriptionEvent>,
    encodings: Encodings,
    with_ids: bool,
) -> Bytes {
    let mut out = BytesMut::new();
    match event {
        Ok(SubscriptionEvent::Batches(batches)) => {
            if let Err(e) = record_events(&batches, encodings, with_ids, &mut out) {
                out.clear();
                error_event(&e, &mut out);
            }
        }
        Ok(SubscriptionEvent::Assignment(assignment)) => {
            let partitions: Vec<TopicPartitionOut> =
                assignment.partitions.into_iter().map(Into::into).collect();
            let data = serde_json::json!({
                "group": assignment.group,
                "member_id": assignment.member_id,
                "generation": assignment.generation,
                "partitions": partitions,
            });
            named_event("assignment", &data.to_string(), &mut out);
        }
        Err(e) => error_event(&e, &mut out),
    }
    out.freeze()
}

/// Appends one event per record of `batches` to `out`. JSON text is one line here: strings
/// escape their line breaks, and raw JSON values are kept on one line (see
/// [`super::records`]), so each record is exactly one `data:` line.
fn record_events(
    batches: &PartitionBatches,
    encodings: Encodings,
    with_ids: bool,
    out: &mut BytesMut,
) -> brook_broker::Result<()> {
    let records = batches.records()?;
    let (topic, partition) = (&*batches.topic, batches.partition);
    metrics::consumed(metrics::HTTP, topic, partition, &records);
    for record in records {
        if with_ids {
            out.extend_from_slice(format!("id: {}\n", record.offset).as_bytes());
        }
        out.extend_from_slice(b"data: ");
        let shown = show_record(&record, encodings);
        // Writing JSON into memory fails only for a type that refuses to serialize.
        serde_json::to_writer((&mut *out).writer(), &shown).map_err(|e| {
            BrokerError::InvalidRequest {
                reason: format!("a record could not be shown as JSON: {e}"),
            }
        })?;
        out.extend_from_slice(b"\n\n");
    }
    Ok(())
}

fn named_event(name: &str, data: &str, out: &mut BytesMut) {
    out.extend_from_slice(format!("event: {name}\ndata: {data}\n\n").as_bytes());
}

fn error_event(err: &BrokerError, out: &mut BytesMut) {
    named_event("error", &ApiError::from(err).to_json(), out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn last_event_id_resumes_after_it_and_wins_over_offset() {
        let mut headers = HeaderMap::new();
        assert_eq!(start_at(&headers, None).ok(), Some(StartAt::Latest));
        assert_eq!(
            start_at(&headers, Some("earliest")).ok(),
            Some(StartAt::Earliest)
        );
        assert_eq!(start_at(&headers, Some("7")).ok(), Some(StartAt::Offset(7)));
        assert!(start_at(&headers, Some("-1")).is_err());

        headers.insert("last-event-id", HeaderValue::from_static("41"));
        assert_eq!(
            start_at(&headers, Some("3")).ok(),
            Some(StartAt::Offset(42))
        );
        headers.insert("last-event-id", HeaderValue::from_static("nope"));
        assert!(start_at(&headers, None).is_err());
        let max = HeaderValue::from_str(&u64::MAX.to_string()).expect("header");
        headers.insert("last-event-id", max);
        assert!(start_at(&headers, None).is_err());
    }
}
