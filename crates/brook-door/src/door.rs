//! A door's life: start on an address, report the bound address, serve until told to stop,
//! drain, and say how it ended.
//!
//! A protocol says only how it serves, by implementing [`Door`]; [`RunningDoor`] does the rest
//! once for all of them, so `GrpcServer`, `HttpServer` and `KafkaServer` (each a `RunningDoor`)
//! start, report their address and stop alike:
//!
//! 1. [`RunningDoor::start`] checks the settings ([`validate`]), binds the address (port 0 picks
//!    a free port; errors name the door and the address), wraps the listener in the one capped
//!    accept loop ([`crate::Acceptor`]) and serves on a new task.
//! 2. [`RunningDoor::local_addr`] is the real address.
//! 3. [`RunningDoor::stop`] triggers the door's [`Shutdown`] and waits until the door has
//!    drained: it stopped accepting and the requests in flight finished. Dropping the handle
//!    triggers the same shutdown without waiting.
//!
//! [`Serving`] is a running door with its protocol forgotten, for a process that runs several
//! side by side (`brook::server::Server`), with a drain deadline and a way to abort.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;

use futures::future::BoxFuture;
use tokio::task::JoinHandle;

use crate::accept::{Acceptor, ConnectionLimits};
use crate::error::{BoxError, DoorError};
use crate::listener::Listener;
use crate::shutdown::Shutdown;

/// How one protocol serves a broker.
pub trait Door: 'static {
    /// The door's name in logs and errors (`"gRPC"`, `"HTTP"`, `"Kafka"`).
    const NAME: &'static str;
    /// What the door serves: any `brook_broker::Backend` (the local log, or a cluster in
    /// gateway mode) for a door that takes records and batches through the broker API, or the
    /// local `brook_broker::Broker` itself for one that needs the log (the Kafka door). A
    /// `Broker` converts into either.
    type Backend: Send + 'static;
    /// The door's settings.
    type Config: Send + 'static;
    /// How the door fails; it can say every shared failure ([`DoorError`]).
    type Error: std::error::Error + From<DoorError> + Send + Sync + 'static;

    /// The cap and time limits `config` sets on the door's connections.
    fn limits(config: &Self::Config) -> ConnectionLimits;

    /// Checks the rest of `config` before anything is bound; the message names the setting.
    /// The connection limits are checked by [`validate`] already.
    fn check(config: &Self::Config) -> Result<(), String> {
        let _ = config;
        Ok(())
    }

    /// Serves `broker` on the connections `connections` hands out until `shutdown` fires, then
    /// returns once the requests in flight are done. (An `async fn` in the impl.)
    fn serve(
        broker: Self::Backend,
        connections: Acceptor,
        config: Self::Config,
        shutdown: Shutdown,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static;
}

/// Checks every setting of door `D`: its connection limits, then the door's own checks.
pub fn validate<D: Door>(config: &D::Config) -> Result<(), DoorError> {
    D::limits(config)
        .check()
        .and_then(|()| D::check(config))
        .map_err(|reason| DoorError::Config {
            door: D::NAME,
            reason,
        })
}

/// A door serving on its own task.
///
/// Dropping it triggers shutdown without waiting; [`RunningDoor::stop`] triggers it and waits
/// until the door has drained.
pub struct RunningDoor<D: Door> {
    local_addr: SocketAddr,
    shutdown: Shutdown,
    /// `None` once the task's end has been reported.
    task: Option<JoinHandle<Result<(), D::Error>>>,
}

impl<D: Door> RunningDoor<D> {
    /// Checks `config`, binds `addr` (port 0 picks a free port; see
    /// [`RunningDoor::local_addr`]) and starts serving `broker` on a new task.
    pub async fn start(
        broker: impl Into<D::Backend>,
        addr: SocketAddr,
        config: D::Config,
    ) -> Result<Self, D::Error> {
        validate::<D>(&config)?;
        let listener = Listener::bind(D::NAME, addr).await?;
        Self::start_on(broker, listener, config)
    }

    /// Checks `config` and starts serving `broker` on a listener already bound (so a process
    /// can bind all its doors before it serves any).
    pub fn start_on(
        broker: impl Into<D::Backend>,
        listener: Listener,
        config: D::Config,
    ) -> Result<Self, D::Error> {
        validate::<D>(&config)?;
        let local_addr = listener.local_addr();
        let connections = Acceptor::new(listener, D::limits(&config));
        let shutdown = Shutdown::new();
        let serving = D::serve(broker.into(), connections, config, shutdown.clone());
        let task = tokio::spawn(async move {
            let result = serving.await;
            match &result {
                Ok(()) => tracing::info!(door = D::NAME, %local_addr, "door stopped"),
                Err(error) => tracing::error!(door = D::NAME, %local_addr, %error, "door failed"),
            }
            result
        });
        tracing::info!(door = D::NAME, %local_addr, "door listening");
        Ok(Self {
            local_addr,
            shutdown,
            task: Some(task),
        })
    }

    /// The address the door is bound to (the real port when it was asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Shuts the door: it stops accepting, and this waits until the requests in flight have
    /// finished. The door's failure, if it failed, is the error.
    pub async fn stop(mut self) -> Result<(), D::Error> {
        self.shutdown.trigger();
        self.finished().await
    }

    /// Waits for the door's task to end, and reports how (once: later calls say `Ok`).
    /// Cancel-safe.
    async fn finished(&mut self) -> Result<(), D::Error> {
        let Some(task) = self.task.as_mut() else {
            return Ok(());
        };
        let joined = task.await;
        self.task = None;
        joined.map_err(|source| DoorError::Task {
            door: D::NAME,
            source,
        })?
    }
}

impl<D: Door> Drop for RunningDoor<D> {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

impl<D: Door> fmt::Debug for RunningDoor<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunningDoor")
            .field("door", &D::NAME)
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

/// A running door whose protocol is forgotten: what a process that runs several doors side by
/// side holds. Every [`RunningDoor`] is one.
pub trait Serving: fmt::Debug + Send + Sync {
    /// The door's name ([`Door::NAME`]).
    fn door(&self) -> &'static str;

    /// The address the door is bound to.
    fn local_addr(&self) -> SocketAddr;

    /// Tells the door to stop accepting and drain; returns at once.
    fn begin_stop(&self);

    /// Resolves when the door's task has ended: after [`Serving::begin_stop`] once it drained,
    /// or by itself, which only a failure makes it do. Cancel-safe, so it can wait under a
    /// deadline; the end is reported once.
    fn finished(&mut self) -> BoxFuture<'_, Result<(), BoxError>>;

    /// Ends the door's task now, requests in flight with it (after a drain deadline).
    fn abort(&mut self);
}

impl<D: Door> Serving for RunningDoor<D> {
    fn door(&self) -> &'static str {
        D::NAME
    }

    fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    fn begin_stop(&self) {
        self.shutdown.trigger();
    }

    fn finished(&mut self) -> BoxFuture<'_, Result<(), BoxError>> {
        Box::pin(async move { RunningDoor::finished(self).await.map_err(Into::into) })
    }

    fn abort(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
