//! `/v1/users` and `/v1/tokens`: a running broker's users and bearer tokens at the HTTP door
//! (docs/security.md, "Managing users online"; docs/http.md), the store `brook user` /
//! `brook token` change offline and the gRPC door's `CreateUser`, ... change online.
//!
//! - `GET /v1/users`: names and SCRAM mechanisms, never a secret;
//! - `POST /v1/users` with `{"name", "password"}`: 201, the user (its password kept only as
//!   salted SCRAM-SHA-256 and SCRAM-SHA-512 credentials);
//! - `PUT /v1/users/{user}/password` with `{"password"}`: 204;
//! - `DELETE /v1/users/{user}`: 204, its tokens revoked with it;
//! - `GET /v1/tokens?user=NAME`: ids, users and expiry, never a secret;
//! - `POST /v1/tokens` with `{"user", "ttl_ms"}`: 201, the token with its text (answered only
//!   now; only its hash is kept);
//! - `DELETE /v1/tokens/{id}`: the token revoked; its next request is refused.
//!
//! Reading needs `Describe` on the cluster, changing needs `Alter` (the route rule in
//! [`super::authorize`]); with authentication off there is no store (400). Passwords travel
//! only in bodies and are never logged; a change is durable before it is answered.

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::Json;
use brook_broker::auth::{TokenRecord, UserInfo};
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::extract::{JsonBody, Query};
use super::App;

/// With authentication off no security store is open: there are no users to change.
fn enabled(app: &App) -> Result<(), ApiError> {
    if app.config.security.auth.enabled() {
        return Ok(());
    }
    Err(ApiError::bad_request(
        "users and tokens need authentication on (brook serve --auth on): with it off no \
         security store is open and every client may do anything",
    ))
}

/// The one path parameter of a route (`{user}` or `{id}`), refused in the door's format.
pub(crate) struct Param(String);

impl<S: Send + Sync> FromRequestParts<S> for Param {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(value) = Path::<String>::from_request_parts(parts, state).await?;
        Ok(Self(value))
    }
}

/// A user as listed.
#[derive(Debug, Serialize)]
pub(crate) struct UserOut {
    name: String,
    /// As `SCRAM-SHA-256(8192)`.
    mechanisms: Vec<String>,
}

impl From<UserInfo> for UserOut {
    fn from(info: UserInfo) -> Self {
        Self {
            mechanisms: info.mechanism_names(),
            name: info.name,
        }
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct UsersOut {
    users: Vec<UserOut>,
}

/// `POST /v1/users` body. No `Debug`: it holds a password.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateUserIn {
    name: String,
    password: String,
}

/// `PUT /v1/users/{user}/password` body. No `Debug`: it holds a password.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PasswordIn {
    password: String,
}

/// A token as listed: never its secret.
#[derive(Debug, Serialize)]
pub(crate) struct TokenOut {
    id: String,
    user: String,
    created_ms: u64,
    expires_ms: u64,
}

impl From<TokenRecord> for TokenOut {
    fn from(record: TokenRecord) -> Self {
        Self {
            id: record.id,
            user: record.user,
            created_ms: record.created_ms,
            expires_ms: record.expires_ms,
        }
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct TokensOut {
    tokens: Vec<TokenOut>,
}

/// A new token and its text (shown once).
#[derive(Serialize)]
pub(crate) struct NewTokenOut {
    #[serde(flatten)]
    token: TokenOut,
    /// The text to send as `authorization: Bearer <token>`.
    token_text: String,
}

/// `POST /v1/tokens` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateTokenIn {
    user: String,
    ttl_ms: u64,
}

/// `GET /v1/tokens` query.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TokensQuery {
    #[serde(default)]
    user: Option<String>,
}

/// `GET /v1/users`
pub(crate) async fn list_users(State(app): State<App>) -> Result<Json<UsersOut>, ApiError> {
    enabled(&app)?;
    let users = app.config.security.auth.auth().users();
    Ok(Json(UsersOut {
        users: users.into_iter().map(UserOut::from).collect(),
    }))
}

/// `POST /v1/users`: 201 with the user.
pub(crate) async fn create_user(
    State(app): State<App>,
    JsonBody(body): JsonBody<CreateUserIn>,
) -> Result<(StatusCode, Json<UserOut>), ApiError> {
    enabled(&app)?;
    let auth = app.config.security.auth.auth();
    auth.create_user(&body.name, body.password.as_bytes())
        .await?;
    tracing::info!(user = %body.name, door = "HTTP", "user created");
    let created = auth
        .users()
        .into_iter()
        .find(|u| u.name == body.name)
        .map_or_else(
            || UserOut {
                name: body.name.clone(),
                mechanisms: Vec::new(),
            },
            UserOut::from,
        );
    Ok((StatusCode::CREATED, Json(created)))
}

/// `PUT /v1/users/{user}/password`: 204.
pub(crate) async fn set_password(
    State(app): State<App>,
    Param(name): Param,
    JsonBody(body): JsonBody<PasswordIn>,
) -> Result<StatusCode, ApiError> {
    enabled(&app)?;
    app.config
        .security
        .auth
        .auth()
        .set_password(&name, body.password.as_bytes())
        .await?;
    tracing::info!(user = %name, door = "HTTP", "password changed");
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /v1/users/{user}`: 204, its tokens revoked.
pub(crate) async fn delete_user(
    State(app): State<App>,
    Param(name): Param,
) -> Result<StatusCode, ApiError> {
    enabled(&app)?;
    app.config.security.auth.auth().delete_user(&name).await?;
    tracing::info!(user = %name, door = "HTTP", "user deleted, its tokens revoked");
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/tokens`
pub(crate) async fn list_tokens(
    State(app): State<App>,
    Query(query): Query<TokensQuery>,
) -> Result<Json<TokensOut>, ApiError> {
    enabled(&app)?;
    let tokens = app
        .config
        .security
        .auth
        .auth()
        .tokens(query.user.as_deref());
    Ok(Json(TokensOut {
        tokens: tokens.into_iter().map(TokenOut::from).collect(),
    }))
}

/// `POST /v1/tokens`: 201 with the token and its text.
pub(crate) async fn create_token(
    State(app): State<App>,
    JsonBody(body): JsonBody<CreateTokenIn>,
) -> Result<(StatusCode, Json<NewTokenOut>), ApiError> {
    enabled(&app)?;
    let (record, text) = app
        .config
        .security
        .auth
        .auth()
        .create_token(&body.user, body.ttl_ms)
        .await?;
    tracing::info!(token = %record.id, user = %record.user, door = "HTTP", "token created");
    Ok((
        StatusCode::CREATED,
        Json(NewTokenOut {
            token: record.into(),
            token_text: text,
        }),
    ))
}

/// `DELETE /v1/tokens/{id}`: the token revoked.
pub(crate) async fn revoke_token(
    State(app): State<App>,
    Param(id): Param,
) -> Result<Json<TokenOut>, ApiError> {
    enabled(&app)?;
    let record = app.config.security.auth.auth().revoke_token(&id).await?;
    tracing::info!(token = %record.id, user = %record.user, door = "HTTP", "token revoked");
    Ok(Json(record.into()))
}
