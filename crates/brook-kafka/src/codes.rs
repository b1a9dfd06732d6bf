//! Broker errors as Kafka error codes: the one place the door decides what a client is told.

use brook_broker::{BrokerError, ErrorKind};
use brook_log::BatchError;
use kafka_protocol::error::ResponseError;

/// The Kafka error for a broker error raised while serving a request.
pub(crate) fn error_code(err: &BrokerError) -> ResponseError {
    let code = kafka_error(err);
    crate::observe::note_error(code);
    code
}

fn kafka_error(err: &BrokerError) -> ResponseError {
    use BrokerError as E;
    match err {
        E::UnknownTopic { .. } | E::UnknownPartition { .. } => {
            ResponseError::UnknownTopicOrPartition
        }
        E::UnknownGroup { .. } => ResponseError::GroupIdNotFound,
        E::InvalidTopicName { .. } => ResponseError::InvalidTopicException,
        E::InvalidGroupId { .. } => ResponseError::InvalidGroupId,
        E::TopicExists { .. } => ResponseError::TopicAlreadyExists,
        E::InvalidPartitions { .. } | E::PartitionsNotIncreased { .. } => {
            ResponseError::InvalidPartitions
        }
        E::GroupNotEmpty { .. } => ResponseError::NonEmptyGroup,
        // Retriable: an admin change of the group's offsets is running for a moment.
        E::GroupBusy { .. } => ResponseError::CoordinatorLoadInProgress,
        E::InvalidConfig { .. } => ResponseError::InvalidConfig,
        E::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        E::TooLarge { limit, .. } if *limit == "offset_metadata_bytes_max" => {
            ResponseError::OffsetMetadataTooLarge
        }
        E::TooLarge { .. } => ResponseError::MessageTooLarge,
        // A well-formed batch Kafka's rules refuse: a control batch only the broker may write,
        // a record without a key on a compacted topic.
        E::InvalidBatch {
            source: BatchError::ControlBatch | BatchError::MissingKey { .. },
            ..
        } => ResponseError::InvalidRecord,
        // CRC, lengths, magic, record framing: the batch is not what it claims to be.
        E::InvalidBatch { .. } => ResponseError::CorruptMessage,
        E::InvalidRequest { .. } => ResponseError::InvalidRequest,
        E::Poisoned { .. } | E::Storage(_) | E::PartitionStorage { .. } => {
            ResponseError::KafkaStorageError
        }
        // Stored data that fails its checks is never handed out; Kafka answers a fetch of a
        // corrupt record the same way.
        E::Corrupt { .. } => ResponseError::CorruptMessage,
        // Shutting down: retriable, the client comes back once the broker is up again.
        E::Closed => ResponseError::LeaderNotAvailable,
        E::Transaction(e) => crate::producers::error_code(e),
        // The authorizer's refusal, in the code of the resource it refused.
        E::Denied { resource_type, .. } => authorization_failed(*resource_type),
        // Errors of broker features the Kafka door does not call (request-reply, ...): by
        // their kind, so a new variant still maps to something a client understands.
        other => by_kind(other.kind()),
    }
}

/// Kafka's authorization error for a resource type.
pub(crate) fn authorization_failed(
    resource_type: brook_broker::auth::ResourceType,
) -> ResponseError {
    use brook_broker::auth::ResourceType as R;
    match resource_type {
        R::Topic => ResponseError::TopicAuthorizationFailed,
        R::Group => ResponseError::GroupAuthorizationFailed,
        R::Cluster => ResponseError::ClusterAuthorizationFailed,
        R::TransactionalId => ResponseError::TransactionalIdAuthorizationFailed,
    }
}

fn by_kind(kind: ErrorKind) -> ResponseError {
    match kind {
        ErrorKind::NotFound => ResponseError::UnknownTopicOrPartition,
        ErrorKind::InvalidArgument => ResponseError::InvalidRequest,
        ErrorKind::AlreadyExists => ResponseError::TopicAlreadyExists,
        ErrorKind::OutOfRange => ResponseError::OffsetOutOfRange,
        ErrorKind::TooLarge => ResponseError::MessageTooLarge,
        ErrorKind::Unavailable => ResponseError::LeaderNotAvailable,
        ErrorKind::DataLoss => ResponseError::CorruptMessage,
        // Internal, and a kind added later: a failure the client cannot act on.
        _ => ResponseError::UnknownServerError,
    }
}

/// The code for "no error".
pub(crate) const NONE: i16 = 0;

/// A Kafka error's wire code, for response fields.
pub(crate) fn code(err: &BrokerError) -> i16 {
    error_code(err).code()
}
