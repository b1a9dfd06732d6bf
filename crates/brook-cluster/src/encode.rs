//! Records read from the cluster, as the broker's types carry them: RecordBatch v2 bytes.
//!
//! librdkafka hands out records one by one, decoded; the broker's `Fetched` and
//! `PartitionBatches` carry whole batches, which every door decodes with brook-log's reader.
//! So the records of one partition are encoded back into batches here, uncompressed, one batch
//! per run of consecutive offsets (a gap, left by compaction or a transaction marker, starts a
//! new batch, so every record keeps its offset). Done once per read, on the gateway's side of
//! the network; the local log's path never comes here.

use brook_broker::{BrokerError, ConsumerRecord, Result};
use brook_log::batch::{patch_base_offset, BatchBuilder, Compression, RecordRef};
use bytes::{Bytes, BytesMut};
use rdkafka::message::{BorrowedMessage, Headers, Message};

/// A record of `message`, owned.
pub(crate) fn record(message: &BorrowedMessage<'_>) -> ConsumerRecord {
    let headers = message.headers().map_or_else(Vec::new, |headers| {
        headers
            .iter()
            .map(|h| {
                let value = h.value.map_or_else(Bytes::new, Bytes::copy_from_slice);
                (h.key.to_owned(), value)
            })
            .collect()
    });
    ConsumerRecord {
        topic: message.topic().into(),
        partition: u32::try_from(message.partition()).unwrap_or_default(),
        offset: u64::try_from(message.offset()).unwrap_or_default(),
        timestamp: message.timestamp().to_millis().unwrap_or(-1),
        key: message.key().map(Bytes::copy_from_slice),
        value: message.payload().map(Bytes::copy_from_slice),
        headers,
    }
}

/// The bytes `record` takes in memory, roughly: what a read's size limit counts.
pub(crate) fn size(record: &ConsumerRecord) -> usize {
    let len = |b: &Option<Bytes>| b.as_ref().map_or(0, Bytes::len);
    32 + len(&record.key)
        + len(&record.value)
        + record
            .headers
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum::<usize>()
}

/// `records` (one partition's, in offset order) as batches: one per run of consecutive
/// offsets, each with its base offset.
pub(crate) fn batches(records: &[ConsumerRecord]) -> Result<Bytes> {
    let mut out = BytesMut::new();
    let mut run_start = 0;
    for i in 1..=records.len() {
        let run_ends = i == records.len() || records[i].offset != records[i - 1].offset + 1;
        if run_ends {
            out.extend_from_slice(&batch(&records[run_start..i])?);
            run_start = i;
        }
    }
    Ok(out.freeze())
}

/// One batch of `run`, records at consecutive offsets from the first one's.
fn batch(run: &[ConsumerRecord]) -> Result<BytesMut> {
    let mut builder = BatchBuilder::new(Compression::None);
    for record in run {
        let headers: Vec<(&str, &[u8])> = record
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_ref()))
            .collect();
        builder.push(RecordRef {
            key: record.key.as_deref(),
            value: record.value.as_deref(),
            headers: &headers,
            timestamp: record.timestamp,
        });
    }
    let first = run.first().map_or(0, |r| r.offset);
    let mut batch = builder
        .build()
        .map_err(|source| BrokerError::InvalidBatch {
            topic: run
                .first()
                .map_or_else(String::new, |r| r.topic.to_string()),
            partition: run.first().map_or(0, |r| r.partition),
            source,
        })?;
    patch_base_offset(&mut batch, i64::try_from(first).unwrap_or(i64::MAX));
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use brook_log::batch::{records, Batches};

    use super::*;

    fn at(offset: u64, value: &str) -> ConsumerRecord {
        ConsumerRecord {
            topic: Arc::from("t"),
            partition: 1,
            offset,
            timestamp: 1000 + offset as i64,
            key: offset.is_multiple_of(2).then(|| Bytes::from_static(b"k")),
            value: Some(Bytes::copy_from_slice(value.as_bytes())),
            headers: vec![("h".into(), Bytes::from_static(b"v"))],
        }
    }

    #[test]
    fn every_record_keeps_its_offset_key_value_headers_and_timestamp_across_gaps() {
        let input = vec![at(5, "a"), at(6, "b"), at(9, "c"), at(10, "d"), at(12, "e")];
        let bytes = batches(&input).expect("encoded");
        let mut decoded = Vec::new();
        let mut count = 0;
        for batch in Batches::new(&bytes) {
            let batch = batch.expect("a whole batch");
            count += 1;
            let one = bytes.slice(batch.position..batch.position + batch.bytes.len());
            decoded.extend(records(one).expect("valid").map(|r| r.expect("record")));
        }
        assert_eq!(count, 3, "one batch per run of consecutive offsets");
        assert_eq!(decoded.len(), input.len());
        for (got, want) in decoded.iter().zip(&input) {
            assert_eq!(got.offset, want.offset);
            assert_eq!(got.timestamp, want.timestamp);
            assert_eq!(got.key, want.key);
            assert_eq!(got.value, want.value);
            assert_eq!(got.headers, want.headers);
        }
    }
}
