//! The broker's one error type, and the coarse kind every door maps to its own status.
//!
//! Each variant carries what a user needs to fix the request (the topic, the partition, the
//! valid range, the limit that was hit). Doors never match on messages: they call
//! [`BrokerError::kind`] for the gRPC status / HTTP status, and match variants where their
//! protocol is finer (Kafka tells `CORRUPT_MESSAGE` from `INVALID_REQUEST`, for instance).
//!
//! What a door sends a remote client is this type's `Display`, so it never shows a path on the
//! server: a storage failure names the topic and partition ([`BrokerError::PartitionStorage`],
//! [`BrokerError::Corrupt`]) and describes the failure without the file; the storage error
//! with its path stays the error's `source()` and is logged at error level where it is
//! converted ([`BrokerError::from_log`]).

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
    /// A failed fsync (or a write that could not be undone) stopped the partition's writes.
    /// `reason` is the storage's own account, which names files: it is logged, and kept here
    /// for embedded callers, but not shown to remote clients.
    #[error("{topic}-{partition} is poisoned for writes after a storage failure")]
    Poisoned {
        topic: String,
        partition: u32,
        reason: String,
    },
    /// Stored data failed its checks (CRC-32C, lengths, offsets) when read: it is not served.
    #[error("corrupt data in {topic}-{partition} at offset {offset}: {reason}")]
    Corrupt {
        topic: String,
        partition: u32,
        /// The first offset of the batch that failed (or the offset being read).
        offset: u64,
        reason: String,
    },
    /// A storage failure while serving a partition, with no finer variant (an I/O error, say).
    #[error("storage failure in {topic}-{partition}: {}", public_message(.source))]
    PartitionStorage {
        topic: String,
        partition: u32,
        /// Boxed: a storage error is large, and this one is rare.
        #[source]
        source: Box<LogError>,
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
    /// The Kafka cluster a gateway or an `api::Brook` on Kafka works on failed a call and no
    /// finer variant says why (unreachable, timed out, refused): `reason` is the Kafka client's
    /// account. `unavailable` when retrying later may succeed.
    #[error("the Kafka cluster failed to {operation}: {reason}")]
    Cluster {
        operation: &'static str,
        reason: String,
        unavailable: bool,
    },
    /// A transaction or idempotent producer refusal (fenced, out of order, invalid state, ...).
    #[error(transparent)]
    Transaction(#[from] crate::txn::TxnError),
    /// The authorizer refused (docs/security.md): the principal may not do `operation` on the
    /// resource, or (`internal`) the resource is an internal topic clients may not touch.
    #[error("{}", denied_message(principal, *operation, *resource_type, resource, *internal))]
    Denied {
        principal: String,
        operation: crate::auth::Operation,
        resource_type: crate::auth::ResourceType,
        resource: String,
        internal: bool,
    },
    #[error("user {user:?} does not exist")]
    UnknownUser { user: String },
    #[error("user {user:?} already exists")]
    UserExists { user: String },
    #[error("token {id:?} does not exist (revoked, expired and dropped, or never made)")]
    UnknownToken { id: String },
    /// A storage failure of a topic-level operation (open, create, delete) with no finer
    /// variant.
    #[error("storage failure: {}", public_message(.0))]
    Storage(#[from] LogError),
}

/// The message of [`BrokerError::Denied`].
fn denied_message(
    principal: &str,
    operation: crate::auth::Operation,
    resource_type: crate::auth::ResourceType,
    resource: &str,
    internal: bool,
) -> String {
    if internal {
        format!("topic {resource:?} is internal to brook: {principal} may not {operation} it")
    } else {
        format!("{principal} is not authorized to {operation} {resource_type} {resource:?}")
    }
}

/// A storage error as a remote client may read it: what failed, without the server's paths.
fn public_message(err: &LogError) -> String {
    match err {
        LogError::Io { source, .. } => format!("I/O error: {source}"),
        LogError::Poisoned { .. } => "the log is poisoned for writes after a failed fsync".into(),
        LogError::Corrupt { offset, .. } => format!("corrupt batch at offset {offset}"),
        LogError::Locked { holder, .. } => {
            format!("the data directory is locked by another process ({holder})")
        }
        LogError::BadMetaFile { what, reason, .. } => format!("bad {what} file: {reason}"),
        // Their reasons name files: say what the partition does, and where to look.
        LogError::Offline { .. } => {
            "the partition is offline: its files could not be opened (see the server log)".into()
        }
        LogError::ReadOnly { offset, .. } => format!(
            "the partition is read-only: its stored data is damaged at offset {offset} and an \
             operator must repair it (see the server log)"
        ),
        LogError::Batch(_)
        | LogError::OffsetOutOfRange { .. }
        | LogError::InvalidTopicName { .. }
        | LogError::TopicExists(_)
        | LogError::UnknownTopic(_)
        | LogError::UnknownPartition { .. }
        | LogError::InvalidConfig(_)
        | LogError::Closed => err.to_string(),
        // A variant added later may name a file: say only that storage failed.
        _ => "see the server log".into(),
    }
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
/// | `DataLoss`        | `DATA_LOSS`          | 500  | `CORRUPT_MESSAGE`               |
/// | `PermissionDenied`| `PERMISSION_DENIED`  | 403  | `TOPIC_AUTHORIZATION_FAILED` (by resource) |
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
    /// Stored data is damaged: it is reported, never served.
    DataLoss,
    /// The authorizer refused the request.
    PermissionDenied,
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
            | E::UnknownCall { .. }
            | E::UnknownUser { .. }
            | E::UnknownToken { .. } => ErrorKind::NotFound,
            E::InvalidTopicName { .. }
            | E::InvalidGroupId { .. }
            | E::InvalidPartitions { .. }
            | E::InvalidConfig { .. }
            | E::InvalidBatch { .. }
            | E::InvalidRequest { .. }
            | E::PartitionsNotIncreased { .. }
            | E::GroupNotEmpty { .. }
            | E::GroupInUse { .. } => ErrorKind::InvalidArgument,
            E::TopicExists { .. } | E::UserExists { .. } => ErrorKind::AlreadyExists,
            E::Denied { .. } => ErrorKind::PermissionDenied,
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
            E::Cluster { unavailable, .. } => {
                if *unavailable {
                    ErrorKind::Unavailable
                } else {
                    ErrorKind::Internal
                }
            }
            E::Corrupt { .. } => ErrorKind::DataLoss,
            E::Transaction(e) => e.kind(),
            E::Storage(e) => storage_kind(e),
            E::PartitionStorage { source, .. } => storage_kind(source),
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
            LogError::Corrupt {
                segment,
                position,
                offset,
                reason,
            } => {
                tracing::error!(
                    topic,
                    partition,
                    offset,
                    segment = %segment.display(),
                    position,
                    %reason,
                    "corrupt data in the log: not served"
                );
                Self::Corrupt {
                    topic: topic.to_owned(),
                    partition,
                    offset,
                    reason,
                }
            }
            LogError::Closed => Self::Closed,
            err @ (LogError::ProducerFenced { .. }
            | LogError::OutOfOrderSequence { .. }
            | LogError::UnknownProducerId { .. }
            | LogError::InvalidTxnState { .. }) => {
                Self::Transaction(crate::txn::TxnError::from_log(err, topic, partition))
            }
            err @ (LogError::Io { .. }
            | LogError::BadMetaFile { .. }
            | LogError::Offline { .. }
            | LogError::ReadOnly { .. }) => {
                tracing::error!(topic, partition, error = %err, "storage failure");
                Self::PartitionStorage {
                    topic: topic.to_owned(),
                    partition,
                    source: Box::new(err),
                }
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
            other => {
                tracing::error!(error = %other, "storage failure");
                Self::Storage(other)
            }
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
        LogError::Corrupt { .. } => ErrorKind::DataLoss,
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

    #[test]
    fn what_a_client_reads_names_the_partition_never_a_server_path() {
        let path = "/srv/brook-data/secret-tenant-0/00000000000000000000.log";
        let errors = [
            BrokerError::from_log(
                LogError::io(path, std::io::Error::other("Input/output error")),
                "orders",
                3,
            ),
            BrokerError::from_log(
                LogError::Poisoned {
                    path: path.into(),
                    reason: format!("I/O error on {path}: injected"),
                },
                "orders",
                3,
            ),
            BrokerError::from_log(
                LogError::Corrupt {
                    segment: path.into(),
                    position: 4096,
                    offset: 17,
                    reason: "batch CRC-32C mismatch".into(),
                },
                "orders",
                3,
            ),
            BrokerError::from_log(
                LogError::BadMetaFile {
                    what: "checkpoint",
                    path: path.into(),
                    reason: "bad magic".into(),
                },
                "orders",
                3,
            ),
            BrokerError::from_admin_log(LogError::io(path, std::io::Error::other("gone"))),
            BrokerError::from_admin_log(LogError::Locked {
                path: path.into(),
                holder: "pid 1".into(),
            }),
        ];
        for err in errors {
            let text = err.to_string();
            assert!(!text.contains("/srv"), "{text}");
            if !matches!(err, BrokerError::Storage(_)) {
                assert!(text.contains("orders-3"), "{text}");
            }
            // The path stays in the source chain, for the server's log.
            if let Some(source) = std::error::Error::source(&err) {
                assert!(source.to_string().contains("/srv"), "{source}");
            }
        }
        let corrupt = BrokerError::from_log(
            LogError::Corrupt {
                segment: path.into(),
                position: 0,
                offset: 17,
                reason: "bad".into(),
            },
            "orders",
            3,
        );
        assert_eq!(corrupt.kind(), ErrorKind::DataLoss);
        assert!(corrupt.to_string().contains("offset 17"), "{corrupt}");
    }
}
