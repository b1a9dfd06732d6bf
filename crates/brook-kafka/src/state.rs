//! What every connection of one listener shares: the broker, the settings, the address clients
//! are told to use, and the Kafka-protocol state that lives above the broker (the group
//! coordinators of the classic and the consumer protocol).

use std::net::SocketAddr;
use std::sync::Arc;

use crate::config::{self, KafkaConfig};
use crate::consumer_group::ConsumerGroups;
use crate::coordinator::Coordinator;
use crate::Broker;

/// The node id brook reports for itself: the only broker, leader of every partition, and
/// controller and coordinator of everything.
pub(crate) const NODE_ID: i32 = 1;

/// Shared state of one Kafka listener.
pub(crate) struct ListenerState {
    pub broker: Broker,
    pub config: KafkaConfig,
    /// Host and port Metadata and FindCoordinator hand out.
    pub advertised_host: String,
    pub advertised_port: i32,
    pub groups: Arc<Coordinator>,
    /// Consumer-protocol (KIP-848) groups.
    pub consumer_groups: Arc<ConsumerGroups>,
}

impl ListenerState {
    pub(crate) fn new(broker: Broker, config: KafkaConfig, local: SocketAddr) -> Self {
        let (advertised_host, advertised_port) = config::advertised(&config, local);
        let groups = Coordinator::new(config.group_initial_rebalance_delay, broker.group_claims());
        // The broker's admin calls show this door's groups while the door lives.
        broker.add_group_observer(&groups);
        let consumer_groups = ConsumerGroups::new(
            broker.group_claims(),
            config.group_consumer_session_timeout,
            config.group_consumer_heartbeat_interval,
        );
        broker.add_group_observer(&consumer_groups);
        Self {
            broker,
            config,
            advertised_host,
            advertised_port,
            groups,
            consumer_groups,
        }
    }
}
