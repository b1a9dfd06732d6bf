//! DescribeUserScramCredentials (key 50) and AlterUserScramCredentials (key 51), KIP-554: the
//! Kafka admin APIs for SASL/SCRAM users, over the running broker's security store
//! ([`brook_broker::auth`]), so `kafka-configs --alter --add-config 'SCRAM-SHA-256=[...]'
//! --entity-type users` and the admin clients of librdkafka, kafka-python and Java manage brook's
//! users online.
//!
//! As Kafka: describing needs `Describe` on the cluster and altering `Alter` on it (else
//! `CLUSTER_AUTHORIZATION_FAILED` for every user); with authentication off (no store is open)
//! both are `SECURITY_DISABLED`; no secret is ever answered, only each
//! credential's mechanism and iterations. An upsertion carries what the client salted itself
//! (salt, iterations, salted password), never the password. Per user: an unknown user is
//! `RESOURCE_NOT_FOUND`, a user named twice in one request `DUPLICATE_RESOURCE`, an unknown
//! mechanism `UNSUPPORTED_SASL_MECHANISM`, a bad salt, iteration count or salted password
//! `UNACCEPTABLE_CREDENTIAL`; each user's changes are stored durably before the answer and are in
//! force for the next authentication on every door.

use std::collections::{BTreeMap, HashMap};

use brook_broker::auth::{Operation, ScramCredential, ScramMechanism};
use brook_broker::BrokerError;
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::acls::security_refusal;
use crate::authorize::Access;
use crate::codes;
use crate::state::ListenerState;

const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
const RESOURCE_NOT_FOUND: i16 = 91;
const DUPLICATE_RESOURCE: i16 = 92;
const UNACCEPTABLE_CREDENTIAL: i16 = 93;

fn text(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

fn refusal_of(
    door: &ListenerState,
    access: &Access<'_>,
    operation: Operation,
) -> Option<(i16, StrBytes)> {
    security_refusal(door, access, operation, "SCRAM users")
}

pub(crate) fn describe(
    door: &ListenerState,
    access: &Access<'_>,
    r: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    let mut response = DescribeUserScramCredentialsResponse::default();
    if let Some((code, message)) = refusal_of(door, access, Operation::Describe) {
        response.error_code = code;
        response.error_message = Some(message);
        return response;
    }
    let users: BTreeMap<String, Vec<(ScramMechanism, u32)>> = door
        .config
        .security
        .auth
        .auth()
        .users()
        .into_iter()
        .map(|user| (user.name, user.mechanisms))
        .collect();
    let result = |name: &str, mechanisms: &[(ScramMechanism, u32)]| {
        DescribeUserScramCredentialsResult::default()
            .with_user(text(name))
            .with_credential_infos(
                mechanisms
                    .iter()
                    .map(|(mechanism, iterations)| {
                        CredentialInfo::default()
                            .with_mechanism(mechanism.code())
                            .with_iterations(i32::try_from(*iterations).unwrap_or(i32::MAX))
                    })
                    .collect(),
            )
    };
    response.results = match r.users {
        // Null or empty: every user.
        None => users.iter().map(|(n, m)| result(n, m)).collect(),
        Some(asked) if asked.is_empty() => users.iter().map(|(n, m)| result(n, m)).collect(),
        Some(asked) => {
            let mut times: HashMap<&str, usize> = HashMap::new();
            for user in &asked {
                *times.entry(user.name.as_str()).or_default() += 1;
            }
            let mut seen = std::collections::HashSet::new();
            asked
                .iter()
                .filter(|user| seen.insert(user.name.as_str()))
                .map(|user| {
                    let name = user.name.as_str();
                    match users.get(name) {
                        _ if times[name] > 1 => failed(
                            name,
                            DUPLICATE_RESOURCE,
                            "cannot describe the same user twice in one request",
                        ),
                        Some(mechanisms) => result(name, mechanisms),
                        None => failed(
                            name,
                            RESOURCE_NOT_FOUND,
                            "attempt to describe a user credential that does not exist",
                        ),
                    }
                })
                .collect()
        }
    };
    response
}

fn failed(user: &str, code: i16, message: &str) -> DescribeUserScramCredentialsResult {
    DescribeUserScramCredentialsResult::default()
        .with_user(text(user))
        .with_error_code(code)
        .with_error_message(Some(text(message)))
}

/// One change an AlterUserScramCredentials asks for.
enum Change {
    Delete(ScramMechanism),
    Upsert(ScramCredential),
}

pub(crate) async fn alter(
    door: &ListenerState,
    access: &Access<'_>,
    r: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    let mut response = AlterUserScramCredentialsResponse::default();
    let result = |user: &str, code: i16, message: Option<String>| {
        AlterUserScramCredentialsResult::default()
            .with_user(text(user))
            .with_error_code(code)
            .with_error_message(message.map(text))
    };
    // Every user once, in request order, with its changes or the reason it is refused.
    let mut order: Vec<String> = Vec::new();
    let mut per_user: HashMap<String, Result<Vec<Change>, (i16, String)>> = HashMap::new();
    let mut mechanisms_seen: HashMap<String, Vec<i8>> = HashMap::new();
    let asked = r
        .deletions
        .iter()
        .map(|d| (d.name.to_string(), d.mechanism, None))
        .chain(r.upsertions.iter().map(|u| {
            let name = u.name.to_string();
            (name, u.mechanism, Some(u))
        }));
    for (name, mechanism, upsertion) in asked {
        if !per_user.contains_key(&name) {
            order.push(name.clone());
            per_user.insert(name.clone(), Ok(Vec::new()));
        }
        let seen = mechanisms_seen.entry(name.clone()).or_default();
        let twice = seen.contains(&mechanism);
        seen.push(mechanism);
        let entry = per_user.get_mut(&name).expect("inserted above");
        let Ok(changes) = entry else { continue };
        let change = if twice {
            Err((
                DUPLICATE_RESOURCE,
                "a user credential cannot be altered twice in the same request".to_owned(),
            ))
        } else {
            parse(mechanism, upsertion)
        };
        match change {
            Ok(change) => changes.push(change),
            Err(refused) => *entry = Err(refused),
        }
    }
    if let Some((code, message)) = refusal_of(door, access, Operation::Alter) {
        response.results = order
            .iter()
            .map(|user| result(user, code, Some(message.to_string())))
            .collect();
        return response;
    }
    let auth = door.config.security.auth.auth();
    for user in order {
        let outcome = match per_user.remove(&user).expect("every user has an entry") {
            Err((code, message)) => Err((code, message)),
            Ok(changes) => {
                let mut outcome = Ok(());
                for change in changes {
                    let done = match change {
                        Change::Delete(mechanism) => auth.delete_scram(&user, mechanism).await,
                        Change::Upsert(credential) => auth.upsert_scram(&user, credential).await,
                    };
                    if let Err(e) = done {
                        outcome = Err(refusal(&e));
                        break;
                    }
                }
                outcome
            }
        };
        response.results.push(match outcome {
            Ok(()) => {
                tracing::info!(user = %user, "SCRAM credentials altered");
                result(&user, 0, None)
            }
            Err((code, message)) => result(&user, code, Some(message)),
        });
    }
    response
}

/// The change one deletion (`upsertion` `None`) or upsertion asks for, or its refusal.
fn parse(
    mechanism: i8,
    upsertion: Option<
        &kafka_protocol::messages::alter_user_scram_credentials_request::ScramCredentialUpsertion,
    >,
) -> Result<Change, (i16, String)> {
    let Some(mechanism) = ScramMechanism::from_code(mechanism) else {
        return Err((
            UNSUPPORTED_SASL_MECHANISM,
            format!("unknown SCRAM mechanism code {mechanism}"),
        ));
    };
    let Some(u) = upsertion else {
        return Ok(Change::Delete(mechanism));
    };
    let iterations = u32::try_from(u.iterations).unwrap_or(0);
    ScramCredential::from_client(mechanism, u.salt.to_vec(), iterations, &u.salted_password)
        .map(Change::Upsert)
        .map_err(|e| (UNACCEPTABLE_CREDENTIAL, e.to_string()))
}

/// The per-user code of a store error.
fn refusal(err: &BrokerError) -> (i16, String) {
    match err {
        BrokerError::UnknownUser { .. } => (
            RESOURCE_NOT_FOUND,
            "attempt to delete a user credential that does not exist".to_owned(),
        ),
        BrokerError::InvalidRequest { .. } => (UNACCEPTABLE_CREDENTIAL, err.to_string()),
        other => (codes::code(other), other.to_string()),
    }
}
