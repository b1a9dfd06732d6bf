//! Subscriptions on the cluster: one partition from a position, or membership of a consumer
//! group coordinated by the cluster.
//!
//! Each subscription is a librdkafka consumer of its own, read through the broker's
//! [`Subscription`] type: runs of records of one partition as batches ([`crate::encode`]) and,
//! in group mode, an [`Assignment`] after every rebalance (the group's coordinator is the
//! cluster's, Kafka's classic protocol with the range assignor; the member id is the one the
//! cluster gave). It reads only when polled; dropping it closes the consumer on the blocking
//! pool (a group member leaves its group), and a commit of the same group waits for that to
//! finish, so it is not refused as coming from outside a live generation.
//!
//! A run's `high_watermark` is the next offset to deliver: librdkafka does not tell a consumer
//! the partition's high watermark without asking the cluster.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use brook_broker::{
    Assignment, BrokerError, ConsumerRecord, GroupSubscribe, OffsetReset, PartitionBatches,
    PartitionSubscribe, Result, StartAt, Subscription, SubscriptionEvent, TopicPartition,
};
use futures::FutureExt;
use parking_lot::Mutex;
use rdkafka::consumer::{
    BaseConsumer, Consumer, ConsumerContext, DefaultConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::ClientContext;
use tokio::sync::{mpsc, watch};

use crate::cluster::KafkaCluster;
use crate::encode;
use crate::error::{ConfigError, Context};

/// Group members closing, by group: a commit of the group waits for them.
pub(crate) type Closing = Mutex<HashMap<String, Vec<watch::Receiver<bool>>>>;

/// Hands a group consumer's rebalances to its subscription.
pub(crate) struct MemberContext {
    assigned: mpsc::UnboundedSender<Vec<TopicPartition>>,
}

impl ClientContext for MemberContext {}

impl ConsumerContext for MemberContext {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let owned = match rebalance {
            Rebalance::Assign(tpl) => partitions(tpl),
            Rebalance::Revoke(_) => Vec::new(),
            Rebalance::Error(e) => {
                tracing::warn!(error = %e, "a rebalance on the cluster failed");
                return;
            }
        };
        // A subscription already gone does not need to hear of it.
        let _ = self.assigned.send(owned);
    }
}

/// The partitions of `tpl`, sorted.
fn partitions(tpl: &TopicPartitionList) -> Vec<TopicPartition> {
    let mut owned: Vec<TopicPartition> = tpl
        .elements()
        .iter()
        .map(|e| TopicPartition::new(e.topic(), u32::try_from(e.partition()).unwrap_or_default()))
        .collect();
    owned.sort();
    owned
}

/// A group member of this process: its consumer, for commits in its generation.
pub(crate) struct Member {
    pub(crate) group: String,
    /// Unique per member: how the member finds its id in the group's description.
    client_id: String,
    pub(crate) consumer: Option<Arc<StreamConsumer<MemberContext>>>,
    closing: Arc<Closing>,
}

impl Drop for Member {
    fn drop(&mut self) {
        let Some(consumer) = self.consumer.take() else {
            return;
        };
        let (closed, wait) = watch::channel(false);
        self.closing
            .lock()
            .entry(self.group.clone())
            .or_default()
            .push(wait);
        close_later(move || {
            drop(consumer);
            let _ = closed.send(true);
        });
    }
}

/// Runs `close` (a consumer's close, which blocks until it has left its group) on the
/// blocking pool, or here when there is no runtime.
fn close_later(close: impl FnOnce() + Send + 'static) {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn_blocking(close);
        }
        Err(_) => close(),
    }
}

/// A consumer outside any group, closed off the async workers when dropped.
struct Reader(Option<StreamConsumer<DefaultConsumerContext>>);

impl Drop for Reader {
    fn drop(&mut self) {
        if let Some(consumer) = self.0.take() {
            close_later(move || drop(consumer));
        }
    }
}

/// Where a subscription reads from: a consumer outside any group, or a member.
enum Source {
    Partition(Reader),
    Group {
        member: Arc<Member>,
        assigned: mpsc::UnboundedReceiver<Vec<TopicPartition>>,
        generation: u64,
    },
}

/// What a subscription keeps between polls.
struct State {
    cluster: KafkaCluster,
    source: Source,
    max_bytes: usize,
    /// Events read but not yet handed out (a run of records spans partitions).
    ready: VecDeque<SubscriptionEvent>,
    done: bool,
}

impl KafkaCluster {
    /// Streams one partition from `start`, as the local broker's `subscribe`.
    pub async fn subscribe(&self, request: PartitionSubscribe) -> Result<Subscription> {
        let max_bytes = self
            .inner
            .config
            .broker
            .limits
            .subscribe_bytes(request.max_bytes)?;
        brook_broker::validate_topic_name(&request.topic)?;
        self.check_partition(&request.topic, request.partition)
            .await?;
        let (topic, partition) = (request.topic, request.partition);
        let (start, end) = self.watermarks(&topic, partition).await?;
        let position = match request.start {
            StartAt::Earliest => start,
            StartAt::Latest => end,
            StartAt::Offset(offset) if (start..=end).contains(&offset) => offset,
            StartAt::Offset(offset) => {
                return Err(BrokerError::OffsetOutOfRange {
                    topic,
                    partition,
                    offset,
                    log_start_offset: start,
                    high_watermark: end,
                })
            }
            StartAt::Committed { group, reset } => {
                brook_broker::validate_group_id(&group)?;
                let tp = TopicPartition::new(topic.clone(), partition);
                let committed = self.committed_offsets(&group, &[tp]).await?;
                match committed.first() {
                    Some((_, c)) if (start..=end).contains(&c.offset) => c.offset,
                    _ => match reset {
                        OffsetReset::Earliest => start,
                        OffsetReset::Latest => end,
                    },
                }
            }
        };
        let context = Context::new("subscribe").topic(&topic).partition(partition);
        let consumer: StreamConsumer =
            self.inner.config.reader().create().map_err(|source| {
                context.cluster(ConfigError::Client { source }.to_string(), false)
            })?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(
            &topic,
            partition as i32,
            Offset::Offset(i64::try_from(position).unwrap_or(i64::MAX)),
        )
        .and_then(|()| consumer.assign(&tpl))
        .map_err(|e| context.error(&e))?;
        Ok(self.stream(Source::Partition(Reader(Some(consumer))), max_bytes, None))
    }

    /// Joins `request.group` on the cluster as a new member subscribed to `request.topics`
    /// (created when missing and `auto_create_topics` is on) and streams what the group
    /// assigns it, each partition from the group's committed offset, else per `reset`.
    pub async fn subscribe_group(&self, request: GroupSubscribe) -> Result<Subscription> {
        brook_broker::validate_group_id(&request.group)?;
        let max_bytes = self
            .inner
            .config
            .broker
            .limits
            .subscribe_bytes(request.max_bytes)?;
        let topics = request.checked_topics()?;
        for topic in &topics {
            self.partition_count_or_create(topic).await?;
        }
        let context = Context::new("join a group").topic(&request.group);
        let reset = match request.reset {
            OffsetReset::Earliest => "earliest",
            OffsetReset::Latest => "latest",
        };
        let client_id = format!("brook-{}", uuid::Uuid::new_v4().simple());
        let mut config = self.inner.config.member(&request.group, reset);
        config.set("client.id", &client_id);
        let (assigned_tx, assigned) = mpsc::unbounded_channel();
        let consumer: StreamConsumer<MemberContext> = config
            .create_with_context(MemberContext {
                assigned: assigned_tx,
            })
            .map_err(|source| context.cluster(ConfigError::Client { source }.to_string(), false))?;
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer.subscribe(&names).map_err(|e| context.error(&e))?;
        let member = Arc::new(Member {
            group: request.group.clone(),
            client_id: client_id.clone(),
            consumer: Some(Arc::new(consumer)),
            closing: Arc::clone(&self.inner.closing),
        });
        self.inner
            .members
            .lock()
            .entry(request.group)
            .or_default()
            .push(Arc::downgrade(&member));
        let source = Source::Group {
            member,
            assigned,
            generation: 0,
        };
        Ok(self.stream(source, max_bytes, Some(client_id)))
    }

    /// The subscription reading `source`.
    fn stream(&self, source: Source, max_bytes: usize, client_id: Option<String>) -> Subscription {
        let state = State {
            cluster: self.clone(),
            source,
            max_bytes,
            ready: VecDeque::new(),
            done: false,
        };
        let events = futures::stream::unfold(state, |mut state| async move {
            let item = state.next().await?;
            Some((item, state))
        });
        Subscription::from_events(client_id, Box::pin(events))
    }

    /// Waits until the group members of this process that are closing have left `group`.
    pub(crate) async fn members_left(&self, group: &str) {
        let waiting = self.inner.closing.lock().remove(group).unwrap_or_default();
        let timeout = self.inner.config.request_timeout();
        for mut closed in waiting {
            let _ = tokio::time::timeout(timeout, closed.wait_for(|closed| *closed)).await;
        }
    }

    /// The member id the cluster gave the member whose client id is `client_id`; the client id
    /// itself when the cluster does not list it (yet).
    async fn member_id(&self, group: &str, client_id: &str) -> String {
        let (group_name, wanted) = (group.to_owned(), client_id.to_owned());
        self.with_meta(Context::new("describe a group"), move |meta, timeout| {
            let groups = meta.fetch_group_list(Some(&group_name), timeout)?;
            Ok(groups
                .groups()
                .iter()
                .flat_map(|g| g.members())
                .find(|m| m.client_id() == wanted)
                .map(|m| m.id().to_owned()))
        })
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| client_id.to_owned())
    }
}

impl State {
    async fn next(&mut self) -> Option<Result<SubscriptionEvent>> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Some(Ok(event));
            }
            if self.done {
                return None;
            }
            match self.read().await {
                Ok(()) => {}
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }

    /// Waits for the next rebalance or records and queues their events.
    async fn read(&mut self) -> Result<()> {
        let first = match &mut self.source {
            Source::Partition(reader) => {
                let consumer = reader.0.as_ref().ok_or(BrokerError::Closed)?;
                received(consumer.recv().await.map(|m| encode::record(&m)))?
            }
            Source::Group {
                member,
                assigned,
                generation,
            } => {
                let consumer = member.consumer.as_ref().ok_or(BrokerError::Closed)?;
                tokio::select! {
                    biased;
                    owned = assigned.recv() => {
                        let owned = owned.ok_or(BrokerError::Closed)?;
                        *generation += 1;
                        let group = member.group.clone();
                        let generation = *generation;
                        let member_id = self.cluster.member_id(&group, &member.client_id).await;
                        self.ready.push_back(SubscriptionEvent::Assignment(Assignment {
                            group,
                            member_id,
                            generation,
                            partitions: owned,
                        }));
                        return Ok(());
                    }
                    message = consumer.recv() => {
                        received(message.map(|m| encode::record(&m)))?
                    }
                }
            }
        };
        let Some(first) = first else {
            return Ok(());
        };
        let mut records = vec![first];
        let mut bytes = encode::size(&records[0]);
        while bytes < self.max_bytes {
            let next = match &self.source {
                Source::Partition(reader) => match reader.0.as_ref() {
                    Some(consumer) => consumer.recv().now_or_never(),
                    None => None,
                }
                .map(|m| m.map(|m| encode::record(&m))),
                Source::Group { member, .. } => match member.consumer.as_ref() {
                    Some(consumer) => consumer.recv().now_or_never(),
                    None => None,
                }
                .map(|m| m.map(|m| encode::record(&m))),
            };
            let Some(next) = next else {
                break;
            };
            if let Some(record) = received(next)? {
                bytes += encode::size(&record);
                records.push(record);
            }
        }
        for run in runs(records) {
            self.ready.push_back(SubscriptionEvent::Batches(run?));
        }
        Ok(())
    }
}

/// A received record; `None` for a passing trouble librdkafka recovers from by itself
/// (logged); an error for one that ends the subscription.
fn received(
    message: std::result::Result<ConsumerRecord, rdkafka::error::KafkaError>,
) -> Result<Option<ConsumerRecord>> {
    match message {
        Ok(record) => Ok(Some(record)),
        Err(e) => {
            let error = Context::new("consume").error(&e);
            match &error {
                BrokerError::Cluster {
                    unavailable: true, ..
                } => {
                    tracing::warn!(error = %e, "the cluster is not answering; still trying");
                    Ok(None)
                }
                _ => Err(error),
            }
        }
    }
}

/// `records` (in the order received) as runs of one partition each, in order.
fn runs(records: Vec<ConsumerRecord>) -> Vec<Result<PartitionBatches>> {
    let mut by_partition: Vec<Vec<ConsumerRecord>> = Vec::new();
    for record in records {
        match by_partition.iter_mut().find(|run| {
            run.first()
                .is_some_and(|r| r.partition == record.partition && r.topic == record.topic)
        }) {
            Some(run) => run.push(record),
            None => by_partition.push(vec![record]),
        }
    }
    by_partition
        .into_iter()
        .map(|run| {
            let (Some(first), Some(last)) = (run.first(), run.last()) else {
                return Err(BrokerError::Closed);
            };
            Ok(PartitionBatches {
                topic: Arc::clone(&first.topic),
                partition: first.partition,
                offset: first.offset,
                batches: encode::batches(&run)?,
                next_offset: last.offset + 1,
                high_watermark: last.offset + 1,
                aborted: Vec::new(),
            })
        })
        .collect()
}
