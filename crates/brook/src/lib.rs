//! brook: a single-node log-based streaming broker.
//!
//! - [`Broker`]: the broker embedded in your process (`Broker::open(config)`, or
//!   `Broker::ephemeral()` for tests);
//! - [`Client`]: the Rust client of a remote `brook serve` over gRPC ([`client`] has the
//!   batching producer, the consumer and the admin);
//! - [`api::Brook`]: one trait both implement, so application code runs unchanged embedded
//!   or remote, and on a Kafka cluster (`kafka::connect`, with the `kafka-backend` feature);
//! - [`ServeDoors`]: `broker.serve_kafka(addr)`, `serve_grpc`, `serve_http` open the embedded
//!   broker's log to other processes;
//! - [`server::Server`]: the broker and every door from one [`server::ServeConfig`], started
//!   and stopped together (what `brook serve` runs).
//!
//! This crate compiles no command line: the `brook` binary and the `brook bench` harness are
//! packages of their own that depend on it.
pub mod api;
pub mod doors;
#[cfg(feature = "kafka-backend")]
pub mod kafka;
pub mod security;
pub mod server;

pub use api::Brook;
pub use brook_broker as broker;
pub use brook_broker::Backend;
pub use brook_broker::{
    Broker, BrokerConfig, ConsumerRecord, OffsetReset, ProduceRecord, RecordPosition, StartAt,
    TopicPartition,
};
pub use brook_client as client;
pub use brook_client::Client;
pub use brook_log as log;
pub use doors::ServeDoors;
