//! `sync` durability through the broker: group commit across producers, clean close, restart.

use std::time::Duration;

use brook_broker::{Broker, BrokerConfig, Durability, NewTopic, ProduceRecord};

const PRODUCERS: usize = 16;
const RECORDS_EACH: usize = 20;

/// A data directory on the real disk (not tmpfs), where fsync costs what it costs.
fn disk_dir() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir")
}

/// A broker with `sync` durability and a one-partition topic `t`.
async fn sync_broker_with_one_partition(dir: &tempfile::TempDir) -> Broker {
    let mut config = BrokerConfig::new(dir.path());
    config.log.durability = Durability::Sync;
    let broker = Broker::open(config).await.expect("open");
    broker
        .create_topic(NewTopic::new("t", 1))
        .await
        .expect("create");
    broker
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_producers_share_fsyncs_under_sync_durability() {
    producers_share_fsyncs(false).await;
}

/// Callers that each await their record before the next (`produce_awaited`: the idle
/// partition's fsync runs on the caller's thread) still share fsyncs with those queued
/// meanwhile, and each is answered only once its record is durable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn awaited_producers_share_fsyncs_and_are_answered_once_durable() {
    producers_share_fsyncs(true).await;
}

async fn producers_share_fsyncs(awaited: bool) {
    let dir = disk_dir();
    let broker = sync_broker_with_one_partition(&dir).await;
    let before = broker.describe_topic("t").expect("describe").partitions[0].fsyncs;

    let tasks: Vec<_> = (0..PRODUCERS)
        .map(|i| {
            let broker = broker.clone();
            tokio::spawn(async move {
                for j in 0..RECORDS_EACH {
                    let records = vec![ProduceRecord::value(format!("{i}-{j}"))];
                    let produced = if awaited {
                        broker.produce_awaited("t", records).await
                    } else {
                        broker.produce("t", records).await
                    };
                    let offset = produced.expect("produce").records[0].offset;
                    let durable =
                        broker.describe_topic("t").expect("describe").partitions[0].high_watermark;
                    assert!(offset < durable, "answered before its fsync");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("producer");
    }

    let partition = broker.describe_topic("t").expect("describe").partitions[0];
    let appends = (PRODUCERS * RECORDS_EACH) as u64;
    assert_eq!(
        partition.high_watermark, appends,
        "every append acknowledged is visible"
    );
    let fsyncs = partition.fsyncs - before;
    assert!(fsyncs > 0, "sync durability fsyncs");
    assert!(
        fsyncs < appends,
        "{appends} concurrent appends took {fsyncs} fsyncs: none were shared"
    );
    broker.close().await.expect("close");
}

#[tokio::test]
async fn a_clean_close_reopens_without_recovery_and_keeps_everything() {
    let dir = disk_dir();
    {
        let broker = Broker::open(BrokerConfig::new(dir.path()))
            .await
            .expect("open");
        broker
            .create_topic(NewTopic::new("t", 2))
            .await
            .expect("create");
        let records = (0..10)
            .map(|i| ProduceRecord::keyed(format!("k{i}"), format!("v{i}")))
            .collect();
        broker.produce("t", records).await.expect("produce");
        broker.close().await.expect("close");
    }
    let broker = Broker::open(BrokerConfig::new(dir.path()))
        .await
        .expect("reopen");
    let reports = broker.recovery_reports();
    assert_eq!(reports.len(), 2);
    for (tp, report) in &reports {
        assert!(
            report.clean,
            "{tp} was walked after a clean close: {report:?}"
        );
        assert_eq!(report.scanned_bytes, 0, "{tp}");
    }
    let total: u64 = broker
        .describe_topic("t")
        .expect("describe")
        .partitions
        .iter()
        .map(|p| p.high_watermark)
        .sum();
    assert_eq!(total, 10);
    let mut values = Vec::new();
    for p in 0..2 {
        let fetched = broker
            .fetch("t", p, 0, 1 << 20, Duration::ZERO)
            .await
            .expect("fetch");
        values.extend(
            fetched
                .records()
                .expect("decode")
                .into_iter()
                .map(|r| r.value),
        );
    }
    assert_eq!(values.len(), 10);
    broker.close().await.expect("close");
}

#[tokio::test]
async fn a_second_broker_on_the_same_directory_is_refused() {
    let dir = disk_dir();
    let first = Broker::open(BrokerConfig::new(dir.path()))
        .await
        .expect("open");
    let err = Broker::open(BrokerConfig::new(dir.path()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), brook_broker::ErrorKind::Unavailable, "{err}");
    first.close().await.expect("close");
}

#[tokio::test]
async fn an_ephemeral_broker_removes_its_directory_when_dropped() {
    let broker = Broker::ephemeral().await.expect("ephemeral");
    let dir = broker.data_dir();
    broker
        .produce("t", vec![ProduceRecord::value("v")])
        .await
        .expect("produce");
    assert!(dir.exists());
    let clone = broker.clone();
    drop(broker);
    assert!(dir.exists(), "a clone keeps it");
    drop(clone);
    assert!(!dir.exists(), "removed with the last handle");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_produces_are_appended_in_call_order() {
    let dir = disk_dir();
    let broker = sync_broker_with_one_partition(&dir).await;
    // Issued in order, awaited in reverse and all at once: the calls fix the order.
    let pending: Vec<_> = (0..200)
        .map(|i| broker.produce("t", vec![ProduceRecord::value(format!("{i}"))]))
        .collect();
    let produced = futures::future::join_all(pending.into_iter().rev()).await;
    let offsets: Vec<u64> = produced
        .into_iter()
        .rev()
        .map(|p| p.expect("produce").records[0].offset)
        .collect();
    assert_eq!(offsets, (0..200).collect::<Vec<u64>>());
    let fsyncs = broker.describe_topic("t").expect("describe").partitions[0].fsyncs;
    assert!(fsyncs < 200, "200 pipelined appends took {fsyncs} fsyncs");
    broker.close().await.expect("close");
}
