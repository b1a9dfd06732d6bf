//! Shared by the Kafka door's end-to-end tests: a broker with its Kafka listener on
//! 127.0.0.1:0 in this process, and librdkafka clients (the `rdkafka` crate) pointed at it,
//! configured to notice things quickly so each test takes seconds.

#![allow(dead_code)] // each test binary uses its own subset

pub(crate) mod child;
pub(crate) mod python;
pub(crate) mod raw;

use std::path::Path;
use std::time::Duration;

use brook_broker::{Broker, BrokerConfig, Durability, NewTopic};
use brook_client::Client;
use brook_kafka::{KafkaConfig, KafkaServer};
use brook_server::{GrpcConfig, GrpcServer};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic as AdminNewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::StreamConsumer;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::FutureProducer;
use rdkafka::ClientConfig;

/// How long a test waits for something that should happen in well under a second.
pub(crate) const PATIENCE: Duration = Duration::from_secs(20);

/// A broker on a data directory with its Kafka door listening on a loopback port.
pub(crate) struct TestBroker {
    pub broker: Broker,
    pub kafka: KafkaServer,
    /// `host:port` for `bootstrap.servers`.
    pub bootstrap: String,
}

impl TestBroker {
    /// Opens (or reopens) the broker on `dir` and starts its Kafka listener.
    pub(crate) async fn start(dir: &Path) -> TestBroker {
        Self::start_with(dir, |_| {}).await
    }

    /// [`TestBroker::start`] with the broker's settings changed by `configure` first.
    pub(crate) async fn start_with(
        dir: &Path,
        configure: impl FnOnce(&mut BrokerConfig),
    ) -> TestBroker {
        // RUST_LOG=brook_kafka=debug shows the door's side of a failing test.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let mut config = BrokerConfig::new(dir);
        // Tests exercise the protocol, not the disk: skip fsync.
        config.log.durability = Durability::None;
        configure(&mut config);
        let broker = Broker::open(config).await.expect("broker opens");
        let kafka = KafkaServer::start(
            broker.clone(),
            "127.0.0.1:0".parse().expect("address"),
            KafkaConfig {
                group_initial_rebalance_delay: Duration::ZERO,
                ..KafkaConfig::default()
            },
        )
        .await
        .expect("Kafka listener starts");
        let bootstrap = kafka.local_addr().to_string();
        TestBroker {
            broker,
            kafka,
            bootstrap,
        }
    }

    /// Stops the listener and closes the broker clean.
    pub(crate) async fn stop(self) {
        self.kafka.stop().await.expect("listener stops");
        self.broker.close().await.expect("broker closes");
    }

    pub(crate) async fn create_topic(&self, name: &str, partitions: u32) {
        self.broker
            .create_topic(NewTopic::new(name, partitions))
            .await
            .expect("topic created");
    }

    /// A producer with acks=all and any extra settings.
    pub(crate) fn producer(&self, extra: &[(&str, &str)]) -> FutureProducer {
        producer(&self.bootstrap, extra)
    }

    /// A consumer in `group`: see [`consumer`].
    pub(crate) fn consumer(&self, group: &str, extra: &[(&str, &str)]) -> StreamConsumer {
        consumer(&self.bootstrap, group, extra)
    }

    pub(crate) fn admin(&self) -> AdminClient<DefaultClientContext> {
        client_config(&self.bootstrap)
            .create()
            .expect("admin client")
    }
}

/// librdkafka settings for `bootstrap` that notice a broker going and coming back quickly.
pub(crate) fn client_config(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("socket.timeout.ms", "10000")
        .set("topic.metadata.refresh.interval.ms", "1000")
        .set("reconnect.backoff.ms", "50")
        .set("reconnect.backoff.max.ms", "500");
    // BROOK_TEST_RDKAFKA_DEBUG=protocol,broker,cgrp shows librdkafka's side.
    if let Ok(debug) = std::env::var("BROOK_TEST_RDKAFKA_DEBUG") {
        config.set("debug", debug);
    }
    config
}

/// A producer of `bootstrap` with acks=all and any extra settings.
pub(crate) fn producer(bootstrap: &str, extra: &[(&str, &str)]) -> FutureProducer {
    let mut config = client_config(bootstrap);
    config
        .set("acks", "all")
        .set("message.timeout.ms", "15000")
        .set("linger.ms", "5");
    for (k, v) in extra {
        config.set(*k, *v);
    }
    config.create().expect("producer")
}

/// A consumer of `bootstrap` in `group` that starts from the earliest offset when the group has
/// no commit, commits only when told to, and notices a dead group member within seconds.
pub(crate) fn consumer(bootstrap: &str, group: &str, extra: &[(&str, &str)]) -> StreamConsumer {
    let mut config = client_config(bootstrap);
    config
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "300")
        .set("fetch.wait.max.ms", "100")
        .set("enable.partition.eof", "false");
    for (k, v) in extra {
        config.set(*k, *v);
    }
    config.create().expect("consumer")
}

/// A gRPC door on the same broker, and a client connected to it.
pub(crate) async fn grpc(tb: &TestBroker) -> (GrpcServer, Client) {
    let addr = "127.0.0.1:0".parse().expect("address");
    let server = GrpcServer::start(tb.broker.clone(), addr, GrpcConfig::default())
        .await
        .expect("gRPC server");
    let client = Client::connect(format!("http://{}", server.local_addr()))
        .await
        .expect("gRPC client");
    (server, client)
}

/// Creates a topic through the Kafka admin API.
pub(crate) async fn admin_create(
    admin: &AdminClient<DefaultClientContext>,
    name: &str,
    partitions: i32,
) {
    let results = admin
        .create_topics(
            &[AdminNewTopic::new(
                name,
                partitions,
                TopicReplication::Fixed(1),
            )],
            &AdminOptions::new(),
        )
        .await
        .expect("CreateTopics answered");
    results[0].as_ref().expect("topic created");
}

/// One received record, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Got {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
}

impl Got {
    pub(crate) fn of(m: &BorrowedMessage<'_>) -> Got {
        Got {
            partition: m.partition(),
            offset: m.offset(),
            key: m.key().map(<[u8]>::to_vec),
            value: m.payload().map(<[u8]>::to_vec),
        }
    }
}

/// Receives `n` records from `consumer`, failing the test if they take longer than PATIENCE.
pub(crate) async fn receive(consumer: &StreamConsumer, n: usize) -> Vec<Got> {
    let mut got = Vec::with_capacity(n);
    while got.len() < n {
        let message = tokio::time::timeout(PATIENCE, consumer.recv())
            .await
            .unwrap_or_else(|_| panic!("only {} of {n} records arrived", got.len()))
            .expect("consume");
        got.push(Got::of(&message));
    }
    got
}

/// The partitions of `topic` a consumer owns now (its current assignment).
pub(crate) fn owned<C: rdkafka::consumer::ConsumerContext>(
    consumer: &rdkafka::consumer::BaseConsumer<C>,
    topic: &str,
) -> std::collections::BTreeSet<i32> {
    use rdkafka::consumer::Consumer;
    consumer
        .assignment()
        .expect("assignment")
        .elements_for_topic(topic)
        .iter()
        .map(|e| e.partition())
        .collect()
}
