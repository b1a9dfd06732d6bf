//! Streaming produce (`application/x-ndjson`): records as lines of one long request body,
//! answers as lines of the response, one per non-blank request line, in order, each as soon
//! as its record is acknowledged.
//!
//! One pump task per request reads the body. The complete lines of each chunk it reads form
//! a group, handed to the broker in one call: the broker queues a call's batches when it is
//! called, so groups are appended in request order while many are in flight, and a group
//! shares its batch (and its fsync) the way a client-side batching producer would. A line
//! that does not parse gets its error line in its place and the others go on. If the broker
//! refuses a group up front (nothing appended: a record over `message_bytes_max`, a partition
//! that does not exist), the group is produced again record by record so that only the
//! records at fault get the error. The first group to a topic that does not exist yet is
//! waited for before the next is read, because the broker queues only once a topic exists.
//!
//! Everything is bounded: at most `produce_stream_in_flight_max` records are appended but not
//! yet answered, and a request line is at most `request_bytes_max` bytes (a longer one gets a
//! `too_large` line and is skipped); when answers are not being read, the pump stops reading
//! the request, so TCP pushes back on the client. A client that goes away ends the pump
//! (appends already queued still finish). On shutdown the pump stops reading, the records in
//! flight are answered, and the response ends.

use std::sync::Arc;

use axum::body::Body;
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use brook_broker::{BrokerError, ErrorKind, ProduceRecord, Produced};
use bytes::{Bytes, BytesMut};
use futures::future::{BoxFuture, FutureExt};
use futures::StreamExt;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_stream::wrappers::ReceiverStream;

use super::error::ApiError;
use super::produce::NDJSON;
use super::records::{Encodings, PositionOut, RecordIn};
use super::App;
use crate::metrics;

/// The answer lines of one group, once its records are acknowledged.
type Answer = BoxFuture<'static, Bytes>;

/// Starts the pump for one request and returns the streaming response.
pub(crate) fn start(app: App, topic: String, encodings: Encodings, body: Body) -> Response {
    let in_flight_max = app.config.produce_stream_in_flight_max.max(1);
    let (answers, rx) = mpsc::channel::<Answer>(in_flight_max);
    let pump = Pump {
        in_flight: Arc::new(Semaphore::new(in_flight_max)),
        in_flight_max,
        lines: Lines::new(app.config.request_bytes_max),
        line_number: 0,
        // Known once the pump starts (a cluster is asked over the network).
        topic_exists: false,
        app,
        topic,
        encodings,
        answers,
    };
    tokio::spawn(pump.run(body));
    let lines = ReceiverStream::new(rx)
        .then(|answer| answer)
        .map(Ok::<_, std::convert::Infallible>);
    (
        StatusCode::OK,
        [(CONTENT_TYPE, NDJSON)],
        Body::from_stream(lines),
    )
        .into_response()
}

struct Pump {
    app: App,
    topic: String,
    encodings: Encodings,
    answers: mpsc::Sender<Answer>,
    in_flight: Arc<Semaphore>,
    in_flight_max: usize,
    lines: Lines,
    line_number: u64,
    /// Whether the broker queues this topic's produces at call time (it exists).
    topic_exists: bool,
}

/// One request line: a record to produce, or why it cannot be.
type Item = Result<ProduceRecord, ApiError>;

impl Pump {
    async fn run(mut self, body: Body) {
        let _open = metrics::stream_opened(metrics::HTTP, "produce");
        self.topic_exists = self.app.broker.partition_count(&self.topic).await.is_ok();
        let mut body = body.into_data_stream();
        let draining = self.app.draining.clone();
        let mut drained = std::pin::pin!(draining.wait());
        loop {
            let chunk = tokio::select! {
                biased;
                () = &mut drained => break,
                () = self.answers.closed() => break,
                chunk = body.next() => chunk,
            };
            let lines = match chunk {
                Some(Ok(chunk)) => self.lines.push(chunk),
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "streaming produce: request body ended badly");
                    break;
                }
                None => {
                    let last = self.lines.finish();
                    let items = self.parse(last);
                    self.submit(items).await;
                    break;
                }
            };
            let items = self.parse(lines);
            if !self.submit(items).await {
                break;
            }
        }
    }

    /// The records (or errors) of complete lines; blank lines are skipped.
    fn parse(&mut self, lines: Vec<Line>) -> Vec<Item> {
        let mut items = Vec::with_capacity(lines.len());
        for line in lines {
            self.line_number += 1;
            let at = format!("line {}", self.line_number);
            let item = match line {
                Line::TooLong => Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too_large",
                    format!(
                        "{at} is over the server's limit of {} bytes (request_bytes_max)",
                        self.app.config.request_bytes_max
                    ),
                )),
                Line::Text(text) if text.iter().all(u8::is_ascii_whitespace) => continue,
                Line::Text(text) => serde_json::from_slice::<RecordIn>(&text)
                    .map_err(|e| ApiError::bad_request(format!("{at}: bad record JSON: {e}")))
                    .and_then(|record| record.into_record(self.encodings, &at)),
            };
            items.push(item);
        }
        items
    }

    /// Hands `items` to the broker in groups of at most `in_flight_max`, queuing their answers
    /// in order. `false` when the client is gone.
    async fn submit(&mut self, mut items: Vec<Item>) -> bool {
        while !items.is_empty() {
            let rest = items.split_off(items.len().min(self.in_flight_max));
            let group = std::mem::replace(&mut items, rest);
            let permits = tokio::select! {
                permits = Arc::clone(&self.in_flight).acquire_many_owned(group.len() as u32) => {
                    match permits {
                        Ok(permits) => permits,
                        Err(_) => return false, // never closed
                    }
                }
                () = self.answers.closed() => return false,
            };
            let answer = self.produce(group, permits);
            let answer = if self.topic_exists {
                answer
            } else {
                // Wait for the topic to be created before queuing anything after it.
                let lines = answer.await;
                self.topic_exists = self.app.broker.partition_count(&self.topic).await.is_ok();
                futures::future::ready(lines).boxed()
            };
            if self.answers.send(answer).await.is_err() {
                return false;
            }
        }
        true
    }

    /// Produces the records of `group` in one broker call, or record by record when the broker
    /// refuses the call up front, and returns its answer lines.
    fn produce(&self, group: Vec<Item>, permits: OwnedSemaphorePermit) -> Answer {
        let records: Vec<ProduceRecord> = group
            .iter()
            .filter_map(|item| item.as_ref().ok().cloned())
            .collect();
        if records.is_empty() {
            return answered(render(group, None), permits);
        }
        let sizes = metrics::record_sizes(&records);
        let mut call = self.app.broker.produce(&self.topic, records).boxed();
        // A refusal up front is ready at the first poll and appended nothing.
        match (&mut call).now_or_never() {
            Some(Err(e)) if refused_up_front(&e) && sizes.len() > 1 => {
                return self.produce_one_by_one(group, permits);
            }
            Some(result) => {
                if let Ok(produced) = &result {
                    metrics::produced(metrics::HTTP, &self.topic, &sizes, produced);
                }
                return answered(render(group, Some(result)), permits);
            }
            None => {}
        }
        let topic = self.topic.clone();
        async move {
            let result = call.await;
            if let Ok(produced) = &result {
                metrics::produced(metrics::HTTP, &topic, &sizes, produced);
            }
            drop(permits);
            render(group, Some(result))
        }
        .boxed()
    }

    /// Produces each record of `group` in a call of its own (still queued in order).
    fn produce_one_by_one(&self, group: Vec<Item>, permits: OwnedSemaphorePermit) -> Answer {
        let calls: Vec<_> = group
            .into_iter()
            .map(|item| {
                let record = match item {
                    Ok(record) => record,
                    Err(e) => return futures::future::ready(Err(e)).boxed(),
                };
                let sizes = metrics::record_sizes(std::slice::from_ref(&record));
                let topic = self.topic.clone();
                self.app
                    .broker
                    .produce(&self.topic, vec![record])
                    .map(move |result| {
                        let produced = result.map_err(|e| ApiError::from(&e))?;
                        metrics::produced(metrics::HTTP, &topic, &sizes, &produced);
                        produced
                            .records
                            .into_iter()
                            .next()
                            .map(PositionOut::from)
                            .ok_or_else(|| ApiError::bad_request("the broker answered no offset"))
                    })
                    .boxed()
            })
            .collect();
        async move {
            let mut out = BytesMut::new();
            for call in calls {
                line(&mut out, call.await);
            }
            drop(permits);
            out.freeze()
        }
        .boxed()
    }
}

/// Answer lines known now; the records stay counted in flight until they are sent.
fn answered(lines: Bytes, permits: OwnedSemaphorePermit) -> Answer {
    async move {
        drop(permits);
        lines
    }
    .boxed()
}

/// Whether the broker refused a whole call before appending anything, because of what one of
/// its records is (so producing the records one by one isolates the culprits).
fn refused_up_front(e: &BrokerError) -> bool {
    matches!(
        e.kind(),
        ErrorKind::InvalidArgument | ErrorKind::TooLarge | ErrorKind::NotFound
    ) && !matches!(e, BrokerError::UnknownTopic { .. })
}

/// The answer lines of `group`: an error line for each refused item, and for the records the
/// broker's outcome (`None`: there were none).
fn render(group: Vec<Item>, outcome: Option<Result<Produced, BrokerError>>) -> Bytes {
    let mut out = BytesMut::new();
    let (mut positions, failure) = match outcome {
        Some(Ok(produced)) => (produced.records.into_iter(), None),
        Some(Err(e)) => (Vec::new().into_iter(), Some(ApiError::from(&e))),
        None => (Vec::new().into_iter(), None),
    };
    for item in group {
        let result = match (item, &failure) {
            (Err(e), _) => Err(e),
            (Ok(_), Some(failure)) => Err(failure.clone()),
            (Ok(_), None) => positions
                .next()
                .map(PositionOut::from)
                .ok_or_else(|| ApiError::bad_request("the broker answered no offset")),
        };
        line(&mut out, result);
    }
    out.freeze()
}

/// Appends one answer line.
fn line(out: &mut BytesMut, result: Result<PositionOut, ApiError>) {
    let text = match result {
        Ok(position) => serde_json::to_string(&position).unwrap_or_default(),
        Err(e) => e.to_json(),
    };
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(b"\n");
}

/// One line of the request body.
#[derive(Debug, PartialEq, Eq)]
enum Line {
    Text(Bytes),
    /// Longer than the limit; its bytes were dropped.
    TooLong,
}

/// Cuts a body into lines of at most `limit` bytes, without copying lines that lie within one
/// chunk.
#[derive(Debug)]
struct Lines {
    partial: BytesMut,
    limit: usize,
    /// Dropping the rest of an over-long line.
    skipping: bool,
}

impl Lines {
    fn new(limit: usize) -> Self {
        Self {
            partial: BytesMut::new(),
            limit,
            skipping: false,
        }
    }

    /// The lines that `chunk` completes.
    fn push(&mut self, chunk: Bytes) -> Vec<Line> {
        let mut lines = Vec::new();
        let mut start = 0;
        while let Some(at) = chunk[start..].iter().position(|&b| b == b'\n') {
            let end = start + at;
            lines.push(self.complete(&chunk, start, end));
            start = end + 1;
        }
        if !self.skipping && start < chunk.len() {
            self.partial.extend_from_slice(&chunk[start..]);
            if self.partial.len() > self.limit {
                self.partial = BytesMut::new();
                self.skipping = true;
            }
        }
        lines
    }

    /// The line ending at `chunk[end]` (a newline), begun at `chunk[start]` or before.
    fn complete(&mut self, chunk: &Bytes, start: usize, end: usize) -> Line {
        if std::mem::take(&mut self.skipping) {
            return Line::TooLong;
        }
        let line = if self.partial.is_empty() {
            chunk.slice(start..end)
        } else {
            self.partial.extend_from_slice(&chunk[start..end]);
            std::mem::take(&mut self.partial).freeze()
        };
        if line.len() > self.limit {
            Line::TooLong
        } else {
            Line::Text(line)
        }
    }

    /// The last line, when the body did not end with a newline.
    fn finish(&mut self) -> Vec<Line> {
        if std::mem::take(&mut self.skipping) {
            vec![Line::TooLong]
        } else if self.partial.is_empty() {
            Vec::new()
        } else {
            vec![Line::Text(std::mem::take(&mut self.partial).freeze())]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Line {
        Line::Text(Bytes::copy_from_slice(s.as_bytes()))
    }

    #[test]
    fn lines_split_across_chunks_and_over_long_ones_are_skipped() {
        let mut lines = Lines::new(5);
        assert_eq!(lines.push(Bytes::from("ab\ncd")), vec![text("ab")]);
        assert_eq!(
            lines.push(Bytes::from("e\n\nxy")),
            vec![text("cde"), text("")]
        );
        // "xy" + "zzzz" is over 5 bytes: the line is reported too long, once.
        assert_eq!(lines.push(Bytes::from("zzzz")), vec![]);
        assert_eq!(
            lines.push(Bytes::from("zz\nok\n")),
            vec![Line::TooLong, text("ok")]
        );
        assert_eq!(lines.push(Bytes::from("123456\n")), vec![Line::TooLong]);
        assert_eq!(lines.push(Bytes::from("last")), vec![]);
        assert_eq!(lines.finish(), vec![text("last")]);
        assert_eq!(lines.finish(), vec![]);
    }
}
