//! A consumer: records as a [`futures::Stream`], from chosen partitions or as a member of a
//! consumer group, with automatic or explicit commits.
//!
//! - [`Consumer::subscribe`] joins the configured group over some topics (a `Subscribe` in
//!   group mode): the server splits the topics' partitions among the group's open streams and
//!   rebalances when one opens or closes; each partition starts at the group's committed
//!   offset, else at [`ConsumerConfig::reset`].
//! - [`Consumer::assign`] reads exactly the partitions given, from where each is told to start
//!   (one `Subscribe` per partition, merged into one stream).
//!
//! The stream remembers, per partition, the offset after the last record it handed out: its
//! *position*. [`RecordStream::commit`] commits the positions to the group; with
//! [`ConsumerConfig::auto_commit_interval_ms`] set (the default), the stream also commits them
//! on that interval while it is polled, when its group loses a partition, and in
//! [`RecordStream::close`]. Commits run one after another, so an older commit never lands
//! after a newer one. Delivery is at-least-once: records handed out after the last commit come
//! again to whoever owns the partition next.
//!
//! Dropping the stream ends the subscription (and the group membership) at once, without a
//! final commit; [`RecordStream::close`] commits first.
//!
//! Records arrive as the stored batches (`RECORD_FORMAT_RAW_BATCHES`) and are decoded one at
//! a time as the stream is polled (module `crate::batch`, the codec of `brook-batch`): a
//! record's key and value are slices of the bytes the server sent; a compressed batch (written
//! so by a Kafka producer) is inflated here once, with the same bound on its size as the log's.

use std::collections::{BTreeMap, VecDeque};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use brook_proto::v1;
use futures::stream::{BoxStream, SelectAll};
use futures::{Stream, StreamExt};
use tokio::task::JoinHandle;
use tokio::time::{Interval, MissedTickBehavior};

use crate::batch;
use crate::client::Client;
use crate::error::{ClientError, Result};
use crate::record::{expand, ConsumerRecord, TopicPartition};

/// Where a partition starts when its group has no committed offset (Kafka's
/// `auto.offset.reset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OffsetReset {
    /// The first retained offset: everything in the log.
    Earliest,
    /// The end of the log: only records produced from now on.
    #[default]
    Latest,
}

/// Where an assigned partition starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    Earliest,
    Latest,
    /// An exact offset (between the log start offset and the high watermark).
    Offset(u64),
}

/// How a [`Consumer`] reads and commits.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConsumerConfig {
    /// The consumer group: needed by [`Consumer::subscribe`] and by commits.
    pub group: Option<String>,
    /// Where a group partition without a committed offset starts. Default latest.
    pub reset: OffsetReset,
    /// Commit positions this often while the stream is polled, in ms (Kafka's
    /// `auto.commit.interval.ms`); `None`: only explicit commits. Default 5000; from 1 to
    /// 3 600 000. Has no effect without a group.
    pub auto_commit_interval_ms: Option<u64>,
    /// Upper bound on the bytes behind one streamed message; 0: the server's default (1 MiB).
    pub read_bytes_max: u32,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            group: None,
            reset: OffsetReset::default(),
            auto_commit_interval_ms: Some(5_000),
            read_bytes_max: 0,
        }
    }
}

impl ConsumerConfig {
    /// The defaults, in `group`.
    pub fn group(group: impl Into<String>) -> Self {
        ConsumerConfig {
            group: Some(group.into()),
            ..Self::default()
        }
    }
}

const AUTO_COMMIT_INTERVAL_MS_MAX: u64 = 3_600_000;

/// The partitions a group member owns after a rebalance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub group: String,
    pub member_id: String,
    /// Grows by one at every rebalance of the group.
    pub generation: u64,
    /// Every partition this member now owns.
    pub partitions: Vec<TopicPartition>,
}

/// What a [`RecordStream`] yields through [`RecordStream::next_event`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsumerEvent {
    Record(ConsumerRecord),
    /// Group mode: the member's partitions changed (sent first, and after each rebalance).
    Assignment(Assignment),
}

/// Opens record streams; see the module docs.
#[derive(Debug, Clone)]
pub struct Consumer {
    client: Client,
    config: ConsumerConfig,
}

impl Consumer {
    pub(crate) fn new(client: Client, config: ConsumerConfig) -> Result<Consumer> {
        if let Some(ms) = config.auto_commit_interval_ms {
            if !(1..=AUTO_COMMIT_INTERVAL_MS_MAX).contains(&ms) {
                return Err(ClientError::InvalidConfig {
                    setting: "auto_commit_interval_ms",
                    reason: format!("{ms} is outside 1..={AUTO_COMMIT_INTERVAL_MS_MAX}"),
                });
            }
        }
        Ok(Consumer { client, config })
    }

    /// Joins the configured group over `topics`.
    pub async fn subscribe<I, S>(&self, topics: I) -> Result<RecordStream>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let group = self.config.group.clone().ok_or_else(|| {
            ClientError::invalid_request("subscribe needs a consumer group (ConsumerConfig::group)")
        })?;
        let reset = match self.config.reset {
            OffsetReset::Earliest => v1::StartPosition::Earliest,
            OffsetReset::Latest => v1::StartPosition::Latest,
        };
        let target = v1::subscribe_request::Target::Group(v1::GroupTarget {
            group_id: group,
            topics: topics.into_iter().map(Into::into).collect(),
            reset: reset.into(),
        });
        let events = self.open(target).await?;
        Ok(self.stream(vec![events]))
    }

    /// Reads exactly `partitions`, each from its start.
    pub async fn assign(&self, partitions: Vec<(TopicPartition, StartAt)>) -> Result<RecordStream> {
        if partitions.is_empty() {
            return Err(ClientError::invalid_request(
                "assign needs at least one partition",
            ));
        }
        let mut streams = Vec::with_capacity(partitions.len());
        for (tp, start) in partitions {
            let start = match start {
                StartAt::Offset(offset) => v1::partition_target::Start::Offset(offset),
                StartAt::Earliest => {
                    v1::partition_target::Start::Position(v1::StartPosition::Earliest.into())
                }
                StartAt::Latest => {
                    v1::partition_target::Start::Position(v1::StartPosition::Latest.into())
                }
            };
            let target = v1::subscribe_request::Target::Partition(v1::PartitionTarget {
                topic: tp.topic.to_string(),
                partition: tp.partition,
                start: Some(start),
            });
            streams.push(self.open(target).await?);
        }
        Ok(self.stream(streams))
    }

    async fn open(&self, target: v1::subscribe_request::Target) -> Result<Events> {
        let request = v1::SubscribeRequest {
            target: Some(target),
            format: v1::RecordFormat::RawBatches.into(),
            max_bytes: self.config.read_bytes_max,
            // Committed records only: an open transaction's and an aborted one's never show.
            isolation: v1::Isolation::ReadCommitted.into(),
        };
        let response = self
            .client
            .grpc()
            .subscribe(request)
            .await
            .map_err(|status| ClientError::rpc("subscribe", status))?;
        Ok(response.into_inner().boxed())
    }

    fn stream(&self, events: Vec<Events>) -> RecordStream {
        let auto_commit = match (&self.config.group, self.config.auto_commit_interval_ms) {
            (Some(_), Some(ms)) => {
                let period = Duration::from_millis(ms);
                let mut interval =
                    tokio::time::interval_at(tokio::time::Instant::now() + period, period);
                interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
                Some(interval)
            }
            _ => None,
        };
        RecordStream {
            client: self.client.clone(),
            group: self.config.group.clone(),
            events: futures::stream::select_all(events),
            buffered: VecDeque::new(),
            decoded: VecDeque::new(),
            positions: BTreeMap::new(),
            committed: Arc::default(),
            commit_task: None,
            auto_commit,
            assignment: None,
            ended: false,
        }
    }
}

type Events = BoxStream<'static, Result<v1::SubscribeResponse, tonic::Status>>;
type Positions = BTreeMap<TopicPartition, u64>;

/// The batches of one event, read a record at a time.
#[derive(Debug)]
struct Run {
    tp: TopicPartition,
    records: batch::Records,
    /// Where the partition's position moves once every record of the run is handed out (past
    /// any records the server did not send: transaction markers, aborted transactions).
    next_offset: u64,
}

/// What the front of the buffer gave.
enum Step {
    Record(ConsumerRecord),
    Failed(ClientError),
    Empty,
}

/// Records from a [`Consumer`]; a [`Stream`] of `Result<ConsumerRecord>` that ends after an
/// error or when the server ends the subscription.
pub struct RecordStream {
    client: Client,
    group: Option<String>,
    events: SelectAll<Events>,
    /// Batches received whose records are not all handed out yet.
    buffered: VecDeque<Run>,
    /// Records a server sent decoded, each with the position it moves to; handed out before
    /// the batches of the same event.
    decoded: VecDeque<(ConsumerRecord, u64)>,
    positions: Positions,
    /// What was last committed successfully; written by commit tasks, so behind a lock (held
    /// for a map update, never across an await).
    committed: Arc<Mutex<Positions>>,
    /// The latest commit; the next one waits for it, so commits land in order.
    commit_task: Option<JoinHandle<()>>,
    auto_commit: Option<Interval>,
    assignment: Option<Assignment>,
    ended: bool,
}

impl std::fmt::Debug for RecordStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordStream")
            .field("group", &self.group)
            .field("positions", &self.positions)
            .field("assignment", &self.assignment)
            .finish_non_exhaustive()
    }
}

impl RecordStream {
    /// The next record or assignment change; `None` when the stream has ended.
    pub async fn next_event(&mut self) -> Option<Result<ConsumerEvent>> {
        futures::future::poll_fn(|cx| self.poll_event(cx)).await
    }

    /// The offset after the last record handed out, per partition.
    pub fn positions(&self) -> &BTreeMap<TopicPartition, u64> {
        &self.positions
    }

    /// Group mode: the partitions this member owns now (`None` before the first assignment).
    pub fn assignment(&self) -> Option<&Assignment> {
        self.assignment.as_ref()
    }

    /// Commits the positions of every record handed out so far (after any commit already
    /// running). Needs a group.
    pub async fn commit(&mut self) -> Result<()> {
        let group = self.group.clone().ok_or_else(|| {
            ClientError::invalid_request("commit needs a consumer group (ConsumerConfig::group)")
        })?;
        if let Some(previous) = self.commit_task.take() {
            // Only waits for order; a failed earlier commit is covered by this one.
            let _ = previous.await;
        }
        let dirty = self.uncommitted();
        commit(&self.client, &group, dirty, &self.committed).await
    }

    /// Commits (when auto-commit is on), then ends the subscription.
    pub async fn close(mut self) -> Result<()> {
        if self.auto_commit.is_some() {
            self.commit().await?;
        }
        Ok(())
    }

    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<ConsumerEvent>>> {
        self.poll_auto_commit(cx);
        loop {
            if let Some((record, position)) = self.decoded.pop_front() {
                let tp = TopicPartition::new(Arc::clone(&record.topic), record.partition);
                self.positions.insert(tp, position);
                return Poll::Ready(Some(Ok(ConsumerEvent::Record(record))));
            }
            match self.take_buffered() {
                Step::Record(record) => {
                    return Poll::Ready(Some(Ok(ConsumerEvent::Record(record))))
                }
                Step::Failed(error) => {
                    self.ended = true;
                    self.buffered.clear();
                    return Poll::Ready(Some(Err(error)));
                }
                Step::Empty => {}
            }
            if self.ended {
                return Poll::Ready(None);
            }
            let event = match ready!(self.events.poll_next_unpin(cx)) {
                Some(Ok(response)) => response.event,
                Some(Err(status)) => {
                    self.ended = true;
                    return Poll::Ready(Some(Err(ClientError::rpc("subscribe", status))));
                }
                None => {
                    self.ended = true;
                    return Poll::Ready(None);
                }
            };
            match event {
                Some(v1::subscribe_response::Event::Records(records)) => self.buffer(records),
                Some(v1::subscribe_response::Event::Assignment(assignment)) => {
                    let assignment = Assignment {
                        group: assignment.group_id,
                        member_id: assignment.member_id,
                        generation: assignment.generation,
                        partitions: expand(assignment.assigned),
                    };
                    self.on_assignment(&assignment);
                    return Poll::Ready(Some(Ok(ConsumerEvent::Assignment(assignment))));
                }
                None => {
                    self.ended = true;
                    let error = ClientError::protocol("subscribe", "an event with no content");
                    return Poll::Ready(Some(Err(error)));
                }
            }
        }
    }

    fn buffer(&mut self, event: v1::RecordsEvent) {
        let tp = TopicPartition::new(event.topic, event.partition);
        // A server that decodes anyway (or an older one) may send records: the same rules.
        let count = event.records.len();
        for (i, record) in event.records.into_iter().enumerate() {
            let position = if i + 1 == count {
                event.next_offset.max(record.offset + 1)
            } else {
                record.offset + 1
            };
            let record = ConsumerRecord::from_wire(&tp.topic, tp.partition, record);
            self.decoded.push_back((record, position));
        }
        let records = batch::Records::new(
            Arc::clone(&tp.topic),
            tp.partition,
            event.raw_batches,
            event.first_offset,
        );
        self.buffered.push_back(Run {
            tp,
            records,
            next_offset: event.next_offset,
        });
    }

    /// Decodes the next record of the oldest run (moving its partition's position).
    fn take_buffered(&mut self) -> Step {
        while let Some(run) = self.buffered.front_mut() {
            match run.records.next_record() {
                Ok(Some(record)) => {
                    // After a run's last record, the position is the server's next offset.
                    let position = if run.records.is_exhausted() {
                        run.next_offset.max(record.offset + 1)
                    } else {
                        record.offset + 1
                    };
                    self.positions.insert(run.tp.clone(), position);
                    return Step::Record(record);
                }
                Ok(None) => {
                    let tp = run.tp.clone();
                    let next_offset = run.next_offset;
                    self.buffered.pop_front();
                    let position = self.positions.entry(tp).or_insert(next_offset);
                    *position = (*position).max(next_offset);
                }
                Err(reason) => {
                    let error = ClientError::protocol(
                        "subscribe",
                        format!("damaged data from {}: {reason}", run.tp),
                    );
                    return Step::Failed(error);
                }
            }
        }
        Step::Empty
    }

    /// Commits what this member consumed of the partitions it just lost, so their next owner
    /// starts where it stopped, and forgets them.
    fn on_assignment(&mut self, assignment: &Assignment) {
        let owned = |tp: &TopicPartition| assignment.partitions.contains(tp);
        let revoked: Positions = self
            .uncommitted()
            .into_iter()
            .filter(|(tp, _)| !owned(tp))
            .collect();
        if self.auto_commit.is_some() && !revoked.is_empty() {
            self.spawn_commit(revoked);
        }
        self.positions.retain(|tp, _| owned(tp));
        self.assignment = Some(assignment.clone());
    }

    fn poll_auto_commit(&mut self, cx: &mut Context<'_>) {
        let Some(interval) = self.auto_commit.as_mut() else {
            return;
        };
        let mut due = false;
        // Polled to Pending, so the timer wakes this stream even when no record arrives.
        while interval.poll_tick(cx).is_ready() {
            due = true;
        }
        if due {
            let dirty = self.uncommitted();
            if !dirty.is_empty() {
                self.spawn_commit(dirty);
            }
        }
    }

    fn spawn_commit(&mut self, offsets: Positions) {
        let Some(group) = self.group.clone() else {
            return;
        };
        let previous = self.commit_task.take();
        let client = self.client.clone();
        let committed = Arc::clone(&self.committed);
        self.commit_task = Some(tokio::spawn(async move {
            if let Some(previous) = previous {
                // Only waits for order; a failed earlier commit is covered by this one.
                let _ = previous.await;
            }
            if let Err(error) = commit(&client, &group, offsets, &committed).await {
                tracing::warn!(%group, %error, "automatic commit failed; retrying at the next interval");
            }
        }));
    }

    /// Positions that differ from what was last committed.
    fn uncommitted(&self) -> Positions {
        let committed = self
            .committed
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.positions
            .iter()
            .filter(|(tp, offset)| committed.get(*tp) != Some(*offset))
            .map(|(tp, offset)| (tp.clone(), *offset))
            .collect()
    }
}

impl Stream for RecordStream {
    type Item = Result<ConsumerRecord>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            return match ready!(this.poll_event(cx)) {
                Some(Ok(ConsumerEvent::Assignment(_))) => continue,
                Some(Ok(ConsumerEvent::Record(record))) => Poll::Ready(Some(Ok(record))),
                Some(Err(error)) => Poll::Ready(Some(Err(error))),
                None => Poll::Ready(None),
            };
        }
    }
}

/// Commits `offsets` for `group` and records them as committed.
async fn commit(
    client: &Client,
    group: &str,
    offsets: Positions,
    committed: &Mutex<Positions>,
) -> Result<()> {
    if offsets.is_empty() {
        return Ok(());
    }
    let request = offsets
        .iter()
        .map(|(tp, offset)| v1::OffsetCommit {
            topic: tp.topic.to_string(),
            partition: tp.partition,
            offset: *offset,
            metadata: String::new(),
        })
        .collect();
    client.admin().commit_offsets(group, request).await?;
    committed
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .extend(offsets);
    Ok(())
}
