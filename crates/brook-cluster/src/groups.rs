//! Consumer groups on the cluster: committing and reading offsets, listing groups and
//! describing one with its lag.
//!
//! A commit goes through a member of the group in this process when there is one (in its
//! generation, as a Kafka consumer commits), else as a standalone commit (the way Kafka's tools
//! set a group's offsets), which the cluster accepts only while the group has no live members;
//! before that, members of this process that are leaving the group are waited for. A
//! description combines the cluster's view of the members (their subscriptions and assignments,
//! decoded from the consumer protocol) with the committed offsets and each partition's
//! watermarks. Kafka does not report when an offset was committed nor a group's generation to a
//! describer: both are 0.

use std::collections::{BTreeMap, BTreeSet};

use brook_broker::{
    BrokerError, CommittedOffset, GroupDescription, GroupListing, MemberDescription, OffsetCommit,
    PartitionLag, Result, TopicPartition,
};
use bytes::Bytes;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::groups::GroupInfo;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use crate::cluster::KafkaCluster;
use crate::error::{task_failed, ConfigError, Context};

impl KafkaCluster {
    /// Commits `group`'s positions, all or nothing as far as the cluster allows. Every
    /// partition must exist; metadata must fit `offset_metadata_bytes_max`.
    pub async fn commit_offsets(&self, group: &str, commits: Vec<OffsetCommit>) -> Result<()> {
        brook_broker::validate_group_id(group)?;
        self.inner.config.broker.limits.check_commits(&commits)?;
        for commit in &commits {
            let tp = &commit.topic_partition;
            self.check_partition(&tp.topic, tp.partition).await?;
        }
        let context = Context::new("commit offsets").topic(group);
        let mut tpl = TopicPartitionList::new();
        for commit in &commits {
            let tp = &commit.topic_partition;
            let offset = i64::try_from(commit.offset).map_err(|_| BrokerError::InvalidRequest {
                reason: format!("offset {} is past Kafka's range", commit.offset),
            })?;
            tpl.add_partition_offset(&tp.topic, tp.partition as i32, Offset::Offset(offset))
                .map_err(|e| context.error(&e))?;
            if let Some(mut element) = tpl.find_partition(&tp.topic, tp.partition as i32) {
                element.set_metadata(commit.metadata.clone());
            }
        }
        if let Some(member) = self.members_of(group).into_iter().next() {
            if let Some(consumer) = member.consumer.clone() {
                return tokio::task::spawn_blocking(move || {
                    consumer.commit(&tpl, CommitMode::Sync)
                })
                .await
                .map_err(task_failed)?
                .map_err(|e| context.error(&e));
            }
        }
        self.members_left(group).await;
        self.with_group(group, context, move |consumer, _| {
            consumer.commit(&tpl, CommitMode::Sync)
        })
        .await
    }

    /// `group`'s committed offsets in `partitions` (in every partition of the cluster when
    /// empty), sorted; partitions without a commit are left out.
    pub async fn committed_offsets(
        &self,
        group: &str,
        partitions: &[TopicPartition],
    ) -> Result<Vec<(TopicPartition, CommittedOffset)>> {
        brook_broker::validate_group_id(group)?;
        let partitions = if partitions.is_empty() {
            self.every_partition().await?
        } else {
            partitions.to_vec()
        };
        if partitions.is_empty() {
            return Ok(Vec::new());
        }
        let context = Context::new("read committed offsets").topic(group);
        let mut tpl = TopicPartitionList::new();
        for tp in &partitions {
            tpl.add_partition(&tp.topic, tp.partition as i32);
        }
        let mut committed = self
            .with_group(group, context, move |consumer, timeout| {
                let found = consumer.committed_offsets(tpl, timeout)?;
                Ok(found
                    .elements()
                    .iter()
                    .filter_map(|e| match e.offset() {
                        Offset::Offset(n) if n >= 0 => Some((
                            TopicPartition::new(e.topic(), u32::try_from(e.partition()).ok()?),
                            CommittedOffset {
                                offset: n as u64,
                                metadata: e.metadata().to_owned(),
                                commit_timestamp: 0,
                            },
                        )),
                        _ => None,
                    })
                    .collect::<Vec<_>>())
            })
            .await?;
        committed.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(committed)
    }

    /// Every group the cluster lists (members or committed offsets), sorted by id.
    pub async fn list_groups(&self) -> Result<Vec<GroupListing>> {
        let mut groups = self
            .with_meta(Context::new("list groups"), |meta, timeout| {
                let list = meta.fetch_group_list(None, timeout)?;
                Ok(list
                    .groups()
                    .iter()
                    .map(|g| GroupListing {
                        group: g.name().to_owned(),
                        members: g.members().len(),
                    })
                    .collect::<Vec<_>>())
            })
            .await?;
        groups.sort_by(|a, b| a.group.cmp(&b.group));
        Ok(groups)
    }

    /// `group`'s members, their assignments, and per partition its committed offset and lag.
    /// `UnknownGroup` when it has neither members nor commits.
    pub async fn describe_group(&self, group: &str) -> Result<GroupDescription> {
        brook_broker::validate_group_id(group)?;
        let name = group.to_owned();
        let (state, members) = self
            .with_meta(
                Context::new("describe a group").topic(group),
                move |meta, timeout| {
                    let list = meta.fetch_group_list(Some(&name), timeout)?;
                    Ok(list
                        .groups()
                        .iter()
                        .find(|g| g.name() == name)
                        .map(|g| (state_name(g.state()), members(g)))
                        .unwrap_or(("Dead", Vec::new())))
                },
            )
            .await?;
        let mut topics: BTreeSet<String> = BTreeSet::new();
        for member in &members {
            topics.extend(member.topics.iter().cloned());
            topics.extend(member.assignment.iter().map(|tp| tp.topic.clone()));
        }
        let partitions = if topics.is_empty() {
            self.every_partition().await?
        } else {
            let mut partitions = Vec::new();
            for topic in topics {
                if let Ok(count) = self.partition_count(&topic).await {
                    partitions.extend((0..count).map(|p| TopicPartition::new(topic.clone(), p)));
                }
            }
            partitions
        };
        let committed = if partitions.is_empty() {
            Vec::new()
        } else {
            self.committed_offsets(group, &partitions).await?
        };
        if members.is_empty() && committed.is_empty() {
            return Err(BrokerError::UnknownGroup {
                group: group.to_owned(),
            });
        }
        let mut rows: BTreeMap<TopicPartition, (Option<CommittedOffset>, Option<String>)> =
            committed
                .into_iter()
                .map(|(tp, c)| (tp, (Some(c), None)))
                .collect();
        for member in &members {
            for tp in &member.assignment {
                rows.entry(tp.clone()).or_default().1 = Some(member.member_id.clone());
            }
        }
        let mut offsets = Vec::with_capacity(rows.len());
        for (tp, (committed, member_id)) in rows {
            let (log_start_offset, high_watermark) = self
                .watermarks(&tp.topic, tp.partition)
                .await
                .unwrap_or((0, 0));
            let lag = committed
                .as_ref()
                .map(|c| high_watermark.saturating_sub(c.offset));
            offsets.push(PartitionLag {
                topic_partition: tp,
                committed,
                log_start_offset,
                high_watermark,
                lag,
                member_id,
            });
        }
        Ok(GroupDescription {
            group: group.to_owned(),
            state: if members.is_empty() { "Empty" } else { state },
            generation: 0,
            members,
            offsets,
        })
    }

    /// Every partition of every topic the cluster lists.
    async fn every_partition(&self) -> Result<Vec<TopicPartition>> {
        Ok(self
            .list_topics()
            .await?
            .into_iter()
            .flat_map(|t| (0..t.partitions).map(move |p| TopicPartition::new(t.name.clone(), p)))
            .collect())
    }

    /// Runs `call` with a consumer of `group` that joins nothing (a standalone committer and
    /// reader of the group's offsets), on the blocking pool.
    async fn with_group<T, F>(&self, group: &str, context: Context<'_>, call: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&BaseConsumer, std::time::Duration) -> rdkafka::error::KafkaResult<T>
            + Send
            + 'static,
    {
        let consumer: BaseConsumer = self
            .inner
            .config
            .member(group, "latest")
            .create()
            .map_err(|source| context.cluster(ConfigError::Client { source }.to_string(), false))?;
        let timeout = self.inner.config.request_timeout();
        tokio::task::spawn_blocking(move || call(&consumer, timeout))
            .await
            .map_err(task_failed)?
            .map_err(|e| context.error(&e))
    }
}

/// Kafka's name of a group state, as the broker's descriptions carry it.
fn state_name(state: &str) -> &'static str {
    match state {
        "Stable" => "Stable",
        "Empty" => "Empty",
        "PreparingRebalance" => "PreparingRebalance",
        "CompletingRebalance" | "AwaitingSync" => "CompletingRebalance",
        "Dead" => "Dead",
        _ => "Unknown",
    }
}

/// The members of `group` with their subscriptions and assignments (consumer groups only).
fn members(group: &GroupInfo) -> Vec<MemberDescription> {
    let consumer = group.protocol_type() == "consumer";
    let bytes = |b: Option<&[u8]>| Bytes::copy_from_slice(b.unwrap_or_default());
    group
        .members()
        .iter()
        .map(|m| {
            let (topics, assignment) = if consumer {
                (
                    brook_kafka::subscribed_topics(bytes(m.metadata())),
                    brook_kafka::assigned_partitions(bytes(m.assignment())),
                )
            } else {
                (Vec::new(), Vec::new())
            };
            MemberDescription {
                member_id: m.id().to_owned(),
                client_id: m.client_id().to_owned(),
                topics,
                assignment,
            }
        })
        .collect()
}
