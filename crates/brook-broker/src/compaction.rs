//! The log cleaner's lifecycle in the broker: started when the broker opens, with the broker's
//! [`CleanerConfig`], over every partition log the broker has open; woken when a compacted
//! topic is created; stopped when the broker closes (a clean in progress gives up and its
//! files aside are removed).
//!
//! The cleaner's threads are brook-log's own (synchronous, no tokio). They see the topic
//! registry, not the broker, so they never keep a dropped broker alive; each round lists the
//! logs anew, so a deleted topic drops out by itself (and its logs, being closed, refuse the
//! clean).

use std::collections::HashMap;
use std::sync::Arc;

use brook_log::{Cleaner, CleanerConfig, PartitionLog};
use parking_lot::RwLock;

use crate::broker::TopicHandle;
use crate::error::{BrokerError, Result};

/// The registry of open topics, shared with the cleaner's threads.
pub(crate) type Topics = Arc<RwLock<HashMap<String, Arc<TopicHandle>>>>;

/// Starts the cleaner over the partition logs of `topics`.
pub(crate) fn start(config: &CleanerConfig, topics: &Topics) -> Result<Cleaner> {
    let topics = Arc::clone(topics);
    let source = Box::new(move || {
        topics
            .read()
            .values()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .enumerate()
                    .map(move |(p, h)| (format!("{}-{p}", t.name), Arc::clone(&h.log)))
            })
            .collect::<Vec<(String, Arc<PartitionLog>)>>()
    });
    Cleaner::start(config.clone(), source).map_err(BrokerError::from_admin_log)
}
