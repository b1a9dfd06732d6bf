//! A client's transactional batch (the Kafka door's Produce with a `transactional.id`): queued
//! into its partition only after the coordinator confirmed that its transaction is open with
//! this producer and epoch and holds the partition (see `coordinator`'s module doc).

use std::future::Future;

use brook_log::batch::BatchHeader;
use bytes::Bytes;

use super::{ProducerIdAndEpoch, TxnError};
use crate::append::outcome;
use crate::broker::Broker;
use crate::error::{BrokerError, Result};
use crate::types::{BatchAppended, TopicPartition};

impl Broker {
    /// Appends one transactional RecordBatch v2 of `transactional_id`'s open transaction to
    /// `topic`-`partition`, as [`Broker::produce_batch`] appends a batch (validated, stored
    /// byte for byte, queued at call time), after the coordinator's check: the producer id and
    /// epoch in the batch must be the transaction's and the partition must have been added to
    /// it; else `TxnError` (`InvalidProducerIdMapping`, `ProducerFenced`, `InvalidTxnState`)
    /// and nothing is stored. The topic is never created here (it was when it was added).
    pub fn produce_transactional_batch(
        &self,
        transactional_id: &str,
        topic: &str,
        partition: u32,
        batch: impl Into<Bytes>,
    ) -> impl Future<Output = Result<BatchAppended>> + Send + 'static {
        let batch = batch.into();
        let queued = self.queue_transactional_batch(transactional_id, topic, partition, batch);
        async move { outcome(queued?).await }
    }

    fn queue_transactional_batch(
        &self,
        transactional_id: &str,
        topic: &str,
        partition: u32,
        batch: Bytes,
    ) -> Result<tokio::sync::oneshot::Receiver<Result<BatchAppended>>> {
        let header = BatchHeader::parse(&batch).map_err(|source| BrokerError::InvalidBatch {
            topic: topic.to_owned(),
            partition,
            source,
        })?;
        if !header.is_transactional() {
            return Err(TxnError::InvalidTxnState {
                transactional_id: Some(transactional_id.to_owned()),
                reason: "a transactional producer sent a batch without the transactional bit"
                    .into(),
            }
            .into());
        }
        let handle = self.topic(topic)?;
        let appender = &handle.partition(partition)?.appender;
        let producer = ProducerIdAndEpoch::new(header.producer_id, header.producer_epoch);
        let tp = TopicPartition::new(topic, partition);
        let open = self.enter_produce()?;
        self.queue_transactional(transactional_id, producer, &tp, || {
            appender.submit(batch, open)
        })
    }
}

/// The refusal of a transactional batch sent without its transactional id (gRPC raw batches,
/// a Kafka Produce without `transactional_id`): only a transaction's producer may write one.
pub(crate) fn refuse_untracked(batch: &[u8]) -> Result<()> {
    match BatchHeader::parse(batch) {
        Ok(header) if header.is_transactional() => Err(TxnError::InvalidTxnState {
            transactional_id: None,
            reason: "a transactional batch needs its transactional id (and an open \
                     transaction holding the partition)"
                .into(),
        }
        .into()),
        _ => Ok(()),
    }
}
