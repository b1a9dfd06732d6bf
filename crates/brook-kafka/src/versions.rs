//! The API keys and versions this door serves: the one table both the ApiVersions answer and
//! the request dispatcher read, so brook never advertises a version it cannot handle.
//!
//! Two ranges per API: what is *advertised* and what is *served*. They differ only for Produce:
//! librdkafka turns compression off unless the broker advertises Produce from version 0
//! (docs/kafka.md, "What each client needs"), while versions 0-2 carry the old message-set format brook does not store,
//! so they are advertised and refused.

use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::VersionRange;

/// One row of the table: an API and the versions we advertise for it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Api {
    pub key: ApiKey,
    /// The API's name as Kafka's docs spell it, for logs and errors.
    pub name: &'static str,
    pub advertised: VersionRange,
}

const fn api(key: ApiKey, name: &'static str, min: i16, max: i16) -> Api {
    Api {
        key,
        name,
        advertised: VersionRange { min, max },
    }
}

/// Every API this door answers, with the versions advertised in ApiVersions.
pub(crate) const APIS: &[Api] = &[
    api(ApiKey::Produce, "Produce", 0, 9),
    api(ApiKey::Fetch, "Fetch", 4, 16),
    api(ApiKey::ListOffsets, "ListOffsets", 1, 7),
    api(ApiKey::Metadata, "Metadata", 0, 12),
    // Version 9 of both carries a consumer-protocol member's id and epoch (KIP-848); the
    // batched groups of OffsetFetch v8+ are answered group by group.
    api(ApiKey::OffsetCommit, "OffsetCommit", 2, 9),
    api(ApiKey::OffsetFetch, "OffsetFetch", 1, 9),
    api(ApiKey::FindCoordinator, "FindCoordinator", 0, 4),
    api(ApiKey::JoinGroup, "JoinGroup", 0, 6),
    api(ApiKey::Heartbeat, "Heartbeat", 0, 4),
    api(ApiKey::LeaveGroup, "LeaveGroup", 0, 4),
    api(ApiKey::SyncGroup, "SyncGroup", 0, 4),
    api(ApiKey::DescribeGroups, "DescribeGroups", 0, 5),
    // Version 5 filters and reports the group type (classic or consumer).
    api(ApiKey::ListGroups, "ListGroups", 0, 5),
    api(ApiKey::ApiVersions, "ApiVersions", 0, 3),
    api(ApiKey::CreateTopics, "CreateTopics", 2, 5),
    api(ApiKey::DeleteTopics, "DeleteTopics", 1, 4),
    api(ApiKey::InitProducerId, "InitProducerId", 0, 4),
    api(ApiKey::OffsetForLeaderEpoch, "OffsetForLeaderEpoch", 2, 4),
    api(ApiKey::DescribeConfigs, "DescribeConfigs", 1, 4),
    // Topic, cluster and group administration (docs/kafka.md, "Compatibility").
    api(ApiKey::DeleteRecords, "DeleteRecords", 0, 2),
    api(ApiKey::AlterConfigs, "AlterConfigs", 0, 2),
    api(ApiKey::DescribeLogDirs, "DescribeLogDirs", 1, 4),
    api(ApiKey::CreatePartitions, "CreatePartitions", 0, 3),
    api(ApiKey::DeleteGroups, "DeleteGroups", 0, 2),
    api(ApiKey::ElectLeaders, "ElectLeaders", 0, 2),
    api(
        ApiKey::IncrementalAlterConfigs,
        "IncrementalAlterConfigs",
        0,
        1,
    ),
    api(ApiKey::OffsetDelete, "OffsetDelete", 0, 0),
    api(ApiKey::DescribeCluster, "DescribeCluster", 0, 2),
    // The consumer group protocol (docs/kafka.md, "Consumer groups with group.protocol=consumer").
    api(
        ApiKey::ConsumerGroupHeartbeat,
        "ConsumerGroupHeartbeat",
        0,
        1,
    ),
    api(ApiKey::ConsumerGroupDescribe, "ConsumerGroupDescribe", 0, 1),
    // Transactions (docs/kafka.md, "Transactions"): the versions whose semantics brook keeps;
    // the later ones are KIP-890's (epoch bumps per transaction, TRANSACTION_ABORTABLE).
    api(ApiKey::AddPartitionsToTxn, "AddPartitionsToTxn", 0, 3),
    api(ApiKey::AddOffsetsToTxn, "AddOffsetsToTxn", 0, 3),
    api(ApiKey::EndTxn, "EndTxn", 0, 3),
    api(ApiKey::TxnOffsetCommit, "TxnOffsetCommit", 0, 3),
    api(ApiKey::DescribeProducers, "DescribeProducers", 0, 0),
    api(ApiKey::DescribeTransactions, "DescribeTransactions", 0, 0),
    api(ApiKey::ListTransactions, "ListTransactions", 0, 1),
    // SASL (docs/security.md): the handshake from version 1 only (version 0 sends the tokens
    // unframed), then SaslAuthenticate (KIP-152).
    api(ApiKey::SaslHandshake, "SaslHandshake", 1, 1),
    api(ApiKey::SaslAuthenticate, "SaslAuthenticate", 0, 2),
    // ACLs (docs/security.md, "Authorization"): version 0 cannot name a pattern type.
    api(ApiKey::DescribeAcls, "DescribeAcls", 1, 3),
    api(ApiKey::CreateAcls, "CreateAcls", 1, 3),
    api(ApiKey::DeleteAcls, "DeleteAcls", 1, 3),
    // SCRAM users (KIP-554; docs/security.md, "Users and tokens").
    api(
        ApiKey::DescribeUserScramCredentials,
        "DescribeUserScramCredentials",
        0,
        0,
    ),
    api(
        ApiKey::AlterUserScramCredentials,
        "AlterUserScramCredentials",
        0,
        0,
    ),
];

/// The row for `key`, if the door answers it at all.
pub(crate) fn lookup(key: ApiKey) -> Option<&'static Api> {
    APIS.iter().find(|api| api.key == key)
}

impl Api {
    /// The versions actually handled: the advertised range cut to what the codec decodes.
    pub(crate) fn served(&self) -> VersionRange {
        self.advertised.intersect(&self.key.valid_versions())
    }

    /// Whether requests of `version` are handled.
    pub(crate) fn serves(&self, version: i16) -> bool {
        let served = self.served();
        (served.min..=served.max).contains(&version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_advertised_range_is_served_except_the_old_produce_versions() {
        for api in APIS {
            let served = api.served();
            assert!(!served.is_empty(), "{:?} serves nothing", api.key);
            assert_eq!(served.max, api.advertised.max, "{:?}", api.key);
            if api.key != ApiKey::Produce {
                assert_eq!(served.min, api.advertised.min, "{:?}", api.key);
            }
        }
    }

    #[test]
    fn each_api_appears_once() {
        for (i, a) in APIS.iter().enumerate() {
            assert!(APIS[i + 1..].iter().all(|b| b.key != a.key), "{:?}", a.key);
        }
    }
}
