//! How axum takes the HTTP door's connections: from brook-door's capped accept loop, each
//! counted as open while it lives, with the client's address for the handlers that name the
//! client.
//!
//! The cap (`connections_max`) and the write stall limit (`write_stall_ms_max`, what bounds a
//! client that stops reading a stream) are brook-door's, set from [`super::HttpConfig`] by
//! [`super::Http`]'s `limits`. A stream is pulled: the server reads the next records from the
//! log only when the connection can take bytes, so a stalled client holds its socket buffers
//! and one read's worth of records, no more, until the stall limit drops it.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::connection::{Connections, CountedConnection};
use crate::metrics;

/// brook-door's accept loop (handshaken when the door serves TLS), as axum's listener.
#[derive(Debug)]
pub(crate) struct Listener(pub(crate) Connections);

impl axum::serve::Listener for Listener {
    type Io = CountedConnection;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let connection = self.0.next(metrics::HTTP).await;
        let peer = connection.peer_addr();
        (connection, peer)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.0.local_addr())
    }
}

/// The client's address, for handlers that name the client (group members' `client_id`), and
/// the subject of its certificate under mutual TLS (the principal when a request carries no
/// `authorization`; crate::auth).
#[derive(Debug, Clone)]
pub(crate) struct Peer(pub(crate) SocketAddr, pub(crate) Option<Arc<str>>);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, Listener>> for Peer {
    fn connect_info(stream: axum::serve::IncomingStream<'_, Listener>) -> Self {
        Self(*stream.remote_addr(), stream.io().tls_subject())
    }
}
