//! The doors `brook bench` drives, behind one small interface.
//!
//! A protocol is a way to reach the broker: the gRPC door through brook-client ([`grpc`]) or
//! with whole batches over the generated stubs ([`grpc_raw`]), the HTTP door through a plain
//! HTTP client ([`http`]), the Kafka door through librdkafka ([`kafka`], in builds with the
//! `bench-kafka` feature) or over a plain socket sending ProduceRequests ([`kafka_raw`]), or the
//! embedded broker's API in the same process with no socket at
//! all ([`embedded`]). The
//! workloads ([`super::workload`]) only see these traits, so a door plugs in by adding one
//! module that implements them, a [`ProtocolKind`] variant and its arm in [`connect`].
//!
//! Records are values of `--record-bytes` bytes with no key; each protocol sends a batch of them
//! to one partition as one request (or as its client batches them) and resolves an [`Ack`]
//! once the broker has acknowledged every record of it.

mod embedded;
mod grpc;
mod grpc_raw;
mod http;
mod kafka;
mod kafka_raw;

pub(crate) use kafka::{require_built as require_kafka_built, KafkaOptions};
pub(crate) use kafka_raw::PRODUCE_ONLY as KAFKA_RAW_PRODUCE_ONLY;

use anyhow::{bail, Context};
use brook::broker::Durability;
use brook::log::batch::{BatchBuilder, Compression, RecordRef};
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{FutureExt, Stream, StreamExt};

use super::Target;
use brook::server::DoorKind;

/// Resolves once every record of a sent batch is acknowledged.
pub(crate) type Ack = BoxFuture<'static, anyhow::Result<()>>;

/// What `--protocol` chooses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ProtocolKind {
    /// The gRPC door, through brook-client (batching Producer on a ProduceStream; Consumer on
    /// Subscribe streams).
    Grpc,
    /// The gRPC door with whole record batches built and decoded by the bench (RawBatch on a
    /// ProduceStream; Subscribe with raw batches): no per-record protobuf.
    GrpcRaw,
    /// The HTTP door through a plain HTTP client (a JSON request per batch; server-sent event
    /// streams).
    Http,
    /// The Kafka door through librdkafka (its batching producer, --acks; an assigned consumer).
    /// Needs a build with `--features bench-kafka`.
    Kafka,
    /// The Kafka door over a plain TCP socket: one ProduceRequest at a time (a RecordBatch v2
    /// built by the bench), its ProduceResponse read back; no client library. Produce only,
    /// --in-flight 1; any build.
    KafkaRaw,
    /// The embedded broker's API in the bench's own process: no socket, no encoding (needs
    /// --embedded). Shows what the doors add.
    Embedded,
}

impl ProtocolKind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            ProtocolKind::Grpc => "grpc",
            ProtocolKind::GrpcRaw => "grpc-raw",
            ProtocolKind::Http => "http",
            ProtocolKind::Kafka => "kafka",
            ProtocolKind::KafkaRaw => "kafka-raw",
            ProtocolKind::Embedded => "embedded",
        }
    }
}

/// The topic a run uses.
#[derive(Debug, Clone)]
pub(crate) struct TopicSpec {
    pub name: String,
    pub partitions: u32,
    /// `None`: the broker's default.
    pub durability: Option<Durability>,
}

/// How a producer should batch: the workload decides what one request holds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ProducerShape {
    /// Records per batch (`--batch`).
    pub batch: usize,
    pub record_bytes: usize,
    /// Batches sent and not yet acknowledged, at most (`--in-flight`).
    pub in_flight: usize,
    /// Records this producer sends in the run, in all (a transactional producer commits its
    /// last, partial transaction after the last of them).
    // Only the Kafka protocol (the bench-kafka build) has transactions.
    #[cfg_attr(not(feature = "kafka"), allow(dead_code))]
    pub records: u64,
}

/// A connection to the broker through one door.
pub(crate) trait Protocol: Send + Sync {
    /// Creates the topic when it does not exist. `Ok(true)`: this run created it. An existing
    /// topic is used as it is, and must have the partitions asked for.
    fn prepare_topic<'a>(&'a self, topic: &'a TopicSpec) -> BoxFuture<'a, anyhow::Result<bool>>;

    /// The high watermark of every partition, in partition order.
    fn end_offsets<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, anyhow::Result<Vec<u64>>>;

    fn delete_topic<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, anyhow::Result<()>>;

    /// A producer with its own connection (where the door has connections).
    fn producer<'a>(
        &'a self,
        topic: &'a str,
        shape: ProducerShape,
    ) -> BoxFuture<'a, anyhow::Result<Box<dyn BenchProducer>>>;

    /// A consumer reading each `(partition, offset)` onwards, with its own connection.
    fn consumer<'a>(
        &'a self,
        topic: &'a str,
        starts: Vec<(u32, u64)>,
    ) -> BoxFuture<'a, anyhow::Result<Box<dyn BenchConsumer>>>;
}

pub(crate) trait BenchProducer: Send + Sync {
    /// Sends `values` to `partition` as one batch. Returns once they are handed to the door
    /// (waiting while its buffers are full); the [`Ack`] resolves when all are acknowledged.
    fn send_batch(&self, partition: u32, values: Vec<Bytes>) -> BoxFuture<'_, anyhow::Result<Ack>>;
}

pub(crate) trait BenchConsumer: Send {
    /// Waits for the next records, hands each value to `sink`, and returns how many: at least
    /// one, plus every record that had already arrived (one poll, or one stream read).
    fn receive<'a>(
        &'a mut self,
        sink: &'a mut (dyn FnMut(&[u8]) + Send),
    ) -> BoxFuture<'a, anyhow::Result<usize>>;
}

/// Records a consumer takes in one [`BenchConsumer::receive`] at most, so one call never holds
/// an unbounded backlog.
pub(crate) const RECEIVE_RECORDS_MAX: usize = 65_536;

/// A [`BenchConsumer::receive`] over a stream of records: waits for the next one, then takes
/// what is already there (up to [`RECEIVE_RECORDS_MAX`]), handing `value(record)` to `sink`.
async fn receive_ready<S, R, E>(
    records: &mut S,
    value: fn(&R) -> &[u8],
    sink: &mut (dyn FnMut(&[u8]) + Send),
) -> anyhow::Result<usize>
where
    S: Stream<Item = Result<R, E>> + Unpin,
    E: std::error::Error + Send + Sync + 'static,
{
    let mut taken = 0;
    let mut next = records.next().await;
    loop {
        match next {
            Some(record) => {
                sink(value(&record.context("subscription")?));
                taken += 1;
            }
            None if taken == 0 => bail!("the subscription ended"),
            None => break,
        }
        if taken == RECEIVE_RECORDS_MAX {
            break;
        }
        match records.next().now_or_never() {
            Some(item) => next = item,
            None => break,
        }
    }
    Ok(taken)
}

/// `values` as one uncompressed RecordBatch v2 (no keys, stamped now), as the raw protocols
/// send them.
fn record_batch(values: &[Bytes]) -> anyhow::Result<Bytes> {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let mut batch = BatchBuilder::new(Compression::None);
    batch.reserve(values.iter().map(|v| v.len() + 16).sum());
    for value in values {
        batch.push(RecordRef {
            key: None,
            value: Some(value),
            headers: &[],
            timestamp: now_ms,
        });
    }
    Ok(batch.build().context("build a record batch")?.freeze())
}

/// Where the gRPC protocol connects without `--server`: `brook serve`'s default.
const GRPC_DEFAULT_SERVER: &str = "http://127.0.0.1:50051";
/// Where the HTTP protocol connects without `--server`: `brook serve`'s default.
const HTTP_DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

/// Connects `kind` to the embedded server's door, else to `server` (or the protocol's
/// default address). Returns the protocol and the address it reached.
pub(crate) async fn connect(
    kind: ProtocolKind,
    target: &Target,
    server: Option<&str>,
    tls_ca: Option<&[u8]>,
    kafka_options: &KafkaOptions,
) -> anyhow::Result<(Box<dyn Protocol>, String)> {
    if tls_ca.is_some() && kind == ProtocolKind::Embedded {
        bail!("--tls-ca: --protocol embedded has no connection to secure");
    }
    match kind {
        ProtocolKind::Grpc | ProtocolKind::GrpcRaw => {
            let url = match target.door_addr(DoorKind::Grpc) {
                Some(addr) => format!("http://{addr}"),
                None => with_scheme(server.unwrap_or(GRPC_DEFAULT_SERVER)),
            };
            let raw = kind == ProtocolKind::GrpcRaw;
            let dial = grpc::Dial::new(&url, tls_ca)?;
            Ok((grpc::connect(dial, raw).await?, url))
        }
        ProtocolKind::Http => {
            let url = match (target.door_addr(DoorKind::Http), target.broker()) {
                (Some(addr), _) => format!("http://{addr}"),
                (None, Some(_)) => bail!("the embedded server is not serving its HTTP door"),
                (None, None) => with_scheme(server.unwrap_or(HTTP_DEFAULT_SERVER)),
            };
            Ok((http::connect(&url, tls_ca).await?, url))
        }
        ProtocolKind::Kafka => kafka::connect(target, kafka_options, tls_ca),
        ProtocolKind::KafkaRaw => {
            if tls_ca.is_some() {
                bail!("--tls-ca: --protocol kafka-raw speaks plaintext only");
            }
            let addr = match (target.door_addr(DoorKind::Kafka), target.broker()) {
                (Some(addr), _) => addr.to_string(),
                (None, Some(_)) => bail!("the embedded server is not serving its Kafka door"),
                (None, None) => kafka_options.addr().to_owned(),
            };
            let protocol = kafka_raw::connect(&addr, kafka_options.acks_code()).await?;
            Ok((protocol, addr))
        }
        ProtocolKind::Embedded => match target.broker() {
            Some(broker) => Ok((embedded::connect(broker.clone()), "in-process".to_owned())),
            None => bail!("--protocol embedded runs the broker in this process: add --embedded"),
        },
    }
}

/// `HOST:PORT` as `http://HOST:PORT`; a URL with a scheme as it is.
fn with_scheme(server: &str) -> String {
    if server.contains("://") {
        server.to_owned()
    } else {
        format!("http://{server}")
    }
}
