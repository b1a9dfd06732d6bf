//! `Call` and `Respond`: request-reply over the log ([`brook_broker::reqreply`]) at the gRPC door.
//!
//! `Call` is unary: it waits for the reply up to the shorter of its `timeout_ms` and its gRPC
//! deadline, and answers `DEADLINE_EXCEEDED` a little before the client's own deadline fires,
//! so the client learns the correlation id (in the message and in the `brook-correlation-id-bin`
//! trailer) to get the reply later. `Respond` is a bidirectional stream: the server sends
//! requests, the client answers each by partition and offset; at most `max_in_flight` wait for
//! an answer at once, so the stream's buffer is bounded. When the client goes away its
//! unanswered requests go to the group's other members.

use std::collections::HashMap;
use std::time::Duration;

use brook_broker::reqreply::{Answer, Call, CorrelationId, RespondOptions, Responder};
use brook_broker::{BrokerError, Reply, Request as BrokerRequest};
use brook_door::Shutdown;
use brook_proto::v1 as pb;
use brook_proto::v1::respond_reply::Outcome;
use brook_proto::v1::respond_request::Message;
use futures::stream::{FuturesUnordered, StreamExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Code, Request, Response, Status, Streaming};

use super::service::BrookService;
use super::status::{invalid, to_status};
use crate::authorize::Op;

/// The trailer carrying a call's correlation id on an error.
const CORRELATION_ID_TRAILER: &str = "brook-correlation-id-bin";
/// Requests a Respond stream may hold unanswered, unless it asks otherwise.
const IN_FLIGHT_DEFAULT: u32 = 64;
/// The most a Respond stream may ask for.
const IN_FLIGHT_MAX: u32 = 1024;

/// `Call`: appends the request and waits for its reply.
pub(crate) async fn call(
    service: &BrookService,
    request: Request<pb::CallRequest>,
) -> Result<Response<pb::CallResponse>, Status> {
    let deadline = grpc_timeout(request.metadata());
    let caller = crate::auth::principal_of(request.extensions());
    let request = request.into_inner();
    let id = if request.correlation_id.is_empty() {
        CorrelationId::random()
    } else {
        CorrelationId::from_bytes(request.correlation_id).map_err(|e| to_status(&e))?
    };
    let call = Call {
        key: request.key,
        value: request.value,
        headers: request
            .headers
            .into_iter()
            .map(|h| (h.key, h.value))
            .collect(),
        partition: request.partition,
        correlation_id: Some(id.clone()),
        timeout: call_timeout(request.timeout_ms, deadline),
    };
    let outcome = tokio::select! {
        outcome = service.broker.call_as(&caller, &request.topic, call) => outcome,
        () = service.draining.wait() => {
            let status = Status::unavailable(format!(
                "the server is shutting down; call again with correlation id {id} to get the reply"
            ));
            return Err(with_correlation_id(status, &id));
        }
    };
    match outcome {
        Ok(reply) => Ok(Response::new(call_response(reply))),
        Err(e) => Err(with_correlation_id(call_status(&e), &id)),
    }
}

/// The status of a failed call: a timeout is `DEADLINE_EXCEEDED` and a handler's failure
/// `UNKNOWN` (as gRPC servers report an application's own error); the rest as any RPC.
fn call_status(err: &BrokerError) -> Status {
    match err {
        BrokerError::CallTimeout { .. } => Status::deadline_exceeded(err.to_string()),
        BrokerError::HandlerFailed { .. } => Status::new(Code::Unknown, err.to_string()),
        other => to_status(other),
    }
}

fn with_correlation_id(mut status: Status, id: &CorrelationId) -> Status {
    status.metadata_mut().insert_bin(
        CORRELATION_ID_TRAILER,
        MetadataValue::from_bytes(id.as_bytes()),
    );
    status
}

fn call_response(reply: Reply) -> pb::CallResponse {
    pb::CallResponse {
        correlation_id: reply.correlation_id.as_bytes().clone(),
        reply_topic: reply.topic.to_string(),
        partition: reply.partition,
        offset: reply.offset,
        timestamp_ms: reply.timestamp,
        key: reply.key,
        value: reply.value,
        headers: headers(reply.headers),
    }
}

fn headers(headers: Vec<(String, bytes::Bytes)>) -> Vec<pb::Header> {
    headers
        .into_iter()
        .map(|(key, value)| pb::Header { key, value })
        .collect()
}

/// How long a call waits: `timeout_ms`, or the gRPC deadline less a margin (so the answer
/// reaches the client before its deadline fires), the shorter; 30 s when neither is given.
fn call_timeout(timeout_ms: u32, deadline: Option<Duration>) -> Duration {
    let asked = (timeout_ms > 0).then(|| Duration::from_millis(timeout_ms.into()));
    let by_deadline = deadline.map(|d| {
        let margin = (d / 5).min(Duration::from_millis(100));
        // A deadline too short to wait at all still gets a (failing) try of a millisecond.
        (d - margin).max(Duration::from_millis(1))
    });
    match (asked, by_deadline) {
        (Some(a), Some(d)) => a.min(d),
        (Some(t), None) | (None, Some(t)) => t,
        (None, None) => brook_broker::reqreply::DEFAULT_CALL_TIMEOUT,
    }
}

/// The call's `grpc-timeout` header: up to 8 digits and a unit (`H`, `M`, `S`, `m`, `u`, `n`).
fn grpc_timeout(metadata: &MetadataMap) -> Option<Duration> {
    let text = metadata.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = text.split_at(text.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// `Respond`: opens a responder from the stream's first message and runs the stream on a task.
pub(crate) async fn respond(
    service: &BrookService,
    request: Request<Streaming<pb::RespondRequest>>,
) -> Result<Response<ReceiverStream<Result<pb::RespondResponse, Status>>>, Status> {
    let client_id = match crate::connection::remote_addr(request.extensions()) {
        Some(peer) => format!("grpc {peer}"),
        None => "grpc".to_owned(),
    };
    let access = service.access(&request);
    let mut inbound = request.into_inner();
    let open = match inbound.message().await? {
        Some(pb::RespondRequest {
            message: Some(Message::Open(open)),
        }) => open,
        _ => {
            return Err(invalid(
                "the first message of a Respond stream must be `open` (topic and group_id)",
            ))
        }
    };
    let max_in_flight = match open.max_in_flight {
        0 => IN_FLIGHT_DEFAULT,
        n if n <= IN_FLIGHT_MAX => n,
        n => {
            return Err(invalid(format!(
                "max_in_flight {n} is above {IN_FLIGHT_MAX}"
            )))
        }
    } as usize;
    // A responder consumes the request topic in its group (crate::authorize).
    access
        .group_and_topics(Op::Read, &open.group_id, [open.topic.as_str()])
        .map_err(|e| to_status(&e))?;
    let mut options = RespondOptions::new(open.topic, open.group_id);
    options.client_id = client_id;
    let responder = service
        .broker
        .responder(options)
        .await
        .map_err(|e| to_status(&e))?;
    // One slot more than requests in flight, for the status that ends the stream.
    let (tx, rx) = mpsc::channel(max_in_flight + 1);
    tokio::spawn(run_responder(
        responder,
        inbound,
        tx,
        max_in_flight,
        service.draining.clone(),
    ));
    Ok(Response::new(ReceiverStream::new(rx)))
}

/// Hands requests to the client and appends its replies until either side ends.
async fn run_responder(
    mut responder: Responder,
    mut inbound: Streaming<pb::RespondRequest>,
    tx: mpsc::Sender<Result<pb::RespondResponse, Status>>,
    max_in_flight: usize,
    draining: Shutdown,
) {
    let replier = responder.replier();
    let mut waiting: HashMap<(u32, u64), BrokerRequest> = HashMap::new();
    let mut appending = FuturesUnordered::new();
    let drained = draining.wait();
    tokio::pin!(drained);
    let end = loop {
        tokio::select! {
            next = responder.next(), if waiting.len() < max_in_flight => match next {
                None => break Some(Status::unavailable("the server is shutting down")),
                Some(Err(e)) => break Some(to_status(&e)),
                Some(Ok(request)) => {
                    let message = incoming(&request);
                    waiting.insert((request.partition, request.offset), request);
                    // Never waits: the channel has room for every request in flight.
                    if tx.send(Ok(message)).await.is_err() {
                        break None;
                    }
                }
            },
            message = inbound.next() => match message {
                Some(Ok(pb::RespondRequest { message: Some(Message::Reply(reply)) })) => {
                    match settle(&mut waiting, reply) {
                        Ok((request, outcome)) => {
                            let replier = replier.clone();
                            appending.push(async move {
                                replier.reply(&request, outcome).await.map_err(|e| (request, e))
                            });
                        }
                        Err(status) => break Some(status),
                    }
                }
                Some(Ok(_)) => break Some(invalid(
                    "after `open`, a Respond stream takes only `reply` messages",
                )),
                // The client finished or went away.
                Some(Err(_)) | None => break None,
            },
            Some(appended) = appending.next(), if !appending.is_empty() => {
                if let Err((request, e)) = appended {
                    tracing::warn!(topic = %request.topic, partition = request.partition,
                        offset = request.offset, error = %e, "could not append a reply");
                }
            }
            () = &mut drained => break Some(Status::unavailable("the server is shutting down")),
        }
    };
    // Replies already received count: let their appends finish before the last commit.
    while appending.next().await.is_some() {}
    if let Err(e) = responder.close().await {
        tracing::warn!(error = %e, "could not commit a responder's progress");
    }
    if let Some(status) = end {
        let _ = tx.send(Err(status)).await;
    }
}

/// The request a reply answers, and its outcome; `INVALID_ARGUMENT` when it answers none.
fn settle(
    waiting: &mut HashMap<(u32, u64), BrokerRequest>,
    reply: pb::RespondReply,
) -> Result<(BrokerRequest, Result<Answer, String>), Status> {
    let outcome = match reply.outcome {
        Some(Outcome::Answer(answer)) => Ok(Answer {
            value: answer.value,
            headers: answer
                .headers
                .into_iter()
                .map(|h| (h.key, h.value))
                .collect(),
        }),
        Some(Outcome::Error(message)) => Err(message),
        None => return Err(invalid("a reply needs an outcome: answer or error")),
    };
    let request = waiting
        .remove(&(reply.partition, reply.offset))
        .ok_or_else(|| {
            invalid(format!(
                "no request at partition {} offset {} is waiting for a reply on this stream",
                reply.partition, reply.offset
            ))
        })?;
    Ok((request, outcome))
}

fn incoming(request: &BrokerRequest) -> pb::RespondResponse {
    pb::RespondResponse {
        request: Some(pb::IncomingRequest {
            topic: request.topic.to_string(),
            partition: request.partition,
            offset: request.offset,
            timestamp_ms: request.timestamp,
            key: request.key.clone(),
            value: request.value.clone(),
            headers: headers(request.headers.clone()),
            correlation_id: request.correlation_id.as_bytes().clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timeout_is_the_shorter_of_the_field_and_the_deadline_less_a_margin() {
        let ms = Duration::from_millis;
        assert_eq!(call_timeout(0, None), ms(30_000));
        assert_eq!(call_timeout(200, None), ms(200));
        assert_eq!(call_timeout(0, Some(ms(100))), ms(80));
        assert_eq!(call_timeout(0, Some(ms(10_000))), ms(9_900));
        assert_eq!(call_timeout(50, Some(ms(10_000))), ms(50));
        assert_eq!(call_timeout(0, Some(Duration::ZERO)), ms(1));
    }

    #[test]
    fn grpc_timeout_headers_are_read_with_their_unit() {
        let parse = |text: &'static str| {
            let mut metadata = MetadataMap::new();
            metadata.insert("grpc-timeout", MetadataValue::from_static(text));
            grpc_timeout(&metadata)
        };
        assert_eq!(parse("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse("100u"), Some(Duration::from_micros(100)));
        assert_eq!(parse("5x"), None);
        assert_eq!(parse("m"), None);
        assert_eq!(parse("123456789S"), None, "at most 8 digits");
        assert_eq!(grpc_timeout(&MetadataMap::new()), None);
    }
}
