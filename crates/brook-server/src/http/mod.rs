//! The HTTP door (axum): JSON over REST for administration, producing and fetching, server-sent
//! events for streaming consume, Prometheus metrics and health checks, for clients that only
//! speak HTTP (a browser, curl, a webhook, a serverless function).
//!
//! | route | what |
//! |-------|------|
//! | `GET /` | the web console (`console`: topics, records, groups, request-reply, settings) |
//! | `GET /healthz`, `GET /readyz` | liveness; readiness (503 while shutting down) |
//! | `GET /metrics` | OpenMetrics text of every door ([`crate::metrics`]) |
//! | `GET /v1/openapi.json` | this door's OpenAPI document |
//! | `GET`, `POST /v1/topics` | list, create topics |
//! | `GET`, `DELETE /v1/topics/{topic}` | describe, delete a topic |
//! | `POST /v1/topics/{topic}/records` | produce: JSON, or streamed as NDJSON |
//! | `GET /v1/topics/{topic}/partitions/{partition}/records` | fetch (long poll) |
//! | `GET /v1/topics/{topic}/partitions/{partition}/stream` | SSE from an offset |
//! | `GET /v1/groups`, `GET /v1/groups/{group}` | list, describe groups (offsets, lag) |
//! | `GET /v1/groups/{group}/stream` | SSE as a member of a consumer group |
//! | `POST /v1/groups/{group}/offsets` | commit a group's offsets |
//! | `POST /v1/topics/{topic}/call` | request-reply: the body is the request, the answer the reply (`reqreply`) |
//! | `GET /v1/topics/{topic}/call/{correlation_id}` | a call's reply, later |
//! | `POST /v1/topics/{topic}/partitions`, `PATCH /v1/topics/{topic}/config`, `DELETE /v1/topics/{topic}/records` | grow a topic, change its settings, delete records below an offset (`changes`) |
//! | `DELETE /v1/groups/{group}`, `DELETE /v1/groups/{group}/offsets`, `POST /v1/groups/{group}/seek` | delete a group or some of its offsets, move its offsets (`changes`) |
//! | `GET`, `POST`, `DELETE /v1/acls` | list, add, remove ACLs (`acls`) |
//! | `GET`, `POST /v1/users`, `PUT /v1/users/{user}/password`, `DELETE /v1/users/{user}`, `GET`, `POST /v1/tokens`, `DELETE /v1/tokens/{id}` | manage users and bearer tokens (`users`) |
//!
//! What it promises:
//! - every failure is JSON `{ "error_code", "message" }` with the status of the broker's error
//!   kind (400 bad request or name, 404 unknown topic, partition or group, 409 exists, 413 too
//!   large, 416 offset out of range, 503 partition poisoned or shutting down);
//! - a body over [`HttpConfig::request_bytes_max`] is refused with 413 before more is read, and
//!   a `Content-Length` over it (on any request but a streaming produce, whose limit is per
//!   line) before any is;
//! - nothing a client does holds unbounded memory: streams are pulled as the connection takes
//!   bytes, streaming produce has a bounded number of records in flight, a connection that
//!   takes nothing for [`HttpConfig::write_stall_ms_max`] is dropped, and at most
//!   [`HttpConfig::connections_max`] connections are served at once (and
//!   [`HttpConfig::connections_per_addr_max`] from one address); when full, the connection idle
//!   longest is closed to let a new client in, and with none idle further clients wait in the
//!   listen backlog (brook-door's capped accept loop);
//! - a keep-alive connection waiting longer than [`HttpConfig::idle_ms_max`] for its next
//!   request is closed, and so is one whose request head takes longer than
//!   [`HttpConfig::request_read_ms_max`] to arrive (a client trickling headers: slowloris);
//! - a browser page may call the door only from an origin in [`HttpConfig::cors_origins`];
//!   a write must carry a JSON body and `Host` must be one of the door's names (`guard`);
//! - on shutdown `/readyz` turns 503, no new connection is accepted, streams end, long polls
//!   answer at once, and requests in flight (produces in particular) finish before
//!   [`HttpServer::stop`] returns; the caller then closes the broker.
//!
//! Every request is counted in [`crate::metrics`] by route (`api="GET /v1/topics/{topic}"`).

mod acls;
mod admin;
mod authorize;
mod changes;
mod config;
mod connection;
mod console;
mod error;
mod extract;
mod fetch;
mod guard;
mod ops;
mod produce;
mod produce_stream;
mod records;
mod reqreply;
mod stream;
mod table;
mod txn;
mod users;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post, put, MethodRouter};
use axum::Router;
use brook_broker::Backend;
use brook_door::{Acceptor, ConnectionLimits, Door, Peers, RunningDoor, Shutdown};
use brook_log::bounds::check_bounds;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tracing::Instrument;

pub use config::HttpConfig;
pub use ops::OPENAPI;

use crate::auth::{AuthLayer, Policy};
use crate::connection::Connections;
use crate::error::ServerError;
use crate::in_flight::InFlightLayer;
use crate::metrics;
use connection::{Listener, Peer};
use error::ApiError;

/// What every handler shares: the broker, the door's settings, and its drain signal.
#[derive(Debug, Clone)]
pub(crate) struct App {
    pub(crate) broker: Backend,
    pub(crate) config: Arc<HttpConfig>,
    /// Fires when the door starts shutting down: streams end, long polls answer early.
    pub(crate) draining: Shutdown,
}

/// Every route: method, path (axum's syntax, which is OpenAPI's) and handler. The router is
/// built from this table, and [`routes`] lists it for the test that holds the OpenAPI document
/// to it.
fn table() -> Vec<(Method, &'static str, MethodRouter<App>)> {
    vec![
        (Method::GET, "/healthz", get(ops::healthz)),
        (Method::GET, "/readyz", get(ops::readyz)),
        (Method::GET, "/metrics", get(ops::metrics)),
        (Method::GET, "/v1/openapi.json", get(ops::openapi)),
        (Method::GET, "/v1/topics", get(admin::list_topics)),
        (Method::POST, "/v1/topics", post(admin::create_topic)),
        (
            Method::GET,
            "/v1/topics/{topic}",
            get(admin::describe_topic),
        ),
        (
            Method::DELETE,
            "/v1/topics/{topic}",
            delete(admin::delete_topic),
        ),
        (
            Method::POST,
            "/v1/topics/{topic}/records",
            post(produce::produce),
        ),
        (
            Method::GET,
            "/v1/topics/{topic}/partitions/{partition}/records",
            get(fetch::fetch),
        ),
        (
            Method::GET,
            "/v1/topics/{topic}/partitions/{partition}/stream",
            get(stream::partition_stream),
        ),
        (Method::GET, "/v1/groups", get(admin::list_groups)),
        (Method::GET, "/v1/acls", get(acls::list)),
        (Method::POST, "/v1/acls", post(acls::create)),
        (Method::DELETE, "/v1/acls", delete(acls::delete)),
        (Method::GET, "/v1/users", get(users::list_users)),
        (Method::POST, "/v1/users", post(users::create_user)),
        (
            Method::DELETE,
            "/v1/users/{user}",
            delete(users::delete_user),
        ),
        (
            Method::PUT,
            "/v1/users/{user}/password",
            put(users::set_password),
        ),
        (Method::GET, "/v1/tokens", get(users::list_tokens)),
        (Method::POST, "/v1/tokens", post(users::create_token)),
        (
            Method::DELETE,
            "/v1/tokens/{id}",
            delete(users::revoke_token),
        ),
        (
            Method::GET,
            "/v1/groups/{group}",
            get(admin::describe_group),
        ),
        (
            Method::GET,
            "/v1/groups/{group}/stream",
            get(stream::group_stream),
        ),
        (
            Method::POST,
            "/v1/groups/{group}/offsets",
            post(admin::commit_offsets),
        ),
        (
            Method::POST,
            "/v1/topics/{topic}/call",
            post(reqreply::call),
        ),
        (
            Method::GET,
            "/v1/topics/{topic}/call/{correlation_id}",
            get(reqreply::reply),
        ),
        (
            Method::GET,
            "/v1/topics/{topic}/keys/{key}",
            get(table::get_key),
        ),
        (Method::POST, "/v1/transactions", post(txn::produce_atomic)),
        (Method::GET, "/v1/transactions", get(txn::list_transactions)),
        (
            Method::GET,
            "/v1/transactions/{transactional_id}",
            get(txn::describe_transaction),
        ),
        (
            Method::GET,
            "/v1/topics/{topic}/partitions/{partition}/producers",
            get(txn::describe_producers),
        ),
        (
            Method::POST,
            "/v1/topics/{topic}/partitions",
            post(changes::add_partitions),
        ),
        (
            Method::PATCH,
            "/v1/topics/{topic}/config",
            patch(changes::alter_config),
        ),
        (
            Method::DELETE,
            "/v1/topics/{topic}/records",
            delete(changes::delete_records),
        ),
        (
            Method::DELETE,
            "/v1/groups/{group}",
            delete(changes::delete_group),
        ),
        (
            Method::DELETE,
            "/v1/groups/{group}/offsets",
            delete(changes::delete_offsets),
        ),
        (
            Method::POST,
            "/v1/groups/{group}/seek",
            post(changes::seek_group),
        ),
    ]
}

/// The door's routes as `(method, path)`, in the order the router is built.
pub fn routes() -> Vec<(Method, &'static str)> {
    table()
        .into_iter()
        .map(|(method, path, _)| (method, path))
        .collect()
}

/// The door's router over `app`; `peers` marks each request in flight on its connection.
fn router(app: App, peers: Peers) -> Router {
    let body_limit = app.config.request_bytes_max;
    let cors = cors(&app.config.cors_origins);
    let hosts = guard::AllowedHosts::new(&app.config.allowed_hosts);
    let policy = if app.config.metrics_public {
        AUTH_POLICY_METRICS_PUBLIC
    } else {
        AUTH_POLICY
    };
    let auth = AuthLayer::new(app.config.security.auth.clone(), policy);
    let router = table()
        .into_iter()
        .fold(Router::new(), |router, (_, path, handler)| {
            router.route(path, handler)
        })
        .merge(console::router())
        // Inside `observe`, so a refusal is counted as the route's.
        .route_layer(middleware::from_fn_with_state(
            app.clone(),
            authorize::check,
        ))
        // Inside `observe` too; only on routes, so an unknown method is still 405.
        .route_layer(middleware::from_fn(guard::check_body))
        .route_layer(middleware::from_fn(observe))
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            body_limit,
            refuse_long_bodies,
        ))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(app)
        // Inside CORS, so a browser's preflight is answered without credentials.
        .layer(auth)
        // Before credentials are looked at: a foreign Host goes no further.
        .layer(middleware::from_fn_with_state(hosts, guard::check_host));
    let router = match cors {
        Some(cors) => router.layer(cors),
        None => router,
    };
    router.layer(InFlightLayer::new(peers, |request: &Request| {
        request
            .extensions()
            .get::<ConnectInfo<Peer>>()
            .map(|info| info.0 .0)
    }))
}

/// Who may call the HTTP door (crate::auth): health checks are open; a refusal is 401 with
/// `WWW-Authenticate` naming both schemes.
const AUTH_POLICY: Policy<axum::body::Body, axum::body::Body> = Policy {
    door: "HTTP",
    peer_of: |request| {
        request
            .extensions()
            .get::<ConnectInfo<Peer>>()
            .map(|info| info.0 .0)
    },
    tls_subject_of: |request| {
        request
            .extensions()
            .get::<ConnectInfo<Peer>>()
            .and_then(|info| info.0 .1.clone())
    },
    open: |path| matches!(path, "/healthz" | "/readyz"),
    refuse: |refusal| {
        let mut response =
            ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", refusal.message)
                .into_response();
        response.headers_mut().insert(
            axum::http::header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"brook\", Bearer realm=\"brook\""),
        );
        response
    },
};

/// [`AUTH_POLICY`] with `GET /metrics` open too (`metrics_public`).
const AUTH_POLICY_METRICS_PUBLIC: Policy<axum::body::Body, axum::body::Body> = Policy {
    open: |path| matches!(path, "/healthz" | "/readyz" | "/metrics"),
    ..AUTH_POLICY
};

/// 413 for a body whose `Content-Length` is over `request_bytes_max`, before a byte of it is
/// read (a streaming produce is exempt: its limit is per line, not per body).
async fn refuse_long_bodies(State(limit): State<usize>, request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let streaming = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case(produce::NDJSON));
    match declared {
        Some(length) if length > limit as u64 && !streaming => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!(
                "a request body of {length} bytes exceeds the limit of {limit} bytes \
                 (request_bytes_max); send less at once"
            ),
        )
        .into_response(),
        _ => next.run(request).await,
    }
}

/// CORS for `origins`, or `None` (no CORS headers at all) when there are none. An origin that
/// cannot be a header value is left out, with an error in the log.
fn cors(origins: &[String]) -> Option<CorsLayer> {
    let allowed: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|origin| {
            HeaderValue::from_str(origin)
                .inspect_err(|_| tracing::error!(origin, "not a valid CORS origin; ignored"))
                .ok()
        })
        .collect();
    if allowed.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(allowed))
            .allow_methods([Method::GET, Method::POST, Method::DELETE])
            .allow_headers([
                CONTENT_TYPE,
                HeaderName::from_static("last-event-id"),
                HeaderName::from_static("idempotency-key"),
            ])
            // A call's answer names its correlation id; a page needs it to fetch a late reply.
            .expose_headers([HeaderName::from_static("brook-correlation-id")]),
    )
}

/// Counts each routed request, its failure and its latency, by route, and serves it inside
/// its request span.
async fn observe(path: MatchedPath, request: Request, next: Next) -> Response {
    let api = format!("{} {}", request.method(), path.as_str());
    let span = crate::trace::request_span(metrics::HTTP, &api, request.headers());
    if path.as_str().starts_with("/v1/topics/{topic}") {
        if let Some(topic) = request.uri().path().split('/').nth(3) {
            span.record("topic", topic);
        }
    }
    let started = Instant::now();
    let response = next.run(request).instrument(span).await;
    let status = response.status();
    let failed = status.is_client_error() || status.is_server_error();
    metrics::request(
        metrics::HTTP,
        &api,
        failed.then(|| status.as_str()),
        started.elapsed(),
    );
    response
}

async fn no_route(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no_route",
        format!(
            "no route {} {}: see /v1/openapi.json for the routes",
            request.method(),
            request.uri().path()
        ),
    )
}

async fn method_not_allowed(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{} is not allowed on {}: see /v1/openapi.json for the routes",
            request.method(),
            request.uri().path()
        ),
    )
}

/// The HTTP door: how brook-door runs it (see [`HttpServer`]).
#[derive(Debug)]
pub struct Http;

impl Door for Http {
    const NAME: &'static str = "HTTP";
    type Backend = Backend;
    type Config = HttpConfig;
    type Error = ServerError;

    fn limits(config: &HttpConfig) -> ConnectionLimits {
        config.limits()
    }

    fn check(config: &HttpConfig) -> Result<(), String> {
        check_bounds(config, HttpConfig::BOUNDS)
    }

    /// Serves until `shutdown` fires and every request in flight has finished.
    async fn serve(
        broker: Backend,
        connections: Acceptor,
        config: HttpConfig,
        shutdown: Shutdown,
    ) -> Result<(), ServerError> {
        let draining = Shutdown::new();
        let tls = config.security.tls.clone();
        let app = App {
            broker,
            config: Arc::new(config),
            draining: draining.clone(),
        };
        let signal = async move {
            shutdown.wait().await;
            tracing::info!("HTTP door shutting down: draining requests in flight");
            draining.trigger();
        };
        let service =
            router(app, connections.peers()).into_make_service_with_connect_info::<Peer>();
        let connections = Connections::new(connections, tls);
        // axum documents that this future never fails (and brook-door's accept loop retries
        // accept errors itself); the `Result` is its signature only.
        if let Err(e) = axum::serve(Listener(connections), service)
            .with_graceful_shutdown(signal)
            .await
        {
            tracing::error!(error = %e, "HTTP door stopped with an error");
        }
        Ok(())
    }
}

/// An HTTP door running on its own task: `HttpServer::start(broker, addr, config)`, then
/// `local_addr()` and `stop()`.
pub type HttpServer = RunningDoor<Http>;
