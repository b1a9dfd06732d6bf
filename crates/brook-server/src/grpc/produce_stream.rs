//! `ProduceStream`: pipelined producing that keeps per-partition order.
//!
//! One pump task per stream reads requests in the order the client sent them and hands each to
//! the broker at once: the broker queues an append when it is called, so appends to a partition
//! happen in request order while many requests are in flight (and share fsyncs). Each request
//! then waits for its answer on a task of its own, unless the broker answered it at once (a
//! small batch written in place), when the pump sends the answer itself. The one exception is the first request to a
//! topic on a stream: it may have to create the topic, and the broker queues only once the
//! topic exists, so the pump waits for that request to finish before reading the next.
//!
//! Everything is bounded: at most `produce_stream_in_flight_max` requests are in flight, and
//! answers wait in a channel of `stream_buffer_messages`; when either is full the pump stops
//! reading, so HTTP/2 flow control pushes back on the client. A client that goes away ends the
//! pump; appends already queued still finish (and are durable), their answers are dropped. On
//! shutdown the pump stops reading, the requests in flight finish and are answered, and the
//! stream ends.

use std::collections::HashSet;
use std::sync::Arc;
use std::task::Poll;

use brook_proto::v1 as pb;
use futures::StreamExt;
use tokio::sync::{mpsc, Semaphore};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};

use super::convert;
use super::limit::request_status;
use super::service::{produce, BrookService};
use crate::authorize::{Access, Op};

type Reply = Result<pb::ProduceStreamResponse, Status>;

/// Starts the pump for one stream and returns the stream of its answers.
pub(crate) fn start(
    service: BrookService,
    access: Access,
    requests: Streaming<pb::ProduceStreamRequest>,
) -> ReceiverStream<Reply> {
    let (replies, rx) = mpsc::channel(service.config.stream_buffer_messages.max(1));
    tokio::spawn(pump(service, access, requests, replies));
    ReceiverStream::new(rx)
}

async fn pump(
    service: BrookService,
    access: Access,
    mut requests: Streaming<pb::ProduceStreamRequest>,
    replies: mpsc::Sender<Reply>,
) {
    let in_flight = Arc::new(Semaphore::new(
        service.config.produce_stream_in_flight_max.max(1),
    ));
    // Topics this stream has produced to successfully: they exist, so the broker queues
    // requests to them at call time.
    let mut known_topics: HashSet<String> = HashSet::new();
    let mut drained = std::pin::pin!(service.draining.wait());
    loop {
        // Take a slot before reading, so a full pipeline stops reading the client.
        let permit = tokio::select! {
            permit = Arc::clone(&in_flight).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break, // never closed
            },
            () = replies.closed() => break,
        };
        let next = tokio::select! {
            biased;
            () = &mut drained => break,
            () = replies.closed() => break,
            next = requests.next() => next,
        };
        let request = match next {
            Some(Ok(request)) => request,
            // The client finished sending; answers for requests in flight still go out.
            None => break,
            Some(Err(status)) => {
                // A request over the size limit, or a broken stream: end the call with it.
                tracing::debug!(%status, "produce stream ended by a bad request");
                let limit = service.config.request_bytes_max;
                let _ = replies.send(Err(request_status(status, limit))).await;
                break;
            }
        };
        let sequence = request.sequence;
        let awaited = request.awaited;
        let parsed = request
            .produce
            .ok_or_else(|| {
                Status::invalid_argument("a ProduceStreamRequest needs its produce field")
            })
            .and_then(|produce| {
                // Each request names its topic: each is authorized (crate::authorize).
                access
                    .topic(Op::Write, &produce.topic)
                    .map_err(|e| super::status::to_status(&e))?;
                convert::produce_payload(produce)
            });
        let (topic, payload) = match parsed {
            Ok(parsed) => parsed,
            Err(status) => {
                if replies
                    .send(Ok(answer(sequence, Err(status))))
                    .await
                    .is_err()
                {
                    break;
                }
                continue;
            }
        };
        let mut appended = Box::pin(produce(&service.broker, &topic, payload, awaited));
        if known_topics.contains(&topic) {
            // An append the broker answered at once (an idle partition's small batch written
            // in place) is answered from here, without a task of its own.
            if let Poll::Ready(result) = futures::poll!(&mut appended) {
                if replies.send(Ok(answer(sequence, result))).await.is_err() {
                    break;
                }
                drop(permit);
                continue;
            }
            let replies = replies.clone();
            tokio::spawn(async move {
                let reply = answer(sequence, appended.await);
                // An error means the client is gone; the append stands either way.
                let _ = replies.send(Ok(reply)).await;
                drop(permit);
            });
        } else {
            let result = appended.await;
            if result.is_ok() {
                known_topics.insert(topic);
            }
            if replies.send(Ok(answer(sequence, result))).await.is_err() {
                break;
            }
        }
    }
}

/// The answer to request `sequence`.
fn answer(sequence: u64, result: Result<pb::ProduceResponse, Status>) -> pb::ProduceStreamResponse {
    let result = match result {
        Ok(ok) => pb::produce_stream_response::Result::Ok(ok),
        Err(status) => pb::produce_stream_response::Result::Error(pb::Error {
            code: status.code() as i32,
            message: status.message().to_owned(),
        }),
    };
    pb::ProduceStreamResponse {
        sequence,
        result: Some(result),
    }
}
