//! Failed requests as JSON: `{ "error_code": "...", "message": "..." }` with the right status.
//!
//! The status comes from [`BrokerError::kind`], so the HTTP door agrees with every other door
//! on what class of failure a request met (the table is in brook-broker's `error.rs`); the
//! `error_code` names the precise failure (`unknown_topic`, `offset_out_of_range`, ...) for
//! programs, and the message is the broker's plus what the caller can do about it. axum's own
//! refusals (a path segment that is not a number, a body over the limit, malformed JSON) are
//! turned into the same shape, so a client parses one error format.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use brook_broker::{BrokerError, ErrorKind, TxnError};
use serde::Serialize;

use crate::hints::{self, DoorWords};

/// The HTTP requests hints point to.
const HTTP_WORDS: DoorWords = DoorWords {
    create_topic: "POST /v1/topics",
    describe_topic: "GET /v1/topics/{topic}",
};

/// An error answer of the HTTP door.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

/// The JSON body of an error, also used for an error line or event inside a stream.
#[derive(Debug, Serialize)]
pub(crate) struct ErrorBody<'a> {
    pub(crate) error_code: &'a str,
    pub(crate) message: &'a str,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400: a request the door refuses before calling the broker.
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub(crate) fn body(&self) -> ErrorBody<'_> {
        ErrorBody {
            error_code: self.code,
            message: &self.message,
        }
    }

    /// The body as one JSON text (for a stream's error line or event).
    pub(crate) fn to_json(&self) -> String {
        serde_json::to_string(&self.body()).unwrap_or_else(|_| {
            // Serializing two strings cannot fail; keep a valid line even so.
            format!(
                r#"{{"error_code":"{}","message":"unprintable"}}"#,
                self.code
            )
        })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}

impl From<BrokerError> for ApiError {
    fn from(err: BrokerError) -> Self {
        Self::from(&err)
    }
}

impl From<&BrokerError> for ApiError {
    fn from(err: &BrokerError) -> Self {
        Self {
            status: status(err.kind()),
            code: code(err),
            message: hints::message(err, HTTP_WORDS),
        }
    }
}

/// The HTTP status of a kind of broker failure.
fn status(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::InvalidArgument => StatusCode::BAD_REQUEST,
        ErrorKind::AlreadyExists => StatusCode::CONFLICT,
        ErrorKind::OutOfRange => StatusCode::RANGE_NOT_SATISFIABLE,
        ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::PermissionDenied => StatusCode::FORBIDDEN,
        // Damaged data (`corrupt_data`), internal failures, and a kind added later.
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The precise failure, for programs.
fn code(err: &BrokerError) -> &'static str {
    match err {
        BrokerError::UnknownTopic { .. } => "unknown_topic",
        BrokerError::UnknownPartition { .. } => "unknown_partition",
        BrokerError::UnknownGroup { .. } => "unknown_group",
        BrokerError::InvalidTopicName { .. } => "invalid_topic_name",
        BrokerError::InvalidGroupId { .. } => "invalid_group_id",
        BrokerError::TopicExists { .. } => "topic_exists",
        BrokerError::InvalidPartitions { .. } | BrokerError::PartitionsNotIncreased { .. } => {
            "invalid_partitions"
        }
        BrokerError::GroupNotEmpty { .. } => "group_not_empty",
        BrokerError::GroupBusy { .. } => "group_busy",
        BrokerError::InvalidConfig { .. } => "invalid_config",
        BrokerError::OffsetOutOfRange { .. } => "offset_out_of_range",
        BrokerError::TooLarge { .. } => "too_large",
        BrokerError::InvalidBatch { .. } => "invalid_batch",
        BrokerError::InvalidRequest { .. } => "bad_request",
        BrokerError::Poisoned { .. } => "partition_poisoned",
        BrokerError::Corrupt { .. } => "corrupt_data",
        BrokerError::PartitionStorage { .. } => "storage_error",
        BrokerError::Closed => "shutting_down",
        BrokerError::Task { .. } => "internal",
        BrokerError::Transaction(e) => txn_code(e),
        // Storage failures without a broker-level variant, and variants added later: by kind.
        _ => match err.kind() {
            ErrorKind::NotFound => "not_found",
            ErrorKind::InvalidArgument => "bad_request",
            ErrorKind::AlreadyExists => "already_exists",
            ErrorKind::OutOfRange => "offset_out_of_range",
            ErrorKind::TooLarge => "too_large",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::DataLoss => "corrupt_data",
            ErrorKind::PermissionDenied => "forbidden",
            _ => "internal",
        },
    }
}

/// The precise transaction refusal, for programs.
fn txn_code(err: &TxnError) -> &'static str {
    match err {
        TxnError::ProducerFenced { .. } => "producer_fenced",
        TxnError::InvalidProducerIdMapping { .. } => "invalid_producer_id_mapping",
        TxnError::InvalidTxnState { .. } => "invalid_txn_state",
        TxnError::ConcurrentTransactions { .. } => "concurrent_transactions",
        TxnError::InvalidTimeout { .. } => "invalid_transaction_timeout",
        TxnError::TransactionalIdNotFound { .. } => "transactional_id_not_found",
        TxnError::OutOfOrderSequence { .. } => "out_of_order_sequence",
        TxnError::UnknownProducerId { .. } => "unknown_producer_id",
        TxnError::UnknownPartitions(_) => "unknown_partition",
        _ => "bad_request",
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::bad_request(format!("bad path: {}", rejection.body_text()))
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::bad_request(format!("bad query string: {}", rejection.body_text()))
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!(
                    "{}: the request body is over the server's request_bytes_max",
                    rejection.body_text()
                ),
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with Content-Type: application/json",
            ),
            _ => Self::bad_request(format!("bad JSON body: {}", rejection.body_text())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_has_its_status_and_a_precise_code() {
        let cases = [
            (
                BrokerError::UnknownTopic { topic: "t".into() },
                StatusCode::NOT_FOUND,
                "unknown_topic",
            ),
            (
                BrokerError::UnknownGroup { group: "g".into() },
                StatusCode::NOT_FOUND,
                "unknown_group",
            ),
            (
                BrokerError::InvalidTopicName {
                    name: "..".into(),
                    reason: "reserved",
                },
                StatusCode::BAD_REQUEST,
                "invalid_topic_name",
            ),
            (
                BrokerError::TopicExists { topic: "t".into() },
                StatusCode::CONFLICT,
                "topic_exists",
            ),
            (
                BrokerError::OffsetOutOfRange {
                    topic: "t".into(),
                    partition: 0,
                    offset: 9,
                    log_start_offset: 0,
                    high_watermark: 3,
                },
                StatusCode::RANGE_NOT_SATISFIABLE,
                "offset_out_of_range",
            ),
            (
                BrokerError::TooLarge {
                    what: "record batch",
                    size: 10,
                    max: 5,
                    limit: "message_bytes_max",
                },
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
            ),
            (
                BrokerError::Poisoned {
                    topic: "t".into(),
                    partition: 0,
                    reason: "fsync failed".into(),
                },
                StatusCode::SERVICE_UNAVAILABLE,
                "partition_poisoned",
            ),
        ];
        for (err, status, code) in cases {
            let api = ApiError::from(&err);
            assert_eq!((api.status, api.code), (status, code), "{err}");
            assert!(api.message.starts_with(&err.to_string()), "{}", api.message);
        }
    }

    #[test]
    fn the_json_body_has_code_and_message() {
        let text = ApiError::bad_request("no \"quotes\" lost").to_json();
        let parsed: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(parsed["error_code"], "bad_request");
        assert_eq!(parsed["message"], "no \"quotes\" lost");
    }
}
