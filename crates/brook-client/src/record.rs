//! Records as the client hands them to and from applications.
//!
//! The protobuf messages leave out what the request around them already says (a consumed
//! record does not repeat its topic and partition); these types carry it, so a record can be
//! passed around on its own. Keys, values and header values are [`Bytes`]: converting from the
//! wire messages moves them, it never copies.

use std::sync::Arc;

use brook_proto::v1;
use bytes::Bytes;

/// A record to produce.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerRecord {
    /// `None` is a null key (distinct from an empty one, as in Kafka).
    pub key: Option<Bytes>,
    /// `None` is a null value (a tombstone).
    pub value: Option<Bytes>,
    /// Headers in order; names need not be unique.
    pub headers: Vec<(String, Bytes)>,
    /// Create time in ms since the Unix epoch; `None`: the broker's clock at append.
    pub timestamp_ms: Option<i64>,
    /// Target partition; `None`: by the key's murmur2 hash (where Kafka clients put it), or
    /// spread across partitions when the key is `None` too.
    pub partition: Option<u32>,
}

impl ProducerRecord {
    /// A record with a value and no key.
    pub fn value(value: impl Into<Bytes>) -> Self {
        Self {
            value: Some(value.into()),
            ..Self::default()
        }
    }

    /// A record with a key and a value.
    pub fn keyed(key: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        Self {
            key: Some(key.into()),
            ..Self::value(value)
        }
    }

    /// Sends the record to `partition` instead of choosing one.
    pub fn with_partition(mut self, partition: u32) -> Self {
        self.partition = Some(partition);
        self
    }

    /// Adds a header.
    pub fn with_header(mut self, key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.headers.push((key.into(), value.into()));
        self
    }

    /// Bytes the record adds to a request: payload plus a small allowance for framing, so
    /// batches of empty records still have a size.
    pub(crate) fn encoded_len_estimate(&self) -> usize {
        const FRAMING: usize = 16;
        let payload = self.key.as_ref().map_or(0, Bytes::len)
            + self.value.as_ref().map_or(0, Bytes::len)
            + self
                .headers
                .iter()
                .map(|(k, v)| k.len() + v.len() + 4)
                .sum::<usize>();
        payload + FRAMING
    }
}

impl From<ProducerRecord> for v1::ProducerRecord {
    fn from(record: ProducerRecord) -> Self {
        v1::ProducerRecord {
            key: record.key,
            value: record.value,
            headers: record
                .headers
                .into_iter()
                .map(|(key, value)| v1::Header { key, value })
                .collect(),
            timestamp_ms: record.timestamp_ms,
            partition: record.partition,
        }
    }
}

/// Where a produced record was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RecordPosition {
    pub partition: u32,
    pub offset: u64,
    /// The timestamp stored with the record, ms since the Unix epoch.
    pub timestamp_ms: i64,
}

impl From<v1::RecordPosition> for RecordPosition {
    fn from(p: v1::RecordPosition) -> Self {
        RecordPosition {
            partition: p.partition,
            offset: p.offset,
            timestamp_ms: p.timestamp_ms,
        }
    }
}

/// A record read from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    /// Shared by every record of one topic, so a record costs no topic-name allocation.
    pub topic: Arc<str>,
    pub partition: u32,
    pub offset: u64,
    /// ms since the Unix epoch.
    pub timestamp_ms: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Bytes)>,
}

impl ConsumerRecord {
    pub(crate) fn from_wire(topic: &Arc<str>, partition: u32, record: v1::ConsumerRecord) -> Self {
        ConsumerRecord {
            topic: Arc::clone(topic),
            partition,
            offset: record.offset,
            timestamp_ms: record.timestamp_ms,
            key: record.key,
            value: record.value,
            headers: record
                .headers
                .into_iter()
                .map(|h| (h.key, h.value))
                .collect(),
        }
    }
}

/// A topic and one of its partitions.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: Arc<str>,
    pub partition: u32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<Arc<str>>, partition: u32) -> Self {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// Expands the wire's `TopicPartitions` (a topic and a list of partitions) into pairs.
pub(crate) fn expand(groups: Vec<v1::TopicPartitions>) -> Vec<TopicPartition> {
    let mut out = Vec::new();
    for group in groups {
        let topic: Arc<str> = group.topic.into();
        out.extend(
            group
                .partitions
                .into_iter()
                .map(|partition| TopicPartition::new(Arc::clone(&topic), partition)),
        );
    }
    out
}
