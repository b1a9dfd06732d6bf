//! What can go wrong before a cluster is reached ([`ConfigError`]), and the one translation of
//! the Kafka client's errors into the broker's ([`brook_broker::BrokerError`]), so every door
//! maps a cluster's failure as it maps the local log's.
//!
//! A Kafka error with a broker equivalent becomes that variant, with the topic and partition of
//! the call (an unknown topic is `UnknownTopic`, a record over `message.max.bytes` is
//! `TooLarge`, ...); anything else becomes `BrokerError::Cluster` with the client's account,
//! marked unavailable when the client says the cluster could not be reached or answered late.

use brook_broker::BrokerError;
use rdkafka::error::{KafkaError, RDKafkaErrorCode as Code};

/// A cluster setting that cannot work.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("invalid cluster URL {url:?}: {reason} (kafka://HOST:PORT[,HOST:PORT...])")]
    Url { url: String, reason: String },
    #[error("invalid cluster setting: {reason}")]
    Invalid { reason: String },
    #[error("the Kafka client property {key} is brook's to set: {why}")]
    Reserved { key: String, why: &'static str },
    #[error("cannot create a Kafka client: {source}")]
    Client {
        #[source]
        source: KafkaError,
    },
}

/// The call a Kafka error came from: what it was about, for the broker's error.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Context<'a> {
    /// What failed, as a verb phrase (`"produce"`, `"create a topic"`).
    pub(crate) operation: &'static str,
    pub(crate) topic: Option<&'a str>,
    pub(crate) partition: Option<u32>,
}

impl<'a> Context<'a> {
    pub(crate) fn new(operation: &'static str) -> Self {
        Self {
            operation,
            topic: None,
            partition: None,
        }
    }

    pub(crate) fn topic(mut self, topic: &'a str) -> Self {
        self.topic = Some(topic);
        self
    }

    pub(crate) fn partition(mut self, partition: u32) -> Self {
        self.partition = Some(partition);
        self
    }

    /// The broker's form of `err`, raised by this call.
    pub(crate) fn error(&self, err: &KafkaError) -> BrokerError {
        match err.rdkafka_error_code() {
            Some(code) => self.code(code, &err.to_string()),
            None => self.cluster(err.to_string(), false),
        }
    }

    /// The broker's form of a Kafka error code raised by this call; `reason` is the client's
    /// account of it.
    pub(crate) fn code(&self, code: Code, reason: &str) -> BrokerError {
        let topic = || self.topic.unwrap_or_default().to_owned();
        match code {
            Code::UnknownTopicOrPartition | Code::UnknownTopic | Code::UnknownTopicId => {
                match self.partition {
                    // The partition count is unknown here; the caller checks it when it can.
                    Some(partition) if code != Code::UnknownTopic => {
                        BrokerError::UnknownPartition {
                            topic: topic(),
                            partition,
                            partitions: 0,
                        }
                    }
                    _ => BrokerError::UnknownTopic { topic: topic() },
                }
            }
            Code::UnknownPartition => BrokerError::UnknownPartition {
                topic: topic(),
                partition: self.partition.unwrap_or_default(),
                partitions: 0,
            },
            Code::TopicAlreadyExists => BrokerError::TopicExists { topic: topic() },
            Code::InvalidTopic => BrokerError::InvalidTopicName {
                name: topic(),
                reason: "the cluster refused the name",
            },
            Code::InvalidConfig | Code::PolicyViolation | Code::InvalidReplicationFactor => {
                BrokerError::InvalidConfig {
                    reason: format!("the cluster refused the topic: {reason}"),
                }
            }
            Code::InvalidPartitions => BrokerError::InvalidConfig {
                reason: format!("the cluster refused the partition count: {reason}"),
            },
            Code::MessageSizeTooLarge | Code::MessageBatchTooLarge | Code::InvalidMessageSize => {
                BrokerError::TooLarge {
                    what: "record",
                    size: 0,
                    max: 0,
                    limit: "the cluster's max.message.bytes",
                }
            }
            Code::GroupIdNotFound => BrokerError::UnknownGroup { group: topic() },
            Code::InvalidGroupId => BrokerError::InvalidGroupId {
                group: topic(),
                reason: "the cluster refused the group id",
            },
            Code::UnknownMemberId
            | Code::IllegalGeneration
            | Code::RebalanceInProgress
            | Code::NonEmptyGroup => BrokerError::InvalidRequest {
                reason: format!(
                    "the group has live members on the cluster; commit through them or stop \
                     them first ({reason})"
                ),
            },
            Code::OffsetMetadataTooLarge => BrokerError::InvalidRequest {
                reason: format!("commit metadata too large for the cluster ({reason})"),
            },
            code if unavailable(code) => self.cluster(reason.to_owned(), true),
            _ => self.cluster(reason.to_owned(), false),
        }
    }

    /// A failure without a finer variant.
    pub(crate) fn cluster(&self, reason: String, unavailable: bool) -> BrokerError {
        let reason = match (self.topic, self.partition) {
            (Some(topic), Some(partition)) => format!("{topic}-{partition}: {reason}"),
            (Some(topic), None) => format!("{topic}: {reason}"),
            _ => reason,
        };
        BrokerError::Cluster {
            operation: self.operation,
            reason,
            unavailable,
        }
    }
}

/// Codes that mean the cluster was not reached, or not in time: a retry later may work.
fn unavailable(code: Code) -> bool {
    matches!(
        code,
        Code::BrokerTransportFailure
            | Code::AllBrokersDown
            | Code::OperationTimedOut
            | Code::MessageTimedOut
            | Code::TimedOutQueue
            | Code::Resolve
            | Code::RequestTimedOut
            | Code::BrokerNotAvailable
            | Code::LeaderNotAvailable
            | Code::NotLeaderForPartition
            | Code::NetworkException
            | Code::CoordinatorLoadInProgress
            | Code::CoordinatorNotAvailable
            | Code::NotCoordinator
            | Code::NotEnoughReplicas
            | Code::NotEnoughReplicasAfterAppend
            | Code::KafkaStorageError
            | Code::QueueFull
            | Code::WaitingForCoordinator
            | Code::ThrottlingQuotaExceeded
    )
}

/// A blocking task that did not finish (it panicked or was cancelled).
pub(crate) fn task_failed(err: tokio::task::JoinError) -> BrokerError {
    BrokerError::Task {
        reason: err.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use brook_broker::ErrorKind;

    use super::*;

    #[test]
    fn codes_map_to_the_brokers_variants_with_their_context() {
        let produce = Context::new("produce").topic("orders").partition(2);
        assert!(matches!(
            produce.code(Code::UnknownTopicOrPartition, "x"),
            BrokerError::UnknownPartition { partition: 2, .. }
        ));
        let create = Context::new("create a topic").topic("orders");
        assert!(matches!(
            create.code(Code::TopicAlreadyExists, "x"),
            BrokerError::TopicExists { topic } if topic == "orders"
        ));
        assert_eq!(
            create.code(Code::MessageSizeTooLarge, "x").kind(),
            ErrorKind::TooLarge
        );
        let down = create.code(Code::AllBrokersDown, "all brokers down");
        assert_eq!(down.kind(), ErrorKind::Unavailable);
        assert_eq!(
            down.to_string(),
            "the Kafka cluster failed to create a topic: orders: all brokers down"
        );
        assert_eq!(
            create.code(Code::TopicAuthorizationFailed, "denied").kind(),
            ErrorKind::Internal
        );
    }
}
