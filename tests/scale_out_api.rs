//! `api::Brook` on all three of its implementations, by its one shared suite: the embedded
//! `Broker`, the gRPC `Client` of a real server (in-process, port 0), and a Kafka cluster
//! (`brook::kafka`, through librdkafka, against brook's own Kafka door in a separate process).
//! The orders example prints the same lines on each; errors have the same kinds; keys land on
//! the same partition numbers, also when a plain librdkafka producer with
//! `partitioner=murmur2_random` places them; records keep keys, values, headers and
//! timestamps. On the cluster alone: what Kafka cannot do is refused saying so, and
//! request-reply uses brook's headers and reply topic.

#[path = "../examples/orders/app.rs"]
mod app;
mod scale_out_support;

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use rdkafka::consumer::Consumer;
use rdkafka::message::{Headers, Message};
use rdkafka::producer::FutureRecord;

use brook::api::{Brook, Subscribe};
use brook::broker::{ErrorKind, NewTopic, TopicConfig};
use brook::{Backend, Broker, Client, ProduceRecord, StartAt};
use brook_server::{GrpcConfig, GrpcServer};
use scale_out_support::{KafkaCluster, PATIENCE};

/// The three implementations on fresh state, and what keeps the remote ones up.
struct Three {
    embedded: Broker,
    _server: GrpcServer,
    remote: Client,
    _cluster: KafkaCluster,
    _cluster_dir: tempfile::TempDir,
    kafka: Backend,
}

impl Three {
    async fn start() -> Three {
        let server = GrpcServer::start(
            Broker::ephemeral().await.expect("server's broker"),
            "127.0.0.1:0".parse().expect("address"),
            GrpcConfig::default(),
        )
        .await
        .expect("gRPC server");
        let remote = Client::connect(format!("http://{}", server.local_addr()))
            .await
            .expect("connect");
        let cluster_dir = tempfile::tempdir().expect("tempdir");
        let cluster = KafkaCluster::start(cluster_dir.path());
        let kafka = brook::kafka::connect(&cluster.url)
            .await
            .expect("the cluster answers");
        Three {
            embedded: Broker::ephemeral().await.expect("broker"),
            _server: server,
            remote,
            _cluster: cluster,
            _cluster_dir: cluster_dir,
            kafka,
        }
    }
}

async fn within<T>(what: &str, work: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, work)
        .await
        .unwrap_or_else(|_| panic!("{what} took longer than {PATIENCE:?}"))
}

async fn orders(brook: &impl Brook) -> Vec<String> {
    within("the orders app", app::run(brook))
        .await
        .expect("the app succeeded")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_orders_example_prints_the_same_lines_on_all_three() {
    let three = Three::start().await;
    let embedded = orders(&three.embedded).await;
    assert_eq!(embedded, orders(&three.remote).await, "remote");
    assert_eq!(embedded, orders(&three.kafka).await, "on the Kafka cluster");
    for expected in [
        "total alice: 9.60",
        "total carol: 11.70",
        "committed billing orders-0 -> 4",
    ] {
        assert!(
            embedded.iter().any(|l| l == expected),
            "{expected:?} in {embedded:#?}"
        );
    }
    assert!(
        embedded.last().is_some_and(|l| l.ends_with("bob 2.00")),
        "{embedded:#?}"
    );
}

async fn error_kinds(brook: &impl Brook) -> Vec<ErrorKind> {
    brook.create_topic("t", 1).await.expect("create");
    let kind = |e: brook::api::Error| e.kind();
    vec![
        brook
            .create_topic("t", 1)
            .await
            .map_err(kind)
            .expect_err("exists"),
        brook
            .create_topic("bad name", 1)
            .await
            .map_err(kind)
            .expect_err("name"),
        brook
            .fetch("missing", 0, 0, Duration::ZERO)
            .await
            .map_err(kind)
            .expect_err("unknown topic"),
        brook
            .fetch("t", 0, 99, Duration::ZERO)
            .await
            .map_err(kind)
            .expect_err("past the end"),
        brook
            .produce("t", vec![ProduceRecord::value(vec![0u8; 2 << 20])])
            .await
            .map_err(kind)
            .expect_err("too large"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_have_the_same_kind_on_all_three() {
    let three = Three::start().await;
    let embedded = error_kinds(&three.embedded).await;
    assert_eq!(embedded, error_kinds(&three.remote).await, "remote");
    assert_eq!(
        embedded,
        within("errors", error_kinds(&three.kafka)).await,
        "Kafka"
    );
    assert_eq!(
        embedded,
        [
            ErrorKind::AlreadyExists,
            ErrorKind::InvalidArgument,
            ErrorKind::NotFound,
            ErrorKind::OutOfRange,
            ErrorKind::TooLarge
        ]
    );
}

/// The partition of each of 64 keys, produced one call per key.
async fn partitions_of_keys(brook: &impl Brook) -> Vec<u32> {
    brook.create_topic("keyed", 7).await.expect("create");
    let mut partitions = Vec::new();
    for i in 0..64 {
        let positions = brook
            .produce(
                "keyed",
                vec![ProduceRecord::keyed(format!("customer-{i}"), "v")],
            )
            .await
            .expect("produce");
        partitions.push(positions[0].partition);
    }
    partitions
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_land_on_the_same_partition_number_everywhere() {
    let three = Three::start().await;
    let embedded = partitions_of_keys(&three.embedded).await;
    let expected: Vec<u32> = (0..64)
        .map(|i| {
            brook::broker::partitioner::partition_for_key(format!("customer-{i}").as_bytes(), 7)
        })
        .collect();
    assert_eq!(embedded, expected, "murmur2, as Kafka's Java client");
    assert_eq!(embedded, partitions_of_keys(&three.remote).await, "remote");
    assert_eq!(
        embedded,
        within("keyed produce", partitions_of_keys(&three.kafka)).await,
        "Kafka"
    );
    // A plain Kafka client told partitioner=murmur2_random agrees, on the same cluster.
    let producer = three._cluster.producer();
    for (i, want) in expected.iter().enumerate() {
        let key = format!("customer-{i}");
        let delivery = producer
            .send(
                FutureRecord::<str, str>::to("keyed").key(&key).payload("v"),
                PATIENCE,
            )
            .await
            .expect("delivered");
        assert_eq!(delivery.partition, *want as i32, "{key}");
    }
}

/// A record with headers, a null key and a chosen timestamp, read back by fetch and by
/// subscribe.
async fn round_trip(brook: &impl Brook) -> (brook::ConsumerRecord, brook::ConsumerRecord) {
    brook.create_topic("kept", 1).await.expect("create");
    let record = ProduceRecord {
        value: Some(Bytes::from_static(b"payload")),
        headers: vec![
            ("trace".into(), Bytes::from_static(b"abc")),
            ("trace".into(), Bytes::from_static(b"repeated")),
            ("empty".into(), Bytes::new()),
        ],
        timestamp: Some(1_700_000_000_123),
        ..ProduceRecord::default()
    };
    let position = brook.produce("kept", vec![record]).await.expect("produce")[0];
    assert_eq!(position.timestamp, 1_700_000_000_123);
    let fetched = brook
        .fetch("kept", 0, position.offset, Duration::ZERO)
        .await
        .expect("fetch");
    let mut stream = brook
        .subscribe(Subscribe::partition("kept", 0, StartAt::Earliest))
        .await
        .expect("subscribe");
    let streamed = within("a streamed record", stream.next())
        .await
        .expect("a record")
        .expect("no error");
    (fetched.records[0].clone(), streamed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_keep_keys_values_headers_and_timestamps_on_all_three() {
    let three = Three::start().await;
    let embedded = round_trip(&three.embedded).await;
    assert_eq!(embedded.0, embedded.1);
    assert_eq!(embedded.0.key, None);
    assert_eq!(embedded.0.headers.len(), 3);
    assert_eq!(embedded, round_trip(&three.remote).await, "remote");
    assert_eq!(
        embedded,
        within("round trip", round_trip(&three.kafka)).await,
        "Kafka"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_kafka_cannot_do_is_refused_saying_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = KafkaCluster::start(dir.path());
    let kafka = brook::kafka::connect(&cluster.url).await.expect("connect");
    let mut config = TopicConfig::default();
    config
        .set("brook.durability", "none")
        .expect("a brook setting");
    let mut new = NewTopic::new("durable", 1);
    new.config = config;
    let err = kafka.create_topic(new).await.expect_err("refused");
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    let text = err.to_string();
    assert!(
        text.contains("brook.durability") && text.contains("acks=all"),
        "{text}"
    );
    // Settings Kafka has are passed on, and the description reads them back.
    let mut config = TopicConfig::default();
    config.set("retention.ms", "3600000").expect("retention");
    let mut new = NewTopic::new("retained", 2);
    new.config = config;
    let described = kafka.create_topic(new).await.expect("created");
    assert_eq!(described.partitions.len(), 2);
    assert!(
        described
            .overrides
            .contains(&("retention.ms", "3600000".to_owned())),
        "{:?}",
        described.overrides
    );
    // Nothing was created for the refused topic.
    assert_eq!(
        kafka
            .describe_topic("durable")
            .await
            .map_err(|e| e.kind())
            .expect_err("none"),
        ErrorKind::NotFound
    );
    // A bad cluster URL fails before anything is tried.
    let err = brook::kafka::connect("localhost:9092")
        .await
        .expect_err("no scheme");
    assert!(err.to_string().contains("kafka://"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_reply_on_a_cluster_uses_brooks_headers_and_reply_topic() {
    use brook::broker::reqreply::{CORRELATION_ID_HEADER, REPLY_TOPIC_HEADER};
    use brook::broker::{Answer, Call, Request};

    let dir = tempfile::tempdir().expect("tempdir");
    // A brook cluster reserves `__brook_replies` to principals named for it.
    let cluster = KafkaCluster::start_secured(dir.path());
    let kafka = cluster.connect().await;
    kafka
        .create_topic(NewTopic::new("prices", 2))
        .await
        .expect("topic");
    let responder = kafka.clone();
    let responding = tokio::spawn(async move {
        responder
            .respond("prices", "pricing", |request: Request| async move {
                let asked = String::from_utf8_lossy(request.value.as_deref().unwrap_or_default())
                    .into_owned();
                Ok::<_, String>(Answer::value(format!("price of {asked}: 42")))
            })
            .await
    });
    let reply = within("a call", kafka.call("prices", Call::new("apples")))
        .await
        .expect("replied");
    assert_eq!(reply.value.as_deref(), Some(&b"price of apples: 42"[..]));
    assert_eq!(&*reply.topic, "__brook_replies");
    // The request is a record on the cluster with Spring Kafka's headers, readable by any
    // Kafka client.
    let consumer = cluster.consumer("inspector");
    consumer.subscribe(&["prices"]).expect("subscribe");
    let message = within("the request record", consumer.recv())
        .await
        .expect("a record");
    let headers = message.headers().expect("headers");
    let header = |name: &str| {
        headers
            .iter()
            .find(|h| h.key == name)
            .and_then(|h| h.value)
            .map(<[u8]>::to_vec)
    };
    assert_eq!(
        header(REPLY_TOPIC_HEADER),
        Some(b"__brook_replies".to_vec())
    );
    assert_eq!(
        header(CORRELATION_ID_HEADER).as_deref(),
        Some(reply.correlation_id.as_bytes().as_ref())
    );
    assert_eq!(message.payload(), Some(&b"apples"[..]));
    responding.abort();
}
