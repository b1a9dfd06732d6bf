//! The settings of `brook serve`: one table drives the flags, the `BROOK_*` environment
//! variables, the keys of the optional TOML file, `--print-config` and the documentation test.
//!
//! Every setting has one name, its key (`segment_bytes_max`); the flag is the key with dashes
//! (`--segment-bytes-max`), the variable the key in capitals after `BROOK_`
//! (`BROOK_SEGMENT_BYTES_MAX`). Each layer is read as text and parsed by the same code, so a
//! value means the same wherever it is written, and a bad one is reported with where it came
//! from. Precedence: flag, then variable, then file, then the default. An empty variable counts
//! as unset.
//!
//! The topic log settings (`segment_bytes_max`, `durability`, ...) are brook-log's own
//! [`TopicConfig`] keys, parsed by brook-log, so the server's defaults and a topic's overrides
//! share one syntax.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, Context};
use brook::broker::TopicConfig;
use brook::server::BackendConfig;
pub(crate) use brook::server::{Listen, ServeConfig};
use clap::{Arg, ArgMatches};

/// The settings about the process rather than the broker or a door.
const PROCESS: [&str; 5] = [
    "data_dir",
    "log_level",
    "log_format",
    "drain_timeout_ms",
    "worker_threads",
];

/// Prefix of every setting's environment variable.
pub(crate) const ENV_PREFIX: &str = "BROOK_";

/// How a setting reads and writes its value in a [`ServeConfig`].
#[derive(Debug, Clone, Copy)]
enum Access {
    /// A field of ours, with its parser and printer.
    Field {
        apply: fn(&mut ServeConfig, &str) -> Result<(), String>,
        show: fn(&ServeConfig) -> String,
    },
    /// A brook-log topic setting (the server-wide default of every topic), by its key.
    Log,
}

/// One setting: its key, what it does, and how it is read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Setting {
    pub key: &'static str,
    pub help: &'static str,
    /// A flag that may be given without a value (meaning `true`).
    boolean: bool,
    access: Access,
}

impl Setting {
    /// `--segment-bytes-max`, without the dashes in front.
    pub(crate) fn flag(&self) -> String {
        self.key.replace('_', "-")
    }

    /// `BROOK_SEGMENT_BYTES_MAX`.
    pub(crate) fn env_var(&self) -> String {
        format!("{ENV_PREFIX}{}", self.key.to_ascii_uppercase())
    }

    /// The heading `brook serve --help` lists the setting under: its door, the topic defaults,
    /// the broker, or the process.
    pub(crate) fn section(&self) -> &'static str {
        const DOORS: [(&str, &str); 7] = [
            ("grpc_", "gRPC door"),
            ("kafka_", "Kafka door"),
            ("http_", "HTTP door"),
            ("metrics_", "Metrics"),
            ("tls_", "Security"),
            ("auth", "Security"),
            ("superusers", "Security"),
        ];
        if let Some((_, heading)) = DOORS.iter().find(|(p, _)| self.key.starts_with(p)) {
            return heading;
        }
        match self.access {
            Access::Log => "Topic defaults",
            Access::Field { .. } if PROCESS.contains(&self.key) => "Process",
            Access::Field { .. } => "Broker",
        }
    }

    /// The value in `config`, in the text form every layer accepts.
    pub(crate) fn show(&self, config: &ServeConfig) -> String {
        match self.access {
            Access::Field { show, .. } => show(config),
            Access::Log => brook_log::config_entries_by_alias(&config.broker.log)
                .into_iter()
                .find(|(key, _)| *key == self.key)
                .map(|(_, value)| value)
                .unwrap_or_default(),
        }
    }

    fn apply(&self, config: &mut ServeConfig, text: &str) -> Result<(), String> {
        match self.access {
            Access::Field { apply, .. } => apply(config, text),
            Access::Log => {
                let mut topic = TopicConfig::default();
                topic.set(self.key, text).map_err(|e| e.to_string())?;
                config.broker.log = topic.merged_over(&config.broker.log);
                Ok(())
            }
        }
    }
}

fn parse<T>(text: &str) -> Result<T, String>
where
    T: std::str::FromStr,
    T::Err: fmt::Display,
{
    text.parse().map_err(|e: T::Err| e.to_string())
}

/// A setting stored in a field of [`ServeConfig`], printed with `Display` and parsed with
/// `FromStr` unless another parser is named.
macro_rules! field {
    ($key:literal, $help:literal, $($path:ident).+) => {
        field!($key, $help, parse, $($path).+)
    };
    ($key:literal, $help:literal, $parse:path, $($path:ident).+) => {
        field!($key, $help, $parse, |c: &ServeConfig| c.$($path).+.to_string(), $($path).+)
    };
    ($key:literal, $help:literal, $parse:path, $show:expr, $($path:ident).+) => {
        Setting {
            key: $key,
            help: $help,
            boolean: false,
            access: Access::Field {
                apply: |c, v| {
                    c.$($path).+ = $parse(v)?;
                    Ok(())
                },
                show: $show,
            },
        }
    };
}

/// A comma-separated list setting (`none` when empty), parsed by `$parse`.
macro_rules! list_field {
    ($key:literal, $help:literal, $parse:path, $($path:ident).+) => {
        field!($key, $help, $parse, |c: &ServeConfig| show_list(&c.$($path).+), $($path).+)
    };
}

/// A brook-log topic setting.
macro_rules! log {
    ($key:literal, $help:literal) => {
        Setting {
            key: $key,
            help: $help,
            boolean: false,
            access: Access::Log,
        }
    };
}

/// A TLS file (`none` or a path), a field of [`brook::security::TlsSettings`].
macro_rules! tls_file {
    ($key:literal, $help:literal, $field:ident) => {
        Setting {
            key: $key,
            help: $help,
            boolean: false,
            access: Access::Field {
                apply: |c, v| {
                    c.tls.$field = parse_optional_path(v);
                    Ok(())
                },
                show: |c| show_optional_path(c.tls.$field.as_deref()),
            },
        }
    };
}

/// A door's TLS switch (`on`/`off`), a field of [`brook::security::TlsSettings`].
macro_rules! tls_switch {
    ($key:literal, $help:literal, $door:ident) => {
        Setting {
            key: $key,
            help: $help,
            boolean: false,
            access: Access::Field {
                apply: |c, v| {
                    c.tls.$door = brook::security::parse_switch(v)?;
                    Ok(())
                },
                show: |c| if c.tls.$door { "on" } else { "off" }.into(),
            },
        }
    };
}

/// Every setting of `brook serve`, in the order `--help` and `--print-config` list them.
pub(crate) static SETTINGS: &[Setting] = &[
    Setting {
        key: "data_dir",
        help: "Directory of the data: partition logs, topics, committed offsets",
        boolean: false,
        access: Access::Field {
            apply: |c, v| {
                if v.is_empty() {
                    return Err("must not be empty".into());
                }
                c.broker.data_dir = PathBuf::from(v);
                Ok(())
            },
            show: |c| c.broker.data_dir.display().to_string(),
        },
    },
    Setting {
        key: "log_level",
        help:
            "Log filter (error, warn, info, debug, trace, or per target: brook=debug,tonic=warn); \
               `default`: RUST_LOG, else info",
        boolean: false,
        access: Access::Field {
            apply: |c, v| {
                c.log_level = match v {
                    "default" => None,
                    directives => {
                        tracing_subscriber::EnvFilter::try_new(directives)
                            .map_err(|e| e.to_string())?;
                        Some(directives.to_owned())
                    }
                };
                Ok(())
            },
            show: |c| c.log_level.clone().unwrap_or_else(|| "default".into()),
        },
    },
    field!(
        "log_format",
        "Log lines as text (for people) or json (one object per line, with the request span's \
         door, api, topic and client_id)",
        log_format
    ),
    field!(
        "drain_timeout_ms",
        "On SIGINT/SIGTERM, how long doors may finish requests in flight before the log is \
         closed anyway",
        drain_timeout_ms
    ),
    Setting {
        key: "worker_threads",
        help: "Worker threads of the async runtime that runs the doors (auto: one per core; \
               docs/benchmarks.md measures 1 against the default)",
        boolean: false,
        access: Access::Field {
            apply: |c, v| {
                c.worker_threads = match v {
                    "auto" => None,
                    // A value past u16 is still reported with the setting's range.
                    n => Some(parse::<u64>(n)?.try_into().unwrap_or(u16::MAX)),
                };
                Ok(())
            },
            show: |c| {
                c.worker_threads
                    .map_or_else(|| "auto".into(), |n| n.to_string())
            },
        },
    },
    Setting {
        key: "backend",
        help: "Where the records live: local (the data directory), or kafka://HOST:PORT[,...] \
               (gateway mode: the gRPC and HTTP doors serve that Kafka cluster; no local log, \
               the Kafka door off)",
        boolean: false,
        access: Access::Field {
            apply: |c, v| {
                let properties = backend_properties(&c.backend);
                c.backend = match BackendConfig::parse(v)? {
                    BackendConfig::Kafka { url, .. } => BackendConfig::Kafka { url, properties },
                    other => other,
                };
                Ok(())
            },
            show: |c| c.backend.to_string(),
        },
    },
    Setting {
        key: "backend_properties",
        help: "librdkafka properties of the gateway's clients, KEY=VALUE,KEY=VALUE \
               (security.protocol=SASL_SSL,sasl.mechanism=PLAIN,...); none: no property",
        boolean: false,
        access: Access::Field {
            apply: |c, v| {
                let properties = parse_properties(v)?;
                match &mut c.backend {
                    BackendConfig::Kafka { properties: p, .. } => *p = properties,
                    BackendConfig::Local if properties.is_empty() => {}
                    _ => return Err("needs backend = kafka://HOST:PORT".into()),
                }
                Ok(())
            },
            show: |c| match backend_properties(&c.backend).as_slice() {
                [] => "none".into(),
                properties => properties
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(","),
            },
        },
    },
    field!(
        "grpc_addr",
        "gRPC door address (IP:PORT, HOST:PORT, or off)",
        Listen::parse,
        grpc_addr
    ),
    field!(
        "kafka_addr",
        "Kafka door address (IP:PORT, HOST:PORT, or off)",
        Listen::parse,
        kafka_addr
    ),
    Setting {
        key: "kafka_advertised_addr",
        help: "HOST:PORT that Kafka clients are told to connect to (Metadata); none: the Kafka \
               listener's own address",
        boolean: false,
        access: Access::Field {
            apply: |c, v| {
                c.kafka.advertised_addr = match v {
                    "none" => None,
                    addr if addr.rsplit_once(':').is_some_and(|(host, port)| {
                        !host.is_empty() && port.parse::<u16>().is_ok()
                    }) =>
                    {
                        Some(addr.to_owned())
                    }
                    _ => return Err("not HOST:PORT or none".into()),
                };
                Ok(())
            },
            show: |c| {
                c.kafka
                    .advertised_addr
                    .clone()
                    .unwrap_or_else(|| "none".into())
            },
        },
    },
    field!(
        "http_addr",
        "HTTP door address (IP:PORT, HOST:PORT, or off)",
        Listen::parse,
        http_addr
    ),
    field!(
        "metrics_addr",
        "Also serve /metrics on this address, a port of its own (IP:PORT, HOST:PORT, or off)",
        Listen::parse,
        metrics_addr
    ),
    Setting {
        key: "auto_create_topics",
        help: "Create a topic the first time it is produced to or subscribed by a group",
        boolean: true,
        access: Access::Field {
            apply: |c, v| {
                c.broker.auto_create_topics = parse(v)?;
                Ok(())
            },
            show: |c| c.broker.auto_create_topics.to_string(),
        },
    },
    field!(
        "default_partitions",
        "Partitions of a topic created automatically or without a count",
        broker.default_partitions
    ),
    log!(
        "durability",
        "When a produce is acknowledged: sync (after fdatasync), interval:MS (fsync at most \
         every MS), none (page cache only)"
    ),
    log!(
        "segment_bytes_max",
        "Roll to a new segment file past this size (1024..=4294967295)"
    ),
    log!(
        "segment_ms_max",
        "Roll to a new segment once its first batch is this old"
    ),
    log!(
        "retention_bytes_max",
        "Delete the oldest segments while a partition is larger (none: no limit)"
    ),
    log!(
        "retention_ms_max",
        "Delete segments whose newest record is older (none: keep forever)"
    ),
    log!(
        "index_interval_bytes",
        "Bytes of log between two offset-index entries"
    ),
    log!(
        "index_bytes_max",
        "Preallocated size of each index file; a segment rolls when its index is full"
    ),
    log!(
        "message_bytes_max",
        "Largest record batch a produce may append"
    ),
    log!(
        "cleanup_policy",
        "delete (retention deletes old segments), compact (keep the latest record of every key) \
         or compact,delete"
    ),
    log!(
        "min_cleanable_dirty_ratio",
        "A compacted partition is cleaned once this share of it (0 to 1) is new since its last \
         clean"
    ),
    log!(
        "min_compaction_lag_ms",
        "A record stays uncompacted at least this long"
    ),
    log!(
        "max_compaction_lag_ms",
        "A dirty record is compacted within about this long, whatever the dirty ratio"
    ),
    log!(
        "delete_retention_ms",
        "How long a tombstone stays readable after the clean that first kept it"
    ),
    field!(
        "retention_check_ms",
        "How often retention runs over every partition",
        broker.retention_check_ms
    ),
    Setting {
        key: "cleaner_enabled",
        help: "Run the log cleaner of compacted topics",
        boolean: true,
        access: Access::Field {
            apply: |c, v| {
                c.broker.cleaner.enabled = parse(v)?;
                Ok(())
            },
            show: |c| c.broker.cleaner.enabled.to_string(),
        },
    },
    field!(
        "cleaner_threads",
        "Log cleaner threads; each cleans one partition at a time",
        broker.cleaner.threads
    ),
    field!(
        "cleaner_dedupe_buffer_bytes",
        "Memory of the cleaner's key maps, all threads together (about 32 bytes a key)",
        broker.cleaner.dedupe_buffer_bytes
    ),
    Setting {
        key: "cleaner_io_bytes_per_sec",
        help: "Most bytes per second the cleaner reads and writes, all threads together (none: \
               no limit)",
        boolean: false,
        access: Access::Field {
            apply: |c, v| {
                c.broker.cleaner.io_bytes_per_sec = match v {
                    "none" => None,
                    rate => Some(parse(rate)?),
                };
                Ok(())
            },
            show: |c| {
                c.broker
                    .cleaner
                    .io_bytes_per_sec
                    .map_or_else(|| "none".into(), |rate| rate.to_string())
            },
        },
    },
    field!(
        "cleaner_backoff_ms",
        "How long the cleaner sleeps when no partition needs cleaning",
        broker.cleaner.backoff_ms
    ),
    field!(
        "group_release_timeout_ms",
        "How long a group member that lost partitions in a rebalance may keep them while the new \
         owner waits",
        broker.group_release_timeout_ms
    ),
    field!(
        "fetch_bytes_max",
        "Most bytes one fetch may ask for",
        broker.limits.fetch_bytes_max
    ),
    field!(
        "fetch_wait_ms_max",
        "Longest a fetch may wait for data (its long poll)",
        broker.limits.fetch_wait_ms_max
    ),
    field!(
        "produce_records_max",
        "Most records one produce request may carry",
        broker.limits.produce_records_max
    ),
    field!(
        "partitions_max",
        "Most partitions one topic may have (at most 10000)",
        broker.limits.partitions_max
    ),
    field!(
        "offset_metadata_bytes_max",
        "Longest metadata string of a committed offset",
        broker.limits.offset_metadata_bytes_max
    ),
    field!(
        "subscribe_read_bytes",
        "Bytes a subscription reads from a partition at a time (bounds its memory)",
        broker.limits.subscribe_read_bytes
    ),
    field!(
        "transaction_max_timeout_ms",
        "Longest transaction timeout a producer may ask for (Kafka's transaction.max.timeout.ms)",
        broker.transactions.max_timeout_ms
    ),
    field!(
        "transaction_abort_check_ms",
        "How often open transactions are checked against their timeouts (aborted past them)",
        broker.transactions.abort_check_ms
    ),
    field!(
        "transactional_id_expiration_ms",
        "How long a transactional id with nothing open is kept after its last use",
        broker.transactions.id_expiration_ms
    ),
    field!(
        "transaction_atomic_timeout_ms",
        "Timeout of an atomic write (gRPC ProduceAtomic, HTTP POST /v1/transactions)",
        broker.transactions.atomic_timeout_ms
    ),
    field!(
        "grpc_request_bytes_max",
        "Largest gRPC request message; a larger one is refused before it is decoded",
        grpc.request_bytes_max
    ),
    field!(
        "grpc_read_bytes_default",
        "Bytes a gRPC Fetch or Subscribe message carries when the request says max_bytes 0",
        grpc.read_bytes_default
    ),
    field!(
        "grpc_stream_buffer_messages",
        "Answers a ProduceStream buffers for a client that does not read them",
        grpc.stream_buffer_messages
    ),
    field!(
        "grpc_produce_stream_in_flight_max",
        "Requests one ProduceStream works on at once",
        grpc.produce_stream_in_flight_max
    ),
    field!(
        "grpc_keepalive_interval_ms",
        "Interval of HTTP/2 keepalive pings, to notice clients that vanished",
        grpc.keepalive_interval_ms
    ),
    field!(
        "grpc_keepalive_timeout_ms",
        "How long a keepalive ping may go unanswered before the connection is dropped",
        grpc.keepalive_timeout_ms
    ),
    field!(
        "grpc_connections_max",
        "gRPC connections served at once; when full an idle one of the address holding the most makes room, else more \
         wait in the listen backlog",
        grpc.connections_max
    ),
    field!(
        "grpc_connections_per_addr_max",
        "gRPC connections one client address may hold",
        grpc.connections_per_addr_max
    ),
    field!(
        "grpc_connection_rate_per_addr_max",
        "New gRPC connections one client address may open a second; past it one is closed at accept",
        grpc.connection_rate_per_addr_max
    ),
    field!(
        "grpc_idle_ms_max",
        "How long a gRPC connection may go without a call before it is closed",
        grpc.idle_ms_max
    ),
    field!(
        "grpc_request_read_ms_max",
        "How long a new gRPC connection may take to send its first call",
        grpc.request_read_ms_max
    ),
    field!(
        "kafka_request_bytes_max",
        "Largest Kafka request frame; a larger size prefix closes the connection",
        kafka.request_bytes_max
    ),
    field!(
        "kafka_connections_max",
        "Kafka connections served at once; when full an idle one of the address holding the most makes room, else more \
         wait in the listen backlog",
        kafka.connections_max
    ),
    field!(
        "kafka_connections_per_addr_max",
        "Kafka connections one client address may hold",
        kafka.connections_per_addr_max
    ),
    field!(
        "kafka_connection_rate_per_addr_max",
        "New Kafka connections one client address may open a second; past it one is closed at accept",
        kafka.connection_rate_per_addr_max
    ),
    field!(
        "kafka_idle_ms_max",
        "How long a Kafka connection may go without a request before it is closed",
        kafka.idle_ms_max
    ),
    field!(
        "kafka_request_read_ms_max",
        "How long a Kafka request frame may take to arrive whole from its first byte",
        kafka.request_read_ms_max
    ),
    field!(
        "http_request_bytes_max",
        "Largest HTTP request body (or streaming produce line); a larger one gets 413",
        http.request_bytes_max
    ),
    field!(
        "http_read_bytes_default",
        "Bytes an HTTP fetch reads when it gives no max_bytes, and one read of an SSE stream",
        http.read_bytes_default
    ),
    field!(
        "http_connections_max",
        "HTTP connections served at once; when full an idle one of the address holding the most makes room, else more \
         wait in the listen backlog",
        http.connections_max
    ),
    field!(
        "http_connections_per_addr_max",
        "HTTP connections one client address may hold",
        http.connections_per_addr_max
    ),
    field!(
        "http_connection_rate_per_addr_max",
        "New HTTP connections one client address may open a second; past it one is closed at accept",
        http.connection_rate_per_addr_max
    ),
    field!(
        "http_idle_ms_max",
        "How long a keep-alive HTTP connection may wait for its next request",
        http.idle_ms_max
    ),
    field!(
        "http_request_read_ms_max",
        "How long an HTTP request's head may take to arrive from its first byte (slowloris)",
        http.request_read_ms_max
    ),
    field!(
        "http_write_stall_ms_max",
        "How long an HTTP client may read nothing before its connection is dropped",
        http.write_stall_ms_max
    ),
    field!(
        "http_keepalive_interval_ms",
        "Interval of SSE keep-alive comments on an idle stream",
        http.keepalive_interval_ms
    ),
    field!(
        "http_produce_stream_in_flight_max",
        "Records of one streaming HTTP produce appended but not yet answered",
        http.produce_stream_in_flight_max
    ),
    list_field!(
        "http_cors_origins",
        "Comma-separated origins whose web pages may call the HTTP door (none: no page)",
        parse_origins,
        http.cors_origins
    ),
    list_field!(
        "http_allowed_hosts",
        "Comma-separated names the HTTP door answers to besides IP addresses and \
         localhost (`*`: any; none: only those)",
        parse_hosts,
        http.allowed_hosts
    ),
    Setting {
        key: "kafka_group_initial_rebalance_delay_ms",
        help: "How long a new Kafka consumer group waits for more members before its first \
               rebalance",
        boolean: false,
        access: Access::Field {
            apply: |c, v| {
                c.kafka.group_initial_rebalance_delay = Duration::from_millis(parse(v)?);
                Ok(())
            },
            show: |c| {
                c.kafka
                    .group_initial_rebalance_delay
                    .as_millis()
                    .to_string()
            },
        },
    },
    Setting {
        key: "kafka_group_consumer_session_timeout_ms",
        help: "How long a consumer-protocol (group.protocol=consumer) member may go without a \
               heartbeat before it leaves its group",
        boolean: false,
        access: Access::Field {
            apply: |c, v| {
                c.kafka.group_consumer_session_timeout = Duration::from_millis(parse(v)?);
                Ok(())
            },
            show: |c| {
                c.kafka
                    .group_consumer_session_timeout
                    .as_millis()
                    .to_string()
            },
        },
    },
    Setting {
        key: "kafka_group_consumer_heartbeat_interval_ms",
        help: "How often consumer-protocol (group.protocol=consumer) members heartbeat",
        boolean: false,
        access: Access::Field {
            apply: |c, v| {
                c.kafka.group_consumer_heartbeat_interval = Duration::from_millis(parse(v)?);
                Ok(())
            },
            show: |c| {
                c.kafka
                    .group_consumer_heartbeat_interval
                    .as_millis()
                    .to_string()
            },
        },
    },
    // Security (docs/security.md).
    tls_file!(
        "tls_cert",
        "PEM certificate chain (leaf first): with tls_key, TLS on every door (none: plaintext)",
        cert
    ),
    tls_file!(
        "tls_key",
        "PEM private key of tls_cert (PKCS#8, PKCS#1 or SEC1)",
        key
    ),
    tls_file!(
        "tls_client_ca",
        "PEM CA that must sign every client's certificate (mutual TLS; none: not asked)",
        client_ca
    ),
    Setting {
        key: "auth",
        help: "Clients must authenticate (Kafka SASL PLAIN/SCRAM, gRPC and HTTP Basic or Bearer): \
               on or off",
        boolean: false,
        access: Access::Field {
            apply: |c, v| {
                c.auth.enabled = brook::security::parse_switch(v)?;
                Ok(())
            },
            show: |c| if c.auth.enabled { "on" } else { "off" }.into(),
        },
    },
    Setting {
        key: "superusers",
        help: "Comma-separated principals that bypass ACLs (User:admin,...; none: nobody)",
        boolean: false,
        access: Access::Field {
            apply: |c, v| {
                c.auth.superusers = parse_principals(v)?;
                Ok(())
            },
            show: |c| match c.auth.superusers.as_slice() {
                [] => "none".into(),
                users => users
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
            },
        },
    },
    Setting {
        key: "metrics_public",
        help: "With auth on, serve GET /metrics on the HTTP door without credentials (else it \
               needs Describe on the cluster)",
        boolean: true,
        access: Access::Field {
            apply: |c, v| {
                c.http.metrics_public = parse(v)?;
                Ok(())
            },
            show: |c| c.http.metrics_public.to_string(),
        },
    },
    tls_switch!(
        "grpc_tls",
        "Serve TLS on the gRPC door when tls_cert is set",
        grpc
    ),
    tls_switch!(
        "kafka_tls",
        "Serve TLS on the Kafka door when tls_cert is set",
        kafka
    ),
    tls_switch!(
        "http_tls",
        "Serve TLS on the HTTP door when tls_cert is set",
        http
    ),
];

/// Parses `none` or comma-separated principals (`User:admin`).
fn parse_principals(v: &str) -> Result<Vec<brook_broker::auth::Principal>, String> {
    if v == "none" || v.is_empty() {
        return Ok(Vec::new());
    }
    v.split(',')
        .map(|p| brook_broker::auth::Principal::parse(p.trim()).map_err(|e| e.to_string()))
        .collect()
}

/// `none` or a path.
fn parse_optional_path(v: &str) -> Option<PathBuf> {
    (v != "none" && !v.is_empty()).then(|| PathBuf::from(v))
}

fn show_optional_path(path: Option<&Path>) -> String {
    path.map_or_else(|| "none".into(), |p| p.display().to_string())
}

/// The librdkafka properties of a gateway backend (none for the local log).
fn backend_properties(backend: &BackendConfig) -> Vec<(String, String)> {
    match backend {
        BackendConfig::Kafka { properties, .. } => properties.clone(),
        _ => Vec::new(),
    }
}

/// Parses `none` or `KEY=VALUE,KEY=VALUE`.
fn parse_properties(v: &str) -> Result<Vec<(String, String)>, String> {
    if v == "none" {
        return Ok(Vec::new());
    }
    v.split(',')
        .map(|pair| match pair.trim().split_once('=') {
            Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
            _ => Err(format!("{pair:?} is not KEY=VALUE")),
        })
        .collect()
}

/// Parses `none` or a comma-separated list of origins (`http://localhost:3000`).
/// A list setting as `brook serve --show-config` prints it.
fn show_list(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(",")
    }
}

fn parse_origins(v: &str) -> Result<Vec<String>, String> {
    if v == "none" {
        return Ok(Vec::new());
    }
    v.split(',')
        .map(str::trim)
        .map(|origin| match origin.split_once("://") {
            Some(("http" | "https", host)) if !host.is_empty() && !host.contains('/') => {
                Ok(origin.to_owned())
            }
            _ => Err(format!(
                "origin {origin:?} is not scheme://host[:port] (http or https, no path)"
            )),
        })
        .collect()
}

/// Host names for `http_allowed_hosts`: `none`, or names (or `*`) separated by commas.
fn parse_hosts(v: &str) -> Result<Vec<String>, String> {
    if v == "none" {
        return Ok(Vec::new());
    }
    v.split(',')
        .map(str::trim)
        .map(|host| {
            let valid = host == "*"
                || (!host.is_empty()
                    && host.len() <= 253
                    && host
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'));
            if valid {
                Ok(host.to_owned())
            } else {
                Err(format!(
                    "host {host:?} is not a DNS name (letters, digits, '-', '.'; no port) or *"
                ))
            }
        })
        .collect()
}

/// The setting named `key`.
pub(crate) fn setting(key: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.key == key)
}

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    Default,
    File(PathBuf),
    Env(String),
    Flag(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File(path) => write!(f, "file {}", path.display()),
            Source::Env(var) => write!(f, "environment variable {var}"),
            Source::Flag(flag) => write!(f, "flag --{flag}"),
        }
    }
}

/// A TOML settings file: flat `key = value` lines, keys as in [`SETTINGS`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ConfigFile {
    path: PathBuf,
    values: BTreeMap<String, String>,
}

impl ConfigFile {
    /// Reads and checks `path`: every key must be a setting, every value a string, an integer
    /// or a boolean.
    pub(crate) fn read(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        Self::parse(path, &text)
    }

    /// Parses the text of a settings file read from `path` (named in errors).
    pub(crate) fn parse(path: &Path, text: &str) -> anyhow::Result<Self> {
        let in_file = || format!("config file {}", path.display());
        let table: toml::Table = text.parse().with_context(in_file)?;
        let mut values = BTreeMap::new();
        for (key, value) in table {
            if setting(&key).is_none() {
                return Err(anyhow!(
                    "unknown setting {key:?} (known: {})",
                    SETTINGS
                        .iter()
                        .map(|s| s.key)
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
                .with_context(in_file);
            }
            let text = match value {
                toml::Value::String(text) => text,
                toml::Value::Integer(n) => n.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                other => {
                    return Err(anyhow!(
                        "{key} must be a string, an integer or a boolean, not a {}",
                        other.type_str()
                    ))
                    .with_context(in_file)
                }
            };
            values.insert(key, text);
        }
        Ok(ConfigFile {
            path: path.to_path_buf(),
            values,
        })
    }
}

/// The settings given as flags, by key; a clap `Args` whose flags come from [`SETTINGS`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SettingFlags {
    values: BTreeMap<&'static str, String>,
}

impl SettingFlags {
    /// Flags as if given on the command line.
    #[cfg(test)]
    pub(crate) fn from_pairs(pairs: &[(&'static str, &str)]) -> Self {
        SettingFlags {
            values: pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
        }
    }
}

impl clap::FromArgMatches for SettingFlags {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut flags = SettingFlags::default();
        flags.update_from_arg_matches(matches)?;
        Ok(flags)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        for s in SETTINGS {
            if let Some(value) = matches.get_one::<String>(s.key) {
                self.values.insert(s.key, value.clone());
            }
        }
        Ok(())
    }
}

impl clap::Args for SettingFlags {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        let defaults = ServeConfig::default();
        SETTINGS.iter().fold(cmd, |cmd, s| {
            let range = ServeConfig::bounds(s.key)
                .map(|bounds| format!(" [range: {bounds}]"))
                .unwrap_or_default();
            let help = format!(
                "{} [default: {}]{range} [env: {}]",
                s.help,
                s.show(&defaults),
                s.env_var()
            );
            let mut arg = Arg::new(s.key)
                .long(s.flag())
                .value_name("VALUE")
                .help(help)
                .help_heading(s.section());
            if s.boolean {
                arg = arg
                    .value_name("BOOL")
                    .num_args(0..=1)
                    .default_missing_value("true");
            }
            cmd.arg(arg)
        })
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

/// The effective settings and where each came from.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub config: ServeConfig,
    pub sources: Vec<(&'static Setting, Source)>,
}

impl Resolved {
    /// The settings as a TOML file that reproduces them, each with its source.
    pub(crate) fn to_toml(&self) -> String {
        let mut out = String::new();
        for (setting, source) in &self.sources {
            let value = setting.show(&self.config);
            let value = match value.parse::<i64>() {
                Ok(n) => n.to_string(),
                Err(_) if value == "true" || value == "false" => value,
                Err(_) => toml::Value::String(value).to_string(),
            };
            out.push_str(&format!("{} = {value}  # {source}\n", setting.key));
        }
        out
    }
}

/// Lays flags over environment variables over the file over the defaults, setting by setting.
/// `env` looks a variable up (the process environment, or a map in tests).
pub(crate) fn resolve(
    flags: &SettingFlags,
    env: &dyn Fn(&str) -> Option<String>,
    file: Option<&ConfigFile>,
) -> anyhow::Result<Resolved> {
    let mut config = ServeConfig::default();
    let mut sources = Vec::with_capacity(SETTINGS.len());
    for setting in SETTINGS {
        let env_var = setting.env_var();
        let given = if let Some(value) = flags.values.get(setting.key) {
            Some((value.clone(), Source::Flag(setting.flag())))
        } else if let Some(value) = env(&env_var).filter(|v| !v.is_empty()) {
            Some((value, Source::Env(env_var)))
        } else {
            file.and_then(|f| {
                let value = f.values.get(setting.key)?;
                Some((value.clone(), Source::File(f.path.clone())))
            })
        };
        let source = match given {
            Some((value, source)) => {
                setting.apply(&mut config, &value).map_err(|reason| {
                    anyhow!(
                        "invalid {} {value:?} (from {source}): {reason}",
                        setting.key
                    )
                })?;
                source
            }
            None => Source::Default,
        };
        sources.push((setting, source));
    }
    config.validate()?;
    // A gateway has no log, so a default data directory means nothing to it; with auth on it
    // keeps its users, tokens and ACLs there, which must be where the operator says.
    let data_dir_given = sources
        .iter()
        .any(|(setting, source)| setting.key == "data_dir" && *source != Source::Default);
    if config.backend.is_gateway() && config.auth.enabled && !data_dir_given {
        return Err(anyhow!(
            "auth on in gateway mode needs --data-dir DIR (or BROOK_DATA_DIR, data_dir): the \
             gateway keeps its users, tokens and ACLs there, and nothing else; make the first \
             user with `brook user add NAME --data-dir DIR --password-stdin`"
        ));
    }
    Ok(Resolved { config, sources })
}

#[cfg(test)]
mod tests {
    use super::*;
    use brook_broker::Durability;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn file(text: &str) -> ConfigFile {
        ConfigFile::parse(Path::new("brook.toml"), text).expect("valid file")
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let resolved = resolve(&SettingFlags::default(), &no_env, None).expect("defaults");
        let config = &resolved.config;
        assert_eq!(config.broker.data_dir, PathBuf::from("./brook-data"));
        assert_eq!(config.grpc_addr.to_string(), "127.0.0.1:50051");
        assert_eq!(config.kafka_addr.to_string(), "127.0.0.1:9092");
        assert_eq!(config.http_addr.to_string(), "127.0.0.1:8080");
        assert_eq!(config.broker.log.durability, Durability::Sync);
        assert!(config.broker.auto_create_topics);
        assert!(resolved.sources.iter().all(|(_, s)| *s == Source::Default));
    }

    #[test]
    fn flag_beats_env_beats_file_beats_default_per_setting() {
        let file = file(
            "segment_bytes_max = 4096\nmessage_bytes_max = 2048\ndefault_partitions = 3\n\
             durability = \"interval:50\"\n",
        );
        let env = |var: &str| match var {
            "BROOK_SEGMENT_BYTES_MAX" => Some("8192".to_owned()),
            "BROOK_MESSAGE_BYTES_MAX" => Some("4096".to_owned()),
            // Empty counts as unset: the file's value stands.
            "BROOK_DEFAULT_PARTITIONS" => Some(String::new()),
            _ => None,
        };
        let flags = SettingFlags::from_pairs(&[("segment_bytes_max", "16384")]);
        let resolved = resolve(&flags, &env, Some(&file)).expect("valid layers");
        let log = &resolved.config.broker.log;
        assert_eq!(log.segment_bytes_max, 16384, "flag over env and file");
        assert_eq!(log.message_bytes_max, 4096, "env over file");
        assert_eq!(
            resolved.config.broker.default_partitions, 3,
            "file over default"
        );
        assert_eq!(
            log.durability,
            Durability::Interval(Duration::from_millis(50))
        );
        assert_eq!(log.index_interval_bytes, 4096, "default");

        let source = |key: &str| {
            resolved
                .sources
                .iter()
                .find(|(s, _)| s.key == key)
                .map(|(_, source)| source.clone())
                .expect("every setting has a source")
        };
        assert_eq!(
            source("segment_bytes_max"),
            Source::Flag("segment-bytes-max".into())
        );
        assert_eq!(
            source("message_bytes_max"),
            Source::Env("BROOK_MESSAGE_BYTES_MAX".into())
        );
        assert_eq!(
            source("default_partitions"),
            Source::File(PathBuf::from("brook.toml"))
        );
        assert_eq!(source("index_interval_bytes"), Source::Default);
    }

    #[test]
    fn doors_switch_off_and_addresses_resolve() {
        let flags = SettingFlags::from_pairs(&[
            ("kafka_addr", "off"),
            ("http_addr", "off"),
            ("grpc_addr", "localhost:0"),
        ]);
        let config = resolve(&flags, &no_env, None).expect("valid").config;
        assert_eq!(config.kafka_addr, Listen::Off);
        assert_eq!(config.http_addr, Listen::Off);
        match config.grpc_addr {
            Listen::On(addr) => assert!(addr.ip().is_loopback(), "{addr}"),
            Listen::Off => panic!("gRPC should be on"),
        }
        let all_off = SettingFlags::from_pairs(&[
            ("kafka_addr", "off"),
            ("http_addr", "off"),
            ("grpc_addr", "off"),
        ]);
        let err = resolve(&all_off, &no_env, None).expect_err("nothing to serve");
        assert!(err.to_string().contains("every door is off"), "{err}");
    }

    #[test]
    fn bad_values_name_the_setting_the_value_and_the_source() {
        let env = |var: &str| (var == "BROOK_DURABILITY").then(|| "fast".to_owned());
        let err = resolve(&SettingFlags::default(), &env, None).expect_err("bad durability");
        let text = format!("{err:#}");
        assert!(
            text.contains("durability")
                && text.contains("\"fast\"")
                && text.contains("BROOK_DURABILITY"),
            "{text}"
        );

        for (key, value) in [
            ("segment_bytes_max", "12x"),
            ("grpc_addr", "nowhere"),
            ("auto_create_topics", "yes please"),
            ("kafka_advertised_addr", "no-port"),
            ("log_level", "[[["),
            ("segment_bytes_max", "10"),
            ("default_partitions", "0"),
            ("drain_timeout_ms", "0"),
            ("grpc_connections_max", "0"),
            ("kafka_connections_max", "1048577"),
            ("http_connections_max", "0"),
            ("http_write_stall_ms_max", "0"),
        ] {
            let flags = SettingFlags::from_pairs(&[(key, value)]);
            let err = resolve(&flags, &no_env, None).expect_err(value);
            let text = format!("{err:#}");
            assert!(!text.is_empty(), "{key}={value}");
        }
    }

    #[test]
    fn a_connection_cap_out_of_bounds_names_the_door_and_the_setting() {
        for (key, door) in [
            ("grpc_connections_max", "gRPC"),
            ("kafka_connections_max", "Kafka"),
            ("http_connections_max", "HTTP"),
        ] {
            let flags = SettingFlags::from_pairs(&[(key, "0")]);
            let err = resolve(&flags, &no_env, None).expect_err("a cap of 0");
            let text = format!("{err:#}");
            assert!(
                text.contains(door) && text.contains("connections_max"),
                "{key}: {text}"
            );
        }
    }

    #[test]
    fn a_file_with_an_unknown_key_or_a_bad_type_is_refused() {
        let path = Path::new("brook.toml");
        let err = ConfigFile::parse(path, "segment_byte_max = 1\n").expect_err("typo");
        assert!(format!("{err:#}").contains("segment_byte_max"), "{err:#}");
        let err = ConfigFile::parse(path, "grpc_addr = [1, 2]\n").expect_err("array");
        assert!(format!("{err:#}").contains("grpc_addr"), "{err:#}");
        let err = ConfigFile::parse(path, "grpc_addr = \n").expect_err("not TOML");
        assert!(format!("{err:#}").contains("brook.toml"), "{err:#}");
        let ok = file("auto_create_topics = false\ngrpc_addr = \"127.0.0.1:0\"\n");
        let config = resolve(&SettingFlags::default(), &no_env, Some(&ok))
            .expect("valid")
            .config;
        assert!(!config.broker.auto_create_topics);
    }

    #[test]
    fn print_config_output_reads_back_as_the_same_settings() {
        let flags = SettingFlags::from_pairs(&[
            ("durability", "none"),
            ("retention_ms_max", "none"),
            ("kafka_advertised_addr", "kafka.local:9092"),
            ("log_level", "brook=debug,tonic=warn"),
        ]);
        let first = resolve(&flags, &no_env, None).expect("valid");
        let again = resolve(
            &SettingFlags::default(),
            &no_env,
            Some(&file(&first.to_toml())),
        )
        .expect("printed config parses");
        assert_eq!(first.config, again.config);
    }

    #[test]
    fn every_topic_log_setting_of_brook_log_is_a_setting() {
        for key in TopicConfig::ALIASES {
            let s = setting(key).unwrap_or_else(|| panic!("{key} is not a serve setting"));
            assert!(matches!(s.access, Access::Log), "{key}");
        }
    }

    #[test]
    fn the_operations_doc_lists_every_setting_with_its_default() {
        let doc = include_str!("../../../docs/operations.md");
        let defaults = ServeConfig::default();
        for s in SETTINGS {
            let row = format!("| `{}` | `{}`", s.key, s.show(&defaults));
            assert!(doc.contains(&row), "docs/operations.md lacks the row {row}");
        }
    }

    #[test]
    fn the_operations_doc_gives_every_numeric_setting_its_range() {
        let doc = include_str!("../../../docs/operations.md");
        for s in SETTINGS {
            let Some(bounds) = ServeConfig::bounds(s.key) else {
                continue;
            };
            let row = doc
                .lines()
                .find(|line| line.starts_with(&format!("| `{}` |", s.key)))
                .unwrap_or_else(|| panic!("docs/operations.md has no row for {}", s.key));
            assert!(
                row.contains(&bounds.to_string()),
                "docs/operations.md's row for {} lacks its range {bounds}: {row}",
                s.key
            );
        }
    }

    #[test]
    fn every_setting_refuses_a_value_past_its_range_naming_it() {
        for s in SETTINGS {
            let Some(bounds) = ServeConfig::bounds(s.key) else {
                continue;
            };
            let past = bounds.max.saturating_add(1);
            let value = match s.key {
                "durability" => format!("interval:{past}"),
                _ if bounds.max == u64::MAX => continue,
                _ => past.to_string(),
            };
            let flags = SettingFlags::from_pairs(&[(s.key, value.as_str())]);
            let err = resolve(&flags, &no_env, None).expect_err(s.key);
            let text = format!("{err:#}");
            assert!(text.contains(&bounds.to_string()), "{}: {text}", s.key);
        }
    }

    #[test]
    fn worker_threads_reads_auto_or_a_count_in_range() {
        let workers = |value: &str| {
            let flags = SettingFlags::from_pairs(&[("worker_threads", value)]);
            resolve(&flags, &no_env, None).map(|r| r.config.worker_threads)
        };
        assert_eq!(workers("auto").expect("auto"), None);
        assert_eq!(workers("1").expect("one"), Some(1));
        assert_eq!(workers("256").expect("most"), Some(256));
        for bad in ["0", "257", "70000", "-1", "two"] {
            let err = workers(bad).expect_err(bad);
            assert!(
                format!("{err:#}").contains("worker_threads"),
                "{bad}: {err:#}"
            );
        }
        assert_eq!(
            ServeConfig::default().worker_threads,
            None,
            "the default is unchanged"
        );
    }

    #[test]
    fn keys_flags_and_variables_follow_one_rule() {
        let s = setting("segment_bytes_max").expect("setting");
        assert_eq!(s.flag(), "segment-bytes-max");
        assert_eq!(s.env_var(), "BROOK_SEGMENT_BYTES_MAX");
        let mut keys: Vec<_> = SETTINGS.iter().map(|s| s.key).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), SETTINGS.len(), "keys are unique");
    }
}
