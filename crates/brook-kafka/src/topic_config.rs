//! Kafka's topic configs as DescribeConfigs and CreateTopics/AlterConfigs see them: what each
//! is (its type and documentation), and whether it is one of brook's log settings or behaviour
//! brook always has.
//!
//! The log settings themselves (their Kafka names, brook's aliases, their values) are brook-log's
//! one table (`brook_log::TopicConfig`); this module only adds what the Kafka protocol shows
//! beside them. Kafka settings that describe behaviour brook always has
//! (`compression.type=producer`, `min.insync.replicas=1`, ...) are reported, and accepted when
//! set to that value; anything else is refused with INVALID_CONFIG rather than silently ignored.

use brook_broker::{ConfigChange, LogConfig, TopicConfig};

/// Kafka's DescribeConfigs config types (KIP-569).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i8)]
pub(crate) enum ConfigType {
    Boolean = 1,
    String = 2,
    Int = 3,
    Long = 5,
    Double = 6,
    /// A comma-separated list: IncrementalAlterConfigs may APPEND to it and SUBTRACT from it.
    List = 7,
}

/// Which brook setting (or fixed behaviour) a Kafka config name stands for.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// A setting of brook-log's topic table, under the same (Kafka) name.
    Log,
    /// Behaviour brook always has: this value only.
    Fixed(&'static str),
}

/// One Kafka topic config.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Setting {
    pub name: &'static str,
    kind: Kind,
    pub config_type: ConfigType,
    pub doc: &'static str,
}

const fn log(name: &'static str, config_type: ConfigType, doc: &'static str) -> Setting {
    Setting {
        name,
        kind: Kind::Log,
        config_type,
        doc,
    }
}

const fn fixed(
    name: &'static str,
    value: &'static str,
    config_type: ConfigType,
    doc: &'static str,
) -> Setting {
    Setting {
        name,
        kind: Kind::Fixed(value),
        config_type,
        doc,
    }
}

/// What an alter request does to one config (Kafka's IncrementalAlterConfigs operations;
/// AlterConfigs only sets and deletes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Set,
    Delete,
    Append,
    Subtract,
}

/// Every topic config brook knows, in the order DescribeConfigs lists them.
#[rustfmt::skip]
pub(crate) const SETTINGS: &[Setting] = &[
    log("cleanup.policy", ConfigType::List, "delete (retention deletes old segments), compact (the cleaner keeps the latest record of every key; every record needs a key), or compact,delete (both)."),
    fixed("compression.type", "producer", ConfigType::String, "Batches are stored compressed as the producer sent them."),
    log("max.message.bytes", ConfigType::Int, "Largest record batch accepted (brook: message_bytes_max)."),
    fixed("message.timestamp.type", "CreateTime", ConfigType::String, "Records keep the producer's timestamps."),
    fixed("min.insync.replicas", "1", ConfigType::Int, "brook is a single node: every write has one replica."),
    log("retention.bytes", ConfigType::Long, "Delete old segments past this partition size; -1 for no limit (brook: retention_bytes_max)."),
    log("retention.ms", ConfigType::Long, "Delete segments older than this; -1 for no limit (brook: retention_ms_max)."),
    log("segment.bytes", ConfigType::Int, "Roll to a new segment past this size (brook: segment_bytes_max)."),
    log("segment.index.bytes", ConfigType::Int, "Size of a segment's offset index (brook: index_bytes_max)."),
    log("segment.ms", ConfigType::Long, "Roll to a new segment past this age (brook: segment_ms_max)."),
    log("index.interval.bytes", ConfigType::Int, "Bytes between offset index entries (brook: index_interval_bytes)."),
    log("brook.durability", ConfigType::String, "When a write is acknowledged: sync (after fdatasync), interval:MS, or none."),
    log("min.cleanable.dirty.ratio", ConfigType::Double, "A compacted partition is cleaned once this share of it was written since its last clean (0 to 1)."),
    log("min.compaction.lag.ms", ConfigType::Long, "A record stays uncompacted at least this long after it was written."),
    log("max.compaction.lag.ms", ConfigType::Long, "A dirty record is compacted within about this long, whatever the dirty ratio."),
    log("delete.retention.ms", ConfigType::Long, "How long a tombstone (a record with a null value) stays readable after the clean that first kept it."),
];

/// The Kafka setting named `name` (or by brook's alias of a log setting).
pub(crate) fn lookup(name: &str) -> Option<&'static Setting> {
    let name = TopicConfig::key(name).unwrap_or(name);
    SETTINGS.iter().find(|s| s.name == name)
}

impl Setting {
    /// Whether a topic whose overrides are named `overridden` (Kafka names) sets this one.
    pub(crate) fn is_overridden(&self, overridden: &[&str]) -> bool {
        matches!(self.kind, Kind::Log) && overridden.contains(&self.name)
    }

    /// The value in force, as Kafka writes it.
    pub(crate) fn value(&self, config: &LogConfig) -> String {
        match self.kind {
            Kind::Log => brook_log::config_entries(config)
                .into_iter()
                .find(|(key, _)| *key == self.name)
                .map(|(_, value)| value)
                .unwrap_or_default(),
            Kind::Fixed(value) => value.to_owned(),
        }
    }

    /// Sets this config to `value` (Kafka's text form) in a topic's overrides.
    pub(crate) fn apply(&self, overrides: &mut TopicConfig, value: &str) -> Result<(), String> {
        match self.kind {
            Kind::Log => overrides.set(self.name, value).map_err(|e| e.to_string()),
            Kind::Fixed(fixed) if value == fixed => Ok(()),
            Kind::Fixed(fixed) => Err(format!(
                "{} can only be {fixed:?} on brook, not {value:?}",
                self.name
            )),
        }
    }

    /// This config's part in an alter request: the broker's change for a log setting; for
    /// fixed behaviour nothing, when the operation leaves its only value in place, else why
    /// not. `value` is the request's (`None` only for [`Op::Delete`]).
    pub(crate) fn change(&self, op: Op, value: &str) -> Result<Option<ConfigChange>, String> {
        let (key, value) = (self.name.to_owned(), value.to_owned());
        let Kind::Fixed(fixed) = self.kind else {
            return Ok(Some(match op {
                Op::Set => ConfigChange::Set { key, value },
                Op::Delete => ConfigChange::Unset { key },
                Op::Append => ConfigChange::Append { key, value },
                Op::Subtract => ConfigChange::Subtract { key, value },
            }));
        };
        let items = |list: &str| -> Vec<String> {
            list.split(',')
                .map(|item| item.trim().to_owned())
                .filter(|item| !item.is_empty())
                .collect()
        };
        let keeps_fixed = match op {
            Op::Set => value == fixed,
            Op::Delete => true,
            Op::Append => items(&value).iter().all(|item| items(fixed).contains(item)),
            Op::Subtract => !items(&value).iter().any(|item| items(fixed).contains(item)),
        };
        if keeps_fixed {
            Ok(None)
        } else {
            Err(format!(
                "{} can only be {fixed:?} on brook ({op:?} {value:?} would change it)",
                self.name
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_values_round_trip_through_brook_settings() {
        let mut overrides = TopicConfig::default();
        lookup("retention.ms")
            .unwrap()
            .apply(&mut overrides, "-1")
            .unwrap();
        lookup("retention.bytes")
            .unwrap()
            .apply(&mut overrides, "1048576")
            .unwrap();
        lookup("segment.bytes")
            .unwrap()
            .apply(&mut overrides, "4096")
            .unwrap();
        lookup("cleanup.policy")
            .unwrap()
            .apply(&mut overrides, "delete")
            .unwrap();
        assert_eq!(overrides.retention_ms_max, Some(None));
        assert_eq!(overrides.retention_bytes_max, Some(Some(1 << 20)));
        let mut config = LogConfig::default();
        config.retention_ms_max = None;
        config.segment_bytes_max = 4096;
        assert_eq!(lookup("retention.ms").unwrap().value(&config), "-1");
        assert_eq!(lookup("segment.bytes").unwrap().value(&config), "4096");
        assert!(lookup("segment.bytes")
            .unwrap()
            .is_overridden(&["segment.bytes"]));
        assert!(lookup("cleanup.policy")
            .unwrap()
            .is_overridden(&["cleanup.policy"]));
        assert!(!lookup("cleanup.policy")
            .unwrap()
            .is_overridden(&["segment.bytes"]));
        assert_eq!(
            lookup("segment_bytes_max").map(|s| s.name),
            Some("segment.bytes"),
            "brook's alias"
        );
    }

    #[test]
    fn bad_values_and_unsupported_behaviour_are_refused() {
        let mut overrides = TopicConfig::default();
        assert!(lookup("cleanup.policy")
            .unwrap()
            .apply(&mut overrides, "compacted")
            .is_err());
        assert!(lookup("retention.ms")
            .unwrap()
            .apply(&mut overrides, "-5")
            .is_err());
        assert!(lookup("segment.bytes")
            .unwrap()
            .apply(&mut overrides, "big")
            .is_err());
        assert!(lookup("brook.durability")
            .unwrap()
            .apply(&mut overrides, "maybe")
            .is_err());
        assert!(lookup("no.such.config").is_none());
        assert_eq!(overrides, TopicConfig::default(), "nothing set by failures");
    }

    #[test]
    fn every_log_setting_is_described_once() {
        for key in TopicConfig::KEYS {
            let rows = SETTINGS.iter().filter(|s| s.name == *key).count();
            assert_eq!(rows, 1, "{key}");
        }
        for setting in SETTINGS {
            if matches!(setting.kind, Kind::Log) {
                assert!(
                    TopicConfig::KEYS.contains(&setting.name),
                    "{}",
                    setting.name
                );
            }
        }
    }
}
