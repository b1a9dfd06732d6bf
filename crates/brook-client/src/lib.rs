//! The Rust client for brook over gRPC.
//!
//! One [`Client`] is one connection to a `brook serve` (HTTP/2, shared by every clone and
//! every call on it). From it:
//!
//! - [`Producer`] ([`Client::producer`]): batches records per partition, keeps several
//!   requests in flight on a `ProduceStream`, and resolves each record's partition and offset;
//! - [`Consumer`] ([`Client::consumer`]): records as a [`futures::Stream`], from chosen
//!   partitions or as a consumer-group member, with automatic or explicit commits;
//! - [`Admin`] ([`Client::admin`]): topics, groups, committed offsets;
//! - [`Client::produce`] and [`Client::fetch`]: the plain request-reply calls.
//! - [`Client::call`] and [`Client::respond`]: request-reply over the log (a request record,
//!   a reply record, correlated by id).
//!
//! ```no_run
//! use brook_client::{Client, ConsumerConfig, NewTopic, OffsetReset, ProducerConfig, ProducerRecord};
//! use futures::StreamExt;
//!
//! # async fn demo() -> brook_client::Result<()> {
//! let client = Client::connect("http://127.0.0.1:50051").await?;
//! client.admin().create_topic(NewTopic::new("orders", 3)).await?;
//!
//! let producer = client.producer(ProducerConfig::default())?;
//! let delivery = producer.send("orders", ProducerRecord::keyed("alice", "2 apples")).await?;
//! let position = delivery.await?;
//! println!("stored at partition {} offset {}", position.partition, position.offset);
//!
//! let mut config = ConsumerConfig::group("billing");
//! config.reset = OffsetReset::Earliest;
//! let mut records = client.consumer(config)?.subscribe(["orders"]).await?;
//! while let Some(record) = records.next().await {
//!     let record = record?;
//!     println!("{}-{}@{}", record.topic, record.partition, record.offset);
//! }
//! # Ok(()) }
//! ```
//!
//! Errors are one enum, [`ClientError`]; a status from the server keeps its gRPC code
//! ([`ClientError::code`]) and message.
//!
//! This crate depends on the wire contract (`brook-proto`) and the RecordBatch v2 format
//! (`brook-batch`, which has no IO) only, never on the broker or the log, so an application
//! that talks to a remote brook does not compile a storage engine.

pub mod admin;
mod batch;
pub mod client;
pub mod consumer;
pub mod error;
pub mod partitioner;
pub mod producer;
pub mod record;
pub mod reqreply;

pub use admin::{Admin, NewTopic};
pub use client::{Client, FetchRequest, Fetched};
pub use consumer::{
    Assignment, Consumer, ConsumerConfig, ConsumerEvent, OffsetReset, RecordStream, StartAt,
};
pub use error::{ClientError, Result};
pub use producer::{BatchDelivery, Delivery, Producer, ProducerConfig};
pub use record::{ConsumerRecord, ProducerRecord, RecordPosition, TopicPartition};
pub use reqreply::{Answer, CallReply, CallRequest, IncomingRequest};

/// The generated protobuf messages (`brook.v1`), for admin answers and raw calls.
pub use brook_proto::v1 as proto;
/// gRPC status codes, as [`ClientError::code`] returns them.
pub use tonic::Code;
