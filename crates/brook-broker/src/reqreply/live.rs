//! The running side of request-reply on a backend: the index of calls, the reader that follows
//! the reply topic, and the `call` / `reply` operations on top of them.
//!
//! Written once over [`Backend`]'s calls (produce, fetch, offsets, topics), so request-reply
//! works the same on the local log and, in gateway mode, on a Kafka cluster: the same headers,
//! the same reply topic, the same index. Each backend keeps its own [`Hub`].
//!
//! Everything starts on first use after the backend opens (a call, a responder, a fetch by
//! id): the reply topic is created if missing and read from the start of the window, then a
//! task per reply partition follows it. On the local log the task is woken by the partition's
//! high-watermark channel; on a cluster it long-polls with fetches. Either way it holds only a
//! weak reference to the backend between reads, so dropping the last handle still closes it
//! (and removes an ephemeral directory). A reply appended by one of this backend's responders
//! reaches its caller as soon as it is appended, and the follower then skips that one record's
//! batch without decoding it; it decodes everything else it passes.

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use brook_log::batch::{BatchHeader, Batches};
use futures::future::Either;
use parking_lot::Mutex;
use tokio::time::Instant;

use super::binding::ReplyKey;
use super::headers;
use super::id::CorrelationId;
use super::index::{Begin, Delivery, Found, Index, ReplyAt, Ticket};
use super::{Call, Reply, ReqReplyConfig, ReqReplyStats};
use crate::backend::{Backend, Cluster};
use crate::broker::{Broker, Inner};
use crate::error::{BrokerError, Result};
use crate::produce::now_ms;
use crate::types::{ConsumerRecord, NewTopic, OffsetSpec, ProduceRecord, RecordPosition};

/// Bytes read from a log at a time while scanning or following.
const READ_BYTES: usize = 1 << 20;
/// How long one long poll of a cluster's reply partition waits for the next reply.
const FOLLOW_WAIT: Duration = Duration::from_secs(1);
/// The most replies noted as delivered and not yet passed by the follower ([`Live::delivered`]).
const DELIVERED_MAX: usize = 1 << 16;

/// A backend's request-reply state: started on first use. A backend other than the local log
/// keeps one of its own ([`Cluster::reqreply_hub`]).
#[derive(Debug, Default)]
pub struct Hub {
    live: Mutex<Option<Arc<Live>>>,
    /// Serialises starting, so the reply topic is read once.
    starting: tokio::sync::Mutex<()>,
    counters: Arc<Counters>,
    /// The key binding replies to calls, loaded (or made) on first start.
    key: std::sync::OnceLock<ReplyKey>,
}

impl Hub {
    fn current(&self) -> Option<Arc<Live>> {
        self.live
            .lock()
            .as_ref()
            .filter(|live| !live.dead.load(Ordering::Acquire))
            .cloned()
    }
}

/// Counters that outlive a restart of the live state.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) malformed_replies: AtomicU64,
    pub(crate) duplicate_replies: AtomicU64,
    pub(crate) unbound_replies: AtomicU64,
    pub(crate) malformed_requests: AtomicU64,
    pub(crate) skipped_requests: AtomicU64,
}

/// Request-reply while its reply topic is being followed.
#[derive(Debug)]
pub(crate) struct Live {
    pub(crate) reply_topic: Arc<str>,
    reply_partitions: u32,
    pub(crate) index: Mutex<Index>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) window_ms: u64,
    /// Binds replies to calls ([`super::binding`]).
    pub(crate) key: ReplyKey,
    /// Request topics whose window has been read into the index.
    scanned: Mutex<HashSet<String>>,
    scanning: tokio::sync::Mutex<()>,
    /// Set when the reply topic went away: the next use starts over.
    dead: AtomicBool,
    /// Replies handed to their callers straight from their append ([`Live::delivered`]),
    /// which the reply topic's follower need not decode again.
    delivered: Mutex<HashSet<(u32, u64)>>,
}

impl Live {
    /// The reply partition for calls with `id`.
    fn reply_partition(&self, id: &CorrelationId) -> u32 {
        crate::partitioner::partition_for_key(id.as_bytes(), self.reply_partitions)
    }

    /// Indexes a reply record and hands it to the calls waiting for it.
    pub(crate) fn reply_seen(&self, record: ConsumerRecord) {
        let Some(id) = headers::correlation_id(&record.headers) else {
            self.counters
                .malformed_replies
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                topic = %record.topic, partition = record.partition, offset = record.offset,
                "a reply without a valid kafka_correlationId header: not delivered to anyone"
            );
            return;
        };
        let bound =
            headers::reply_mac(&record.headers).is_some_and(|mac| self.key.checks(&id, mac));
        if !bound {
            self.counters
                .unbound_replies
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                topic = %record.topic, partition = record.partition, offset = record.offset,
                correlation_id = %id,
                "a reply not bound to its call (no valid brook_replyMac: not appended by a \
                 responder the request was delivered to): ignored"
            );
            return;
        }
        let at = ReplyAt {
            partition: record.partition,
            offset: record.offset,
        };
        let born = record.timestamp.min(now_ms());
        let found = self.index.lock().reply_found(&id, at, born);
        self.reply_found(&id, found, record);
    }

    /// Acts on what the index made of the reply `record` to the call `id`.
    fn reply_found(&self, id: &CorrelationId, found: Found, record: ConsumerRecord) {
        match found {
            Found::First(waiters) if !waiters.is_empty() => {
                let record = Arc::new(record);
                for waiter in waiters {
                    // A waiter that gave up in the meantime has dropped its receiver: fine.
                    let _ = waiter.send(Delivery::Reply(Arc::clone(&record)));
                }
            }
            Found::First(_) | Found::Again => {}
            Found::Duplicate => {
                self.counters
                    .duplicate_replies
                    .fetch_add(1, Ordering::Relaxed);
                tracing::debug!(
                    correlation_id = %id, partition = record.partition, offset = record.offset,
                    "a second reply to a call: the first one stands"
                );
            }
        }
    }

    /// Indexes the reply to the call `id` that one of this broker's responders just appended
    /// with a MAC binding it to `id` ([`ReplyMac::binds`](super::ReplyMac::binds)), and hands it to the calls waiting
    /// for it: [`Live::reply_seen`] without reading the record's headers or checking its MAC
    /// again. `record` needs only the headers its caller reads ([`headers::for_caller`]).
    pub(crate) fn reply_appended(&self, id: &CorrelationId, record: ConsumerRecord) {
        let at = ReplyAt {
            partition: record.partition,
            offset: record.offset,
        };
        let born = record.timestamp.min(now_ms());
        let found = self.index.lock().reply_found(id, at, born);
        self.reply_found(id, found, record);
    }

    /// Notes that the reply at `partition`-`offset` was indexed and handed to its callers as
    /// it was appended ([`Live::reply_seen`] by its responder), so the follower skips it.
    /// Bounded: past [`DELIVERED_MAX`] unread notes (a follower that stopped) it forgets them
    /// all, and the follower then reads those replies again, finding them known.
    pub(crate) fn delivered(&self, partition: u32, offset: u64) {
        let mut delivered = self.delivered.lock();
        if delivered.len() >= DELIVERED_MAX {
            delivered.clear();
        }
        delivered.insert((partition, offset));
    }

    /// Whether the follower may skip the reply batch `header` of `partition`: a lone record
    /// already delivered (forgotten here once skipped).
    fn skips(&self, partition: u32, header: &BatchHeader) -> bool {
        header.records_count == 1
            && !header.is_control()
            && u64::try_from(header.base_offset)
                .is_ok_and(|offset| self.delivered.lock().remove(&(partition, offset)))
    }

    /// Tells every waiting call that no reply will come, and makes the next use start over.
    fn kill(&self, reason: &'static str) {
        self.dead.store(true, Ordering::Release);
        let waiters = self.index.lock().drain_waiters();
        for waiter in waiters {
            let _ = waiter.send(Delivery::Aborted(reason));
        }
    }
}

/// A call waiting for its reply; stops waiting (and leaves the index) when dropped.
struct Waiting {
    live: Arc<Live>,
    id: CorrelationId,
    ticket: Ticket,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.live
            .index
            .lock()
            .remove_waiter(&self.id, self.ticket.0);
    }
}

impl Waiting {
    /// The reply, or `CallTimeout` at `deadline`, or `Closed` when the broker closes.
    async fn reply(
        mut self,
        backend: &Backend,
        topic: &str,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<Reply> {
        let mut shutdown = backend.shutdown_signal();
        tokio::select! {
            delivery = &mut self.ticket.1 => match delivery {
                Ok(Delivery::Reply(record)) => {
                    // The only waiter (as a rule) takes the record; others get a copy.
                    let record =
                        Arc::try_unwrap(record).unwrap_or_else(|shared| (*shared).clone());
                    headers::parse_reply(record, topic, &self.id)
                }
                Ok(Delivery::Aborted(reason)) => Err(aborted(topic, &self.id, reason)),
                Ok(Delivery::Failed(e)) => Err(e),
                Err(_) => Err(aborted(topic, &self.id, "the broker stopped waiting for it")),
            },
            () = tokio::time::sleep_until(deadline) => Err(BrokerError::CallTimeout {
                topic: topic.to_owned(),
                correlation_id: self.id.to_text(),
                timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            }),
            _ = shutdown.wait_for(|closed| *closed) => Err(BrokerError::Closed),
        }
    }
}

fn aborted(topic: &str, id: &CorrelationId, reason: &'static str) -> BrokerError {
    BrokerError::CallAborted {
        topic: topic.to_owned(),
        correlation_id: id.to_text(),
        reason,
    }
}

impl Broker {
    /// Calls `topic`: appends `call` as a request and returns the reply once a responder has
    /// appended it (see the [module docs](crate::reqreply)). As [`Backend::call`] on this
    /// broker.
    pub async fn call(&self, topic: &str, call: Call) -> Result<Reply> {
        Backend::Local(self.clone()).call(topic, call).await
    }

    /// The reply of the call on `topic` with correlation id `id`, as [`Backend::reply`] on this
    /// broker.
    pub async fn reply(&self, topic: &str, id: &CorrelationId, wait: Duration) -> Result<Reply> {
        Backend::Local(self.clone()).reply(topic, id, wait).await
    }

    /// Request-reply counters. Cheap; does not start request-reply.
    pub fn reqreply_stats(&self) -> ReqReplyStats {
        stats(&self.inner.reqreply)
    }
}

/// `hub`'s counters.
fn stats(hub: &Hub) -> ReqReplyStats {
    let counters = &hub.counters;
    let (waiting_calls, indexed_ids) = hub.current().map_or((0, 0), |live| {
        let index = live.index.lock();
        (index.waiting(), index.len())
    });
    ReqReplyStats {
        waiting_calls,
        indexed_ids,
        malformed_replies: counters.malformed_replies.load(Ordering::Relaxed),
        duplicate_replies: counters.duplicate_replies.load(Ordering::Relaxed),
        unbound_replies: counters.unbound_replies.load(Ordering::Relaxed),
        malformed_requests: counters.malformed_requests.load(Ordering::Relaxed),
        skipped_requests: counters.skipped_requests.load(Ordering::Relaxed),
    }
}

impl Backend {
    /// Calls `topic`: appends `call` as a request and returns the reply once a responder has
    /// appended it (see the [module docs](crate::reqreply)).
    ///
    /// With `call.correlation_id` set, the call is idempotent while the broker remembers the
    /// id: if a request with it was appended already, none is appended again, and if its reply
    /// is in, it is returned at once.
    ///
    /// Errors: `CallTimeout` (with the correlation id, to fetch the reply later with
    /// [`Broker::reply`]) when no reply came within `call.timeout`; `HandlerFailed` for an
    /// error reply; `InvalidRequest` for a bad timeout, a header the broker reserves, an id used
    /// by a call to another topic, or a call to the reply topic itself; anything a produce may
    /// fail with; `Closed` when the broker closes meanwhile.
    pub async fn call(&self, topic: &str, call: Call) -> Result<Reply> {
        self.check_call_topic(topic)?;
        self.check_call_wait(call.timeout, false)?;
        headers::check_user_headers(&call.headers)?;
        let timeout = call.timeout;
        let deadline = Instant::now() + timeout;
        let id = call
            .correlation_id
            .clone()
            .unwrap_or_else(CorrelationId::random);
        let timed_out = || BrokerError::CallTimeout {
            topic: topic.to_owned(),
            correlation_id: id.to_text(),
            timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
        };
        let live = self.reqreply_for(topic).await?;
        let begin = live.index.lock().begin_call(&id, topic, now_ms())?;
        let (ticket, append) = match begin {
            Begin::Replied(at) => return self.read_reply(&live, topic, &id, at).await,
            Begin::Wait { ticket, append } => (ticket, append),
            Begin::Unknown => return Err(aborted(topic, &id, "the call was not recorded")),
        };
        let waiting = Waiting {
            live: Arc::clone(&live),
            id: id.clone(),
            ticket,
        };
        if append {
            let partition = live.reply_partition(&id);
            let record = headers::request_record(call, &id, &live.reply_topic, partition);
            // The append's outcome is recorded where it is known, so the call waits for its
            // reply alone (one wake-up): a failed append reaches it as `Delivery::Failed`.
            let (me, then_live, then_id) = (waiting.ticket.0, Arc::clone(&live), id.clone());
            let then = move |appended: Result<RecordPosition>| match appended {
                Ok(at) => then_live
                    .index
                    .lock()
                    .appended(&then_id, at.partition, at.offset),
                Err(e) => append_failed(&then_live, &then_id, Some((me, e))),
            };
            let mut queued = Box::pin(self.queue_request(topic, record, then));
            match tokio::time::timeout_at(deadline, &mut queued).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    append_failed(&live, &id, None);
                    return Err(e);
                }
                Err(_) => {
                    // Still queuing (the topic being created): let it finish and record how
                    // it went.
                    let (live, id) = (Arc::clone(&live), id.clone());
                    tokio::spawn(async move {
                        if queued.await.is_err() {
                            append_failed(&live, &id, None);
                        }
                    });
                    return Err(timed_out());
                }
            }
        }
        waiting.reply(self, topic, deadline, timeout).await
    }

    /// Queues a call's request record: the future ends once it is queued, and `then` gets the
    /// append's outcome (called exactly when the future ends with `Ok`). On the local log
    /// `then` runs where the append finishes ([`Broker::produce_record_then`]); on a cluster,
    /// the future waits for the append and calls `then` itself.
    fn queue_request(
        &self,
        topic: &str,
        record: ProduceRecord,
        then: impl FnOnce(Result<RecordPosition>) + Send + 'static,
    ) -> impl Future<Output = Result<()>> + Send + 'static {
        let appended = match self {
            Backend::Local(broker) => {
                return Either::Left(broker.produce_record_then(topic, record, then))
            }
            Backend::Cluster(_) => self.produce_one(topic, record),
        };
        Either::Right(async move {
            then(Ok(appended.await?));
            Ok(())
        })
    }

    /// Appends one record to `topic` and answers with its position, ordered at call time as
    /// [`Backend::produce`]; on the local log without a many-record request's bookkeeping
    /// ([`Broker::produce_record`]).
    pub(crate) fn produce_one(
        &self,
        topic: &str,
        record: ProduceRecord,
    ) -> impl Future<Output = Result<RecordPosition>> + Send + 'static {
        let produced = match self {
            Backend::Local(broker) => return Either::Left(broker.produce_record(topic, record)),
            Backend::Cluster(_) => self.produce(topic, vec![record]),
        };
        Either::Right(async move {
            let produced = produced.await?;
            produced
                .records
                .into_iter()
                .next()
                .ok_or_else(|| BrokerError::invalid("a record was not appended"))
        })
    }

    /// The reply of the call on `topic` with correlation id `id`: at once if it is in, else
    /// after waiting up to `wait` for it (zero: do not wait). For a caller that timed out,
    /// restarted, or lost its connection.
    ///
    /// Errors: `UnknownCall` when the broker knows no such call on `topic` (never made, or
    /// forgotten after the window); `CallTimeout` when the call is known but its reply did not
    /// come within `wait`; `HandlerFailed` for an error reply.
    pub async fn reply(&self, topic: &str, id: &CorrelationId, wait: Duration) -> Result<Reply> {
        self.check_call_topic(topic)?;
        self.check_call_wait(wait, true)?;
        let deadline = Instant::now() + wait;
        let live = self.reqreply_for(topic).await?;
        let begin = live.index.lock().begin_wait(id, topic, now_ms());
        match begin {
            Begin::Replied(at) => self.read_reply(&live, topic, id, at).await,
            Begin::Wait { ticket, .. } => {
                let waiting = Waiting {
                    live: Arc::clone(&live),
                    id: id.clone(),
                    ticket,
                };
                waiting.reply(self, topic, deadline, wait).await
            }
            Begin::Unknown => Err(BrokerError::UnknownCall {
                topic: topic.to_owned(),
                correlation_id: id.to_text(),
            }),
        }
    }

    /// Request-reply counters. Cheap; does not start request-reply.
    pub fn reqreply_stats(&self) -> ReqReplyStats {
        stats(self.reqreply_hub())
    }

    /// The request-reply settings of this backend.
    pub(crate) fn reqreply_config(&self) -> &ReqReplyConfig {
        match self {
            Backend::Local(broker) => &broker.inner.config.reqreply,
            Backend::Cluster(cluster) => &cluster.config().reqreply,
        }
    }

    /// The request-reply state of this backend.
    fn reqreply_hub(&self) -> &Hub {
        match self {
            Backend::Local(broker) => &broker.inner.reqreply,
            Backend::Cluster(cluster) => cluster.reqreply_hub(),
        }
    }

    /// Turns `true` when the backend closes: waiting calls then end.
    pub(crate) fn shutdown_signal(&self) -> tokio::sync::watch::Receiver<bool> {
        match self {
            Backend::Local(broker) => broker.shutdown_signal(),
            Backend::Cluster(cluster) => cluster.shutdown_signal(),
        }
    }

    /// Checks that `topic` can take requests: a valid name, not the reply topic.
    pub(crate) fn check_call_topic(&self, topic: &str) -> Result<()> {
        crate::names::validate_topic_name(topic)?;
        if topic == self.reqreply_config().reply_topic {
            return Err(BrokerError::invalid(format!(
                "{topic:?} is the reply topic: requests go to another topic"
            )));
        }
        Ok(())
    }

    /// Checks how long a call may wait against `reqreply.call_timeout_ms_max`.
    fn check_call_wait(&self, wait: Duration, zero_ok: bool) -> Result<()> {
        let max_ms = self.reqreply_config().call_timeout_ms_max;
        if (wait.is_zero() && !zero_ok) || wait > Duration::from_millis(max_ms) {
            let min = u8::from(!zero_ok);
            return Err(BrokerError::invalid(format!(
                "a call timeout of {} ms is not within {min}..={max_ms} ms \
                 (reqreply.call_timeout_ms_max)",
                wait.as_millis(),
            )));
        }
        Ok(())
    }

    /// Live request-reply with `topic`'s window read into the index.
    async fn reqreply_for(&self, topic: &str) -> Result<Arc<Live>> {
        let live = self.reqreply_live().await?;
        self.scan_requests(&live, topic).await?;
        Ok(live)
    }

    /// Live request-reply: started (reply topic created, read and followed) if it is not.
    pub(crate) async fn reqreply_live(&self) -> Result<Arc<Live>> {
        if let Some(live) = self.reqreply_hub().current() {
            return Ok(live);
        }
        // Started on a task of its own: a caller that gives up must not cut topic creation
        // short halfway.
        let backend = self.clone();
        tokio::spawn(async move { backend.start_reqreply().await }).await?
    }

    async fn start_reqreply(&self) -> Result<Arc<Live>> {
        let hub = self.reqreply_hub();
        let _starting = hub.starting.lock().await;
        if let Some(live) = hub.current() {
            return Ok(live);
        }
        let config = self.reqreply_config();
        let name = config.reply_topic.as_str();
        let partitions = match self.partition_count(name).await {
            Ok(partitions) => partitions,
            Err(BrokerError::UnknownTopic { .. }) => {
                match self.create_topic(NewTopic::new(name, 1)).await {
                    Ok(_) | Err(BrokerError::TopicExists { .. }) => {}
                    Err(e) => return Err(e),
                }
                self.partition_count(name).await?
            }
            Err(e) => return Err(e),
        };
        let key = match hub.key.get() {
            Some(key) => key.clone(),
            None => {
                let key = match self {
                    Backend::Local(broker) => {
                        let dir = broker.data_dir();
                        crate::broker::blocking(move || ReplyKey::load_or_create(&dir)).await?
                    }
                    Backend::Cluster(_) => ReplyKey::random(),
                };
                hub.key.get_or_init(|| key).clone()
            }
        };
        let live = Arc::new(Live {
            key,
            reply_topic: Arc::from(name),
            reply_partitions: partitions,
            index: Mutex::new(Index::new(config.window_ms, config.index_entries_max)),
            counters: Arc::clone(&hub.counters),
            window_ms: config.window_ms,
            scanned: Mutex::new(HashSet::new()),
            scanning: tokio::sync::Mutex::new(()),
            dead: AtomicBool::new(false),
            delivered: Mutex::new(HashSet::new()),
        });
        for partition in 0..partitions {
            let mut position = self.window_start(name, partition).await?;
            let (_, end) = self.log_range(name, partition).await?;
            while position < end {
                match self
                    .read_replies(&live, partition, position, Duration::ZERO)
                    .await?
                {
                    next if next > position => position = next,
                    _ => break,
                }
            }
            self.follow_replies(&live, partition, position)?;
        }
        tracing::info!(
            reply_topic = name,
            ids = live.index.lock().len(),
            "request-reply started"
        );
        *hub.live.lock() = Some(Arc::clone(&live));
        Ok(live)
    }

    /// Reads `topic`'s window into the index once, so calls made before the broker opened
    /// are known (an idempotent retry appends nothing). A missing topic has nothing to read.
    async fn scan_requests(&self, live: &Live, topic: &str) -> Result<()> {
        if live.scanned.lock().contains(topic) {
            return Ok(());
        }
        let _scanning = live.scanning.lock().await;
        if live.scanned.lock().contains(topic) {
            return Ok(());
        }
        if let Ok(partitions) = self.partition_count(topic).await {
            let name: Arc<str> = Arc::from(topic);
            for partition in 0..partitions {
                let mut position = self.window_start(topic, partition).await?;
                let (_, end) = self.log_range(topic, partition).await?;
                while position < end {
                    let next = self
                        .read_log(
                            (topic, partition),
                            position,
                            (READ_BYTES, Duration::ZERO),
                            |_| false,
                            |record| request_seen(live, &name, record),
                        )
                        .await?;
                    if next <= position {
                        break;
                    }
                    position = next;
                }
            }
        }
        live.scanned.lock().insert(topic.to_owned());
        Ok(())
    }

    /// Where the index's window starts in `topic`-`partition`: the latest of the log start,
    /// `window_ms` ago, and the partition's share of `index_entries_max` records before the
    /// end (the index could not hold more of them, so reading more would be wasted).
    async fn window_start(&self, topic: &str, partition: u32) -> Result<u64> {
        let config = self.reqreply_config();
        let partitions = self.partition_count(topic).await?;
        let (log_start, end) = self.log_range(topic, partition).await?;
        let share = (config.index_entries_max as u64).div_ceil(partitions.into());
        let by_count = end.saturating_sub(share);
        let since = now_ms().saturating_sub(i64::try_from(config.window_ms).unwrap_or(i64::MAX));
        let by_time = self
            .list_offset(topic, partition, OffsetSpec::Timestamp(since))
            .await?
            .offset
            .unwrap_or(end);
        Ok(log_start.max(by_count).max(by_time))
    }

    /// Reads the reply topic's `partition` from `position` into the index; returns where the
    /// next read starts.
    /// Waits up to `wait` for a reply when there is none at `position` yet.
    async fn read_replies(
        &self,
        live: &Live,
        partition: u32,
        position: u64,
        wait: Duration,
    ) -> Result<u64> {
        self.read_log(
            (&live.reply_topic, partition),
            position,
            (READ_BYTES, wait),
            |header| live.skips(partition, header),
            |record| live.reply_seen(record),
        )
        .await
    }

    /// Reads whatever is at `position` in `topic`-`partition` (up to `max_bytes`, but at least
    /// one batch), waiting up to `wait` when there is nothing yet, hands each record to `seen`
    /// except those of the batches `skip` picks (never decoded), and returns the next position.
    /// A position that retention removed moves to the log start.
    async fn read_log(
        &self,
        (topic, partition): (&str, u32),
        position: u64,
        (max_bytes, wait): (usize, Duration),
        mut skip: impl FnMut(&BatchHeader) -> bool,
        mut seen: impl FnMut(ConsumerRecord),
    ) -> Result<u64> {
        let fetched = match self
            .fetch(topic, partition, position, max_bytes, wait)
            .await
        {
            Ok(fetched) => fetched,
            Err(BrokerError::OffsetOutOfRange {
                log_start_offset, ..
            }) if position < log_start_offset => return Ok(log_start_offset),
            Err(e) => return Err(e),
        };
        let bytes = &fetched.batches;
        let next = crate::fetch::next_offset(bytes).unwrap_or(position);
        let name: Arc<str> = Arc::from(topic);
        let mut batches = Batches::new(bytes);
        let mut at = 0;
        // Each run of batches between skipped ones is decoded; from a damaged batch on, the
        // rest is decoded whole, so the error is the one any reader gets.
        while at < bytes.len() {
            let (mut end, mut skipped) = (at, 0);
            for batch in batches.by_ref() {
                let Ok(batch) = batch else {
                    end = bytes.len();
                    break;
                };
                if skip(&batch.header) {
                    skipped = batch.bytes.len();
                    break;
                }
                end = batch.position + batch.bytes.len();
            }
            if end > at {
                let run = bytes.slice(at..end);
                crate::fetch::decode_records(&name, partition, &run, position, &fetched.aborted)?
                    .into_iter()
                    .for_each(&mut seen);
            }
            if end == at && skipped == 0 {
                break;
            }
            at = end + skipped;
        }
        Ok(next)
    }

    /// Starts the task following the reply topic's `partition` from `position`.
    fn follow_replies(&self, live: &Arc<Live>, partition: u32, position: u64) -> Result<()> {
        match self {
            Backend::Local(broker) => follow_local(broker, live, partition, position),
            Backend::Cluster(cluster) => {
                follow_cluster(cluster, live, partition, position);
                Ok(())
            }
        }
    }

    /// Reads the reply at `at` back from the log.
    async fn read_reply(
        &self,
        live: &Live,
        topic: &str,
        id: &CorrelationId,
        at: ReplyAt,
    ) -> Result<Reply> {
        let gone = || BrokerError::UnknownCall {
            topic: topic.to_owned(),
            correlation_id: id.to_text(),
        };
        let mut found = None;
        let read = self
            // One byte: the batch holding the reply, and no more.
            .read_log(
                (&live.reply_topic, at.partition),
                at.offset,
                (1, Duration::ZERO),
                |_| false,
                |record| {
                    if record.offset == at.offset {
                        found = Some(record);
                    }
                },
            )
            .await;
        match (read, found) {
            (Ok(_), Some(record)) => headers::parse_reply(record, topic, id),
            // Removed by retention, or the reply topic was deleted.
            (Ok(_), None) | (Err(BrokerError::UnknownTopic { .. }), _) => Err(gone()),
            (Err(e), _) => Err(e),
        }
    }
}

/// Follows the local log's reply `partition` from `position`, woken by its high-watermark
/// channel, holding the broker only while reading.
fn follow_local(
    broker: &Broker,
    live: &Arc<Live>,
    partition: u32,
    mut position: u64,
) -> Result<()> {
    let mut high_watermark = broker.watch_high_watermark(&live.reply_topic, partition)?;
    let mut shutdown = broker.shutdown_signal();
    let weak: Weak<Inner> = Arc::downgrade(&broker.inner);
    let live = Arc::clone(live);
    tokio::spawn(async move {
        loop {
            high_watermark.borrow_and_update();
            {
                let Some(inner) = weak.upgrade() else {
                    return;
                };
                let backend = Backend::Local(Broker { inner });
                if !read_on(&backend, &live, partition, &mut position, Duration::ZERO).await {
                    return;
                }
            }
            tokio::select! {
                changed = high_watermark.changed() => if changed.is_err() { return },
                _ = shutdown.wait_for(|closed| *closed) => return,
            }
        }
    });
    Ok(())
}

/// Follows a cluster's reply `partition` from `position` with long polls, holding the cluster
/// only while polling; ends when the cluster is dropped or closed.
fn follow_cluster(cluster: &Arc<dyn Cluster>, live: &Arc<Live>, partition: u32, mut position: u64) {
    let weak = Arc::downgrade(cluster);
    let mut shutdown = cluster.shutdown_signal();
    let live = Arc::clone(live);
    tokio::spawn(async move {
        loop {
            if *shutdown.borrow_and_update() || live.dead.load(Ordering::Acquire) {
                return;
            }
            let Some(cluster) = weak.upgrade() else {
                return;
            };
            let backend = Backend::Cluster(cluster);
            if !read_on(&backend, &live, partition, &mut position, FOLLOW_WAIT).await {
                return;
            }
        }
    });
}

/// Reads the reply partition on from `position` until it has nothing more (waiting up to
/// `wait` for it). `false` when following must stop: the backend closed, or the reply topic
/// could not be read (waiting calls are then told).
async fn read_on(
    backend: &Backend,
    live: &Live,
    partition: u32,
    position: &mut u64,
    wait: Duration,
) -> bool {
    loop {
        match backend.read_replies(live, partition, *position, wait).await {
            Ok(next) if next > *position => *position = next,
            Ok(_) => return true,
            Err(BrokerError::Closed) => return false,
            Err(e) => {
                tracing::warn!(
                    topic = %live.reply_topic, partition, error = %e,
                    "stopped following the reply topic; waiting calls fail"
                );
                live.kill("the reply topic could not be read (deleted?)");
                return false;
            }
        }
    }
}

/// Forgets a call whose request could not be appended and tells its waiters: the one
/// numbered in `mine` gets its error, the others that it was not appended.
fn append_failed(live: &Live, id: &CorrelationId, mut mine: Option<(u64, BrokerError)>) {
    let waiters = live.index.lock().append_failed(id);
    for (n, waiter) in waiters {
        let delivery = match mine.take_if(|(me, _)| *me == n) {
            Some((_, e)) => Delivery::Failed(e),
            None => Delivery::Aborted("its request could not be appended"),
        };
        let _ = waiter.send(delivery);
    }
}

/// Indexes a request found in `topic` while reading its window, if it asks for a reply in
/// brook's reply topic.
fn request_seen(live: &Live, topic: &Arc<str>, record: ConsumerRecord) {
    if headers::reply_topic(&record.headers) != Some(&*live.reply_topic) {
        return;
    }
    if let Some(id) = headers::correlation_id(&record.headers) {
        let born = record.timestamp.min(now_ms());
        live.index
            .lock()
            .request_found(&id, topic, (record.partition, record.offset), born);
    }
}
