//! Responders: group members that take requests off a topic and append their replies.
//!
//! A [`Responder`] is a consumer-group subscription that hands out [`Request`]s and keeps
//! track of which ones were answered; its [`Replier`] (cloneable, usable from other tasks)
//! appends the replies. Offsets are committed every `responder_commit_ms`, up to the first
//! request not answered yet in each partition, so requests in flight when a responder dies are
//! delivered again to the member that takes its partitions over. That member skips the ones
//! whose reply it can already see. [`Broker::respond`] runs a handler over a responder, several
//! requests at a time; each answer's task ends once its reply is queued, and the reply reaches
//! its caller from where its append finishes ([`Replier::reply_queued`]).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fmt::Display;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use parking_lot::Mutex;
use tokio::task::JoinSet;

use super::headers;
use super::live::Live;
use super::{Answer, Request};
use crate::backend::Backend;
use crate::broker::Broker;
use crate::error::{BrokerError, ErrorKind, Result};
use crate::group_admin::OffsetCommit;
use crate::produce::now_ms;
use crate::subscribe::{GroupSubscribe, Subscription, SubscriptionEvent};
use crate::types::{ConsumerRecord, OffsetReset, TopicPartition};

/// Requests [`Broker::respond`] handles at once.
pub const RESPOND_IN_FLIGHT: usize = 64;

/// Which requests a responder takes, and as whom.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RespondOptions {
    pub topic: String,
    /// The consumer group responders of one service share.
    pub group: String,
    /// Who the member is, for `describe_group` (a door passes the peer address).
    pub client_id: String,
}

impl RespondOptions {
    pub fn new(topic: impl Into<String>, group: impl Into<String>) -> Self {
        Self {
            topic: topic.into(),
            group: group.into(),
            client_id: "responder".to_owned(),
        }
    }
}

/// One partition's requests handed out and not answered yet.
#[derive(Debug, Default)]
struct Progress {
    outstanding: BTreeSet<u64>,
    /// One past the last request handed out.
    end: Option<u64>,
    committed: Option<u64>,
}

impl Progress {
    /// Where the group may resume: the first request not answered, else past the last.
    fn resume_at(&self) -> Option<u64> {
        self.outstanding.first().copied().or(self.end)
    }
}

/// What a responder and its repliers share.
#[derive(Debug)]
struct Shared {
    backend: Backend,
    live: Arc<Live>,
    topic: String,
    group: String,
    progress: Mutex<HashMap<u32, Progress>>,
}

impl Shared {
    fn handed_out(&self, partition: u32, offset: u64) {
        let mut progress = self.progress.lock();
        let p = progress.entry(partition).or_default();
        p.outstanding.insert(offset);
        p.end = Some(p.end.map_or(offset + 1, |end| end.max(offset + 1)));
    }

    fn answered(&self, partition: u32, offset: u64) {
        if let Some(p) = self.progress.lock().get_mut(&partition) {
            p.outstanding.remove(&offset);
        }
    }

    /// Counts the request at `partition`-`offset` as answered once its reply is appended, or
    /// can never be (a reply topic that is invalid or missing); not after an error that a
    /// later try may not meet (the broker closing, an IO error), so its request is delivered
    /// again.
    fn settle(&self, partition: u32, offset: u64, appended: &Result<()>) {
        let settled = match appended {
            Ok(()) => true,
            Err(e) => !matches!(e.kind(), ErrorKind::Unavailable | ErrorKind::Internal),
        };
        if settled {
            self.answered(partition, offset);
        }
    }

    /// The request in `record`, or `None` when it is to be skipped (malformed, answered
    /// already, or older than the window), which counts as answered.
    fn admit(&self, record: ConsumerRecord) -> Option<Request> {
        let (partition, offset) = (record.partition, record.offset);
        self.handed_out(partition, offset);
        let counters = &self.live.counters;
        let request = match headers::parse_request(record) {
            Ok(request) => request,
            Err(why) => {
                counters.malformed_requests.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(topic = %self.topic, partition, offset, why, "skipping a malformed request");
                self.answered(partition, offset);
                return None;
            }
        };
        let window = i64::try_from(self.live.window_ms).unwrap_or(i64::MAX);
        let mut request = request;
        let stale = request.timestamp < now_ms().saturating_sub(window);
        let ours = *request.reply_to.topic == *self.live.reply_topic;
        if ours {
            request.mac = Some(self.live.key.mac(&request.correlation_id));
        }
        if stale || (ours && self.live.index.lock().has_reply(&request.correlation_id)) {
            counters.skipped_requests.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(topic = %self.topic, partition, offset, stale, "skipping an answered or stale request");
            self.answered(partition, offset);
            return None;
        }
        Some(request)
    }

    /// Offsets to commit: each partition's resume point where it moved.
    fn to_commit(&self) -> Vec<OffsetCommit> {
        self.progress
            .lock()
            .iter()
            .filter_map(|(&partition, p)| {
                let at = p.resume_at()?;
                (p.committed != Some(at)).then(|| OffsetCommit::new(&self.topic, partition, at))
            })
            .collect()
    }

    fn committed(&self, commits: &[OffsetCommit]) {
        let mut progress = self.progress.lock();
        for commit in commits {
            if let Some(p) = progress.get_mut(&commit.topic_partition.partition) {
                p.committed = Some(commit.offset);
            }
        }
    }
}

/// A member of a responder group: a stream of requests to answer through its [`Replier`].
///
/// Call [`Responder::next`] to get requests (it also commits progress) and
/// [`Responder::close`] to leave after a last commit. Dropping it leaves the group without
/// committing: what it had not committed goes to the other members again.
pub struct Responder {
    shared: Arc<Shared>,
    subscription: Subscription,
    queue: VecDeque<ConsumerRecord>,
    commit_tick: tokio::time::Interval,
}

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Responder")
            .field("topic", &self.shared.topic)
            .field("group", &self.shared.group)
            .field("member_id", &self.subscription.member_id())
            .finish_non_exhaustive()
    }
}

impl Responder {
    /// The next request to answer; `None` when the broker closes. Cancel-safe: a request is
    /// only taken off the queue when it is returned.
    pub async fn next(&mut self) -> Option<Result<Request>> {
        loop {
            while let Some(record) = self.queue.pop_front() {
                if let Some(request) = self.shared.admit(record) {
                    return Some(Ok(request));
                }
            }
            tokio::select! {
                event = self.subscription.next() => match event? {
                    Err(e) => return Some(Err(e)),
                    Ok(SubscriptionEvent::Batches(batches)) => match batches.records() {
                        Ok(records) => self.queue.extend(records),
                        Err(e) => return Some(Err(e)),
                    },
                    Ok(SubscriptionEvent::Assignment(assignment)) => {
                        self.assigned(&assignment.partitions);
                    }
                },
                _ = self.commit_tick.tick() => {
                    if let Err(e) = self.commit().await {
                        tracing::warn!(topic = %self.shared.topic, group = %self.shared.group,
                            error = %e, "responder commit failed; will retry");
                    }
                }
            }
        }
    }

    /// A handle that appends replies, for this or any other task.
    pub fn replier(&self) -> Replier {
        Replier {
            shared: Arc::clone(&self.shared),
        }
    }

    /// The group member id.
    pub fn member_id(&self) -> Option<&str> {
        self.subscription.member_id()
    }

    /// Commits, per partition, up to the first request not answered yet. (Not an `async fn`:
    /// the future holds no borrow of the responder, whose subscription is not `Sync`.)
    pub fn commit(&self) -> impl Future<Output = Result<()>> + Send + 'static {
        let shared = Arc::clone(&self.shared);
        async move {
            let commits = shared.to_commit();
            if commits.is_empty() {
                return Ok(());
            }
            shared
                .backend
                .commit_offsets(&shared.group, commits.clone())
                .await?;
            shared.committed(&commits);
            Ok(())
        }
    }

    /// Commits what was answered and leaves the group.
    pub async fn close(self) -> Result<()> {
        let commit = self.commit();
        drop(self);
        commit.await
    }

    /// Forgets partitions this member no longer owns: their new owner resumes from the last
    /// commit, so committing them from here could move the group backwards.
    fn assigned(&mut self, partitions: &[TopicPartition]) {
        let owned = |p: u32| partitions.iter().any(|tp| tp.partition == p);
        self.shared.progress.lock().retain(|&p, _| owned(p));
        self.queue.retain(|record| owned(record.partition));
    }
}

/// Appends replies for a [`Responder`]. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Replier {
    shared: Arc<Shared>,
}

impl Replier {
    /// Answers `request`: `Ok` with the handler's answer, `Err` with its error message (the
    /// caller gets `HandlerFailed`). An answer too large for the reply topic is replaced by an
    /// error reply saying so. Once the reply is appended (or can never be: a reply topic that
    /// is invalid or missing), the request counts as answered for the group's commits.
    pub async fn reply(
        &self,
        request: &Request,
        outcome: std::result::Result<Answer, String>,
    ) -> Result<()> {
        self.reply_with(request, outcome, true).await
    }

    /// Answers `request` as [`Replier::reply`] does, but returns once the reply is queued:
    /// on the local log what follows its append (the hand-over to the caller, the request
    /// counted as answered, a failure logged) runs where the append finishes, so the
    /// responder's task is not woken for it. `Err` when it could not be queued.
    pub(crate) async fn reply_queued(
        &self,
        request: &Request,
        outcome: std::result::Result<Answer, String>,
    ) -> Result<()> {
        self.reply_with(request, outcome, false).await
    }

    async fn reply_with(
        &self,
        request: &Request,
        outcome: std::result::Result<Answer, String>,
        wait: bool,
    ) -> Result<()> {
        let result = match self.append(request, outcome, wait).await {
            Err(e @ BrokerError::TooLarge { .. }) => {
                let message = format!("the reply could not be appended: {e}");
                self.append(request, Err(message), wait).await
            }
            other => other,
        };
        match result {
            // Queued: settled where the append finishes.
            Ok(Appended::Queued) => Ok(()),
            Ok(Appended::Done) => {
                self.shared
                    .settle(request.partition, request.offset, &Ok(()));
                Ok(())
            }
            Err(e) => {
                let result = Err(e);
                self.shared
                    .settle(request.partition, request.offset, &result);
                result
            }
        }
    }

    /// Appends the reply to `request`; with `wait` false on the local log, only queues it
    /// (see [`Replier::reply_queued`]).
    async fn append(
        &self,
        request: &Request,
        outcome: std::result::Result<Answer, String>,
        wait: bool,
    ) -> Result<Appended> {
        let reply_topic = &request.reply_to.topic;
        if **reply_topic == *self.shared.live.reply_topic && request.mac.is_none() {
            return Err(BrokerError::invalid(format!(
                "request {}-{}@{} was not delivered by this responder: a reply to it cannot \
                 be bound to its call",
                request.topic, request.partition, request.offset
            )));
        }
        let record = headers::reply_record(request, outcome);
        let live = &self.shared.live;
        // A reply to one of this broker's calls reaches its caller as soon as it is appended
        // rather than when the reply topic's reader gets to it (which then skips it). Bound to
        // its call by a MAC made for this very id, it needs no check and only what its caller
        // reads. One that is not (its request's id was changed) is left to the reader, which
        // counts it.
        let hand_over = (**reply_topic == *live.reply_topic
            && request
                .mac
                .as_ref()
                .is_some_and(|mac| mac.binds(&request.correlation_id)))
        .then(|| HandOver {
            live: Arc::clone(live),
            id: request.correlation_id.clone(),
            shown: ConsumerRecord {
                topic: Arc::clone(&live.reply_topic),
                partition: 0,
                offset: 0,
                timestamp: 0,
                key: record.key.clone(),
                value: record.value.clone(),
                headers: headers::for_caller(&record.headers),
            },
        });
        let backend = &self.shared.backend;
        match backend {
            Backend::Local(broker) if !wait => {
                let shared = Arc::clone(&self.shared);
                let (partition, offset) = (request.partition, request.offset);
                let then = move |appended: Result<crate::types::RecordPosition>| {
                    let at = appended.as_ref().ok().copied();
                    let result = appended.map(|_| ());
                    if let Err(e) = &result {
                        tracing::warn!(topic = %shared.topic, partition, offset, error = %e,
                            "could not append a reply");
                    }
                    shared.settle(partition, offset, &result);
                    // The caller is told last, once this responder's share of the broker is
                    // let go: a caller that then drops its broker leaves no handle behind.
                    drop(shared);
                    if let Some((hand_over, at)) = hand_over.zip(at) {
                        hand_over.appended(at);
                    }
                };
                broker
                    .produce_record_then(reply_topic, record, then)
                    .await?;
                Ok(Appended::Queued)
            }
            _ => {
                let at = backend.produce_one(reply_topic, record).await?;
                if let Some(hand_over) = hand_over {
                    hand_over.appended(at);
                }
                Ok(Appended::Done)
            }
        }
    }
}

/// How far [`Replier::append`] went.
enum Appended {
    /// The reply is appended (and handed over).
    Done,
    /// The reply is queued; its append's outcome is acted on where it finishes.
    Queued,
}

/// A reply to hand to its caller once appended ([`Live::reply_appended`]).
struct HandOver {
    live: Arc<Live>,
    id: super::CorrelationId,
    /// The record as its caller reads it, placed once appended.
    shown: ConsumerRecord,
}

impl HandOver {
    fn appended(self, at: crate::types::RecordPosition) {
        let record = ConsumerRecord {
            partition: at.partition,
            offset: at.offset,
            timestamp: at.timestamp,
            ..self.shown
        };
        self.live.reply_appended(&self.id, record);
        self.live.delivered(at.partition, at.offset);
    }
}

impl Broker {
    /// Joins `options.group` as a responder to `options.topic`, as [`Backend::responder`] on
    /// this broker.
    pub async fn responder(&self, options: RespondOptions) -> Result<Responder> {
        Backend::Local(self.clone()).responder(options).await
    }

    /// Answers requests on `topic` as a member of `group` with `handler`, as
    /// [`Backend::respond`] on this broker.
    pub async fn respond<H, F, E>(&self, topic: &str, group: &str, handler: H) -> Result<()>
    where
        H: Fn(Request) -> F + Send + Sync + 'static,
        F: Future<Output = std::result::Result<Answer, E>> + Send + 'static,
        E: Display + 'static,
    {
        Backend::Local(self.clone())
            .respond(topic, group, handler)
            .await
    }
}

impl Backend {
    /// Joins `options.group` as a responder to `options.topic` (created when missing and
    /// `auto_create_topics` is on). A new group starts at the topic's beginning, so calls made
    /// before any responder ran are answered (requests older than the window are skipped).
    pub async fn responder(&self, options: RespondOptions) -> Result<Responder> {
        self.check_call_topic(&options.topic)?;
        let live = self.reqreply_live().await?;
        let subscription = self
            .subscribe_group(GroupSubscribe {
                group: options.group.clone(),
                topics: vec![options.topic.clone()],
                reset: OffsetReset::Earliest,
                client_id: options.client_id,
                max_bytes: None,
                isolation: crate::Isolation::ReadCommitted,
            })
            .await?;
        let period = Duration::from_millis(self.reqreply_config().responder_commit_ms);
        let mut commit_tick =
            tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        commit_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Ok(Responder {
            shared: Arc::new(Shared {
                backend: self.clone(),
                live,
                topic: options.topic,
                group: options.group,
                progress: Mutex::new(HashMap::new()),
            }),
            subscription,
            queue: VecDeque::new(),
            commit_tick,
        })
    }

    /// Answers requests on `topic` as a member of `group` with `handler`, up to
    /// [`RESPOND_IN_FLIGHT`] at a time, until the broker closes (then `Ok`) or the subscription
    /// fails; handlers still running then are stopped (their requests stay uncommitted). A
    /// handler's `Err` becomes an error reply with its message; a handler that panics gets an
    /// error reply too. Drop the future to stop (what was not committed goes to the group's
    /// other members).
    pub async fn respond<H, F, E>(&self, topic: &str, group: &str, handler: H) -> Result<()>
    where
        H: Fn(Request) -> F + Send + Sync + 'static,
        F: Future<Output = std::result::Result<Answer, E>> + Send + 'static,
        E: Display + 'static,
    {
        let mut responder = self.responder(RespondOptions::new(topic, group)).await?;
        let replier = responder.replier();
        let handler = Arc::new(handler);
        let mut running = JoinSet::new();
        let outcome = loop {
            tokio::select! {
                next = responder.next(), if running.len() < RESPOND_IN_FLIGHT => match next {
                    None => break Ok(()),
                    Some(Err(e)) => break Err(e),
                    Some(Ok(request)) => {
                        running.spawn(answer(Arc::clone(&handler), replier.clone(), request));
                    }
                },
                Some(_) = running.join_next(), if !running.is_empty() => {}
            }
        };
        // Handlers still running could not append their replies to a closed broker, and after
        // an error the caller wants out: stop them. Their requests stay uncommitted.
        running.shutdown().await;
        let committed = responder.close().await;
        outcome.and(committed)
    }
}

/// Runs `handler` on `request` and appends its answer.
async fn answer<H, F, E>(handler: Arc<H>, replier: Replier, request: Request)
where
    H: Fn(Request) -> F,
    F: Future<Output = std::result::Result<Answer, E>>,
    E: Display,
{
    let run = AssertUnwindSafe(async { handler(request.clone()).await });
    let outcome = match run.catch_unwind().await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("the handler panicked".to_owned()),
    };
    if let Err(e) = replier.reply_queued(&request, outcome).await {
        tracing::warn!(
            topic = %request.topic, partition = request.partition, offset = request.offset,
            error = %e, "could not append a reply"
        );
    }
}
