//! Request-reply on the log: calls whose requests and replies are records, so they are
//! replayable, auditable, and survive restarts of callers, responders and the broker.
//!
//! A **call** ([`Broker::call`](crate::Broker::call)) appends a request to a topic with three headers (Spring
//! Kafka's, see [`headers`](self#headers)): the reply topic, the reply partition and a
//! correlation id. A **responder** ([`Broker::respond`](crate::Broker::respond), or [`Broker::responder`](crate::Broker::responder) to pull
//! requests one by one) consumes the topic as a member of a consumer group, so responders share
//! the load and take over from each other, and appends each answer to the request's reply topic
//! with the same correlation id. The call resolves when that reply is appended.
//!
//! # Headers
//!
//! `kafka_replyTopic` (the reply topic's name), `kafka_replyPartition` (4-byte big-endian),
//! `kafka_correlationId` (opaque bytes; 16 random ones unless the caller picks its own) and, on
//! an error reply, `brook_error` (the handler's message). A Spring `ReplyingKafkaTemplate` or
//! `@SendTo` listener, or any Kafka client setting these by hand, works with brook's callers
//! and responders through the Kafka door.
//!
//! # Guarantees
//!
//! - Replies to brook's calls go to one reply topic (`reqreply.reply_topic`, default
//!   `__brook_replies`, created on first use). The broker reads it from where its window starts
//!   when request-reply is first used after opening, then follows it, so a reply appended by
//!   anyone (an in-process responder, a Kafka client) reaches the waiting call.
//! - A caller may choose the correlation id: calling again with the same id (after a timeout,
//!   a caller restart or a broker restart) appends no second request and gets the one reply.
//!   [`Broker::reply`](crate::Broker::reply) fetches or awaits a reply by id without calling. For this the broker keeps
//!   an index id -> (request position, reply position), rebuilt on first use after opening by
//!   reading the reply topic and, on the first call to each request topic, that topic, both
//!   from the start of the window only. The index is bounded by `window_ms` and
//!   `index_entries_max` (about 150 bytes per id): older ids are forgotten, and with them
//!   these guarantees (see [`ReqReplyConfig`]).
//! - A reply that comes after its caller gave up stays in the reply topic and in the index, and
//!   can be fetched by id later.
//! - A call that times out leaves nothing waiting in memory ([`ReqReplyStats::waiting_calls`]).
//! - A responder commits its group's offsets a little behind (every `responder_commit_ms`), so a
//!   responder that dies hands its uncommitted requests to the next one, which skips those it
//!   can see were answered (the reply is in the index) and answers the others: a handler may
//!   run twice for one request, but the caller gets the first reply only. Later replies with the
//!   same id are counted ([`ReqReplyStats::duplicate_replies`]) and ignored.
//! - A reply without a correlation id is logged and counted, never delivered; a request
//!   without a correlation id or a reply topic is logged, counted and skipped.
//! - Requests older than the window are skipped by responders: their callers are long gone and
//!   their replies could not be found by id any more.

pub mod binding;
mod headers;
mod id;
mod index;
mod live;
mod responder;

use std::time::Duration;

use brook_log::bounds::{check_bounds, Bounded, Bounds, DAY_MS};
use bytes::Bytes;

use crate::error::{BrokerError, Result};

pub use binding::ReplyMac;
pub use headers::{
    CORRELATION_ID_HEADER, ERROR_HEADER, REPLY_MAC_HEADER, REPLY_PARTITION_HEADER,
    REPLY_TOPIC_HEADER,
};
pub use id::{CorrelationId, CORRELATION_ID_BYTES_MAX};
pub use live::Hub;
pub use responder::{Replier, RespondOptions, Responder, RESPOND_IN_FLIGHT};

/// The reply topic of brook's calls unless configured otherwise. Kafka's own internal topics
/// start with `__` too.
pub const DEFAULT_REPLY_TOPIC: &str = "__brook_replies";

/// Settings of request-reply (part of [`crate::BrokerConfig`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReqReplyConfig {
    /// Where replies to brook's calls go. Created with one partition on first use if missing.
    /// Default `__brook_replies`.
    pub reply_topic: String,
    /// How long the broker remembers a correlation id (for idempotent retries and fetching a
    /// reply by id), and how far back it reads the logs to rebuild its index. Default 1 hour.
    pub window_ms: u64,
    /// The most correlation ids remembered; past it the oldest are forgotten first. About 150
    /// bytes each: the default 200 000 is about 30 MB.
    pub index_entries_max: usize,
    /// The longest a call may wait for its reply. Default 5 minutes.
    pub call_timeout_ms_max: u64,
    /// How often a responder commits its group's offsets. Default 200 ms: what a responder that
    /// dies hands to the next one again (they skip what was already answered).
    pub responder_commit_ms: u64,
}

impl Default for ReqReplyConfig {
    fn default() -> Self {
        Self {
            reply_topic: DEFAULT_REPLY_TOPIC.to_owned(),
            window_ms: 3_600_000,
            index_entries_max: 200_000,
            call_timeout_ms_max: 300_000,
            responder_commit_ms: 200,
        }
    }
}

impl ReqReplyConfig {
    /// Every numeric setting with its range.
    pub const BOUNDS: &'static [Bounded<ReqReplyConfig>] = &[
        Bounded::new("reqreply.window_ms", Bounds::new(1, 7 * DAY_MS), |c| {
            Some(c.window_ms)
        }),
        Bounded::new(
            "reqreply.index_entries_max",
            Bounds::new(1, 10_000_000),
            |c| Some(c.index_entries_max as u64),
        ),
        Bounded::new(
            "reqreply.call_timeout_ms_max",
            Bounds::new(1, DAY_MS),
            |c| Some(c.call_timeout_ms_max),
        ),
        Bounded::new(
            "reqreply.responder_commit_ms",
            Bounds::new(1, DAY_MS),
            |c| Some(c.responder_commit_ms),
        ),
    ];

    /// Rejects settings that cannot work: a bad reply topic name, a number out of its range.
    pub fn validate(&self) -> Result<()> {
        crate::names::validate_topic_name(&self.reply_topic).map_err(|e| {
            BrokerError::InvalidConfig {
                reason: format!("reqreply.reply_topic: {e}"),
            }
        })?;
        check_bounds(self, Self::BOUNDS).map_err(|reason| BrokerError::InvalidConfig { reason })
    }
}

/// How long a call waits unless told otherwise.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A call to make: the request's key, value and headers, and how long to wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    /// The caller's own headers; the request-reply ones are the broker's to set.
    pub headers: Vec<(String, Bytes)>,
    /// Where the request goes; `None`: by key, as any produce.
    pub partition: Option<u32>,
    /// The caller's own id, to make the call idempotent (a retry with it appends nothing new
    /// and gets the same reply). `None`: a new random one.
    pub correlation_id: Option<CorrelationId>,
    /// How long to wait for the reply, appending included. Default 30 s; at most
    /// `reqreply.call_timeout_ms_max`.
    pub timeout: Duration,
}

impl Call {
    /// A call with just a value.
    pub fn new(value: impl Into<Bytes>) -> Self {
        Self {
            key: None,
            value: Some(value.into()),
            headers: Vec::new(),
            partition: None,
            correlation_id: None,
            timeout: DEFAULT_CALL_TIMEOUT,
        }
    }

    /// The same call with this timeout.
    pub fn with_timeout(self, timeout: Duration) -> Self {
        Self { timeout, ..self }
    }

    /// The same call with this correlation id.
    pub fn with_correlation_id(self, id: CorrelationId) -> Self {
        Self {
            correlation_id: Some(id),
            ..self
        }
    }
}

/// Where a request wants its reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyTo {
    pub topic: String,
    /// `None`: the reply goes where its key sends it.
    pub partition: Option<u32>,
}

/// A request as a responder receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub topic: std::sync::Arc<str>,
    pub partition: u32,
    pub offset: u64,
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    /// The caller's headers, without the request-reply ones.
    pub headers: Vec<(String, Bytes)>,
    pub correlation_id: CorrelationId,
    pub reply_to: ReplyTo,
    /// What binds the reply to the call ([`binding`]): set by the broker on a request it
    /// delivers to a responder for brook's reply topic, never read from the log. A request
    /// made any other way has none, and its reply to brook's reply topic is refused.
    pub(crate) mac: Option<ReplyMac>,
}

/// A handler's answer to a request: the reply's value and headers (its key is the request's).
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

/// A reply as a caller receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub correlation_id: CorrelationId,
    /// Where the reply is in the log.
    pub topic: std::sync::Arc<str>,
    pub partition: u32,
    pub offset: u64,
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    /// The responder's headers, without the request-reply ones.
    pub headers: Vec<(String, Bytes)>,
}

/// Counters of request-reply, for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReqReplyStats {
    /// Callers waiting for a reply right now.
    pub waiting_calls: usize,
    /// Correlation ids the index holds.
    pub indexed_ids: usize,
    /// Records in the reply topic without a correlation id (dropped).
    pub malformed_replies: u64,
    /// Second and later replies to one call (ignored).
    pub duplicate_replies: u64,
    /// Records in the reply topic whose `brook_replyMac` does not bind them to their call:
    /// appended by someone other than a responder the broker delivered the request to (ignored).
    pub unbound_replies: u64,
    /// Requests without a correlation id or reply topic (skipped by responders).
    pub malformed_requests: u64,
    /// Requests a responder skipped: already answered, or older than the window.
    pub skipped_requests: u64,
}
