//! The gRPC door: service `brook.v1.Brook` (tonic) over a [`Broker`], with the standard
//! `grpc.health.v1.Health` service and server reflection (v1 and v1alpha), so `grpcurl` and any
//! language's generated stubs work with no proto file at hand.
//!
//! What it promises:
//! - a request larger than [`GrpcConfig::request_bytes_max`] is refused with
//!   `RESOURCE_EXHAUSTED` before it is decoded, and a bad request gets a status saying what was
//!   wrong; neither disturbs any other client;
//! - a client that vanishes mid-stream costs nothing: each stream's buffer is bounded, and the
//!   task feeding it ends (leaving its consumer group) as soon as the client is gone;
//! - on shutdown, health turns NOT_SERVING, no new connection is accepted, subscriptions and
//!   long polls end at once, and requests in flight (produces in particular) finish before
//!   [`serve_grpc`] returns; the caller then closes the broker.

mod convert;
mod limit;
mod produce_stream;
mod service;
mod status;
mod subscribe;

use std::future::Future;
use std::net::SocketAddr;

use brook_broker::Broker;
use brook_proto::v1::brook_server::BrookServer;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;

use crate::config::GrpcConfig;
use crate::error::ServerError;
use crate::listener;
use crate::shutdown::Shutdown;
use limit::RequestLimit;
use service::BrookService;

const DOOR: &str = "gRPC";

/// Serves the gRPC door on `listener` until `shutdown` resolves and every request in flight has
/// finished.
pub async fn serve_grpc(
    broker: Broker,
    listener: TcpListener,
    config: GrpcConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let draining = Shutdown::new();
    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_service_status(brook_proto::SERVICE_NAME, ServingStatus::Serving)
        .await;
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(brook_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection()
        .build_v1()
        .map_err(|source| ServerError::Reflection { source })?;
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .map_err(|source| ServerError::Reflection { source })?;
    let brook = RequestLimit::new(
        BrookServer::new(BrookService::new(broker, config.clone(), draining.clone()))
            .max_decoding_message_size(config.request_bytes_max),
        config.request_bytes_max,
    );

    let signal = {
        let draining = draining.clone();
        async move {
            shutdown.await;
            tracing::info!("gRPC door shutting down: draining requests in flight");
            for service in ["", brook_proto::SERVICE_NAME] {
                health_reporter
                    .set_service_status(service, ServingStatus::NotServing)
                    .await;
            }
            draining.trigger();
        }
    };
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(config.keepalive_interval()))
        .http2_keepalive_timeout(Some(config.keepalive_timeout()))
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(brook)
        .serve_with_incoming_shutdown(incoming, signal)
        .await
        .map_err(|source| ServerError::Grpc { source })?;
    tracing::info!("gRPC door stopped");
    Ok(())
}

/// A gRPC door running on its own task: what tests and embedding applications start.
///
/// Dropping it triggers shutdown without waiting; [`GrpcServer::stop`] triggers it and waits
/// until the server has drained.
#[derive(Debug)]
pub struct GrpcServer {
    local_addr: SocketAddr,
    shutdown: Shutdown,
    task: Option<JoinHandle<Result<(), ServerError>>>,
}

impl GrpcServer {
    /// Binds `addr` (port 0 picks a free port; see [`GrpcServer::local_addr`]) and starts
    /// serving `broker` on a new task.
    pub async fn start(
        broker: Broker,
        addr: SocketAddr,
        config: GrpcConfig,
    ) -> Result<Self, ServerError> {
        let listener = listener::bind(DOOR, addr).await?;
        let local_addr = listener::local_addr(DOOR, &listener)?;
        let shutdown = Shutdown::new();
        let task = tokio::spawn(serve_grpc(broker, listener, config, shutdown.wait()));
        tracing::info!(%local_addr, "gRPC door listening");
        Ok(Self {
            local_addr,
            shutdown,
            task: Some(task),
        })
    }

    /// The address the server is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Shuts down and waits until requests in flight have finished.
    pub async fn stop(mut self) -> Result<(), ServerError> {
        self.shutdown.trigger();
        match self.task.take() {
            Some(task) => task
                .await
                .map_err(|source| ServerError::Task { door: DOOR, source })?,
            None => Ok(()),
        }
    }
}

impl Drop for GrpcServer {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}
