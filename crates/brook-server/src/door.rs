//! A door running on its own task: the handle tests and embedding applications hold.
//!
//! Every door has the same life: bind an address (port 0 picks a free port, and the handle
//! reports the real one), serve a broker until told to stop, then drain. A door says how it
//! serves by implementing [`Door`]; [`RunningDoor`] does the rest once for all of them, so
//! `GrpcServer::start(broker, addr, config)` and its HTTP twin behave alike.

use std::fmt;
use std::marker::PhantomData;
use std::net::SocketAddr;

use brook_broker::Broker;
use futures::future::BoxFuture;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::error::ServerError;
use crate::listener;
use crate::shutdown::Shutdown;

/// How one protocol serves a broker.
pub trait Door: 'static {
    /// The door's name in logs and errors ("gRPC", "HTTP").
    const NAME: &'static str;
    /// The door's settings.
    type Config: Send + 'static;

    /// Serves `broker` on `listener` until `shutdown` resolves and requests in flight are done.
    fn serve(
        broker: Broker,
        listener: TcpListener,
        config: Self::Config,
        shutdown: BoxFuture<'static, ()>,
    ) -> BoxFuture<'static, Result<(), ServerError>>;
}

/// A door serving on its own task.
///
/// Dropping it triggers shutdown without waiting; [`RunningDoor::stop`] triggers it and waits
/// until the door has drained.
pub struct RunningDoor<D: Door> {
    local_addr: SocketAddr,
    shutdown: Shutdown,
    task: Option<JoinHandle<Result<(), ServerError>>>,
    door: PhantomData<fn() -> D>,
}

impl<D: Door> RunningDoor<D> {
    /// Binds `addr` (port 0 picks a free port; see [`RunningDoor::local_addr`]) and starts
    /// serving `broker` on a new task.
    pub async fn start(
        broker: Broker,
        addr: SocketAddr,
        config: D::Config,
    ) -> Result<Self, ServerError> {
        let listener = listener::bind(D::NAME, addr).await?;
        let local_addr = listener::local_addr(D::NAME, &listener)?;
        let shutdown = Shutdown::new();
        let serving = D::serve(broker, listener, config, Box::pin(shutdown.wait()));
        let task = tokio::spawn(serving);
        tracing::info!(%local_addr, "{} door listening", D::NAME);
        Ok(Self {
            local_addr,
            shutdown,
            task: Some(task),
            door: PhantomData,
        })
    }

    /// The address the door is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Shuts the door and waits until requests in flight have finished.
    pub async fn stop(mut self) -> Result<(), ServerError> {
        self.shutdown.trigger();
        match self.task.take() {
            Some(task) => task.await.map_err(|source| ServerError::Task {
                door: D::NAME,
                source,
            })?,
            None => Ok(()),
        }
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
