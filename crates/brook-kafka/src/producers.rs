//! Idempotent producing: producer ids for InitProducerId, and per partition the last batches of
//! each producer, so a batch retried after a lost acknowledgement is answered with its original
//! offset instead of being stored twice (Kafka's `ProducerStateManager`, KIP-98).
//!
//! A producer numbers its batches per partition with a sequence (the first record's, in the
//! batch header). For each (partition, producer id) the door keeps the producer's epoch and its
//! last [`BATCHES_KEPT`] batches (first and last sequence, offsets). A new batch must continue
//! the sequence right after the last one; one matching a kept batch is a duplicate; anything
//! else is out of order. Checks and appends of one partition's idempotent batches are
//! serialised by that partition's lock, so a check and the append it allows cannot be split.
//!
//! The state survives a restart because the log holds it: every stored batch of an idempotent
//! producer carries its producer id, epoch and first sequence, and its offsets. The first time
//! a partition sees an idempotent batch after the door starts, the produce path reads the
//! partition's log and [`PartitionProducers::replay`]s its batch headers (no record is
//! decoded), so a retry of a batch written before the restart is still recognised. That read
//! costs one pass over the partition, once per partition per start.
//!
//! Producer ids need not be persisted to stay unique: they are allocated from the clock
//! (milliseconds since the epoch, shifted left by [`ID_COUNTER_BITS`]), so ids handed out after
//! a restart are larger than any handed out before it unless more than 2^12 were issued per
//! millisecond for as long as the restart took.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use brook_log::batch::Batches;
use brook_log::BatchError;
use kafka_protocol::error::ResponseError;
use parking_lot::Mutex;

/// How many of a producer's last batches are kept per partition (Kafka's
/// `max.in.flight.requests.per.connection` ceiling for idempotence).
pub(crate) const BATCHES_KEPT: usize = 5;
/// Low bits of a producer id that count within one millisecond.
const ID_COUNTER_BITS: u32 = 12;

/// What the door remembers of one batch an idempotent producer wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeptBatch {
    pub first_seq: i32,
    pub last_seq: i32,
    pub base_offset: u64,
    pub log_start_offset: u64,
}

/// What to do with an idempotent batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// New and in order: append it, then [`PartitionProducers::record`] it.
    Append,
    /// Already stored: answer with the original batch's offsets, store nothing.
    Duplicate(KeptBatch),
}

#[derive(Debug, Default)]
struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<KeptBatch>,
}

/// The idempotence state of one partition.
#[derive(Debug, Default)]
pub(crate) struct PartitionProducers {
    by_id: HashMap<i64, ProducerEntry>,
    /// Whether the state has been rebuilt from the log since the door started.
    loaded: bool,
}

/// The sequence after `seq`: sequences wrap from i32::MAX to 0.
fn next_seq(seq: i32) -> i32 {
    if seq == i32::MAX {
        0
    } else {
        seq + 1
    }
}

impl PartitionProducers {
    /// Decides what to do with a batch of `count` records starting at sequence `first_seq`.
    pub(crate) fn check(
        &self,
        producer_id: i64,
        epoch: i16,
        first_seq: i32,
        count: i32,
    ) -> Result<Verdict, ResponseError> {
        if first_seq < 0 || count <= 0 {
            return Err(ResponseError::InvalidRecord);
        }
        let last_seq = last_seq(first_seq, count);
        let Some(entry) = self.by_id.get(&producer_id) else {
            // A producer new to this partition starts at 0.
            return if first_seq == 0 {
                Ok(Verdict::Append)
            } else {
                Err(ResponseError::UnknownProducerId)
            };
        };
        if epoch < entry.epoch {
            return Err(ResponseError::InvalidProducerEpoch);
        }
        if epoch > entry.epoch {
            // A bumped epoch restarts the sequence.
            return if first_seq == 0 {
                Ok(Verdict::Append)
            } else {
                Err(ResponseError::OutOfOrderSequenceNumber)
            };
        }
        if let Some(kept) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == first_seq && b.last_seq == last_seq)
        {
            return Ok(Verdict::Duplicate(*kept));
        }
        match entry.batches.back() {
            Some(last) if first_seq == next_seq(last.last_seq) => Ok(Verdict::Append),
            _ => Err(ResponseError::OutOfOrderSequenceNumber),
        }
    }

    /// Whether the state has been rebuilt from the log since the door started.
    pub(crate) fn is_loaded(&self) -> bool {
        self.loaded
    }

    /// Replays the idempotent batches in `batches` (whole stored batches, in offset order):
    /// called with the partition's log, from its start, before the first check after a start.
    pub(crate) fn replay(
        &mut self,
        batches: &[u8],
        log_start_offset: u64,
    ) -> Result<u64, BatchError> {
        let mut next = None;
        for batch in Batches::new(batches) {
            let header = batch?.header;
            next = Some(header.next_offset());
            if header.producer_id < 0 || header.is_control() {
                continue;
            }
            self.record(
                header.producer_id,
                header.producer_epoch,
                KeptBatch {
                    first_seq: header.base_sequence,
                    last_seq: last_seq(header.base_sequence, header.records_count),
                    base_offset: header.base_offset as u64,
                    log_start_offset,
                },
            );
        }
        Ok(next.map_or(0, |n| n as u64))
    }

    /// Marks the state as rebuilt from the log.
    pub(crate) fn mark_loaded(&mut self) {
        self.loaded = true;
    }

    /// Remembers a batch that was appended.
    pub(crate) fn record(&mut self, producer_id: i64, epoch: i16, batch: KeptBatch) {
        let entry = self.by_id.entry(producer_id).or_default();
        if epoch != entry.epoch {
            entry.epoch = epoch;
            entry.batches.clear();
        }
        if entry.batches.len() == BATCHES_KEPT {
            entry.batches.pop_front();
        }
        entry.batches.push_back(batch);
    }
}

/// The sequence of the last record of a batch of `count` records starting at `first_seq`.
pub(crate) fn last_seq(first_seq: i32, count: i32) -> i32 {
    // Wraps past i32::MAX back to 0, as Kafka's DefaultRecordBatch.incrementSequence does.
    let last = i64::from(first_seq) + i64::from(count) - 1;
    (last % (i64::from(i32::MAX) + 1)) as i32
}

/// One partition's idempotence state, locked across a check and the append it allows.
pub(crate) type PartitionLock = Arc<tokio::sync::Mutex<PartitionProducers>>;

/// Producer ids and the idempotence state of every partition.
#[derive(Debug)]
pub(crate) struct Producers {
    next_id: AtomicI64,
    partitions: Mutex<HashMap<(String, u32), PartitionLock>>,
}

impl Default for Producers {
    fn default() -> Self {
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        Self {
            next_id: AtomicI64::new(millis << ID_COUNTER_BITS),
            partitions: Mutex::new(HashMap::new()),
        }
    }
}

impl Producers {
    /// A producer id no producer has had.
    pub(crate) fn allocate_id(&self) -> i64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// The state of `topic`-`partition`, to lock around a check and its append.
    pub(crate) fn partition(&self, topic: &str, partition: u32) -> PartitionLock {
        let mut partitions = self.partitions.lock();
        Arc::clone(partitions.entry((topic.to_owned(), partition)).or_default())
    }

    /// Forgets the state of a deleted topic's partitions.
    pub(crate) fn forget_topic(&self, topic: &str) {
        self.partitions.lock().retain(|(t, _), _| t != topic);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(first_seq: i32, last_seq: i32, base_offset: u64) -> KeptBatch {
        KeptBatch {
            first_seq,
            last_seq,
            base_offset,
            log_start_offset: 0,
        }
    }

    #[test]
    fn sequence_must_continue_and_retries_are_duplicates() {
        let mut state = PartitionProducers::default();
        assert_eq!(state.check(7, 0, 0, 3), Ok(Verdict::Append));
        state.record(7, 0, kept(0, 2, 100));
        assert_eq!(state.check(7, 0, 3, 2), Ok(Verdict::Append));
        state.record(7, 0, kept(3, 4, 103));
        assert_eq!(
            state.check(7, 0, 0, 3),
            Ok(Verdict::Duplicate(kept(0, 2, 100)))
        );
        assert_eq!(
            state.check(7, 0, 3, 2),
            Ok(Verdict::Duplicate(kept(3, 4, 103)))
        );
        assert_eq!(
            state.check(7, 0, 6, 1),
            Err(ResponseError::OutOfOrderSequenceNumber)
        );
        assert_eq!(
            state.check(7, 0, 1, 1),
            Err(ResponseError::OutOfOrderSequenceNumber)
        );
        assert_eq!(
            state.check(8, 0, 5, 1),
            Err(ResponseError::UnknownProducerId)
        );
        assert_eq!(state.check(7, 0, -1, 1), Err(ResponseError::InvalidRecord));
    }

    #[test]
    fn epochs_fence_old_producers_and_restart_sequences() {
        let mut state = PartitionProducers::default();
        state.record(7, 1, kept(0, 0, 10));
        assert_eq!(
            state.check(7, 0, 1, 1),
            Err(ResponseError::InvalidProducerEpoch)
        );
        assert_eq!(
            state.check(7, 2, 5, 1),
            Err(ResponseError::OutOfOrderSequenceNumber)
        );
        assert_eq!(state.check(7, 2, 0, 1), Ok(Verdict::Append));
        state.record(7, 2, kept(0, 0, 11));
        assert_eq!(state.check(7, 2, 1, 1), Ok(Verdict::Append));
    }

    #[test]
    fn only_the_last_five_batches_are_kept() {
        let mut state = PartitionProducers::default();
        for i in 0..6 {
            state.record(1, 0, kept(i, i, i as u64));
        }
        assert_eq!(
            state.check(1, 0, 0, 1),
            Err(ResponseError::OutOfOrderSequenceNumber)
        );
        assert_eq!(
            state.check(1, 0, 1, 1),
            Ok(Verdict::Duplicate(kept(1, 1, 1)))
        );
    }

    #[test]
    fn sequences_wrap_at_i32_max() {
        assert_eq!(last_seq(i32::MAX, 1), i32::MAX);
        assert_eq!(last_seq(i32::MAX, 2), 0);
        let mut state = PartitionProducers::default();
        state.record(1, 0, kept(i32::MAX - 1, i32::MAX, 0));
        assert_eq!(state.check(1, 0, 0, 1), Ok(Verdict::Append));
    }

    /// A stored batch of `count` records of producer 9 at `base_offset`, first sequence `seq`.
    fn stored(base_offset: i64, seq: i32, count: usize) -> Vec<u8> {
        use brook_log::batch::{BatchBuilder, Compression, RecordRef};
        let mut builder = BatchBuilder::new(Compression::None).with_producer(9, 0, seq);
        for _ in 0..count {
            builder.push(RecordRef {
                key: None,
                value: Some(b"v"),
                headers: &[],
                timestamp: 0,
            });
        }
        let mut batch = builder.build().expect("batch");
        brook_log::batch::header::patch_base_offset(&mut batch, base_offset);
        batch.to_vec()
    }

    #[test]
    fn replaying_the_log_restores_what_a_retry_needs() {
        let mut log = stored(0, 0, 2);
        log.extend(stored(2, 2, 3));
        let mut state = PartitionProducers::default();
        assert!(!state.is_loaded());
        assert_eq!(
            state.replay(&log, 0),
            Ok(5),
            "next offset after the last batch"
        );
        state.mark_loaded();
        assert!(state.is_loaded());
        assert_eq!(
            state.check(9, 0, 2, 3),
            Ok(Verdict::Duplicate(kept(2, 4, 2)))
        );
        assert_eq!(state.check(9, 0, 5, 1), Ok(Verdict::Append));
        assert_eq!(
            state.check(9, 0, 7, 1),
            Err(ResponseError::OutOfOrderSequenceNumber)
        );
        assert!(
            state.replay(&[0xff; 70], 0).is_err(),
            "garbage is an error, not a panic"
        );
    }

    #[test]
    fn producer_ids_are_unique_and_grow() {
        let producers = Producers::default();
        let a = producers.allocate_id();
        let b = producers.allocate_id();
        assert!(a > 0 && b == a + 1);
    }
}
