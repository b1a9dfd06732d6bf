//! `kill -9` of the broker (a `brook serve` child, sync durability) while transactions are open
//! and while one producer commits transaction after transaction, then a restart on the same
//! data directory: every transaction whose commit was acknowledged is whole, every other one
//! is whole or invisible to read_committed (never half), the open one is aborted once its
//! timeout passes, and then every partition's last stable offset is its high watermark.

mod kafka_support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_support::child::ChildBroker;
use kafka_support::{consumer, producer, receive, PATIENCE};
use rdkafka::consumer::Consumer;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

const TOPIC: &str = "crash";
/// Records per transaction, spread over the topic's two partitions.
const PER_TXN: usize = 6;

/// The broker's flags: sync durability, and timeouts checked every 100 ms.
const FLAGS: &[&str] = &[
    "--durability",
    "sync",
    "--default-partitions",
    "2",
    "--transaction-abort-check-ms",
    "100",
];

/// Sends one transaction of `PER_TXN` records named `{name}:{i}` and commits it.
async fn transaction(p: &FutureProducer, name: &str) -> anyhow::Result<()> {
    p.begin_transaction()?;
    for i in 0..PER_TXN {
        let value = format!("{name}:{i}");
        p.send(
            FutureRecord::<(), _>::to(TOPIC)
                .partition((i % 2) as i32)
                .payload(&value),
            PATIENCE,
        )
        .await
        .map_err(|(e, _)| e)?;
    }
    let committing = p.clone();
    tokio::task::spawn_blocking(move || committing.commit_transaction(Duration::from_secs(5)))
        .await??;
    Ok(())
}

fn txn_producer(bootstrap: &str, id: &str) -> FutureProducer {
    let p = producer(
        bootstrap,
        &[
            ("transactional.id", id),
            ("transaction.timeout.ms", "3000"),
            ("message.timeout.ms", "3000"),
            ("socket.timeout.ms", "3000"),
        ],
    );
    p.init_transactions(PATIENCE).expect("init_transactions");
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_kill_9_committed_transactions_are_whole_and_the_rest_invisible() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = ChildBroker::start(dir.path(), FLAGS);
    let bootstrap = broker.bootstrap.clone();

    // Committed before the crash.
    let done = txn_producer(&bootstrap, "crash-done");
    for n in 0..3 {
        transaction(&done, &format!("done{n}"))
            .await
            .expect("commit");
    }
    // Open at the crash: its records are written, its end never comes.
    let open = txn_producer(&bootstrap, "crash-open");
    open.begin_transaction().expect("begin");
    for i in 0..PER_TXN {
        open.send(
            FutureRecord::<(), _>::to(TOPIC)
                .partition((i % 2) as i32)
                .payload("open"),
            PATIENCE,
        )
        .await
        .expect("send");
    }
    // Committing transaction after transaction when the broker dies.
    let running = Arc::new(AtomicBool::new(true));
    let committed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let busy = {
        let (bootstrap, running) = (bootstrap.clone(), Arc::clone(&running));
        let committed = Arc::clone(&committed);
        tokio::spawn(async move {
            let p = txn_producer(&bootstrap, "crash-busy");
            let mut acknowledged = Vec::new();
            let mut n = 0;
            while running.load(Ordering::Acquire) {
                let name = format!("busy{n}");
                match transaction(&p, &name).await {
                    Ok(()) => {
                        acknowledged.push(name);
                        committed.fetch_add(1, Ordering::Release);
                    }
                    Err(_) => break,
                }
                n += 1;
            }
            acknowledged
        })
    };
    // Kill once the busy producer is committing (its InitProducerId can take a while on a
    // loaded machine; a kill before it ends would fail the producer's init, not test a crash).
    let deadline = std::time::Instant::now() + PATIENCE;
    while committed.load(Ordering::Acquire) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the busy producer never committed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    broker.kill();
    running.store(false, Ordering::Release);
    let acknowledged = busy.await.expect("busy producer");
    assert!(
        !acknowledged.is_empty(),
        "the busy producer committed before the kill"
    );

    let broker = ChildBroker::start(dir.path(), FLAGS);
    let bootstrap = broker.bootstrap.clone();
    // The open transaction times out (3 s after it began) and is aborted: every partition's
    // LSO reaches its high watermark.
    let watch = consumer(
        &bootstrap,
        "watch",
        &[("isolation.level", "read_committed")],
    );
    let deadline = Instant::now() + PATIENCE;
    for partition in 0..2 {
        loop {
            let stable =
                tokio::task::block_in_place(|| watch.fetch_watermarks(TOPIC, partition, PATIENCE))
                    .expect("read_committed watermarks")
                    .1;
            let high = {
                let all = consumer(
                    &bootstrap,
                    "watch-all",
                    &[("isolation.level", "read_uncommitted")],
                );
                tokio::task::block_in_place(|| all.fetch_watermarks(TOPIC, partition, PATIENCE))
                    .expect("read_uncommitted watermarks")
                    .1
            };
            if stable == high {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "partition {partition}: LSO {stable} never reached the high watermark {high}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // A last transaction marks the end of what to read.
    let end = txn_producer(&bootstrap, "crash-end");
    transaction(&end, "end").await.expect("the end transaction");

    let reader = consumer(
        &bootstrap,
        "check",
        &[("isolation.level", "read_committed")],
    );
    reader.subscribe(&[TOPIC]).expect("subscribe");
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut ends = 0;
    while ends < PER_TXN {
        let got = receive(&reader, 1).await.remove(0);
        let value = String::from_utf8(got.value.expect("value")).expect("utf8");
        assert_ne!(
            value, "open",
            "a record of the transaction open at the kill is visible"
        );
        let name = value.split(':').next().unwrap_or_default().to_owned();
        ends += usize::from(name == "end");
        *seen.entry(name).or_default() += 1;
    }
    for (name, count) in &seen {
        assert_eq!(*count, PER_TXN, "transaction {name} is not whole: {seen:?}");
    }
    for name in ["done0", "done1", "done2"]
        .iter()
        .map(|s| s.to_string())
        .chain(acknowledged)
    {
        assert!(
            seen.contains_key(&name),
            "acknowledged transaction {name} is lost: {seen:?}"
        );
    }
    broker.kill();
}
