//! brook's own atomic writes: records for several topics and partitions, and a consumer
//! group's offsets, appended all or nothing, on the transaction machinery of the Kafka door.
//! The gRPC door's `ProduceAtomic`, the HTTP door's `POST /v1/transactions` and embedded
//! applications ([`Broker::transaction`]) use it.
//!
//! A write is a transaction of its own: a fresh producer id, its partitions and offsets
//! written to the coordinator's log first (so a crash at any point is settled at the next
//! open: aborted), then its batches, transactional, to every partition, then commit markers
//! and the offsets. read_committed readers (the default on these doors) see all of it at once
//! when the markers land, or, if anything fails, none of it: the write is aborted.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::state::PendingOffset;
use super::TxnResult;
use crate::broker::Broker;
use crate::error::{BrokerError, Result};
use crate::group_admin::OffsetCommit;
use crate::produce::{
    encode_planned, now_ms, plan_records, timestamps, Planned, Produced, QueuedRecords,
};
use crate::types::{ProduceRecord, TopicPartition};

/// An atomic write being assembled; [`Transaction::commit`] performs it.
#[derive(Debug)]
#[must_use = "nothing is written until commit"]
pub struct Transaction {
    broker: Broker,
    produces: Vec<(String, Vec<ProduceRecord>)>,
    offsets: BTreeMap<String, Vec<OffsetCommit>>,
}

impl Broker {
    /// Starts an atomic write: add records with [`Transaction::produce`] and a group's offsets
    /// with [`Transaction::commit_offsets`], then [`Transaction::commit`].
    ///
    /// ```no_run
    /// # async fn demo(broker: brook_broker::Broker) -> brook_broker::Result<()> {
    /// use brook_broker::{OffsetCommit, ProduceRecord};
    /// let mut txn = broker.transaction();
    /// txn.produce("orders", vec![ProduceRecord::keyed("o-1", "placed")])
    ///     .produce("audit", vec![ProduceRecord::value("o-1 placed")])
    ///     .commit_offsets("billing", vec![OffsetCommit::new("requests", 0, 42)]);
    /// let produced = txn.commit().await?; // all of it, or (on error) none of it
    /// # Ok(()) }
    /// ```
    pub fn transaction(&self) -> Transaction {
        Transaction {
            broker: self.clone(),
            produces: Vec::new(),
            offsets: BTreeMap::new(),
        }
    }
}

impl Transaction {
    /// Adds records for `topic`, routed as [`Broker::produce`] routes them.
    pub fn produce(&mut self, topic: impl Into<String>, records: Vec<ProduceRecord>) -> &mut Self {
        self.produces.push((topic.into(), records));
        self
    }

    /// Adds `group`'s offsets, committed with the records (a consume-transform-produce step
    /// done exactly once).
    pub fn commit_offsets(
        &mut self,
        group: impl Into<String>,
        offsets: Vec<OffsetCommit>,
    ) -> &mut Self {
        self.offsets
            .entry(group.into())
            .or_default()
            .extend(offsets);
        self
    }

    /// Appends everything, or nothing: returns one [`Produced`] per [`Transaction::produce`]
    /// call, in order, once the records are visible to read_committed readers and the offsets
    /// are the groups'. Everything is checked before anything is written (nothing is written
    /// for a bad request); a failure after that (a partition's storage failing, the broker
    /// closing) aborts the whole write.
    pub async fn commit(self) -> Result<Vec<Produced>> {
        let Transaction {
            broker,
            produces,
            offsets,
        } = self;
        if produces.is_empty() && offsets.is_empty() {
            return Err(BrokerError::invalid(
                "an atomic write needs records or offsets",
            ));
        }
        let total: usize = produces.iter().map(|(_, r)| r.len()).sum();
        let limit = broker.inner.config.limits.produce_records_max;
        if total > limit {
            return Err(BrokerError::invalid(format!(
                "{total} records in one atomic write exceed produce_records_max ({limit})"
            )));
        }
        let now = now_ms();
        let mut planned = Vec::with_capacity(produces.len());
        let mut partitions = BTreeSet::new();
        for (topic, records) in &produces {
            broker.check_records(topic, records)?;
            let handle = broker.topic_or_create(topic).await?;
            let plan = plan_records(&handle, records)?;
            partitions.extend(
                plan.iter()
                    .map(|(p, _)| TopicPartition::new(topic.clone(), *p)),
            );
            planned.push((handle, plan));
        }
        let groups = pending_offsets(&broker, offsets)?;
        let (id, producer) = broker.begin_internal(partitions, groups).await?;
        let queued = queue_all(&broker, &id, producer, &produces, planned, now);
        let written = match queued {
            Ok(queued) => {
                let mut produced = Vec::with_capacity(queued.len());
                let mut failed = None;
                for q in queued {
                    match q.finish().await {
                        Ok(p) => produced.push(p),
                        Err(e) => {
                            failed.get_or_insert(e);
                        }
                    }
                }
                failed.map_or(Ok(produced), Err)
            }
            Err(e) => Err(e),
        };
        match written {
            Ok(produced) => {
                broker.end_internal(&id, TxnResult::Commit).await?;
                Ok(produced)
            }
            Err(e) => {
                if let Err(abort) = broker.end_internal(&id, TxnResult::Abort).await {
                    tracing::warn!(transactional_id = %id, error = %abort, "aborting a failed atomic write failed; it is aborted after its timeout");
                }
                Err(e)
            }
        }
    }
}

/// Checks the offsets to commit and turns them into the transaction's pending offsets.
fn pending_offsets(
    broker: &Broker,
    offsets: BTreeMap<String, Vec<OffsetCommit>>,
) -> Result<BTreeMap<String, BTreeMap<TopicPartition, PendingOffset>>> {
    let mut groups = BTreeMap::new();
    for (group, commits) in offsets {
        crate::names::validate_group_id(&group)?;
        broker.check_commits(&commits)?;
        let mut pending = BTreeMap::new();
        for commit in commits {
            pending.insert(
                commit.topic_partition,
                PendingOffset {
                    offset: commit.offset,
                    metadata: commit.metadata,
                },
            );
        }
        groups.insert(group, pending);
    }
    Ok(groups)
}

/// Encodes every produce's batches as the transaction's and queues them all.
fn queue_all(
    broker: &Broker,
    id: &str,
    producer: super::ProducerIdAndEpoch,
    produces: &[(String, Vec<ProduceRecord>)],
    planned: Vec<(Arc<crate::broker::TopicHandle>, Planned)>,
    now: i64,
) -> Result<Vec<QueuedRecords>> {
    let open = broker.enter_produce()?;
    let mut sequences: BTreeMap<String, BTreeMap<u32, i32>> = BTreeMap::new();
    produces
        .iter()
        .zip(planned)
        .map(|((topic, records), (handle, plan))| {
            let stamps = timestamps(records, now);
            let topic_sequences = sequences.entry(topic.clone()).or_default();
            let built = encode_planned(records, plan, &stamps, Some((producer, topic_sequences)))?;
            let batches = built
                .into_iter()
                .map(|(partition, indexes, batch)| {
                    let tp = TopicPartition::new(topic.clone(), partition);
                    let appender = &handle.partition(partition)?.appender;
                    let receiver = broker.queue_transactional(id, producer, &tp, || {
                        appender.submit(batch, Arc::clone(&open))
                    })?;
                    Ok((partition, indexes, receiver))
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(QueuedRecords {
                batches,
                timestamps: stamps,
            })
        })
        .collect()
}
