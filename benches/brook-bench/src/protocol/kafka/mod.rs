//! The Kafka door, benched with librdkafka (the engine under kcat and the Confluent clients):
//! what an unchanged Kafka application gets from brook.
//!
//! librdkafka is a C library built from source, so it stays out of the default build: the
//! bench protocol is compiled only with this crate's `kafka` feature (the `brook` binary's `bench-kafka`)
//! ([`librdkafka`]); over TLS (`--tls-ca`) only with `kafka-tls` (`bench-kafka-tls`: librdkafka
//! on the system's OpenSSL). This module is always built so `--kafka-addr` and `--acks` parse the same
//! in every build, and so a build without the feature says how to get one
//! ([`require_built`]) instead of failing somewhere less clear.

#[cfg(feature = "kafka")]
mod librdkafka;

use super::Protocol;
#[cfg(feature = "kafka")]
use crate::Target;
#[cfg(feature = "kafka")]
use brook::server::DoorKind;

/// Where the Kafka protocols connect without `--kafka-addr`: `brook serve`'s default.
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
    /// --protocol kafka: produce in transactions of --txn-records records (one
    /// `transactional.id` per producer; acks=all, as transactions require), the last batch of
    /// each acknowledged once committed. `--transactional false,true` benches both in one run.
    #[arg(
        long,
        value_delimiter = ',',
        num_args = 0..=1,
        default_value = "false",
        default_missing_value = "true"
    )]
    transactional: Vec<bool>,
    /// --protocol kafka --transactional: records per transaction. A transaction is committed
    /// after the batch that brings it to this many (or the producer's last batch), so it
    /// spans ceil(N / --batch) batches, sent with up to --in-flight in flight. The issue's
    /// goal is stated for 1000; Kafka Streams under exactly_once_v2 commits every 100 ms
    /// (`commit.interval.ms`), about 100 000 records at a million records per second.
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    txn_records: u64,
    /// --protocol kafka: the consumers' `isolation.level`. `--isolation
    /// read_committed,read_uncommitted` benches both in one run.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "read_committed"
    )]
    isolation: Vec<Isolation>,
    /// --protocol kafka: a librdkafka property for every client of the run, set after the
    /// bench's own (as `kcat -X` and `rdkafka_performance -X` take them), e.g. `-X
    /// linger.ms=20`. Repeatable.
    #[arg(short = 'X', long = "kafka-config", value_name = "KEY=VALUE", value_parser = parse_property)]
    kafka_config: Vec<(String, String)>,
}

/// `KEY=VALUE`, both non-empty.
fn parse_property(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() && !value.is_empty() => {
            Ok((key.trim().to_owned(), value.to_owned()))
        }
        _ => Err(format!("{text:?}: expected KEY=VALUE, as in linger.ms=20")),
    }
}

/// The consumers' `isolation.level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
#[value(rename_all = "snake_case")]
pub(crate) enum Isolation {
    ReadCommitted,
    ReadUncommitted,
}

impl Isolation {
    #[cfg_attr(not(feature = "kafka"), allow(dead_code))]
    fn name(self) -> &'static str {
        match self {
            Isolation::ReadCommitted => "read_committed",
            Isolation::ReadUncommitted => "read_uncommitted",
        }
    }
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
    /// One set of options per run the lists ask for (every `--transactional` value with every
    /// `--isolation`), each with one value of each.
    pub(crate) fn variants(&self) -> Vec<KafkaOptions> {
        let mut variants = Vec::new();
        for &transactional in &self.transactional {
            for &isolation in &self.isolation {
                variants.push(KafkaOptions {
                    transactional: vec![transactional],
                    isolation: vec![isolation],
                    ..self.clone()
                });
            }
        }
        variants
    }

    /// The Kafka door's address for a run against a running brook: `--kafka-addr`, else
    /// `brook serve`'s default.
    pub(crate) fn addr(&self) -> &str {
        self.kafka_addr.as_deref().unwrap_or(KAFKA_DEFAULT_ADDR)
    }

    /// `--acks` as a ProduceRequest carries it: 1, or -1 for all.
    pub(crate) fn acks_code(&self) -> i16 {
        match self.acks {
            Acks::Leader => 1,
            Acks::All => -1,
        }
    }

    fn is_transactional(&self) -> bool {
        self.transactional.first().copied().unwrap_or(false)
    }

    #[cfg_attr(not(feature = "kafka"), allow(dead_code))]
    fn isolation(&self) -> Isolation {
        self.isolation
            .first()
            .copied()
            .unwrap_or(Isolation::ReadCommitted)
    }

    /// How reports name the Kafka protocol: the door, its producer's acks, transactions, and
    /// the consumers' isolation when it is not librdkafka's default.
    pub(crate) fn label(&self) -> &'static str {
        let committed = self.isolation() == Isolation::ReadCommitted;
        match (self.is_transactional(), self.acks, committed) {
            (true, _, true) => "kafka (transactional)",
            (true, _, false) => "kafka (transactional, read_uncommitted)",
            (false, Acks::Leader, true) => "kafka (acks=1)",
            (false, Acks::Leader, false) => "kafka (acks=1, read_uncommitted)",
            (false, Acks::All, true) => "kafka (acks=all)",
            (false, Acks::All, false) => "kafka (acks=all, read_uncommitted)",
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

/// The line a Kafka bench built without TLS prints for `--tls-ca`.
#[cfg(feature = "kafka")]
const TLS_REBUILD_HINT: &str = "--protocol kafka --tls-ca: this build's librdkafka has no TLS: \
                                rebuild with `cargo build --release --features bench-kafka-tls` \
                                (librdkafka with OpenSSL: apt install libssl-dev)";

/// Connects librdkafka clients to the embedded server's Kafka door, else to `--kafka-addr`;
/// over TLS (`security.protocol=ssl`) trusting `tls_ca` when it is set.
#[cfg(feature = "kafka")]
pub(super) fn connect(
    target: &Target,
    options: &KafkaOptions,
    tls_ca: Option<&[u8]>,
) -> anyhow::Result<(Box<dyn Protocol>, String)> {
    if tls_ca.is_some() && !cfg!(feature = "kafka-tls") {
        anyhow::bail!(TLS_REBUILD_HINT);
    }
    let tls_ca = tls_ca
        .map(|pem| String::from_utf8(pem.to_vec()))
        .transpose()
        .map_err(|_| anyhow::anyhow!("--tls-ca: not a PEM file (not UTF-8)"))?;
    let bootstrap = match (target.door_addr(DoorKind::Kafka), target.broker()) {
        (Some(addr), _) => addr.to_string(),
        (None, Some(_)) => anyhow::bail!("the embedded server is not serving its Kafka door"),
        (None, None) => options.addr().to_owned(),
    };
    let acks = match options.acks {
        Acks::Leader => "1",
        Acks::All => "all",
    };
    let settings = librdkafka::Settings {
        acks,
        transactional: options.is_transactional(),
        txn_records: options.txn_records,
        isolation: options.isolation().name(),
        tls_ca,
        properties: options.kafka_config.clone(),
    };
    Ok((librdkafka::connect(&bootstrap, settings)?, bootstrap))
}

/// Without the feature: the rebuild hint (the bench checks [`require_built`] before this).
#[cfg(not(feature = "kafka"))]
pub(super) fn connect(
    _target: &crate::Target,
    _options: &KafkaOptions,
    _tls_ca: Option<&[u8]>,
) -> anyhow::Result<(Box<dyn Protocol>, String)> {
    anyhow::bail!(REBUILD_HINT)
}

#[cfg(test)]
mod tests {
    use super::parse_property;

    #[test]
    fn a_property_is_key_equals_value() {
        assert_eq!(
            parse_property("linger.ms=20"),
            Ok(("linger.ms".to_owned(), "20".to_owned()))
        );
        // Only the first '=' splits: values may hold more.
        assert_eq!(
            parse_property("sasl.jaas.config=a=b"),
            Ok(("sasl.jaas.config".to_owned(), "a=b".to_owned()))
        );
        for bad in ["linger.ms", "=20", "linger.ms=", ""] {
            let err = parse_property(bad).unwrap_err();
            assert!(err.contains("KEY=VALUE"), "{bad}: {err}");
        }
    }
}
