//! brook's broker API on a Kafka cluster, through librdkafka (the `rdkafka` crate).
//!
//! [`KafkaCluster`] answers the calls brook's doors and applications make of the local broker
//! (topics, produce, fetch, subscribe by partition or as a group member, commits, groups and
//! their lag, request-reply) with the broker's own types and errors, so the same code runs on
//! a cluster:
//!
//! - gateway mode (`brook serve --backend kafka://HOST:PORT`): the gRPC and HTTP doors serve a
//!   cluster's topics and groups through `brook_broker::Backend::Cluster`;
//! - `brook::kafka` (the `kafka-backend` feature of the `brook` library): `api::Brook` on a
//!   cluster;
//! - `brook migrate`: copying a data directory into a cluster and back.
//!
//! What it promises, against the same calls on the local log:
//!
//! - keys land on the same partition number (murmur2, the broker's [`partitioner`] rule:
//!   brook routes each record itself, and librdkafka is told `partitioner=murmur2_random` for
//!   anything it places);
//! - a produce is acknowledged by every in-sync replica (`acks=all`) and is idempotent, so
//!   records keep their order per partition across retries;
//! - records come back with their keys, values, headers and timestamps; fetches and
//!   subscriptions carry them as RecordBatch v2 bytes encoded here (uncompressed), so every door
//!   decodes them as it decodes the log's;
//! - nothing is committed unless the caller commits; a group member of this process commits
//!   through its own consumer (in its generation), anything else as a standalone commit;
//! - what Kafka cannot do is refused with a clear error: a topic setting Kafka does not have
//!   (`brook.durability`), the maximum-timestamp offset query.
//!
//! Every blocking librdkafka call (metadata, watermarks, offsets, a consumer's close) runs on
//! tokio's blocking pool, never on an async worker.
//!
//! [`partitioner`]: brook_broker::partitioner

mod admin;
mod backend;
mod cluster;
mod config;
mod encode;
mod error;
mod fetch;
mod groups;
mod produce;
mod subscribe;

pub use cluster::{ConnectError, KafkaCluster};
pub use config::{ClusterConfig, READER_GROUP, SCHEME};
pub use error::ConfigError;
