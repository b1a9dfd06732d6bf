//! The group operations every door exposes: committing and reading offsets, listing groups and
//! describing one with its lag.
//!
//! They combine the live state of the broker's coordinator ([`crate::group`]) and of observed
//! ones ([`crate::group_observer`]: the Kafka door's) with the persisted offsets
//! ([`crate::offsets`]), so a group reads the same through every door.

use std::collections::{BTreeMap, BTreeSet};

use crate::broker::{blocking, Broker};
use crate::error::{BrokerError, Result};
use crate::group_observer::LiveGroup;
use crate::names::check_group_id;
use crate::produce::now_ms;
use crate::types::{CommittedOffset, GroupDescription, GroupListing, PartitionLag, TopicPartition};

/// One partition's position to commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommit {
    pub topic_partition: TopicPartition,
    /// The next offset the group will consume (one past the last record processed).
    pub offset: u64,
    /// Free text kept with the commit (Kafka's commit metadata).
    pub metadata: String,
}

impl OffsetCommit {
    pub fn new(topic: impl Into<String>, partition: u32, offset: u64) -> Self {
        Self {
            topic_partition: TopicPartition::new(topic, partition),
            offset,
            metadata: String::new(),
        }
    }
}

impl Broker {
    /// Records `group`'s position in some partitions, all or nothing, and returns once it is
    /// durable. Every partition must exist (`UnknownTopic`/`UnknownPartition`), metadata must
    /// fit `offset_metadata_bytes_max` (`TooLarge`); nothing is committed otherwise. The offset
    /// itself is not checked against the log, as in Kafka: a consumer resuming from an offset
    /// no longer in the log starts per its reset policy.
    pub async fn commit_offsets(&self, group: &str, commits: Vec<OffsetCommit>) -> Result<()> {
        check_group_id(group)?;
        if commits.is_empty() {
            return Err(BrokerError::invalid("a commit needs at least one offset"));
        }
        let metadata_max = self.inner.config.limits.offset_metadata_bytes_max;
        for commit in &commits {
            let tp = &commit.topic_partition;
            self.topic(&tp.topic)?.partition(tp.partition)?;
            if commit.metadata.len() > metadata_max {
                return Err(BrokerError::TooLarge {
                    what: "commit metadata",
                    size: commit.metadata.len(),
                    max: metadata_max,
                    limit: "offset_metadata_bytes_max",
                });
            }
        }
        let commit_timestamp = now_ms();
        let entries: Vec<(TopicPartition, CommittedOffset)> = commits
            .into_iter()
            .map(|c| {
                (
                    c.topic_partition,
                    CommittedOffset {
                        offset: c.offset,
                        metadata: c.metadata,
                        commit_timestamp,
                    },
                )
            })
            .collect();
        let offsets = std::sync::Arc::clone(&self.inner.offsets);
        let group = group.to_owned();
        blocking(move || offsets.commit(&group, entries)).await
    }

    /// `group`'s committed offsets in `partitions` (every partition it has committed when
    /// empty), sorted; partitions without a commit are left out.
    pub fn committed_offsets(
        &self,
        group: &str,
        partitions: &[TopicPartition],
    ) -> Result<Vec<(TopicPartition, CommittedOffset)>> {
        check_group_id(group)?;
        let all = self.inner.offsets.group(group);
        if partitions.is_empty() {
            return Ok(all);
        }
        let wanted: BTreeSet<&TopicPartition> = partitions.iter().collect();
        Ok(all
            .into_iter()
            .filter(|(tp, _)| wanted.contains(tp))
            .collect())
    }

    /// Every group with members or committed offsets, sorted by id.
    pub fn list_groups(&self) -> Vec<GroupListing> {
        let mut groups: BTreeMap<String, usize> = self
            .inner
            .offsets
            .groups()
            .into_iter()
            .map(|g| (g, 0))
            .collect();
        groups.extend(self.inner.groups.list());
        // A group id has one kind of live members at a time (`group_claim`), so an observed
        // group only ever meets its own commits here.
        groups.extend(
            self.inner
                .groups
                .observers
                .list_groups()
                .into_iter()
                .map(|g| (g.group, g.members)),
        );
        groups
            .into_iter()
            .map(|(group, members)| GroupListing { group, members })
            .collect()
    }

    /// `group`'s members, their assignments, and per partition its committed offset and lag.
    /// `UnknownGroup` when it has neither members nor commits.
    pub fn describe_group(&self, group: &str) -> Result<GroupDescription> {
        check_group_id(group)?;
        let live = self
            .inner
            .groups
            .snapshot(group)
            .or_else(|| self.inner.groups.observers.describe_group(group));
        let committed = self.inner.offsets.group(group);
        if live.is_none() && committed.is_empty() {
            return Err(BrokerError::UnknownGroup {
                group: group.to_owned(),
            });
        }
        let live = live.unwrap_or(LiveGroup {
            state: "Empty",
            generation: 0,
            members: Vec::new(),
        });
        let mut rows: BTreeMap<TopicPartition, (Option<CommittedOffset>, Option<String>)> =
            committed
                .into_iter()
                .map(|(tp, c)| (tp, (Some(c), None)))
                .collect();
        for member in &live.members {
            for tp in &member.assignment {
                rows.entry(tp.clone()).or_default().1 = Some(member.member_id.clone());
            }
        }
        let offsets = rows
            .into_iter()
            .map(|(tp, (committed, member_id))| {
                let (log_start_offset, high_watermark) = self
                    .topic(&tp.topic)
                    .and_then(|t| {
                        let p = t.partition(tp.partition)?;
                        Ok((p.log.log_start_offset(), p.log.high_watermark()))
                    })
                    .unwrap_or((0, 0));
                let lag = committed
                    .as_ref()
                    .map(|c| high_watermark.saturating_sub(c.offset));
                PartitionLag {
                    topic_partition: tp,
                    committed,
                    log_start_offset,
                    high_watermark,
                    lag,
                    member_id,
                }
            })
            .collect();
        Ok(GroupDescription {
            group: group.to_owned(),
            state: live.state,
            generation: live.generation,
            members: live.members,
            offsets,
        })
    }
}
