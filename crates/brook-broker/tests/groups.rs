//! Consumer groups and committed offsets through the embedded broker.

use std::collections::BTreeSet;
use std::time::Duration;

use brook_broker::{
    Assignment, Broker, BrokerConfig, BrokerError, GroupProtocol, GroupSubscribe, NewTopic,
    OffsetCommit, OffsetReset, PartitionSubscribe, ProduceRecord, Seek, SeekTo, StartAt,
    Subscription, SubscriptionEvent, TopicPartition,
};
use futures::StreamExt;

const WAIT: Duration = Duration::from_secs(10);

/// The next event, within WAIT.
async fn next_event(sub: &mut Subscription) -> SubscriptionEvent {
    tokio::time::timeout(WAIT, sub.next())
        .await
        .expect("an event in time")
        .expect("stream open")
        .expect("no error")
}

/// Events until the next assignment.
async fn next_assignment(sub: &mut Subscription) -> Assignment {
    loop {
        if let SubscriptionEvent::Assignment(a) = next_event(sub).await {
            return a;
        }
    }
}

fn partitions(a: &Assignment) -> Vec<u32> {
    a.partitions.iter().map(|tp| tp.partition).collect()
}

fn group(topic: &str) -> GroupSubscribe {
    let mut request = GroupSubscribe::new("g", vec![topic.to_owned()]);
    request.reset = OffsetReset::Earliest;
    request
}

#[tokio::test]
async fn two_members_split_partitions_and_the_survivor_takes_all() {
    let broker = Broker::ephemeral().await.expect("broker");
    broker
        .create_topic(NewTopic::new("t", 4))
        .await
        .expect("create");
    let mut a = broker.subscribe_group(group("t")).await.expect("join a");
    assert_eq!(partitions(&next_assignment(&mut a).await), [0, 1, 2, 3]);

    let mut b = broker.subscribe_group(group("t")).await.expect("join b");
    // a gives up 2 and 3 when it next looks; b gets them only then.
    assert_eq!(partitions(&next_assignment(&mut a).await), [0, 1]);
    let mut b_parts = partitions(&next_assignment(&mut b).await);
    if b_parts.is_empty() {
        b_parts = partitions(&next_assignment(&mut b).await);
    }
    assert_eq!(b_parts, [2, 3]);

    let described = broker.describe_group("g").expect("describe");
    assert_eq!(described.members.len(), 2);
    assert_eq!(described.state, "Stable");

    // Records go to whichever member owns their partition, and only to it.
    let records = (0..4u32)
        .map(|p| ProduceRecord {
            partition: Some(p),
            ..ProduceRecord::value(format!("p{p}"))
        })
        .collect();
    broker.produce("t", records).await.expect("produce");
    let mut got_a = BTreeSet::new();
    while got_a.len() < 2 {
        if let SubscriptionEvent::Batches(b) = next_event(&mut a).await {
            got_a.insert(b.partition);
        }
    }
    let mut got_b = BTreeSet::new();
    while got_b.len() < 2 {
        if let SubscriptionEvent::Batches(b) = next_event(&mut b).await {
            got_b.insert(b.partition);
        }
    }
    assert_eq!(got_a, BTreeSet::from([0, 1]));
    assert_eq!(got_b, BTreeSet::from([2, 3]));

    drop(b);
    let all = next_assignment(&mut a).await;
    assert_eq!(partitions(&all), [0, 1, 2, 3]);
    assert!(all.generation >= 3);
    assert_eq!(
        broker.describe_group("g").expect("describe").members.len(),
        1
    );
    drop(a);
    assert!(
        matches!(
            broker.describe_group("g"),
            Err(BrokerError::UnknownGroup { .. })
        ),
        "a dropped member leaves; with no commits the group is gone"
    );
}

#[tokio::test]
async fn a_member_resumes_from_the_committed_offset() {
    let broker = Broker::ephemeral().await.expect("broker");
    broker
        .create_topic(NewTopic::new("t", 1))
        .await
        .expect("create");
    let records = (0..5)
        .map(|i| ProduceRecord::value(format!("{i}")))
        .collect();
    broker.produce("t", records).await.expect("produce");
    broker
        .commit_offsets("g", vec![OffsetCommit::new("t", 0, 3)])
        .await
        .expect("commit");
    let mut records = broker
        .subscribe_group(group("t"))
        .await
        .expect("join")
        .records();
    let first = tokio::time::timeout(WAIT, records.next())
        .await
        .expect("in time")
        .expect("open")
        .expect("ok");
    assert_eq!(first.offset, 3);
}

#[tokio::test]
async fn committed_offsets_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let broker = Broker::open(BrokerConfig::new(dir.path()))
            .await
            .expect("open");
        broker
            .create_topic(NewTopic::new("t", 2))
            .await
            .expect("create");
        broker
            .commit_offsets(
                "g",
                vec![
                    OffsetCommit {
                        metadata: "from the test".into(),
                        ..OffsetCommit::new("t", 0, 7)
                    },
                    OffsetCommit::new("t", 1, 9),
                ],
            )
            .await
            .expect("commit");
        broker.close().await.expect("close");
    }
    let broker = Broker::open(BrokerConfig::new(dir.path()))
        .await
        .expect("reopen");
    let committed = broker.committed_offsets("g", &[]).expect("fetch offsets");
    assert_eq!(committed.len(), 2);
    assert_eq!(committed[0].0, TopicPartition::new("t", 0));
    assert_eq!(committed[0].1.offset, 7);
    assert_eq!(committed[0].1.metadata, "from the test");
    assert_eq!(committed[1].1.offset, 9);
    let only = broker
        .committed_offsets("g", &[TopicPartition::new("t", 1)])
        .expect("fetch one");
    assert_eq!(only.len(), 1);
    let listed = broker.list_groups();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].members, 0);
    let described = broker.describe_group("g").expect("describe");
    assert_eq!(described.state, "Empty");
    assert_eq!(described.offsets.len(), 2);
    broker.close().await.expect("close");
}

#[tokio::test]
async fn describe_group_reports_lag() {
    let broker = Broker::ephemeral().await.expect("broker");
    broker
        .create_topic(NewTopic::new("t", 1))
        .await
        .expect("create");
    let records = (0..10)
        .map(|i| ProduceRecord::value(format!("{i}")))
        .collect();
    broker.produce("t", records).await.expect("produce");
    broker
        .commit_offsets("g", vec![OffsetCommit::new("t", 0, 4)])
        .await
        .expect("commit");
    let described = broker.describe_group("g").expect("describe");
    let row = &described.offsets[0];
    assert_eq!(row.high_watermark, 10);
    assert_eq!(row.lag, Some(6));
    assert_eq!(row.member_id, None);
}

#[tokio::test]
async fn subscribing_by_committed_offset_without_joining() {
    let broker = Broker::ephemeral().await.expect("broker");
    broker
        .create_topic(NewTopic::new("t", 1))
        .await
        .expect("create");
    let records = (0..3)
        .map(|i| ProduceRecord::value(format!("{i}")))
        .collect();
    broker.produce("t", records).await.expect("produce");
    broker
        .commit_offsets("g", vec![OffsetCommit::new("t", 0, 2)])
        .await
        .expect("commit");
    let start = StartAt::Committed {
        group: "g".into(),
        reset: OffsetReset::Earliest,
    };
    let mut records = broker
        .subscribe(PartitionSubscribe::new("t", 0, start))
        .await
        .expect("subscribe")
        .records();
    let first = records.next().await.expect("open").expect("ok");
    assert_eq!(first.offset, 2);
    assert!(broker.describe_group("g").expect("g").members.is_empty());
}

#[tokio::test]
async fn a_member_that_is_not_polled_loses_its_partitions_after_the_release_timeout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = BrokerConfig::new(dir.path());
    config.group_release_timeout_ms = 200;
    let broker = Broker::open(config).await.expect("open");
    broker
        .create_topic(NewTopic::new("t", 2))
        .await
        .expect("create");
    let mut stuck = broker.subscribe_group(group("t")).await.expect("join");
    assert_eq!(partitions(&next_assignment(&mut stuck).await), [0, 1]);
    let mut fresh = broker.subscribe_group(group("t")).await.expect("join");
    // `stuck` is never polled again; `fresh` waits for partition 1, then takes it.
    let mut got = partitions(&next_assignment(&mut fresh).await);
    if got.is_empty() {
        got = partitions(&next_assignment(&mut fresh).await);
    }
    assert_eq!(got, [1]);
    // When `stuck` is polled at last, it has given partition 1 up.
    assert_eq!(partitions(&next_assignment(&mut stuck).await), [0]);
    drop((stuck, fresh));
    broker.close().await.expect("close");
}

#[tokio::test]
async fn deleting_a_subscribed_topic_ends_partition_streams_and_rebalances_groups() {
    let broker = Broker::ephemeral().await.expect("broker");
    for topic in ["gone", "kept"] {
        broker
            .create_topic(NewTopic::new(topic, 1))
            .await
            .expect("create");
    }
    let mut single = broker
        .subscribe(PartitionSubscribe::new("gone", 0, StartAt::Latest))
        .await
        .expect("subscribe");
    let mut member = broker
        .subscribe_group(GroupSubscribe::new("g", vec!["gone".into(), "kept".into()]))
        .await
        .expect("join");
    assert_eq!(next_assignment(&mut member).await.partitions.len(), 2);
    let poller = broker.clone();
    let long_poll = tokio::spawn(async move { poller.fetch("gone", 0, 0, 1024, WAIT).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    broker.delete_topic("gone").await.expect("delete");
    let polled = tokio::time::timeout(WAIT, long_poll)
        .await
        .expect("the long poll ends with the topic")
        .expect("task");
    assert!(matches!(polled, Err(BrokerError::UnknownTopic { .. })));
    let end = tokio::time::timeout(WAIT, single.next())
        .await
        .expect("in time")
        .expect("a last item");
    assert!(matches!(end, Err(BrokerError::UnknownTopic { .. })));
    assert!(single.next().await.is_none(), "then the stream ends");
    let after = next_assignment(&mut member).await;
    assert_eq!(after.partitions, [TopicPartition::new("kept", 0)]);
}

#[tokio::test]
async fn a_group_id_with_live_kafka_members_refuses_subscribers_and_the_reverse() {
    let broker = Broker::ephemeral().await.expect("broker");
    let kafka = broker
        .claim_group("g", GroupProtocol::Kafka)
        .expect("kafka claim");
    let refused = broker
        .subscribe_group(group("new-topic"))
        .await
        .err()
        .unwrap_or_else(|| panic!("refused while Kafka members are live"));
    assert!(
        matches!(refused, BrokerError::GroupInUse { ref group, holder: GroupProtocol::Kafka } if group == "g"),
        "{refused}"
    );
    assert!(
        broker.describe_topic("new-topic").is_err(),
        "a refused subscription creates no topic"
    );
    drop(kafka);

    let mut member = broker.subscribe_group(group("t")).await.expect("join");
    next_assignment(&mut member).await;
    let refused = broker.claim_group("g", GroupProtocol::Kafka).unwrap_err();
    assert!(refused.to_string().contains("has live brook"), "{refused}");
    assert!(matches!(
        broker.claim_group("", GroupProtocol::Kafka),
        Err(BrokerError::InvalidGroupId { .. })
    ));
    drop(member);
    let _kafka = broker
        .claim_group("g", GroupProtocol::Kafka)
        .expect("free once the last member left");
}

/// `group`'s committed offset in partition 0 of `topic`, if any.
fn committed(broker: &Broker, group: &str, topic: &str) -> Option<u64> {
    broker
        .committed_offsets(group, &[TopicPartition::new(topic, 0)])
        .expect("offsets")
        .first()
        .map(|(_, c)| c.offset)
}

/// A checked seek (what the doors' authorization of a seek naming no topics uses) moves exactly
/// the plan its check saw: the check runs under the group's admin claim, so no member joins
/// while it runs, and a partition first committed after the plan was made is not moved. A
/// refusing check moves nothing; a group with a live member is refused before any check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checked_seek_moves_exactly_what_its_check_saw() {
    let broker = Broker::ephemeral().await.expect("broker");
    for topic in ["a", "b"] {
        broker
            .create_topic(NewTopic::new(topic, 1))
            .await
            .expect("create");
        let records = (0..3)
            .map(|i| ProduceRecord::value(format!("{i}")))
            .collect();
        broker.produce(topic, records).await.expect("produce");
    }
    broker
        .commit_offsets("g", vec![OffsetCommit::new("a", 0, 1)])
        .await
        .expect("commit");
    let topics = |plan: &[Seek]| -> Vec<String> {
        plan.iter()
            .map(|s| s.topic_partition.topic.clone())
            .collect()
    };

    let moved = broker
        .seek_group_checked("g", SeekTo::Earliest, &[], false, |plan| {
            assert_eq!(topics(plan), ["a"], "the plan checked");
            let joining = broker.claim_group("g", GroupProtocol::Kafka);
            assert!(
                matches!(joining, Err(BrokerError::GroupBusy { .. })),
                "no member joins between the check and the move: {joining:?}"
            );
            // Another client commits in "b" now, after the plan was made.
            tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current()
                    .block_on(broker.commit_offsets("g", vec![OffsetCommit::new("b", 0, 2)]))
            })
            .expect("a commit during the check");
            Ok(())
        })
        .await
        .expect("moved");
    assert_eq!(topics(&moved), ["a"], "what moved is what was checked");
    assert_eq!(committed(&broker, "g", "a"), Some(0));
    assert_eq!(
        committed(&broker, "g", "b"),
        Some(2),
        "b was not in the plan"
    );

    // A check that refuses "b" moves nothing, "a" included; a dry run is checked the same way.
    for dry_run in [false, true] {
        let refused = broker
            .seek_group_checked("g", SeekTo::Latest, &[], dry_run, |plan| {
                assert_eq!(topics(plan), ["a", "b"]);
                Err(BrokerError::InvalidRequest {
                    reason: "not b".into(),
                })
            })
            .await;
        assert!(
            matches!(refused, Err(BrokerError::InvalidRequest { ref reason }) if reason == "not b"),
            "{refused:?}"
        );
    }
    assert_eq!(
        (committed(&broker, "g", "a"), committed(&broker, "g", "b")),
        (Some(0), Some(2)),
        "nothing moved"
    );

    // A group that became active is refused before its plan is checked.
    let member = broker
        .claim_group("g", GroupProtocol::Kafka)
        .expect("a member");
    let refused = broker
        .seek_group_checked("g", SeekTo::Latest, &[], false, |_| {
            panic!("no check for a group with a live member")
        })
        .await;
    assert!(
        matches!(refused, Err(BrokerError::GroupNotEmpty { .. })),
        "{refused:?}"
    );
    drop(member);
    assert_eq!(committed(&broker, "g", "b"), Some(2));
}
