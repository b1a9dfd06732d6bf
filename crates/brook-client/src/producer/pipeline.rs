//! The producer's task: takes records from the handles, asks the [`Accumulator`] for sendable
//! batches, sends them on one `ProduceStream`, and resolves deliveries from the answers.
//!
//! One task owns all of the producer's state, so no lock is needed anywhere; it waits on four
//! things at once: new commands, answers on the stream, topic lookups, and the next linger
//! deadline. The stream is opened on first use and again after it breaks; a break fails the
//! requests it carried (their outcome is unknown), never later ones.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use brook_proto::v1;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Status, Streaming};

use super::accumulator::{Accumulator, Appended, Batch, Content, Reply, Waiter};
use super::ProducerConfig;
use crate::client::{positions, Client};
use crate::error::{ClientError, Result};
use crate::record::{ProducerRecord, RecordPosition};

/// What a [`super::Producer`] handle asks of the task.
#[derive(Debug)]
pub(crate) enum Command {
    Send {
        topic: String,
        record: ProducerRecord,
        bytes: usize,
        reply: Reply,
    },
    Flush(oneshot::Sender<()>),
}

/// The time a burst of commands is taken at: for linger, and the timestamp of records that
/// have none.
struct Clock {
    instant: Instant,
    /// ms since the Unix epoch.
    wall_ms: i64,
}

impl Clock {
    fn now() -> Clock {
        let wall_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        Clock {
            instant: Instant::now(),
            wall_ms,
        }
    }
}

/// Commands taken per wake-up before looking at answers and timers again.
const COMMANDS_PER_WAKE: usize = 256;
const OPERATION: &str = "produce";

/// A failure shared by every record of a request; each delivery gets its own error built
/// from it.
#[derive(Debug, Clone)]
struct Failure {
    code: Code,
    message: String,
}

impl Failure {
    fn error(&self) -> ClientError {
        ClientError::Rpc {
            operation: OPERATION,
            code: self.code,
            message: self.message.clone(),
        }
    }
}

impl From<Status> for Failure {
    fn from(status: Status) -> Self {
        Failure {
            code: status.code(),
            message: status.message().to_owned(),
        }
    }
}

#[derive(Debug)]
struct InFlight {
    topic: Arc<str>,
    /// `None` for a probe of a topic that did not exist.
    partition: Option<u32>,
    waiters: Vec<Waiter>,
}

/// The open `ProduceStream`.
struct Stream {
    requests: mpsc::Sender<v1::ProduceStreamRequest>,
    responses: Streaming<v1::ProduceStreamResponse>,
}

/// What a lookup learns of a topic: its partition count and largest batch (`None`: not said).
type Layout = (u32, Option<usize>);
/// The answer to a topic lookup: `Ok(None)` when the topic does not exist.
type Lookup = (Arc<str>, Result<Option<Layout>, Failure>);

enum Event {
    Command(Option<Command>),
    Answer(Option<Result<v1::ProduceStreamResponse, Status>>),
    Looked(Lookup),
    Linger,
}

pub(crate) struct Pipeline {
    client: Client,
    commands: mpsc::Receiver<Command>,
    accumulator: Accumulator,
    in_flight: HashMap<u64, InFlight>,
    requests_in_flight_max: usize,
    buffer_bytes_max: usize,
    /// Bytes of records accepted and not yet answered.
    buffered_bytes: usize,
    stream: Option<Stream>,
    next_sequence: u64,
    lookups: FuturesUnordered<BoxFuture<'static, Lookup>>,
    /// Flushes waiting for every record numbered below their mark to be answered.
    flushes: Vec<(u64, oneshot::Sender<()>)>,
    /// Every handle is gone: send everything, then stop.
    closing: bool,
}

impl Pipeline {
    pub(crate) fn new(
        client: Client,
        config: &ProducerConfig,
        commands: mpsc::Receiver<Command>,
    ) -> Self {
        Pipeline {
            client,
            commands,
            accumulator: Accumulator::new(
                Duration::from_millis(config.linger_ms),
                config.batch_bytes_max,
                random_seed(),
            ),
            in_flight: HashMap::new(),
            requests_in_flight_max: config.requests_in_flight_max,
            buffer_bytes_max: config.buffer_bytes_max,
            buffered_bytes: 0,
            stream: None,
            next_sequence: 0,
            lookups: FuturesUnordered::new(),
            flushes: Vec::new(),
            closing: false,
        }
    }

    pub(crate) async fn run(mut self) {
        loop {
            self.dispatch().await;
            self.finish_flushes();
            if self.closing
                && self.accumulator.is_empty()
                && self.in_flight.is_empty()
                && self.lookups.is_empty()
            {
                break;
            }
            let accepting = !self.closing && self.buffered_bytes < self.buffer_bytes_max;
            // With every slot taken an answer wakes us; a linger deadline would only spin.
            let deadline = if self.in_flight.len() < self.requests_in_flight_max {
                self.accumulator.next_deadline()
            } else {
                None
            };
            let event = tokio::select! {
                command = self.commands.recv(), if accepting => Event::Command(command),
                answer = next_answer(&mut self.stream), if self.stream.is_some() => {
                    Event::Answer(answer)
                }
                Some(looked) = self.lookups.next(), if !self.lookups.is_empty() => {
                    Event::Looked(looked)
                }
                () = sleep_until(deadline), if deadline.is_some() => Event::Linger,
            };
            match event {
                Event::Command(Some(command)) => {
                    // One clock reading for the whole burst, not one per record.
                    let now = Clock::now();
                    self.on_command(command, &now);
                    self.drain_commands(&now);
                }
                Event::Command(None) => self.closing = true,
                Event::Answer(answer) => self.on_answer(answer),
                Event::Looked((topic, result)) => self.on_lookup(topic, result),
                // Dispatch, at the top of the loop, picks up batches that lingered enough.
                Event::Linger => {}
            }
        }
        tracing::debug!("producer task finished");
    }

    /// Takes the commands already queued, so a burst costs one trip round the loop.
    fn drain_commands(&mut self, now: &Clock) {
        for _ in 0..COMMANDS_PER_WAKE {
            if self.buffered_bytes >= self.buffer_bytes_max {
                return;
            }
            match self.commands.try_recv() {
                Ok(command) => self.on_command(command, now),
                Err(mpsc::error::TryRecvError::Empty) => return,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    self.closing = true;
                    return;
                }
            }
        }
    }

    fn on_command(&mut self, command: Command, now: &Clock) {
        match command {
            Command::Send {
                topic,
                mut record,
                bytes,
                reply,
            } => {
                self.buffered_bytes += bytes;
                record.timestamp_ms.get_or_insert(now.wall_ms);
                let appended = self
                    .accumulator
                    .append(&topic, record, bytes, reply, now.instant);
                if let Appended::LookUp(topic) = appended {
                    self.look_up(topic);
                }
            }
            Command::Flush(done) => self.flushes.push((self.accumulator.next_id(), done)),
        }
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
        match result {
            Ok(Some((partitions, message_bytes_max))) => {
                self.accumulator
                    .on_partitions(&topic, partitions, message_bytes_max, now)
            }
            Ok(None) => self.accumulator.on_missing_topic(&topic, now),
            Err(failure) => {
                for entry in self.accumulator.on_lookup_failed(&topic) {
                    self.buffered_bytes -= entry.bytes;
                    // The caller may have dropped its Delivery; nobody is left to tell.
                    let _ = entry.reply.send(Err(failure.error()));
                }
            }
        }
    }

    /// Sends sendable batches while request slots are free.
    async fn dispatch(&mut self) {
        let now = Instant::now();
        let flush_below = self
            .flushes
            .iter()
            .map(|(mark, _)| *mark)
            .max()
            .unwrap_or(0);
        while self.in_flight.len() < self.requests_in_flight_max {
            let Some(batch) = self
                .accumulator
                .pop_sendable(now, flush_below, self.closing)
            else {
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
            waiters,
            ..
        } = batch;
        let (records, raw_batch) = match (content, partition) {
            (Content::Batch(builder), Some(partition)) => (
                Vec::new(),
                Some(v1::RawBatch {
                    partition,
                    data: builder.finish(),
                }),
            ),
            (Content::Batch(_), None) => unreachable!("a probe is never encoded"),
            (Content::Records(records), _) => (records, None),
        };
        let in_flight = InFlight {
            topic,
            partition,
            waiters,
        };
        let requests = match self.open_stream().await {
            Ok(requests) => requests,
            Err(failure) => return self.complete(in_flight, Err(failure)),
        };
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        let request = v1::ProduceStreamRequest {
            sequence,
            produce: Some(v1::ProduceRequest {
                topic: in_flight.topic.to_string(),
                records,
                raw_batch,
            }),
        };
        // The channel holds as many requests as may be in flight, so it is never full; an
        // error means the stream ended under us.
        if requests.try_send(request).is_err() {
            self.stream = None;
            let failure = Failure {
                code: Code::Unavailable,
                message: "the produce stream closed before the request was sent".into(),
            };
            return self.complete(in_flight, Err(failure));
        }
        self.in_flight.insert(sequence, in_flight);
    }

    async fn open_stream(&mut self) -> Result<mpsc::Sender<v1::ProduceStreamRequest>, Failure> {
        if let Some(stream) = &self.stream {
            return Ok(stream.requests.clone());
        }
        let (requests, outgoing) = mpsc::channel(self.requests_in_flight_max);
        let responses = self
            .client
            .grpc()
            .produce_stream(ReceiverStream::new(outgoing))
            .await?
            .into_inner();
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
                return self.stream_broke(Failure {
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
            Some(v1::produce_stream_response::Result::Error(error)) => Err(Failure {
                code: Code::from(error.code),
                message: error.message,
            }),
            None => Err(Failure {
                code: Code::Internal,
                message: "the server answered a produce with neither a result nor an error".into(),
            }),
        };
        self.complete(in_flight, outcome);
    }

    /// Fails every request the broken stream carried: whether they were appended is unknown.
    fn stream_broke(&mut self, failure: Failure) {
        tracing::warn!(code = ?failure.code, message = %failure.message, "produce stream broke");
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
            waiters,
        } = request;
        if let Err(failure) = &outcome {
            if failure.code == Code::NotFound && partition.is_some() {
                self.accumulator.forget(&topic);
            }
        }
        if partition.is_none() && self.accumulator.after_probe(&topic) {
            self.look_up(Arc::clone(&topic));
        }
        let results: Vec<Result<_>> = match outcome.map(|ok| match partition {
            Some(partition) => batch_positions(ok, partition, &waiters),
            None => positions(OPERATION, ok, waiters.len()),
        }) {
            Ok(Ok(positions)) => positions.into_iter().map(Ok).collect(),
            Ok(Err(error)) => {
                let reason = error.to_string();
                (0..waiters.len())
                    .map(|_| Err(ClientError::protocol(OPERATION, reason.clone())))
                    .collect()
            }
            Err(failure) => (0..waiters.len()).map(|_| Err(failure.error())).collect(),
        };
        for (waiter, result) in waiters.into_iter().zip(results) {
            self.buffered_bytes -= waiter.bytes;
            // The caller may have dropped its Delivery; nobody is left to tell.
            let _ = waiter.reply.send(result);
        }
    }

    /// Answers the flushes whose records have all been answered.
    fn finish_flushes(&mut self) {
        if self.flushes.is_empty() {
            return;
        }
        let in_flight = self
            .in_flight
            .values()
            .filter_map(|f| f.waiters.first().map(|w| w.id));
        let lowest_open = in_flight.chain(self.accumulator.min_id()).min();
        let (done, waiting) = std::mem::take(&mut self.flushes)
            .into_iter()
            .partition(|(mark, _)| lowest_open.is_none_or(|open| open >= *mark));
        self.flushes = waiting;
        for (_, done) in done {
            // A flush whose caller went away needs no answer.
            let _: Result<(), ()> = done.send(());
        }
    }
}

/// The positions of a raw batch's records: consecutive offsets from the batch's base, each
/// with the timestamp the producer stamped it with.
fn batch_positions(
    response: v1::ProduceResponse,
    partition: u32,
    waiters: &[Waiter],
) -> Result<Vec<RecordPosition>> {
    let appended = match response.batches.as_slice() {
        [one] if one.partition == partition && one.record_count as usize == waiters.len() => one,
        other => {
            return Err(ClientError::protocol(
                OPERATION,
                format!(
                    "a batch of {} records to partition {partition} was answered with {other:?}",
                    waiters.len()
                ),
            ))
        }
    };
    Ok(waiters
        .iter()
        .zip(appended.base_offset..)
        .map(|(waiter, offset)| RecordPosition {
            partition,
            offset,
            timestamp_ms: waiter.timestamp_ms,
        })
        .collect())
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
        _ => Err(Failure {
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

/// A random starting point for sticky partitioning, from std's randomly keyed hasher (no RNG
/// dependency for one number).
fn random_seed() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish() as u32
}
