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
mod reqreply;
mod service;
mod status;
mod subscribe;

use std::future::Future;

use brook_broker::Broker;
use brook_proto::v1::brook_server::BrookServer;
use futures::future::BoxFuture;
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;

use crate::config::GrpcConfig;
use crate::door::{Door, RunningDoor};
use crate::error::ServerError;
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

/// The gRPC door, for [`RunningDoor`].
#[derive(Debug)]
pub struct Grpc;

impl Door for Grpc {
    const NAME: &'static str = DOOR;
    type Config = GrpcConfig;

    fn serve(
        broker: Broker,
        listener: TcpListener,
        config: GrpcConfig,
        shutdown: BoxFuture<'static, ()>,
    ) -> BoxFuture<'static, Result<(), ServerError>> {
        Box::pin(serve_grpc(broker, listener, config, shutdown))
    }
}

/// A gRPC door running on its own task: `GrpcServer::start(broker, addr, config)`, then
/// `local_addr()` and `stop()`.
pub type GrpcServer = RunningDoor<Grpc>;
