//! Settings of the HTTP door. Limits carry their unit last in the name; every default is on
//! its field.

use std::time::Duration;

/// Settings of the HTTP door.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// The largest request body read whole (a JSON produce, a topic creation, a commit), and
    /// the longest line of a streaming (`application/x-ndjson`) produce, in bytes. Larger ones
    /// are refused with 413 before more is read. Default 16 MiB.
    pub request_bytes_max: usize,
    /// Bytes of batches a fetch reads when the request gives no `max_bytes`, and that one
    /// read of a stream covers. Default 1 MiB.
    pub read_bytes_default: usize,
    /// Connections served at once; further clients wait in the listen backlog until one
    /// closes. Default 1024; at most [`brook_door::accept::CONNECTIONS_MAX_BOUND`].
    pub connections_max: usize,
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
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            request_bytes_max: 16 << 20,
            read_bytes_default: 1 << 20,
            connections_max: 1024,
            write_stall_ms_max: 30_000,
            keepalive_interval_ms: 15_000,
            produce_stream_in_flight_max: 4096,
            cors_origins: Vec::new(),
        }
    }
}

impl HttpConfig {
    pub(crate) fn write_stall_max(&self) -> Duration {
        Duration::from_millis(self.write_stall_ms_max)
    }

    pub(crate) fn keepalive_interval(&self) -> Duration {
        Duration::from_millis(self.keepalive_interval_ms)
    }
}
