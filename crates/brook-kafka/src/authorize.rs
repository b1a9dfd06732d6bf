//! Authorization at the Kafka door: each request is checked against the broker's one
//! authorizer ([`brook_broker::auth::Auth`]) before its handler runs, the way Kafka's
//! `KafkaApis` asks its `AclAuthorizer` (docs/security.md, "Authorization").
//!
//! Each check takes the decoded request and gives a [`Gate`]: either the whole request is
//! refused with a response carrying the API's authorization error, or it passes with the parts
//! the principal may not touch taken out (a topic of a Produce, a group of a DescribeGroups),
//! and the handler answers the rest; the taken-out parts are then added to its response with
//! their error (`TOPIC_AUTHORIZATION_FAILED` 29, `GROUP_AUTHORIZATION_FAILED` 30,
//! `CLUSTER_AUTHORIZATION_FAILED` 31, `TRANSACTIONAL_ID_AUTHORIZATION_FAILED` 53), and listings
//! keep only what the principal may describe. The handlers themselves know nothing of ACLs.
//!
//! | API | needs |
//! |-----|-------|
//! | Produce | `Write` topic; with a transactional id, `Write` on it |
//! | Fetch | `Read` topic |
//! | Metadata, ListOffsets, OffsetForLeaderEpoch | `Describe` topic (Metadata lists only those); auto-creation `Create` cluster or topic |
//! | CreateTopics | `Create` cluster or topic |
//! | DeleteTopics, DeleteRecords | `Delete` topic |
//! | CreatePartitions | `Alter` topic |
//! | DescribeConfigs / AlterConfigs, IncrementalAlterConfigs | `DescribeConfigs` / `AlterConfigs` topic, or cluster for a broker |
//! | FindCoordinator | `Describe` group or transactional id |
//! | JoinGroup, SyncGroup, Heartbeat, LeaveGroup | `Read` group |
//! | OffsetCommit | `Read` group and `Read` topic |
//! | OffsetFetch | `Describe` group and `Describe` topic |
//! | ConsumerGroupHeartbeat (KIP-848) | `Read` group, `Describe` each subscribed topic |
//! | DescribeGroups, ConsumerGroupDescribe | `Describe` group; ListGroups lists those (all with `Describe` cluster) |
//! | DeleteGroups | `Delete` group; OffsetDelete `Delete` group and `Read` topic |
//! | InitProducerId | `Write` transactional id; without one `IdempotentWrite` cluster or `Write` on some topic |
//! | AddPartitionsToTxn | `Write` transactional id and `Write` topic |
//! | AddOffsetsToTxn, TxnOffsetCommit | `Write` transactional id and `Read` group (and `Read` topic) |
//! | EndTxn | `Write` transactional id |
//! | ListTransactions, DescribeTransactions | `Describe` transactional id |
//! | DescribeProducers | `Read` topic |
//! | DescribeLogDirs / ElectLeaders | `Describe` / `Alter` cluster |
//! | DescribeAcls / CreateAcls, DeleteAcls | `Describe` / `Alter` cluster (api::acls) |
//!
//! ApiVersions, the SASL exchange and DescribeCluster need nothing, as in Kafka.
//!
//! Where a request asks for them (Metadata v8+ `include_topic_authorized_operations`, v8-10
//! `include_cluster_authorized_operations`, DescribeCluster, DescribeGroups v3+,
//! ConsumerGroupDescribe), the gates also fill the response's `authorized_operations` fields
//! with Kafka's bit set (bit `code` per operation the principal may do on the resource, of the
//! operations Kafka defines for its type); unasked, they stay `i32::MIN`.

use brook_broker::auth::{Auth, Identity, Operation as Op, Resource, ResourceType};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{self as m, BrokerId, GroupId, TopicName, TransactionalId};
use kafka_protocol::protocol::StrBytes;

use crate::codes::authorization_failed;
use crate::state::ListenerState;

/// Who asks, and the authorizer that answers.
pub(crate) struct Access<'a> {
    auth: &'a Auth,
    who: Identity,
}

/// What to do after the handler: add the refused parts to its response.
pub(crate) type After<R> = Box<dyn FnOnce(&mut R) + Send>;

/// A check's verdict on one request.
pub(crate) enum Gate<R> {
    /// Refused as a whole: this is the response.
    Refuse(R),
    /// Let through (perhaps with parts taken out): call the handler, then this on its response.
    Pass(After<R>),
}

fn pass<R>() -> Gate<R> {
    Gate::Pass(Box::new(|_| {}))
}

fn after<R>(finish: impl FnOnce(&mut R) + Send + 'static) -> Gate<R> {
    Gate::Pass(Box::new(finish))
}

const TOPIC: ResourceType = ResourceType::Topic;
const GROUP: ResourceType = ResourceType::Group;
const CLUSTER: ResourceType = ResourceType::Cluster;
const TXN: ResourceType = ResourceType::TransactionalId;

/// The wire code of the authorization error for `kind`.
fn denied(kind: ResourceType) -> i16 {
    let error = authorization_failed(kind);
    crate::observe::note_error(error);
    error.code()
}

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

/// Kafka's `authorized_operations` bit set for `resource`: bit `code` set for each operation
/// Kafka defines on its type ([`ResourceType::operations`]) that `who` may do on it (with auth
/// off, all but what internal topics refuse).
fn authorized_operations(auth: &Auth, who: &Identity, resource: Resource<'_>) -> i32 {
    resource
        .kind
        .operations()
        .iter()
        .filter(|op| auth.allowed(who, **op, resource))
        .fold(0, |bits, op| bits | 1 << op.code())
}

/// The cluster's bit set: 0 without `Describe` on it, as Kafka's Metadata and DescribeCluster
/// answer.
fn cluster_authorized_operations(auth: &Auth, who: &Identity) -> i32 {
    if auth.allowed(who, Op::Describe, Resource::cluster()) {
        authorized_operations(auth, who, Resource::cluster())
    } else {
        0
    }
}

/// The gate of DescribeGroups and ConsumerGroupDescribe (two types with the same fields): the
/// groups the principal may not describe are taken out and answered
/// `GROUP_AUTHORIZATION_FAILED`; when `$operations` (the request asks for them), the described
/// groups' `authorized_operations` are filled.
macro_rules! describe_groups_gate {
    ($access:ident, $groups:expr, $operations:expr, $response:ty, $described:ty) => {{
        let refused = take($groups, |g| !$access.group(Op::Describe, g));
        let operations = $operations;
        if refused.is_empty() && !operations {
            return pass();
        }
        let code = if refused.is_empty() { 0 } else { denied(GROUP) };
        let (auth, who) = ($access.auth.clone(), $access.who.clone());
        after(move |resp: &mut $response| {
            for group in resp
                .groups
                .iter_mut()
                .filter(|g| operations && g.error_code == 0)
            {
                group.authorized_operations =
                    authorized_operations(&auth, &who, Resource::group(&group.group_id));
            }
            for group in refused {
                resp.groups.push(
                    <$described>::default()
                        .with_group_id(group)
                        .with_error_code(code),
                );
            }
        })
    }};
}

/// Takes out of `items` those `refused` says no to, and returns them.
fn take<T>(items: &mut Vec<T>, refused: impl Fn(&T) -> bool) -> Vec<T> {
    let (out, kept): (Vec<T>, Vec<T>) = std::mem::take(items).into_iter().partition(refused);
    *items = kept;
    out
}

impl<'a> Access<'a> {
    pub(crate) fn new(auth: &'a Auth, who: Identity) -> Self {
        Self { auth, who }
    }

    /// Whether the principal may do `op` on `resource`.
    pub(crate) fn may(&self, op: Op, resource: Resource<'_>) -> bool {
        self.auth.allowed(&self.who, op, resource)
    }

    fn topic(&self, op: Op, name: &str) -> bool {
        self.may(op, Resource::topic(name))
    }

    fn group(&self, op: Op, name: &str) -> bool {
        self.may(op, Resource::group(name))
    }

    fn txn(&self, op: Op, name: &str) -> bool {
        self.may(op, Resource::transactional_id(name))
    }

    pub(crate) fn cluster(&self, op: Op) -> bool {
        self.may(op, Resource::cluster())
    }

    /// `Create` on the cluster or on the topic `name` (`Auth::may_create_topic`).
    fn create_topic(&self, name: &str) -> bool {
        self.auth.may_create_topic(&self.who, name)
    }

    /// A config resource (2 topic, 4 broker, 8 broker logger) by `op`.
    fn config(&self, op: Op, resource_type: i8, name: &str) -> Option<ResourceType> {
        let (kind, allowed) = if resource_type == 2 {
            (TOPIC, self.topic(op, name))
        } else {
            (CLUSTER, self.cluster(op))
        };
        (!allowed).then_some(kind)
    }

    // ---- topics ---------------------------------------------------------------------------

    pub(crate) fn produce(&self, req: &mut m::ProduceRequest) -> Gate<m::ProduceResponse> {
        let (refused, kind) = match &req.transactional_id {
            Some(id) if !self.txn(Op::Write, &id.0) => (std::mem::take(&mut req.topic_data), TXN),
            _ => (
                take(&mut req.topic_data, |t| !self.topic(Op::Write, &t.name.0)),
                TOPIC,
            ),
        };
        if refused.is_empty() {
            return pass();
        }
        let code = denied(kind);
        after(move |resp: &mut m::ProduceResponse| {
            for t in refused {
                let partitions = t.partition_data.iter().map(|p| {
                    m::produce_response::PartitionProduceResponse::default()
                        .with_index(p.index)
                        .with_error_code(code)
                        .with_base_offset(-1)
                        .with_log_start_offset(-1)
                        .with_log_append_time_ms(-1)
                });
                resp.responses.push(
                    m::produce_response::TopicProduceResponse::default()
                        .with_name(t.name)
                        .with_topic_id(t.topic_id)
                        .with_partition_responses(partitions.collect()),
                );
            }
        })
    }

    pub(crate) fn fetch(
        &self,
        door: &ListenerState,
        req: &mut m::FetchRequest,
        version: i16,
    ) -> Gate<m::FetchResponse> {
        if version >= 13 {
            crate::api::fetch::name_topics_by_id(door, req);
        }
        // An unknown id (no name) is the handler's UNKNOWN_TOPIC_ID.
        let refused = take(&mut req.topics, |t| {
            !t.topic.0.is_empty() && !self.topic(Op::Read, &t.topic.0)
        });
        if refused.is_empty() {
            return pass();
        }
        let code = denied(TOPIC);
        after(move |resp: &mut m::FetchResponse| {
            for t in refused {
                let partitions = t.partitions.iter().map(|p| {
                    m::fetch_response::PartitionData::default()
                        .with_partition_index(p.partition)
                        .with_error_code(code)
                        .with_high_watermark(-1)
                        .with_last_stable_offset(-1)
                        .with_log_start_offset(-1)
                });
                resp.responses.push(
                    m::fetch_response::FetchableTopicResponse::default()
                        .with_topic(t.topic)
                        .with_topic_id(t.topic_id)
                        .with_partitions(partitions.collect()),
                );
            }
        })
    }

    pub(crate) fn metadata(
        &self,
        door: &ListenerState,
        req: &mut m::MetadataRequest,
    ) -> Gate<m::MetadataResponse> {
        // Named topics the principal may not describe, or may not create when they would be
        // created, are answered here; the rest of the answer lists only describable topics.
        let mut refused: Vec<TopicName> = Vec::new();
        if let Some(topics) = &mut req.topics {
            for t in take(topics, |t| {
                t.name.as_ref().is_some_and(|name| {
                    !self.topic(Op::Describe, name)
                        || (door.broker.describe_topic(name).is_err() && !self.create_topic(name))
                })
            }) {
                refused.extend(t.name);
            }
        }
        let auth = self.auth.clone();
        let who = self.who.clone();
        let listing = req.topics.is_none();
        let topic_operations = req.include_topic_authorized_operations;
        // Only v8-10 carry the cluster's (decoding leaves the flag false elsewhere).
        let cluster_operations = req.include_cluster_authorized_operations;
        after(move |resp: &mut m::MetadataResponse| {
            let may = |name: &str| auth.allowed(&who, Op::Describe, Resource::topic(name));
            if listing {
                resp.topics
                    .retain(|t| t.name.as_ref().is_some_and(|name| may(name)));
            } else {
                for t in &mut resp.topics {
                    if t.name.as_ref().is_some_and(|name| !may(name)) {
                        // Asked by id: the name is not told either.
                        *t = m::metadata_response::MetadataResponseTopic::default()
                            .with_topic_id(t.topic_id)
                            .with_error_code(denied(TOPIC));
                    }
                }
            }
            if topic_operations {
                let refused = authorization_failed(TOPIC).code();
                for t in &mut resp.topics {
                    if let (Some(name), true) = (&t.name, t.error_code != refused) {
                        t.topic_authorized_operations =
                            authorized_operations(&auth, &who, Resource::topic(name));
                    }
                }
            }
            if cluster_operations {
                resp.cluster_authorized_operations = cluster_authorized_operations(&auth, &who);
            }
            for name in refused {
                resp.topics.push(
                    m::metadata_response::MetadataResponseTopic::default()
                        .with_name(Some(name))
                        .with_error_code(denied(TOPIC)),
                );
            }
        })
    }

    /// DescribeCluster needs nothing; its `cluster_authorized_operations`, when asked for, is
    /// the principal's (0 without `Describe` on the cluster, as Kafka answers).
    pub(crate) fn describe_cluster(
        &self,
        req: &m::DescribeClusterRequest,
    ) -> Gate<m::DescribeClusterResponse> {
        if !req.include_cluster_authorized_operations {
            return pass();
        }
        let operations = cluster_authorized_operations(self.auth, &self.who);
        after(move |resp: &mut m::DescribeClusterResponse| {
            resp.cluster_authorized_operations = operations;
        })
    }

    pub(crate) fn list_offsets(
        &self,
        req: &mut m::ListOffsetsRequest,
    ) -> Gate<m::ListOffsetsResponse> {
        let refused = take(&mut req.topics, |t| !self.topic(Op::Describe, &t.name.0));
        if refused.is_empty() {
            return pass();
        }
        let code = denied(TOPIC);
        after(move |resp: &mut m::ListOffsetsResponse| {
            for t in refused {
                let partitions = t.partitions.iter().map(|p| {
                    m::list_offsets_response::ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code)
                        .with_timestamp(-1)
                        .with_offset(-1)
                });
                resp.topics.push(
                    m::list_offsets_response::ListOffsetsTopicResponse::default()
                        .with_name(t.name)
                        .with_partitions(partitions.collect()),
                );
            }
        })
    }

    pub(crate) fn offset_for_leader_epoch(
        &self,
        req: &mut m::OffsetForLeaderEpochRequest,
    ) -> Gate<m::OffsetForLeaderEpochResponse> {
        let refused = take(&mut req.topics, |t| !self.topic(Op::Describe, &t.topic.0));
        if refused.is_empty() {
            return pass();
        }
        let code = denied(TOPIC);
        after(move |resp: &mut m::OffsetForLeaderEpochResponse| {
            for t in refused {
                let partitions = t.partitions.iter().map(|p| {
                    m::offset_for_leader_epoch_response::EpochEndOffset::default()
                        .with_partition(p.partition)
                        .with_error_code(code)
                        .with_leader_epoch(-1)
                        .with_end_offset(-1)
                });
                resp.topics.push(
                    m::offset_for_leader_epoch_response::OffsetForLeaderTopicResult::default()
                        .with_topic(t.topic)
                        .with_partitions(partitions.collect()),
                );
            }
        })
    }

    pub(crate) fn create_topics(
        &self,
        req: &mut m::CreateTopicsRequest,
    ) -> Gate<m::CreateTopicsResponse> {
        let refused = take(&mut req.topics, |t| !self.create_topic(&t.name.0));
        if refused.is_empty() {
            return pass();
        }
        let code = denied(TOPIC);
        after(move |resp: &mut m::CreateTopicsResponse| {
            for t in refused {
                resp.topics.push(
                    m::create_topics_response::CreatableTopicResult::default()
                        .with_name(t.name)
                        .with_error_code(code)
                        .with_error_message(Some(text("not authorized to create this topic")))
                        .with_num_partitions(-1)
                        .with_replication_factor(-1),
                );
            }
        })
    }

    pub(crate) fn delete_topics(
        &self,
        req: &mut m::DeleteTopicsRequest,
    ) -> Gate<m::DeleteTopicsResponse> {
        let refused = take(&mut req.topic_names, |t| !self.topic(Op::Delete, &t.0));
        if refused.is_empty() {
            return pass();
        }
        let code = denied(TOPIC);
        after(move |resp: &mut m::DeleteTopicsResponse| {
            for name in refused {
                resp.responses.push(
                    m::delete_topics_response::DeletableTopicResult::default()
                        .with_name(Some(name))
                        .with_error_code(code),
                );
            }
        })
    }

    pub(crate) fn create_partitions(
        &self,
        req: &mut m::CreatePartitionsRequest,
    ) -> Gate<m::CreatePartitionsResponse> {
        let refused = take(&mut req.topics, |t| !self.topic(Op::Alter, &t.name.0));
        if refused.is_empty() {
            return pass();
        }
        let code = denied(TOPIC);
        after(move |resp: &mut m::CreatePartitionsResponse| {
            for t in refused {
                resp.results.push(
                    m::create_partitions_response::CreatePartitionsTopicResult::default()
                        .with_name(t.name)
                        .with_error_code(code),
                );
            }
        })
    }

    pub(crate) fn delete_records(
        &self,
        req: &mut m::DeleteRecordsRequest,
    ) -> Gate<m::DeleteRecordsResponse> {
        let refused = take(&mut req.topics, |t| !self.topic(Op::Delete, &t.name.0));
        if refused.is_empty() {
            return pass();
        }
        let code = denied(TOPIC);
        after(move |resp: &mut m::DeleteRecordsResponse| {
            for t in refused {
                let partitions = t.partitions.iter().map(|p| {
                    m::delete_records_response::DeleteRecordsPartitionResult::default()
                        .with_partition_index(p.partition_index)
                        .with_low_watermark(-1)
                        .with_error_code(code)
                });
                resp.topics.push(
                    m::delete_records_response::DeleteRecordsTopicResult::default()
                        .with_name(t.name)
                        .with_partitions(partitions.collect()),
                );
            }
        })
    }

    pub(crate) fn describe_producers(
        &self,
        req: &mut m::DescribeProducersRequest,
    ) -> Gate<m::DescribeProducersResponse> {
        let refused = take(&mut req.topics, |t| !self.topic(Op::Read, &t.name.0));
        if refused.is_empty() {
            return pass();
        }
        let code = denied(TOPIC);
        after(move |resp: &mut m::DescribeProducersResponse| {
            for t in refused {
                let partitions = t.partition_indexes.iter().map(|p| {
                    m::describe_producers_response::PartitionResponse::default()
                        .with_partition_index(*p)
                        .with_error_code(code)
                });
                resp.topics.push(
                    m::describe_producers_response::TopicResponse::default()
                        .with_name(t.name)
                        .with_partitions(partitions.collect()),
                );
            }
        })
    }

    // ---- configs --------------------------------------------------------------------------

    pub(crate) fn describe_configs(
        &self,
        req: &mut m::DescribeConfigsRequest,
    ) -> Gate<m::DescribeConfigsResponse> {
        let refused: Vec<_> = take(&mut req.resources, |r| {
            self.config(Op::DescribeConfigs, r.resource_type, &r.resource_name)
                .is_some()
        })
        .into_iter()
        .map(|r| {
            let kind = self
                .config(Op::DescribeConfigs, r.resource_type, &r.resource_name)
                .unwrap_or(CLUSTER);
            (r.resource_type, r.resource_name, denied(kind))
        })
        .collect();
        if refused.is_empty() {
            return pass();
        }
        after(move |resp: &mut m::DescribeConfigsResponse| {
            for (resource_type, name, code) in refused {
                resp.results.push(
                    m::describe_configs_response::DescribeConfigsResult::default()
                        .with_resource_type(resource_type)
                        .with_resource_name(name)
                        .with_error_code(code),
                );
            }
        })
    }

    pub(crate) fn alter_configs(
        &self,
        req: &mut m::AlterConfigsRequest,
    ) -> Gate<m::AlterConfigsResponse> {
        let refused = self.refused_configs(&mut req.resources, |r| {
            (r.resource_type, r.resource_name.clone())
        });
        if refused.is_empty() {
            return pass();
        }
        after(move |resp: &mut m::AlterConfigsResponse| {
            resp.responses
                .extend(refused.into_iter().map(alter_refusal))
        })
    }

    pub(crate) fn incremental_alter_configs(
        &self,
        req: &mut m::IncrementalAlterConfigsRequest,
    ) -> Gate<m::IncrementalAlterConfigsResponse> {
        let refused = self.refused_configs(&mut req.resources, |r| {
            (r.resource_type, r.resource_name.clone())
        });
        if refused.is_empty() {
            return pass();
        }
        after(move |resp: &mut m::IncrementalAlterConfigsResponse| {
            for (resource_type, name, code) in refused {
                resp.responses.push(
                    m::incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                        .with_resource_type(resource_type)
                        .with_resource_name(name)
                        .with_error_code(code),
                );
            }
        })
    }

    /// Takes out the config resources the principal may not alter: (type, name, code).
    fn refused_configs<T>(
        &self,
        resources: &mut Vec<T>,
        key: impl Fn(&T) -> (i8, StrBytes),
    ) -> Vec<(i8, StrBytes, i16)> {
        take(resources, |r| {
            let (resource_type, name) = key(r);
            self.config(Op::AlterConfigs, resource_type, &name)
                .is_some()
        })
        .iter()
        .map(|r| {
            let (resource_type, name) = key(r);
            let kind = self
                .config(Op::AlterConfigs, resource_type, &name)
                .unwrap_or(CLUSTER);
            (resource_type, name, denied(kind))
        })
        .collect()
    }

    // ---- groups ---------------------------------------------------------------------------

    pub(crate) fn find_coordinator(
        &self,
        req: &mut m::FindCoordinatorRequest,
        version: i16,
    ) -> Gate<m::FindCoordinatorResponse> {
        let kind = if req.key_type == 1 { TXN } else { GROUP };
        let may = |key: &str| self.may(Op::Describe, Resource { kind, name: key });
        if version < 4 {
            if may(&req.key) {
                return pass();
            }
            return Gate::Refuse(
                m::FindCoordinatorResponse::default()
                    .with_error_code(denied(kind))
                    .with_node_id(BrokerId(-1))
                    .with_port(-1),
            );
        }
        let refused = take(&mut req.coordinator_keys, |key| !may(key));
        if refused.is_empty() {
            return pass();
        }
        let code = denied(kind);
        after(move |resp: &mut m::FindCoordinatorResponse| {
            for key in refused {
                resp.coordinators.push(
                    m::find_coordinator_response::Coordinator::default()
                        .with_key(key)
                        .with_node_id(BrokerId(-1))
                        .with_port(-1)
                        .with_error_code(code),
                );
            }
        })
    }

    /// `Read` on `group`, else the whole request is refused with `refusal(code)`.
    fn group_member<R>(&self, group: &GroupId, refusal: impl FnOnce(i16) -> R) -> Gate<R> {
        if self.group(Op::Read, group) {
            pass()
        } else {
            Gate::Refuse(refusal(denied(GROUP)))
        }
    }

    pub(crate) fn join_group(&self, req: &m::JoinGroupRequest) -> Gate<m::JoinGroupResponse> {
        self.group_member(&req.group_id, |code| {
            m::JoinGroupResponse::default()
                .with_error_code(code)
                .with_generation_id(-1)
                .with_member_id(req.member_id.clone())
        })
    }

    pub(crate) fn sync_group(&self, req: &m::SyncGroupRequest) -> Gate<m::SyncGroupResponse> {
        self.group_member(&req.group_id, |code| {
            m::SyncGroupResponse::default().with_error_code(code)
        })
    }

    pub(crate) fn heartbeat(&self, req: &m::HeartbeatRequest) -> Gate<m::HeartbeatResponse> {
        self.group_member(&req.group_id, |code| {
            m::HeartbeatResponse::default().with_error_code(code)
        })
    }

    pub(crate) fn leave_group(&self, req: &m::LeaveGroupRequest) -> Gate<m::LeaveGroupResponse> {
        self.group_member(&req.group_id, |code| {
            m::LeaveGroupResponse::default().with_error_code(code)
        })
    }

    /// KIP-848's heartbeat: `Read` on the group, `Describe` on each subscribed topic.
    pub(crate) fn consumer_group_heartbeat(
        &self,
        req: &m::ConsumerGroupHeartbeatRequest,
    ) -> Gate<m::ConsumerGroupHeartbeatResponse> {
        let refusal = |code: i16, message: String| {
            m::ConsumerGroupHeartbeatResponse::default()
                .with_error_code(code)
                .with_error_message(Some(StrBytes::from_string(message)))
                .with_member_epoch(-1)
        };
        if !self.group(Op::Read, &req.group_id) {
            return Gate::Refuse(refusal(
                denied(GROUP),
                format!("not authorized to join group {:?}", &*req.group_id),
            ));
        }
        let hidden: Vec<&str> = req
            .subscribed_topic_names
            .iter()
            .flatten()
            .map(|t| &*t.0)
            .filter(|t| !self.topic(Op::Describe, t))
            .collect();
        if hidden.is_empty() {
            return pass();
        }
        Gate::Refuse(refusal(
            denied(TOPIC),
            format!("not authorized to describe topics {hidden:?}"),
        ))
    }

    pub(crate) fn consumer_group_describe(
        &self,
        req: &mut m::ConsumerGroupDescribeRequest,
    ) -> Gate<m::ConsumerGroupDescribeResponse> {
        describe_groups_gate!(
            self,
            &mut req.group_ids,
            req.include_authorized_operations,
            m::ConsumerGroupDescribeResponse,
            m::consumer_group_describe_response::DescribedGroup
        )
    }

    pub(crate) fn list_groups(&self) -> Gate<m::ListGroupsResponse> {
        if self.cluster(Op::Describe) {
            return pass();
        }
        let (auth, who) = (self.auth.clone(), self.who.clone());
        after(move |resp: &mut m::ListGroupsResponse| {
            resp.groups
                .retain(|g| auth.allowed(&who, Op::Describe, Resource::group(&g.group_id)));
        })
    }

    pub(crate) fn describe_groups(
        &self,
        req: &mut m::DescribeGroupsRequest,
    ) -> Gate<m::DescribeGroupsResponse> {
        // The flag is v3+ (decoding leaves it false before).
        describe_groups_gate!(
            self,
            &mut req.groups,
            req.include_authorized_operations,
            m::DescribeGroupsResponse,
            m::describe_groups_response::DescribedGroup
        )
    }

    pub(crate) fn delete_groups(
        &self,
        req: &mut m::DeleteGroupsRequest,
    ) -> Gate<m::DeleteGroupsResponse> {
        let refused = take(&mut req.groups_names, |g| !self.group(Op::Delete, g));
        if refused.is_empty() {
            return pass();
        }
        let code = denied(GROUP);
        after(move |resp: &mut m::DeleteGroupsResponse| {
            for group in refused {
                resp.results.push(
                    m::delete_groups_response::DeletableGroupResult::default()
                        .with_group_id(group)
                        .with_error_code(code),
                );
            }
        })
    }

    pub(crate) fn offset_delete(
        &self,
        req: &mut m::OffsetDeleteRequest,
    ) -> Gate<m::OffsetDeleteResponse> {
        if !self.group(Op::Delete, &req.group_id) {
            return Gate::Refuse(m::OffsetDeleteResponse::default().with_error_code(denied(GROUP)));
        }
        let refused = take(&mut req.topics, |t| !self.topic(Op::Read, &t.name.0));
        if refused.is_empty() {
            return pass();
        }
        let code = denied(TOPIC);
        after(move |resp: &mut m::OffsetDeleteResponse| {
            for t in refused {
                let partitions = t.partitions.iter().map(|p| {
                    m::offset_delete_response::OffsetDeleteResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code)
                });
                resp.topics.push(
                    m::offset_delete_response::OffsetDeleteResponseTopic::default()
                        .with_name(t.name)
                        .with_partitions(partitions.collect()),
                );
            }
        })
    }

    pub(crate) fn offset_commit(
        &self,
        req: &mut m::OffsetCommitRequest,
    ) -> Gate<m::OffsetCommitResponse> {
        let group_ok = self.group(Op::Read, &req.group_id);
        let refused = if group_ok {
            take(&mut req.topics, |t| !self.topic(Op::Read, &t.name.0))
        } else {
            std::mem::take(&mut req.topics)
        };
        if group_ok && refused.is_empty() {
            return pass();
        }
        let code = denied(if group_ok { TOPIC } else { GROUP });
        let answer = move |resp: &mut m::OffsetCommitResponse| {
            for t in refused {
                let partitions = t.partitions.iter().map(|p| {
                    m::offset_commit_response::OffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code)
                });
                resp.topics.push(
                    m::offset_commit_response::OffsetCommitResponseTopic::default()
                        .with_name(t.name)
                        .with_topic_id(t.topic_id)
                        .with_partitions(partitions.collect()),
                );
            }
        };
        if group_ok {
            after(answer)
        } else {
            let mut response = m::OffsetCommitResponse::default();
            answer(&mut response);
            Gate::Refuse(response)
        }
    }

    pub(crate) fn offset_fetch(
        &self,
        req: &mut m::OffsetFetchRequest,
    ) -> Gate<m::OffsetFetchResponse> {
        if !req.groups.is_empty() {
            return self.offset_fetch_groups(req);
        }
        if !self.group(Op::Describe, &req.group_id) {
            let code = denied(GROUP);
            let topics = req.topics.iter().flatten().map(|t| {
                let partitions = t.partition_indexes.iter().map(|p| {
                    m::offset_fetch_response::OffsetFetchResponsePartition::default()
                        .with_partition_index(*p)
                        .with_committed_offset(-1)
                        .with_error_code(code)
                });
                m::offset_fetch_response::OffsetFetchResponseTopic::default()
                    .with_name(t.name.clone())
                    .with_partitions(partitions.collect())
            });
            return Gate::Refuse(
                m::OffsetFetchResponse::default()
                    .with_error_code(code)
                    .with_topics(topics.collect()),
            );
        }
        let refused = match &mut req.topics {
            Some(topics) => take(topics, |t| !self.topic(Op::Describe, &t.name.0)),
            None => Vec::new(),
        };
        let (auth, who) = (self.auth.clone(), self.who.clone());
        after(move |resp: &mut m::OffsetFetchResponse| {
            resp.topics
                .retain(|t| auth.allowed(&who, Op::Describe, Resource::topic(&t.name.0)));
            let code = if refused.is_empty() { 0 } else { denied(TOPIC) };
            for t in refused {
                let partitions = t.partition_indexes.iter().map(|p| {
                    m::offset_fetch_response::OffsetFetchResponsePartition::default()
                        .with_partition_index(*p)
                        .with_committed_offset(-1)
                        .with_error_code(code)
                });
                resp.topics.push(
                    m::offset_fetch_response::OffsetFetchResponseTopic::default()
                        .with_name(t.name)
                        .with_partitions(partitions.collect()),
                );
            }
        })
    }

    /// OffsetFetch v8+, which batches groups: each group is checked on its own (a refused one
    /// answers GROUP_AUTHORIZATION_FAILED), and in the others the partitions of topics the
    /// principal may not describe answer TOPIC_AUTHORIZATION_FAILED with no offset.
    fn offset_fetch_groups(&self, req: &mut m::OffsetFetchRequest) -> Gate<m::OffsetFetchResponse> {
        let refused: Vec<m::GroupId> =
            take(&mut req.groups, |g| !self.group(Op::Describe, &g.group_id))
                .into_iter()
                .map(|g| g.group_id)
                .collect();
        let (auth, who) = (self.auth.clone(), self.who.clone());
        after(move |resp: &mut m::OffsetFetchResponse| {
            for group in &mut resp.groups {
                for topic in &mut group.topics {
                    if auth.allowed(&who, Op::Describe, Resource::topic(&topic.name.0)) {
                        continue;
                    }
                    for p in &mut topic.partitions {
                        p.committed_offset = -1;
                        p.metadata = None;
                        p.error_code = denied(TOPIC);
                    }
                }
            }
            for group_id in refused {
                resp.groups.push(
                    m::offset_fetch_response::OffsetFetchResponseGroup::default()
                        .with_group_id(group_id)
                        .with_error_code(denied(GROUP)),
                );
            }
        })
    }

    // ---- producers and transactions -------------------------------------------------------

    pub(crate) fn init_producer_id(
        &self,
        req: &m::InitProducerIdRequest,
    ) -> Gate<m::InitProducerIdResponse> {
        let refused = match &req.transactional_id {
            Some(id) => (!self.txn(Op::Write, &id.0)).then_some(TXN),
            None => (!self.cluster(Op::IdempotentWrite)
                && !self.auth.allowed_on_some(&self.who, Op::Write, TOPIC))
            .then_some(CLUSTER),
        };
        match refused {
            None => pass(),
            Some(kind) => Gate::Refuse(
                m::InitProducerIdResponse::default()
                    .with_error_code(denied(kind))
                    .with_producer_id(m::ProducerId(-1))
                    .with_producer_epoch(-1),
            ),
        }
    }

    /// `Write` on the transactional id, else `refusal(53)`.
    fn transaction<R>(&self, id: &TransactionalId, refusal: impl FnOnce(i16) -> R) -> Option<R> {
        (!self.txn(Op::Write, id)).then(|| refusal(denied(TXN)))
    }

    pub(crate) fn add_partitions_to_txn(
        &self,
        req: &m::AddPartitionsToTxnRequest,
    ) -> Gate<m::AddPartitionsToTxnResponse> {
        let txn_ok = self.txn(Op::Write, &req.v3_and_below_transactional_id);
        let refused = |topic: &str| !txn_ok || !self.topic(Op::Write, topic);
        if !req.v3_and_below_topics.iter().any(|t| refused(&t.name.0)) {
            return pass();
        }
        // As Kafka: the refused partitions get their error, the others were not attempted.
        let mut response = m::AddPartitionsToTxnResponse::default();
        for t in &req.v3_and_below_topics {
            let code = if !txn_ok {
                denied(TXN)
            } else if refused(&t.name.0) {
                denied(TOPIC)
            } else {
                ResponseError::OperationNotAttempted.code()
            };
            let partitions = t.partitions.iter().map(|p| {
                m::add_partitions_to_txn_response::AddPartitionsToTxnPartitionResult::default()
                    .with_partition_index(*p)
                    .with_partition_error_code(code)
            });
            response.results_by_topic_v3_and_below.push(
                m::add_partitions_to_txn_response::AddPartitionsToTxnTopicResult::default()
                    .with_name(t.name.clone())
                    .with_results_by_partition(partitions.collect()),
            );
        }
        Gate::Refuse(response)
    }

    pub(crate) fn add_offsets_to_txn(
        &self,
        req: &m::AddOffsetsToTxnRequest,
    ) -> Gate<m::AddOffsetsToTxnResponse> {
        let refusal = |code| m::AddOffsetsToTxnResponse::default().with_error_code(code);
        if let Some(refused) = self.transaction(&req.transactional_id, refusal) {
            return Gate::Refuse(refused);
        }
        self.group_member(&req.group_id, refusal)
    }

    pub(crate) fn end_txn(&self, req: &m::EndTxnRequest) -> Gate<m::EndTxnResponse> {
        match self.transaction(&req.transactional_id, |code| {
            m::EndTxnResponse::default()
                .with_error_code(code)
                .with_producer_id(m::ProducerId(-1))
                .with_producer_epoch(-1)
        }) {
            Some(refused) => Gate::Refuse(refused),
            None => pass(),
        }
    }

    pub(crate) fn txn_offset_commit(
        &self,
        req: &mut m::TxnOffsetCommitRequest,
    ) -> Gate<m::TxnOffsetCommitResponse> {
        let code = if !self.txn(Op::Write, &req.transactional_id) {
            Some(denied(TXN))
        } else if !self.group(Op::Read, &req.group_id) {
            Some(denied(GROUP))
        } else {
            None
        };
        let refused = match code {
            Some(_) => std::mem::take(&mut req.topics),
            None => take(&mut req.topics, |t| !self.topic(Op::Read, &t.name.0)),
        };
        let whole = code.is_some();
        let code = code.unwrap_or_else(|| if refused.is_empty() { 0 } else { denied(TOPIC) });
        let answer = move |resp: &mut m::TxnOffsetCommitResponse| {
            for t in refused {
                let partitions = t.partitions.iter().map(|p| {
                    m::txn_offset_commit_response::TxnOffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code)
                });
                resp.topics.push(
                    m::txn_offset_commit_response::TxnOffsetCommitResponseTopic::default()
                        .with_name(t.name)
                        .with_partitions(partitions.collect()),
                );
            }
        };
        if whole {
            let mut response = m::TxnOffsetCommitResponse::default();
            answer(&mut response);
            Gate::Refuse(response)
        } else {
            after(answer)
        }
    }

    pub(crate) fn list_transactions(&self) -> Gate<m::ListTransactionsResponse> {
        let (auth, who) = (self.auth.clone(), self.who.clone());
        after(move |resp: &mut m::ListTransactionsResponse| {
            resp.transaction_states.retain(|t| {
                auth.allowed(
                    &who,
                    Op::Describe,
                    Resource::transactional_id(&t.transactional_id),
                )
            });
        })
    }

    pub(crate) fn describe_transactions(
        &self,
        req: &mut m::DescribeTransactionsRequest,
    ) -> Gate<m::DescribeTransactionsResponse> {
        let refused = take(&mut req.transactional_ids, |id| !self.txn(Op::Describe, id));
        if refused.is_empty() {
            return pass();
        }
        let code = denied(TXN);
        after(move |resp: &mut m::DescribeTransactionsResponse| {
            for id in refused {
                resp.transaction_states.push(
                    m::describe_transactions_response::TransactionState::default()
                        .with_transactional_id(id)
                        .with_error_code(code)
                        .with_producer_id(m::ProducerId(-1)),
                );
            }
        })
    }

    // ---- the cluster ----------------------------------------------------------------------

    pub(crate) fn describe_log_dirs(&self) -> Gate<m::DescribeLogDirsResponse> {
        if self.cluster(Op::Describe) {
            return pass();
        }
        Gate::Refuse(m::DescribeLogDirsResponse::default().with_error_code(denied(CLUSTER)))
    }

    pub(crate) fn elect_leaders(&self) -> Gate<m::ElectLeadersResponse> {
        if self.cluster(Op::Alter) {
            return pass();
        }
        Gate::Refuse(m::ElectLeadersResponse::default().with_error_code(denied(CLUSTER)))
    }
}

fn alter_refusal(
    (resource_type, name, code): (i8, StrBytes, i16),
) -> m::alter_configs_response::AlterConfigsResourceResponse {
    m::alter_configs_response::AlterConfigsResourceResponse::default()
        .with_resource_type(resource_type)
        .with_resource_name(name)
        .with_error_code(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use brook_broker::auth::{
        AclBinding, AuthConfig, PatternType, Permission, Principal, ResourceType,
    };
    use std::net::{IpAddr, Ipv4Addr};

    fn alice() -> Identity {
        Identity::new(
            Principal::user("alice").expect("name"),
            IpAddr::V4(Ipv4Addr::LOCALHOST),
        )
    }

    #[tokio::test]
    async fn a_produce_keeps_the_allowed_topics_and_answers_the_others_29() {
        let auth = Auth::in_memory(AuthConfig::enabled(Vec::new()));
        auth.create_acls(vec![AclBinding {
            resource_type: ResourceType::Topic,
            resource_name: "ok".into(),
            pattern_type: PatternType::Literal,
            principal: "User:alice".into(),
            host: "*".into(),
            operation: Op::Write,
            permission: Permission::Allow,
        }])
        .await
        .expect("acl");
        let access = Access::new(&auth, alice());
        let mut req = m::ProduceRequest::default().with_topic_data(
            ["ok", "no"]
                .into_iter()
                .map(|t| {
                    m::produce_request::TopicProduceData::default()
                        .with_name(TopicName(text(t)))
                        .with_partition_data(vec![
                            m::produce_request::PartitionProduceData::default().with_index(0),
                        ])
                })
                .collect(),
        );
        let Gate::Pass(finish) = access.produce(&mut req) else {
            panic!("a partial refusal passes");
        };
        assert_eq!(req.topic_data.len(), 1);
        assert_eq!(&*req.topic_data[0].name.0, "ok");
        let mut resp = m::ProduceResponse::default();
        finish(&mut resp);
        assert_eq!(&*resp.responses[0].name.0, "no");
        assert_eq!(resp.responses[0].partition_responses[0].error_code, 29);
    }
}
