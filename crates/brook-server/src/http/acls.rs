//! `/v1/acls`: the broker's ACLs at the HTTP door (docs/security.md, "Authorization"), the same
//! rules Kafka's DescribeAcls / CreateAcls / DeleteAcls and `brook acl` change.
//!
//! - `GET /v1/acls?principal=User:alice&resource_type=topic...`: the rules a filter selects
//!   (every field optional; `pattern_type` also `any` or `match`);
//! - `POST /v1/acls` with `{"acls": [{"resource_type", "resource_name", "principal",
//!   "operation", "pattern_type"?, "host"?, "permission"?}]}`: adds them, all or none (a bad
//!   one is 400 and nothing is added);
//! - `DELETE /v1/acls?...`: removes the rules the filter selects (at least one field, so a
//!   bare `DELETE` cannot wipe every rule), and lists them.
//!
//! Reading needs `Describe` on the cluster, changing needs `Alter` (the route rule in
//! [`super::authorize`]). A change is durable before it is answered.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use brook_broker::auth::{AclBinding, AclText};
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::extract::{JsonBody, Query};
use super::App;

/// With authentication off there are no ACLs to change (nothing is kept; everyone may do
/// anything), as Kafka answers SECURITY_DISABLED.
fn enabled(app: &App) -> Result<(), ApiError> {
    if app.config.security.auth.enabled() {
        return Ok(());
    }
    Err(ApiError::bad_request(
        "ACLs need authentication on (brook serve --auth on): with it off every client may \
         do anything and no ACL is kept",
    ))
}

/// An ACL as the door shows it (the names `kafka-acls` prints).
#[derive(Debug, Serialize)]
pub(crate) struct AclOut {
    resource_type: &'static str,
    resource_name: String,
    pattern_type: &'static str,
    principal: String,
    host: String,
    operation: &'static str,
    permission: &'static str,
}

impl From<AclBinding> for AclOut {
    fn from(acl: AclBinding) -> Self {
        Self {
            resource_type: acl.resource_type.name(),
            resource_name: acl.resource_name,
            pattern_type: acl.pattern_type.name(),
            principal: acl.principal,
            host: acl.host,
            operation: acl.operation.name(),
            permission: acl.permission.name(),
        }
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct AclsOut {
    acls: Vec<AclOut>,
}

/// A rule or a filter in words: [`AclText`]'s fields.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AclIn {
    #[serde(default)]
    resource_type: Option<String>,
    #[serde(default)]
    resource_name: Option<String>,
    #[serde(default)]
    pattern_type: Option<String>,
    #[serde(default)]
    principal: Option<String>,
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    operation: Option<String>,
    #[serde(default)]
    permission: Option<String>,
}

impl AclIn {
    fn text(&self) -> AclText<'_> {
        AclText {
            resource_type: self.resource_type.as_deref(),
            resource_name: self.resource_name.as_deref(),
            pattern_type: self.pattern_type.as_deref(),
            principal: self.principal.as_deref(),
            host: self.host.as_deref(),
            operation: self.operation.as_deref(),
            permission: self.permission.as_deref(),
        }
    }
}

/// `POST /v1/acls` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateAclsIn {
    acls: Vec<AclIn>,
}

/// `GET /v1/acls`
pub(crate) async fn list(
    State(app): State<App>,
    Query(filter): Query<AclIn>,
) -> Result<Json<AclsOut>, ApiError> {
    enabled(&app)?;
    let filter = filter.text().filter()?;
    let acls = app.config.security.auth.auth().acls(&filter);
    Ok(Json(AclsOut {
        acls: acls.into_iter().map(AclOut::from).collect(),
    }))
}

/// `POST /v1/acls`: 201 with the rules added.
pub(crate) async fn create(
    State(app): State<App>,
    JsonBody(body): JsonBody<CreateAclsIn>,
) -> Result<(StatusCode, Json<AclsOut>), ApiError> {
    enabled(&app)?;
    if body.acls.is_empty() {
        return Err(ApiError::bad_request(
            "no ACLs to add: send {\"acls\": [{\"resource_type\", \"resource_name\", \
             \"principal\", \"operation\"}]}",
        ));
    }
    let acls = body
        .acls
        .iter()
        .map(|acl| acl.text().binding())
        .collect::<Result<Vec<_>, _>>()?;
    app.config
        .security
        .auth
        .auth()
        .create_acls(acls.clone())
        .await?;
    for acl in &acls {
        tracing::info!(acl = %acl, door = "HTTP", "ACL created");
    }
    Ok((
        StatusCode::CREATED,
        Json(AclsOut {
            acls: acls.into_iter().map(AclOut::from).collect(),
        }),
    ))
}

/// `DELETE /v1/acls`: the rules removed.
pub(crate) async fn delete(
    State(app): State<App>,
    Query(filter): Query<AclIn>,
) -> Result<Json<AclsOut>, ApiError> {
    enabled(&app)?;
    if filter.text() == AclText::default() {
        return Err(ApiError::bad_request(
            "say which ACLs to delete (principal=, resource_type=, resource_name=, ...): a \
             bare DELETE would remove every rule",
        ));
    }
    let filter = filter.text().filter()?;
    let removed = app
        .config
        .security
        .auth
        .auth()
        .delete_acls(vec![filter])
        .await?;
    let removed: Vec<AclBinding> = removed.into_iter().flatten().collect();
    for acl in &removed {
        tracing::info!(acl = %acl, door = "HTTP", "ACL deleted");
    }
    Ok(Json(AclsOut {
        acls: removed.into_iter().map(AclOut::from).collect(),
    }))
}
