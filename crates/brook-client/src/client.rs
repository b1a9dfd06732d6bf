//! The connection to one brook server, and the unary data calls.
//!
//! A [`Client`] is cheap to clone: every clone shares one HTTP/2 connection, on which any
//! number of calls and streams run concurrently. [`Client::connect`] connects eagerly, so a
//! wrong address or a server that is not running is reported at once, with the address and
//! the cause in plain words.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use brook_proto::v1::{self, brook_client::BrookClient};
use tonic::transport::{Channel, Endpoint};

use crate::admin::Admin;
use crate::consumer::{Consumer, ConsumerConfig};
use crate::error::{ClientError, Result};
use crate::producer::{Producer, ProducerConfig};
use crate::record::{ConsumerRecord, ProducerRecord, RecordPosition};

/// How long [`Client::connect`] waits for the TCP (and HTTP/2) handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Keepalive pings let both sides notice a peer that vanished without closing the connection.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(20);
/// The largest HTTP/2 frame the client accepts (`SETTINGS_MAX_FRAME_SIZE`; HTTP/2's default is
/// 16 KiB): a subscription's 1 MiB message arrives in 4 DATA frames instead of 64. Measured in
/// docs/benchmarks.md ("HTTP/2 frames").
const HTTP2_FRAME_BYTES_MAX: u32 = 256 << 10;
/// The largest response message the client decodes. A fetch or subscribe message holds at most
/// the server's `fetch_bytes_max` (64 MiB by default) plus one batch larger than the request
/// asked for; this leaves room for both and still bounds what a broken server can make us
/// allocate.
pub const RESPONSE_BYTES_MAX: usize = 256 << 20;

/// A connection to a brook server.
#[derive(Debug, Clone)]
pub struct Client {
    grpc: BrookClient<Channel>,
    /// The same connection, for the producer's `ProduceStream`, whose requests it frames itself.
    channel: Channel,
    url: Arc<str>,
}

/// What a [`Client::fetch`] returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// Records from the requested offset on, in offset order; empty when nothing arrived within
    /// the wait.
    pub records: Vec<ConsumerRecord>,
    /// The offset to fetch next.
    pub next_offset: u64,
    /// Offsets below this were readable when the fetch was answered.
    pub high_watermark: u64,
    /// The first offset still in the log.
    pub log_start_offset: u64,
}

/// A long-poll read of one partition (see [`Client::fetch`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchRequest {
    pub topic: String,
    pub partition: u32,
    /// First offset wanted: between the log start offset and the high watermark.
    pub offset: u64,
    /// Upper bound on the bytes of batches returned (0: the server's default). At least one
    /// whole batch comes back even when it is larger.
    pub max_bytes: u32,
    /// How long to wait when `offset` is at the high watermark; the call returns as soon as a
    /// record arrives.
    pub max_wait: Duration,
}

impl FetchRequest {
    /// A fetch that answers at once, with the server's default size bound.
    pub fn new(topic: impl Into<String>, partition: u32, offset: u64) -> Self {
        FetchRequest {
            topic: topic.into(),
            partition,
            offset,
            max_bytes: 0,
            max_wait: Duration::ZERO,
        }
    }
}

impl Client {
    /// Connects to the server at `url` (`http://host:port`).
    pub async fn connect(url: impl Into<String>) -> Result<Client> {
        let url: String = url.into();
        let endpoint = Endpoint::from_shared(url.clone()).map_err(|e| ClientError::InvalidUrl {
            url: url.clone(),
            reason: innermost_reason(&e),
        })?;
        Client::connect_to(endpoint, url).await
    }

    /// Connects through `endpoint` as [`Client::connect`] does (same timeouts and keepalive),
    /// keeping what the caller set on it, such as a TLS configuration (`https://` URLs; tonic's
    /// `tls-*` features).
    pub async fn connect_endpoint(endpoint: Endpoint) -> Result<Client> {
        let url = endpoint.uri().to_string();
        Client::connect_to(endpoint, url).await
    }

    async fn connect_to(endpoint: Endpoint, url: String) -> Result<Client> {
        let endpoint = endpoint
            .max_frame_size(HTTP2_FRAME_BYTES_MAX)
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
            .keep_alive_while_idle(true);
        let channel = endpoint
            .connect()
            .await
            .map_err(|source| ClientError::Connect {
                url: url.clone(),
                reason: innermost_reason(&source),
                source,
            })?;
        let grpc = BrookClient::new(channel.clone()).max_decoding_message_size(RESPONSE_BYTES_MAX);
        Ok(Client {
            grpc,
            channel,
            url: url.into(),
        })
    }

    /// The URL this client connected to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The generated tonic client on this connection, for calls this crate does not wrap.
    pub fn grpc(&self) -> BrookClient<Channel> {
        self.grpc.clone()
    }

    /// The connection itself, for calls framed by hand (the producer's `ProduceStream`).
    pub(crate) fn channel(&self) -> &Channel {
        &self.channel
    }

    /// Topic and group administration.
    pub fn admin(&self) -> Admin {
        Admin::new(self.clone())
    }

    /// A batching producer (see [`Producer`]). Fails when `config` is out of range.
    pub fn producer(&self, config: ProducerConfig) -> Result<Producer> {
        Producer::start(self.clone(), config)
    }

    /// A consumer (see [`Consumer`]). Fails when `config` is out of range.
    pub fn consumer(&self, config: ConsumerConfig) -> Result<Consumer> {
        Consumer::new(self.clone(), config)
    }

    /// Appends `records` to `topic` in one request, with no client-side batching: records
    /// bound for one partition are appended as one batch, atomically and in order. Answers
    /// each record's position, in request order.
    pub async fn produce(
        &self,
        topic: &str,
        records: Vec<ProducerRecord>,
    ) -> Result<Vec<RecordPosition>> {
        let expected = records.len();
        let request = v1::ProduceRequest {
            topic: topic.to_owned(),
            records: records.into_iter().map(Into::into).collect(),
            raw_batch: None,
        };
        let response = call("produce", self.grpc.clone().produce(request)).await?;
        positions("produce", response, expected)
    }

    /// Reads one partition from an offset: a long poll that waits up to `max_wait` for data.
    pub async fn fetch(&self, request: FetchRequest) -> Result<Fetched> {
        let max_wait_ms = u32::try_from(request.max_wait.as_millis()).map_err(|_| {
            ClientError::invalid_request(format!(
                "fetch max wait {:?} is too long",
                request.max_wait
            ))
        })?;
        let topic: Arc<str> = request.topic.as_str().into();
        let wire = v1::FetchRequest {
            topic: request.topic,
            partition: request.partition,
            offset: request.offset,
            max_bytes: request.max_bytes,
            max_wait_ms,
            format: v1::RecordFormat::Records.into(),
            // Committed records only: an open transaction's and an aborted one's never show.
            isolation: v1::Isolation::ReadCommitted.into(),
        };
        let response = call("fetch", self.grpc.clone().fetch(wire)).await?;
        Ok(Fetched {
            records: response
                .records
                .into_iter()
                .map(|r| ConsumerRecord::from_wire(&topic, request.partition, r))
                .collect(),
            next_offset: response.next_offset,
            high_watermark: response.high_watermark,
            log_start_offset: response.log_start_offset,
        })
    }
}

/// Awaits a unary call, naming `operation` in its error.
pub(crate) async fn call<T>(
    operation: &'static str,
    call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T> {
    call.await
        .map(tonic::Response::into_inner)
        .map_err(|status| ClientError::rpc(operation, status))
}

/// The per-record positions of a produce response, checked against the request's length.
pub(crate) fn positions(
    operation: &'static str,
    response: v1::ProduceResponse,
    expected: usize,
) -> Result<Vec<RecordPosition>> {
    if response.records.len() != expected {
        return Err(ClientError::protocol(
            operation,
            format!(
                "{} positions for {expected} records",
                response.records.len()
            ),
        ));
    }
    Ok(response.records.into_iter().map(Into::into).collect())
}

/// The deepest cause of a transport error in plain words: "connection refused" rather than
/// "transport error".
fn innermost_reason(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    match cause.downcast_ref::<std::io::Error>() {
        Some(io) if io.kind() != std::io::ErrorKind::Other => io.kind().to_string(),
        _ => cause.to_string(),
    }
}
