//! Compacted topics through the Kafka door with librdkafka (the `rdkafka` crate): created with
//! `cleanup.policy=compact` by CreateTopics and shown by DescribeConfigs; 100 keys x 100 updates
//! and some tombstones, compressed; keyless records refused with INVALID_RECORD; after the
//! cleaner has run, a read from the beginning gives exactly each key's latest value; a consumer
//! group keeps its committed position across the clean; and an idempotent producer writes on
//! across cleans without OUT_OF_ORDER_SEQUENCE or duplicates. kafka-python, the second client,
//! is in `compaction_python.rs`.

mod kafka_support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kafka_support::{receive, TestBroker, PATIENCE};
use rdkafka::admin::{AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::TopicPartitionList;

const KEYS: usize = 100;
const UPDATES: usize = 100;

async fn create_compacted(tb: &TestBroker, name: &str, partitions: i32, segment_bytes: &str) {
    let admin = tb.admin();
    let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1))
        .set("cleanup.policy", "compact")
        .set("segment.bytes", segment_bytes)
        .set("min.cleanable.dirty.ratio", "0.01")
        .set("delete.retention.ms", "86400000");
    let created = admin
        .create_topics(
            &[topic],
            &AdminOptions::new().operation_timeout(Some(PATIENCE)),
        )
        .await
        .expect("CreateTopics answered");
    created[0].as_ref().expect("a compacted topic is created");
}

/// Sends `(key, value)` records (`None`: a tombstone) and waits for each acknowledgement.
async fn send_all(producer: &FutureProducer, topic: &str, records: &[(String, Option<String>)]) {
    let mut pending = Vec::with_capacity(records.len());
    for (key, value) in records {
        let mut record = FutureRecord::to(topic).key(key.as_bytes());
        if let Some(value) = value {
            record = record.payload(value.as_bytes());
        }
        pending.push(producer.send_result(record).expect("queued"));
    }
    for delivery in pending {
        delivery
            .await
            .expect("delivery reported")
            .unwrap_or_else(|(e, _)| panic!("a write failed: {e}"));
    }
}

/// Waits until every partition of `topic` has been cleaned at least `cleans` times and no clean
/// is running.
async fn wait_for_cleans(tb: &TestBroker, topic: &str, cleans: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let description = tb.broker.describe_topic(topic).expect("describe");
        let done = description.partitions.iter().all(|p| {
            p.compaction
                .as_ref()
                .is_some_and(|c| c.cleans >= cleans && c.progress.is_none())
        });
        if done {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the cleaner did not run: {description:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Everything in `topic` from the beginning, read by a fresh consumer up to the high
/// watermarks: `(partition, offset, key, value)`.
async fn read_from_beginning(
    tb: &TestBroker,
    topic: &str,
    group: &str,
) -> Vec<(i32, i64, String, Option<String>)> {
    let ends: Vec<u64> = tb
        .broker
        .describe_topic(topic)
        .expect("describe")
        .partitions
        .iter()
        .map(|p| p.high_watermark)
        .collect();
    let consumer = tb.consumer(group, &[]);
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut out = Vec::new();
    let mut done = vec![false; ends.len()];
    let deadline = Instant::now() + PATIENCE;
    while done.iter().any(|d| !d) {
        let message = tokio::time::timeout_at(deadline.into(), consumer.recv())
            .await
            .unwrap_or_else(|_| panic!("the read stopped short: {} records, {done:?}", out.len()))
            .expect("consume");
        let p = message.partition() as usize;
        let text = |b: &[u8]| String::from_utf8(b.to_vec()).expect("utf8");
        out.push((
            message.partition(),
            message.offset(),
            text(message.key().expect("a key")),
            message.payload().map(text),
        ));
        if message.offset() as u64 + 1 >= ends[p] {
            done[p] = true;
        }
    }
    out
}

fn latest(records: &[(i32, i64, String, Option<String>)]) -> BTreeMap<String, Option<String>> {
    records
        .iter()
        .map(|(_, _, k, v)| (k.clone(), v.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compacted_topic_keeps_the_latest_values_and_consumers_their_positions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tb = TestBroker::start_with(dir.path(), |c| c.cleaner.backoff_ms = 50).await;
    create_compacted(&tb, "table", 1, "16384").await;

    let described = tb
        .admin()
        .describe_configs(
            &[ResourceSpecifier::Topic("table")],
            &AdminOptions::new().request_timeout(Some(PATIENCE)),
        )
        .await
        .expect("DescribeConfigs answered");
    let resource = described[0].as_ref().expect("the topic's configs");
    let value = |name: &str| {
        resource
            .get(name)
            .and_then(|entry| entry.value.clone())
            .unwrap_or_default()
    };
    assert_eq!(value("cleanup.policy"), "compact");
    assert_eq!(value("min.cleanable.dirty.ratio"), "0.01");
    assert_eq!(value("delete.retention.ms"), "86400000");

    // A keyless record is refused, as Kafka refuses it.
    let plain = tb.producer(&[("retries", "0")]);
    let refused = plain
        .send(
            FutureRecord::<(), str>::to("table").payload("no key"),
            PATIENCE,
        )
        .await;
    match refused {
        Err((KafkaError::MessageProduction(code), _)) => {
            assert_eq!(code, RDKafkaErrorCode::InvalidRecord, "{code:?}")
        }
        other => panic!("a keyless record on a compacted topic: {other:?}"),
    }

    let producer = tb.producer(&[("compression.type", "lz4"), ("linger.ms", "2")]);
    let mut want: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut committed_at = 0;
    for round in 0..UPDATES {
        let records: Vec<(String, Option<String>)> = (0..KEYS)
            .map(|k| (format!("key-{k:03}"), Some(format!("value-{k}-{round}"))))
            .collect();
        send_all(&producer, "table", &records).await;
        want.extend(records);
        if round == UPDATES / 2 {
            // A group reads everything so far, commits and goes away.
            let end = tb
                .broker
                .describe_topic("table")
                .expect("describe")
                .partitions[0]
                .high_watermark;
            let group = tb.consumer("positions", &[]);
            group.subscribe(&["table"]).expect("subscribe");
            loop {
                let got = receive(&group, 1).await;
                if got[0].offset as u64 + 1 >= end {
                    break;
                }
            }
            group
                .commit_consumer_state(CommitMode::Sync)
                .expect("commit");
            committed_at = end;
            drop(group);
        }
    }
    let tombstones: Vec<(String, Option<String>)> =
        (0..10).map(|k| (format!("key-{k:03}"), None)).collect();
    send_all(&producer, "table", &tombstones).await;
    want.extend(tombstones);
    let written = (KEYS * UPDATES + 10) as u64;

    wait_for_cleans(&tb, "table", 1).await;
    let description = tb.broker.describe_topic("table").expect("describe");
    let compaction = description.partitions[0].compaction.expect("compacted");
    assert!(compaction.bytes_reclaimed > 0, "{compaction:?}");

    // From the beginning: each key's latest value, far fewer records than were written.
    let records = read_from_beginning(&tb, "table", "fresh").await;
    assert!(
        (records.len() as u64) < written / 4,
        "{} records read of {written} written",
        records.len()
    );
    assert_eq!(latest(&records), want);
    assert!(records.windows(2).all(|w| w[0].1 < w[1].1), "offsets rise");

    // The group resumes where it committed, though the clean removed that offset's record.
    let group = tb.consumer("positions", &[]);
    group.subscribe(&["table"]).expect("subscribe");
    // Only the offset is kept: a librdkafka message that outlives its consumer makes the
    // consumer's drop wait for it forever.
    let first = tokio::time::timeout(PATIENCE, group.recv())
        .await
        .expect("a record within PATIENCE after the group rejoined")
        .expect("consume")
        .offset();
    assert!(
        first as u64 >= committed_at,
        "resumed at {first} before the committed {committed_at}"
    );
    let mut positions = TopicPartitionList::new();
    positions.add_partition("table", 0);
    let committed = group
        .committed_offsets(positions, PATIENCE)
        .expect("committed offsets");
    assert_eq!(
        committed.elements()[0].offset().to_raw(),
        Some(committed_at as i64),
        "the commit is kept across the clean"
    );
    drop(group);
    tb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotent_producer_writes_on_across_cleans() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tb = TestBroker::start_with(dir.path(), |c| c.cleaner.backoff_ms = 20).await;
    create_compacted(&tb, "idem", 2, "1024").await;
    let producer = tb.producer(&[
        ("enable.idempotence", "true"),
        ("max.in.flight.requests.per.connection", "5"),
        ("linger.ms", "1"),
    ]);
    let mut want = BTreeMap::new();
    for round in 0..30 {
        let records: Vec<(String, Option<String>)> = (0..40)
            .map(|k| (format!("k{k}"), Some(format!("{round}:{k}"))))
            .collect();
        // Any OUT_OF_ORDER_SEQUENCE_NUMBER or fencing fails the write here.
        send_all(&producer, "idem", &records).await;
        want.extend(records);
        if round % 10 == 9 {
            let cleans = (round / 10 + 1) as u64;
            wait_for_cleans(&tb, "idem", cleans).await;
        }
    }
    let records = read_from_beginning(&tb, "idem", "check").await;
    assert_eq!(latest(&records), want);
    // No duplicate: every value was written once, and is read at most once.
    let mut seen = std::collections::HashSet::new();
    for (_, _, _, value) in &records {
        assert!(seen.insert(value.clone()), "{value:?} read twice");
    }
    tb.stop().await;
}
