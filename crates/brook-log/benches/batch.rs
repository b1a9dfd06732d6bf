//! Batch building and validation speed, next to baselines measured in the same run.
//!
//! Building: 1000 records of 100 bytes into one batch, CRC-32C included (the produce path of
//! brook's own doors). Baselines: a plain copy of the same payload bytes into a fresh `Vec`
//! (the floor any encoder pays), and the `kafka-protocol` crate's encoder for the same records
//! (a peer). Goal: at least 5 million records/s on one core.
//!
//! Validation: `validate` on the built batch (what every append pays), against CRC-32C alone
//! over the same bytes.
//!
//! Run: `cargo bench -p brook-log --bench batch`. Criterion reports each case; the summary
//! lines at the end compare them.

use std::hint::black_box;
use std::time::{Duration, Instant};

use brook_log::batch::{validate, BatchBuilder, Compression, RecordRef};
use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kafka_protocol::records::{
    Compression as TheirCompression, Record as TheirRecord, RecordBatchEncoder,
    RecordEncodeOptions, TimestampType,
};

const RECORDS: usize = 1000;
const VALUE_BYTES: usize = 100;
const BASE_TS: i64 = 1_700_000_000_000;

fn payloads() -> Vec<Vec<u8>> {
    (0..RECORDS)
        .map(|i| (0..VALUE_BYTES).map(|j| (i * 31 + j * 7) as u8).collect())
        .collect()
}

fn build_brook(payloads: &[Vec<u8>], codec: Compression) -> BytesMut {
    let mut builder = BatchBuilder::new(codec);
    for (i, value) in payloads.iter().enumerate() {
        builder.push(RecordRef {
            key: None,
            value: Some(value),
            headers: &[],
            timestamp: BASE_TS + i as i64,
        });
    }
    builder.build().expect("build")
}

fn copy_payloads(payloads: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(RECORDS * VALUE_BYTES);
    for value in payloads {
        out.extend_from_slice(value);
    }
    out
}

fn their_records(payloads: &[Vec<u8>]) -> Vec<TheirRecord> {
    payloads
        .iter()
        .enumerate()
        .map(|(i, value)| TheirRecord {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // offset - sequence constant keeps the encoder on one batch.
            sequence: i as i32 - 1,
            timestamp: BASE_TS + i as i64,
            key: None,
            value: Some(Bytes::copy_from_slice(value)),
            headers: Default::default(),
        })
        .collect()
}

fn encode_theirs(records: &[TheirRecord]) -> BytesMut {
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records,
        &RecordEncodeOptions {
            version: 2,
            compression: TheirCompression::None,
        },
    )
    .expect("encode");
    buf
}

fn bench_build(c: &mut Criterion) {
    let payloads = payloads();
    let theirs = their_records(&payloads);
    let mut group = c.benchmark_group("batch_build_1000x100B");
    group.throughput(Throughput::Elements(RECORDS as u64));
    for codec in Compression::ALL {
        group.bench_with_input(BenchmarkId::new("brook", codec), &codec, |b, &codec| {
            b.iter(|| build_brook(black_box(&payloads), codec))
        });
    }
    group.bench_function("baseline_memcpy", |b| {
        b.iter(|| copy_payloads(black_box(&payloads)))
    });
    group.bench_function("kafka_protocol_none", |b| {
        b.iter(|| encode_theirs(black_box(&theirs)))
    });
    group.finish();
}

fn bench_validate(c: &mut Criterion) {
    let batch = build_brook(&payloads(), Compression::None);
    let mut group = c.benchmark_group("batch_validate_1000x100B");
    group.throughput(Throughput::Bytes(batch.len() as u64));
    group.bench_function("brook_validate", |b| {
        b.iter(|| validate(black_box(&batch), usize::MAX).expect("valid"))
    });
    group.bench_function("baseline_crc32c", |b| {
        b.iter(|| crc32c::crc32c(black_box(&batch)))
    });
    group.finish();
}

/// Runs `f` repeatedly and returns its best sustained rate in calls per second: the median of
/// nine rounds of about 100 ms each, after a warm-up round.
fn calls_per_sec<T>(mut f: impl FnMut() -> T) -> f64 {
    let round = Duration::from_millis(100);
    let mut rates = Vec::new();
    for i in 0..10 {
        let start = Instant::now();
        let mut calls = 0u64;
        while start.elapsed() < round {
            black_box(f());
            calls += 1;
        }
        if i > 0 {
            rates.push(calls as f64 / start.elapsed().as_secs_f64());
        }
    }
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}

fn summary(_: &mut Criterion) {
    let payloads = payloads();
    let theirs = their_records(&payloads);
    let mrec = |calls: f64| calls * RECORDS as f64 / 1e6;
    let ours = mrec(calls_per_sec(|| build_brook(&payloads, Compression::None)));
    let memcpy = mrec(calls_per_sec(|| copy_payloads(&payloads)));
    let peer = mrec(calls_per_sec(|| encode_theirs(&theirs)));
    println!(
        "batch build: {ours:.2} M records/s (baseline memcpy: {memcpy:.2} M records/s, \
         kafka-protocol encoder: {peer:.2} M records/s; goal >= 5 M records/s)"
    );
    for codec in &Compression::ALL[1..] {
        let rate = mrec(calls_per_sec(|| build_brook(&payloads, *codec)));
        println!("batch build {codec}: {rate:.2} M records/s");
    }
    let batch = build_brook(&payloads, Compression::None);
    let gbps = |calls: f64| calls * batch.len() as f64 / 1e9;
    let validated = gbps(calls_per_sec(|| validate(&batch, usize::MAX)));
    let crc = gbps(calls_per_sec(|| crc32c::crc32c(&batch)));
    println!("batch validate: {validated:.2} GB/s (baseline CRC-32C alone: {crc:.2} GB/s)");
}

criterion_group!(benches, bench_build, bench_validate, summary);
criterion_main!(benches);
