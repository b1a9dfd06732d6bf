//! brook's gRPC contract, `proto/brook/v1/*.proto`, compiled to Rust at build time.
//!
//! This crate is the only thing the server door (`brook-server`) and the Rust client
//! (`brook-client`) share, so the wire contract lives in exactly one place. It holds no logic:
//! the messages (`brook_proto::v1::*`), the tonic client ([`v1::brook_client::BrookClient`]) and
//! server trait ([`v1::brook_server::Brook`]), [`FILE_DESCRIPTOR_SET`] for the reflection
//! service, and [`raw::RawCodec`] for callers that send or take a message's bytes as they are.
//!
//! `bytes` fields (keys, values, header values, raw batches) are [`prost::bytes::Bytes`].

pub mod raw;

/// Package `brook.v1`: every message, enum, the client and the server of service `Brook`.
pub mod v1 {
    tonic::include_proto!("brook.v1");
}

/// The encoded `FileDescriptorSet` of package `brook.v1`, for `tonic-reflection`'s
/// `register_encoded_file_descriptor_set`.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("brook_descriptor");

/// The fully qualified gRPC service name, `brook.v1.Brook` (for health checks and reflection).
pub const SERVICE_NAME: &str = "brook.v1.Brook";
