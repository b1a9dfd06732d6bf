//! Admin calls against a real server: topics, groups, committed offsets, and bad input.

mod common;

use brook_client::{proto, Code, NewTopic, ProducerRecord, TopicPartition};
use common::Harness;

#[tokio::test]
async fn topics_are_created_listed_described_and_deleted() {
    let h = Harness::start().await;
    let admin = h.client.admin();
    let created = admin
        .create_topic(NewTopic::new("orders", 3))
        .await
        .expect("create");
    assert_eq!(created.name, "orders");
    assert_eq!(created.partitions.len(), 3);
    assert_eq!(created.topic_id.len(), 32, "hex topic id");
    admin
        .create_topic(NewTopic::new("audit", 1))
        .await
        .expect("create");

    let listed: Vec<(String, u32)> = admin
        .list_topics()
        .await
        .expect("list")
        .into_iter()
        .map(|t| (t.name, t.partition_count))
        .collect();
    assert_eq!(listed, [("audit".into(), 1), ("orders".into(), 3)]);

    h.client
        .produce("orders", vec![ProducerRecord::value("x").with_partition(2)])
        .await
        .expect("produce");
    let described = admin.describe_topic("orders").await.expect("describe");
    let p2 = &described.partitions[2];
    assert_eq!(
        (p2.partition, p2.log_start_offset, p2.high_watermark),
        (2, 0, 1)
    );
    assert!(p2.size_bytes > 0);

    let again = admin.create_topic(NewTopic::new("orders", 3)).await;
    assert_eq!(again.expect_err("exists").code(), Code::AlreadyExists);
    let idempotent = NewTopic {
        if_not_exists: true,
        ..NewTopic::new("orders", 3)
    };
    admin.create_topic(idempotent).await.expect("if_not_exists");

    admin.delete_topic("orders").await.expect("delete");
    let gone = admin.describe_topic("orders").await.expect_err("deleted");
    assert_eq!(gone.code(), Code::NotFound);
    let gone = admin
        .delete_topic("orders")
        .await
        .expect_err("deleted twice");
    assert_eq!(gone.code(), Code::NotFound);
}

#[tokio::test]
async fn bad_topic_requests_get_invalid_argument_and_change_nothing() {
    let h = Harness::start().await;
    let admin = h.client.admin();
    for name in ["", ".", "..", "has space", "slash/name", &"x".repeat(250)] {
        let err = admin
            .create_topic(NewTopic::new(name, 1))
            .await
            .expect_err(name);
        assert_eq!(err.code(), Code::InvalidArgument, "{name:?}: {err}");
    }
    let err = admin
        .create_topic(NewTopic::new("huge", 1_000_000))
        .await
        .expect_err("too many partitions");
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    assert!(admin.list_topics().await.expect("list").is_empty());
}

#[tokio::test]
async fn offsets_are_committed_fetched_and_shown_with_lag() {
    let h = Harness::start().await;
    h.topic("orders", 2).await;
    let records = (0..5)
        .map(|i| ProducerRecord::value(format!("v{i}")).with_partition(0))
        .collect();
    h.client.produce("orders", records).await.expect("produce");
    let admin = h.client.admin();

    let commit = proto::OffsetCommit {
        topic: "orders".into(),
        partition: 0,
        offset: 3,
        metadata: "checkpoint".into(),
    };
    admin
        .commit_offsets("billing", vec![commit])
        .await
        .expect("commit");

    let fetched = admin
        .fetch_offsets(
            "billing",
            &[
                TopicPartition::new("orders", 0),
                TopicPartition::new("orders", 1),
            ],
        )
        .await
        .expect("fetch offsets");
    assert_eq!(fetched.len(), 1, "partition 1 has no commit: {fetched:?}");
    assert_eq!(
        (
            fetched[0].partition,
            fetched[0].offset,
            fetched[0].metadata.as_str()
        ),
        (0, 3, "checkpoint")
    );

    let groups = admin.list_groups().await.expect("list groups");
    assert_eq!(groups.len(), 1);
    assert_eq!(
        (groups[0].group_id.as_str(), groups[0].member_count),
        ("billing", 0)
    );

    let described = admin
        .describe_group("billing")
        .await
        .expect("describe group");
    let lag = described
        .partitions
        .iter()
        .find(|p| p.topic == "orders" && p.partition == 0)
        .expect("partition 0");
    assert_eq!(
        (lag.committed_offset, lag.high_watermark, lag.lag),
        (Some(3), 5, 2)
    );

    let unknown = admin
        .describe_group("nobody")
        .await
        .expect_err("unknown group");
    assert_eq!(unknown.code(), Code::NotFound);
    let bad = proto::OffsetCommit {
        topic: "missing".into(),
        partition: 0,
        offset: 1,
        metadata: String::new(),
    };
    let err = admin
        .commit_offsets("billing", vec![bad])
        .await
        .expect_err("unknown topic");
    assert_eq!(err.code(), Code::NotFound, "{err}");
}
