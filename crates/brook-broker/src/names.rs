//! The name rules: what a topic name and a group id may be, checked in one place and answered
//! with the broker's error, so every door refuses a bad name the same way and none copies the
//! rule.
//!
//! A topic name is `[a-zA-Z0-9._-]`, 1 to 249 characters, never `.` or `..` (Kafka's rule). The
//! characters are checked by brook-log, because there a topic name becomes a directory name
//! and must never escape the data directory; this module is where everything above the log
//! (the broker's calls, the doors) asks.
//!
//! A group id follows the same rule ([`validate_group_id`]): a group id becomes a key in the
//! offsets file and a label in metrics, and the contract (gRPC, HTTP) documents the rule, so
//! every group call of the broker enforces it, whichever door it came through (Kafka
//! `JoinGroup` and `OffsetCommit` included: Kafka sets no rule, and brook refuses with
//! `INVALID_GROUP_ID` what it would not store).

use crate::error::{BrokerError, Result};

/// Checks a topic name: `[a-zA-Z0-9._-]`, 1 to 249 characters, not `.` or `..`.
/// `InvalidTopicName` (with the reason) otherwise.
pub fn validate_topic_name(name: &str) -> Result<()> {
    brook_log::validate_topic_name(name).map_err(BrokerError::from_admin_log)
}

/// Checks a group id: the topic-name rule, `[a-zA-Z0-9._-]`, 1 to 249 characters, not `.` or
/// `..`. `InvalidGroupId` (with the reason) otherwise. Every group call of the broker applies
/// it; a door may call it first to refuse early.
pub fn validate_group_id(group: &str) -> Result<()> {
    match brook_log::validate_topic_name(group) {
        Ok(()) => Ok(()),
        Err(brook_log::LogError::InvalidTopicName { reason, .. }) => {
            Err(BrokerError::InvalidGroupId {
                group: group.to_owned(),
                reason,
            })
        }
        Err(other) => Err(other.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_are_refused_with_the_brokers_error() {
        validate_topic_name("orders.v2").expect("valid");
        for bad in ["", ".", "..", "a b", "a/b", &"x".repeat(250)] {
            assert!(
                matches!(
                    validate_topic_name(bad),
                    Err(BrokerError::InvalidTopicName { .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_group_rule_is_the_topic_name_rule() {
        for good in ["g", "my-group.v1", "a_b-c.d", &"g".repeat(249)] {
            validate_group_id(good).unwrap_or_else(|e| panic!("{good:?} refused: {e}"));
        }
        for bad in [
            "",
            ".",
            "..",
            "../g",
            "..%2f..%2fx",
            "a b",
            "g:1",
            "a\nb",
            "é",
            &"g".repeat(250),
        ] {
            match validate_group_id(bad) {
                Err(BrokerError::InvalidGroupId { group, reason }) => {
                    assert_eq!(group, bad);
                    assert!(!reason.is_empty());
                }
                other => panic!("{bad:?} gave {other:?}"),
            }
        }
    }
}
