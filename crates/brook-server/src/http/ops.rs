//! Operations: liveness (`/healthz`), readiness (`/readyz`), metrics (`/metrics`) and the
//! door's contract (`/v1/openapi.json`).

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::App;
use crate::metrics;

/// The OpenAPI 3.1 document of this door; a test keeps it and the router in step.
pub const OPENAPI: &str = include_str!("openapi.json");

/// `GET /healthz`: 200 while the process serves requests at all.
pub(crate) async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /readyz`: 200 while the door takes new work; 503 once it is shutting down, so a load
/// balancer sends new clients elsewhere while streams and requests in flight finish.
pub(crate) async fn readyz(State(app): State<App>) -> Response {
    if app.draining.is_triggered() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "shutting_down" })),
        )
            .into_response()
    } else {
        Json(json!({ "status": "ready" })).into_response()
    }
}

/// `GET /metrics`: the OpenMetrics text of every door.
pub(crate) async fn metrics(State(app): State<App>) -> Response {
    let text = app.broker.metrics();
    ([(CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response()
}

/// `GET /v1/openapi.json`
pub(crate) async fn openapi() -> Response {
    ([(CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}
