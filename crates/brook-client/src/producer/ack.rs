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
            } => {
                let ready =
                    |outcome| Poll::Ready(position(outcome, *index, *partition, *timestamp_ms));
                if let Some(outcome) = ack.outcome.get() {
                    return ready(outcome);
                }
                let mut wakers = ack.wakers.lock();
                // Looked at again under the lock the resolver takes after setting it.
                if let Some(outcome) = ack.outcome.get() {
                    return ready(outcome);
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
}
