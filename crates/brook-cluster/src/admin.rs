//! Topics on the cluster: create, delete, list, describe, and the offsets of a partition.
//!
//! A topic is created with the settings brook's `TopicConfig` holds under their Kafka names;
//! `brook.durability`, brook's own, is refused (a cluster's durability is replication with
//! `acks=all`). A description reads the partition count from metadata, each partition's log
//! start and high watermark from the cluster, and the settings the cluster reports for the
//! topic, in brook's `LogConfig` where brook has the setting. What the cluster does not report
//! (a partition's bytes and segments, its fsyncs and corrupt reads, the topic id) is zero.
//!
//! The clients read with Kafka's read_committed isolation (librdkafka's default), so the
//! "high watermark" brook reports for a cluster's partition is the last stable offset, the
//! same offset outside transactions.

use brook_broker::{
    BrokerError, ListedOffset, NewTopic, OffsetSpec, PartitionDescription, PartitionStatus, Result,
    TopicDescription, TopicSummary,
};
use brook_log::{LogConfig, TopicConfig};
use rdkafka::admin::{
    AdminOptions, ConfigSource, NewTopic as KafkaNewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::consumer::Consumer;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use crate::cluster::KafkaCluster;
use crate::error::Context;

/// Kafka's own topics, which brook's listings leave out as they are no application's.
const INTERNAL_TOPICS: [&str; 2] = ["__consumer_offsets", "__transaction_state"];

/// The topic setting brook has and Kafka does not.
const DURABILITY_KEY: &str = "brook.durability";

impl KafkaCluster {
    fn admin_options(&self) -> AdminOptions {
        let timeout = self.inner.config.request_timeout();
        AdminOptions::new()
            .request_timeout(Some(timeout))
            .operation_timeout(Some(timeout))
    }

    /// Creates a topic with `new`'s partitions (the cluster's default when `None` and no
    /// default is configured) and its settings under their Kafka names.
    pub async fn create_topic(&self, new: NewTopic) -> Result<TopicDescription> {
        brook_broker::validate_topic_name(&new.name)?;
        let context = Context::new("create a topic").topic(&new.name);
        let max = self.inner.config.broker.limits.partitions_max;
        let partitions = new
            .partitions
            .unwrap_or(self.inner.config.broker.default_partitions);
        if partitions == 0 || partitions > max {
            return Err(BrokerError::InvalidPartitions { partitions, max });
        }
        let settings = kafka_settings(&new.config)?;
        let replication = self.inner.config.replication_factor.map_or(-1, i32::from);
        let mut topic = KafkaNewTopic::new(
            &new.name,
            i32::try_from(partitions).unwrap_or(i32::MAX),
            TopicReplication::Fixed(replication),
        );
        for (key, value) in &settings {
            topic = topic.set(key, value);
        }
        let results = self
            .inner
            .admin
            .create_topics([&topic], &self.admin_options())
            .await
            .map_err(|e| context.error(&e))?;
        for result in results {
            if let Err((_, code)) = result {
                return Err(context.code(code, &code.to_string()));
            }
        }
        tracing::info!(topic = %new.name, partitions, "topic created on the cluster");
        self.forget_topic(&new.name);
        self.describe_topic(&new.name).await
    }

    /// Deletes a topic (and, on the cluster, every group's offsets in it).
    pub async fn delete_topic(&self, name: &str) -> Result<()> {
        brook_broker::validate_topic_name(name)?;
        let context = Context::new("delete a topic").topic(name);
        let results = self
            .inner
            .admin
            .delete_topics(&[name], &self.admin_options())
            .await
            .map_err(|e| context.error(&e))?;
        self.forget_topic(name);
        for result in results {
            if let Err((_, code)) = result {
                return Err(context.code(code, &code.to_string()));
            }
        }
        tracing::info!(topic = name, "topic deleted on the cluster");
        Ok(())
    }

    /// Every topic of the cluster but Kafka's internal ones, sorted by name.
    pub async fn list_topics(&self) -> Result<Vec<TopicSummary>> {
        let context = Context::new("list topics");
        let mut topics = self
            .with_meta(context, |meta, timeout| {
                let metadata = meta.fetch_metadata(None, timeout)?;
                Ok(metadata
                    .topics()
                    .iter()
                    .filter(|t| t.error().is_none())
                    .filter(|t| !INTERNAL_TOPICS.contains(&t.name()))
                    .map(|t| TopicSummary {
                        name: t.name().to_owned(),
                        partitions: t.partitions().len() as u32,
                    })
                    .collect::<Vec<_>>())
            })
            .await?;
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        let mut cache = self.inner.partitions.write();
        for topic in &topics {
            cache.insert(topic.name.clone(), topic.partitions);
        }
        Ok(topics)
    }

    /// The topic's settings and, per partition, its log start and high watermark.
    pub async fn describe_topic(&self, name: &str) -> Result<TopicDescription> {
        let count = self.refresh_partition_count(name).await?;
        let mut partitions = Vec::with_capacity(count as usize);
        for partition in 0..count {
            let (low, high) = self.watermarks(name, partition).await?;
            partitions.push(PartitionDescription {
                partition,
                log_start_offset: low,
                log_end_offset: high,
                high_watermark: high,
                size_bytes: 0,
                segments: 0,
                fsyncs: 0,
                corrupt_reads: 0,
                compaction: None,
                // The cluster answered for it: its leader serves it.
                status: PartitionStatus::Online,
            });
        }
        let (config, overrides) = self.topic_settings(name).await?;
        Ok(TopicDescription {
            name: name.to_owned(),
            id: [0; 16],
            config,
            overrides,
            partitions,
        })
    }

    /// The cluster's settings of `topic` in brook's terms: the effective `LogConfig` (brook's
    /// defaults where the cluster has no value brook reads) and the settings the topic
    /// overrides.
    async fn topic_settings(
        &self,
        topic: &str,
    ) -> Result<(LogConfig, Vec<(&'static str, String)>)> {
        let context = Context::new("describe a topic's configs").topic(topic);
        let results = self
            .inner
            .admin
            .describe_configs([&ResourceSpecifier::Topic(topic)], &self.admin_options())
            .await
            .map_err(|e| context.error(&e))?;
        let mut effective = TopicConfig::default();
        let mut overrides = TopicConfig::default();
        for result in results {
            let resource = result.map_err(|code| context.code(code, &code.to_string()))?;
            for entry in resource.entries {
                let (Some(key), Some(value)) = (TopicConfig::key(&entry.name), entry.value) else {
                    continue;
                };
                // A value brook cannot hold (a policy brook lacks, say) keeps brook's default.
                if effective.set(key, &value).is_ok()
                    && matches!(entry.source, ConfigSource::DynamicTopic)
                {
                    let _ = overrides.set(key, &value);
                }
            }
        }
        Ok((
            effective.merged_over(&LogConfig::default()),
            overrides.entries(),
        ))
    }

    /// `topic`'s partition count, from the cache or the cluster.
    pub(crate) async fn partition_count(&self, topic: &str) -> Result<u32> {
        if let Some(count) = self.inner.partitions.read().get(topic) {
            return Ok(*count);
        }
        self.refresh_partition_count(topic).await
    }

    /// `topic`'s partition count, asked of the cluster. `UnknownTopic` when it has none.
    pub(crate) async fn refresh_partition_count(&self, topic: &str) -> Result<u32> {
        brook_broker::validate_topic_name(topic)?;
        let context = Context::new("read a topic's metadata").topic(topic);
        let name = topic.to_owned();
        let found = self
            .with_meta(context, move |meta, timeout| {
                let metadata = meta.fetch_metadata(Some(&name), timeout)?;
                Ok(metadata
                    .topics()
                    .iter()
                    .find(|t| t.name() == name)
                    .and_then(|t| match t.error() {
                        None if !t.partitions().is_empty() => Some(t.partitions().len() as u32),
                        _ => None,
                    }))
            })
            .await?;
        match found {
            Some(count) => {
                self.inner
                    .partitions
                    .write()
                    .insert(topic.to_owned(), count);
                Ok(count)
            }
            None => {
                self.forget_topic(topic);
                Err(BrokerError::UnknownTopic {
                    topic: topic.to_owned(),
                })
            }
        }
    }

    /// Drops what the cache knows of `topic`.
    pub(crate) fn forget_topic(&self, topic: &str) {
        self.inner.partitions.write().remove(topic);
    }

    /// `topic`'s partition count; the topic is created first with the default partition count
    /// when it does not exist and `auto_create_topics` is on, as the local broker does.
    pub(crate) async fn partition_count_or_create(&self, topic: &str) -> Result<u32> {
        match self.partition_count(topic).await {
            Err(BrokerError::UnknownTopic { .. })
                if self.inner.config.broker.auto_create_topics =>
            {
                let new = NewTopic {
                    name: topic.to_owned(),
                    ..NewTopic::default()
                };
                match self.create_topic(new).await {
                    Ok(_) | Err(BrokerError::TopicExists { .. }) => {
                        self.refresh_partition_count(topic).await
                    }
                    Err(e) => Err(e),
                }
            }
            other => other,
        }
    }

    /// Checks that `topic` has `partition`: `UnknownTopic` or `UnknownPartition` (with the
    /// count) otherwise.
    pub(crate) async fn check_partition(&self, topic: &str, partition: u32) -> Result<u32> {
        let mut count = self.partition_count(topic).await?;
        if partition >= count {
            // The topic may have grown since it was cached.
            count = self.refresh_partition_count(topic).await?;
        }
        if partition >= count {
            return Err(BrokerError::UnknownPartition {
                topic: topic.to_owned(),
                partition,
                partitions: count,
            });
        }
        Ok(count)
    }

    /// `topic`-`partition`'s log start offset and high watermark, asked of the cluster.
    pub(crate) async fn watermarks(&self, topic: &str, partition: u32) -> Result<(u64, u64)> {
        let context = Context::new("read a partition's offsets")
            .topic(topic)
            .partition(partition);
        let name = topic.to_owned();
        let (low, high) = self
            .with_meta(context, move |meta, timeout| {
                meta.fetch_watermarks(&name, partition as i32, timeout)
            })
            .await?;
        Ok((offset(low), offset(high)))
    }

    /// Answers a ListOffsets-style query. `MaxTimestamp` is refused: librdkafka's consumer
    /// cannot ask a cluster for it.
    pub async fn list_offset(
        &self,
        topic: &str,
        partition: u32,
        spec: OffsetSpec,
    ) -> Result<ListedOffset> {
        self.check_partition(topic, partition).await?;
        let found = |offset| ListedOffset {
            offset: Some(offset),
            timestamp: None,
        };
        match spec {
            OffsetSpec::Earliest => Ok(found(self.watermarks(topic, partition).await?.0)),
            // The readers' end is read_committed's (librdkafka's default isolation): the last
            // stable offset, which is the high watermark outside transactions.
            OffsetSpec::Latest | OffsetSpec::LastStable => {
                Ok(found(self.watermarks(topic, partition).await?.1))
            }
            OffsetSpec::Timestamp(ts) => {
                let context = Context::new("look an offset up by time")
                    .topic(topic)
                    .partition(partition);
                let name = topic.to_owned();
                let offset = self
                    .with_meta(context, move |meta, timeout| {
                        let mut tpl = TopicPartitionList::new();
                        tpl.add_partition_offset(&name, partition as i32, Offset::Offset(ts))?;
                        let found = meta.offsets_for_times(tpl, timeout)?;
                        Ok(found.elements().first().map(|e| (e.offset(), e.error())))
                    })
                    .await?;
                match offset {
                    Some((Offset::Offset(n), Ok(()))) if n >= 0 => Ok(found(n as u64)),
                    Some((_, Err(e))) => Err(context.error(&e)),
                    // Past the last record's timestamp: none.
                    _ => Ok(ListedOffset {
                        offset: None,
                        timestamp: None,
                    }),
                }
            }
            OffsetSpec::MaxTimestamp => Err(BrokerError::InvalidRequest {
                reason: "the maximum-timestamp offset is not available on a Kafka cluster \
                         backend (librdkafka's consumer cannot ask for it)"
                    .into(),
            }),
        }
    }
}

/// A watermark as an offset (librdkafka says -1 for none: an empty partition's 0).
pub(crate) fn offset(raw: i64) -> u64 {
    u64::try_from(raw).unwrap_or(0)
}

/// `config`'s overrides under their Kafka names; `brook.durability` is refused.
fn kafka_settings(config: &TopicConfig) -> Result<Vec<(&'static str, String)>> {
    let entries = config.entries();
    if entries.iter().any(|(key, _)| *key == DURABILITY_KEY) {
        return Err(BrokerError::InvalidConfig {
            reason: format!(
                "{DURABILITY_KEY} is brook's own: a Kafka cluster has no per-topic durability \
                 (records are acknowledged once every in-sync replica has them, acks=all; set \
                 the topic's replication factor and min.insync.replicas instead)"
            ),
        });
    }
    Ok(entries)
}

/// Whether `code` says the topic or partition does not exist.
pub(crate) fn is_unknown(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::UnknownTopicOrPartition
            | RDKafkaErrorCode::UnknownTopic
            | RDKafkaErrorCode::UnknownPartition
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_names_pass_and_durability_is_refused_with_the_way_out() {
        let mut config = TopicConfig::default();
        config.set("retention.ms", "60000").expect("set");
        config.set("max.message.bytes", "2000000").expect("set");
        let settings = kafka_settings(&config).expect("Kafka's names");
        assert!(settings.contains(&("retention.ms", "60000".to_owned())));
        config.set("brook.durability", "none").expect("set");
        let err = kafka_settings(&config)
            .expect_err("brook's own")
            .to_string();
        assert!(
            err.contains("brook.durability") && err.contains("acks=all"),
            "{err}"
        );
    }
}
