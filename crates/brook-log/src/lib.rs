//! brook's storage engine: one segmented, append-only log per topic-partition.
//!
//! This crate is synchronous on purpose: no tokio, no sockets. It promises that an acknowledged
//! append (in the default `sync` durability) survives a crash, that damage is found and reported
//! rather than hidden, and that every length read from the disk or from a caller is checked
//! before anything is allocated for it. The broker owns the async boundary above it.
//!
//! - [`batch`]: the Kafka RecordBatch v2 format, byte for byte.
//! - [`config`]: segment, retention, limit and durability settings.
//! - [`meta`]: the checked envelope of brook's own small files.
//! - [`names`]: topic name rules and partition directory names.
//! - [`lock`]: one process per data directory.
//! - [`scan`]: a read-only walk over a segment file's batches, for tools and recovery.
//! - [`index`], [`segment`]: a segment's `.log` file and its sparse offset and time indexes.
//! - [`log`]: [`PartitionLog`], the segmented log with durability modes and group commit.
//! - [`recovery`], [`checkpoint`]: opening after a crash, and the files that make it cheap.
//! - [`store`], [`topic`]: a data directory of topics and their partitions.
#![deny(clippy::unwrap_used)]

pub mod batch;
pub mod checkpoint;
pub mod config;
pub mod error;
pub mod index;
pub mod lock;
pub mod log;
pub mod meta;
pub mod names;
pub mod recovery;
pub mod scan;
pub mod segment;
pub mod store;
pub mod topic;

pub use config::{Durability, LogConfig};
pub use error::{BatchError, LogError, Result};
pub use log::{AppendInfo, HighWatermarkListener, PartitionLog, PendingAppend};
pub use names::validate_topic_name;
pub use recovery::{Corruption, RecoveryReport};
pub use store::Store;
pub use topic::{Topic, TopicConfig};
