//! Transactions through the Kafka door with librdkafka (the `rdkafka` crate): commit and abort
//! seen by read_committed and read_uncommitted consumers, fencing by a second producer with
//! the same `transactional.id`, a transaction aborted by the broker past its timeout, and a
//! consume-transform-produce application that crashes between produce and commit; and the
//! admin APIs (ListTransactions, DescribeTransactions, DescribeProducers) that find a stuck one.

mod kafka_support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use brook_broker::{ProduceRecord, TxnState};
use kafka_support::{receive, TestBroker, PATIENCE};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;

/// Runs librdkafka's blocking transaction calls off the async workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("blocking task")
}

fn txn_producer(tb: &TestBroker, id: &str, extra: &[(&str, &str)]) -> Arc<FutureProducer> {
    let mut settings = vec![("transactional.id", id)];
    settings.extend_from_slice(extra);
    Arc::new(tb.producer(&settings))
}

async fn init(p: &Arc<FutureProducer>) {
    let p = Arc::clone(p);
    blocking(move || p.init_transactions(PATIENCE))
        .await
        .expect("init_transactions");
}

async fn commit(p: &Arc<FutureProducer>) -> Result<(), KafkaError> {
    let p = Arc::clone(p);
    blocking(move || p.commit_transaction(PATIENCE)).await
}

async fn abort(p: &Arc<FutureProducer>) {
    let p = Arc::clone(p);
    blocking(move || p.abort_transaction(PATIENCE))
        .await
        .expect("abort_transaction");
}

/// Sends `value` to `topic`-`partition` and waits for its delivery.
async fn send(
    p: &FutureProducer,
    topic: &str,
    partition: i32,
    value: &str,
) -> Result<(i32, i64), KafkaError> {
    p.send(
        FutureRecord::<(), _>::to(topic)
            .partition(partition)
            .payload(value),
        PATIENCE,
    )
    .await
    .map(|d| (d.partition, d.offset))
    .map_err(|(e, _)| e)
}

/// Reads `topic` with `isolation` until `stop` has been seen `count` times; returns every
/// value read, in order per partition.
async fn read_until(
    tb: &TestBroker,
    topic: &str,
    isolation: &str,
    stop: &str,
    count: usize,
) -> Vec<(i32, i64, String)> {
    let consumer = tb.consumer(
        &format!("reader-{topic}-{isolation}"),
        &[("isolation.level", isolation)],
    );
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut got = Vec::new();
    let mut stops = 0;
    while stops < count {
        let message = receive(&consumer, 1).await.remove(0);
        let value = String::from_utf8(message.value.expect("a value")).expect("utf8");
        stops += usize::from(value == stop);
        got.push((message.partition, message.offset, value));
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_committed_sees_the_committed_transaction_and_read_uncommitted_sees_both() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tb = TestBroker::start(dir.path()).await;
    tb.create_topic("txn-mixed", 2).await;
    let p = txn_producer(&tb, "t-mixed", &[]);
    init(&p).await;
    for (round, prefix) in ["c", "a"].iter().enumerate() {
        p.begin_transaction().expect("begin");
        for i in 0..10 {
            send(&p, "txn-mixed", i % 2, &format!("{prefix}-{i}"))
                .await
                .expect("send");
        }
        if round == 0 {
            commit(&p).await.expect("commit");
        } else {
            abort(&p).await;
        }
    }
    p.begin_transaction().expect("begin");
    for partition in 0..2 {
        send(&p, "txn-mixed", partition, "end").await.expect("send");
    }
    commit(&p).await.expect("commit");

    let committed = read_until(&tb, "txn-mixed", "read_committed", "end", 2).await;
    let values: Vec<&str> = committed.iter().map(|(_, _, v)| v.as_str()).collect();
    assert_eq!(values.len(), 12, "{values:?}");
    assert!(
        values.iter().all(|v| v.starts_with("c-") || *v == "end"),
        "{values:?}"
    );

    let uncommitted = read_until(&tb, "txn-mixed", "read_uncommitted", "end", 2).await;
    let values: Vec<&str> = uncommitted.iter().map(|(_, _, v)| v.as_str()).collect();
    assert_eq!(values.len(), 22, "{values:?}");
    assert_eq!(values.iter().filter(|v| v.starts_with("a-")).count(), 10);

    // Each partition holds 5 + 5 + 1 records and 3 markers: the markers' offsets never reach
    // an application.
    for partition in 0..2u32 {
        let offsets: Vec<i64> = uncommitted
            .iter()
            .filter(|(p, _, _)| *p as u32 == partition)
            .map(|(_, o, _)| *o)
            .collect();
        assert_eq!(
            offsets,
            [0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 12],
            "partition {partition}"
        );
        let hw = tb
            .broker
            .describe_topic("txn-mixed")
            .expect("topic")
            .partitions[partition as usize]
            .high_watermark;
        assert_eq!(hw, 14);
        assert_eq!(
            tb.broker
                .last_stable_offset("txn-mixed", partition)
                .expect("lso"),
            14
        );
    }
    tb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_producer_with_the_same_transactional_id_fences_the_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tb = TestBroker::start(dir.path()).await;
    tb.create_topic("txn-fence", 1).await;
    let first = txn_producer(&tb, "t-fence", &[]);
    init(&first).await;
    first.begin_transaction().expect("begin");
    send(&first, "txn-fence", 0, "zombie").await.expect("send");

    let second = txn_producer(&tb, "t-fence", &[]);
    init(&second).await;
    let fenced = send(&first, "txn-fence", 0, "after").await;
    let code = fenced
        .as_ref()
        .err()
        .and_then(KafkaError::rdkafka_error_code);
    assert!(
        matches!(
            code,
            Some(
                RDKafkaErrorCode::Fenced
                    | RDKafkaErrorCode::ProducerFenced
                    | RDKafkaErrorCode::InvalidProducerEpoch
            )
        ),
        "the fenced producer's send: {fenced:?}"
    );
    assert!(
        commit(&first).await.is_err(),
        "the fenced producer cannot commit"
    );

    second.begin_transaction().expect("begin");
    send(&second, "txn-fence", 0, "kept").await.expect("send");
    commit(&second).await.expect("commit");
    let read = read_until(&tb, "txn-fence", "read_committed", "kept", 1).await;
    assert_eq!(
        read.len(),
        1,
        "the first producer's record was aborted: {read:?}"
    );
    tb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_aborts_a_transaction_left_open_past_its_timeout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tb = TestBroker::start_with(dir.path(), |config| {
        config.transactions.abort_check_ms = 50;
    })
    .await;
    tb.create_topic("txn-timeout", 1).await;
    let p = txn_producer(
        &tb,
        "t-timeout",
        &[
            ("transaction.timeout.ms", "1000"),
            ("message.timeout.ms", "1000"),
            // librdkafka wants its socket timeout within the transaction timeout.
            ("socket.timeout.ms", "1000"),
        ],
    );
    init(&p).await;
    p.begin_transaction().expect("begin");
    send(&p, "txn-timeout", 0, "forgotten").await.expect("send");
    assert_eq!(
        tb.broker.last_stable_offset("txn-timeout", 0).expect("lso"),
        0
    );
    let deadline = Instant::now() + PATIENCE;
    loop {
        let state = tb
            .broker
            .describe_transaction("t-timeout")
            .expect("known")
            .state;
        if state == TxnState::CompleteAbort {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still {state} after {PATIENCE:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        tb.broker.last_stable_offset("txn-timeout", 0).expect("lso"),
        2,
        "the record and its abort marker are settled"
    );
    assert!(
        commit(&p).await.is_err(),
        "a timed-out transaction cannot commit"
    );
    tb.stop().await;
}

/// One run of a consume-transform-produce application: reads `in`, writes `out-<value>` to
/// `out` and commits the input offsets in the same transaction, five records at a time, until
/// the input is exhausted. With `crash_after`, after that many transactions it writes the next
/// one's output and stops dead before committing (its producer is leaked, never closed).
async fn transform(tb: &TestBroker, crash_after: Option<usize>, input: i64) -> usize {
    let consumer: StreamConsumer = tb.consumer("ctp", &[("isolation.level", "read_committed")]);
    consumer.subscribe(&["ctp-in"]).expect("subscribe");
    let producer = txn_producer(tb, "ctp-app", &[]);
    init(&producer).await;
    let mut committed = 0;
    loop {
        let position = consumer
            .position()
            .ok()
            .and_then(|l| l.find_partition("ctp-in", 0).map(|p| p.offset()));
        if let Some(rdkafka::Offset::Offset(at)) = position {
            if at >= input {
                return committed;
            }
        }
        let batch = receive(&consumer, 5).await;
        producer.begin_transaction().expect("begin");
        for record in &batch {
            let value = String::from_utf8(record.value.clone().expect("value")).expect("utf8");
            send(&producer, "ctp-out", 0, &format!("out-{value}"))
                .await
                .expect("send");
        }
        if crash_after == Some(committed) {
            // Dead between produce and commit: nothing is ended, nothing closed.
            std::mem::forget(producer);
            return committed;
        }
        let offsets = consumer.position().expect("position");
        let group = consumer.group_metadata().expect("group metadata");
        let p = Arc::clone(&producer);
        blocking(move || p.send_offsets_to_transaction(&offsets, &group, PATIENCE))
            .await
            .expect("send_offsets_to_transaction");
        commit(&producer).await.expect("commit");
        committed += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consume_transform_produce_reprocesses_exactly_what_a_crash_left_uncommitted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tb = TestBroker::start(dir.path()).await;
    tb.create_topic("ctp-in", 1).await;
    tb.create_topic("ctp-out", 1).await;
    let input: Vec<ProduceRecord> = (0..30)
        .map(|i| ProduceRecord::value(format!("{i}")))
        .collect();
    tb.broker.produce("ctp-in", input).await.expect("input");

    assert_eq!(
        transform(&tb, Some(3), 30).await,
        3,
        "three transactions before the crash"
    );
    let committed = tb.broker.committed_offsets("ctp", &[]).expect("offsets");
    assert_eq!(
        committed[0].1.offset, 15,
        "the crashed transaction's offsets are not the group's"
    );
    assert_eq!(
        transform(&tb, None, 30).await,
        3,
        "the restart does the last 15 records"
    );

    let out = read_until(&tb, "ctp-out", "read_committed", "out-29", 1).await;
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (_, _, value) in &out {
        *seen.entry(value.clone()).or_default() += 1;
    }
    assert_eq!(seen.len(), 30, "{seen:?}");
    assert!(
        seen.values().all(|n| *n == 1),
        "each input exactly once: {seen:?}"
    );
    let uncommitted = read_until(&tb, "ctp-out", "read_uncommitted", "out-29", 1).await;
    assert_eq!(
        uncommitted.len(),
        35,
        "the crashed transaction's 5 records are in the log"
    );
    tb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_offsets_latest_under_read_committed_is_the_last_stable_offset() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tb = TestBroker::start(dir.path()).await;
    tb.create_topic("txn-lso", 1).await;
    tb.broker
        .produce("txn-lso", vec![ProduceRecord::value("plain")])
        .await
        .expect("plain");
    let p = txn_producer(&tb, "t-lso", &[]);
    init(&p).await;
    p.begin_transaction().expect("begin");
    send(&p, "txn-lso", 0, "open").await.expect("send");
    let watermarks = |isolation: &str| {
        let consumer = tb.consumer("lso-reader", &[("isolation.level", isolation)]);
        consumer
            .fetch_watermarks("txn-lso", 0, PATIENCE)
            .expect("watermarks")
    };
    assert_eq!(watermarks("read_committed"), (0, 1), "latest is the LSO");
    assert_eq!(
        watermarks("read_uncommitted"),
        (0, 2),
        "latest is the high watermark"
    );
    commit(&p).await.expect("commit");
    // EndTxn is answered once the commit is decided; the marker, which moves the LSO,
    // follows (as in Kafka).
    let deadline = Instant::now() + PATIENCE;
    while watermarks("read_committed") != (0, 3) {
        assert!(Instant::now() < deadline, "the LSO never passed the marker");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let consumer = tb.consumer("lso-all", &[("isolation.level", "read_committed")]);
    consumer.subscribe(&["txn-lso"]).expect("subscribe");
    let read = receive(&consumer, 2).await;
    assert_eq!(read[1].value.as_deref(), Some(&b"open"[..]));
    tb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_tools_see_an_open_transaction_over_the_kafka_wire() {
    use kafka_protocol::messages::describe_producers_request::TopicRequest;
    use kafka_protocol::messages::{
        ApiKey, DescribeProducersRequest, DescribeProducersResponse, DescribeTransactionsRequest,
        DescribeTransactionsResponse, ListTransactionsRequest, ListTransactionsResponse, TopicName,
        TransactionalId,
    };
    use kafka_protocol::protocol::StrBytes;
    use kafka_support::raw::Raw;

    const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    const TRANSACTIONAL_ID_NOT_FOUND: i16 = 105;
    let text = |s: &str| StrBytes::from_string(s.to_owned());
    let dir = tempfile::tempdir().expect("tempdir");
    let tb = TestBroker::start(dir.path()).await;
    tb.create_topic("txn-tools", 1).await;
    tb.broker
        .produce("txn-tools", vec![ProduceRecord::value("plain")])
        .await
        .expect("plain");
    let p = txn_producer(&tb, "t-tools", &[]);
    init(&p).await;
    p.begin_transaction().expect("begin");
    send(&p, "txn-tools", 0, "stuck").await.expect("send");
    let producer_id = tb
        .broker
        .describe_transaction("t-tools")
        .expect("known")
        .producer_id;
    let mut raw = Raw::connect(&tb).await;

    // ListTransactions (kafka-transactions.sh list): the open one, by state; unknown states
    // are named back.
    let mut request = ListTransactionsRequest::default();
    request.state_filters = vec![text("Ongoing"), text("Bogus")];
    let listed: ListTransactionsResponse = raw.call(ApiKey::ListTransactions, 1, &request).await;
    assert_eq!(listed.error_code, 0);
    assert_eq!(listed.unknown_state_filters, [text("Bogus")]);
    assert_eq!(listed.transaction_states.len(), 1, "{listed:?}");
    let entry = &listed.transaction_states[0];
    assert_eq!(entry.transactional_id.0.as_str(), "t-tools");
    assert_eq!(entry.producer_id.0, producer_id);
    assert_eq!(entry.transaction_state.as_str(), "Ongoing");

    // DescribeTransactions: its state, timeout, start and partitions; an unknown id is named.
    let mut request = DescribeTransactionsRequest::default();
    request.transactional_ids = vec![
        TransactionalId(text("t-tools")),
        TransactionalId(text("nobody")),
    ];
    let described: DescribeTransactionsResponse =
        raw.call(ApiKey::DescribeTransactions, 0, &request).await;
    let [open, unknown] = &described.transaction_states[..] else {
        panic!("two answers: {described:?}");
    };
    assert_eq!(open.error_code, 0);
    assert_eq!(open.transaction_state.as_str(), "Ongoing");
    assert_eq!(open.producer_id.0, producer_id);
    assert!(open.transaction_start_time_ms > 0, "{open:?}");
    assert!(open.transaction_timeout_ms > 0, "{open:?}");
    assert_eq!(open.topics.len(), 1);
    assert_eq!(open.topics[0].topic.0.as_str(), "txn-tools");
    assert_eq!(open.topics[0].partitions, [0]);
    assert_eq!(unknown.transactional_id.0.as_str(), "nobody");
    assert_eq!(unknown.error_code, TRANSACTIONAL_ID_NOT_FOUND);

    // DescribeProducers: the producer holding the partition's LSO back, and where its
    // transaction began; a partition that does not exist is refused on its own.
    async fn producers(raw: &mut Raw) -> DescribeProducersResponse {
        let mut topic = TopicRequest::default();
        topic.name = TopicName(StrBytes::from_static_str("txn-tools"));
        topic.partition_indexes = vec![0, 9];
        let mut request = DescribeProducersRequest::default();
        request.topics = vec![topic];
        raw.call(ApiKey::DescribeProducers, 0, &request).await
    }
    let answer = producers(&mut raw).await;
    let partitions = &answer.topics[0].partitions;
    assert_eq!(partitions[0].error_code, 0);
    let holder = partitions[0]
        .active_producers
        .iter()
        .find(|s| s.producer_id.0 == producer_id)
        .expect("the transactional producer");
    assert_eq!(
        holder.current_txn_start_offset, 1,
        "its transaction began at 1"
    );
    assert_eq!(partitions[1].error_code, UNKNOWN_TOPIC_OR_PARTITION);

    // Committed: nothing is ongoing, the producer no longer holds the partition back.
    commit(&p).await.expect("commit");
    let mut request = ListTransactionsRequest::default();
    request.state_filters = vec![text("Ongoing")];
    let listed: ListTransactionsResponse = raw.call(ApiKey::ListTransactions, 1, &request).await;
    assert!(listed.transaction_states.is_empty(), "{listed:?}");
    // The marker follows EndTxn's answer (see above): once it lands, nothing is held back.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let answer = producers(&mut raw).await;
        let holder = answer.topics[0].partitions[0]
            .active_producers
            .iter()
            .find(|s| s.producer_id.0 == producer_id)
            .expect("the transactional producer")
            .current_txn_start_offset;
        if holder == -1 {
            break;
        }
        assert_eq!(holder, 1, "still the transaction that began at 1");
        assert!(Instant::now() < deadline, "the marker never landed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tb.stop().await;
}
