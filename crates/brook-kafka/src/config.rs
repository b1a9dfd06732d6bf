//! Settings of the Kafka door, with their documented defaults.

use std::net::SocketAddr;
use std::time::Duration;

/// Default cap on one request frame (Kafka's `socket.request.max.bytes`, 100 MiB).
pub const DEFAULT_REQUEST_BYTES_MAX: usize = 100 * 1024 * 1024;
/// Default cap on open client connections (at most
/// [`brook_door::accept::CONNECTIONS_MAX_BOUND`]).
pub const DEFAULT_CONNECTIONS_MAX: usize = 1024;
/// Default wait before a new group's first rebalance completes (Kafka's
/// `group.initial.rebalance.delay.ms`), letting several members that start together join one
/// generation instead of rebalancing once per member.
pub const DEFAULT_GROUP_INITIAL_REBALANCE_DELAY: Duration = Duration::from_millis(3000);

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
    /// Most client connections served at once; further connections wait in the listen backlog
    /// until one closes.
    pub connections_max: usize,
    /// How long a group with no generation yet waits for more members before its first
    /// rebalance completes. 0 in tests.
    pub group_initial_rebalance_delay: Duration,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            advertised_addr: None,
            request_bytes_max: DEFAULT_REQUEST_BYTES_MAX,
            connections_max: DEFAULT_CONNECTIONS_MAX,
            group_initial_rebalance_delay: DEFAULT_GROUP_INITIAL_REBALANCE_DELAY,
        }
    }
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
    // A request header alone takes 8 bytes; anything under a few KiB cannot carry a produce.
    if config.request_bytes_max < 1024 || config.request_bytes_max > i32::MAX as usize {
        return Err(format!(
            "request_bytes_max must be between 1024 and {} bytes, not {}",
            i32::MAX,
            config.request_bytes_max
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
