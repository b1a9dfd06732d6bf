//! Keeping some records of a stored batch and dropping the rest, with every offset unchanged:
//! the format half of compaction (the cleaner decides which records go; this writes what stays).
//!
//! A batch keeps its base offset, its `lastOffsetDelta`, its partition leader epoch, its codec
//! and its producer fields (id, epoch, base sequence), so a consumer's position and an
//! idempotent producer's sequence stay valid; only `recordsCount`, `maxTimestamp` (create time:
//! the greatest timestamp kept), the records and the CRC change. Records that stay keep their
//! bytes, offset deltas included; a compressed batch is decompressed, filtered and compressed
//! again with its own codec.
//!
//! Two things follow Kafka (KIP-534 and its `MemoryRecords.filterTo`):
//!
//! - **Delete horizon.** When a batch keeps a tombstone (a record with a null value) and has no
//!   delete horizon yet, the caller's horizon is written into it: attribute bit 6 is set and
//!   `baseTimestamp` holds the horizon (the time after which its tombstones may go), every
//!   record's timestamp delta being rewritten against it so that record timestamps read the
//!   same. [`BatchHeader::delete_horizon`] reads it back.
//! - **Empty batches.** A batch whose records all go is dropped, unless the caller asks to keep
//!   it (the last batch of an idempotent producer, whose header carries the producer's last
//!   sequence): it is then written as a header with zero records and no codec.

use bytes::BytesMut;

use super::compression::compress;
use super::header::{BatchHeader, CRC_AT, CRC_COVERS_FROM, HEADER_LEN, LOG_OVERHEAD};
use super::records::{parse_record, records_frame};
use super::varint::{put_varlong, read_varint, read_varlong, varlong_len};
use super::TimestampType;
use crate::error::BatchError;

/// Attribute bit 6: `baseTimestamp` holds the batch's delete horizon.
pub(crate) const DELETE_HORIZON_BIT: i16 = 0x40;

/// One record as the filter sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecordView<'a> {
    pub offset: u64,
    pub key: Option<&'a [u8]>,
    /// A null value: a tombstone.
    pub tombstone: bool,
}

/// What [`retain`] made of a batch.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Retained {
    /// Every record stays and nothing else changes: the batch's own bytes serve.
    Unchanged,
    /// The batch as rewritten (some records gone, or a delete horizon set), or an empty one.
    Rewritten(Vec<u8>),
    /// Nothing stays.
    Dropped,
}

/// What the caller asks of [`retain`] beyond the choice of records.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RetainOptions {
    /// Write a header with zero records rather than drop a batch whose records all go.
    pub keep_empty: bool,
    /// The delete horizon to set when a tombstone stays and the batch has none.
    pub delete_horizon: Option<i64>,
}

/// Counts of one [`retain`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RetainCounts {
    pub records_read: u64,
    pub records_kept: u64,
}

/// A stored batch opened for a walk of its records: its header, base offset, records frame
/// (decompressed if need be) and where the records start in it.
type Opened<'a> = (BatchHeader, u64, std::borrow::Cow<'a, [u8]>, usize);

/// Opens the whole batch `batch` for a walk of its records, trusting its bytes as far as the
/// log trusts them (read back from a segment): its shape is checked, its CRC is not verified.
fn open(batch: &[u8]) -> Result<Opened<'_>, BatchError> {
    let header = BatchHeader::parse(batch)?;
    header.check_shape(usize::MAX)?;
    let total = header.total_len();
    let batch = batch.get(..total).ok_or(BatchError::Truncated {
        offset: 0,
        need: total,
        have: batch.len(),
    })?;
    let base_offset = u64::try_from(header.base_offset).map_err(|_| BatchError::BadRecord {
        offset: 0,
        reason: "negative baseOffset",
    })?;
    let (frame, start) = records_frame(&header, batch)?;
    Ok((header, base_offset, frame, start))
}

/// Calls `each` with the offset and key of each record of the whole batch `batch`, in order,
/// until it returns `false`: the cleaner's key map pass, which keeps and copies nothing. The
/// batch is trusted as [`retain`] trusts it.
pub(crate) fn for_each_key(
    batch: &[u8],
    mut each: impl FnMut(u64, Option<&[u8]>) -> bool,
) -> Result<(), BatchError> {
    let (header, base_offset, frame, start) = open(batch)?;
    let mut pos = start;
    for _ in 0..header.records_count {
        let record = parse_record(&frame, pos, |_, _| {})?;
        let key = record.key.clone().map(|r| &frame[r]);
        if !each(base_offset + record.offset_delta as u64, key) {
            break;
        }
        pos = record.end;
    }
    Ok(())
}

/// Keeps the records of the whole batch `batch` for which `keep` says so; see the module doc.
/// The batch's bytes are trusted as far as the log trusts them (read back from a segment): its
/// shape is checked and its records parsed with the usual bounds, but its CRC is not verified.
pub(crate) fn retain(
    batch: &[u8],
    options: RetainOptions,
    mut keep: impl FnMut(RecordView<'_>) -> bool,
) -> Result<(Retained, RetainCounts), BatchError> {
    let (header, base_offset, frame, start) = open(batch)?;

    // Which records stay, as byte ranges of the frame, with their timestamp deltas.
    let mut kept: Vec<(usize, usize, i64)> = Vec::new();
    let mut counts = RetainCounts::default();
    let mut tombstone_kept = false;
    let mut max_kept_timestamp = i64::MIN;
    let mut pos = start;
    for _ in 0..header.records_count {
        let record = parse_record(&frame, pos, |_, _| {})?;
        counts.records_read += 1;
        let view = RecordView {
            offset: base_offset + record.offset_delta as u64,
            key: record.key.clone().map(|r| &frame[r]),
            tombstone: record.value.is_none(),
        };
        if keep(view) {
            tombstone_kept |= view.tombstone;
            max_kept_timestamp =
                max_kept_timestamp.max(header.base_timestamp.wrapping_add(record.timestamp_delta));
            kept.push((pos, record.end, record.timestamp_delta));
        }
        pos = record.end;
    }
    counts.records_kept = kept.len() as u64;

    let new_horizon = options
        .delete_horizon
        .filter(|_| tombstone_kept && header.delete_horizon().is_none());
    if kept.len() as i64 == i64::from(header.records_count) && new_horizon.is_none() {
        return Ok((Retained::Unchanged, counts));
    }
    if kept.is_empty() {
        return Ok(if options.keep_empty {
            (Retained::Rewritten(empty_batch(&header)), counts)
        } else {
            (Retained::Dropped, counts)
        });
    }

    let mut records = BytesMut::with_capacity(frame.len() - start);
    let base_timestamp = new_horizon.unwrap_or(header.base_timestamp);
    for &(from, to, timestamp_delta) in &kept {
        match new_horizon {
            None => records.extend_from_slice(&frame[from..to]),
            Some(horizon) => {
                let timestamp = header.base_timestamp.wrapping_add(timestamp_delta);
                rebase_record(
                    &frame[from..to],
                    timestamp.wrapping_sub(horizon),
                    &mut records,
                )?;
            }
        }
    }
    let codec = header.compression()?;
    let mut out = BytesMut::with_capacity(HEADER_LEN + records.len());
    out.extend_from_slice(&[0u8; HEADER_LEN]);
    compress(codec, &records, &mut out)?;
    let attributes = if new_horizon.is_some() {
        header.attributes | DELETE_HORIZON_BIT
    } else {
        header.attributes
    };
    let max_timestamp = match header.timestamp_type() {
        TimestampType::CreateTime => max_kept_timestamp,
        TimestampType::LogAppendTime => header.max_timestamp,
    };
    let rewritten = BatchHeader {
        attributes,
        base_timestamp,
        max_timestamp,
        records_count: kept.len() as i32,
        ..header
    };
    Ok((Retained::Rewritten(seal(out, rewritten)?), counts))
}

/// A batch with `header`'s offsets, producer fields and flags but no records and no codec.
fn empty_batch(header: &BatchHeader) -> Vec<u8> {
    let empty = BatchHeader {
        attributes: header.attributes & !0x07,
        records_count: 0,
        ..*header
    };
    let mut out = BytesMut::with_capacity(HEADER_LEN);
    out.extend_from_slice(&[0u8; HEADER_LEN]);
    // A header alone always fits the format's lengths.
    seal(out, empty).unwrap_or_default()
}

/// Writes `header` (with the length of `out`) over `out`'s first bytes and fills in the CRC.
fn seal(mut out: BytesMut, header: BatchHeader) -> Result<Vec<u8>, BatchError> {
    let batch_length =
        i32::try_from(out.len() - LOG_OVERHEAD).map_err(|_| BatchError::TooLarge {
            size: out.len(),
            max: LOG_OVERHEAD + i32::MAX as usize,
        })?;
    let header = BatchHeader {
        batch_length,
        crc: 0,
        ..header
    };
    out[..HEADER_LEN].copy_from_slice(&header.to_bytes());
    let crc = crc32c::crc32c(&out[CRC_COVERS_FROM..]);
    out[CRC_AT..CRC_COVERS_FROM].copy_from_slice(&crc.to_be_bytes());
    Ok(out.to_vec())
}

/// Appends `record` (one whole encoded record) to `out` with its timestamp delta replaced by
/// `timestamp_delta`; everything after that field is copied as it is.
fn rebase_record(
    record: &[u8],
    timestamp_delta: i64,
    out: &mut BytesMut,
) -> Result<(), BatchError> {
    let mut pos = 0;
    read_varint(record, &mut pos)?; // length
    let attributes_at = pos;
    pos += 1;
    read_varlong(record, &mut pos)?; // the old timestamp delta
    let rest = record.get(pos..).ok_or(BatchError::Truncated {
        offset: pos,
        need: 1,
        have: 0,
    })?;
    let attributes = record[attributes_at];
    let body = 1 + varlong_len(timestamp_delta) + rest.len();
    put_varlong(out, body as i64);
    out.extend_from_slice(&[attributes]);
    put_varlong(out, timestamp_delta);
    out.extend_from_slice(rest);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::header::patch_base_offset;
    use crate::batch::{records, validate, BatchBuilder, Compression, RecordRef};
    use bytes::Bytes;

    const TS: i64 = 1_700_000_000_000;

    /// Records `k0..k{n}` with values, every third a tombstone, at base offset 100.
    fn batch(codec: Compression, n: usize) -> Vec<u8> {
        let keys: Vec<String> = (0..n).map(|i| format!("k{i}")).collect();
        let mut builder = BatchBuilder::new(codec).with_producer(7, 2, 40);
        for (i, key) in keys.iter().enumerate() {
            builder.push(RecordRef {
                key: Some(key.as_bytes()),
                value: (i % 3 != 2).then_some(&b"value"[..]),
                headers: &[("h", b"x")],
                timestamp: TS + i as i64 * 10,
            });
        }
        let mut bytes = builder.build().expect("build").to_vec();
        patch_base_offset(&mut bytes, 100);
        bytes
    }

    fn decode(batch: &[u8]) -> Vec<(u64, i64, Option<Bytes>, Option<Bytes>)> {
        records(Bytes::copy_from_slice(batch))
            .expect("records")
            .map(|r| {
                let r = r.expect("record");
                (r.offset, r.timestamp, r.key, r.value)
            })
            .collect()
    }

    #[test]
    fn kept_records_keep_their_offsets_timestamps_and_bytes_in_every_codec() {
        for codec in Compression::ALL {
            let original = batch(codec, 9);
            let all = decode(&original);
            let (retained, counts) =
                retain(&original, RetainOptions::default(), |r| r.offset % 2 == 0).expect("retain");
            assert_eq!(counts.records_read, 9);
            assert_eq!(counts.records_kept, 5);
            let Retained::Rewritten(bytes) = retained else {
                panic!("{codec}: {retained:?}")
            };
            let header = BatchHeader::parse_checked(&bytes, usize::MAX).expect("valid CRC");
            let before = BatchHeader::parse(&original).expect("header");
            assert_eq!(header.base_offset, 100);
            assert_eq!(header.last_offset_delta, before.last_offset_delta);
            assert_eq!(header.records_count, 5);
            assert_eq!(header.compression().expect("codec"), codec);
            assert_eq!(
                (
                    header.producer_id,
                    header.producer_epoch,
                    header.base_sequence
                ),
                (7, 2, 40)
            );
            assert_eq!(header.max_timestamp, TS + 80);
            let want: Vec<_> = all.into_iter().filter(|r| r.0 % 2 == 0).collect();
            assert_eq!(decode(&bytes), want, "{codec}");
        }
    }

    #[test]
    fn for_each_key_walks_offsets_and_keys_in_every_codec_and_stops_when_asked() {
        for codec in Compression::ALL {
            let original = batch(codec, 5);
            let mut seen = Vec::new();
            for_each_key(&original, |offset, key| {
                seen.push((offset, key.map(<[u8]>::to_vec)));
                true
            })
            .expect("walk");
            let want: Vec<_> = (0..5u64)
                .map(|i| (100 + i, Some(format!("k{i}").into_bytes())))
                .collect();
            assert_eq!(seen, want, "{codec}");
            let mut first_two = 0;
            for_each_key(&original, |_, _| {
                first_two += 1;
                first_two < 2
            })
            .expect("walk");
            assert_eq!(first_two, 2, "{codec}");
        }
    }

    #[test]
    fn everything_kept_is_unchanged_and_nothing_kept_is_dropped_or_an_empty_header() {
        let original = batch(Compression::Lz4, 4);
        let (all, _) = retain(&original, RetainOptions::default(), |_| true).expect("retain");
        assert_eq!(all, Retained::Unchanged);
        let (none, _) = retain(&original, RetainOptions::default(), |_| false).expect("retain");
        assert_eq!(none, Retained::Dropped);
        let keep_empty = RetainOptions {
            keep_empty: true,
            ..RetainOptions::default()
        };
        let (empty, _) = retain(&original, keep_empty, |_| false).expect("retain");
        let Retained::Rewritten(bytes) = empty else {
            panic!("{empty:?}")
        };
        let header = BatchHeader::parse_checked(&bytes, usize::MAX).expect("valid");
        assert_eq!(bytes.len(), HEADER_LEN);
        assert_eq!((header.records_count, header.last_offset_delta), (0, 3));
        assert_eq!(header.compression().expect("codec"), Compression::None);
        assert_eq!((header.producer_id, header.base_sequence), (7, 40));
        assert!(decode(&bytes).is_empty());
    }

    #[test]
    fn a_kept_tombstone_sets_the_delete_horizon_and_timestamps_read_the_same() {
        for codec in [Compression::None, Compression::Zstd] {
            let original = batch(codec, 6);
            let horizon = TS + 86_400_000;
            let options = RetainOptions {
                delete_horizon: Some(horizon),
                ..RetainOptions::default()
            };
            // Everything kept, but offsets 102 and 105 are tombstones: a horizon is due.
            let (retained, _) = retain(&original, options, |_| true).expect("retain");
            let Retained::Rewritten(bytes) = retained else {
                panic!("{retained:?}")
            };
            let header = BatchHeader::parse_checked(&bytes, usize::MAX).expect("valid");
            assert_eq!(header.delete_horizon(), Some(horizon));
            assert_eq!(decode(&bytes), decode(&original), "{codec}");
            // A second pass keeps the horizon it found rather than setting a new one.
            let later = RetainOptions {
                delete_horizon: Some(horizon + 5),
                ..RetainOptions::default()
            };
            let (again, _) = retain(&bytes, later, |_| true).expect("retain");
            assert_eq!(again, Retained::Unchanged);
            // Without tombstones kept, no horizon.
            let (values_only, _) = retain(&original, options, |r| !r.tombstone).expect("retain");
            let Retained::Rewritten(bytes) = values_only else {
                panic!("{values_only:?}")
            };
            let header = BatchHeader::parse(&bytes).expect("header");
            assert_eq!(header.delete_horizon(), None);
            assert_eq!(header.base_timestamp, TS);
        }
    }

    #[test]
    fn a_retained_batch_validates_except_for_the_density_rule() {
        let original = batch(Compression::Snappy, 5);
        let (retained, _) =
            retain(&original, RetainOptions::default(), |r| r.offset >= 102).expect("retain");
        let Retained::Rewritten(bytes) = retained else {
            panic!("{retained:?}")
        };
        // The tail stays whole, so the batch is as dense as a produced one from its first
        // record on; only its first offsets are gone.
        assert!(matches!(
            validate(&bytes, usize::MAX),
            Err(BatchError::BadCount { .. })
        ));
        assert_eq!(decode(&bytes).len(), 3);
    }
}
