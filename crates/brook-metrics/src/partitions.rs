//! Records and payload bytes that go into and out of each topic partition, per door.
//!
//! "Payload bytes" are what a door moves: keys, values and headers of the records it decoded,
//! or the batches whole when it passes them through (Kafka, gRPC raw batches). These series
//! name a topic, so deleting the topic forgets them ([`forget_topic`], which the broker calls).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::{add_to, family, Door, Lazy};

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct PartitionLabels {
    door: Door,
    topic: String,
    partition: u32,
}

type Flow = Lazy<Family<PartitionLabels, Counter>>;

static RECORDS_IN: Flow = family!(
    "brook_partition_records_in",
    "Records appended through a door, per topic partition"
);
static BYTES_IN: Flow = family!(
    "brook_partition_bytes_in",
    "Payload bytes (keys, values, headers; batches whole) appended through a door"
);
static RECORDS_OUT: Flow = family!(
    "brook_partition_records_out",
    "Records sent to consumers through a door, per topic partition"
);
static BYTES_OUT: Flow = family!(
    "brook_partition_bytes_out",
    "Payload bytes (keys, values, headers; batches whole) sent to consumers through a door"
);

pub(crate) fn register(registry: &mut Registry) {
    for family in [&RECORDS_IN, &BYTES_IN, &RECORDS_OUT, &BYTES_OUT] {
        add_to(registry, family);
    }
}

fn add(families: [&Flow; 2], door: Door, topic: &str, partition: u32, amounts: [u64; 2]) {
    let labels = PartitionLabels {
        door,
        topic: topic.to_owned(),
        partition,
    };
    for (family, amount) in families.into_iter().zip(amounts) {
        family.metric.get_or_create(&labels).inc_by(amount);
    }
}

/// `records` records of `bytes` payload bytes appended to `topic`-`partition` through `door`.
pub fn records_in(door: Door, topic: &str, partition: u32, records: u64, bytes: u64) {
    add(
        [&RECORDS_IN, &BYTES_IN],
        door,
        topic,
        partition,
        [records, bytes],
    );
}

/// `records` records of `bytes` payload bytes of `topic`-`partition` sent out through `door`.
pub fn records_out(door: Door, topic: &str, partition: u32, records: u64, bytes: u64) {
    add(
        [&RECORDS_OUT, &BYTES_OUT],
        door,
        topic,
        partition,
        [records, bytes],
    );
}

/// Forgets every series of `topic`'s `partitions` partitions, on every door: called when the
/// topic is deleted, so a dashboard stops showing it and a topic created later under the same
/// name starts from zero.
pub fn forget_topic(topic: &str, partitions: u32) {
    for door in Door::ALL {
        for partition in 0..partitions {
            let labels = PartitionLabels {
                door,
                topic: topic.to_owned(),
                partition,
            };
            for family in [&RECORDS_IN, &BYTES_IN, &RECORDS_OUT, &BYTES_OUT] {
                family.metric.remove(&labels);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forgotten_topic_has_no_series_left() {
        records_in(Door::Kafka, "forget-me", 1, 3, 30);
        records_out(Door::Http, "forget-me", 0, 2, 20);
        records_in(Door::Kafka, "keep-me", 0, 1, 10);
        let text = crate::encode(|_| {});
        assert!(text.contains(
            "brook_partition_records_in_total{door=\"kafka\",topic=\"forget-me\",partition=\"1\"} 3"
        ));
        forget_topic("forget-me", 2);
        let text = crate::encode(|_| {});
        assert!(!text.contains("forget-me"), "{text}");
        assert!(text.contains("keep-me"), "{text}");
    }
}
