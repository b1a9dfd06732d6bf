//! The producer's task: takes sendable batches from the shared [`Accumulator`], sends them on
//! one `ProduceStream`, and resolves each batch's answer.
//!
//! Senders append to the accumulator themselves (under the producer's lock) and wake this task
//! only when a batch starts or fills up, a topic needs its partition count, or a flush or close
//! asks; it waits on four things at once: those wake-ups, answers on the stream, topic lookups,
//! and the next linger deadline. The stream is opened on first use and again after it breaks;
//! a break fails the requests it carried (their outcome is unknown), never later ones.
//!
//! [`Accumulator`]: super::accumulator::Accumulator

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use brook_proto::v1;
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use tokio::sync::mpsc;
use tonic::{Code, Status, Streaming};

use super::accumulator::{Batch, Content, Forward};
use super::ack::{AckSender, Failure, OPERATION};
use super::wire::{self, Framed};
use super::{ProducerConfig, Shared};
use crate::client::{positions, Client};
use crate::error::Result;
use crate::record::RecordPosition;

/// A request sent and not yet answered: what its answer resolves.
#[derive(Debug)]
struct InFlight {
    topic: Arc<str>,
    /// `None` for a probe of a topic that did not exist.
    partition: Option<u32>,
    first_id: Option<u64>,
    count: u32,
    bytes: usize,
    ack: AckSender,
    forwarded: Vec<Forward>,
    /// The encoded batch sent (shared with the request): once answered, no one else holds it
    /// and its buffer goes back to the accumulator for a new batch.
    sent: Option<Bytes>,
}

/// The open `ProduceStream`.
struct Stream {
    requests: mpsc::Sender<Framed>,
    responses: Streaming<v1::ProduceStreamResponse>,
}

/// What a lookup learns of a topic: its partition count and largest batch (`None`: not said).
type Layout = (u32, Option<usize>);
/// The answer to a topic lookup: `Ok(None)` when the topic does not exist.
type Lookup = (Arc<str>, Result<Option<Layout>, Failure>);

enum Event {
    Woken,
    Answer(Option<Result<v1::ProduceStreamResponse, Status>>),
    Looked(Lookup),
    Linger,
}

pub(crate) struct Pipeline {
    client: Client,
    shared: Arc<Shared>,
    in_flight: HashMap<u64, InFlight>,
    requests_in_flight_max: usize,
    stream: Option<Stream>,
    next_sequence: u64,
    lookups: FuturesUnordered<BoxFuture<'static, Lookup>>,
}

impl Pipeline {
    pub(crate) fn new(client: Client, config: &ProducerConfig, shared: Arc<Shared>) -> Self {
        Pipeline {
            client,
            shared,
            in_flight: HashMap::new(),
            requests_in_flight_max: config.requests_in_flight_max,
            stream: None,
            next_sequence: 0,
            lookups: FuturesUnordered::new(),
        }
    }

    pub(crate) async fn run(mut self) {
        loop {
            let lookups = std::mem::take(&mut self.shared.state.lock().lookups);
            for topic in lookups {
                self.look_up(topic);
            }
            self.dispatch().await;
            self.finish_flushes();
            let (closing, empty, deadline) = {
                let state = self.shared.state.lock();
                // With every slot taken an answer wakes us; a linger deadline would only spin.
                let deadline = if self.in_flight.len() < self.requests_in_flight_max {
                    state.accumulator.next_deadline()
                } else {
                    None
                };
                (state.closing, state.accumulator.is_empty(), deadline)
            };
            if closing && empty && self.in_flight.is_empty() && self.lookups.is_empty() {
                break;
            }
            let event = tokio::select! {
                () = self.shared.task.notified() => Event::Woken,
                answer = next_answer(&mut self.stream), if self.stream.is_some() => {
                    Event::Answer(answer)
                }
                Some(looked) = self.lookups.next(), if !self.lookups.is_empty() => {
                    Event::Looked(looked)
                }
                () = sleep_until(deadline), if deadline.is_some() => Event::Linger,
            };
            match event {
                // The top of the loop takes what the wake-up asked for.
                Event::Woken | Event::Linger => {}
                Event::Answer(answer) => self.on_answer(answer),
                Event::Looked((topic, result)) => self.on_lookup(topic, result),
            }
        }
        tracing::debug!("producer task finished");
    }

    fn look_up(&mut self, topic: Arc<str>) {
        let mut grpc = self.client.grpc();
        self.lookups.push(Box::pin(async move {
            let request = v1::DescribeTopicRequest {
                topic: topic.to_string(),
            };
            let result = match grpc.describe_topic(request).await {
                Ok(response) => layout(response.into_inner()).map(Some),
                Err(status) if status.code() == Code::NotFound => Ok(None),
                Err(status) => Err(status.into()),
            };
            (topic, result)
        }));
    }

    fn on_lookup(&mut self, topic: Arc<str>, result: Result<Option<Layout>, Failure>) {
        let now = Instant::now();
        let failed = {
            let mut state = self.shared.state.lock();
            match result {
                Ok(Some((partitions, message_bytes_max))) => {
                    state
                        .accumulator
                        .on_partitions(&topic, partitions, message_bytes_max, now);
                    return;
                }
                Ok(None) => {
                    state.accumulator.on_missing_topic(&topic, now);
                    return;
                }
                Err(failure) => {
                    let entries = state.accumulator.on_lookup_failed(&topic);
                    state.buffered_bytes -= entries.iter().map(|e| e.bytes).sum::<usize>();
                    (failure, entries)
                }
            }
        };
        let (failure, entries) = failed;
        for entry in entries {
            // The caller may have dropped its Delivery; nobody is left to tell.
            let _ = entry.reply.send(Err(failure.error()));
        }
        self.shared.space.notify_waiters();
    }

    /// Sends sendable batches while request slots are free.
    async fn dispatch(&mut self) {
        while self.in_flight.len() < self.requests_in_flight_max {
            let batch = {
                let mut state = self.shared.state.lock();
                let flush_below = state.flushes.iter().map(|(mark, _)| *mark).max();
                let closing = state.closing;
                state
                    .accumulator
                    .pop_sendable(Instant::now(), flush_below.unwrap_or(0), closing)
            };
            let Some(batch) = batch else {
                break;
            };
            self.send(batch).await;
        }
    }

    async fn send(&mut self, batch: Batch) {
        let Batch {
            topic,
            partition,
            content,
            first_id,
            count,
            bytes,
            ack,
            forwarded,
            ..
        } = batch;
        let encoded = match (content, partition) {
            (Content::Batch(builder), Some(partition)) => builder
                .finish()
                .map(|data| (Vec::new(), Some(v1::RawBatch { partition, data })))
                .map_err(|error| Failure::Invalid(format!("the batch cannot be built: {error}"))),
            (Content::Batch(_), None) => unreachable!("a probe is never encoded"),
            (Content::Records(records), _) => Ok((records, None)),
        };
        let sent = match &encoded {
            Ok((_, Some(raw_batch))) => Some(raw_batch.data.clone()),
            _ => None,
        };
        let in_flight = InFlight {
            topic,
            partition,
            first_id,
            count,
            bytes,
            ack,
            forwarded,
            sent,
        };
        let (records, raw_batch) = match encoded {
            Ok(encoded) => encoded,
            Err(failure) => return self.complete(in_flight, Err(failure)),
        };
        let requests = match self.open_stream().await {
            Ok(requests) => requests,
            Err(failure) => return self.complete(in_flight, Err(failure)),
        };
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        // With one request in flight at most, nothing more is sent until this one is
        // answered: the server may wait for a `sync` fsync in place.
        let awaited = self.requests_in_flight_max == 1;
        let request = match raw_batch {
            Some(v1::RawBatch { partition, data }) => {
                Framed::raw_batch(sequence, &in_flight.topic, partition, data, awaited)
            }
            None => Framed::message(&v1::ProduceStreamRequest {
                sequence,
                produce: Some(v1::ProduceRequest {
                    topic: in_flight.topic.to_string(),
                    records,
                    raw_batch: None,
                }),
                awaited,
            }),
        };
        // The channel holds as many requests as may be in flight, so it is never full; an
        // error means the stream ended under us.
        if requests.try_send(request).is_err() {
            self.stream = None;
            let failure = Failure::Rpc {
                code: Code::Unavailable,
                message: "the produce stream closed before the request was sent".into(),
            };
            return self.complete(in_flight, Err(failure));
        }
        self.in_flight.insert(sequence, in_flight);
    }

    async fn open_stream(&mut self) -> Result<mpsc::Sender<Framed>, Failure> {
        if let Some(stream) = &self.stream {
            return Ok(stream.requests.clone());
        }
        let (requests, responses) =
            wire::open(self.client.channel(), self.requests_in_flight_max).await?;
        self.stream = Some(Stream {
            requests: requests.clone(),
            responses,
        });
        Ok(requests)
    }

    fn on_answer(&mut self, answer: Option<Result<v1::ProduceStreamResponse, Status>>) {
        let response = match answer {
            Some(Ok(response)) => response,
            Some(Err(status)) => return self.stream_broke(status.into()),
            None => {
                return self.stream_broke(Failure::Rpc {
                    code: Code::Unavailable,
                    message: "the server ended the produce stream".into(),
                })
            }
        };
        let Some(in_flight) = self.in_flight.remove(&response.sequence) else {
            tracing::warn!(
                sequence = response.sequence,
                "produce answer for no request in flight"
            );
            return;
        };
        let outcome = match response.result {
            Some(v1::produce_stream_response::Result::Ok(ok)) => Ok(ok),
            Some(v1::produce_stream_response::Result::Error(error)) => Err(Failure::Rpc {
                code: Code::from(error.code),
                message: error.message,
            }),
            None => Err(Failure::Rpc {
                code: Code::Internal,
                message: "the server answered a produce with neither a result nor an error".into(),
            }),
        };
        self.complete(in_flight, outcome);
    }

    /// Fails every request the broken stream carried: whether they were appended is unknown.
    fn stream_broke(&mut self, failure: Failure) {
        if let Failure::Rpc { code, message } = &failure {
            tracing::warn!(?code, %message, "produce stream broke");
        }
        self.stream = None;
        let in_flight: Vec<InFlight> = self.in_flight.drain().map(|(_, f)| f).collect();
        for request in in_flight {
            self.complete(request, Err(failure.clone()));
        }
    }

    /// Resolves a request's deliveries and updates what the outcome teaches about its topic.
    fn complete(&mut self, request: InFlight, outcome: Result<v1::ProduceResponse, Failure>) {
        let InFlight {
            topic,
            partition,
            count,
            bytes,
            ack,
            forwarded,
            sent,
            ..
        } = request;
        let look_up_again = {
            let mut state = self.shared.state.lock();
            state.buffered_bytes -= bytes;
            // Held by no one else once answered (or failed before it left), but checked: a
            // request still queued on a broken stream may hold it; then it is simply freed.
            if let Some(buf) = sent.and_then(|sent| sent.try_into_mut().ok()) {
                state.accumulator.recycle(buf);
            }
            if let Err(failure) = &outcome {
                if failure.code() == Some(Code::NotFound) && partition.is_some() {
                    state.accumulator.forget(&topic);
                }
            }
            partition.is_none() && state.accumulator.after_probe(&topic)
        };
        self.shared.space.notify_waiters();
        if look_up_again {
            self.look_up(Arc::clone(&topic));
        }
        match partition {
            Some(partition) => {
                let base = outcome.and_then(|ok| base_offset(ok, partition, count));
                for Forward {
                    index,
                    timestamp_ms,
                    reply,
                } in forwarded
                {
                    let position = base.clone().map(|base| RecordPosition {
                        partition,
                        offset: base + u64::from(index),
                        timestamp_ms,
                    });
                    // The caller may have dropped its Delivery; nobody is left to tell.
                    let _ = reply.send(position.map_err(|failure| failure.error()));
                }
                ack.resolve(base);
            }
            // A probe: every record waited for its topic, the server placed each.
            None => {
                let placed = outcome.and_then(|ok| {
                    positions(OPERATION, ok, count as usize)
                        .map_err(|error| Failure::Protocol(error.to_string()))
                });
                for forward in forwarded {
                    let position = match &placed {
                        Ok(placed) => placed
                            .get(forward.index as usize)
                            .cloned()
                            .ok_or_else(|| Failure::Protocol("a record without a position".into())),
                        Err(failure) => Err(failure.clone()),
                    };
                    let _ = forward.reply.send(position.map_err(|f| f.error()));
                }
            }
        }
    }

    /// Answers the flushes whose records have all been answered.
    fn finish_flushes(&mut self) {
        let mut state = self.shared.state.lock();
        if state.flushes.is_empty() {
            return;
        }
        let in_flight = self.in_flight.values().filter_map(|f| f.first_id);
        let lowest_open = in_flight.chain(state.accumulator.min_id()).min();
        let (done, waiting) = std::mem::take(&mut state.flushes)
            .into_iter()
            .partition(|(mark, _)| lowest_open.is_none_or(|open| open >= *mark));
        state.flushes = waiting;
        drop(state);
        for (_, done) in done {
            // A flush whose caller went away needs no answer.
            let _: Result<(), ()> = done.send(());
        }
    }
}

impl Drop for Pipeline {
    /// However the task ends (finished, or the runtime shut down), nothing waits on it after:
    /// senders are refused, held batches and flushes resolve as closed.
    fn drop(&mut self) {
        let mut state = self.shared.state.lock();
        state.stopped = true;
        state.accumulator.clear();
        state.flushes.clear();
        drop(state);
        self.shared.space.notify_waiters();
    }
}

/// The base offset of a raw batch of `count` records to `partition`, from its answer.
fn base_offset(response: v1::ProduceResponse, partition: u32, count: u32) -> Result<u64, Failure> {
    match response.batches.as_slice() {
        [one] if one.partition == partition && one.record_count == count => Ok(one.base_offset),
        other => Err(Failure::Protocol(format!(
            "a batch of {count} records to partition {partition} was answered with {other:?}"
        ))),
    }
}

fn layout(response: v1::DescribeTopicResponse) -> Result<Layout, Failure> {
    let topic = response.topic.unwrap_or_default();
    let message_bytes_max = topic
        .config
        .and_then(|config| config.message_bytes_max)
        .and_then(|max| usize::try_from(max).ok());
    let count = topic.partitions.len();
    match u32::try_from(count) {
        Ok(count) if count > 0 => Ok((count, message_bytes_max)),
        _ => Err(Failure::Rpc {
            code: Code::Internal,
            message: format!("the server described the topic with {count} partitions"),
        }),
    }
}

async fn next_answer(
    stream: &mut Option<Stream>,
) -> Option<Result<v1::ProduceStreamResponse, Status>> {
    match stream {
        Some(stream) => stream.responses.next().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}
