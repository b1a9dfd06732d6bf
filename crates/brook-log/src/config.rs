//! Settings of a partition log: segment roll, retention, indexing, limits and durability.
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
        }
    }
}

impl LogConfig {
    /// Rejects settings outside their ranges (the topic settings table,
    /// `TopicConfig::BOUNDS`), before anything is opened with them. The error names the
    /// setting, the value and the range.
    pub fn validate(&self) -> Result<(), LogError> {
        crate::bounds::check_bounds(self, crate::topic::TopicConfig::BOUNDS)
            .map_err(LogError::InvalidConfig)
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
