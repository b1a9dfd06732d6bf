//! A door's connection as the gRPC and HTTP doors serve it: brook-door's [`Connection`] (which
//! holds its place under the door's cap and applies its time limits), counted in
//! `brook_open_connections{door}` while it is open.
//!
//! tonic and hyper own the connection once they have it and drop it when the client is gone,
//! which gives the place back and lowers the gauge. For tonic it also says who the client is
//! (`Request::remote_addr`), as tonic's own TCP listener would.
//!
//! `Connections` is where both doors take their connections from: brook-door's accept loop
//! directly, or, with TLS set, brook-door's [`Incoming`], which runs each handshake on its own
//! task (a plaintext client on a TLS port fails its handshake there and is never served).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use brook_door::tls::{Incoming, Stream as Connection, Tls};
use brook_door::Acceptor;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::server::{Connected, TcpConnectInfo};

/// What tonic puts on each gRPC request about its connection: the addresses, and the subject
/// of the client's certificate under mutual TLS (the principal when the request carries no
/// `authorization`; crate::auth).
#[derive(Debug, Clone)]
pub struct ConnectInfo {
    pub tcp: TcpConnectInfo,
    pub tls_subject: Option<Arc<str>>,
}

/// The client's address of a gRPC request (tonic's `Request::remote_addr` looks for its own
/// connect info types, which the doors' connections do not use).
pub(crate) fn remote_addr(extensions: &axum::http::Extensions) -> Option<SocketAddr> {
    extensions
        .get::<ConnectInfo>()
        .and_then(|info| info.tcp.remote_addr())
}

use crate::metrics::{self, OpenGuard};

/// A connection counted as open until it is dropped.
#[derive(Debug)]
pub struct CountedConnection {
    inner: Connection,
    _open: OpenGuard,
}

impl CountedConnection {
    /// Counts `inner` as an open connection of `door`.
    pub fn new(inner: Connection, door: metrics::Door) -> Self {
        Self {
            inner,
            _open: metrics::connection_opened(door),
        }
    }

    /// The client's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.inner.peer_addr()
    }

    /// The subject of the client's certificate (mutual TLS), RFC 4514.
    pub(crate) fn tls_subject(&self) -> Option<Arc<str>> {
        self.inner.client_subject().map(Arc::from)
    }
}

/// A door's connections, handshaken when the door serves TLS.
#[derive(Debug)]
pub(crate) enum Connections {
    Plain(Box<Acceptor>),
    Tls {
        incoming: Incoming,
        local_addr: SocketAddr,
    },
}

impl Connections {
    /// Connections from `acceptor`, over `tls` when it is set.
    pub(crate) fn new(acceptor: Acceptor, tls: Option<Tls>) -> Self {
        match tls {
            None => Connections::Plain(Box::new(acceptor)),
            Some(tls) => Connections::Tls {
                local_addr: acceptor.local_addr(),
                incoming: Incoming::new(acceptor, Some(tls)),
            },
        }
    }

    /// The next connection ready to serve, counted as open for `door`.
    pub(crate) async fn next(&mut self, door: metrics::Door) -> CountedConnection {
        let stream = match self {
            Connections::Plain(acceptor) => Connection::Plain(acceptor.accept().await),
            Connections::Tls { incoming, .. } => incoming.next().await,
        };
        CountedConnection::new(stream, door)
    }

    /// The address the door listens on.
    pub(crate) fn local_addr(&self) -> SocketAddr {
        match self {
            Connections::Plain(acceptor) => acceptor.local_addr(),
            Connections::Tls { local_addr, .. } => *local_addr,
        }
    }
}

impl Connected for CountedConnection {
    type ConnectInfo = ConnectInfo;

    fn connect_info(&self) -> ConnectInfo {
        ConnectInfo {
            tcp: TcpConnectInfo {
                local_addr: self.inner.local_addr().ok(),
                remote_addr: Some(self.inner.peer_addr()),
            },
            tls_subject: self.tls_subject(),
        }
    }
}

impl AsyncRead for CountedConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for CountedConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
