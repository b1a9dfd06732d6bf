//! A compacted topic with kafka-python, a Kafka client that shares no code with librdkafka:
//! created with `cleanup.policy=compact` (topic_configs), keyless records refused, written and
//! then, after the cleaner has run, read from the beginning to exactly each key's latest value;
//! a group resumes from its commit across the clean. The client is installed by the test into
//! `target/pyenv` (tests/kafka_support/python.rs); the script is `tests/python/compaction.py`.

mod kafka_support;

use std::time::{Duration, Instant};

use kafka_support::python;
use kafka_support::TestBroker;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_python_reads_a_compacted_topic_as_its_latest_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tb = TestBroker::start_with(dir.path(), |c| c.cleaner.backoff_ms = 50).await;
    let run = |phase: &'static str| {
        let bootstrap = tb.bootstrap.clone();
        tokio::task::spawn_blocking(move || {
            python::json_lines(&python::run_script(
                "compaction.py",
                &bootstrap,
                &["py-table", phase],
            ))
        })
    };
    let lines = run("write").await.expect("script task");
    let step = |lines: &[serde_json::Value], name: &str| {
        lines
            .iter()
            .find(|l| l["step"] == name)
            .unwrap_or_else(|| panic!("no {name} step in {lines:?}"))
            .clone()
    };
    assert_eq!(step(&lines, "created")["cleanup_policy"], "compact");
    assert_eq!(step(&lines, "written")["records"], 10_010);
    let keyless = step(&lines, "keyless");
    assert_eq!(keyless["refused"], true, "{keyless}");
    let group = step(&lines, "group");
    let committed = group["committed"].as_u64().expect("committed");
    assert_eq!(group["end"], committed, "{group}");

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let description = tb.broker.describe_topic("py-table").expect("describe");
        let compaction = description.partitions[0].compaction.expect("compacted");
        if compaction.cleans >= 1 && compaction.progress.is_none() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the cleaner did not run: {compaction:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let lines = run("read").await.expect("script task");
    let read = step(&lines, "read");
    // Far fewer than were written: each cleaned segment keeps one record a key, but the active
    // segment is never cleaned, and with gzip batches its 16 KiB can hold a quarter of the
    // writes or more, depending on how the producer's linger cut the batches.
    assert!(
        read["records"].as_u64().expect("count") < 10_010 / 2,
        "{} records read after the clean",
        read["records"]
    );
    assert_eq!(read["rising"], true);
    let latest = read["latest"].as_object().expect("latest values");
    assert_eq!(latest.len(), 100);
    for k in 0..100 {
        let value = &latest[&format!("key-{k:03}")];
        if k < 10 {
            assert!(value.is_null(), "key {k} was deleted: {value}");
        } else {
            assert_eq!(value, &format!("value-{k}-99"), "key {k}");
        }
    }
    // The group's commit is kept across the clean; it resumes there (on the next record kept).
    let resumed = step(&lines, "resumed");
    assert_eq!(resumed["committed"], committed);
    assert_eq!(resumed["position"], committed, "{resumed}");
    assert!(
        resumed["first"]
            .as_u64()
            .is_none_or(|first| first >= committed),
        "{resumed}"
    );
    tb.stop().await;
}
