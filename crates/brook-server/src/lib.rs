//! brook's gRPC and HTTP doors onto one [`brook_broker::Broker`].
//!
//! Every door is a thin translation: it parses its protocol, calls the broker, and maps the
//! broker's answer (or [`brook_broker::BrokerError::kind`]) back to its own messages and
//! status codes. No door keeps state of its own that another door would need: topics, offsets
//! and groups live in the broker, so a record produced through one door is read through any
//! other. How a door starts, caps its connections and stops is `brook-door`'s, the same for
//! every door: [`GrpcServer`] and [`HttpServer`] are each a [`brook_door::RunningDoor`].
//!
//! - [`grpc`]: the `brook.v1.Brook` service, with gRPC health and reflection.
//! - [`http`]: REST, server-sent events, `/metrics` and health checks (axum).
//! - [`metrics`]: what the doors record (brook-metrics' families), the `/metrics` text, and
//!   [`MetricsServer`], that text on a port of its own.
//! - [`connection`]: a door's connection counted as open while it lives.
//! - `in_flight`: each gRPC and HTTP request marked in flight on its connection, so brook-door
//!   knows which connections are busy (idle and request-read limits, making room).
//! - [`trace`]: the request span and the `traceparent` a produce carries, from HTTP headers.
//! - [`hints`]: what to do about a broker error, worded for each door.
//! - [`config`]: the doors' settings and limits.

mod auth;
mod authorize;
pub mod config;
pub mod connection;
pub mod error;
pub mod grpc;
pub mod hints;
pub mod http;
mod in_flight;
pub mod metrics;
pub mod trace;

pub use config::GrpcConfig;
pub use error::ServerError;
pub use grpc::{Grpc, GrpcServer};
pub use http::{Http, HttpConfig, HttpServer};
pub use metrics::{MetricsConfig, MetricsDoor, MetricsServer};
