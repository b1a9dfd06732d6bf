//! Binding the TCP sockets the doors accept on.
//!
//! Binding is separate from serving so a caller learns the real address before any request
//! arrives: bind `127.0.0.1:0`, read [`tokio::net::TcpListener::local_addr`], hand the listener
//! to the door. Errors name the door and the address, so "address in use" says which flag to
//! change.

use std::net::SocketAddr;

use tokio::net::TcpListener;

use crate::error::ServerError;

/// Binds `addr` for `door` (a name such as `"gRPC"`, used in errors).
pub async fn bind(door: &'static str, addr: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { door, addr, source })
}

/// The address `listener` is bound to (with the real port when it was bound to port 0).
pub fn local_addr(door: &'static str, listener: &TcpListener) -> Result<SocketAddr, ServerError> {
    listener
        .local_addr()
        .map_err(|source| ServerError::LocalAddr { door, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn port_zero_reports_the_real_port_and_a_taken_port_names_door_and_address() {
        let any_port: SocketAddr = "127.0.0.1:0".parse().expect("address");
        let listener = bind("gRPC", any_port).await.expect("bind port 0");
        let addr = local_addr("gRPC", &listener).expect("local address");
        assert_ne!(addr.port(), 0);

        let err = bind("gRPC", addr).await.expect_err("port already taken");
        let text = err.to_string();
        assert!(
            text.contains("gRPC") && text.contains(&addr.to_string()),
            "{text}"
        );
    }
}
