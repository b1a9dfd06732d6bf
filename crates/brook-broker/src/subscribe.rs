//! Subscriptions: async streams of what is appended, from one partition or as a member of a
//! consumer group.
//!
//! A [`Subscription`] is a `Stream` of [`SubscriptionEvent`]s: runs of whole batches from one
//! partition (read straight from the log, at most `max_bytes` per event; a subscriber at or
//! near the end gets the batches just appended from memory, see [`crate::fetch::read`]), and
//! in group mode the member's assignment after every change. It waits on the high-watermark
//! channels of its partitions and on its group's change channel: it never polls with sleeps.
//! It runs no task of its own, so dropping it costs nothing: nothing keeps reading, nothing
//! buffers, and a group member leaves its group at once (its partitions go to the others).
//!
//! In group mode a partition is delivered by one member at a time (see [`crate::group`]): a
//! member releases a partition the next time it is polled after losing it, before it delivers
//! anything more, and only then can the new owner start, from the group's committed offset. A
//! member that is not polled for `group_release_timeout_ms` after a rebalance loses the
//! partitions it should have released (it drops them when next polled); only then can two
//! members briefly serve one partition, as with a Kafka consumer past its poll interval.
//! Delivery is at least once: records delivered but not committed before a handover are
//! delivered again by the new owner. Commit with [`Broker::commit_offsets`].

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use futures::stream::{BoxStream, Stream, StreamExt};
use tokio::sync::watch;

use crate::broker::{Broker, TopicHandle};
use crate::error::{BrokerError, Result};
use crate::fetch::{decode_records, next_offset, read};
use crate::group::Membership;
use crate::group_claim::{GroupClaim, GroupProtocol};
use crate::names::validate_group_id;
use crate::txn::Isolation;
use crate::types::{ConsumerRecord, OffsetReset, StartAt, TopicPartition};

/// One event of a [`Subscription`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscriptionEvent {
    /// Whole batches read from one partition.
    Batches(PartitionBatches),
    /// Group mode: the partitions this member now owns (the full set). Sent first, and after
    /// every change; batches of partitions not listed do not arrive any more.
    Assignment(Assignment),
}

/// A run of whole batches from one partition, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionBatches {
    pub topic: Arc<str>,
    pub partition: u32,
    /// The first offset this event delivers; the first batch may start before it (a batch is
    /// never split), and [`PartitionBatches::records`] skips those records.
    pub offset: u64,
    /// One or more whole RecordBatch v2 batches.
    pub batches: Bytes,
    /// The offset the subscription delivers next in this partition.
    pub next_offset: u64,
    /// The partition's high watermark when these were read (lag = this - `next_offset`).
    pub high_watermark: u64,
    /// A read_committed subscription: the aborted transactions with records in `batches`,
    /// which [`PartitionBatches::records`] and [`PartitionBatches::data_batches`] drop.
    pub aborted: Vec<brook_log::AbortedTxn>,
}

impl PartitionBatches {
    /// The records of the batches from [`PartitionBatches::offset`] on (never a control
    /// record, never one of an aborted transaction).
    pub fn records(&self) -> Result<Vec<ConsumerRecord>> {
        decode_records(
            &self.topic,
            self.partition,
            &self.batches,
            self.offset,
            &self.aborted,
        )
    }

    /// What a door handing raw batches to applications sends: the batches without control
    /// batches and, read_committed, aborted transactions' batches (the same bytes when nothing
    /// is dropped).
    pub fn data_batches(&self) -> Bytes {
        crate::fetch::data_batches(&self.batches, &self.aborted)
    }
}

/// A group member's partitions after a rebalance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub group: String,
    pub member_id: String,
    /// The group's generation; grows at every rebalance.
    pub generation: u64,
    /// Every partition this member owns now, sorted.
    pub partitions: Vec<TopicPartition>,
}

/// Subscribe to one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PartitionSubscribe {
    pub topic: String,
    pub partition: u32,
    pub start: StartAt,
    /// Bytes of batches behind one event at most (a batch larger than this still comes whole).
    /// `None`: the broker's `subscribe_read_bytes`.
    pub max_bytes: Option<usize>,
    /// What transactions show: read_committed (the default) delivers only settled records,
    /// none of aborted transactions, and starts `Latest` at the last stable offset.
    pub isolation: Isolation,
}

impl PartitionSubscribe {
    pub fn new(topic: impl Into<String>, partition: u32, start: StartAt) -> Self {
        Self {
            topic: topic.into(),
            partition,
            start,
            max_bytes: None,
            isolation: Isolation::default(),
        }
    }
}

/// Subscribe as a member of a consumer group.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupSubscribe {
    pub group: String,
    pub topics: Vec<String>,
    /// Where to start a partition without a committed offset (or whose committed offset is no
    /// longer in the log).
    pub reset: OffsetReset,
    /// Who the member is, for `describe_group` (a gRPC door passes the peer address).
    pub client_id: String,
    /// As [`PartitionSubscribe::max_bytes`].
    pub max_bytes: Option<usize>,
    /// As [`PartitionSubscribe::isolation`].
    pub isolation: Isolation,
}

impl GroupSubscribe {
    pub fn new(group: impl Into<String>, topics: Vec<String>) -> Self {
        Self {
            group: group.into(),
            topics,
            reset: OffsetReset::default(),
            client_id: "embedded".to_owned(),
            max_bytes: None,
            isolation: Isolation::default(),
        }
    }

    /// The topics, sorted and without repeats, once each name is checked: at least one.
    pub fn checked_topics(&self) -> Result<Vec<String>> {
        let mut topics = self.topics.clone();
        topics.sort();
        topics.dedup();
        if topics.is_empty() {
            return Err(BrokerError::invalid(
                "a group subscription needs at least one topic",
            ));
        }
        for topic in &topics {
            crate::names::validate_topic_name(topic)?;
        }
        Ok(topics)
    }
}

/// An open subscription: a `Stream` of events. Drop it to stop (and to leave its group).
pub struct Subscription {
    member_id: Option<String>,
    events: BoxStream<'static, Result<SubscriptionEvent>>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("member_id", &self.member_id)
            .finish_non_exhaustive()
    }
}

impl Subscription {
    /// A subscription whose events come from elsewhere than this broker's log (a backend
    /// serving a Kafka cluster): the doors read the same type either way.
    pub fn from_events(
        member_id: Option<String>,
        events: BoxStream<'static, Result<SubscriptionEvent>>,
    ) -> Self {
        Self { member_id, events }
    }

    /// The member id in group mode.
    pub fn member_id(&self) -> Option<&str> {
        self.member_id.as_deref()
    }

    /// The subscription as a stream of records (assignment events dropped, batches decoded).
    pub fn records(self) -> BoxStream<'static, Result<ConsumerRecord>> {
        self.flat_map(|event| {
            let items: Vec<Result<ConsumerRecord>> = match event {
                Ok(SubscriptionEvent::Batches(batches)) => match batches.records() {
                    Ok(records) => records.into_iter().map(Ok).collect(),
                    Err(e) => vec![Err(e)],
                },
                Ok(SubscriptionEvent::Assignment(_)) => Vec::new(),
                Err(e) => vec![Err(e)],
            };
            futures::stream::iter(items)
        })
        .boxed()
    }
}

impl Stream for Subscription {
    type Item = Result<SubscriptionEvent>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.events.poll_next_unpin(cx)
    }
}

/// A read position in one partition.
struct Cursor {
    topic: Arc<TopicHandle>,
    partition: u32,
    position: u64,
    /// What the cursor may read.
    isolation: Isolation,
    /// The end of that (high watermark or last stable offset): what the cursor waits on.
    hw: watch::Receiver<u64>,
}

impl Cursor {
    fn new(
        topic: Arc<TopicHandle>,
        partition: u32,
        position: u64,
        isolation: Isolation,
    ) -> Result<Self> {
        let hw = topic
            .partition(partition)?
            .end_channel(isolation)
            .subscribe();
        Ok(Self {
            topic,
            partition,
            position,
            isolation,
            hw,
        })
    }

    fn topic_partition(&self) -> TopicPartition {
        TopicPartition::new(self.topic.name.to_string(), self.partition)
    }

    /// Reads the batches after the position, if any; `Ok(None)` at the end of what the cursor
    /// may read.
    async fn read(&mut self, max_bytes: usize) -> Result<Option<PartitionBatches>> {
        if self.topic.is_deleted() {
            return Err(BrokerError::UnknownTopic {
                topic: self.topic.name.to_string(),
            });
        }
        // Marked seen before looking, so an append after the look wakes the next wait.
        self.hw.borrow_and_update();
        let handle = self.topic.partition(self.partition)?;
        let log = &handle.log;
        let high_watermark = log.high_watermark();
        let end = handle.readable_end(self.isolation);
        if self.position >= end {
            return Ok(None);
        }
        let (offset, partition) = (self.position, self.partition);
        let batches = read(handle, &self.topic.name, partition, offset, max_bytes, end).await?;
        let Some(next) = next_offset(&batches) else {
            return Ok(None);
        };
        self.position = next;
        let aborted = match self.isolation {
            Isolation::ReadCommitted => log.aborted_transactions(offset, next),
            Isolation::ReadUncommitted => Vec::new(),
        };
        Ok(Some(PartitionBatches {
            topic: Arc::clone(&self.topic.name),
            partition,
            offset,
            batches,
            next_offset: next,
            high_watermark,
            aborted,
        }))
    }
}

/// Waits until `shutdown` turns true (forever if it never does).
async fn closed(shutdown: &mut watch::Receiver<bool>) {
    // An error means the broker is gone, which also ends the wait.
    let _ = shutdown.wait_for(|closed| *closed).await;
}

impl Broker {
    /// Streams one partition from `start`. `StartAt::Offset` must lie within the log
    /// (`OffsetOutOfRange` otherwise); `StartAt::Committed` reads the group's committed offset
    /// without joining the group. The stream ends after an error (its last item) or when the
    /// broker closes; it ends with `UnknownTopic` when the topic is deleted.
    pub async fn subscribe(&self, request: PartitionSubscribe) -> Result<Subscription> {
        let max_bytes = self
            .inner
            .config
            .limits
            .subscribe_bytes(request.max_bytes)?;
        let topic = self.topic(&request.topic)?;
        let target = topic.partition(request.partition)?;
        let (start, end) = (target.log.log_start_offset(), target.log.high_watermark());
        let position = match request.start {
            StartAt::Earliest => start,
            StartAt::Latest => target.readable_end(request.isolation),
            StartAt::Offset(offset) if (start..=end).contains(&offset) => offset,
            StartAt::Offset(offset) => {
                return Err(BrokerError::OffsetOutOfRange {
                    topic: request.topic,
                    partition: request.partition,
                    offset,
                    log_start_offset: start,
                    high_watermark: end,
                })
            }
            StartAt::Committed { group, reset } => {
                validate_group_id(&group)?;
                let tp = TopicPartition::new(request.topic.clone(), request.partition);
                self.start_position(&group, &tp, &topic, reset, request.isolation)?
            }
        };
        let state = PartitionStream {
            cursor: Cursor::new(topic, request.partition, position, request.isolation)?,
            max_bytes,
            shutdown: self.shutdown_signal(),
            done: false,
            _broker: self.clone(),
        };
        let events = futures::stream::unfold(state, |mut state| async move {
            let item = state.next().await?;
            Some((item, state))
        });
        Ok(Subscription {
            member_id: None,
            events: events.boxed(),
        })
    }

    /// Joins `request.group` as a new member subscribed to `request.topics` (created when
    /// missing and `auto_create_topics` is on) and streams the partitions the group assigns it.
    /// The group rebalances now, and again when this subscription is dropped.
    /// `GroupInUse` while the group id has live Kafka members.
    pub async fn subscribe_group(&self, request: GroupSubscribe) -> Result<Subscription> {
        validate_group_id(&request.group)?;
        self.inner.offsets.check()?;
        let max_bytes = self
            .inner
            .config
            .limits
            .subscribe_bytes(request.max_bytes)?;
        let topics = request.checked_topics()?;
        // Before any topic is created: a refused subscription changes nothing.
        let claim = self.claim_group(&request.group, GroupProtocol::Brook)?;
        for topic in &topics {
            self.topic_or_create(topic).await?;
        }
        let membership = self
            .inner
            .groups
            .join(&request.group, &request.client_id, topics, &|t| {
                self.partition_count(t)
            });
        let member_id = membership.member_id.clone();
        let state = GroupStream {
            member: MemberGuard {
                broker: self.clone(),
                membership,
                _claim: claim,
            },
            reset: request.reset,
            isolation: request.isolation,
            max_bytes,
            shutdown: self.shutdown_signal(),
            cursors: Vec::new(),
            owned: None,
            generation: 0,
            steal_at: None,
            next: 0,
        };
        let events = futures::stream::unfold(state, |mut state| async move {
            let item = state.next().await?;
            Some((item, state))
        });
        Ok(Subscription {
            member_id: Some(member_id),
            events: events.boxed(),
        })
    }

    /// Where `group` resumes in `tp`: its committed offset while that is still in the log,
    /// else the log start or the end a reader with `isolation` sees per `reset`.
    fn start_position(
        &self,
        group: &str,
        tp: &TopicPartition,
        topic: &TopicHandle,
        reset: OffsetReset,
        isolation: Isolation,
    ) -> Result<u64> {
        let Ok(target) = topic.partition(tp.partition) else {
            return Ok(0);
        };
        let (start, end) = (target.log.log_start_offset(), target.log.high_watermark());
        Ok(match self.inner.offsets.get(group, tp)? {
            Some(committed) if (start..=end).contains(&committed.offset) => committed.offset,
            _ => match reset {
                OffsetReset::Earliest => start,
                OffsetReset::Latest => target.readable_end(isolation),
            },
        })
    }
}

/// The state of a single-partition subscription.
struct PartitionStream {
    cursor: Cursor,
    max_bytes: usize,
    shutdown: watch::Receiver<bool>,
    done: bool,
    /// Keeps the broker (and an ephemeral directory) alive while the stream is.
    _broker: Broker,
}

impl PartitionStream {
    async fn next(&mut self) -> Option<Result<SubscriptionEvent>> {
        loop {
            if self.done || *self.shutdown.borrow() {
                return None;
            }
            match self.cursor.read(self.max_bytes).await {
                Ok(Some(batches)) => return Some(Ok(SubscriptionEvent::Batches(batches))),
                Ok(None) => {}
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
            tokio::select! {
                _ = self.cursor.hw.changed() => {}
                () = closed(&mut self.shutdown) => {}
            }
        }
    }
}

/// A group member; leaving the group when dropped.
struct MemberGuard {
    broker: Broker,
    membership: Membership,
    /// Dropped after `drop` has left the group.
    _claim: GroupClaim,
}

impl Drop for MemberGuard {
    fn drop(&mut self) {
        let broker = &self.broker;
        broker
            .inner
            .groups
            .leave(&self.membership.group, &self.membership.member_id, &|t| {
                broker.partition_count(t)
            });
    }
}

/// The state of a group subscription.
struct GroupStream {
    member: MemberGuard,
    reset: OffsetReset,
    isolation: Isolation,
    max_bytes: usize,
    shutdown: watch::Receiver<bool>,
    /// One per owned partition, sorted.
    cursors: Vec<Cursor>,
    /// What the last assignment event said; `None` before the first.
    owned: Option<Vec<TopicPartition>>,
    generation: u64,
    /// When to take assigned partitions that another member has not released yet.
    steal_at: Option<Instant>,
    /// Where the round-robin over `cursors` resumes, so no partition starves the others.
    next: usize,
}

impl GroupStream {
    async fn next(&mut self) -> Option<Result<SubscriptionEvent>> {
        loop {
            if *self.shutdown.borrow() {
                return None;
            }
            let changed = self.member.membership.changes.has_changed().unwrap_or(true);
            let overdue = self.steal_at.is_some_and(|at| Instant::now() >= at);
            if changed || overdue || self.owned.is_none() {
                self.member.membership.changes.borrow_and_update();
                if let Some(event) = self.settle()? {
                    return Some(Ok(event));
                }
            }
            if let Some(batches) = self.read_any().await {
                return Some(batches.map(SubscriptionEvent::Batches));
            }
            let hw_changes = if self.cursors.is_empty() {
                futures::future::Either::Left(futures::future::pending())
            } else {
                futures::future::Either::Right(futures::future::select_all(
                    self.cursors.iter_mut().map(|c| Box::pin(c.hw.changed())),
                ))
            };
            let steal = match self.steal_at {
                Some(at) => futures::future::Either::Left(tokio::time::sleep_until(at.into())),
                None => futures::future::Either::Right(futures::future::pending()),
            };
            tokio::select! {
                _ = hw_changes => {}
                _ = self.member.membership.changes.changed() => {
                    // `changed` marked the news seen: mark it unseen again, so the top of the
                    // loop settles (and releases what this member lost) instead of missing it.
                    self.member.membership.changes.mark_changed();
                }
                () = steal => {}
                () = closed(&mut self.shutdown) => {}
            }
        }
    }

    /// Settles ownership with the coordinator and adjusts the cursors. Returns the assignment
    /// event to send when what this member owns changed; `None` (outer) when it is no longer a
    /// member.
    fn settle(&mut self) -> Option<Option<SubscriptionEvent>> {
        let broker = &self.member.broker;
        let membership = &self.member.membership;
        let settled = broker.inner.groups.sync(
            &membership.group,
            &membership.member_id,
            broker.inner.config.group_release_timeout(),
        )?;
        self.steal_at = settled.wait_until;
        let (generation, owned) = (settled.generation, settled.owned);
        if self.owned.as_ref() == Some(&owned) && self.generation == generation {
            return Some(None);
        }
        let mut kept: Vec<Cursor> = std::mem::take(&mut self.cursors)
            .into_iter()
            .filter(|c| owned.contains(&c.topic_partition()))
            .collect();
        for tp in &owned {
            if kept.iter().any(|c| &c.topic_partition() == tp) {
                continue;
            }
            // A topic deleted in the meantime is skipped; the next rebalance drops it.
            let Ok(topic) = broker.topic(&tp.topic) else {
                continue;
            };
            // Committed offsets fenced since the subscription began: the partition waits.
            let Ok(position) =
                broker.start_position(&membership.group, tp, &topic, self.reset, self.isolation)
            else {
                continue;
            };
            if let Ok(cursor) = Cursor::new(topic, tp.partition, position, self.isolation) {
                kept.push(cursor);
            }
        }
        kept.sort_by_key(Cursor::topic_partition);
        self.cursors = kept;
        self.generation = generation;
        self.owned = Some(owned.clone());
        Some(Some(SubscriptionEvent::Assignment(Assignment {
            group: membership.group.clone(),
            member_id: membership.member_id.clone(),
            generation,
            partitions: owned,
        })))
    }

    /// Reads from the first owned partition with data, round-robin. `None` when none has.
    async fn read_any(&mut self) -> Option<Result<PartitionBatches>> {
        let count = self.cursors.len();
        for step in 0..count {
            let i = (self.next + step) % count;
            let cursor = &mut self.cursors[i];
            match cursor.read(self.max_bytes).await {
                Ok(Some(batches)) => {
                    self.next = i + 1;
                    return Some(Ok(batches));
                }
                Ok(None) => {}
                // Fell out of the log (retention): start over per the reset policy.
                Err(BrokerError::OffsetOutOfRange {
                    log_start_offset,
                    high_watermark,
                    ..
                }) => {
                    cursor.position = match self.reset {
                        OffsetReset::Earliest => log_start_offset,
                        OffsetReset::Latest => high_watermark,
                    };
                    // Read from the new position at once rather than at the next append.
                    cursor.hw.mark_changed();
                }
                // Deleted: the rebalance that follows drops the partition.
                Err(BrokerError::UnknownTopic { .. }) => {}
                Err(e) => return Some(Err(e)),
            }
        }
        None
    }
}
