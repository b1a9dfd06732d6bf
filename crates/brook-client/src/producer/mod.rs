//! A producer that batches records per partition and keeps several requests in flight.
//!
//! [`Producer::send`] queues one record and hands back a [`Delivery`], a future of the record's
//! [`RecordPosition`] (partition and offset). Behind it one task per producer:
//!
//! 1. groups records per partition (module `accumulator`): a batch is sent when it holds
//!    [`ProducerConfig::batch_bytes_max`] bytes or its first record has waited
//!    [`ProducerConfig::linger_ms`];
//!    Each partition's batch is built as a Kafka RecordBatch v2 as records arrive (module
//!    `crate::batch`), so a request is one `RawBatch`: no protobuf message per record, and
//!    the server appends the bytes after checking them;
//! 2. sends each batch as one request on a `ProduceStream` (bidirectional gRPC stream), with up
//!    to [`ProducerConfig::requests_in_flight_max`] requests awaiting their answers. The server
//!    applies requests for one partition in the order they were sent, so records of a partition
//!    keep the order of their `send` calls even with many requests in flight; while every slot
//!    is taken, batches keep filling, so a busy producer sends fewer, larger requests.
//! 3. resolves each record's delivery from the answer.
//!
//! Back-pressure: records count against [`ProducerConfig::buffer_bytes_max`] from `send` until
//! their answer; past it, `send` waits.
//!
//! Failures are not retried: an error (the server's status, or an unknown outcome when the
//! connection broke mid-request) resolves every delivery of the request that failed. Retrying
//! could reorder or duplicate records, so the caller decides.
//!
//! Dropping every handle (or [`Producer::close`]) sends what is buffered, waits for the answers
//! and ends the task.

mod accumulator;
mod pipeline;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::FutureExt;
use tokio::sync::{mpsc, oneshot};

use crate::client::Client;
use crate::error::{ClientError, Result};
use crate::record::{ProducerRecord, RecordPosition};
use pipeline::{Command, Pipeline};

/// How a [`Producer`] batches and pipelines.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProducerConfig {
    /// How long a batch waits for more records before it is sent, in ms (Kafka's `linger.ms`).
    /// 0 sends at once, and records still batch up while every request slot is busy. Default
    /// 5 (as Kafka clients since 4.0); at most 60 000.
    pub linger_ms: u64,
    /// A partition's batch is sent once it holds this many bytes of records (Kafka's
    /// `batch.size`). A larger single record is sent alone. Default 1 MiB; at most 8 MiB, so a
    /// request stays below the server's `request_bytes_max`.
    pub batch_bytes_max: usize,
    /// Requests sent but not yet answered. Default 16; 1 to 256 (the server's default
    /// `produce_stream_in_flight_max`).
    pub requests_in_flight_max: usize,
    /// Bytes of records accepted but not yet answered; `send` waits past it. Default 64 MiB; at
    /// least `batch_bytes_max`.
    pub buffer_bytes_max: usize,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            linger_ms: 5,
            batch_bytes_max: 1 << 20,
            requests_in_flight_max: 16,
            buffer_bytes_max: 64 << 20,
        }
    }
}

const LINGER_MS_MAX: u64 = 60_000;
const BATCH_BYTES_MAX_LIMIT: usize = 8 << 20;
const REQUESTS_IN_FLIGHT_MAX_LIMIT: usize = 256;
/// Commands waiting for the producer task; `buffer_bytes_max` is the real bound, this only
/// keeps a burst of tiny records from waking the task once per record.
const COMMAND_QUEUE: usize = 1024;

impl ProducerConfig {
    fn validate(&self) -> Result<()> {
        let check = |ok: bool, setting: &'static str, reason: String| {
            if ok {
                Ok(())
            } else {
                Err(ClientError::InvalidConfig { setting, reason })
            }
        };
        check(
            self.linger_ms <= LINGER_MS_MAX,
            "linger_ms",
            format!("{} is above {LINGER_MS_MAX}", self.linger_ms),
        )?;
        check(
            (1..=BATCH_BYTES_MAX_LIMIT).contains(&self.batch_bytes_max),
            "batch_bytes_max",
            format!(
                "{} is outside 1..={BATCH_BYTES_MAX_LIMIT}",
                self.batch_bytes_max
            ),
        )?;
        check(
            (1..=REQUESTS_IN_FLIGHT_MAX_LIMIT).contains(&self.requests_in_flight_max),
            "requests_in_flight_max",
            format!(
                "{} is outside 1..={REQUESTS_IN_FLIGHT_MAX_LIMIT}",
                self.requests_in_flight_max
            ),
        )?;
        check(
            self.buffer_bytes_max >= self.batch_bytes_max,
            "buffer_bytes_max",
            format!(
                "{} is below batch_bytes_max ({})",
                self.buffer_bytes_max, self.batch_bytes_max
            ),
        )
    }
}

/// A batching, pipelining producer. Cheap to clone: clones share one task and its batches.
#[derive(Debug, Clone)]
pub struct Producer {
    commands: mpsc::Sender<Command>,
}

impl Producer {
    pub(crate) fn start(client: Client, config: ProducerConfig) -> Result<Producer> {
        config.validate()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            ClientError::invalid_request("a producer must be created inside a tokio runtime")
        })?;
        let (commands, receiver) = mpsc::channel(COMMAND_QUEUE);
        runtime.spawn(Pipeline::new(client, &config, receiver).run());
        Ok(Producer { commands })
    }

    /// Queues `record` for `topic`. Returns once the record is accepted (waiting while the
    /// producer holds `buffer_bytes_max` bytes); await the [`Delivery`] for its position.
    ///
    /// A record without a timestamp is stamped with this machine's clock when the producer
    /// takes it into a batch (as Kafka clients stamp at send): that is the timestamp stored
    /// with it and the one its [`RecordPosition`] reports.
    pub async fn send(&self, topic: &str, record: ProducerRecord) -> Result<Delivery> {
        let (reply, answer) = oneshot::channel();
        let bytes = record.encoded_len_estimate();
        self.commands
            .send(Command::Send {
                topic: topic.to_owned(),
                record,
                bytes,
                reply,
            })
            .await
            .map_err(|_| ClientError::ProducerClosed)?;
        Ok(Delivery { answer })
    }

    /// Sends every record accepted so far at once (without waiting for linger) and waits until
    /// each has its answer.
    pub async fn flush(&self) -> Result<()> {
        let (done, wait) = oneshot::channel();
        self.commands
            .send(Command::Flush(done))
            .await
            .map_err(|_| ClientError::ProducerClosed)?;
        wait.await.map_err(|_| ClientError::ProducerClosed)
    }

    /// Flushes, then drops this handle (the task ends once every clone is gone).
    pub async fn close(self) -> Result<()> {
        self.flush().await
    }
}

/// The outcome of one [`Producer::send`]: where the record was stored, or why it was not.
#[derive(Debug)]
#[must_use = "a delivery tells whether the record was stored"]
pub struct Delivery {
    answer: oneshot::Receiver<Result<RecordPosition>>,
}

impl Future for Delivery {
    type Output = Result<RecordPosition>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.answer
            .poll_unpin(cx)
            .map(|answer| answer.unwrap_or(Err(ClientError::ProducerClosed)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_limits_are_enforced_with_the_setting_named() {
        assert!(ProducerConfig::default().validate().is_ok());
        let cases = [
            (
                ProducerConfig {
                    batch_bytes_max: 0,
                    ..Default::default()
                },
                "batch_bytes_max",
            ),
            (
                ProducerConfig {
                    requests_in_flight_max: 0,
                    ..Default::default()
                },
                "requests_in_flight_max",
            ),
            (
                ProducerConfig {
                    linger_ms: LINGER_MS_MAX + 1,
                    ..Default::default()
                },
                "linger_ms",
            ),
            (
                ProducerConfig {
                    buffer_bytes_max: 1,
                    ..Default::default()
                },
                "buffer_bytes_max",
            ),
        ];
        for (config, setting) in cases {
            match config.validate() {
                Err(ClientError::InvalidConfig { setting: s, .. }) => assert_eq!(s, setting),
                other => panic!("{setting}: expected InvalidConfig, got {other:?}"),
            }
        }
    }
}
