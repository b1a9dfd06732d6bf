//! The gRPC door: service `brook.v1.Brook` (tonic) over a [`Broker`](brook_broker::Broker), with the standard
//! `grpc.health.v1.Health` service and server reflection (v1 and v1alpha), so `grpcurl` and any
//! language's generated stubs work with no proto file at hand.
//!
//! What it promises:
//! - a request larger than [`GrpcConfig::request_bytes_max`] is refused with
//!   `RESOURCE_EXHAUSTED` before it is decoded, and a bad request gets a status saying what was
//!   wrong; neither disturbs any other client;
//! - a client that vanishes mid-stream costs nothing: each stream's buffer is bounded, and the
//!   task feeding it ends (leaving its consumer group) as soon as the client is gone;
//! - at most [`GrpcConfig::connections_max`] connections are served at once (and
//!   [`GrpcConfig::connections_per_addr_max`] from one address); when full, the connection idle
//!   longest (no call in flight) is closed to let a new client in, and with none idle further
//!   clients wait in the listen backlog (brook-door's capped accept loop); a connection without
//!   a call for [`GrpcConfig::idle_ms_max`], or without its first call within
//!   [`GrpcConfig::request_read_ms_max`] of connecting, is closed;
//! - on shutdown, health turns NOT_SERVING, no new connection is accepted, subscriptions and
//!   long polls end at once, and requests in flight (produces in particular) finish before
//!   [`GrpcServer::stop`] returns; the caller then closes the broker.

mod acls;
mod changes;
mod convert;
mod limit;
mod observe;
mod produce_stream;
mod reqreply;
mod service;
mod status;
mod subscribe;
mod table;
mod txn;
mod users;

use std::convert::Infallible;

use brook_broker::Backend;
use brook_door::{Acceptor, ConnectionLimits, Door, RunningDoor, Shutdown};
use brook_log::bounds::check_bounds;
use brook_proto::v1::brook_server::BrookServer;
use tonic_health::ServingStatus;

use crate::auth::{AuthLayer, Policy};
use crate::config::GrpcConfig;
use crate::connection::{ConnectInfo, Connections};
use crate::error::ServerError;
use crate::in_flight::InFlightLayer;
use crate::metrics;
use limit::RequestLimit;
use observe::Observe;
use service::BrookService;

/// The gRPC door: how brook-door runs it (see [`GrpcServer`]).
#[derive(Debug)]
pub struct Grpc;

impl Door for Grpc {
    const NAME: &'static str = "gRPC";
    type Backend = Backend;
    type Config = GrpcConfig;
    type Error = ServerError;

    fn limits(config: &GrpcConfig) -> ConnectionLimits {
        config.limits()
    }

    fn check(config: &GrpcConfig) -> Result<(), String> {
        check_bounds(config, GrpcConfig::BOUNDS)
    }

    /// Serves until `shutdown` fires and every request in flight has finished.
    async fn serve(
        broker: Backend,
        connections: Acceptor,
        config: GrpcConfig,
        shutdown: Shutdown,
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
        let brook = Observe::new(RequestLimit::new(
            BrookServer::new(BrookService::new(broker, config.clone(), draining.clone()))
                .max_decoding_message_size(config.request_bytes_max),
            config.request_bytes_max,
        ));

        let signal = {
            let draining = draining.clone();
            async move {
                shutdown.wait().await;
                tracing::info!("gRPC door shutting down: draining requests in flight");
                for service in ["", brook_proto::SERVICE_NAME] {
                    health_reporter
                        .set_service_status(service, ServingStatus::NotServing)
                        .await;
                }
                draining.trigger();
            }
        };
        // Each call is in flight on its connection until its response ends.
        let in_flight = InFlightLayer::new(connections.peers(), |request| {
            crate::connection::remote_addr(request.extensions())
        });
        // tonic takes its connections from the capped accept loop; once `signal` fires it drops
        // this stream (closing the listening socket) and waits for the connections to finish.
        // With TLS set, each handshake runs on its own task first (`Connections`).
        let connections = Connections::new(connections, config.security.tls.clone());
        let incoming = futures::stream::unfold(connections, |mut connections| async move {
            let connection = connections.next(metrics::GRPC).await;
            Some((Ok::<_, Infallible>(connection), connections))
        });
        tonic::transport::Server::builder()
            .max_frame_size(HTTP2_FRAME_BYTES_MAX)
            .http2_keepalive_interval(Some(config.keepalive_interval()))
            .http2_keepalive_timeout(Some(config.keepalive_timeout()))
            .layer(in_flight)
            .layer(AuthLayer::new(config.security.auth.clone(), AUTH_POLICY))
            .add_service(health)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(brook)
            .serve_with_incoming_shutdown(incoming, signal)
            .await
            .map_err(|source| ServerError::Grpc { source })
    }
}

/// The largest HTTP/2 frame the door accepts (`SETTINGS_MAX_FRAME_SIZE`; HTTP/2's default is
/// 16 KiB): a client's 1 MiB batch arrives in 4 DATA frames instead of 64, so fewer frames to
/// parse and fewer wake-ups per request. Measured in docs/benchmarks.md ("HTTP/2 frames"); the
/// flow-control windows stay hyper's (1 MiB), larger ones measured no faster.
const HTTP2_FRAME_BYTES_MAX: u32 = 256 << 10;

/// Who may call the gRPC door (crate::auth): the health service is open; a refusal is
/// `UNAUTHENTICATED`.
const AUTH_POLICY: Policy<tonic::body::Body, tonic::body::Body> = Policy {
    door: "gRPC",
    peer_of: |request| crate::connection::remote_addr(request.extensions()),
    tls_subject_of: |request| {
        request
            .extensions()
            .get::<ConnectInfo>()
            .and_then(|info| info.tls_subject.clone())
    },
    open: |path| path.starts_with("/grpc.health.v1.Health/"),
    refuse: |refusal| tonic::Status::unauthenticated(refusal.message).into_http(),
};

/// A gRPC door running on its own task: `GrpcServer::start(broker, addr, config)`, then
/// `local_addr()` and `stop()`.
pub type GrpcServer = RunningDoor<Grpc>;
