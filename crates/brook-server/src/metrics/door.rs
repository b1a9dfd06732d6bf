//! The metrics door: `GET /metrics` (and `GET /healthz`) on a port of its own, so a scraper
//! reaches the broker's metrics with the HTTP door off, or on an address only the monitoring
//! network sees (`metrics_addr`).
//!
//! It serves the same text as the HTTP door's `/metrics` and nothing else: no topic, record or
//! group is reachable through it. Its connections are capped and dropped when they stall, as
//! every door's are (brook-door's accept loop); it is not counted in
//! `brook_open_connections`, which is about clients of the broker.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use brook_broker::Backend;
use brook_door::{Acceptor, Connection, ConnectionLimits, Door, RunningDoor, Shutdown};

use crate::error::ServerError;

/// Settings of the metrics door.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsConfig {
    /// Connections served at once (scrapers are few). Default 16.
    pub connections_max: usize,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            connections_max: 16,
        }
    }
}

/// How long a scraper may take nothing before its connection is dropped.
const WRITE_STALL_MAX: Duration = Duration::from_secs(30);

/// The metrics door: how brook-door runs it (see [`MetricsServer`]).
#[derive(Debug)]
pub struct MetricsDoor;

impl Door for MetricsDoor {
    const NAME: &'static str = "metrics";
    type Backend = Backend;
    type Config = MetricsConfig;
    type Error = ServerError;

    fn limits(config: &MetricsConfig) -> ConnectionLimits {
        ConnectionLimits::new(config.connections_max).with_write_stall_max(WRITE_STALL_MAX)
    }

    async fn serve(
        broker: Backend,
        connections: Acceptor,
        _config: MetricsConfig,
        shutdown: Shutdown,
    ) -> Result<(), ServerError> {
        let router = Router::new()
            .route(
                "/metrics",
                get(|| async move {
                    let text = broker.metrics();
                    ([(CONTENT_TYPE, super::CONTENT_TYPE)], text).into_response()
                }),
            )
            .route("/healthz", get(|| async { "ok" }));
        let signal = async move { shutdown.wait().await };
        // axum documents that this future never fails (brook-door's accept loop retries accept
        // errors itself); the `Result` is its signature only.
        if let Err(e) = axum::serve(Listener(connections), router)
            .with_graceful_shutdown(signal)
            .await
        {
            tracing::error!(error = %e, "metrics door stopped with an error");
        }
        Ok(())
    }
}

/// A metrics door running on its own task: `MetricsServer::start(broker, addr, config)`, then
/// `local_addr()` and `stop()`.
pub type MetricsServer = RunningDoor<MetricsDoor>;

/// brook-door's accept loop, as axum's listener.
struct Listener(Acceptor);

impl axum::serve::Listener for Listener {
    type Io = Connection;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let connection = self.0.accept().await;
        let peer = connection.peer_addr();
        (connection, peer)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.0.local_addr())
    }
}
