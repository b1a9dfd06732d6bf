//! `ListAcls`, `CreateAcls`, `DeleteAcls`: the broker's ACLs at the gRPC door
//! (docs/security.md, "Authorization"), the same rules Kafka's ACL APIs, the HTTP door's
//! `/v1/acls` and `brook acl` change. Listing needs `Describe` on the cluster, changing needs
//! `Alter` (PERMISSION_DENIED); with authentication off there are no ACLs to change
//! (FAILED_PRECONDITION). A change is durable before it is answered.

use brook_broker::auth::{AclBinding, AclText};
use brook_proto::v1 as pb;
use tonic::{Request, Response, Status};

use super::service::BrookService;
use super::status::to_status;
use crate::authorize::Op;

/// Words from a proto string: empty is "left out".
fn word(text: &str) -> Option<&str> {
    (!text.is_empty()).then_some(text)
}

fn binding(acl: &pb::Acl) -> Result<AclBinding, Status> {
    AclText {
        resource_type: word(&acl.resource_type),
        resource_name: word(&acl.resource_name),
        pattern_type: word(&acl.pattern_type),
        principal: word(&acl.principal),
        host: word(&acl.host),
        operation: word(&acl.operation),
        permission: word(&acl.permission),
    }
    .binding()
    .map_err(|e| to_status(&e))
}

fn filter(filter: Option<&pb::AclFilter>) -> Result<brook_broker::auth::AclFilter, Status> {
    let Some(f) = filter else {
        return Ok(Default::default());
    };
    AclText {
        resource_type: f.resource_type.as_deref(),
        resource_name: f.resource_name.as_deref(),
        pattern_type: f.pattern_type.as_deref(),
        principal: f.principal.as_deref(),
        host: f.host.as_deref(),
        operation: f.operation.as_deref(),
        permission: f.permission.as_deref(),
    }
    .filter()
    .map_err(|e| to_status(&e))
}

fn shown(acl: AclBinding) -> pb::Acl {
    pb::Acl {
        resource_type: acl.resource_type.name().to_owned(),
        resource_name: acl.resource_name,
        pattern_type: acl.pattern_type.name().to_owned(),
        principal: acl.principal,
        host: acl.host,
        operation: acl.operation.name().to_owned(),
        permission: acl.permission.name().to_owned(),
    }
}

/// The caller's right to `op` on the cluster, with authentication on.
fn allowed<T>(service: &BrookService, request: &Request<T>, op: Op) -> Result<(), Status> {
    if !service.config.security.auth.enabled() {
        return Err(Status::failed_precondition(
            "ACLs need authentication on (brook serve --auth on): with it off every client may \
             do anything and no ACL is kept",
        ));
    }
    service
        .access(request)
        .cluster(op)
        .map_err(|e| to_status(&e))
}

pub(crate) async fn list(
    service: &BrookService,
    request: Request<pb::ListAclsRequest>,
) -> Result<Response<pb::ListAclsResponse>, Status> {
    allowed(service, &request, Op::Describe)?;
    let filter = filter(request.get_ref().filter.as_ref())?;
    let acls = service.config.security.auth.auth().acls(&filter);
    Ok(Response::new(pb::ListAclsResponse {
        acls: acls.into_iter().map(shown).collect(),
    }))
}

pub(crate) async fn create(
    service: &BrookService,
    request: Request<pb::CreateAclsRequest>,
) -> Result<Response<pb::CreateAclsResponse>, Status> {
    allowed(service, &request, Op::Alter)?;
    let acls = request
        .get_ref()
        .acls
        .iter()
        .map(binding)
        .collect::<Result<Vec<_>, _>>()?;
    if acls.is_empty() {
        return Err(Status::invalid_argument("no ACLs to add"));
    }
    service
        .config
        .security
        .auth
        .auth()
        .create_acls(acls.clone())
        .await
        .map_err(|e| to_status(&e))?;
    for acl in &acls {
        tracing::info!(acl = %acl, door = "gRPC", "ACL created");
    }
    Ok(Response::new(pb::CreateAclsResponse {
        acls: acls.into_iter().map(shown).collect(),
    }))
}

pub(crate) async fn delete(
    service: &BrookService,
    request: Request<pb::DeleteAclsRequest>,
) -> Result<Response<pb::DeleteAclsResponse>, Status> {
    allowed(service, &request, Op::Alter)?;
    let asked = request.get_ref().filter.as_ref();
    if asked.is_none_or(|f| *f == pb::AclFilter::default()) {
        return Err(Status::invalid_argument(
            "say which ACLs to delete: a filter with at least one field (an empty one would \
             remove every rule)",
        ));
    }
    let removed = service
        .config
        .security
        .auth
        .auth()
        .delete_acls(vec![filter(asked)?])
        .await
        .map_err(|e| to_status(&e))?;
    let removed: Vec<AclBinding> = removed.into_iter().flatten().collect();
    for acl in &removed {
        tracing::info!(acl = %acl, door = "gRPC", "ACL deleted");
    }
    Ok(Response::new(pb::DeleteAclsResponse {
        acls: removed.into_iter().map(shown).collect(),
    }))
}
