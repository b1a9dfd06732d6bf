//! Kafka's consumer group protocol (KIP-848) through the Kafka door: librdkafka consumers with
//! `group.protocol=consumer` split a topic's partitions, hand them on when one leaves, and
//! resume from committed offsets after a broker restart; hand-built frames check what
//! librdkafka does not show (the errors of a group id used by both protocols, stale member
//! epochs on OffsetCommit/OffsetFetch v9, ConsumerGroupDescribe, ListGroups v5's group type,
//! an unknown assignor). kafka-python (3.0) does not speak this protocol, so the second client
//! here is the raw socket.

mod kafka_support;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use brook_broker::{Broker, BrokerConfig, Durability};
use brook_kafka::{KafkaConfig, KafkaServer};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::consumer_group_describe_response::DescribedGroup;
use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions as OwnedPartitions;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::{
    ApiKey, ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse,
    ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, DescribeGroupsRequest,
    DescribeGroupsResponse, GroupId, JoinGroupRequest, JoinGroupResponse, ListGroupsRequest,
    ListGroupsResponse, OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest,
    OffsetFetchResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_support::raw::Raw;
use kafka_support::{client_config, owned, producer, PATIENCE};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::FutureRecord;
use rdkafka::Message;

/// How often the door tells members to heartbeat: short, so rebalances take a second or so.
const HEARTBEAT: Duration = Duration::from_millis(250);

/// A broker on `dir` with a Kafka door whose consumer-protocol groups heartbeat quickly.
async fn start(dir: &Path) -> (Broker, KafkaServer) {
    let mut config = BrokerConfig::new(dir);
    config.log.durability = Durability::None;
    let broker = Broker::open(config).await.expect("broker opens");
    let kafka = KafkaServer::start(
        broker.clone(),
        "127.0.0.1:0".parse().expect("address"),
        KafkaConfig {
            group_initial_rebalance_delay: Duration::ZERO,
            group_consumer_heartbeat_interval: HEARTBEAT,
            group_consumer_session_timeout: Duration::from_secs(6),
            ..KafkaConfig::default()
        },
    )
    .await
    .expect("Kafka listener starts");
    (broker, kafka)
}

async fn stop(broker: Broker, kafka: KafkaServer) {
    kafka.stop().await.expect("listener stops");
    broker.close().await.expect("broker closes");
}

/// A librdkafka consumer of `topic` in `group` using the consumer protocol.
fn member(bootstrap: &str, group: &str, topic: &str, extra: &[(&str, &str)]) -> BaseConsumer {
    let mut config = client_config(bootstrap);
    config
        .set("group.id", group)
        .set("group.protocol", "consumer")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "100")
        .set("enable.partition.eof", "false");
    for (k, v) in extra {
        config.set(*k, *v);
    }
    let consumer: BaseConsumer = config.create().expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    consumer
}

/// Polls `members` until `done` holds for their assignments; records what they receive as
/// (partition, offset) per member.
fn poll_until(
    members: &[&BaseConsumer],
    topic: &str,
    what: &str,
    received: &mut [Vec<(i32, i64)>],
    done: impl Fn(&[BTreeSet<i32>], &[Vec<(i32, i64)>]) -> bool,
) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        for (i, member) in members.iter().enumerate() {
            if let Some(message) = member.poll(Duration::from_millis(20)) {
                let message = message.expect("consume");
                received[i].push((message.partition(), message.offset()));
            }
        }
        let owned: Vec<BTreeSet<i32>> = members.iter().map(|m| owned(m, topic)).collect();
        if done(&owned, received) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: still {owned:?}");
    }
}

/// Each member owns a share, no two overlap, and together they cover `partitions`.
fn split(owned: &[BTreeSet<i32>], partitions: i32) -> bool {
    let all: Vec<i32> = owned.iter().flatten().copied().collect();
    let distinct: BTreeSet<i32> = all.iter().copied().collect();
    owned.iter().all(|o| !o.is_empty())
        && all.len() == distinct.len()
        && distinct == (0..partitions).collect()
}

async fn produce(bootstrap: &str, topic: &str, per_partition: usize, partitions: i32) {
    let producer = producer(bootstrap, &[]);
    for i in 0..per_partition {
        for p in 0..partitions {
            let value = format!("{p}-{i}");
            producer
                .send(
                    FutureRecord::<(), _>::to(topic)
                        .partition(p)
                        .payload(&value),
                    PATIENCE,
                )
                .await
                .expect("produced");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_split_the_partitions_and_the_rest_take_over_when_one_leaves() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (broker, kafka) = start(dir.path()).await;
    let bootstrap = kafka.local_addr().to_string();
    broker
        .create_topic(brook_broker::NewTopic::new("orders", 6))
        .await
        .expect("topic");
    produce(&bootstrap, "orders", 5, 6).await;
    let group = "kip848-split";
    let b2 = bootstrap.clone();
    let observed = broker.clone();
    let handle = tokio::runtime::Handle::current();
    let received = tokio::task::spawn_blocking(move || {
        let a = member(&b2, group, "orders", &[]);
        let b = member(&b2, group, "orders", &[]);
        let c = member(&b2, group, "orders", &[]);
        let mut received = vec![Vec::new(), Vec::new(), Vec::new()];
        poll_until(
            &[&a, &b, &c],
            "orders",
            "three-way split",
            &mut received,
            |o, _| split(o, 6),
        );
        // librdkafka really speaks the consumer protocol: the group is a consumer-protocol
        // group (ConsumerGroupDescribe), every member at the group's epoch, two partitions each.
        let described = handle.block_on(describe(&b2, group));
        assert_eq!(described.error_code, 0, "{:?}", described.error_message);
        assert_eq!(described.group_state.as_str(), "Stable");
        assert_eq!(described.assignor_name.as_str(), "uniform");
        assert_eq!(described.members.len(), 3);
        for m in &described.members {
            assert_eq!(m.member_epoch, described.group_epoch);
            assert_eq!(m.assignment.topic_partitions[0].partitions.len(), 2);
            assert_eq!(m.subscribed_topic_names[0].0.as_str(), "orders");
        }
        // The broker's own admin view (every door's) shows the group and its members.
        let described = observed.describe_group(group).expect("group");
        assert_eq!(described.members.len(), 3);
        assert_eq!(described.state, "Stable");
        let shares: Vec<BTreeSet<i32>> = [&a, &b, &c].iter().map(|m| owned(m, "orders")).collect();
        assert!(shares.iter().all(|s| s.len() == 2), "uniform: {shares:?}");

        // c leaves (closing sends the leave heartbeat); a and b cover its partitions.
        drop(c);
        let mut two = vec![Vec::new(), Vec::new()];
        poll_until(&[&a, &b], "orders", "two-way split", &mut two, |o, _| {
            split(o, 6)
        });
        // Every record is read (c's partitions again from the start: nobody committed), and
        // the two that stay read only partitions they own.
        let distinct = |earlier: &[Vec<(i32, i64)>], later: &[Vec<(i32, i64)>]| {
            earlier
                .iter()
                .chain(later)
                .flatten()
                .copied()
                .collect::<BTreeSet<(i32, i64)>>()
                .len()
        };
        poll_until(&[&a, &b], "orders", "all records", &mut two, |_, r| {
            distinct(&received, r) == 30
        });
        let after_a = owned(&a, "orders");
        let after_b = owned(&b, "orders");
        for (i, mine) in [after_a, after_b].iter().enumerate() {
            let late: Vec<&(i32, i64)> = two[i].iter().filter(|(p, _)| !mine.contains(p)).collect();
            assert!(
                late.is_empty(),
                "member {i} read partitions it does not own: {late:?}"
            );
        }
        drop((a, b));
    })
    .await;
    received.expect("consumers");
    stop(broker, kafka).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_offsets_survive_a_broker_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (broker, kafka) = start(dir.path()).await;
    let bootstrap = kafka.local_addr().to_string();
    broker
        .create_topic(brook_broker::NewTopic::new("resume", 2))
        .await
        .expect("topic");
    produce(&bootstrap, "resume", 5, 2).await;
    let group = "kip848-resume";
    let b2 = bootstrap.clone();
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        // The assignor a member asks for (group.remote.assignor) is the group's.
        let a = member(&b2, group, "resume", &[("group.remote.assignor", "range")]);
        let mut got = vec![Vec::new()];
        poll_until(&[&a], "resume", "ten records", &mut got, |_, r| {
            r[0].len() >= 10
        });
        assert_eq!(
            handle.block_on(describe(&b2, group)).assignor_name.as_str(),
            "range"
        );
        // OffsetCommit v9, with the member's id and epoch.
        a.commit_consumer_state(CommitMode::Sync).expect("commit");
        drop(a);
    })
    .await
    .expect("first consumer");
    let committed = broker.committed_offsets(group, &[]).expect("offsets");
    assert_eq!(committed.len(), 2);
    assert!(
        committed.iter().all(|(_, c)| c.offset == 5),
        "{committed:?}"
    );
    stop(broker, kafka).await;

    let (broker, kafka) = start(dir.path()).await;
    let bootstrap = kafka.local_addr().to_string();
    produce(&bootstrap, "resume", 2, 2).await;
    let b2 = bootstrap.clone();
    tokio::task::spawn_blocking(move || {
        let a = member(&b2, group, "resume", &[]);
        let mut got = vec![Vec::new()];
        poll_until(&[&a], "resume", "the new records", &mut got, |_, r| {
            r[0].len() >= 4
        });
        let offsets: BTreeSet<i64> = got[0].iter().map(|(_, o)| *o).collect();
        assert_eq!(
            offsets,
            BTreeSet::from([5, 6]),
            "resumed at the commit: {got:?}"
        );
        // Nothing more arrives: nothing below the commit was read again.
        let until = Instant::now() + Duration::from_millis(500);
        while Instant::now() < until {
            assert!(a.poll(Duration::from_millis(50)).is_none());
        }
    })
    .await
    .expect("second consumer");
    stop(broker, kafka).await;
}

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

fn heartbeat(group: &str, member: &str, epoch: i32) -> ConsumerGroupHeartbeatRequest {
    let mut hb = ConsumerGroupHeartbeatRequest::default();
    hb.group_id = GroupId(text(group));
    hb.member_id = text(member);
    hb.member_epoch = epoch;
    hb.rebalance_timeout_ms = if epoch == 0 { 30_000 } else { -1 };
    if epoch == 0 {
        hb.subscribed_topic_names = Some(vec![TopicName(text("wire"))]);
        hb.topic_partitions = Some(Vec::new());
    }
    hb
}

async fn beat(raw: &mut Raw, hb: &ConsumerGroupHeartbeatRequest) -> ConsumerGroupHeartbeatResponse {
    raw.call(ApiKey::ConsumerGroupHeartbeat, 1, hb).await
}

/// ConsumerGroupDescribe of one group, over a connection of its own.
async fn describe(bootstrap: &str, group: &str) -> DescribedGroup {
    let mut raw = Raw::connect_to(bootstrap).await;
    let mut request = ConsumerGroupDescribeRequest::default();
    request.group_ids = vec![GroupId(text(group))];
    let mut response: ConsumerGroupDescribeResponse =
        raw.call(ApiKey::ConsumerGroupDescribe, 1, &request).await;
    response.groups.remove(0)
}

fn partitions(response: &ConsumerGroupHeartbeatResponse) -> Option<Vec<i32>> {
    response.assignment.as_ref().map(|a| {
        a.topic_partitions
            .iter()
            .flat_map(|t| t.partitions.clone())
            .collect()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wire_refuses_mixed_protocols_stale_epochs_and_unknown_assignors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (broker, kafka) = start(dir.path()).await;
    let bootstrap = kafka.local_addr().to_string();
    broker
        .create_topic(brook_broker::NewTopic::new("wire", 2))
        .await
        .expect("topic");
    let mut raw = Raw::connect_to(&bootstrap).await;

    // An unknown assignor is refused, naming the ones there are.
    let mut bad = heartbeat("wire-group", "m1", 0);
    bad.server_assignor = Some(text("cooperative-sticky"));
    let refused = beat(&mut raw, &bad).await;
    assert_eq!(
        refused.error_code,
        ResponseError::UnsupportedAssignor.code()
    );
    assert!(refused
        .error_message
        .as_deref()
        .is_some_and(|m| m.contains("uniform, range")));

    // Two members by hand: m2 gets its share only after m1 says it revoked it.
    let m1 = beat(&mut raw, &heartbeat("wire-group", "m1", 0)).await;
    assert_eq!((m1.error_code, m1.member_epoch), (0, 1));
    assert_eq!(partitions(&m1), Some(vec![0, 1]));
    assert_eq!(m1.heartbeat_interval_ms, HEARTBEAT.as_millis() as i32);
    // Assignments name topics by id: the broker's, as Metadata reports it.
    let topic_id = m1.assignment.as_ref().expect("assignment").topic_partitions[0].topic_id;
    assert_eq!(
        *topic_id.as_bytes(),
        broker.describe_topic("wire").expect("topic").id
    );
    let m2 = beat(&mut raw, &heartbeat("wire-group", "m2", 0)).await;
    assert_eq!((m2.member_epoch, partitions(&m2)), (2, Some(vec![])));
    let mut again = heartbeat("wire-group", "m1", 1);
    let owning = |ps: Vec<i32>| {
        let mut owned = OwnedPartitions::default();
        owned.topic_id = topic_id;
        owned.partitions = ps;
        vec![owned]
    };
    again.topic_partitions = Some(owning(vec![0, 1]));
    let m1 = beat(&mut raw, &again).await;
    assert_eq!(m1.member_epoch, 1, "revoking keeps the epoch");
    let kept = partitions(&m1).expect("what m1 keeps");
    assert_eq!(kept.len(), 1);

    // OffsetCommit v9 is checked against the member epoch; v8 from a consumer-protocol member
    // is refused; OffsetFetch v9 the same.
    let commit = |member: &str, epoch: i32| {
        let mut partition = OffsetCommitRequestPartition::default();
        partition.partition_index = kept[0];
        partition.committed_offset = 0;
        let mut topic = OffsetCommitRequestTopic::default();
        topic.name = TopicName(text("wire"));
        topic.partitions = vec![partition];
        let mut request = OffsetCommitRequest::default();
        request.group_id = GroupId(text("wire-group"));
        request.member_id = text(member);
        request.generation_id_or_member_epoch = epoch;
        request.topics = vec![topic];
        request
    };
    for (member, epoch, version, expected) in [
        ("m1", 1, 9, 0),
        ("m1", 2, 9, ResponseError::StaleMemberEpoch.code()),
        ("nobody", 1, 9, ResponseError::UnknownMemberId.code()),
        ("", -1, 9, ResponseError::UnknownMemberId.code()),
        ("m1", 1, 8, ResponseError::UnsupportedVersion.code()),
    ] {
        let answer: OffsetCommitResponse = raw
            .call(ApiKey::OffsetCommit, version, &commit(member, epoch))
            .await;
        assert_eq!(
            answer.topics[0].partitions[0].error_code, expected,
            "{member} at epoch {epoch}, v{version}"
        );
    }
    let fetch = |member: Option<&str>, epoch: i32| {
        let mut topic = OffsetFetchRequestTopics::default();
        topic.name = TopicName(text("wire"));
        topic.partition_indexes = vec![0, 1];
        let mut group = OffsetFetchRequestGroup::default();
        group.group_id = GroupId(text("wire-group"));
        group.member_id = member.map(text);
        group.member_epoch = epoch;
        group.topics = Some(vec![topic]);
        let mut request = OffsetFetchRequest::default();
        request.groups = vec![group];
        request
    };
    let answer: OffsetFetchResponse = raw
        .call(ApiKey::OffsetFetch, 9, &fetch(Some("m1"), 1))
        .await;
    let group = &answer.groups[0];
    assert_eq!(group.error_code, 0);
    let offsets: Vec<(i32, i64)> = group.topics[0]
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.committed_offset))
        .collect();
    assert!(offsets.contains(&(kept[0], 0)), "{offsets:?}");
    let answer: OffsetFetchResponse = raw
        .call(ApiKey::OffsetFetch, 9, &fetch(Some("m1"), 5))
        .await;
    assert_eq!(
        answer.groups[0].error_code,
        ResponseError::StaleMemberEpoch.code()
    );
    let answer: OffsetFetchResponse = raw.call(ApiKey::OffsetFetch, 9, &fetch(None, -1)).await;
    assert_eq!(
        answer.groups[0].error_code, 0,
        "a tool's fetch names no member"
    );

    // m1 revokes, moves on; m2 receives the other partition.
    again.topic_partitions = Some(owning(kept.clone()));
    let m1 = beat(&mut raw, &again).await;
    assert_eq!(m1.member_epoch, 2);
    let m2 = beat(&mut raw, &heartbeat("wire-group", "m2", 2)).await;
    let given = partitions(&m2).expect("m2's share");
    assert_eq!(given.len(), 1);
    assert_ne!(given, kept);

    // ConsumerGroupDescribe and ListGroups v5 show the group as a consumer group.
    let mut describe = ConsumerGroupDescribeRequest::default();
    describe.group_ids = vec![GroupId(text("wire-group")), GroupId(text("no-such-group"))];
    let described: ConsumerGroupDescribeResponse =
        raw.call(ApiKey::ConsumerGroupDescribe, 1, &describe).await;
    let g = &described.groups[0];
    assert_eq!((g.error_code, g.group_state.as_str()), (0, "Stable"));
    assert_eq!(
        (g.group_epoch, g.assignment_epoch, g.assignor_name.as_str()),
        (2, 2, "uniform")
    );
    assert_eq!(g.members.len(), 2);
    for m in &g.members {
        assert_eq!(
            m.assignment.topic_partitions[0].topic_name.0.as_str(),
            "wire"
        );
        assert_eq!(m.assignment.topic_partitions[0].partitions.len(), 1);
        assert_eq!(m.member_epoch, 2);
    }
    assert_eq!(
        described.groups[1].error_code,
        ResponseError::GroupIdNotFound.code()
    );
    let mut list = ListGroupsRequest::default();
    list.types_filter = vec![text("consumer")];
    let listed: ListGroupsResponse = raw.call(ApiKey::ListGroups, 5, &list).await;
    let mine: Vec<_> = listed
        .groups
        .iter()
        .map(|g| {
            (
                g.group_id.0.as_str(),
                g.group_type.as_str(),
                g.group_state.as_str(),
            )
        })
        .collect();
    assert_eq!(mine, [("wire-group", "consumer", "Stable")]);

    // The classic DescribeGroups shows it too, for tools that only know that API.
    let mut classic_describe = DescribeGroupsRequest::default();
    classic_describe.groups = vec![GroupId(text("wire-group"))];
    let described: DescribeGroupsResponse =
        raw.call(ApiKey::DescribeGroups, 5, &classic_describe).await;
    let g = &described.groups[0];
    assert_eq!(
        (
            g.group_state.as_str(),
            g.protocol_type.as_str(),
            g.protocol_data.as_str()
        ),
        ("Stable", "consumer", "uniform")
    );
    assert_eq!(g.members.len(), 2);
    assert!(g.members.iter().all(|m| !m.member_assignment.is_empty()));

    // A classic JoinGroup for the consumer group's id: INCONSISTENT_GROUP_PROTOCOL.
    let mut join = JoinGroupRequest::default();
    join.group_id = GroupId(text("wire-group"));
    join.session_timeout_ms = 10_000;
    join.rebalance_timeout_ms = 10_000;
    join.protocol_type = text("consumer");
    let mut protocol = JoinGroupRequestProtocol::default();
    protocol.name = text("range");
    join.protocols = vec![protocol];
    let joined: JoinGroupResponse = raw.call(ApiKey::JoinGroup, 5, &join).await;
    assert_eq!(
        joined.error_code,
        ResponseError::InconsistentGroupProtocol.code()
    );

    // And the other way: a live classic group's id refuses consumer-protocol members.
    let b2 = bootstrap.clone();
    let classic = tokio::task::spawn_blocking(move || {
        let mut config = client_config(&b2);
        config
            .set("group.id", "classic-group")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "300");
        let consumer: BaseConsumer = config.create().expect("classic consumer");
        consumer.subscribe(&["wire"]).expect("subscribe");
        let mut got = vec![Vec::new()];
        poll_until(
            &[&consumer],
            "wire",
            "classic member assigned",
            &mut got,
            |o, _| o[0].len() == 2,
        );
        consumer
    })
    .await
    .expect("classic consumer");
    let refused = beat(&mut raw, &heartbeat("classic-group", "m3", 0)).await;
    assert_eq!(refused.error_code, ResponseError::GroupIdNotFound.code());
    assert!(
        refused
            .error_message
            .as_deref()
            .is_some_and(|m| m.contains("not a consumer group")),
        "{:?}",
        refused.error_message
    );
    // librdkafka with group.protocol=consumer in that group gets nothing, and the classic
    // member keeps its partitions.
    let b2 = bootstrap.clone();
    tokio::task::spawn_blocking(move || {
        let refused = member(&b2, "classic-group", "wire", &[]);
        let until = Instant::now() + Duration::from_millis(1500);
        while Instant::now() < until {
            let _ = refused.poll(Duration::from_millis(20));
            let _ = classic.poll(Duration::from_millis(20));
        }
        assert!(owned(&refused, "wire").is_empty());
        assert_eq!(owned(&classic, "wire").len(), 2);
        drop(refused);
        drop(classic);
    })
    .await
    .expect("consumers close");

    // Leaving: -1 ends membership, and the one left gets everything.
    let left = beat(&mut raw, &heartbeat("wire-group", "m1", -1)).await;
    assert_eq!((left.error_code, left.member_epoch), (0, -1));
    let m2 = beat(&mut raw, &heartbeat("wire-group", "m2", 2)).await;
    assert_eq!((m2.member_epoch, partitions(&m2)), (3, Some(vec![0, 1])));
    stop(broker, kafka).await;
}
