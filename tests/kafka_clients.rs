//! The Kafka door with a real client library: librdkafka (through the `rdkafka` crate)
//! produces, consumes, commits, looks up offsets by time and administers topics on a brook
//! broker listening on 127.0.0.1:0 in this process.

mod kafka_support;

use std::time::Duration;

use brook_log::batch::{BatchHeader, Batches, Compression};
use futures::future::join_all;
use kafka_support::{admin_create, receive, TestBroker, PATIENCE};
use rdkafka::admin::{AdminOptions, ResourceSpecifier};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};

const BASE_TS: i64 = 1_700_000_000_000;

/// Sends `n` keyed records to partition `partition` and returns their offsets, in order.
async fn produce(
    producer: &rdkafka::producer::FutureProducer,
    topic: &str,
    partition: Option<i32>,
    range: std::ops::Range<usize>,
) -> Vec<i64> {
    let keys: Vec<String> = range.clone().map(|i| format!("key-{i}")).collect();
    let values: Vec<String> = range
        .clone()
        .map(|i| format!("value {i}: the quick brown fox jumps over the lazy dog, again and again"))
        .collect();
    let sends = range.clone().enumerate().map(|(j, i)| {
        let mut record = FutureRecord::to(topic)
            .key(&keys[j])
            .payload(&values[j])
            .timestamp(BASE_TS + i as i64 * 1000)
            .headers(OwnedHeaders::new().insert(Header {
                key: "n",
                value: Some(&keys[j]),
            }));
        if let Some(p) = partition {
            record = record.partition(p);
        }
        producer.send(record, Duration::from_secs(15))
    });
    join_all(sends)
        .await
        .into_iter()
        .map(|r| r.expect("delivered").offset)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_compression_codec_round_trips_and_is_stored_as_sent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tb = TestBroker::start(dir.path()).await;
    let codecs = [
        ("none", Compression::None),
        ("gzip", Compression::Gzip),
        ("snappy", Compression::Snappy),
        ("lz4", Compression::Lz4),
        ("zstd", Compression::Zstd),
    ];
    for (name, expected) in codecs {
        let topic = format!("codec-{name}");
        tb.create_topic(&topic, 1).await;
        let producer = tb.producer(&[("compression.type", name), ("linger.ms", "50")]);
        let offsets = produce(&producer, &topic, Some(0), 0..40).await;
        assert_eq!(
            offsets,
            (0..40).collect::<Vec<i64>>(),
            "{name}: offsets in send order"
        );

        // The batch on disk is the producer's, compression and all.
        let fetched = tb
            .broker
            .fetch(&topic, 0, 0, 1 << 20, Duration::ZERO)
            .await
            .expect("fetch");
        // librdkafka sends a batch uncompressed when the codec would not shrink it (a lone
        // record, when the machine's timing splits the sends): every batch of several
        // records carries the codec, and there is one.
        let headers: Vec<BatchHeader> = Batches::new(&fetched.batches)
            .map(|batch| batch.expect("a whole batch").header)
            .collect();
        let several: Vec<&BatchHeader> = headers.iter().filter(|h| h.records_count > 1).collect();
        assert!(!several.is_empty(), "{name}: no batch of several records");
        for header in several {
            assert_eq!(
                header.compression().expect("known codec"),
                expected,
                "{name}"
            );
        }
        // ... and the broker decodes the same records the client sent.
        let records = fetched.records().expect("decodes");
        assert_eq!(
            records[3].value.as_deref(),
            Some(&b"value 3: the quick brown fox jumps over the lazy dog, again and again"[..])
        );

        let consumer = tb.consumer(&format!("reader-{name}"), &[]);
        consumer.subscribe(&[&topic]).expect("subscribe");
        let got = receive(&consumer, 40).await;
        for (i, g) in got.iter().enumerate() {
            assert_eq!(g.offset, i as i64, "{name}");
            assert_eq!(
                g.key.as_deref(),
                Some(format!("key-{i}").as_bytes()),
                "{name}"
            );
        }
        // Headers and timestamps survive too.
        let message = tokio::time::timeout(PATIENCE, async {
            consumer
                .seek(&topic, 0, Offset::Offset(7), Duration::from_secs(5))
                .expect("seek");
            consumer.recv().await.expect("record").detach()
        })
        .await
        .expect("record after seek");
        assert_eq!(message.offset(), 7);
        assert_eq!(message.timestamp().to_millis(), Some(BASE_TS + 7000));
        let header = message.headers().expect("headers").get(0);
        assert_eq!((header.key, header.value), ("n", Some(&b"key-7"[..])));
    }
    tb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_producer_writes_each_record_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tb = TestBroker::start(dir.path()).await;
    tb.create_topic("idem", 3).await;
    let producer = tb.producer(&[("enable.idempotence", "true"), ("compression.type", "lz4")]);
    let mut offsets = Vec::new();
    for p in 0..3 {
        offsets.push(produce(&producer, "idem", Some(p), 0..30).await);
    }
    for per_partition in &offsets {
        assert_eq!(per_partition, &(0..30).collect::<Vec<i64>>());
    }
    for p in 0..3u32 {
        let fetched = tb
            .broker
            .fetch("idem", p, 0, 1 << 20, Duration::ZERO)
            .await
            .expect("fetch");
        assert_eq!(
            fetched.high_watermark, 30,
            "partition {p}: each record once"
        );
        let header = BatchHeader::parse(&fetched.batches).expect("batch");
        assert!(
            header.producer_id >= 0,
            "the producer id is in the stored batch"
        );
        assert_eq!(header.base_sequence, 0);
    }
    tb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_resumes_from_its_committed_offset_with_metadata() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tb = TestBroker::start(dir.path()).await;
    tb.create_topic("orders", 1).await;
    let producer = tb.producer(&[]);
    produce(&producer, "orders", Some(0), 0..10).await;

    let first = tb.consumer("billing", &[]);
    first.subscribe(&["orders"]).expect("subscribe");
    let got = receive(&first, 10).await;
    assert_eq!(got.last().map(|g| g.offset), Some(9));
    let mut commit = TopicPartitionList::new();
    commit
        .add_partition_offset("orders", 0, Offset::Offset(6))
        .expect("offset");
    commit
        .find_partition("orders", 0)
        .expect("listed")
        .set_metadata("checkpoint-6");
    first.commit(&commit, CommitMode::Sync).expect("commit");
    let mut asked = TopicPartitionList::new();
    asked.add_partition("orders", 0);
    let committed = first
        .committed_offsets(asked, Duration::from_secs(5))
        .expect("OffsetFetch");
    let element = committed.find_partition("orders", 0).expect("partition");
    assert_eq!(element.offset(), Offset::Offset(6));
    assert_eq!(
        element.metadata(),
        "checkpoint-6",
        "commit metadata comes back"
    );
    drop(first);

    // One fact for every door: the broker API sees the Kafka client's commit.
    let broker_view = tb
        .broker
        .committed_offsets("billing", &[])
        .expect("committed offsets");
    assert_eq!(broker_view.len(), 1);
    assert_eq!(broker_view[0].1.offset, 6);
    assert_eq!(broker_view[0].1.metadata, "checkpoint-6");

    let second = tb.consumer("billing", &[]);
    second.subscribe(&["orders"]).expect("subscribe");
    let got = receive(&second, 4).await;
    assert_eq!(
        got.iter().map(|g| g.offset).collect::<Vec<_>>(),
        vec![6, 7, 8, 9]
    );
    drop(second);
    tb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_by_time_and_watermarks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tb = TestBroker::start(dir.path()).await;
    tb.create_topic("clock", 1).await;
    let producer = tb.producer(&[("linger.ms", "0")]);
    // One batch per record, so the time index has an entry for each.
    for i in 0..10 {
        produce(&producer, "clock", Some(0), i..i + 1).await;
    }
    let consumer = tb.consumer("clock-reader", &[]);
    let mut query = TopicPartitionList::new();
    query
        .add_partition_offset("clock", 0, Offset::Offset(BASE_TS + 5500))
        .expect("timestamp");
    let found = consumer
        .offsets_for_times(query, Duration::from_secs(5))
        .expect("ListOffsets");
    assert_eq!(
        found.find_partition("clock", 0).expect("p0").offset(),
        Offset::Offset(6)
    );

    let mut late = TopicPartitionList::new();
    late.add_partition_offset("clock", 0, Offset::Offset(BASE_TS + 60_000))
        .expect("timestamp");
    let found = consumer
        .offsets_for_times(late, Duration::from_secs(5))
        .expect("ListOffsets");
    assert_eq!(
        found.find_partition("clock", 0).expect("p0").offset(),
        Offset::End,
        "past the last record"
    );

    let (low, high) = consumer
        .fetch_watermarks("clock", 0, Duration::from_secs(5))
        .expect("earliest and latest");
    assert_eq!((low, high), (0, 10));
    tb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_creates_describes_and_deletes_topics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tb = TestBroker::start(dir.path()).await;
    let admin = tb.admin();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(5)));

    let topic =
        rdkafka::admin::NewTopic::new("audit", 3, rdkafka::admin::TopicReplication::Fixed(1))
            .set("retention.ms", "3600000")
            .set("segment.bytes", "1048576");
    let created = admin
        .create_topics(&[topic], &options)
        .await
        .expect("CreateTopics");
    assert!(created[0].is_ok(), "{created:?}");
    let description = tb.broker.describe_topic("audit").expect("exists");
    assert_eq!(description.partitions.len(), 3);
    assert_eq!(description.config.retention_ms_max, Some(3_600_000));
    assert_eq!(description.config.segment_bytes_max, 1_048_576);

    let again = admin
        .create_topics(
            &[rdkafka::admin::NewTopic::new(
                "audit",
                1,
                rdkafka::admin::TopicReplication::Fixed(1),
            )],
            &options,
        )
        .await
        .expect("CreateTopics");
    assert_eq!(
        again[0].as_ref().unwrap_err().1,
        rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists
    );
    let bad = admin
        .create_topics(
            &[rdkafka::admin::NewTopic::new(
                "bad/name",
                1,
                rdkafka::admin::TopicReplication::Fixed(1),
            )],
            &options,
        )
        .await
        .expect("CreateTopics");
    assert_eq!(
        bad[0].as_ref().unwrap_err().1,
        rdkafka::types::RDKafkaErrorCode::InvalidTopic
    );

    let configs = admin
        .describe_configs(&[ResourceSpecifier::Topic("audit")], &options)
        .await
        .expect("DescribeConfigs");
    let resource = configs[0].as_ref().expect("described");
    let get = |name: &str| {
        resource
            .get(name)
            .unwrap_or_else(|| panic!("{name} described"))
            .value
            .clone()
    };
    assert_eq!(get("retention.ms").as_deref(), Some("3600000"));
    assert_eq!(get("segment.bytes").as_deref(), Some("1048576"));
    assert_eq!(get("cleanup.policy").as_deref(), Some("delete"));
    assert!(
        !resource.get("retention.ms").expect("entry").is_default,
        "an override is not a default"
    );
    let broker_configs = admin
        .describe_configs(&[ResourceSpecifier::Broker(1)], &options)
        .await
        .expect("DescribeConfigs broker");
    let broker_resource = broker_configs[0].as_ref().expect("described");
    assert_eq!(
        broker_resource
            .get("auto.create.topics.enable")
            .and_then(|e| e.value.clone())
            .as_deref(),
        Some("true")
    );

    admin_create(&admin, "scratch", 2).await;
    let deleted = admin
        .delete_topics(&["scratch", "never-was"], &options)
        .await
        .expect("DeleteTopics");
    assert!(deleted[0].is_ok());
    assert_eq!(
        deleted[1].as_ref().unwrap_err().1,
        rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition
    );
    assert!(tb.broker.describe_topic("scratch").is_err());

    // Metadata lists what exists, at the listener's address.
    let metadata = admin
        .inner()
        .fetch_metadata(None, Duration::from_secs(5))
        .expect("Metadata");
    let names: Vec<&str> = metadata.topics().iter().map(|t| t.name()).collect();
    assert_eq!(names, vec!["audit"]);
    let broker = &metadata.brokers()[0];
    assert_eq!(format!("{}:{}", broker.host(), broker.port()), tb.bootstrap);
    tb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producing_to_a_new_topic_creates_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tb = TestBroker::start(dir.path()).await;
    let producer = tb.producer(&[]);
    let offsets = produce(&producer, "made-on-demand", None, 0..3).await;
    assert_eq!(offsets.len(), 3);
    assert_eq!(
        tb.broker
            .describe_topic("made-on-demand")
            .expect("created")
            .partitions
            .len(),
        1
    );

    // With automatic creation refused by the client, an unknown topic stays unknown.
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &tb.bootstrap)
        .set("allow.auto.create.topics", "false")
        .set("group.id", "nobody");
    let consumer: rdkafka::consumer::BaseConsumer = config.create().expect("consumer");
    let metadata = consumer
        .fetch_metadata(Some("not-there"), Duration::from_secs(5))
        .expect("Metadata");
    assert_eq!(
        metadata.topics()[0].error(),
        Some(rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
    );
    tb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_offsets_and_records_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tb = TestBroker::start(dir.path()).await;
    tb.create_topic("ledger", 2).await;
    let producer = tb.producer(&[]);
    produce(&producer, "ledger", Some(0), 0..20).await;
    produce(&producer, "ledger", Some(1), 0..5).await;
    let consumer = tb.consumer("accounts", &[]);
    consumer.subscribe(&["ledger"]).expect("subscribe");
    receive(&consumer, 25).await;
    let mut commit = TopicPartitionList::new();
    commit
        .add_partition_offset("ledger", 0, Offset::Offset(12))
        .expect("p0");
    commit
        .add_partition_offset("ledger", 1, Offset::Offset(5))
        .expect("p1");
    consumer.commit(&commit, CommitMode::Sync).expect("commit");
    drop(consumer);
    drop(producer);
    tb.stop().await;

    let tb = TestBroker::start(dir.path()).await;
    let producer = tb.producer(&[]);
    let after = produce(&producer, "ledger", Some(1), 5..7).await;
    assert_eq!(after, vec![5, 6], "offsets continue after the restart");
    let consumer = tb.consumer("accounts", &[]);
    consumer.subscribe(&["ledger"]).expect("subscribe");
    let mut got = receive(&consumer, 10).await;
    got.sort_by_key(|g| (g.partition, g.offset));
    let positions: Vec<(i32, i64)> = got.iter().map(|g| (g.partition, g.offset)).collect();
    let expected: Vec<(i32, i64)> = (12..20).map(|o| (0, o)).chain([(1, 5), (1, 6)]).collect();
    assert_eq!(positions, expected);
    assert_eq!(
        got[0].value.as_deref(),
        Some(&b"value 12: the quick brown fox jumps over the lazy dog, again and again"[..])
    );
    tb.stop().await;
}
