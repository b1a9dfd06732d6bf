//! The append path of one partition: a queue that keeps submission order, writes on the
//! blocking pool, and lets every waiting producer share fsyncs.
//!
//! A produce is queued at the moment it is called (not when its future is first polled), so
//! calls made one after another on a partition get increasing offsets in call order, even when
//! many are in flight at once (pipelined producing over gRPC `ProduceStream` or a Kafka
//! connection). One drainer task per partition, started on demand on tokio's blocking pool,
//! writes queued batches in order ([`PartitionLog::append_pending`]) and, when more batches are
//! queued behind them, hands the durability wait to another blocking task, so that the next
//! writes land while an fsync runs and every producer waiting meanwhile is covered by the same
//! group commit; with nothing queued it waits for the fsync itself (a lone record's path then
//! has one thread hand-off fewer, and what arrives during the fsync shares the next one). No
//! async worker ever waits for a lock held over IO, a roll or an fsync.
//!
//! The one exception to "writes on the blocking pool" is the idle partition's small batch
//! when the log does not wait for fsync (durability `none` or `interval`): its caller writes
//! it in place ([`PartitionLog::try_append_pending`]: one `pwrite` of at most
//! [`TAIL_BYTES_MAX`] bytes to the page cache, declined when the writer lock is held or a
//! roll is due) and answers it at once, which takes two thread wake-ups (to a drainer and
//! back) off every lone record's path. Anything submitted meanwhile queues behind it. A slow
//! write in place pauses them on the partition for a while ([`InPlace`]). Under durability
//! `sync` the same holds for a caller that awaits its batch before submitting anything more
//! ([`Appender::submit_awaited`]: a door answering one request at a time) on tokio's
//! multi-threaded runtime: it writes and waits for the fsync itself, inside
//! `tokio::task::block_in_place` (its worker's other tasks move to another thread meanwhile),
//! the same two wake-ups fewer. A caller that pipelines submits with [`Appender::submit`], so
//! that what it submits during one fsync shares the next. When other producers queued behind
//! an fsync waited for in place, the partition's writes go to the drainer for a while
//! ([`IN_PLACE_PAUSE`]), which shares one fsync among everything queued.
//! Each job's outcome goes to its producer over a channel, or to a short callback run on the
//! drainer's thread ([`Then`]), so a request-reply call waits for its reply alone.
//!
//! The last batches written (the last 16 KiB of them, on a topic that is not compacted) stay in
//! memory ([`Appender::tail`]) so that a subscriber at or near the end of the log gets them
//! without a read through the blocking pool.
//!
//! Each queued job holds a read guard of the broker's produce gate, so `close` waits for every
//! queued append to finish, even one whose producer stopped waiting for it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use brook_log::batch::{EndTxnMarker, HEADER_LEN};
use brook_log::{Durability, PartitionLog, PendingAppend};
use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use tokio::sync::{oneshot, OwnedRwLockReadGuard};

use crate::error::{BrokerError, Result};
use crate::types::BatchAppended;

/// Keeps the broker from closing while a job is queued or being written.
pub(crate) type ProduceGuard = Arc<OwnedRwLockReadGuard<bool>>;

/// What a job appends.
enum Work {
    /// A producer's batch, as the door received it or the broker built it: the log reads it
    /// and writes its own header in front of its records, so a request's shared bytes are
    /// never copied for the write.
    Batch(Bytes),
    /// A transaction marker the coordinator writes.
    Marker {
        producer_id: i64,
        epoch: i16,
        marker: EndTxnMarker,
    },
}

/// What the drainer calls with a job's outcome, on its blocking thread: it must be short and
/// never block (a lock held briefly, a channel send).
pub(crate) type Then = Box<dyn FnOnce(Result<BatchAppended>) + Send>;

/// Where a job's outcome goes.
enum Reply {
    /// To a producer awaiting it.
    Channel(oneshot::Sender<Result<BatchAppended>>),
    /// To a callback, so nobody has to be woken just to learn it ([`Appender::submit_then`]).
    Then(Then),
}

impl Reply {
    fn send(self, outcome: Result<BatchAppended>) {
        match self {
            // The producer may have stopped waiting; nothing else to tell.
            Reply::Channel(tx) => drop(tx.send(outcome)),
            Reply::Then(then) => then(outcome),
        }
    }
}

/// One queued batch and where its outcome goes.
struct Job {
    work: Work,
    reply: Reply,
    _open: ProduceGuard,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    /// A drainer task is running (and will see any job pushed before it finds the queue empty).
    draining: bool,
}

/// The most bytes of recent batches kept in memory for subscribers at the end of the log
/// ([`Appender::tail`]), and so the largest batch kept: a lone record's batch fits many times
/// over; larger batches are throughput, where the read through the blocking pool costs little
/// per record.
pub(crate) const TAIL_BYTES_MAX: usize = 16 << 10;

/// One recent batch, as stored (its base offset assigned).
struct Tail {
    base_offset: u64,
    next_offset: u64,
    bytes: Bytes,
}

/// The last batches written, contiguous and ending at the log end, at most
/// [`TAIL_BYTES_MAX`] bytes together.
#[derive(Default)]
struct Recent {
    batches: VecDeque<Tail>,
    bytes: usize,
}

impl Recent {
    fn clear(&mut self) {
        self.batches.clear();
        self.bytes = 0;
    }

    /// Adds `tail` after the others, forgetting the oldest beyond the bound, or everything
    /// before it when it does not follow on from them.
    fn push(&mut self, tail: Tail) {
        if self
            .batches
            .back()
            .is_some_and(|last| last.next_offset != tail.base_offset)
        {
            self.clear();
        }
        self.bytes += tail.bytes.len();
        self.batches.push_back(tail);
        while self.bytes > TAIL_BYTES_MAX {
            match self.batches.pop_front() {
                Some(old) => self.bytes -= old.bytes.len(),
                None => break,
            }
        }
    }

    /// The batches from the one starting at `position` on, below `end`, at most `max_bytes`
    /// of them (at least one): `None` unless the run starts at `position` and stops at `end`
    /// or at `max_bytes`.
    fn read(&self, position: u64, end: u64, max_bytes: usize) -> Option<Bytes> {
        // Base offsets increase through the queue.
        let first = self
            .batches
            .partition_point(|tail| tail.base_offset < position);
        if self.batches.get(first)?.base_offset != position {
            return None;
        }
        let mut run = self.batches.range(first..);
        let head = run.next().filter(|tail| tail.next_offset <= end)?;
        let (mut len, mut last) = (head.bytes.len(), head);
        let mut more = Vec::new();
        for tail in run {
            if tail.next_offset > end || len + tail.bytes.len() > max_bytes {
                break;
            }
            len += tail.bytes.len();
            more.push(tail);
            last = tail;
        }
        // Served when the run reaches `end`, or stopped short of later batches kept here
        // (at `max_bytes`); not when the log holds more than is kept.
        let whole = last.next_offset == end;
        let stopped_short = first + 1 + more.len() < self.batches.len();
        if !whole && !stopped_short {
            return None;
        }
        if more.is_empty() {
            return Some(head.bytes.clone());
        }
        let mut joined = BytesMut::with_capacity(len);
        joined.extend_from_slice(&head.bytes);
        more.iter()
            .for_each(|tail| joined.extend_from_slice(&tail.bytes));
        Some(joined.freeze())
    }
}

/// An in-place write slower than this (a page-cache write of a small batch takes microseconds;
/// this much means the kernel throttled dirty pages, faulted memory in, or the thread lost its
/// core for longer than a time slice) pauses in-place writes on the partition for
/// [`IN_PLACE_PAUSE`].
const IN_PLACE_SLOW: Duration = Duration::from_millis(5);

/// How long a partition's batches go to a drainer after a slow in-place write, or after other
/// producers queued behind an fsync waited for in place (under `sync`, the drainer shares one
/// fsync among everything queued, which a caller waiting in place keeps it from doing).
const IN_PLACE_PAUSE: Duration = Duration::from_secs(1);

/// Whether the partition's writes may be done in place: not for [`IN_PLACE_PAUSE`] after one
/// took over [`IN_PLACE_SLOW`], so that a page cache under pressure holds an async worker once
/// a second at most, while the drainer, on the blocking pool, takes the slow writes.
#[derive(Debug)]
struct InPlace {
    clock: Instant,
    /// Nanoseconds on `clock` before which writes are not done in place.
    paused_until: AtomicU64,
    /// [`IN_PLACE_SLOW`] in nanoseconds (a test lowers it).
    slow_ns: AtomicU64,
}

impl InPlace {
    fn new() -> Self {
        Self {
            clock: Instant::now(),
            paused_until: AtomicU64::new(0),
            slow_ns: AtomicU64::new(IN_PLACE_SLOW.as_nanos() as u64),
        }
    }

    fn now_ns(&self) -> u64 {
        u64::try_from(self.clock.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn allowed(&self) -> bool {
        self.now_ns() >= self.paused_until.load(Ordering::Relaxed)
    }

    /// Runs `write`, pausing in-place writes when it took too long (`Some(took)`).
    fn timed<T>(&self, write: impl FnOnce() -> T) -> (T, Option<Duration>) {
        let start = self.now_ns();
        let out = write();
        let end = self.now_ns();
        let took = end.saturating_sub(start);
        if took <= self.slow_ns.load(Ordering::Relaxed) {
            return (out, None);
        }
        self.pause_from(end);
        (out, Some(Duration::from_nanos(took)))
    }

    /// Sends the partition's writes to a drainer for [`IN_PLACE_PAUSE`] from `now_ns`.
    fn pause_from(&self, now_ns: u64) {
        let pause = IN_PLACE_PAUSE.as_nanos() as u64;
        self.paused_until.store(now_ns + pause, Ordering::Relaxed);
    }
}

/// The append queue of one partition.
pub(crate) struct Appender {
    log: Arc<PartitionLog>,
    topic: Arc<str>,
    partition: u32,
    queue: Mutex<Queue>,
    /// The last batches written ([`Recent`]).
    tail: Mutex<Recent>,
    in_place: InPlace,
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
            tail: Mutex::new(Recent::default()),
            in_place: InPlace::new(),
        }
    }

    /// What a reader at `position` would read below `end` (the end of what it may read), at
    /// most `max_bytes` but at least one batch, from memory when those batches are among the
    /// last written: exactly the bytes stored, which the log checked when they were appended.
    /// `None` (read the log) otherwise: not among the last [`TAIL_BYTES_MAX`] bytes written, a
    /// batch larger than that, or trimmed away.
    pub(crate) fn tail(&self, position: u64, end: u64, max_bytes: usize) -> Option<Bytes> {
        let bytes = self.tail.lock().read(position, end, max_bytes)?;
        // Retention or a trim may have removed it since (the log start only grows).
        (self.log.log_start_offset() <= position).then_some(bytes)
    }

    /// Keeps `batch` (just written at `pending`'s offsets) among the last batches, as stored,
    /// or forgets them all when `batch` is not to be kept (what follows would not be
    /// contiguous).
    fn keep_tail(&self, pending: &PendingAppend, batch: Option<&mut Bytes>) {
        let info = pending.info();
        let keep = batch.filter(|b| {
            !info.duplicate
                && b.len() <= TAIL_BYTES_MAX
                && !self.log.config().cleanup_policy.compacts()
        });
        let stored = keep.zip(pending.stored_header());
        let mut tail = self.tail.lock();
        match stored {
            Some((batch, head)) => tail.push(Tail {
                base_offset: info.base_offset,
                next_offset: info.last_offset + 1,
                bytes: stored_form(std::mem::take(batch), head),
            }),
            None => tail.clear(),
        }
    }

    /// Queues `batch` behind everything queued before it; the receiver gets its outcome.
    /// Fails (queuing nothing) outside a tokio runtime.
    pub(crate) fn submit(
        self: &Arc<Self>,
        batch: impl Into<Bytes>,
        open: ProduceGuard,
    ) -> Result<oneshot::Receiver<Result<BatchAppended>>> {
        let (reply, outcome) = oneshot::channel();
        self.push(Work::Batch(batch.into()), Reply::Channel(reply), open)?;
        Ok(outcome)
    }

    /// Queues `batch` as [`Appender::submit`] does, for a caller that awaits its outcome before
    /// it submits anything more: under durability `sync` it may then write the batch and wait
    /// for its fsync on its own thread (see the module doc). A caller that pipelines must use
    /// [`Appender::submit`], or its batches would each wait for their own fsync.
    pub(crate) fn submit_awaited(
        self: &Arc<Self>,
        batch: impl Into<Bytes>,
        open: ProduceGuard,
    ) -> Result<oneshot::Receiver<Result<BatchAppended>>> {
        let (reply, outcome) = oneshot::channel();
        self.push_as(Work::Batch(batch.into()), Reply::Channel(reply), open, true)?;
        Ok(outcome)
    }

    /// Queues `batch` as [`Appender::submit`] does, but hands its outcome to `then` on the
    /// drainer's thread as soon as it is known. Fails (queuing nothing, `then` dropped
    /// uncalled) outside a tokio runtime.
    pub(crate) fn submit_then(
        self: &Arc<Self>,
        batch: impl Into<Bytes>,
        open: ProduceGuard,
        then: Then,
    ) -> Result<()> {
        self.push(Work::Batch(batch.into()), Reply::Then(then), open)
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
        let (reply, outcome) = oneshot::channel();
        self.push(work, Reply::Channel(reply), open)?;
        Ok(outcome)
    }

    fn push(self: &Arc<Self>, work: Work, reply: Reply, open: ProduceGuard) -> Result<()> {
        self.push_as(work, reply, open, false)
    }

    /// Queues `work`; `awaited` when its caller waits for it before submitting more.
    fn push_as(
        self: &Arc<Self>,
        work: Work,
        reply: Reply,
        open: ProduceGuard,
        awaited: bool,
    ) -> Result<()> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|e| {
            BrokerError::invalid(format!(
                "produce must be called within a tokio runtime: {e}"
            ))
        })?;
        let job = Job {
            work,
            reply,
            _open: open,
        };
        let in_place = self.may_write_in_place(&job, awaited, &runtime);
        let start = {
            let mut queue = self.queue.lock();
            let idle = !std::mem::replace(&mut queue.draining, true);
            if idle && in_place {
                // This caller is the drainer for as long as its write takes: anything pushed
                // meanwhile queues behind it.
                drop(queue);
                return self.write_in_place(job, runtime);
            }
            queue.jobs.push_back(job);
            idle
        };
        if start {
            self.start_drainer(runtime);
        }
        Ok(())
    }

    fn start_drainer(self: &Arc<Self>, runtime: tokio::runtime::Handle) {
        let appender = Arc::clone(self);
        let pool = runtime.clone();
        pool.spawn_blocking(move || appender.drain(&runtime));
    }

    /// Whether `job` may be written by its caller when the queue is idle: a producer's batch
    /// small enough for the tail ([`TAIL_BYTES_MAX`]) when the log does not wait for an fsync
    /// (durability `none` or `interval`). Its write is then one `pwrite` to the page cache
    /// and bookkeeping in memory ([`PartitionLog::try_append_pending`], which declines
    /// whatever would wait: a held writer lock, a roll), as short as the thread hand-off it
    /// replaces; unless a recent one was slow ([`InPlace`]). Under `sync`, only for a caller
    /// that awaits it (`awaited`) on the multi-threaded runtime, where it can wait for the
    /// fsync in `block_in_place` (which the current-thread runtime refuses).
    fn may_write_in_place(
        &self,
        job: &Job,
        awaited: bool,
        runtime: &tokio::runtime::Handle,
    ) -> bool {
        let waits_in_place =
            || awaited && runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread;
        matches!(&job.work, Work::Batch(batch) if batch.len() <= TAIL_BYTES_MAX)
            && (self.log.config().durability != Durability::Sync || waits_in_place())
            && self.in_place.allowed()
    }

    /// Writes `job` on the calling thread, which holds the queue's drainer role (`draining`
    /// set by [`Appender::push`]), and answers it there; then hands the role to a drainer if
    /// jobs were queued meanwhile, or gives it up. A job the log declines to write without
    /// waiting goes to the head of the queue for a drainer instead.
    fn write_in_place(
        self: &Arc<Self>,
        mut job: Job,
        runtime: tokio::runtime::Handle,
    ) -> Result<()> {
        let _restart = RestartOnPanic(self);
        let written = match &mut job.work {
            Work::Batch(batch) => {
                let (written, slow) = self.in_place.timed(|| self.log.try_append_pending(batch));
                if let Some(took) = slow {
                    tracing::debug!(topic = %self.topic, partition = self.partition, ?took,
                        "a write in place was slow: writes go to the drainer for a while");
                }
                written.inspect(|pending| {
                    if let Some(pending) = pending {
                        self.keep_tail(pending, Some(batch));
                    }
                })
            }
            // A marker always goes through a drainer.
            Work::Marker { .. } => Ok(None),
        };
        let mut waited_in_place = false;
        match written {
            // Under `sync` the wait is an fsync: this worker's other tasks move elsewhere. (The
            // flavor again: the topic's durability may have changed since the check.)
            Ok(Some(pending))
                if self.log.config().durability == Durability::Sync
                    && runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread =>
            {
                tokio::task::block_in_place(|| self.acknowledge([(pending, job)]));
                waited_in_place = true;
            }
            Ok(Some(pending)) => self.acknowledge([(pending, job)]),
            Err(e) => job.reply.send(Err(self.error(e))),
            Ok(None) => {
                self.queue.lock().jobs.push_front(job);
                self.start_drainer(runtime);
                return Ok(());
            }
        }
        let more = {
            let mut queue = self.queue.lock();
            queue.draining = !queue.jobs.is_empty();
            queue.draining
        };
        if more {
            if waited_in_place {
                // Others produce to this partition too: their batches group-commit better
                // through the drainer for a while.
                self.in_place.pause_from(self.in_place.now_ns());
            }
            self.start_drainer(runtime);
        }
        Ok(())
    }

    /// Appends one job's batch or marker (blocking) and keeps a batch as the tail.
    fn write(&self, job: &mut Job) -> brook_log::Result<PendingAppend> {
        match &mut job.work {
            Work::Batch(batch) => {
                let pending = self.log.append_pending(batch)?;
                self.keep_tail(&pending, Some(batch));
                Ok(pending)
            }
            Work::Marker {
                producer_id,
                epoch,
                marker,
            } => {
                let pending = self.log.append_marker(*producer_id, *epoch, *marker)?;
                self.keep_tail(&pending, None);
                Ok(pending)
            }
        }
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
                match self.write(&mut job) {
                    Ok(pending) => written.push((pending, job)),
                    Err(e) => job.reply.send(Err(self.error(e))),
                }
            }
            if written.is_empty() {
                continue;
            }
            if self.log.config().durability == Durability::Sync
                && !self.queue.lock().jobs.is_empty()
            {
                // More is queued: wait for the fsync elsewhere, so it is written meanwhile.
                let appender = Arc::clone(&self);
                runtime.spawn_blocking(move || appender.acknowledge(written));
            } else {
                // Nothing is queued (or nothing to wait for): wait here, a thread hand-off
                // fewer. Batches submitted during the fsync are written after it and share the
                // next one, which could not start before this one ended anyway.
                self.acknowledge(written);
            }
        }
    }

    /// Waits until each written batch is durable and tells its producer (blocking).
    fn acknowledge(&self, written: impl IntoIterator<Item = (PendingAppend, Job)>) {
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
            job.reply.send(outcome);
        }
    }

    fn error(&self, err: brook_log::LogError) -> BrokerError {
        BrokerError::from_log(err, &self.topic, self.partition)
    }
}

/// `batch` as the log stored it: `head` (the header the log wrote) then its records. The batch
/// is not needed after its write, so a buffer of its own (a batch the broker built) takes the
/// header in place; a shared one (a request's bytes) is copied, which only batches small
/// enough for the tail ([`TAIL_BYTES_MAX`]) pay.
fn stored_form(batch: Bytes, head: &[u8; HEADER_LEN]) -> Bytes {
    match batch.try_into_mut() {
        Ok(mut own) => {
            own[..HEADER_LEN].copy_from_slice(head);
            own.freeze()
        }
        Err(shared) => {
            let mut stored = BytesMut::with_capacity(shared.len());
            stored.extend_from_slice(head);
            stored.extend_from_slice(&shared[HEADER_LEN..]);
            stored.freeze()
        }
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use brook_log::batch::{BatchBuilder, Compression, RecordRef};
    use brook_log::{CleanupPolicy, Durability, TopicConfig};
    use bytes::Bytes;

    use std::sync::atomic::Ordering;

    use super::TAIL_BYTES_MAX;
    use crate::{Broker, NewTopic, ProduceRecord};

    async fn broker_with(config: TopicConfig) -> Broker {
        let broker = Broker::ephemeral().await.expect("ephemeral broker");
        let mut topic = NewTopic::new("t", 1);
        topic.config = config;
        broker.create_topic(topic).await.expect("create topic");
        broker
    }

    async fn broker_durable(durability: Durability) -> Broker {
        let mut config = TopicConfig::default();
        config.durability = Some(durability);
        broker_with(config).await
    }

    async fn produce(broker: &Broker, value: Vec<u8>) -> u64 {
        let record = ProduceRecord {
            key: Some(Bytes::from_static(b"k")),
            ..ProduceRecord::value(value)
        };
        let produced = broker.produce("t", vec![record]).await.expect("produce");
        produced.records[0].offset
    }

    /// The batches the log holds from `from` to `end`, read from disk (never from memory).
    fn stored_run(broker: &Broker, from: u64, end: u64) -> Bytes {
        let topic = broker.topic("t").expect("topic");
        let log = &topic.partition(0).expect("partition").log;
        crate::fetch::checked_read(log, &Default::default(), "t", 0, from, 1 << 20, end)
            .expect("read")
    }

    /// The batch the log holds at `offset`, read from disk.
    fn stored(broker: &Broker, offset: u64) -> Bytes {
        stored_run(broker, offset, offset + 1)
    }

    fn tail_max(broker: &Broker, position: u64, end: u64, max_bytes: usize) -> Option<Bytes> {
        let topic = broker.topic("t").expect("topic");
        let appender = &topic.partition(0).expect("partition").appender;
        appender.tail(position, end, max_bytes)
    }

    fn tail(broker: &Broker, position: u64, end: u64) -> Option<Bytes> {
        tail_max(broker, position, end, 1 << 20)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_last_small_batch_is_served_from_memory_as_stored() {
        let broker = broker_with(TopicConfig::default()).await;
        assert_eq!(produce(&broker, b"a".to_vec()).await, 0);
        let kept = tail(&broker, 0, 1).expect("the last batch is kept");
        assert_eq!(kept, stored(&broker, 0), "byte for byte what the log holds");
        assert!(tail(&broker, 0, 2).is_none(), "not all there is to read");
        assert!(
            tail(&broker, 1, 1).is_none(),
            "not at the reader's position"
        );

        assert_eq!(produce(&broker, b"b".to_vec()).await, 1);
        assert_eq!(tail(&broker, 1, 2).unwrap(), stored(&broker, 1));
        assert_eq!(
            tail(&broker, 0, 2).unwrap(),
            stored_run(&broker, 0, 2),
            "the batches before the last too"
        );

        // A batch larger than the bound is read from the log.
        let big = vec![7u8; TAIL_BYTES_MAX];
        assert_eq!(produce(&broker, big).await, 2);
        assert!(tail(&broker, 2, 3).is_none(), "too large to keep");

        assert_eq!(produce(&broker, b"c".to_vec()).await, 3);
        broker.delete_records("t", 0, 4).await.expect("trim");
        assert!(tail(&broker, 3, 4).is_none(), "trimmed away");
    }

    /// A reader a few batches behind the end gets them all from memory, as one read of the
    /// log would give them, within its byte budget; only the last [`TAIL_BYTES_MAX`] bytes
    /// are kept, and a batch that is not kept makes the ones before it unusable.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn recent_batches_are_read_from_memory_as_the_log_holds_them() {
        let broker = broker_with(TopicConfig::default()).await;
        for (i, value) in ["a", "b", "c"].iter().enumerate() {
            assert_eq!(produce(&broker, value.as_bytes().to_vec()).await, i as u64);
        }
        assert_eq!(tail(&broker, 0, 3).unwrap(), stored_run(&broker, 0, 3));
        assert_eq!(tail(&broker, 1, 3).unwrap(), stored_run(&broker, 1, 3));
        assert_eq!(
            tail(&broker, 0, 2).unwrap(),
            stored_run(&broker, 0, 2),
            "up to the reader's end, not past it"
        );
        assert_eq!(
            tail_max(&broker, 0, 3, 1).unwrap(),
            stored(&broker, 0),
            "at most max_bytes, but one batch at least"
        );
        let two = stored(&broker, 0).len() + stored(&broker, 1).len();
        assert_eq!(
            tail_max(&broker, 0, 3, two).unwrap(),
            stored_run(&broker, 0, 2)
        );
        assert!(tail(&broker, 0, 4).is_none(), "not all there is to read");

        // 5 KB values: three batches fit the budget, the older ones are forgotten.
        for offset in 3..9 {
            assert_eq!(produce(&broker, vec![b'x'; 5000]).await, offset);
        }
        assert!(tail(&broker, 0, 9).is_none(), "forgotten");
        assert!(tail(&broker, 5, 9).is_none(), "beyond the budget");
        assert_eq!(tail(&broker, 6, 9).unwrap(), stored_run(&broker, 6, 9));

        // A batch too large to keep: what came before cannot join what comes after.
        assert_eq!(produce(&broker, vec![b'y'; TAIL_BYTES_MAX]).await, 9);
        assert!(tail(&broker, 8, 10).is_none());
        assert_eq!(produce(&broker, b"d".to_vec()).await, 10);
        assert!(tail(&broker, 8, 11).is_none());
        assert_eq!(tail(&broker, 10, 11).unwrap(), stored(&broker, 10));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nothing_is_kept_for_a_compacted_topic() {
        let mut config = TopicConfig::default();
        config.cleanup_policy = Some(CleanupPolicy::Compact);
        let broker = broker_with(config).await;
        assert_eq!(produce(&broker, b"a".to_vec()).await, 0);
        assert!(tail(&broker, 0, 1).is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sync_durability_keeps_the_drainer_and_the_tail() {
        let broker = broker_durable(Durability::Sync).await;
        assert_eq!(produce(&broker, b"a".to_vec()).await, 0);
        assert_eq!(tail(&broker, 0, 1).unwrap(), stored(&broker, 0));
    }

    /// A door's batch is a slice of a request's shared buffer: the tail keeps it as the log
    /// stored it (its base offset assigned), a copy, while the request's bytes stay as sent.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_shared_batch_is_kept_as_stored_and_the_request_left_as_sent() {
        let broker = broker_with(TopicConfig::default()).await;
        assert_eq!(produce(&broker, b"a".to_vec()).await, 0);
        let mut builder = BatchBuilder::new(Compression::None);
        for value in [&b"r1"[..], b"r2"] {
            builder.push(RecordRef {
                key: Some(b"k"),
                value: Some(value),
                headers: &[],
                timestamp: 42,
            });
        }
        let sent = builder.build().expect("build");
        let request = Bytes::from([&b"frame"[..], &sent, b"next"].concat());
        let original = request.to_vec();
        let batch = request.slice(5..5 + sent.len());
        let appended = broker.produce_batch("t", 0, batch).await.expect("append");
        assert_eq!(appended.base_offset, 1);
        assert_eq!(request, original, "the request's bytes as sent");
        let kept = tail(&broker, 1, 3).expect("kept");
        assert_eq!(
            kept,
            stored_run(&broker, 1, 3),
            "byte for byte what the log holds"
        );
        assert_eq!(&kept[..8], &1i64.to_be_bytes(), "its base offset assigned");
        assert_eq!(&kept[8..], &sent[8..], "the rest as sent");
    }

    fn lone_batch(value: &[u8]) -> Bytes {
        let mut builder = BatchBuilder::new(Compression::None);
        builder.push(RecordRef {
            key: None,
            value: Some(value),
            headers: &[],
            timestamp: 42,
        });
        builder.build().expect("build").freeze()
    }

    /// When the log does not wait for fsync, a small batch submitted to an idle partition is
    /// written and answered by its caller: the outcome is in before anything is awaited.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_small_batch_on_an_idle_partition_is_written_in_place() {
        for durability in [
            Durability::None,
            Durability::Interval(Duration::from_millis(5)),
        ] {
            let broker = broker_durable(durability).await;
            let topic = broker.topic("t").expect("topic");
            let appender = &topic.partition(0).expect("partition").appender;
            // However loaded the machine, no write here counts as slow.
            appender.in_place.slow_ns.store(u64::MAX, Ordering::Relaxed);
            for expected in 0..3u64 {
                let open = broker.enter_produce().expect("open");
                let mut receiver = appender.submit(lone_batch(b"v"), open).expect("queued");
                let appended = receiver.try_recv().expect("answered in place");
                assert_eq!(appended.expect("appended").base_offset, expected);
            }
            assert_eq!(tail(&broker, 2, 3).unwrap(), stored(&broker, 2));
        }
    }

    /// A slow in-place write (here: any, the threshold lowered to nothing) sends the
    /// partition's next batches to a drainer for a while; they are appended all the same.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_slow_write_in_place_pauses_writes_in_place() {
        let broker = broker_durable(Durability::None).await;
        let topic = broker.topic("t").expect("topic");
        let appender = &topic.partition(0).expect("partition").appender;
        assert!(appender.in_place.allowed());
        appender.in_place.slow_ns.store(0, Ordering::Relaxed);
        let open = broker.enter_produce().expect("open");
        let mut first = appender.submit(lone_batch(b"a"), open).expect("queued");
        assert_eq!(
            first.try_recv().expect("in place").expect("ok").base_offset,
            0
        );
        assert!(!appender.in_place.allowed(), "paused after a slow write");
        for expected in 1..4u64 {
            let open = broker.enter_produce().expect("open");
            let queued = appender.submit(lone_batch(b"b"), open).expect("queued");
            let appended = super::outcome(queued).await.expect("appended by a drainer");
            assert_eq!(appended.base_offset, expected);
        }
        assert_eq!(tail(&broker, 3, 4).unwrap(), stored(&broker, 3));
    }

    /// Many tasks producing to one partition at once: every record gets its own offset, in
    /// each task's order, as the log holds them, and the tail is the last batch; whether each
    /// batch is written by a drainer (`sync`) or, when the partition is idle, by its caller.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_lone_produces_keep_order_and_lose_nothing() {
        for durability in [Durability::Sync, Durability::None] {
            for awaited in [false, true] {
                lone_produces_keep_order(broker_durable(durability).await, awaited).await;
            }
        }
    }

    /// Under `sync`, a batch its caller awaits on an idle partition is written and fsynced by
    /// that caller: answered before anything is awaited, and already below the high watermark
    /// (which under `sync` moves only after an fsync).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn under_sync_an_awaited_batch_is_fsynced_in_place() {
        let broker = broker_durable(Durability::Sync).await;
        let topic = broker.topic("t").expect("topic");
        let appender = &topic.partition(0).expect("partition").appender;
        appender.in_place.slow_ns.store(u64::MAX, Ordering::Relaxed);
        for expected in 0..3u64 {
            let open = broker.enter_produce().expect("open");
            let mut receiver = appender
                .submit_awaited(lone_batch(b"v"), open)
                .expect("queued");
            let appended = receiver.try_recv().expect("answered in place");
            assert_eq!(appended.expect("appended").base_offset, expected);
            let durable =
                broker.describe_topic("t").expect("describe").partitions[0].high_watermark;
            assert_eq!(durable, expected + 1, "fsynced before the answer");
        }
        assert_eq!(tail(&broker, 2, 3).unwrap(), stored(&broker, 2));
    }

    /// The current-thread runtime cannot wait in place (`block_in_place` panics there): an
    /// awaited batch under `sync` goes to a drainer as any other.
    #[tokio::test]
    async fn on_the_current_thread_runtime_an_awaited_batch_goes_to_the_drainer() {
        let broker = broker_durable(Durability::Sync).await;
        for expected in 0..3u64 {
            let appended = broker
                .produce_batch_awaited("t", 0, lone_batch(b"v"))
                .await
                .expect("appended");
            assert_eq!(appended.base_offset, expected);
        }
        let durable = broker.describe_topic("t").expect("describe").partitions[0].high_watermark;
        assert_eq!(durable, 3);
    }

    /// The same with 4 KiB segments, so the log rolls every few dozen records: each write in
    /// place that finds a roll due is declined and handed to a drainer at the head of the
    /// queue, and everything still lands once, in each task's order.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lone_produces_through_rolls_keep_order_and_lose_nothing() {
        let mut config = TopicConfig::default();
        config.durability = Some(Durability::None);
        config.segment_bytes_max = Some(4096);
        let broker = broker_with(config).await;
        lone_produces_keep_order(broker.clone(), false).await;
        let topic = broker.topic("t").expect("topic");
        let segments = topic.partition(0).expect("partition").log.segment_count();
        assert!(segments > 10, "rolled {segments} times");
    }

    /// `TASKS` tasks each produce `EACH` lone records, one at a time (`awaited`: as whole
    /// batches through [`Broker::produce_batch_awaited`]); every record lands once, in each
    /// task's order.
    async fn lone_produces_keep_order(broker: Broker, awaited: bool) {
        const TASKS: usize = 8;
        const EACH: usize = 200;
        let tasks: Vec<_> = (0..TASKS)
            .map(|task| {
                let broker = broker.clone();
                tokio::spawn(async move {
                    let mut offsets = Vec::with_capacity(EACH);
                    for i in 0..EACH {
                        let value = format!("{task}-{i}");
                        let offset = if awaited {
                            let batch = lone_batch(value.as_bytes());
                            let appended = broker.produce_batch_awaited("t", 0, batch).await;
                            appended.expect("produce").base_offset
                        } else {
                            let record = ProduceRecord::value(value);
                            let produced =
                                broker.produce("t", vec![record]).await.expect("produce");
                            produced.records[0].offset
                        };
                        offsets.push(offset);
                    }
                    offsets
                })
            })
            .collect();
        let mut all = Vec::new();
        for (task, handle) in tasks.into_iter().enumerate() {
            let offsets = handle.await.expect("task");
            assert!(
                offsets.windows(2).all(|w| w[0] < w[1]),
                "task {task} in order"
            );
            all.extend(offsets.iter().map(|&o| (o, task)));
        }
        all.sort_unstable();
        let expected: Vec<u64> = (0..(TASKS * EACH) as u64).collect();
        assert_eq!(all.iter().map(|&(o, _)| o).collect::<Vec<_>>(), expected);
        // A read stops at a segment's end: read on until the log end.
        let mut records = Vec::new();
        while records.len() < TASKS * EACH {
            let fetched = broker
                .fetch("t", 0, records.len() as u64, 1 << 20, Duration::ZERO)
                .await
                .expect("fetch");
            let more = fetched.records().expect("decode");
            assert!(!more.is_empty(), "the log ends at {}", records.len());
            records.extend(more);
        }
        assert_eq!(records.len(), TASKS * EACH);
        let mut next = [0usize; TASKS];
        for record in records {
            let value = String::from_utf8(record.value.unwrap().to_vec()).unwrap();
            let (task, i) = value.split_once('-').unwrap();
            let task: usize = task.parse().unwrap();
            assert_eq!(
                i.parse::<usize>().unwrap(),
                next[task],
                "task {task}'s order"
            );
            assert_eq!(
                all[record.offset as usize].1, task,
                "the offset its call got"
            );
            next[task] += 1;
        }
        let last = (TASKS * EACH) as u64 - 1;
        assert_eq!(
            tail(&broker, last, last + 1).expect("the last batch"),
            stored(&broker, last)
        );
    }
}
