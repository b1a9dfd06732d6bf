//! Requests over [`crate::GrpcConfig::request_bytes_max`] answered with `RESOURCE_EXHAUSTED`.
//!
//! tonic refuses a message over its decoding limit from the length prefix, before allocating
//! anything for it, which is what we want; but it answers `OUT_OF_RANGE`, which in brook's
//! contract means "offset outside the log". This wrapper turns exactly that refusal into
//! `RESOURCE_EXHAUSTED` naming the setting. Streamed requests meet the same refusal inside the
//! handler and go through [`request_status`] there.

use std::task::{Context, Poll};

use tonic::codegen::{http, BoxFuture, Service};
use tonic::server::NamedService;
use tonic::{Code, Status};

/// The start of tonic's message for a request over the decoding limit (a test pins it).
const TONIC_TOO_LARGE: &str = "Error, decoded message length too large";

/// `status`, with tonic's "message too large" refusal made `RESOURCE_EXHAUSTED`.
pub(crate) fn request_status(status: Status, limit: usize) -> Status {
    if status.code() == Code::OutOfRange && status.message().starts_with(TONIC_TOO_LARGE) {
        Status::resource_exhausted(format!(
            "request too large ({}); the server accepts messages of at most {limit} bytes \
             (request_bytes_max): send fewer records per request",
            status.message()
        ))
    } else {
        status
    }
}

/// Wraps a tonic service, rewriting its "request too large" answers.
#[derive(Debug, Clone)]
pub(crate) struct RequestLimit<S> {
    inner: S,
    limit: usize,
}

impl<S> RequestLimit<S> {
    pub(crate) fn new(inner: S, limit: usize) -> Self {
        Self { inner, limit }
    }
}

impl<S: NamedService> NamedService for RequestLimit<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> Service<http::Request<B>> for RequestLimit<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let response = self.inner.call(request);
        let limit = self.limit;
        Box::pin(async move {
            let response = response.await?;
            // A refusal before the handler runs is a trailers-only answer: the status is in
            // the headers. Successful answers carry theirs in trailers and pass untouched.
            Ok(match Status::from_header_map(response.headers()) {
                Some(status) if status.code() == Code::OutOfRange => {
                    let rewritten = request_status(status, limit);
                    if rewritten.code() == Code::OutOfRange {
                        response
                    } else {
                        rewritten.into_http()
                    }
                }
                _ => response,
            })
        })
    }
}
