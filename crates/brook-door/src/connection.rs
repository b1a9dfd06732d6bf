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
//! feeding). Reading is not limited here: an idle keep-alive connection or a long poll waits as
//! long as it likes. This type is where every per-connection time limit goes, so each one
//! applies to every door alike.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Sleep;

/// One client connection of a door.
#[derive(Debug)]
pub struct Connection {
    door: &'static str,
    stream: TcpStream,
    peer: SocketAddr,
    write_stall_max: Option<Duration>,
    /// Armed while a write is pending; fires after `write_stall_max` without progress.
    stalled: Option<Pin<Box<Sleep>>>,
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
    ) -> Self {
        Self {
            door,
            stream,
            peer,
            write_stall_max,
            stalled: None,
            _place: place,
        }
    }

    /// The client's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
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

impl AsyncRead for Connection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.track(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
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
