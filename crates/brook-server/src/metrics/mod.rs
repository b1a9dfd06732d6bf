//! Metrics as the doors of this crate see them: what they record (the families of
//! [`brook_metrics`], re-exported here under the names the doors call), the text `/metrics`
//! serves, and [`MetricsDoor`], which serves that text on a port of its own.
//!
//! The families and their rules (names, labels, forgetting a deleted topic) are brook-metrics';
//! the broker's state read at scrape time is [`brook_broker::metrics`]'. This module adds no
//! family of its own.

mod door;

use brook_broker::{Broker, ConsumerRecord, ProduceRecord, Produced};
use bytes::Bytes;

pub use brook_broker::metrics::{batch_records, group_lag};
pub use brook_metrics::doors::{code_label, connection_opened, request, stream_opened, OpenGuard};
pub use brook_metrics::partitions::{records_in, records_out};
pub use brook_metrics::{Door, CONTENT_TYPE};
pub use door::{MetricsConfig, MetricsDoor, MetricsServer};

/// The `door` label of the gRPC door.
pub const GRPC: Door = Door::Grpc;
/// The `door` label of the HTTP door.
pub const HTTP: Door = Door::Http;
/// The `door` label of the Kafka door.
pub const KAFKA: Door = Door::Kafka;

/// The exposition text: every family recorded in this process, then `broker`'s state.
pub fn render(broker: &Broker) -> String {
    brook_broker::metrics::encode(broker)
}

/// Payload bytes of a record's parts (keys, values, header names and values): what the
/// `bytes` families count for records a door decoded.
pub(crate) fn payload_bytes(
    key: Option<&Bytes>,
    value: Option<&Bytes>,
    headers: &[(String, Bytes)],
) -> u64 {
    let parts = key.map_or(0, Bytes::len)
        + value.map_or(0, Bytes::len)
        + headers
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum::<usize>();
    parts as u64
}

/// Payload bytes of each record, taken before the records go to the broker.
pub(crate) fn record_sizes(records: &[ProduceRecord]) -> Vec<u64> {
    records
        .iter()
        .map(|r| payload_bytes(r.key.as_ref(), r.value.as_ref(), &r.headers))
        .collect()
}

/// Records `produced` (whose records' payload sizes are `sizes`) as appended to `topic`
/// through `door`, one update per run of one partition.
pub(crate) fn produced(door: Door, topic: &str, sizes: &[u64], produced: &Produced) {
    let mut run: Option<(u32, u64, u64)> = None;
    for (position, size) in produced.records.iter().zip(sizes) {
        match &mut run {
            Some((partition, records, bytes)) if *partition == position.partition => {
                *records += 1;
                *bytes += size;
            }
            _ => {
                if let Some((partition, records, bytes)) = run {
                    records_in(door, topic, partition, records, bytes);
                }
                run = Some((position.partition, 1, *size));
            }
        }
    }
    if let Some((partition, records, bytes)) = run {
        records_in(door, topic, partition, records, bytes);
    }
}

/// Records `records` of `topic`-`partition` as sent through `door`.
pub(crate) fn consumed(door: Door, topic: &str, partition: u32, records: &[ConsumerRecord]) {
    if records.is_empty() {
        return;
    }
    let bytes = records
        .iter()
        .map(|r| payload_bytes(r.key.as_ref(), r.value.as_ref(), &r.headers))
        .sum();
    records_out(door, topic, partition, records.len() as u64, bytes);
}
