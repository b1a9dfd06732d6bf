//! Tracing as the gRPC and HTTP doors read it from HTTP headers: the request span of
//! [`brook_door::trace`] (its client id from `brook-client-id`, else `user-agent`), and the
//! request's `traceparent`, which a produce carries into its records.

use axum::http::HeaderMap;
use brook_broker::ProduceRecord;
use brook_door::trace::{self, TRACEPARENT};
use tracing::Span;

use crate::metrics::Door;

/// The header a client may name itself with (gRPC metadata or HTTP).
pub const CLIENT_ID: &str = "brook-client-id";

/// The span of one request on `door` for `api`, from the request's `headers`.
pub(crate) fn request_span(door: Door, api: &str, headers: &HeaderMap) -> Span {
    let client_id = headers
        .get(CLIENT_ID)
        .or_else(|| headers.get(axum::http::header::USER_AGENT))
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    trace::request_span(door.label(), api, client_id, traceparent(headers))
}

/// The request's `traceparent` header, as sent.
pub(crate) fn traceparent(headers: &HeaderMap) -> Option<&[u8]> {
    headers.get(TRACEPARENT).map(|v| v.as_bytes())
}

/// Stores the request's trace context on each record that has none.
pub(crate) fn carry(records: &mut [ProduceRecord], headers: &HeaderMap) {
    trace::carry(records, traceparent(headers), |r| &mut r.headers);
}
