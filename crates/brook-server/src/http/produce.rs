//! `POST /v1/topics/{topic}/records`: producing, whole or streamed.
//!
//! - `Content-Type: application/json`: a body `{"records": [...]}` (plus optional
//!   `key_encoding`, `value_encoding`, `header_encoding`). Every record is checked before any
//!   is appended: one bad record fails the request (400, naming it) and changes nothing. The
//!   answer lists each record's partition and offset, in request order.
//! - `Content-Type: application/x-ndjson`: one record per line, as long as the client keeps
//!   the request open (encodings in the query string). The answer is a stream of lines too,
//!   one per non-blank request line and in the same order, each sent as soon as its record is
//!   acknowledged: see [`super::produce_stream`].

use axum::extract::{FromRequest, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::extract::{JsonBody, Query, TopicPath};
use super::records::{self, Encoding, Encodings, PositionOut, RecordIn};
use super::{produce_stream, App};
use crate::metrics;

/// The JSON produce body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProduceIn {
    #[serde(default)]
    key_encoding: Option<Encoding>,
    #[serde(default)]
    value_encoding: Option<Encoding>,
    #[serde(default)]
    header_encoding: Option<Encoding>,
    records: Vec<RecordIn>,
}

/// The JSON produce answer.
#[derive(Debug, Serialize)]
pub(crate) struct ProducedOut {
    /// One per record, in request order.
    offsets: Vec<PositionOut>,
}

/// The media type of a streaming produce (and of its answer).
pub(crate) const NDJSON: &str = "application/x-ndjson";

/// `POST /v1/topics/{topic}/records`
pub(crate) async fn produce(
    State(app): State<App>,
    TopicPath { topic }: TopicPath,
    Query(encodings): Query<Encodings>,
    request: Request,
) -> Result<Response, ApiError> {
    let content_type = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    if essence.eq_ignore_ascii_case(NDJSON) {
        return Ok(produce_stream::start(
            app,
            topic,
            encodings,
            request.into_body(),
        ));
    }
    let headers = request.headers().clone();
    let JsonBody(body) = JsonBody::<ProduceIn>::from_request(request, &app).await?;
    let encodings = Encodings {
        key_encoding: body.key_encoding.unwrap_or(encodings.key_encoding),
        value_encoding: body.value_encoding.unwrap_or(encodings.value_encoding),
        header_encoding: body.header_encoding.unwrap_or(encodings.header_encoding),
    };
    if body.records.is_empty() {
        return Err(records::no_records());
    }
    let mut records = body
        .records
        .into_iter()
        .enumerate()
        .map(|(i, r)| r.into_record(encodings, &format!("records[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    crate::trace::carry(&mut records, &headers);
    let sizes = metrics::record_sizes(&records);
    // The request is answered before its connection sends another on it (HTTP/1.1), or is a
    // stream of its own (HTTP/2): awaited.
    let produced = app.broker.produce_awaited(&topic, records).await?;
    metrics::produced(metrics::HTTP, &topic, &sizes, &produced);
    let offsets = produced.records.into_iter().map(Into::into).collect();
    Ok(Json(ProducedOut { offsets }).into_response())
}
