//! `ListUsers`, `CreateUser`, `DeleteUser`, `SetPassword`, `CreateToken`, `ListTokens`,
//! `RevokeToken`: a running broker's users and bearer tokens at the gRPC door
//! (docs/security.md, "Managing users online"), the store `brook user` / `brook token` change
//! offline and the HTTP door's `/v1/users`, `/v1/tokens` change online. Listing needs
//! `Describe` on the cluster, changing needs `Alter` (PERMISSION_DENIED); with authentication
//! off there is no store (FAILED_PRECONDITION). A change is durable before it is answered and
//! takes effect at once (a deleted user or revoked token is refused on its next request).
//! Passwords and token texts are never logged.

use brook_broker::auth::{TokenRecord, UserInfo};
use brook_proto::v1 as pb;
use tonic::{Request, Response, Status};

use super::service::BrookService;
use super::status::to_status;
use crate::authorize::Op;

/// The caller's right to `op` on the cluster, with authentication on.
fn allowed<T>(service: &BrookService, request: &Request<T>, op: Op) -> Result<(), Status> {
    if !service.config.security.auth.enabled() {
        return Err(Status::failed_precondition(
            "users and tokens need authentication on (brook serve --auth on): with it off no \
             security store is open and every client may do anything",
        ));
    }
    service
        .access(request)
        .cluster(op)
        .map_err(|e| to_status(&e))
}

fn user(info: UserInfo) -> pb::User {
    pb::User {
        mechanisms: info.mechanism_names(),
        name: info.name,
    }
}

fn token(record: TokenRecord) -> pb::Token {
    pb::Token {
        id: record.id,
        user: record.user,
        created_ms: record.created_ms,
        expires_ms: record.expires_ms,
    }
}

pub(crate) async fn list_users(
    service: &BrookService,
    request: Request<pb::ListUsersRequest>,
) -> Result<Response<pb::ListUsersResponse>, Status> {
    allowed(service, &request, Op::Describe)?;
    let users = service.config.security.auth.auth().users();
    Ok(Response::new(pb::ListUsersResponse {
        users: users.into_iter().map(user).collect(),
    }))
}

pub(crate) async fn create_user(
    service: &BrookService,
    request: Request<pb::CreateUserRequest>,
) -> Result<Response<pb::CreateUserResponse>, Status> {
    allowed(service, &request, Op::Alter)?;
    let pb::CreateUserRequest { name, password } = request.into_inner();
    let auth = service.config.security.auth.auth();
    auth.create_user(&name, &password)
        .await
        .map_err(|e| to_status(&e))?;
    tracing::info!(user = %name, door = "gRPC", "user created");
    let created = auth.users().into_iter().find(|u| u.name == name);
    Ok(Response::new(pb::CreateUserResponse {
        user: created.map(user),
    }))
}

pub(crate) async fn delete_user(
    service: &BrookService,
    request: Request<pb::DeleteUserRequest>,
) -> Result<Response<pb::DeleteUserResponse>, Status> {
    allowed(service, &request, Op::Alter)?;
    let name = &request.get_ref().name;
    service
        .config
        .security
        .auth
        .auth()
        .delete_user(name)
        .await
        .map_err(|e| to_status(&e))?;
    tracing::info!(user = %name, door = "gRPC", "user deleted, its tokens revoked");
    Ok(Response::new(pb::DeleteUserResponse {}))
}

pub(crate) async fn set_password(
    service: &BrookService,
    request: Request<pb::SetPasswordRequest>,
) -> Result<Response<pb::SetPasswordResponse>, Status> {
    allowed(service, &request, Op::Alter)?;
    let pb::SetPasswordRequest { name, password } = request.into_inner();
    service
        .config
        .security
        .auth
        .auth()
        .set_password(&name, &password)
        .await
        .map_err(|e| to_status(&e))?;
    tracing::info!(user = %name, door = "gRPC", "password changed");
    Ok(Response::new(pb::SetPasswordResponse {}))
}

pub(crate) async fn create_token(
    service: &BrookService,
    request: Request<pb::CreateTokenRequest>,
) -> Result<Response<pb::CreateTokenResponse>, Status> {
    allowed(service, &request, Op::Alter)?;
    let pb::CreateTokenRequest { user, ttl_ms } = request.into_inner();
    let (record, text) = service
        .config
        .security
        .auth
        .auth()
        .create_token(&user, ttl_ms)
        .await
        .map_err(|e| to_status(&e))?;
    tracing::info!(token = %record.id, user = %record.user, door = "gRPC", "token created");
    Ok(Response::new(pb::CreateTokenResponse {
        token: Some(token(record)),
        text,
    }))
}

pub(crate) async fn list_tokens(
    service: &BrookService,
    request: Request<pb::ListTokensRequest>,
) -> Result<Response<pb::ListTokensResponse>, Status> {
    allowed(service, &request, Op::Describe)?;
    let user = request.get_ref().user.as_deref();
    let tokens = service.config.security.auth.auth().tokens(user);
    Ok(Response::new(pb::ListTokensResponse {
        tokens: tokens.into_iter().map(token).collect(),
    }))
}

pub(crate) async fn revoke_token(
    service: &BrookService,
    request: Request<pb::RevokeTokenRequest>,
) -> Result<Response<pb::RevokeTokenResponse>, Status> {
    allowed(service, &request, Op::Alter)?;
    let record = service
        .config
        .security
        .auth
        .auth()
        .revoke_token(&request.get_ref().id)
        .await
        .map_err(|e| to_status(&e))?;
    tracing::info!(token = %record.id, user = %record.user, door = "gRPC", "token revoked");
    Ok(Response::new(pb::RevokeTokenResponse {
        token: Some(token(record)),
    }))
}
