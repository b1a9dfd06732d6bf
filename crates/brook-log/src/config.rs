//! Settings of a partition log: segment roll, retention, compaction, indexing, limits and
//! durability.
//!
//! Limits carry their unit last in the name (`segment_bytes_max`, `retention_ms_max`), as every
//! brook setting does. Defaults follow Kafka's where Kafka has one.

use std::time::Duration;

use crate::error::LogError;

/// When an append's bytes reach stable storage, and so what a crash can lose.
///
/// | mode       | acknowledged after        | `kill -9` loses | power loss loses            |
/// |------------|---------------------------|-----------------|-----------------------------|
/// | `sync`     | fdatasync of its bytes    | nothing         | nothing                     |
/// | `interval` | write to the page cache   | nothing         | up to the last N ms of acks |
/// | `none`     | write to the page cache   | nothing         | anything the OS had not yet written back |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// fdatasync before an append reports success; concurrent appenders share one fsync.
    #[default]
    Sync,
    /// fsync at most every interval, and at the latest one interval after an append.
    Interval(Duration),
    /// Never fsync on the write path (only on roll and clean close). For tests and throwaway work.
    None,
}

impl std::str::FromStr for Durability {
    type Err = LogError;

    /// Parses `sync`, `none` or `interval:MS` (e.g. `interval:100`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sync" => Ok(Self::Sync),
            "none" => Ok(Self::None),
            other => {
                let ms = other
                    .strip_prefix("interval:")
                    .and_then(|ms| ms.parse::<u64>().ok())
                    .filter(|ms| *ms > 0)
                    .ok_or_else(|| {
                        LogError::InvalidConfig(format!(
                            "durability {other:?} is not one of sync, none, interval:MS (MS > 0)"
                        ))
                    })?;
                Ok(Self::Interval(Duration::from_millis(ms)))
            }
        }
    }
}

impl std::fmt::Display for Durability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sync => f.write_str("sync"),
            Self::None => f.write_str("none"),
            Self::Interval(d) => write!(f, "interval:{}", d.as_millis()),
        }
    }
}

/// What happens to a log's old data (Kafka's `cleanup.policy`).
///
/// | policy           | retention (`retention_*`) | compaction (the cleaner) |
/// |------------------|---------------------------|--------------------------|
/// | `delete`         | deletes old segments      | no                       |
/// | `compact`        | no                        | keeps the latest record of every key |
/// | `compact,delete` | deletes old segments      | keeps the latest record of every key |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CleanupPolicy {
    /// Retention deletes whole old segments (the default, and Kafka's).
    #[default]
    Delete,
    /// The cleaner keeps the latest record of every key; nothing is deleted by age or size.
    Compact,
    /// Both: compacted, and old segments deleted by retention.
    CompactDelete,
}

impl CleanupPolicy {
    /// Whether the cleaner compacts the log (and so every record needs a key).
    pub fn compacts(self) -> bool {
        matches!(self, Self::Compact | Self::CompactDelete)
    }

    /// Whether retention deletes old segments by age and size.
    pub fn deletes(self) -> bool {
        matches!(self, Self::Delete | Self::CompactDelete)
    }
}

impl std::str::FromStr for CleanupPolicy {
    type Err = LogError;

    /// Parses Kafka's list form: `delete`, `compact`, or both in either order (`compact,delete`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut compact = false;
        let mut delete = false;
        for part in s.split(',') {
            match part.trim() {
                "compact" if !compact => compact = true,
                "delete" if !delete => delete = true,
                _ => {
                    return Err(LogError::InvalidConfig(format!(
                        "cleanup policy {s:?} is not one of delete, compact, compact,delete"
                    )))
                }
            }
        }
        Ok(match (compact, delete) {
            (true, true) => Self::CompactDelete,
            (true, false) => Self::Compact,
            _ => Self::Delete,
        })
    }
}

impl std::fmt::Display for CleanupPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Delete => "delete",
            Self::Compact => "compact",
            Self::CompactDelete => "compact,delete",
        })
    }
}

/// A share of a log, from 0 to 1: the cleaner's `min.cleanable.dirty.ratio`. Always finite and
/// within `0.0..=1.0`, so it compares and hashes like the number it holds.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct DirtyRatio(f64);

impl Eq for DirtyRatio {}

impl DirtyRatio {
    /// Kafka's default, 0.5: a log is cleaned once half of it is dirty.
    pub const DEFAULT: DirtyRatio = DirtyRatio(0.5);

    /// `ratio`, if it is a number from 0 to 1.
    pub fn new(ratio: f64) -> Option<Self> {
        (0.0..=1.0).contains(&ratio).then_some(Self(ratio))
    }

    pub fn get(self) -> f64 {
        self.0
    }
}

impl Default for DirtyRatio {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl std::str::FromStr for DirtyRatio {
    type Err = LogError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse::<f64>().ok().and_then(Self::new).ok_or_else(|| {
            LogError::InvalidConfig(format!("dirty ratio {s:?} is not a number from 0 to 1"))
        })
    }
}

impl std::fmt::Display for DirtyRatio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The settings of one partition log. A topic's config is a `LogConfig`; the broker's defaults
/// are one too.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogConfig {
    /// Roll to a new segment once the active one would exceed this size. Default 1 GiB.
    pub segment_bytes_max: u64,
    /// Roll to a new segment once the active one's first batch is this old. Default 7 days.
    pub segment_ms_max: u64,
    /// Delete the oldest whole segments while the log is larger than this. `None`: no limit.
    pub retention_bytes_max: Option<u64>,
    /// Delete whole segments whose newest record is older than this. `None`: keep forever.
    /// Default 7 days.
    pub retention_ms_max: Option<u64>,
    /// Bytes of log between two offset-index (and time-index) entries. Default 4096.
    pub index_interval_bytes: u32,
    /// Preallocated size of each index file; a segment rolls when its index is full. Default 10 MiB.
    pub index_bytes_max: u32,
    /// The largest batch accepted. Default 1 MiB.
    pub message_bytes_max: usize,
    /// When appends reach stable storage.
    pub durability: Durability,
    /// Retention, compaction or both. Default `delete`.
    pub cleanup_policy: CleanupPolicy,
    /// The cleaner picks a compacted log only once this share of it is dirty (written since its
    /// last clean). Default 0.5.
    pub min_cleanable_dirty_ratio: DirtyRatio,
    /// A record stays uncompacted for at least this long after it was written. Default 0.
    pub min_compaction_lag_ms: u64,
    /// A dirty record is compacted within about this long, whatever the dirty ratio. Default
    /// `i64::MAX` (Kafka's: never forced).
    pub max_compaction_lag_ms: u64,
    /// How long a tombstone (a record with a null value) stays readable after the clean that
    /// first kept it. Default 1 day.
    pub delete_retention_ms: u64,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            segment_bytes_max: 1 << 30,
            segment_ms_max: 7 * 24 * 3600 * 1000,
            retention_bytes_max: None,
            retention_ms_max: Some(7 * 24 * 3600 * 1000),
            index_interval_bytes: 4096,
            index_bytes_max: 10 << 20,
            message_bytes_max: 1 << 20,
            durability: Durability::Sync,
            cleanup_policy: CleanupPolicy::Delete,
            min_cleanable_dirty_ratio: DirtyRatio::DEFAULT,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX as u64,
            delete_retention_ms: 24 * 3600 * 1000,
        }
    }
}

impl LogConfig {
    /// Rejects settings outside their ranges (the topic settings table,
    /// `TopicConfig::BOUNDS`), before anything is opened with them. The error names the
    /// setting, the value and the range.
    pub fn validate(&self) -> Result<(), LogError> {
        crate::bounds::check_bounds(self, crate::topic::TopicConfig::BOUNDS)
            .map_err(LogError::InvalidConfig)?;
        if self.min_compaction_lag_ms > self.max_compaction_lag_ms {
            return Err(LogError::InvalidConfig(format!(
                "min.compaction.lag.ms {} exceeds max.compaction.lag.ms {}",
                self.min_compaction_lag_ms, self.max_compaction_lag_ms
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durability_parses_and_prints_round_trip() {
        for text in ["sync", "none", "interval:250"] {
            let parsed: Durability = text.parse().expect("valid durability");
            assert_eq!(parsed.to_string(), text);
        }
        assert!("interval:0".parse::<Durability>().is_err());
        assert!("interval:x".parse::<Durability>().is_err());
        assert!("fast".parse::<Durability>().is_err());
    }

    #[test]
    fn cleanup_policies_and_ratios_parse_and_print_round_trip() {
        for text in ["delete", "compact", "compact,delete"] {
            let parsed: CleanupPolicy = text.parse().expect("valid policy");
            assert_eq!(parsed.to_string(), text);
        }
        assert_eq!(
            "delete,compact"
                .parse::<CleanupPolicy>()
                .expect("either order"),
            CleanupPolicy::CompactDelete
        );
        for bad in ["", "compacted", "compact,compact", "delete,"] {
            assert!(bad.parse::<CleanupPolicy>().is_err(), "{bad:?}");
        }
        assert!(CleanupPolicy::Compact.compacts() && !CleanupPolicy::Compact.deletes());
        assert_eq!(
            "0.25".parse::<DirtyRatio>().expect("ratio").to_string(),
            "0.25"
        );
        for bad in ["-0.1", "1.5", "NaN", "inf", "half"] {
            assert!(bad.parse::<DirtyRatio>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn compaction_lags_are_bounded_and_ordered() {
        let lags = |min, max| LogConfig {
            min_compaction_lag_ms: min,
            max_compaction_lag_ms: max,
            ..LogConfig::default()
        };
        assert!(lags(10, 10).validate().is_ok());
        assert!(lags(11, 10).validate().is_err());
        assert!(lags(0, 0).validate().is_err());
        assert!(lags(0, u64::MAX).validate().is_err());
    }

    #[test]
    fn default_config_is_valid_and_bad_ones_are_refused() {
        LogConfig::default().validate().expect("defaults are valid");
        let tiny = LogConfig {
            segment_bytes_max: 10,
            ..LogConfig::default()
        };
        assert!(tiny.validate().is_err());
        let huge = LogConfig {
            segment_bytes_max: 1 << 33,
            ..LogConfig::default()
        };
        assert!(huge.validate().is_err());
        // The settings an adversary reached for first: each refused, naming itself.
        for (config, key) in [
            (
                LogConfig {
                    index_bytes_max: u32::MAX,
                    ..LogConfig::default()
                },
                "segment.index.bytes",
            ),
            (
                LogConfig {
                    message_bytes_max: usize::MAX,
                    ..LogConfig::default()
                },
                "max.message.bytes",
            ),
            (
                LogConfig {
                    segment_ms_max: u64::MAX,
                    ..LogConfig::default()
                },
                "segment.ms",
            ),
            (
                LogConfig {
                    durability: Durability::Interval(Duration::from_secs(10 * 86_400)),
                    ..LogConfig::default()
                },
                "brook.durability",
            ),
        ] {
            let err = config.validate().expect_err(key).to_string();
            assert!(err.contains(key) && err.contains(" to "), "{err}");
        }
    }
}
