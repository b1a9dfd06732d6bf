//! Who is connected to a door, and how busy each connection is: what admission and the
//! connection time limits decide by.
//!
//! Every [`crate::Connection`] is registered here while it lives, with its `Activity`: when it
//! opened, how many requests it has in flight (the door marks each with [`Requests::start`], or
//! [`Peers::start`] when the protocol library owns the socket), when its last request ended,
//! and since when it has been sending bytes that are not yet a request. From those:
//!
//! - **idle**: a connection with no request in flight is closed once `idle_ms_max` has passed
//!   since its last request ended (or since it opened);
//! - **request read**: a request must be read whole within `request_read_ms_max` of its first
//!   byte (with [`Framing::Sequential`], as HTTP/1.1 and Kafka frame requests one after
//!   another), or for [`Framing::Multiplexed`] protocols (HTTP/2, whose pings and window
//!   updates flow between requests) the first request within that long of the connect: a
//!   slowloris client that trickles a header never gets a request through;
//! - **room**: when the door is full, an idle connection of the address holding the most
//!   connections (idle longest among them) is closed to let the new client in; when one address
//!   holds its `connections_per_addr_max`, its own connection idle longest
//!   (`Registry::evict_idle`).
//!
//! Closing is cooperative and immediate: the connection is marked, its reader woken, and its
//! next read or write fails, so the door (or tonic, or hyper) drops it and its place under the
//! cap comes back. A connection with a request in flight (a long poll, a stream, a produce) is
//! never closed by these rules; the write stall limit bounds one that stops reading.
//!
//! The limits are enforced by one sweeper task per door (`Registry::sweep` every few
//! milliseconds to a second, depending on the limits), not by a timer per connection.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use futures::task::AtomicWaker;
use tokio::time::Instant;

use crate::accept::ConnectionLimits;

/// How a protocol places requests on a connection, which says when a request's read begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Framing {
    /// One request after another (HTTP/1.1, Kafka): any byte read while no request is in
    /// flight begins the next request.
    #[default]
    Sequential,
    /// Requests interleaved with control traffic (HTTP/2): only the first request is timed,
    /// from the connect.
    Multiplexed,
}

/// "Not set" for a time kept as milliseconds since the registry's epoch.
const NEVER: u64 = u64::MAX;

/// Why a connection is being closed by the door.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Closing {
    Open = 0,
    Idle = 1,
    RequestRead = 2,
    MakeRoom = 3,
    AddressFull = 4,
}

impl Closing {
    fn from_u8(value: u8) -> Self {
        match value {
            1 => Self::Idle,
            2 => Self::RequestRead,
            3 => Self::MakeRoom,
            4 => Self::AddressFull,
            _ => Self::Open,
        }
    }

    /// Why, in words, with the setting that decided it.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Idle => "idle for longer than idle_ms_max",
            Self::RequestRead => "a request was not read whole within request_read_ms_max",
            Self::MakeRoom => {
                "the door is full (connections_max): the connection idle longest \
                               makes room for a new client"
            }
            Self::AddressFull => {
                "its address holds connections_per_addr_max connections: the \
                                  one idle longest makes room for a new one"
            }
        }
    }
}

/// What the registry knows of one connection.
#[derive(Debug)]
pub(crate) struct Activity {
    id: u64,
    peer: SocketAddr,
    epoch: Instant,
    opened: u64,
    /// When the last request ended (or the connection opened).
    last_done: AtomicU64,
    /// Since when bytes have been read while no request was in flight; [`NEVER`] when none.
    reading_since: AtomicU64,
    in_flight: AtomicU32,
    requests: AtomicU64,
    closing: AtomicU8,
    /// The task reading the connection, woken when it is closed.
    reader: AtomicWaker,
}

impl Activity {
    fn now(&self) -> u64 {
        millis(self.epoch.elapsed())
    }

    /// Notes bytes read from the client: the start of a request's read when none is in flight.
    pub(crate) fn bytes_read(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0
            && self.reading_since.load(Ordering::Relaxed) == NEVER
        {
            let _ = self.reading_since.compare_exchange(
                NEVER,
                self.now(),
                Ordering::AcqRel,
                Ordering::Relaxed,
            );
        }
    }

    /// Registers the reading task, to wake when the connection is closed.
    pub(crate) fn register_reader(&self, waker: &std::task::Waker) {
        self.reader.register(waker);
    }

    /// Why the connection is being closed, once it is.
    pub(crate) fn closing(&self) -> Option<Closing> {
        match Closing::from_u8(self.closing.load(Ordering::Acquire)) {
            Closing::Open => None,
            why => Some(why),
        }
    }

    /// Closes the connection for `why` (the first reason stands) and wakes its reader.
    fn close(&self, why: Closing) {
        let _ = self.closing.compare_exchange(
            Closing::Open as u8,
            why as u8,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        self.reader.wake();
    }

    fn start(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.reading_since.store(NEVER, Ordering::Release);
        InFlight {
            activity: Arc::clone(self),
        }
    }

    fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0 && self.closing().is_none()
    }

    /// The rule this connection breaks at `now`, if any.
    fn overdue(&self, now: u64, limits: &ConnectionLimits) -> Option<Closing> {
        if !self.is_idle() {
            return None;
        }
        if let Some(limit) = limits.request_read_max.map(millis) {
            let started = match limits.framing {
                Framing::Sequential => self.reading_since.load(Ordering::Acquire),
                Framing::Multiplexed if self.requests.load(Ordering::Acquire) == 0 => self.opened,
                Framing::Multiplexed => NEVER,
            };
            if started != NEVER && now.saturating_sub(started) >= limit {
                return Some(Closing::RequestRead);
            }
        }
        let idle_since = self.last_done.load(Ordering::Acquire);
        match limits.idle_max.map(millis) {
            Some(limit) if now.saturating_sub(idle_since) >= limit => Some(Closing::Idle),
            _ => None,
        }
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(NEVER - 1)
}

/// A request in flight on a connection: while one lives, the connection is busy (never idle,
/// never closed to make room). Dropping it ends the request.
#[derive(Debug)]
#[must_use = "the request ends when the guard is dropped"]
pub struct InFlight {
    activity: Arc<Activity>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let activity = &self.activity;
        activity.last_done.store(activity.now(), Ordering::Release);
        activity.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One connection's request marker, for a door that reads its own requests (the Kafka door):
/// [`Requests::start`] once a request has been read whole.
#[derive(Debug, Clone)]
pub struct Requests {
    activity: Arc<Activity>,
}

impl Requests {
    pub(crate) fn new(activity: Arc<Activity>) -> Self {
        Self { activity }
    }

    /// A request has been read whole and is being served until the guard drops.
    pub fn start(&self) -> InFlight {
        self.activity.start()
    }
}

/// The door's request marker by client address, for doors whose protocol library owns the
/// socket (tonic, hyper) and sees requests only as the peer address in their extensions.
#[derive(Debug, Clone)]
pub struct Peers {
    registry: Weak<Registry>,
}

impl Peers {
    /// The request that just reached the door from `peer` is in flight until the guard drops;
    /// `None` when no connection from `peer` is open (it closed meanwhile).
    pub fn start(&self, peer: SocketAddr) -> Option<InFlight> {
        let registry = self.registry.upgrade()?;
        let activity = registry.lock().by_peer.get(&peer).cloned()?;
        Some(activity.start())
    }
}

/// Every connection of one door.
#[derive(Debug)]
pub(crate) struct Registry {
    door: &'static str,
    limits: ConnectionLimits,
    epoch: Instant,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    next_id: u64,
    by_peer: HashMap<SocketAddr, Arc<Activity>>,
    per_addr: HashMap<IpAddr, usize>,
    sweeping: bool,
}

impl Registry {
    pub(crate) fn new(door: &'static str, limits: ConnectionLimits) -> Arc<Self> {
        Arc::new(Self {
            door,
            limits,
            epoch: Instant::now(),
            state: Mutex::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere leaves the maps consistent (each update is one insert or remove).
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn peers(self: &Arc<Self>) -> Peers {
        Peers {
            registry: Arc::downgrade(self),
        }
    }

    /// Connections open from `ip`.
    pub(crate) fn open_from(&self, ip: IpAddr) -> usize {
        self.lock().per_addr.get(&ip).copied().unwrap_or(0)
    }

    /// Registers a new connection from `peer`.
    pub(crate) fn register(self: &Arc<Self>, peer: SocketAddr) -> Arc<Activity> {
        let now = millis(self.epoch.elapsed());
        let mut state = self.lock();
        state.next_id += 1;
        let activity = Arc::new(Activity {
            id: state.next_id,
            peer,
            epoch: self.epoch,
            opened: now,
            last_done: AtomicU64::new(now),
            reading_since: AtomicU64::new(NEVER),
            in_flight: AtomicU32::new(0),
            requests: AtomicU64::new(0),
            closing: AtomicU8::new(Closing::Open as u8),
            reader: AtomicWaker::new(),
        });
        state.by_peer.insert(peer, Arc::clone(&activity));
        *state.per_addr.entry(peer.ip()).or_default() += 1;
        activity
    }

    /// Forgets a connection that closed.
    pub(crate) fn deregister(&self, activity: &Activity) {
        let mut state = self.lock();
        if state
            .by_peer
            .get(&activity.peer)
            .is_some_and(|a| a.id == activity.id)
        {
            state.by_peer.remove(&activity.peer);
        }
        if let Some(count) = state.per_addr.get_mut(&activity.peer.ip()) {
            *count -= 1;
            if *count == 0 {
                state.per_addr.remove(&activity.peer.ip());
            }
        }
    }

    /// Closes an idle connection for `why`; whether there was one. Of those from `ip`, when
    /// given, the one idle longest; otherwise one of the address holding the most connections
    /// (idle longest among them), so a client with a few connections is not cut off to make
    /// room for a flood from another address.
    pub(crate) fn evict_idle(&self, ip: Option<IpAddr>, why: Closing) -> bool {
        let victim = {
            let state = self.lock();
            state
                .by_peer
                .values()
                .filter(|a| ip.is_none_or(|ip| a.peer.ip() == ip) && a.is_idle())
                .max_by_key(|a| {
                    let held = state.per_addr.get(&a.peer.ip()).copied().unwrap_or(0);
                    (held, std::cmp::Reverse(a.last_done.load(Ordering::Acquire)))
                })
                .cloned()
        };
        match victim {
            Some(activity) => {
                tracing::debug!(door = self.door, peer = %activity.peer, why = why.reason(), "closing a connection");
                activity.close(why);
                true
            }
            None => false,
        }
    }

    /// Whether a connection has been told to close and has not yet given back its place.
    pub(crate) fn any_closing(&self) -> bool {
        self.lock().by_peer.values().any(|a| a.closing().is_some())
    }

    /// Closes every connection that broke a time limit.
    pub(crate) fn sweep(&self) {
        let now = millis(self.epoch.elapsed());
        let overdue: Vec<(Arc<Activity>, Closing)> = self
            .lock()
            .by_peer
            .values()
            .filter_map(|a| a.overdue(now, &self.limits).map(|why| (Arc::clone(a), why)))
            .collect();
        for (activity, why) in overdue {
            tracing::debug!(door = self.door, peer = %activity.peer, why = why.reason(), "closing a connection");
            activity.close(why);
        }
    }

    /// Starts the sweeper task once, when a limit needs one. Call from within the runtime.
    pub(crate) fn start_sweeping(self: &Arc<Self>) {
        let Some(every) = self.sweep_interval() else {
            return;
        };
        {
            let mut state = self.lock();
            if state.sweeping {
                return;
            }
            state.sweeping = true;
        }
        let registry = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                // Every connection, the acceptor and its drain hold the registry: once all are
                // gone there is nothing to sweep.
                let Some(registry) = registry.upgrade() else {
                    return;
                };
                registry.sweep();
            }
        });
    }

    /// A quarter of the shortest time limit, between 10 ms and 1 s; `None` without one.
    fn sweep_interval(&self) -> Option<Duration> {
        let shortest = [self.limits.idle_max, self.limits.request_read_max]
            .into_iter()
            .flatten()
            .min()?;
        Some((shortest / 4).clamp(Duration::from_millis(10), Duration::from_secs(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ConnectionLimits {
        ConnectionLimits::new(8)
            .with_idle_max(Duration::from_millis(1000))
            .with_request_read_max(Duration::from_millis(100), Framing::Sequential)
    }

    fn peer(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_read_too_slowly_and_an_idle_connection_are_closed_a_busy_one_is_not() {
        let registry = Registry::new("test", limits());
        let slow = registry.register(peer(1));
        let idle = registry.register(peer(2));
        let busy = registry.register(peer(3));
        let in_flight = busy.start();
        slow.bytes_read();
        tokio::time::advance(Duration::from_millis(150)).await;
        registry.sweep();
        assert_eq!(slow.closing(), Some(Closing::RequestRead));
        assert_eq!(
            idle.closing(),
            None,
            "no byte sent: only the idle limit applies"
        );
        tokio::time::advance(Duration::from_millis(1000)).await;
        registry.sweep();
        assert_eq!(idle.closing(), Some(Closing::Idle));
        assert_eq!(busy.closing(), None, "a request in flight is never idle");
        drop(in_flight);
        tokio::time::advance(Duration::from_millis(1000)).await;
        registry.sweep();
        assert_eq!(busy.closing(), Some(Closing::Idle));
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_that_arrives_in_time_stops_the_read_clock() {
        let registry = Registry::new("test", limits());
        let client = registry.register(peer(1));
        client.bytes_read();
        tokio::time::advance(Duration::from_millis(60)).await;
        let request = client.start();
        tokio::time::advance(Duration::from_millis(500)).await;
        registry.sweep();
        assert_eq!(client.closing(), None);
        drop(request);
        client.bytes_read(); // the next request begins
        tokio::time::advance(Duration::from_millis(60)).await;
        registry.sweep();
        assert_eq!(client.closing(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn multiplexed_protocols_time_only_the_first_request() {
        let limits = ConnectionLimits::new(8)
            .with_request_read_max(Duration::from_millis(100), Framing::Multiplexed);
        let registry = Registry::new("test", limits);
        let silent = registry.register(peer(1));
        let served = registry.register(peer(2));
        drop(served.start());
        served.bytes_read(); // a ping between requests
        silent.bytes_read(); // a connection preface, but no request
        tokio::time::advance(Duration::from_millis(150)).await;
        registry.sweep();
        assert_eq!(silent.closing(), Some(Closing::RequestRead));
        assert_eq!(served.closing(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn room_is_made_by_the_address_holding_the_most_then_the_one_idle_longest() {
        let registry = Registry::new("test", ConnectionLimits::new(8));
        let oldest = registry.register(peer(1));
        tokio::time::advance(Duration::from_millis(10)).await;
        let other_addr = registry.register(SocketAddr::from(([127, 0, 0, 2], 1)));
        let busy = registry.register(peer(2));
        let _request = busy.start();
        tokio::time::advance(Duration::from_millis(10)).await;
        let newer = registry.register(peer(3));
        assert_eq!(registry.open_from(peer(0).ip()), 3);
        assert!(registry.evict_idle(Some(peer(0).ip()), Closing::AddressFull));
        assert_eq!(oldest.closing(), Some(Closing::AddressFull));
        assert_eq!(other_addr.closing(), None);
        assert!(registry.evict_idle(None, Closing::MakeRoom));
        assert_eq!(
            newer.closing(),
            Some(Closing::MakeRoom),
            "the address holding the most connections gives one up first, though another \
             address's connection has been idle longer"
        );
        assert_eq!(other_addr.closing(), None);
        assert!(registry.evict_idle(None, Closing::MakeRoom));
        assert_eq!(other_addr.closing(), Some(Closing::MakeRoom));
        assert!(
            !registry.evict_idle(None, Closing::MakeRoom),
            "only a busy one is left"
        );
        assert_eq!(busy.closing(), None);
        assert!(registry.any_closing());
        registry.deregister(&oldest);
        assert_eq!(registry.open_from(peer(0).ip()), 2);
        let peers = registry.peers();
        assert!(peers.start(peer(2)).is_some());
        assert!(peers.start(peer(1)).is_none(), "deregistered");
    }
}
