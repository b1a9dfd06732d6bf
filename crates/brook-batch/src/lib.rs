//! Kafka RecordBatch v2 (magic 2), byte for byte: the unit brook stores, indexes and serves.
//!
//! A batch arrives from a producer (any door), is validated once, gets its offsets by a rewrite of
//! `baseOffset`, and is then stored and served as the same bytes: a Kafka fetch hands them to the
//! socket unchanged. All integers are big-endian.
//!
//! | offset | field                  | type   | notes                                               |
//! |-------:|------------------------|--------|-----------------------------------------------------|
//! | 0      | `baseOffset`           | i64    | assigned by the broker; not covered by the CRC      |
//! | 8      | `batchLength`          | i32    | bytes after this field (total = 12 + batchLength)   |
//! | 12     | `partitionLeaderEpoch` | i32    | not covered by the CRC                              |
//! | 16     | `magic`                | i8     | always 2                                            |
//! | 17     | `crc`                  | u32    | CRC-32C (Castagnoli) of bytes 21..end               |
//! | 21     | `attributes`           | i16    | bits 0-2 codec, 3 timestamp type, 4 transactional, 5 control, 6 delete horizon |
//! | 23     | `lastOffsetDelta`      | i32    | offset of the last record minus `baseOffset`        |
//! | 27     | `baseTimestamp`        | i64    | ms since the epoch (`firstTimestamp` in Kafka)      |
//! | 35     | `maxTimestamp`         | i64    | greatest record timestamp                           |
//! | 43     | `producerId`           | i64    | -1 when not idempotent                              |
//! | 51     | `producerEpoch`        | i16    |                                                     |
//! | 53     | `baseSequence`         | i32    | -1 when not idempotent                              |
//! | 57     | `recordsCount`         | i32    |                                                     |
//! | 61     | records                | bytes  | compressed as a whole when the codec is not none    |
//!
//! Each record (zig-zag varints: `varint` for i32, `varlong` for i64):
//!
//! | field            | type    | notes                                                  |
//! |------------------|---------|--------------------------------------------------------|
//! | `length`         | varint  | bytes after this field                                 |
//! | `attributes`     | i8      | unused, 0                                              |
//! | `timestampDelta` | varlong | from `baseTimestamp`                                   |
//! | `offsetDelta`    | varint  | from `baseOffset`                                      |
//! | `keyLength`      | varint  | -1 for a null key                                      |
//! | `key`            | bytes   |                                                        |
//! | `valueLength`    | varint  | -1 for a null value                                    |
//! | `value`          | bytes   |                                                        |
//! | `headersCount`   | varint  |                                                        |
//! | headers          |         | each: keyLength varint, key, valueLength varint, value |
//!
//! The pieces: [`header`] reads and checks the fixed header (and names each field's position),
//! `builder` writes batches ([`BatchBuilder`]), `records` validates and decodes the records
//! ([`validate`], [`fn@records`]), `batches` walks a buffer of batches ([`Batches`]),
//! `compression` holds the four codecs and `varint` the record integer encoding; [`control`]
//! is the transaction markers' format.
//!
//! Why a crate of its own: the format is what brook stores (`brook-log`), what every door
//! checks and serves, and what the Rust client (`brook-client`) builds and reads; one codec
//! serves all of them, and the client gets it without the storage engine. It depends on
//! `bytes`, `crc32c`, `thiserror` and the four compression codecs only; no IO, no async.
//! `brook-log` re-exports it as `brook_log::batch`.

mod batches;
mod builder;
// The record-level pieces below are public for brook-log's compaction (`retain`), which
// rewrites records in place; they are not meant for other callers.
#[doc(hidden)]
pub mod compression;
pub mod control;
mod error;
pub mod header;
#[doc(hidden)]
pub mod records;
#[doc(hidden)]
pub mod varint;

pub use batches::{BatchRef, Batches};
pub use builder::{BatchBuilder, RecordRef};
pub use control::{control_batch, ControlType, EndTxnMarker};
pub use header::{
    patch_base_offset, restamp, restamp_header, BatchHeader, HEADER_LEN, LOG_OVERHEAD, MAGIC_V2,
    TIMESTAMP_TYPE_BIT,
};
pub use records::{records, validate, validate_keyed, Record, Records};

pub use error::BatchError;

/// The smallest an uncompressed record can be: seven one-byte fields
/// (length, attributes, timestamp delta, offset delta, key length, value length, header count).
pub const MIN_RECORD_BYTES: usize = 7;

/// The codec of a batch's records (attribute bits 0-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    /// Every codec, in attribute-code order.
    pub const ALL: [Compression; 5] = [Self::None, Self::Gzip, Self::Snappy, Self::Lz4, Self::Zstd];

    /// Decodes attribute bits 0-2; codes 5-7 are not defined by Kafka.
    pub fn from_attributes(attributes: i16) -> Result<Self, BatchError> {
        match attributes & 0x07 {
            0 => Ok(Self::None),
            1 => Ok(Self::Gzip),
            2 => Ok(Self::Snappy),
            3 => Ok(Self::Lz4),
            4 => Ok(Self::Zstd),
            other => Err(BatchError::UnknownCompression(other as u8)),
        }
    }

    /// The attribute bits for this codec.
    pub fn attribute_bits(self) -> i16 {
        match self {
            Self::None => 0,
            Self::Gzip => 1,
            Self::Snappy => 2,
            Self::Lz4 => 3,
            Self::Zstd => 4,
        }
    }

    /// The name Kafka's `compression.type` uses.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Gzip => "gzip",
            Self::Snappy => "snappy",
            Self::Lz4 => "lz4",
            Self::Zstd => "zstd",
        }
    }
}

impl std::fmt::Display for Compression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether record timestamps were set by the producer or by the broker on append (attribute bit 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

impl TimestampType {
    pub fn from_attributes(attributes: i16) -> Self {
        if attributes & 0x08 != 0 {
            Self::LogAppendTime
        } else {
            Self::CreateTime
        }
    }
}
