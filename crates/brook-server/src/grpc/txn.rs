//! Transactions at the gRPC door: `ProduceAtomic` (records for several topics and a group's
//! offsets, all or nothing: [`brook_broker::Broker::transaction`]), and the transaction
//! coordinator's and partitions' view (`ListTransactions`, `DescribeTransaction`,
//! `DescribeProducers`). They need brook's own log: a gateway to a Kafka cluster answers
//! `FAILED_PRECONDITION`.

use brook_broker::{Broker, TxnState};
use brook_proto::v1 as pb;
use tonic::{Request, Response, Status};

use super::convert;
use super::service::BrookService;
use super::status::{invalid, to_status};

/// The local broker, or the refusal of a gateway.
fn local(service: &BrookService) -> Result<&Broker, Status> {
    service.broker.local().ok_or_else(|| {
        Status::failed_precondition(
            "transactions need brook's own log; this server is a gateway to a Kafka cluster \
             (use the cluster's transactional producer)",
        )
    })
}

pub(crate) async fn produce_atomic(
    service: &BrookService,
    request: Request<pb::ProduceAtomicRequest>,
) -> Result<Response<pb::ProduceAtomicResponse>, Status> {
    let request = request.into_inner();
    let broker = local(service)?;
    let topics: Vec<String> = request.topics.iter().map(|t| t.topic.clone()).collect();
    let mut txn = broker.transaction();
    for topic in request.topics {
        let records = topic
            .records
            .into_iter()
            .map(convert::produce_record)
            .collect();
        txn.produce(topic.topic, records);
    }
    for group in request.offsets {
        txn.commit_offsets(group.group_id, convert::offset_commits(group.offsets));
    }
    let produced = txn.commit().await.map_err(|e| to_status(&e))?;
    let topics = topics
        .into_iter()
        .zip(produced)
        .map(|(topic, produced)| pb::TopicPositions {
            topic,
            records: convert::produced(produced).records,
        })
        .collect();
    Ok(Response::new(pb::ProduceAtomicResponse { topics }))
}

pub(crate) async fn list_transactions(
    service: &BrookService,
    request: Request<pb::ListTransactionsRequest>,
) -> Result<Response<pb::ListTransactionsResponse>, Status> {
    let request = request.into_inner();
    let broker = local(service)?;
    let states = request
        .states
        .iter()
        .map(|name| {
            TxnState::from_name(name).ok_or_else(|| {
                invalid(format!(
                    "{name:?} is not a transaction state: use Empty, Ongoing, PrepareCommit, \
                     PrepareAbort, CompleteCommit or CompleteAbort"
                ))
            })
        })
        .collect::<Result<Vec<_>, Status>>()?;
    let transactions = broker
        .list_transactions(&states, &request.producer_ids, request.min_duration_ms)
        .into_iter()
        .map(|t| pb::TransactionListing {
            transactional_id: t.transactional_id,
            producer_id: t.producer_id,
            state: t.state.name().to_owned(),
        })
        .collect();
    Ok(Response::new(pb::ListTransactionsResponse { transactions }))
}

pub(crate) async fn describe_transaction(
    service: &BrookService,
    request: Request<pb::DescribeTransactionRequest>,
) -> Result<Response<pb::DescribeTransactionResponse>, Status> {
    let request = request.into_inner();
    let described = local(service)?
        .describe_transaction(&request.transactional_id)
        .map_err(|e| to_status(&e))?;
    Ok(Response::new(pb::DescribeTransactionResponse {
        partitions: convert::by_topic(&described.partitions),
        transactional_id: described.transactional_id,
        producer_id: described.producer_id,
        producer_epoch: i32::from(described.producer_epoch),
        state: described.state.name().to_owned(),
        timeout_ms: described.timeout_ms,
        start_time_ms: described.start_ms,
        groups: described.groups,
        internal: described.internal,
    }))
}

pub(crate) async fn describe_producers(
    service: &BrookService,
    request: Request<pb::DescribeProducersRequest>,
) -> Result<Response<pb::DescribeProducersResponse>, Status> {
    let request = request.into_inner();
    let broker = local(service)?;
    let fail = |e| to_status(&e);
    let producers = broker
        .describe_producers(&request.topic, request.partition)
        .map_err(fail)?
        .into_iter()
        .map(|p| pb::ProducerState {
            producer_id: p.producer_id,
            producer_epoch: i32::from(p.producer_epoch),
            last_sequence: p.last_sequence,
            last_timestamp_ms: p.last_timestamp,
            coordinator_epoch: p.coordinator_epoch,
            current_txn_start_offset: p.current_txn_start_offset,
        })
        .collect();
    let last_stable_offset = broker
        .last_stable_offset(&request.topic, request.partition)
        .map_err(fail)?;
    let high_watermark = broker
        .watch_high_watermark(&request.topic, request.partition)
        .map_err(fail)?
        .borrow()
        .to_owned();
    Ok(Response::new(pb::DescribeProducersResponse {
        producers,
        last_stable_offset,
        high_watermark,
    }))
}
