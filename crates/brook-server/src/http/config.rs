//! Settings of the HTTP door. Limits carry their unit last in the name; every default is on
//! its field, and every numeric setting has its range in [`HttpConfig::BOUNDS`].

use std::time::Duration;

use brook_door::accept::{CONNECTIONS, CONNECTION_RATE, CONNECTION_RATE_BOUND, TIME_LIMIT_MS};
use brook_door::{ConnectionLimits, Framing, Security};
use brook_log::bounds::{wide, Bounded, Bounds};

use crate::config::{KEEPALIVE_MS, READ_BYTES, STREAM_ITEMS};

/// Settings of the HTTP door.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// The largest request body read whole (a JSON produce, a topic creation, a commit), and
    /// the longest line of a streaming (`application/x-ndjson`) produce, in bytes. Larger ones
    /// are refused with 413 before more is read; a `Content-Length` above it (on any body but a
    /// streaming produce's) before any is. Default 16 MiB.
    pub request_bytes_max: usize,
    /// Bytes of batches a fetch reads when the request gives no `max_bytes`, and that one
    /// read of a stream covers. Default 1 MiB.
    pub read_bytes_default: usize,
    /// Connections served at once. When full, an idle connection (no request in flight)
    /// of the address holding the most is closed to let a new client in
    /// ([`brook_door::accept::ConnectionLimits`]); with none idle, further clients wait in the
    /// listen backlog. Default 1024; at most [`brook_door::accept::CONNECTIONS_MAX_BOUND`].
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
    /// How long a keep-alive connection may wait for its next request before it is closed.
    /// Default 60 s.
    pub idle_ms_max: u64,
    /// How long a request's head (request line and headers) may take to arrive from its first
    /// byte, so a client trickling a header (slowloris) is cut off. Default 10 s.
    pub request_read_ms_max: u64,
    /// How long the server may be unable to write anything to a connection before it drops
    /// it: a client that stops reading a stream holds no more than its socket buffers and one
    /// read's worth of records for this long. Default 30 s; at least 1 ms.
    pub write_stall_ms_max: u64,
    /// Interval of SSE keep-alive comments, so proxies and clients see an idle stream is
    /// alive (and a vanished client is noticed). Default 15 s.
    pub keepalive_interval_ms: u64,
    /// Records of one streaming produce appended but not yet answered; past it the server
    /// stops reading the request until answers go out. Default 4096.
    pub produce_stream_in_flight_max: usize,
    /// Origins (`http://localhost:3000`) whose web pages may call the door from a browser
    /// (CORS). Default none: a page on another origin cannot read the door's answers, so a
    /// site a developer happens to visit cannot reach the broker on their loopback.
    pub cors_origins: Vec<String>,
    /// Names a request's `Host` may carry besides IP addresses, `localhost` and `*.localhost`
    /// (`*`: any); others are 421, against DNS rebinding (http::guard). Default none.
    pub allowed_hosts: Vec<String>,
    /// With authentication on, whether `GET /metrics` is served to anyone (a scraper without
    /// credentials). Default false: it needs a principal with `Describe` on the cluster.
    pub metrics_public: bool,
    /// TLS on the listener (offering `h2` and `http/1.1` by ALPN) and the authentication hook
    /// (docs/security.md). Default: plaintext, authentication off.
    pub security: Security,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            request_bytes_max: 16 << 20,
            read_bytes_default: 1 << 20,
            connections_max: 1024,
            connections_per_addr_max: 1024,
            connection_rate_per_addr_max: CONNECTION_RATE_BOUND,
            idle_ms_max: 60_000,
            request_read_ms_max: 10_000,
            write_stall_ms_max: 30_000,
            keepalive_interval_ms: 15_000,
            produce_stream_in_flight_max: 4096,
            cors_origins: Vec::new(),
            allowed_hosts: Vec::new(),
            metrics_public: false,
            security: Security::default(),
        }
    }
}

impl HttpConfig {
    /// Every numeric setting with its range, by field name (`brook serve` prefixes `http_`).
    pub const BOUNDS: &'static [Bounded<HttpConfig>] = &[
        Bounded::new("request_bytes_max", Bounds::new(64, 1 << 30), |c| {
            Some(wide(c.request_bytes_max))
        }),
        Bounded::new("read_bytes_default", READ_BYTES, |c| {
            Some(wide(c.read_bytes_default))
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
        Bounded::new("write_stall_ms_max", TIME_LIMIT_MS, |c| {
            Some(c.write_stall_ms_max)
        }),
        Bounded::new("keepalive_interval_ms", KEEPALIVE_MS, |c| {
            Some(c.keepalive_interval_ms)
        }),
        Bounded::new("produce_stream_in_flight_max", STREAM_ITEMS, |c| {
            Some(wide(c.produce_stream_in_flight_max))
        }),
    ];

    /// What brook-door applies to the door's connections (HTTP/1.1: one request after
    /// another).
    pub(crate) fn limits(&self) -> ConnectionLimits {
        ConnectionLimits::new(self.connections_max)
            .with_per_addr_max(self.connections_per_addr_max)
            .with_connection_rate_per_addr_max(self.connection_rate_per_addr_max)
            .with_write_stall_max(self.write_stall_max())
            .with_idle_max(Duration::from_millis(self.idle_ms_max))
            .with_request_read_max(
                Duration::from_millis(self.request_read_ms_max),
                Framing::Sequential,
            )
    }

    pub(crate) fn write_stall_max(&self) -> Duration {
        Duration::from_millis(self.write_stall_ms_max)
    }

    pub(crate) fn keepalive_interval(&self) -> Duration {
        Duration::from_millis(self.keepalive_interval_ms)
    }
}
