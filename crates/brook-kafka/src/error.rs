//! The door's error type: why the door could not start or why a connection was closed.
//!
//! Errors inside a well-formed request never appear here: they become Kafka error codes in the
//! response (see `codes`). A `KafkaError` on a connection means the peer sent something that
//! cannot be answered (a frame over the limit, an unknown API, a body that does not decode), and
//! that connection alone is closed.

use std::io;

use brook_door::DoorError;

/// A decode or encode failure from the `kafka-protocol` codec, kept as the source.
pub(crate) type CodecError = Box<dyn std::error::Error + Send + Sync>;

/// Why the Kafka door or one of its connections stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KafkaError {
    /// What every door can get wrong: its settings, its port, its task.
    #[error(transparent)]
    Door(#[from] DoorError),
    #[error("request frame of {size} bytes exceeds request_bytes_max ({max} bytes)")]
    FrameTooLarge { size: i64, max: usize },
    #[error("request frame of {size} bytes is shorter than the smallest request header ({min})")]
    FrameTooShort { size: i64, min: usize },
    #[error("connection closed in the middle of a frame ({have} of {need} bytes received)")]
    Truncated { need: usize, have: usize },
    #[error("unknown API key {key}")]
    UnknownApi { key: i16 },
    #[error("{api} before SASL authentication: Kafka clients must authenticate first (docs/security.md)")]
    Unauthenticated { api: &'static str },
    #[error("SASL authentication failed")]
    AuthenticationFailed,
    #[error("{api} version {version} is not served (this broker serves {min}-{max})")]
    UnsupportedVersion {
        api: &'static str,
        version: i16,
        min: i16,
        max: i16,
    },
    #[error("malformed {api} v{version} request: {source}")]
    Malformed {
        api: &'static str,
        version: i16,
        #[source]
        source: CodecError,
    },
    #[error("cannot encode the {api} v{version} response: {source}")]
    Encode {
        api: &'static str,
        version: i16,
        #[source]
        source: CodecError,
    },
    #[error("response of {size} bytes does not fit a Kafka frame")]
    ResponseTooLarge { size: usize },
    #[error("response encoded as {written} bytes after announcing {announced}")]
    ResponseSizeMismatch { announced: usize, written: usize },
    #[error("connection I/O failed: {0}")]
    Io(#[from] io::Error),
}

impl KafkaError {
    /// Wraps a codec error raised while decoding a request of `api` at `version`.
    pub(crate) fn malformed(api: &'static str, version: i16, err: impl Into<CodecError>) -> Self {
        Self::Malformed {
            api,
            version,
            source: err.into(),
        }
    }

    /// Wraps a codec error raised while encoding a response of `api` at `version`.
    pub(crate) fn encode(api: &'static str, version: i16, err: impl Into<CodecError>) -> Self {
        Self::Encode {
            api,
            version,
            source: err.into(),
        }
    }
}
