//! `POST /v1/topics/{topic}/call` and `GET /v1/topics/{topic}/call/{correlation_id}`:
//! request-reply over the log ([`brook_broker::reqreply`]) as one plain HTTP request-response.
//!
//! The request body is the request record's value, as is, and must be declared JSON (the
//! door's guard against cross-site writes, `super::guard`); the answer's body is the reply's
//! value, as is. The caller's id is bound to its principal in the log
//! ([`brook_broker::auth::caller_bound_id`]), so only the caller can fetch its reply. The request's `Content-Type` travels as the record header `content-type`, and a
//! reply's `content-type` header becomes the answer's `Content-Type` (else
//! `application/octet-stream`). An `Idempotency-Key` header is the call's correlation id (text
//! form: a UUID, `0x` hex, or the text's UTF-8): calling again with it appends no second request
//! and answers the same reply. Every answer carries the id in `Brook-Correlation-Id`.
//!
//! Failures are the door's JSON error plus `correlation_id`: 504 `call_timeout` when no reply
//! came within `timeout_ms` (fetch it later with the GET, or call again with the key), 502
//! `handler_failed` with the handler's message in `handler_error`, 404 `unknown_call` from the
//! GET for an id the broker does not know (or has forgotten), and otherwise as every route.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use brook_broker::reqreply::{Call, CorrelationId, DEFAULT_CALL_TIMEOUT};
use brook_broker::{BrokerError, Reply};
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::extract::{Query, TopicPath};
use super::App;

/// The answer header naming the call's correlation id (text form).
const CORRELATION_ID: HeaderName = HeaderName::from_static("brook-correlation-id");
/// The request header carrying the caller's own correlation id.
const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
/// The record header a body's media type travels in, both ways.
const CONTENT_TYPE_HEADER: &str = "content-type";

/// The query string of a call.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CallParams {
    /// How long to wait for the reply (default 30 000; at most the broker's
    /// `reqreply.call_timeout_ms_max`).
    #[serde(default)]
    timeout_ms: Option<u64>,
    /// The request's key, as text (also the reply's key).
    #[serde(default)]
    key: Option<String>,
    /// Where the request goes; default by key.
    #[serde(default)]
    partition: Option<u32>,
}

/// The query string of a reply fetch.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReplyParams {
    /// How long to wait for a reply not in yet (default 0: answer at once).
    #[serde(default)]
    wait_ms: u64,
}

#[derive(Debug, Deserialize)]
pub(crate) struct CallPath {
    topic: String,
    correlation_id: String,
}

/// A failed call: the door's error, plus the id to come back with.
#[derive(Debug, Serialize)]
struct CallErrorBody<'a> {
    error_code: &'a str,
    message: &'a str,
    correlation_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    handler_error: Option<&'a str>,
}

/// `POST /v1/topics/{topic}/call`
pub(crate) async fn call(
    State(app): State<App>,
    TopicPath { topic }: TopicPath,
    Query(params): Query<CallParams>,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let caller = crate::auth::principal_of(&extensions);
    let prepared = prepare(&headers, params, body);
    let (id, call) = match prepared {
        Ok(prepared) => prepared,
        Err(e) => return e.into_response(),
    };
    let outcome = tokio::select! {
        outcome = app.broker.call_as(&caller, &topic, call) => outcome,
        () = app.draining.wait() => Err(BrokerError::Closed),
    };
    answer(outcome, &id)
}

/// `GET /v1/topics/{topic}/call/{correlation_id}`
pub(crate) async fn reply(
    State(app): State<App>,
    Path(CallPath {
        topic,
        correlation_id,
    }): Path<CallPath>,
    Query(params): Query<ReplyParams>,
    extensions: axum::http::Extensions,
) -> Response {
    let caller = crate::auth::principal_of(&extensions);
    let id = match CorrelationId::parse(&correlation_id) {
        Ok(id) => id,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let wait = Duration::from_millis(params.wait_ms);
    let outcome = tokio::select! {
        outcome = app.broker.reply_as(&caller, &topic, &id, wait) => outcome,
        () = app.draining.wait() => Err(BrokerError::Closed),
    };
    answer(outcome, &id)
}

/// The call the request describes, with its correlation id (the caller's, or a new one).
fn prepare(
    headers: &HeaderMap,
    params: CallParams,
    body: Result<Bytes, BytesRejection>,
) -> Result<(CorrelationId, Call), ApiError> {
    let body = body.map_err(|rejection| {
        let code = if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            "too_large"
        } else {
            "bad_request"
        };
        ApiError::new(rejection.status(), code, rejection.body_text())
    })?;
    let id = match headers.get(IDEMPOTENCY_KEY) {
        Some(key) => {
            let text = key
                .to_str()
                .map_err(|_| ApiError::bad_request("Idempotency-Key must be visible ASCII"))?;
            CorrelationId::parse(text)?
        }
        None => CorrelationId::random(),
    };
    let record_headers = headers
        .get(CONTENT_TYPE)
        .map(|v| {
            (
                CONTENT_TYPE_HEADER.to_owned(),
                Bytes::copy_from_slice(v.as_bytes()),
            )
        })
        .into_iter()
        .collect();
    let call = Call {
        key: params.key.map(Bytes::from),
        value: Some(body),
        headers: record_headers,
        partition: params.partition,
        correlation_id: Some(id.clone()),
        timeout: params
            .timeout_ms
            .map_or(DEFAULT_CALL_TIMEOUT, Duration::from_millis),
    };
    Ok((id, call))
}

/// The HTTP answer to a call's outcome.
fn answer(outcome: Result<Reply, BrokerError>, id: &CorrelationId) -> Response {
    let id_header = HeaderValue::from_str(&id.to_text()).ok();
    let mut response = match outcome {
        Ok(reply) => reply_response(reply),
        Err(err) => error_response(&err, id),
    };
    if let Some(value) = id_header {
        response.headers_mut().insert(CORRELATION_ID, value);
    }
    response
}

fn reply_response(reply: Reply) -> Response {
    let content_type = reply
        .headers
        .iter()
        .rev()
        .find(|(k, _)| k.eq_ignore_ascii_case(CONTENT_TYPE_HEADER))
        .and_then(|(_, v)| HeaderValue::from_bytes(v).ok())
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    (
        [(CONTENT_TYPE, content_type)],
        reply.value.unwrap_or_default(),
    )
        .into_response()
}

fn error_response(err: &BrokerError, id: &CorrelationId) -> Response {
    let (status, code, handler_error) = match err {
        BrokerError::CallTimeout { .. } => (StatusCode::GATEWAY_TIMEOUT, "call_timeout", None),
        BrokerError::HandlerFailed { message, .. } => (
            StatusCode::BAD_GATEWAY,
            "handler_failed",
            Some(message.as_str()),
        ),
        BrokerError::UnknownCall { .. } => (StatusCode::NOT_FOUND, "unknown_call", None),
        other => {
            let api = ApiError::from(other);
            (api.status, api.code, None)
        }
    };
    let message = ApiError::from(err).message;
    let body = CallErrorBody {
        error_code: code,
        message: &message,
        correlation_id: id.to_text(),
        handler_error,
    };
    (status, Json(body)).into_response()
}
