//! Protobuf messages to broker types and back.
//!
//! Pure functions, no IO: everything a request can get wrong that the broker would not already
//! refuse (a oneof left empty, a durability interval without the interval mode, a negative
//! retention other than -1) is refused here with `INVALID_ARGUMENT`.

use std::time::Duration;

use brook_broker::{
    ConsumerRecord, Durability, GroupDescription, GroupListing, Isolation, LogConfig, NewTopic,
    OffsetCommit, OffsetReset, ProduceRecord, Produced, TopicConfig, TopicDescription,
    TopicPartition,
};
use brook_proto::v1 as pb;
use bytes::Bytes;
use tonic::Status;

use super::status::invalid;

/// A producer record as the broker takes it.
pub(crate) fn produce_record(record: pb::ProducerRecord) -> ProduceRecord {
    ProduceRecord {
        key: record.key,
        value: record.value,
        headers: record
            .headers
            .into_iter()
            .map(|h| (h.key, h.value))
            .collect(),
        timestamp: record.timestamp_ms,
        partition: record.partition,
    }
}

/// What a `ProduceRequest` asks for: exactly one of records and a raw batch.
pub(crate) enum ProducePayload {
    Records(Vec<ProduceRecord>),
    RawBatch { partition: u32, data: Bytes },
}

/// Splits a `ProduceRequest` into its topic and payload.
pub(crate) fn produce_payload(
    request: pb::ProduceRequest,
) -> Result<(String, ProducePayload), Status> {
    let payload = match (request.records.is_empty(), request.raw_batch) {
        (false, None) => {
            ProducePayload::Records(request.records.into_iter().map(produce_record).collect())
        }
        (true, Some(raw)) => ProducePayload::RawBatch {
            partition: raw.partition,
            data: raw.data,
        },
        (false, Some(_)) => {
            return Err(invalid(
                "a ProduceRequest carries records or raw_batch, not both: send them separately",
            ))
        }
        (true, None) => {
            return Err(invalid(
                "a ProduceRequest needs records or a raw_batch; it had neither",
            ))
        }
    };
    Ok((request.topic, payload))
}

/// Offsets to commit as the broker takes them.
pub(crate) fn offset_commits(offsets: Vec<pb::OffsetCommit>) -> Vec<OffsetCommit> {
    offsets
        .into_iter()
        .map(|c| OffsetCommit {
            metadata: c.metadata,
            ..OffsetCommit::new(c.topic, c.partition, c.offset)
        })
        .collect()
}

/// What a read sees of transactions; unspecified is read committed.
pub(crate) fn isolation(value: i32) -> Result<Isolation, Status> {
    match pb::Isolation::try_from(value) {
        Ok(pb::Isolation::Unspecified | pb::Isolation::ReadCommitted) => {
            Ok(Isolation::ReadCommitted)
        }
        Ok(pb::Isolation::ReadUncommitted) => Ok(Isolation::ReadUncommitted),
        Err(_) => Err(invalid(format!(
            "isolation {value} is not an Isolation: use ISOLATION_READ_COMMITTED or \
             ISOLATION_READ_UNCOMMITTED"
        ))),
    }
}

/// The answer to a records produce.
pub(crate) fn produced(produced: Produced) -> pb::ProduceResponse {
    pb::ProduceResponse {
        records: produced
            .records
            .into_iter()
            .map(|p| pb::RecordPosition {
                partition: p.partition,
                offset: p.offset,
                timestamp_ms: p.timestamp,
            })
            .collect(),
        batches: produced
            .batches
            .into_iter()
            .map(|(partition, b)| batch_appended(partition, &b))
            .collect(),
    }
}

/// One appended batch.
pub(crate) fn batch_appended(partition: u32, b: &brook_broker::BatchAppended) -> pb::BatchAppended {
    pb::BatchAppended {
        partition,
        base_offset: b.base_offset,
        last_offset: b.last_offset,
        record_count: b.record_count,
    }
}

/// A record read from the log, as the contract sends it.
pub(crate) fn consumer_record(record: ConsumerRecord) -> pb::ConsumerRecord {
    pb::ConsumerRecord {
        offset: record.offset,
        timestamp_ms: record.timestamp,
        key: record.key,
        value: record.value,
        headers: record
            .headers
            .into_iter()
            .map(|(key, value)| pb::Header { key, value })
            .collect(),
    }
}

/// `max_bytes` of a read request, with 0 meaning the server's default.
pub(crate) fn read_bytes(requested: u32, default: usize) -> usize {
    match requested {
        0 => default,
        n => n as usize,
    }
}

/// `max_wait_ms` of a fetch.
pub(crate) fn wait(max_wait_ms: u32) -> Duration {
    Duration::from_millis(u64::from(max_wait_ms))
}

/// Whether a read asks for raw batches rather than decoded records.
pub(crate) fn wants_raw(format: i32) -> Result<bool, Status> {
    match pb::RecordFormat::try_from(format) {
        Ok(pb::RecordFormat::RawBatches) => Ok(true),
        Ok(pb::RecordFormat::Records | pb::RecordFormat::Unspecified) => Ok(false),
        Err(_) => Err(invalid(format!(
            "format {format} is not a RecordFormat: use RECORD_FORMAT_RECORDS or \
             RECORD_FORMAT_RAW_BATCHES"
        ))),
    }
}

/// A start position enum value.
pub(crate) fn start_position(value: i32) -> Result<pb::StartPosition, Status> {
    pb::StartPosition::try_from(value).map_err(|_| {
        invalid(format!(
            "start position {value} is not a StartPosition: use START_POSITION_EARLIEST or \
             START_POSITION_LATEST"
        ))
    })
}

/// A group's reset policy; unspecified follows Kafka's default (latest).
pub(crate) fn offset_reset(value: i32) -> Result<OffsetReset, Status> {
    Ok(match start_position(value)? {
        pb::StartPosition::Earliest => OffsetReset::Earliest,
        pb::StartPosition::Latest => OffsetReset::Latest,
        pb::StartPosition::Unspecified => OffsetReset::default(),
    })
}

/// The topic to create: `config`'s typed fields, then `configs` by Kafka's names.
pub(crate) fn new_topic(request: pb::CreateTopicRequest) -> Result<NewTopic, Status> {
    let mut config = request
        .config
        .map(topic_config)
        .transpose()?
        .unwrap_or_default();
    for setting in &request.configs {
        config
            .set(&setting.key, &setting.value)
            .map_err(|e| invalid(format!("configs: {e}")))?;
    }
    Ok(NewTopic {
        name: request.topic,
        partitions: (request.partitions != 0).then_some(request.partitions),
        config,
    })
}

/// A retention limit: -1 switches it off, other negatives are refused.
fn retention(name: &str, value: Option<i64>) -> Result<Option<Option<u64>>, Status> {
    match value {
        None => Ok(None),
        Some(-1) => Ok(Some(None)),
        Some(v) => u64::try_from(v).map(|v| Some(Some(v))).map_err(|_| {
            invalid(format!(
                "{name} {v} is negative: give a limit, or -1 for no limit"
            ))
        }),
    }
}

/// Topic overrides from their protobuf form.
fn topic_config(config: pb::TopicConfig) -> Result<TopicConfig, Status> {
    let durability = match (
        pb::Durability::try_from(config.durability),
        config.durability_interval_ms,
    ) {
        (Ok(pb::Durability::Unspecified), None) => None,
        (Ok(pb::Durability::Sync), None) => Some(Durability::Sync),
        (Ok(pb::Durability::None), None) => Some(Durability::None),
        (Ok(pb::Durability::Interval), Some(ms)) if ms > 0 => {
            Some(Durability::Interval(Duration::from_millis(ms)))
        }
        (Ok(pb::Durability::Interval), _) => {
            return Err(invalid(
                "DURABILITY_INTERVAL needs durability_interval_ms of at least 1",
            ))
        }
        (Ok(_), Some(_)) => {
            return Err(invalid(
                "durability_interval_ms only goes with durability DURABILITY_INTERVAL",
            ))
        }
        (Err(_), _) => {
            return Err(invalid(format!(
                "durability {} is not a Durability value",
                config.durability
            )))
        }
    };
    let message_bytes_max = config
        .message_bytes_max
        .map(|v| {
            usize::try_from(v)
                .map_err(|_| invalid(format!("message_bytes_max {v} does not fit this machine")))
        })
        .transpose()?;
    let mut overrides = TopicConfig::default();
    overrides.segment_bytes_max = config.segment_bytes_max;
    overrides.segment_ms_max = config.segment_ms_max;
    overrides.retention_bytes_max = retention("retention_bytes_max", config.retention_bytes_max)?;
    overrides.retention_ms_max = retention("retention_ms_max", config.retention_ms_max)?;
    overrides.index_interval_bytes = config.index_interval_bytes;
    overrides.index_bytes_max = config.index_bytes_max;
    overrides.message_bytes_max = message_bytes_max;
    overrides.durability = durability;
    // Compaction settings in their text form, through the one parse of brook-log's table.
    let text = |v: Option<u64>| v.map(|v| v.to_string());
    for (key, value) in [
        ("cleanup.policy", config.cleanup_policy),
        (
            "min.cleanable.dirty.ratio",
            config.min_cleanable_dirty_ratio.map(|r| r.to_string()),
        ),
        ("min.compaction.lag.ms", text(config.min_compaction_lag_ms)),
        ("max.compaction.lag.ms", text(config.max_compaction_lag_ms)),
        ("delete.retention.ms", text(config.delete_retention_ms)),
    ] {
        if let Some(value) = value {
            overrides
                .set(key, &value)
                .map_err(|e| invalid(e.to_string()))?;
        }
    }
    Ok(overrides)
}

/// Effective settings in their protobuf form (every field present).
fn effective_config(config: &LogConfig) -> pb::TopicConfig {
    let (durability, interval) = match config.durability {
        Durability::Sync => (pb::Durability::Sync, None),
        Durability::None => (pb::Durability::None, None),
        Durability::Interval(every) => (
            pb::Durability::Interval,
            Some(u64::try_from(every.as_millis()).unwrap_or(u64::MAX)),
        ),
    };
    let unlimited =
        |limit: Option<u64>| Some(limit.map_or(-1, |v| i64::try_from(v).unwrap_or(i64::MAX)));
    pb::TopicConfig {
        segment_bytes_max: Some(config.segment_bytes_max),
        segment_ms_max: Some(config.segment_ms_max),
        retention_bytes_max: unlimited(config.retention_bytes_max),
        retention_ms_max: unlimited(config.retention_ms_max),
        message_bytes_max: Some(config.message_bytes_max as u64),
        durability: durability.into(),
        durability_interval_ms: interval,
        index_interval_bytes: Some(config.index_interval_bytes),
        index_bytes_max: Some(config.index_bytes_max),
        cleanup_policy: Some(config.cleanup_policy.to_string()),
        min_cleanable_dirty_ratio: Some(config.min_cleanable_dirty_ratio.get()),
        min_compaction_lag_ms: Some(config.min_compaction_lag_ms),
        max_compaction_lag_ms: Some(config.max_compaction_lag_ms),
        delete_retention_ms: Some(config.delete_retention_ms),
    }
}

/// A topic in detail.
pub(crate) fn topic_description(topic: TopicDescription) -> pb::TopicDescription {
    pb::TopicDescription {
        topic_id: topic.id.iter().map(|b| format!("{b:02x}")).collect(),
        config: Some(effective_config(&topic.config)),
        configs: brook_log::config_entries(&topic.config)
            .into_iter()
            .map(|(key, value)| pb::ConfigEntry {
                overridden: topic.overrides.iter().any(|(k, _)| *k == key),
                key: key.to_owned(),
                value,
            })
            .collect(),
        partitions: topic
            .partitions
            .iter()
            .map(|p| pb::PartitionDescription {
                partition: p.partition,
                log_start_offset: p.log_start_offset,
                high_watermark: p.high_watermark,
                log_end_offset: p.log_end_offset,
                size_bytes: p.size_bytes,
                segment_count: u32::try_from(p.segments).unwrap_or(u32::MAX),
                compaction: p.compaction.map(|c| pb::PartitionCompaction {
                    cleanable_bytes: c.cleanable_bytes,
                    dirty_bytes: c.dirty_bytes,
                    first_dirty_offset: c.first_dirty_offset,
                    cleans: c.cleans,
                    bytes_reclaimed: c.bytes_reclaimed,
                    records_removed: c.records_removed,
                    progress_bytes: c.progress.map_or(0, |(done, _)| done),
                    progress_total_bytes: c.progress.map_or(0, |(_, total)| total),
                    keys: c.keys as u64,
                }),
            })
            .collect(),
        name: topic.name,
    }
}

/// Groups partitions by topic, keeping the (sorted) order they come in.
pub(crate) fn by_topic<'a>(
    partitions: impl IntoIterator<Item = &'a TopicPartition>,
) -> Vec<pb::TopicPartitions> {
    let mut out: Vec<pb::TopicPartitions> = Vec::new();
    for tp in partitions {
        match out.last_mut() {
            Some(last) if last.topic == tp.topic => last.partitions.push(tp.partition),
            _ => out.push(pb::TopicPartitions {
                topic: tp.topic.clone(),
                partitions: vec![tp.partition],
            }),
        }
    }
    out
}

/// The partitions a `TopicPartitions` list names, flattened.
pub(crate) fn flatten(lists: Vec<pb::TopicPartitions>) -> Vec<TopicPartition> {
    lists
        .into_iter()
        .flat_map(|list| {
            let topic = list.topic;
            list.partitions
                .into_iter()
                .map(move |p| TopicPartition::new(topic.clone(), p))
        })
        .collect()
}

fn group_state(members: usize) -> pb::GroupState {
    if members > 0 {
        pb::GroupState::Stable
    } else {
        pb::GroupState::Empty
    }
}

/// A group in a listing.
pub(crate) fn group_summary(group: GroupListing) -> pb::GroupSummary {
    pb::GroupSummary {
        state: group_state(group.members).into(),
        member_count: u32::try_from(group.members).unwrap_or(u32::MAX),
        group_id: group.group,
    }
}

/// A group in detail.
pub(crate) fn group_description(group: GroupDescription) -> pb::DescribeGroupResponse {
    pb::DescribeGroupResponse {
        state: group_state(group.members.len()).into(),
        generation: group.generation,
        members: group
            .members
            .into_iter()
            .map(|m| pb::GroupMember {
                assigned: by_topic(&m.assignment),
                member_id: m.member_id,
                client_id: m.client_id,
                topics: m.topics,
            })
            .collect(),
        partitions: group
            .offsets
            .into_iter()
            .map(|lag| {
                let committed = lag.committed.map(|c| c.offset);
                pb::GroupPartitionLag {
                    lag: lag
                        .lag
                        .unwrap_or_else(|| lag.high_watermark.saturating_sub(lag.log_start_offset)),
                    topic: lag.topic_partition.topic,
                    partition: lag.topic_partition.partition,
                    committed_offset: committed,
                    high_watermark: lag.high_watermark,
                    member_id: lag.member_id.unwrap_or_default(),
                }
            })
            .collect(),
        group_id: group.group,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn a_produce_request_needs_exactly_one_payload() {
        let record = pb::ProducerRecord {
            value: Some(Bytes::from_static(b"v")),
            ..Default::default()
        };
        let raw = pb::RawBatch {
            partition: 0,
            data: Bytes::from_static(b"x"),
        };
        let both = pb::ProduceRequest {
            topic: "t".into(),
            records: vec![record.clone()],
            raw_batch: Some(raw),
        };
        let neither = pb::ProduceRequest {
            topic: "t".into(),
            ..Default::default()
        };
        for request in [both, neither] {
            let err = produce_payload(request).err().expect("refused");
            assert_eq!(err.code(), Code::InvalidArgument);
        }
        let ok = pb::ProduceRequest {
            topic: "t".into(),
            records: vec![record],
            raw_batch: None,
        };
        assert!(matches!(
            produce_payload(ok),
            Ok((_, ProducePayload::Records(records))) if records.len() == 1
        ));
    }

    #[test]
    fn topic_config_round_trips_and_bad_combinations_are_refused() {
        let config = topic_config(pb::TopicConfig {
            retention_ms_max: Some(-1),
            retention_bytes_max: Some(1000),
            durability: pb::Durability::Interval.into(),
            durability_interval_ms: Some(50),
            ..Default::default()
        })
        .expect("valid");
        assert_eq!(config.retention_ms_max, Some(None));
        assert_eq!(config.retention_bytes_max, Some(Some(1000)));
        assert_eq!(
            config.durability,
            Some(Durability::Interval(Duration::from_millis(50)))
        );

        let compacted = topic_config(pb::TopicConfig {
            cleanup_policy: Some("compact,delete".into()),
            min_cleanable_dirty_ratio: Some(0.25),
            delete_retention_ms: Some(1000),
            ..Default::default()
        })
        .expect("valid")
        .merged_over(&LogConfig::default());
        assert!(compacted.cleanup_policy.compacts() && compacted.cleanup_policy.deletes());
        assert_eq!(compacted.min_cleanable_dirty_ratio.get(), 0.25);
        assert_eq!(compacted.delete_retention_ms, 1000);
        let shown = effective_config(&compacted);
        assert_eq!(shown.cleanup_policy.as_deref(), Some("compact,delete"));
        assert_eq!(shown.min_cleanable_dirty_ratio, Some(0.25));

        let mut config = LogConfig::default();
        config.retention_ms_max = None;
        config.durability = Durability::Interval(Duration::from_millis(50));
        let effective = effective_config(&config);
        assert_eq!(effective.retention_ms_max, Some(-1));
        assert_eq!(effective.durability_interval_ms, Some(50));

        for bad in [
            pb::TopicConfig {
                retention_ms_max: Some(-2),
                ..Default::default()
            },
            pb::TopicConfig {
                durability: pb::Durability::Interval.into(),
                ..Default::default()
            },
            pb::TopicConfig {
                durability: pb::Durability::Sync.into(),
                durability_interval_ms: Some(5),
                ..Default::default()
            },
            pb::TopicConfig {
                durability: 99,
                ..Default::default()
            },
            pb::TopicConfig {
                cleanup_policy: Some("compacted".into()),
                ..Default::default()
            },
            pb::TopicConfig {
                min_cleanable_dirty_ratio: Some(1.5),
                ..Default::default()
            },
        ] {
            let err = topic_config(bad).expect_err("refused");
            assert_eq!(err.code(), Code::InvalidArgument, "{err}");
        }
    }

    #[test]
    fn partitions_group_by_topic_and_flatten_back() {
        let tps = vec![
            TopicPartition::new("a", 0),
            TopicPartition::new("a", 2),
            TopicPartition::new("b", 1),
        ];
        let grouped = by_topic(&tps);
        assert_eq!(grouped.len(), 2);
        assert_eq!(grouped[0].partitions, vec![0, 2]);
        assert_eq!(flatten(grouped), tps);
    }
}
