//! The Kafka door's serve loop: one task per connection, taken from brook-door's capped accept
//! loop, and on shutdown: stop accepting, let each connection finish the request it is serving,
//! and return once every connection has closed.
//!
//! A connection answers its requests one at a time, in the order they arrived, as a Kafka
//! broker does (it mutes a channel while one of its requests is in flight). That order is what
//! makes pipelined produces of one partition land in the order they were sent. Many
//! connections are served at once, each on its own task.
//!
//! Starting, the connection cap, the bound address and stopping are brook-door's, as for every
//! door: [`KafkaServer`] is a [`RunningDoor`]. With TLS set ([`KafkaConfig::security`]), each
//! connection's handshake runs first on its own task (as Kafka's SSL listener); a client that
//! fails it (a plaintext client on a TLS port) is closed and touches nothing.

use std::sync::Arc;
use std::time::Duration;

use brook_door::tls::Stream;
use brook_door::{Acceptor, ConnectionLimits, Door, Requests, RunningDoor, Shutdown};
use brook_metrics::doors::{connection_opened, OpenGuard};
use tokio::sync::watch;
use tracing::{debug, warn};

use crate::config::KafkaConfig;
use crate::dispatch::{self, Session};
use crate::error::KafkaError;
use crate::frame::Connection;
use crate::state::ListenerState;
use crate::Broker;

/// How long a connection whose login was refused stays open after the answer, waiting for the
/// client to close it first ([`Handler::linger`]).
const FAILED_LOGIN_LINGER: Duration = Duration::from_secs(5);

/// The Kafka door: how brook-door runs it (see [`KafkaServer`]).
#[derive(Debug)]
pub struct Kafka;

impl Door for Kafka {
    const NAME: &'static str = "Kafka";
    /// The log itself: the door hands out stored batches as they are and keeps producer and
    /// group state beside them, so it is off in gateway mode (Kafka clients then talk to the
    /// cluster directly).
    type Backend = Broker;
    type Config = KafkaConfig;
    type Error = KafkaError;

    fn limits(config: &KafkaConfig) -> ConnectionLimits {
        config.limits()
    }

    fn check(config: &KafkaConfig) -> Result<(), String> {
        crate::config::validate(config)
    }

    /// Serves until `shutdown` fires, then lets each connection finish the request it is
    /// serving and returns once every connection has closed.
    async fn serve(
        broker: Broker,
        mut connections: Acceptor,
        config: KafkaConfig,
        shutdown: Shutdown,
    ) -> Result<(), KafkaError> {
        let state = Arc::new(ListenerState::new(broker, config, connections.local_addr()));
        // Dropping the sender tells every connection to stop after the request it is serving.
        let (stop_tx, stop_rx) = watch::channel(());
        let stopped = shutdown.wait();
        tokio::pin!(stopped);
        loop {
            tokio::select! {
                connection = connections.accept() => {
                    let (state, stop_rx) = (Arc::clone(&state), stop_rx.clone());
                    let open = connection_opened(brook_metrics::Door::Kafka);
                    tokio::spawn(async move {
                        let peer = connection.peer_addr();
                        let requests = connection.requests();
                        let stream = match &state.config.security.tls {
                            None => Stream::Plain(connection),
                            Some(tls) => match tls.accept(connection).await {
                                Ok(stream) => stream,
                                Err(error) => {
                                    debug!(%peer, %error, "Kafka TLS handshake failed");
                                    return;
                                }
                            },
                        };
                        let authentication = state.config.security.auth.enabled();
                        let session = Session::new(peer, authentication, stream.client_subject());
                        let handler = Handler {
                            session,
                            requests,
                            connection: Connection::new(stream, state.config.request_bytes_max),
                            state,
                            stop_rx,
                            _open: open,
                        };
                        handler.run().await;
                    });
                }
                () = &mut stopped => break,
            }
        }
        let draining = connections.close();
        debug!(
            open = draining.open(),
            "Kafka door draining its connections"
        );
        drop(stop_tx);
        draining.wait().await;
        Ok(())
    }
}

/// A Kafka door running on its own task: `KafkaServer::start(broker, addr, config)`, then
/// `local_addr()` (what clients bootstrap from) and `stop()`.
///
/// Metadata tells clients to connect to `config.advertised_addr`, or to the bound address when
/// that is unset.
pub type KafkaServer = RunningDoor<Kafka>;

/// One connection's task. Its connection holds a place under the cap until the task ends.
struct Handler {
    connection: Connection,
    session: Session,
    state: Arc<ListenerState>,
    stop_rx: watch::Receiver<()>,
    /// Marks each request in flight while it is answered, so brook-door knows the connection
    /// is busy (never idle, never closed to make room).
    requests: Requests,
    /// Counts the connection in `brook_open_connections` while it lives.
    _open: OpenGuard,
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
    /// something unanswerable, or the door shuts down.
    async fn serve(&mut self) -> Result<(), KafkaError> {
        loop {
            let frame = tokio::select! {
                frame = self.connection.read_frame() => frame?,
                _ = self.stop_rx.changed() => return Ok(()),
            };
            let Some(frame) = frame else {
                return Ok(());
            };
            let in_flight = self.requests.start();
            let response =
                dispatch::handle(&self.state, &mut self.session, frame, &self.stop_rx).await?;
            if let Some(response) = response {
                self.connection.write_frame(&response).await?;
            }
            if self.session.close_after_response {
                drop(in_flight);
                self.linger().await;
                return Err(KafkaError::AuthenticationFailed);
            }
        }
    }

    /// After a refused login's answer, waits for the client to hang up first (reading and
    /// dropping whatever it still sends, answering nothing), at most [`FAILED_LOGIN_LINGER`]
    /// or until the door stops. Closing at once puts the end of the stream right behind the
    /// answer, and a client that reads both in one go may lose the answer: kafka-python 3.0
    /// drops the bytes that arrive with the end of the stream and reports "socket
    /// disconnected" instead of SASL_AUTHENTICATION_FAILED (docs/security.md, "Authentication").
    async fn linger(&mut self) {
        let deadline = tokio::time::sleep(FAILED_LOGIN_LINGER);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                frame = self.connection.read_frame() => match frame {
                    Ok(Some(_)) => continue,
                    Ok(None) | Err(_) => return,
                },
                () = &mut deadline => return,
                _ = self.stop_rx.changed() => return,
            }
        }
    }
}
