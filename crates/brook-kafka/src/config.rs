//! Settings of the Kafka door, with their documented defaults and ranges
//! ([`KafkaConfig::BOUNDS`]).

use std::net::SocketAddr;
use std::time::Duration;

use brook_door::accept::{CONNECTIONS, CONNECTION_RATE, CONNECTION_RATE_BOUND, TIME_LIMIT_MS};
use brook_door::{ConnectionLimits, Framing, Security};
use brook_log::bounds::{check_bounds, Bounded, Bounds};

/// Default cap on one request frame (Kafka's `socket.request.max.bytes`, 100 MiB).
pub const DEFAULT_REQUEST_BYTES_MAX: usize = 100 * 1024 * 1024;
/// Default cap on open client connections (at most
/// [`brook_door::accept::CONNECTIONS_MAX_BOUND`]).
pub const DEFAULT_CONNECTIONS_MAX: usize = 1024;
/// Default wait before a new group's first rebalance completes (Kafka's
/// `group.initial.rebalance.delay.ms`), letting several members that start together join one
/// generation instead of rebalancing once per member.
pub const DEFAULT_GROUP_INITIAL_REBALANCE_DELAY: Duration = Duration::from_millis(3000);
/// Default session timeout of consumer-protocol (KIP-848) members (Kafka's
/// `group.consumer.session.timeout.ms`).
pub const DEFAULT_GROUP_CONSUMER_SESSION_TIMEOUT: Duration = Duration::from_secs(45);
/// Default heartbeat interval the door gives consumer-protocol members (Kafka's
/// `group.consumer.heartbeat.interval.ms`).
pub const DEFAULT_GROUP_CONSUMER_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);

/// Settings of the Kafka door. The address it listens on is not among them: it is the one
/// [`crate::KafkaServer::start`] is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaConfig {
    /// The address Metadata and FindCoordinator tell clients to connect to. `None` means the
    /// listener's own address; a wildcard address (`0.0.0.0`, `::`) is never advertised as is:
    /// it is replaced by the loopback address, which at least works on the same machine.
    pub advertised_addr: Option<String>,
    /// Largest request frame accepted, in bytes; a larger size prefix closes the connection
    /// before anything is allocated for the frame.
    pub request_bytes_max: usize,
    /// Most client connections served at once. When full, an idle connection (no
    /// request being answered) of the address holding the most is closed to let a new client
    /// in ([`brook_door::accept::ConnectionLimits`]); with none idle, further
    /// connections wait in the listen backlog until one closes.
    pub connections_max: usize,
    /// Connections one client address may hold; past it, its connection idle longest is
    /// closed, or with none idle the new one is refused. At or above `connections_max` (the
    /// default, 1024) there is no cap per address: lower it where many clients share a door.
    pub connections_per_addr_max: usize,
    /// New connections one client address may open a second (a second's worth at once, like
    /// Kafka's per-IP `connection_creation_rate` quota); past it a connection is closed as soon
    /// as it is accepted, before any other work, so a connection storm from one address does
    /// not hold up other clients' connects. Default 1048576
    /// ([`brook_door::accept::CONNECTION_RATE_BOUND`]): no limit.
    pub connection_rate_per_addr_max: u32,
    /// How long a connection may go without a request before it is closed (Kafka's
    /// `connections.max.idle.ms`). Default 10 minutes.
    pub idle_ms_max: u64,
    /// How long a request frame may take to arrive whole from its first byte. Default 30 s.
    pub request_read_ms_max: u64,
    /// How long a group with no generation yet waits for more members before its first
    /// rebalance completes. 0 in tests.
    pub group_initial_rebalance_delay: Duration,
    /// How long a consumer-protocol (KIP-848) member may go without a heartbeat before it is
    /// removed from its group (Kafka's `group.consumer.session.timeout.ms`, 45 s).
    pub group_consumer_session_timeout: Duration,
    /// How often consumer-protocol members are told to heartbeat (Kafka's
    /// `group.consumer.heartbeat.interval.ms`, 5 s); below the session timeout. A member learns
    /// of a new assignment at its next heartbeat, so this bounds how quickly a group rebalances.
    pub group_consumer_heartbeat_interval: Duration,
    /// TLS on the listener (Kafka's SSL listener: no ALPN) and the authentication hook
    /// (docs/security.md). Default: plaintext, authentication off.
    pub security: Security,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            advertised_addr: None,
            request_bytes_max: DEFAULT_REQUEST_BYTES_MAX,
            connections_max: DEFAULT_CONNECTIONS_MAX,
            connections_per_addr_max: DEFAULT_CONNECTIONS_MAX,
            connection_rate_per_addr_max: CONNECTION_RATE_BOUND,
            idle_ms_max: 600_000,
            request_read_ms_max: 30_000,
            group_initial_rebalance_delay: DEFAULT_GROUP_INITIAL_REBALANCE_DELAY,
            group_consumer_session_timeout: DEFAULT_GROUP_CONSUMER_SESSION_TIMEOUT,
            group_consumer_heartbeat_interval: DEFAULT_GROUP_CONSUMER_HEARTBEAT_INTERVAL,
            security: Security::default(),
        }
    }
}

impl KafkaConfig {
    /// Every numeric setting with its range, by field name (`brook serve` prefixes `kafka_`).
    pub const BOUNDS: &'static [Bounded<KafkaConfig>] = &[
        // A request header alone takes 8 bytes; anything under a KiB cannot carry a produce,
        // and Kafka's frame size is an i32.
        Bounded::new(
            "request_bytes_max",
            Bounds::new(1024, i32::MAX as u64),
            |c| Some(c.request_bytes_max as u64),
        ),
        Bounded::new("connections_max", CONNECTIONS, |c| {
            Some(c.connections_max as u64)
        }),
        Bounded::new("connections_per_addr_max", CONNECTIONS, |c| {
            Some(c.connections_per_addr_max as u64)
        }),
        Bounded::new("connection_rate_per_addr_max", CONNECTION_RATE, |c| {
            Some(u64::from(c.connection_rate_per_addr_max))
        }),
        Bounded::new("idle_ms_max", TIME_LIMIT_MS, |c| Some(c.idle_ms_max)),
        Bounded::new("request_read_ms_max", TIME_LIMIT_MS, |c| {
            Some(c.request_read_ms_max)
        }),
        Bounded::new(
            "group_initial_rebalance_delay_ms",
            Bounds::new(0, 300_000),
            |c| {
                Some(u64::try_from(c.group_initial_rebalance_delay.as_millis()).unwrap_or(u64::MAX))
            },
        ),
        // Kafka's own ranges for these two are 45 s-60 s and 5 s-15 s by default; brook allows
        // shorter ones so tests and local runs rebalance quickly.
        Bounded::new(
            "group_consumer_session_timeout_ms",
            Bounds::new(1_000, 1_800_000),
            |c| Some(millis(c.group_consumer_session_timeout)),
        ),
        Bounded::new(
            "group_consumer_heartbeat_interval_ms",
            Bounds::new(100, 900_000),
            |c| Some(millis(c.group_consumer_heartbeat_interval)),
        ),
    ];

    /// What brook-door applies to the door's connections (requests framed one after another).
    pub(crate) fn limits(&self) -> ConnectionLimits {
        ConnectionLimits::new(self.connections_max)
            .with_per_addr_max(self.connections_per_addr_max)
            .with_connection_rate_per_addr_max(self.connection_rate_per_addr_max)
            .with_idle_max(Duration::from_millis(self.idle_ms_max))
            .with_request_read_max(
                Duration::from_millis(self.request_read_ms_max),
                Framing::Sequential,
            )
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The host and port clients are told to use, from the settings and the bound address.
pub(crate) fn advertised(config: &KafkaConfig, local: SocketAddr) -> (String, i32) {
    if let Some(addr) = &config.advertised_addr {
        if let Some((host, port)) = split_host_port(addr) {
            return (host, port);
        }
    }
    let ip = match local.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".to_owned(),
        ip if ip.is_unspecified() => "::1".to_owned(),
        ip => ip.to_string(),
    };
    (ip, i32::from(local.port()))
}

/// Splits `host:port` (`[v6]:port` too); `None` when there is no valid port.
fn split_host_port(addr: &str) -> Option<(String, i32)> {
    let (host, port) = addr.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then(|| (host.to_owned(), i32::from(port)))
}

/// Checks the settings before the door starts, beyond the connection cap (which brook-door
/// checks for every door).
pub(crate) fn validate(config: &KafkaConfig) -> Result<(), String> {
    check_bounds(config, KafkaConfig::BOUNDS)?;
    if config.group_consumer_heartbeat_interval >= config.group_consumer_session_timeout {
        return Err(format!(
            "group_consumer_heartbeat_interval_ms ({} ms) must be below group_consumer_session_timeout_ms ({} ms)",
            millis(config.group_consumer_heartbeat_interval),
            millis(config.group_consumer_session_timeout)
        ));
    }
    if let Some(addr) = &config.advertised_addr {
        if split_host_port(addr).is_none() {
            return Err(format!("advertised address {addr:?} is not host:port"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_listener_advertises_loopback() {
        let config = KafkaConfig::default();
        let local: SocketAddr = "0.0.0.0:9092".parse().unwrap();
        assert_eq!(advertised(&config, local), ("127.0.0.1".into(), 9092));
        let local: SocketAddr = "10.1.2.3:19092".parse().unwrap();
        assert_eq!(advertised(&config, local), ("10.1.2.3".into(), 19092));
    }

    #[test]
    fn configured_advertised_address_wins() {
        let config = KafkaConfig {
            advertised_addr: Some("kafka.local:29092".into()),
            ..KafkaConfig::default()
        };
        let local: SocketAddr = "0.0.0.0:9092".parse().unwrap();
        assert_eq!(advertised(&config, local), ("kafka.local".into(), 29092));
        let v6 = KafkaConfig {
            advertised_addr: Some("[::1]:9093".into()),
            ..KafkaConfig::default()
        };
        assert_eq!(advertised(&v6, local), ("::1".into(), 9093));
    }

    #[test]
    fn bad_settings_are_refused() {
        let bad = [
            KafkaConfig {
                connections_max: 0,
                ..KafkaConfig::default()
            },
            KafkaConfig {
                request_bytes_max: 10,
                ..KafkaConfig::default()
            },
            KafkaConfig {
                advertised_addr: Some("no-port".into()),
                ..KafkaConfig::default()
            },
        ];
        for config in bad {
            let checked = brook_door::validate::<crate::server::Kafka>(&config);
            assert!(checked.is_err(), "{config:?}");
        }
        assert!(brook_door::validate::<crate::server::Kafka>(&KafkaConfig::default()).is_ok());
    }
}
