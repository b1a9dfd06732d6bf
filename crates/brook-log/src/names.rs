//! Topic names and the on-disk names derived from them.
//!
//! A topic name becomes part of a directory name (`<data>/<topic>-<partition>/`), so it is
//! checked before it reaches the file system: `[a-zA-Z0-9._-]`, 1 to 249 characters, never `.`
//! or `..` (Kafka's rule, so a name valid here is valid for every Kafka client). With no `/`,
//! no NUL and no `..` a name can never escape the data directory.
//!
//! Because partition numbers are all digits and topic names are checked, a partition directory
//! name splits back into its topic and partition unambiguously at its last `-`
//! ([`parse_partition_dir`]).

use crate::error::{LogError, Result};

/// The longest topic name, in bytes (all allowed characters are ASCII). Kafka's limit.
pub const TOPIC_NAME_LEN_MAX: usize = 249;

/// Checks that `name` can be a topic name: `[a-zA-Z0-9._-]`, 1..=249 characters, not `.`/`..`.
pub fn validate_topic_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        Some("it is empty")
    } else if name.len() > TOPIC_NAME_LEN_MAX {
        Some("it is longer than 249 characters")
    } else if name == "." || name == ".." {
        Some("\".\" and \"..\" are reserved")
    } else if !name.bytes().all(is_topic_name_byte) {
        Some("only ASCII letters, digits, '.', '_' and '-' are allowed")
    } else {
        None
    };
    match reason {
        None => Ok(()),
        Some(reason) => Err(LogError::InvalidTopicName {
            name: name.to_owned(),
            reason,
        }),
    }
}

fn is_topic_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')
}

/// The directory name of a partition: `<topic>-<partition>`.
pub(crate) fn partition_dir_name(topic: &str, partition: u32) -> String {
    format!("{topic}-{partition}")
}

/// Splits a partition directory name back into `(topic, partition)`; `None` when the name is
/// not one (no `-`, a non-numeric or non-canonical partition such as `007`, a bad topic name).
pub(crate) fn parse_partition_dir(name: &str) -> Option<(&str, u32)> {
    let (topic, partition) = name.rsplit_once('-')?;
    let number: u32 = partition.parse().ok()?;
    // Only the canonical spelling: `t-01` or `t-+1` was not made by us.
    if number.to_string() != partition {
        return None;
    }
    validate_topic_name(topic).ok()?;
    Some((topic, number))
}

/// The suffix of a partition directory set aside on open: no topic file claims it, yet it holds
/// records (see the store's module docs). `<topic>-<partition>.orphaned`, or
/// `<topic>-<partition>.orphaned.<unix-ms>` when that name is taken. The part after the last
/// `-` is then never all digits, so a set-aside directory never parses as a partition
/// directory ([`parse_partition_dir`]) and is never opened or served.
pub(crate) const SET_ASIDE_SUFFIX: &str = ".orphaned";

/// The name a set-aside partition directory `dir_name` takes: with `stamp`, the second choice
/// for when the first is taken.
pub(crate) fn set_aside_dir_name(dir_name: &str, stamp: Option<u128>) -> String {
    match stamp {
        None => format!("{dir_name}{SET_ASIDE_SUFFIX}"),
        Some(ms) => format!("{dir_name}{SET_ASIDE_SUFFIX}.{ms}"),
    }
}

/// Splits a set-aside directory name back into the `(topic, partition)` it held; `None` when
/// the name is not one.
pub(crate) fn parse_set_aside_dir(name: &str) -> Option<(&str, u32)> {
    let base = name.strip_suffix(SET_ASIDE_SUFFIX).or_else(|| {
        let (head, stamp) = name.rsplit_once('.')?;
        let digits = !stamp.is_empty() && stamp.bytes().all(|b| b.is_ascii_digit());
        head.strip_suffix(SET_ASIDE_SUFFIX).filter(|_| digits)
    })?;
    parse_partition_dir(base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_kafka_names() {
        for name in [
            "a",
            "orders",
            "Orders.v2",
            "a_b-c.d",
            "-",
            "...",
            &"x".repeat(249),
        ] {
            validate_topic_name(name).unwrap_or_else(|e| panic!("{name:?} refused: {e}"));
        }
    }

    #[test]
    fn refuses_bad_names_with_a_reason() {
        let long = "x".repeat(250);
        for name in [
            "",
            ".",
            "..",
            "a/b",
            "/",
            "a\0b",
            "a b",
            "é",
            "a\\b",
            "t:1",
            long.as_str(),
        ] {
            match validate_topic_name(name) {
                Err(LogError::InvalidTopicName { name: got, reason }) => {
                    assert_eq!(got, name);
                    assert!(!reason.is_empty());
                }
                other => panic!("{name:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn set_aside_dirs_are_never_partition_dirs_and_name_what_they_held() {
        for (topic, partition) in [("a", 0), ("a-1", 12), ("x.orphaned", 7), ("-", 3)] {
            let dir = partition_dir_name(topic, partition);
            for stamp in [None, Some(1_700_000_000_000)] {
                let aside = set_aside_dir_name(&dir, stamp);
                assert_eq!(parse_partition_dir(&aside), None, "{aside}");
                assert_eq!(
                    parse_set_aside_dir(&aside),
                    Some((topic, partition)),
                    "{aside}"
                );
            }
        }
        for name in [
            "a-0",
            "a-0.orphaned.",
            "a-0.orphaned.x",
            "a.orphaned",
            "a-0.orphan",
        ] {
            assert_eq!(parse_set_aside_dir(name), None, "{name}");
        }
    }

    #[test]
    fn partition_dirs_round_trip_even_with_dashes_in_the_topic() {
        for (topic, partition) in [("a", 0), ("a-1", 0), ("a-1", 12), ("x-", 7), ("-", 3)] {
            let dir = partition_dir_name(topic, partition);
            assert_eq!(parse_partition_dir(&dir), Some((topic, partition)), "{dir}");
        }
        for name in [
            "a",
            "a-",
            "-1",
            "a-01",
            "a-+1",
            "a-x",
            "a/b-1",
            "a-4294967296",
            ".-0",
        ] {
            assert_eq!(parse_partition_dir(name), None, "{name}");
        }
    }
}
