//! Transactions through the embedded broker: the coordinator's calls (what the Kafka door
//! serves), read_committed and read_uncommitted reads, fencing, timeouts, restarts, and the
//! broker's own atomic writes.

mod common;

use std::time::{Duration, Instant};

use brook_broker::{
    Broker, BrokerConfig, BrokerError, Isolation, NewTopic, OffsetCommit, OffsetSpec,
    PartitionSubscribe, ProduceRecord, ProducerIdAndEpoch, StartAt, SubscriptionEvent,
    TopicPartition, TxnError, TxnResult, TxnState,
};
use brook_log::batch::{BatchBuilder, Compression, RecordRef};
use bytes::BytesMut;
use futures::StreamExt;

const WAIT: Duration = Duration::from_secs(10);

fn config(dir: &std::path::Path, abort_check_ms: u64) -> BrokerConfig {
    let mut config = BrokerConfig::new(dir);
    config.log.durability = brook_log::Durability::None;
    config.transactions.abort_check_ms = abort_check_ms;
    config
}

async fn open(dir: &std::path::Path, abort_check_ms: u64) -> Broker {
    Broker::open(config(dir, abort_check_ms))
        .await
        .expect("open")
}

/// A transactional batch of `values` from `producer`, starting at sequence `seq`.
fn txn_batch(producer: ProducerIdAndEpoch, seq: i32, values: &[&str]) -> BytesMut {
    let mut b = BatchBuilder::new(Compression::None)
        .with_producer(producer.producer_id, producer.epoch, seq)
        .transactional();
    for v in values {
        b.push(RecordRef {
            key: None,
            value: Some(v.as_bytes()),
            headers: &[],
            timestamp: 1_700_000_000_000,
        });
    }
    b.build().expect("batch")
}

async fn values(broker: &Broker, topic: &str, isolation: Isolation) -> Vec<String> {
    values_of(broker, topic, 0, isolation).await
}

/// Runs one transaction of `id` writing `values` to `topic`-0 and ends it with `result`.
async fn transaction(
    broker: &Broker,
    id: &str,
    producer: ProducerIdAndEpoch,
    seq: i32,
    topic: &str,
    values: &[&str],
    result: TxnResult,
) {
    broker
        .add_partitions_to_txn(id, producer, vec![TopicPartition::new(topic, 0)])
        .await
        .expect("add partitions");
    broker
        .produce_transactional_batch(id, topic, 0, txn_batch(producer, seq, values))
        .await
        .expect("transactional produce");
    broker.end_txn(id, producer, result).await.expect("end");
}

#[tokio::test]
async fn committed_and_aborted_transactions_read_as_kafka_reads_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = open(dir.path(), 10_000).await;
    broker
        .create_topic(NewTopic::new("t", 1))
        .await
        .expect("topic");
    let producer = broker
        .init_producer_id(Some("app"), 60_000, None)
        .await
        .expect("init");
    transaction(
        &broker,
        "app",
        producer,
        0,
        "t",
        &["a", "b"],
        TxnResult::Commit,
    )
    .await;
    transaction(&broker, "app", producer, 2, "t", &["x"], TxnResult::Abort).await;
    broker
        .produce("t", vec![ProduceRecord::value("plain")])
        .await
        .expect("plain");

    assert_eq!(
        values(&broker, "t", Isolation::ReadCommitted).await,
        ["a", "b", "plain"]
    );
    assert_eq!(
        values(&broker, "t", Isolation::ReadUncommitted).await,
        ["a", "b", "x", "plain"],
        "read_uncommitted sees the aborted record, never a control record"
    );
    let fetched = broker
        .fetch_isolated("t", 0, 0, 1 << 20, Duration::ZERO, Isolation::ReadCommitted)
        .await
        .expect("fetch");
    assert_eq!(fetched.aborted.len(), 1);
    assert_eq!(fetched.aborted[0].producer_id, producer.producer_id);
    // Two data batches, two markers, one plain batch.
    assert_eq!(fetched.last_stable_offset, fetched.high_watermark);
    let raw = brook_log::batch::Batches::new(&fetched.data_batches()).count();
    assert_eq!(raw, 2, "raw batches without markers and the aborted one");

    let described = broker.describe_transaction("app").expect("describe");
    assert_eq!(described.state, TxnState::CompleteAbort);
    let listed = broker.list_transactions(&[TxnState::CompleteAbort], &[], None);
    assert_eq!(listed.len(), 1);
    let producers = broker.describe_producers("t", 0).expect("producers");
    assert_eq!(producers[0].producer_id, producer.producer_id);
    assert_eq!(producers[0].current_txn_start_offset, None);
    broker.close().await.expect("close");
}

#[tokio::test]
async fn an_open_transaction_holds_read_committed_readers_back_until_it_ends() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = open(dir.path(), 10_000).await;
    broker
        .create_topic(NewTopic::new("t", 1))
        .await
        .expect("topic");
    broker
        .produce("t", vec![ProduceRecord::value("before")])
        .await
        .expect("p");
    let producer = broker
        .init_producer_id(Some("p"), 60_000, None)
        .await
        .expect("init");
    broker
        .add_partitions_to_txn("p", producer, vec![TopicPartition::new("t", 0)])
        .await
        .expect("add");
    broker
        .produce_transactional_batch("p", "t", 0, txn_batch(producer, 0, &["in-txn"]))
        .await
        .expect("produce");
    broker
        .produce("t", vec![ProduceRecord::value("after")])
        .await
        .expect("p");
    assert_eq!(broker.last_stable_offset("t", 0).expect("lso"), 1);
    let latest = broker
        .list_offset("t", 0, OffsetSpec::LastStable)
        .await
        .expect("lso");
    assert_eq!(latest.offset, Some(1));
    assert_eq!(
        values(&broker, "t", Isolation::ReadCommitted).await,
        ["before"]
    );

    // A read_committed subscriber sees the open transaction's records only once it commits.
    let mut sub = broker
        .subscribe(PartitionSubscribe::new("t", 0, StartAt::Offset(1)))
        .await
        .expect("subscribe");
    let waiting = tokio::time::timeout(Duration::from_millis(200), sub.next()).await;
    assert!(
        waiting.is_err(),
        "nothing is stable past the open transaction"
    );
    broker
        .end_txn("p", producer, TxnResult::Commit)
        .await
        .expect("commit");
    let event = tokio::time::timeout(WAIT, sub.next())
        .await
        .expect("woken by the commit")
        .expect("event")
        .expect("batches");
    let SubscriptionEvent::Batches(batches) = event else {
        panic!("{event:?}")
    };
    let got: Vec<_> = batches
        .records()
        .expect("records")
        .into_iter()
        .map(|r| r.value.expect("value"))
        .collect();
    assert_eq!(got, ["in-txn", "after"]);
    broker.close().await.expect("close");
}

#[tokio::test]
async fn a_new_instance_fences_the_old_one_and_aborts_its_transaction() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = open(dir.path(), 10_000).await;
    broker
        .create_topic(NewTopic::new("t", 1))
        .await
        .expect("topic");
    let old = broker
        .init_producer_id(Some("app"), 60_000, None)
        .await
        .expect("init");
    broker
        .add_partitions_to_txn("app", old, vec![TopicPartition::new("t", 0)])
        .await
        .expect("add");
    broker
        .produce_transactional_batch("app", "t", 0, txn_batch(old, 0, &["zombie"]))
        .await
        .expect("produce");
    let new = broker
        .init_producer_id(Some("app"), 60_000, None)
        .await
        .expect("init");
    assert_eq!(new.producer_id, old.producer_id);
    assert!(
        new.epoch > old.epoch + 1,
        "fenced with a bumped epoch, then bumped again"
    );
    assert_eq!(
        broker.last_stable_offset("t", 0).expect("lso"),
        2,
        "aborted: settled"
    );
    assert!(values(&broker, "t", Isolation::ReadCommitted)
        .await
        .is_empty());

    let fenced = broker
        .produce_transactional_batch("app", "t", 0, txn_batch(old, 1, &["late"]))
        .await
        .unwrap_err();
    assert!(
        matches!(
            fenced,
            BrokerError::Transaction(TxnError::ProducerFenced { .. })
        ),
        "{fenced}"
    );
    let fenced = broker
        .end_txn("app", old, TxnResult::Commit)
        .await
        .unwrap_err();
    assert!(matches!(
        fenced,
        BrokerError::Transaction(TxnError::ProducerFenced { .. })
    ));
    // The old instance asking for its own id back is fenced too (KIP-360).
    let again = broker
        .init_producer_id(Some("app"), 60_000, Some(old))
        .await
        .unwrap_err();
    assert!(matches!(
        again,
        BrokerError::Transaction(TxnError::ProducerFenced { .. })
    ));
    // The new one works.
    transaction(&broker, "app", new, 0, "t", &["ok"], TxnResult::Commit).await;
    assert_eq!(values(&broker, "t", Isolation::ReadCommitted).await, ["ok"]);
    broker.close().await.expect("close");
}

#[tokio::test]
async fn calls_out_of_order_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = open(dir.path(), 10_000).await;
    broker
        .create_topic(NewTopic::new("t", 1))
        .await
        .expect("topic");
    let err = |r: Result<(), BrokerError>| match r.unwrap_err() {
        BrokerError::Transaction(e) => e,
        other => panic!("{other}"),
    };
    let ghost = ProducerIdAndEpoch::new(1, 0);
    assert!(matches!(
        err(broker.end_txn("nobody", ghost, TxnResult::Commit).await),
        TxnError::InvalidProducerIdMapping { .. }
    ));
    let p = broker
        .init_producer_id(Some("a"), 60_000, None)
        .await
        .expect("init");
    assert!(matches!(
        err(broker.end_txn("a", p, TxnResult::Commit).await),
        TxnError::InvalidTxnState { .. }
    ));
    assert!(matches!(
        err(broker
            .add_partitions_to_txn("a", p, vec![TopicPartition::new("nope", 0)])
            .await),
        TxnError::UnknownPartitions(_)
    ));
    // A partition not added: its batch is refused.
    let refused = broker
        .produce_transactional_batch("a", "t", 0, txn_batch(p, 0, &["x"]))
        .await
        .unwrap_err();
    assert!(matches!(
        refused,
        BrokerError::Transaction(TxnError::InvalidTxnState { .. })
    ));
    // A transactional batch without its id, on any door.
    let untracked = broker
        .produce_batch("t", 0, txn_batch(p, 0, &["x"]))
        .await
        .unwrap_err();
    assert!(
        matches!(untracked, BrokerError::Transaction(_)),
        "{untracked}"
    );
    assert!(matches!(
        err(broker
            .txn_offset_commit("a", p, "g", vec![OffsetCommit::new("t", 0, 1)])
            .await),
        TxnError::InvalidTxnState { .. }
    ));
    for bad_timeout in [0, -5, 900_001] {
        let refused = broker
            .init_producer_id(Some("b"), bad_timeout, None)
            .await
            .unwrap_err();
        assert!(matches!(
            refused,
            BrokerError::Transaction(TxnError::InvalidTimeout { .. })
        ));
    }
    assert!(broker.init_producer_id(Some(""), 1000, None).await.is_err());
    assert_eq!(
        broker.describe_topic("t").expect("t").partitions[0].log_end_offset,
        0
    );
    broker.close().await.expect("close");
}

#[tokio::test]
async fn offsets_committed_in_a_transaction_show_only_when_it_commits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = open(dir.path(), 10_000).await;
    broker
        .create_topic(NewTopic::new("in", 1))
        .await
        .expect("topic");
    broker
        .create_topic(NewTopic::new("out", 1))
        .await
        .expect("topic");
    let p = broker
        .init_producer_id(Some("ctp"), 60_000, None)
        .await
        .expect("init");
    for (round, result) in [(1u64, TxnResult::Abort), (2, TxnResult::Commit)] {
        broker
            .add_offsets_to_txn("ctp", p, "g")
            .await
            .expect("add offsets");
        broker
            .txn_offset_commit("ctp", p, "g", vec![OffsetCommit::new("in", 0, round * 10)])
            .await
            .expect("txn commit");
        assert!(
            broker
                .committed_offsets("g", &[])
                .expect("committed")
                .is_empty(),
            "round {round}: pending offsets are not the group's"
        );
        broker.end_txn("ctp", p, result).await.expect("end");
    }
    let committed = broker.committed_offsets("g", &[]).expect("committed");
    assert_eq!(committed.len(), 1);
    assert_eq!(
        committed[0].1.offset, 20,
        "only the committed transaction's"
    );
    broker.close().await.expect("close");
}

#[tokio::test]
async fn a_transaction_past_its_timeout_is_aborted_and_its_producer_fenced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = open(dir.path(), 20).await;
    broker
        .create_topic(NewTopic::new("t", 1))
        .await
        .expect("topic");
    let p = broker
        .init_producer_id(Some("slow"), 200, None)
        .await
        .expect("init");
    broker
        .add_partitions_to_txn("slow", p, vec![TopicPartition::new("t", 0)])
        .await
        .expect("add");
    broker
        .produce_transactional_batch("slow", "t", 0, txn_batch(p, 0, &["stuck"]))
        .await
        .expect("produce");
    let deadline = Instant::now() + WAIT;
    while broker.describe_transaction("slow").expect("d").state != TxnState::CompleteAbort {
        assert!(Instant::now() < deadline, "never aborted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(broker.last_stable_offset("t", 0).expect("lso"), 2);
    assert!(values(&broker, "t", Isolation::ReadCommitted)
        .await
        .is_empty());
    let late = broker
        .end_txn("slow", p, TxnResult::Commit)
        .await
        .unwrap_err();
    assert!(matches!(
        late,
        BrokerError::Transaction(TxnError::ProducerFenced { .. })
    ));
    broker.close().await.expect("close");
}

#[tokio::test]
async fn state_survives_a_restart_and_open_transactions_time_out_after_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (p, committed_p) = {
        let broker = open(dir.path(), 10_000).await;
        broker
            .create_topic(NewTopic::new("t", 1))
            .await
            .expect("topic");
        let c = broker
            .init_producer_id(Some("done"), 60_000, None)
            .await
            .expect("init");
        transaction(&broker, "done", c, 0, "t", &["kept"], TxnResult::Commit).await;
        let p = broker
            .init_producer_id(Some("open"), 300, None)
            .await
            .expect("init");
        broker
            .add_partitions_to_txn("open", p, vec![TopicPartition::new("t", 0)])
            .await
            .expect("add");
        broker
            .produce_transactional_batch("open", "t", 0, txn_batch(p, 0, &["dangling"]))
            .await
            .expect("produce");
        // Dropped without close: a crash as far as the files are concerned.
        (p, c)
    };
    let broker = common::open_after_drop(config(dir.path(), 20)).await;
    assert_eq!(
        broker.describe_transaction("done").expect("d").producer_id,
        committed_p.producer_id
    );
    assert_eq!(
        broker.describe_transaction("open").expect("d").state,
        TxnState::Ongoing
    );
    assert_eq!(
        broker.last_stable_offset("t", 0).expect("lso"),
        2,
        "held by the open one"
    );
    assert_eq!(
        values(&broker, "t", Isolation::ReadCommitted).await,
        ["kept"]
    );
    let deadline = Instant::now() + WAIT;
    while broker.last_stable_offset("t", 0).expect("lso") == 2 {
        assert!(
            Instant::now() < deadline,
            "the open transaction never timed out"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        values(&broker, "t", Isolation::ReadCommitted).await,
        ["kept"]
    );
    let again = broker
        .init_producer_id(Some("open"), 60_000, None)
        .await
        .expect("init");
    assert_eq!(again.producer_id, p.producer_id);
    broker.close().await.expect("close");
}

#[tokio::test]
async fn atomic_writes_land_whole_or_not_at_all() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = open(dir.path(), 10_000).await;
    broker
        .create_topic(NewTopic::new("a", 2))
        .await
        .expect("topic");
    broker
        .create_topic(NewTopic::new("b", 1))
        .await
        .expect("topic");
    let mut txn = broker.transaction();
    txn.produce(
        "a",
        (0..10)
            .map(|i| ProduceRecord::keyed(format!("k{i}"), format!("v{i}")))
            .collect(),
    )
    .produce("b", vec![ProduceRecord::value("b1")])
    .produce("b", vec![ProduceRecord::value("b2")])
    .commit_offsets("g", vec![OffsetCommit::new("a", 0, 5)]);
    let produced = txn.commit().await.expect("commit");
    assert_eq!(produced.len(), 3);
    assert_eq!(produced[0].records.len(), 10);
    let mut seen = 0;
    for (topic, partition) in [("a", 0), ("a", 1), ("b", 0)] {
        let fetched = broker
            .fetch(topic, partition, 0, 1 << 20, Duration::ZERO)
            .await
            .expect("fetch");
        seen += fetched.records().expect("records").len();
    }
    assert_eq!(seen, 12);
    assert_eq!(
        broker.committed_offsets("g", &[]).expect("g")[0].1.offset,
        5
    );
    assert!(
        broker.list_transactions(&[], &[], None).is_empty(),
        "brook's own transactions are forgotten once done"
    );

    // A bad record anywhere: nothing is written, nothing committed.
    let before = broker.describe_topic("b").expect("b").partitions[0].log_end_offset;
    let mut bad = broker.transaction();
    bad.produce("b", vec![ProduceRecord::value("fine")])
        .produce(
            "a",
            vec![ProduceRecord {
                partition: Some(7),
                ..ProduceRecord::value("nowhere")
            }],
        )
        .commit_offsets("g", vec![OffsetCommit::new("a", 0, 9)]);
    assert!(bad.commit().await.is_err());
    assert_eq!(
        broker.describe_topic("b").expect("b").partitions[0].log_end_offset,
        before
    );
    assert_eq!(
        broker.committed_offsets("g", &[]).expect("g")[0].1.offset,
        5
    );
    assert!(
        broker.transaction().commit().await.is_err(),
        "an empty write"
    );
    broker.close().await.expect("close");
}

/// The values of `topic`-`partition` under `isolation`.
async fn values_of(
    broker: &Broker,
    topic: &str,
    partition: u32,
    isolation: Isolation,
) -> Vec<String> {
    let fetched = broker
        .fetch_isolated(topic, partition, 0, 1 << 20, Duration::ZERO, isolation)
        .await
        .expect("fetch");
    fetched
        .records()
        .expect("records")
        .into_iter()
        .map(|r| String::from_utf8(r.value.expect("value").to_vec()).expect("utf8"))
        .collect()
}

/// Kafka's EndTxn (`end_txn_decided`) is answered once the end is decided and durable, a
/// commit's offsets already the group's; its markers follow. The producer's next transaction
/// waits for them: once AddPartitionsToTxn returns, the previous transaction is settled in
/// every partition it wrote. A broker dropped right after an answer completes the end when it
/// opens again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decided_end_answers_before_its_markers_and_the_next_transaction_waits_for_them() {
    const ROUNDS: u64 = 20;
    let dir = tempfile::tempdir().expect("tempdir");
    let both = vec![TopicPartition::new("t", 0), TopicPartition::new("t", 1)];
    let producer = {
        let broker = open(dir.path(), 10_000).await;
        broker
            .create_topic(NewTopic::new("t", 2))
            .await
            .expect("topic");
        broker
            .create_topic(NewTopic::new("in", 1))
            .await
            .expect("topic");
        let p = broker
            .init_producer_id(Some("app"), 60_000, None)
            .await
            .expect("init");
        for round in 0..ROUNDS {
            broker
                .add_partitions_to_txn("app", p, both.clone())
                .await
                .expect("add partitions");
            for partition in 0..2 {
                let high = broker.describe_topic("t").expect("topic").partitions
                    [partition as usize]
                    .high_watermark;
                assert_eq!(
                    broker.last_stable_offset("t", partition).expect("lso"),
                    high,
                    "round {round}: the previous transaction is settled in {partition}"
                );
                let batch = txn_batch(p, round as i32, &[&format!("r{round}")]);
                broker
                    .produce_transactional_batch("app", "t", partition, batch)
                    .await
                    .expect("produce");
            }
            broker
                .add_offsets_to_txn("app", p, "g")
                .await
                .expect("add offsets");
            broker
                .txn_offset_commit("app", p, "g", vec![OffsetCommit::new("in", 0, round + 1)])
                .await
                .expect("txn offsets");
            broker
                .end_txn_decided("app", p, TxnResult::Commit)
                .await
                .expect("end");
            let state = broker.describe_transaction("app").expect("known").state;
            assert!(
                matches!(state, TxnState::PrepareCommit | TxnState::CompleteCommit),
                "round {round}: {state}"
            );
            let committed = broker.committed_offsets("g", &[]).expect("offsets");
            assert_eq!(
                committed[0].1.offset,
                round + 1,
                "round {round}: the offsets are the group's when EndTxn answers"
            );
        }
        // Dropped right after the last answer, without close.
        p
    };

    let broker = common::open_after_drop({
        let mut config = BrokerConfig::new(dir.path());
        config.log.durability = brook_log::Durability::None;
        config
    })
    .await;
    let described = broker.describe_transaction("app").expect("known");
    assert_eq!(described.state, TxnState::CompleteCommit);
    assert_eq!(described.producer_id, producer.producer_id);
    let expected: Vec<String> = (0..ROUNDS).map(|r| format!("r{r}")).collect();
    for partition in 0..2 {
        assert_eq!(
            broker.last_stable_offset("t", partition).expect("lso"),
            2 * ROUNDS,
            "every record and marker settled in {partition}"
        );
        assert_eq!(
            values_of(&broker, "t", partition, Isolation::ReadCommitted).await,
            expected
        );
    }
    let committed = broker.committed_offsets("g", &[]).expect("offsets");
    assert_eq!(committed[0].1.offset, ROUNDS);
    broker.close().await.expect("close");
}

/// Several producers end transactions at once, each on its own partition, under durability
/// `none` (the coordinator's records appended in place on the workers) and `sync` (on the
/// blocking pool, fsynced): every record lands once in the coordinator's log, so after a
/// clean close each id reopens `CompleteCommit` with its last epoch, every partition is
/// settled (LSO = high watermark) and read_committed sees every committed value in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_producers_commit_whole_under_either_durability() {
    const PRODUCERS: u32 = 6;
    const ROUNDS: i32 = 15;
    for durability in [brook_log::Durability::None, brook_log::Durability::Sync] {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = || {
            let mut config = BrokerConfig::new(dir.path());
            config.log.durability = durability;
            config
        };
        let producers = {
            let broker = Broker::open(config()).await.expect("open");
            broker
                .create_topic(NewTopic::new("t", PRODUCERS))
                .await
                .expect("topic");
            let runs = (0..PRODUCERS).map(|n| {
                let broker = broker.clone();
                tokio::spawn(async move {
                    let id = format!("app-{n}");
                    let p = broker
                        .init_producer_id(Some(&id), 60_000, None)
                        .await
                        .expect("init");
                    let tp = vec![TopicPartition::new("t", n)];
                    for round in 0..ROUNDS {
                        broker
                            .add_partitions_to_txn(&id, p, tp.clone())
                            .await
                            .expect("add partitions");
                        let batch = txn_batch(p, round, &[&format!("{n}-{round}")]);
                        broker
                            .produce_transactional_batch(&id, "t", n, batch)
                            .await
                            .expect("produce");
                        broker
                            .end_txn_decided(&id, p, TxnResult::Commit)
                            .await
                            .expect("end");
                    }
                    (id, p)
                })
            });
            let producers: Vec<(String, ProducerIdAndEpoch)> = futures::future::join_all(runs)
                .await
                .into_iter()
                .map(|r| r.expect("producer task"))
                .collect();
            // The last ends' markers and Complete records are written in the background: wait
            // for them, so the reopen reads them from the log rather than finishing them.
            let deadline = Instant::now() + WAIT;
            while producers.iter().any(|(id, _)| {
                broker.describe_transaction(id).expect("known").state != TxnState::CompleteCommit
            }) {
                assert!(
                    Instant::now() < deadline,
                    "{durability}: ends never completed"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            broker.close().await.expect("close");
            producers
        };

        let broker = Broker::open(config()).await.expect("reopen");
        for (n, (id, p)) in (0..PRODUCERS).zip(&producers) {
            let described = broker.describe_transaction(id).expect("known");
            assert_eq!(
                described.state,
                TxnState::CompleteCommit,
                "{durability}: {id}"
            );
            assert_eq!(
                (described.producer_id, described.producer_epoch),
                (p.producer_id, p.epoch),
                "{durability}: {id}"
            );
            let rounds = u64::try_from(ROUNDS).expect("rounds");
            assert_eq!(
                broker.last_stable_offset("t", n).expect("lso"),
                2 * rounds,
                "{durability}: every record and marker settled in {n}"
            );
            let expected: Vec<String> = (0..ROUNDS).map(|r| format!("{n}-{r}")).collect();
            assert_eq!(
                values_of(&broker, "t", n, Isolation::ReadCommitted).await,
                expected,
                "{durability}"
            );
        }
        broker.close().await.expect("close");
    }
}
