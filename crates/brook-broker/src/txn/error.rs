//! Why a transaction call failed: the transaction coordinator's refusals and the partition
//! logs' producer checks, each with what the caller needs to act on it. Doors map each variant
//! to their protocol's code (Kafka's `PRODUCER_FENCED`, `INVALID_TXN_STATE`, ...); its kind is
//! what gRPC and HTTP answer.

use brook_log::LogError;

use crate::error::ErrorKind;
use crate::types::TopicPartition;

/// A transaction or producer refusal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TxnError {
    #[error(
        "producer {producer_id} epoch {epoch} is fenced{}: epoch {current} is current (another \
         producer with the same transactional id took over, or the transaction timed out)",
        at_partition(.partition)
    )]
    ProducerFenced {
        producer_id: i64,
        epoch: i16,
        current: i16,
        /// Where a partition refused it; `None` when the coordinator did.
        partition: Option<TopicPartition>,
    },
    #[error(
        "transactional id {transactional_id:?} does not belong to producer {producer_id}; call \
         InitProducerId with it first"
    )]
    InvalidProducerIdMapping {
        transactional_id: String,
        producer_id: i64,
    },
    #[error("invalid transaction state{}: {reason}", transactional_id.as_deref().map(|t| format!(" of {t:?}")).unwrap_or_default())]
    InvalidTxnState {
        transactional_id: Option<String>,
        reason: String,
    },
    #[error("transaction {transactional_id:?} is completing; retry once it is done")]
    ConcurrentTransactions { transactional_id: String },
    #[error(
        "transaction timeout {timeout_ms} ms is not within 1..={max_ms} ms \
         (transaction.max.timeout.ms)"
    )]
    InvalidTimeout { timeout_ms: i64, max_ms: u64 },
    #[error("no transactional id {transactional_id:?} is known")]
    TransactionalIdNotFound { transactional_id: String },
    #[error("invalid transactional id {transactional_id:?}: {reason}")]
    InvalidTransactionalId {
        transactional_id: String,
        reason: &'static str,
    },
    #[error(
        "out of order sequence from producer {producer_id} epoch {epoch} in {partition}: \
         expected {expected}, got {got}"
    )]
    OutOfOrderSequence {
        producer_id: i64,
        epoch: i16,
        expected: i32,
        got: i32,
        partition: TopicPartition,
    },
    #[error(
        "producer {producer_id} is unknown to {partition} and its batch starts at sequence \
         {sequence}; initialize the producer again"
    )]
    UnknownProducerId {
        producer_id: i64,
        sequence: i32,
        partition: TopicPartition,
    },
    #[error("{} of the transaction do not exist: {}", if .0.len() == 1 { "a partition" } else { "partitions" }, list(.0))]
    UnknownPartitions(Vec<TopicPartition>),
}

fn at_partition(partition: &Option<TopicPartition>) -> String {
    partition
        .as_ref()
        .map(|tp| format!(" in {tp}"))
        .unwrap_or_default()
}

fn list(partitions: &[TopicPartition]) -> String {
    partitions
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl TxnError {
    /// A partition's refusal of a producer's batch, as the broker reports it (with the
    /// partition); `None`-like storage errors do not come here.
    pub(crate) fn from_log(err: LogError, topic: &str, partition: u32) -> Self {
        let tp = TopicPartition::new(topic, partition);
        match err {
            LogError::ProducerFenced {
                producer_id,
                epoch,
                current,
            } => Self::ProducerFenced {
                producer_id,
                epoch,
                current,
                partition: Some(tp),
            },
            LogError::OutOfOrderSequence {
                producer_id,
                epoch,
                expected,
                got,
            } => Self::OutOfOrderSequence {
                producer_id,
                epoch,
                expected,
                got,
                partition: tp,
            },
            LogError::UnknownProducerId {
                producer_id,
                sequence,
            } => Self::UnknownProducerId {
                producer_id,
                sequence,
                partition: tp,
            },
            other => Self::InvalidTxnState {
                transactional_id: None,
                reason: format!("{tp}: {other}"),
            },
        }
    }

    /// The class of the refusal, for doors without finer codes.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::ConcurrentTransactions { .. } => ErrorKind::Unavailable,
            Self::TransactionalIdNotFound { .. } | Self::UnknownPartitions(_) => {
                ErrorKind::NotFound
            }
            _ => ErrorKind::InvalidArgument,
        }
    }

    /// Whether retrying the same call later can succeed.
    pub fn is_retriable(&self) -> bool {
        matches!(self, Self::ConcurrentTransactions { .. })
    }
}
