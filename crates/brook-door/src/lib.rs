//! What every brook door shares, so the gRPC, HTTP and Kafka doors live the same life.
//!
//! A door is a protocol serving one broker (a [`brook_broker::Backend`]: the local log, or a
//! cluster in gateway mode) on a TCP port. The protocols differ;
//! their lifecycle does not, and it is written here once:
//!
//! - [`door`]: the [`Door`] trait a protocol implements, and [`RunningDoor`], the handle every
//!   door is started, asked for its address and stopped through (`GrpcServer`, `HttpServer` and
//!   `KafkaServer` are each a `RunningDoor`); [`Serving`] is the same handle with its protocol
//!   forgotten, for a process that runs several doors side by side.
//! - [`listener`]: binding the port (port 0 picks a free one and the real one is reported);
//!   errors name the door and the address.
//! - [`accept`]: the one capped accept loop: at most `connections_max` connections at a time,
//!   one backoff policy for accept errors, and the place every later connection policy goes.
//! - `connect_rate`: how fast one client address may open connections; a storm past it is
//!   closed at accept, before any other work.
//! - [`connection`]: the socket every door reads and writes, which gives its place under the cap
//!   back when it closes.
//! - [`tracker`]: which connections are open and how busy each is: the idle and request-read
//!   limits, and which connection is closed to make room.
//! - [`shutdown`]: the trigger-once signal that tells a door (and the work inside it) to drain.
//! - [`error`]: why a door could not start or stop.
//! - [`trace`]: the span every door opens per request, and the W3C `traceparent` a produce
//!   carries into its records.
//! - [`tls`]: TLS on a door's connections (rustls), reloaded without dropping a connection.
//! - [`auth`]: the authentication hook: who a request is, one answer for every failure, and
//!   failures from one address slowed ([`Security`] is a door's TLS and hook together).
//!
//! Nothing here knows a protocol: no tonic, axum or Kafka type.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod accept;
pub mod auth;
mod connect_rate;
pub mod connection;
pub mod door;
pub mod error;
pub mod listener;
pub mod shutdown;
pub mod tls;
pub mod trace;
pub mod tracker;

pub use accept::{Acceptor, ConnectionLimits, Draining};
pub use auth::{Authenticator, Security};
pub use connection::Connection;
pub use door::{validate, Door, RunningDoor, Serving};
pub use error::{BoxError, DoorError};
pub use listener::Listener;
pub use shutdown::Shutdown;
pub use tracker::{Framing, InFlight, Peers, Requests};
