//! The fixed 61-byte header of a Kafka RecordBatch v2, read without copying the batch.
//!
//! Everything the log needs to place a batch (its length, offsets, timestamps, CRC) lives here,
//! so segments, indexes and recovery never decode records. The byte layout is documented in the
//! parent module.

use super::{Compression, TimestampType};
use crate::error::BatchError;

/// Position of `baseOffset`, the one field the broker rewrites (the CRC does not cover it).
pub const BASE_OFFSET_AT: usize = 0;
/// Position of `batchLength`: the number of bytes after this field.
pub const BATCH_LENGTH_AT: usize = 8;
/// Bytes before and including `batchLength`; `batchLength` counts everything after them.
pub const LOG_OVERHEAD: usize = 12;
/// Position of `partitionLeaderEpoch`.
pub const LEADER_EPOCH_AT: usize = 12;
/// Position of `magic`.
pub const MAGIC_AT: usize = 16;
/// Position of the CRC-32C.
pub const CRC_AT: usize = 17;
/// The CRC covers everything from `attributes` to the end of the batch.
pub const CRC_COVERS_FROM: usize = 21;
/// Position of `attributes`.
pub const ATTRIBUTES_AT: usize = 21;
/// Position of `lastOffsetDelta`.
pub const LAST_OFFSET_DELTA_AT: usize = 23;
/// Position of `baseTimestamp`.
pub const BASE_TIMESTAMP_AT: usize = 27;
/// Position of `maxTimestamp`.
pub const MAX_TIMESTAMP_AT: usize = 35;
/// Position of `producerId`.
pub const PRODUCER_ID_AT: usize = 43;
/// Position of `producerEpoch`.
pub const PRODUCER_EPOCH_AT: usize = 51;
/// Position of `baseSequence`.
pub const BASE_SEQUENCE_AT: usize = 53;
/// Position of `recordsCount`.
pub const RECORDS_COUNT_AT: usize = 57;
/// Size of the whole header; the records start here.
pub const HEADER_LEN: usize = 61;
/// The only magic brook stores.
pub const MAGIC_V2: i8 = 2;
/// Attribute bit 3: log-append time (set) or create time (clear).
pub const TIMESTAMP_TYPE_BIT: i16 = 0x08;

const _: () = assert!(RECORDS_COUNT_AT + 4 == HEADER_LEN);
const _: () = assert!(CRC_AT + 4 == CRC_COVERS_FROM);
const _: () = assert!(BATCH_LENGTH_AT + 4 == LOG_OVERHEAD);

/// The decoded header of one batch. A copy of 61 bytes' worth of fields, cheap to pass around.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    /// Bytes after the `batchLength` field; the batch occupies `LOG_OVERHEAD + batch_length`.
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

impl BatchHeader {
    /// Reads the header at the start of `bytes`, checking only that the 61 bytes are present.
    ///
    /// Use [`BatchHeader::parse_checked`] for bytes that came from outside (the wire or the disk).
    pub fn parse(bytes: &[u8]) -> Result<Self, BatchError> {
        if bytes.len() < HEADER_LEN {
            return Err(BatchError::Truncated {
                offset: 0,
                need: HEADER_LEN,
                have: bytes.len(),
            });
        }
        Ok(Self {
            base_offset: read_i64(bytes, BASE_OFFSET_AT),
            batch_length: read_i32(bytes, BATCH_LENGTH_AT),
            partition_leader_epoch: read_i32(bytes, LEADER_EPOCH_AT),
            magic: bytes[MAGIC_AT] as i8,
            crc: read_i32(bytes, CRC_AT) as u32,
            attributes: read_i16(bytes, ATTRIBUTES_AT),
            last_offset_delta: read_i32(bytes, LAST_OFFSET_DELTA_AT),
            base_timestamp: read_i64(bytes, BASE_TIMESTAMP_AT),
            max_timestamp: read_i64(bytes, MAX_TIMESTAMP_AT),
            producer_id: read_i64(bytes, PRODUCER_ID_AT),
            producer_epoch: read_i16(bytes, PRODUCER_EPOCH_AT),
            base_sequence: read_i32(bytes, BASE_SEQUENCE_AT),
            records_count: read_i32(bytes, RECORDS_COUNT_AT),
        })
    }

    /// Reads and validates the header of the batch at the start of `bytes`: the length field
    /// against the bytes present and `max_batch_bytes`, the magic, the counts, and the CRC-32C.
    ///
    /// On success the whole batch is `&bytes[..header.total_len()]`.
    pub fn parse_checked(bytes: &[u8], max_batch_bytes: usize) -> Result<Self, BatchError> {
        let header = Self::parse(bytes)?;
        header.check_shape(max_batch_bytes)?;
        let total = header.total_len();
        if bytes.len() < total {
            return Err(BatchError::Truncated {
                offset: 0,
                need: total,
                have: bytes.len(),
            });
        }
        let computed = crc32c::crc32c(&bytes[CRC_COVERS_FROM..total]);
        if computed != header.crc {
            return Err(BatchError::CrcMismatch {
                stored: header.crc,
                computed,
            });
        }
        Ok(header)
    }

    /// These fields as the 61 header bytes, the inverse of [`BatchHeader::parse`]. The CRC is
    /// written as it is; a builder computes it after the records are in place.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[BASE_OFFSET_AT..][..8].copy_from_slice(&self.base_offset.to_be_bytes());
        out[BATCH_LENGTH_AT..][..4].copy_from_slice(&self.batch_length.to_be_bytes());
        out[LEADER_EPOCH_AT..][..4].copy_from_slice(&self.partition_leader_epoch.to_be_bytes());
        out[MAGIC_AT] = self.magic as u8;
        out[CRC_AT..][..4].copy_from_slice(&self.crc.to_be_bytes());
        out[ATTRIBUTES_AT..][..2].copy_from_slice(&self.attributes.to_be_bytes());
        out[LAST_OFFSET_DELTA_AT..][..4].copy_from_slice(&self.last_offset_delta.to_be_bytes());
        out[BASE_TIMESTAMP_AT..][..8].copy_from_slice(&self.base_timestamp.to_be_bytes());
        out[MAX_TIMESTAMP_AT..][..8].copy_from_slice(&self.max_timestamp.to_be_bytes());
        out[PRODUCER_ID_AT..][..8].copy_from_slice(&self.producer_id.to_be_bytes());
        out[PRODUCER_EPOCH_AT..][..2].copy_from_slice(&self.producer_epoch.to_be_bytes());
        out[BASE_SEQUENCE_AT..][..4].copy_from_slice(&self.base_sequence.to_be_bytes());
        out[RECORDS_COUNT_AT..][..4].copy_from_slice(&self.records_count.to_be_bytes());
        out
    }

    /// Checks every field that can be judged without the records: length, magic and counts.
    pub fn check_shape(&self, max_batch_bytes: usize) -> Result<(), BatchError> {
        let min_length = (HEADER_LEN - LOG_OVERHEAD) as i32;
        if self.batch_length < min_length {
            return Err(BatchError::BadLength {
                length: self.batch_length as i64,
                min: min_length as usize,
            });
        }
        if self.total_len() > max_batch_bytes {
            return Err(BatchError::TooLarge {
                size: self.total_len(),
                max: max_batch_bytes,
            });
        }
        if self.magic != MAGIC_V2 {
            return Err(BatchError::BadMagic(self.magic));
        }
        if self.records_count < 0 || self.last_offset_delta < 0 {
            return Err(BatchError::BadCount {
                records_count: self.records_count,
                last_offset_delta: self.last_offset_delta,
            });
        }
        if self.compression()? == Compression::None {
            // Every uncompressed record takes at least 7 bytes (seven one-byte varints), so a
            // count the bytes cannot hold is a lie we catch before anyone allocates for it.
            let room = self.total_len() - HEADER_LEN;
            if (self.records_count as usize).saturating_mul(super::MIN_RECORD_BYTES) > room {
                return Err(BatchError::BadCount {
                    records_count: self.records_count,
                    last_offset_delta: self.last_offset_delta,
                });
            }
        }
        Ok(())
    }

    /// Total bytes the batch occupies, header included.
    pub fn total_len(&self) -> usize {
        LOG_OVERHEAD + self.batch_length.max(0) as usize
    }

    /// Offset of the last record in the batch. Saturates rather than overflows: a header read
    /// from damaged bytes may hold any base offset and delta (the CRC does not cover the base
    /// offset), and whoever reads it must get a number to reject, never a panic or a wrap.
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .saturating_add(i64::from(self.last_offset_delta))
    }

    /// The offset the next batch will start at (saturating, as [`BatchHeader::last_offset`]).
    pub fn next_offset(&self) -> i64 {
        self.last_offset().saturating_add(1)
    }

    /// The codec named by attribute bits 0-2.
    pub fn compression(&self) -> Result<Compression, BatchError> {
        Compression::from_attributes(self.attributes)
    }

    /// Create time or log-append time (attribute bit 3, [`TIMESTAMP_TYPE_BIT`]).
    pub fn timestamp_type(&self) -> TimestampType {
        TimestampType::from_attributes(self.attributes)
    }

    /// Attribute bit 4.
    pub fn is_transactional(&self) -> bool {
        self.attributes & 0x10 != 0
    }

    /// Attribute bit 5.
    pub fn is_control(&self) -> bool {
        self.attributes & 0x20 != 0
    }

    /// The delete horizon a cleaner wrote into the batch (attribute bit 6, KIP-534): the time
    /// after which its tombstones may be removed, held in `baseTimestamp`.
    pub fn delete_horizon(&self) -> Option<i64> {
        (self.attributes & 0x40 != 0).then_some(self.base_timestamp)
    }
}

/// Rewrites `baseOffset` in place. The CRC does not cover it, so the batch stays valid.
pub fn patch_base_offset(batch: &mut [u8], base_offset: i64) {
    batch[BASE_OFFSET_AT..BASE_OFFSET_AT + 8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Rewrites `partitionLeaderEpoch` in place (also outside the CRC).
pub fn patch_leader_epoch(batch: &mut [u8], epoch: i32) {
    batch[LEADER_EPOCH_AT..LEADER_EPOCH_AT + 4].copy_from_slice(&epoch.to_be_bytes());
}

/// Writes into a validated `batch` the fields Kafka's broker sets on append instead of taking
/// the producer's: `partitionLeaderEpoch` (-1, the epoch brook reports everywhere) and, from
/// `stored` (the header [`super::validate`] returned), `maxTimestamp` and the timestamp type,
/// recomputing the CRC when those changed. Returns whether it did; a batch built right (every
/// brook builder, librdkafka, the Java client) is left as it came but for the epoch.
/// [`restamp_header`] does the same to a copy of the header, leaving the batch untouched.
pub fn restamp(batch: &mut [u8], stored: &BatchHeader) -> bool {
    match batch.split_first_chunk_mut::<HEADER_LEN>() {
        Some((head, records)) => restamp_header(head, records, stored),
        None => false,
    }
}

/// [`restamp`] for a header held apart from its records: `head` is a copy of the batch's first
/// [`HEADER_LEN`] bytes and `records` the rest of the batch, which is only read (for the CRC,
/// when it must be recomputed). So a log can store a batch it does not own (a request's shared
/// buffer) as a patched header followed by the untouched records. Returns whether the CRC was
/// recomputed.
pub fn restamp_header(head: &mut [u8; HEADER_LEN], records: &[u8], stored: &BatchHeader) -> bool {
    patch_leader_epoch(head, -1);
    let sent_attributes = read_i16(head, ATTRIBUTES_AT);
    let sent_max_timestamp = read_i64(head, MAX_TIMESTAMP_AT);
    if sent_max_timestamp == stored.max_timestamp && sent_attributes == stored.attributes {
        return false;
    }
    head[ATTRIBUTES_AT..][..2].copy_from_slice(&stored.attributes.to_be_bytes());
    head[MAX_TIMESTAMP_AT..][..8].copy_from_slice(&stored.max_timestamp.to_be_bytes());
    let end = stored
        .total_len()
        .saturating_sub(HEADER_LEN)
        .min(records.len());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&head[CRC_COVERS_FROM..]), &records[..end]);
    head[CRC_AT..][..4].copy_from_slice(&crc.to_be_bytes());
    true
}

fn read_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

fn read_i32(b: &[u8], at: usize) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    i32::from_be_bytes(a)
}

fn read_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `batch_records` fuzz target: a base offset near `i64::MAX` (bytes the CRC
    /// does not cover) overflowed `last_offset` while a fetch's records were decoded.
    #[test]
    fn offsets_of_a_damaged_header_saturate_instead_of_overflowing() {
        let mut header = BatchHeader::parse(&[0u8; HEADER_LEN]).expect("61 zero bytes parse");
        header.base_offset = i64::MAX;
        header.last_offset_delta = 5;
        assert_eq!(header.last_offset(), i64::MAX);
        assert_eq!(header.next_offset(), i64::MAX);
        header.base_offset = i64::MIN;
        header.last_offset_delta = -1;
        assert_eq!(header.last_offset(), i64::MIN);
        assert_eq!(header.next_offset(), i64::MIN + 1);
    }
}
