//! Kafka RecordBatch v2 as the client writes and reads it, through the one codec of the
//! `brook-batch` crate (the same the log stores with, see `docs/storage.md`): the Producer
//! builds one batch per partition in its accumulator and sends it as a `RawBatch`; the Consumer
//! receives stored batches (`RECORD_FORMAT_RAW_BATCHES`) and decodes one record at a time from
//! the shared [`Bytes`], so a key or value is a slice of what the socket delivered (or of the
//! inflated records of a compressed batch), never a copy.
//!
//! What this module adds to the codec is the client's side of it: records as
//! [`ProducerRecord`] and [`ConsumerRecord`], skipping records below a subscription's start
//! and transaction markers, and damage reported with the batch's offset. Batches it writes are
//! uncompressed with no producer id (the broker validates every batch it is sent, CRC
//! included, and assigns the offsets); batches it reads are checked (header, CRC-32C, every
//! length) before a record is decoded, since they come over the network.

use std::sync::Arc;

use brook_batch::{BatchError, BatchHeader, Compression, RecordRef};
use bytes::{Bytes, BytesMut};

use crate::record::{ConsumerRecord, ProducerRecord};

/// Builds one uncompressed batch, record by record, into one buffer.
#[derive(Debug)]
pub(crate) struct BatchBuilder {
    inner: brook_batch::BatchBuilder,
}

impl BatchBuilder {
    /// An empty batch with room for `capacity` bytes of records.
    pub(crate) fn new(capacity: usize) -> Self {
        Self::new_in(
            BytesMut::with_capacity(brook_batch::HEADER_LEN + capacity),
            capacity,
        )
    }

    /// [`BatchBuilder::new`] in `buf`, the buffer of a batch sent before (emptied first, grown
    /// to `capacity` if smaller): its memory is reused instead of a fresh allocation.
    pub(crate) fn new_in(buf: BytesMut, capacity: usize) -> Self {
        let mut inner = brook_batch::BatchBuilder::new_in(Compression::None, buf);
        inner.reserve(capacity);
        BatchBuilder { inner }
    }

    /// Records in the batch so far.
    #[cfg(test)]
    pub(crate) fn count(&self) -> usize {
        self.inner.len()
    }

    /// The most bytes `record` can add to a batch (its deltas at their widest).
    pub(crate) fn record_len_max(record: &ProducerRecord) -> usize {
        with_ref(record, 0, brook_batch::BatchBuilder::record_bytes_max)
    }

    /// Bytes of the batch so far, header included.
    pub(crate) fn len(&self) -> usize {
        self.inner.estimated_size()
    }

    /// Appends `record`, stamped `timestamp_ms`.
    pub(crate) fn push(&mut self, record: &ProducerRecord, timestamp_ms: i64) {
        with_ref(record, timestamp_ms, |r| self.inner.push(r));
    }

    /// The finished batch: header filled in, CRC-32C computed. An error for an empty batch
    /// (the accumulator never sends one) or one past the format's 2 GiB.
    pub(crate) fn finish(self) -> Result<Bytes, BatchError> {
        self.inner.build().map(|batch| batch.freeze())
    }
}

/// Calls `f` with `record` borrowed as the codec takes it.
fn with_ref<T>(record: &ProducerRecord, timestamp: i64, f: impl FnOnce(RecordRef<'_>) -> T) -> T {
    // Most records have no headers: an empty Vec allocates nothing.
    let headers: Vec<(&str, &[u8])> = record
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_ref()))
        .collect();
    f(RecordRef {
        key: record.key.as_deref(),
        value: record.value.as_deref(),
        headers: &headers,
        timestamp,
    })
}

/// Reads the records of concatenated batches of one partition, one at a time, from
/// `skip_below` on.
#[derive(Debug)]
pub(crate) struct Records {
    topic: Arc<str>,
    partition: u32,
    data: Bytes,
    /// Where the next batch starts in `data`.
    next_batch: usize,
    /// The batch being read, and its base offset (for errors).
    current: Option<(brook_batch::Records, u64)>,
    skip_below: u64,
}

impl Records {
    pub(crate) fn new(topic: Arc<str>, partition: u32, data: Bytes, skip_below: u64) -> Self {
        Records {
            topic,
            partition,
            data,
            next_batch: 0,
            current: None,
            skip_below,
        }
    }

    /// Whether nothing is left to read (a batch with no records left counts as read).
    pub(crate) fn is_exhausted(&self) -> bool {
        self.current
            .as_ref()
            .is_none_or(|(records, _)| records.remaining() == 0)
            && self.next_batch >= self.data.len()
    }

    /// The next record at or above `skip_below`, or `None` at the end.
    pub(crate) fn next_record(&mut self) -> Result<Option<ConsumerRecord>, String> {
        loop {
            if let Some((records, base)) = self.current.as_mut() {
                match records.next() {
                    Some(Ok(record)) if record.offset < self.skip_below => continue,
                    Some(Ok(record)) => {
                        return Ok(Some(ConsumerRecord {
                            topic: Arc::clone(&self.topic),
                            partition: self.partition,
                            offset: record.offset,
                            timestamp_ms: record.timestamp,
                            key: record.key,
                            value: record.value,
                            headers: record.headers,
                        }))
                    }
                    Some(Err(error)) => return Err(format!("the batch at offset {base}: {error}")),
                    None => self.current = None,
                }
            }
            if self.next_batch >= self.data.len() {
                return Ok(None);
            }
            self.open_batch()?;
        }
    }

    /// Checks the batch at `next_batch` and makes it current, unless nothing in it is wanted.
    fn open_batch(&mut self) -> Result<(), String> {
        let at = self.next_batch;
        let rest = &self.data[at..];
        let header =
            BatchHeader::parse_checked(rest, usize::MAX).map_err(
                |error| match BatchHeader::parse(rest) {
                    Ok(header) => format!("the batch at offset {}: {error}", header.base_offset),
                    Err(_) => format!("the batch at byte {at} of the event: {error}"),
                },
            )?;
        let base = u64::try_from(header.base_offset)
            .map_err(|_| format!("the batch at offset {}: negative", header.base_offset))?;
        let total = header.total_len();
        self.next_batch = at + total;
        let last = u64::try_from(header.last_offset()).unwrap_or(0);
        if header.is_control() || last < self.skip_below {
            return Ok(());
        }
        let records = brook_batch::records(self.data.slice(at..at + total))
            .map_err(|error| format!("the batch at offset {base}: {error}"))?;
        self.current = Some((records, base));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: Option<&'static str>, value: Option<&'static str>) -> ProducerRecord {
        ProducerRecord {
            key: key.map(|k| Bytes::from_static(k.as_bytes())),
            value: value.map(|v| Bytes::from_static(v.as_bytes())),
            ..ProducerRecord::default()
        }
    }

    fn read(data: Bytes, skip_below: u64) -> Vec<ConsumerRecord> {
        let mut records = Records::new("t".into(), 0, data, skip_below);
        let mut out = Vec::new();
        while let Some(record) = records.next_record().expect("valid") {
            out.push(record);
        }
        assert!(records.is_exhausted());
        out
    }

    #[test]
    fn a_built_batch_reads_back_record_for_record() {
        let mut builder = BatchBuilder::new(0);
        builder.push(&record(Some("k"), Some("v1")), 1_000);
        builder.push(&record(None, None).with_header("h", "x"), 990);
        builder.push(&record(Some(""), Some("")), 1_200);
        assert_eq!(builder.count(), 3);
        let got = read(builder.finish().expect("built"), 0);
        assert_eq!(got.len(), 3);
        assert_eq!((got[0].offset, got[0].timestamp_ms), (0, 1_000));
        assert_eq!(got[0].key.as_deref(), Some(&b"k"[..]));
        assert_eq!((got[1].offset, got[1].timestamp_ms), (1, 990));
        assert_eq!((got[1].key.clone(), got[1].value.clone()), (None, None));
        assert_eq!(got[1].headers, vec![("h".to_owned(), Bytes::from("x"))]);
        assert_eq!(got[2].key.as_deref(), Some(&b""[..]));
    }

    #[test]
    fn a_records_bound_covers_what_it_adds() {
        let mut builder = BatchBuilder::new(0);
        for value in ["", "v", &"x".repeat(300)] {
            let rec = ProducerRecord::value(value.to_owned()).with_header("h", "x");
            let before = builder.len();
            builder.push(&rec, i64::MAX);
            assert!(builder.len() - before <= BatchBuilder::record_len_max(&rec));
        }
    }

    #[test]
    fn records_below_the_start_are_skipped() {
        let mut builder = BatchBuilder::new(0);
        for v in ["a", "b", "c"] {
            builder.push(&record(None, Some(v)), 1);
        }
        let got = read(builder.finish().expect("built"), 2);
        assert_eq!(got.iter().map(|r| r.offset).collect::<Vec<_>>(), [2]);
    }

    #[test]
    fn damage_is_an_error_never_a_panic() {
        let mut builder = BatchBuilder::new(0);
        builder.push(&record(Some("key"), Some("value")), 1);
        let good = builder.finish().expect("built");
        // Every truncation and every flipped byte is refused or read safely.
        for cut in 1..good.len() {
            let mut records = Records::new("t".into(), 0, good.slice(..cut), 0);
            assert!(records.next_record().is_err(), "cut at {cut}");
        }
        for at in 0..good.len() {
            let mut bad = good.to_vec();
            bad[at] ^= 0x40;
            let mut records = Records::new("t".into(), 0, Bytes::from(bad), 0);
            while let Ok(Some(_)) = records.next_record() {}
        }
        let mut bad = good.to_vec();
        bad[brook_batch::HEADER_LEN + 3] ^= 0x01;
        let error = Records::new("t".into(), 0, Bytes::from(bad), 0)
            .next_record()
            .unwrap_err();
        assert!(
            error.contains("CRC-32C") && error.contains("offset 0"),
            "{error}"
        );
    }
}
