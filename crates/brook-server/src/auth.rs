//! Authentication on the gRPC and HTTP doors (docs/security.md): with `auth` on, every request
//! carries `authorization: Basic base64(user:password)` (a broker user, checked against its
//! salted SCRAM credential) or `authorization: Bearer TOKEN` (a `brook token`), or it is
//! refused before it reaches a handler: gRPC `UNAUTHENTICATED`, HTTP 401 with
//! `WWW-Authenticate`. The check and its failures (one answer for an unknown user and a wrong
//! password, logged with the peer address, slowed after repeated failures) are brook-door's
//! [`Authenticator`], shared with the Kafka door. The principal is put in the request's
//! extensions as an [`Identity`].
//!
//! Health checks stay open (`/healthz`, `/readyz`, gRPC `grpc.health.v1`), so an orchestrator
//! needs no credentials. With `auth` off this layer only marks every request `User:ANONYMOUS`.

use std::net::SocketAddr;
use std::task::{Context, Poll};

use axum::http;
use brook_broker::auth::Identity;
use brook_door::auth::Refusal;
use brook_door::Authenticator;
use futures::future::BoxFuture;

/// How a door reads what the layer needs from a request and says no.
pub(crate) struct Policy<B, R> {
    /// The door's name in the authentication log.
    pub door: &'static str,
    /// The client's address.
    pub peer_of: fn(&http::Request<B>) -> Option<SocketAddr>,
    /// The subject of the client's certificate, under mutual TLS.
    pub tls_subject_of: fn(&http::Request<B>) -> Option<std::sync::Arc<str>>,
    /// Paths served without credentials.
    pub open: fn(&str) -> bool,
    /// The door's refusal.
    pub refuse: fn(Refusal) -> http::Response<R>,
}

impl<B, R> Clone for Policy<B, R> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<B, R> Copy for Policy<B, R> {}

/// The layer: authenticates each request with `auth` under `policy`.
pub(crate) struct AuthLayer<B, R> {
    auth: Authenticator,
    policy: Policy<B, R>,
}

impl<B, R> AuthLayer<B, R> {
    pub(crate) fn new(auth: Authenticator, policy: Policy<B, R>) -> Self {
        Self { auth, policy }
    }
}

impl<B, R> Clone for AuthLayer<B, R> {
    fn clone(&self) -> Self {
        Self {
            auth: self.auth.clone(),
            policy: self.policy,
        }
    }
}

impl<S, B, R> tower::Layer<S> for AuthLayer<B, R> {
    type Service = AuthService<S, B, R>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            auth: self.auth.clone(),
            policy: self.policy,
        }
    }
}

/// The service [`AuthLayer`] wraps around a door's routes.
pub(crate) struct AuthService<S, B, R> {
    inner: S,
    auth: Authenticator,
    policy: Policy<B, R>,
}

impl<S: Clone, B, R> Clone for AuthService<S, B, R> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            auth: self.auth.clone(),
            policy: self.policy,
        }
    }
}

impl<S, B, R> tower::Service<http::Request<B>> for AuthService<S, B, R>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    R: 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        // The ready service handles this request; a fresh clone waits for the next one.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let (auth, policy) = (self.auth.clone(), self.policy);
        Box::pin(async move {
            let peer =
                (policy.peer_of)(&request).unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
            if auth.enabled() && !(policy.open)(request.uri().path()) {
                let header = request
                    .headers()
                    .get(http::header::AUTHORIZATION)
                    .map(|v| v.to_str().unwrap_or("?"));
                let subject = (policy.tls_subject_of)(&request);
                match auth
                    .identify(policy.door, peer, header, subject.as_deref())
                    .await
                {
                    Ok(identity) => {
                        request.extensions_mut().insert(identity);
                    }
                    Err(refusal) => return Ok((policy.refuse)(refusal)),
                }
            } else {
                request
                    .extensions_mut()
                    .insert(Identity::anonymous(peer.ip()));
            }
            inner.call(request).await
        })
    }
}

/// The principal the auth layer put on a request (`User:ANONYMOUS` if none did).
pub(crate) fn principal_of(extensions: &http::Extensions) -> brook_broker::auth::Principal {
    extensions
        .get::<Identity>()
        .map_or_else(brook_broker::auth::Principal::anonymous, |identity| {
            identity.principal.clone()
        })
}
