//! The append path of one partition: a queue that keeps submission order, writes on the
//! blocking pool, and lets every waiting producer share fsyncs.
//!
//! A produce is queued at the moment it is called (not when its future is first polled), so
//! calls made one after another on a partition get increasing offsets in call order, even when
//! many are in flight at once (pipelined producing over gRPC `ProduceStream` or a Kafka
//! connection). One drainer task per partition, started on demand on tokio's blocking pool,
//! writes queued batches in order ([`PartitionLog::append_pending`]) and hands the durability
//! wait to another blocking task, so that the next writes land while an fsync runs and every
//! producer waiting meanwhile is covered by the same group commit. No async worker ever blocks.
//!
//! Each queued job holds a read guard of the broker's produce gate, so `close` waits for every
//! queued append to finish, even one whose producer stopped waiting for it.

use std::collections::VecDeque;
use std::sync::Arc;

use brook_log::batch::EndTxnMarker;
use brook_log::{Durability, PartitionLog, PendingAppend};
use bytes::BytesMut;
use parking_lot::Mutex;
use tokio::sync::{oneshot, OwnedRwLockReadGuard};

use crate::error::{BrokerError, Result};
use crate::types::BatchAppended;

/// Keeps the broker from closing while a job is queued or being written.
pub(crate) type ProduceGuard = Arc<OwnedRwLockReadGuard<bool>>;

/// What a job appends.
enum Work {
    /// A producer's batch.
    Batch(BytesMut),
    /// A transaction marker the coordinator writes.
    Marker {
        producer_id: i64,
        epoch: i16,
        marker: EndTxnMarker,
    },
}

/// One queued batch and where its outcome goes.
struct Job {
    work: Work,
    reply: oneshot::Sender<Result<BatchAppended>>,
    _open: ProduceGuard,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    /// A drainer task is running (and will see any job pushed before it finds the queue empty).
    draining: bool,
}

/// The append queue of one partition.
pub(crate) struct Appender {
    log: Arc<PartitionLog>,
    topic: Arc<str>,
    partition: u32,
    queue: Mutex<Queue>,
}

impl std::fmt::Debug for Appender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Appender")
            .field("topic", &self.topic)
            .field("partition", &self.partition)
            .finish_non_exhaustive()
    }
}

impl Appender {
    pub(crate) fn new(log: Arc<PartitionLog>, topic: Arc<str>, partition: u32) -> Self {
        Self {
            log,
            topic,
            partition,
            queue: Mutex::new(Queue::default()),
        }
    }

    /// Queues `batch` behind everything queued before it; the receiver gets its outcome.
    /// Fails (queuing nothing) outside a tokio runtime.
    pub(crate) fn submit(
        self: &Arc<Self>,
        batch: BytesMut,
        open: ProduceGuard,
    ) -> Result<oneshot::Receiver<Result<BatchAppended>>> {
        self.push(Work::Batch(batch), open)
    }

    /// Queues a transaction marker behind everything queued before it (so after every batch
    /// of the transaction it ends).
    pub(crate) fn submit_marker(
        self: &Arc<Self>,
        producer_id: i64,
        epoch: i16,
        marker: EndTxnMarker,
        open: ProduceGuard,
    ) -> Result<oneshot::Receiver<Result<BatchAppended>>> {
        let work = Work::Marker {
            producer_id,
            epoch,
            marker,
        };
        self.push(work, open)
    }

    fn push(
        self: &Arc<Self>,
        work: Work,
        open: ProduceGuard,
    ) -> Result<oneshot::Receiver<Result<BatchAppended>>> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|e| {
            BrokerError::invalid(format!(
                "produce must be called within a tokio runtime: {e}"
            ))
        })?;
        let (reply, outcome) = oneshot::channel();
        let start = {
            let mut queue = self.queue.lock();
            queue.jobs.push_back(Job {
                work,
                reply,
                _open: open,
            });
            !std::mem::replace(&mut queue.draining, true)
        };
        if start {
            let appender = Arc::clone(self);
            let pool = runtime.clone();
            pool.spawn_blocking(move || appender.drain(&runtime));
        }
        Ok(outcome)
    }

    /// Writes queued batches in order until the queue is empty (blocking).
    fn drain(self: Arc<Self>, runtime: &tokio::runtime::Handle) {
        let _restart = RestartOnPanic(&self);
        loop {
            let jobs: Vec<Job> = {
                let mut queue = self.queue.lock();
                if queue.jobs.is_empty() {
                    queue.draining = false;
                    return;
                }
                queue.jobs.drain(..).collect()
            };
            let mut written = Vec::with_capacity(jobs.len());
            for mut job in jobs {
                let pending = match &mut job.work {
                    Work::Batch(batch) => self.log.append_pending(batch),
                    Work::Marker {
                        producer_id,
                        epoch,
                        marker,
                    } => self.log.append_marker(*producer_id, *epoch, *marker),
                };
                match pending {
                    Ok(pending) => written.push((pending, job)),
                    Err(e) => {
                        // The producer may have stopped waiting; nothing else to tell.
                        let _ = job.reply.send(Err(self.error(e)));
                    }
                }
            }
            if written.is_empty() {
                continue;
            }
            if self.log.config().durability == Durability::Sync {
                // Wait for the fsync elsewhere, so the next batches are written meanwhile.
                let appender = Arc::clone(&self);
                runtime.spawn_blocking(move || appender.acknowledge(written));
            } else {
                self.acknowledge(written);
            }
        }
    }

    /// Waits until each written batch is durable and tells its producer (blocking).
    fn acknowledge(&self, written: Vec<(PendingAppend, Job)>) {
        for (pending, job) in written {
            let outcome = pending
                .wait_durable()
                .map(|info| BatchAppended {
                    base_offset: info.base_offset,
                    last_offset: info.last_offset,
                    record_count: info.record_count,
                    max_timestamp: info.max_timestamp,
                    log_start_offset: self.log.log_start_offset(),
                })
                .map_err(|e| self.error(e));
            let _ = job.reply.send(outcome);
        }
    }

    fn error(&self, err: brook_log::LogError) -> BrokerError {
        BrokerError::from_log(err, &self.topic, self.partition)
    }
}

/// Clears `draining` if a drainer panics, so the next submit starts a new one instead of
/// queuing behind a drainer that is gone. (The panicking drainer's jobs are dropped, and their
/// producers get an error.)
struct RestartOnPanic<'a>(&'a Appender);

impl Drop for RestartOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.queue.lock().draining = false;
        }
    }
}

/// Awaits a queued append's outcome.
pub(crate) async fn outcome(
    receiver: oneshot::Receiver<Result<BatchAppended>>,
) -> Result<BatchAppended> {
    receiver.await.unwrap_or_else(|_| {
        Err(BrokerError::Task {
            reason: "the append task ended without an answer".into(),
        })
    })
}
