//! Cross-checks brook's RecordBatch v2 codec against an independent implementation, the
//! `kafka-protocol` crate: batches its encoder builds pass our `validate` and decode with our
//! iterator, and batches our builder builds decode with its decoder (which checks the CRC), for
//! every codec.

use brook_log::batch::{records, validate, BatchBuilder, Compression, RecordRef};
use bytes::{Bytes, BytesMut};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression as TheirCompression, Record as TheirRecord, RecordBatchDecoder, RecordBatchEncoder,
    RecordEncodeOptions, TimestampType, NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH,
    NO_PRODUCER_ID, NO_SEQUENCE,
};
use proptest::prelude::*;

/// One record as the test generates it. Header keys are unique within a record because the
/// other side keeps headers in a map.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Vec<u8>)>,
    timestamp: i64,
}

fn theirs(codec: Compression) -> TheirCompression {
    match codec {
        Compression::None => TheirCompression::None,
        Compression::Gzip => TheirCompression::Gzip,
        Compression::Snappy => TheirCompression::Snappy,
        Compression::Lz4 => TheirCompression::Lz4,
        Compression::Zstd => TheirCompression::Zstd,
    }
}

/// The other side's record for `sample` at offset `i` of its batch.
fn their_record(i: usize, sample: &Sample) -> TheirRecord {
    let mut record = TheirRecord {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
        producer_id: NO_PRODUCER_ID,
        producer_epoch: NO_PRODUCER_EPOCH,
        timestamp_type: TimestampType::Creation,
        offset: i as i64,
        // The encoder starts a new batch whenever offset - sequence changes, and derives
        // baseSequence from the first record: this keeps one batch with -1.
        sequence: NO_SEQUENCE + i as i32,
        timestamp: sample.timestamp,
        key: sample.key.clone().map(Bytes::from),
        value: sample.value.clone().map(Bytes::from),
        headers: Default::default(),
    };
    for (k, v) in &sample.headers {
        record.headers.insert(
            StrBytes::from_string(k.clone()),
            Some(Bytes::from(v.clone())),
        );
    }
    record
}

fn encode_records(codec: Compression, records: &[TheirRecord]) -> Bytes {
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records,
        &RecordEncodeOptions {
            version: 2,
            compression: theirs(codec),
        },
    )
    .expect("kafka-protocol encodes");
    buf.freeze()
}

fn encode_with_kafka_protocol(codec: Compression, samples: &[Sample]) -> Bytes {
    let records: Vec<TheirRecord> = samples
        .iter()
        .enumerate()
        .map(|(i, s)| their_record(i, s))
        .collect();
    encode_records(codec, &records)
}

fn build_with_brook(codec: Compression, samples: &[Sample]) -> Bytes {
    let mut builder = BatchBuilder::new(codec);
    for s in samples {
        let headers: Vec<(&str, &[u8])> = s
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_slice()))
            .collect();
        builder.push(RecordRef {
            key: s.key.as_deref(),
            value: s.value.as_deref(),
            headers: &headers,
            timestamp: s.timestamp,
        });
    }
    builder.build().expect("brook builds").freeze()
}

fn sample() -> impl Strategy<Value = Sample> {
    (
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..32)),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..400)),
        proptest::collection::btree_map(
            "[a-zA-Z0-9._\u{e9}-]{0,10}",
            proptest::collection::vec(any::<u8>(), 0..24),
            0..4,
        ),
        // Realistic millisecond timestamps, spread either side of one another.
        1_500_000_000_000i64..1_900_000_000_000,
    )
        .prop_map(|(key, value, headers, timestamp)| Sample {
            key,
            value,
            headers: headers.into_iter().collect(),
            timestamp,
        })
}

fn samples() -> impl Strategy<Value = Vec<Sample>> {
    proptest::collection::vec(sample(), 1..30)
}

fn codec() -> impl Strategy<Value = Compression> {
    proptest::sample::select(Compression::ALL.to_vec())
}

fn assert_brook_reads(batch: Bytes, samples: &[Sample]) -> Result<(), TestCaseError> {
    let header = validate(&batch, usize::MAX).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(header.records_count as usize, samples.len());
    let max = samples.iter().map(|s| s.timestamp).max();
    prop_assert_eq!(Some(header.max_timestamp), max);
    let decoded: Vec<_> = records(batch)
        .map_err(|e| TestCaseError::fail(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(decoded.len(), samples.len());
    for (i, (got, want)) in decoded.iter().zip(samples).enumerate() {
        prop_assert_eq!(got.offset, i as u64);
        prop_assert_eq!(got.timestamp, want.timestamp);
        prop_assert_eq!(got.key.as_deref(), want.key.as_deref());
        prop_assert_eq!(got.value.as_deref(), want.value.as_deref());
        let headers: Vec<(String, Vec<u8>)> = got
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.to_vec()))
            .collect();
        prop_assert_eq!(&headers, &want.headers);
    }
    Ok(())
}

fn assert_kafka_protocol_reads(
    mut batch: Bytes,
    codec: Compression,
    samples: &[Sample],
) -> Result<(), TestCaseError> {
    let set =
        RecordBatchDecoder::decode(&mut batch).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert!(batch.is_empty(), "the decoder consumed the whole batch");
    prop_assert_eq!(set.compression, theirs(codec));
    prop_assert_eq!(set.records.len(), samples.len());
    for (i, (got, want)) in set.records.iter().zip(samples).enumerate() {
        prop_assert_eq!(got.offset, i as i64);
        prop_assert_eq!(got.timestamp, want.timestamp);
        prop_assert_eq!(got.timestamp_type, TimestampType::Creation);
        prop_assert_eq!(
            (got.producer_id, got.producer_epoch),
            (NO_PRODUCER_ID, NO_PRODUCER_EPOCH)
        );
        prop_assert_eq!(got.key.as_deref(), want.key.as_deref());
        prop_assert_eq!(got.value.as_deref(), want.value.as_deref());
        let headers: Vec<(String, Vec<u8>)> = got
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_deref().unwrap_or_default().to_vec()))
            .collect();
        prop_assert_eq!(&headers, &want.headers);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn kafka_protocol_batches_validate_and_decode_with_brook(samples in samples(), codec in codec()) {
        assert_brook_reads(encode_with_kafka_protocol(codec, &samples), &samples)?;
    }

    #[test]
    fn brook_batches_decode_with_kafka_protocol(samples in samples(), codec in codec()) {
        assert_kafka_protocol_reads(build_with_brook(codec, &samples), codec, &samples)?;
    }
}

/// Uncompressed, the two encoders agree byte for byte once the base timestamp is the same
/// (kafka-protocol bases deltas on the smallest timestamp, Kafka's Java producer and brook on
/// the first record's; sorted timestamps make those one and the same).
#[test]
fn uncompressed_bytes_are_identical_to_kafka_protocol() {
    let samples: Vec<Sample> = (0..50)
        .map(|i| Sample {
            key: (i % 4 != 0).then(|| format!("k{i}").into_bytes()),
            value: (i % 7 != 6).then(|| vec![b'v'; i * 3]),
            headers: (0..i % 3)
                .map(|h| (format!("h{h}"), vec![h as u8; h]))
                .collect(),
            timestamp: 1_700_000_000_000 + i as i64,
        })
        .collect();
    let ours = build_with_brook(Compression::None, &samples);
    let theirs = encode_with_kafka_protocol(Compression::None, &samples);
    assert!(ours == theirs, "brook and kafka-protocol bytes differ");
}

/// Every codec, every Kafka compression framing the other side writes, large enough to span
/// several snappy (32 KiB) and lz4 (64 KiB) blocks.
#[test]
fn large_batches_cross_decode_with_every_codec() {
    let samples: Vec<Sample> = (0..400)
        .map(|i| Sample {
            key: Some(format!("key-{i:05}").into_bytes()),
            value: Some(format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(i % 500)).into_bytes()),
            headers: vec![("trace".to_string(), format!("{i:x}").into_bytes())],
            timestamp: 1_700_000_000_000 + (i as i64 % 13),
        })
        .collect();
    for codec in Compression::ALL {
        assert_brook_reads(encode_with_kafka_protocol(codec, &samples), &samples)
            .unwrap_or_else(|e| panic!("{codec}: {e}"));
        assert_kafka_protocol_reads(build_with_brook(codec, &samples), codec, &samples)
            .unwrap_or_else(|e| panic!("{codec}: {e}"));
    }
}

/// A null header value, which brook's builder never writes, reads as empty.
#[test]
fn null_header_values_from_kafka_read_as_empty() {
    let sample = Sample {
        key: None,
        value: Some(b"v".to_vec()),
        headers: vec![],
        timestamp: 42,
    };
    let mut record = their_record(0, &sample);
    record
        .headers
        .insert(StrBytes::from_string("absent".into()), None);
    let batch = encode_records(Compression::None, &[record]);
    validate(&batch, usize::MAX).expect("valid");
    let decoded = records(batch)
        .expect("records")
        .next()
        .expect("one")
        .expect("ok");
    assert_eq!(decoded.headers, vec![("absent".to_string(), Bytes::new())]);
}
