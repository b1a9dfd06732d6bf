//! Errors of the storage engine, with the context needed to find the bad byte.

use std::path::PathBuf;

/// A batch that cannot be accepted or read: the format's own error, from `brook-batch`.
pub use brook_batch::BatchError;

/// Errors of the partition log and the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Batch(#[from] BatchError),
    #[error("offset {offset} is out of range: the log holds [{log_start}, {log_end})")]
    OffsetOutOfRange {
        offset: u64,
        log_start: u64,
        log_end: u64,
    },
    #[error("the log at {path} is poisoned for writes after a failed fsync: {reason}; restart the broker to recover")]
    Poisoned { path: PathBuf, reason: String },
    #[error("corrupt batch in {segment} at file position {position} (offset {offset}): {reason}")]
    Corrupt {
        segment: PathBuf,
        position: u64,
        offset: u64,
        reason: String,
    },
    #[error("invalid topic name {name:?}: {reason}")]
    InvalidTopicName { name: String, reason: &'static str },
    #[error("topic {0:?} already exists")]
    TopicExists(String),
    #[error("topic {0:?} does not exist")]
    UnknownTopic(String),
    #[error("partition {partition} of topic {topic:?} does not exist")]
    UnknownPartition { topic: String, partition: u32 },
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    #[error("data directory {path} is locked by another process ({holder}); stop it or choose another --data-dir")]
    Locked { path: PathBuf, holder: String },
    #[error("bad {what} file {path}: {reason}")]
    BadMetaFile {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("the log is closed")]
    Closed,
    #[error("the partition at {dir} is offline: {reason}")]
    Offline { dir: PathBuf, reason: String },
    /// Appends refused because recovery found damage at `offset` (the log is readable up to
    /// it); `reason` names the damage and the command that repairs it.
    #[error("the partition at {dir} is read-only: {reason}")]
    ReadOnly {
        dir: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error(
        "producer {producer_id} epoch {epoch} is fenced: the partition has seen epoch {current}"
    )]
    ProducerFenced {
        producer_id: i64,
        epoch: i16,
        current: i16,
    },
    #[error(
        "out of order sequence from producer {producer_id} epoch {epoch}: expected {expected}, \
         got {got}"
    )]
    OutOfOrderSequence {
        producer_id: i64,
        epoch: i16,
        expected: i32,
        got: i32,
    },
    #[error(
        "producer {producer_id} is unknown to the partition and its first batch starts at \
         sequence {sequence}, not 0"
    )]
    UnknownProducerId { producer_id: i64, sequence: i32 },
    #[error("invalid transaction state for producer {producer_id}: {reason}")]
    InvalidTxnState { producer_id: i64, reason: String },
}

impl LogError {
    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

/// Result alias for the storage engine.
pub type Result<T, E = LogError> = std::result::Result<T, E>;
