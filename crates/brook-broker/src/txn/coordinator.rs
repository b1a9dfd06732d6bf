//! The transaction coordinator: Kafka's state machine for transactional ids
//! (`TransactionCoordinator`, KIP-98, KIP-360, KIP-447, KIP-588), over the coordinator's log.
//!
//! Each transactional id has a slot: its [`TxnMeta`] and a lock that serialises its
//! transitions. A transition is decided under the lock, written to the coordinator's log and
//! made durable, and only then applied in memory (so what a client was told survives a crash).
//! Ending a transaction is two steps, as in Kafka: `PrepareCommit`/`PrepareAbort` is written
//! first; then a marker goes into every partition of the transaction (through each
//! partition's append queue, so it lands after every batch the transaction wrote there), the
//! offsets the transaction carries are committed for their groups, and `CompleteCommit`/
//! `CompleteAbort` is written. A crash between the steps is finished when the broker opens
//! again. Kafka's EndTxn is answered after the first step (and the offsets), as Kafka does:
//! the second runs in the background while the id's transition lock is held, so the partitions'
//! LSO keeps read_committed readers back until the markers land, and the producer's next
//! transaction waits for it. brook's own atomic writes and [`Broker::end_txn`] answer after the
//! second step, so their caller reads its commit at once.
//!
//! A transactional batch is accepted by a partition only while its transaction is open with
//! that producer id and epoch and the partition was added to it (KIP-890's verification, which
//! costs nothing here: the coordinator is in the same process). The check and the queuing of
//! the batch happen under the slot's state lock, and a transaction stops being open under the
//! same lock before its markers are queued, so a marker is always queued after every batch of
//! its transaction: no batch can reopen a transaction behind its marker.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use brook_log::batch::{ControlType, EndTxnMarker};
use futures::future::join_all;
use parking_lot::Mutex;
use tokio::sync::OwnedMutexGuard;

use super::config::TxnConfig;
use super::error::TxnError;
use super::state::{PendingOffset, TxnMeta, TxnState};
use super::txn_log::TxnLog;
use super::{ProducerIdAndEpoch, TxnResult};
use crate::append::outcome;
use crate::broker::{blocking, Broker};
use crate::error::{BrokerError, Result};
use crate::produce::now_ms;
use crate::types::{CommittedOffset, TopicPartition};

/// The coordinator epoch written in every marker: brook has one coordinator, always the same.
pub(crate) const COORDINATOR_EPOCH: i32 = 0;
/// Low bits of a producer id that count within one millisecond.
const ID_COUNTER_BITS: u32 = 12;
/// How long a producer's request waits for its id's previous transition (the markers of the
/// transaction it just ended) before it is answered `CONCURRENT_TRANSACTIONS`, Kafka's "retry
/// later".
pub(crate) const CONCURRENT_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
/// Longest transactional id accepted (Kafka bounds it by its string encoding; brook by this).
pub const TRANSACTIONAL_ID_BYTES_MAX: usize = 4096;

/// Transactional ids, their states, and the coordinator's log.
#[derive(Debug)]
pub(crate) struct Coordinator {
    pub(crate) log: Arc<TxnLog>,
    slots: Mutex<HashMap<String, Arc<Slot>>>,
    next_id: AtomicI64,
    /// Appends to the log hold it shared; a rewrite holds it alone, so it sees every state
    /// that was written.
    log_gate: tokio::sync::RwLock<()>,
    pub(crate) config: TxnConfig,
}

/// One transactional id.
#[derive(Debug)]
pub(crate) struct Slot {
    pub(crate) id: String,
    /// Serialises the id's transitions; held across the log append and the markers.
    op: Arc<tokio::sync::Mutex<()>>,
    pub(crate) state: Mutex<SlotState>,
}

#[derive(Debug, Default)]
pub(crate) struct SlotState {
    pub(crate) meta: Option<TxnMeta>,
    /// The open transaction is ending (its end is being written): produces are refused.
    ending: bool,
}

impl Coordinator {
    /// Opens the coordinator's log under the data directory and loads every id. Blocking.
    pub(crate) fn open(
        data_dir: &std::path::Path,
        durability: brook_log::Durability,
        config: TxnConfig,
    ) -> Result<Self> {
        let (log, states) = TxnLog::open(data_dir, durability)?;
        let clock = now_ms().max(0) << ID_COUNTER_BITS;
        let highest = states
            .values()
            .map(|m| m.producer_id.max(m.last_producer_id))
            .max()
            .unwrap_or(-1);
        let slots = states
            .into_iter()
            .map(|(id, meta)| {
                let slot = Slot::new(id.clone());
                slot.state.lock().meta = Some(meta);
                (id, Arc::new(slot))
            })
            .collect();
        Ok(Self {
            log: Arc::new(log),
            slots: Mutex::new(slots),
            next_id: AtomicI64::new(clock.max(highest + 1)),
            log_gate: tokio::sync::RwLock::new(()),
            config,
        })
    }

    /// A producer id nobody has had: from the clock (so ids after a restart are larger than
    /// those before), and above every id the log knows.
    pub(crate) fn allocate_id(&self) -> i64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Every slot, sorted by id.
    pub(crate) fn slots(&self) -> Vec<Arc<Slot>> {
        let mut slots: Vec<Arc<Slot>> = self.slots.lock().values().cloned().collect();
        slots.sort_by(|a, b| a.id.cmp(&b.id));
        slots
    }

    pub(crate) fn slot(&self, id: &str) -> Option<Arc<Slot>> {
        self.slots.lock().get(id).cloned()
    }

    /// The slot of `id` with its transition lock held (created when `create`), re-fetched if
    /// it was forgotten while waiting for the lock.
    async fn lock(&self, id: &str, create: bool) -> Option<(Arc<Slot>, OwnedMutexGuard<()>)> {
        loop {
            let slot = {
                let mut slots = self.slots.lock();
                match slots.get(id) {
                    Some(slot) => Arc::clone(slot),
                    None if create => Arc::clone(
                        slots
                            .entry(id.to_owned())
                            .or_insert_with(|| Arc::new(Slot::new(id.to_owned()))),
                    ),
                    None => return None,
                }
            };
            let guard = Arc::clone(&slot.op).lock_owned().await;
            let current = self
                .slots
                .lock()
                .get(id)
                .is_some_and(|s| Arc::ptr_eq(s, &slot));
            if current {
                return Some((slot, guard));
            }
        }
    }

    /// Forgets `slot` (its tombstone is written), unless it was replaced.
    fn remove(&self, slot: &Arc<Slot>) {
        let mut slots = self.slots.lock();
        if slots.get(&slot.id).is_some_and(|s| Arc::ptr_eq(s, slot)) {
            slots.remove(&slot.id);
        }
    }
}

impl Slot {
    fn new(id: String) -> Self {
        Self {
            id,
            op: Arc::new(tokio::sync::Mutex::new(())),
            state: Mutex::new(SlotState::default()),
        }
    }

    pub(crate) fn meta(&self) -> Option<TxnMeta> {
        self.state.lock().meta.clone()
    }
}

/// Checks a transactional id as a client sent it.
pub(crate) fn check_transactional_id(id: &str) -> Result<()> {
    let reason = if id.is_empty() {
        "it is empty"
    } else if id.len() > TRANSACTIONAL_ID_BYTES_MAX {
        "it is longer than 4096 bytes"
    } else if id.chars().any(char::is_control) {
        "it holds control characters"
    } else {
        return Ok(());
    };
    Err(TxnError::InvalidTransactionalId {
        transactional_id: id.chars().take(64).collect(),
        reason,
    }
    .into())
}

/// The producer and epoch of `meta` must be the caller's.
fn check_producer(id: &str, meta: &TxnMeta, producer_id: i64, epoch: i16) -> Result<()> {
    if meta.producer_id != producer_id {
        return Err(TxnError::InvalidProducerIdMapping {
            transactional_id: id.to_owned(),
            producer_id,
        }
        .into());
    }
    if meta.epoch != epoch {
        return Err(TxnError::ProducerFenced {
            producer_id,
            epoch,
            current: meta.epoch,
            partition: None,
        }
        .into());
    }
    Ok(())
}

fn concurrent(id: &str) -> BrokerError {
    TxnError::ConcurrentTransactions {
        transactional_id: id.to_owned(),
    }
    .into()
}

fn invalid_state(id: &str, reason: impl Into<String>) -> BrokerError {
    TxnError::InvalidTxnState {
        transactional_id: Some(id.to_owned()),
        reason: reason.into(),
    }
    .into()
}

/// An epoch that cannot be bumped once more (Kafka rotates the producer id then).
fn exhausted(epoch: i16) -> bool {
    epoch >= i16::MAX - 1
}

impl Broker {
    fn coordinator(&self) -> &Arc<Coordinator> {
        &self.inner.txns
    }

    /// Writes `meta` (`None`: forget the id) to the coordinator's log, durably, then applies
    /// it to the slot. Called with the slot's transition lock held. The append runs on the
    /// blocking pool, or in place when it does not wait for the disk
    /// ([`TxnLog::appends_in_place`]).
    async fn persist(&self, slot: &Arc<Slot>, meta: Option<TxnMeta>) -> Result<()> {
        let coordinator = Arc::clone(self.coordinator());
        {
            let _gate = coordinator.log_gate.read().await;
            let log = Arc::clone(&coordinator.log);
            let in_place = log.appends_in_place()
                && tokio::runtime::Handle::try_current().is_ok_and(|runtime| {
                    runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
                });
            if in_place {
                tokio::task::block_in_place(|| log.append(&slot.id, meta.as_ref()))?;
            } else {
                let (id, record) = (slot.id.clone(), meta.clone());
                blocking(move || log.append(&id, record.as_ref())).await?;
            }
            let mut state = slot.state.lock();
            state.meta = meta;
            state.ending = false;
        }
        if coordinator.log.wants_rewrite() {
            let broker = self.clone();
            tokio::spawn(async move {
                if let Err(e) = broker.rewrite_txn_log().await {
                    tracing::error!(error = %e, "rewriting the transaction log failed");
                }
            });
        }
        Ok(())
    }

    /// Appends every live state to the coordinator's log again and drops the older records.
    async fn rewrite_txn_log(&self) -> Result<()> {
        let coordinator = Arc::clone(self.coordinator());
        let _gate = coordinator.log_gate.write().await;
        if !coordinator.log.wants_rewrite() {
            return Ok(());
        }
        let live: Vec<(String, TxnMeta)> = coordinator
            .slots()
            .into_iter()
            .filter_map(|slot| Some((slot.id.clone(), slot.meta()?)))
            .collect();
        let log = Arc::clone(&coordinator.log);
        blocking(move || log.rewrite(live.iter().map(|(id, meta)| (id, meta)))).await
    }

    /// Kafka's InitProducerId: a producer id and epoch for an idempotent producer (no
    /// transactional id: a new id, epoch 0), or for the transactional id's producer (its id
    /// with the epoch bumped, fencing the previous instance: its open transaction is aborted
    /// first). `expected` is the id and epoch the producer already has (KIP-360): it gets its
    /// epoch bumped, or `ProducerFenced` when another instance took over.
    pub async fn init_producer_id(
        &self,
        transactional_id: Option<&str>,
        transaction_timeout_ms: i64,
        expected: Option<ProducerIdAndEpoch>,
    ) -> Result<ProducerIdAndEpoch> {
        let coordinator = self.coordinator();
        let Some(id) = transactional_id else {
            return Ok(ProducerIdAndEpoch {
                producer_id: coordinator.allocate_id(),
                epoch: 0,
            });
        };
        check_transactional_id(id)?;
        let max_ms = coordinator.config.max_timeout_ms;
        let timeout_ms = u32::try_from(transaction_timeout_ms)
            .ok()
            .filter(|t| *t > 0 && u64::from(*t) <= max_ms)
            .ok_or(TxnError::InvalidTimeout {
                timeout_ms: transaction_timeout_ms,
                max_ms,
            })?;
        let Some((slot, _op)) = coordinator.lock(id, true).await else {
            return Err(concurrent(id));
        };
        let now = now_ms();
        let Some(mut meta) = slot.meta() else {
            let meta = TxnMeta::new(coordinator.allocate_id(), timeout_ms, now);
            let answer = ProducerIdAndEpoch::of(&meta);
            self.persist(&slot, Some(meta)).await?;
            tracing::info!(
                transactional_id = id,
                producer_id = answer.producer_id,
                "transactional id initialized"
            );
            return Ok(answer);
        };
        if let Some(exp) = expected {
            let valid = exp.producer_id == meta.producer_id
                || (exp.producer_id == meta.last_producer_id && exhausted(exp.epoch));
            if !valid {
                return Err(TxnError::ProducerFenced {
                    producer_id: exp.producer_id,
                    epoch: exp.epoch,
                    current: meta.epoch,
                    partition: None,
                }
                .into());
            }
        }
        match meta.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort => {
                self.finish(&slot, false)
                    .await
                    .map_err(|_| concurrent(id))?;
                meta = slot.meta().ok_or_else(|| concurrent(id))?;
            }
            TxnState::Ongoing => {
                // A new instance: the old one's transaction is aborted under a bumped epoch,
                // which fences the old instance in every partition it wrote to.
                let fence = meta.epoch.saturating_add(1);
                self.end_open(&slot, &meta, TxnResult::Abort, Some(fence))
                    .await?;
                tracing::info!(
                    transactional_id = id,
                    "aborted the previous instance's open transaction"
                );
                meta = slot.meta().ok_or_else(|| concurrent(id))?;
            }
            _ => {}
        }
        let mut next = meta.settled(TxnState::Empty, now);
        next.timeout_ms = timeout_ms;
        if exhausted(meta.epoch) && expected.is_none_or(|e| e.epoch == meta.epoch) {
            next.last_producer_id = meta.producer_id;
            next.producer_id = coordinator.allocate_id();
            next.epoch = 0;
            next.last_epoch = -1;
        } else {
            match expected {
                None => {
                    next.epoch = meta.epoch + 1;
                    next.last_epoch = -1;
                }
                Some(exp) if exp.epoch == meta.epoch => {
                    next.epoch = meta.epoch + 1;
                    next.last_epoch = meta.epoch;
                }
                // A retry of a bump whose answer was lost: the same epoch again.
                Some(exp) if exp.epoch == meta.last_epoch => {}
                Some(exp) => {
                    return Err(TxnError::ProducerFenced {
                        producer_id: exp.producer_id,
                        epoch: exp.epoch,
                        current: meta.epoch,
                        partition: None,
                    }
                    .into())
                }
            }
        }
        let answer = ProducerIdAndEpoch::of(&next);
        self.persist(&slot, Some(next)).await?;
        Ok(answer)
    }

    /// The slot of transactional id `id` with its transition lock held and its state, once
    /// `producer` is checked to be its producer and epoch; a decided transaction is finished
    /// first (after a failure left it so), and `ConcurrentTransactions` if that fails again.
    async fn lock_producer(
        &self,
        id: &str,
        producer: ProducerIdAndEpoch,
    ) -> Result<(Arc<Slot>, OwnedMutexGuard<()>, TxnMeta)> {
        check_transactional_id(id)?;
        // The previous end of this id may still be writing its markers (EndTxn answers once
        // it is decided): wait for it, within bounds.
        let locked = tokio::time::timeout(CONCURRENT_WAIT, self.coordinator().lock(id, false))
            .await
            .map_err(|_| concurrent(id))?;
        let Some((slot, op)) = locked else {
            return Err(mapping(id, producer.producer_id));
        };
        let mut meta = slot
            .meta()
            .ok_or_else(|| mapping(id, producer.producer_id))?;
        check_producer(id, &meta, producer.producer_id, producer.epoch)?;
        if meta.state.is_preparing() {
            self.finish(&slot, false)
                .await
                .map_err(|_| concurrent(id))?;
            meta = slot
                .meta()
                .ok_or_else(|| mapping(id, producer.producer_id))?;
        }
        Ok((slot, op, meta))
    }

    /// Kafka's AddPartitionsToTxn: adds partitions to the open transaction (opening one), so
    /// the producer may write to them. Every partition must exist
    /// ([`TxnError::UnknownPartitions`] lists those that do not; nothing is added then).
    pub async fn add_partitions_to_txn(
        &self,
        transactional_id: &str,
        producer: ProducerIdAndEpoch,
        partitions: Vec<TopicPartition>,
    ) -> Result<()> {
        self.add_to_txn(transactional_id, producer, partitions, None)
            .await
    }

    /// Kafka's AddOffsetsToTxn: the transaction will commit offsets for `group`
    /// ([`Broker::txn_offset_commit`]), visible to the group only if it commits.
    pub async fn add_offsets_to_txn(
        &self,
        transactional_id: &str,
        producer: ProducerIdAndEpoch,
        group: &str,
    ) -> Result<()> {
        crate::names::validate_group_id(group)?;
        self.add_to_txn(transactional_id, producer, Vec::new(), Some(group))
            .await
    }

    async fn add_to_txn(
        &self,
        id: &str,
        producer: ProducerIdAndEpoch,
        partitions: Vec<TopicPartition>,
        group: Option<&str>,
    ) -> Result<()> {
        let (slot, _op, meta) = self.lock_producer(id, producer).await?;
        let known = meta.state == TxnState::Ongoing
            && partitions.iter().all(|tp| meta.partitions.contains(tp))
            && group.is_none_or(|g| meta.groups.contains_key(g));
        if known {
            return Ok(());
        }
        let unknown: Vec<TopicPartition> = partitions
            .iter()
            .filter(|tp| {
                self.topic(&tp.topic)
                    .and_then(|t| t.partition(tp.partition).map(drop))
                    .is_err()
            })
            .cloned()
            .collect();
        if !unknown.is_empty() {
            return Err(TxnError::UnknownPartitions(unknown).into());
        }
        let now = now_ms();
        let mut next = meta.clone();
        if next.state != TxnState::Ongoing {
            next.state = TxnState::Ongoing;
            next.start_ms = now;
        }
        next.update_ms = now;
        next.partitions.extend(partitions);
        if let Some(group) = group {
            next.groups.entry(group.to_owned()).or_default();
        }
        self.persist(&slot, Some(next)).await
    }

    /// Kafka's TxnOffsetCommit: offsets the transaction commits for `group` (added with
    /// [`Broker::add_offsets_to_txn`]) when it commits; until then the group does not see them.
    pub async fn txn_offset_commit(
        &self,
        transactional_id: &str,
        producer: ProducerIdAndEpoch,
        group: &str,
        offsets: Vec<crate::OffsetCommit>,
    ) -> Result<()> {
        let id = transactional_id;
        crate::names::validate_group_id(group)?;
        self.check_commits(&offsets)?;
        let (slot, _op, meta) = self.lock_producer(id, producer).await?;
        if meta.state != TxnState::Ongoing || !meta.groups.contains_key(group) {
            return Err(invalid_state(
                id,
                format!("group {group:?} was not added to an open transaction (AddOffsetsToTxn)"),
            ));
        }
        let mut next = meta;
        next.update_ms = now_ms();
        let pending = next.groups.entry(group.to_owned()).or_default();
        for commit in offsets {
            pending.insert(
                commit.topic_partition,
                PendingOffset {
                    offset: commit.offset,
                    metadata: commit.metadata,
                },
            );
        }
        self.persist(&slot, Some(next)).await
    }

    /// Commits or aborts the open transaction; returns once its markers are in every
    /// partition and, on commit, its offsets are the groups' (so the caller reads its own
    /// commit at once). A retry of an end that already happened succeeds again.
    pub async fn end_txn(
        &self,
        transactional_id: &str,
        producer: ProducerIdAndEpoch,
        result: TxnResult,
    ) -> Result<()> {
        self.end(transactional_id, producer, result, true).await
    }

    /// Kafka's EndTxn: commits or aborts the open transaction, returning once the decision
    /// is durable in the coordinator's log (and, on commit, the offsets it carries are the
    /// groups'), as Kafka's coordinator does. The markers and the `Complete` state follow in
    /// the background, under the id's transition lock: until they are written, the partitions' LSO holds read_committed readers back,
    /// and the producer's next AddPartitionsToTxn or AddOffsetsToTxn waits for them (Kafka
    /// answers `CONCURRENT_TRANSACTIONS` and the client retries; here the coordinator is in
    /// the process, so it waits, up to five seconds). A crash in between is finished at
    /// the next open, like any decided transaction.
    pub async fn end_txn_decided(
        &self,
        transactional_id: &str,
        producer: ProducerIdAndEpoch,
        result: TxnResult,
    ) -> Result<()> {
        self.end(transactional_id, producer, result, false).await
    }

    /// [`Broker::end_txn`] (`complete`) or [`Broker::end_txn_decided`].
    async fn end(
        &self,
        id: &str,
        producer: ProducerIdAndEpoch,
        result: TxnResult,
        complete: bool,
    ) -> Result<()> {
        let (slot, op, meta) = self.lock_producer(id, producer).await?;
        let wrong = |state: TxnState| {
            invalid_state(
                id,
                format!("cannot {} a transaction in state {state}", result.verb()),
            )
        };
        match (meta.state, result) {
            (TxnState::Ongoing, _) if complete => self.end_open(&slot, &meta, result, None).await,
            (TxnState::Ongoing, _) => {
                self.decide(&slot, &meta, result, None).await?;
                // The offsets are the group's before the answer, so a consumer that takes
                // over (OffsetFetch) starts after what this transaction consumed. Should
                // this fail, the decision stands and the next request of the id finishes it.
                if result == TxnResult::Commit {
                    let decided = slot.meta().ok_or_else(|| concurrent(id))?;
                    self.commit_txn_offsets(&decided).await?;
                }
                let broker = self.clone();
                tokio::spawn(async move {
                    // Holding the transition lock until the end is complete.
                    let _op = op;
                    if let Err(e) = broker.complete(&slot, false, false).await {
                        tracing::warn!(
                            transactional_id = %slot.id,
                            error = %e,
                            "could not finish a decided transaction; retrying later"
                        );
                    }
                });
                Ok(())
            }
            (TxnState::CompleteCommit, TxnResult::Commit)
            | (TxnState::CompleteAbort, TxnResult::Abort) => Ok(()),
            (state, _) => Err(wrong(state)),
        }
    }

    /// Ends the open transaction `meta` of `slot` (transition lock held): writes its
    /// decision, then finishes it. `fence`: abort under this bumped epoch (a new instance, or
    /// a timeout).
    async fn end_open(
        &self,
        slot: &Arc<Slot>,
        meta: &TxnMeta,
        result: TxnResult,
        fence: Option<i16>,
    ) -> Result<()> {
        self.decide(slot, meta, result, fence).await?;
        self.finish(slot, false).await
    }

    /// Writes the decision on the open transaction `meta` of `slot` (transition lock held):
    /// `PrepareCommit`/`PrepareAbort`, durably; from then on no batch of it is accepted.
    async fn decide(
        &self,
        slot: &Arc<Slot>,
        meta: &TxnMeta,
        result: TxnResult,
        fence: Option<i16>,
    ) -> Result<()> {
        let mut next = meta.clone();
        next.state = match result {
            TxnResult::Commit => TxnState::PrepareCommit,
            TxnResult::Abort => TxnState::PrepareAbort,
        };
        next.update_ms = now_ms();
        if let Some(epoch) = fence {
            next.epoch = epoch;
            next.last_epoch = -1;
        }
        // From here on no batch of the transaction is accepted, so its markers will follow
        // every one that was.
        slot.state.lock().ending = true;
        if let Err(e) = self.persist(slot, Some(next)).await {
            slot.state.lock().ending = false;
            return Err(e);
        }
        Ok(())
    }

    /// Finishes a decided (`PrepareCommit`/`PrepareAbort`) transaction: markers into each of
    /// its partitions (only where the producer's transaction is still open, when
    /// `only_open`: after a restart), its offsets committed on commit, then the `Complete`
    /// state written. Called with the transition lock held.
    async fn finish(&self, slot: &Arc<Slot>, only_open: bool) -> Result<()> {
        self.complete(slot, only_open, true).await
    }

    /// [`Broker::finish`], committing the offsets only when `offsets` (not when the caller
    /// committed them already).
    async fn complete(&self, slot: &Arc<Slot>, only_open: bool, offsets: bool) -> Result<()> {
        let Some(meta) = slot.meta() else {
            return Ok(());
        };
        let (control, done) = match meta.state {
            TxnState::PrepareCommit => (ControlType::Commit, TxnState::CompleteCommit),
            TxnState::PrepareAbort => (ControlType::Abort, TxnState::CompleteAbort),
            _ => return Ok(()),
        };
        self.write_markers(&meta, control, only_open).await?;
        if offsets && control == ControlType::Commit {
            self.commit_txn_offsets(&meta).await?;
        }
        let settled = meta.settled(done, now_ms());
        if meta.internal {
            self.persist(slot, None).await?;
            self.coordinator().remove(slot);
        } else {
            self.persist(slot, Some(settled)).await?;
        }
        tracing::debug!(transactional_id = %slot.id, state = %done, "transaction ended");
        Ok(())
    }

    /// Writes the transaction's marker into each of its partitions, in their append queues.
    async fn write_markers(
        &self,
        meta: &TxnMeta,
        control: ControlType,
        only_open: bool,
    ) -> Result<()> {
        let marker = EndTxnMarker {
            control,
            coordinator_epoch: COORDINATOR_EPOCH,
        };
        let writes = meta.partitions.iter().map(|tp| async move {
            let handle = match self.topic(&tp.topic) {
                Ok(handle) => handle,
                // Deleted since: nothing left to mark.
                Err(BrokerError::UnknownTopic { .. }) => return Ok(()),
                Err(e) => return Err(e),
            };
            let Ok(partition) = handle.partition(tp.partition) else {
                return Ok(());
            };
            if only_open && partition.log.open_transaction(meta.producer_id).is_none() {
                return Ok(());
            }
            let open = self.enter_produce()?;
            let receiver =
                partition
                    .appender
                    .submit_marker(meta.producer_id, meta.epoch, marker, open)?;
            outcome(receiver).await.map(drop)
        });
        join_all(writes).await.into_iter().collect()
    }

    /// Commits the offsets a committed transaction carries (of partitions that still exist).
    async fn commit_txn_offsets(&self, meta: &TxnMeta) -> Result<()> {
        let commit_timestamp = now_ms();
        for (group, pending) in &meta.groups {
            let entries: Vec<(TopicPartition, CommittedOffset)> = pending
                .iter()
                .filter(|(tp, _)| {
                    self.topic(&tp.topic)
                        .is_ok_and(|t| t.partition(tp.partition).is_ok())
                })
                .map(|(tp, p)| {
                    (
                        tp.clone(),
                        CommittedOffset {
                            offset: p.offset,
                            metadata: p.metadata.clone(),
                            commit_timestamp,
                        },
                    )
                })
                .collect();
            if entries.is_empty() {
                continue;
            }
            let offsets = Arc::clone(&self.inner.offsets);
            let group = group.clone();
            blocking(move || offsets.commit(&group, entries)).await?;
        }
        Ok(())
    }

    /// Queues a transactional batch of `transactional_id` for `tp` if its transaction is open
    /// with this producer and epoch and the partition was added to it (else the refusal),
    /// under the slot's state lock (see the module doc). `queue` does the queuing.
    pub(crate) fn queue_transactional<T>(
        &self,
        transactional_id: &str,
        producer: ProducerIdAndEpoch,
        tp: &TopicPartition,
        queue: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        let id = transactional_id;
        let slot = self
            .coordinator()
            .slot(id)
            .ok_or_else(|| mapping(id, producer.producer_id))?;
        let state = slot.state.lock();
        let meta = state
            .meta
            .as_ref()
            .ok_or_else(|| mapping(id, producer.producer_id))?;
        if meta.producer_id != producer.producer_id {
            return Err(mapping(id, producer.producer_id));
        }
        if producer.epoch < meta.epoch {
            return Err(TxnError::ProducerFenced {
                producer_id: producer.producer_id,
                epoch: producer.epoch,
                current: meta.epoch,
                partition: Some(tp.clone()),
            }
            .into());
        }
        if producer.epoch != meta.epoch || meta.state != TxnState::Ongoing || state.ending {
            return Err(invalid_state(
                id,
                "no transaction is open for this producer",
            ));
        }
        if !meta.partitions.contains(tp) {
            return Err(invalid_state(
                id,
                format!("{tp} was not added to the transaction (AddPartitionsToTxn)"),
            ));
        }
        queue()
    }

    /// Aborts open transactions past their timeout (fencing their producers), finishes
    /// decided ones a failure left behind, and forgets ids idle past their expiration.
    pub(crate) async fn check_transactions(&self) {
        let coordinator = self.coordinator();
        let now = now_ms();
        let expiration = i64::try_from(coordinator.config.id_expiration_ms).unwrap_or(i64::MAX);
        for slot in coordinator.slots() {
            let Some(meta) = slot.meta() else { continue };
            let timed_out = meta.state == TxnState::Ongoing
                && now >= meta.start_ms.saturating_add(i64::from(meta.timeout_ms));
            let expired = matches!(
                meta.state,
                TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
            ) && now >= meta.update_ms.saturating_add(expiration);
            if !(timed_out || expired || meta.state.is_preparing()) {
                continue;
            }
            let Some((slot, _op)) = coordinator.lock(&slot.id, false).await else {
                continue;
            };
            let Some(meta) = slot.meta() else { continue };
            let outcome = match meta.state {
                TxnState::Ongoing if timed_out => {
                    tracing::info!(
                        transactional_id = %slot.id,
                        timeout_ms = meta.timeout_ms,
                        "aborting a transaction past its timeout"
                    );
                    let fence = meta.epoch.saturating_add(1);
                    self.end_open(&slot, &meta, TxnResult::Abort, Some(fence))
                        .await
                }
                state if state.is_preparing() => self.finish(&slot, false).await,
                TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort if expired => {
                    let forgotten = self.persist(&slot, None).await;
                    if forgotten.is_ok() {
                        coordinator.remove(&slot);
                    }
                    forgotten
                }
                _ => Ok(()),
            };
            if let Err(e) = outcome {
                tracing::warn!(transactional_id = %slot.id, error = %e, "transaction check failed; retrying later");
            }
        }
    }

    /// After the broker opens: finishes every transaction that was deciding when it stopped,
    /// and aborts brook's own atomic writes that were open (no caller waits for them). Other
    /// open transactions are aborted when their timeout passes.
    pub(crate) async fn recover_transactions(&self) {
        let coordinator = self.coordinator();
        for slot in coordinator.slots() {
            let Some(meta) = slot.meta() else { continue };
            let outcome = match meta.state {
                state if state.is_preparing() => {
                    let Some((slot, _op)) = coordinator.lock(&slot.id, false).await else {
                        continue;
                    };
                    self.finish(&slot, true).await
                }
                TxnState::Ongoing if meta.internal => {
                    let Some((slot, _op)) = coordinator.lock(&slot.id, false).await else {
                        continue;
                    };
                    self.end_open(&slot, &meta, TxnResult::Abort, None).await
                }
                _ => Ok(()),
            };
            match outcome {
                Ok(()) => {}
                Err(e) => tracing::warn!(
                    transactional_id = %slot.id,
                    error = %e,
                    "could not finish a transaction after the restart; retrying later"
                ),
            }
        }
    }

    /// Starts a transaction of brook's own (an atomic write) over `partitions` and `groups`
    /// with their offsets, durably: returns its producer id and epoch and its id.
    pub(crate) async fn begin_internal(
        &self,
        partitions: BTreeSet<TopicPartition>,
        groups: std::collections::BTreeMap<
            String,
            std::collections::BTreeMap<TopicPartition, PendingOffset>,
        >,
    ) -> Result<(String, ProducerIdAndEpoch)> {
        let coordinator = self.coordinator();
        let producer_id = coordinator.allocate_id();
        let id = format!("brook-atomic-{producer_id}");
        let Some((slot, _op)) = coordinator.lock(&id, true).await else {
            return Err(concurrent(&id));
        };
        let now = now_ms();
        let timeout = u32::try_from(coordinator.config.atomic_timeout_ms).unwrap_or(u32::MAX);
        let mut meta = TxnMeta::new(producer_id, timeout, now);
        meta.internal = true;
        meta.state = TxnState::Ongoing;
        meta.start_ms = now;
        meta.partitions = partitions;
        meta.groups = groups;
        let answer = ProducerIdAndEpoch::of(&meta);
        self.persist(&slot, Some(meta)).await?;
        Ok((id, answer))
    }

    /// Ends a transaction of brook's own (see [`Coordinator`]'s module doc).
    pub(crate) async fn end_internal(&self, id: &str, result: TxnResult) -> Result<()> {
        let Some((slot, _op)) = self.coordinator().lock(id, false).await else {
            return Err(invalid_state(
                id,
                "the atomic write's transaction is gone (timed out?)",
            ));
        };
        let meta = slot
            .meta()
            .ok_or_else(|| invalid_state(id, "the atomic write's transaction is gone"))?;
        match meta.state {
            TxnState::Ongoing => self.end_open(&slot, &meta, result, None).await,
            state if state.is_preparing() => self.finish(&slot, false).await,
            state => Err(invalid_state(id, format!("already ended ({state})"))),
        }
    }
}

fn mapping(id: &str, producer_id: i64) -> BrokerError {
    TxnError::InvalidProducerIdMapping {
        transactional_id: id.to_owned(),
        producer_id,
    }
    .into()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use brook_log::batch::{BatchBuilder, Compression, RecordRef};

    use super::*;
    use crate::{BrokerConfig, Isolation, NewTopic, OffsetCommit};

    async fn open(dir: &std::path::Path) -> Broker {
        let mut config = BrokerConfig::new(dir);
        config.log.durability = brook_log::Durability::None;
        // A dropped broker lets go of its directory once its last task ends.
        loop {
            match Broker::open(config.clone()).await {
                Ok(broker) => return broker,
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }

    async fn values(broker: &Broker, partition: u32, isolation: Isolation) -> Vec<String> {
        let fetched = broker
            .fetch_isolated("t", partition, 0, 1 << 20, Duration::ZERO, isolation)
            .await
            .expect("fetch");
        fetched
            .records()
            .expect("records")
            .into_iter()
            .map(|r| String::from_utf8(r.value.expect("value").to_vec()).expect("utf8"))
            .collect()
    }

    /// The crash window of EndTxn: the decision is in the coordinator's log, no marker is in
    /// any partition yet, the offsets are not the group's. The next open finishes the end.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_end_decided_before_a_crash_is_completed_at_the_next_open() {
        for (decided, done, visible) in [
            (TxnState::PrepareCommit, TxnState::CompleteCommit, true),
            (TxnState::PrepareAbort, TxnState::CompleteAbort, false),
        ] {
            let dir = tempfile::tempdir().expect("tempdir");
            let producer = {
                let broker = open(dir.path()).await;
                broker
                    .create_topic(NewTopic::new("t", 2))
                    .await
                    .expect("topic");
                let p = broker
                    .init_producer_id(Some("app"), 60_000, None)
                    .await
                    .expect("init");
                let partitions = vec![TopicPartition::new("t", 0), TopicPartition::new("t", 1)];
                broker
                    .add_partitions_to_txn("app", p, partitions)
                    .await
                    .expect("add partitions");
                for partition in 0..2 {
                    let mut batch = BatchBuilder::new(Compression::None)
                        .with_producer(p.producer_id, p.epoch, 0)
                        .transactional();
                    batch.push(RecordRef {
                        key: None,
                        value: Some(b"x"),
                        headers: &[],
                        timestamp: 1_700_000_000_000,
                    });
                    broker
                        .produce_transactional_batch(
                            "app",
                            "t",
                            partition,
                            batch.build().expect("batch"),
                        )
                        .await
                        .expect("produce");
                }
                broker
                    .add_offsets_to_txn("app", p, "g")
                    .await
                    .expect("add offsets");
                broker
                    .txn_offset_commit("app", p, "g", vec![OffsetCommit::new("t", 0, 1)])
                    .await
                    .expect("txn offsets");
                // EndTxn's first step only, then the broker dies without closing anything.
                let coordinator = broker.coordinator();
                let mut meta = coordinator
                    .slot("app")
                    .and_then(|s| s.meta())
                    .expect("state");
                meta.state = decided;
                let log = Arc::clone(&coordinator.log);
                blocking(move || log.append("app", Some(&meta)))
                    .await
                    .expect("decision written");
                assert_eq!(broker.last_stable_offset("t", 0).expect("lso"), 0);
                p
            };

            let broker = open(dir.path()).await;
            let described = broker.describe_transaction("app").expect("known");
            assert_eq!(described.state, done, "{decided} is finished at open");
            assert_eq!(described.producer_id, producer.producer_id);
            let expected: &[&str] = if visible { &["x"] } else { &[] };
            for partition in 0..2 {
                assert_eq!(
                    broker.last_stable_offset("t", partition).expect("lso"),
                    2,
                    "the record and its marker, settled"
                );
                assert_eq!(
                    values(&broker, partition, Isolation::ReadCommitted).await,
                    expected
                );
                assert_eq!(
                    values(&broker, partition, Isolation::ReadUncommitted).await,
                    ["x"]
                );
            }
            let committed = broker.committed_offsets("g", &[]).expect("offsets");
            let offsets: Vec<u64> = committed.iter().map(|(_, c)| c.offset).collect();
            let expected: &[u64] = if visible { &[1] } else { &[] };
            assert_eq!(offsets, expected, "the offsets go with the decision");
            broker.close().await.expect("close");
        }
    }
}
