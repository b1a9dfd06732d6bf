//! The name rules: what a topic name and a group id may be, checked in one place and answered
//! with the broker's error, so every door refuses a bad name the same way and none copies the
//! rule.
//!
//! A topic name is `[a-zA-Z0-9._-]`, 1 to 249 characters, never `.` or `..` (Kafka's rule). The
//! characters are checked by brook-log, because there a topic name becomes a directory name
//! and must never escape the data directory; this module is where everything above the log
//! (the broker's calls, the doors) asks.
//!
//! A group id has two rules today:
//!
//! - [`check_group_id`], which every group call of the broker enforces: 1 to 255 bytes, no
//!   control characters. Kafka sets no rule at all, so this is what Kafka clients may send.
//! - [`validate_group_id`], the rule brook's contract documents (the gRPC and HTTP APIs): the
//!   topic-name rule, so a group id is as safe as a topic name wherever it is written. It is
//!   public for the doors to enforce; the broker's calls do not apply it yet.

use crate::error::{BrokerError, Result};

/// The longest group id [`check_group_id`] accepts, in bytes (Kafka has no limit; 255 keeps the
/// offsets file and the wire sane).
pub const GROUP_ID_BYTES_MAX: usize = 255;

/// Checks a topic name: `[a-zA-Z0-9._-]`, 1 to 249 characters, not `.` or `..`.
/// `InvalidTopicName` (with the reason) otherwise.
pub fn validate_topic_name(name: &str) -> Result<()> {
    brook_log::validate_topic_name(name).map_err(BrokerError::from_admin_log)
}

/// Checks a group id against the contract's rule, the topic-name rule: `[a-zA-Z0-9._-]`, 1 to
/// 249 characters, not `.` or `..`. `InvalidGroupId` (with the reason) otherwise.
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

/// Checks what every group call accepts today: 1 to [`GROUP_ID_BYTES_MAX`] bytes, no control
/// characters. `InvalidGroupId` (with the reason) otherwise.
pub fn check_group_id(group: &str) -> Result<()> {
    let reason = if group.is_empty() {
        Some("it is empty")
    } else if group.len() > GROUP_ID_BYTES_MAX {
        Some("it is longer than 255 bytes")
    } else if group.chars().any(char::is_control) {
        Some("it contains control characters")
    } else {
        None
    };
    match reason {
        None => Ok(()),
        Some(reason) => Err(BrokerError::InvalidGroupId {
            group: group.to_owned(),
            reason,
        }),
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
    fn the_contracts_group_rule_is_the_topic_name_rule() {
        for good in ["g", "my-group.v1", "a_b-c.d", &"g".repeat(249)] {
            validate_group_id(good).unwrap_or_else(|e| panic!("{good:?} refused: {e}"));
        }
        for bad in ["", ".", "..", "../g", "a b", "g:1", "é", &"g".repeat(250)] {
            match validate_group_id(bad) {
                Err(BrokerError::InvalidGroupId { group, reason }) => {
                    assert_eq!(group, bad);
                    assert!(!reason.is_empty());
                }
                other => panic!("{bad:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn the_enforced_group_check_takes_what_kafka_clients_send() {
        check_group_id("my-group.v1 with spaces").expect("valid");
        check_group_id("console-consumer:1234").expect("valid");
        for bad in ["", "a\nb", &"g".repeat(256)] {
            assert!(matches!(
                check_group_id(bad),
                Err(BrokerError::InvalidGroupId { .. })
            ));
        }
    }
}
