//! Topic administration through the embedded broker.

use brook_broker::{Broker, BrokerError, NewTopic, ProduceRecord, TopicConfig};

#[tokio::test]
async fn topics_are_created_listed_described_and_deleted() {
    let broker = Broker::ephemeral().await.expect("broker");
    let mut config = TopicConfig::default();
    config
        .set("retention_ms_max", "3600000")
        .expect("a known setting");
    let created = broker
        .create_topic(NewTopic {
            name: "b".into(),
            partitions: Some(3),
            config,
        })
        .await
        .expect("create");
    assert_eq!(created.partitions.len(), 3);
    assert_eq!(created.config.retention_ms_max, Some(3_600_000));
    assert_eq!(
        created.overrides,
        vec![("retention.ms", "3600000".to_owned())],
        "shown by Kafka's name; brook's own was accepted as an alias"
    );
    broker
        .create_topic(NewTopic {
            name: "a".into(),
            ..NewTopic::default()
        })
        .await
        .expect("create with the default partition count");
    let names: Vec<(String, u32)> = broker
        .list_topics()
        .into_iter()
        .map(|t| (t.name, t.partitions))
        .collect();
    assert_eq!(names, [("a".to_owned(), 1), ("b".to_owned(), 3)]);

    broker
        .produce("b", vec![ProduceRecord::keyed("k", "value")])
        .await
        .expect("produce");
    let described = broker.describe_topic("b").expect("describe");
    assert_eq!(described.id, created.id, "the id is fixed at creation");
    let total: u64 = described.partitions.iter().map(|p| p.high_watermark).sum();
    assert_eq!(total, 1);
    assert!(described.partitions.iter().any(|p| p.size_bytes > 0));

    broker.delete_topic("b").await.expect("delete");
    assert!(matches!(
        broker.describe_topic("b"),
        Err(BrokerError::UnknownTopic { .. })
    ));
    assert!(matches!(
        broker.delete_topic("b").await,
        Err(BrokerError::UnknownTopic { .. })
    ));
    let again = broker
        .create_topic(NewTopic::new("b", 1))
        .await
        .expect("recreate");
    assert_ne!(again.id, created.id, "a new topic, a new id");
    assert_eq!(again.partitions[0].log_end_offset, 0, "and no old data");
}

#[tokio::test]
async fn bad_topic_config_is_refused() {
    let broker = Broker::ephemeral().await.expect("broker");
    let mut config = TopicConfig::default();
    config.segment_bytes_max = Some(1);
    let err = broker
        .create_topic(NewTopic {
            name: "t".into(),
            partitions: Some(1),
            config,
        })
        .await
        .unwrap_err();
    assert!(matches!(err, BrokerError::InvalidConfig { .. }), "{err}");
    assert!(broker.list_topics().is_empty());
}

/// A caller that stops waiting (a gRPC client that disconnects mid-call drops its handler's
/// future) must not leave a topic the store has but the broker does not know.
#[tokio::test]
async fn a_create_whose_caller_goes_away_still_completes() {
    let broker = Broker::ephemeral().await.expect("broker");
    let mut create = Box::pin(broker.create_topic(NewTopic::new("left", 2)));
    assert!(
        futures::poll!(create.as_mut()).is_pending(),
        "the create has started and waits on the disk"
    );
    drop(create);

    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while broker.describe_topic("left").is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the abandoned create never finished"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(
        broker
            .describe_topic("left")
            .expect("described")
            .partitions
            .len(),
        2
    );
    let again = broker.create_topic(NewTopic::new("left", 2)).await;
    assert!(
        matches!(again, Err(BrokerError::TopicExists { .. })),
        "{again:?}"
    );
    broker
        .produce("left", vec![ProduceRecord::value("works")])
        .await
        .expect("the topic is usable");
}
