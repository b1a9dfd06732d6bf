//! brook's embedded broker: the one API every door (gRPC, Kafka, HTTP, in-process) calls.
//!
//! It owns topics, producing, fetching, subscribing, committed offsets and consumer groups over
//! brook-log's partition logs, and the async boundary above them: every file operation that
//! can wait (fsyncs, rolls, reads) runs on tokio's blocking pool (an idle partition's small
//! page-cache write is done in place: see `append`), and waiting (long polls, subscriptions) is done on
//! per-partition `watch` channels woken by appends, never by sleeping.
//!
//! ```no_run
//! use brook_broker::{Broker, NewTopic, ProduceRecord, StartAt, PartitionSubscribe};
//! use futures::StreamExt;
//!
//! # async fn demo() -> brook_broker::Result<()> {
//! let broker = Broker::ephemeral().await?;
//! broker.create_topic(NewTopic::new("orders", 3)).await?;
//! let produced = broker.produce("orders", vec![ProduceRecord::keyed("k", "v")]).await?;
//! let p = produced.records[0].partition;
//! let mut records = broker
//!     .subscribe(PartitionSubscribe::new("orders", p, StartAt::Earliest))
//!     .await?
//!     .records();
//! let first = records.next().await.expect("a record")?;
//! assert_eq!(first.value.as_deref(), Some(&b"v"[..]));
//! broker.close().await?;
//! # Ok(()) }
//! ```
//!
//! # What is public
//!
//! The API every door calls is at the crate root: [`Broker`] and its calls, their plain data
//! ([`ProduceRecord`], [`Fetched`], [`ConsumerRecord`], [`Subscription`], ...), the settings
//! ([`BrokerConfig`]), the one error type ([`BrokerError`], sorted by [`ErrorKind`]), the name
//! rules ([`validate_topic_name`], [`validate_group_id`]) and the storage
//! settings re-exported from brook-log ([`LogConfig`], [`TopicConfig`], [`Durability`]). Two
//! areas keep a module of their own: [`reqreply`] (request-reply on the log, with its header
//! names) and [`partitioner`] (Kafka's murmur2, the rule clients must agree with). The modules
//! below are internal.
//!
//! # Modules
//!
//! - `broker`: open/close, the topic registry and topic administration.
//! - [`auth`]: users, bearer tokens, ACLs and the authorizer every door asks before acting.
//! - `admin`: changing a topic after its creation (deleting records below an offset).
//! - `backend`: the seam the doors call through ([`Backend`]): this broker, or a [`Cluster`]
//!   (a Kafka cluster in gateway mode) answering the same calls.
//! - `produce`, `fetch`, `subscribe`: the data path; `append`: the per-partition append queue
//!   under produce (call order, blocking pool, shared fsyncs).
//! - `group_admin`: committed offsets, listing and describing groups, and deleting a group,
//!   some of its offsets, or moving them (`seek_group`).
//! - `group_claim`: one group id, one kind of membership (broker groups or Kafka's).
//! - `group_observer`: groups coordinated outside the broker (Kafka's), shown by its admin.
//! - `group`, `offsets`: the group coordinator and the offset store behind them.
//! - [`reqreply`]: request-reply on the log (calls, responders, correlation ids).
//! - `txn`: transactions: the coordinator (Kafka's transaction APIs), its durable log, the
//!   check admitting transactional batches, and brook's own atomic writes
//!   ([`Broker::transaction`]).
//! - [`metrics`]: the broker's state as metric families, read at scrape time.
//! - `retention`: the background task applying size and age retention.
//! - `names`: the topic-name and group-id rules every door checks names by.
//! - [`partitioner`]: Kafka's murmur2 key partitioning.
//! - `config`, `error`, `types`: settings, the error enum, the API's plain data.

mod admin;
mod append;
pub mod auth;
mod backend;
mod broker;
mod compaction;
mod config;
mod error;
mod fetch;
mod group;
mod group_admin;
mod group_claim;
mod group_observer;
pub mod metrics;
mod names;
mod offsets;
pub mod partitioner;
mod produce;
pub mod reqreply;
mod retention;
mod subscribe;
mod table;
mod txn;
mod types;

pub use admin::ConfigChange;
pub use backend::{Backend, Cluster};
pub use broker::{Broker, TopicSummary};
pub use config::{BrokerConfig, Limits};
pub use error::{BrokerError, ErrorKind, Result};
pub use group_admin::{OffsetCommit, Seek, SeekTo};
pub use group_claim::{GroupClaim, GroupClaims, GroupProtocol};
pub use group_observer::{GroupObserver, LiveGroup};
pub use names::{validate_group_id, validate_topic_name};
pub use offsets::{check_offsets_file, OffsetsFileCheck};
pub use produce::Produced;
pub use reqreply::{
    Answer, Call, CorrelationId, Replier, Reply, ReplyTo, ReqReplyConfig, ReqReplyStats, Request,
    RespondOptions, Responder,
};
pub use subscribe::{
    Assignment, GroupSubscribe, PartitionBatches, PartitionSubscribe, Subscription,
    SubscriptionEvent,
};
pub use txn::{
    Isolation, ProducerDescription, ProducerIdAndEpoch, Transaction, TransactionDescription,
    TransactionListing, TxnConfig, TxnError, TxnResult, TxnState, TRANSACTIONAL_ID_BYTES_MAX,
};
pub use types::*;

/// The range of every numeric setting and the one refusal outside it (brook-log's), for the
/// doors' settings tables.
pub use brook_log::bounds;
pub use brook_log::{
    CleanerConfig, CleanupPolicy, Corruption, DirtyRatio, Durability, LogConfig, RecoveryReport,
    TopicConfig,
};
