//! The Kafka door, benched with librdkafka (the engine under kcat and the Confluent clients):
//! what an unchanged Kafka application gets from brook.
//!
//! librdkafka is a C library built from source, so it stays out of the default build: the
//! bench protocol is compiled only with this crate's `kafka` feature (the `brook` binary's `bench-kafka`)
//! ([`librdkafka`]). This module is always built so `--kafka-addr` and `--acks` parse the same
//! in every build, and so a build without the feature says how to get one
//! ([`require_built`]) instead of failing somewhere less clear.

#[cfg(feature = "kafka")]
mod librdkafka;

use super::Protocol;
#[cfg(feature = "kafka")]
use crate::Target;
#[cfg(feature = "kafka")]
use brook::server::DoorKind;

/// Where the Kafka protocol connects without `--kafka-addr`: `brook serve`'s default.
#[cfg(feature = "kafka")]
const KAFKA_DEFAULT_ADDR: &str = "127.0.0.1:9092";

/// The line a build without the Kafka bench prints.
const REBUILD_HINT: &str = "--protocol kafka is not in this build: rebuild with `cargo build \
                            --release --features bench-kafka` (it compiles librdkafka)";

/// The Kafka protocol's own flags.
#[derive(Debug, Clone, clap::Args)]
// Only the bench-kafka build reads them; the flags exist in every build so a command line
// means the same everywhere.
#[cfg_attr(not(feature = "kafka"), allow(dead_code))]
pub(crate) struct KafkaOptions {
    /// --protocol kafka: a running brook's Kafka address. [default: 127.0.0.1:9092]
    #[arg(long, value_name = "HOST:PORT", conflicts_with = "embedded")]
    kafka_addr: Option<String>,
    /// --protocol kafka: when the broker acknowledges a produce (1: once appended; all: once
    /// durable under the topic's durability, as acks=all means on a one-replica broker).
    #[arg(long, value_enum, default_value = "1")]
    acks: Acks,
}

/// The producer's `acks` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(super) enum Acks {
    #[value(name = "1")]
    Leader,
    #[value(name = "all")]
    All,
}

impl KafkaOptions {
    /// How reports name the Kafka protocol: the door and its producer's acks.
    pub(crate) fn label(&self) -> &'static str {
        match self.acks {
            Acks::Leader => "kafka (acks=1)",
            Acks::All => "kafka (acks=all)",
        }
    }
}

/// Fails with the rebuild hint when this build has no Kafka bench.
pub(crate) fn require_built() -> anyhow::Result<()> {
    if cfg!(feature = "kafka") {
        Ok(())
    } else {
        anyhow::bail!(REBUILD_HINT)
    }
}

/// Connects librdkafka clients to the embedded server's Kafka door, else to `--kafka-addr`.
#[cfg(feature = "kafka")]
pub(super) fn connect(
    target: &Target,
    options: &KafkaOptions,
) -> anyhow::Result<(Box<dyn Protocol>, String)> {
    let bootstrap = match (target.door_addr(DoorKind::Kafka), target.broker()) {
        (Some(addr), _) => addr.to_string(),
        (None, Some(_)) => anyhow::bail!("the embedded server is not serving its Kafka door"),
        (None, None) => options
            .kafka_addr
            .clone()
            .unwrap_or_else(|| KAFKA_DEFAULT_ADDR.to_owned()),
    };
    let acks = match options.acks {
        Acks::Leader => "1",
        Acks::All => "all",
    };
    Ok((librdkafka::connect(&bootstrap, acks)?, bootstrap))
}

/// Without the feature: the rebuild hint (the bench checks [`require_built`] before this).
#[cfg(not(feature = "kafka"))]
pub(super) fn connect(
    _target: &crate::Target,
    _options: &KafkaOptions,
) -> anyhow::Result<(Box<dyn Protocol>, String)> {
    anyhow::bail!(REBUILD_HINT)
}
