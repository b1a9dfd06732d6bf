//! `brook txn list|describe|producers` run as the real binary against a gRPC door over a
//! broker holding one open transaction: a person finds the stuck transaction, what it holds
//! and the partition it holds back, in text and JSON; then sees it gone once it commits.

mod cli_support;

use brook::broker::{
    Broker, BrokerConfig, Durability, NewTopic, ProduceRecord, TopicPartition, TxnResult,
};
use brook::log::batch::{BatchBuilder, Compression, RecordRef};
use brook_server::{GrpcConfig, GrpcServer};
use cli_support::{brook_command, ok, run};
use serde_json::{json, Value};

async fn brook(server: &str, args: &[&str]) -> std::process::Output {
    let mut command = brook_command(args);
    command.arg("--server").arg(server);
    run(command, b"").await
}

fn parsed(output: std::process::Output) -> Value {
    serde_json::from_str(&ok(output)).expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brook_txn_finds_an_open_transaction_and_the_partition_it_holds_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = BrokerConfig::new(dir.path());
    config.log.durability = Durability::None;
    let broker = Broker::open(config).await.expect("broker");
    broker
        .create_topic(NewTopic::new("t", 1))
        .await
        .expect("topic");
    broker
        .produce("t", vec![ProduceRecord::value("before")])
        .await
        .expect("produce");
    let producer = broker
        .init_producer_id(Some("app"), 60_000, None)
        .await
        .expect("init producer id");
    broker
        .add_partitions_to_txn("app", producer, vec![TopicPartition::new("t", 0)])
        .await
        .expect("add partitions");
    let mut batch = BatchBuilder::new(Compression::None)
        .with_producer(producer.producer_id, producer.epoch, 0)
        .transactional();
    batch.push(RecordRef {
        key: None,
        value: Some(b"open"),
        headers: &[],
        timestamp: 1_700_000_000_000,
    });
    broker
        .produce_transactional_batch("app", "t", 0, batch.build().expect("batch"))
        .await
        .expect("transactional produce");
    let grpc = GrpcServer::start(
        broker.clone(),
        "127.0.0.1:0".parse().expect("address"),
        GrpcConfig::default(),
    )
    .await
    .expect("gRPC door");
    let url = format!("http://{}", grpc.local_addr());

    // list: the open transaction, as a table and as JSON; a state filter leaves it out.
    let table = ok(brook(&url, &["txn", "list"]).await);
    let header = table.lines().next().expect("header");
    assert!(
        header.contains("TRANSACTIONAL-ID") && header.contains("STATE"),
        "{table}"
    );
    let row = table.lines().nth(1).expect("one row");
    assert!(row.contains("app") && row.contains("Ongoing"), "{table}");
    let listed = parsed(brook(&url, &["txn", "list", "--json"]).await);
    assert_eq!(
        listed,
        json!([{"transactional_id": "app", "producer_id": producer.producer_id, "state": "Ongoing"}])
    );
    let committed = parsed(
        brook(
            &url,
            &["txn", "list", "--state", "CompleteCommit", "--json"],
        )
        .await,
    );
    assert_eq!(committed, json!([]));

    // describe: what it holds.
    let described = parsed(brook(&url, &["txn", "describe", "app", "--json"]).await);
    assert_eq!(described["state"], "Ongoing");
    assert_eq!(described["producer_id"], producer.producer_id);
    assert_eq!(described["timeout_ms"], 60_000);
    assert_eq!(
        described["partitions"],
        json!([{"topic": "t", "partition": 0}])
    );
    let text = ok(brook(&url, &["txn", "describe", "app"]).await);
    assert!(text.contains("state:            Ongoing"), "{text}");
    let unknown = brook(&url, &["txn", "describe", "nobody"]).await;
    assert_eq!(unknown.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        stderr.starts_with("error: ") && stderr.contains("nobody"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");

    // producers: the partition's LSO is held at the transaction's first record.
    let producers = parsed(brook(&url, &["txn", "producers", "t", "0", "--json"]).await);
    assert_eq!(producers["last_stable_offset"], 1);
    assert_eq!(producers["high_watermark"], 2);
    assert_eq!(
        producers["producers"][0]["producer_id"],
        producer.producer_id
    );
    assert_eq!(producers["producers"][0]["current_txn_start_offset"], 1);

    // Committed: no longer listed as ongoing, the partition no longer held back.
    broker
        .end_txn("app", producer, TxnResult::Commit)
        .await
        .expect("commit");
    let ongoing = parsed(brook(&url, &["txn", "list", "--state", "Ongoing", "--json"]).await);
    assert_eq!(ongoing, json!([]));
    let producers = parsed(brook(&url, &["txn", "producers", "t", "0", "--json"]).await);
    assert_eq!(
        producers["last_stable_offset"], 3,
        "the record and its commit marker"
    );
    assert_eq!(producers["high_watermark"], 3);
    assert_eq!(
        producers["producers"][0]["current_txn_start_offset"],
        Value::Null
    );
    drop(grpc);
    broker.close().await.expect("close");
}
