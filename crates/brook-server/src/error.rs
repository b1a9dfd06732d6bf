//! Why a door could not start or stopped with an error.
//!
//! Request-level failures are not here: they become the door's own status (a gRPC `Status`, an
//! HTTP error body) and the door keeps serving.

use std::net::SocketAddr;

/// A door failed to start or to run.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
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
    #[error("cannot build the gRPC reflection service from brook's descriptor set: {source}")]
    Reflection {
        #[source]
        source: tonic_reflection::server::Error,
    },
    #[error("the gRPC server failed: {source}")]
    Grpc {
        #[source]
        source: tonic::transport::Error,
    },
    #[error("the {door} server task failed: {source}")]
    Task {
        door: &'static str,
        #[source]
        source: tokio::task::JoinError,
    },
}
