//! Kafka's topic config names and values, mapped onto brook's log settings: what CreateTopics
//! accepts and what DescribeConfigs reports, from one table.
//!
//! Settings brook has (`retention.ms` is `retention_ms_max`, ...) are read and written through;
//! Kafka settings that describe behaviour brook always has (`cleanup.policy=delete`,
//! `min.insync.replicas=1`, ...) are reported, and accepted when set to that value; anything
//! else is refused with INVALID_CONFIG rather than silently ignored.

use brook_broker::{Durability, LogConfig, TopicConfig};

/// Kafka's DescribeConfigs config types (KIP-569).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i8)]
pub(crate) enum ConfigType {
    Boolean = 1,
    String = 2,
    Int = 3,
    Long = 5,
}

/// Which brook setting (or fixed behaviour) a Kafka config name stands for.
#[derive(Debug, Clone, Copy)]
enum Kind {
    SegmentBytes,
    SegmentMs,
    RetentionBytes,
    RetentionMs,
    MessageBytes,
    IndexBytes,
    IndexIntervalBytes,
    Durability,
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

const fn setting(
    name: &'static str,
    kind: Kind,
    config_type: ConfigType,
    doc: &'static str,
) -> Setting {
    Setting {
        name,
        kind,
        config_type,
        doc,
    }
}

/// Every topic config brook knows, in the order DescribeConfigs lists them.
pub(crate) const SETTINGS: &[Setting] = &[
    setting("cleanup.policy", Kind::Fixed("delete"), ConfigType::String, "Old segments are deleted by retention; compaction is not supported."),
    setting("compression.type", Kind::Fixed("producer"), ConfigType::String, "Batches are stored compressed as the producer sent them."),
    setting("max.message.bytes", Kind::MessageBytes, ConfigType::Int, "Largest record batch accepted (brook: message_bytes_max)."),
    setting("message.timestamp.type", Kind::Fixed("CreateTime"), ConfigType::String, "Records keep the producer's timestamps."),
    setting("min.insync.replicas", Kind::Fixed("1"), ConfigType::Int, "brook is a single node: every write has one replica."),
    setting("retention.bytes", Kind::RetentionBytes, ConfigType::Long, "Delete old segments past this partition size; -1 for no limit (brook: retention_bytes_max)."),
    setting("retention.ms", Kind::RetentionMs, ConfigType::Long, "Delete segments older than this; -1 for no limit (brook: retention_ms_max)."),
    setting("segment.bytes", Kind::SegmentBytes, ConfigType::Int, "Roll to a new segment past this size (brook: segment_bytes_max)."),
    setting("segment.index.bytes", Kind::IndexBytes, ConfigType::Int, "Size of a segment's offset index (brook: index_bytes_max)."),
    setting("segment.ms", Kind::SegmentMs, ConfigType::Long, "Roll to a new segment past this age (brook: segment_ms_max)."),
    setting("index.interval.bytes", Kind::IndexIntervalBytes, ConfigType::Int, "Bytes between offset index entries (brook: index_interval_bytes)."),
    setting("brook.durability", Kind::Durability, ConfigType::String, "When a write is acknowledged: sync (after fdatasync), interval:MS, or none."),
];

/// The Kafka setting named `name`.
pub(crate) fn lookup(name: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.name == name)
}

impl Setting {
    /// The brook setting behind this one, if it is not fixed behaviour.
    fn brook_key(&self) -> Option<&'static str> {
        Some(match self.kind {
            Kind::SegmentBytes => "segment_bytes_max",
            Kind::SegmentMs => "segment_ms_max",
            Kind::RetentionBytes => "retention_bytes_max",
            Kind::RetentionMs => "retention_ms_max",
            Kind::MessageBytes => "message_bytes_max",
            Kind::IndexBytes => "index_bytes_max",
            Kind::IndexIntervalBytes => "index_interval_bytes",
            Kind::Durability => "durability",
            Kind::Fixed(_) => return None,
        })
    }

    /// Whether a topic whose overridden brook settings are `overridden` sets this one.
    pub(crate) fn is_overridden(&self, overridden: &[&str]) -> bool {
        self.brook_key()
            .is_some_and(|key| overridden.contains(&key))
    }

    /// The value in force, as Kafka writes it.
    pub(crate) fn value(&self, config: &LogConfig) -> String {
        let limit = |v: Option<u64>| v.map_or_else(|| "-1".to_owned(), |v| v.to_string());
        match self.kind {
            Kind::SegmentBytes => config.segment_bytes_max.to_string(),
            Kind::SegmentMs => config.segment_ms_max.to_string(),
            Kind::RetentionBytes => limit(config.retention_bytes_max),
            Kind::RetentionMs => limit(config.retention_ms_max),
            Kind::MessageBytes => config.message_bytes_max.to_string(),
            Kind::IndexBytes => config.index_bytes_max.to_string(),
            Kind::IndexIntervalBytes => config.index_interval_bytes.to_string(),
            Kind::Durability => config.durability.to_string(),
            Kind::Fixed(value) => value.to_owned(),
        }
    }

    /// Sets this config to `value` (Kafka's text form) on a new topic's overrides.
    pub(crate) fn apply(&self, overrides: &mut TopicConfig, value: &str) -> Result<(), String> {
        let bad = || format!("invalid value {value:?} for {}", self.name);
        let number = || value.parse::<u64>().map_err(|_| bad());
        let limit = || match value.parse::<i64>() {
            Ok(-1) => Ok(None),
            Ok(v) if v >= 0 => Ok(Some(v as u64)),
            _ => Err(bad()),
        };
        match self.kind {
            Kind::SegmentBytes => overrides.segment_bytes_max = Some(number()?),
            Kind::SegmentMs => overrides.segment_ms_max = Some(number()?),
            Kind::RetentionBytes => overrides.retention_bytes_max = Some(limit()?),
            Kind::RetentionMs => overrides.retention_ms_max = Some(limit()?),
            Kind::MessageBytes => {
                overrides.message_bytes_max = Some(value.parse().map_err(|_| bad())?)
            }
            Kind::IndexBytes => overrides.index_bytes_max = Some(value.parse().map_err(|_| bad())?),
            Kind::IndexIntervalBytes => {
                overrides.index_interval_bytes = Some(value.parse().map_err(|_| bad())?)
            }
            Kind::Durability => {
                overrides.durability = Some(value.parse::<Durability>().map_err(|_| bad())?)
            }
            Kind::Fixed(fixed) if value == fixed => {}
            Kind::Fixed(fixed) => {
                return Err(format!(
                    "{} can only be {fixed:?} on brook, not {value:?}",
                    self.name
                ))
            }
        }
        Ok(())
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
            .is_overridden(&["segment_bytes_max"]));
        assert!(!lookup("cleanup.policy")
            .unwrap()
            .is_overridden(&["segment_bytes_max"]));
    }

    #[test]
    fn bad_values_and_unsupported_behaviour_are_refused() {
        let mut overrides = TopicConfig::default();
        assert!(lookup("cleanup.policy")
            .unwrap()
            .apply(&mut overrides, "compact")
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
}
