//! The gRPC floor of a produce run: what one gRPC call costs on this machine with nothing
//! behind it, measured in the same run as brook's acks, so a single-record ack can be split
//! into the transport's share and brook's.
//!
//! A bare tonic service on its own loopback port and its own runtime ([`Apart`]: built as
//! `brook serve` builds its runtime) answers each unary call
//! with an empty message; nothing is decoded, stored or looked up. The calls carry the workload's
//! batches (one call per batch, `--in-flight` unanswered at most, one HTTP/2 connection per
//! producer, TCP_NODELAY on both sides) over two kinds of client connection:
//!
//! - **channel**: tonic's `Channel`, as brook-client connects: every call goes through the
//!   channel's `Buffer` worker task before the connection's task;
//! - **direct**: hyper's HTTP/2 `SendRequest` wrapped as the tonic client's service: the call
//!   goes straight to the connection's task.
//!
//! Latency is call to answer, counted once per record, as the produce workload counts acks.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::task::{Context, Poll};
use std::time::Instant;

use anyhow::Context as _;
use brook_proto::raw::RawCodec;
use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};
use futures::FutureExt;
use hdrhistogram::Histogram;
use tonic::client::GrpcService;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::codegen::http::{self, Uri};
use tonic::codegen::{Body as HttpBody, BoxFuture, Service, StdError};
use tonic::server::{NamedService, UnaryService};
use tonic::transport::server::TcpIncoming;
use tonic::transport::Endpoint;
use tonic::{Request, Response, Status};

use super::apart::Apart;
use super::report::{histogram, record, Measured};
use super::workload::{payload, Plan};

/// The floor service's name and its one method.
const SERVICE: &str = "brook.bench.Floor";
const ACK_PATH: &str = "/brook.bench.Floor/Ack";

/// The two floors of one run.
pub(crate) struct Floors {
    /// Through tonic's `Channel` (brook-client's connection).
    pub channel: Measured,
    /// Through hyper's `SendRequest`, no `Buffer` task.
    pub direct: Measured,
}

/// Measures both floors for `plan`'s produce workload, one after the other, against one floor
/// server that lives for the measurement.
/// `workers`: the floor server's runtime worker threads (`None`: tokio's default).
pub(crate) async fn produce(plan: &Plan, workers: Option<u16>) -> anyhow::Result<Floors> {
    let server = floor_server(workers).context("gRPC floor server")?;
    let url = format!("http://{}", server.addr);
    let measured = async {
        let mut loops = Vec::with_capacity(plan.producers);
        for index in 0..plan.producers {
            let channel = Endpoint::from_shared(url.clone())?
                .tcp_nodelay(true)
                .connect()
                .await
                .context("gRPC floor: channel connect")?;
            let client = tonic::client::Grpc::new(channel);
            loops.push(calls(client, plan.share(index, plan.producers), plan.clone()).boxed());
        }
        let channel = run(plan, loops)
            .await
            .context("gRPC floor through a Channel")?;
        let origin = Uri::try_from(url.as_str())?;
        let mut loops = Vec::with_capacity(plan.producers);
        for index in 0..plan.producers {
            let direct = Direct::connect(server.addr).await?;
            let client = tonic::client::Grpc::with_origin(direct, origin.clone());
            loops.push(calls(client, plan.share(index, plan.producers), plan.clone()).boxed());
        }
        let direct = run(plan, loops)
            .await
            .context("gRPC floor through hyper's SendRequest")?;
        anyhow::Ok(Floors { channel, direct })
    }
    .await;
    server.stop().await;
    measured
}

/// One producer's calls, connected and not yet started.
type CallLoop = futures::future::BoxFuture<'static, anyhow::Result<Histogram<u64>>>;

/// Starts the clock and runs every producer's calls at once.
async fn run(plan: &Plan, loops: Vec<CallLoop>) -> anyhow::Result<Measured> {
    let started = Instant::now();
    let tasks: Vec<_> = loops.into_iter().map(tokio::spawn).collect();
    let mut latency = histogram();
    for task in tasks {
        latency.add(task.await.context("gRPC floor task")??)?;
    }
    Ok(plan.measured(started.elapsed(), latency))
}

/// `records` in batch-sized unary calls, `--in-flight` unanswered at most.
async fn calls<T>(
    client: tonic::client::Grpc<T>,
    records: u64,
    plan: Plan,
) -> anyhow::Result<Histogram<u64>>
where
    T: GrpcService<tonic::body::Body> + Clone + Send + 'static,
    T::Future: Send,
    T::Error: Into<StdError>,
    T::ResponseBody: HttpBody<Data = Bytes> + Send + 'static,
    <T::ResponseBody as HttpBody>::Error: Into<StdError>,
{
    let body = payload(plan.batch * plan.record_bytes);
    let mut in_flight = FuturesUnordered::new();
    let mut latency = histogram();
    let (mut sent, mut acked) = (0u64, 0u64);
    while acked < records {
        while sent < records && in_flight.len() < plan.in_flight.max(1) {
            let count = (plan.batch as u64).min(records - sent);
            let message = body.slice(..count as usize * plan.record_bytes);
            let mut client = client.clone();
            let started = Instant::now();
            in_flight.push(async move {
                client.ready().await.map_err(|e| {
                    let e: StdError = e.into();
                    anyhow::anyhow!("the connection is not ready: {e}")
                })?;
                client
                    .unary::<Bytes, Bytes, _>(
                        Request::new(message),
                        PathAndQuery::from_static(ACK_PATH),
                        RawCodec,
                    )
                    .await?;
                anyhow::Ok((started.elapsed(), count))
            });
            sent += count;
        }
        let Some(answered) = in_flight.next().await else {
            break;
        };
        let (took, count) = answered?;
        record(&mut latency, took, count);
        acked += count;
    }
    Ok(latency)
}

/// The floor server: a tonic server apart from the bench's clients.
fn floor_server(workers: Option<u16>) -> anyhow::Result<Apart> {
    Apart::start("grpc-floor", workers, |listener, stopped| async move {
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        let served = tonic::transport::Server::builder()
            .add_service(Floor)
            .serve_with_incoming_shutdown(incoming, async {
                let _ = stopped.await;
            })
            .await;
        if let Err(e) = served {
            tracing::warn!(error = %e, "gRPC floor server failed");
        }
    })
}

/// The floor service: every call to [`ACK_PATH`] answered with an empty message.
#[derive(Debug, Clone, Copy)]
struct Floor;

impl NamedService for Floor {
    const NAME: &'static str = SERVICE;
}

impl Service<http::Request<tonic::body::Body>> for Floor {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        Box::pin(async move {
            if request.uri().path() != ACK_PATH {
                return Ok(Status::unimplemented(request.uri().path().to_owned()).into_http());
            }
            let mut grpc = tonic::server::Grpc::new(RawCodec).max_decoding_message_size(usize::MAX);
            Ok(grpc.unary(Ack, request).await)
        })
    }
}

struct Ack;

impl UnaryService<Bytes> for Ack {
    type Response = Bytes;
    type Future = std::future::Ready<Result<Response<Bytes>, Status>>;

    fn call(&mut self, _: Request<Bytes>) -> Self::Future {
        std::future::ready(Ok(Response::new(Bytes::new())))
    }
}

/// A client connection made directly: hyper's HTTP/2 `SendRequest` as the tonic client's
/// service, so a call reaches the connection's task with no `Buffer` task in between.
#[derive(Clone)]
struct Direct {
    send: hyper::client::conn::http2::SendRequest<tonic::body::Body>,
}

impl Direct {
    async fn connect(addr: SocketAddr) -> anyhow::Result<Direct> {
        let socket = tokio::net::TcpStream::connect(addr)
            .await
            .context("gRPC floor: connect")?;
        socket.set_nodelay(true)?;
        let (send, connection) =
            hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                .handshake(hyper_util::rt::TokioIo::new(socket))
                .await
                .context("gRPC floor: HTTP/2 handshake")?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "gRPC floor connection ended");
            }
        });
        Ok(Direct { send })
    }
}

impl Service<http::Request<tonic::body::Body>> for Direct {
    type Response = http::Response<hyper::body::Incoming>;
    type Error = hyper::Error;
    type Future = BoxFuture<Self::Response, hyper::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), hyper::Error>> {
        self.send.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        Box::pin(self.send.send_request(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both floors over real loopback sockets: every record is answered and timed once, with
    /// two producers, a short last batch and several calls in flight.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn both_floors_answer_every_call() {
        let plan = Plan {
            topic: "floor".into(),
            records: 101,
            record_bytes: 100,
            batch: 4,
            producers: 2,
            consumers: 1,
            partitions: 1,
            in_flight: 3,
            rate: 1,
        };
        // The floor server on tokio's default runtime, then on one worker thread.
        for workers in [None, Some(1)] {
            let floors = produce(&plan, workers).await.expect("floors");
            for measured in [&floors.channel, &floors.direct] {
                assert_eq!(measured.records, 101);
                assert_eq!(measured.latency.len(), 101, "one latency per record");
                assert!(measured.latency.min() > 0);
            }
        }
    }
}
