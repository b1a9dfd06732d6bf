//! The broker's one error type, and the coarse kind every door maps to its own status.
//!
//! Each variant carries what a user needs to fix the request (the topic, the partition, the
//! valid range, the limit that was hit). Doors never match on messages: they call
//! [`BrokerError::kind`] for the gRPC status / HTTP status, and match variants where their
//! protocol is finer (Kafka tells `CORRUPT_MESSAGE` from `INVALID_REQUEST`, for instance).

use brook_log::{BatchError, LogError};

/// Result alias of the broker.
pub type Result<T, E = BrokerError> = std::result::Result<T, E>;

/// Why a broker call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    #[error("topic {topic:?} does not exist")]
    UnknownTopic { topic: String },
    #[error(
        "partition {partition} of topic {topic:?} does not exist (the topic has {partitions})"
    )]
    UnknownPartition {
        topic: String,
        partition: u32,
        partitions: u32,
    },
    #[error("group {group:?} has no members and no committed offsets")]
    UnknownGroup { group: String },
    #[error("group {group:?} has live {holder} members; use another group id or stop them")]
    GroupInUse {
        group: String,
        holder: crate::group_claim::GroupProtocol,
    },
    /// An admin change of a group's offsets (deleting the group, resetting its offsets) needs
    /// the group without live members.
    #[error(
        "group {group:?} has live members; stop them first (a Kafka consumer that stops \
         without leaving stays a member until its session times out)"
    )]
    GroupNotEmpty { group: String },
    /// Another admin change of the group's offsets is running: retry.
    #[error("group {group:?} is being changed by an admin operation; try again")]
    GroupBusy { group: String },
    /// Every copy of the committed offsets file is damaged: group offsets are fenced (reads
    /// and commits refused) until an operator restores or removes it; partitions serve.
    #[error("committed offsets are unavailable: {reason}")]
    OffsetsUnavailable { reason: String },
    #[error("invalid topic name {name:?}: {reason}")]
    InvalidTopicName { name: String, reason: &'static str },
    #[error("invalid group id {group:?}: {reason}")]
    InvalidGroupId { group: String, reason: &'static str },
    #[error("topic {topic:?} already exists")]
    TopicExists { topic: String },
    #[error("invalid partition count {partitions}: must be 1..={max}")]
    InvalidPartitions { partitions: u32, max: u32 },
    #[error(
        "topic {topic:?} has {partitions} partitions: a new count must be higher ({requested} \
         is not); partitions can be added, never removed"
    )]
    PartitionsNotIncreased {
        topic: String,
        partitions: u32,
        requested: u32,
    },
    #[error("invalid config: {reason}")]
    InvalidConfig { reason: String },
    #[error(
        "offset {offset} is out of range for {topic}-{partition}: valid offsets are \
         [{log_start_offset}, {high_watermark}]"
    )]
    OffsetOutOfRange {
        topic: String,
        partition: u32,
        offset: u64,
        log_start_offset: u64,
        high_watermark: u64,
    },
    #[error("{what} of {size} bytes exceeds the limit of {max} bytes ({limit})")]
    TooLarge {
        what: &'static str,
        size: usize,
        max: usize,
        /// The setting that holds the limit, so the message says what to raise.
        limit: &'static str,
    },
    #[error("invalid record batch for {topic}-{partition}: {source}")]
    InvalidBatch {
        topic: String,
        partition: u32,
        #[source]
        source: BatchError,
    },
    #[error("invalid request: {reason}")]
    InvalidRequest { reason: String },
    #[error("{topic}-{partition} is poisoned for writes: {reason}")]
    Poisoned {
        topic: String,
        partition: u32,
        reason: String,
    },
    #[error("the broker is shutting down")]
    Closed,
    #[error(
        "no reply to call {correlation_id} on topic {topic:?} within {timeout_ms} ms; a reply \
         that comes later can be fetched by its correlation id"
    )]
    CallTimeout {
        topic: String,
        correlation_id: String,
        timeout_ms: u64,
    },
    #[error("the handler of call {correlation_id} on topic {topic:?} failed: {message}")]
    HandlerFailed {
        topic: String,
        correlation_id: String,
        /// The handler's own message (the error reply's `brook_error` header).
        message: String,
    },
    #[error(
        "no call {correlation_id} on topic {topic:?} is known (never made, or forgotten after \
         the request-reply window)"
    )]
    UnknownCall {
        topic: String,
        correlation_id: String,
    },
    #[error("call {correlation_id} on topic {topic:?} ended without a reply: {reason}")]
    CallAborted {
        topic: String,
        correlation_id: String,
        reason: &'static str,
    },
    #[error("a storage task failed: {reason}")]
    Task { reason: String },
    /// A transaction or idempotent producer refusal (fenced, out of order, invalid state, ...).
    #[error(transparent)]
    Transaction(#[from] crate::txn::TxnError),
    #[error(transparent)]
    Storage(#[from] LogError),
}

/// The coarse class of a [`BrokerError`]: what a door's status code says.
///
/// | kind              | gRPC                 | HTTP | Kafka (typical)                 |
/// |-------------------|----------------------|------|---------------------------------|
/// | `NotFound`        | `NOT_FOUND`          | 404  | `UNKNOWN_TOPIC_OR_PARTITION`    |
/// | `InvalidArgument` | `INVALID_ARGUMENT`   | 400  | `INVALID_REQUEST`, `CORRUPT_MESSAGE`, `INVALID_TOPIC_EXCEPTION` |
/// | `AlreadyExists`   | `ALREADY_EXISTS`     | 409  | `TOPIC_ALREADY_EXISTS`          |
/// | `OutOfRange`      | `OUT_OF_RANGE`       | 416  | `OFFSET_OUT_OF_RANGE`           |
/// | `TooLarge`        | `RESOURCE_EXHAUSTED` | 413  | `MESSAGE_TOO_LARGE`             |
/// | `Unavailable`     | `UNAVAILABLE`        | 503  | `KAFKA_STORAGE_ERROR`           |
/// | `Internal`        | `INTERNAL`           | 500  | `UNKNOWN_SERVER_ERROR`          |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    NotFound,
    InvalidArgument,
    AlreadyExists,
    OutOfRange,
    TooLarge,
    Unavailable,
    Internal,
}

impl BrokerError {
    /// The class of this error, for mapping to a door's status code.
    pub fn kind(&self) -> ErrorKind {
        use BrokerError as E;
        match self {
            E::UnknownTopic { .. }
            | E::UnknownPartition { .. }
            | E::UnknownGroup { .. }
            | E::UnknownCall { .. } => ErrorKind::NotFound,
            E::InvalidTopicName { .. }
            | E::InvalidGroupId { .. }
            | E::InvalidPartitions { .. }
            | E::InvalidConfig { .. }
            | E::InvalidBatch { .. }
            | E::InvalidRequest { .. }
            | E::PartitionsNotIncreased { .. }
            | E::GroupNotEmpty { .. }
            | E::GroupInUse { .. } => ErrorKind::InvalidArgument,
            E::TopicExists { .. } => ErrorKind::AlreadyExists,
            E::OffsetOutOfRange { .. } => ErrorKind::OutOfRange,
            E::TooLarge { .. } => ErrorKind::TooLarge,
            // Doors that speak deadlines (gRPC DEADLINE_EXCEEDED, HTTP 504) match CallTimeout.
            E::Poisoned { .. }
            | E::Closed
            | E::CallTimeout { .. }
            | E::CallAborted { .. }
            | E::GroupBusy { .. }
            | E::OffsetsUnavailable { .. } => ErrorKind::Unavailable,
            // Not brook's failure but the handler's: doors that can say so (HTTP 502) match it.
            E::Task { .. } | E::HandlerFailed { .. } => ErrorKind::Internal,
            E::Transaction(e) => e.kind(),
            E::Storage(e) => storage_kind(e),
        }
    }

    /// Shorthand for [`BrokerError::InvalidRequest`].
    pub(crate) fn invalid(reason: impl Into<String>) -> Self {
        Self::InvalidRequest {
            reason: reason.into(),
        }
    }

    /// Converts a storage error raised while serving `topic`-`partition`, giving the variants
    /// the broker knows about their broker-level form (with the topic and partition in them).
    pub(crate) fn from_log(err: LogError, topic: &str, partition: u32) -> Self {
        match err {
            LogError::OffsetOutOfRange {
                offset,
                log_start,
                log_end,
            } => Self::OffsetOutOfRange {
                topic: topic.to_owned(),
                partition,
                offset,
                log_start_offset: log_start,
                high_watermark: log_end,
            },
            LogError::Batch(BatchError::TooLarge { size, max }) => Self::TooLarge {
                what: "record batch",
                size,
                max,
                limit: "message_bytes_max",
            },
            LogError::Batch(source) => Self::InvalidBatch {
                topic: topic.to_owned(),
                partition,
                source,
            },
            LogError::Poisoned { reason, .. } => Self::Poisoned {
                topic: topic.to_owned(),
                partition,
                reason,
            },
            LogError::Closed => Self::Closed,
            err @ (LogError::ProducerFenced { .. }
            | LogError::OutOfOrderSequence { .. }
            | LogError::UnknownProducerId { .. }
            | LogError::InvalidTxnState { .. }) => {
                Self::Transaction(crate::txn::TxnError::from_log(err, topic, partition))
            }
            other => Self::from_admin_log(other),
        }
    }

    /// Converts a storage error of a topic-level operation (create, delete, open).
    pub(crate) fn from_admin_log(err: LogError) -> Self {
        match err {
            LogError::InvalidTopicName { name, reason } => Self::InvalidTopicName { name, reason },
            LogError::TopicExists(topic) => Self::TopicExists { topic },
            LogError::UnknownTopic(topic) => Self::UnknownTopic { topic },
            LogError::UnknownPartition { topic, partition } => Self::UnknownPartition {
                topic,
                partition,
                partitions: 0,
            },
            LogError::InvalidConfig(reason) => Self::InvalidConfig { reason },
            LogError::Closed => Self::Closed,
            other => Self::Storage(other),
        }
    }
}

/// The kind of a storage error that has no broker-level variant.
fn storage_kind(err: &LogError) -> ErrorKind {
    match err {
        LogError::Batch(BatchError::TooLarge { .. }) => ErrorKind::TooLarge,
        LogError::Batch(_) | LogError::InvalidTopicName { .. } | LogError::InvalidConfig(_) => {
            ErrorKind::InvalidArgument
        }
        LogError::OffsetOutOfRange { .. } => ErrorKind::OutOfRange,
        LogError::TopicExists(_) => ErrorKind::AlreadyExists,
        LogError::UnknownTopic(_) | LogError::UnknownPartition { .. } => ErrorKind::NotFound,
        LogError::Poisoned { .. }
        | LogError::Locked { .. }
        | LogError::Closed
        | LogError::Offline { .. }
        | LogError::ReadOnly { .. } => ErrorKind::Unavailable,
        _ => ErrorKind::Internal,
    }
}

impl From<tokio::task::JoinError> for BrokerError {
    fn from(err: tokio::task::JoinError) -> Self {
        Self::Task {
            reason: err.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_errors_take_the_topic_and_partition_and_keep_their_kind() {
        let err = BrokerError::from_log(
            LogError::OffsetOutOfRange {
                offset: 9,
                log_start: 2,
                log_end: 5,
            },
            "t",
            1,
        );
        assert_eq!(err.kind(), ErrorKind::OutOfRange);
        assert!(matches!(
            err,
            BrokerError::OffsetOutOfRange {
                offset: 9,
                log_start_offset: 2,
                high_watermark: 5,
                partition: 1,
                ..
            }
        ));
        let err = BrokerError::from_log(
            LogError::Batch(BatchError::TooLarge { size: 10, max: 5 }),
            "t",
            0,
        );
        assert_eq!(err.kind(), ErrorKind::TooLarge);
        let err = BrokerError::from_log(LogError::Batch(BatchError::BadMagic(1)), "t", 0);
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert!(err.to_string().contains("t-0"), "{err}");
        let err = BrokerError::from_admin_log(LogError::TopicExists("t".into()));
        assert_eq!(err.kind(), ErrorKind::AlreadyExists);
        let io = std::io::Error::other("disk gone");
        let err = BrokerError::from_log(LogError::io("/x", io), "t", 0);
        assert_eq!(err.kind(), ErrorKind::Internal);
    }
}
