//! The one capped accept loop every door takes its connections from.
//!
//! [`Acceptor::accept`] hands a door one [`Connection`] at a time, in four steps:
//!
//! 1. **Room.** It waits for a place under the cap ([`ConnectionLimits::connections_max`])
//!    *before* accepting, so clients past the cap wait in the kernel's listen backlog (their
//!    connect succeeds, nothing of theirs is read) instead of holding memory here, and are served
//!    in turn as connections close.
//! 2. **Accept.** No accept error is fatal. A client that left before it was accepted is skipped
//!    at once; anything else (out of file descriptors, `EMFILE`, say) is logged and retried after
//!    a pause that doubles from 10 ms to 1 s and starts over after the next success, so a door
//!    out of descriptors neither spins nor gives up.
//! 3. **Admission.** The peer's address is known and nothing is read yet. Today every peer that
//!    found room is admitted.
//! 4. **The connection.** The socket goes to the door inside a [`Connection`], which holds its
//!    place under the cap until it is dropped and applies the connection's time limits.
//!
//! Connection policies for every door belong at these points, in this one file and in
//! [`crate::connection`]: a cap per client address, and closing the oldest idle connection
//! when the cap is near, in admission (`Admission::admit`, which sees the peer and owns the
//! places); idle and first-request timeouts in [`Connection`], beside the write stall limit.
//!
//! [`Acceptor::close`] closes the listening socket (new clients are refused, not queued) and
//! returns a [`Draining`] that resolves once every connection handed out has closed.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::connection::Connection;
use crate::listener::Listener;

/// The most `connections_max` may be: far more sockets than one process serves well, and small
/// enough that a cap can be counted in one semaphore acquisition.
pub const CONNECTIONS_MAX_BOUND: usize = 1 << 20;

/// First pause after a failed accept; it doubles on each further failure.
const BACKOFF_FIRST: Duration = Duration::from_millis(10);
/// Longest pause between two accept attempts.
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// What a door's settings ask of its accept loop and connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionLimits {
    /// Connections served at once (1 to [`CONNECTIONS_MAX_BOUND`]); further clients wait in the
    /// listen backlog until one closes.
    pub connections_max: usize,
    /// How long a connection may take none of the bytes the door writes before it is dropped;
    /// `None`: as long as it likes.
    pub write_stall_max: Option<Duration>,
}

impl ConnectionLimits {
    /// A cap of `connections_max` and no time limits.
    pub fn new(connections_max: usize) -> Self {
        Self {
            connections_max,
            write_stall_max: None,
        }
    }

    /// The same limits, with writes that make no progress for `limit` failing the connection.
    pub fn with_write_stall_max(mut self, limit: Duration) -> Self {
        self.write_stall_max = Some(limit);
        self
    }

    /// Checks every limit against its bound; the message names the setting.
    pub fn check(&self) -> Result<(), String> {
        if !(1..=CONNECTIONS_MAX_BOUND).contains(&self.connections_max) {
            return Err(format!(
                "connections_max must be between 1 and {CONNECTIONS_MAX_BOUND}, not {}",
                self.connections_max
            ));
        }
        if self.write_stall_max.is_some_and(|limit| limit.is_zero()) {
            return Err("write_stall_ms_max must be at least 1".into());
        }
        Ok(())
    }
}

/// A door's listening socket with its cap: where the door's connections come from.
#[derive(Debug)]
pub struct Acceptor {
    door: &'static str,
    listener: TcpListener,
    local_addr: SocketAddr,
    admission: Admission,
    backoff: Backoff,
}

impl Acceptor {
    /// Accepts on `listener` within `limits` (a `connections_max` out of bounds is clamped into
    /// them; [`ConnectionLimits::check`] reports it first where settings are read).
    pub fn new(listener: Listener, limits: ConnectionLimits) -> Self {
        let door = listener.door();
        let local_addr = listener.local_addr();
        Self {
            door,
            listener: listener.into_inner(),
            local_addr,
            admission: Admission::new(door, limits),
            backoff: Backoff::default(),
        }
    }

    /// The door accepting.
    pub fn door(&self) -> &'static str {
        self.door
    }

    /// The address accepted on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The next connection, once there is room under the cap for it. Never fails: accept errors
    /// are retried (see the module doc). Cancel-safe: dropping the future loses no connection
    /// and gives its place back.
    pub async fn accept(&mut self) -> Connection {
        let place = self.admission.room().await;
        let (stream, peer) = loop {
            match self.listener.accept().await {
                Ok(accepted) => {
                    self.backoff.reset();
                    break accepted;
                }
                Err(error) if left_before_accept(&error) => {
                    tracing::debug!(door = self.door, %error, "a client left before it was accepted");
                }
                Err(error) => {
                    let pause = self.backoff.next_pause();
                    tracing::warn!(
                        door = self.door,
                        addr = %self.local_addr,
                        %error,
                        retry_in_ms = pause.as_millis(),
                        "cannot accept a connection"
                    );
                    tokio::time::sleep(pause).await;
                }
            }
        };
        self.admission.admit(stream, peer, place)
    }

    /// Stops accepting: the listening socket closes, so new clients are refused instead of
    /// queued. The connections already handed out go on; [`Draining::wait`] waits for them.
    pub fn close(self) -> Draining {
        Draining {
            places: self.admission.places,
            connections_max: self.admission.connections_max,
        }
    }
}

/// The connections of a closed [`Acceptor`] that are still open.
#[derive(Debug)]
pub struct Draining {
    places: Arc<Semaphore>,
    connections_max: u32,
}

impl Draining {
    /// Connections still open.
    pub fn open(&self) -> usize {
        (self.connections_max as usize).saturating_sub(self.places.available_permits())
    }

    /// Resolves once every connection the acceptor handed out has been dropped.
    pub async fn wait(self) {
        // Every place back under the cap means no connection holds one.
        let _all = self.places.acquire_many(self.connections_max).await;
    }
}

/// Who gets a connection. Today: whoever finds a place under the cap.
#[derive(Debug)]
struct Admission {
    door: &'static str,
    limits: ConnectionLimits,
    /// One permit per connection that may be open; a [`Connection`] holds one until dropped.
    places: Arc<Semaphore>,
    connections_max: u32,
}

impl Admission {
    fn new(door: &'static str, limits: ConnectionLimits) -> Self {
        let connections_max = limits.connections_max.clamp(1, CONNECTIONS_MAX_BOUND);
        Self {
            door,
            limits,
            places: Arc::new(Semaphore::new(connections_max)),
            // At most CONNECTIONS_MAX_BOUND, which fits.
            connections_max: connections_max as u32,
        }
    }

    /// Waits for a place under the cap.
    async fn room(&self) -> OwnedSemaphorePermit {
        match Arc::clone(&self.places).acquire_owned().await {
            Ok(place) => place,
            Err(_) => unreachable!("the places semaphore is never closed"),
        }
    }

    /// Lets the accepted `stream` from `peer` in, holding `place`. The decision point for
    /// per-address caps and for making room by closing an idle connection.
    fn admit(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        place: OwnedSemaphorePermit,
    ) -> Connection {
        // Every door answers small requests: do not hold them back for Nagle.
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(door = self.door, %peer, %error, "cannot set TCP_NODELAY");
        }
        Connection::new(self.door, stream, peer, place, self.limits.write_stall_max)
    }
}

/// Errors that mean one client gave up before it was accepted, not that accepting fails.
fn left_before_accept(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
    )
}

/// The pause before the next accept attempt after a failure.
#[derive(Debug)]
struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            next: BACKOFF_FIRST,
        }
    }
}

impl Backoff {
    /// How long to pause now; the next pause is twice as long, up to [`BACKOFF_MAX`].
    fn next_pause(&mut self) -> Duration {
        let pause = self.next;
        self.next = (self.next * 2).min(BACKOFF_MAX);
        pause
    }

    /// An accept succeeded: the next failure pauses briefly again.
    fn reset(&mut self) {
        self.next = BACKOFF_FIRST;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_to_its_ceiling_and_starts_over_after_a_success() {
        let mut backoff = Backoff::default();
        let pauses: Vec<u128> = (0..10).map(|_| backoff.next_pause().as_millis()).collect();
        assert_eq!(pauses, [10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000]);
        backoff.reset();
        assert_eq!(backoff.next_pause(), BACKOFF_FIRST);
    }

    #[test]
    fn limits_out_of_bounds_are_refused_naming_the_setting() {
        for bad in [
            ConnectionLimits::new(0),
            ConnectionLimits::new(CONNECTIONS_MAX_BOUND + 1),
            ConnectionLimits::new(8).with_write_stall_max(Duration::ZERO),
        ] {
            let reason = bad.check().expect_err("out of bounds");
            assert!(reason.contains("_max"), "{reason}");
        }
        assert!(ConnectionLimits::new(1).check().is_ok());
        assert!(ConnectionLimits::new(CONNECTIONS_MAX_BOUND)
            .with_write_stall_max(Duration::from_millis(1))
            .check()
            .is_ok());
    }
}
