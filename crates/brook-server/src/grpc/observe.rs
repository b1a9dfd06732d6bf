//! Every gRPC call of `brook.v1.Brook` counted and traced: one `brook_requests_total` per call
//! by method, its failure by status name, its latency until the response starts (for a
//! stream, until the stream is accepted), and a tracing span around the handler carrying the
//! door, the method, the client id and, once the handler knows it, the topic.
//!
//! A failure seen here is one the handler returned before answering (a trailers-only
//! response, which is how tonic answers an error): a stream that fails later ends with its
//! status in the trailers and is counted as a request that started fine.

use std::task::{Context, Poll};
use std::time::Instant;

use tonic::codegen::{http, BoxFuture, Service};
use tonic::server::NamedService;
use tonic::{Code, Status};
use tracing::Instrument;

use crate::metrics;
use crate::trace;

/// Wraps the Brook service, observing each call.
#[derive(Debug, Clone)]
pub(crate) struct Observe<S> {
    inner: S,
}

impl<S> Observe<S> {
    pub(crate) fn new(inner: S) -> Self {
        Self { inner }
    }
}

impl<S: NamedService> NamedService for Observe<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> Service<http::Request<B>> for Observe<S>
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
        let api = method(request.uri().path()).to_owned();
        let span = trace::request_span(metrics::GRPC, &api, request.headers());
        let started = Instant::now();
        let response = {
            let _entered = span.enter();
            self.inner.call(request)
        };
        Box::pin(
            async move {
                let response = response.await?;
                let error = Status::from_header_map(response.headers())
                    .map(|status| status.code())
                    .filter(|code| *code != Code::Ok)
                    .map(|code| metrics::code_label(&format!("{code:?}")));
                if let Some(code) = &error {
                    tracing::debug!(code, "request failed");
                }
                metrics::request(metrics::GRPC, &api, error.as_deref(), started.elapsed());
                Ok(response)
            }
            .instrument(span),
        )
    }
}

/// The method of a gRPC path (`/brook.v1.Brook/Produce` is `Produce`).
fn method(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_method_is_the_last_path_segment() {
        assert_eq!(method("/brook.v1.Brook/Produce"), "Produce");
    }
}
