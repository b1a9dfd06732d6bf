//! Kafka RecordBatch v2, as the client writes and reads it: the Producer builds one batch per
//! partition in its accumulator and sends it as a `RawBatch`; the Consumer receives stored
//! batches (`RECORD_FORMAT_RAW_BATCHES`) and decodes one record at a time from the shared
//! [`Bytes`], so a key or value is a slice of what the socket delivered, never a copy.
//!
//! Why a second codec beside the log's (`brook_log::batch`, described in `docs/storage.md`):
//! this crate must not depend on the storage engine (see the crate docs), and it needs only
//! the uncompressed subset. It writes uncompressed batches with no producer id (the broker
//! validates every batch it is sent, CRC included, and assigns the offsets) and reads any
//! valid batch; a compressed batch is reported as [`Item::Compressed`] for the caller to fetch
//! decoded from the server, so decompression stays in one place, the broker. Its output is
//! checked against the log's codec in this crate's tests (`tests/batch.rs`).
//!
//! The format (all integers big-endian; "varint" is zigzag LEB128 as in protobuf's `sint`):
//! a 61-byte header (base offset i64, batch length i32, leader epoch i32, magic i8 = 2,
//! CRC-32C u32 of everything after it, attributes i16, last offset delta i32, base and max
//! timestamps i64, producer id i64, producer epoch i16, base sequence i32, record count i32),
//! then each record: length varint, attributes i8, timestamp delta varint, offset delta
//! varint, key length varint (-1: null) and key, value likewise, header count varint and each
//! header's key and value.

use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::record::{ConsumerRecord, ProducerRecord};

/// Bytes of a batch header before its first record.
pub(crate) const HEADER_BYTES: usize = 61;
const MAGIC: i8 = 2;
/// Where the CRC-covered part starts (the attributes).
const CRC_FROM: usize = 21;
/// The low three attribute bits name the compression codec; 0 is none.
const COMPRESSION_MASK: i16 = 0x07;
/// Attribute bit: a control batch (transaction marker). The server never sends them to a
/// decoding client, but a reader still skips one.
const CONTROL_FLAG: i16 = 0x20;

/// Builds one uncompressed batch, record by record, into one buffer.
#[derive(Debug)]
pub(crate) struct BatchBuilder {
    buf: BytesMut,
    count: i32,
    base_timestamp: i64,
    max_timestamp: i64,
}

impl BatchBuilder {
    /// An empty batch with room for `capacity` bytes of records.
    pub(crate) fn new(capacity: usize) -> Self {
        let mut buf = BytesMut::with_capacity(HEADER_BYTES + capacity);
        buf.put_bytes(0, HEADER_BYTES);
        BatchBuilder {
            buf,
            count: 0,
            base_timestamp: 0,
            max_timestamp: 0,
        }
    }

    /// Records in the batch so far.
    #[cfg(test)]
    pub(crate) fn count(&self) -> usize {
        usize::try_from(self.count).unwrap_or(0)
    }

    /// The most bytes `record` can add to a batch (its deltas at their widest).
    pub(crate) fn record_len_max(record: &ProducerRecord) -> usize {
        const LENGTH_ATTRIBUTES_DELTAS: usize = 5 + 1 + 10 + 5;
        LENGTH_ATTRIBUTES_DELTAS
            + bytes_len(record.key.as_deref())
            + bytes_len(record.value.as_deref())
            + varint_len(record.headers.len() as i64)
            + record
                .headers
                .iter()
                .map(|(k, v)| bytes_len(Some(k.as_bytes())) + bytes_len(Some(v)))
                .sum::<usize>()
    }

    /// Bytes of the batch so far, header included.
    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    /// Appends `record`, stamped `timestamp_ms`.
    pub(crate) fn push(&mut self, record: &ProducerRecord, timestamp_ms: i64) {
        if self.count == 0 {
            self.base_timestamp = timestamp_ms;
            self.max_timestamp = timestamp_ms;
        }
        self.max_timestamp = self.max_timestamp.max(timestamp_ms);
        let timestamp_delta = timestamp_ms.wrapping_sub(self.base_timestamp);
        let offset_delta = i64::from(self.count);
        let key = record.key.as_deref();
        let value = record.value.as_deref();
        let body = 1
            + varint_len(timestamp_delta)
            + varint_len(offset_delta)
            + bytes_len(key)
            + bytes_len(value)
            + varint_len(record.headers.len() as i64)
            + record
                .headers
                .iter()
                .map(|(k, v)| bytes_len(Some(k.as_bytes())) + bytes_len(Some(v)))
                .sum::<usize>();
        let buf = &mut self.buf;
        buf.reserve(body + 5);
        put_varint(buf, body as i64);
        buf.put_i8(0);
        put_varint(buf, timestamp_delta);
        put_varint(buf, offset_delta);
        put_bytes(buf, key);
        put_bytes(buf, value);
        put_varint(buf, record.headers.len() as i64);
        for (k, v) in &record.headers {
            put_bytes(buf, Some(k.as_bytes()));
            put_bytes(buf, Some(v));
        }
        self.count += 1;
    }

    /// The finished batch: header filled in, CRC-32C computed.
    pub(crate) fn finish(self) -> Bytes {
        let BatchBuilder {
            mut buf,
            count,
            base_timestamp,
            max_timestamp,
        } = self;
        let batch_length = i32::try_from(buf.len() - 12).unwrap_or(i32::MAX);
        let mut header = &mut buf[..HEADER_BYTES];
        header.put_i64(0); // base offset: the broker assigns it
        header.put_i32(batch_length);
        header.put_i32(-1); // partition leader epoch
        header.put_i8(MAGIC);
        header.put_u32(0); // CRC, below
        header.put_i16(0); // attributes: no compression, CreateTime, not transactional
        header.put_i32(count.saturating_sub(1)); // last offset delta
        header.put_i64(base_timestamp);
        header.put_i64(max_timestamp);
        header.put_i64(-1); // producer id: not idempotent
        header.put_i16(-1); // producer epoch
        header.put_i32(-1); // base sequence
        header.put_i32(count);
        let crc = crc32c::crc32c(&buf[CRC_FROM..]);
        buf[17..CRC_FROM].copy_from_slice(&crc.to_be_bytes());
        buf.freeze()
    }
}

/// What [`Records::next_item`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Item {
    /// Offset and timestamp made absolute; key and value are slices of the batch bytes.
    Record(ConsumerRecord),
    /// A compressed batch this codec does not open: its records are
    /// `base_offset..=last_offset`.
    Compressed { base_offset: u64, last_offset: u64 },
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
    /// The batch being read: its records' bytes (consumed as records are read) and header.
    current: Option<Current>,
    skip_below: u64,
}

#[derive(Debug)]
struct Current {
    records: Bytes,
    left: i32,
    base_offset: u64,
    base_timestamp: i64,
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

    /// Records below this offset are skipped.
    pub(crate) fn skip_below(&self) -> u64 {
        self.skip_below
    }

    /// Whether nothing is left to read (a batch with no records left counts as read).
    pub(crate) fn is_exhausted(&self) -> bool {
        self.current.as_ref().is_none_or(|c| c.left == 0) && self.next_batch >= self.data.len()
    }

    /// The next record at or above `skip_below`, a compressed batch, or `None` at the end.
    pub(crate) fn next_item(&mut self) -> Result<Option<Item>, String> {
        loop {
            if let Some(current) = self.current.as_mut() {
                if current.left > 0 {
                    current.left -= 1;
                    let record = decode_record(current, &self.topic, self.partition)?;
                    if record.offset >= self.skip_below {
                        return Ok(Some(Item::Record(record)));
                    }
                    continue;
                }
                self.current = None;
            }
            if self.next_batch >= self.data.len() {
                return Ok(None);
            }
            if let Some(item) = self.open_batch()? {
                return Ok(Some(item));
            }
        }
    }

    /// Checks the batch at `next_batch` and makes it current (or reports it compressed).
    fn open_batch(&mut self) -> Result<Option<Item>, String> {
        let at = self.next_batch;
        let rest = &self.data[at..];
        if rest.len() < HEADER_BYTES {
            return Err(format!(
                "a batch at byte {at} is cut short: {} bytes, a header needs {HEADER_BYTES}",
                rest.len()
            ));
        }
        let mut header = &rest[..HEADER_BYTES];
        let base_offset = header.get_i64();
        let length = header.get_i32();
        let _leader_epoch = header.get_i32();
        let magic = header.get_i8();
        let crc = header.get_u32();
        let attributes = header.get_i16();
        let last_offset_delta = header.get_i32();
        let base_timestamp = header.get_i64();
        let _max_timestamp = header.get_i64();
        header.advance(8 + 2 + 4); // producer id, epoch, base sequence
        let count = header.get_i32();
        let at_offset = |what: String| format!("the batch at offset {base_offset}: {what}");
        let total = usize::try_from(length)
            .ok()
            .and_then(|l| l.checked_add(12))
            .filter(|&t| t >= HEADER_BYTES && t <= rest.len())
            .ok_or_else(|| {
                at_offset(format!(
                    "length {length} does not fit the {} bytes left",
                    rest.len()
                ))
            })?;
        if magic != MAGIC {
            return Err(at_offset(format!("magic {magic}, expected {MAGIC}")));
        }
        let actual = crc32c::crc32c(&rest[CRC_FROM..total]);
        if actual != crc {
            return Err(at_offset(format!(
                "CRC-32C {actual:#010x} does not match the header's {crc:#010x}"
            )));
        }
        let base =
            u64::try_from(base_offset).map_err(|_| at_offset("a negative base offset".into()))?;
        let last = u64::try_from(last_offset_delta)
            .ok()
            .and_then(|d| base.checked_add(d))
            .ok_or_else(|| at_offset(format!("last offset delta {last_offset_delta}")))?;
        if count < 0 {
            return Err(at_offset(format!("record count {count}")));
        }
        self.next_batch = at + total;
        if attributes & CONTROL_FLAG != 0 || last < self.skip_below {
            return Ok(None);
        }
        if attributes & COMPRESSION_MASK != 0 {
            return Ok(Some(Item::Compressed {
                base_offset: base,
                last_offset: last,
            }));
        }
        self.current = Some(Current {
            records: self.data.slice(at + HEADER_BYTES..at + total),
            left: count,
            base_offset: base,
            base_timestamp,
        });
        Ok(None)
    }
}

fn decode_record(
    batch: &mut Current,
    topic: &Arc<str>,
    partition: u32,
) -> Result<ConsumerRecord, String> {
    let base = batch.base_offset;
    let fail = |what: &str| format!("the batch at offset {base}: a record's {what} is malformed");
    let length = get_varint(&mut batch.records).ok_or_else(|| fail("length"))?;
    let length = usize::try_from(length)
        .ok()
        .filter(|&l| l <= batch.records.len())
        .ok_or_else(|| fail("length"))?;
    let mut record = batch.records.split_to(length);
    if record.is_empty() {
        return Err(fail("attributes"));
    }
    record.advance(1);
    let timestamp_delta = get_varint(&mut record).ok_or_else(|| fail("timestamp"))?;
    let offset_delta = get_varint(&mut record)
        .and_then(|d| u64::try_from(d).ok())
        .ok_or_else(|| fail("offset delta"))?;
    let key = get_bytes(&mut record).ok_or_else(|| fail("key"))?;
    let value = get_bytes(&mut record).ok_or_else(|| fail("value"))?;
    let header_count = get_varint(&mut record)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| fail("header count"))?;
    // Each header takes at least two bytes, so a count beyond that is damage, not a reason to
    // allocate.
    if header_count > record.len() / 2 {
        return Err(fail("header count"));
    }
    let mut headers = Vec::with_capacity(header_count);
    for _ in 0..header_count {
        let name = get_bytes(&mut record)
            .flatten()
            .ok_or_else(|| fail("header key"))?;
        let name = String::from_utf8(name.to_vec()).map_err(|_| fail("header key (UTF-8)"))?;
        let value = get_bytes(&mut record).ok_or_else(|| fail("header value"))?;
        headers.push((name, value.unwrap_or_default()));
    }
    Ok(ConsumerRecord {
        topic: Arc::clone(topic),
        partition,
        offset: base
            .checked_add(offset_delta)
            .ok_or_else(|| fail("offset"))?,
        timestamp_ms: batch.base_timestamp.wrapping_add(timestamp_delta),
        key,
        value,
        headers,
    })
}

fn varint_len(value: i64) -> usize {
    let zigzag = ((value << 1) ^ (value >> 63)) as u64;
    // 7 bits a byte; 0 still takes one.
    (64 - (zigzag | 1).leading_zeros() as usize).div_ceil(7)
}

fn bytes_len(bytes: Option<&[u8]>) -> usize {
    match bytes {
        Some(b) => varint_len(b.len() as i64) + b.len(),
        None => 1,
    }
}

fn put_varint(buf: &mut BytesMut, value: i64) {
    let mut zigzag = ((value << 1) ^ (value >> 63)) as u64;
    while zigzag >= 0x80 {
        buf.put_u8((zigzag as u8) | 0x80);
        zigzag >>= 7;
    }
    buf.put_u8(zigzag as u8);
}

fn put_bytes(buf: &mut BytesMut, bytes: Option<&[u8]>) {
    match bytes {
        Some(b) => {
            put_varint(buf, b.len() as i64);
            buf.put_slice(b);
        }
        None => put_varint(buf, -1),
    }
}

fn get_varint(buf: &mut Bytes) -> Option<i64> {
    let mut value = 0u64;
    for shift in (0..70).step_by(7) {
        let byte = *buf.first()?;
        buf.advance(1);
        value |= u64::from(byte & 0x7f).checked_shl(shift)?;
        if byte & 0x80 == 0 {
            return Some(((value >> 1) as i64) ^ -((value & 1) as i64));
        }
    }
    None
}

/// A length-prefixed byte string: `Some(None)` for a null (-1), `None` when malformed.
fn get_bytes(buf: &mut Bytes) -> Option<Option<Bytes>> {
    let length = get_varint(buf)?;
    if length == -1 {
        return Some(None);
    }
    let length = usize::try_from(length).ok().filter(|&l| l <= buf.len())?;
    Some(Some(buf.split_to(length)))
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

    fn items(data: Bytes, skip_below: u64) -> Vec<Item> {
        let mut records = Records::new("t".into(), 0, data, skip_below);
        let mut out = Vec::new();
        while let Some(item) = records.next_item().expect("valid") {
            out.push(item);
        }
        assert!(records.is_exhausted());
        out
    }

    #[test]
    fn varints_round_trip_at_every_width() {
        for value in [
            0,
            1,
            -1,
            63,
            -64,
            64,
            300,
            -300,
            i64::from(i32::MAX),
            i64::MIN,
            i64::MAX,
        ] {
            let mut buf = BytesMut::new();
            put_varint(&mut buf, value);
            assert_eq!(buf.len(), varint_len(value), "{value}");
            assert_eq!(get_varint(&mut buf.freeze()), Some(value));
        }
    }

    #[test]
    fn a_built_batch_reads_back_record_for_record() {
        let mut builder = BatchBuilder::new(0);
        builder.push(&record(Some("k"), Some("v1")), 1_000);
        builder.push(&record(None, None).with_header("h", "x"), 990);
        builder.push(&record(Some(""), Some("")), 1_200);
        assert_eq!(builder.count(), 3);
        let data = builder.finish();
        let got = items(data, 0);
        let Item::Record(first) = &got[0] else {
            panic!("a record")
        };
        assert_eq!((first.offset, first.timestamp_ms), (0, 1_000));
        assert_eq!(first.key.as_deref(), Some(&b"k"[..]));
        let Item::Record(second) = &got[1] else {
            panic!("a record")
        };
        assert_eq!((second.offset, second.timestamp_ms), (1, 990));
        assert_eq!((second.key.clone(), second.value.clone()), (None, None));
        assert_eq!(second.headers, vec![("h".to_owned(), Bytes::from("x"))]);
        let Item::Record(third) = &got[2] else {
            panic!("a record")
        };
        assert_eq!(third.key.as_deref(), Some(&b""[..]));
        assert_eq!(got.len(), 3);
    }

    #[test]
    fn records_below_the_start_are_skipped() {
        let mut builder = BatchBuilder::new(0);
        for v in ["a", "b", "c"] {
            builder.push(&record(None, Some(v)), 1);
        }
        let got = items(builder.finish(), 2);
        assert_eq!(got.len(), 1);
        assert!(matches!(&got[0], Item::Record(r) if r.offset == 2));
    }

    #[test]
    fn damage_is_an_error_never_a_panic() {
        let mut builder = BatchBuilder::new(0);
        builder.push(&record(Some("key"), Some("value")), 1);
        let good = builder.finish();
        // Every truncation and every flipped byte is refused or read safely.
        for cut in 1..good.len() {
            let mut records = Records::new("t".into(), 0, good.slice(..cut), 0);
            assert!(records.next_item().is_err(), "cut at {cut}");
        }
        for at in 0..good.len() {
            let mut bad = good.to_vec();
            bad[at] ^= 0x40;
            let mut records = Records::new("t".into(), 0, Bytes::from(bad), 0);
            while let Ok(Some(_)) = records.next_item() {}
        }
        let mut bad = good.to_vec();
        bad[HEADER_BYTES + 3] ^= 0x01;
        let error = Records::new("t".into(), 0, Bytes::from(bad), 0)
            .next_item()
            .unwrap_err();
        assert!(error.contains("CRC-32C"), "{error}");
    }
}
