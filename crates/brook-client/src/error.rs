//! The client's one error type.
//!
//! Every failure says which operation failed and why. When the server answered with a gRPC
//! status, [`ClientError::Rpc`] carries its code and message unchanged, so callers can branch
//! on [`ClientError::code`] (`NotFound`, `AlreadyExists`, `OutOfRange`, ...) the same way a
//! client in any other language would.

use tonic::Code;

/// Result alias for the client.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// What went wrong talking to a brook server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server URL could not be parsed.
    #[error("invalid server URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },

    /// No connection could be made to the server.
    #[error("cannot connect to {url}: {reason}")]
    Connect {
        url: String,
        /// The innermost cause in plain words ("connection refused", "timed out").
        reason: String,
        #[source]
        source: tonic::transport::Error,
    },

    /// The server (or the transport under the call) answered with a gRPC status.
    #[error("{operation} failed: {message} [{}]", code_name(*.code))]
    Rpc {
        /// What the client was doing ("produce", "create topic", ...).
        operation: &'static str,
        code: Code,
        message: String,
    },

    /// A client setting is out of its range.
    #[error("invalid {setting}: {reason}")]
    InvalidConfig {
        setting: &'static str,
        reason: String,
    },

    /// A request the client refuses before sending it.
    #[error("invalid request: {reason}")]
    InvalidRequest { reason: String },

    /// The server answered with something the contract does not allow.
    #[error("unexpected answer to {operation}: {reason}")]
    Protocol {
        operation: &'static str,
        reason: String,
    },

    /// The producer stopped before it could answer (its task ended).
    #[error("the producer is closed")]
    ProducerClosed,
}

impl ClientError {
    /// The gRPC status code that best describes the error: the server's own code for
    /// [`ClientError::Rpc`].
    pub fn code(&self) -> Code {
        match self {
            ClientError::Rpc { code, .. } => *code,
            ClientError::InvalidUrl { .. }
            | ClientError::InvalidConfig { .. }
            | ClientError::InvalidRequest { .. } => Code::InvalidArgument,
            ClientError::Connect { .. } => Code::Unavailable,
            ClientError::Protocol { .. } => Code::Internal,
            ClientError::ProducerClosed => Code::Cancelled,
        }
    }

    /// Wraps a status the server returned for `operation`.
    pub(crate) fn rpc(operation: &'static str, status: tonic::Status) -> Self {
        ClientError::Rpc {
            operation,
            code: status.code(),
            message: status.message().to_owned(),
        }
    }

    pub(crate) fn protocol(operation: &'static str, reason: impl Into<String>) -> Self {
        ClientError::Protocol {
            operation,
            reason: reason.into(),
        }
    }

    pub(crate) fn invalid_request(reason: impl Into<String>) -> Self {
        ClientError::InvalidRequest {
            reason: reason.into(),
        }
    }
}

/// The canonical name of a gRPC status code, as grpcurl and the gRPC docs print it.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpc_errors_keep_the_server_code_and_message() {
        let err = ClientError::rpc(
            "create topic",
            tonic::Status::already_exists("topic t exists"),
        );
        assert_eq!(err.code(), Code::AlreadyExists);
        assert_eq!(
            err.to_string(),
            "create topic failed: topic t exists [ALREADY_EXISTS]"
        );
    }
}
