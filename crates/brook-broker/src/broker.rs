//! The broker handle: opening and closing a data directory, and the topic registry every other
//! operation goes through.
//!
//! A [`Broker`] is a cheap clone of an `Arc`; every door holds one. It owns the async boundary
//! over the synchronous store: opening, creating and deleting topics, appends, reads and fsyncs
//! all run on tokio's blocking pool, never on an async worker, except an idle partition's small
//! page-cache write, done in place (see `append`). Beside each partition log it
//! keeps a `watch` channel carrying the partition's high watermark, bumped after every append,
//! on which long polls and subscriptions wait.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use tokio::sync::watch;

use crate::append::{Appender, ProduceGuard};
use crate::config::BrokerConfig;
use crate::error::{BrokerError, Result};
use crate::group::Groups;
use crate::offsets::OffsetStore;
use crate::partitioner::StickyCursor;
use crate::types::{
    NewTopic, PartitionDescription, PartitionStatus, TopicDescription, TopicPartition,
};
use brook_log::RecoveryReport;
use brook_log::{PartitionLog, Store, Topic};

/// The embedded broker. Clone it freely: clones share one broker.
///
/// Every method must be called from within a tokio runtime (blocking work goes to its blocking
/// pool). See the crate docs for an example.
#[derive(Debug, Clone)]
pub struct Broker {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) config: BrokerConfig,
    pub(crate) store: Arc<Store>,
    pub(crate) topics: crate::compaction::Topics,
    /// The log cleaner of compacted topics (`compaction`).
    cleaner: brook_log::Cleaner,
    pub(crate) offsets: Arc<OffsetStore>,
    pub(crate) groups: Groups,
    /// Serialises topic creation, deletion and changes, so a name is never half-created.
    pub(crate) admin: tokio::sync::Mutex<()>,
    /// `true` while produces are accepted. Each queued append holds a read guard until it is
    /// done, so `close` (which takes the write guard) waits for the ones in flight.
    pub(crate) gate: Arc<tokio::sync::RwLock<bool>>,
    /// Flips to `true` on close; long polls and subscriptions wait on it too.
    pub(crate) shutdown: watch::Sender<bool>,
    /// Request-reply, started on first use.
    pub(crate) reqreply: crate::reqreply::Hub,
    /// The transaction coordinator.
    pub(crate) txns: Arc<crate::txn::Coordinator>,
    /// Field order matters: the store closes its files before an ephemeral directory is removed.
    _tempdir: Option<tempfile::TempDir>,
}

/// An open topic: the store's topic plus the broker's per-partition wake-up channels.
#[derive(Debug)]
pub(crate) struct TopicHandle {
    pub(crate) name: Arc<str>,
    pub(crate) topic: Arc<Topic>,
    pub(crate) partitions: Vec<PartitionHandle>,
    pub(crate) cursor: StickyCursor,
    /// Shared by the handles of one topic across admin changes ([`TopicHandle::changed`]), so
    /// whoever holds an older one still sees a deletion.
    deleted: Arc<AtomicBool>,
}

/// One partition's log, its append queue and its high-watermark channel.
#[derive(Debug, Clone)]
pub(crate) struct PartitionHandle {
    pub(crate) log: Arc<PartitionLog>,
    pub(crate) appender: Arc<Appender>,
    /// Carries the log's high watermark; the log's listener sends every move, so waiters wake
    /// when appended data becomes readable (after its fsync in `sync` mode).
    pub(crate) hw: Arc<watch::Sender<u64>>,
    /// Carries the log's last stable offset, sent after each high watermark move: what
    /// read_committed waiters wait on.
    pub(crate) lso: Arc<watch::Sender<u64>>,
    /// Reads refused or cut short because stored data failed its checks (`fetch::checked`).
    pub(crate) corrupt_reads: Arc<AtomicU64>,
    /// Key -> latest offset, for a compacted topic's table view (`table`).
    pub(crate) keys: Option<Arc<crate::table::KeyIndex>>,
}

impl PartitionHandle {
    fn new(topic: &Arc<str>, partition: u32, log: Arc<PartitionLog>) -> Self {
        let hw = Arc::new(watch::Sender::new(log.high_watermark()));
        let listener = Arc::clone(&hw);
        log.set_high_watermark_listener(Box::new(move |offset| {
            listener.send_replace(offset);
        }));
        let keys = log
            .config()
            .cleanup_policy
            .compacts()
            .then(|| Arc::new(crate::table::KeyIndex::new()));
        let lso = Arc::new(watch::Sender::new(log.last_stable_offset()));
        let stable = Arc::clone(&lso);
        log.set_stable_offset_listener(Box::new(move |offset| {
            stable.send_replace(offset);
        }));
        Self {
            appender: Arc::new(Appender::new(
                Arc::clone(&log),
                Arc::clone(topic),
                partition,
            )),
            log,
            hw,
            keys,
            lso,
            corrupt_reads: Arc::default(),
        }
    }
}

impl TopicHandle {
    fn new(topic: Arc<Topic>) -> Self {
        let name: Arc<str> = Arc::from(topic.name());
        let partitions = topic
            .partitions()
            .iter()
            .enumerate()
            .map(|(p, log)| PartitionHandle::new(&name, p as u32, Arc::clone(log)))
            .collect();
        Self {
            name,
            topic,
            partitions,
            cursor: StickyCursor::default(),
            deleted: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The same topic after an admin change (more partitions, new settings): the partitions it
    /// had keep their handles (append queues, high-watermark channels, waiters), new ones get
    /// theirs, and the deletion flag stays shared.
    pub(crate) fn changed(&self, topic: Arc<Topic>) -> Self {
        let partitions = topic
            .partitions()
            .iter()
            .enumerate()
            .map(|(p, log)| match self.partitions.get(p) {
                Some(kept) => kept.clone(),
                None => PartitionHandle::new(&self.name, p as u32, Arc::clone(log)),
            })
            .collect();
        Self {
            name: Arc::clone(&self.name),
            topic,
            partitions,
            cursor: StickyCursor::default(),
            deleted: Arc::clone(&self.deleted),
        }
    }

    pub(crate) fn partition_count(&self) -> u32 {
        // At most the store's PARTITIONS_MAX.
        self.partitions.len() as u32
    }

    /// The partition, or `UnknownPartition`.
    pub(crate) fn partition(&self, partition: u32) -> Result<&PartitionHandle> {
        self.partitions
            .get(partition as usize)
            .ok_or_else(|| BrokerError::UnknownPartition {
                topic: self.name.to_string(),
                partition,
                partitions: self.partition_count(),
            })
    }

    pub(crate) fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }

    /// Marks the topic deleted and wakes everyone waiting on it, so they notice.
    fn mark_deleted(&self) {
        self.deleted.store(true, Ordering::Release);
        // Both ends: a read_committed waiter waits on the last stable offset.
        for partition in &self.partitions {
            partition.hw.send_modify(|_| {});
            partition.lso.send_modify(|_| {});
        }
    }

    pub(crate) fn describe(&self) -> TopicDescription {
        TopicDescription {
            name: self.name.to_string(),
            id: self.topic.id(),
            config: self.topic.config().clone(),
            overrides: self.topic.overrides().entries(),
            partitions: self
                .partitions
                .iter()
                .enumerate()
                .map(|(p, handle)| PartitionDescription {
                    partition: p as u32,
                    log_start_offset: handle.log.log_start_offset(),
                    log_end_offset: handle.log.log_end_offset(),
                    high_watermark: handle.log.high_watermark(),
                    size_bytes: handle.log.size_bytes(),
                    segments: handle.log.segment_count(),
                    fsyncs: handle.log.fsync_count(),
                    corrupt_reads: handle.corrupt_reads.load(Ordering::Relaxed),
                    compaction: handle.keys.as_ref().map(|keys| {
                        crate::types::Compaction::new(handle.log.cleaner_stats(), keys.len())
                    }),
                    status: PartitionStatus::of(&handle.log).0,
                })
                .collect(),
        }
    }
}

/// A topic in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSummary {
    pub name: String,
    pub partitions: u32,
}

/// Runs blocking storage work on tokio's blocking pool.
pub(crate) async fn blocking<T, F>(work: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(work).await?
}

/// Runs an admin change on its own task, so it finishes even when the caller stops waiting
/// (a gRPC client that disconnects drops its handler's future): the store and the broker's
/// topic registry must never disagree about whether a topic exists.
pub(crate) async fn run_to_end<T: Send + 'static>(
    change: impl std::future::Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    tokio::spawn(change).await?
}

impl Broker {
    /// Opens (or creates) the broker's data directory `config.data_dir`, running storage
    /// recovery on it. The blocking work runs on tokio's blocking pool, so this is safe to await
    /// from any task; it must be called within a tokio runtime.
    ///
    /// Fails when another process holds the directory, or when the config is invalid.
    pub async fn open(config: BrokerConfig) -> Result<Broker> {
        Self::open_in(config, None).await
    }

    /// A broker in a fresh temporary directory with durability `none`, removed when the last
    /// handle is dropped. For tests and throwaway work.
    pub async fn ephemeral() -> Result<Broker> {
        let dir = blocking(|| {
            tempfile::Builder::new()
                .prefix("brook-")
                .tempdir()
                .map_err(|e| brook_log::LogError::io(std::env::temp_dir(), e).into())
        })
        .await?;
        let mut config = BrokerConfig::new(dir.path());
        config.log.durability = brook_log::Durability::None;
        Self::open_in(config, Some(dir)).await
    }

    async fn open_in(config: BrokerConfig, tempdir: Option<tempfile::TempDir>) -> Result<Broker> {
        config.validate()?;
        let dir = config.data_dir.clone();
        let log_defaults = config.log.clone();
        let txn_config = config.transactions.clone();
        let (store, offsets, txns) = blocking(move || {
            std::fs::create_dir_all(&dir).map_err(|e| brook_log::LogError::io(&dir, e))?;
            let durability = log_defaults.durability;
            let store = Store::open(&dir, log_defaults).map_err(BrokerError::from_admin_log)?;
            let offsets = OffsetStore::open(&dir)?;
            let txns = crate::txn::Coordinator::open(&dir, durability, txn_config)?;
            Ok((store, offsets, txns))
        })
        .await?;
        let topics: crate::compaction::Topics = Arc::new(RwLock::new(
            store
                .topics()
                .into_iter()
                .map(|topic| {
                    let handle = TopicHandle::new(topic);
                    (handle.name.to_string(), Arc::new(handle))
                })
                .collect(),
        ));
        let cleaner = crate::compaction::start(&config.cleaner, &topics)?;
        tracing::info!(dir = %config.data_dir.display(), "broker open");
        let retention_check = config.retention_check();
        let broker = Broker {
            inner: Arc::new(Inner {
                config,
                store: Arc::new(store),
                topics,
                cleaner,
                offsets: Arc::new(offsets),
                groups: Groups::default(),
                admin: tokio::sync::Mutex::new(()),
                gate: Arc::new(tokio::sync::RwLock::new(true)),
                shutdown: watch::Sender::new(false),
                reqreply: Default::default(),
                txns: Arc::new(txns),
                _tempdir: tempdir,
            }),
        };
        crate::retention::spawn(&broker, retention_check);
        for topic in broker.inner.topics.read().values() {
            broker.follow_keys(topic);
        }
        crate::txn::start(&broker).await;
        Ok(broker)
    }

    /// The settings the broker was opened with.
    pub fn config(&self) -> &BrokerConfig {
        &self.inner.config
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.inner.config.data_dir.clone()
    }

    /// Stops accepting produces, lets those in flight finish, ends subscriptions and long polls,
    /// and closes the store clean (so the next open runs no recovery scan). Later produces fail
    /// with [`BrokerError::Closed`]. Closing twice is fine.
    ///
    /// Dropping the last handle without closing loses nothing acknowledged, but the next open
    /// treats it as a crash and walks each partition's tail. The directory's lock goes with the
    /// broker's last background task (a read or fsync in flight), a moment after the drop: an
    /// open in the same process right after it may be refused as locked, where `close` is not.
    pub async fn close(&self) -> Result<()> {
        let mut open = self.inner.gate.write().await;
        if !*open {
            return Ok(());
        }
        *open = false;
        self.inner.shutdown.send_replace(true);
        let store = Arc::clone(&self.inner.store);
        let txn_log = Arc::clone(&self.inner.txns.log);
        let inner = Arc::clone(&self.inner);
        blocking(move || {
            // Cleans in progress give up before the logs close.
            inner.cleaner.stop();
            store.close().map_err(BrokerError::from_admin_log)?;
            txn_log.close()
        })
        .await?;
        tracing::info!(dir = %self.inner.config.data_dir.display(), "broker closed clean");
        Ok(())
    }

    /// Creates a topic. Fails with `TopicExists`, `InvalidTopicName`, `InvalidPartitions` or
    /// `InvalidConfig`, changing nothing.
    pub async fn create_topic(&self, new: NewTopic) -> Result<TopicDescription> {
        let broker = self.clone();
        run_to_end(async move { broker.create_topic_now(new).await }).await
    }

    async fn create_topic_now(&self, new: NewTopic) -> Result<TopicDescription> {
        let partitions = new
            .partitions
            .unwrap_or(self.inner.config.default_partitions);
        let max = self.inner.config.limits.partitions_max;
        if partitions == 0 || partitions > max {
            return Err(BrokerError::InvalidPartitions { partitions, max });
        }
        crate::names::validate_topic_name(&new.name)?;
        let _admin = self.inner.admin.lock().await;
        if self.inner.topics.read().contains_key(&new.name) {
            return Err(BrokerError::TopicExists { topic: new.name });
        }
        let store = Arc::clone(&self.inner.store);
        let NewTopic { name, config, .. } = new;
        let topic = blocking(move || {
            store
                .create_topic(&name, partitions, config)
                .map_err(BrokerError::from_admin_log)
        })
        .await?;
        let handle = Arc::new(TopicHandle::new(topic));
        let description = handle.describe();
        self.inner
            .topics
            .write()
            .insert(handle.name.to_string(), Arc::clone(&handle));
        self.topic_changed(&handle.name);
        if self.follow_keys(&handle) {
            self.inner.cleaner.wake();
        }
        tracing::info!(topic = %handle.name, partitions, "topic created");
        Ok(description)
    }

    /// Deletes a topic, its data and every group's committed offsets in it. Subscriptions on it
    /// end with `UnknownTopic`; groups subscribed to it rebalance.
    pub async fn delete_topic(&self, name: &str) -> Result<()> {
        let broker = self.clone();
        let name = name.to_owned();
        run_to_end(async move { broker.delete_topic_now(&name).await }).await
    }

    async fn delete_topic_now(&self, name: &str) -> Result<()> {
        let _admin = self.inner.admin.lock().await;
        let handle =
            self.inner
                .topics
                .write()
                .remove(name)
                .ok_or_else(|| BrokerError::UnknownTopic {
                    topic: name.to_owned(),
                })?;
        handle.mark_deleted();
        self.topic_changed(name);
        let store = Arc::clone(&self.inner.store);
        let offsets = Arc::clone(&self.inner.offsets);
        let (name, partitions) = (Arc::clone(&handle.name), handle.partition_count());
        let deleting = Arc::clone(&name);
        blocking(move || {
            let result = store
                .delete_topic(&deleting)
                .map_err(BrokerError::from_admin_log)
                .and_then(|()| offsets.remove_topic(&deleting));
            // Usually the last hold on the partitions' files: closing a removed file frees
            // its page cache (about 0.1 s for 500 MB here), which is blocking work.
            drop(handle);
            result
        })
        .await?;
        brook_metrics::partitions::forget_topic(&name, partitions);
        tracing::info!(topic = %name, "topic deleted");
        Ok(())
    }

    /// Every topic, sorted by name.
    pub fn list_topics(&self) -> Vec<TopicSummary> {
        let mut topics: Vec<TopicSummary> = self
            .inner
            .topics
            .read()
            .values()
            .map(|t| TopicSummary {
                name: t.name.to_string(),
                partitions: t.partition_count(),
            })
            .collect();
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        topics
    }

    /// A topic's id, settings, and per partition its offsets and size.
    pub fn describe_topic(&self, name: &str) -> Result<TopicDescription> {
        Ok(self.topic(name)?.describe())
    }

    /// Every partition that does not fully serve (read-only after damage or a failed fsync,
    /// or offline), with why, sorted: what the startup log reports and operators act on.
    /// Every other partition serves.
    pub fn fenced_partitions(&self) -> Vec<(TopicPartition, PartitionStatus, String)> {
        let mut fenced: Vec<_> = self
            .inner
            .topics
            .read()
            .values()
            .flat_map(|t| {
                t.partitions.iter().enumerate().filter_map(move |(p, h)| {
                    let (status, reason) = PartitionStatus::of(&h.log);
                    let tp = TopicPartition::new(t.name.to_string(), p as u32);
                    reason.map(|reason| (tp, status, reason))
                })
            })
            .collect();
        fenced.sort_by(|a, b| a.0.cmp(&b.0));
        fenced
    }

    /// What opening found in each partition (clean close or not, bytes walked and cut,
    /// corruption), sorted: for the startup log line and for tests of clean shutdown.
    pub fn recovery_reports(&self) -> Vec<(TopicPartition, RecoveryReport)> {
        let mut reports: Vec<_> = self
            .inner
            .topics
            .read()
            .values()
            .flat_map(|t| {
                t.partitions.iter().enumerate().map(move |(p, h)| {
                    (
                        TopicPartition::new(t.name.to_string(), p as u32),
                        h.log.recovery().clone(),
                    )
                })
            })
            .collect();
        reports.sort_by(|a, b| a.0.cmp(&b.0));
        reports
    }

    /// The open topic `name`, or `UnknownTopic`.
    pub(crate) fn topic(&self, name: &str) -> Result<Arc<TopicHandle>> {
        self.inner
            .topics
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| BrokerError::UnknownTopic {
                topic: name.to_owned(),
            })
    }

    /// The open topic `name`; created with the default partition count when it does not exist
    /// and automatic creation is on.
    pub(crate) async fn topic_or_create(&self, name: &str) -> Result<Arc<TopicHandle>> {
        match self.topic(name) {
            Err(BrokerError::UnknownTopic { .. }) if self.inner.config.auto_create_topics => {
                match self
                    .create_topic(NewTopic {
                        name: name.to_owned(),
                        ..NewTopic::default()
                    })
                    .await
                {
                    // Another caller created it first: fine.
                    Ok(_) | Err(BrokerError::TopicExists { .. }) => self.topic(name),
                    Err(e) => Err(e),
                }
            }
            other => other,
        }
    }

    /// Partition count of `topic`, 0 when it does not exist: what the group assignor sees.
    pub(crate) fn partition_count(&self, topic: &str) -> u32 {
        self.inner
            .topics
            .read()
            .get(topic)
            .map_or(0, |t| t.partition_count())
    }

    /// Rebalances the groups subscribed to `topic`.
    pub(crate) fn topic_changed(&self, topic: &str) {
        self.inner
            .groups
            .topic_changed(topic, &|t| self.partition_count(t));
    }

    /// Starts keeping the key index of each partition of `topic` when it is compacted
    /// (`table`); whether it is.
    fn follow_keys(&self, topic: &Arc<TopicHandle>) -> bool {
        let compacted = topic.partitions.iter().any(|p| p.keys.is_some());
        for partition in 0..topic.partition_count() {
            crate::table::follow(self, topic, partition);
        }
        compacted
    }

    /// Refuses new produces once the broker is closing; the guard keeps `close` waiting.
    /// Synchronous, so a produce is queued at call time.
    pub(crate) fn enter_produce(&self) -> Result<ProduceGuard> {
        match Arc::clone(&self.inner.gate).try_read_owned() {
            Ok(open) if *open => Ok(Arc::new(open)),
            // Closed, or `close` is waiting for the produces in flight.
            _ => Err(BrokerError::Closed),
        }
    }

    /// Every partition log, named `topic-partition`, for background work.
    pub(crate) fn all_partition_logs(&self) -> Vec<(String, Arc<PartitionLog>)> {
        self.inner
            .topics
            .read()
            .values()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .enumerate()
                    .map(move |(p, h)| (format!("{}-{p}", t.name), Arc::clone(&h.log)))
            })
            .collect()
    }

    /// A receiver of the broker's shutdown flag.
    pub(crate) fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.inner.shutdown.subscribe()
    }
}
