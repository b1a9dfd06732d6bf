//! The storage types the broker is built on, in one place.
//!
//! TEMPORARY: brook-log's `Store`, `Topic` and `PartitionLog` are still landing, so this module
//! holds placeholders with their documented signatures (`notes/LOG-API.md`) that refuse every
//! operation. It lets the broker's public API compile for the doors now; it is replaced by
//! re-exports of the real types as soon as they are in brook-log, with no change to callers.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use brook_log::{LogConfig, LogError, Result};

/// A topic's overrides of the broker's default log settings (`None` follows the default).
/// Mirrors `brook_log::topic::TopicConfig` field for field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicConfig {
    pub segment_bytes_max: Option<u64>,
    pub segment_ms_max: Option<u64>,
    pub retention_bytes_max: Option<Option<u64>>,
    pub retention_ms_max: Option<Option<u64>>,
    pub index_interval_bytes: Option<u32>,
    pub index_bytes_max: Option<u32>,
    pub message_bytes_max: Option<usize>,
    pub durability: Option<brook_log::Durability>,
}

impl TopicConfig {
    /// The overrides that are set, as `(key, text value)`.
    pub fn entries(&self) -> Vec<(&'static str, String)> {
        Vec::new()
    }
}

fn not_yet() -> LogError {
    LogError::InvalidConfig("the partition store is not in brook-log yet".into())
}

pub(crate) use brook_log::PartitionLog;

#[derive(Debug)]
pub(crate) struct Topic {
    config: LogConfig,
    overrides: TopicConfig,
    partitions: Vec<Arc<PartitionLog>>,
}

impl Topic {
    pub fn name(&self) -> &str {
        ""
    }
    pub fn id(&self) -> [u8; 16] {
        [0; 16]
    }
    pub fn config(&self) -> &LogConfig {
        &self.config
    }
    pub fn overrides(&self) -> &TopicConfig {
        &self.overrides
    }
    pub fn partitions(&self) -> &[Arc<PartitionLog>] {
        &self.partitions
    }
}

#[derive(Debug)]
pub(crate) struct Store {
    dir: PathBuf,
}

impl Store {
    pub fn open(dir: impl Into<PathBuf>, _defaults: LogConfig) -> Result<Store> {
        let _ = Store { dir: dir.into() }.dir();
        Err(not_yet())
    }
    pub fn create_topic(
        &self,
        _name: &str,
        _partitions: u32,
        _overrides: TopicConfig,
    ) -> Result<Arc<Topic>> {
        Err(not_yet())
    }
    pub fn delete_topic(&self, _name: &str) -> Result<()> {
        Err(not_yet())
    }
    pub fn topics(&self) -> Vec<Arc<Topic>> {
        Vec::new()
    }
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn close(&self) -> Result<()> {
        Ok(())
    }
}
