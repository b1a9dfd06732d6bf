//! The records inside a batch: the full check a produced batch must pass before the log takes
//! it ([`validate`]), and an iterator that decodes them ([`records`]) for the doors that
//! re-encode records (gRPC, HTTP). The Kafka door never decodes records; it serves the bytes.
//!
//! Every varint, length and count is checked against the bytes present before it is used, so a
//! corrupt or hostile batch yields an error, never a panic or an allocation it cannot back.
//! Compressed records are inflated into one buffer of at most
//! [`decompressed_bytes_max`]`(batch size)` bytes (64 times the batch, at least 16 MiB).
//!
//! Error positions (`offset` in [`BatchError::Truncated`] and [`BatchError::BadRecord`]) are
//! byte positions in the batch for an uncompressed batch, and in the decompressed records
//! section for a compressed one.

use std::borrow::Cow;
use std::ops::Range;

use bytes::Bytes;

use super::compression::{decompress, decompressed_bytes_max};
use super::header::{BatchHeader, HEADER_LEN, TIMESTAMP_TYPE_BIT};
use super::varint::{read_varint, read_varlong};
use super::{Compression, TimestampType};
use crate::error::BatchError;

/// One decoded record, owning its bytes (slices of the batch or of its decompressed records).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// `baseOffset + offsetDelta`.
    pub offset: u64,
    /// The record's create time, or the batch's `maxTimestamp` in a log-append-time batch.
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    /// Keys are decoded as UTF-8, replacing invalid sequences as Kafka's Java client does. A
    /// null header value (length -1) reads as empty.
    pub headers: Vec<(String, Bytes)>,
}

/// Checks a batch a producer sent, completely, before the log appends it.
///
/// Beyond [`BatchHeader::parse_checked`] (length, size limit, magic, counts, CRC-32C): the
/// batch is not a control batch ([`BatchError::ControlBatch`]: only the broker writes
/// transaction markers, through `PartitionLog::append_marker`); `batch` holds exactly one batch; `recordsCount` is positive and equals `lastOffsetDelta + 1` (Kafka's
/// rule, which keeps offsets dense); every record parses and fills its length exactly; there
/// are exactly `recordsCount` records and no bytes after them; offset deltas strictly increase
/// and the last is `lastOffsetDelta`. Compressed records are inflated to check them (bounded,
/// see the module doc).
///
/// The header returned is the one the log stores, which differs from the producer's where
/// Kafka's broker overwrites a field rather than refusing the batch: `maxTimestamp` is the
/// greatest record timestamp and the timestamp type is create time (a producer may leave
/// `maxTimestamp` at -1; Sarama does). [`super::restamp`] writes those fields into the bytes.
pub fn validate(batch: &[u8], max_batch_bytes: usize) -> Result<BatchHeader, BatchError> {
    validate_records(batch, max_batch_bytes, false)
}

/// [`validate`], and every record must have a key ([`BatchError::MissingKey`], naming the batch
/// index of every keyless record, otherwise): the
/// rule of a compacted topic, whose cleaner keeps the latest record per key. (Control batches,
/// whose records carry keys of their own, are refused by both: only the broker writes them.)
pub fn validate_keyed(batch: &[u8], max_batch_bytes: usize) -> Result<BatchHeader, BatchError> {
    validate_records(batch, max_batch_bytes, true)
}

fn validate_records(
    batch: &[u8],
    max_batch_bytes: usize,
    require_keys: bool,
) -> Result<BatchHeader, BatchError> {
    let header = BatchHeader::parse_checked(batch, max_batch_bytes)?;
    if header.is_control() {
        // Transaction markers are the broker's own (`PartitionLog::append_marker`); one a client
        // wrote would stop Kafka consumers at its offset.
        return Err(BatchError::ControlBatch);
    }
    let total = header.total_len();
    if batch.len() != total {
        return Err(BatchError::BadRecord {
            offset: total,
            reason: "bytes after the end of the batch",
        });
    }
    if header.records_count == 0 || header.last_offset_delta != header.records_count - 1 {
        return Err(BatchError::BadCount {
            records_count: header.records_count,
            last_offset_delta: header.last_offset_delta,
        });
    }
    let (frame, start) = records_frame(&header, batch)?;
    let mut max_timestamp = i64::MIN;
    let mut pos = start;
    let mut last_delta: i64 = -1;
    // Kafka names every keyless record, not just the first: keep looking once one is found.
    let mut keyless = Vec::new();
    for index in 0..header.records_count {
        let record = parse_record(&frame, pos, |_, _| {})?;
        if i64::from(record.offset_delta) <= last_delta {
            return Err(BatchError::BadRecord {
                offset: pos,
                reason: "offset deltas do not strictly increase",
            });
        }
        max_timestamp =
            max_timestamp.max(header.base_timestamp.wrapping_add(record.timestamp_delta));
        if require_keys && record.key.is_none() {
            keyless.push(index);
        }
        last_delta = i64::from(record.offset_delta);
        pos = record.end;
    }
    if pos != frame.len() {
        return Err(BatchError::BadRecord {
            offset: pos,
            reason: "bytes after the last record",
        });
    }
    if last_delta != i64::from(header.last_offset_delta) {
        return Err(BatchError::BadCount {
            records_count: header.records_count,
            last_offset_delta: header.last_offset_delta,
        });
    }
    // A well-formed batch Kafka's rules refuse: reported after the framing checks, which name
    // a damaged batch rather than its records.
    if !keyless.is_empty() {
        return Err(BatchError::MissingKey { indexes: keyless });
    }
    Ok(BatchHeader {
        max_timestamp,
        attributes: header.attributes & !TIMESTAMP_TYPE_BIT,
        ..header
    })
}

/// Decodes the records of the batch at the start of `batch` (bytes after it are ignored).
///
/// The header's shape is checked and compressed records are inflated here; each record is then
/// decoded as the iterator is advanced. The CRC is not checked: these bytes are read back from
/// the log, which checked it on append and on recovery; use [`validate`] for untrusted input.
pub fn records(batch: Bytes) -> Result<Records, BatchError> {
    let header = BatchHeader::parse(&batch)?;
    header.check_shape(usize::MAX)?;
    let total = header.total_len();
    if batch.len() < total {
        return Err(BatchError::Truncated {
            offset: 0,
            need: total,
            have: batch.len(),
        });
    }
    let base_offset = u64::try_from(header.base_offset).map_err(|_| BatchError::BadRecord {
        offset: 0,
        reason: "negative baseOffset",
    })?;
    let (frame, pos) = match records_frame(&header, &batch[..total])? {
        (Cow::Owned(inflated), pos) => (Bytes::from(inflated), pos),
        (Cow::Borrowed(_), pos) => (batch.slice(..total), pos),
    };
    Ok(Records {
        header,
        base_offset,
        frame,
        pos,
        left: header.records_count as u32,
        failed: false,
    })
}

/// Iterator over the records of one batch; see [`records`]. After an error it ends.
#[derive(Debug, Clone)]
pub struct Records {
    header: BatchHeader,
    base_offset: u64,
    /// The uncompressed batch, or the inflated records of a compressed one.
    frame: Bytes,
    pos: usize,
    left: u32,
    failed: bool,
}

impl Records {
    /// The header of the batch being decoded.
    pub fn header(&self) -> &BatchHeader {
        &self.header
    }

    /// Records not yet decoded.
    pub fn remaining(&self) -> u32 {
        self.left
    }

    fn decode_next(&mut self) -> Result<Record, BatchError> {
        let frame = &self.frame;
        let mut headers = Vec::new();
        let raw = parse_record(frame, self.pos, |key, value| {
            let key = String::from_utf8_lossy(&frame[key]).into_owned();
            let value = value.map_or_else(Bytes::new, |v| frame.slice(v));
            headers.push((key, value));
        })?;
        self.pos = raw.end;
        let timestamp = match self.header.timestamp_type() {
            TimestampType::CreateTime => {
                self.header.base_timestamp.wrapping_add(raw.timestamp_delta)
            }
            TimestampType::LogAppendTime => self.header.max_timestamp,
        };
        Ok(Record {
            // A non-negative i64 plus a non-negative i32 fits in a u64.
            offset: self.base_offset + raw.offset_delta as u64,
            timestamp,
            key: raw.key.map(|r| frame.slice(r)),
            value: raw.value.map(|r| frame.slice(r)),
            headers,
        })
    }
}

impl Iterator for Records {
    type Item = Result<Record, BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        if self.left == 0 {
            if self.pos == self.frame.len() {
                return None;
            }
            self.failed = true;
            return Some(Err(BatchError::BadRecord {
                offset: self.pos,
                reason: "bytes after the last record",
            }));
        }
        self.left -= 1;
        let next = self.decode_next();
        self.failed = next.is_err();
        Some(next)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.failed {
            (0, Some(0))
        } else {
            (0, Some(self.left as usize + 1))
        }
    }
}

/// The bytes the records are parsed from and where they start: the batch itself past its
/// header, or the inflated records section of a compressed batch.
pub fn records_frame<'a>(
    header: &BatchHeader,
    batch: &'a [u8],
) -> Result<(Cow<'a, [u8]>, usize), BatchError> {
    match header.compression()? {
        Compression::None => Ok((Cow::Borrowed(batch), HEADER_LEN)),
        codec => {
            let inflated = decompress(
                codec,
                &batch[HEADER_LEN..],
                decompressed_bytes_max(batch.len()),
            )?;
            Ok((Cow::Owned(inflated), 0))
        }
    }
}

/// One record's fields, as positions in the frame it was parsed from.
#[derive(Debug)]
pub struct RawRecord {
    pub timestamp_delta: i64,
    pub offset_delta: i32,
    pub key: Option<Range<usize>>,
    pub value: Option<Range<usize>>,
    /// Position just past the record.
    pub end: usize,
}

/// Parses the record at `at` in `frame`, handing each header's key and value ranges to
/// `on_header`. Every field must lie within the record's declared length, and fill it exactly.
pub fn parse_record(
    frame: &[u8],
    at: usize,
    mut on_header: impl FnMut(Range<usize>, Option<Range<usize>>),
) -> Result<RawRecord, BatchError> {
    let mut pos = at;
    let length = read_varint(frame, &mut pos)?;
    let length = usize::try_from(length).map_err(|_| BatchError::BadRecord {
        offset: at,
        reason: "negative record length",
    })?;
    let end = pos + length;
    if end > frame.len() {
        return Err(BatchError::Truncated {
            offset: at,
            need: end - at,
            have: frame.len() - at,
        });
    }
    // Parsing within the record's own bytes keeps a bad inner length from reading the next one.
    let record = &frame[..end];
    if pos == end {
        return Err(BatchError::Truncated {
            offset: pos,
            need: 1,
            have: 0,
        });
    }
    pos += 1; // attributes: unused in v2, and ignored as Kafka ignores them
    let timestamp_delta = read_varlong(record, &mut pos)?;
    let offset_at = pos;
    let offset_delta = read_varint(record, &mut pos)?;
    if offset_delta < 0 {
        return Err(BatchError::BadRecord {
            offset: offset_at,
            reason: "negative offset delta",
        });
    }
    let key = read_nullable(record, &mut pos)?;
    let value = read_nullable(record, &mut pos)?;
    let count_at = pos;
    let header_count = read_varint(record, &mut pos)?;
    if header_count < 0 {
        return Err(BatchError::BadRecord {
            offset: count_at,
            reason: "negative header count",
        });
    }
    for _ in 0..header_count {
        let key_at = pos;
        let key = read_nullable(record, &mut pos)?.ok_or(BatchError::BadRecord {
            offset: key_at,
            reason: "null header key",
        })?;
        let value = read_nullable(record, &mut pos)?;
        on_header(key, value);
    }
    if pos != end {
        return Err(BatchError::BadRecord {
            offset: pos,
            reason: "record length does not match its fields",
        });
    }
    Ok(RawRecord {
        timestamp_delta,
        offset_delta,
        key,
        value,
        end,
    })
}

/// Reads a varint length and that many bytes; length -1 is null.
fn read_nullable(record: &[u8], pos: &mut usize) -> Result<Option<Range<usize>>, BatchError> {
    let length_at = *pos;
    let length = read_varint(record, pos)?;
    if length == -1 {
        return Ok(None);
    }
    let length = usize::try_from(length).map_err(|_| BatchError::BadRecord {
        offset: length_at,
        reason: "length below -1",
    })?;
    let start = *pos;
    let have = record.len() - start;
    if length > have {
        return Err(BatchError::Truncated {
            offset: start,
            need: length,
            have,
        });
    }
    *pos = start + length;
    Ok(Some(start..start + length))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::{BatchBuilder, RecordRef};
    use crate::header::{patch_base_offset, ATTRIBUTES_AT, CRC_AT, CRC_COVERS_FROM};
    use proptest::prelude::*;

    /// An owned record for tests to generate and compare.
    #[derive(Debug, Clone, PartialEq)]
    struct Owned {
        key: Option<Vec<u8>>,
        value: Option<Vec<u8>>,
        headers: Vec<(String, Vec<u8>)>,
        timestamp: i64,
    }

    fn build(codec: Compression, records: &[Owned]) -> Vec<u8> {
        let mut builder = BatchBuilder::new(codec);
        for r in records {
            let headers: Vec<(&str, &[u8])> = r
                .headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_slice()))
                .collect();
            builder.push(RecordRef {
                key: r.key.as_deref(),
                value: r.value.as_deref(),
                headers: &headers,
                timestamp: r.timestamp,
            });
        }
        builder.build().expect("build").to_vec()
    }

    fn decode(batch: &[u8]) -> Result<Vec<Record>, BatchError> {
        records(Bytes::copy_from_slice(batch))?.collect()
    }

    fn sample(n: usize) -> Vec<Owned> {
        (0..n)
            .map(|i| Owned {
                key: (i % 3 != 0).then(|| format!("key-{i}").into_bytes()),
                value: (i % 5 != 4).then(|| vec![i as u8; i * 13 % 200]),
                headers: (0..i % 3)
                    .map(|h| (format!("h{h}"), vec![h as u8; h]))
                    .collect(),
                timestamp: 1_700_000_000_000 + (i as i64 * 37 % 11) - 5,
            })
            .collect()
    }

    /// Recomputes the CRC so a deliberately damaged batch reaches the record checks.
    fn fix_crc(batch: &mut [u8]) {
        let crc = crc32c::crc32c(&batch[CRC_COVERS_FROM..]);
        batch[CRC_AT..CRC_COVERS_FROM].copy_from_slice(&crc.to_be_bytes());
    }

    /// Start positions of the records of an uncompressed batch.
    fn record_starts(batch: &[u8]) -> Vec<usize> {
        let mut starts = vec![];
        let mut pos = HEADER_LEN;
        while pos < batch.len() {
            starts.push(pos);
            pos = parse_record(batch, pos, |_, _| {}).expect("record").end;
        }
        starts
    }

    fn assert_decodes_to(batch: &[u8], want: &[Owned], base_offset: u64) {
        let got = decode(batch).expect("decode");
        assert_eq!(got.len(), want.len());
        for (i, (got, want)) in got.iter().zip(want).enumerate() {
            assert_eq!(got.offset, base_offset + i as u64);
            assert_eq!(got.timestamp, want.timestamp);
            assert_eq!(got.key.as_deref(), want.key.as_deref());
            assert_eq!(got.value.as_deref(), want.value.as_deref());
            let headers: Vec<(String, Vec<u8>)> = got
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.to_vec()))
                .collect();
            assert_eq!(headers, want.headers);
        }
    }

    #[test]
    fn built_batches_validate_and_decode_with_every_codec() {
        let want = sample(300);
        for codec in Compression::ALL {
            let mut batch = build(codec, &want);
            let header = validate(&batch, usize::MAX).expect("valid");
            assert_eq!(header.records_count, 300);
            assert_eq!(header.compression(), Ok(codec));
            patch_base_offset(&mut batch, 1_000);
            validate(&batch, usize::MAX).expect("still valid: baseOffset is outside the CRC");
            assert_decodes_to(&batch, &want, 1_000);
            assert_eq!(
                records(Bytes::from(batch)).expect("records").header(),
                &BatchHeader {
                    base_offset: 1_000,
                    ..header
                }
            );
        }
    }

    #[test]
    fn uncompressed_records_share_the_batch_buffer() {
        let batch = Bytes::from(build(Compression::None, &sample(4)));
        let record = records(batch.clone())
            .expect("records")
            .nth(1)
            .expect("one")
            .expect("ok");
        let key = record.key.expect("key");
        let inside = batch.as_ptr_range().contains(&key.as_ptr());
        assert!(inside, "key is a slice of the batch, not a copy");
    }

    #[test]
    fn log_append_time_batches_read_max_timestamp() {
        let mut batch = build(Compression::None, &sample(3));
        batch[ATTRIBUTES_AT + 1] |= 0x08;
        fix_crc(&mut batch);
        let header = validate(&batch, usize::MAX).expect("valid");
        assert!(decode(&batch)
            .expect("decode")
            .iter()
            .all(|r| r.timestamp == header.max_timestamp));
    }

    #[test]
    fn validate_enforces_the_size_limit() {
        let batch = build(Compression::None, &sample(10));
        assert_eq!(
            validate(&batch, batch.len() - 1),
            Err(BatchError::TooLarge {
                size: batch.len(),
                max: batch.len() - 1
            })
        );
        assert!(validate(&batch, batch.len()).is_ok());
    }

    #[test]
    fn validate_refuses_control_batches_transactional_or_not() {
        for control in [0x20, 0x30] {
            let mut batch = build(Compression::None, &sample(1));
            batch[ATTRIBUTES_AT + 1] |= control;
            fix_crc(&mut batch);
            assert_eq!(
                validate(&batch, usize::MAX),
                Err(BatchError::ControlBatch),
                "attributes {control:#x}"
            );
        }
    }

    #[test]
    fn validate_refuses_bytes_after_the_batch() {
        let mut batch = build(Compression::None, &sample(2));
        batch.push(0);
        assert!(matches!(
            validate(&batch, usize::MAX),
            Err(BatchError::BadRecord { .. })
        ));
    }

    #[test]
    fn validate_refuses_counts_that_disagree_with_the_records() {
        let batch = build(Compression::None, &sample(3));
        let edit_header = |count: i32, last_delta: i32| {
            let mut header = BatchHeader::parse(&batch).expect("header");
            header.records_count = count;
            header.last_offset_delta = last_delta;
            let mut bad = batch.clone();
            bad[..HEADER_LEN].copy_from_slice(&header.to_bytes());
            fix_crc(&mut bad);
            validate(&bad, usize::MAX)
        };
        // Fewer declared than present: bytes left over.
        assert!(matches!(
            edit_header(2, 1),
            Err(BatchError::BadRecord { .. })
        ));
        // More declared than present.
        assert!(matches!(
            edit_header(4, 3),
            Err(BatchError::Truncated { .. })
        ));
        // Count and last offset delta that disagree (Kafka's dense-offset rule).
        assert!(matches!(
            edit_header(3, 5),
            Err(BatchError::BadCount { .. })
        ));
        assert!(matches!(
            edit_header(0, 0),
            Err(BatchError::BadCount { .. })
        ));
    }

    #[test]
    fn validate_refuses_offset_deltas_out_of_order() {
        let batch = build(Compression::None, &sample(3));
        let starts = record_starts(&batch);
        // Each sample record: length varint (1-2 bytes), attributes, timestamp delta (1 byte),
        // offset delta. Find the offset delta by position after the varlong length.
        let mut bad = batch.clone();
        let mut pos = starts[2];
        read_varint(&bad, &mut pos).expect("length");
        pos += 1;
        read_varlong(&bad, &mut pos).expect("ts");
        assert_eq!(bad[pos], 4, "zig-zag of offset delta 2");
        bad[pos] = 2; // offset delta 1, same as the record before it
        fix_crc(&mut bad);
        assert_eq!(
            validate(&bad, usize::MAX),
            Err(BatchError::BadRecord {
                offset: starts[2],
                reason: "offset deltas do not strictly increase"
            })
        );
    }

    #[test]
    fn validate_reports_the_max_timestamp_kafka_would_store_and_restamp_writes_it() {
        for codec in Compression::ALL {
            let batch = build(codec, &sample(3));
            let built = BatchHeader::parse(&batch).expect("header");
            for (max_timestamp, log_append_time) in [
                (-1, false),
                (built.max_timestamp - 1, false),
                (built.max_timestamp + 5, true),
            ] {
                let mut header = built;
                header.max_timestamp = max_timestamp;
                if log_append_time {
                    header.attributes |= TIMESTAMP_TYPE_BIT;
                }
                let mut sent = batch.clone();
                sent[..HEADER_LEN].copy_from_slice(&header.to_bytes());
                fix_crc(&mut sent);
                let stored = validate(&sent, usize::MAX).expect("accepted, as Kafka does");
                assert_eq!(stored.max_timestamp, built.max_timestamp, "{codec}");
                assert_eq!(stored.timestamp_type(), TimestampType::CreateTime);
                // The same rewrite on a copy of the header, the records only read.
                let mut head: [u8; HEADER_LEN] = sent[..HEADER_LEN].try_into().expect("header");
                let before = sent.clone();
                assert!(super::super::restamp_header(
                    &mut head,
                    &sent[HEADER_LEN..],
                    &stored
                ));
                assert_eq!(sent, before, "the batch itself untouched");
                assert!(
                    super::super::restamp(&mut sent, &stored),
                    "the CRC was recomputed"
                );
                assert_eq!(
                    &sent[..HEADER_LEN],
                    &head[..],
                    "the copy as restamped in place"
                );
                let restamped = BatchHeader::parse_checked(&sent, usize::MAX).expect("valid");
                assert_eq!(
                    restamped,
                    BatchHeader {
                        partition_leader_epoch: -1,
                        crc: restamped.crc,
                        ..stored
                    }
                );
                assert_eq!(
                    &sent[HEADER_LEN..],
                    &batch[HEADER_LEN..],
                    "records untouched"
                );
            }
            let mut untouched = batch.clone();
            let stored = validate(&untouched, usize::MAX).expect("valid");
            assert!(
                !super::super::restamp(&mut untouched, &stored),
                "nothing to rewrite"
            );
        }
    }

    #[test]
    fn every_truncation_of_every_codec_is_an_error() {
        for codec in Compression::ALL {
            let batch = build(codec, &sample(20));
            for cut in 0..batch.len() {
                let part = &batch[..cut];
                assert!(validate(part, usize::MAX).is_err(), "{codec} cut at {cut}");
                assert!(decode(part).is_err(), "{codec} cut at {cut}");
            }
        }
    }

    #[test]
    fn a_truncated_record_section_with_a_fixed_length_is_an_error() {
        // Cut records but make the header agree with the shorter length and CRC, so only the
        // record parser can notice.
        let batch = build(Compression::None, &sample(5));
        for cut in HEADER_LEN..batch.len() {
            let mut bad = batch[..cut].to_vec();
            let mut header = BatchHeader::parse(&bad).expect("header");
            header.batch_length = (cut - 12) as i32;
            bad[..HEADER_LEN].copy_from_slice(&header.to_bytes());
            fix_crc(&mut bad);
            assert!(validate(&bad, usize::MAX).is_err(), "cut at {cut}");
            assert!(decode(&bad).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn every_flipped_bit_is_caught_by_validate() {
        for codec in Compression::ALL {
            let batch = build(codec, &sample(5));
            // Bits of baseOffset (0..8) and partitionLeaderEpoch (12..16) are outside the CRC
            // by design.
            for byte in (8..12).chain(16..batch.len()) {
                for bit in 0..8 {
                    let mut bad = batch.clone();
                    bad[byte] ^= 1 << bit;
                    assert!(
                        validate(&bad, usize::MAX).is_err(),
                        "{codec} byte {byte} bit {bit}"
                    );
                }
            }
        }
    }

    #[test]
    fn corrupt_records_with_good_crcs_never_panic() {
        // Garble record bytes, then re-sign the batch, so only the parser stands in the way.
        let batch = build(Compression::None, &sample(8));
        for byte in HEADER_LEN..batch.len() {
            for value in [0x00, 0x01, 0x7f, 0x80, 0xff] {
                let mut bad = batch.clone();
                bad[byte] = value;
                fix_crc(&mut bad);
                let _ = validate(&bad, usize::MAX);
                let _ = decode(&bad);
            }
        }
    }

    #[test]
    fn records_refuses_a_negative_base_offset() {
        let mut batch = build(Compression::None, &sample(1));
        patch_base_offset(&mut batch, -1);
        assert!(matches!(
            records(Bytes::from(batch)),
            Err(BatchError::BadRecord {
                reason: "negative baseOffset",
                ..
            })
        ));
    }

    #[test]
    fn header_keys_that_are_not_utf8_are_replaced_and_null_header_values_read_empty() {
        // One record with header key 0xff and a null header value, assembled by hand.
        let body: &[u8] = &[0x00, 0x00, 0x00, 0x01, 0x01, 0x02, 0x02, 0xff, 0x01];
        let mut batch = build(
            Compression::None,
            &[Owned {
                key: None,
                value: None,
                headers: vec![],
                timestamp: 0,
            }],
        );
        batch.truncate(HEADER_LEN);
        batch.push(body.len() as u8 * 2);
        batch.extend_from_slice(body);
        let mut header = BatchHeader::parse(&batch).expect("header");
        header.batch_length = (batch.len() - 12) as i32;
        batch[..HEADER_LEN].copy_from_slice(&header.to_bytes());
        fix_crc(&mut batch);
        validate(&batch, usize::MAX).expect("valid");
        let record = decode(&batch).expect("decode").remove(0);
        assert_eq!(record.headers, vec![("\u{fffd}".to_string(), Bytes::new())]);
    }

    fn owned_record() -> impl Strategy<Value = Owned> {
        (
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300)),
            proptest::collection::vec(
                (
                    "[a-z\u{e9}]{0,8}",
                    proptest::collection::vec(any::<u8>(), 0..20),
                ),
                0..4,
            ),
            any::<i64>(),
        )
            .prop_map(|(key, value, headers, timestamp)| Owned {
                key,
                value,
                headers,
                timestamp,
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn builder_and_iterator_round_trip(
            records in proptest::collection::vec(owned_record(), 1..40),
            codec in proptest::sample::select(Compression::ALL.to_vec()),
            base in 0u64..(1 << 40),
        ) {
            let mut batch = build(codec, &records);
            let header = validate(&batch, usize::MAX)?;
            prop_assert_eq!(header.max_timestamp, records.iter().map(|r| r.timestamp).max().unwrap_or_default());
            patch_base_offset(&mut batch, base as i64);
            assert_decodes_to(&batch, &records, base);
        }
    }
}
