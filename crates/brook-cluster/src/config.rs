//! How a [`crate::KafkaCluster`] reaches its cluster, and the one place librdkafka's clients
//! are configured.
//!
//! A cluster is named by a URL, `kafka://HOST:PORT[,HOST:PORT...]` (the bootstrap servers),
//! plus librdkafka properties for what a real cluster asks of its clients (`security.protocol`,
//! `sasl.*`, `ssl.*`, `client.id`, ...). The properties brook sets itself because its promises
//! depend on them (the partitioner, offset commits, idempotence, the group) are refused when
//! given, rather than silently overridden. The broker's own settings ([`BrokerConfig`]: the
//! request limits, request-reply's, automatic topic creation and the default partition count)
//! apply to the cluster's calls too, so a door in front of a cluster refuses what it refuses
//! in front of the local log; the data directory and the log settings are unused.

use std::time::Duration;

use brook_broker::BrokerConfig;
use brook_log::bounds::{check_bounds, wide, Bounded, Bounds, DAY_MS};
use rdkafka::ClientConfig;

use crate::error::ConfigError;

/// The scheme of a cluster URL.
pub const SCHEME: &str = "kafka://";

/// The `group.id` of the consumers outside any group: named, never joined, never committed to.
pub const READER_GROUP: &str = "brook.reader";

/// Properties brook sets on its clients and a caller may not: what each is for.
const RESERVED: &[(&str, &str)] = &[
    ("bootstrap.servers", "it is the URL's host list"),
    ("metadata.broker.list", "it is the URL's host list"),
    (
        "partitioner",
        "brook places keys with murmur2, as on its own log (murmur2_random)",
    ),
    ("group.id", "brook names the group of each subscription"),
    (
        "enable.auto.commit",
        "nothing is committed unless the application commits",
    ),
    (
        "enable.auto.offset.store",
        "nothing is committed unless the application commits",
    ),
    (
        "enable.idempotence",
        "produced records keep their order per partition only with it on",
    ),
    (
        "acks",
        "a produce is acknowledged by every in-sync replica (all)",
    ),
    (
        "auto.offset.reset",
        "each subscription says where it starts",
    ),
];

/// Where the cluster is and how to talk to it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClusterConfig {
    /// `HOST:PORT` of one or more of the cluster's brokers (librdkafka's `bootstrap.servers`).
    pub bootstrap: Vec<String>,
    /// librdkafka properties for every client (`security.protocol`, `sasl.mechanism`, ...).
    pub properties: Vec<(String, String)>,
    /// librdkafka properties of the producer alone (`compression.type`, `linger.ms`, ...):
    /// given to every client, librdkafka warns that a consumer ignores them.
    pub producer_properties: Vec<(String, String)>,
    /// How long one admin, metadata or offsets request may take before it fails as
    /// unavailable. Default 30 s.
    pub request_timeout_ms: u64,
    /// Replicas of each topic brook creates; `None`: the cluster's `default.replication.factor`.
    pub replication_factor: Option<u16>,
    /// Consumers kept for fetches (the request-reply door of gRPC and HTTP): up to this many
    /// fetches run at once, later ones wait their turn. Default 8.
    pub fetch_consumers_max: usize,
    /// The broker's settings, applied to the cluster's calls: `limits`, `reqreply`,
    /// `auto_create_topics` (many managed clusters refuse topic creation by clients, which then
    /// fails the produce) and `default_partitions`.
    pub broker: BrokerConfig,
}

impl ClusterConfig {
    /// The defaults, for the cluster whose brokers are `bootstrap` (`HOST:PORT` each).
    pub fn new(bootstrap: Vec<String>) -> Self {
        Self {
            bootstrap,
            properties: Vec::new(),
            producer_properties: Vec::new(),
            request_timeout_ms: 30_000,
            replication_factor: None,
            fetch_consumers_max: 8,
            broker: BrokerConfig::default(),
        }
    }

    /// Parses `kafka://HOST:PORT[,HOST:PORT...]` into the defaults for that cluster.
    pub fn from_url(url: &str) -> Result<Self, ConfigError> {
        let bad = |reason: String| ConfigError::Url {
            url: url.to_owned(),
            reason,
        };
        let hosts = url
            .strip_prefix(SCHEME)
            .ok_or_else(|| bad(format!("it must start with {SCHEME}")))?;
        let bootstrap: Vec<String> = hosts.split(',').map(str::to_owned).collect();
        for host in &bootstrap {
            check_host(host).map_err(bad)?;
        }
        Ok(Self::new(bootstrap))
    }

    /// The cluster as a URL, `kafka://HOST:PORT[,...]`.
    pub fn url(&self) -> String {
        format!("{SCHEME}{}", self.bootstrap.join(","))
    }

    /// Adds a librdkafka property (`KEY=VALUE` on the command line).
    pub fn property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.push((key.into(), value.into()));
        self
    }

    /// Every numeric setting with its range.
    pub const BOUNDS: &'static [Bounded<ClusterConfig>] = &[
        Bounded::new(
            "backend.request_timeout_ms",
            Bounds::new(100, DAY_MS),
            |c| Some(c.request_timeout_ms),
        ),
        Bounded::new("backend.fetch_consumers_max", Bounds::new(1, 1024), |c| {
            Some(wide(c.fetch_consumers_max))
        }),
        Bounded::new("backend.replication_factor", Bounds::new(1, 32_767), |c| {
            c.replication_factor.map(u64::from)
        }),
    ];

    /// Checks every setting before any client is made; the error names the setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.bootstrap.is_empty() {
            return Err(ConfigError::Invalid {
                reason: "the cluster needs at least one HOST:PORT".into(),
            });
        }
        for host in &self.bootstrap {
            check_host(host).map_err(|reason| ConfigError::Invalid {
                reason: format!("bootstrap server {host:?}: {reason}"),
            })?;
        }
        for (key, _) in self.properties.iter().chain(&self.producer_properties) {
            if let Some((_, why)) = RESERVED.iter().find(|(reserved, _)| reserved == key) {
                return Err(ConfigError::Reserved {
                    key: key.clone(),
                    why,
                });
            }
        }
        check_bounds(self, Self::BOUNDS).map_err(|reason| ConfigError::Invalid { reason })?;
        self.broker.validate().map_err(|e| ConfigError::Invalid {
            reason: e.to_string(),
        })
    }

    /// The request timeout as a duration.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// What every client shares: the cluster, the caller's properties, brook's client id.
    fn base(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", self.bootstrap.join(","))
            .set("client.id", "brook")
            .set(
                "socket.timeout.ms",
                self.request_timeout_ms.clamp(10, 300_000).to_string(),
            );
        for (key, value) in &self.properties {
            config.set(key, value);
        }
        config
    }

    /// The producer: acknowledged by every in-sync replica, idempotent (order kept per
    /// partition across retries), keys placed with murmur2 like brook's own log.
    pub(crate) fn producer(&self) -> ClientConfig {
        let mut config = self.base();
        config
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("partitioner", "murmur2_random")
            .set("linger.ms", "5")
            .set(
                "message.timeout.ms",
                self.request_timeout_ms.clamp(1000, 900_000).to_string(),
            );
        for (key, value) in &self.producer_properties {
            config.set(key, value);
        }
        config
    }

    /// A consumer outside any group (fetches, partition subscriptions, metadata); it fails on
    /// an offset out of range instead of jumping.
    ///
    /// librdkafka refuses `assign` from a consumer without a `group.id` ("Local: Unknown
    /// group"), so it carries [`READER_GROUP`]: it never joins that group (it assigns its
    /// partitions itself) and never commits (auto commit is off and nothing calls commit), so
    /// the cluster keeps no state for it. On a cluster with ACLs, the principal needs
    /// `Describe` on that group (librdkafka looks its coordinator up).
    pub(crate) fn reader(&self) -> ClientConfig {
        let mut config = self.base();
        config
            .set("group.id", READER_GROUP)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "error")
            .set("enable.partition.eof", "false")
            .set("allow.auto.create.topics", "false")
            .set("fetch.wait.max.ms", "100");
        config
    }

    /// A consumer in `group`, starting per `reset` where the group has no commit, committing
    /// only when told to.
    pub(crate) fn member(&self, group: &str, reset: &str) -> ClientConfig {
        let mut config = self.reader();
        config
            .set("group.id", group)
            .set("auto.offset.reset", reset);
        config
    }

    /// An admin client.
    pub(crate) fn admin(&self) -> ClientConfig {
        self.base()
    }
}

/// Checks one `HOST:PORT`.
fn check_host(host: &str) -> Result<(), String> {
    let Some((name, port)) = host.rsplit_once(':') else {
        return Err(format!("{host:?} is not HOST:PORT"));
    };
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err(format!("{host:?} has no host name"));
    }
    match port.parse::<u16>() {
        Ok(port) if port > 0 => Ok(()),
        _ => Err(format!("{host:?} has no port (1 to 65535)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_names_one_or_more_brokers() {
        let one = ClusterConfig::from_url("kafka://127.0.0.1:9092").expect("one");
        assert_eq!(one.bootstrap, ["127.0.0.1:9092"]);
        let three = ClusterConfig::from_url("kafka://a:1,b:2,c:3").expect("three");
        assert_eq!(three.bootstrap, ["a:1", "b:2", "c:3"]);
        assert_eq!(three.url(), "kafka://a:1,b:2,c:3");
        three.validate().expect("valid");
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        for (url, says) in [
            ("127.0.0.1:9092", "must start with kafka://"),
            ("kafka://", "is not HOST:PORT"),
            ("kafka://host", "is not HOST:PORT"),
            ("kafka://:9092", "no host name"),
            ("kafka://host:0", "no port"),
            ("kafka://host:http", "no port"),
            ("kafka://a:1,,b:2", "is not HOST:PORT"),
        ] {
            let err = ClusterConfig::from_url(url).expect_err(url).to_string();
            assert!(err.contains(says), "{url}: {err}");
        }
    }

    #[test]
    fn properties_brook_relies_on_are_refused() {
        let config = ClusterConfig::from_url("kafka://h:1")
            .expect("url")
            .property("security.protocol", "SASL_SSL");
        config.validate().expect("an ordinary property");
        let err = config
            .property("partitioner", "consistent_random")
            .validate()
            .expect_err("reserved")
            .to_string();
        assert!(
            err.contains("partitioner") && err.contains("murmur2"),
            "{err}"
        );
    }

    #[test]
    fn settings_out_of_range_name_themselves() {
        let mut config = ClusterConfig::new(vec!["h:1".into()]);
        config.request_timeout_ms = 0;
        let err = config.validate().expect_err("timeout").to_string();
        assert!(err.contains("backend.request_timeout_ms"), "{err}");
        let mut config = ClusterConfig::new(vec!["h:1".into()]);
        config.broker.limits.fetch_bytes_max = 0;
        let err = config.validate().expect_err("limit").to_string();
        assert!(err.contains("fetch_bytes_max"), "{err}");
        assert!(ClusterConfig::new(Vec::new()).validate().is_err());
    }
}
