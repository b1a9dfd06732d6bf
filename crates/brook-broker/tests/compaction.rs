//! Compacted topics through the embedded broker: the cleaner running on its own, the table view
//! (`Broker::get`), keyless records refused, and the index rebuilt after a restart.

use std::time::{Duration, Instant};

use brook_broker::{
    Broker, BrokerConfig, BrokerError, Durability, ErrorKind, NewTopic, PartitionSubscribe,
    ProduceRecord, StartAt, TopicConfig,
};
use futures::StreamExt;

fn config(dir: &std::path::Path) -> BrokerConfig {
    let mut config = BrokerConfig::new(dir);
    config.log.durability = Durability::None;
    config.cleaner.backoff_ms = 20;
    config
}

fn compacted(name: &str, partitions: u32) -> NewTopic {
    let mut config = TopicConfig::default();
    for (key, value) in [
        ("cleanup.policy", "compact"),
        ("segment.bytes", "2048"),
        ("min.cleanable.dirty.ratio", "0.01"),
    ] {
        config.set(key, value).expect("a known setting");
    }
    NewTopic {
        name: name.into(),
        partitions: Some(partitions),
        config,
    }
}

/// Every record of `topic`-`partition` from its start, as `(key, value)`.
async fn read_all(broker: &Broker, topic: &str, partition: u32) -> Vec<(String, Option<String>)> {
    let end = broker.describe_topic(topic).expect("describe").partitions[partition as usize]
        .high_watermark;
    let mut records = broker
        .subscribe(PartitionSubscribe::new(topic, partition, StartAt::Earliest))
        .await
        .expect("subscribe")
        .records();
    let mut out = Vec::new();
    while let Some(record) = records.next().await {
        let record = record.expect("record");
        let text = |b: bytes::Bytes| String::from_utf8(b.to_vec()).expect("utf8");
        out.push((text(record.key.expect("key")), record.value.map(text)));
        if record.offset + 1 >= end {
            break;
        }
    }
    out
}

/// Waits until the cleaner has cleaned every partition of `topic` at least `cleans` times.
async fn wait_for_cleans(broker: &Broker, topic: &str, cleans: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let description = broker.describe_topic(topic).expect("describe");
        let done = description.partitions.iter().all(|p| {
            p.compaction
                .as_ref()
                .is_some_and(|c| c.cleans >= cleans && c.progress.is_none())
        });
        if done {
            return;
        }
        assert!(Instant::now() < deadline, "no clean: {description:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_cleaner_keeps_the_latest_value_per_key_and_the_table_serves_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::open(config(dir.path())).await.expect("open");
    broker
        .create_topic(compacted("state", 1))
        .await
        .expect("create");
    for round in 0..40 {
        let records = (0..10)
            .map(|k| ProduceRecord::keyed(format!("k{k}"), format!("v{k}-{round}")))
            .collect();
        broker.produce("state", records).await.expect("produce");
    }
    broker
        .produce(
            "state",
            vec![ProduceRecord::keyed("k3", bytes::Bytes::new())],
        )
        .await
        .expect("empty value");
    let mut tombstone = ProduceRecord::keyed("k4", "x");
    tombstone.value = None;
    broker
        .produce("state", vec![tombstone])
        .await
        .expect("tombstone");
    wait_for_cleans(&broker, "state", 1).await;

    let description = broker.describe_topic("state").expect("describe");
    let compaction = description.partitions[0].compaction.expect("compacted");
    assert!(compaction.bytes_reclaimed > 0, "{compaction:?}");
    assert_eq!(compaction.keys, 9, "k4 is tombstoned");

    let found = broker.get("state", b"k7").await.expect("get").expect("k7");
    assert_eq!(found.value.as_deref(), Some(&b"v7-39"[..]));
    assert_eq!(found.partition, 0);
    assert_eq!(
        broker
            .get("state", b"k3")
            .await
            .expect("get")
            .expect("k3")
            .value
            .as_deref(),
        Some(&b""[..])
    );
    assert_eq!(
        broker.get("state", b"k4").await.expect("get"),
        None,
        "tombstoned"
    );
    assert_eq!(broker.get("state", b"nope").await.expect("get"), None);

    // Read-your-writes: a produce acknowledged before the get is seen.
    broker
        .produce("state", vec![ProduceRecord::keyed("k7", "newest")])
        .await
        .expect("produce");
    let found = broker.get("state", b"k7").await.expect("get").expect("k7");
    assert_eq!(found.value.as_deref(), Some(&b"newest"[..]));

    // Reading from the start gives each key's latest value once the log is cleaned.
    let records = read_all(&broker, "state", 0).await;
    let mut latest = std::collections::BTreeMap::new();
    for (k, v) in &records {
        latest.insert(k.clone(), v.clone());
    }
    assert_eq!(latest["k0"].as_deref(), Some("v0-39"));
    assert_eq!(latest["k7"].as_deref(), Some("newest"));
    assert!(
        records.len() < 40,
        "{} records after cleaning",
        records.len()
    );
    broker.close().await.expect("close");

    // The index comes back from the log after a restart.
    let broker = Broker::open(config(dir.path())).await.expect("reopen");
    let found = broker.get("state", b"k7").await.expect("get").expect("k7");
    assert_eq!(found.value.as_deref(), Some(&b"newest"[..]));
    assert_eq!(broker.get("state", b"k4").await.expect("get"), None);
    broker.close().await.expect("close");
}

#[tokio::test]
async fn keys_are_found_in_the_partition_the_partitioner_gives_them() {
    let broker = Broker::ephemeral().await.expect("broker");
    broker
        .create_topic(compacted("users", 4))
        .await
        .expect("create");
    let records = (0..50)
        .map(|k| ProduceRecord::keyed(format!("user-{k}"), format!("{k}")))
        .collect();
    let produced = broker.produce("users", records).await.expect("produce");
    for (k, position) in produced.records.iter().enumerate() {
        let found = broker
            .get("users", format!("user-{k}").as_bytes())
            .await
            .expect("get")
            .expect("found");
        assert_eq!(
            (found.partition, found.offset),
            (position.partition, position.offset)
        );
        assert_eq!(found.value.as_deref(), Some(format!("{k}").as_bytes()));
    }
}

#[tokio::test]
async fn keyless_records_are_refused_on_a_compacted_topic_and_get_needs_one() {
    let broker = Broker::ephemeral().await.expect("broker");
    broker
        .create_topic(compacted("state", 2))
        .await
        .expect("create");
    let err = broker
        .produce(
            "state",
            vec![
                ProduceRecord::keyed("k", "v"),
                ProduceRecord::value("no key"),
            ],
        )
        .await
        .expect_err("keyless");
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    assert!(err.to_string().contains("key"), "{err}");
    let description = broker.describe_topic("state").expect("describe");
    assert!(
        description.partitions.iter().all(|p| p.log_end_offset == 0),
        "nothing written: {description:?}"
    );

    broker
        .create_topic(NewTopic {
            name: "plain".into(),
            ..NewTopic::default()
        })
        .await
        .expect("create");
    let err = broker.get("plain", b"k").await.expect_err("not compacted");
    assert!(matches!(err, BrokerError::InvalidRequest { .. }), "{err}");
    assert!(err.to_string().contains("cleanup.policy=compact"), "{err}");
    assert!(matches!(
        broker.get("missing", b"k").await,
        Err(BrokerError::UnknownTopic { .. })
    ));
}
