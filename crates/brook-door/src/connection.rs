//! The socket every door reads and writes: a TCP stream that holds its place under the door's
//! connection cap until it is dropped, and fails a write that makes no progress for too long.
//!
//! Dropping a [`Connection`] (the door is done with the client, or the client left) gives its
//! place back, and the accept loop takes the next client from the backlog. A door therefore
//! never counts its connections itself.
//!
//! The write limit ([`crate::ConnectionLimits::write_stall_max`]) bounds a client that stops
//! reading: if the connection takes no bytes at all for that long while the door writes, the
//! write fails with `TimedOut` and the door drops the connection (and whatever stream it was
//! feeding). The idle and request-read limits, and closing a connection to make room, are
//! [`crate::tracker`]'s: it marks the connection, wakes its reader, and the next read or write
//! here fails (`TimedOut` for a limit, `ConnectionAborted` to make room), so the door drops it.
//! Bytes read are reported to the tracker (they may begin a request); the door reports the
//! requests themselves ([`Connection::requests`]). This type is where every per-connection
//! limit is applied, so each one applies to every door alike.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Sleep;

use crate::tracker::{Activity, Closing, Registry, Requests};

/// One client connection of a door.
#[derive(Debug)]
pub struct Connection {
    door: &'static str,
    stream: TcpStream,
    peer: SocketAddr,
    write_stall_max: Option<Duration>,
    /// Armed while a write is pending; fires after `write_stall_max` without progress.
    stalled: Option<Pin<Box<Sleep>>>,
    /// What the door's tracker knows of this connection; forgotten on drop.
    activity: Arc<Activity>,
    registry: Arc<Registry>,
    /// The place under the cap, given back on drop.
    _place: OwnedSemaphorePermit,
}

impl Connection {
    pub(crate) fn new(
        door: &'static str,
        stream: TcpStream,
        peer: SocketAddr,
        place: OwnedSemaphorePermit,
        write_stall_max: Option<Duration>,
        registry: &Arc<Registry>,
    ) -> Self {
        Self {
            door,
            stream,
            peer,
            write_stall_max,
            stalled: None,
            activity: registry.register(peer),
            registry: Arc::clone(registry),
            _place: place,
        }
    }

    /// The client's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// Where the door marks this connection's requests: one in flight keeps the connection
    /// busy (never idle, never closed to make room) and stops its request-read clock.
    pub fn requests(&self) -> Requests {
        Requests::new(Arc::clone(&self.activity))
    }

    /// The error of a read or write on a connection the tracker closed.
    fn closed(&self, why: Closing) -> io::Error {
        let kind = match why {
            Closing::Idle | Closing::RequestRead => io::ErrorKind::TimedOut,
            _ => io::ErrorKind::ConnectionAborted,
        };
        io::Error::new(
            kind,
            format!(
                "closing the {} connection of {}: {}",
                self.door,
                self.peer,
                why.reason()
            ),
        )
    }

    /// The door's end of the connection.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.stream.local_addr()
    }

    /// Passes a write's outcome through, failing it once the socket has taken nothing for
    /// `write_stall_max`.
    fn track<T>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        let Some(limit) = self.write_stall_max else {
            return poll;
        };
        match poll {
            Poll::Ready(result) => {
                // Progress (or a failure that ends the connection anyway): disarm.
                self.stalled = None;
                Poll::Ready(result)
            }
            Poll::Pending => {
                let timer = self
                    .stalled
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                ready!(timer.as_mut().poll(cx));
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "the {} client at {} took no bytes for {} ms (write_stall_ms_max): \
                         dropping it",
                        self.door,
                        self.peer,
                        limit.as_millis()
                    ),
                )))
            }
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.registry.deregister(&self.activity);
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        // Registered before the check, so a close between the two still wakes this task.
        self.activity.register_reader(cx.waker());
        if let Some(why) = self.activity.closing() {
            return Poll::Ready(Err(self.closed(why)));
        }
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(poll, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.bytes_read();
        }
        poll
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Some(why) = self.activity.closing() {
            return Poll::Ready(Err(self.closed(why)));
        }
        let poll = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.track(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if let Some(why) = self.activity.closing() {
            return Poll::Ready(Err(self.closed(why)));
        }
        let poll = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.track(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // A TCP flush does not wait for the peer; only writes say whether it takes bytes.
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
