//! Starting brook's network doors on an embedded broker, one line each.
//!
//! An application that embeds a [`Broker`] can open the same log to other processes: its test
//! suite gets a real Kafka port for an unchanged Kafka client, its sidecars a gRPC endpoint, a
//! browser the HTTP door. Port 0 picks a free port; each handle (a `brook_door::RunningDoor`,
//! the same type for every door) tells the bound address (`local_addr()`) and stops its door
//! (`stop()`, or dropping it).
//!
//! ```no_run
//! use brook::{Broker, ServeDoors};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let broker = Broker::ephemeral().await?;
//! let kafka = broker.serve_kafka("127.0.0.1:0".parse()?).await?;
//! println!("bootstrap.servers={}", kafka.local_addr());
//! kafka.stop().await?;
//! # Ok(()) }
//! ```

use std::future::Future;
use std::net::SocketAddr;

use brook_broker::Broker;
use brook_kafka::{KafkaConfig, KafkaError, KafkaServer};
use brook_server::{GrpcConfig, GrpcServer, HttpConfig, HttpServer, ServerError};

/// The doors an embedded [`Broker`] can open, with their default settings. For other
/// settings, call `KafkaServer::start`, `GrpcServer::start` or `HttpServer::start`
/// (`(broker, addr, config)`) directly.
pub trait ServeDoors {
    /// Serves the Kafka wire protocol on `addr` (advertised as the bound address).
    fn serve_kafka(
        &self,
        addr: SocketAddr,
    ) -> impl Future<Output = Result<KafkaServer, KafkaError>> + Send;

    /// Serves the `brook.v1` gRPC service (with health and reflection) on `addr`.
    fn serve_grpc(
        &self,
        addr: SocketAddr,
    ) -> impl Future<Output = Result<GrpcServer, ServerError>> + Send;

    /// Serves the HTTP door (REST, server-sent events, `/metrics`) on `addr`.
    fn serve_http(
        &self,
        addr: SocketAddr,
    ) -> impl Future<Output = Result<HttpServer, ServerError>> + Send;
}

impl ServeDoors for Broker {
    fn serve_kafka(
        &self,
        addr: SocketAddr,
    ) -> impl Future<Output = Result<KafkaServer, KafkaError>> + Send {
        KafkaServer::start(self.clone(), addr, KafkaConfig::default())
    }

    fn serve_grpc(
        &self,
        addr: SocketAddr,
    ) -> impl Future<Output = Result<GrpcServer, ServerError>> + Send {
        GrpcServer::start(self.clone(), addr, GrpcConfig::default())
    }

    fn serve_http(
        &self,
        addr: SocketAddr,
    ) -> impl Future<Output = Result<HttpServer, ServerError>> + Send {
        HttpServer::start(self.clone(), addr, HttpConfig::default())
    }
}
