//! Fetching: whole stored batches from an offset, as a long poll; ListOffsets-style queries; and
//! decoding fetched batches into records for doors that send records rather than bytes.
//!
//! A fetch at the high watermark waits on the partition's high-watermark channel until an
//! append moves it (or `max_wait` passes, or the broker closes): it never sleeps in a loop. The
//! bytes come from the log as they are, so the Kafka door can send them on unchanged.
//!
//! **Nothing damaged is served.** Every read the broker hands out (a fetch, a subscription's
//! run of batches) is checked first, on the blocking pool with the read ([`checked`]): each
//! batch's header, its CRC-32C, and its offsets (increasing from batch to batch, below the
//! high watermark, the first reaching the offset asked for; the base offset is outside the
//! CRC, so this is what catches a flipped bit there). A read whose first batch fails is
//! answered with [`BrokerError::Corrupt`], naming topic, partition and offset; one that fails
//! later is cut before the damage, so the records before it are served and the next read,
//! starting at the damaged batch, gets the error. Either is logged at error level. (A reader
//! at or near the end gets the batches just appended from memory instead, as the log checked
//! and stored them: see [`read`].) Decoding ([`decode_records`]) then also holds each
//! record's offset to its batch's range.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use brook_log::batch::{BatchHeader, Batches, Record};
use brook_log::{AbortedTxn, PartitionLog};
use bytes::Bytes;
use tokio::sync::watch;

use crate::broker::{blocking, Broker, PartitionHandle, TopicHandle};
use crate::error::{BrokerError, Result};
use crate::txn::Isolation;
use crate::types::{ConsumerRecord, Fetched, ListedOffset, OffsetSpec};

impl Broker {
    /// Reads whole batches of `topic`-`partition` starting with the one holding `offset`, at
    /// most `max_bytes` of them (but always at least one whole batch when there is data, so a
    /// consumer never gets stuck on a large one).
    ///
    /// When `offset` is the high watermark, waits up to `max_wait` for data and returns as soon
    /// as an append arrives; after `max_wait` (or when the broker closes) it returns an empty
    /// answer. Never creates the topic.
    ///
    /// Reads committed data ([`Isolation::ReadCommitted`]: see [`Broker::fetch_isolated`]).
    ///
    /// Errors: `UnknownTopic`, `UnknownPartition`; `OffsetOutOfRange` (with the valid range)
    /// when `offset` is below the log start or above the high watermark; `InvalidRequest` when
    /// `max_bytes` is 0 or above `fetch_bytes_max`, or `max_wait` above `fetch_wait_ms_max`.
    pub async fn fetch(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        max_bytes: usize,
        max_wait: Duration,
    ) -> Result<Fetched> {
        self.fetch_isolated(
            topic,
            partition,
            offset,
            max_bytes,
            max_wait,
            Isolation::ReadCommitted,
        )
        .await
    }

    /// [`Broker::fetch`] with a choice of what transactions show: read_uncommitted reads up to
    /// the high watermark; read_committed up to the last stable offset (an offset between it
    /// and the high watermark reads nothing yet, and waits like one at the end), and the answer
    /// lists the aborted transactions in the range read ([`Fetched::aborted`]), whose records
    /// [`Fetched::records`] drops. Control batches are in the bytes either way (a Kafka client
    /// skips them) and never among the records.
    pub async fn fetch_isolated(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        max_bytes: usize,
        max_wait: Duration,
        isolation: Isolation,
    ) -> Result<Fetched> {
        self.inner.config.limits.check_fetch(max_bytes, max_wait)?;
        let handle = self.topic(topic)?;
        let target = handle.partition(partition)?;
        // Subscribe before looking, so an append between the look and the wait still wakes us.
        let mut end_rx = target.end_channel(isolation).subscribe();
        end_rx.borrow_and_update();
        check_offset(target, topic, partition, offset)?;
        let mut end = target.readable_end(isolation);
        if offset >= end && !max_wait.is_zero() {
            end = self
                .wait_past(&mut end_rx, &handle, target, offset, max_wait, isolation)
                .await;
            if handle.is_deleted() {
                return Err(BrokerError::UnknownTopic {
                    topic: topic.to_owned(),
                });
            }
        }
        let batches = if offset < end {
            read(target, topic, partition, offset, max_bytes, end).await?
        } else {
            Bytes::new()
        };
        let aborted = match isolation {
            Isolation::ReadCommitted if !batches.is_empty() => {
                let to = next_offset(&batches).unwrap_or(offset);
                target.log.aborted_transactions(offset, to)
            }
            _ => Vec::new(),
        };
        Ok(Fetched {
            topic: topic.to_owned(),
            partition,
            offset,
            batches,
            high_watermark: target.log.high_watermark(),
            last_stable_offset: target.log.last_stable_offset(),
            log_start_offset: target.log.log_start_offset(),
            aborted,
        })
    }

    /// Answers a ListOffsets-style query on `topic`-`partition`.
    pub async fn list_offset(
        &self,
        topic: &str,
        partition: u32,
        spec: OffsetSpec,
    ) -> Result<ListedOffset> {
        let handle = self.topic(topic)?;
        let target = handle.partition(partition)?;
        let found = |offset| ListedOffset {
            offset: Some(offset),
            timestamp: None,
        };
        match spec {
            OffsetSpec::Earliest => Ok(found(target.log.log_start_offset())),
            OffsetSpec::Latest => Ok(found(target.log.high_watermark())),
            OffsetSpec::LastStable => Ok(found(target.log.last_stable_offset())),
            OffsetSpec::Timestamp(ts) => {
                search_log(topic, &target.log, partition, move |log| {
                    log.offset_for_timestamp(ts)
                })
                .await
            }
            OffsetSpec::MaxTimestamp => {
                search_log(topic, &target.log, partition, |log| {
                    log.max_timestamp_offset()
                })
                .await
            }
        }
    }

    /// A receiver of `topic`-`partition`'s high watermark, updated after every append: for
    /// doors that wait on several partitions at once (a Kafka fetch with `min_bytes`). Its value
    /// only ever grows; a deleted topic wakes it one last time.
    pub fn watch_high_watermark(
        &self,
        topic: &str,
        partition: u32,
    ) -> Result<watch::Receiver<u64>> {
        Ok(self.topic(topic)?.partition(partition)?.hw.subscribe())
    }

    /// A receiver of the end of what a reader with `isolation` may read in `topic`-`partition`
    /// (the high watermark, or the last stable offset for read_committed), updated after every
    /// move: [`Broker::watch_high_watermark`] for either isolation.
    pub fn watch_readable_end(
        &self,
        topic: &str,
        partition: u32,
        isolation: Isolation,
    ) -> Result<watch::Receiver<u64>> {
        Ok(self
            .topic(topic)?
            .partition(partition)?
            .end_channel(isolation)
            .subscribe())
    }

    /// Waits until the readable end (high watermark, or last stable offset) passes `offset`,
    /// `max_wait` passes, the topic is deleted or the broker closes; returns the end then.
    async fn wait_past(
        &self,
        end: &mut watch::Receiver<u64>,
        topic: &TopicHandle,
        target: &PartitionHandle,
        offset: u64,
        max_wait: Duration,
        isolation: Isolation,
    ) -> u64 {
        let mut shutdown = self.shutdown_signal();
        let arrived = async {
            loop {
                if target.readable_end(isolation) > offset || topic.is_deleted() {
                    return;
                }
                if end.changed().await.is_err() {
                    return;
                }
            }
        };
        tokio::select! {
            () = arrived => {}
            _ = tokio::time::sleep(max_wait) => {}
            _ = shutdown.wait_for(|closed| *closed) => {}
        }
        target.readable_end(isolation)
    }
}

impl PartitionHandle {
    /// The end of what a reader with `isolation` may see.
    pub(crate) fn readable_end(&self, isolation: Isolation) -> u64 {
        match isolation {
            Isolation::ReadCommitted => self.log.last_stable_offset(),
            Isolation::ReadUncommitted => self.log.high_watermark(),
        }
    }

    /// The channel that carries that end.
    pub(crate) fn end_channel(&self, isolation: Isolation) -> &watch::Sender<u64> {
        match isolation {
            Isolation::ReadCommitted => &self.lso,
            Isolation::ReadUncommitted => &self.hw,
        }
    }
}

/// The high watermark, when `offset` is within `[log start, high watermark]`.
fn check_offset(target: &PartitionHandle, topic: &str, partition: u32, offset: u64) -> Result<u64> {
    // An offline partition's offsets read as an empty log's: say it is offline instead.
    target
        .log
        .check_readable()
        .map_err(|e| BrokerError::from_log(e, topic, partition))?;
    let high_watermark = target.log.high_watermark();
    let log_start_offset = target.log.log_start_offset();
    if offset < log_start_offset || offset > high_watermark {
        return Err(BrokerError::OffsetOutOfRange {
            topic: topic.to_owned(),
            partition,
            offset,
            log_start_offset,
            high_watermark,
        });
    }
    Ok(high_watermark)
}

/// What a reader at `offset` of `topic`-`partition` gets below `end`, at most `max_bytes`: the
/// batches just appended from memory when they are among the last ones written
/// ([`crate::append`]: the bytes the log checked and stored, never read back), else read from
/// the log and checked ([`checked_read`]) on the blocking pool.
pub(crate) async fn read(
    target: &PartitionHandle,
    topic: &str,
    partition: u32,
    offset: u64,
    max_bytes: usize,
    end: u64,
) -> Result<Bytes> {
    if let Some(batch) = target.appender.tail(offset, end, max_bytes) {
        return Ok(batch);
    }
    let (log, corrupt_reads) = (Arc::clone(&target.log), Arc::clone(&target.corrupt_reads));
    let topic = topic.to_owned();
    blocking(move || {
        checked_read(
            &log,
            &corrupt_reads,
            &topic,
            partition,
            offset,
            max_bytes,
            end,
        )
    })
    .await
}

/// Reads `max_bytes` of `topic`-`partition` from `offset`, below `upper` (the high watermark
/// or the last stable offset), and checks them ([`checked`]), counting in `corrupt_reads` a
/// read that damage refused or cut short. Blocking: run it on the blocking pool.
pub(crate) fn checked_read(
    log: &PartitionLog,
    corrupt_reads: &AtomicU64,
    topic: &str,
    partition: u32,
    offset: u64,
    max_bytes: usize,
    upper: u64,
) -> Result<Bytes> {
    let read = log
        .read_below(offset, max_bytes, upper)
        .map_err(|e| BrokerError::from_log(e, topic, partition))
        .and_then(|bytes| {
            let len = bytes.len();
            // After the read: the high watermark only grows, so every batch read is below it.
            checked(topic, partition, offset, log.high_watermark(), bytes)
                .map(|checked| (checked.len() < len, checked))
        });
    match read {
        Ok((cut, bytes)) => {
            if cut {
                corrupt_reads.fetch_add(1, Ordering::Relaxed);
            }
            Ok(bytes)
        }
        Err(err) => {
            if matches!(err, BrokerError::Corrupt { .. }) {
                corrupt_reads.fetch_add(1, Ordering::Relaxed);
            }
            Err(err)
        }
    }
}

/// The whole batches at the start of `bytes` (a read of `topic`-`partition` from `from`) that
/// pass every check, cut before the first that does not; [`BrokerError::Corrupt`] when the
/// first one fails. Checked per batch: header shape, CRC-32C, a base offset above the previous
/// batch's last, a last offset below `high_watermark`, and for the first batch a last offset
/// at or past `from`; and no bytes after the last whole batch (the log reads whole batches).
pub(crate) fn checked(
    topic: &str,
    partition: u32,
    from: u64,
    high_watermark: u64,
    bytes: Bytes,
) -> Result<Bytes> {
    let mut walk = Batches::new(&bytes);
    let mut previous_last: Option<i64> = None;
    let mut damage = None;
    while let Some(next) = walk.next() {
        let batch = match next {
            Ok(batch) => batch,
            Err(e) => {
                damage = Some((walk.position(), previous_last, e.to_string()));
                break;
            }
        };
        if let Err(reason) = check_batch(&batch, previous_last, from, high_watermark) {
            damage = Some((batch.position, previous_last, reason));
            break;
        }
        previous_last = Some(batch.header.last_offset());
    }
    if damage.is_none() && !walk.remainder().is_empty() {
        // The log reads whole batches only: bytes left over mean a length field lies.
        let reason = format!(
            "a batch's length runs {} bytes past the end of what the log read",
            walk.remainder().len()
        );
        damage = Some((walk.position(), previous_last, reason));
    }
    let Some((at, previous_last, reason)) = damage else {
        return Ok(bytes);
    };
    // The offset the damaged batch should hold: after the last good one, or the one asked for.
    let offset = previous_last.map_or(from, |last| last as u64 + 1);
    tracing::error!(
        topic,
        partition,
        offset,
        %reason,
        served_before = at,
        "corrupt data in a read: not served"
    );
    if at == 0 {
        return Err(BrokerError::Corrupt {
            topic: topic.to_owned(),
            partition,
            offset,
            reason,
        });
    }
    Ok(bytes.slice(..at))
}

/// One batch's checks (see [`checked`]); the reason it fails.
fn check_batch(
    batch: &brook_log::batch::BatchRef<'_>,
    previous_last: Option<i64>,
    from: u64,
    high_watermark: u64,
) -> std::result::Result<(), String> {
    BatchHeader::parse_checked(batch.bytes, usize::MAX).map_err(|e| e.to_string())?;
    let header = &batch.header;
    let (base, last) = (header.base_offset, header.last_offset());
    if base < 0 || previous_last.is_some_and(|previous| base <= previous) {
        return Err(format!(
            "batch base offset {base} does not follow the previous batch's last offset {}",
            previous_last.map_or_else(|| "(none)".to_owned(), |p| p.to_string())
        ));
    }
    if last >= high_watermark as i64 {
        return Err(format!(
            "batch offsets {base}..={last} reach past the high watermark {high_watermark}"
        ));
    }
    if previous_last.is_none() && last < from as i64 {
        return Err(format!(
            "the first batch read ({base}..={last}) ends before offset {from}, which was asked for"
        ));
    }
    Ok(())
}

/// Decodes whole batches (checked by [`checked`] when they were read) into the records at or
/// after `from`, as consumers receive them. Control batches are skipped, and so are the
/// batches of the `aborted` transactions (a read_committed reader's list, [`Committed`]); every
/// record's offset must lie in its batch's range, increasing; anything else is
/// [`BrokerError::Corrupt`].
pub(crate) fn decode_records(
    topic: &Arc<str>,
    partition: u32,
    batches: &Bytes,
    from: u64,
    aborted: &[AbortedTxn],
) -> Result<Vec<ConsumerRecord>> {
    let mut committed = Committed::new(aborted);
    let corrupt = |offset: i64, reason: String| {
        let offset = u64::try_from(offset).unwrap_or(from);
        tracing::error!(topic = %topic, partition, offset, %reason, "corrupt records: not served");
        BrokerError::Corrupt {
            topic: topic.to_string(),
            partition,
            offset,
            reason,
        }
    };
    let mut out = Vec::new();
    for batch in Batches::new(batches) {
        let batch = batch.map_err(|e| corrupt(from as i64, e.to_string()))?;
        let header = batch.header;
        // Control batches (transaction markers) carry no user records; Kafka consumers skip
        // them too. Aborted transactions' batches are dropped as Kafka's consumer drops them.
        if !committed.keeps(&header) || header.next_offset() <= from as i64 || header.is_control() {
            continue;
        }
        let bytes = batches.slice(batch.position..batch.position + batch.bytes.len());
        let records = brook_log::batch::records(bytes)
            .map_err(|e| corrupt(header.base_offset, e.to_string()))?;
        let mut previous: Option<u64> = None;
        for record in records {
            let record = record.map_err(|e| corrupt(header.base_offset, e.to_string()))?;
            let inside =
                (header.base_offset..=header.last_offset()).contains(&(record.offset as i64));
            if !inside || previous.is_some_and(|p| record.offset <= p) {
                return Err(corrupt(
                    header.base_offset,
                    format!(
                        "record offset {} is outside its batch's {}..={} or out of order",
                        record.offset,
                        header.base_offset,
                        header.last_offset()
                    ),
                ));
            }
            previous = Some(record.offset);
            if record.offset >= from {
                out.push(consumer_record(topic, partition, record));
            }
        }
    }
    Ok(out)
}

/// What a read_committed reader drops: walking batches in offset order, a batch of a producer
/// whose aborted transaction began at or before it, up to that producer's next control batch
/// (its abort marker), as Kafka's consumer does with a fetch's `aborted_transactions`.
pub(crate) struct Committed<'a> {
    /// Aborted transactions not yet begun, by first offset.
    upcoming: Vec<&'a AbortedTxn>,
    /// Producers whose aborted transaction is being walked.
    active: std::collections::HashSet<i64>,
}

impl<'a> Committed<'a> {
    pub(crate) fn new(aborted: &'a [AbortedTxn]) -> Self {
        let mut upcoming: Vec<&AbortedTxn> = aborted.iter().collect();
        // Popped from the end: latest first offset first.
        upcoming.sort_by_key(|a| std::cmp::Reverse(a.first_offset));
        Self {
            upcoming,
            active: std::collections::HashSet::new(),
        }
    }

    /// Whether the batch with `header` (the next one, in offset order) is delivered. A control
    /// batch never is; it ends its producer's aborted transaction.
    pub(crate) fn keeps(&mut self, header: &BatchHeader) -> bool {
        while let Some(next) = self.upcoming.last() {
            if next.first_offset as i64 > header.last_offset() {
                break;
            }
            self.active.insert(next.producer_id);
            self.upcoming.pop();
        }
        if header.is_control() {
            self.active.remove(&header.producer_id);
            return false;
        }
        !(header.is_transactional() && self.active.contains(&header.producer_id))
    }
}

/// The batches of `bytes` an application reader receives: without control batches, and
/// without the batches of the `aborted` transactions (see [`Committed`]; empty for
/// read_uncommitted). The same bytes when all are kept, else the kept ones copied together.
pub(crate) fn data_batches(bytes: &Bytes, aborted: &[AbortedTxn]) -> Bytes {
    let mut committed = Committed::new(aborted);
    let mut kept: Vec<(usize, usize)> = Vec::new();
    let mut all = true;
    for batch in Batches::new(bytes).map_while(|b| b.ok()) {
        if committed.keeps(&batch.header) {
            kept.push((batch.position, batch.position + batch.bytes.len()));
        } else {
            all = false;
        }
    }
    if all {
        return bytes.clone();
    }
    let mut out = bytes::BytesMut::with_capacity(kept.iter().map(|(a, b)| b - a).sum());
    for (start, end) in kept {
        out.extend_from_slice(&bytes[start..end]);
    }
    out.freeze()
}

/// A stored record as a consumer receives it: the one place the log's record becomes the
/// broker's.
fn consumer_record(topic: &Arc<str>, partition: u32, record: Record) -> ConsumerRecord {
    ConsumerRecord {
        topic: Arc::clone(topic),
        partition,
        offset: record.offset,
        timestamp: record.timestamp,
        key: record.key,
        value: record.value,
        headers: record.headers,
    }
}

/// The offset after the last whole batch in `batches`; `None` when there is none.
pub(crate) fn next_offset(batches: &[u8]) -> Option<u64> {
    Batches::new(batches)
        .map_while(|b| b.ok())
        .last()
        .and_then(|b| u64::try_from(b.header.next_offset()).ok())
}

/// Runs a record search of the log (it reads segment files) on the blocking pool.
async fn search_log(
    topic: &str,
    log: &Arc<PartitionLog>,
    partition: u32,
    search: impl FnOnce(&PartitionLog) -> brook_log::Result<Option<(u64, i64)>> + Send + 'static,
) -> Result<ListedOffset> {
    let log = Arc::clone(log);
    let topic = topic.to_owned();
    let hit =
        blocking(move || search(&log).map_err(|e| BrokerError::from_log(e, &topic, partition)))
            .await?;
    Ok(ListedOffset {
        offset: hit.map(|(offset, _)| offset),
        timestamp: hit.map(|(_, ts)| ts),
    })
}

#[cfg(test)]
mod tests {
    use brook_log::batch::header::{BASE_OFFSET_AT, BATCH_LENGTH_AT};
    use brook_log::batch::{patch_base_offset, BatchBuilder, Compression, RecordRef};

    use super::*;

    /// Five one-record batches at offsets 0..5, back to back, and where each starts.
    fn log() -> (Bytes, Vec<usize>) {
        let mut buf = Vec::new();
        let mut starts = Vec::new();
        for offset in 0..5 {
            let mut builder = BatchBuilder::new(Compression::None);
            builder.push(RecordRef {
                key: None,
                value: Some(format!("value {offset}").as_bytes()),
                headers: &[],
                timestamp: offset,
            });
            let mut batch = builder.build().expect("build");
            patch_base_offset(&mut batch, offset);
            starts.push(buf.len());
            buf.extend_from_slice(&batch);
        }
        (Bytes::from(buf), starts)
    }

    fn offsets(bytes: &Bytes, from: u64) -> Vec<u64> {
        let topic: Arc<str> = Arc::from("t");
        decode_records(&topic, 0, bytes, from, &[])
            .expect("decode")
            .iter()
            .map(|r| r.offset)
            .collect()
    }

    #[test]
    fn a_clean_read_passes_whole() {
        let (bytes, starts) = log();
        let read = checked("t", 0, 0, 5, bytes.clone()).expect("clean");
        assert_eq!(read, bytes);
        let from_two = bytes.slice(starts[2]..);
        let read = checked("t", 0, 2, 5, from_two.clone()).expect("clean");
        assert_eq!(read, from_two);
        assert_eq!(offsets(&read, 2), [2, 3, 4]);
    }

    #[test]
    fn a_flipped_bit_in_the_first_batch_is_refused_naming_the_offset() {
        let (bytes, starts) = log();
        let mut bad = bytes.to_vec();
        bad[starts[1] + 70] ^= 0x04; // inside batch 1's record: the CRC catches it
        let read = Bytes::from(bad).slice(starts[1]..);
        match checked("t", 3, 1, 5, read) {
            Err(BrokerError::Corrupt {
                topic,
                partition,
                offset,
                reason,
            }) => {
                assert_eq!((topic.as_str(), partition, offset), ("t", 3, 1));
                assert!(reason.contains("CRC"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn damage_after_the_first_batch_is_cut_off_and_refused_when_read_next() {
        let (bytes, starts) = log();
        // A flipped bit in batch 3's base offset (outside the CRC): 3 becomes 7, so the
        // offsets would read 0, 1, 2, 7, 4.
        let mut bad = bytes.to_vec();
        bad[starts[3] + BASE_OFFSET_AT + 7] ^= 0x04;
        let bad = Bytes::from(bad);
        // With the real high watermark (5), batch 3 claims an offset past it: cut before it.
        let read = checked("t", 0, 0, 5, bad.clone()).expect("the good part");
        assert_eq!(read.len(), starts[3]);
        assert_eq!(offsets(&read, 0), [0, 1, 2]);
        // Below a higher one, batch 4 (base 4) does not follow batch 3's 7: cut before it.
        let read = checked("t", 0, 0, 8, bad.clone()).expect("the good part");
        assert_eq!(read.len(), starts[4]);
        let next = bad.slice(starts[3]..);
        assert!(matches!(
            checked("t", 0, 3, 5, next),
            Err(BrokerError::Corrupt { offset: 3, .. })
        ));
    }

    #[test]
    fn a_length_that_runs_past_the_read_or_a_batch_before_the_offset_is_corrupt() {
        let (bytes, starts) = log();
        let mut bad = bytes.to_vec();
        bad[starts[4] + BATCH_LENGTH_AT + 2] ^= 0x01; // batch 4 now claims 256 more bytes
        let read = checked("t", 0, 0, 5, Bytes::from(bad.clone())).expect("the good part");
        assert_eq!(read.len(), starts[4]);
        assert!(matches!(
            checked("t", 0, 4, 5, Bytes::from(bad).slice(starts[4]..)),
            Err(BrokerError::Corrupt { offset: 4, .. })
        ));
        // The log answered offset 3 with the batch of offset 1: wrong batch, refused.
        assert!(matches!(
            checked("t", 0, 3, 5, bytes.slice(starts[1]..starts[2])),
            Err(BrokerError::Corrupt { offset: 3, .. })
        ));
    }

    /// The `batch_records` fuzz target's crash: a base offset damaged to near `i64::MAX`
    /// (outside the CRC) under a batch of two records made its last offset overflow while its
    /// records were decoded. It is corrupt, named, and neither served nor a panic.
    #[test]
    fn a_base_offset_damaged_to_the_top_of_the_range_is_corrupt_not_a_panic() {
        let mut builder = BatchBuilder::new(Compression::None);
        for value in [&b"a"[..], b"b"] {
            builder.push(RecordRef {
                key: None,
                value: Some(value),
                headers: &[],
                timestamp: 0,
            });
        }
        let mut batch = builder.build().expect("build");
        patch_base_offset(&mut batch, i64::MAX);
        let batch = Bytes::from(batch);
        assert!(matches!(
            checked("t", 0, 0, 2, batch.clone()),
            Err(BrokerError::Corrupt { offset: 0, .. })
        ));
        let topic: Arc<str> = Arc::from("t");
        assert!(matches!(
            decode_records(&topic, 0, &batch, 0, &[]),
            Err(BrokerError::Corrupt { .. })
        ));
    }
}
