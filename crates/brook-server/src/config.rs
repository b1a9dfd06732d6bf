//! Settings of the doors. Limits carry their unit last in the name, and every default is
//! documented on its field; the CLI maps each to a flag, a `BROOK_*` variable and a TOML key.

use std::time::Duration;

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
    /// Connections served at once; further clients wait in the listen backlog until one
    /// closes. One connection carries any number of calls and streams (HTTP/2). Default 1024;
    /// at most [`brook_door::accept::CONNECTIONS_MAX_BOUND`].
    pub connections_max: usize,
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
        }
    }
}

impl GrpcConfig {
    pub(crate) fn keepalive_interval(&self) -> Duration {
        Duration::from_millis(self.keepalive_interval_ms)
    }

    pub(crate) fn keepalive_timeout(&self) -> Duration {
        Duration::from_millis(self.keepalive_timeout_ms)
    }
}
