//! Produce, fetch and subscribe through the embedded broker on a real data directory.

use std::time::{Duration, Instant};

use brook_broker::partitioner::partition_for_key;
use brook_broker::{
    Broker, BrokerError, Isolation, NewTopic, OffsetSpec, PartitionSubscribe, ProduceRecord,
    StartAt, SubscriptionEvent,
};
use bytes::Bytes;
use futures::StreamExt;

const WAIT: Duration = Duration::from_secs(10);

async fn broker_with(topic: &str, partitions: u32) -> Broker {
    let broker = Broker::ephemeral().await.expect("ephemeral broker");
    broker
        .create_topic(NewTopic::new(topic, partitions))
        .await
        .expect("create topic");
    broker
}

#[tokio::test]
async fn produced_records_fetch_back_with_everything_they_carried() {
    let broker = broker_with("t", 1).await;
    let records = vec![
        ProduceRecord {
            key: Some(Bytes::from_static(b"k1")),
            value: Some(Bytes::from_static(b"v1")),
            headers: vec![("h".into(), Bytes::from_static(b"x"))],
            timestamp: Some(1_700_000_000_000),
            partition: None,
        },
        ProduceRecord::value("v2"),
        ProduceRecord {
            key: Some(Bytes::new()),
            value: None,
            ..ProduceRecord::default()
        },
    ];
    let produced = broker.produce("t", records.clone()).await.expect("produce");
    let offsets: Vec<u64> = produced.records.iter().map(|p| p.offset).collect();
    assert_eq!(offsets, [0, 1, 2]);
    assert_eq!(produced.batches.len(), 1, "one partition, one batch");
    assert_eq!(produced.records[0].timestamp, 1_700_000_000_000);

    let fetched = broker
        .fetch("t", 0, 0, 1 << 20, Duration::ZERO)
        .await
        .expect("fetch");
    assert_eq!(fetched.high_watermark, 3);
    let got = fetched.records().expect("decode");
    assert_eq!(got.len(), 3);
    assert_eq!(got[0].key.as_deref(), Some(&b"k1"[..]));
    assert_eq!(got[0].value.as_deref(), Some(&b"v1"[..]));
    assert_eq!(
        got[0].headers,
        vec![("h".to_owned(), Bytes::from_static(b"x"))]
    );
    assert_eq!(got[0].timestamp, 1_700_000_000_000);
    assert_eq!(got[1].key, None);
    assert_eq!(got[1].timestamp, produced.records[1].timestamp);
    assert_eq!(
        got[2].key.as_deref(),
        Some(&b""[..]),
        "empty key is not null"
    );
    assert_eq!(got[2].value, None);

    // From the middle of a batch: records before the asked offset are skipped.
    let mid = broker
        .fetch("t", 0, 2, 1 << 20, Duration::ZERO)
        .await
        .expect("fetch");
    let got = mid.records().expect("decode");
    assert_eq!(got.iter().map(|r| r.offset).collect::<Vec<_>>(), [2]);
}

#[tokio::test]
async fn each_partition_keeps_produce_order() {
    let broker = broker_with("ordered", 2).await;
    for i in 0..50u32 {
        let records = (0..4)
            .map(|j| ProduceRecord {
                partition: Some(j % 2),
                ..ProduceRecord::value(format!("{i}-{j}"))
            })
            .collect();
        broker.produce("ordered", records).await.expect("produce");
    }
    for partition in 0..2u32 {
        let fetched = broker
            .fetch("ordered", partition, 0, 1 << 20, Duration::ZERO)
            .await
            .expect("fetch");
        let got = fetched.records().expect("decode");
        assert_eq!(got.len(), 100);
        let expected: Vec<String> = (0..50)
            .flat_map(|i| [format!("{i}-{partition}"), format!("{i}-{}", partition + 2)])
            .collect();
        let values: Vec<String> = got
            .iter()
            .map(|r| String::from_utf8(r.value.clone().expect("value").to_vec()).expect("utf8"))
            .collect();
        assert_eq!(values, expected);
        let offsets: Vec<u64> = got.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, (0..100).collect::<Vec<u64>>());
    }
}

#[tokio::test]
async fn keys_land_on_the_partition_kafka_clients_choose() {
    let broker = broker_with("keyed", 4).await;
    let keys = ["foobar", "21", "abc", "a-little-bit-long-string", "user-42"];
    let records = keys.iter().map(|k| ProduceRecord::keyed(*k, "v")).collect();
    let produced = broker.produce("keyed", records).await.expect("produce");
    for (key, position) in keys.iter().zip(&produced.records) {
        assert_eq!(
            position.partition,
            partition_for_key(key.as_bytes(), 4),
            "{key}"
        );
    }
    // Kafka: (murmur2("foobar") & 0x7fffffff) % 4 == 2.
    assert_eq!(produced.records[0].partition, 2);
}

#[tokio::test]
async fn keyless_records_of_one_call_stay_together_and_calls_rotate() {
    let broker = broker_with("spread", 3).await;
    let mut seen = Vec::new();
    for _ in 0..3 {
        let records = (0..5)
            .map(|i| ProduceRecord::value(format!("{i}")))
            .collect();
        let produced = broker.produce("spread", records).await.expect("produce");
        let first = produced.records[0].partition;
        assert!(produced.records.iter().all(|p| p.partition == first));
        seen.push(first);
    }
    seen.sort();
    assert_eq!(seen, [0, 1, 2]);
}

#[tokio::test]
async fn long_poll_returns_on_arrival_and_empty_after_max_wait() {
    let broker = broker_with("poll", 1).await;
    let started = Instant::now();
    let empty = broker
        .fetch("poll", 0, 0, 1 << 20, Duration::from_millis(200))
        .await
        .expect("fetch");
    assert!(empty.is_empty());
    assert!(started.elapsed() >= Duration::from_millis(200));

    let producer = broker.clone();
    let produce = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        producer
            .produce("poll", vec![ProduceRecord::value("late")])
            .await
            .expect("produce");
    });
    let started = Instant::now();
    let fetched = broker
        .fetch("poll", 0, 0, 1 << 20, WAIT)
        .await
        .expect("fetch");
    assert!(
        started.elapsed() < WAIT,
        "returned on arrival, not at max_wait"
    );
    assert_eq!(fetched.records().expect("decode").len(), 1);
    produce.await.expect("producer task");
}

#[tokio::test]
async fn a_subscriber_gets_records_produced_after_it_started() {
    let broker = broker_with("live", 1).await;
    broker
        .produce("live", vec![ProduceRecord::value("before")])
        .await
        .expect("produce");
    let mut records = broker
        .subscribe(PartitionSubscribe::new("live", 0, StartAt::Latest))
        .await
        .expect("subscribe")
        .records();
    let producer = broker.clone();
    tokio::spawn(async move {
        for i in 0..3 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            producer
                .produce("live", vec![ProduceRecord::value(format!("after-{i}"))])
                .await
                .expect("produce");
        }
    });
    for i in 0..3u64 {
        let record = tokio::time::timeout(WAIT, records.next())
            .await
            .expect("a record in time")
            .expect("stream open")
            .expect("no error");
        assert_eq!(record.offset, i + 1);
        assert_eq!(
            record.value.as_deref(),
            Some(format!("after-{i}").as_bytes())
        );
    }
}

#[tokio::test]
async fn subscribe_from_earliest_replays_then_follows_and_ends_on_close() {
    let broker = broker_with("replay", 1).await;
    broker
        .produce(
            "replay",
            vec![ProduceRecord::value("a"), ProduceRecord::value("b")],
        )
        .await
        .expect("produce");
    let mut sub = broker
        .subscribe(PartitionSubscribe::new("replay", 0, StartAt::Earliest))
        .await
        .expect("subscribe");
    let Some(Ok(SubscriptionEvent::Batches(first))) = sub.next().await else {
        panic!("expected batches");
    };
    assert_eq!(
        (first.offset, first.next_offset, first.high_watermark),
        (0, 2, 2)
    );
    broker.close().await.expect("close");
    let end = tokio::time::timeout(WAIT, sub.next()).await.expect("ends");
    assert!(end.is_none(), "a subscription ends when the broker closes");
}

/// A waiting subscriber of either isolation learns of its topic's deletion at once: an
/// `UnknownTopic` error, then the end of the stream.
#[tokio::test]
async fn a_waiting_subscriber_of_either_isolation_ends_when_its_topic_is_deleted() {
    for isolation in [Isolation::ReadCommitted, Isolation::ReadUncommitted] {
        let broker = broker_with("gone", 1).await;
        let mut to = PartitionSubscribe::new("gone", 0, StartAt::Latest);
        to.isolation = isolation;
        let mut sub = broker.subscribe(to).await.expect("subscribe");
        let waiting = tokio::spawn(async move {
            let last = sub.next().await;
            (last, sub.next().await)
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        broker.delete_topic("gone").await.expect("delete");
        let (last, end) = tokio::time::timeout(WAIT, waiting)
            .await
            .unwrap_or_else(|_| panic!("{isolation:?}: the subscriber was not woken"))
            .expect("task");
        assert!(
            matches!(last, Some(Err(BrokerError::UnknownTopic { .. }))),
            "{isolation:?}: {last:?}"
        );
        assert!(end.is_none(), "{isolation:?}");
    }
}

#[tokio::test]
async fn list_offsets_answers_earliest_latest_by_timestamp_and_max_timestamp() {
    let broker = broker_with("times", 1).await;
    let records = [100, 200, 300]
        .into_iter()
        .map(|ts| ProduceRecord {
            timestamp: Some(ts),
            ..ProduceRecord::value("x")
        })
        .collect();
    broker.produce("times", records).await.expect("produce");
    let at = |spec| broker.list_offset("times", 0, spec);
    assert_eq!(
        at(OffsetSpec::Earliest).await.expect("earliest").offset,
        Some(0)
    );
    assert_eq!(
        at(OffsetSpec::Latest).await.expect("latest").offset,
        Some(3)
    );
    let by_ts = at(OffsetSpec::Timestamp(150)).await.expect("by timestamp");
    assert_eq!(by_ts.offset, Some(1));
    assert_eq!(by_ts.timestamp, Some(200));
    let none = at(OffsetSpec::Timestamp(1_000))
        .await
        .expect("by timestamp");
    assert_eq!(none.offset, None);
    let max = at(OffsetSpec::MaxTimestamp).await.expect("max timestamp");
    assert_eq!((max.offset, max.timestamp), (Some(2), Some(300)));
}

/// Raw batches as a door holds them, slices of one shared request buffer: each is stored and
/// fetched with the offsets the log assigned (a small one served from memory, a large one read
/// from the log), and the request's bytes stay exactly as they were sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_raw_batches_are_stored_with_their_offsets_and_the_request_untouched() {
    let broker = broker_with("raw", 1).await;
    let build = |value: &[u8], count: usize| {
        let mut builder = brook_log::batch::BatchBuilder::new(brook_log::batch::Compression::None);
        for _ in 0..count {
            builder.push(brook_log::batch::RecordRef {
                key: None,
                value: Some(value),
                headers: &[],
                timestamp: 42,
            });
        }
        builder.build().expect("build")
    };
    let (small, large) = (build(b"small", 2), build(&[7u8; 1024], 40));
    let request = Bytes::from([&small[..], &large[..], &small[..]].concat());
    let original = request.to_vec();
    let mut at = 0;
    let mut offset = 0u64;
    for (len, count) in [(small.len(), 2u64), (large.len(), 40), (small.len(), 2)] {
        let batch = request.slice(at..at + len);
        let appended = broker.produce_batch("raw", 0, batch).await.expect("append");
        assert_eq!(appended.base_offset, offset);
        let fetched = broker
            .fetch("raw", 0, offset, 1 << 20, Duration::ZERO)
            .await
            .expect("fetch");
        let stored = &fetched.batches;
        assert_eq!(stored.len(), len, "one batch");
        let header = brook_log::batch::validate(stored, usize::MAX).expect("valid as stored");
        assert_eq!(header.base_offset, offset as i64);
        assert_eq!(
            &stored[8..],
            &original[at + 8..at + len],
            "the rest as sent"
        );
        at += len;
        offset += count;
    }
    assert_eq!(request, original, "the request's bytes as sent");
}

#[tokio::test]
async fn a_raw_batch_is_stored_as_sent_with_offsets_assigned() {
    let broker = broker_with("raw", 1).await;
    broker
        .produce("raw", vec![ProduceRecord::value("first")])
        .await
        .expect("produce");
    let mut builder = brook_log::batch::BatchBuilder::new(brook_log::batch::Compression::None);
    for value in [&b"r1"[..], b"r2"] {
        builder.push(brook_log::batch::RecordRef {
            key: None,
            value: Some(value),
            headers: &[],
            timestamp: 42,
        });
    }
    let batch = builder.build().expect("build");
    let sent = batch.clone();
    let appended = broker.produce_batch("raw", 0, batch).await.expect("append");
    assert_eq!((appended.base_offset, appended.last_offset), (1, 2));
    let fetched = broker
        .fetch("raw", 0, 1, 1 << 20, Duration::ZERO)
        .await
        .expect("fetch");
    // Same bytes after the base offset (which the broker assigned).
    assert_eq!(&fetched.batches[8..], &sent[8..]);
    let values: Vec<_> = fetched
        .records()
        .expect("decode")
        .into_iter()
        .map(|r| r.value.expect("value"))
        .collect();
    assert_eq!(
        values,
        [Bytes::from_static(b"r1"), Bytes::from_static(b"r2")]
    );
}
