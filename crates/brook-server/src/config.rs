//! Settings of the gRPC door. Limits carry their unit last in the name, every default is
//! documented on its field, and every numeric setting has its range in [`GrpcConfig::BOUNDS`]
//! (checked before the door starts; the CLI prints it); the CLI maps each to a flag, a
//! `BROOK_*` variable and a TOML key.

use std::time::Duration;

use brook_door::accept::{CONNECTIONS, CONNECTION_RATE, CONNECTION_RATE_BOUND, TIME_LIMIT_MS};
use brook_door::{ConnectionLimits, Framing, Security};
use brook_log::bounds::{wide, Bounded, Bounds, DAY_MS};

/// The range of a message count or an in-flight bound of a stream.
pub(crate) const STREAM_ITEMS: Bounds = Bounds::new(1, 1 << 16);
/// The range of a read size (`read_bytes_default`): one read is at most the log's.
pub(crate) const READ_BYTES: Bounds = Bounds::new(1, brook_log::READ_BYTES_MAX as u64);
/// The range of a keep-alive interval or timeout, in milliseconds.
pub(crate) const KEEPALIVE_MS: Bounds = Bounds::new(100, DAY_MS);

/// Settings of the gRPC door.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcConfig {
    /// The largest request message the server decodes, in bytes. A larger one is refused with
    /// `RESOURCE_EXHAUSTED` before anything is allocated for it. Default 16 MiB: a `Produce`
    /// may carry several partitions' batches, each up to the topic's `message_bytes_max`.
    pub request_bytes_max: usize,
    /// Bytes a `Fetch` or a `Subscribe` message carries when the request says `max_bytes: 0`.
    /// Default 1 MiB.
    pub read_bytes_default: usize,
    /// Answers a `ProduceStream` buffers for a client that does not read them before the
    /// server stops taking its requests. Default 64. (`Subscribe` buffers nothing: it reads
    /// the log only when the client can take the next message.)
    pub stream_buffer_messages: usize,
    /// Requests one `ProduceStream` works on at once; the server stops reading the stream until
    /// one completes. Default 256.
    pub produce_stream_in_flight_max: usize,
    /// Interval of HTTP/2 keepalive pings, so a client that vanished without closing its
    /// connection is noticed and its streams (and group memberships) end. Default 20 s.
    pub keepalive_interval_ms: u64,
    /// How long a keepalive ping may go unanswered before the connection is dropped. Default
    /// 20 s.
    pub keepalive_timeout_ms: u64,
    /// Connections served at once. One connection carries any number of calls and streams
    /// (HTTP/2). When full, an idle connection (no call in flight) of the address holding the
    /// most is closed to let a new client in ([`brook_door::accept::ConnectionLimits`]); with none idle, further clients wait in the listen backlog. Default
    /// 1024; at most [`brook_door::accept::CONNECTIONS_MAX_BOUND`].
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
    /// How long a connection may go without a call in flight before it is closed (HTTP/2 pings
    /// do not count). Default 10 minutes.
    pub idle_ms_max: u64,
    /// How long after connecting a client may take to send its first call. Default 10 s.
    pub request_read_ms_max: u64,
    /// TLS on the listener (offering `h2` by ALPN) and the authentication hook
    /// (docs/security.md). Default: plaintext, authentication off.
    pub security: Security,
}

impl Default for GrpcConfig {
    fn default() -> Self {
        Self {
            request_bytes_max: 16 << 20,
            read_bytes_default: 1 << 20,
            stream_buffer_messages: 64,
            produce_stream_in_flight_max: 256,
            keepalive_interval_ms: 20_000,
            keepalive_timeout_ms: 20_000,
            connections_max: 1024,
            connections_per_addr_max: 1024,
            connection_rate_per_addr_max: CONNECTION_RATE_BOUND,
            idle_ms_max: 600_000,
            request_read_ms_max: 10_000,
            security: Security::default(),
        }
    }
}

impl GrpcConfig {
    /// Every numeric setting with its range, by field name (`brook serve` prefixes `grpc_`).
    pub const BOUNDS: &'static [Bounded<GrpcConfig>] = &[
        Bounded::new("request_bytes_max", Bounds::new(1024, 1 << 30), |c| {
            Some(wide(c.request_bytes_max))
        }),
        Bounded::new("read_bytes_default", READ_BYTES, |c| {
            Some(wide(c.read_bytes_default))
        }),
        Bounded::new("stream_buffer_messages", STREAM_ITEMS, |c| {
            Some(wide(c.stream_buffer_messages))
        }),
        Bounded::new("produce_stream_in_flight_max", STREAM_ITEMS, |c| {
            Some(wide(c.produce_stream_in_flight_max))
        }),
        Bounded::new("keepalive_interval_ms", KEEPALIVE_MS, |c| {
            Some(c.keepalive_interval_ms)
        }),
        Bounded::new("keepalive_timeout_ms", KEEPALIVE_MS, |c| {
            Some(c.keepalive_timeout_ms)
        }),
        Bounded::new("connections_max", CONNECTIONS, |c| {
            Some(wide(c.connections_max))
        }),
        Bounded::new("connections_per_addr_max", CONNECTIONS, |c| {
            Some(wide(c.connections_per_addr_max))
        }),
        Bounded::new("connection_rate_per_addr_max", CONNECTION_RATE, |c| {
            Some(u64::from(c.connection_rate_per_addr_max))
        }),
        Bounded::new("idle_ms_max", TIME_LIMIT_MS, |c| Some(c.idle_ms_max)),
        Bounded::new("request_read_ms_max", TIME_LIMIT_MS, |c| {
            Some(c.request_read_ms_max)
        }),
    ];

    /// What brook-door applies to the door's connections. HTTP/2 sends pings and window
    /// updates between calls, so only the first call is timed from the connect.
    pub(crate) fn limits(&self) -> ConnectionLimits {
        ConnectionLimits::new(self.connections_max)
            .with_per_addr_max(self.connections_per_addr_max)
            .with_connection_rate_per_addr_max(self.connection_rate_per_addr_max)
            .with_idle_max(Duration::from_millis(self.idle_ms_max))
            .with_request_read_max(
                Duration::from_millis(self.request_read_ms_max),
                Framing::Multiplexed,
            )
    }

    pub(crate) fn keepalive_interval(&self) -> Duration {
        Duration::from_millis(self.keepalive_interval_ms)
    }

    pub(crate) fn keepalive_timeout(&self) -> Duration {
        Duration::from_millis(self.keepalive_timeout_ms)
    }
}
