//! The one capped accept loop every door takes its connections from.
//!
//! [`Acceptor::accept`] hands a door one [`Connection`] at a time, in four steps:
//!
//! 1. **Room.** With a place free under the cap ([`ConnectionLimits::connections_max`]) it
//!    accepts. When the door is full it accepts one client and holds it (nothing of it is read)
//!    while it makes room: an idle connection (no request in flight) of the address holding
//!    the most connections, the one idle longest among them, is closed, and its place goes to
//!    the client waiting. When every connection is busy, the client waits
//!    (looking again every 50 ms for one gone idle), and clients after it wait in the kernel's
//!    listen backlog (their connect succeeds, nothing of theirs is read), until a connection
//!    closes or goes idle. So a flood of idle or slow connections
//!    cannot keep a new client out, and busy clients are never cut off to make room.
//! 2. **Accept.** A client address opening connections faster than
//!    [`ConnectionLimits::connection_rate_per_addr_max`] has the connection closed right after
//!    the accept, before anything else is spent on it (`connect_rate.rs`): a storm of
//!    connects from one address drains from the listen backlog at the cost of an accept and a
//!    close each, so a normal client's connect does not queue behind it. No accept error is fatal. A client that left before it was accepted is skipped
//!    at once; anything else (out of file descriptors, `EMFILE`, say) is logged and retried after
//!    a pause that doubles from 10 ms to 1 s and starts over after the next success, so a door
//!    out of descriptors neither spins nor gives up.
//! 3. **Admission.** The peer's address is known and nothing is read yet. An address that holds
//!    [`ConnectionLimits::connections_per_addr_max`] connections (when that is below the door's
//!    cap) gets in only by the one of its own idle longest being closed; when all of them are
//!    busy the new one is refused (closed at once), so one address never holds the accept loop.
//! 4. **The connection.** The socket goes to the door inside a [`Connection`], which holds its
//!    place under the cap until it is dropped and applies the connection's time limits: the
//!    write stall limit, and (through [`crate::tracker`], whose sweeper task this loop starts)
//!    the idle and request-read limits.
//!
//! [`Acceptor::close`] closes the listening socket (new clients are refused, not queued) and
//! returns a [`Draining`] that resolves once every connection handed out has closed.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use brook_broker::bounds::{check_bounds, Bounded, Bounds, DAY_MS};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::connect_rate::ConnectRate;
use crate::connection::Connection;
use crate::listener::Listener;
use crate::tracker::{Closing, Framing, Peers, Registry};

/// The most `connections_max` may be: far more sockets than one process serves well, and small
/// enough that a cap can be counted in one semaphore acquisition.
pub const CONNECTIONS_MAX_BOUND: usize = 1 << 20;

/// The range of a connection count (`connections_max`, `connections_per_addr_max`).
pub const CONNECTIONS: Bounds = Bounds::new(1, CONNECTIONS_MAX_BOUND as u64);
/// The range of a connection time limit in milliseconds (write stall, idle, request read).
pub const TIME_LIMIT_MS: Bounds = Bounds::new(1, DAY_MS);
/// The most `connection_rate_per_addr_max` may be, and its default in every door: more
/// connects a second than one process accepts, so at this value there is no limit (as Kafka's
/// per-IP `connection_creation_rate` quota defaults to no limit).
pub const CONNECTION_RATE_BOUND: u32 = 1 << 20;
/// The range of `connection_rate_per_addr_max`, in connections a second.
pub const CONNECTION_RATE: Bounds = Bounds::new(1, CONNECTION_RATE_BOUND as u64);

/// First pause after a failed accept; it doubles on each further failure.
const BACKOFF_FIRST: Duration = Duration::from_millis(10);
/// Longest pause between two accept attempts.
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// How often a client waiting for a place looks again for a connection gone idle.
const MAKE_ROOM_EVERY: Duration = Duration::from_millis(50);

/// What a door's settings ask of its accept loop and connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionLimits {
    /// Connections served at once (1 to [`CONNECTIONS_MAX_BOUND`]); when full, an idle
    /// connection of the address holding the most (idle longest among them) makes room for a
    /// new client, and with none idle the client waits.
    pub connections_max: usize,
    /// Connections one client address may hold at once; past it the address's connection idle
    /// longest makes room, and with none idle the new one is refused. At or above
    /// `connections_max` (the default) there is no cap per address.
    pub connections_per_addr_max: usize,
    /// Connections one client address may open a second (a second's worth at once); past it
    /// a new connection is closed as soon as it is accepted, before any other work, and
    /// counted, with one log line per door at most every 10 s. At [`CONNECTION_RATE_BOUND`]
    /// (the default) there is no limit.
    pub connection_rate_per_addr_max: u32,
    /// How long a connection may take none of the bytes the door writes before it is dropped;
    /// `None`: as long as it likes.
    pub write_stall_max: Option<Duration>,
    /// How long a connection may stay open with no request in flight; `None`: as long as it
    /// likes.
    pub idle_max: Option<Duration>,
    /// How long a request may take to arrive whole (see [`Framing`]); `None`: as long as it
    /// likes.
    pub request_read_max: Option<Duration>,
    /// How the protocol places requests on a connection.
    pub framing: Framing,
}

impl ConnectionLimits {
    /// Every limit with its range, by the key the doors' settings end in.
    pub const BOUNDS: &'static [Bounded<ConnectionLimits>] = &[
        Bounded::new("connections_max", CONNECTIONS, |l| {
            Some(l.connections_max as u64)
        }),
        Bounded::new("connections_per_addr_max", CONNECTIONS, |l| {
            Some(l.connections_per_addr_max as u64)
        }),
        Bounded::new("connection_rate_per_addr_max", CONNECTION_RATE, |l| {
            Some(u64::from(l.connection_rate_per_addr_max))
        }),
        Bounded::new("write_stall_ms_max", TIME_LIMIT_MS, |l| {
            l.write_stall_max.map(millis)
        }),
        Bounded::new("idle_ms_max", TIME_LIMIT_MS, |l| l.idle_max.map(millis)),
        Bounded::new("request_read_ms_max", TIME_LIMIT_MS, |l| {
            l.request_read_max.map(millis)
        }),
    ];

    /// A cap of `connections_max` (per address too) and no time limits.
    pub fn new(connections_max: usize) -> Self {
        Self {
            connections_max,
            connections_per_addr_max: connections_max,
            connection_rate_per_addr_max: CONNECTION_RATE_BOUND,
            write_stall_max: None,
            idle_max: None,
            request_read_max: None,
            framing: Framing::Sequential,
        }
    }

    /// The same limits, with at most `max` connections from one client address.
    pub fn with_per_addr_max(mut self, max: usize) -> Self {
        self.connections_per_addr_max = max;
        self
    }

    /// The same limits, with at most `rate` new connections a second from one client address.
    pub fn with_connection_rate_per_addr_max(mut self, rate: u32) -> Self {
        self.connection_rate_per_addr_max = rate;
        self
    }

    /// The same limits, with writes that make no progress for `limit` failing the connection.
    pub fn with_write_stall_max(mut self, limit: Duration) -> Self {
        self.write_stall_max = Some(limit);
        self
    }

    /// The same limits, with a connection idle for `limit` closed.
    pub fn with_idle_max(mut self, limit: Duration) -> Self {
        self.idle_max = Some(limit);
        self
    }

    /// The same limits, with a request that takes longer than `limit` to arrive whole closed,
    /// requests being placed on a connection as `framing` says.
    pub fn with_request_read_max(mut self, limit: Duration, framing: Framing) -> Self {
        self.request_read_max = Some(limit);
        self.framing = framing;
        self
    }

    /// Checks every limit against its range; the message names the setting.
    pub fn check(&self) -> Result<(), String> {
        check_bounds(self, Self::BOUNDS)
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// A door's listening socket with its cap: where the door's connections come from.
#[derive(Debug)]
pub struct Acceptor {
    door: &'static str,
    listener: TcpListener,
    local_addr: SocketAddr,
    admission: Admission,
    /// The connect rate per address, when limited.
    connect_rate: Option<ConnectRate>,
    backoff: Backoff,
    /// A client accepted while the door was full, waiting for a place (kept here so a dropped
    /// `accept` future does not lose it).
    waiting: Option<(TcpStream, SocketAddr)>,
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
            connect_rate: (limits.connection_rate_per_addr_max < CONNECTION_RATE_BOUND)
                .then(|| ConnectRate::new(door, limits.connection_rate_per_addr_max)),
            backoff: Backoff::default(),
            waiting: None,
        }
    }

    /// Marks requests in flight by client address, for a door whose protocol library owns its
    /// sockets (see [`crate::tracker`]).
    pub fn peers(&self) -> Peers {
        self.admission.registry.peers()
    }

    /// The door accepting.
    pub fn door(&self) -> &'static str {
        self.door
    }

    /// The address accepted on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The next connection, once there is room under the cap for it (see the module doc). Never
    /// fails: accept errors are retried. Cancel-safe: dropping the future loses no connection
    /// and gives its place back.
    pub async fn accept(&mut self) -> Connection {
        self.admission.registry.start_sweeping();
        loop {
            if self.waiting.is_none() {
                let places = Arc::clone(&self.admission.places);
                let accepted = match Arc::clone(&places).try_acquire_owned() {
                    Ok(place) => Ok((self.accept_socket().await, place)),
                    // Full: a place that frees up, or the next client, whichever comes first.
                    Err(_) => tokio::select! {
                        place = places.acquire_owned() => {
                            let place = place.expect("the places semaphore is never closed");
                            Ok((self.accept_socket().await, place))
                        }
                        accepted = self.accept_socket() => Err(accepted),
                    },
                };
                match accepted {
                    Ok(((stream, peer), place)) => {
                        if self.admission.address_has_room(peer) {
                            return self.admission.admit(stream, peer, place);
                        }
                        continue;
                    }
                    Err((stream, peer)) => {
                        if !self.admission.address_has_room(peer) {
                            continue;
                        }
                        // Held here (kept across a dropped future) while the connection closed
                        // to make room gives its place back, or, with every connection busy,
                        // until one closes.
                        self.admission.make_room();
                        self.waiting = Some((stream, peer));
                    }
                }
            }
            // Until a place frees up, look again for a connection that has gone idle.
            let place = loop {
                tokio::select! {
                    place = self.admission.room() => break place,
                    () = tokio::time::sleep(MAKE_ROOM_EVERY) => self.admission.make_room(),
                }
            };
            if let Some((stream, peer)) = self.waiting.take() {
                return self.admission.admit(stream, peer, place);
            }
        }
    }

    /// The next client socket within its address's connect rate; accept errors are retried
    /// (see the module doc).
    async fn accept_socket(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            match self.listener.accept().await {
                Ok((stream, peer)) => {
                    self.backoff.reset();
                    if let Some(rate) = &mut self.connect_rate {
                        if !rate.admit(peer.ip()) {
                            refuse(stream);
                            continue;
                        }
                    }
                    return (stream, peer);
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
        }
    }

    /// Stops accepting: the listening socket closes, so new clients are refused instead of
    /// queued. The connections already handed out go on; [`Draining::wait`] waits for them.
    pub fn close(self) -> Draining {
        if let Some(rate) = self.connect_rate.as_ref().filter(|r| r.refused_total() > 0) {
            tracing::info!(
                door = self.door,
                refused = rate.refused_total(),
                "connections refused at accept for their address's connect rate since the door \
                 started"
            );
        }
        Draining {
            places: self.admission.places,
            connections_max: self.admission.connections_max,
            _registry: self.admission.registry,
        }
    }
}

/// The connections of a closed [`Acceptor`] that are still open.
#[derive(Debug)]
pub struct Draining {
    places: Arc<Semaphore>,
    connections_max: u32,
    /// Keeps the time limits applying to the connections left.
    _registry: Arc<Registry>,
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

/// Who gets a connection: a client that finds a place under the cap, or one made for it by
/// closing an idle connection; within its address's cap.
#[derive(Debug)]
struct Admission {
    door: &'static str,
    limits: ConnectionLimits,
    /// One permit per connection that may be open; a [`Connection`] holds one until dropped.
    places: Arc<Semaphore>,
    connections_max: u32,
    /// Every open connection and how busy it is.
    registry: Arc<Registry>,
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
            registry: Registry::new(door, limits),
        }
    }

    /// Whether `peer`'s address may open one more connection, after closing its connection
    /// idle longest if it is at its cap. When it may not, the client is refused here.
    fn address_has_room(&self, peer: SocketAddr) -> bool {
        let cap = self.limits.connections_per_addr_max;
        // A cap at or above the door's own is no cap of its own: the door's rules apply.
        if cap >= self.limits.connections_max
            || self.registry.open_from(peer.ip()) < cap.max(1)
            || self
                .registry
                .evict_idle(Some(peer.ip()), Closing::AddressFull)
        {
            return true;
        }
        tracing::debug!(
            door = self.door,
            %peer,
            connections_per_addr_max = self.limits.connections_per_addr_max,
            "refused a connection: its address holds its cap of busy connections"
        );
        false
    }

    /// The door is full and a client waits: closes an idle connection of the address holding
    /// the most ([`Registry::evict_idle`]), whose place goes to the client. With a connection
    /// already closing, its place is on its way back and nothing more is closed (under a storm
    /// of connects, closing one per client before the last one's place came back would cut the
    /// few connections left idle: a normal client's); with every connection busy, nothing is
    /// closed and the client waits.
    fn make_room(&self) {
        if self.places.available_permits() == 0 && !self.registry.any_closing() {
            self.registry.evict_idle(None, Closing::MakeRoom);
        }
    }

    /// Waits for a place under the cap.
    async fn room(&self) -> OwnedSemaphorePermit {
        match Arc::clone(&self.places).acquire_owned().await {
            Ok(place) => place,
            Err(_) => unreachable!("the places semaphore is never closed"),
        }
    }

    /// Lets the accepted `stream` from `peer` in, holding `place` (its address's room was
    /// checked by [`Admission::address_has_room`]).
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
        Connection::new(
            self.door,
            stream,
            peer,
            place,
            self.limits.write_stall_max,
            &self.registry,
        )
    }
}

/// Closes a connection refused at accept with a reset: the door keeps no socket in a closing
/// state for it (a zero linger never blocks the thread on close).
fn refuse(stream: TcpStream) {
    #[allow(deprecated)]
    let _ = stream.set_linger(Some(Duration::ZERO));
    drop(stream);
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
            ConnectionLimits::new(8).with_per_addr_max(0),
            ConnectionLimits::new(8).with_connection_rate_per_addr_max(0),
            ConnectionLimits::new(8).with_connection_rate_per_addr_max(CONNECTION_RATE_BOUND + 1),
            ConnectionLimits::new(8).with_idle_max(Duration::from_secs(2 * 86_400)),
            ConnectionLimits::new(8)
                .with_request_read_max(Duration::from_secs(u64::MAX), Framing::Sequential),
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
