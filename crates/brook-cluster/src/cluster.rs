//! The cluster handle: the clients every call shares, made once when the cluster is reached.
//!
//! A [`KafkaCluster`] is a cheap clone of an `Arc`. It holds one producer (librdkafka batches
//! and pipelines for every caller), one admin client, one consumer outside any group for
//! metadata, watermarks and committed offsets, a pool of consumers for fetches, a cache of
//! partition counts (a produce routes by it), and the group members this process runs (a
//! commit goes through the member of its group when there is one).

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use brook_broker::partitioner::StickyCursor;
use brook_broker::reqreply::Hub;
use brook_broker::Result;
use parking_lot::{Mutex, RwLock};
use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::FutureProducer;
use tokio::sync::{watch, Semaphore};

use crate::config::ClusterConfig;
use crate::error::{task_failed, ConfigError, Context};
use crate::produce::Order;
use crate::subscribe::{Closing, Member};

/// A Kafka cluster seen through brook's broker API. Clone it freely: clones share the clients.
#[derive(Clone)]
pub struct KafkaCluster {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for KafkaCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaCluster")
            .field("bootstrap", &self.inner.config.bootstrap)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    pub(crate) config: ClusterConfig,
    pub(crate) producer: FutureProducer,
    pub(crate) admin: AdminClient<DefaultClientContext>,
    /// Metadata, watermarks, offsets by time, committed offsets of any group: all blocking.
    pub(crate) meta: Arc<BaseConsumer>,
    /// Consumers free for a fetch; `fetch_permits` bounds how many fetches run at once.
    pub(crate) readers: Mutex<Vec<BaseConsumer>>,
    pub(crate) fetch_permits: Semaphore,
    /// Partition counts by topic, filled on first use and dropped when the cluster says the
    /// topic is gone.
    pub(crate) partitions: RwLock<HashMap<String, u32>>,
    /// The order of produce calls (see `produce`).
    pub(crate) order: Order,
    /// Where the next produce call's keyless records go, per topic.
    pub(crate) cursors: Mutex<HashMap<String, Arc<StickyCursor>>>,
    /// The group members of this process, by group id.
    pub(crate) members: Mutex<HashMap<String, Vec<Weak<Member>>>>,
    /// Group members closing (leaving their group), by group id.
    pub(crate) closing: Arc<Closing>,
    /// Request-reply on this cluster, run by the broker's request-reply over this backend.
    pub(crate) reqreply: Hub,
    /// Flips to `true` on close: calls waiting for replies end.
    pub(crate) shutdown: watch::Sender<bool>,
}

impl KafkaCluster {
    /// Makes the clients and checks that the cluster answers (a metadata request within the
    /// request timeout), so a wrong address fails here, not on the first call.
    pub async fn connect(config: ClusterConfig) -> std::result::Result<KafkaCluster, ConnectError> {
        config.validate()?;
        let client = |source| ConfigError::Client { source };
        let producer: FutureProducer = config.producer().create().map_err(client)?;
        let admin: AdminClient<DefaultClientContext> = config.admin().create().map_err(client)?;
        let meta: BaseConsumer = config.reader().create().map_err(client)?;
        let cluster = KafkaCluster {
            inner: Arc::new(Inner {
                fetch_permits: Semaphore::new(config.fetch_consumers_max),
                config,
                producer,
                admin,
                meta: Arc::new(meta),
                readers: Mutex::new(Vec::new()),
                partitions: RwLock::new(HashMap::new()),
                order: Order::default(),
                cursors: Mutex::new(HashMap::new()),
                members: Mutex::new(HashMap::new()),
                closing: Arc::default(),
                reqreply: Hub::default(),
                shutdown: watch::Sender::new(false),
            }),
        };
        let brokers = cluster
            .with_meta(
                Context::new("answer a metadata request"),
                |meta, timeout| {
                    meta.fetch_metadata(None, timeout)
                        .map(|m| m.brokers().len())
                },
            )
            .await
            .map_err(|source| ConnectError::Unreachable {
                url: cluster.inner.config.url(),
                source,
            })?;
        tracing::info!(url = %cluster.inner.config.url(), brokers, "Kafka cluster reached");
        Ok(cluster)
    }

    /// The settings the cluster was reached with.
    pub fn config(&self) -> &ClusterConfig {
        &self.inner.config
    }

    /// Runs a blocking call of the metadata consumer on the blocking pool, with the request
    /// timeout; a Kafka error becomes the broker's per `context`.
    pub(crate) async fn with_meta<T, F>(&self, context: Context<'_>, call: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&BaseConsumer, std::time::Duration) -> rdkafka::error::KafkaResult<T>
            + Send
            + 'static,
    {
        let meta = Arc::clone(&self.inner.meta);
        let timeout = self.inner.config.request_timeout();
        tokio::task::spawn_blocking(move || call(&meta, timeout))
            .await
            .map_err(task_failed)?
            .map_err(|e| context.error(&e))
    }

    /// The live members of `group` in this process.
    pub(crate) fn members_of(&self, group: &str) -> Vec<Arc<Member>> {
        let mut members = self.inner.members.lock();
        let Some(list) = members.get_mut(group) else {
            return Vec::new();
        };
        list.retain(|m| m.strong_count() > 0);
        let live: Vec<Arc<Member>> = list.iter().filter_map(Weak::upgrade).collect();
        if list.is_empty() {
            members.remove(group);
        }
        live
    }

    /// The keyless-record cursor of `topic`.
    pub(crate) fn cursor(&self, topic: &str) -> Arc<StickyCursor> {
        Arc::clone(
            self.inner
                .cursors
                .lock()
                .entry(topic.to_owned())
                .or_default(),
        )
    }

    /// Ends calls waiting for replies, flushes what the producer still holds (within the
    /// request timeout) and lets go of the clients' connections once the last handle is
    /// dropped.
    pub async fn close(&self) -> Result<()> {
        self.inner.shutdown.send_replace(true);
        let inner = Arc::clone(&self.inner);
        let timeout = inner.config.request_timeout();
        tokio::task::spawn_blocking(move || {
            use rdkafka::producer::Producer;
            inner.producer.flush(timeout)
        })
        .await
        .map_err(task_failed)?
        .map_err(|e| Context::new("flush the producer").error(&e))
    }
}

/// Why [`KafkaCluster::connect`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot reach the Kafka cluster at {url}: {source}")]
    Unreachable {
        url: String,
        #[source]
        source: brook_broker::BrokerError,
    },
}
