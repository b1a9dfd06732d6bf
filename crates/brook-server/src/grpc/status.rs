//! Broker errors as gRPC statuses.
//!
//! The code comes from [`BrokerError::kind`], so every door agrees on what class of failure a
//! request met; the message is the broker's (which names the topic, partition, range or limit)
//! plus, where there is one, what the caller can do about it.

use brook_broker::{BrokerError, ErrorKind};
use tonic::{Code, Status};

use crate::hints::{self, DoorWords};

/// The gRPC calls hints point to.
const GRPC_WORDS: DoorWords = DoorWords {
    create_topic: "CreateTopic",
    describe_topic: "DescribeTopic",
};

/// The gRPC status for `err`.
pub(crate) fn to_status(err: &BrokerError) -> Status {
    let code = match err.kind() {
        ErrorKind::NotFound => Code::NotFound,
        ErrorKind::InvalidArgument => Code::InvalidArgument,
        ErrorKind::AlreadyExists => Code::AlreadyExists,
        ErrorKind::OutOfRange => Code::OutOfRange,
        ErrorKind::TooLarge => Code::ResourceExhausted,
        ErrorKind::Unavailable => Code::Unavailable,
        ErrorKind::DataLoss => Code::DataLoss,
        ErrorKind::PermissionDenied => Code::PermissionDenied,
        // Internal, and a kind added later.
        _ => Code::Internal,
    };
    Status::new(code, hints::message(err, GRPC_WORDS))
}

/// `INVALID_ARGUMENT` for a request the door itself refuses before calling the broker.
pub(crate) fn invalid(message: impl Into<String>) -> Status {
    Status::invalid_argument(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_maps_to_its_code_and_the_message_says_what_to_do() {
        let unknown = to_status(&BrokerError::UnknownTopic { topic: "t".into() });
        assert_eq!(unknown.code(), Code::NotFound);
        assert!(unknown.message().contains("CreateTopic"), "{unknown}");

        let too_large = to_status(&BrokerError::TooLarge {
            what: "record batch",
            size: 10,
            max: 5,
            limit: "message_bytes_max",
        });
        assert_eq!(too_large.code(), Code::ResourceExhausted);
        assert!(
            too_large.message().contains("message_bytes_max"),
            "{too_large}"
        );

        let poisoned = to_status(&BrokerError::Poisoned {
            topic: "t".into(),
            partition: 0,
            reason: "fsync failed".into(),
        });
        assert_eq!(poisoned.code(), Code::Unavailable);

        let exists = to_status(&BrokerError::TopicExists { topic: "t".into() });
        assert_eq!(exists.code(), Code::AlreadyExists);

        let range = to_status(&BrokerError::OffsetOutOfRange {
            topic: "t".into(),
            partition: 0,
            offset: 9,
            log_start_offset: 0,
            high_watermark: 3,
        });
        assert_eq!(range.code(), Code::OutOfRange);
        assert!(range.message().contains("[0, 3]"), "{range}");
    }
}
