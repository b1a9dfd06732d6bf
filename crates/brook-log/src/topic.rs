//! A topic: its name, its id, its config overrides and its partition logs; and the topic file
//! that persists all but the logs.
//!
//! A topic's settings are the store's defaults with the topic's [`TopicConfig`] overrides laid
//! over them ([`TopicConfig::merged_over`]); only the overrides are persisted, so a topic follows
//! later changes of the defaults for every setting it did not pin.
//!
//! The topic file is `<data>/topics/<topic>.topic` in the [`crate::meta`] envelope (magic `BRTP`,
//! version 1). Its payload is UTF-8 text, one `key=value` per line, so an operator can read it
//! with `tail -c +11`:
//!
//! ```text
//! id=5f1e0b8ac3b44c2a9d0e6f4a1b2c3d4e      16 bytes of UUID v4, hex; Kafka's topic id
//! partitions=3                             number of partitions, 1..=10000
//! retention_ms_max=none                    one line per override, keys as in LogConfig
//! durability=interval:100
//! ```
//!
//! Every line is checked: an unknown key, a repeated key, a bad value or a missing `id` or
//! `partitions` makes the file bad (an error naming it), never silently defaulted.
//!
//! # One table of topic settings
//!
//! `topic_config!` below is the one list of topic settings: each field of [`LogConfig`] with
//! its Kafka name (`retention.ms`), which every door shows and accepts, and brook's own name
//! (`retention_ms_max`), accepted as an alias and kept in the topic file. Values are written
//! as Kafka writes them (`-1` for no limit); `none` is accepted for `-1`.

use std::path::Path;
use std::sync::Arc;

use crate::batch::HEADER_LEN;
use crate::bounds::{Bounded, Bounds, DAY_MS, LONG_MAX};
use crate::config::{CleanupPolicy, DirtyRatio, Durability, LogConfig};
use crate::error::{LogError, Result};
use crate::fs::Fs;
use crate::log::PartitionLog;
use crate::meta;

/// The most partitions one topic may have. Each is a directory with open files and two
/// preallocated index maps, so the limit keeps one bad request from exhausting file handles.
pub const PARTITIONS_MAX: u32 = 10_000;

/// Magic of the topic file.
const TOPIC_MAGIC: [u8; 4] = *b"BRTP";
const TOPIC_VERSION: u16 = 1;

/// One setting's text form, shared by the topic file, the CLI and config listings.
trait ConfigValue: Sized {
    fn parse_value(text: &str) -> Option<Self>;
    /// The topic file's form.
    fn render(&self) -> String;
    /// The form every door shows, as Kafka writes it.
    fn render_kafka(&self) -> String {
        self.render()
    }
    /// The number the setting's [`Bounds`] apply to; `None` when it has none in this form
    /// (`-1` for no limit, `durability=sync`).
    fn number(&self) -> Option<u64>;
}

macro_rules! plain_number_value {
    ($($ty:ty),*) => {$(
        impl ConfigValue for $ty {
            fn parse_value(text: &str) -> Option<Self> {
                // Canonical decimal only, so that what is written is what was read.
                text.parse().ok().filter(|v: &$ty| v.to_string() == text)
            }
            fn render(&self) -> String {
                self.to_string()
            }
            fn number(&self) -> Option<u64> {
                u64::try_from(*self).ok()
            }
        }
    )*};
}
plain_number_value!(u32, u64, usize);

/// A limit that may be switched off: a number, or `-1` (Kafka's form) or `none` for no limit.
impl ConfigValue for Option<u64> {
    fn parse_value(text: &str) -> Option<Self> {
        match text {
            "none" | "-1" => Some(None),
            number => u64::parse_value(number).map(Some),
        }
    }
    fn render(&self) -> String {
        self.map_or_else(|| "none".to_owned(), |v| v.to_string())
    }
    fn render_kafka(&self) -> String {
        self.map_or_else(|| "-1".to_owned(), |v| v.to_string())
    }
    fn number(&self) -> Option<u64> {
        *self
    }
}

/// The cleanup policy has no number; its text is checked by its parse.
impl ConfigValue for CleanupPolicy {
    fn parse_value(text: &str) -> Option<Self> {
        text.parse().ok()
    }
    fn render(&self) -> String {
        self.to_string()
    }
    fn number(&self) -> Option<u64> {
        None
    }
}

/// A ratio is not a whole number; its range (0 to 1) is checked by its parse.
impl ConfigValue for DirtyRatio {
    fn parse_value(text: &str) -> Option<Self> {
        text.parse().ok()
    }
    fn render(&self) -> String {
        self.to_string()
    }
    fn number(&self) -> Option<u64> {
        None
    }
}

impl ConfigValue for Durability {
    fn parse_value(text: &str) -> Option<Self> {
        text.parse().ok()
    }
    fn render(&self) -> String {
        self.to_string()
    }
    /// The interval of `interval:MS`, in milliseconds.
    fn number(&self) -> Option<u64> {
        match self {
            Durability::Interval(every) => {
                Some(u64::try_from(every.as_millis()).unwrap_or(u64::MAX))
            }
            Durability::Sync | Durability::None => None,
        }
    }
}

/// Declares [`TopicConfig`] with one `Option` per [`LogConfig`] field, and everything that
/// walks the fields, from one list: each row is a field, its type, its Kafka name and its range
/// ([`Bounds`]; for `durability`, that of `interval:MS`'s milliseconds). `merged_over` builds a
/// `LogConfig` literal, so a field added to `LogConfig` but not here fails to compile rather
/// than being silently ignored.
macro_rules! topic_config {
    ($($(#[$doc:meta])* $field:ident: $ty:ty = $kafka:literal, $bounds:expr,)*) => {
        /// A topic's overrides of the store's default [`LogConfig`]: `None` follows the default.
        #[derive(Debug, Clone, Default, PartialEq, Eq)]
        #[non_exhaustive]
        pub struct TopicConfig {
            $($(#[$doc])* pub $field: Option<$ty>,)*
        }

        impl TopicConfig {
            /// The setting names every door shows: Kafka's (`retention.ms`), in table order.
            pub const KEYS: &'static [&'static str] = &[$($kafka),*];

            /// brook's own names (`retention_ms_max`, as in [`LogConfig`] and the topic file),
            /// accepted as aliases: `ALIASES[i]` is `KEYS[i]`.
            pub const ALIASES: &'static [&'static str] = &[$(stringify!($field)),*];

            /// Every setting's range, named `kafka.name (brook_alias)`: what
            /// [`LogConfig::validate`] checks (so every door that creates or alters a topic, and
            /// the server's defaults), what the CLI's help and `docs/operations.md` show. Look a
            /// range up by either name with [`TopicConfig::bounds`].
            pub const BOUNDS: &'static [Bounded<LogConfig>] = &[
                $(Bounded::new(
                    concat!($kafka, " (", stringify!($field), ")"),
                    $bounds,
                    |c| c.$field.number(),
                ),)*
            ];

            /// The range of a setting given by its Kafka name or its brook alias.
            pub fn bounds(name: &str) -> Option<Bounds> {
                match name {
                    $($kafka | stringify!($field) => $bounds.numeric(),)*
                    _ => None,
                }
            }

            /// The Kafka name of a setting given by its Kafka name or its brook alias.
            pub fn key(name: &str) -> Option<&'static str> {
                match name {
                    $($kafka | stringify!($field) => Some($kafka),)*
                    _ => None,
                }
            }

            /// The effective config: each override, else the default.
            pub fn merged_over(&self, defaults: &LogConfig) -> LogConfig {
                LogConfig {
                    $($field: self.$field.unwrap_or(defaults.$field),)*
                }
            }

            /// Sets one override from its text form; `key` is the Kafka name or brook's alias
            /// (`retention.ms` or `retention_ms_max` = `86400000`, or `-1`/`none` for no limit;
            /// `brook.durability` = `sync|none|interval:MS`, ...).
            pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
                match key {
                    $($kafka | stringify!($field) => {
                        self.$field = Some(parse_setting($kafka, value)?);
                    })*
                    _ => return Err(unknown_key(key)),
                }
                Ok(())
            }

            /// Drops one override (by Kafka name or alias), so the setting follows the default.
            pub fn unset(&mut self, key: &str) -> Result<()> {
                match key {
                    $($kafka | stringify!($field) => self.$field = None,)*
                    _ => return Err(unknown_key(key)),
                }
                Ok(())
            }

            /// The overrides that are set, as `(Kafka name, value as Kafka writes it)`, in
            /// table order.
            pub fn entries(&self) -> Vec<(&'static str, String)> {
                let mut out = Vec::new();
                $(if let Some(v) = &self.$field {
                    out.push(($kafka, v.render_kafka()));
                })*
                out
            }

            /// The overrides as the topic file keeps them: brook's names and forms.
            fn file_entries(&self) -> Vec<(&'static str, String)> {
                let mut out = Vec::new();
                $(if let Some(v) = &self.$field {
                    out.push((stringify!($field), v.render()));
                })*
                out
            }
        }

        /// Every setting of `config` as `(Kafka name, value as Kafka writes it)`, in the order
        /// of [`TopicConfig::KEYS`]; for describing a topic's effective config.
        pub fn config_entries(config: &LogConfig) -> Vec<(&'static str, String)> {
            vec![$(($kafka, config.$field.render_kafka())),*]
        }

        /// Every setting of `config` as `(brook's name, value in brook's form)`, in the order of
        /// [`TopicConfig::ALIASES`]: how `brook serve` shows its defaults (`--print-config`).
        pub fn config_entries_by_alias(config: &LogConfig) -> Vec<(&'static str, String)> {
            vec![$((stringify!($field), config.$field.render())),*]
        }
    };
}

topic_config! {
    /// Roll to a new segment past this size. Index entries hold 32-bit positions, so a segment
    /// stays addressable by one.
    segment_bytes_max: u64 = "segment.bytes", Bounds::new(1024, u32::MAX as u64),
    /// Roll to a new segment past this age.
    segment_ms_max: u64 = "segment.ms", Bounds::new(1, LONG_MAX),
    /// Retention by size; `Some(None)` switches a default limit off.
    retention_bytes_max: Option<u64> = "retention.bytes", Bounds::new(0, LONG_MAX),
    /// Retention by age; `Some(None)` switches a default limit off.
    retention_ms_max: Option<u64> = "retention.ms", Bounds::new(0, LONG_MAX),
    /// Bytes between index entries.
    index_interval_bytes: u32 = "index.interval.bytes", Bounds::new(1, i32::MAX as u64),
    /// Preallocated index size.
    index_bytes_max: u32 = "segment.index.bytes", Bounds::new(1024, INDEX_BYTES_MAX_BOUND),
    /// Largest batch accepted.
    message_bytes_max: usize = "max.message.bytes",
        Bounds::new(HEADER_LEN as u64, MESSAGE_BYTES_MAX_BOUND),
    /// When appends reach stable storage (brook's own; Kafka has no such topic setting). The
    /// range is that of `interval:MS`.
    durability: Durability = "brook.durability", Bounds::new(1, DAY_MS),
    /// Retention (`delete`), compaction (`compact`) or both (`compact,delete`). Text, so it
    /// has no range.
    cleanup_policy: CleanupPolicy = "cleanup.policy", Bounds::TEXT,
    /// Share of a compacted log that must be dirty before the cleaner picks it: 0 to 1,
    /// checked by its parse (not a whole number).
    min_cleanable_dirty_ratio: DirtyRatio = "min.cleanable.dirty.ratio", Bounds::new(0, 1),
    /// A record stays uncompacted at least this long.
    min_compaction_lag_ms: u64 = "min.compaction.lag.ms", Bounds::new(0, LONG_MAX),
    /// A dirty record is compacted within about this long.
    max_compaction_lag_ms: u64 = "max.compaction.lag.ms", Bounds::new(1, LONG_MAX),
    /// How long a tombstone stays readable after the clean that first kept it.
    delete_retention_ms: u64 = "delete.retention.ms", Bounds::new(0, LONG_MAX),
}

/// The ceiling of `index_bytes_max`: 64 MiB, 6.4 times Kafka's default, enough for a 4 GiB
/// segment indexed every 512 bytes. An index may cost this much per segment, so one topic
/// setting must not be able to ask for gigabytes.
pub(crate) const INDEX_BYTES_MAX_BOUND: u64 = 64 << 20;

/// The ceiling of `message_bytes_max`: 128 MiB. A batch is held whole in memory while it is
/// checked, and a compressed one may inflate to 64 times its size, so this bounds what one
/// produce can cost.
pub(crate) const MESSAGE_BYTES_MAX_BOUND: u64 = 128 << 20;

fn unknown_key(key: &str) -> LogError {
    LogError::InvalidConfig(format!(
        "unknown setting {key:?}; known: {} (or brook's names: {})",
        TopicConfig::KEYS.join(", "),
        TopicConfig::ALIASES.join(", ")
    ))
}

fn parse_setting<T: ConfigValue>(key: &str, value: &str) -> Result<T> {
    T::parse_value(value).ok_or_else(|| {
        let range = TopicConfig::bounds(key)
            .map(|bounds| format!(" (range: {bounds})"))
            .unwrap_or_default();
        LogError::InvalidConfig(format!("bad value {value:?} for {key}{range}"))
    })
}

/// What a topic file holds. Public so that offline tools can read topic files without
/// opening (and locking) the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TopicMeta {
    pub id: [u8; 16],
    pub partitions: u32,
    pub overrides: TopicConfig,
}

impl TopicMeta {
    /// A new topic's record, with a fresh random (UUID v4) id.
    pub(crate) fn new(partitions: u32, overrides: TopicConfig) -> Self {
        Self {
            id: uuid::Uuid::new_v4().into_bytes(),
            partitions,
            overrides,
        }
    }

    /// Writes the topic file atomically and durably.
    pub(crate) fn write(&self, fs: &dyn Fs, path: &Path) -> Result<()> {
        meta::write_in(
            fs,
            path,
            TOPIC_MAGIC,
            TOPIC_VERSION,
            self.to_text().as_bytes(),
        )
    }

    /// Reads and checks a topic file; `Ok(None)` when it does not exist.
    pub(crate) fn read(fs: &dyn Fs, path: &Path) -> Result<Option<Self>> {
        let Some((version, payload)) = meta::read_in(fs, path, TOPIC_MAGIC, "topic")? else {
            return Ok(None);
        };
        let bad = |reason: String| LogError::BadMetaFile {
            what: "topic",
            path: path.to_path_buf(),
            reason,
        };
        if version != TOPIC_VERSION {
            return Err(bad(format!(
                "version {version} is not {TOPIC_VERSION}; written by a newer brook?"
            )));
        }
        let text = std::str::from_utf8(&payload).map_err(|e| bad(e.to_string()))?;
        Self::from_text(text).map(Some).map_err(bad)
    }

    fn to_text(&self) -> String {
        let mut text = format!("id={}\npartitions={}\n", hex(&self.id), self.partitions);
        for (key, value) in self.overrides.file_entries() {
            text.push_str(&format!("{key}={value}\n"));
        }
        text
    }

    fn from_text(text: &str) -> std::result::Result<Self, String> {
        let mut id = None;
        let mut partitions = None;
        let mut overrides = TopicConfig::default();
        let mut seen = Vec::new();
        for line in text.lines() {
            let (key, value) = line
                .split_once('=')
                .ok_or_else(|| format!("line {line:?} is not key=value"))?;
            if seen.contains(&key) {
                return Err(format!("key {key:?} appears twice"));
            }
            seen.push(key);
            match key {
                "id" => id = Some(parse_hex_id(value).ok_or(format!("bad id {value:?}"))?),
                "partitions" => {
                    partitions = Some(
                        u32::parse_value(value)
                            .filter(|n| (1..=PARTITIONS_MAX).contains(n))
                            .ok_or(format!("bad partition count {value:?}"))?,
                    )
                }
                _ => overrides.set(key, value).map_err(|e| e.to_string())?,
            }
        }
        Ok(Self {
            id: id.ok_or("no id line")?,
            partitions: partitions.ok_or("no partitions line")?,
            overrides,
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_hex_id(text: &str) -> Option<[u8; 16]> {
    if text.len() != 32 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut id = [0u8; 16];
    for (i, byte) in id.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(id)
}

/// An open topic: what its file says plus its open partition logs.
#[derive(Debug)]
pub struct Topic {
    name: String,
    id: [u8; 16],
    config: LogConfig,
    overrides: TopicConfig,
    partitions: Vec<Arc<PartitionLog>>,
    /// Why the topic file could not be read: its partitions are then offline placeholders.
    damaged: Option<String>,
}

impl Topic {
    pub(crate) fn new(
        name: String,
        meta: TopicMeta,
        config: LogConfig,
        partitions: Vec<Arc<PartitionLog>>,
    ) -> Self {
        Self {
            name,
            id: meta.id,
            config,
            overrides: meta.overrides,
            partitions,
            damaged: None,
        }
    }

    /// A topic whose topic file is damaged (`reason`): known by its file's name, with one
    /// offline partition per partition directory found; its id is unknown (zeros) and its
    /// settings are the defaults. Only deleting it changes anything.
    pub(crate) fn damaged(
        name: String,
        config: LogConfig,
        partitions: Vec<Arc<PartitionLog>>,
        reason: String,
    ) -> Self {
        Self {
            name,
            id: [0; 16],
            config,
            overrides: TopicConfig::default(),
            partitions,
            damaged: Some(reason),
        }
    }

    /// Why the topic's file could not be read, if it could not: its partitions are offline.
    pub fn damaged_reason(&self) -> Option<&str> {
        self.damaged.as_deref()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The topic id: 16 random bytes (UUID v4), fixed at creation; Kafka Metadata v10+ serves it.
    pub fn id(&self) -> [u8; 16] {
        self.id
    }

    /// The effective config (defaults with the overrides applied) the partitions were opened with.
    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// The overrides persisted for this topic.
    pub fn overrides(&self) -> &TopicConfig {
        &self.overrides
    }

    pub fn partition_count(&self) -> u32 {
        // At most PARTITIONS_MAX, checked on create and on load.
        self.partitions.len() as u32
    }

    pub fn partition(&self, partition: u32) -> Option<&Arc<PartitionLog>> {
        self.partitions.get(partition as usize)
    }

    pub fn partitions(&self) -> &[Arc<PartitionLog>] {
        &self.partitions
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn some_overrides() -> TopicConfig {
        TopicConfig {
            retention_ms_max: Some(None),
            retention_bytes_max: Some(Some(1 << 20)),
            durability: Some(Durability::Interval(Duration::from_millis(100))),
            segment_bytes_max: Some(4096),
            ..TopicConfig::default()
        }
    }

    #[test]
    fn overrides_win_and_defaults_fill_the_rest() {
        let defaults = LogConfig::default();
        let merged = some_overrides().merged_over(&defaults);
        assert_eq!(merged.retention_ms_max, None);
        assert_eq!(merged.retention_bytes_max, Some(1 << 20));
        assert_eq!(merged.segment_bytes_max, 4096);
        assert_eq!(merged.index_interval_bytes, defaults.index_interval_bytes);
        assert_eq!(TopicConfig::default().merged_over(&defaults), defaults);
    }

    #[test]
    fn set_parses_every_key_and_refuses_bad_values() {
        let mut c = TopicConfig::default();
        for (key, value) in config_entries(&LogConfig::default()) {
            c.set(key, &value).expect("default values parse");
        }
        assert_eq!(c.merged_over(&LogConfig::default()), LogConfig::default());
        assert_eq!(c.entries().len(), TopicConfig::KEYS.len());
        for (key, value) in [
            ("segment_bytes_max", "-1"),
            ("segment_bytes_max", "01"),
            ("segment_bytes_max", ""),
            ("index_bytes_max", "4294967296"),
            ("retention_ms_max", "forever"),
            ("durability", "interval:0"),
            ("cleanup_policy", "compacted"),
            ("min_cleanable_dirty_ratio", "2"),
            ("delete_retention_ms", "soon"),
            ("no_such_key", "1"),
        ] {
            let before = c.clone();
            assert!(c.set(key, value).is_err(), "{key}={value} accepted");
            assert_eq!(c, before, "a refused set changed the config");
        }
    }

    #[test]
    fn kafka_names_and_brook_aliases_set_the_same_setting() {
        let mut by_kafka = TopicConfig::default();
        by_kafka.set("retention.ms", "-1").expect("kafka name");
        by_kafka.set("segment.bytes", "4096").expect("kafka name");
        let mut by_alias = TopicConfig::default();
        by_alias.set("retention_ms_max", "none").expect("alias");
        by_alias.set("segment_bytes_max", "4096").expect("alias");
        assert_eq!(by_kafka, by_alias);
        assert_eq!(
            by_kafka.entries(),
            [
                ("segment.bytes", "4096".to_owned()),
                ("retention.ms", "-1".to_owned())
            ],
            "shown with Kafka's names and forms"
        );
        assert_eq!(TopicConfig::key("retention_ms_max"), Some("retention.ms"));
        assert_eq!(TopicConfig::key("retention.ms"), Some("retention.ms"));
        assert_eq!(TopicConfig::key("retention"), None);
        assert_eq!(TopicConfig::KEYS.len(), TopicConfig::ALIASES.len());
        by_kafka.unset("segment_bytes_max").expect("unset by alias");
        assert_eq!(by_kafka.segment_bytes_max, None);
        assert!(by_kafka.unset("bogus").is_err());
        // The topic file keeps brook's names and forms, so files written before still read.
        let meta = TopicMeta::new(1, by_alias);
        assert!(meta.to_text().contains("retention_ms_max=none\n"));
        assert_eq!(TopicMeta::from_text(&meta.to_text()).expect("reads"), meta);
    }

    #[test]
    fn topic_file_round_trips() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.topic");
        let meta = TopicMeta::new(7, some_overrides());
        assert_eq!(meta.id[6] >> 4, 4, "UUID version 4");
        let fs = &crate::fs::RealFs;
        meta.write(fs, &path).expect("write");
        assert_eq!(TopicMeta::read(fs, &path).expect("read"), Some(meta));
        assert_eq!(
            TopicMeta::read(fs, &dir.path().join("x.topic")).expect("read"),
            None
        );
    }

    #[test]
    fn topic_file_contents_are_checked_line_by_line() {
        let id = "id=000102030405060708090a0b0c0d0e0f\n";
        let good = format!("{id}partitions=2\nsegment_bytes_max=4096\n");
        let meta = TopicMeta::from_text(&good).expect("good");
        assert_eq!(meta.partitions, 2);
        assert_eq!(meta.id[15], 15);
        for bad in [
            String::new(),
            "partitions=2\n".to_owned(),
            id.to_owned(),
            format!("{id}partitions=0\n"),
            format!("{id}partitions=10001\n"),
            format!("{id}partitions=2\npartitions=2\n"),
            format!("{id}partitions=2\nsegment_bytes_max=x\n"),
            format!("{id}partitions=2\nbogus=1\n"),
            format!("{id}partitions=2\nno equals sign\n"),
            "id=00\npartitions=1\n".to_owned(),
        ] {
            assert!(TopicMeta::from_text(&bad).is_err(), "{bad:?} accepted");
        }
    }
}
