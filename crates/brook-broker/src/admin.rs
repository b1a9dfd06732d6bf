//! Changing a topic after it was created: growing it (Kafka's CreatePartitions), changing its
//! settings (AlterConfigs), moving its log start forward (DeleteRecords).
//!
//! Every door calls these (Kafka's admin APIs, gRPC, HTTP, the CLI through gRPC), so a change
//! made through one shows through all of them. Changes run under the broker's admin lock, on
//! their own task (a caller that stops waiting does not leave the registry and the store
//! disagreeing), with the file work on the blocking pool; the topic's new handle keeps the
//! partitions' append queues and wake-up channels, so producers and waiters carry on.

use std::sync::Arc;

use brook_log::{LogConfig, TopicConfig};

use crate::broker::{blocking, run_to_end, Broker, TopicHandle};
use crate::error::{BrokerError, Result};
use crate::types::TopicDescription;

impl Broker {
    /// Grows `topic` to `partitions` partitions, as Kafka's CreatePartitions: keyed records
    /// are routed by the new count from then on (murmur2 of the key modulo the count, as Kafka
    /// clients do), and groups subscribed to the topic rebalance. The count must be higher
    /// than the current one (`PartitionsNotIncreased`) and at most `partitions_max`
    /// (`InvalidPartitions`). With `validate_only`, only checks; the description returned is
    /// then the topic as it is.
    pub async fn add_partitions(
        &self,
        topic: &str,
        partitions: u32,
        validate_only: bool,
    ) -> Result<TopicDescription> {
        let broker = self.clone();
        let topic = topic.to_owned();
        run_to_end(async move {
            let _admin = broker.inner.admin.lock().await;
            let handle = broker.topic(&topic)?;
            let current = handle.partition_count();
            if partitions <= current {
                return Err(BrokerError::PartitionsNotIncreased {
                    topic,
                    partitions: current,
                    requested: partitions,
                });
            }
            let max = broker.inner.config.limits.partitions_max;
            if partitions > max {
                return Err(BrokerError::InvalidPartitions { partitions, max });
            }
            if validate_only {
                return Ok(handle.describe());
            }
            let store = Arc::clone(&broker.inner.store);
            let name = topic.clone();
            let grown = blocking(move || {
                store
                    .add_partitions(&name, partitions)
                    .map_err(BrokerError::from_admin_log)
            })
            .await?;
            let description = broker.publish(&handle, grown);
            broker.topic_changed(&topic);
            tracing::info!(topic, from = current, to = partitions, "partitions added");
            Ok(description)
        })
        .await
    }

    /// Changes `topic`'s setting overrides, live and durably: `change` gets the topic's
    /// overrides (Kafka names, brook's as aliases: [`TopicConfig::set`]) and the broker's
    /// defaults, and edits the overrides; the result must make a valid config
    /// (`InvalidConfig` otherwise, and nothing changes). Every partition takes the new settings
    /// at once (limits from the next append or retention run) and the topic file keeps them.
    /// `change` runs under the admin lock, so concurrent changes never lose each other's. With
    /// `validate_only`, only checks; the description returned is then the topic as it is.
    pub async fn alter_topic_config<F>(
        &self,
        topic: &str,
        validate_only: bool,
        change: F,
    ) -> Result<TopicDescription>
    where
        F: FnOnce(&mut TopicConfig, &LogConfig) -> Result<()> + Send + 'static,
    {
        let broker = self.clone();
        let topic = topic.to_owned();
        run_to_end(async move {
            let _admin = broker.inner.admin.lock().await;
            let handle = broker.topic(&topic)?;
            let defaults = broker.inner.store.defaults().clone();
            let mut overrides = handle.topic.overrides().clone();
            change(&mut overrides, &defaults)?;
            overrides
                .merged_over(&defaults)
                .validate()
                .map_err(BrokerError::from_admin_log)?;
            if validate_only {
                return Ok(handle.describe());
            }
            let store = Arc::clone(&broker.inner.store);
            let name = topic.clone();
            let altered = blocking(move || {
                store
                    .alter_topic_config(&name, overrides)
                    .map_err(BrokerError::from_admin_log)
            })
            .await?;
            let description = broker.publish(&handle, altered);
            tracing::info!(topic, overrides = ?description.overrides, "topic config altered");
            Ok(description)
        })
        .await
    }

    /// Puts the store's changed topic in the registry in place of `old`, keeping its
    /// partitions' handles; the caller holds the admin lock.
    fn publish(&self, old: &TopicHandle, topic: Arc<brook_log::Topic>) -> TopicDescription {
        let handle = Arc::new(old.changed(topic));
        let description = handle.describe();
        self.inner
            .topics
            .write()
            .insert(handle.name.to_string(), handle);
        description
    }

    /// Deletes `topic`-`partition`'s records below `offset` (Kafka's DeleteRecords): the log
    /// start moves there, durably, reads below it fail with `OffsetOutOfRange` on every door
    /// from now on, and whole segments below it are removed. `offset` may be at most the high
    /// watermark (`OffsetOutOfRange` otherwise); one at or below the log start changes
    /// nothing. Returns the log start offset afterwards.
    pub async fn delete_records(&self, topic: &str, partition: u32, offset: u64) -> Result<u64> {
        let handle = self.topic(topic)?;
        let log = std::sync::Arc::clone(&handle.partition(partition)?.log);
        let (start, hw) = (log.log_start_offset(), log.high_watermark());
        if offset > hw {
            return Err(BrokerError::OffsetOutOfRange {
                topic: topic.to_owned(),
                partition,
                offset,
                log_start_offset: start,
                high_watermark: hw,
            });
        }
        let moved = std::sync::Arc::clone(&log);
        let name = topic.to_owned();
        blocking(move || {
            moved
                .advance_log_start(offset)
                .map_err(|e| BrokerError::from_log(e, &name, partition))
        })
        .await?;
        let start = log.log_start_offset();
        tracing::info!(
            topic,
            partition,
            log_start_offset = start,
            "records deleted"
        );
        Ok(start)
    }
}
