//! The web console at `/`: a page to look at the broker rather than read it, served by the HTTP
//! door itself. Plain HTML, CSS and JavaScript, built into the binary (`include_str!`): no
//! build step, no Node at run time, nothing fetched from elsewhere.
//!
//! | route | what |
//! |-------|------|
//! | `GET /` | the page ([`assets/index.html`](assets/index.html)) |
//! | `GET /console/app.js`, `GET /console/style.css` | its script and style |
//! | `GET /console/api/settings` | the broker's settings and this door's, as JSON |
//! | `POST /console/api/groups/{group}/reset` | move a group's committed offsets ([`brook_broker::Backend::seek_group`]) |
//!
//! Everything else the page shows comes from the door's own API (`/v1/...`, `/metrics`,
//! `/healthz`, `/readyz`), called from the browser like any other client: the console has no
//! data path of its own, and whatever guards the door's routes guards the console's calls. It
//! sends `Content-Security-Policy: default-src 'self'` (no inline script, no other origin), so
//! a record's bytes shown on the page cannot run as code.

use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use brook_broker::SeekTo;
use serde::{Deserialize, Serialize};

use super::authorize::Access;
use super::error::ApiError;
use super::extract::{GroupPath, JsonBody};
use super::App;

const INDEX: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/style.css");

/// The page may load only from this origin, and may not be framed.
const SECURITY: [(&str, &str); 3] = [
    (
        "content-security-policy",
        "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    ),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
];

/// The console's routes.
pub(crate) fn router() -> Router<App> {
    Router::new()
        .route(
            "/",
            get(|| async { asset(INDEX, "text/html; charset=utf-8") }),
        )
        .route(
            "/console/app.js",
            get(|| async { asset(APP_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/console/style.css",
            get(|| async { asset(STYLE, "text/css; charset=utf-8") }),
        )
        .route("/console/api/settings", get(settings))
        .route("/console/api/groups/{group}/reset", post(reset))
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    for (name, value) in SECURITY {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    response
}

/// `GET /console/api/settings`: what the broker and this door run with.
async fn settings(State(app): State<App>) -> Json<serde_json::Value> {
    Json(settings_of(&app))
}

fn settings_of(app: &App) -> serde_json::Value {
    let config = app.broker.config();
    let topic_defaults: serde_json::Map<String, serde_json::Value> =
        brook_log::config_entries(&config.log)
            .into_iter()
            .map(|(key, value)| (key.to_owned(), value.into()))
            .collect();
    let limits = &config.limits;
    let http = &app.config;
    serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "broker": {
            "data_dir": config.data_dir.display().to_string(),
            "auto_create_topics": config.auto_create_topics,
            "default_partitions": config.default_partitions,
            "retention_check_ms": config.retention_check_ms,
            "group_release_timeout_ms": config.group_release_timeout_ms,
        },
        "topic_defaults": topic_defaults,
        "limits": {
            "fetch_bytes_max": limits.fetch_bytes_max,
            "fetch_wait_ms_max": limits.fetch_wait_ms_max,
            "produce_records_max": limits.produce_records_max,
            "partitions_max": limits.partitions_max,
            "offset_metadata_bytes_max": limits.offset_metadata_bytes_max,
            "subscribe_read_bytes": limits.subscribe_read_bytes,
        },
        "http": {
            "request_bytes_max": http.request_bytes_max,
            "read_bytes_default": http.read_bytes_default,
            "connections_max": http.connections_max,
            "write_stall_ms_max": http.write_stall_ms_max,
            "keepalive_interval_ms": http.keepalive_interval_ms,
            "cors_origins": http.cors_origins,
        },
    })
}

/// Where a reset moves a group, as the page sends it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum To {
    Earliest,
    Latest,
    Offset(u64),
    Timestamp(i64),
    Shift(i64),
}

/// `POST /console/api/groups/{group}/reset` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetIn {
    to: To,
    /// The topics to move; empty: every partition the group has a commit in.
    #[serde(default)]
    topics: Vec<String>,
    /// Say where each partition would go, moving nothing.
    #[serde(default)]
    dry_run: bool,
}

#[derive(Debug, Serialize)]
struct MovedOut {
    topic: String,
    partition: u32,
    from: Option<u64>,
    to: u64,
}

/// Moves `group`'s committed offsets as `kafka-consumer-groups --reset-offsets` does (the group
/// must have no live member), or with `dry_run` only says where they would go.
async fn reset(
    State(app): State<App>,
    access: Access,
    GroupPath { group }: GroupPath,
    JsonBody(body): JsonBody<ResetIn>,
) -> Result<Json<Vec<MovedOut>>, ApiError> {
    let to = match body.to {
        To::Earliest => SeekTo::Earliest,
        To::Latest => SeekTo::Latest,
        To::Offset(offset) => SeekTo::Offset(offset),
        To::Timestamp(ms) => SeekTo::Timestamp(ms),
        To::Shift(by) => SeekTo::Shift(by),
    };
    let plan = access
        .seek(&app.broker, &group, to, &body.topics, body.dry_run)
        .await?;
    let moved = plan
        .into_iter()
        .map(|seek| MovedOut {
            topic: seek.topic_partition.topic,
            partition: seek.topic_partition.partition,
            from: seek.from,
            to: seek.to,
        })
        .collect();
    Ok(Json(moved))
}
