//! brook's network doors onto one [`brook_broker::Broker`].
//!
//! Every door is a thin translation: it parses its protocol, calls the broker, and maps the
//! broker's answer (or [`brook_broker::BrokerError::kind`]) back to its own messages and
//! status codes. No door keeps state of its own that another door would need: topics, offsets
//! and groups live in the broker, so a record produced through one door is read through any
//! other.
//!
//! - [`grpc`]: the `brook.v1.Brook` service, with gRPC health and reflection.
//! - [`http`]: REST, server-sent events, `/metrics` and health checks (axum).
//! - [`metrics`]: the Prometheus registry every door records into.
//! - [`door`]: a door running on its own task (such as [`GrpcServer`]): start, bound address,
//!   stop.
//! - [`hints`]: what to do about a broker error, worded for each door.
//! - [`listener`]: binding the sockets doors accept on (port 0 works; the bound address is
//!   reported).
//! - [`shutdown`]: one trigger that drains every door: streams end, in-flight produces finish.
//! - [`config`]: the doors' settings and limits.

pub mod config;
pub mod door;
pub mod error;
pub mod grpc;
pub mod hints;
pub mod http;
pub mod listener;
pub mod metrics;
pub mod shutdown;

pub use config::GrpcConfig;
pub use error::ServerError;
pub use grpc::{serve_grpc, GrpcServer};
pub use http::{serve_http, HttpConfig, HttpServer};
pub use shutdown::Shutdown;
