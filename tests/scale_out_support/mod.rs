//! What the scale-out tests share: a Kafka cluster to move to, and brook servers to move from.
//!
//! The cluster is a real Kafka-protocol broker in a separate process: the built `brook`
//! binary serving only its Kafka door, on a data directory of its own, with no fsync and no
//! initial rebalance delay so groups form at once. Every client the tests point at it
//! (librdkafka through `brook-cluster`, the `rdkafka` crate directly) talks to it over a socket
//! as to any Kafka cluster.

#![allow(dead_code)] // each test binary uses its own subset

#[path = "../serve_child/mod.rs"]
mod serve_child;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use rdkafka::consumer::StreamConsumer;
use rdkafka::producer::FutureProducer;
use rdkafka::ClientConfig;

pub(crate) use serve_child::{brook, Served};

/// How long a test waits for something that should take well under a second.
pub(crate) const PATIENCE: Duration = Duration::from_secs(30);

/// The Kafka cluster a test moves to: `brook serve` with only its Kafka door, in a process
/// of its own, on `dir`.
pub(crate) struct KafkaCluster {
    pub server: Served,
    /// `HOST:PORT` for `bootstrap.servers`.
    pub bootstrap: String,
    /// `kafka://HOST:PORT`, as `brook serve --backend` and `brook migrate --to` take it.
    pub url: String,
    /// The librdkafka properties its clients need (SASL for [`KafkaCluster::start_secured`]).
    pub properties: Vec<(&'static str, &'static str)>,
}

/// The superuser a secured cluster's clients log in as (SCRAM-SHA-256).
const CLUSTER_USER: &str = "gateway";
const CLUSTER_PASSWORD: &str = "gateway-secret";

impl KafkaCluster {
    /// Starts the cluster on `dir`.
    pub(crate) fn start(dir: &Path) -> KafkaCluster {
        Self::start_with(dir, &[], Vec::new())
    }

    /// Starts the cluster on `dir` with `--auth on` and one superuser its clients log in as:
    /// a brook broker reserves its internal topics (`__brook_replies`) to principals an ACL or
    /// `--superusers` names, as a secured Kafka cluster would its own, so a gateway's calls
    /// need one.
    pub(crate) fn start_secured(dir: &Path) -> KafkaCluster {
        let data = dir.to_str().expect("utf-8 path");
        let mut add = brook(&[
            "user",
            "add",
            CLUSTER_USER,
            "--data-dir",
            data,
            "--password-stdin",
        ]);
        let mut child = add
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("brook user add");
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().expect("stdin");
            writeln!(stdin, "{CLUSTER_PASSWORD}").expect("password");
        }
        assert!(child.wait().expect("brook user add").success());
        let superuser = format!("User:{CLUSTER_USER}");
        Self::start_with(
            dir,
            &["--auth", "on", "--superusers", &superuser],
            vec![
                ("security.protocol", "SASL_PLAINTEXT"),
                ("sasl.mechanism", "SCRAM-SHA-256"),
                ("sasl.username", CLUSTER_USER),
                ("sasl.password", CLUSTER_PASSWORD),
            ],
        )
    }

    fn start_with(
        dir: &Path,
        extra: &[&str],
        properties: Vec<(&'static str, &'static str)>,
    ) -> KafkaCluster {
        let dir = dir.to_str().expect("utf-8 path");
        let mut args = vec![
            "--data-dir",
            dir,
            "--kafka-addr",
            "127.0.0.1:0",
            "--grpc-addr",
            "off",
            "--http-addr",
            "off",
            "--durability",
            "none",
            "--kafka-group-initial-rebalance-delay-ms",
            "0",
        ];
        args.extend_from_slice(extra);
        let server = Served::start(&args);
        let bootstrap = server.addr("kafka");
        KafkaCluster {
            url: format!("kafka://{bootstrap}"),
            bootstrap,
            server,
            properties,
        }
    }

    /// brook's client of the cluster, with the properties it needs.
    pub(crate) async fn connect(&self) -> brook::Backend {
        let mut config = brook::kafka::ClusterConfig::from_url(&self.url).expect("cluster url");
        for (key, value) in &self.properties {
            config = config.property(*key, *value);
        }
        brook::kafka::connect_with(config).await.expect("connect")
    }

    /// `--backend-properties` for a gateway (`none` without any).
    pub(crate) fn backend_properties(&self) -> String {
        if self.properties.is_empty() {
            return "none".into();
        }
        self.properties
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.bootstrap)
            .set("socket.timeout.ms", "10000")
            .set("topic.metadata.refresh.interval.ms", "1000");
        for (key, value) in &self.properties {
            config.set(*key, *value);
        }
        config
    }

    /// A librdkafka producer placing keys as brook does (`partitioner=murmur2_random`).
    pub(crate) fn producer(&self) -> FutureProducer {
        let mut config = self.client_config();
        config
            .set("acks", "all")
            .set("partitioner", "murmur2_random")
            .set("message.timeout.ms", "15000");
        config.create().expect("producer")
    }

    /// A librdkafka consumer in `group` that commits only when told to.
    pub(crate) fn consumer(&self, group: &str) -> StreamConsumer {
        let mut config = self.client_config();
        config
            .set("group.id", group)
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "300")
            .set("fetch.wait.max.ms", "100");
        config.create().expect("consumer")
    }
}
