//! Why a door could not start or stop, in terms every door shares.
//!
//! Each door crate has its own error type for what only it can get wrong (tonic's transport, a
//! Kafka frame); it converts from [`DoorError`], so the handle a caller holds reports either in
//! the door's own type. Request-level failures are not here: they become the door's own status
//! and the door keeps serving.

use std::net::SocketAddr;

/// Any error, boxed: a door's own error once its protocol is forgotten (see
/// [`crate::Serving`]).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A door failed to start or to stop.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DoorError {
    #[error("invalid {door} door settings: {reason}")]
    Config { door: &'static str, reason: String },
    #[error(
        "cannot listen for {door} on {addr}: {source} (is another process using it? choose \
         another address)"
    )]
    Bind {
        door: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the address of the {door} listener: {source}")]
    LocalAddr {
        door: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("the {door} door's task failed: {source}")]
    Task {
        door: &'static str,
        #[source]
        source: tokio::task::JoinError,
    },
}
