//! A running brook: the broker and its doors, started together and stopped together.
//!
//! [`Server::start`] checks every setting, opens the broker (so a second server on the same
//! data directory fails on the lock, naming its holder, before touching any port), then binds
//! every door that is on before serving any of them (so a taken port fails the start with one
//! line naming the door and the address, and nothing half-started is left behind). Each door
//! then runs as a `brook_door::RunningDoor`, the handle every door lives through.
//! [`Server::stop`] tells every door to stop accepting, lets requests in flight finish (within
//! the drain timeout, after which a door is aborted), then closes the broker, which writes the
//! clean-shutdown marker.
//!
//! `brook serve` runs one; `brook bench --embedded` runs another on a temporary directory and
//! port 0, so the bench goes through exactly the doors `brook serve` starts. An application
//! that wants every door with its settings in one value can run one too. The command line's
//! layering of flags, `BROOK_*` variables and a TOML file into a [`ServeConfig`] stays in the
//! binary; this module takes the finished value.
//!
//! In gateway mode ([`BackendConfig::Kafka`], `brook serve --backend kafka://HOST:PORT`) there
//! is no local log: the server reaches the cluster instead of opening a data directory (a
//! cluster that does not answer fails the start), and the gRPC door, the HTTP door with its
//! console, and the metrics port serve the cluster's topics and groups through the same
//! [`Backend`] seam. The Kafka door is off: Kafka clients talk to the cluster directly.
//!
//! A gateway with authentication on ([`crate::security::open_auth`]) authenticates and
//! authorizes every gRPC and HTTP request itself, with the broker's one authorizer and rules,
//! before anything reaches the cluster; its users, tokens and ACLs are kept in its data
//! directory, which holds nothing else (a gateway has no log: a directory with anything but
//! the security store in it is refused, so a broker's data directory is never mistaken for
//! one). Its own login to the cluster is `backend_properties`, the cluster's business.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use brook_broker::bounds::{bounds_of, Bounds, DAY_MS};
use brook_broker::{Backend, Broker, BrokerConfig, BrokerError, TopicConfig};
use brook_door::{BoxError, Door, DoorError, Listener, RunningDoor, Serving};
use brook_kafka::{Kafka, KafkaConfig};
use brook_server::{Grpc, GrpcConfig, Http, HttpConfig, MetricsConfig, MetricsDoor};

use crate::security::TlsSettings;

/// Where a door listens, or that it is switched off (`off`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listen {
    Off,
    On(SocketAddr),
}

impl Listen {
    /// Parses `off`, `IP:PORT`, or `HOST:PORT` (resolved now; its first address is used).
    pub fn parse(text: &str) -> Result<Self, String> {
        if text == "off" {
            return Ok(Listen::Off);
        }
        if let Ok(addr) = text.parse() {
            return Ok(Listen::On(addr));
        }
        let mut addrs = text
            .to_socket_addrs()
            .map_err(|e| format!("not `off`, IP:PORT or HOST:PORT ({e})"))?;
        addrs
            .next()
            .map(Listen::On)
            .ok_or_else(|| format!("{text} resolves to no address"))
    }
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Listen::Off => f.write_str("off"),
            Listen::On(addr) => addr.fmt(f),
        }
    }
}

/// How the process writes its log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per event, with the fields of the spans it happened in.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err("not `text` or `json`".into()),
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        })
    }
}

/// Where the records a [`Server`]'s doors serve live.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum BackendConfig {
    /// brook's own log in the broker's data directory.
    #[default]
    Local,
    /// Gateway mode: the Kafka cluster at `url` (`kafka://HOST:PORT[,HOST:PORT...]`), its
    /// clients given `properties` (librdkafka's: `security.protocol`, `sasl.*`, ...). Needs the
    /// `kafka-backend` feature.
    Kafka {
        url: String,
        properties: Vec<(String, String)>,
    },
}

impl BackendConfig {
    /// Parses `local` or `kafka://HOST:PORT[,HOST:PORT...]` (with no properties).
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "local" => Ok(BackendConfig::Local),
            url if url.starts_with("kafka://") => Ok(BackendConfig::Kafka {
                url: url.to_owned(),
                properties: Vec::new(),
            }),
            _ => Err("not `local` or kafka://HOST:PORT[,HOST:PORT...]".into()),
        }
    }

    /// Whether the doors serve a cluster rather than a local log.
    pub fn is_gateway(&self) -> bool {
        !matches!(self, BackendConfig::Local)
    }
}

impl fmt::Display for BackendConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackendConfig::Local => f.write_str("local"),
            BackendConfig::Kafka { url, .. } => f.write_str(url),
        }
    }
}

/// Everything a [`Server`] runs with: the broker's settings and each door's.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServeConfig {
    /// Where the records live: the local log (default) or a Kafka cluster (gateway mode).
    pub backend: BackendConfig,
    /// The broker: data directory, topic log defaults (durability included), limits. In
    /// gateway mode its limits, request-reply settings, `auto_create_topics` and
    /// `default_partitions` apply to the cluster's calls, and with `auth` on `data_dir` holds
    /// the gateway's security store (and nothing else); the rest is unused.
    pub broker: BrokerConfig,
    /// A tracing filter (`info`, `brook=debug,tonic=warn`); `None`: `RUST_LOG`, else `info`.
    /// Read by the binary, which owns the process's logging.
    pub log_level: Option<String>,
    /// How log lines are written: `text` for people, `json` (one object per line, with the
    /// request span's fields) for a log pipeline. Read by the binary, as `log_level` is.
    pub log_format: LogFormat,
    /// How long doors may take to finish requests in flight after a stop before the broker is
    /// closed under them.
    pub drain_timeout_ms: u64,
    /// Worker threads of the process's async runtime; `None`: one per core (tokio's default).
    /// Read by the binary, which builds the runtime.
    pub worker_threads: Option<u16>,
    pub grpc_addr: Listen,
    pub grpc: GrpcConfig,
    pub kafka_addr: Listen,
    pub kafka: KafkaConfig,
    pub http_addr: Listen,
    pub http: HttpConfig,
    /// Where `/metrics` is also served on a port of its own (default off: the HTTP door
    /// serves it), so a scraper reaches it with the HTTP door off.
    pub metrics_addr: Listen,
    pub metrics: MetricsConfig,
    /// TLS on the doors (docs/security.md); default off.
    pub tls: TlsSettings,
    /// Authentication and ACLs on the doors (docs/security.md); default off.
    pub auth: brook_broker::auth::AuthConfig,
}

impl Default for ServeConfig {
    fn default() -> Self {
        let local = |port| Listen::On(SocketAddr::from(([127, 0, 0, 1], port)));
        ServeConfig {
            backend: BackendConfig::Local,
            broker: BrokerConfig::new("./brook-data"),
            log_level: None,
            log_format: LogFormat::Text,
            drain_timeout_ms: 30_000,
            worker_threads: None,
            grpc_addr: local(50051),
            grpc: GrpcConfig::default(),
            kafka_addr: local(9092),
            kafka: KafkaConfig::default(),
            http_addr: local(8080),
            http: HttpConfig::default(),
            metrics_addr: Listen::Off,
            metrics: MetricsConfig::default(),
            tls: TlsSettings::default(),
            auth: brook_broker::auth::AuthConfig::default(),
        }
    }
}

/// The range of `drain_timeout_ms`.
const DRAIN_TIMEOUT_MS: Bounds = Bounds::new(1, DAY_MS);
/// The range of `worker_threads`.
const WORKER_THREADS: Bounds = Bounds::new(1, 256);

impl ServeConfig {
    /// The range of the setting `brook serve` calls `key` (`segment_bytes_max`,
    /// `grpc_idle_ms_max`, ...), read from the table of the crate that owns it: brook-log's
    /// topic settings (for `durability`, the milliseconds of `interval:MS`), the broker's,
    /// each door's. `None` for a setting with no number to bound (an address, a list).
    pub fn bounds(key: &str) -> Option<Bounds> {
        match key {
            "drain_timeout_ms" => return Some(DRAIN_TIMEOUT_MS),
            "worker_threads" => return Some(WORKER_THREADS),
            _ => {}
        }
        let door = |prefix: &str, table: fn(&str) -> Option<Bounds>| {
            key.strip_prefix(prefix).and_then(table)
        };
        TopicConfig::bounds(key)
            .or_else(|| bounds_of(BrokerConfig::BOUNDS, key))
            .or_else(|| bounds_of(brook_broker::CleanerConfig::BOUNDS, key))
            .or_else(|| bounds_of(brook_broker::TxnConfig::BOUNDS, key))
            .or_else(|| door("grpc_", |k| bounds_of(GrpcConfig::BOUNDS, k)))
            .or_else(|| door("kafka_", |k| bounds_of(KafkaConfig::BOUNDS, k)))
            .or_else(|| door("http_", |k| bounds_of(HttpConfig::BOUNDS, k)))
    }

    /// Checks settings that only make sense together, before anything is opened.
    pub fn validate(&self) -> Result<(), ServeError> {
        self.broker
            .validate()
            .map_err(|source| ServeError::InvalidBroker { source })?;
        let doors = [self.grpc_addr, self.kafka_addr, self.http_addr];
        if doors.iter().all(|door| *door == Listen::Off) {
            return Err(ServeError::Invalid {
                reason: "every door is off (grpc_addr, kafka_addr, http_addr): nothing would be \
                         served"
                    .into(),
            });
        }
        if self.backend.is_gateway() && [self.grpc_addr, self.http_addr] == [Listen::Off; 2] {
            return Err(ServeError::Invalid {
                reason: "in gateway mode the Kafka door is off and so are grpc_addr and \
                         http_addr: nothing would be served"
                    .into(),
            });
        }
        DRAIN_TIMEOUT_MS
            .check("drain_timeout_ms", self.drain_timeout_ms)
            .map_err(|reason| ServeError::Invalid { reason })?;
        if let Some(workers) = self.worker_threads {
            WORKER_THREADS
                .check("worker_threads", u64::from(workers))
                .map_err(|reason| ServeError::Invalid { reason })?;
        }
        self.tls
            .files()
            .map_err(|reason| ServeError::Invalid { reason })?;
        self.auth
            .validate()
            .map_err(|source| ServeError::InvalidBroker { source })?;
        // The metrics port authenticates nobody: with auth on it serves only by choice.
        if self.auth.enabled && self.metrics_addr != Listen::Off && !self.http.metrics_public {
            return Err(ServeError::Invalid {
                reason: "metrics_addr serves /metrics to anyone who reaches it, and auth is on: \
                         set metrics_public (--metrics-public) to serve the metrics openly, or \
                         turn metrics_addr off and scrape the HTTP door's /metrics as a \
                         principal with Describe on the cluster"
                    .into(),
            });
        }
        // Every door's settings, those of a door that is off too: a bad value is a mistake
        // wherever it is.
        for door in DoorKind::ALL {
            door.validate(self)?;
        }
        Ok(())
    }

    /// The drain timeout as a duration.
    pub fn drain_timeout(&self) -> Duration {
        Duration::from_millis(self.drain_timeout_ms)
    }

    /// Where `door` listens.
    pub fn addr(&self, door: DoorKind) -> Listen {
        match door {
            DoorKind::Grpc => self.grpc_addr,
            DoorKind::Kafka => self.kafka_addr,
            DoorKind::Http => self.http_addr,
            DoorKind::Metrics => self.metrics_addr,
        }
    }
}

/// Which of brook's network doors (the metrics port counts as one: it listens, is capped and
/// stops like them, though it serves no client of the broker).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DoorKind {
    Grpc,
    Kafka,
    Http,
    Metrics,
}

impl DoorKind {
    pub const ALL: [DoorKind; 4] = [
        DoorKind::Grpc,
        DoorKind::Kafka,
        DoorKind::Http,
        DoorKind::Metrics,
    ];

    /// The name used in output and settings (`grpc` for `grpc_addr`).
    pub fn name(self) -> &'static str {
        match self {
            DoorKind::Grpc => "grpc",
            DoorKind::Kafka => "kafka",
            DoorKind::Http => "http",
            DoorKind::Metrics => "metrics",
        }
    }

    /// The name used in log lines and errors (`gRPC`): the door's [`Door::NAME`].
    pub fn label(self) -> &'static str {
        match self {
            DoorKind::Grpc => Grpc::NAME,
            DoorKind::Kafka => Kafka::NAME,
            DoorKind::Http => Http::NAME,
            DoorKind::Metrics => MetricsDoor::NAME,
        }
    }

    /// Checks this door's settings in `config` (`brook_door::validate`).
    fn validate(self, config: &ServeConfig) -> Result<(), DoorError> {
        match self {
            DoorKind::Grpc => brook_door::validate::<Grpc>(&config.grpc),
            DoorKind::Kafka => brook_door::validate::<Kafka>(&config.kafka),
            DoorKind::Http => brook_door::validate::<Http>(&config.http),
            DoorKind::Metrics => brook_door::validate::<MetricsDoor>(&config.metrics),
        }
    }

    /// Whether this door serves `backend`: every door serves the local log; in front of a
    /// cluster, all but the Kafka door (Kafka clients talk to the cluster directly).
    fn serves(self, backend: &BackendConfig) -> bool {
        !(self == DoorKind::Kafka && backend.is_gateway())
    }

    /// Starts this door of `config` serving `backend` on `listener`.
    fn start(
        self,
        backend: &Backend,
        listener: Listener,
        config: &ServeConfig,
    ) -> Result<Box<dyn Serving>, ServeError> {
        match self {
            DoorKind::Grpc => start::<Grpc>(backend.clone(), listener, config.grpc.clone()),
            DoorKind::Kafka => {
                let broker = backend
                    .local()
                    .cloned()
                    .ok_or_else(|| ServeError::Invalid {
                        reason: "the Kafka door serves the local log only".into(),
                    })?;
                start::<Kafka>(broker, listener, config.kafka.clone())
            }
            DoorKind::Http => start::<Http>(backend.clone(), listener, config.http.clone()),
            DoorKind::Metrics => {
                start::<MetricsDoor>(backend.clone(), listener, config.metrics.clone())
            }
        }
    }
}

/// Starts door `D` on `listener`, its protocol forgotten from here on.
fn start<D: Door>(
    broker: D::Backend,
    listener: Listener,
    config: D::Config,
) -> Result<Box<dyn Serving>, ServeError> {
    let running =
        RunningDoor::<D>::start_on(broker, listener, config).map_err(|e| ServeError::Door {
            door: D::NAME,
            source: e.into(),
        })?;
    Ok(Box::new(running))
}

/// Why a [`Server`] could not start, or what stopped it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    #[error("invalid broker settings: {source}")]
    InvalidBroker {
        #[source]
        source: BrokerError,
    },
    #[error("{reason}")]
    Invalid { reason: String },
    #[error("cannot open the broker on {data_dir}: {source}")]
    Open {
        data_dir: String,
        #[source]
        source: BrokerError,
    },
    /// Gateway mode could not reach its cluster (or this build cannot: no `kafka-backend`).
    #[error("cannot serve the Kafka cluster {url}: {reason}")]
    Cluster { url: String, reason: String },
    /// A door's settings are out of bounds, or its address cannot be bound; the error names
    /// the door (and the address).
    #[error(transparent)]
    Listen(#[from] DoorError),
    #[error("the {door} door stopped: {source}")]
    Door {
        door: &'static str,
        #[source]
        source: BoxError,
    },
    #[error("the {door} door stopped by itself")]
    DoorEnded { door: &'static str },
    #[error("cannot close the broker clean: {source}")]
    Close {
        #[source]
        source: BrokerError,
    },
}

type DoorResult = Result<(), ServeError>;

/// A door that is serving.
#[derive(Debug)]
pub struct ServingDoor {
    pub door: DoorKind,
    /// The bound address (the real port when the setting said port 0).
    pub addr: SocketAddr,
    running: Box<dyn Serving>,
}

/// The broker (or the cluster it is a gateway to) and its doors.
#[derive(Debug)]
pub struct Server {
    backend: Backend,
    doors: Vec<ServingDoor>,
    drain_timeout: Duration,
    /// The doors' TLS material, to reload; `None` without TLS.
    tls: Option<brook_door::tls::Tls>,
    /// The doors' users, tokens and ACLs; `None` with authentication off.
    auth: Option<brook_broker::auth::Auth>,
}

impl Server {
    /// Checks `config`, opens the broker (or reaches the cluster) and starts every door that
    /// is on.
    pub async fn start(config: &ServeConfig) -> Result<Server, ServeError> {
        config.validate()?;
        let mut config = config.clone();
        let tls = TlsSettings::load(&mut config).await?;
        if config.auth.enabled && config.backend.is_gateway() {
            check_gateway_dir(&config.broker.data_dir).await?;
        }
        let backend = open_backend(&config).await?;
        let broker = &backend;
        // The users, tokens and ACLs of the data directory, once the broker holds it.
        let auth = match crate::security::open_auth(&mut config).await {
            Ok(auth) => auth,
            Err(e) => {
                close_broker(broker).await;
                return Err(e);
            }
        };
        let config = &config;
        let listeners = match bind_doors(config).await {
            Ok(listeners) => listeners,
            Err(e) => {
                close_broker(broker).await;
                return Err(e);
            }
        };
        let mut doors: Vec<ServingDoor> = Vec::with_capacity(listeners.len());
        for (door, listener) in listeners {
            let addr = listener.local_addr();
            match door.start(broker, listener, config) {
                Ok(running) => doors.push(ServingDoor {
                    door,
                    addr,
                    running,
                }),
                Err(e) => {
                    // Only settings fail a start, and they were checked above. Should one fail
                    // anyway, dropping the doors started so far shuts them.
                    drop(doors);
                    close_broker(broker).await;
                    return Err(e);
                }
            }
        }
        Ok(Server {
            backend,
            doors,
            drain_timeout: config.drain_timeout(),
            tls,
            auth,
        })
    }

    /// The users, tokens and ACLs the doors check (`None` with authentication off): where an
    /// operator's tool changes them while the server runs.
    pub fn auth(&self) -> Option<&brook_broker::auth::Auth> {
        self.auth.as_ref()
    }

    /// Reads the TLS files again (SIGHUP): handshakes from now on use what they hold,
    /// connections already open keep theirs; on failure the old material stays. `Ok(false)`
    /// without TLS.
    pub async fn reload_tls(&self) -> Result<bool, brook_door::tls::TlsError> {
        let Some(tls) = self.tls.clone() else {
            return Ok(false);
        };
        match tokio::task::spawn_blocking(move || tls.reload()).await {
            Ok(result) => result.map(|()| true),
            Err(join) => Err(brook_door::tls::TlsError::Invalid {
                what: "TLS reload",
                path: std::path::PathBuf::new(),
                reason: join.to_string(),
            }),
        }
    }

    /// The local broker; `None` in gateway mode.
    pub fn broker(&self) -> Option<&Broker> {
        self.backend.local()
    }

    /// What the doors serve: the local broker, or the cluster in gateway mode.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// Where `door` listens, if it is serving.
    pub fn addr(&self, door: DoorKind) -> Option<SocketAddr> {
        self.doors.iter().find(|d| d.door == door).map(|d| d.addr)
    }

    /// The doors serving, in [`DoorKind::ALL`] order.
    pub fn doors(&self) -> &[ServingDoor] {
        &self.doors
    }

    /// Resolves when a door stops by itself, which only a failure makes it do; the door is
    /// then no longer in [`Server::doors`]. Never resolves when no door is serving.
    pub async fn door_stopped(&mut self) -> (DoorKind, DoorResult) {
        if self.doors.is_empty() {
            return std::future::pending().await;
        }
        let ends = self.doors.iter_mut().map(|d| d.running.finished());
        let (result, index, _) = futures::future::select_all(ends).await;
        let door = self.doors.remove(index).door;
        (door, failed(door, result))
    }

    /// Stops accepting, lets requests in flight finish (up to the drain timeout), and closes
    /// the broker clean. Returns the first door failure, after the broker is closed.
    pub async fn stop(self) -> DoorResult {
        let Server {
            backend: broker,
            doors,
            drain_timeout,
            tls: _,
            auth: _,
        } = self;
        for door in &doors {
            door.running.begin_stop();
        }
        let deadline = tokio::time::Instant::now() + drain_timeout;
        let mut failure = None;
        for door in doors {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if let Err(e) = stop_door(door, left).await {
                failure.get_or_insert(e);
            }
        }
        broker
            .close()
            .await
            .map_err(|source| ServeError::Close { source })?;
        failure.map_or(Ok(()), Err)
    }
}

/// Stops `door` and waits up to `drain` for it to finish; a door that has not drained by then
/// is aborted.
async fn stop_door(mut door: ServingDoor, drain: Duration) -> DoorResult {
    door.running.begin_stop();
    match tokio::time::timeout(drain, door.running.finished()).await {
        Ok(result) => failed(door.door, result),
        Err(_) => {
            tracing::warn!(
                door = door.door.name(),
                timeout_ms = drain.as_millis(),
                "door did not drain in time; closing the log under it"
            );
            door.running.abort();
            Ok(())
        }
    }
}

/// Binds every door that is on, in [`DoorKind::ALL`] order.
async fn bind_doors(config: &ServeConfig) -> Result<Vec<(DoorKind, Listener)>, ServeError> {
    let mut bound = Vec::new();
    for door in DoorKind::ALL {
        let Listen::On(addr) = config.addr(door) else {
            continue;
        };
        if !door.serves(&config.backend) {
            tracing::info!(
                door = door.name(),
                backend = %config.backend,
                "door off in gateway mode: Kafka clients talk to the cluster directly"
            );
            continue;
        }
        bound.push((door, Listener::bind(door.label(), addr).await?));
    }
    Ok(bound)
}

/// A door's end as the server reports it.
fn failed(door: DoorKind, result: Result<(), BoxError>) -> DoorResult {
    result.map_err(|source| ServeError::Door {
        door: door.label(),
        source,
    })
}

/// Says what opening the data directory found: a clean stop, or what recovery repaired.
fn log_recovery(broker: &Broker) {
    let reports = broker.recovery_reports();
    let recovered: Vec<_> = reports.iter().filter(|(_, r)| !r.clean).collect();
    for (partition, report) in &recovered {
        tracing::warn!(
            %partition,
            scanned_bytes = report.scanned_bytes,
            truncated_bytes = report.truncated_bytes,
            rebuilt_indexes = report.rebuilt_indexes,
            deleted_segments = report.deleted_segments,
            corruption = ?report.corruption,
            "partition recovered after an unclean stop"
        );
    }
    tracing::info!(
        partitions = reports.len(),
        recovered = recovered.len(),
        dir = %broker.data_dir().display(),
        "data directory opened"
    );
}

/// A gateway's data directory holds its security store and nothing else (it is made when
/// missing): anything more is a broker's data, or someone else's, and is refused before it is
/// touched.
async fn check_gateway_dir(data_dir: &std::path::Path) -> Result<(), ServeError> {
    let dir = data_dir.to_path_buf();
    let others = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<String>> {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut others = Vec::new();
        for entry in entries {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if name != brook_broker::auth::SECURITY_DIR {
                others.push(name);
            }
        }
        others.sort();
        Ok(others)
    })
    .await
    .map_err(|e| ServeError::Invalid {
        reason: format!("reading the data directory failed: {e}"),
    })?;
    let data = data_dir.display();
    match others {
        Ok(others) if others.is_empty() => Ok(()),
        Ok(others) => Err(ServeError::Invalid {
            reason: format!(
                "{data} holds more than a gateway's security store ({}): in gateway mode the \
                 data directory keeps only the users, tokens and ACLs (in {}/), never a log; \
                 give the gateway a directory of its own",
                others.join(", "),
                brook_broker::auth::SECURITY_DIR
            ),
        }),
        Err(e) => Err(ServeError::Invalid {
            reason: format!("cannot read the data directory {data}: {e}"),
        }),
    }
}

/// Opens the broker on its data directory, or reaches the cluster in gateway mode.
async fn open_backend(config: &ServeConfig) -> Result<Backend, ServeError> {
    match &config.backend {
        BackendConfig::Local => {
            let data_dir = config.broker.data_dir.display().to_string();
            let broker = Broker::open(config.broker.clone())
                .await
                .map_err(|source| ServeError::Open { data_dir, source })?;
            log_recovery(&broker);
            Ok(Backend::Local(broker))
        }
        BackendConfig::Kafka { url, properties } => connect(config, url, properties).await,
    }
}

/// Reaches the cluster at `url` for gateway mode, with the broker's limits and request-reply
/// settings.
#[cfg(feature = "kafka-backend")]
async fn connect(
    config: &ServeConfig,
    url: &str,
    properties: &[(String, String)],
) -> Result<Backend, ServeError> {
    let failed = |reason: String| ServeError::Cluster {
        url: url.to_owned(),
        reason,
    };
    let mut cluster =
        crate::kafka::ClusterConfig::from_url(url).map_err(|e| failed(e.to_string()))?;
    cluster.properties = properties.to_vec();
    cluster.broker = config.broker.clone();
    let backend = crate::kafka::connect_with(cluster)
        .await
        .map_err(|e| failed(e.to_string()))?;
    tracing::info!(%url, "gateway mode: serving the Kafka cluster, no local log");
    Ok(backend)
}

/// Without the `kafka-backend` feature there is no Kafka client to reach a cluster with.
#[cfg(not(feature = "kafka-backend"))]
async fn connect(
    _config: &ServeConfig,
    url: &str,
    _properties: &[(String, String)],
) -> Result<Backend, ServeError> {
    Err(ServeError::Cluster {
        url: url.to_owned(),
        reason: "this brook was built without the kafka-backend feature (librdkafka); rebuild \
                 with `cargo build --features kafka-backend`"
            .into(),
    })
}

/// Closes the broker after a failed start; the start's error is the one reported.
async fn close_broker(broker: &Backend) {
    if let Err(e) = broker.close().await {
        tracing::warn!(error = %e, "closing the broker after a failed start");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_gateways_data_directory_holds_its_security_store_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("gateway");
        check_gateway_dir(&data).await.expect("missing: made later");
        std::fs::create_dir_all(data.join(brook_broker::auth::SECURITY_DIR)).expect("mkdir");
        check_gateway_dir(&data).await.expect("the store alone");
        std::fs::write(data.join("orders-0"), b"").expect("write");
        let refused = check_gateway_dir(&data)
            .await
            .expect_err("more than the store");
        assert!(refused.to_string().contains("orders-0"), "{refused}");
    }

    #[test]
    fn with_auth_on_the_metrics_port_serves_only_when_the_metrics_are_public() {
        let mut config = ServeConfig {
            metrics_addr: Listen::On("127.0.0.1:0".parse().expect("address")),
            ..ServeConfig::default()
        };
        config
            .validate()
            .expect("auth off: the metrics port is fine");
        config.auth.enabled = true;
        let refused = config.validate().expect_err("auth on, metrics not public");
        assert!(refused.to_string().contains("metrics_public"), "{refused}");
        config.http.metrics_public = true;
        config.validate().expect("public by choice");
        config.metrics_addr = Listen::Off;
        config.http.metrics_public = false;
        config.validate().expect("no metrics port");
    }
}
