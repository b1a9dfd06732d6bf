//! The client's RecordBatch v2 path over a real server: what the Producer builds is what the
//! broker stores and decodes (the server validates every raw batch, CRC included, and
//! `Client::fetch` decodes it on the server); batches written straight into the log (headers,
//! null keys and values, gzip, as a Kafka producer sends them) are what the Consumer hands out,
//! from any offset, compressed ones inflated by the client.

mod common;

use std::time::Duration;

use brook_client::{
    proto as v1, ConsumerConfig, ProducerConfig, ProducerRecord, StartAt, TopicPartition,
};
use brook_client::{ConsumerRecord, FetchRequest, RecordStream};
use brook_log::batch::{BatchBuilder, Compression, RecordRef};
use common::{soon, Harness};
use futures::StreamExt;

/// Appends one batch built by brook-log to partition 0 of `topic`, as a raw batch.
async fn append_log_batch(h: &Harness, topic: &str, compression: Compression, first: u32, n: u32) {
    let mut builder = BatchBuilder::new(compression);
    let values: Vec<String> = (first..first + n).map(|i| format!("value {i}")).collect();
    let headers: [(&str, &[u8]); 2] = [("h1", b"a"), ("h2", b"")];
    for (i, value) in values.iter().enumerate() {
        builder.push(RecordRef {
            key: (i % 2 == 0).then_some(value.as_bytes()),
            value: (i % 3 != 2).then_some(value.as_bytes()),
            headers: if i == 0 { &headers } else { &[] },
            timestamp: 1_700_000_000_000 + i as i64,
        });
    }
    let data = builder.build().expect("build").freeze();
    let request = v1::ProduceRequest {
        topic: topic.to_owned(),
        records: Vec::new(),
        raw_batch: Some(v1::RawBatch { partition: 0, data }),
    };
    h.client
        .grpc()
        .produce(request)
        .await
        .expect("produce a raw batch");
}

async fn take(stream: &mut RecordStream, n: usize) -> Vec<ConsumerRecord> {
    let mut records = Vec::new();
    while records.len() < n {
        records.push(
            soon(stream.next())
                .await
                .expect("stream open")
                .expect("record"),
        );
    }
    records
}

/// Everything in partition 0 as the broker decodes it.
async fn fetch_all(h: &Harness, topic: &str) -> Vec<ConsumerRecord> {
    let mut records = Vec::new();
    let mut offset = 0;
    loop {
        let fetched = h
            .client
            .fetch(FetchRequest::new(topic, 0, offset))
            .await
            .expect("fetch");
        if fetched.records.is_empty() {
            return records;
        }
        offset = fetched.next_offset;
        records.extend(fetched.records);
    }
}

#[tokio::test]
async fn what_the_producer_builds_the_broker_stores_record_for_record() {
    let h = Harness::start().await;
    h.topic("t", 1).await;
    let producer = h
        .client
        .producer(ProducerConfig::default())
        .expect("producer");
    let sent = vec![
        ProducerRecord::keyed("k", "v")
            .with_header("h", "x")
            .with_header("h", ""),
        ProducerRecord::default(),
        ProducerRecord {
            timestamp_ms: Some(42),
            ..ProducerRecord::value(vec![9u8; 300])
        },
        ProducerRecord::keyed("", ""),
    ];
    let mut deliveries = Vec::new();
    for record in sent.clone() {
        deliveries.push(producer.send("t", record).await.expect("send"));
    }
    let mut positions = Vec::new();
    for delivery in deliveries {
        positions.push(soon(delivery).await.expect("delivered"));
    }
    let offsets: Vec<u64> = positions.iter().map(|p| p.offset).collect();
    assert_eq!(offsets, [0, 1, 2, 3]);
    assert_eq!(
        positions[2].timestamp_ms, 42,
        "an explicit timestamp is kept"
    );

    let stored = fetch_all(&h, "t").await;
    assert_eq!(stored.len(), sent.len());
    for ((record, position), stored) in sent.iter().zip(&positions).zip(&stored) {
        assert_eq!(stored.offset, position.offset);
        assert_eq!(
            stored.timestamp_ms, position.timestamp_ms,
            "the delivery's timestamp is stored"
        );
        assert_eq!(stored.key, record.key);
        assert_eq!(stored.value, record.value);
        assert_eq!(stored.headers, record.headers);
    }
}

#[tokio::test]
async fn batches_stay_within_the_topics_message_bytes_max_whatever_batch_bytes_max_says() {
    let h = Harness::start().await;
    h.topic("t", 1).await;
    let mut config = ProducerConfig::default();
    config.batch_bytes_max = 8 << 20;
    config.buffer_bytes_max = 64 << 20;
    config.linger_ms = 60_000;
    let producer = h.client.producer(config).expect("producer");
    // 3 MiB of records, sent together: more than the topic's 1 MiB message_bytes_max.
    let mut deliveries = Vec::new();
    for _ in 0..3000 {
        let record = ProducerRecord::value(vec![7u8; 1024]);
        deliveries.push(producer.send("t", record).await.expect("send"));
    }
    soon(producer.flush()).await.expect("flush");
    for (i, delivery) in deliveries.into_iter().enumerate() {
        assert_eq!(soon(delivery).await.expect("delivered").offset, i as u64);
    }
}

#[tokio::test]
async fn the_consumer_reads_log_built_batches_compressed_or_not_from_any_offset() {
    let h = Harness::start().await;
    h.topic("t", 1).await;
    append_log_batch(&h, "t", Compression::None, 0, 5).await; // offsets 0..=4
    append_log_batch(&h, "t", Compression::Gzip, 5, 4).await; // 5..=8
    append_log_batch(&h, "t", Compression::None, 9, 3).await; // 9..=11
    let expected = fetch_all(&h, "t").await;
    assert_eq!(expected.len(), 12);
    let tp = TopicPartition::new("t", 0);
    let consumer = h
        .client
        .consumer(ConsumerConfig::default())
        .expect("consumer");

    // From the start: every record, the compressed ones inflated in their place.
    let mut stream = consumer
        .assign(vec![(tp.clone(), StartAt::Earliest)])
        .await
        .expect("assign");
    assert_eq!(take(&mut stream, 12).await, expected);
    assert_eq!(stream.positions().get(&tp), Some(&12));

    // From the middle of a plain batch and of a compressed one: nothing before the start.
    for start in [2u64, 6] {
        let mut stream = consumer
            .assign(vec![(tp.clone(), StartAt::Offset(start))])
            .await
            .expect("assign");
        let got = take(&mut stream, 12 - start as usize).await;
        assert_eq!(got, expected[start as usize..], "from offset {start}");
        let extra = tokio::time::timeout(Duration::from_millis(200), stream.next()).await;
        assert!(
            extra.is_err(),
            "nothing more from offset {start}: {extra:?}"
        );
    }
}
