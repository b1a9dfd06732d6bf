//! What the Kafka door tells a producer whose batch or transaction call is refused: the
//! broker's [`TxnError`]s as Kafka error codes.
//!
//! The state behind idempotence and transactions is not the door's: each partition log keeps
//! its producers' state (deduplication, fencing, open transactions, brook-log's
//! `producer_state`), the broker's transaction coordinator the transactional ids, and producer
//! ids come from the broker too (`Broker::init_producer_id`). What is protocol stays here:
//! which code each refusal is, and that the transaction APIs' older versions predate
//! `PRODUCER_FENCED` (KIP-588) and say `INVALID_PRODUCER_EPOCH` instead, as Produce always does.

use brook_broker::TxnError;
use kafka_protocol::error::ResponseError;

/// The Kafka code for a transaction or producer refusal.
pub(crate) fn error_code(err: &TxnError) -> ResponseError {
    match err {
        TxnError::ProducerFenced { .. } => ResponseError::ProducerFenced,
        TxnError::InvalidProducerIdMapping { .. } => ResponseError::InvalidProducerIdMapping,
        TxnError::InvalidTxnState { .. } => ResponseError::InvalidTxnState,
        TxnError::ConcurrentTransactions { .. } => ResponseError::ConcurrentTransactions,
        TxnError::InvalidTimeout { .. } => ResponseError::InvalidTransactionTimeout,
        TxnError::TransactionalIdNotFound { .. } => ResponseError::TransactionalIdNotFound,
        TxnError::OutOfOrderSequence { .. } => ResponseError::OutOfOrderSequenceNumber,
        TxnError::UnknownProducerId { .. } => ResponseError::UnknownProducerId,
        TxnError::UnknownPartitions(_) => ResponseError::UnknownTopicOrPartition,
        // InvalidTransactionalId, and a refusal added later.
        _ => ResponseError::InvalidRequest,
    }
}

/// `code` as a client of `version` understands it: `PRODUCER_FENCED` became a code of its own
/// in version `fenced_since` of the API (KIP-588); before, and in Produce, it is
/// `INVALID_PRODUCER_EPOCH`.
pub(crate) fn for_version(code: ResponseError, version: i16, fenced_since: i16) -> ResponseError {
    if code == ResponseError::ProducerFenced && version < fenced_since {
        ResponseError::InvalidProducerEpoch
    } else {
        code
    }
}

/// The first version of each transaction API that knows `PRODUCER_FENCED` (KIP-588).
pub(crate) mod fenced_since {
    pub(crate) const INIT_PRODUCER_ID: i16 = 4;
    pub(crate) const ADD_PARTITIONS_TO_TXN: i16 = 2;
    pub(crate) const ADD_OFFSETS_TO_TXN: i16 = 2;
    pub(crate) const END_TXN: i16 = 2;
    pub(crate) const TXN_OFFSET_COMMIT: i16 = 3;
    /// Produce never does.
    pub(crate) const PRODUCE: i16 = i16::MAX;
}

#[cfg(test)]
mod tests {
    use super::*;
    use brook_broker::TopicPartition;

    #[test]
    fn fencing_reads_as_each_version_expects() {
        let fenced = error_code(&TxnError::ProducerFenced {
            producer_id: 1,
            epoch: 0,
            current: 1,
            partition: None,
        });
        assert_eq!(fenced, ResponseError::ProducerFenced);
        assert_eq!(
            for_version(fenced, 1, fenced_since::END_TXN),
            ResponseError::InvalidProducerEpoch
        );
        assert_eq!(
            for_version(fenced, 3, fenced_since::END_TXN),
            ResponseError::ProducerFenced
        );
        assert_eq!(
            for_version(fenced, 9, fenced_since::PRODUCE),
            ResponseError::InvalidProducerEpoch
        );
        let other = error_code(&TxnError::UnknownPartitions(vec![TopicPartition::new(
            "t", 0,
        )]));
        assert_eq!(
            for_version(other, 0, 2),
            ResponseError::UnknownTopicOrPartition
        );
    }
}
