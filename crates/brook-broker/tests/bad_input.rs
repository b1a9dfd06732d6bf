//! Bad requests get the right error, change nothing, and the broker keeps serving.

use std::time::Duration;

use brook_broker::{
    Broker, BrokerConfig, BrokerError, ErrorKind, GroupSubscribe, NewTopic, OffsetCommit,
    PartitionSubscribe, ProduceRecord, StartAt,
};
use bytes::{Bytes, BytesMut};

async fn broker() -> Broker {
    let broker = Broker::ephemeral().await.expect("broker");
    broker
        .create_topic(NewTopic::new("ok", 2))
        .await
        .expect("create");
    broker
}

/// The broker still takes and serves a good request.
async fn still_serves(broker: &Broker) {
    let produced = broker
        .produce("ok", vec![ProduceRecord::keyed("k", "v")])
        .await
        .expect("a good produce after a bad one");
    let p = produced.records[0].partition;
    let fetched = broker
        .fetch("ok", p, produced.records[0].offset, 1 << 20, Duration::ZERO)
        .await
        .expect("fetch");
    assert_eq!(fetched.records().expect("decode").len(), 1);
}

#[tokio::test]
async fn unknown_topics_are_not_found_when_auto_create_is_off() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = BrokerConfig::new(dir.path());
    config.auto_create_topics = false;
    let broker = Broker::open(config).await.expect("open");
    let err = broker
        .produce("missing", vec![ProduceRecord::value("v")])
        .await
        .unwrap_err();
    assert!(matches!(err, BrokerError::UnknownTopic { ref topic } if topic == "missing"));
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(broker.list_topics().is_empty(), "nothing was created");
    let err = broker
        .fetch("missing", 0, 0, 1024, Duration::ZERO)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let err = broker
        .subscribe_group(GroupSubscribe::new("g", vec!["missing".into()]))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    broker.close().await.expect("close");
}

#[tokio::test]
async fn auto_create_makes_the_topic_on_first_produce() {
    let broker = broker().await;
    broker
        .produce("fresh", vec![ProduceRecord::value("v")])
        .await
        .expect("produce creates");
    let described = broker.describe_topic("fresh").expect("exists");
    assert_eq!(described.partitions.len(), 1);
    assert_eq!(described.partitions[0].high_watermark, 1);
}

#[tokio::test]
async fn bad_names_and_partitions_are_refused() {
    let broker = broker().await;
    for name in ["", ".", "..", "a/b", "a b", &"x".repeat(250)] {
        let err = broker
            .produce(name, vec![ProduceRecord::value("v")])
            .await
            .unwrap_err();
        assert!(
            matches!(err, BrokerError::InvalidTopicName { .. }),
            "{name:?}: {err}"
        );
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        let err = broker
            .create_topic(NewTopic::new(name, 1))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{name:?}");
    }
    for partitions in [0, 1_000_000] {
        let err = broker
            .create_topic(NewTopic::new("p", partitions))
            .await
            .unwrap_err();
        assert!(matches!(err, BrokerError::InvalidPartitions { .. }));
    }
    let err = broker
        .produce(
            "ok",
            vec![ProduceRecord {
                partition: Some(2),
                ..ProduceRecord::value("v")
            }],
        )
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        BrokerError::UnknownPartition {
            partition: 2,
            partitions: 2,
            ..
        }
    ));
    let err = broker
        .create_topic(NewTopic::new("ok", 1))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    for bad_group in ["", "a\nb"] {
        let err = broker
            .commit_offsets(bad_group, vec![OffsetCommit::new("ok", 0, 0)])
            .await
            .unwrap_err();
        assert!(matches!(err, BrokerError::InvalidGroupId { .. }));
    }
    let topics: Vec<String> = broker.list_topics().into_iter().map(|t| t.name).collect();
    assert_eq!(topics, ["ok"], "nothing was created by bad requests");
    still_serves(&broker).await;
}

#[tokio::test]
async fn offsets_outside_the_log_are_out_of_range_with_the_valid_range() {
    let broker = broker().await;
    broker
        .produce(
            "ok",
            vec![ProduceRecord {
                partition: Some(0),
                ..ProduceRecord::value("v")
            }],
        )
        .await
        .expect("produce");
    let err = broker
        .fetch("ok", 0, 5, 1024, Duration::ZERO)
        .await
        .unwrap_err();
    match &err {
        BrokerError::OffsetOutOfRange {
            offset: 5,
            log_start_offset: 0,
            high_watermark: 1,
            ..
        } => {}
        other => panic!("{other}"),
    }
    assert_eq!(err.kind(), ErrorKind::OutOfRange);
    let err = broker
        .subscribe(PartitionSubscribe::new("ok", 0, StartAt::Offset(99)))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OutOfRange);
    still_serves(&broker).await;
}

#[tokio::test]
async fn oversized_records_and_absurd_sizes_are_refused() {
    let broker = broker().await;
    let huge = Bytes::from(vec![7u8; 2 << 20]);
    let err = broker
        .produce("ok", vec![ProduceRecord::value(huge)])
        .await
        .unwrap_err();
    assert!(
        matches!(err, BrokerError::TooLarge { what: "record", .. }),
        "{err}"
    );
    assert_eq!(err.kind(), ErrorKind::TooLarge);
    for max_bytes in [0, usize::MAX] {
        let err = broker
            .fetch("ok", 0, 0, max_bytes, Duration::ZERO)
            .await
            .unwrap_err();
        assert!(matches!(err, BrokerError::InvalidRequest { .. }), "{err}");
    }
    let err = broker
        .fetch("ok", 0, 0, 1024, Duration::from_secs(24 * 3600))
        .await
        .unwrap_err();
    assert!(matches!(err, BrokerError::InvalidRequest { .. }));
    let err = broker.produce("ok", Vec::new()).await.unwrap_err();
    assert!(matches!(err, BrokerError::InvalidRequest { .. }));
    let err = broker
        .commit_offsets(
            "g",
            vec![OffsetCommit {
                metadata: "m".repeat(5000),
                ..OffsetCommit::new("ok", 0, 1)
            }],
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooLarge);
    assert!(broker.committed_offsets("g", &[]).expect("read").is_empty());
    let described = broker.describe_topic("ok").expect("describe");
    assert!(described.partitions.iter().all(|p| p.log_end_offset == 0));
    still_serves(&broker).await;
}

#[tokio::test]
async fn garbage_raw_batches_are_refused_and_nothing_is_stored() {
    let broker = broker().await;
    let cases: Vec<BytesMut> = vec![
        BytesMut::new(),
        BytesMut::from(&[0u8; 10][..]),
        BytesMut::from(&[0xffu8; 100][..]),
    ];
    for garbage in cases {
        let err = broker.produce_batch("ok", 0, garbage).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    }
    // A real batch with one flipped byte fails its CRC.
    let mut builder = brook_log::batch::BatchBuilder::new(brook_log::batch::Compression::None);
    builder.push(brook_log::batch::RecordRef {
        key: None,
        value: Some(b"value"),
        headers: &[],
        timestamp: 1,
    });
    let mut batch = builder.build().expect("build");
    let last = batch.len() - 1;
    batch[last] ^= 0x01;
    let err = broker.produce_batch("ok", 0, batch).await.unwrap_err();
    assert!(matches!(err, BrokerError::InvalidBatch { .. }), "{err}");
    let described = broker.describe_topic("ok").expect("describe");
    assert_eq!(described.partitions[0].log_end_offset, 0);
    still_serves(&broker).await;
}

#[tokio::test]
async fn produce_after_close_is_refused() {
    let broker = broker().await;
    broker.close().await.expect("close");
    let err = broker
        .produce("ok", vec![ProduceRecord::value("v")])
        .await
        .unwrap_err();
    assert!(matches!(err, BrokerError::Closed));
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    broker.close().await.expect("closing twice is fine");
}
