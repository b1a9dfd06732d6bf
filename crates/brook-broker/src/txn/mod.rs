//! Transactions, with Kafka's semantics (KIP-98, KIP-447): a producer's writes to many
//! partitions, and the consumer offsets that go with them, become visible to read_committed
//! readers all at once, or never.
//!
//! - `coordinator`: the transaction coordinator (InitProducerId, AddPartitionsToTxn,
//!   AddOffsetsToTxn, TxnOffsetCommit, EndTxn, timeouts, recovery after a restart), and the
//!   check that admits a transactional batch into a partition.
//! - `txn_log`: the coordinator's own durable log under `<data>/transactions/`.
//! - `state`: one transactional id's state and its record in that log.
//! - `produce`: a client's transactional batch, checked by the coordinator on its way in.
//! - `atomic`: brook's own atomic writes ([`Broker::transaction`]) on the same machinery, for
//!   the doors that are not Kafka's.
//! - `config`, `error`: the coordinator's settings and refusals.
//!
//! In each partition, brook-log keeps what a transaction leaves there: every producer's open
//! transaction, the last stable offset (LSO) below which everything is settled, the aborted
//! transaction index, and the markers the coordinator writes (`PartitionLog::append_marker`).
//! A read_committed fetch ([`Isolation::ReadCommitted`], the default of every door but Kafka's,
//! whose clients choose) reads below the LSO and drops aborted transactions' records; control
//! batches never reach an application through the gRPC, HTTP or embedded doors.

mod atomic;
mod config;
mod coordinator;
mod error;
mod produce;
mod state;
mod txn_log;

use std::sync::Arc;

pub use atomic::Transaction;
pub use config::TxnConfig;
pub(crate) use coordinator::Coordinator;
pub use coordinator::TRANSACTIONAL_ID_BYTES_MAX;
pub use error::TxnError;
pub(crate) use produce::refuse_untracked;
pub use state::TxnState;

use crate::broker::Broker;
use crate::error::Result;
use crate::types::TopicPartition;

/// A producer's id and epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProducerIdAndEpoch {
    pub producer_id: i64,
    pub epoch: i16,
}

impl ProducerIdAndEpoch {
    pub fn new(producer_id: i64, epoch: i16) -> Self {
        Self { producer_id, epoch }
    }

    pub(crate) fn of(meta: &state::TxnMeta) -> Self {
        Self::new(meta.producer_id, meta.epoch)
    }
}

/// How a transaction ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxnResult {
    Commit,
    Abort,
}

impl TxnResult {
    fn verb(self) -> &'static str {
        match self {
            Self::Commit => "commit",
            Self::Abort => "abort",
        }
    }
}

/// What a reader sees of transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Isolation {
    /// Only records below the last stable offset, and none of an aborted transaction (Kafka's
    /// `read_committed`). The default on the gRPC, HTTP and embedded doors.
    #[default]
    ReadCommitted,
    /// Everything below the high watermark, open and aborted transactions included (Kafka's
    /// `read_uncommitted`).
    ReadUncommitted,
}

/// A transactional id in a listing (Kafka's ListTransactions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionListing {
    pub transactional_id: String,
    pub producer_id: i64,
    pub state: TxnState,
}

/// A transactional id's state (Kafka's DescribeTransactions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionDescription {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub state: TxnState,
    pub timeout_ms: u32,
    /// When the open transaction began (ms since the epoch); `None` when none is open.
    pub start_ms: Option<i64>,
    /// The partitions of the open transaction, sorted.
    pub partitions: Vec<TopicPartition>,
    /// The groups whose offsets it will commit, sorted.
    pub groups: Vec<String>,
    /// brook's own atomic write rather than a client's transactional id.
    pub internal: bool,
}

/// What a partition knows of one producer (Kafka's DescribeProducers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerDescription {
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// The sequence of its last record in this epoch, -1 if none.
    pub last_sequence: i32,
    /// Its last batch's timestamp, -1 if none.
    pub last_timestamp: i64,
    /// The coordinator epoch of its last marker, -1 if none.
    pub coordinator_epoch: i32,
    /// The first offset of its open transaction here.
    pub current_txn_start_offset: Option<u64>,
}

impl Broker {
    /// The transactional ids the coordinator knows, sorted, filtered by state and producer id
    /// (empty filters keep everything) and, with `min_duration_ms`, to transactions open at
    /// least that long.
    pub fn list_transactions(
        &self,
        states: &[TxnState],
        producer_ids: &[i64],
        min_duration_ms: Option<u64>,
    ) -> Vec<TransactionListing> {
        let now = crate::produce::now_ms();
        self.inner
            .txns
            .slots()
            .into_iter()
            .filter_map(|slot| {
                let meta = slot.meta()?;
                let keep = (states.is_empty() || states.contains(&meta.state))
                    && (producer_ids.is_empty() || producer_ids.contains(&meta.producer_id))
                    && min_duration_ms.is_none_or(|min| {
                        meta.start_ms >= 0
                            && now.saturating_sub(meta.start_ms)
                                >= i64::try_from(min).unwrap_or(i64::MAX)
                    });
                keep.then(|| TransactionListing {
                    transactional_id: slot.id.clone(),
                    producer_id: meta.producer_id,
                    state: meta.state,
                })
            })
            .collect()
    }

    /// `transactional_id`'s state, or [`TxnError::TransactionalIdNotFound`].
    pub fn describe_transaction(&self, transactional_id: &str) -> Result<TransactionDescription> {
        let not_found = || TxnError::TransactionalIdNotFound {
            transactional_id: transactional_id.to_owned(),
        };
        let meta = self
            .inner
            .txns
            .slot(transactional_id)
            .and_then(|slot| slot.meta())
            .ok_or_else(not_found)?;
        Ok(TransactionDescription {
            transactional_id: transactional_id.to_owned(),
            producer_id: meta.producer_id,
            producer_epoch: meta.epoch,
            state: meta.state,
            timeout_ms: meta.timeout_ms,
            start_ms: (meta.start_ms >= 0).then_some(meta.start_ms),
            partitions: meta.partitions.iter().cloned().collect(),
            groups: meta.groups.keys().cloned().collect(),
            internal: meta.internal,
        })
    }

    /// The producers `topic`-`partition` knows, sorted by id: their epochs, last sequences and
    /// open transactions (what shows a transaction that holds a partition's LSO back).
    pub fn describe_producers(
        &self,
        topic: &str,
        partition: u32,
    ) -> Result<Vec<ProducerDescription>> {
        let handle = self.topic(topic)?;
        let log = &handle.partition(partition)?.log;
        Ok(log
            .producers()
            .into_iter()
            .map(|p| ProducerDescription {
                producer_id: p.producer_id,
                producer_epoch: p.epoch,
                last_sequence: p.last_sequence(),
                last_timestamp: p.last_timestamp,
                coordinator_epoch: p.coordinator_epoch,
                current_txn_start_offset: p.txn_first_offset,
            })
            .collect())
    }

    /// The last stable offset of `topic`-`partition`: read_committed readers see nothing at or
    /// past it.
    pub fn last_stable_offset(&self, topic: &str, partition: u32) -> Result<u64> {
        Ok(self
            .topic(topic)?
            .partition(partition)?
            .log
            .last_stable_offset())
    }
}

/// Finishes what a stop left undecided, then checks timeouts every `abort_check_ms` until the
/// broker closes. Between checks the task holds only a weak reference to the broker, so it
/// never keeps a dropped broker alive.
pub(crate) async fn start(broker: &Broker) {
    broker.recover_transactions().await;
    let every = broker.inner.txns.config.abort_check();
    let weak = Arc::downgrade(&broker.inner);
    let mut shutdown = broker.shutdown_signal();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                _ = shutdown.wait_for(|closed| *closed) => return,
            }
            let Some(inner) = weak.upgrade() else {
                return;
            };
            Broker { inner }.check_transactions().await;
        }
    });
}
