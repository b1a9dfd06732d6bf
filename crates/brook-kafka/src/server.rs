//! The listener: accepts connections up to `connections_max`, runs one task per connection,
//! and on shutdown stops accepting, lets each connection finish the request it is serving, and
//! returns once every connection task has ended (the shape of mini-redis's `server.rs`).
//!
//! A connection answers its requests one at a time, in the order they arrived, as a Kafka
//! broker does (it mutes a channel while one of its requests is in flight). That order is what
//! makes pipelined produces of one partition land in the order they were sent. Many
//! connections are served at once, each on its own task.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tracing::{debug, error, info, warn};

use crate::config::KafkaConfig;
use crate::dispatch::{self, Session};
use crate::error::KafkaError;
use crate::frame::Connection;
use crate::state::ListenerState;
use crate::Broker;

/// Longest pause between retries when `accept` keeps failing (out of file descriptors, say).
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(2);

/// Serves Kafka clients on `listener` until `shutdown` completes, then waits for every
/// connection to finish its current request.
///
/// Metadata tells clients to connect to `config.advertised_addr`, or to the listener's own
/// address when that is unset.
pub async fn serve(
    broker: Broker,
    listener: TcpListener,
    config: KafkaConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), KafkaError> {
    crate::config::validate(&config).map_err(|reason| KafkaError::Config { reason })?;
    let local = listener.local_addr()?;
    let door = Arc::new(ListenerState::new(broker, config, local));
    // Dropping the sender tells every connection to stop; each connection holds a clone of
    // `done_tx`, so `done_rx` yields `None` once the last one has ended.
    let (stop_tx, stop_rx) = watch::channel(());
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    let listener = Listener {
        listener,
        limit: Arc::new(Semaphore::new(door.config.connections_max)),
        door,
        stop_rx,
        done_tx,
    };
    info!(%local, "Kafka listener started");
    let result = tokio::select! {
        result = listener.run() => result,
        () = shutdown => Ok(()),
    };
    if let Err(err) = &result {
        error!(%local, %err, "the Kafka listener cannot accept connections anymore");
    }
    // The listener holds a `done_tx` too: drop it with the stop signal, then wait for the
    // connections' clones.
    drop(listener);
    drop(stop_tx);
    let _ = done_rx.recv().await;
    info!(%local, "Kafka listener stopped");
    result
}

struct Listener {
    listener: TcpListener,
    limit: Arc<Semaphore>,
    door: Arc<ListenerState>,
    stop_rx: watch::Receiver<()>,
    done_tx: mpsc::Sender<()>,
}

impl Listener {
    /// Accepts connections forever; only returns if accepting fails for good.
    async fn run(&self) -> Result<(), KafkaError> {
        loop {
            // Waiting for a permit before accepting leaves further clients in the kernel's
            // backlog instead of accepting sockets we would not serve.
            let Ok(permit) = Arc::clone(&self.limit).acquire_owned().await else {
                return Ok(()); // closed: nobody closes it, but then nothing more is served
            };
            let (socket, peer) = self.accept().await?;
            if let Err(err) = socket.set_nodelay(true) {
                debug!(%peer, %err, "cannot set TCP_NODELAY");
            }
            let handler = Handler {
                connection: Connection::new(socket, self.door.config.request_bytes_max),
                session: Session::new(peer),
                door: Arc::clone(&self.door),
                stop_rx: self.stop_rx.clone(),
                _done: self.done_tx.clone(),
                _permit: permit,
            };
            tokio::spawn(handler.run());
        }
    }

    /// Accepts one connection, retrying transient failures with a growing pause.
    async fn accept(&self) -> Result<(TcpStream, SocketAddr), KafkaError> {
        let mut backoff = Duration::from_millis(10);
        loop {
            match self.listener.accept().await {
                Ok(accepted) => return Ok(accepted),
                Err(err) if is_fatal_accept_error(&err) => return Err(err.into()),
                Err(err) => {
                    warn!(%err, "accepting a Kafka connection failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                }
            }
        }
    }
}

/// Errors after which the listening socket itself is unusable.
fn is_fatal_accept_error(err: &std::io::Error) -> bool {
    matches!(err.kind(), std::io::ErrorKind::InvalidInput)
}

/// One connection's task.
struct Handler {
    connection: Connection,
    session: Session,
    door: Arc<ListenerState>,
    stop_rx: watch::Receiver<()>,
    /// Held until the task ends, so shutdown can wait for it.
    _done: mpsc::Sender<()>,
    /// Frees a connection slot when the task ends.
    _permit: OwnedSemaphorePermit,
}

impl Handler {
    async fn run(mut self) {
        let peer = self.session.peer;
        match self.serve().await {
            Ok(()) => debug!(%peer, "Kafka connection closed"),
            Err(KafkaError::Io(err)) => debug!(%peer, %err, "Kafka connection lost"),
            Err(err) => {
                warn!(%peer, client_id = %self.session.client_id, %err, "closing Kafka connection")
            }
        }
    }

    /// Reads, answers and writes requests one at a time until the peer leaves, sends
    /// something unanswerable, or the listener shuts down.
    async fn serve(&mut self) -> Result<(), KafkaError> {
        loop {
            let frame = tokio::select! {
                frame = self.connection.read_frame() => frame?,
                _ = self.stop_rx.changed() => return Ok(()),
            };
            let Some(frame) = frame else {
                return Ok(());
            };
            let response =
                dispatch::handle(&self.door, &mut self.session, frame, &self.stop_rx).await?;
            if let Some(response) = response {
                self.connection.write_frame(&response).await?;
            }
        }
    }
}

/// A running Kafka listener started by [`start`].
#[derive(Debug)]
pub struct KafkaServer {
    local_addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), KafkaError>>,
}

/// Binds `config.addr` and serves Kafka clients on a background task until
/// [`KafkaServer::shutdown`] (or until the handle is dropped).
pub async fn start(broker: Broker, config: KafkaConfig) -> Result<KafkaServer, KafkaError> {
    crate::config::validate(&config).map_err(|reason| KafkaError::Config { reason })?;
    let listener = TcpListener::bind(&config.addr)
        .await
        .map_err(|source| KafkaError::Bind {
            addr: config.addr.clone(),
            source,
        })?;
    let local_addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(serve(broker, listener, config, async {
        // Either an explicit stop or a dropped handle ends the listener.
        let _ = stopped.await;
    }));
    Ok(KafkaServer {
        local_addr,
        stop: Some(stop),
        task,
    })
}

impl KafkaServer {
    /// The address the listener is bound to (with the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, lets open connections finish their current request, and waits.
    pub async fn shutdown(mut self) -> Result<(), KafkaError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match (&mut self.task).await {
            Ok(result) => result,
            Err(source) => {
                error!(%source, "the Kafka listener task failed");
                Err(KafkaError::Task { source })
            }
        }
    }
}
