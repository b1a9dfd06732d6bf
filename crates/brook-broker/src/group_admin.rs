//! The group operations every door exposes: committing and reading offsets, listing groups and
//! describing one with its lag, and the admin changes of a group without live members:
//! deleting it, deleting some of its offsets, moving its offsets (Kafka's
//! `kafka-consumer-groups --reset-offsets`).
//!
//! They combine the live state of the broker's coordinator ([`crate::group`]) and of observed
//! ones ([`crate::group_observer`]: the Kafka door's) with the persisted offsets
//! ([`crate::offsets`]), so a group reads the same through every door. An admin change holds
//! the group's exclusive admin claim ([`crate::group_claim`]) while it runs, so no member joins
//! half-way through it.

use std::collections::{BTreeMap, BTreeSet};

use crate::broker::{blocking, Broker};
use crate::error::{BrokerError, Result};
use crate::group_observer::LiveGroup;
use crate::names::validate_group_id;
use crate::produce::now_ms;
use crate::types::{
    CommittedOffset, GroupDescription, GroupListing, OffsetSpec, PartitionLag, TopicPartition,
};

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

/// Where [`Broker::seek_group`] moves a group's offsets: Kafka's `--reset-offsets` options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeekTo {
    /// The log start offset (`--to-earliest`).
    Earliest,
    /// The high watermark (`--to-latest`).
    Latest,
    /// This offset, moved into `[log start, high watermark]` when outside (`--to-offset`).
    Offset(u64),
    /// The first offset whose record is at or after this time, ms since the epoch; the high
    /// watermark when there is none (`--to-datetime`).
    Timestamp(i64),
    /// The committed offset moved by this many records, kept within the log (`--shift-by`);
    /// a partition without a committed offset cannot be shifted.
    Shift(i64),
}

/// One partition of a [`Broker::seek_group`]: where the group was and where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seek {
    pub topic_partition: TopicPartition,
    /// The committed offset before, if any.
    pub from: Option<u64>,
    pub to: u64,
}

impl Broker {
    /// Records `group`'s position in some partitions, all or nothing, and returns once it is
    /// durable. Every partition must exist (`UnknownTopic`/`UnknownPartition`), metadata must
    /// fit `offset_metadata_bytes_max` (`TooLarge`); nothing is committed otherwise. The offset
    /// itself is not checked against the log, as in Kafka: a consumer resuming from an offset
    /// no longer in the log starts per its reset policy.
    pub async fn commit_offsets(&self, group: &str, commits: Vec<OffsetCommit>) -> Result<()> {
        validate_group_id(group)?;
        self.check_commits(&commits)?;
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

    /// Checks offsets to commit (directly or in a transaction): at least one, metadata within
    /// `offset_metadata_bytes_max`, every partition existing.
    pub(crate) fn check_commits(&self, commits: &[OffsetCommit]) -> Result<()> {
        self.inner.config.limits.check_commits(commits)?;
        for commit in commits {
            let tp = &commit.topic_partition;
            self.topic(&tp.topic)?.partition(tp.partition)?;
        }
        Ok(())
    }

    /// `group`'s committed offsets in `partitions` (every partition it has committed when
    /// empty), sorted; partitions without a commit are left out.
    pub fn committed_offsets(
        &self,
        group: &str,
        partitions: &[TopicPartition],
    ) -> Result<Vec<(TopicPartition, CommittedOffset)>> {
        validate_group_id(group)?;
        let all = self.inner.offsets.group(group)?;
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
        validate_group_id(group)?;
        let live = self
            .inner
            .groups
            .snapshot(group)
            .or_else(|| self.inner.groups.observers.describe_group(group));
        let committed = self.inner.offsets.group(group)?;
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

    /// Deletes `group`: its committed offsets in every partition. Only a group without live
    /// members (`GroupNotEmpty`); `UnknownGroup` when it has no committed offsets either.
    pub async fn delete_group(&self, group: &str) -> Result<()> {
        validate_group_id(group)?;
        let _claim = self.group_claims().claim_admin(group)?;
        let offsets = std::sync::Arc::clone(&self.inner.offsets);
        let owned = group.to_owned();
        let removed = blocking(move || offsets.remove(&owned, |_| true)).await?;
        if removed == 0 {
            return Err(BrokerError::UnknownGroup {
                group: group.to_owned(),
            });
        }
        tracing::info!(group, offsets = removed, "group deleted");
        Ok(())
    }

    /// Deletes `group`'s committed offsets in `partitions` (Kafka's OffsetDelete); partitions
    /// it has no offset in are fine. Only while no live member of the group subscribes to one
    /// of their topics (`GroupNotEmpty`); `UnknownGroup` when the group has neither members
    /// nor committed offsets.
    pub async fn delete_committed_offsets(
        &self,
        group: &str,
        partitions: &[TopicPartition],
    ) -> Result<()> {
        validate_group_id(group)?;
        let description = self.describe_group(group)?;
        let subscribed = description.members.iter().any(|m| {
            partitions
                .iter()
                .any(|tp| m.topics.contains(&tp.topic) || m.assignment.contains(tp))
        });
        if subscribed {
            return Err(BrokerError::GroupNotEmpty {
                group: group.to_owned(),
            });
        }
        let doomed: BTreeSet<TopicPartition> = partitions.iter().cloned().collect();
        let offsets = std::sync::Arc::clone(&self.inner.offsets);
        let owned = group.to_owned();
        blocking(move || offsets.remove(&owned, |tp| doomed.contains(tp))).await?;
        Ok(())
    }

    /// Moves `group`'s committed offsets, as `kafka-consumer-groups --reset-offsets` does: in
    /// every partition of `topics`, or, when `topics` is empty, in every partition the group
    /// has committed. Only a group without live members (`GroupNotEmpty`). With `dry_run` it
    /// only says what it would do. Returns one [`Seek`] per partition, sorted.
    pub async fn seek_group(
        &self,
        group: &str,
        to: SeekTo,
        topics: &[String],
        dry_run: bool,
    ) -> Result<Vec<Seek>> {
        self.seek_group_checked(group, to, topics, dry_run, |_| Ok(()))
            .await
    }

    /// As [`Broker::seek_group`], with `check` asked about the plan before anything moves: it
    /// runs under the group's admin claim, after the plan is made, so what it approves is
    /// exactly what moves (or, with `dry_run`, what is shown). No member can join and no other
    /// admin change can run between the check and the move; a partition first committed after
    /// the plan was made is not in it and is not moved. A refusal from `check` is returned as
    /// it is, with nothing moved. The doors' authorization of a seek naming no topics uses it:
    /// the topics to check are the ones the group has committed in, known only from the plan.
    pub async fn seek_group_checked<F>(
        &self,
        group: &str,
        to: SeekTo,
        topics: &[String],
        dry_run: bool,
        check: F,
    ) -> Result<Vec<Seek>>
    where
        F: FnOnce(&[Seek]) -> Result<()>,
    {
        validate_group_id(group)?;
        let _claim = self.group_claims().claim_admin(group)?;
        let committed: BTreeMap<TopicPartition, CommittedOffset> =
            self.inner.offsets.group(group)?.into_iter().collect();
        let partitions: Vec<TopicPartition> = if topics.is_empty() {
            committed.keys().cloned().collect()
        } else {
            let mut all = Vec::new();
            for topic in topics {
                let count = self.topic(topic)?.partition_count();
                all.extend((0..count).map(|p| TopicPartition::new(topic.clone(), p)));
            }
            all.sort();
            all.dedup();
            all
        };
        let mut plan = Vec::with_capacity(partitions.len());
        for tp in partitions {
            let from = committed.get(&tp).map(|c| c.offset);
            let to = self.seek_target(&tp, to, from).await?;
            plan.push(Seek {
                topic_partition: tp,
                from,
                to,
            });
        }
        check(&plan)?;
        if dry_run || plan.is_empty() {
            return Ok(plan);
        }
        let commit_timestamp = now_ms();
        let entries: Vec<(TopicPartition, CommittedOffset)> = plan
            .iter()
            .map(|seek| {
                let committed = CommittedOffset {
                    offset: seek.to,
                    metadata: String::new(),
                    commit_timestamp,
                };
                (seek.topic_partition.clone(), committed)
            })
            .collect();
        let offsets = std::sync::Arc::clone(&self.inner.offsets);
        let owned = group.to_owned();
        blocking(move || offsets.commit(&owned, entries)).await?;
        tracing::info!(group, partitions = plan.len(), ?to, "group offsets moved");
        Ok(plan)
    }

    /// Where `to` puts a group in `tp`, from its committed offset `from`.
    async fn seek_target(&self, tp: &TopicPartition, to: SeekTo, from: Option<u64>) -> Result<u64> {
        let handle = self.topic(&tp.topic)?;
        let log = &handle.partition(tp.partition)?.log;
        let (start, end) = (log.log_start_offset(), log.high_watermark());
        let within = |offset: u64| offset.clamp(start, end.max(start));
        Ok(match to {
            SeekTo::Earliest => start,
            SeekTo::Latest => end,
            SeekTo::Offset(offset) => within(offset),
            SeekTo::Timestamp(timestamp) => self
                .list_offset(&tp.topic, tp.partition, OffsetSpec::Timestamp(timestamp))
                .await?
                .offset
                .unwrap_or(end),
            SeekTo::Shift(by) => {
                let Some(from) = from else {
                    return Err(BrokerError::invalid(format!(
                        "cannot shift {tp}: the group has no committed offset there"
                    )));
                };
                within(from.saturating_add_signed(by))
            }
        })
    }
}
