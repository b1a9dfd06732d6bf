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
//! Nothing buffers per stream: the log is read when the connection can take the next event,
//! so a reader that stops reading holds at most one read's worth of records until the
//! connection's write-stall limit drops it (see [`super::connection`]).

use std::convert::Infallible;

use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use brook_broker::{
    BrokerError, GroupSubscribe, OffsetReset, PartitionBatches, PartitionSubscribe, StartAt,
    SubscriptionEvent,
};
use futures::stream::{self, StreamExt};
use serde::Deserialize;

use super::admin::TopicPartitionOut;
use super::connection::Peer;
use super::error::ApiError;
use super::extract::{GroupPath, PartitionPath, Query};
use super::records::{Encodings, Stored};
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
    let subscription = app
        .broker
        .subscribe(PartitionSubscribe {
            topic,
            partition,
            start,
            max_bytes: Some(query.max_bytes.unwrap_or(app.config.read_bytes_default)),
        })
        .await?;
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
    let subscription = app
        .broker
        .subscribe_group(GroupSubscribe {
            group,
            topics,
            reset: match query.reset {
                Reset::Earliest => OffsetReset::Earliest,
                Reset::Latest => OffsetReset::Latest,
            },
            client_id: format!("http {}", peer.0),
            max_bytes: Some(query.max_bytes.unwrap_or(app.config.read_bytes_default)),
        })
        .await?;
    Ok(sse(&app, subscription, encodings, false))
}

/// The SSE response for a subscription: ended on shutdown, counted while open.
fn sse(
    app: &App,
    subscription: brook_broker::Subscription,
    encodings: Encodings,
    with_ids: bool,
) -> Response {
    let open = metrics::stream_opened(metrics::HTTP, "sse");
    let events = subscription
        .flat_map(move |event| stream::iter(events(event, encodings, with_ids)))
        .map(move |event| {
            let _counted = &open;
            Ok::<_, Infallible>(event)
        })
        .take_until(app.draining.wait());
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(app.config.keepalive_interval()))
        .into_response()
}

/// The SSE events for one subscription event.
fn events(
    event: brook_broker::Result<SubscriptionEvent>,
    encodings: Encodings,
    with_ids: bool,
) -> Vec<Event> {
    match event {
        Ok(SubscriptionEvent::Batches(batches)) => {
            record_events(&batches, encodings, with_ids).unwrap_or_else(|e| vec![error_event(&e)])
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
            vec![Event::default().event("assignment").data(data.to_string())]
        }
        Err(e) => vec![error_event(&e)],
    }
}

fn record_events(
    batches: &PartitionBatches,
    encodings: Encodings,
    with_ids: bool,
) -> brook_broker::Result<Vec<Event>> {
    let records = batches.records()?;
    let (topic, partition) = (&*batches.topic, batches.partition);
    let bytes = records
        .iter()
        .map(|r| super::records::payload_bytes(r.key.as_ref(), r.value.as_ref(), &r.headers))
        .sum();
    if !records.is_empty() {
        metrics::records_out(metrics::HTTP, topic, partition, records.len() as u64, bytes);
    }
    Ok(records
        .into_iter()
        .map(|record| {
            let offset = record.offset;
            let shown = Stored::from(record).show(topic, partition, encodings);
            let event =
                Event::default().data(one_line(serde_json::to_string(&shown).unwrap_or_default()));
            if with_ids {
                event.id(offset.to_string())
            } else {
                event
            }
        })
        .collect())
}

/// `json` on one line. A raw JSON value kept as a producer sent it may hold line breaks, but
/// only as whitespace between tokens (inside JSON strings they are escaped), so replacing them
/// with spaces keeps the JSON the same; SSE cannot carry a carriage return in data at all.
fn one_line(json: String) -> String {
    if json.contains(['\r', '\n']) {
        json.replace(['\r', '\n'], " ")
    } else {
        json
    }
}

fn error_event(err: &BrokerError) -> Event {
    Event::default()
        .event("error")
        .data(ApiError::from(err).to_json())
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

    #[test]
    fn line_breaks_between_json_tokens_become_spaces() {
        let json = one_line("{\r\n\"a\": \"x\\ny\"\n}".to_owned());
        assert!(!json.contains(['\r', '\n']));
        let value: serde_json::Value = serde_json::from_str(&json).expect("still JSON");
        assert_eq!(value["a"], "x\ny");
    }
}
