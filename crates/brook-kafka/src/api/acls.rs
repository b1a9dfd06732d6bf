//! DescribeAcls (key 29), CreateAcls (key 30), DeleteAcls (key 31): Kafka's ACL admin APIs
//! over the broker's ACL store ([`brook_broker::auth`]), so `kafka-acls`, librdkafka's and
//! kafka-python's admin clients manage brook's ACLs.
//!
//! Describing needs `Describe` on the cluster, changing needs `Alter` on it (else
//! `CLUSTER_AUTHORIZATION_FAILED`). A rule or filter with a code brook does not know (a resource
//! type `Any` in a rule, an unknown operation) is refused with `INVALID_REQUEST` and its reason;
//! a change is stored durably before it is answered, and is in force for the next request on
//! every door.

use brook_broker::auth::{
    AclBinding, AclFilter, Operation, PatternFilter, PatternType, Permission, ResourceType,
};
use brook_broker::BrokerError;
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse,
};
use kafka_protocol::protocol::StrBytes;

use crate::authorize::Access;
use crate::codes;
use crate::state::ListenerState;

/// Kafka's filter code for "any" (resource type, operation, permission).
const ANY: i8 = 1;

fn text(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

fn invalid(reason: String) -> BrokerError {
    BrokerError::InvalidRequest { reason }
}

/// A code that must be one of `T`'s (a rule names one value, never "any").
fn exact<T>(code: i8, what: &str, from: fn(i8) -> Option<T>) -> Result<T, BrokerError> {
    from(code).ok_or_else(|| invalid(format!("{what} code {code} is not one an ACL can have")))
}

/// A filter's code: `None` for any, else one of `T`'s.
fn any_or<T>(code: i8, what: &str, from: fn(i8) -> Option<T>) -> Result<Option<T>, BrokerError> {
    if code == ANY {
        return Ok(None);
    }
    exact(code, what, from).map(Some)
}

fn binding(c: &AclCreation) -> Result<AclBinding, BrokerError> {
    let acl = AclBinding {
        resource_type: exact(c.resource_type, "resource type", ResourceType::from_code)?,
        resource_name: c.resource_name.to_string(),
        pattern_type: exact(
            c.resource_pattern_type,
            "pattern type",
            PatternType::from_code,
        )?,
        principal: c.principal.to_string(),
        host: c.host.to_string(),
        operation: exact(c.operation, "operation", Operation::from_code)?,
        permission: exact(c.permission_type, "permission", Permission::from_code)?,
    };
    acl.validate()?;
    Ok(acl)
}

/// A filter from the fields DescribeAcls and DeleteAcls share.
#[allow(clippy::too_many_arguments)]
fn filter(
    resource_type: i8,
    resource_name: &Option<StrBytes>,
    pattern_type: i8,
    principal: &Option<StrBytes>,
    host: &Option<StrBytes>,
    operation: i8,
    permission: i8,
) -> Result<AclFilter, BrokerError> {
    Ok(AclFilter {
        resource_type: any_or(resource_type, "resource type", ResourceType::from_code)?,
        resource_name: resource_name.as_ref().map(|n| n.to_string()),
        pattern: PatternFilter::from_code(pattern_type)
            .ok_or_else(|| invalid(format!("pattern type code {pattern_type} is unknown")))?,
        principal: principal.as_ref().map(|p| p.to_string()),
        host: host.as_ref().map(|h| h.to_string()),
        operation: any_or(operation, "operation", Operation::from_code)?,
        permission: any_or(permission, "permission", Permission::from_code)?,
    })
}

fn delete_filter(f: &DeleteAclsFilter) -> Result<AclFilter, BrokerError> {
    filter(
        f.resource_type_filter,
        &f.resource_name_filter,
        f.pattern_type_filter,
        &f.principal_filter,
        &f.host_filter,
        f.operation,
        f.permission_type,
    )
}

/// The refusal of a caller without `operation` on the cluster.
pub(super) fn cluster_refusal(
    access: &Access<'_>,
    operation: Operation,
) -> Option<(i16, StrBytes)> {
    (!access.cluster(operation)).then(|| {
        (
            codes::authorization_failed(ResourceType::Cluster).code(),
            text(format!(
                "not authorized: ACLs need {operation} on the cluster"
            )),
        )
    })
}

/// With authentication off no security store is open: there are no ACLs and no SCRAM users
/// (nothing is kept, everyone may do anything), so every call managing them answers Kafka's
/// SECURITY_DISABLED, saying `what` needs `--auth on`. Else the cluster check.
pub(super) fn security_refusal(
    door: &ListenerState,
    access: &Access<'_>,
    operation: Operation,
    what: &str,
) -> Option<(i16, StrBytes)> {
    if !door.config.security.auth.enabled() {
        return Some((
            kafka_protocol::error::ResponseError::SecurityDisabled.code(),
            text(format!(
                "{what} need authentication on (brook serve --auth on)"
            )),
        ));
    }
    cluster_refusal(access, operation)
}

fn acl_refusal(
    door: &ListenerState,
    access: &Access<'_>,
    operation: Operation,
) -> Option<(i16, StrBytes)> {
    security_refusal(door, access, operation, "ACLs")
}

fn error_of(err: &BrokerError) -> (i16, StrBytes) {
    (codes::code(err), text(err.to_string()))
}

pub(crate) fn describe(
    door: &ListenerState,
    access: &Access<'_>,
    r: DescribeAclsRequest,
) -> DescribeAclsResponse {
    let mut response = DescribeAclsResponse::default();
    let found = match acl_refusal(door, access, Operation::Describe) {
        Some(refused) => Err(refused),
        None => filter(
            r.resource_type_filter,
            &r.resource_name_filter,
            r.pattern_type_filter,
            &r.principal_filter,
            &r.host_filter,
            r.operation,
            r.permission_type,
        )
        .map_err(|e| error_of(&e)),
    };
    let filter = match found {
        Ok(filter) => filter,
        Err((code, message)) => {
            response.error_code = code;
            response.error_message = Some(message);
            return response;
        }
    };
    // Grouped by resource, as Kafka answers (the store keeps them sorted by resource).
    for acl in door.config.security.auth.auth().acls(&filter) {
        let description = AclDescription::default()
            .with_principal(text(acl.principal))
            .with_host(text(acl.host))
            .with_operation(acl.operation.code())
            .with_permission_type(acl.permission.code());
        match response.resources.last_mut() {
            Some(last)
                if last.resource_type == acl.resource_type.code()
                    && *last.resource_name == *acl.resource_name
                    && last.pattern_type == acl.pattern_type.code() =>
            {
                last.acls.push(description)
            }
            _ => response.resources.push(
                DescribeAclsResource::default()
                    .with_resource_type(acl.resource_type.code())
                    .with_resource_name(text(acl.resource_name))
                    .with_pattern_type(acl.pattern_type.code())
                    .with_acls(vec![description]),
            ),
        }
    }
    response
}

pub(crate) async fn create(
    door: &ListenerState,
    access: &Access<'_>,
    r: CreateAclsRequest,
) -> CreateAclsResponse {
    let mut response = CreateAclsResponse::default();
    let result = |(code, message): (i16, StrBytes)| {
        AclCreationResult::default()
            .with_error_code(code)
            .with_error_message(Some(message))
    };
    if let Some(refused) = acl_refusal(door, access, Operation::Alter) {
        response.results = r
            .creations
            .iter()
            .map(|_| result(refused.clone()))
            .collect();
        return response;
    }
    // Each creation on its own: a bad one is refused, the good ones are stored together.
    let parsed: Vec<Result<AclBinding, BrokerError>> = r.creations.iter().map(binding).collect();
    let good: Vec<AclBinding> = parsed
        .iter()
        .filter_map(|p| p.as_ref().ok())
        .cloned()
        .collect();
    let stored = if good.is_empty() {
        Ok(())
    } else {
        door.config.security.auth.auth().create_acls(good).await
    };
    response.results = parsed
        .iter()
        .map(|p| match (p, &stored) {
            (Err(e), _) | (Ok(_), Err(e)) => result(error_of(e)),
            (Ok(acl), Ok(())) => {
                tracing::info!(acl = %acl, "ACL created");
                AclCreationResult::default()
            }
        })
        .collect();
    response
}

pub(crate) async fn delete(
    door: &ListenerState,
    access: &Access<'_>,
    r: DeleteAclsRequest,
) -> DeleteAclsResponse {
    let mut response = DeleteAclsResponse::default();
    let failed = |(code, message): (i16, StrBytes)| {
        DeleteAclsFilterResult::default()
            .with_error_code(code)
            .with_error_message(Some(message))
    };
    if let Some(refused) = acl_refusal(door, access, Operation::Alter) {
        response.filter_results = r.filters.iter().map(|_| failed(refused.clone())).collect();
        return response;
    }
    let parsed: Vec<Result<AclFilter, BrokerError>> = r.filters.iter().map(delete_filter).collect();
    let good: Vec<AclFilter> = parsed
        .iter()
        .filter_map(|p| p.as_ref().ok())
        .cloned()
        .collect();
    let removed = if good.is_empty() {
        Ok(Vec::new())
    } else {
        door.config.security.auth.auth().delete_acls(good).await
    };
    let mut removed = match removed {
        Ok(removed) => removed.into_iter(),
        Err(e) => {
            response.filter_results = r.filters.iter().map(|_| failed(error_of(&e))).collect();
            return response;
        }
    };
    response.filter_results = parsed
        .iter()
        .map(|p| match p {
            Err(e) => failed(error_of(e)),
            Ok(_) => DeleteAclsFilterResult::default().with_matching_acls(
                removed
                    .next()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|acl| {
                        tracing::info!(acl = %acl, "ACL deleted");
                        DeleteAclsMatchingAcl::default()
                            .with_resource_type(acl.resource_type.code())
                            .with_resource_name(text(acl.resource_name))
                            .with_pattern_type(acl.pattern_type.code())
                            .with_principal(text(acl.principal))
                            .with_host(text(acl.host))
                            .with_operation(acl.operation.code())
                            .with_permission_type(acl.permission.code())
                    })
                    .collect(),
            ),
        })
        .collect();
    response
}
