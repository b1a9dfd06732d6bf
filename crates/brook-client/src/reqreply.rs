//! Request-reply: [`Client::call`] sends a request and waits for its reply; [`Client::respond`]
//! answers requests as a member of a responder group. Both run over gRPC (`Call`, `Respond`);
//! requests and replies are records in the server's log (see the server's
//! `docs/request-reply.md`).
//!
//! Errors keep the server's code: `DEADLINE_EXCEEDED` when no reply came in time (call again
//! with the same [`CallRequest::correlation_id`] to get the reply later without sending a second
//! request), `UNKNOWN` when the responder's handler failed (its message is in the error).

use std::fmt::Display;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use brook_proto::v1::{self, respond_reply::Outcome, respond_request::Message};
use bytes::Bytes;
use futures::FutureExt;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_stream::wrappers::ReceiverStream;

use crate::client::Client;
use crate::error::{ClientError, Result};

/// Requests [`Client::respond`] handles at once.
pub const RESPOND_IN_FLIGHT: u32 = 64;

/// A call to make.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallRequest {
    /// Also the reply's key.
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    /// The caller's headers (the request-reply ones are the server's to set).
    pub headers: Vec<(String, Bytes)>,
    /// `None`: by the key's hash, or spread when there is no key.
    pub partition: Option<u32>,
    /// Your own correlation id (1 to 255 bytes), which makes the call idempotent: calling again
    /// with it sends no second request and gets the same reply, also after a timeout.
    /// `None`: the server picks a random one.
    pub correlation_id: Option<Bytes>,
    /// How long to wait for the reply; `None`: the server's default (30 s).
    pub timeout: Option<Duration>,
}

impl CallRequest {
    /// A call with just a value.
    pub fn value(value: impl Into<Bytes>) -> Self {
        Self {
            value: Some(value.into()),
            ..Self::default()
        }
    }

    /// The same call with this correlation id.
    pub fn with_correlation_id(mut self, id: impl Into<Bytes>) -> Self {
        self.correlation_id = Some(id.into());
        self
    }

    /// The same call with this timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

/// The reply to a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallReply {
    pub correlation_id: Bytes,
    /// Where the reply is in the log.
    pub topic: Arc<str>,
    pub partition: u32,
    pub offset: u64,
    pub timestamp_ms: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    /// The responder's headers.
    pub headers: Vec<(String, Bytes)>,
}

/// A request as a responder receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingRequest {
    pub topic: Arc<str>,
    pub partition: u32,
    pub offset: u64,
    pub timestamp_ms: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    /// The caller's headers.
    pub headers: Vec<(String, Bytes)>,
    pub correlation_id: Bytes,
}

/// A handler's answer: the reply's value and headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answer {
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Bytes)>,
}

impl Answer {
    /// An answer with just a value.
    pub fn value(value: impl Into<Bytes>) -> Self {
        Self {
            value: Some(value.into()),
            headers: Vec::new(),
        }
    }
}

fn to_wire(headers: Vec<(String, Bytes)>) -> Vec<v1::Header> {
    headers
        .into_iter()
        .map(|(key, value)| v1::Header { key, value })
        .collect()
}

fn from_wire(headers: Vec<v1::Header>) -> Vec<(String, Bytes)> {
    headers.into_iter().map(|h| (h.key, h.value)).collect()
}

impl Client {
    /// Calls `topic`: appends `request` and returns the reply a responder appends. Errors:
    /// `DEADLINE_EXCEEDED` after the timeout (the message names the correlation id), `UNKNOWN`
    /// when the handler failed, and what a produce may fail with.
    pub async fn call(&self, topic: &str, request: CallRequest) -> Result<CallReply> {
        let timeout_ms = match request.timeout {
            None => 0,
            Some(t) => u32::try_from(t.as_millis())
                .ok()
                .filter(|&ms| ms > 0)
                .ok_or_else(|| {
                    ClientError::invalid_request(format!(
                        "a call timeout must be 1 ms to {} ms, not {t:?}",
                        u32::MAX
                    ))
                })?,
        };
        let wire = v1::CallRequest {
            topic: topic.to_owned(),
            key: request.key,
            value: request.value,
            headers: to_wire(request.headers),
            partition: request.partition,
            correlation_id: request.correlation_id.unwrap_or_default(),
            timeout_ms,
        };
        let reply = self
            .grpc()
            .call(wire)
            .await
            .map_err(|status| ClientError::rpc("call", status))?
            .into_inner();
        Ok(CallReply {
            correlation_id: reply.correlation_id,
            topic: reply.reply_topic.into(),
            partition: reply.partition,
            offset: reply.offset,
            timestamp_ms: reply.timestamp_ms,
            key: reply.key,
            value: reply.value,
            headers: from_wire(reply.headers),
        })
    }

    /// Answers requests on `topic` as a member of `group` with `handler`, up to
    /// [`RESPOND_IN_FLIGHT`] at a time, until the server ends the stream (`UNAVAILABLE` when it
    /// shuts down). A handler's `Err` (or panic) becomes an error reply the caller sees. Drop
    /// the future to stop: requests not answered go to the group's other members.
    pub async fn respond<H, F, E>(&self, topic: &str, group: &str, handler: H) -> Result<()>
    where
        H: Fn(IncomingRequest) -> F + Send + Sync + 'static,
        F: Future<Output = std::result::Result<Answer, E>> + Send + 'static,
        E: Display + 'static,
    {
        let (tx, rx) = mpsc::channel(RESPOND_IN_FLIGHT as usize + 1);
        let open = v1::RespondRequest {
            message: Some(Message::Open(v1::RespondOpen {
                topic: topic.to_owned(),
                group_id: group.to_owned(),
                max_in_flight: RESPOND_IN_FLIGHT,
            })),
        };
        // Cannot fail: the channel is new and its receiver alive.
        let _ = tx.send(open).await;
        let mut requests = self
            .grpc()
            .respond(ReceiverStream::new(rx))
            .await
            .map_err(|status| ClientError::rpc("respond", status))?
            .into_inner();
        let handler = Arc::new(handler);
        let mut running = JoinSet::new();
        loop {
            tokio::select! {
                message = requests.message() => match message {
                    Ok(Some(v1::RespondResponse { request: Some(request) })) => {
                        running.spawn(answer(Arc::clone(&handler), request));
                    }
                    Ok(Some(_)) => {
                        return Err(ClientError::protocol("respond", "a message without a request"))
                    }
                    Ok(None) => return Ok(()),
                    Err(status) => return Err(ClientError::rpc("respond", status)),
                },
                Some(Ok(reply)) = running.join_next(), if !running.is_empty() => {
                    // The server ending the stream shows up on `requests`.
                    let _ = tx.send(reply).await;
                }
            }
        }
    }
}

/// Runs `handler` on one request and makes the stream's reply message.
async fn answer<H, F, E>(handler: Arc<H>, request: v1::IncomingRequest) -> v1::RespondRequest
where
    H: Fn(IncomingRequest) -> F,
    F: Future<Output = std::result::Result<Answer, E>>,
    E: Display,
{
    let (partition, offset) = (request.partition, request.offset);
    let incoming = IncomingRequest {
        topic: request.topic.into(),
        partition,
        offset,
        timestamp_ms: request.timestamp_ms,
        key: request.key,
        value: request.value,
        headers: from_wire(request.headers),
        correlation_id: request.correlation_id,
    };
    let run = AssertUnwindSafe(async { handler(incoming).await });
    let outcome = match run.catch_unwind().await {
        Ok(Ok(answer)) => Outcome::Answer(v1::Answer {
            value: answer.value,
            headers: to_wire(answer.headers),
        }),
        Ok(Err(e)) => Outcome::Error(e.to_string()),
        Err(_) => Outcome::Error("the handler panicked".to_owned()),
    };
    v1::RespondRequest {
        message: Some(Message::Reply(v1::RespondReply {
            partition,
            offset,
            outcome: Some(outcome),
        })),
    }
}
