//! Why the gRPC or HTTP door could not start or stopped with an error.
//!
//! What every door can get wrong (its settings, its port, its task) is a
//! [`brook_door::DoorError`], carried as it is; the rest is tonic's. Request-level failures are
//! not here: they become the door's own status (a gRPC `Status`, an HTTP error body) and the
//! door keeps serving.

use brook_door::DoorError;

/// A door failed to start or to run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    #[error(transparent)]
    Door(#[from] DoorError),
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
}
