//! Routes each request to the handler of its API and turns the answer into a response frame.

use std::net::SocketAddr;

use brook_broker::auth::{Identity, Principal};
use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use tokio::sync::watch;

use crate::api;
use crate::authorize::{Access, Gate};
use crate::error::KafkaError;
use crate::frame::Frame;
use crate::request::{self, Incoming};
use crate::state::ListenerState;

/// What the door remembers about one connection.
#[derive(Debug)]
pub(crate) struct Session {
    pub peer: SocketAddr,
    /// The client id of the last request, for logs.
    pub client_id: String,
    /// Who the connection is: `User:ANONYMOUS` with authentication off, `None` until it has
    /// authenticated with it on (api::sasl).
    pub principal: Option<Principal>,
    /// Where its SASL exchange is.
    pub sasl: api::sasl::Sasl,
    /// Close the connection once the answer is written (a failed authentication).
    pub close_after_response: bool,
    /// Whether `principal` is a client certificate's subject (which SASL may replace).
    from_certificate: bool,
}

impl Session {
    /// A new connection from `peer`: anonymous when `authentication` is off; with it on,
    /// authenticated as the subject of its verified client certificate (`tls_subject`, mutual
    /// TLS) if any, else not yet.
    pub(crate) fn new(peer: SocketAddr, authentication: bool, tls_subject: Option<String>) -> Self {
        let principal = if authentication {
            tls_subject.and_then(|subject| Principal::user(subject).ok())
        } else {
            Some(Principal::anonymous())
        };
        Self {
            peer,
            client_id: String::new(),
            from_certificate: authentication && principal.is_some(),
            principal,
            sasl: api::sasl::Sasl::default(),
            close_after_response: false,
        }
    }

    /// The connection authenticated as `principal`; a re-authentication (KIP-368) must be as
    /// the same principal.
    pub(crate) fn authenticated(&mut self, principal: Principal) -> Result<(), String> {
        match &self.principal {
            Some(current) if !self.from_certificate && *current != principal => Err(format!(
                "re-authentication as {principal} on a connection of {current}"
            )),
            _ => {
                self.principal = Some(principal);
                self.from_certificate = false;
                Ok(())
            }
        }
    }
}

/// Decodes `$request`'s body as `$body`, runs the handler expression on it, and encodes what it
/// returns as the response.
macro_rules! answer {
    ($request:ident, $body:ident => $handler:expr) => {{
        let $body = $request.decode()?;
        $request.respond(&$handler)?
    }};
}

/// Decodes `$request`'s body as `$body`, asks the gate expression (an [`Access`] check) about
/// it, and either answers the gate's refusal or runs the handler on what the gate let through
/// and completes its response with the refused parts.
macro_rules! guarded {
    ($request:ident, $body:ident, $gate:expr => $handler:expr) => {{
        #[allow(unused_mut)]
        let mut $body = $request.decode()?;
        match $gate {
            Gate::Refuse(response) => $request.respond(&response)?,
            Gate::Pass(finish) => {
                let mut response = $handler;
                finish(&mut response);
                $request.respond(&response)?
            }
        }
    }};
}

/// Answers one request frame. `None` means the request wants no response (Produce with acks=0).
/// An error means the frame cannot be answered and the connection must close.
pub(crate) async fn handle(
    door: &ListenerState,
    session: &mut Session,
    frame: Bytes,
    stop: &watch::Receiver<()>,
) -> Result<Option<Frame>, KafkaError> {
    let request = match request::parse(frame)? {
        Incoming::Request(request) => request,
        Incoming::UnknownApiVersions { correlation_id } => {
            return api::api_versions::unknown_version(correlation_id).map(Some);
        }
    };
    if session.client_id != request.client_id() {
        session.client_id = request.client_id().to_owned();
    }
    let (key, client_id) = (request.api.key, session.client_id.clone());
    let answer = answer(door, session, request, stop);
    crate::observe::request(key, &client_id, answer).await
}

/// Answers a parsed request with its API's handler.
async fn answer(
    door: &ListenerState,
    session: &mut Session,
    mut request: request::Request,
    stop: &watch::Receiver<()>,
) -> Result<Option<Frame>, KafkaError> {
    let version = request.version;
    if session.principal.is_none()
        && !matches!(
            request.api.key,
            ApiKey::ApiVersions | ApiKey::SaslHandshake | ApiKey::SaslAuthenticate
        )
    {
        return Err(KafkaError::Unauthenticated {
            api: request.api.name,
        });
    }
    let principal = session
        .principal
        .clone()
        .unwrap_or_else(Principal::anonymous);
    let access = Access::new(
        door.config.security.auth.auth(),
        Identity::new(principal, session.peer.ip()),
    );
    let response = match request.api.key {
        ApiKey::ApiVersions => api::api_versions::handle(&request)?,
        ApiKey::SaslHandshake => {
            answer!(request, body => api::sasl::handshake(door, session, body))
        }
        ApiKey::SaslAuthenticate => {
            answer!(request, body => api::sasl::authenticate(door, session, body).await)
        }
        ApiKey::Metadata => {
            guarded!(request, body, access.metadata(door, &mut body) => api::metadata::handle(door, body, version).await)
        }
        ApiKey::Produce => {
            let mut body = request.decode()?;
            let finish = match access.produce(&mut body) {
                Gate::Refuse(response) => return request.respond(&response).map(Some),
                Gate::Pass(finish) => finish,
            };
            match api::produce::handle(door, body, &session.client_id).await {
                Some(mut response) => {
                    finish(&mut response);
                    request.respond(&response)?
                }
                None => return Ok(None),
            }
        }
        ApiKey::Fetch => {
            // The stored batches go into the frame uncopied (frame::ResponseFrame).
            let mut body = request.decode()?;
            match access.fetch(door, &mut body, version) {
                Gate::Refuse(response) => request.respond(&response)?,
                Gate::Pass(finish) => {
                    let mut response = api::fetch::handle(door, body, version, stop).await;
                    finish(&mut response);
                    let batches = api::fetch::stored_batches(&response);
                    request.respond_sharing(&response, batches)?
                }
            }
        }
        ApiKey::ListOffsets => {
            guarded!(request, body, access.list_offsets(&mut body) => api::offsets::list_offsets(door, body).await)
        }
        ApiKey::OffsetForLeaderEpoch => {
            guarded!(request, body, access.offset_for_leader_epoch(&mut body) => api::offsets::offset_for_leader_epoch(door, body))
        }
        ApiKey::FindCoordinator => {
            guarded!(request, body, access.find_coordinator(&mut body, version) => api::groups::find_coordinator(door, body, version))
        }
        ApiKey::JoinGroup => {
            guarded!(request, body, access.join_group(&body) => api::groups::join_group(door, session, body, version, stop).await)
        }
        ApiKey::SyncGroup => {
            guarded!(request, body, access.sync_group(&body) => api::groups::sync_group(door, body, stop).await)
        }
        ApiKey::Heartbeat => {
            guarded!(request, body, access.heartbeat(&body) => api::groups::heartbeat(door, body))
        }
        ApiKey::LeaveGroup => {
            guarded!(request, body, access.leave_group(&body) => api::groups::leave_group(door, body, version))
        }
        ApiKey::ListGroups => {
            guarded!(request, body, access.list_groups() => api::groups::list_groups(door, body))
        }
        ApiKey::ConsumerGroupHeartbeat => {
            guarded!(request, body, access.consumer_group_heartbeat(&body) => api::consumer_groups::heartbeat(door, session, body, version))
        }
        ApiKey::ConsumerGroupDescribe => {
            guarded!(request, body, access.consumer_group_describe(&mut body) => api::consumer_groups::describe(door, body))
        }
        ApiKey::DescribeGroups => {
            guarded!(request, body, access.describe_groups(&mut body) => api::groups::describe_groups(door, body))
        }
        ApiKey::OffsetCommit => {
            guarded!(request, body, access.offset_commit(&mut body) => api::commits::offset_commit(door, body, version).await)
        }
        ApiKey::OffsetFetch => {
            guarded!(request, body, access.offset_fetch(&mut body) => api::commits::offset_fetch(door, body, version))
        }
        ApiKey::InitProducerId => {
            guarded!(request, body, access.init_producer_id(&body) => api::init_producer_id::handle(door, body, version).await)
        }
        ApiKey::AddPartitionsToTxn => {
            guarded!(request, body, access.add_partitions_to_txn(&body) => api::txn::add_partitions(door, body, version).await)
        }
        ApiKey::AddOffsetsToTxn => {
            guarded!(request, body, access.add_offsets_to_txn(&body) => api::txn::add_offsets(door, body, version).await)
        }
        ApiKey::EndTxn => {
            guarded!(request, body, access.end_txn(&body) => api::txn::end(door, body, version).await)
        }
        ApiKey::TxnOffsetCommit => {
            guarded!(request, body, access.txn_offset_commit(&mut body) => api::txn::offset_commit(door, body, version).await)
        }
        ApiKey::ListTransactions => {
            guarded!(request, body, access.list_transactions() => api::txn_admin::list(door, body))
        }
        ApiKey::DescribeTransactions => {
            guarded!(request, body, access.describe_transactions(&mut body) => api::txn_admin::describe(door, body))
        }
        ApiKey::DescribeProducers => {
            guarded!(request, body, access.describe_producers(&mut body) => api::txn_admin::describe_producers(door, body))
        }
        ApiKey::CreateTopics => {
            guarded!(request, body, access.create_topics(&mut body) => api::admin::create_topics(door, body).await)
        }
        ApiKey::DeleteTopics => {
            guarded!(request, body, access.delete_topics(&mut body) => api::admin::delete_topics(door, body, version).await)
        }
        ApiKey::DescribeConfigs => {
            guarded!(request, body, access.describe_configs(&mut body) => api::configs::describe_configs(door, body, version))
        }
        ApiKey::AlterConfigs => {
            guarded!(request, body, access.alter_configs(&mut body) => api::configs::alter_configs(door, body).await)
        }
        ApiKey::IncrementalAlterConfigs => {
            guarded!(request, body, access.incremental_alter_configs(&mut body) => api::configs::incremental_alter_configs(door, body).await)
        }
        ApiKey::CreatePartitions => {
            guarded!(request, body, access.create_partitions(&mut body) => api::admin::create_partitions(door, body).await)
        }
        ApiKey::DeleteRecords => {
            guarded!(request, body, access.delete_records(&mut body) => api::admin::delete_records(door, body).await)
        }
        ApiKey::DescribeCluster => {
            guarded!(request, body, access.describe_cluster(&body) => api::cluster::describe_cluster(door, body))
        }
        ApiKey::DescribeLogDirs => {
            guarded!(request, body, access.describe_log_dirs() => api::cluster::describe_log_dirs(door, body))
        }
        ApiKey::ElectLeaders => {
            guarded!(request, body, access.elect_leaders() => api::cluster::elect_leaders(door, body))
        }
        ApiKey::DeleteGroups => {
            guarded!(request, body, access.delete_groups(&mut body) => api::group_admin::delete_groups(door, body).await)
        }
        ApiKey::OffsetDelete => {
            guarded!(request, body, access.offset_delete(&mut body) => api::group_admin::offset_delete(door, body).await)
        }
        ApiKey::DescribeAcls => {
            answer!(request, body => api::acls::describe(door, &access, body))
        }
        ApiKey::CreateAcls => {
            answer!(request, body => api::acls::create(door, &access, body).await)
        }
        ApiKey::DeleteAcls => {
            answer!(request, body => api::acls::delete(door, &access, body).await)
        }
        ApiKey::DescribeUserScramCredentials => {
            answer!(request, body => api::scram::describe(door, &access, body))
        }
        ApiKey::AlterUserScramCredentials => {
            answer!(request, body => api::scram::alter(door, &access, body).await)
        }
        other => {
            // versions::APIS lists only the keys above; a key added there but not here is a
            // bug, reported to the client as an unknown API rather than a panic.
            return Err(KafkaError::UnknownApi { key: other as i16 });
        }
    };
    Ok(Some(response))
}
