//! Marks each gRPC and HTTP request in flight on its connection, from the moment it reaches the
//! door until its response has been sent whole (a stream: until it ends), so brook-door knows
//! which connections are busy: a busy connection is never closed as idle or to make room, and
//! a request that reached the door stops its connection's request-read clock.
//!
//! tonic and hyper own the sockets, so the request is found by its client address
//! ([`brook_door::Peers`]); the guard rides in the response body and is dropped with it.

use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::http;
use brook_door::{InFlight, Peers};
use futures::future::BoxFuture;
use http_body::{Body, Frame, SizeHint};

/// Wraps a service so each of its requests is in flight on its connection (see the module doc).
pub(crate) struct InFlightLayer<B> {
    peers: Peers,
    /// Where this door's requests carry their client address.
    peer_of: fn(&http::Request<B>) -> Option<SocketAddr>,
}

impl<B> InFlightLayer<B> {
    pub(crate) fn new(peers: Peers, peer_of: fn(&http::Request<B>) -> Option<SocketAddr>) -> Self {
        Self { peers, peer_of }
    }
}

impl<B> Clone for InFlightLayer<B> {
    fn clone(&self) -> Self {
        Self {
            peers: self.peers.clone(),
            peer_of: self.peer_of,
        }
    }
}

impl<B> std::fmt::Debug for InFlightLayer<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InFlightLayer").finish_non_exhaustive()
    }
}

impl<S, B> tower::Layer<S> for InFlightLayer<B> {
    type Service = InFlightService<S, B>;

    fn layer(&self, inner: S) -> Self::Service {
        InFlightService {
            inner,
            peers: self.peers.clone(),
            peer_of: self.peer_of,
        }
    }
}

/// The service [`InFlightLayer`] makes.
pub(crate) struct InFlightService<S, B> {
    inner: S,
    peers: Peers,
    peer_of: fn(&http::Request<B>) -> Option<SocketAddr>,
}

impl<S: Clone, B> Clone for InFlightService<S, B> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            peers: self.peers.clone(),
            peer_of: self.peer_of,
        }
    }
}

impl<S, B> std::fmt::Debug for InFlightService<S, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InFlightService").finish_non_exhaustive()
    }
}

impl<S, B, R> tower::Service<http::Request<B>> for InFlightService<S, B>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: 'static,
{
    type Response = http::Response<Guarded<R>>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let guard = (self.peer_of)(&request).and_then(|peer| self.peers.start(peer));
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            Ok(response.map(|body| Guarded {
                inner: body,
                _in_flight: guard,
            }))
        })
    }
}

/// A response body that keeps its request in flight until it is done or dropped.
#[derive(Debug)]
pub(crate) struct Guarded<B> {
    inner: B,
    _in_flight: Option<InFlight>,
}

impl<B: Body + Unpin> Body for Guarded<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
