//! Damaged data is never served as good, on any door that decodes records: one flipped bit in
//! a closed segment (so no recovery scan at open sees it), and the embedded API, gRPC and HTTP each answer a read of the damaged batch
//! with a data-loss error naming topic, partition and offset (`BrokerError::Corrupt`, gRPC
//! `DATA_LOSS`, HTTP 500 `corrupt_data`), serve the records before it, and count the refusals
//! in `brook_partition_corrupt_reads_total`. (The Kafka door's twin is in the workspace's
//! `tests/kafka_wire.rs`.)

use std::path::{Path, PathBuf};
use std::time::Duration;

use brook_broker::{
    Broker, BrokerConfig, BrokerError, Durability, NewTopic, PartitionSubscribe, ProduceRecord,
    StartAt,
};
use brook_log::batch::header::BASE_OFFSET_AT;
use brook_log::batch::Batches;
use brook_proto::v1 as pb;
use brook_proto::v1::brook_client::BrookClient;
use brook_server::{GrpcConfig, GrpcServer, HttpConfig, HttpServer};
use futures::StreamExt;
use tonic::Code;

/// Records produced, one batch each, at offsets 0..RECORDS; three batches fill a segment.
const RECORDS: u64 = 12;
/// The batch whose bytes are damaged: the middle one of a closed segment.
const DAMAGED: u64 = 7;

fn any_port() -> std::net::SocketAddr {
    "127.0.0.1:0".parse().expect("address")
}

fn config(dir: &Path) -> BrokerConfig {
    let mut config = BrokerConfig::new(dir);
    config.log.durability = Durability::None;
    config.log.segment_bytes_max = 1024;
    config
}

/// The segment file of `t-0` holding `offset`, with where that batch starts and ends in it.
fn batch_at(dir: &Path, offset: u64) -> (PathBuf, usize, usize) {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(dir.join("t-0"))
        .expect("partition directory")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "log"))
        .collect();
    segments.sort();
    for path in segments {
        let bytes = std::fs::read(&path).expect("segment");
        for batch in Batches::new(&bytes) {
            let batch = batch.expect("a clean segment");
            if batch.header.base_offset == offset as i64 {
                return (path, batch.position, batch.position + batch.bytes.len());
            }
        }
    }
    panic!("no batch at offset {offset}");
}

/// A broker on `dir` whose topic `t` holds RECORDS one-record batches and whose batch
/// DAMAGED has one bit flipped at `within` bytes into the batch, written while it was closed.
async fn damaged(dir: &Path, within: impl Fn(usize) -> usize) -> Broker {
    {
        let broker = Broker::open(config(dir)).await.expect("open");
        broker
            .create_topic(NewTopic::new("t", 1))
            .await
            .expect("create");
        for i in 0..RECORDS {
            let value = format!("value {i} {}", "x".repeat(250));
            broker
                .produce("t", vec![ProduceRecord::value(value)])
                .await
                .expect("produce");
        }
        broker.close().await.expect("close");
    }
    let (path, start, end) = batch_at(dir, DAMAGED);
    let mut bytes = std::fs::read(&path).expect("read segment");
    bytes[start + within(end - start)] ^= 0x10;
    std::fs::write(&path, bytes).expect("write segment");
    Broker::open(config(dir)).await.expect("reopen")
}

/// One bit inside the record of the batch: the CRC-32C covers it.
fn in_the_record(len: usize) -> usize {
    len - 3
}

/// One bit of the batch's base offset, which the CRC does not cover: 7 becomes 23.
fn in_the_base_offset(_len: usize) -> usize {
    BASE_OFFSET_AT + 7
}

fn corrupt_at(err: &BrokerError) -> u64 {
    match err {
        BrokerError::Corrupt {
            topic,
            partition,
            offset,
            ..
        } => {
            assert_eq!((topic.as_str(), *partition), ("t", 0), "{err}");
            *offset
        }
        other => panic!("not a corruption error: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_api_serves_up_to_the_damage_and_refuses_it() {
    for damage in [in_the_record as fn(usize) -> usize, in_the_base_offset] {
        let dir = tempfile::tempdir().expect("tempdir");
        let broker = damaged(dir.path(), damage).await;
        // A consumer fetching on from the start reads every record before the damage, in
        // order, and then gets the error at the damaged batch, each time it asks.
        let mut offsets = Vec::new();
        let mut next = 0;
        let err = loop {
            match broker.fetch("t", 0, next, 1 << 20, Duration::ZERO).await {
                Ok(fetched) if fetched.is_empty() => break None,
                Ok(fetched) => {
                    offsets.extend(fetched.records().expect("decoded").iter().map(|r| r.offset));
                    assert!(fetched.next_offset() > next, "no progress at {next}");
                    next = fetched.next_offset();
                }
                Err(err) => break Some(err),
            }
        };
        assert_eq!(offsets, (0..DAMAGED).collect::<Vec<_>>());
        let Some(err) = err else {
            // Recovery found this damage itself (a base offset out of sequence) and fenced the
            // partition read-only at it: readable up to the damage, never past it.
            let partition = broker.describe_topic("t").expect("describe").partitions[0];
            assert_eq!(partition.high_watermark, DAMAGED, "{partition:?}");
            assert_ne!(partition.status, brook_broker::PartitionStatus::Online);
            broker.close().await.expect("close");
            continue;
        };
        assert_eq!(corrupt_at(&err), DAMAGED);
        assert!(err.to_string().contains("t-0"), "{err}");
        let again = broker
            .fetch("t", 0, DAMAGED, 1 << 20, Duration::ZERO)
            .await
            .expect_err("still not served");
        assert_eq!(corrupt_at(&again), DAMAGED);

        let mut records = broker
            .subscribe(PartitionSubscribe::new("t", 0, StartAt::Earliest))
            .await
            .expect("subscribe")
            .records();
        for offset in 0..DAMAGED {
            let record = records.next().await.expect("a record").expect("good");
            assert_eq!(record.offset, offset);
        }
        let err = records.next().await.expect("an item").expect_err("damage");
        assert_eq!(corrupt_at(&err), DAMAGED);
        let partition = broker.describe_topic("t").expect("describe").partitions[0];
        assert!(partition.corrupt_reads >= 3, "{partition:?}");
        broker.close().await.expect("close");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_and_http_answer_data_loss_naming_the_partition_and_count_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = damaged(dir.path(), in_the_record).await;
    let grpc = GrpcServer::start(broker.clone(), any_port(), GrpcConfig::default())
        .await
        .expect("gRPC door");
    let http = HttpServer::start(broker.clone(), any_port(), HttpConfig::default())
        .await
        .expect("HTTP door");
    let mut client = BrookClient::connect(format!("http://{}", grpc.local_addr()))
        .await
        .expect("gRPC client");

    let good = client
        .fetch(pb::FetchRequest {
            topic: "t".into(),
            partition: 0,
            offset: DAMAGED - 1,
            ..Default::default()
        })
        .await
        .expect("the good part")
        .into_inner();
    assert_eq!(good.records.len(), 1);
    assert_eq!(good.next_offset, DAMAGED);
    for format in [pb::RecordFormat::Records, pb::RecordFormat::RawBatches] {
        let status = client
            .fetch(pb::FetchRequest {
                topic: "t".into(),
                partition: 0,
                offset: DAMAGED,
                format: format as i32,
                ..Default::default()
            })
            .await
            .expect_err("the damaged batch");
        assert_eq!(status.code(), Code::DataLoss, "{status:?}");
        assert!(
            status.message().contains("t-0") && status.message().contains("offset 7"),
            "{status:?}"
        );
        assert!(!status.message().contains(&*dir.path().to_string_lossy()));
    }
    let mut stream = client
        .subscribe(pb::SubscribeRequest {
            target: Some(pb::subscribe_request::Target::Partition(
                pb::PartitionTarget {
                    topic: "t".into(),
                    partition: 0,
                    start: Some(pb::partition_target::Start::Offset(0)),
                },
            )),
            ..Default::default()
        })
        .await
        .expect("subscribe")
        .into_inner();
    let mut delivered = 0;
    let status = loop {
        match stream.next().await.expect("an item") {
            Ok(pb::SubscribeResponse {
                event: Some(pb::subscribe_response::Event::Records(event)),
            }) => delivered += event.records.len() as u64,
            Ok(other) => panic!("{other:?}"),
            Err(status) => break status,
        }
    };
    assert_eq!(delivered, DAMAGED);
    assert_eq!(status.code(), Code::DataLoss, "{status:?}");

    let base = format!("http://{}", http.local_addr());
    let http_client = reqwest::Client::new();
    let answer = http_client
        .get(format!(
            "{base}/v1/topics/t/partitions/0/records?offset={DAMAGED}"
        ))
        .send()
        .await
        .expect("HTTP fetch");
    assert_eq!(answer.status(), reqwest::StatusCode::INTERNAL_SERVER_ERROR);
    let body: serde_json::Value = answer.json().await.expect("JSON error");
    assert_eq!(body["error_code"], "corrupt_data", "{body}");
    let message = body["message"].as_str().expect("message");
    assert!(
        message.contains("t-0") && message.contains("offset 7"),
        "{message}"
    );

    let metrics = http_client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let count: u64 = metrics
        .lines()
        .find_map(|line| {
            line.strip_prefix(r#"brook_partition_corrupt_reads_total{topic="t",partition="0"} "#)
        })
        .unwrap_or_else(|| panic!("no corrupt reads counted in {metrics}"))
        .parse()
        .expect("a count");
    assert!(count >= 4, "{count}");

    grpc.stop().await.expect("stop gRPC");
    http.stop().await.expect("stop HTTP");
    broker.close().await.expect("close");
}
