//! One log, one set of offsets: a record produced over gRPC reaches a Kafka client (librdkafka)
//! with the same key, value, headers and timestamp, and the other way round; a group's
//! committed offsets are the same whichever door committed them; and one group id is used by
//! one kind of member at a time (Kafka consumers or the broker's own group subscribers).

mod kafka_support;

use std::time::Duration;

use brook_broker::{BrokerError, GroupProtocol, GroupSubscribe, Subscription};
use brook_client::proto::OffsetCommit as GrpcCommit;
use brook_client::{FetchRequest, ProducerRecord};
use bytes::Bytes;
use futures::StreamExt;
use kafka_support::{grpc, receive, TestBroker, PATIENCE};
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

const TS: i64 = 1_700_000_123_456;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_cross_between_grpc_and_kafka_unchanged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tb = TestBroker::start(dir.path()).await;
    tb.create_topic("bridge", 1).await;
    let (_server, client) = grpc(&tb).await;

    // gRPC -> Kafka.
    let record = ProducerRecord {
        key: Some(Bytes::from_static(b"grpc-key")),
        value: Some(Bytes::from_static(b"from gRPC")),
        headers: vec![
            ("origin".into(), Bytes::from_static(b"grpc")),
            ("n".into(), Bytes::from_static(b"1")),
        ],
        timestamp_ms: Some(TS),
        partition: Some(0),
    };
    client
        .produce("bridge", vec![record])
        .await
        .expect("gRPC produce");
    let consumer = tb.consumer("bridge-reader", &[]);
    consumer.subscribe(&["bridge"]).expect("subscribe");
    let message = tokio::time::timeout(PATIENCE, consumer.recv())
        .await
        .expect("in time")
        .expect("record")
        .detach();
    assert_eq!(message.key(), Some(&b"grpc-key"[..]));
    assert_eq!(message.payload(), Some(&b"from gRPC"[..]));
    assert_eq!(message.timestamp().to_millis(), Some(TS));
    let headers = message.headers().expect("headers");
    let pairs: Vec<(String, Option<Vec<u8>>)> = headers
        .iter()
        .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
        .collect();
    assert_eq!(
        pairs,
        vec![
            ("origin".into(), Some(b"grpc".to_vec())),
            ("n".into(), Some(b"1".to_vec()))
        ]
    );

    // Kafka -> gRPC.
    let producer = tb.producer(&[("compression.type", "snappy")]);
    producer
        .send(
            FutureRecord::to("bridge")
                .partition(0)
                .key("kafka-key")
                .payload("from Kafka")
                .timestamp(TS + 1)
                .headers(OwnedHeaders::new().insert(Header {
                    key: "origin",
                    value: Some("kafka"),
                })),
            Duration::from_secs(10),
        )
        .await
        .expect("Kafka produce");
    let fetched = client
        .fetch(FetchRequest {
            topic: "bridge".into(),
            partition: 0,
            offset: 1,
            max_bytes: 0,
            max_wait: Duration::from_secs(5),
        })
        .await
        .expect("gRPC fetch");
    let got = &fetched.records[0];
    assert_eq!(got.offset, 1);
    assert_eq!(got.key.as_deref(), Some(&b"kafka-key"[..]));
    assert_eq!(got.value.as_deref(), Some(&b"from Kafka"[..]));
    assert_eq!(got.timestamp_ms, TS + 1);
    assert_eq!(
        got.headers,
        vec![("origin".to_owned(), Bytes::from_static(b"kafka"))]
    );
    drop(consumer);
    tb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_offsets_are_one_fact_for_both_doors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tb = TestBroker::start(dir.path()).await;
    tb.create_topic("shared", 2).await;
    let (_server, client) = grpc(&tb).await;
    let records = (0..10).map(|i| ProducerRecord {
        value: Some(Bytes::from(format!("r{i}"))),
        partition: Some(0),
        ..ProducerRecord::default()
    });
    client
        .produce("shared", records.collect())
        .await
        .expect("produce");

    // A Kafka consumer commits with metadata; gRPC reads the same commit.
    let consumer = tb.consumer("auditors", &[]);
    let mut commit = TopicPartitionList::new();
    commit
        .add_partition_offset("shared", 0, Offset::Offset(7))
        .expect("offset");
    commit
        .find_partition("shared", 0)
        .expect("listed")
        .set_metadata("kafka-side");
    consumer
        .commit(&commit, CommitMode::Sync)
        .expect("Kafka commit");
    let seen = client
        .admin()
        .fetch_offsets("auditors", &[])
        .await
        .expect("gRPC fetch offsets");
    assert_eq!(seen.len(), 1);
    assert_eq!(
        (seen[0].partition, seen[0].offset, seen[0].metadata.as_str()),
        (0, 7, "kafka-side")
    );

    // gRPC commits; the Kafka consumer resumes from there.
    client
        .admin()
        .commit_offsets(
            "auditors",
            vec![GrpcCommit {
                topic: "shared".into(),
                partition: 0,
                offset: 8,
                metadata: "grpc-side".into(),
            }],
        )
        .await
        .expect("gRPC commit");
    let mut asked = TopicPartitionList::new();
    asked.add_partition("shared", 0);
    let committed = consumer
        .committed_offsets(asked, Duration::from_secs(5))
        .expect("OffsetFetch");
    let element = committed.find_partition("shared", 0).expect("partition");
    assert_eq!(element.offset(), Offset::Offset(8));
    assert_eq!(element.metadata(), "grpc-side");
    drop(committed);
    consumer.subscribe(&["shared"]).expect("subscribe");
    let got = receive(&consumer, 2).await;
    assert_eq!(got.iter().map(|g| g.offset).collect::<Vec<_>>(), vec![8, 9]);
    drop(consumer);
    tb.stop().await;
}

/// Retries `subscribe_group` until the group id is free of Kafka members.
async fn subscribe_when_free(tb: &TestBroker, group: &str, topic: &str) -> Subscription {
    tokio::time::timeout(PATIENCE, async {
        loop {
            let request = GroupSubscribe::new(group, vec![topic.to_owned()]);
            match tb.broker.subscribe_group(request).await {
                Ok(subscription) => return subscription,
                Err(BrokerError::GroupInUse { .. }) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("subscribe: {e}"),
            }
        }
    })
    .await
    .expect("the Kafka consumer left in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_group_id_serves_one_kind_of_member_at_a_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tb = TestBroker::start(dir.path()).await;
    tb.create_topic("mixed", 2).await;
    tb.broker
        .produce("mixed", vec![brook_broker::ProduceRecord::value("x")])
        .await
        .expect("produce");

    // A live Kafka member keeps broker group subscribers off the id.
    let kafka = tb.consumer("mixed-group", &[]);
    kafka.subscribe(&["mixed"]).expect("subscribe");
    receive(&kafka, 1).await;
    let refused = tb
        .broker
        .subscribe_group(GroupSubscribe::new("mixed-group", vec!["mixed".into()]))
        .await
        .err()
        .unwrap_or_else(|| panic!("refused while a Kafka member is live"));
    assert!(
        matches!(
            refused,
            BrokerError::GroupInUse {
                holder: GroupProtocol::Kafka,
                ..
            }
        ),
        "{refused}"
    );
    // Closing the consumer sends LeaveGroup; the id is free once the group is empty.
    drop(kafka);
    let mut member = subscribe_when_free(&tb, "mixed-group", "mixed").await;
    tokio::time::timeout(PATIENCE, member.next())
        .await
        .expect("an assignment in time")
        .expect("stream open")
        .expect("assigned");

    // And a live broker member keeps Kafka consumers off it: JoinGroup gets
    // INCONSISTENT_GROUP_PROTOCOL, which librdkafka reports as a consumer error.
    let kafka = tb.consumer("mixed-group", &[]);
    kafka.subscribe(&["mixed"]).expect("subscribe");
    let error = tokio::time::timeout(PATIENCE, kafka.recv())
        .await
        .expect("an answer in time")
        .expect_err("a join error, not a record");
    assert_eq!(
        error.rdkafka_error_code(),
        Some(RDKafkaErrorCode::InconsistentGroupProtocol),
        "{error}"
    );
    drop(kafka);
    drop(member);
    tb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_lists_and_describes_live_kafka_members() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tb = TestBroker::start(dir.path()).await;
    tb.create_topic("watched", 2).await;
    tb.broker
        .produce("watched", vec![brook_broker::ProduceRecord::value("x")])
        .await
        .expect("produce");
    let kafka = tb.consumer("watchers", &[("client.id", "watcher")]);
    kafka.subscribe(&["watched"]).expect("subscribe");
    receive(&kafka, 1).await;

    let listing = tb.broker.list_groups();
    assert!(
        listing
            .iter()
            .any(|g| g.group == "watchers" && g.members == 1),
        "{listing:?}"
    );
    let described = tb.broker.describe_group("watchers").expect("described");
    assert_eq!(described.state, "Stable");
    assert!(described.generation >= 1);
    let [member] = &described.members[..] else {
        panic!("one member: {described:?}");
    };
    assert_eq!(member.client_id, "watcher");
    assert_eq!(member.topics, ["watched"]);
    let owned: Vec<u32> = member.assignment.iter().map(|tp| tp.partition).collect();
    assert_eq!(owned, [0, 1]);
    let owners: Vec<Option<&str>> = described
        .offsets
        .iter()
        .map(|lag| lag.member_id.as_deref())
        .collect();
    assert_eq!(owners, [Some(member.member_id.as_str()); 2]);

    // Once the consumer leaves, only what it committed would remain: here, nothing.
    drop(kafka);
    tokio::time::timeout(PATIENCE, async {
        while tb.broker.describe_group("watchers").is_ok() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the group is gone once its member left");
    tb.stop().await;
}
