//! What a caller can do about a broker error, in the words of the door it came through.
//!
//! The broker's messages say what happened (the topic, the valid range, the limit hit); a door
//! adds what to do next. Most of that advice is the same for every door; the few places where
//! it names a door's own request (how to create a topic, where to see offsets) come from
//! [`DoorWords`].

use brook_broker::BrokerError;

/// How a door's own API spells the actions hints point to.
#[derive(Debug, Clone, Copy)]
pub struct DoorWords {
    /// The request that creates a topic, e.g. "CreateTopic" or "POST /v1/topics".
    pub create_topic: &'static str,
    /// The request that shows a topic's offsets, e.g. "DescribeTopic".
    pub describe_topic: &'static str,
}

/// The message a door answers `err` with: the broker's, then the advice when there is some.
pub fn message(err: &BrokerError, words: DoorWords) -> String {
    match hint(err, words) {
        Some(hint) => format!("{err}; {hint}"),
        None => err.to_string(),
    }
}

/// The advice for `err`, or `None` when its message already says everything.
pub fn hint(err: &BrokerError, words: DoorWords) -> Option<String> {
    Some(match err {
        BrokerError::UnknownTopic { .. } => format!(
            "create it first ({}), or enable automatic topic creation",
            words.create_topic
        ),
        BrokerError::UnknownPartition { .. } => {
            "use a partition number below the partition count".to_owned()
        }
        BrokerError::OffsetOutOfRange { .. } => format!(
            "read from an offset in that range ({} shows the current one)",
            words.describe_topic
        ),
        BrokerError::TooLarge { limit, .. } => {
            format!("send less at once, or raise the server's {limit}")
        }
        BrokerError::Corrupt { .. } => "the stored batch failed its checks and is not served; \
             the server's log names the file, and its operator can inspect it with `brook log \
             check`"
            .to_owned(),
        BrokerError::Poisoned { .. } => "the partition refuses writes after a storage failure \
             (reads still work); fix the disk and restart the broker"
            .to_owned(),
        BrokerError::Closed => {
            "the broker is shutting down; retry against a running server".to_owned()
        }
        _ => return None,
    })
}
