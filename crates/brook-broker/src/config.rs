//! Settings of the embedded broker: where data lives, the default log settings, topic creation,
//! and the limits that keep one request from taking the broker down.
//!
//! Limits carry their unit last in the name, as every brook setting does. Every default is
//! documented on its field, and every numeric setting has a range in [`BrokerConfig::BOUNDS`]
//! (the one table `validate` checks, the CLI's help prints and `docs/operations.md` lists).

use std::path::PathBuf;
use std::time::Duration;

use brook_log::bounds::{check_bounds, wide, Bounded, Bounds, DAY_MS};
use brook_log::{LogConfig, PARTITIONS_MAX, READ_BYTES_MAX};

use crate::error::{BrokerError, Result};

/// How the broker is opened.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BrokerConfig {
    /// The data directory: partition logs, topic files, committed offsets. Default `./brook-data`.
    pub data_dir: PathBuf,
    /// The log settings of every topic that does not override them, durability included.
    pub log: LogConfig,
    /// Create a topic the first time something is produced to it (or a group subscribes to
    /// it), with `default_partitions` partitions. Default on, as Kafka's
    /// `auto.create.topics.enable`.
    pub auto_create_topics: bool,
    /// Partitions of a topic created automatically or without a count. Default 1.
    pub default_partitions: u32,
    /// How often size and age retention is applied to every partition. Default 5 minutes
    /// (Kafka's `log.retention.check.interval.ms`).
    pub retention_check_ms: u64,
    /// How long a group member that lost partitions in a rebalance may keep serving them while
    /// the new owner waits (a member releases on its next poll; this bounds a member that is
    /// not being polled). Default 30 s.
    pub group_release_timeout_ms: u64,
    /// Per-request limits.
    pub limits: Limits,
    /// Request-reply: the reply topic, how long correlation ids are remembered.
    pub reqreply: crate::reqreply::ReqReplyConfig,
    /// Transactions: the longest timeout a producer may ask for, how often timeouts are
    /// checked, how long idle transactional ids are kept.
    pub transactions: crate::txn::TxnConfig,
    /// The log cleaner of compacted topics: threads, memory, I/O rate (Kafka's
    /// `log.cleaner.*`).
    pub cleaner: brook_log::CleanerConfig,
}

impl BrokerConfig {
    /// The defaults, with data in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            log: LogConfig::default(),
            auto_create_topics: true,
            default_partitions: 1,
            retention_check_ms: 300_000,
            group_release_timeout_ms: 30_000,
            limits: Limits::default(),
            reqreply: Default::default(),
            transactions: Default::default(),
            cleaner: Default::default(),
        }
    }

    /// The retention check interval, as a duration.
    pub fn retention_check(&self) -> Duration {
        Duration::from_millis(self.retention_check_ms)
    }

    /// The group release timeout, as a duration.
    pub fn group_release_timeout(&self) -> Duration {
        Duration::from_millis(self.group_release_timeout_ms)
    }

    /// Every numeric setting of the broker with its range, by the key `brook serve` gives it
    /// (the log defaults are brook-log's `TopicConfig::BOUNDS`, request-reply's
    /// [`crate::ReqReplyConfig::BOUNDS`]).
    pub const BOUNDS: &'static [Bounded<BrokerConfig>] = &[
        Bounded::new(
            "default_partitions",
            Bounds::new(1, PARTITIONS_MAX as u64),
            |c| Some(c.default_partitions.into()),
        ),
        Bounded::new("retention_check_ms", Bounds::new(1, DAY_MS), |c| {
            Some(c.retention_check_ms)
        }),
        Bounded::new("group_release_timeout_ms", Bounds::new(1, DAY_MS), |c| {
            Some(c.group_release_timeout_ms)
        }),
        Bounded::new("fetch_bytes_max", Bounds::new(1, 1 << 30), |c| {
            Some(wide(c.limits.fetch_bytes_max))
        }),
        Bounded::new("fetch_wait_ms_max", Bounds::new(0, DAY_MS), |c| {
            Some(c.limits.fetch_wait_ms_max)
        }),
        Bounded::new("produce_records_max", Bounds::new(1, 10_000_000), |c| {
            Some(wide(c.limits.produce_records_max))
        }),
        Bounded::new(
            "partitions_max",
            Bounds::new(1, PARTITIONS_MAX as u64),
            |c| Some(c.limits.partitions_max.into()),
        ),
        Bounded::new("offset_metadata_bytes_max", Bounds::new(0, 1 << 20), |c| {
            Some(wide(c.limits.offset_metadata_bytes_max))
        }),
        Bounded::new(
            "subscribe_read_bytes",
            Bounds::new(1, READ_BYTES_MAX as u64),
            |c| Some(wide(c.limits.subscribe_read_bytes)),
        ),
    ];

    /// Rejects settings outside their ranges or at odds with each other, before anything is
    /// opened with them; the error names the setting.
    pub fn validate(&self) -> Result<()> {
        check_bounds(self, Self::BOUNDS).map_err(|reason| BrokerError::InvalidConfig { reason })?;
        if self.default_partitions > self.limits.partitions_max {
            return Err(BrokerError::InvalidPartitions {
                partitions: self.default_partitions,
                max: self.limits.partitions_max,
            });
        }
        self.log.validate().map_err(BrokerError::from_admin_log)?;
        self.cleaner
            .validate()
            .map_err(BrokerError::from_admin_log)?;
        self.transactions.validate()?;
        self.reqreply.validate()
    }
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self::new("brook-data")
    }
}

/// Per-request limits. A request past one gets an error naming the limit; nothing is
/// allocated for it first.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// The most bytes one fetch may ask for. Default 64 MiB (Kafka's `fetch.max.bytes` is
    /// 50 MiB, so every Kafka client's default fits).
    pub fetch_bytes_max: usize,
    /// The longest a fetch may wait for data (its long poll). Default 60 s.
    pub fetch_wait_ms_max: u64,
    /// The most records one produce call may carry. Default 100 000.
    pub produce_records_max: usize,
    /// The most partitions one topic may have. Default 10 000 (the store's ceiling).
    pub partitions_max: u32,
    /// The longest commit metadata string. Default 4096 (Kafka's `offset.metadata.max.bytes`).
    pub offset_metadata_bytes_max: usize,
    /// Bytes a subscription reads from a partition at a time. Default 1 MiB. A subscription
    /// holds at most one such read per partition it serves, so this bounds its memory.
    pub subscribe_read_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            fetch_bytes_max: 64 << 20,
            fetch_wait_ms_max: 60_000,
            produce_records_max: 100_000,
            partitions_max: PARTITIONS_MAX,
            offset_metadata_bytes_max: 4096,
            subscribe_read_bytes: 1 << 20,
        }
    }
}

impl Limits {
    /// The longest fetch wait, as a duration.
    pub fn fetch_wait_max(&self) -> Duration {
        Duration::from_millis(self.fetch_wait_ms_max)
    }

    /// Checks a fetch's `max_bytes` (1 to `fetch_bytes_max`) and `max_wait` (at most
    /// `fetch_wait_ms_max`): the one rule every backend's fetch applies.
    pub fn check_fetch(&self, max_bytes: usize, max_wait: Duration) -> Result<()> {
        if max_bytes == 0 || max_bytes > self.fetch_bytes_max {
            return Err(BrokerError::invalid(format!(
                "max_bytes {max_bytes} is not within 1..={} (fetch_bytes_max)",
                self.fetch_bytes_max
            )));
        }
        if max_wait > self.fetch_wait_max() {
            return Err(BrokerError::invalid(format!(
                "max_wait {} ms exceeds fetch_wait_ms_max ({} ms)",
                max_wait.as_millis(),
                self.fetch_wait_ms_max
            )));
        }
        Ok(())
    }

    /// The bytes a subscription reads at a time: `max_bytes` when given (1 to
    /// `fetch_bytes_max`), else `subscribe_read_bytes`.
    pub fn subscribe_bytes(&self, max_bytes: Option<usize>) -> Result<usize> {
        match max_bytes {
            None => Ok(self.subscribe_read_bytes),
            Some(n) if n > 0 && n <= self.fetch_bytes_max => Ok(n),
            Some(n) => Err(BrokerError::invalid(format!(
                "max_bytes {n} is not within 1..={} (fetch_bytes_max)",
                self.fetch_bytes_max
            ))),
        }
    }

    /// Checks what can be checked of a records produce without its topic: one record at
    /// least, `produce_records_max` at most, a valid topic name.
    pub fn check_produce(&self, topic: &str, records: &[crate::ProduceRecord]) -> Result<()> {
        if records.is_empty() {
            return Err(BrokerError::invalid("a produce needs at least one record"));
        }
        if records.len() > self.produce_records_max {
            return Err(BrokerError::invalid(format!(
                "{} records in one produce exceed produce_records_max ({})",
                records.len(),
                self.produce_records_max
            )));
        }
        crate::names::validate_topic_name(topic)
    }

    /// Checks a commit before any partition is looked at: one offset at least, each one's
    /// metadata within `offset_metadata_bytes_max`.
    pub fn check_commits(&self, commits: &[crate::OffsetCommit]) -> Result<()> {
        if commits.is_empty() {
            return Err(BrokerError::invalid("a commit needs at least one offset"));
        }
        let max = self.offset_metadata_bytes_max;
        match commits.iter().find(|c| c.metadata.len() > max) {
            Some(commit) => Err(BrokerError::TooLarge {
                what: "commit metadata",
                size: commit.metadata.len(),
                max,
                limit: "offset_metadata_bytes_max",
            }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_settings_are_refused() {
        BrokerConfig::default().validate().expect("defaults");
        let zero_partitions = BrokerConfig {
            default_partitions: 0,
            ..BrokerConfig::default()
        };
        assert!(matches!(
            zero_partitions.validate(),
            Err(BrokerError::InvalidConfig { .. })
        ));
        let mut over_the_cap = BrokerConfig {
            default_partitions: 20,
            ..BrokerConfig::default()
        };
        over_the_cap.limits.partitions_max = 10;
        assert!(matches!(
            over_the_cap.validate(),
            Err(BrokerError::InvalidPartitions { .. })
        ));
        let mut no_fetch = BrokerConfig::default();
        no_fetch.limits.fetch_bytes_max = 0;
        assert!(matches!(
            no_fetch.validate(),
            Err(BrokerError::InvalidConfig { .. })
        ));
    }

    #[test]
    fn every_bounded_setting_is_refused_past_either_end_naming_itself() {
        for row in BrokerConfig::BOUNDS {
            let defaults = BrokerConfig::default();
            assert!(
                row.bounds
                    .contains((row.value)(&defaults).expect("numeric")),
                "{}'s default is within its range",
                row.key
            );
        }
        type Spoil = fn(&mut BrokerConfig);
        let cases: [(&str, Spoil); 6] = [
            ("retention_check_ms", |c| c.retention_check_ms = u64::MAX),
            ("group_release_timeout_ms", |c| {
                c.group_release_timeout_ms = u64::MAX
            }),
            ("fetch_bytes_max", |c| c.limits.fetch_bytes_max = usize::MAX),
            ("fetch_wait_ms_max", |c| {
                c.limits.fetch_wait_ms_max = u64::MAX
            }),
            ("offset_metadata_bytes_max", |c| {
                c.limits.offset_metadata_bytes_max = usize::MAX
            }),
            ("subscribe_read_bytes", |c| {
                c.limits.subscribe_read_bytes = usize::MAX
            }),
        ];
        for (key, spoil) in cases {
            let mut config = BrokerConfig::default();
            spoil(&mut config);
            let err = config.validate().expect_err(key).to_string();
            assert!(err.contains(key) && err.contains(" to "), "{key}: {err}");
        }
    }
}
