//! [`api::Brook`](crate::api::Brook) on a Kafka cluster: the third place the same application
//! code runs, beside the embedded broker and a remote `brook serve` (the `kafka-backend`
//! feature: it builds librdkafka from source, so the default build stays free of C).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use brook::api::Brook;
//! let cluster = brook::kafka::connect("kafka://127.0.0.1:9092").await?;
//! // The trait's call (the Backend's own `create_topic` takes a `NewTopic`).
//! Brook::create_topic(&cluster, "orders", 3).await?;
//! cluster.close().await?;
//! # Ok(()) }
//! ```
//!
//! A connected cluster is a [`Backend`] of the broker API, the same type a gateway's doors
//! serve, and `Backend` implements the trait. Its calls are the broker's, answered by the
//! cluster through `brook-cluster`: keys land on the partition brook would choose (murmur2),
//! a produce is acknowledged by every in-sync replica (`acks=all`, idempotent), groups are
//! coordinated by the cluster and committed offsets are the cluster's. What a cluster cannot
//! do is an error that says so (a topic with `brook.durability`, brook's own setting). What
//! changes in guarantees is in `docs/scale-out.md`.

use std::sync::Arc;

use brook_broker::Backend;
pub use brook_cluster::{ClusterConfig, ConfigError, ConnectError, KafkaCluster};

/// Reaches the cluster at `url` (`kafka://HOST:PORT[,HOST:PORT...]`) with the defaults.
pub async fn connect(url: &str) -> Result<Backend, ConnectError> {
    connect_with(ClusterConfig::from_url(url)?).await
}

/// Reaches the cluster `config` names, with its client properties (TLS, SASL, ...) and limits.
pub async fn connect_with(config: ClusterConfig) -> Result<Backend, ConnectError> {
    let cluster = KafkaCluster::connect(config).await?;
    Ok(Backend::Cluster(Arc::new(cluster)))
}
