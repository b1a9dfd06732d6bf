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

    /// Changes `topic`'s settings, live and durably, as Kafka's IncrementalAlterConfigs: each
    /// [`ConfigChange`] in order, keys by Kafka's name or brook's alias
    /// ([`TopicConfig::set`]). The result must make a valid config; an unknown key, a bad value
    /// or an invalid result is `InvalidConfig` and changes nothing. Every partition takes the
    /// new settings at once (limits from the next append or retention run) and the topic file
    /// keeps them. Changes are made under the admin lock, so concurrent ones never lose each
    /// other's. With `validate_only`, only checks; the description returned is then the topic
    /// as it is.
    pub async fn alter_topic_config(
        &self,
        topic: &str,
        changes: Vec<ConfigChange>,
        validate_only: bool,
    ) -> Result<TopicDescription> {
        let broker = self.clone();
        let topic = topic.to_owned();
        run_to_end(async move {
            let _admin = broker.inner.admin.lock().await;
            let handle = broker.topic(&topic)?;
            let defaults = broker.inner.store.defaults().clone();
            let mut overrides = handle.topic.overrides().clone();
            for change in &changes {
                change
                    .apply(&mut overrides, &defaults)
                    .map_err(BrokerError::from_admin_log)?;
            }
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

    /// Deletes records below `before` (absent: everything up to the high watermark) in one
    /// partition of `topic`, or in every partition when `partition` is absent, as
    /// [`Broker::delete_records`] does for one. Every partition is checked before any is
    /// trimmed, so an offset past a high watermark (`OffsetOutOfRange`) deletes nothing.
    /// Returns each partition's log start afterwards.
    pub async fn trim_topic(
        &self,
        topic: &str,
        partition: Option<u32>,
        before: Option<u64>,
    ) -> Result<Vec<(u32, u64)>> {
        let handle = self.topic(topic)?;
        let partitions = match partition {
            Some(p) => vec![(p, handle.partition(p)?)],
            None => handle
                .partitions
                .iter()
                .enumerate()
                .map(|(p, h)| (p as u32, h))
                .collect(),
        };
        let mut targets = Vec::with_capacity(partitions.len());
        for (p, h) in partitions {
            let (start, hw) = (h.log.log_start_offset(), h.log.high_watermark());
            let offset = before.unwrap_or(hw);
            if offset > hw {
                return Err(BrokerError::OffsetOutOfRange {
                    topic: topic.to_owned(),
                    partition: p,
                    offset,
                    log_start_offset: start,
                    high_watermark: hw,
                });
            }
            targets.push((p, offset));
        }
        let mut starts = Vec::with_capacity(targets.len());
        for (p, offset) in targets {
            starts.push((p, self.delete_records(topic, p, offset).await?));
        }
        Ok(starts)
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

/// One change to a topic's settings ([`Broker::alter_topic_config`]), as Kafka's
/// IncrementalAlterConfigs operations. `key` is Kafka's name (`retention.ms`) or brook's alias
/// (`retention_ms_max`); values are in Kafka's text form (`-1` for no limit).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigChange {
    /// Sets the topic's own value.
    Set { key: String, value: String },
    /// Drops the topic's own value: the broker's default applies again.
    Unset { key: String },
    /// Adds the comma-separated items of `value` to a list setting's value in force.
    Append { key: String, value: String },
    /// Removes the comma-separated items of `value` from a list setting's value in force.
    Subtract { key: String, value: String },
}

impl ConfigChange {
    pub fn set(key: impl Into<String>, value: impl Into<String>) -> Self {
        Self::Set {
            key: key.into(),
            value: value.into(),
        }
    }

    pub fn unset(key: impl Into<String>) -> Self {
        Self::Unset { key: key.into() }
    }

    /// The setting it changes, as given.
    pub fn key(&self) -> &str {
        match self {
            Self::Set { key, .. }
            | Self::Unset { key }
            | Self::Append { key, .. }
            | Self::Subtract { key, .. } => key,
        }
    }

    fn apply(&self, overrides: &mut TopicConfig, defaults: &LogConfig) -> brook_log::Result<()> {
        match self {
            Self::Set { key, value } => overrides.set(key, value),
            Self::Unset { key } => overrides.unset(key),
            Self::Append { key, value } => {
                let mut items = list_in_force(overrides, defaults, key)?;
                for item in list_items(value) {
                    if !items.contains(&item) {
                        items.push(item);
                    }
                }
                overrides.set(key, &items.join(","))
            }
            Self::Subtract { key, value } => {
                let gone = list_items(value);
                let items: Vec<String> = list_in_force(overrides, defaults, key)?
                    .into_iter()
                    .filter(|item| !gone.contains(item))
                    .collect();
                overrides.set(key, &items.join(","))
            }
        }
    }
}

/// The items of `key`'s value in force (the topic's own, else the default).
fn list_in_force(
    overrides: &TopicConfig,
    defaults: &LogConfig,
    key: &str,
) -> brook_log::Result<Vec<String>> {
    let name = TopicConfig::key(key)
        .ok_or_else(|| brook_log::LogError::InvalidConfig(format!("unknown setting {key:?}")))?;
    let value = brook_log::config_entries(&overrides.merged_over(defaults))
        .into_iter()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .unwrap_or_default();
    Ok(list_items(&value))
}

/// The items of a comma-separated list, trimmed, empty ones left out.
pub(crate) fn list_items(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_apply_in_order_by_either_name() {
        let defaults = LogConfig::default();
        let mut overrides = TopicConfig::default();
        ConfigChange::set("retention.ms", "1000")
            .apply(&mut overrides, &defaults)
            .expect("set");
        ConfigChange::set("segment_bytes_max", "4096")
            .apply(&mut overrides, &defaults)
            .expect("alias");
        assert_eq!(overrides.retention_ms_max, Some(Some(1000)));
        ConfigChange::unset("retention_ms_max")
            .apply(&mut overrides, &defaults)
            .expect("unset");
        assert_eq!(overrides.retention_ms_max, None);
        assert_eq!(overrides.segment_bytes_max, Some(4096));
        assert!(ConfigChange::set("bogus", "1")
            .apply(&mut overrides, &defaults)
            .is_err());
        assert!(ConfigChange::Append {
            key: "bogus".into(),
            value: "x".into()
        }
        .apply(&mut overrides, &defaults)
        .is_err());
        assert_eq!(list_items(" a, b,,c "), ["a", "b", "c"]);
    }
}
