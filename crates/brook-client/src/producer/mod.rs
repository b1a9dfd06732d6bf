//! A producer that batches records per partition and keeps several requests in flight.
//!
//! [`Producer::send`] puts one record into its partition's batch and hands back a
//! [`Delivery`], a future of the record's [`crate::RecordPosition`] (partition and offset):
//!
//! 1. `send` groups records per partition (module `accumulator`) under the producer's lock, on
//!    the caller's own task: each partition's batch is built as a Kafka RecordBatch v2 as
//!    records arrive (module `crate::batch`), so a request is one `RawBatch`: no protobuf
//!    message per record, and the server appends the bytes after checking them. A batch is
//!    sendable when it holds [`ProducerConfig::batch_bytes_max`] bytes or its first record has
//!    waited [`ProducerConfig::linger_ms`]. A batch's records share one answer (module `ack`):
//!    a record costs no channel message, no oneshot and no wake-up of its own; `send` wakes the
//!    producer's task only when a batch starts or fills up. [`Producer::send_batch`] does the
//!    same for a slice of records under one hold of the lock (per [`SLICE_RECORDS_MAX`]
//!    records), with one clock read and one [`BatchDelivery`] for the slice.
//! 2. The producer's task (module `pipeline`) sends each sendable batch as one request on a
//!    `ProduceStream` (bidirectional gRPC stream), with up to
//!    [`ProducerConfig::requests_in_flight_max`] requests awaiting their answers. The server
//!    applies requests for one partition in the order they were sent, so records of a partition
//!    keep the order of their `send` calls even with many requests in flight; while every slot
//!    is taken, batches keep filling, so a busy producer sends fewer, larger requests. A
//!    request's batch goes to the socket without a copy (module `wire` frames the requests), and
//!    once answered its buffer is reused for a new batch.
//! 3. The task resolves each batch's answer once; every delivery of the batch reads its offset
//!    from it (the batch's base offset plus the record's index).
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
mod ack;
mod pipeline;
mod wire;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use tokio::sync::{oneshot, Notify};

use crate::client::Client;
use crate::error::{ClientError, Result};
use crate::record::ProducerRecord;
use accumulator::{Accumulator, Placed, Wake};
pub use ack::{BatchDelivery, Delivery};
use pipeline::Pipeline;

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
    /// `produce_stream_in_flight_max`). At 1 each request tells the server it is awaited
    /// (`ProduceStreamRequest.awaited`), so a lone `sync` record's fsync may run on the task
    /// that reads the stream, a thread hand-off each way fewer.
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

/// What the handles and the producer's task share: the batches being filled, under one lock
/// that is never held across an `.await` (and only for an append, of one record or of up to
/// [`SLICE_RECORDS_MAX`], or a pop), and the two wake-ups between them.
#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// Wakes the task: a batch was started or filled, a topic needs a lookup, a flush, close.
    task: Notify,
    /// Wakes senders waiting for buffer space: an answer freed some.
    space: Notify,
    buffer_bytes_max: usize,
}

#[derive(Debug)]
struct State {
    accumulator: Accumulator,
    /// Bytes of records accepted and not yet answered.
    buffered_bytes: usize,
    /// Topics whose partition count the task should look up.
    lookups: Vec<Arc<str>>,
    /// Flushes waiting for every record numbered below their mark to be answered.
    flushes: Vec<(u64, oneshot::Sender<()>)>,
    /// Every handle is gone: send everything, then stop.
    closing: bool,
    /// The task has ended: nothing more is accepted.
    stopped: bool,
}

impl State {
    /// Places one record (counted against the buffer) and says where it went and whether the
    /// task must look again.
    fn place(
        &mut self,
        topic: &str,
        record: Cow<'_, ProducerRecord>,
        timestamp_ms: i64,
        bytes: usize,
    ) -> (Placed<'_>, bool) {
        self.buffered_bytes += bytes;
        let (placed, wake) =
            self.accumulator
                .place(topic, record, timestamp_ms, bytes, Instant::now);
        let wake = match wake {
            Wake::No => false,
            Wake::Task => true,
            Wake::LookUp(topic) => {
                self.lookups.push(topic);
                true
            }
        };
        (placed, wake)
    }
}

/// Records [`Producer::send_batch`] places under one hold of the producer's lock, so a long
/// slice does not keep the producer's task (or other senders) waiting for long.
pub const SLICE_RECORDS_MAX: usize = 256;

/// A batching, pipelining producer. Cheap to clone: clones share one task and its batches.
#[derive(Debug, Clone)]
pub struct Producer {
    handle: Arc<Handle>,
}

/// Dropped with the last clone of a [`Producer`]: tells the task to finish.
#[derive(Debug)]
struct Handle {
    shared: Arc<Shared>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.state.lock().closing = true;
        self.shared.task.notify_one();
    }
}

impl Producer {
    pub(crate) fn start(client: Client, config: ProducerConfig) -> Result<Producer> {
        config.validate()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            ClientError::invalid_request("a producer must be created inside a tokio runtime")
        })?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                accumulator: Accumulator::new(
                    Duration::from_millis(config.linger_ms),
                    config.batch_bytes_max,
                    random_seed(),
                ),
                buffered_bytes: 0,
                lookups: Vec::new(),
                flushes: Vec::new(),
                closing: false,
                stopped: false,
            }),
            task: Notify::new(),
            space: Notify::new(),
            buffer_bytes_max: config.buffer_bytes_max,
        });
        runtime.spawn(Pipeline::new(client, &config, Arc::clone(&shared)).run());
        Ok(Producer {
            handle: Arc::new(Handle { shared }),
        })
    }

    /// Queues `record` for `topic`. Returns once the record is accepted (waiting while the
    /// producer holds `buffer_bytes_max` bytes); await the [`Delivery`] for its position.
    ///
    /// The record is encoded into its partition's batch right here, on the caller's task; the
    /// batch's records share one answer, so a record costs no message of its own to the
    /// producer's task.
    ///
    /// A record without a timestamp is stamped with this machine's clock here (as Kafka
    /// clients stamp at send): that is the timestamp stored with it and the one its
    /// [`crate::RecordPosition`] reports.
    pub async fn send(&self, topic: &str, record: ProducerRecord) -> Result<Delivery> {
        let bytes = record.encoded_len_estimate();
        let timestamp_ms = record.timestamp_ms.unwrap_or_else(wall_clock_ms);
        let mut record = Some(record);
        let append = |record: &mut Option<ProducerRecord>| {
            self.try_append(|state| {
                let record = record.take()?;
                let (placed, wake) = state.place(topic, Cow::Owned(record), timestamp_ms, bytes);
                let delivery = match placed {
                    Placed::Batched {
                        ack,
                        index,
                        partition,
                    } => ack.delivery(index, partition, timestamp_ms),
                    Placed::Alone(delivery) => delivery,
                };
                Some((delivery, wake))
            })
        };
        loop {
            if let Some(accepted) = append(&mut record) {
                return accepted;
            }
            // Full: wait for an answer to free some space. Created before looking again, so an
            // answer in between still wakes this sender (the space is told with
            // `notify_waiters`, which reaches every `Notified` created before it).
            let space = self.handle.shared.space.notified();
            if let Some(accepted) = append(&mut record) {
                return accepted;
            }
            space.await;
        }
    }

    /// Queues `records` for `topic`, in their order, under one lock per slice (of up to
    /// [`SLICE_RECORDS_MAX`] records) instead of one per record; await the [`BatchDelivery`]
    /// for every record's position. Records bound for one partition join its batch side by
    /// side, so the delivery holds one entry per batch, not one per record. Returns once every
    /// record is accepted (waiting while the producer holds `buffer_bytes_max` bytes).
    ///
    /// The records are only read: their bytes are encoded into their partitions' batches here,
    /// on the caller's task. Records without a timestamp share one stamp from this machine's
    /// clock, read once per call. Partitions are chosen per record as [`Producer::send`]
    /// chooses them.
    pub async fn send_batch(
        &self,
        topic: &str,
        records: &[ProducerRecord],
    ) -> Result<BatchDelivery> {
        let mut stamp = None;
        let mut delivery = BatchDelivery::with_capacity(records.len());
        let mut append = |delivery: &mut BatchDelivery| {
            self.try_append(|state| {
                let from = delivery.len();
                let slice = records.get(from..)?;
                if slice.is_empty() {
                    return None;
                }
                let mut wake = false;
                for record in slice.iter().take(SLICE_RECORDS_MAX) {
                    if state.buffered_bytes >= self.handle.shared.buffer_bytes_max {
                        break;
                    }
                    let timestamp_ms = record
                        .timestamp_ms
                        .unwrap_or_else(|| *stamp.get_or_insert_with(wall_clock_ms));
                    let bytes = record.encoded_len_estimate();
                    let (placed, woken) =
                        state.place(topic, Cow::Borrowed(record), timestamp_ms, bytes);
                    match placed {
                        Placed::Batched {
                            ack,
                            index,
                            partition,
                        } => delivery.push_batched(ack, index, partition, timestamp_ms),
                        Placed::Alone(alone) => delivery.push_alone(alone, timestamp_ms),
                    }
                    wake |= woken;
                }
                Some(((), wake))
            })
        };
        while delivery.len() < records.len() {
            let space = self.handle.shared.space.notified();
            let before = delivery.len();
            match append(&mut delivery) {
                Some(Err(error)) => return Err(error),
                // Some records were taken (or the buffer was full when looked at).
                Some(Ok(())) if delivery.len() > before => continue,
                _ => space.await,
            }
        }
        Ok(delivery)
    }

    /// Runs `place` under the producer's lock when the buffer has room, then wakes the task if
    /// it asks; `None` when the buffer is full (or `place` took nothing).
    fn try_append<T>(
        &self,
        place: impl FnOnce(&mut State) -> Option<(T, bool)>,
    ) -> Option<Result<T>> {
        let shared = &self.handle.shared;
        let mut state = shared.state.lock();
        if state.stopped {
            return Some(Err(ClientError::ProducerClosed));
        }
        if state.buffered_bytes >= shared.buffer_bytes_max {
            return None;
        }
        let (accepted, wake) = place(&mut state)?;
        drop(state);
        if wake {
            shared.task.notify_one();
        }
        Some(Ok(accepted))
    }

    /// Sends every record accepted so far at once (without waiting for linger) and waits until
    /// each has its answer. A batch already large when the flush is called takes no more
    /// records (records sent after it start a new one); a small one may still take records
    /// sent before it leaves, as in Kafka's producer, so a caller flushing after every record
    /// still gets batches when the connection is busy.
    pub async fn flush(&self) -> Result<()> {
        let shared = &self.handle.shared;
        let (done, wait) = oneshot::channel();
        {
            let mut state = shared.state.lock();
            if state.stopped {
                return Err(ClientError::ProducerClosed);
            }
            let mark = state.accumulator.next_id();
            state.accumulator.seal();
            state.flushes.push((mark, done));
        }
        shared.task.notify_one();
        wait.await.map_err(|_| ClientError::ProducerClosed)
    }

    /// Flushes, then drops this handle (the task ends once every clone is gone).
    pub async fn close(self) -> Result<()> {
        self.flush().await
    }
}

/// ms since the Unix epoch, by this machine's clock.
fn wall_clock_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A random starting point for sticky partitioning, from std's randomly keyed hasher (no RNG
/// dependency for one number).
fn random_seed() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish() as u32
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
