//! One log, one set of offsets: a record produced over gRPC reaches a Kafka client (librdkafka)
//! with the same key, value, headers and timestamp, and the other way round; a group's
//! committed offsets are the same whichever door committed them.

mod kafka_support;

use std::time::Duration;

use brook_client::proto::OffsetCommit as GrpcCommit;
use brook_client::{Client, FetchRequest, ProducerRecord};
use brook_server::{GrpcConfig, GrpcServer};
use bytes::Bytes;
use kafka_support::{receive, TestBroker, PATIENCE};
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};

const TS: i64 = 1_700_000_123_456;

async fn grpc(tb: &TestBroker) -> (GrpcServer, Client) {
    let addr = "127.0.0.1:0".parse().expect("address");
    let server = GrpcServer::start(tb.broker.clone(), addr, GrpcConfig::default())
        .await
        .expect("gRPC server");
    let client = Client::connect(format!("http://{}", server.local_addr()))
        .await
        .expect("gRPC client");
    (server, client)
}

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
