//! Builds a RecordBatch v2 from records: how brook's own doors (gRPC, HTTP, the embedded API)
//! turn what a producer sent into the bytes the log stores.
//!
//! Built for the produce path: each record is encoded straight into one growing buffer behind a
//! reserved header (its length computed arithmetically first, so nothing is encoded twice and
//! nothing is allocated per record), and the CRC-32C is computed once, over the finished batch.
//! The result passes [`validate`](super::validate) and decodes with Kafka's own clients.

use bytes::{BufMut, BytesMut};

use super::compression::compress;
use super::header::{BatchHeader, CRC_AT, CRC_COVERS_FROM, HEADER_LEN, LOG_OVERHEAD, MAGIC_V2};
use super::varint::{put_varlong, varlong_len, VARLONG_MAX_BYTES};
use super::Compression;
use crate::error::BatchError;

/// The largest batch the format can describe: `batchLength` is an i32.
pub(super) const BATCH_BYTES_MAX: usize = LOG_OVERHEAD + i32::MAX as usize;
/// Kafka's "no producer id / epoch / sequence" value.
pub(super) const NO_PRODUCER: i64 = -1;

/// One record to add, borrowed from the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef<'a> {
    /// `None` is Kafka's null key (length -1), distinct from an empty key.
    pub key: Option<&'a [u8]>,
    /// `None` is a null value: a tombstone on a compacted topic.
    pub value: Option<&'a [u8]>,
    /// Header keys are UTF-8 strings; keys may repeat, order is kept.
    pub headers: &'a [(&'a str, &'a [u8])],
    /// Milliseconds since the epoch (create time).
    pub timestamp: i64,
}

/// Accumulates records into one batch; [`BatchBuilder::build`] seals it.
#[derive(Debug)]
pub struct BatchBuilder {
    compression: Compression,
    /// The header space (zeros until `build`) followed by the uncompressed records.
    buf: BytesMut,
    count: usize,
    base_timestamp: i64,
    max_timestamp: i64,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    /// Attribute bits beyond the codec's (transactional, control).
    flags: i16,
}

impl BatchBuilder {
    /// An empty batch whose records will be compressed with `compression`. The base timestamp
    /// is the first record's, as in Kafka's Java producer.
    pub fn new(compression: Compression) -> Self {
        Self::new_in(compression, BytesMut::with_capacity(HEADER_LEN + 1024))
    }

    /// [`BatchBuilder::new`], building into `buf` (emptied first): a producer hands back the
    /// buffer of a batch it sent, so the next batch reuses its memory instead of a fresh one.
    pub fn new_in(compression: Compression, mut buf: BytesMut) -> Self {
        buf.clear();
        buf.put_bytes(0, HEADER_LEN);
        Self {
            compression,
            buf,
            count: 0,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: NO_PRODUCER,
            producer_epoch: NO_PRODUCER as i16,
            base_sequence: NO_PRODUCER as i32,
            flags: 0,
        }
    }

    /// Marks the batch as sent by an idempotent producer (all three default to -1).
    pub fn with_producer(
        mut self,
        producer_id: i64,
        producer_epoch: i16,
        base_sequence: i32,
    ) -> Self {
        self.producer_id = producer_id;
        self.producer_epoch = producer_epoch;
        self.base_sequence = base_sequence;
        self
    }

    /// Marks the batch as part of a transaction (attribute bit 4); the producer's fields must be
    /// set too ([`BatchBuilder::with_producer`]).
    pub fn transactional(self) -> Self {
        self.with_attributes(super::control::TRANSACTIONAL_BIT)
    }

    /// Sets attribute bits beyond the codec's (bits 4 and 5: transactional, control).
    pub(super) fn with_attributes(mut self, flags: i16) -> Self {
        self.flags |= flags & !0x07;
        self
    }

    /// Reserves room for `additional` more bytes of encoded records, to grow the buffer once.
    pub fn reserve(&mut self, additional: usize) {
        self.buf.reserve(additional);
    }

    /// Appends one record; its offset delta is the number of records before it.
    pub fn push(&mut self, record: RecordRef<'_>) {
        if self.count == 0 {
            self.base_timestamp = record.timestamp;
            self.max_timestamp = record.timestamp;
        } else {
            self.max_timestamp = self.max_timestamp.max(record.timestamp);
        }
        // Wrapping, like Kafka's Java producer: the reader adds it back with the same wrap.
        let timestamp_delta = record.timestamp.wrapping_sub(self.base_timestamp);
        // Sizes are encoded as varlongs; for values in the i32 range that is the same bytes as
        // a varint, and `build` refuses a batch large enough for any to leave that range.
        let offset_delta = self.count as i64;
        let headers_len = record.headers.len() as i64;
        let body = 1 // attributes
            + varlong_len(timestamp_delta)
            + varlong_len(offset_delta)
            + payload_len(&record);

        let buf = &mut self.buf;
        buf.reserve(varlong_len(body as i64) + body);
        put_varlong(buf, body as i64);
        buf.put_u8(0);
        put_varlong(buf, timestamp_delta);
        put_varlong(buf, offset_delta);
        put_nullable(buf, record.key);
        put_nullable(buf, record.value);
        put_varlong(buf, headers_len);
        for (key, value) in record.headers {
            put_bytes(buf, key.as_bytes());
            put_bytes(buf, value);
        }
        self.count += 1;
    }

    /// The most bytes pushing `record` can add to a batch: its encoding with the length
    /// prefix and both deltas at their widest. Producers use it to close a batch before it
    /// passes a size limit.
    pub fn record_bytes_max(record: RecordRef<'_>) -> usize {
        const LENGTH_ATTRIBUTES_DELTAS: usize = VARLONG_MAX_BYTES + 1 + 2 * VARLONG_MAX_BYTES;
        LENGTH_ATTRIBUTES_DELTAS + payload_len(&record)
    }

    /// Records pushed so far.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The batch's size if built now without compression: exact for `Compression::None`, an
    /// upper bound in practice otherwise. Producers use it to decide when a batch is full.
    pub fn estimated_size(&self) -> usize {
        self.buf.len()
    }

    /// Seals the batch: compresses the records, fills in the header with base offset 0 and
    /// computes the CRC-32C. Fails for an empty batch (Kafka has no use for one) and for one
    /// too large for the format's i32 length.
    pub fn build(self) -> Result<BytesMut, BatchError> {
        if self.count == 0 {
            return Err(BatchError::BadCount {
                records_count: 0,
                last_offset_delta: -1,
            });
        }
        let mut batch = match self.compression {
            Compression::None => self.buf,
            codec => {
                let records = &self.buf[HEADER_LEN..];
                // Compressed output is rarely more than half the input; growing is cheap.
                let mut out = BytesMut::with_capacity(HEADER_LEN + records.len() / 2 + 64);
                out.put_bytes(0, HEADER_LEN);
                compress(codec, records, &mut out)?;
                out
            }
        };
        if batch.len() > BATCH_BYTES_MAX {
            return Err(BatchError::TooLarge {
                size: batch.len(),
                max: BATCH_BYTES_MAX,
            });
        }
        // `count` <= batch size / MIN_RECORD_BYTES, so it fits too.
        let records_count = self.count as i32;
        let header = BatchHeader {
            base_offset: 0,
            batch_length: (batch.len() - LOG_OVERHEAD) as i32,
            partition_leader_epoch: -1,
            magic: MAGIC_V2,
            crc: 0,
            attributes: self.compression.attribute_bits() | self.flags,
            last_offset_delta: records_count - 1,
            base_timestamp: self.base_timestamp,
            max_timestamp: self.max_timestamp,
            producer_id: self.producer_id,
            producer_epoch: self.producer_epoch,
            base_sequence: self.base_sequence,
            records_count,
        };
        batch[..HEADER_LEN].copy_from_slice(&header.to_bytes());
        let crc = crc32c::crc32c(&batch[CRC_COVERS_FROM..]);
        batch[CRC_AT..CRC_COVERS_FROM].copy_from_slice(&crc.to_be_bytes());
        Ok(batch)
    }
}

/// A record's key, value and headers as encoded, with their length prefixes and the header
/// count.
fn payload_len(record: &RecordRef<'_>) -> usize {
    let headers: usize = record
        .headers
        .iter()
        .map(|(key, value)| bytes_len(key.as_bytes()) + bytes_len(value))
        .sum();
    nullable_len(record.key)
        + nullable_len(record.value)
        + varlong_len(record.headers.len() as i64)
        + headers
}

fn bytes_len(bytes: &[u8]) -> usize {
    varlong_len(bytes.len() as i64) + bytes.len()
}

fn nullable_len(bytes: Option<&[u8]>) -> usize {
    bytes.map_or(1, bytes_len)
}

fn put_bytes(buf: &mut BytesMut, bytes: &[u8]) {
    put_varlong(buf, bytes.len() as i64);
    buf.put_slice(bytes);
}

fn put_nullable(buf: &mut BytesMut, bytes: Option<&[u8]>) {
    match bytes {
        Some(bytes) => put_bytes(buf, bytes),
        None => put_varlong(buf, -1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record<'a>(value: &'a [u8], timestamp: i64) -> RecordRef<'a> {
        RecordRef {
            key: None,
            value: Some(value),
            headers: &[],
            timestamp,
        }
    }

    #[test]
    fn a_single_record_batch_matches_kafkas_bytes() {
        // Hand-assembled per the layout table: one record, null key, value "hello", ts 1000.
        let mut builder = BatchBuilder::new(Compression::None);
        builder.push(record(b"hello", 1000));
        let batch = builder.build().expect("build");
        let body: &[u8] = &[
            0x00, // attributes
            0x00, // timestamp delta 0
            0x00, // offset delta 0
            0x01, // key length -1
            0x0a, b'h', b'e', b'l', b'l', b'o', // value length 5
            0x00, // no headers
        ];
        assert_eq!(
            &batch[HEADER_LEN..],
            [&[body.len() as u8 * 2][..], body].concat()
        );
        let header = BatchHeader::parse_checked(&batch, usize::MAX).expect("valid header");
        assert_eq!(header.base_offset, 0);
        assert_eq!(header.total_len(), batch.len());
        assert_eq!(header.partition_leader_epoch, -1);
        assert_eq!(header.records_count, 1);
        assert_eq!(header.last_offset_delta, 0);
        assert_eq!((header.base_timestamp, header.max_timestamp), (1000, 1000));
        assert_eq!(
            (
                header.producer_id,
                header.producer_epoch,
                header.base_sequence
            ),
            (-1, -1, -1)
        );
        assert_eq!(header.compression(), Ok(Compression::None));
    }

    #[test]
    fn header_carries_counts_timestamps_producer_and_codec() {
        let mut builder = BatchBuilder::new(Compression::Zstd).with_producer(42, 3, 17);
        for ts in [500, 900, 100] {
            builder.push(record(b"v", ts));
        }
        assert_eq!(builder.len(), 3);
        let batch = builder.build().expect("build");
        let header = BatchHeader::parse_checked(&batch, usize::MAX).expect("valid header");
        assert_eq!((header.records_count, header.last_offset_delta), (3, 2));
        assert_eq!((header.base_timestamp, header.max_timestamp), (500, 900));
        assert_eq!(
            (
                header.producer_id,
                header.producer_epoch,
                header.base_sequence
            ),
            (42, 3, 17)
        );
        assert_eq!(header.compression(), Ok(Compression::Zstd));
    }

    #[test]
    fn estimated_size_is_exact_without_compression() {
        let mut builder = BatchBuilder::new(Compression::None);
        assert!(builder.is_empty());
        builder.push(RecordRef {
            key: Some(b"k"),
            value: None,
            headers: &[("h", b"v")],
            timestamp: -5,
        });
        let estimate = builder.estimated_size();
        assert_eq!(builder.build().expect("build").len(), estimate);
    }

    #[test]
    fn an_empty_batch_is_refused() {
        assert_eq!(
            BatchBuilder::new(Compression::None).build(),
            Err(BatchError::BadCount {
                records_count: 0,
                last_offset_delta: -1
            })
        );
    }
}
