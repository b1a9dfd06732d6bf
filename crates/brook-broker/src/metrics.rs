//! The broker's state as metric families, read at scrape time: per partition its log (size,
//! offsets, segments, fsyncs), per group its members, committed offsets and lag,
//! and request-reply's counters.
//!
//! Why read, not recorded: these are not events but how things stand now, and reading them at
//! scrape time means a deleted topic or group has no series in the next scrape, with nothing
//! to forget. The event families (requests, records in and out, fsync latency) are
//! `brook_metrics`'; [`encode`] writes both as one text. The broker forgets a deleted topic's
//! event series itself (`Broker::delete_topic` calls [`brook_metrics::partitions::forget_topic`]).
//!
//! A feature of the broker with state worth a graph (the cleaner, transactions) adds its
//! families to [`state`], or records events through a module of `brook_metrics`; either way
//! each new family gets its row in `docs/operations.md`'s metrics reference.

use brook_metrics::{gauge_value, Snapshot};

use crate::{Broker, PartitionLag, PartitionStatus, TxnState};

/// The exposition text: every event family recorded in this process, then `broker`'s state.
pub fn encode(broker: &Broker) -> String {
    brook_metrics::encode(|snapshot| state(broker, snapshot))
}

/// The records a group has yet to consume in a partition: from its committed offset, or from
/// the log start when it has none, to the high watermark.
pub fn group_lag(lag: &PartitionLag) -> u64 {
    lag.lag
        .unwrap_or_else(|| lag.high_watermark.saturating_sub(lag.log_start_offset))
}

/// Records in stored batches `batches` (whole batches, as a fetch returns them), from their
/// headers: what a door that passes batches through counts as records out.
pub fn batch_records(batches: &[u8]) -> u64 {
    brook_log::batch::Batches::new(batches)
        .filter_map(|batch| batch.ok())
        .map(|batch| u64::try_from(batch.header.records_count).unwrap_or(0))
        .sum()
}

type TopicPartitionLabels = [(&'static str, String); 2];
type GroupPartitionLabels = [(&'static str, String); 3];

/// Fills `snapshot` with `broker`'s state.
pub fn state(broker: &Broker, snapshot: &mut Snapshot) {
    partitions(broker, snapshot);
    compaction(broker, snapshot);
    groups(broker, snapshot);
    reqreply(broker, snapshot);
    transactions(broker, snapshot);
}

fn partitions(broker: &Broker, snapshot: &mut Snapshot) {
    let size = snapshot.gauges::<TopicPartitionLabels>(
        "brook_partition_log_size_bytes",
        "Bytes of the partition's segment files",
    );
    let start = snapshot.gauges::<TopicPartitionLabels>(
        "brook_partition_log_start_offset",
        "First offset still in the partition's log",
    );
    let end = snapshot.gauges::<TopicPartitionLabels>(
        "brook_partition_log_end_offset",
        "Offset the partition's next record gets",
    );
    let high_watermark = snapshot.gauges::<TopicPartitionLabels>(
        "brook_partition_high_watermark",
        "End of what consumers of the partition may read",
    );
    let segments = snapshot.gauges::<TopicPartitionLabels>(
        "brook_partition_segments",
        "Segment files of the partition",
    );
    let fsyncs = snapshot.counters::<TopicPartitionLabels>(
        "brook_partition_fsyncs",
        "fdatasyncs of the partition's segment files since the broker opened",
    );
    let corrupt_reads = snapshot.counters::<TopicPartitionLabels>(
        "brook_partition_corrupt_reads",
        "Reads of the partition refused or cut short since the broker opened because stored \
         data failed its checks (CRC-32C, lengths, offsets); not zero means damage on disk",
    );
    let online = snapshot.gauges::<TopicPartitionLabels>(
        "brook_partition_online",
        "1 while the partition serves reads and appends; 0 when it is fenced (read-only after \
         damage or a failed fsync, or offline)",
    );
    for topic in broker.list_topics() {
        // A topic deleted since the listing is simply left out of this scrape.
        let Ok(description) = broker.describe_topic(&topic.name) else {
            continue;
        };
        for p in &description.partitions {
            let labels = [
                ("topic", description.name.clone()),
                ("partition", p.partition.to_string()),
            ];
            size.get_or_create(&labels).set(gauge_value(p.size_bytes));
            start
                .get_or_create(&labels)
                .set(gauge_value(p.log_start_offset));
            end.get_or_create(&labels)
                .set(gauge_value(p.log_end_offset));
            high_watermark
                .get_or_create(&labels)
                .set(gauge_value(p.high_watermark));
            segments
                .get_or_create(&labels)
                .set(gauge_value(p.segments as u64));
            fsyncs.get_or_create(&labels).inc_by(p.fsyncs);
            corrupt_reads.get_or_create(&labels).inc_by(p.corrupt_reads);
            let serving = matches!(p.status, PartitionStatus::Online);
            online.get_or_create(&labels).set(i64::from(serving));
        }
    }
}

/// The log cleaner's figures per partition of each compacted topic.
fn compaction(broker: &Broker, snapshot: &mut Snapshot) {
    let ratio = snapshot.ratios::<TopicPartitionLabels>(
        "brook_partition_cleaner_dirty_ratio",
        "Share of the partition's cleanable bytes written since its last clean (compared with \
         min.cleanable.dirty.ratio)",
    );
    let cleanable = snapshot.gauges::<TopicPartitionLabels>(
        "brook_partition_cleaner_cleanable_bytes",
        "Bytes of closed segments a clean of the partition could rewrite now",
    );
    let progress = snapshot.ratios::<TopicPartitionLabels>(
        "brook_partition_cleaner_progress",
        "Share of its bytes the clean running on the partition has read (0 when none runs)",
    );
    let cleans = snapshot.counters::<TopicPartitionLabels>(
        "brook_partition_cleaner_cleans",
        "Cleans of the partition finished since the broker opened",
    );
    let reclaimed = snapshot.counters::<TopicPartitionLabels>(
        "brook_partition_cleaner_reclaimed_bytes",
        "Bytes the cleaner removed from the partition since the broker opened",
    );
    let keys = snapshot.gauges::<TopicPartitionLabels>(
        "brook_partition_keys",
        "Keys in the partition's key index (the table view of a compacted topic)",
    );
    for topic in broker.list_topics() {
        let Ok(description) = broker.describe_topic(&topic.name) else {
            continue;
        };
        for p in &description.partitions {
            let Some(c) = &p.compaction else { continue };
            let labels = [
                ("topic", description.name.clone()),
                ("partition", p.partition.to_string()),
            ];
            ratio.get_or_create(&labels).set(c.dirty_ratio());
            cleanable
                .get_or_create(&labels)
                .set(gauge_value(c.cleanable_bytes));
            let done = c
                .progress
                .map_or(0.0, |(done, total)| done as f64 / total.max(1) as f64);
            progress.get_or_create(&labels).set(done);
            cleans.get_or_create(&labels).inc_by(c.cleans);
            reclaimed.get_or_create(&labels).inc_by(c.bytes_reclaimed);
            keys.get_or_create(&labels).set(gauge_value(c.keys as u64));
        }
    }
}

fn groups(broker: &Broker, snapshot: &mut Snapshot) {
    let members = snapshot.gauges::<[(&'static str, String); 1]>(
        "brook_group_members",
        "Members of the consumer group now (its own subscribers, or a Kafka group's members)",
    );
    let lag = snapshot.gauges::<GroupPartitionLabels>(
        "brook_group_lag",
        "Records between the group's committed offset (or the log start, without one) and the \
         high watermark",
    );
    let committed = snapshot.gauges::<GroupPartitionLabels>(
        "brook_group_committed_offset",
        "The group's committed offset in the partition",
    );
    for listing in broker.list_groups() {
        members
            .get_or_create(&[("group", listing.group.clone())])
            .set(gauge_value(listing.members as u64));
        let Ok(group) = broker.describe_group(&listing.group) else {
            continue;
        };
        for partition in &group.offsets {
            let labels = [
                ("group", group.group.clone()),
                ("topic", partition.topic_partition.topic.clone()),
                ("partition", partition.topic_partition.partition.to_string()),
            ];
            lag.get_or_create(&labels)
                .set(gauge_value(group_lag(partition)));
            if let Some(offset) = &partition.committed {
                committed
                    .get_or_create(&labels)
                    .set(gauge_value(offset.offset));
            }
        }
    }
}

/// Request-reply's counters (read without starting request-reply).
fn reqreply(broker: &Broker, snapshot: &mut Snapshot) {
    let stats = broker.reqreply_stats();
    snapshot
        .gauges::<[(&'static str, &'static str); 0]>(
            "brook_calls_waiting",
            "Request-reply calls waiting for their reply now",
        )
        .get_or_create(&[])
        .set(gauge_value(stats.waiting_calls as u64));
    snapshot
        .gauges::<[(&'static str, &'static str); 0]>(
            "brook_call_ids",
            "Correlation ids the request-reply index remembers (bounded by reqreply.window_ms \
             and reqreply.index_entries_max)",
        )
        .get_or_create(&[])
        .set(gauge_value(stats.indexed_ids as u64));
    let dropped = snapshot.counters::<[(&'static str, &'static str); 1]>(
        "brook_call_records_dropped",
        "Request-reply records not delivered: malformed_reply (no correlation id), \
         duplicate_reply (a call already answered), unbound_reply (not bound to its call: \
         not appended by a responder the request was delivered to), malformed_request (no \
         correlation id or reply topic), skipped_request (already answered, or older than the \
         window)",
    );
    for (reason, count) in [
        ("malformed_reply", stats.malformed_replies),
        ("duplicate_reply", stats.duplicate_replies),
        ("unbound_reply", stats.unbound_replies),
        ("malformed_request", stats.malformed_requests),
        ("skipped_request", stats.skipped_requests),
    ] {
        dropped.get_or_create(&[("reason", reason)]).inc_by(count);
    }
}

/// The transaction coordinator: transactional ids per state, and how long the oldest open
/// transaction has been open (what holds read_committed readers back).
fn transactions(broker: &Broker, snapshot: &mut Snapshot) {
    let by_state = snapshot.gauges::<[(&'static str, &'static str); 1]>(
        "brook_transactions",
        "Transactional ids the coordinator knows, by the state of their last transaction",
    );
    let listed = broker.list_transactions(&[], &[], None);
    for state in TxnState::ALL {
        let count = listed.iter().filter(|t| t.state == state).count();
        by_state
            .get_or_create(&[("state", state.name())])
            .set(gauge_value(count as u64));
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let oldest = listed
        .iter()
        .filter(|t| {
            !matches!(
                t.state,
                TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
            )
        })
        .filter_map(|t| {
            broker
                .describe_transaction(&t.transactional_id)
                .ok()?
                .start_ms
        })
        .map(|start| now.saturating_sub(start).max(0))
        .max()
        .unwrap_or(0);
    snapshot
        .gauges::<[(&'static str, &'static str); 0]>(
            "brook_transaction_open_seconds_max",
            "How long the oldest open transaction has been open, in seconds (0: none open)",
        )
        .get_or_create(&[])
        .set(oldest / 1000);
}

#[cfg(test)]
mod tests {
    use crate::{Broker, NewTopic, OffsetCommit, ProduceRecord};

    #[tokio::test]
    async fn a_deleted_topic_and_its_group_leave_the_next_scrape() {
        let broker = Broker::ephemeral().await.expect("broker");
        broker
            .create_topic(NewTopic::new("scraped", 2))
            .await
            .expect("create");
        let records = (0..3)
            .map(|i| ProduceRecord::value(format!("v{i}")))
            .collect();
        broker.produce("scraped", records).await.expect("produce");
        let commit = OffsetCommit::new("scraped", 0, 0);
        broker
            .commit_offsets("scraped-g", vec![commit])
            .await
            .expect("commit");
        let text = super::encode(&broker);
        assert!(
            text.contains("brook_partition_high_watermark{topic=\"scraped\",partition=\"0\"}"),
            "{text}"
        );
        assert!(
            text.contains(
                "brook_group_committed_offset{group=\"scraped-g\",topic=\"scraped\",partition=\"0\"} 0"
            ),
            "{text}"
        );
        broker.delete_topic("scraped").await.expect("delete");
        let text = super::encode(&broker);
        assert!(!text.contains("scraped"), "{text}");
        broker.close().await.expect("close");
    }
}
