//! The HTTP door's connections: a cap on how many are served at once, a gauge of how many are
//! open, and a limit on how long a connection may refuse to take what the server writes.
//!
//! The write limit is what bounds a client that stops reading a stream. A stream is pulled:
//! the server reads the next records from the log only when the connection can take bytes,
//! so a stalled client holds its socket buffers and one read's worth of records, no more.
//! If the connection takes nothing at all for [`HttpConfig::write_stall_ms_max`], the write
//! fails, hyper closes the connection, and the stream (and any group membership behind it) is
//! dropped. Reading is not limited: an idle keep-alive connection or a long poll waits
//! as long as it likes.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;

use super::config::HttpConfig;
use crate::metrics::{self, OpenGuard};

/// A listener handing out [`Connection`]s, at most `connections_max` at a time.
#[derive(Debug)]
pub(crate) struct Listener {
    inner: TcpListener,
    slots: Arc<Semaphore>,
    write_stall_max: Duration,
}

impl Listener {
    pub(crate) fn new(inner: TcpListener, config: &HttpConfig) -> Self {
        Self {
            inner,
            slots: Arc::new(Semaphore::new(config.connections_max.max(1))),
            write_stall_max: config.write_stall_max(),
        }
    }
}

impl axum::serve::Listener for Listener {
    type Io = Connection;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        // Wait for a free slot before accepting, so excess clients queue in the kernel's
        // backlog instead of holding memory here.
        let slot = match Arc::clone(&self.slots).acquire_owned().await {
            Ok(slot) => slot,
            Err(_) => unreachable!("the semaphore is never closed"),
        };
        loop {
            match self.inner.accept().await {
                Ok((stream, peer)) => {
                    if let Err(e) = stream.set_nodelay(true) {
                        tracing::debug!(%peer, error = %e, "cannot set TCP_NODELAY");
                    }
                    let connection = Connection {
                        stream,
                        stall_limit: self.write_stall_max,
                        stalled: None,
                        _slot: slot,
                        _open: metrics::connection_opened(metrics::HTTP),
                    };
                    return (connection, peer);
                }
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "HTTP door cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// One client connection: a TCP stream whose writes fail after a stall.
#[derive(Debug)]
pub(crate) struct Connection {
    stream: TcpStream,
    stall_limit: Duration,
    /// Armed while a write is pending; fires after `stall_limit` without progress.
    stalled: Option<Pin<Box<Sleep>>>,
    _slot: OwnedSemaphorePermit,
    _open: OpenGuard,
}

impl Connection {
    /// Passes a write's outcome through, tracking how long the socket has taken nothing.
    fn track<T>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match poll {
            Poll::Ready(result) => {
                // Progress (or a failure that ends the connection anyway): disarm.
                self.stalled = None;
                Poll::Ready(result)
            }
            Poll::Pending => {
                let limit = self.stall_limit;
                let timer = self
                    .stalled
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                ready!(timer.as_mut().poll(cx));
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "the client took no bytes for {} ms (write_stall_ms_max): dropping it",
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

/// The client's address, for handlers that name the client (group members' `client_id`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer(pub(crate) SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, Listener>> for Peer {
    fn connect_info(stream: axum::serve::IncomingStream<'_, Listener>) -> Self {
        Self(*stream.remote_addr())
    }
}
