//! `brook migrate` as the built binary, into a real Kafka-protocol cluster (brook's own Kafka
//! door in a separate process) and back.
//!
//! A data directory with several topics (keyed records, records with headers and null values,
//! batches compressed with each of Kafka's codecs) and two groups is moved to the cluster:
//! every partition's records arrive in order with their keys, values, headers and timestamps,
//! the compressed ones stored compressed with the same codec; a librdkafka consumer in each
//! group resumes exactly after its last committed record. `--dry-run` changes nothing. A
//! migration killed halfway and run again copies nothing twice. The cluster's topics come back
//! into a fresh data directory with the groups' offsets.

mod scale_out_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rdkafka::consumer::Consumer;
use rdkafka::message::{Headers, Message};

use brook::broker::{
    Backend, Broker, BrokerConfig, ConsumerRecord, Durability, NewTopic, OffsetCommit,
    ProduceRecord,
};
use brook_log::batch::{BatchBuilder, Batches, Compression, RecordRef};
use scale_out_support::{brook, KafkaCluster, PATIENCE};

/// A record as compared across the move: everything but its offset.
type Kept = (Option<Bytes>, Option<Bytes>, Vec<(String, Bytes)>, i64);

fn kept(record: &ConsumerRecord) -> Kept {
    (
        record.key.clone(),
        record.value.clone(),
        record.headers.clone(),
        record.timestamp,
    )
}

async fn open(dir: &Path) -> Broker {
    let mut config = BrokerConfig::new(dir);
    config.log.durability = Durability::None;
    Broker::open(config).await.expect("open the data directory")
}

/// Every record of every partition of `topics` on `backend`, in offset order.
async fn contents(
    backend: &Backend,
    topics: &[&str],
) -> BTreeMap<(String, u32), Vec<ConsumerRecord>> {
    let mut all = BTreeMap::new();
    for topic in topics {
        let count = backend.partition_count(topic).await.expect("the topic");
        for partition in 0..count {
            let (start, end) = backend.log_range(topic, partition).await.expect("range");
            let mut records = Vec::new();
            let mut position = start;
            while position < end {
                let fetched = backend
                    .fetch(topic, partition, position, 1 << 20, Duration::ZERO)
                    .await
                    .expect("fetch");
                records.extend(fetched.records().expect("records"));
                let next = fetched.next_offset();
                assert!(next > position, "{topic}-{partition} stuck at {position}");
                position = next;
            }
            all.insert((topic.to_string(), partition), records);
        }
    }
    all
}

/// The source: `orders` (3 partitions, keyed), `events` (2 partitions, headers and null
/// values), `audit` (1 partition, a batch per codec), the internal `__brook_replies`, and
/// groups `billing` and `auditors`.
async fn source(dir: &Path) {
    let broker = open(dir).await;
    broker
        .create_topic(NewTopic::new("orders", 3))
        .await
        .expect("orders");
    broker
        .create_topic(NewTopic::new("events", 2))
        .await
        .expect("events");
    broker
        .create_topic(NewTopic::new("audit", 1))
        .await
        .expect("audit");
    // An internal topic (brook's request-reply replies): left behind unless named.
    broker
        .create_topic(NewTopic::new("__brook_replies", 1))
        .await
        .expect("replies");
    broker
        .produce(
            "__brook_replies",
            vec![ProduceRecord::value("an old reply")],
        )
        .await
        .expect("produce a reply");
    let orders = (0..60)
        .map(|i| ProduceRecord::keyed(format!("customer-{}", i % 9), format!("order {i}")))
        .collect();
    broker
        .produce("orders", orders)
        .await
        .expect("produce orders");
    for i in 0..20u32 {
        let record = ProduceRecord {
            key: (i % 3 == 0).then(|| Bytes::from(format!("k{i}"))),
            value: (i % 4 != 0).then(|| Bytes::from(format!("event {i}"))),
            headers: vec![
                ("source".into(), Bytes::from_static(b"web")),
                ("n".into(), Bytes::from(i.to_string())),
            ],
            timestamp: Some(1_700_000_000_000 + i64::from(i)),
            partition: Some(i % 2),
        };
        broker
            .produce("events", vec![record])
            .await
            .expect("produce events");
    }
    for (n, codec) in Compression::ALL.into_iter().enumerate() {
        let mut builder = BatchBuilder::new(codec);
        for i in 0..5 {
            let value = format!("{codec} entry {i} {}", "x".repeat(200));
            builder.push(RecordRef {
                key: Some(codec.name().as_bytes()),
                value: Some(value.as_bytes()),
                headers: &[("codec", codec.name().as_bytes())],
                timestamp: 1_700_000_100_000 + n as i64 * 10 + i,
            });
        }
        let batch = builder.build().expect("batch");
        broker
            .produce_batch("audit", 0, batch)
            .await
            .expect("append");
    }
    let commit = |topic: &str, partition, offset| OffsetCommit::new(topic, partition, offset);
    broker
        .commit_offsets(
            "billing",
            vec![
                commit("orders", 0, 3),
                commit("orders", 1, 1),
                commit("events", 1, 4),
            ],
        )
        .await
        .expect("billing commits");
    broker
        .commit_offsets("auditors", vec![commit("audit", 0, 12)])
        .await
        .expect("auditors commit");
    broker.close().await.expect("close");
}

fn migrate(args: &[&str]) -> Output {
    brook(&[&["migrate"], args].concat())
        .output()
        .expect("run brook migrate")
}

fn succeeded(output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "brook migrate failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The first record a librdkafka consumer in `group` receives from each of `partitions` of
/// `topic`.
async fn resumes(
    cluster: &KafkaCluster,
    group: &str,
    topic: &str,
    partitions: &[u32],
) -> BTreeMap<u32, (i64, Kept)> {
    let consumer = cluster.consumer(group);
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut first = BTreeMap::new();
    let deadline = Instant::now() + PATIENCE;
    while first.len() < partitions.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        let message = tokio::time::timeout(left, consumer.recv())
            .await
            .unwrap_or_else(|_| panic!("group {group} got {first:?} only"))
            .expect("a record");
        let partition = u32::try_from(message.partition()).expect("partition");
        if !partitions.contains(&partition) || first.contains_key(&partition) {
            continue;
        }
        let headers = message.headers().map_or_else(Vec::new, |h| {
            h.iter()
                .map(|h| {
                    (
                        h.key.to_owned(),
                        Bytes::copy_from_slice(h.value.unwrap_or_default()),
                    )
                })
                .collect()
        });
        let record = (
            message.key().map(Bytes::copy_from_slice),
            message.payload().map(Bytes::copy_from_slice),
            headers,
            message.timestamp().to_millis().expect("a timestamp"),
        );
        first.insert(partition, (message.offset(), record));
    }
    first
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_directory_moves_to_a_kafka_cluster_and_back() {
    let source_dir = tempfile::tempdir().expect("tempdir");
    source(source_dir.path()).await;
    let topics = ["audit", "events", "orders"];
    let before = {
        let broker = open(source_dir.path()).await;
        let all = contents(&Backend::Local(broker.clone()), &topics).await;
        broker.close().await.expect("close");
        all
    };
    let cluster_dir = tempfile::tempdir().expect("tempdir");
    let cluster = KafkaCluster::start(cluster_dir.path());
    let from = source_dir.path().to_str().expect("utf-8");
    let state = source_dir.path().with_extension("migrate.json");
    let state = state.to_str().expect("utf-8");

    // The plan, changing nothing.
    let plan = succeeded(&migrate(&[
        "--from",
        from,
        "--to",
        &cluster.url,
        "--state",
        state,
        "--dry-run",
    ]));
    assert!(
        plan.contains("topic orders: 3 partitions, 60 offsets, create"),
        "{plan}"
    );
    assert!(
        plan.contains("group billing: events-1 at 4, orders-0 at 3, orders-1 at 1"),
        "{plan}"
    );
    assert!(
        plan.contains("topic __brook_replies: internal, not copied"),
        "{plan}"
    );
    assert!(plan.contains("dry run: nothing was changed"), "{plan}");
    let kafka = brook::kafka::connect(&cluster.url).await.expect("connect");
    assert!(
        kafka.list_topics().await.expect("list").is_empty(),
        "a dry run creates nothing"
    );
    assert!(!Path::new(state).exists(), "a dry run writes no state");

    // The move.
    let done = succeeded(&migrate(&[
        "--from",
        from,
        "--to",
        &cluster.url,
        "--state",
        state,
    ]));
    assert!(done.contains("migrated 3 topics and 2 groups"), "{done}");
    let moved: Vec<String> = kafka
        .list_topics()
        .await
        .expect("list")
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(moved, topics, "the internal topic stays behind");
    let after = contents(&kafka, &topics).await;
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>()
    );
    for (tp, records) in &before {
        let moved = &after[tp];
        assert_eq!(
            moved.iter().map(kept).collect::<Vec<_>>(),
            records.iter().map(kept).collect::<Vec<_>>(),
            "{tp:?}"
        );
    }

    // Each group resumes right after its last committed record.
    let billing = resumes(&cluster, "billing", "orders", &[0, 1]).await;
    for (partition, committed) in [(0u32, 3u64), (1, 1)] {
        let source = &before[&("orders".to_owned(), partition)];
        let want = source
            .iter()
            .find(|r| r.offset == committed)
            .expect("committed record");
        assert_eq!(
            billing[&partition].1,
            kept(want),
            "billing orders-{partition}"
        );
    }
    let events = resumes(&cluster, "billing", "events", &[1]).await;
    let want = &before[&("events".to_owned(), 1)][4];
    assert_eq!(events[&1].1, kept(want), "billing events-1");
    let auditors = resumes(&cluster, "auditors", "audit", &[0]).await;
    assert_eq!(
        auditors[&0].1,
        kept(&before[&("audit".to_owned(), 0)][12]),
        "auditors"
    );

    // Run again: everything is there already, nothing is copied twice.
    let again = succeeded(&migrate(&[
        "--from",
        from,
        "--to",
        &cluster.url,
        "--state",
        state,
    ]));
    assert!(again.contains("0 records copied now"), "{again}");
    // Without that state file, a run would copy everything a second time: it is refused.
    let other_state = source_dir.path().with_extension("other.json");
    let refused = migrate(&[
        "--from",
        from,
        "--to",
        &cluster.url,
        "--state",
        other_state.to_str().expect("utf-8"),
    ]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && stderr.contains("records this migration did not copy"),
        "{stderr}"
    );
    assert_eq!(
        contents(&kafka, &topics)
            .await
            .values()
            .map(Vec::len)
            .sum::<usize>(),
        105
    );

    // The reverse: the cluster's topics and groups into a fresh data directory.
    let home = tempfile::tempdir().expect("tempdir");
    let home_dir = home.path().join("data");
    let home_state = home.path().join("back.json");
    succeeded(&migrate(&[
        "--from",
        &cluster.url,
        "--to",
        home_dir.to_str().expect("utf-8"),
        "--state",
        home_state.to_str().expect("utf-8"),
        "--topics",
        "orders,audit",
    ]));
    kafka.close().await.expect("close the client");
    let server = cluster.server.kill();
    let broker = open(&home_dir).await;
    let home_backend = Backend::Local(broker.clone());
    let back = contents(&home_backend, &["audit", "orders"]).await;
    for (tp, records) in &back {
        assert_eq!(
            records.iter().map(kept).collect::<Vec<_>>(),
            before[tp].iter().map(kept).collect::<Vec<_>>(),
            "{tp:?} back home"
        );
    }
    let committed = broker.committed_offsets("billing", &[]).expect("billing");
    let positions: Vec<(String, u64)> = committed
        .into_iter()
        .map(|(tp, c)| (tp.to_string(), c.offset))
        .collect();
    assert_eq!(
        positions,
        [("orders-0".to_owned(), 3), ("orders-1".to_owned(), 1)],
        "{server}"
    );
    broker.close().await.expect("close");

    // The cluster stored the audit batches compressed with their own codecs.
    let target = open(cluster_dir.path()).await;
    let fetched = target
        .fetch("audit", 0, 0, 1 << 20, Duration::ZERO)
        .await
        .expect("fetch");
    let codecs: Vec<Compression> = Batches::new(&fetched.batches)
        .map(|b| b.expect("batch").header.compression().expect("codec"))
        .collect();
    for codec in Compression::ALL {
        assert!(codecs.contains(&codec), "{codec} kept: {codecs:?}");
    }
    target.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_migration_resumes_and_copies_nothing_twice() {
    let source_dir = tempfile::tempdir().expect("tempdir");
    {
        let broker = open(source_dir.path()).await;
        broker
            .create_topic(NewTopic::new("big", 2))
            .await
            .expect("create");
        for chunk in 0..20 {
            let records = (0..500)
                .map(|i| {
                    ProduceRecord::keyed(
                        format!("k{}", (chunk * 500 + i) % 97),
                        format!("v{chunk}-{i}"),
                    )
                })
                .collect();
            broker.produce("big", records).await.expect("produce");
        }
        broker
            .commit_offsets("readers", vec![OffsetCommit::new("big", 0, 4000)])
            .await
            .expect("commit");
        broker.close().await.expect("close");
    }
    let before = {
        let broker = open(source_dir.path()).await;
        let all = contents(&Backend::Local(broker.clone()), &["big"]).await;
        broker.close().await.expect("close");
        all
    };
    let total: usize = before.values().map(Vec::len).sum();
    assert_eq!(total, 10_000);
    let cluster_dir = tempfile::tempdir().expect("tempdir");
    let cluster = KafkaCluster::start(cluster_dir.path());
    let kafka = brook::kafka::connect(&cluster.url).await.expect("connect");
    let from = source_dir.path().to_str().expect("utf-8");
    let state = source_dir.path().with_extension("migrate.json");
    let state = state.to_str().expect("utf-8");

    // A slow migration, killed once part of it is on the cluster.
    // Reaped on every path that does not panic; a panicking test ends the process anyway.
    #[allow(clippy::zombie_processes)]
    let mut slow = brook(&[
        "migrate",
        "--from",
        from,
        "--to",
        &cluster.url,
        "--state",
        state,
        "--rate",
        "2000",
    ])
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .spawn()
    .expect("start brook migrate");
    let deadline = Instant::now() + PATIENCE;
    let copied_at_kill = loop {
        if Instant::now() >= deadline {
            let _ = slow.kill();
            let _ = slow.wait();
            panic!("the migration never got going");
        }
        let mut copied = 0;
        if kafka.partition_count("big").await.is_ok() {
            for partition in 0..2 {
                copied += kafka.log_range("big", partition).await.expect("range").1;
            }
        }
        if copied >= 1000 {
            slow.kill().expect("kill the migration");
            slow.wait().expect("reap");
            break copied;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Whatever was in flight at the kill lands or not; measure after the dust settles.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut partial = 0;
    for partition in 0..2 {
        partial += kafka.log_range("big", partition).await.expect("range").1;
    }
    assert!(
        copied_at_kill < 10_000 && partial < 10_000,
        "the kill came too late to test a resume ({partial} of 10000 copied)"
    );

    let resumed = succeeded(&migrate(&[
        "--from",
        from,
        "--to",
        &cluster.url,
        "--state",
        state,
    ]));
    assert!(
        resumed.contains(&format!(
            "{} records copied now, {partial} before",
            10_000 - partial
        )),
        "{resumed}"
    );
    let after = contents(&kafka, &["big"]).await;
    for (tp, records) in &before {
        assert_eq!(
            after[tp].iter().map(kept).collect::<Vec<_>>(),
            records.iter().map(kept).collect::<Vec<_>>(),
            "{tp:?}: every record once, in order"
        );
    }
    let readers = resumes(&cluster, "readers", "big", &[0]).await;
    assert_eq!(readers[&0].1, kept(&before[&("big".to_owned(), 0)][4000]));
    kafka.close().await.expect("close");
}

#[test]
fn bad_arguments_are_refused_with_one_clear_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("nowhere");
    let cases: [(Vec<&str>, &str); 3] = [
        (
            vec![
                "--from",
                missing.to_str().expect("utf-8"),
                "--to",
                "kafka://127.0.0.1:1",
            ],
            "nowhere",
        ),
        (
            vec!["--from", "kafka://x:1", "--to", "kafka://x:1"],
            "the same place",
        ),
        (
            vec![
                "--from",
                "kafka://:1",
                "--to",
                dir.path().to_str().expect("utf-8"),
            ],
            "kafka://",
        ),
    ];
    for (args, says) in cases {
        let output = migrate(&args);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    }
}
