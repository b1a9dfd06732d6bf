//! One answer per batch, shared by its records: what a [`Delivery`] waits on.
//!
//! A batch's records get one [`BatchAck`] between them, created with the batch; each record's
//! [`Delivery`] holds the ack and its index in the batch, so accepting a record costs no
//! channel and no allocation of its own. The pipeline resolves the ack once, with the batch's
//! base offset or its failure, and every delivery reads its own position from that. Records
//! that waited for their topic's partition count (the first records of a topic) were accepted
//! before any batch existed: each of those has its own oneshot, forwarded when its batch is
//! answered.
//!
//! An ack that is dropped unresolved (the producer's task ended with the batch still held)
//! resolves as [`ClientError::ProducerClosed`], so no delivery waits forever.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Waker};

use futures::FutureExt;
use parking_lot::Mutex;
use tokio::sync::oneshot;
use tonic::{Code, Status};

use crate::error::{ClientError, Result};
use crate::record::RecordPosition;

pub(super) const OPERATION: &str = "produce";

/// Where the outcome of a record that waited for its topic is sent.
pub(crate) type Reply = oneshot::Sender<Result<RecordPosition>>;

/// Why a batch (or a request) failed: shared by all its records, each delivery builds its own
/// [`ClientError`] from it.
#[derive(Debug, Clone)]
pub(crate) enum Failure {
    /// The server's status, or a broken stream (an unknown outcome).
    Rpc { code: Code, message: String },
    /// The server answered something that does not fit the request.
    Protocol(String),
    /// The request could not be made (the records cannot form a batch).
    Invalid(String),
    /// The producer's task ended before the batch was answered.
    Closed,
}

impl Failure {
    pub(crate) fn error(&self) -> ClientError {
        match self {
            Failure::Rpc { code, message } => ClientError::Rpc {
                operation: OPERATION,
                code: *code,
                message: message.clone(),
            },
            Failure::Protocol(reason) => ClientError::protocol(OPERATION, reason.clone()),
            Failure::Invalid(reason) => ClientError::invalid_request(reason.clone()),
            Failure::Closed => ClientError::ProducerClosed,
        }
    }

    pub(crate) fn code(&self) -> Option<Code> {
        match self {
            Failure::Rpc { code, .. } => Some(*code),
            _ => None,
        }
    }
}

impl From<Status> for Failure {
    fn from(status: Status) -> Self {
        Failure::Rpc {
            code: status.code(),
            message: status.message().to_owned(),
        }
    }
}

/// The outcome of one batch: the offset of its first record, or why it failed.
#[derive(Debug, Default)]
pub(crate) struct BatchAck {
    outcome: OnceLock<Result<u64, Failure>>,
    /// Deliveries waiting for the outcome; taken (and woken) when it is set.
    wakers: Mutex<Vec<Waker>>,
}

/// The pipeline's side of a [`BatchAck`]: resolves it once; dropped unresolved, it resolves it
/// as closed.
#[derive(Debug)]
pub(crate) struct AckSender(Arc<BatchAck>);

impl AckSender {
    pub(crate) fn new() -> AckSender {
        AckSender(Arc::default())
    }

    /// A new delivery of this batch's record number `index`.
    pub(crate) fn delivery(&self, index: u32, partition: u32, timestamp_ms: i64) -> Delivery {
        Delivery {
            inner: Inner::Batched {
                ack: Arc::clone(&self.0),
                index,
                partition,
                timestamp_ms,
                slot: None,
            },
        }
    }

    /// Resolves every delivery of the batch.
    pub(crate) fn resolve(self, outcome: Result<u64, Failure>) {
        self.set(outcome);
    }

    fn set(&self, outcome: Result<u64, Failure>) {
        if self.0.outcome.set(outcome).is_err() {
            return;
        }
        // Set before taking the wakers: a delivery that looks after this sees the outcome; one
        // that registered before is in the list.
        let wakers = std::mem::take(&mut *self.0.wakers.lock());
        for waker in wakers {
            waker.wake();
        }
    }
}

impl Drop for AckSender {
    fn drop(&mut self) {
        self.set(Err(Failure::Closed));
    }
}

/// The outcome of one [`super::Producer::send`]: where the record was stored, or why it was
/// not.
#[derive(Debug)]
#[must_use = "a delivery tells whether the record was stored"]
pub struct Delivery {
    inner: Inner,
}

#[derive(Debug)]
enum Inner {
    /// A record of a batch, answered with the batch.
    Batched {
        ack: Arc<BatchAck>,
        index: u32,
        partition: u32,
        timestamp_ms: i64,
        /// Where this delivery's waker sits in the ack's list, once registered.
        slot: Option<usize>,
    },
    /// A record that waited for its topic, answered on its own.
    Alone(oneshot::Receiver<Result<RecordPosition>>),
}

impl Delivery {
    /// A delivery answered on its own, through `Reply`.
    pub(crate) fn alone() -> (Reply, Delivery) {
        let (reply, answer) = oneshot::channel();
        let delivery = Delivery {
            inner: Inner::Alone(answer),
        };
        (reply, delivery)
    }
}

/// Record `index` of a batch of `partition` that starts at `base`.
fn position(
    outcome: &Result<u64, Failure>,
    index: u32,
    partition: u32,
    timestamp_ms: i64,
) -> Result<RecordPosition> {
    match outcome {
        Ok(base) => Ok(RecordPosition {
            partition,
            offset: base + u64::from(index),
            timestamp_ms,
        }),
        Err(failure) => Err(failure.error()),
    }
}

impl Future for Delivery {
    type Output = Result<RecordPosition>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().inner {
            Inner::Alone(answer) => answer
                .poll_unpin(cx)
                .map(|answer| answer.unwrap_or(Err(ClientError::ProducerClosed))),
            Inner::Batched {
                ack,
                index,
                partition,
                timestamp_ms,
                slot,
            } => ack
                .poll_outcome(cx, slot)
                .map(|outcome| position(outcome, *index, *partition, *timestamp_ms)),
        }
    }
}

impl BatchAck {
    /// The batch's outcome once it is set; until then registers `cx`'s waker (in `slot`, so a
    /// future polled again replaces its own waker instead of adding one).
    fn poll_outcome(
        &self,
        cx: &Context<'_>,
        slot: &mut Option<usize>,
    ) -> Poll<&Result<u64, Failure>> {
        if let Some(outcome) = self.outcome.get() {
            return Poll::Ready(outcome);
        }
        let mut wakers = self.wakers.lock();
        // Looked at again under the lock the resolver takes after setting it.
        if let Some(outcome) = self.outcome.get() {
            return Poll::Ready(outcome);
        }
        match slot.and_then(|at| wakers.get_mut(at)) {
            Some(waker) => waker.clone_from(cx.waker()),
            None => {
                *slot = Some(wakers.len());
                wakers.push(cx.waker().clone());
            }
        }
        Poll::Pending
    }
}

/// The outcome of one [`super::Producer::send_batch`]: the position of every record, in the
/// order they were given, once all are answered; or the first failure, once all are answered
/// (records that went to other batches, e.g. other partitions, may be stored even so: each
/// batch is stored or refused as a whole).
///
/// It holds one entry per run of records that landed next to each other in one batch (one for
/// a whole slice to one partition), so it costs no allocation per record beyond its
/// timestamp.
#[derive(Debug)]
#[must_use = "a delivery tells whether the records were stored"]
pub struct BatchDelivery {
    runs: Vec<Run>,
    /// Each record's timestamp, in the order given.
    timestamps: Vec<i64>,
    positions: Vec<RecordPosition>,
    /// Runs before this one are answered.
    next: usize,
    /// Records of the answered runs.
    answered: usize,
    /// The first failure met; returned once every run is answered.
    failed: Option<ClientError>,
}

#[derive(Debug)]
enum Run {
    /// `len` consecutive records of one batch, the first at `index`.
    Batched {
        ack: Arc<BatchAck>,
        partition: u32,
        index: u32,
        len: u32,
        slot: Option<usize>,
    },
    /// A record that waited for its topic, answered on its own.
    Alone(Delivery),
}

impl BatchDelivery {
    pub(crate) fn with_capacity(records: usize) -> Self {
        BatchDelivery {
            runs: Vec::new(),
            timestamps: Vec::with_capacity(records),
            positions: Vec::new(),
            next: 0,
            answered: 0,
            failed: None,
        }
    }

    /// Records accepted so far.
    pub(crate) fn len(&self) -> usize {
        self.timestamps.len()
    }

    /// The next record went into a batch as its record number `index`.
    pub(crate) fn push_batched(
        &mut self,
        ack: &AckSender,
        index: u32,
        partition: u32,
        timestamp_ms: i64,
    ) {
        self.timestamps.push(timestamp_ms);
        if let Some(Run::Batched {
            ack: last,
            index: first,
            len,
            ..
        }) = self.runs.last_mut()
        {
            if Arc::ptr_eq(last, &ack.0) && *first + *len == index {
                *len += 1;
                return;
            }
        }
        self.runs.push(Run::Batched {
            ack: Arc::clone(&ack.0),
            partition,
            index,
            len: 1,
            slot: None,
        });
    }

    /// The next record waits for its topic and is answered on its own.
    pub(crate) fn push_alone(&mut self, delivery: Delivery, timestamp_ms: i64) {
        self.timestamps.push(timestamp_ms);
        self.runs.push(Run::Alone(delivery));
    }
}

impl Future for BatchDelivery {
    type Output = Result<Vec<RecordPosition>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if this.positions.capacity() == 0 {
            this.positions.reserve_exact(this.timestamps.len());
        }
        while let Some(run) = this.runs.get_mut(this.next) {
            let first = this.answered;
            let answered = match run {
                Run::Batched {
                    ack,
                    partition,
                    index,
                    len,
                    slot,
                } => {
                    let Poll::Ready(outcome) = ack.poll_outcome(cx, slot) else {
                        return Poll::Pending;
                    };
                    match outcome {
                        Ok(base) if this.failed.is_none() => {
                            let timestamps = &this.timestamps[first..first + *len as usize];
                            let offsets = (0..*len).map(|i| base + u64::from(*index + i));
                            this.positions.extend(offsets.zip(timestamps).map(
                                |(offset, &timestamp_ms)| RecordPosition {
                                    partition: *partition,
                                    offset,
                                    timestamp_ms,
                                },
                            ));
                        }
                        Ok(_) => {}
                        Err(failure) => {
                            this.failed.get_or_insert_with(|| failure.error());
                        }
                    }
                    *len as usize
                }
                Run::Alone(delivery) => {
                    let Poll::Ready(outcome) = delivery.poll_unpin(cx) else {
                        return Poll::Pending;
                    };
                    match outcome {
                        Ok(position) if this.failed.is_none() => this.positions.push(position),
                        Ok(_) => {}
                        Err(error) => {
                            this.failed.get_or_insert(error);
                        }
                    }
                    1
                }
            };
            this.answered += answered;
            this.next += 1;
        }
        Poll::Ready(match this.failed.take() {
            Some(error) => Err(error),
            None => Ok(std::mem::take(&mut this.positions)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::future::join_all;

    #[tokio::test]
    async fn every_record_of_a_batch_reads_its_offset_from_the_one_answer() {
        let ack = AckSender::new();
        let deliveries: Vec<Delivery> = (0..3)
            .map(|i| ack.delivery(i, 2, 100 + i64::from(i)))
            .collect();
        let waiting = tokio::spawn(join_all(deliveries));
        tokio::task::yield_now().await;
        ack.resolve(Ok(40));
        let positions: Vec<RecordPosition> = waiting
            .await
            .expect("joined")
            .into_iter()
            .map(|p| p.expect("delivered"))
            .collect();
        let offsets: Vec<(u32, u64, i64)> = positions
            .iter()
            .map(|p| (p.partition, p.offset, p.timestamp_ms))
            .collect();
        assert_eq!(offsets, [(2, 40, 100), (2, 41, 101), (2, 42, 102)]);
    }

    #[tokio::test]
    async fn a_failure_reaches_every_record_and_a_dropped_ack_means_closed() {
        let ack = AckSender::new();
        let (a, b) = (ack.delivery(0, 0, 0), ack.delivery(1, 0, 0));
        ack.resolve(Err(Failure::Rpc {
            code: Code::InvalidArgument,
            message: "no".into(),
        }));
        for delivery in [a, b] {
            assert_eq!(
                delivery.await.expect_err("failed").code(),
                Code::InvalidArgument
            );
        }
        let ack = AckSender::new();
        let orphan = ack.delivery(0, 0, 0);
        drop(ack);
        assert!(matches!(orphan.await, Err(ClientError::ProducerClosed)));
    }

    #[tokio::test]
    async fn a_slice_keeps_one_entry_per_run_and_answers_in_the_order_given() {
        let (a, b) = (AckSender::new(), AckSender::new());
        let mut slice = BatchDelivery::with_capacity(5);
        slice.push_batched(&a, 0, 1, 10);
        slice.push_batched(&a, 1, 1, 11);
        slice.push_batched(&b, 0, 2, 12);
        // Not next to the run before (another sender's record took index 2): a new run.
        slice.push_batched(&a, 3, 1, 13);
        let (reply, alone) = Delivery::alone();
        slice.push_alone(alone, 14);
        assert_eq!(slice.runs.len(), 4);
        let waiting = tokio::spawn(slice);
        tokio::task::yield_now().await;
        b.resolve(Ok(7));
        a.resolve(Ok(100));
        let _ = reply.send(Ok(RecordPosition {
            partition: 0,
            offset: 5,
            timestamp_ms: 14,
        }));
        let positions: Vec<(u32, u64, i64)> = waiting
            .await
            .expect("joined")
            .expect("delivered")
            .iter()
            .map(|p| (p.partition, p.offset, p.timestamp_ms))
            .collect();
        assert_eq!(
            positions,
            [
                (1, 100, 10),
                (1, 101, 11),
                (2, 7, 12),
                (1, 103, 13),
                (0, 5, 14)
            ]
        );
    }

    #[tokio::test]
    async fn a_slice_fails_with_the_first_failure_once_every_run_is_answered() {
        let (a, b) = (AckSender::new(), AckSender::new());
        let mut slice = BatchDelivery::with_capacity(2);
        slice.push_batched(&a, 0, 0, 0);
        slice.push_batched(&b, 0, 1, 0);
        let mut waiting = tokio::spawn(slice);
        a.resolve(Err(Failure::Rpc {
            code: Code::NotFound,
            message: "no".into(),
        }));
        tokio::task::yield_now().await;
        assert!(
            futures::poll!(&mut waiting).is_pending(),
            "still waits for the other batch"
        );
        b.resolve(Ok(3));
        let err = waiting.await.expect("joined").expect_err("failed");
        assert_eq!(err.code(), Code::NotFound);
    }
}
