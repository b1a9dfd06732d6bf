//! brook's Kafka wire protocol door.
//!
//! Unchanged Kafka clients (librdkafka and everything built on it, kcat, kafka-python, kafkajs,
//! franz-go, the Java client) produce, consume in groups and administer topics on the same log
//! the other doors use. Messages are encoded and decoded by the `kafka-protocol` crate; this
//! crate holds no hand-written message structs. Record batches go to the log as the client
//! built them and come back out as they were stored: the Kafka path never re-encodes records.
//!
//! Start it with [`KafkaServer::start`]`(broker, addr, config)` (port 0 picks a free port;
//! `local_addr()` is the real one) and stop it with `stop()`: [`KafkaServer`] is brook-door's
//! running handle, the same as every other door's.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod api;
mod assignor;
mod authorize;
mod codes;
mod config;
mod consumer_group;
mod coordinator;
mod dispatch;
mod error;
mod frame;
mod observe;
mod observed;
mod producers;
mod request;
mod server;
mod state;
mod topic_config;
mod versions;

pub use brook_broker::Broker;
pub use config::{
    KafkaConfig, DEFAULT_CONNECTIONS_MAX, DEFAULT_GROUP_CONSUMER_HEARTBEAT_INTERVAL,
    DEFAULT_GROUP_CONSUMER_SESSION_TIMEOUT, DEFAULT_GROUP_INITIAL_REBALANCE_DELAY,
    DEFAULT_REQUEST_BYTES_MAX,
};
pub use error::KafkaError;
/// The consumer protocol's member bytes, decoded (for tools that describe Kafka groups).
pub use observed::{assigned_partitions, subscribed_topics};
pub use server::{Kafka, KafkaServer};
