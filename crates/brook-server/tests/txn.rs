//! Transactions at brook's own doors, end to end over real sockets: atomic writes across topics
//! with a group's offsets (gRPC `ProduceAtomic`, HTTP `POST /v1/transactions`), all or nothing
//! under concurrent readers; read committed by default with read uncommitted on request; the
//! coordinator's and partitions' views (ListTransactions, DescribeTransaction,
//! DescribeProducers).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use brook_broker::{
    Broker, BrokerConfig, Durability, NewTopic, ProduceRecord, ProducerIdAndEpoch, TopicPartition,
    TxnResult,
};
use brook_log::batch::{BatchBuilder, Compression, RecordRef};
use brook_proto::v1 as pb;
use brook_proto::v1::brook_client::BrookClient;
use brook_server::{GrpcConfig, GrpcServer, HttpConfig, HttpServer};
use futures::StreamExt;
use serde_json::{json, Value};
use tonic::transport::Channel;
use tonic::Code;

/// Long enough for anything that should happen "at once" on a loaded 2-core machine.
const PATIENCE: Duration = Duration::from_secs(10);

struct Doors {
    broker: Broker,
    grpc: BrookClient<Channel>,
    http: reqwest::Client,
    base: String,
    _servers: (GrpcServer, HttpServer),
    _dir: tempfile::TempDir,
}

/// A broker (automatic topic creation off) behind a gRPC and an HTTP door.
async fn doors() -> Doors {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = BrokerConfig::new(dir.path());
    config.auto_create_topics = false;
    config.log.durability = Durability::None;
    let broker = Broker::open(config).await.expect("open broker");
    let addr = "127.0.0.1:0".parse().expect("address");
    let grpc = GrpcServer::start(broker.clone(), addr, GrpcConfig::default())
        .await
        .expect("gRPC door");
    let http = HttpServer::start(broker.clone(), addr, HttpConfig::default())
        .await
        .expect("HTTP door");
    let client = BrookClient::connect(format!("http://{}", grpc.local_addr()))
        .await
        .expect("connect");
    let base = format!("http://{}", http.local_addr());
    Doors {
        broker,
        grpc: client,
        http: reqwest::Client::new(),
        base,
        _servers: (grpc, http),
        _dir: dir,
    }
}

impl Doors {
    async fn create(&self, topic: &str, partitions: u32) {
        self.broker
            .create_topic(NewTopic::new(topic, partitions))
            .await
            .expect("create topic");
    }

    /// Every value of `topic`/`partition` a gRPC fetch from 0 returns.
    async fn values(&self, topic: &str, partition: u32, isolation: pb::Isolation) -> Vec<String> {
        let mut client = self.grpc.clone();
        let mut values = Vec::new();
        let mut offset = 0;
        loop {
            let fetched = client
                .fetch(pb::FetchRequest {
                    topic: topic.into(),
                    partition,
                    offset,
                    isolation: isolation.into(),
                    ..Default::default()
                })
                .await
                .expect("fetch")
                .into_inner();
            if fetched.records.is_empty() {
                return values;
            }
            for r in &fetched.records {
                values.push(
                    String::from_utf8(r.value.clone().expect("value").to_vec()).expect("utf8"),
                );
            }
            offset = fetched.next_offset;
        }
    }

    async fn get(&self, path: &str) -> (reqwest::StatusCode, Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("GET");
        let status = response.status();
        (status, response.json().await.expect("JSON"))
    }

    async fn post(&self, path: &str, body: Value) -> (reqwest::StatusCode, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .expect("POST");
        let status = response.status();
        (status, response.json().await.expect("JSON"))
    }
}

fn record(value: &str, partition: u32) -> pb::ProducerRecord {
    pb::ProducerRecord {
        value: Some(value.as_bytes().to_vec().into()),
        partition: Some(partition),
        ..Default::default()
    }
}

fn commit(topic: &str, partition: u32, offset: u64) -> pb::OffsetCommit {
    pb::OffsetCommit {
        topic: topic.into(),
        partition,
        offset,
        metadata: String::new(),
    }
}

/// The group's committed offset of `topic`-0, as the gRPC door reads it.
async fn committed(client: &mut BrookClient<Channel>, group: &str, topic: &str) -> Option<u64> {
    client
        .fetch_offsets(pb::FetchOffsetsRequest {
            group_id: group.into(),
            partitions: vec![pb::TopicPartitions {
                topic: topic.into(),
                partitions: vec![0],
            }],
        })
        .await
        .expect("fetch offsets")
        .into_inner()
        .offsets
        .into_iter()
        .find(|o| o.topic == topic && o.partition == 0)
        .map(|o| o.offset)
}

/// A transactional batch of `values` from `producer`, starting at sequence `seq`.
fn txn_batch(producer: ProducerIdAndEpoch, seq: i32, values: &[&str]) -> bytes::BytesMut {
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

#[tokio::test]
async fn grpc_atomic_write_spans_topics_and_commits_offsets_with_them() {
    let doors = doors().await;
    doors.create("in", 1).await;
    doors.create("out-a", 2).await;
    doors.create("out-b", 1).await;
    let mut client = doors.grpc.clone();

    let written = client
        .produce_atomic(pb::ProduceAtomicRequest {
            topics: vec![
                pb::TopicRecords {
                    topic: "out-a".into(),
                    records: vec![record("a0", 0), record("a1", 1), record("a2", 1)],
                },
                pb::TopicRecords {
                    topic: "out-b".into(),
                    records: vec![record("b0", 0)],
                },
            ],
            offsets: vec![pb::CommitOffsetsRequest {
                group_id: "g".into(),
                offsets: vec![commit("in", 0, 7)],
            }],
        })
        .await
        .expect("produce atomic")
        .into_inner();
    let positions: Vec<(String, Vec<(u32, u64)>)> = written
        .topics
        .iter()
        .map(|t| {
            (
                t.topic.clone(),
                t.records.iter().map(|r| (r.partition, r.offset)).collect(),
            )
        })
        .collect();
    assert_eq!(
        positions,
        [
            ("out-a".to_owned(), vec![(0, 0), (1, 0), (1, 1)]),
            ("out-b".to_owned(), vec![(0, 0)]),
        ]
    );
    // Read committed (the default) sees it all, and never the transaction markers.
    let unspecified = pb::Isolation::Unspecified;
    assert_eq!(doors.values("out-a", 0, unspecified).await, ["a0"]);
    assert_eq!(doors.values("out-a", 1, unspecified).await, ["a1", "a2"]);
    assert_eq!(doors.values("out-b", 0, unspecified).await, ["b0"]);
    assert_eq!(committed(&mut client, "g", "in").await, Some(7));

    // The markers take offsets: the partition's end is past the records, and its last stable
    // offset with it.
    let producers = client
        .describe_producers(pb::DescribeProducersRequest {
            topic: "out-a".into(),
            partition: 1,
        })
        .await
        .expect("describe producers")
        .into_inner();
    assert_eq!(producers.high_watermark, 3, "two records and a marker");
    assert_eq!(producers.last_stable_offset, 3);
    assert_eq!(producers.producers.len(), 1, "{producers:?}");
    assert_eq!(producers.producers[0].current_txn_start_offset, None);

    // A next write comes after the markers, and a raw fetch hands out no control batch.
    let raw = client
        .fetch(pb::FetchRequest {
            topic: "out-a".into(),
            partition: 1,
            format: pb::RecordFormat::RawBatches.into(),
            ..Default::default()
        })
        .await
        .expect("raw fetch")
        .into_inner();
    let mut batches = 0;
    for batch in brook_log::batch::Batches::new(&raw.raw_batches) {
        let batch = batch.expect("batch");
        assert!(!batch.header.is_control(), "a control batch was handed out");
        batches += 1;
    }
    assert_eq!(batches, 1);
    assert_eq!(raw.next_offset, 3, "the read skips the marker");

    // A write that fails its checks changes nothing: neither topic, nor the group.
    let refused = client
        .produce_atomic(pb::ProduceAtomicRequest {
            topics: vec![
                pb::TopicRecords {
                    topic: "out-b".into(),
                    records: vec![record("never", 0)],
                },
                pb::TopicRecords {
                    topic: "missing".into(),
                    records: vec![record("never", 0)],
                },
            ],
            offsets: vec![pb::CommitOffsetsRequest {
                group_id: "g".into(),
                offsets: vec![commit("in", 0, 9)],
            }],
        })
        .await
        .expect_err("a missing topic is refused");
    assert_eq!(refused.code(), Code::NotFound, "{refused:?}");
    assert_eq!(
        doors
            .values("out-b", 0, pb::Isolation::ReadUncommitted)
            .await,
        ["b0"]
    );
    assert_eq!(committed(&mut client, "g", "in").await, Some(7));
    let bad_partition = client
        .produce_atomic(pb::ProduceAtomicRequest {
            topics: vec![
                pb::TopicRecords {
                    topic: "out-a".into(),
                    records: vec![record("never", 0)],
                },
                pb::TopicRecords {
                    topic: "out-b".into(),
                    records: vec![record("never", 5)],
                },
            ],
            offsets: vec![],
        })
        .await
        .expect_err("a partition past the topic's is refused");
    assert_ne!(bad_partition.code(), Code::Ok);
    assert_eq!(
        doors
            .values("out-a", 0, pb::Isolation::ReadUncommitted)
            .await,
        ["a0"]
    );

    // The coordinator lists brook's own atomic writes as internal and complete.
    let listed = client
        .list_transactions(pb::ListTransactionsRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert!(
        listed
            .transactions
            .iter()
            .all(|t| t.state != "Ongoing" && t.state != "PrepareCommit"),
        "{listed:?}"
    );
    let unknown_state = client
        .list_transactions(pb::ListTransactionsRequest {
            states: vec!["Pending".into()],
            ..Default::default()
        })
        .await
        .expect_err("an unknown state");
    assert_eq!(unknown_state.code(), Code::InvalidArgument);
    doors.broker.close().await.expect("close");
}

/// Writers make atomic writes of ten records to each of two topics while readers fetch both
/// (read committed): a reader sees a write's records in one topic only once it is committed,
/// so its records in the other topic are then there for the reading too, and never a part
/// of a write without the whole (in each partition the write's records sit together).
#[tokio::test]
async fn readers_see_atomic_writes_whole_or_not_at_all() {
    const WRITES: usize = 40;
    const PER_TOPIC: usize = 10;
    let doors = doors().await;
    doors.create("x", 1).await;
    doors.create("y", 1).await;

    let writer = {
        let mut client = doors.grpc.clone();
        tokio::spawn(async move {
            for w in 0..WRITES {
                let records = |topic: &str| -> Vec<pb::ProducerRecord> {
                    (0..PER_TOPIC)
                        .map(|i| record(&format!("{topic}-{w}-{i}"), 0))
                        .collect()
                };
                client
                    .produce_atomic(pb::ProduceAtomicRequest {
                        topics: vec![
                            pb::TopicRecords {
                                topic: "x".into(),
                                records: records("x"),
                            },
                            pb::TopicRecords {
                                topic: "y".into(),
                                records: records("y"),
                            },
                        ],
                        offsets: vec![pb::CommitOffsetsRequest {
                            group_id: "g".into(),
                            offsets: vec![commit("x", 0, w as u64 + 1)],
                        }],
                    })
                    .await
                    .expect("atomic write");
            }
        })
    };

    // Parses "topic-write-index" values.
    fn parse(value: &str) -> (usize, usize) {
        let mut parts = value.split('-').skip(1);
        let w = parts.next().and_then(|p| p.parse().ok()).expect("write");
        let i = parts.next().and_then(|p| p.parse().ok()).expect("index");
        (w, i)
    }

    let mut reader = doors.grpc.clone();
    let mut seen: BTreeMap<&str, Vec<(usize, usize)>> = BTreeMap::new();
    let mut offsets: BTreeMap<&str, u64> = BTreeMap::new();
    let deadline = Instant::now() + PATIENCE * 3;
    let mut rounds = 0;
    while seen.get("x").map_or(0, Vec::len) < WRITES * PER_TOPIC
        || seen.get("y").map_or(0, Vec::len) < WRITES * PER_TOPIC
    {
        assert!(Instant::now() < deadline, "the writes never all showed");
        rounds += 1;
        for topic in ["x", "y"] {
            let offset = offsets.entry(topic).or_default();
            let fetched = reader
                .fetch(pb::FetchRequest {
                    topic: topic.into(),
                    partition: 0,
                    offset: *offset,
                    max_wait_ms: 5,
                    ..Default::default()
                })
                .await
                .expect("fetch")
                .into_inner();
            assert!(
                fetched.next_offset <= fetched.last_stable_offset || fetched.records.is_empty(),
                "read past the last stable offset"
            );
            for r in &fetched.records {
                let value =
                    String::from_utf8(r.value.clone().expect("value").to_vec()).expect("utf8");
                seen.entry(topic).or_default().push(parse(&value));
            }
            *offset = fetched.next_offset.max(*offset);
        }
        // Whatever a reader saw of x, y's records of the same writes are committed: a read
        // committed fetch of y from its start finds them (possibly after more reads).
        let x_writes = seen.get("x").map_or(0, |v| v.len() / PER_TOPIC);
        let y_all = doors.values("y", 0, pb::Isolation::ReadCommitted).await;
        assert!(
            y_all.len() >= x_writes * PER_TOPIC,
            "round {rounds}: x showed {x_writes} writes, y only {} records",
            y_all.len()
        );
    }
    writer.await.expect("writer");
    for topic in ["x", "y"] {
        let got = &seen[topic];
        let want: Vec<(usize, usize)> = (0..WRITES)
            .flat_map(|w| (0..PER_TOPIC).map(move |i| (w, i)))
            .collect();
        assert_eq!(got, &want, "{topic}: every record once, in order");
    }
    let mut client = doors.grpc.clone();
    assert_eq!(committed(&mut client, "g", "x").await, Some(WRITES as u64));
    assert!(rounds > 1, "the readers ran alongside the writer");
    doors.broker.close().await.expect("close");
}

/// A Kafka client's open transaction (driven here through the coordinator's calls, as the Kafka
/// door drives them) is invisible to read committed readers on gRPC and HTTP until it commits;
/// read uncommitted shows it at once; an aborted one never shows to read committed readers.
#[tokio::test]
async fn open_transactions_show_only_to_read_uncommitted_readers() {
    let doors = doors().await;
    doors.create("t", 1).await;
    let broker = &doors.broker;
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
    broker
        .produce_transactional_batch("app", "t", 0, txn_batch(producer, 0, &["open"]))
        .await
        .expect("transactional produce");
    broker
        .produce("t", vec![ProduceRecord::value("after")])
        .await
        .expect("produce");

    // gRPC Fetch.
    assert_eq!(
        doors.values("t", 0, pb::Isolation::Unspecified).await,
        ["before"]
    );
    assert_eq!(
        doors.values("t", 0, pb::Isolation::ReadUncommitted).await,
        ["before", "open", "after"]
    );
    // HTTP fetch.
    let (status, committed) = doors
        .get("/v1/topics/t/partitions/0/records?offset=0")
        .await;
    assert_eq!(status, 200, "{committed}");
    assert_eq!(committed["last_stable_offset"], 1);
    assert_eq!(committed["records"].as_array().expect("records").len(), 1);
    let (_, uncommitted) = doors
        .get("/v1/topics/t/partitions/0/records?offset=0&isolation=read_uncommitted")
        .await;
    assert_eq!(uncommitted["records"].as_array().expect("records").len(), 3);
    let (status, bad) = doors
        .get("/v1/topics/t/partitions/0/records?isolation=serializable")
        .await;
    assert_eq!(status, 400, "{bad}");

    // The views of the open transaction.
    let (status, listed) = doors.get("/v1/transactions?state=Ongoing").await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["transactions"][0]["transactional_id"], "app");
    let (_, described) = doors.get("/v1/transactions/app").await;
    assert_eq!(described["state"], "Ongoing");
    assert_eq!(
        described["partitions"],
        json!([{"topic": "t", "partition": 0}])
    );
    let (_, producers) = doors.get("/v1/topics/t/partitions/0/producers").await;
    assert_eq!(producers["last_stable_offset"], 1);
    assert_eq!(producers["high_watermark"], 3);
    assert_eq!(producers["producers"][0]["current_txn_start_offset"], 1);
    let (status, _) = doors.get("/v1/transactions/nobody").await;
    assert_eq!(status, 404);
    let mut client = doors.grpc.clone();
    let described = client
        .describe_transaction(pb::DescribeTransactionRequest {
            transactional_id: "app".into(),
        })
        .await
        .expect("describe")
        .into_inner();
    assert_eq!(described.state, "Ongoing");
    assert_eq!(described.producer_id, producer.producer_id);
    assert!(!described.internal);

    // A read committed gRPC subscriber is held at the open transaction, then woken by its commit.
    let mut stream = client
        .subscribe(pb::SubscribeRequest {
            target: Some(pb::subscribe_request::Target::Partition(
                pb::PartitionTarget {
                    topic: "t".into(),
                    partition: 0,
                    start: Some(pb::partition_target::Start::Offset(1)),
                },
            )),
            ..Default::default()
        })
        .await
        .expect("subscribe")
        .into_inner();
    let early = tokio::time::timeout(Duration::from_millis(300), stream.next()).await;
    assert!(
        early.is_err(),
        "nothing is stable past the open transaction"
    );
    broker
        .end_txn("app", producer, TxnResult::Commit)
        .await
        .expect("commit");
    let mut got = Vec::new();
    while got.len() < 2 {
        let event = tokio::time::timeout(PATIENCE, stream.next())
            .await
            .expect("woken by the commit")
            .expect("an event")
            .expect("not an error");
        if let Some(pb::subscribe_response::Event::Records(records)) = event.event {
            for r in records.records {
                got.push(String::from_utf8(r.value.expect("value").to_vec()).expect("utf8"));
            }
        }
    }
    assert_eq!(got, ["open", "after"]);

    // An aborted transaction never shows to read committed readers; its offsets stay taken.
    broker
        .add_partitions_to_txn("app", producer, vec![TopicPartition::new("t", 0)])
        .await
        .expect("add partitions");
    broker
        .produce_transactional_batch("app", "t", 0, txn_batch(producer, 1, &["aborted"]))
        .await
        .expect("transactional produce");
    broker
        .end_txn("app", producer, TxnResult::Abort)
        .await
        .expect("abort");
    assert_eq!(
        doors.values("t", 0, pb::Isolation::ReadCommitted).await,
        ["before", "open", "after"]
    );
    assert_eq!(
        doors.values("t", 0, pb::Isolation::ReadUncommitted).await,
        ["before", "open", "after", "aborted"]
    );
    doors.broker.close().await.expect("close");
}

#[tokio::test]
async fn http_atomic_write_spans_topics_and_commits_offsets_with_them() {
    let doors = doors().await;
    doors.create("orders", 1).await;
    doors.create("audit", 1).await;

    let (status, written) = doors
        .post(
            "/v1/transactions",
            json!({
                // Values are JSON text by default; "text" stores the strings themselves.
                "value_encoding": "text",
                "topics": [
                    {"topic": "orders", "records": [{"key": "k", "value": "{\"n\": 1}"}]},
                    {"topic": "audit", "records": [{"value": "one"}, {"value": "two"}]},
                ],
                "offsets": [{"group": "billing", "offsets": [
                    {"topic": "orders", "partition": 0, "offset": 4},
                ]}],
            }),
        )
        .await;
    assert_eq!(status, 200, "{written}");
    assert_eq!(written["topics"][0]["topic"], "orders");
    assert_eq!(written["topics"][1]["offsets"][1]["offset"], 1);
    assert_eq!(
        doors.values("audit", 0, pb::Isolation::Unspecified).await,
        ["one", "two"]
    );
    let (_, offsets) = doors.get("/v1/groups/billing").await;
    assert!(
        offsets.to_string().contains("\"committed_offset\":4"),
        "{offsets}"
    );

    // Refused whole: one topic missing; nothing written, the group unchanged.
    let (status, refused) = doors
        .post(
            "/v1/transactions",
            json!({
                "topics": [
                    {"topic": "audit", "records": [{"value": "never"}]},
                    {"topic": "nope", "records": [{"value": "never"}]},
                ],
                "offsets": [{"group": "billing", "offsets": [
                    {"topic": "orders", "partition": 0, "offset": 9},
                ]}],
            }),
        )
        .await;
    assert_eq!(status, 404, "{refused}");
    assert_eq!(
        doors
            .values("audit", 0, pb::Isolation::ReadUncommitted)
            .await,
        ["one", "two"]
    );
    let (_, offsets) = doors.get("/v1/groups/billing").await;
    assert!(
        offsets.to_string().contains("\"committed_offset\":4"),
        "{offsets}"
    );
    let (status, empty) = doors.post("/v1/transactions", json!({})).await;
    assert_eq!(status, 400, "{empty}");
    doors.broker.close().await.expect("close");
}
