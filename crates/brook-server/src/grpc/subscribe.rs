//! `Subscribe`: a broker [`brook_broker::Subscription`] turned into a gRPC server stream.
//!
//! No task and no buffer of its own: tonic pulls the next message only when HTTP/2 flow control
//! lets it send one, so a slow client slows its own subscription and nothing piles up. When the
//! client goes away, tonic drops the stream, which drops the subscription (and so leaves its
//! consumer group, which rebalances). On shutdown the stream ends with `UNAVAILABLE`, telling
//! the client to resume elsewhere from the offsets it has seen.

use brook_broker::{GroupSubscribe, PartitionSubscribe, StartAt, SubscriptionEvent};
use brook_proto::v1 as pb;
use brook_proto::v1::partition_target::Start;
use brook_proto::v1::subscribe_request::Target;
use futures::stream::{BoxStream, StreamExt};
use tonic::{Request, Status};

use super::convert;
use super::service::BrookService;
use super::status::{invalid, to_status};
use crate::metrics;

/// Opens the subscription the request describes.
pub(crate) async fn open(
    service: &BrookService,
    request: Request<pb::SubscribeRequest>,
) -> Result<BoxStream<'static, Result<pb::SubscribeResponse, Status>>, Status> {
    let client_id = match crate::connection::remote_addr(request.extensions()) {
        Some(peer) => format!("grpc {peer}"),
        None => "grpc".to_owned(),
    };
    let request = request.into_inner();
    let raw = convert::wants_raw(request.format)?;
    let isolation = convert::isolation(request.isolation)?;
    let max_bytes = Some(convert::read_bytes(
        request.max_bytes,
        service.config.read_bytes_default,
    ));
    let broker = &service.broker;
    let subscription =
        match request.target {
            Some(Target::Partition(target)) => {
                brook_door::trace::record_topic(&target.topic);
                let start = start_at(target.start)?;
                let mut to = PartitionSubscribe::new(target.topic, target.partition, start);
                to.max_bytes = max_bytes;
                to.isolation = isolation;
                broker.subscribe(to).await
            }
            Some(Target::Group(target)) => {
                brook_door::trace::record_topic(&target.topics.join(","));
                let mut to = GroupSubscribe::new(target.group_id, target.topics);
                to.reset = convert::offset_reset(target.reset)?;
                to.client_id = client_id;
                to.max_bytes = max_bytes;
                to.isolation = isolation;
                broker.subscribe_group(to).await
            }
            None => return Err(invalid(
                "a SubscribeRequest needs a target: partition (one partition from an offset) or \
                 group (a consumer group over topics)",
            )),
        }
        .map_err(|e| to_status(&e))?;

    // Counted as open while tonic holds the stream; the guard goes with it.
    let open = metrics::stream_opened(metrics::GRPC, "subscribe");
    let events = subscription.filter_map(move |event| {
        let _open = &open;
        futures::future::ready(message(event, raw))
    });
    Ok(until_drained(events, service.draining.wait()))
}

/// Where a partition subscription starts.
fn start_at(start: Option<Start>) -> Result<StartAt, Status> {
    let missing = || {
        invalid(
            "a partition subscription must say where to start: start.offset, or start.position \
             START_POSITION_EARLIEST or START_POSITION_LATEST",
        )
    };
    match start {
        Some(Start::Offset(offset)) => Ok(StartAt::Offset(offset)),
        Some(Start::Position(position)) => match convert::start_position(position)? {
            pb::StartPosition::Earliest => Ok(StartAt::Earliest),
            pb::StartPosition::Latest => Ok(StartAt::Latest),
            pb::StartPosition::Unspecified => Err(missing()),
        },
        None => Err(missing()),
    }
}

/// The stream message for one broker event; `None` for a run of batches with no user records
/// (only control batches), which a client has no use for.
fn message(
    event: brook_broker::Result<SubscriptionEvent>,
    raw: bool,
) -> Option<Result<pb::SubscribeResponse, Status>> {
    let event = match event {
        Ok(SubscriptionEvent::Batches(batches)) => {
            let (topic, partition) = (&*batches.topic, batches.partition);
            let (records, raw_batches) = if raw {
                // Never a transaction marker, nor (read committed) an aborted batch.
                let data = batches.data_batches();
                let records = metrics::batch_records(&data);
                let bytes = data.len() as u64;
                metrics::records_out(metrics::GRPC, topic, partition, records, bytes);
                (Vec::new(), data)
            } else {
                let records = match batches.records() {
                    Ok(records) => records,
                    Err(e) => return Some(Err(to_status(&e))),
                };
                if records.is_empty() {
                    return None;
                }
                metrics::consumed(metrics::GRPC, topic, partition, &records);
                let records = records.into_iter().map(convert::consumer_record).collect();
                (records, bytes::Bytes::new())
            };
            pb::subscribe_response::Event::Records(pb::RecordsEvent {
                topic: batches.topic.to_string(),
                partition: batches.partition,
                records,
                raw_batches,
                next_offset: batches.next_offset,
                high_watermark: batches.high_watermark,
                first_offset: batches.offset,
            })
        }
        Ok(SubscriptionEvent::Assignment(assignment)) => {
            pb::subscribe_response::Event::Assignment(pb::AssignmentEvent {
                assigned: convert::by_topic(&assignment.partitions),
                group_id: assignment.group,
                member_id: assignment.member_id,
                generation: assignment.generation,
            })
        }
        Err(e) => return Some(Err(to_status(&e))),
    };
    Some(Ok(pb::SubscribeResponse { event: Some(event) }))
}

/// `events`, ended by an `UNAVAILABLE` status as soon as `drained` resolves.
fn until_drained<T: Send + 'static>(
    events: impl futures::Stream<Item = Result<T, Status>> + Send + 'static,
    drained: impl std::future::Future<Output = ()> + Send + 'static,
) -> BoxStream<'static, Result<T, Status>> {
    let state = Some((events.boxed(), Box::pin(drained)));
    futures::stream::unfold(state, |state| async move {
        let (mut events, mut drained) = state?;
        tokio::select! {
            biased;
            () = &mut drained => Some((
                Err(Status::unavailable(
                    "the server is shutting down; subscribe again (to another server, or after \
                     the restart) from the next offset you have not processed",
                )),
                None,
            )),
            item = events.next() => item.map(|item| (item, Some((events, drained)))),
        }
    })
    .boxed()
}
