//! The one error of the format: a batch that cannot be accepted or read, with the byte and the
//! reason.

/// A batch that cannot be accepted or read. Every variant says where and why.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BatchError {
    #[error("batch truncated at byte {offset}: need {need} bytes, have {have}")]
    Truncated {
        offset: usize,
        need: usize,
        have: usize,
    },
    #[error("batch length field {length} is below the minimum of {min} bytes")]
    BadLength { length: i64, min: usize },
    #[error("batch of {size} bytes exceeds the limit of {max} bytes (message_bytes_max)")]
    TooLarge { size: usize, max: usize },
    #[error("batch magic {0} is not supported; only RecordBatch v2 (magic 2) is")]
    BadMagic(i8),
    #[error("batch CRC-32C mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },
    #[error("batch record count {records_count} / last offset delta {last_offset_delta} is impossible for its size")]
    BadCount {
        records_count: i32,
        last_offset_delta: i32,
    },
    #[error("unknown compression codec {0} in batch attributes")]
    UnknownCompression(u8),
    #[error("malformed record at byte {offset}: {reason}")]
    BadRecord { offset: usize, reason: &'static str },
    #[error("cannot compress records with {codec}: {reason}")]
    Compress {
        codec: crate::Compression,
        reason: String,
    },
    #[error(
        "the batch is a control batch (a transaction marker): only the broker writes those, a \
         producer may not"
    )]
    ControlBatch,
    /// Every record of the batch without a key, by its index in the batch (0 is the first).
    #[error("the records at batch index {indexes:?} have a null key: every record of a compacted topic needs a key")]
    MissingKey { indexes: Vec<i32> },
    #[error("cannot decompress {codec} records: {reason}")]
    Decompress {
        codec: crate::Compression,
        reason: String,
    },
}
