//! brook's storage engine: one segmented, append-only log per topic-partition.
//!
//! This crate is synchronous on purpose: no tokio, no sockets. It promises that an acknowledged
//! append (in the default `sync` durability) survives a crash, that damage is found and reported
//! rather than hidden, and that every length read from the disk or from a caller is checked
//! before anything is allocated for it. The broker owns the async boundary above it.
//!
//! # What is public, and for whom
//!
//! - **The storage API, for the broker**: [`Store`] (a data directory of [`Topic`]s), the
//!   [`PartitionLog`] with its [`PendingAppend`] and group commit, [`LogConfig`] with its
//!   [`Durability`] modes, a topic's [`TopicConfig`] overrides, what recovery found
//!   ([`RecoveryReport`], [`Corruption`]), the errors ([`LogError`], [`BatchError`]), and
//!   [`meta`], the checked envelope the broker keeps its own small files in.
//! - **The format, for every door**: [`batch`] is Kafka's RecordBatch v2 byte for byte, shared
//!   vocabulary rather than storage: [`batch::Batches`] walks fetched bytes,
//!   [`batch::Record`] is a decoded record, [`batch::BatchHeader`] reads a client's batch
//!   (producer id, sequence), [`batch::BatchBuilder`] writes one and [`batch::validate`] checks
//!   one. [`config_entries`] and [`TopicConfig::entries`] show settings in their text form;
//!   [`validate_topic_name`] is the character rule of topic names (doors ask the broker's
//!   `validate_topic_name`, which answers in the broker's error).
//! - **Inspection, for the offline tools**: [`inspect`] walks a data directory's partitions,
//!   segments, batches, indexes and small files read-only, without the lock.
//!
//! Everything else (segments, indexes, recovery, checkpoints, the directory lock, file names)
//! is internal: its shape may change with the next storage feature.
//!
//! # Modules
//!
//! - [`batch`]: the Kafka RecordBatch v2 format, byte for byte (the `brook-batch` crate,
//!   re-exported; compaction's record filter is this crate's own).
//! - `config`: segment, retention, limit and durability settings.
//! - [`bounds`]: the range of every numeric setting and the one refusal outside it, for every
//!   crate's settings table.
//! - [`meta`]: the checked envelope of brook's own small files.
//! - `names`: topic name rules and partition directory names.
//! - `lock`: one process per data directory.
//! - `scan`: a read-only walk over a segment file's batches, for tools and recovery.
//! - `index`, `segment`: a segment's `.log` file and its sparse offset and time indexes.
//! - `log`: [`PartitionLog`], the segmented log with durability modes and group commit.
//! - `recovery`, `checkpoint`: opening after a crash, and the files that make it cheap.
//! - `producer_state`, `txn_index`, `txn_state`: each producer's state (idempotence and open
//!   transactions), the aborted transaction index of each segment, and the last stable offset
//!   built from them.
//! - `store`, `topic`: a data directory of topics and their partitions.
//! - [`inspect`]: the offline tools' read-only view of all of the above.

pub mod batch;
pub mod bounds;
mod checkpoint;
mod cleaner;
mod config;
mod error;
mod fs;
/// Entry points for the fuzz targets in `fuzz/`.
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod index;
pub mod inspect;
mod lock;
mod log;
pub mod meta;
mod names;
#[cfg(test)]
mod power_loss;
mod producer_state;
mod recovery;
mod scan;
mod segment;
mod store;
mod topic;
mod txn_index;
mod txn_state;

pub use cleaner::{clean_now, CleanReport, Cleaner, CleanerConfig, CleanerStats, LogSource};
pub use config::{CleanupPolicy, DirtyRatio, Durability, LogConfig};
pub use error::{BatchError, LogError, Result};
pub use log::{
    AppendInfo, HighWatermarkListener, LogStatus, PartitionLog, PendingAppend, READ_BYTES_MAX,
};
pub use names::{validate_topic_name, TOPIC_NAME_LEN_MAX};
pub use producer_state::{KeptBatch, ProducerEntry, BATCHES_KEPT};
pub use recovery::{Corruption, RecoveryReport, Repair, RepairKind};
pub use store::Store;
pub use topic::{config_entries, config_entries_by_alias, Topic, TopicConfig, PARTITIONS_MAX};
pub use txn_index::AbortedTxn;
