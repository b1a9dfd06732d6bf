//! The `brook.v1.Brook` service: each RPC parses its request, calls the broker, and converts the
//! answer. The streaming RPCs live in their own modules ([`super::produce_stream`],
//! [`super::subscribe`]).

use brook_broker::auth::{Identity, Resource};
use brook_broker::{Backend, BrokerError};
use brook_door::Shutdown;
use brook_proto::v1 as pb;
use brook_proto::v1::brook_server::Brook;
use std::future::Future;

use futures::future::{Either, FutureExt};
use futures::stream::BoxStream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::convert::{self, ProducePayload};
use super::status::to_status;
use super::{acls, changes, produce_stream, reqreply, subscribe, table, txn, users};
use crate::authorize::{Access, Op};
use crate::config::GrpcConfig;
use crate::metrics;

/// The service state: a broker handle, the door's settings, and the door's drain signal.
#[derive(Debug, Clone)]
pub(crate) struct BrookService {
    pub(crate) broker: Backend,
    pub(crate) config: GrpcConfig,
    /// Fires when the door starts shutting down: long-lived calls end early.
    pub(crate) draining: Shutdown,
}

impl BrookService {
    pub(crate) fn new(broker: Backend, config: GrpcConfig, draining: Shutdown) -> Self {
        Self {
            broker,
            config,
            draining,
        }
    }
}

impl BrookService {
    /// The caller's access (crate::authorize), from the identity the authentication layer
    /// put on `request`.
    pub(crate) fn access<T>(&self, request: &Request<T>) -> Access {
        Access::new(
            &self.config.security.auth,
            request.extensions().get::<Identity>(),
        )
    }
}

fn status(err: BrokerError) -> Status {
    to_status(&err)
}

/// Appends a produce payload: shared by `Produce` and `ProduceStream`.
///
/// Not an `async fn` on purpose: the broker queues the append when it is *called*, so calling
/// this for request after request keeps their order per partition even while the returned
/// futures are awaited together (pipelining). `awaited` when the caller awaits this before it
/// produces anything more (a unary `Produce`): its records or raw batch are then produced with
/// [`Backend::produce_awaited`] or [`Backend::produce_batch_awaited`], whose `sync` fsync may
/// run in place.
pub(crate) fn produce(
    broker: &Backend,
    topic: &str,
    payload: ProducePayload,
    awaited: bool,
) -> impl Future<Output = Result<pb::ProduceResponse, Status>> + Send + 'static {
    brook_door::trace::record_topic(topic);
    let topic_name = topic.to_owned();
    match payload {
        ProducePayload::Records(records) => {
            let sizes = metrics::record_sizes(&records);
            let produced = if awaited {
                Either::Left(broker.produce_awaited(topic, records))
            } else {
                Either::Right(broker.produce(topic, records))
            };
            Either::Left(produced.map(move |produced| {
                let produced = produced.map_err(status)?;
                metrics::produced(metrics::GRPC, &topic_name, &sizes, &produced);
                Ok(convert::produced(produced))
            }))
        }
        ProducePayload::RawBatch { partition, data } => {
            // Handed on as it came out of tonic's decode buffer: the log writes its own copy
            // of the header in front of these bytes, which it never changes.
            let bytes = data.len() as u64;
            let appended = if awaited {
                Either::Left(broker.produce_batch_awaited(topic, partition, data))
            } else {
                Either::Right(broker.produce_batch(topic, partition, data))
            };
            Either::Right(appended.map(move |appended| {
                let appended = appended.map_err(status)?;
                let records = u64::from(appended.record_count);
                metrics::records_in(metrics::GRPC, &topic_name, partition, records, bytes);
                Ok(pb::ProduceResponse {
                    records: Vec::new(),
                    batches: vec![convert::batch_appended(partition, &appended)],
                })
            }))
        }
    }
}

#[tonic::async_trait]
impl Brook for BrookService {
    async fn produce(
        &self,
        request: Request<pb::ProduceRequest>,
    ) -> Result<Response<pb::ProduceResponse>, Status> {
        let access = self.access(&request);
        let (metadata, _, request) = request.into_parts();
        access.topic(Op::Write, &request.topic).map_err(status)?;
        let (topic, mut payload) = convert::produce_payload(request)?;
        if let ProducePayload::Records(records) = &mut payload {
            crate::trace::carry(records, metadata.as_ref());
        }
        produce(&self.broker, &topic, payload, true)
            .await
            .map(Response::new)
    }

    type ProduceStreamStream = ReceiverStream<Result<pb::ProduceStreamResponse, Status>>;

    async fn produce_stream(
        &self,
        request: Request<Streaming<pb::ProduceStreamRequest>>,
    ) -> Result<Response<Self::ProduceStreamStream>, Status> {
        let access = self.access(&request);
        Ok(Response::new(produce_stream::start(
            self.clone(),
            access,
            request.into_inner(),
        )))
    }

    async fn fetch(
        &self,
        request: Request<pb::FetchRequest>,
    ) -> Result<Response<pb::FetchResponse>, Status> {
        let access = self.access(&request);
        let request = request.into_inner();
        access.topic(Op::Read, &request.topic).map_err(status)?;
        brook_door::trace::record_topic(&request.topic);
        let raw = convert::wants_raw(request.format)?;
        let max_bytes = convert::read_bytes(request.max_bytes, self.config.read_bytes_default);
        let isolation = convert::isolation(request.isolation)?;
        let read = |max_wait| {
            self.broker.fetch_isolated(
                &request.topic,
                request.partition,
                request.offset,
                max_bytes,
                max_wait,
                isolation,
            )
        };
        let fetched = tokio::select! {
            biased;
            fetched = read(convert::wait(request.max_wait_ms)) => fetched,
            // Shutting down: answer with what is there now instead of waiting out the poll.
            () = self.draining.wait() => read(std::time::Duration::ZERO).await,
        }
        .map_err(status)?;
        let next_offset = fetched.next_offset();
        let (records, raw_batches) = if raw {
            let (topic, partition) = (&request.topic, request.partition);
            let batches = fetched.data_batches();
            let records = metrics::batch_records(&batches);
            let bytes = batches.len() as u64;
            metrics::records_out(metrics::GRPC, topic, partition, records, bytes);
            (Vec::new(), batches)
        } else {
            let records = fetched.records().map_err(status)?;
            metrics::consumed(metrics::GRPC, &request.topic, request.partition, &records);
            let records = records.into_iter().map(convert::consumer_record).collect();
            (records, bytes::Bytes::new())
        };
        Ok(Response::new(pb::FetchResponse {
            records,
            raw_batches,
            next_offset,
            high_watermark: fetched.high_watermark,
            log_start_offset: fetched.log_start_offset,
            last_stable_offset: fetched.last_stable_offset,
        }))
    }

    type SubscribeStream = BoxStream<'static, Result<pb::SubscribeResponse, Status>>;

    async fn subscribe(
        &self,
        request: Request<pb::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let access = self.access(&request);
        match &request.get_ref().target {
            Some(pb::subscribe_request::Target::Partition(p)) => access.topic(Op::Read, &p.topic),
            Some(pb::subscribe_request::Target::Group(g)) => {
                access.group_and_topics(Op::Read, &g.group_id, g.topics.iter().map(String::as_str))
            }
            None => Ok(()),
        }
        .map_err(status)?;
        subscribe::open(self, request).await.map(Response::new)
    }

    async fn create_topic(
        &self,
        request: Request<pb::CreateTopicRequest>,
    ) -> Result<Response<pb::CreateTopicResponse>, Status> {
        let access = self.access(&request);
        let request = request.into_inner();
        access.create_topic(&request.topic).map_err(status)?;
        let if_not_exists = request.if_not_exists;
        let new = convert::new_topic(request)?;
        let name = new.name.clone();
        let topic = match self.broker.create_topic(new).await {
            Err(BrokerError::TopicExists { .. }) if if_not_exists => {
                self.broker.describe_topic(&name).await
            }
            other => other,
        }
        .map_err(status)?;
        Ok(Response::new(pb::CreateTopicResponse {
            topic: Some(convert::topic_description(topic)),
        }))
    }

    async fn delete_topic(
        &self,
        request: Request<pb::DeleteTopicRequest>,
    ) -> Result<Response<pb::DeleteTopicResponse>, Status> {
        let access = self.access(&request);
        let topic = request.into_inner().topic;
        access.topic(Op::Delete, &topic).map_err(status)?;
        self.broker.delete_topic(&topic).await.map_err(status)?;
        Ok(Response::new(pb::DeleteTopicResponse {}))
    }

    async fn list_topics(
        &self,
        request: Request<pb::ListTopicsRequest>,
    ) -> Result<Response<pb::ListTopicsResponse>, Status> {
        let access = self.access(&request);
        let topics = self
            .broker
            .list_topics()
            .await
            .map_err(status)?
            .into_iter()
            .filter(|t| access.may(Op::Describe, Resource::topic(&t.name)))
            .map(|t| pb::TopicSummary {
                name: t.name,
                partition_count: t.partitions,
            })
            .collect();
        Ok(Response::new(pb::ListTopicsResponse { topics }))
    }

    async fn describe_topic(
        &self,
        request: Request<pb::DescribeTopicRequest>,
    ) -> Result<Response<pb::DescribeTopicResponse>, Status> {
        let access = self.access(&request);
        let topic = request.into_inner().topic;
        access.topic(Op::Describe, &topic).map_err(status)?;
        let topic = self.broker.describe_topic(&topic).await.map_err(status)?;
        Ok(Response::new(pb::DescribeTopicResponse {
            topic: Some(convert::topic_description(topic)),
        }))
    }

    async fn list_groups(
        &self,
        request: Request<pb::ListGroupsRequest>,
    ) -> Result<Response<pb::ListGroupsResponse>, Status> {
        let access = self.access(&request);
        let groups = self
            .broker
            .list_groups()
            .await
            .map_err(status)?
            .into_iter()
            .filter(|g| access.may(Op::Describe, Resource::group(&g.group)))
            .map(convert::group_summary)
            .collect();
        Ok(Response::new(pb::ListGroupsResponse { groups }))
    }

    async fn describe_group(
        &self,
        request: Request<pb::DescribeGroupRequest>,
    ) -> Result<Response<pb::DescribeGroupResponse>, Status> {
        let access = self.access(&request);
        let group_id = request.into_inner().group_id;
        access.group(Op::Describe, &group_id).map_err(status)?;
        let group = self
            .broker
            .describe_group(&group_id)
            .await
            .map_err(status)?;
        Ok(Response::new(convert::group_description(group)))
    }

    async fn commit_offsets(
        &self,
        request: Request<pb::CommitOffsetsRequest>,
    ) -> Result<Response<pb::CommitOffsetsResponse>, Status> {
        let access = self.access(&request);
        let request = request.into_inner();
        access
            .group_and_topics(
                Op::Read,
                &request.group_id,
                request.offsets.iter().map(|o| o.topic.as_str()),
            )
            .map_err(status)?;
        let commits = convert::offset_commits(request.offsets);
        self.broker
            .commit_offsets(&request.group_id, commits)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::CommitOffsetsResponse {}))
    }

    async fn fetch_offsets(
        &self,
        request: Request<pb::FetchOffsetsRequest>,
    ) -> Result<Response<pb::FetchOffsetsResponse>, Status> {
        let access = self.access(&request);
        let request = request.into_inner();
        access
            .group_and_topics(
                Op::Describe,
                &request.group_id,
                request.partitions.iter().map(|p| p.topic.as_str()),
            )
            .map_err(status)?;
        let partitions = convert::flatten(request.partitions);
        let offsets = self
            .broker
            .committed_offsets(&request.group_id, &partitions)
            .await
            .map_err(status)?
            .into_iter()
            .map(|(tp, committed)| pb::CommittedOffset {
                topic: tp.topic,
                partition: tp.partition,
                offset: committed.offset,
                metadata: committed.metadata,
                commit_timestamp_ms: committed.commit_timestamp,
            })
            .collect();
        Ok(Response::new(pb::FetchOffsetsResponse { offsets }))
    }

    async fn call(
        &self,
        request: Request<pb::CallRequest>,
    ) -> Result<Response<pb::CallResponse>, Status> {
        self.access(&request)
            .topic(Op::Write, &request.get_ref().topic)
            .map_err(status)?;
        reqreply::call(self, request).await
    }

    type RespondStream = ReceiverStream<Result<pb::RespondResponse, Status>>;

    async fn respond(
        &self,
        request: Request<Streaming<pb::RespondRequest>>,
    ) -> Result<Response<Self::RespondStream>, Status> {
        reqreply::respond(self, request).await
    }

    async fn get_key(
        &self,
        request: Request<pb::GetKeyRequest>,
    ) -> Result<Response<pb::GetKeyResponse>, Status> {
        self.access(&request)
            .topic(Op::Read, &request.get_ref().topic)
            .map_err(status)?;
        table::get_key(self, request).await
    }

    async fn produce_atomic(
        &self,
        request: Request<pb::ProduceAtomicRequest>,
    ) -> Result<Response<pb::ProduceAtomicResponse>, Status> {
        let access = self.access(&request);
        let atomic = request.get_ref();
        atomic
            .topics
            .iter()
            .try_for_each(|t| access.topic(Op::Write, &t.topic))
            .and_then(|()| {
                atomic.offsets.iter().try_for_each(|o| {
                    access.group_and_topics(
                        Op::Read,
                        &o.group_id,
                        o.offsets.iter().map(|c| c.topic.as_str()),
                    )
                })
            })
            .map_err(status)?;
        txn::produce_atomic(self, request).await
    }

    async fn list_transactions(
        &self,
        request: Request<pb::ListTransactionsRequest>,
    ) -> Result<Response<pb::ListTransactionsResponse>, Status> {
        let access = self.access(&request);
        let mut listed = txn::list_transactions(self, request).await?;
        listed.get_mut().transactions.retain(|t| {
            access.may(
                Op::Describe,
                Resource::transactional_id(&t.transactional_id),
            )
        });
        Ok(listed)
    }

    async fn describe_transaction(
        &self,
        request: Request<pb::DescribeTransactionRequest>,
    ) -> Result<Response<pb::DescribeTransactionResponse>, Status> {
        self.access(&request)
            .transactional_id(Op::Describe, &request.get_ref().transactional_id)
            .map_err(status)?;
        txn::describe_transaction(self, request).await
    }

    async fn describe_producers(
        &self,
        request: Request<pb::DescribeProducersRequest>,
    ) -> Result<Response<pb::DescribeProducersResponse>, Status> {
        self.access(&request)
            .topic(Op::Read, &request.get_ref().topic)
            .map_err(status)?;
        txn::describe_producers(self, request).await
    }

    async fn add_partitions(
        &self,
        request: Request<pb::AddPartitionsRequest>,
    ) -> Result<Response<pb::AddPartitionsResponse>, Status> {
        self.access(&request)
            .topic(Op::Alter, &request.get_ref().topic)
            .map_err(status)?;
        changes::add_partitions(&self.broker, request).await
    }

    async fn alter_topic_config(
        &self,
        request: Request<pb::AlterTopicConfigRequest>,
    ) -> Result<Response<pb::AlterTopicConfigResponse>, Status> {
        self.access(&request)
            .topic(Op::AlterConfigs, &request.get_ref().topic)
            .map_err(status)?;
        changes::alter_topic_config(&self.broker, request).await
    }

    async fn delete_records(
        &self,
        request: Request<pb::DeleteRecordsRequest>,
    ) -> Result<Response<pb::DeleteRecordsResponse>, Status> {
        self.access(&request)
            .topic(Op::Delete, &request.get_ref().topic)
            .map_err(status)?;
        changes::delete_records(&self.broker, request).await
    }

    async fn delete_group(
        &self,
        request: Request<pb::DeleteGroupRequest>,
    ) -> Result<Response<pb::DeleteGroupResponse>, Status> {
        self.access(&request)
            .group(Op::Delete, &request.get_ref().group_id)
            .map_err(status)?;
        changes::delete_group(&self.broker, request).await
    }

    async fn delete_group_offsets(
        &self,
        request: Request<pb::DeleteGroupOffsetsRequest>,
    ) -> Result<Response<pb::DeleteGroupOffsetsResponse>, Status> {
        let asked = request.get_ref();
        self.access(&request)
            .delete_offsets(
                &asked.group_id,
                asked.partitions.iter().map(|p| p.topic.as_str()),
            )
            .map_err(status)?;
        changes::delete_group_offsets(&self.broker, request).await
    }

    async fn seek_group(
        &self,
        request: Request<pb::SeekGroupRequest>,
    ) -> Result<Response<pb::SeekGroupResponse>, Status> {
        let access = self.access(&request);
        changes::seek_group(&self.broker, &access, request).await
    }

    async fn list_acls(
        &self,
        request: Request<pb::ListAclsRequest>,
    ) -> Result<Response<pb::ListAclsResponse>, Status> {
        acls::list(self, request).await
    }

    async fn create_acls(
        &self,
        request: Request<pb::CreateAclsRequest>,
    ) -> Result<Response<pb::CreateAclsResponse>, Status> {
        acls::create(self, request).await
    }

    async fn delete_acls(
        &self,
        request: Request<pb::DeleteAclsRequest>,
    ) -> Result<Response<pb::DeleteAclsResponse>, Status> {
        acls::delete(self, request).await
    }

    async fn list_users(
        &self,
        request: Request<pb::ListUsersRequest>,
    ) -> Result<Response<pb::ListUsersResponse>, Status> {
        users::list_users(self, request).await
    }

    async fn create_user(
        &self,
        request: Request<pb::CreateUserRequest>,
    ) -> Result<Response<pb::CreateUserResponse>, Status> {
        users::create_user(self, request).await
    }

    async fn delete_user(
        &self,
        request: Request<pb::DeleteUserRequest>,
    ) -> Result<Response<pb::DeleteUserResponse>, Status> {
        users::delete_user(self, request).await
    }

    async fn set_password(
        &self,
        request: Request<pb::SetPasswordRequest>,
    ) -> Result<Response<pb::SetPasswordResponse>, Status> {
        users::set_password(self, request).await
    }

    async fn create_token(
        &self,
        request: Request<pb::CreateTokenRequest>,
    ) -> Result<Response<pb::CreateTokenResponse>, Status> {
        users::create_token(self, request).await
    }

    async fn list_tokens(
        &self,
        request: Request<pb::ListTokensRequest>,
    ) -> Result<Response<pb::ListTokensResponse>, Status> {
        users::list_tokens(self, request).await
    }

    async fn revoke_token(
        &self,
        request: Request<pb::RevokeTokenRequest>,
    ) -> Result<Response<pb::RevokeTokenResponse>, Status> {
        users::revoke_token(self, request).await
    }
}
