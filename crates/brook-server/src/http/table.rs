//! `GET /v1/topics/{topic}/keys/{key}`: the table view of a compacted topic at the HTTP door
//! ([`brook_broker::Broker::get`]).
//!
//! The key is the path segment, percent-decoded; `key_encoding=base64` takes it as base64 (for
//! keys that are not UTF-8). The answer is the key's latest record, shown as a fetch shows
//! records (`value_encoding`, `header_encoding` as there), or 404 `key_not_found` when the key
//! was never written or its latest record is a tombstone.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::error::ApiError;
use super::extract::Query;
use super::records::{decode_path, show_record, Encodings};
use super::App;

#[derive(Debug, Deserialize)]
pub(crate) struct KeyPath {
    topic: String,
    key: String,
}

/// `GET /v1/topics/{topic}/keys/{key}`
pub(crate) async fn get_key(
    State(app): State<App>,
    Path(KeyPath { topic, key }): Path<KeyPath>,
    Query(encodings): Query<Encodings>,
) -> Result<Response, ApiError> {
    brook_broker::validate_topic_name(&topic)?;
    let key = decode_path(key, encodings.key_encoding).map_err(|reason| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_key",
            format!("the key {reason}"),
        )
    })?;
    match app.broker.get(&topic, &key).await? {
        Some(record) => Ok(Json(show_record(&record, encodings)).into_response()),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "key_not_found",
            format!(
                "topic {topic:?} has no value for this key: it was never written, or its latest \
                 record is a tombstone"
            ),
        )),
    }
}
