//! Binding the TCP socket a door accepts on.
//!
//! Binding is separate from serving so a caller learns the real address before any request
//! arrives (bind `127.0.0.1:0`, read [`Listener::local_addr`]), and so a process with several
//! doors binds them all before it serves any: a taken port then fails the start with nothing
//! half-started. Errors name the door and the address, so "address in use" says which setting
//! to change.

use std::net::SocketAddr;

use tokio::net::TcpListener;

use crate::error::DoorError;

/// A bound TCP listener, with the name of the door it is for and its real address.
#[derive(Debug)]
pub struct Listener {
    door: &'static str,
    inner: TcpListener,
    local_addr: SocketAddr,
}

impl Listener {
    /// Binds `addr` for `door` (a name such as `"gRPC"`, used in errors and logs). Port 0 picks
    /// a free port; [`Listener::local_addr`] says which.
    pub async fn bind(door: &'static str, addr: SocketAddr) -> Result<Self, DoorError> {
        let inner = TcpListener::bind(addr)
            .await
            .map_err(|source| DoorError::Bind { door, addr, source })?;
        Self::from_tokio(door, inner)
    }

    /// A listener the caller bound itself, for `door`.
    pub fn from_tokio(door: &'static str, inner: TcpListener) -> Result<Self, DoorError> {
        let local_addr = inner
            .local_addr()
            .map_err(|source| DoorError::LocalAddr { door, source })?;
        Ok(Self {
            door,
            inner,
            local_addr,
        })
    }

    /// The door this listener is for.
    pub fn door(&self) -> &'static str {
        self.door
    }

    /// The address bound (the real port when the request was port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub(crate) fn into_inner(self) -> TcpListener {
        self.inner
    }
}
