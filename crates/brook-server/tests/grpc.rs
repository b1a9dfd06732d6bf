//! The gRPC door end to end: a real broker, a real server on 127.0.0.1:0, and the generated
//! tonic client from brook-proto over a real socket.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use brook_broker::{Broker, BrokerConfig, Durability};
use brook_log::batch::{BatchBuilder, Compression, RecordRef};
use brook_proto::v1 as pb;
use brook_proto::v1::brook_client::BrookClient;
use brook_server::{GrpcConfig, GrpcServer};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use tonic::transport::Channel;
use tonic::Code;

/// Long enough for anything that should happen "at once" on a loaded 2-core machine.
const PATIENCE: Duration = Duration::from_secs(10);

struct Harness {
    broker: Broker,
    server: GrpcServer,
    client: BrookClient<Channel>,
    _dir: Option<tempfile::TempDir>,
}

impl Harness {
    /// An ephemeral broker (automatic topic creation on) behind a default gRPC door.
    async fn start() -> Self {
        let broker = Broker::ephemeral().await.expect("ephemeral broker");
        Self::serve(broker, GrpcConfig::default(), None).await
    }

    /// A broker with automatic topic creation off, behind a door with `grpc` settings.
    async fn strict(grpc: GrpcConfig) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = BrokerConfig::new(dir.path());
        config.auto_create_topics = false;
        config.log.durability = Durability::None;
        let broker = Broker::open(config).await.expect("open broker");
        Self::serve(broker, grpc, Some(dir)).await
    }

    async fn serve(broker: Broker, grpc: GrpcConfig, dir: Option<tempfile::TempDir>) -> Self {
        let addr = "127.0.0.1:0".parse().expect("address");
        let server = GrpcServer::start(broker.clone(), addr, grpc)
            .await
            .expect("start gRPC door");
        let client = connect(&server).await;
        Self {
            broker,
            server,
            client,
            _dir: dir,
        }
    }

    /// Sends `requests` on one `ProduceStream` and collects every answer until the server
    /// ends the stream.
    async fn stream_all(
        &mut self,
        requests: impl futures::Stream<Item = pb::ProduceStreamRequest> + Send + 'static,
    ) -> Vec<Result<pb::ProduceStreamResponse, tonic::Status>> {
        self.client
            .produce_stream(requests)
            .await
            .expect("open")
            .into_inner()
            .collect()
            .await
    }

    async fn create(&mut self, topic: &str, partitions: u32) -> pb::TopicDescription {
        self.client
            .create_topic(pb::CreateTopicRequest {
                topic: topic.into(),
                partitions,
                ..Default::default()
            })
            .await
            .expect("create topic")
            .into_inner()
            .topic
            .expect("description")
    }

    async fn produce(
        &mut self,
        topic: &str,
        records: Vec<pb::ProducerRecord>,
    ) -> pb::ProduceResponse {
        self.client
            .produce(pb::ProduceRequest {
                topic: topic.into(),
                records,
                raw_batch: None,
            })
            .await
            .expect("produce")
            .into_inner()
    }

    async fn fetch(
        &mut self,
        request: pb::FetchRequest,
    ) -> Result<pb::FetchResponse, tonic::Status> {
        self.client.fetch(request).await.map(|r| r.into_inner())
    }

    async fn subscribe(
        &mut self,
        request: pb::SubscribeRequest,
    ) -> tonic::Streaming<pb::SubscribeResponse> {
        self.client
            .subscribe(request)
            .await
            .expect("subscribe")
            .into_inner()
    }
}

async fn channel(server: &GrpcServer) -> Channel {
    Channel::from_shared(format!("http://{}", server.local_addr()))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect")
}

async fn connect(server: &GrpcServer) -> BrookClient<Channel> {
    BrookClient::new(channel(server).await)
}

fn value(text: &str) -> pb::ProducerRecord {
    pb::ProducerRecord {
        value: Some(Bytes::copy_from_slice(text.as_bytes())),
        ..Default::default()
    }
}

fn to_partition(partition: u32, text: &str) -> pb::ProducerRecord {
    pb::ProducerRecord {
        partition: Some(partition),
        ..value(text)
    }
}

fn fetch_request(topic: &str, partition: u32, offset: u64) -> pb::FetchRequest {
    pb::FetchRequest {
        topic: topic.into(),
        partition,
        offset,
        ..Default::default()
    }
}

fn from_offset(topic: &str, partition: u32, offset: u64) -> pb::SubscribeRequest {
    pb::SubscribeRequest {
        target: Some(pb::subscribe_request::Target::Partition(
            pb::PartitionTarget {
                topic: topic.into(),
                partition,
                start: Some(pb::partition_target::Start::Offset(offset)),
            },
        )),
        ..Default::default()
    }
}

fn group(group_id: &str, topics: &[&str]) -> pb::SubscribeRequest {
    pb::SubscribeRequest {
        target: Some(pb::subscribe_request::Target::Group(pb::GroupTarget {
            group_id: group_id.into(),
            topics: topics.iter().map(|t| t.to_string()).collect(),
            reset: pb::StartPosition::Earliest.into(),
        })),
        ..Default::default()
    }
}

fn values(records: &[pb::ConsumerRecord]) -> Vec<String> {
    records
        .iter()
        .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned())
        .collect()
}

/// The next item of `stream`, failing the test if none comes within [`PATIENCE`].
async fn next<T>(stream: &mut (impl Stream<Item = T> + Unpin)) -> T {
    tokio::time::timeout(PATIENCE, stream.next())
        .await
        .expect("a message within the patience window")
        .expect("the stream is still open")
}

fn records_event(message: Result<pb::SubscribeResponse, tonic::Status>) -> pb::RecordsEvent {
    match message.expect("a message, not an error").event {
        Some(pb::subscribe_response::Event::Records(records)) => records,
        other => panic!("expected records, got {other:?}"),
    }
}

/// A valid RecordBatch v2 of `texts`, as a client that builds its own batches would send.
fn raw_batch(texts: &[&str]) -> Bytes {
    let mut builder = BatchBuilder::new(Compression::None);
    for (i, text) in texts.iter().enumerate() {
        builder.push(RecordRef {
            key: None,
            value: Some(text.as_bytes()),
            headers: &[],
            timestamp: 1_700_000_000_000 + i as i64,
        });
    }
    builder.build().expect("build batch").freeze()
}

#[tokio::test]
async fn admin_calls_round_trip() {
    let mut h = Harness::start().await;
    let created = h
        .client
        .create_topic(pb::CreateTopicRequest {
            topic: "orders".into(),
            partitions: 3,
            config: Some(pb::TopicConfig {
                retention_ms_max: Some(-1),
                ..Default::default()
            }),
            if_not_exists: false,
            configs: Default::default(),
        })
        .await
        .expect("create")
        .into_inner()
        .topic
        .expect("description");
    assert_eq!(created.name, "orders");
    assert_eq!(created.partitions.len(), 3);
    assert_eq!(created.topic_id.len(), 32, "{}", created.topic_id);
    let config = created.config.expect("effective config");
    assert_eq!(config.retention_ms_max, Some(-1), "retention switched off");
    assert!(config.segment_bytes_max.is_some_and(|b| b > 0));

    let again = pb::CreateTopicRequest {
        topic: "orders".into(),
        partitions: 3,
        ..Default::default()
    };
    let err = h
        .client
        .create_topic(again.clone())
        .await
        .expect_err("exists");
    assert_eq!(err.code(), Code::AlreadyExists, "{err}");
    let same = h
        .client
        .create_topic(pb::CreateTopicRequest {
            if_not_exists: true,
            ..again
        })
        .await
        .expect("if_not_exists")
        .into_inner();
    assert_eq!(same.topic.expect("topic").topic_id, created.topic_id);

    h.produce("orders", vec![to_partition(1, "a"), to_partition(1, "b")])
        .await;
    let listed = h
        .client
        .list_topics(pb::ListTopicsRequest {})
        .await
        .expect("list");
    let listed = listed.into_inner().topics;
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].name.as_str(), listed[0].partition_count),
        ("orders", 3)
    );
    let described = h
        .client
        .describe_topic(pb::DescribeTopicRequest {
            topic: "orders".into(),
        })
        .await
        .expect("describe")
        .into_inner()
        .topic
        .expect("topic");
    let p1 = &described.partitions[1];
    assert_eq!(
        (p1.partition, p1.log_start_offset, p1.high_watermark),
        (1, 0, 2)
    );
    assert!(p1.size_bytes > 0 && p1.segment_count >= 1);

    // Groups and offsets.
    h.client
        .commit_offsets(pb::CommitOffsetsRequest {
            group_id: "billing".into(),
            offsets: vec![pb::OffsetCommit {
                topic: "orders".into(),
                partition: 1,
                offset: 1,
                metadata: "after a".into(),
            }],
        })
        .await
        .expect("commit");
    let fetched = h
        .client
        .fetch_offsets(pb::FetchOffsetsRequest {
            group_id: "billing".into(),
            partitions: vec![],
        })
        .await
        .expect("fetch offsets")
        .into_inner()
        .offsets;
    assert_eq!(fetched.len(), 1);
    assert_eq!((fetched[0].partition, fetched[0].offset), (1, 1));
    assert_eq!(fetched[0].metadata, "after a");
    assert!(fetched[0].commit_timestamp_ms > 0);

    let groups = h
        .client
        .list_groups(pb::ListGroupsRequest {})
        .await
        .expect("groups");
    let groups = groups.into_inner().groups;
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].group_id, "billing");
    assert_eq!(groups[0].state(), pb::GroupState::Empty);
    let described = h
        .client
        .describe_group(pb::DescribeGroupRequest {
            group_id: "billing".into(),
        })
        .await
        .expect("describe group")
        .into_inner();
    let lag: Vec<_> = described
        .partitions
        .iter()
        .map(|p| (p.partition, p.committed_offset, p.high_watermark, p.lag))
        .collect();
    assert_eq!(lag, vec![(1, Some(1), 2, 1)]);

    h.client
        .delete_topic(pb::DeleteTopicRequest {
            topic: "orders".into(),
        })
        .await
        .expect("delete");
    let gone = h
        .client
        .describe_topic(pb::DescribeTopicRequest {
            topic: "orders".into(),
        })
        .await
        .expect_err("deleted");
    assert_eq!(gone.code(), Code::NotFound);
}

#[tokio::test]
async fn produced_records_and_raw_batches_fetch_back_whole() {
    let mut h = Harness::start().await;
    h.create("events", 2).await;
    let record = pb::ProducerRecord {
        key: Some(Bytes::from_static(b"user-7")),
        value: Some(Bytes::from_static(b"signed up")),
        headers: vec![pb::Header {
            key: "trace".into(),
            value: Bytes::from_static(b"abc"),
        }],
        timestamp_ms: Some(1_600_000_000_000),
        partition: Some(1),
    };
    let produced = h
        .produce("events", vec![record.clone(), to_partition(1, "second")])
        .await;
    let offsets: Vec<_> = produced
        .records
        .iter()
        .map(|r| (r.partition, r.offset))
        .collect();
    assert_eq!(offsets, vec![(1, 0), (1, 1)]);
    assert_eq!(produced.records[0].timestamp_ms, 1_600_000_000_000);
    assert_eq!(produced.batches.len(), 1);
    assert_eq!(produced.batches[0].record_count, 2);

    let raw = h
        .client
        .produce(pb::ProduceRequest {
            topic: "events".into(),
            records: vec![],
            raw_batch: Some(pb::RawBatch {
                partition: 1,
                data: raw_batch(&["third", "fourth"]),
            }),
        })
        .await
        .expect("produce raw batch")
        .into_inner();
    assert!(raw.records.is_empty());
    let appended = &raw.batches[0];
    assert_eq!((appended.base_offset, appended.last_offset), (2, 3));

    let fetched = h.fetch(fetch_request("events", 1, 0)).await.expect("fetch");
    assert_eq!(
        values(&fetched.records),
        ["signed up", "second", "third", "fourth"]
    );
    let first = &fetched.records[0];
    assert_eq!(first.key, record.key);
    assert_eq!(first.headers, record.headers);
    assert_eq!(first.timestamp_ms, 1_600_000_000_000);
    assert_eq!((fetched.next_offset, fetched.high_watermark), (4, 4));
    assert_eq!(fetched.log_start_offset, 0);

    // From the middle of a batch: records before the offset are skipped.
    let middle = h.fetch(fetch_request("events", 1, 3)).await.expect("fetch");
    assert_eq!(values(&middle.records), ["fourth"]);

    // Raw: whole batches as stored, and where to go next.
    let raw = h
        .fetch(pb::FetchRequest {
            format: pb::RecordFormat::RawBatches.into(),
            ..fetch_request("events", 1, 0)
        })
        .await
        .expect("raw fetch");
    assert!(raw.records.is_empty());
    assert!(!raw.raw_batches.is_empty());
    assert_eq!(raw.next_offset, 4);

    // At the end: nothing, at once (max_wait 0).
    let end = h
        .fetch(fetch_request("events", 1, 4))
        .await
        .expect("fetch at end");
    assert!(end.records.is_empty());
    assert_eq!(end.next_offset, 4);
}

#[tokio::test]
async fn produce_stream_pipelines_requests_and_answers_each_by_sequence() {
    let mut h = Harness::start().await;
    h.create("stream", 2).await;
    let count = 200u64;
    let requests = futures::stream::iter((0..count).map(|sequence| {
        // Every 50th request names a partition that does not exist.
        let partition = if sequence % 50 == 49 {
            9
        } else {
            (sequence % 2) as u32
        };
        pb::ProduceStreamRequest {
            sequence,
            produce: Some(pb::ProduceRequest {
                topic: "stream".into(),
                records: vec![to_partition(partition, &sequence.to_string())],
                raw_batch: None,
            }),
            awaited: false,
        }
    }));
    let mut answers = h
        .client
        .produce_stream(requests)
        .await
        .expect("open produce stream")
        .into_inner();
    let mut ok = Vec::new();
    let mut failed = Vec::new();
    while let Some(answer) = tokio::time::timeout(PATIENCE, answers.next())
        .await
        .expect("answers keep coming")
    {
        let answer = answer.expect("stream stays healthy");
        match answer.result.expect("a result") {
            pb::produce_stream_response::Result::Ok(ok_) => {
                let r = &ok_.records[0];
                ok.push((answer.sequence, r.partition, r.offset));
            }
            pb::produce_stream_response::Result::Error(e) => {
                assert_eq!(e.code, Code::NotFound as i32, "{}", e.message);
                failed.push(answer.sequence);
            }
        }
    }
    assert_eq!(failed, vec![49, 99, 149, 199]);
    assert_eq!(ok.len() as u64, count - 4);
    // Per partition, offsets follow the order the requests were sent.
    for partition in 0..2 {
        let mut in_partition: Vec<(u64, u64)> = ok
            .iter()
            .filter(|(_, p, _)| *p == partition)
            .map(|(s, _, o)| (*s, *o))
            .collect();
        in_partition.sort();
        let offsets: Vec<u64> = in_partition.iter().map(|(_, o)| *o).collect();
        let expected: Vec<u64> = (0..offsets.len() as u64).collect();
        assert_eq!(offsets, expected, "partition {partition} in request order");
    }
    // And the log holds the values in that order.
    let fetched = h.fetch(fetch_request("stream", 0, 0)).await.expect("fetch");
    let sequences: Vec<u64> = values(&fetched.records)
        .iter()
        .map(|v| v.parse().expect("number"))
        .collect();
    let mut sorted = sequences.clone();
    sorted.sort();
    assert_eq!(sequences, sorted);
}

#[tokio::test]
async fn a_produce_stream_to_a_new_topic_creates_it_and_keeps_order() {
    let mut h = Harness::start().await;
    let requests = futures::stream::iter((0..20u64).map(|sequence| pb::ProduceStreamRequest {
        sequence,
        produce: Some(pb::ProduceRequest {
            topic: "fresh".into(),
            records: vec![value(&sequence.to_string())],
            raw_batch: None,
        }),
        awaited: false,
    }));
    let answers = h.stream_all(requests).await;
    assert_eq!(answers.len(), 20);
    let fetched = h.fetch(fetch_request("fresh", 0, 0)).await.expect("fetch");
    let expected: Vec<String> = (0..20).map(|i: u64| i.to_string()).collect();
    assert_eq!(values(&fetched.records), expected);
}

/// Under `sync`, requests marked `awaited` are answered once durable, and a client that sends
/// more than that promise allows (here: twenty at once) is still served, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn awaited_stream_requests_are_answered_durable_and_in_order_even_when_pipelined() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = BrokerConfig::new(dir.path());
    config.log.durability = Durability::Sync;
    let broker = Broker::open(config).await.expect("open broker");
    let mut h = Harness::serve(broker, GrpcConfig::default(), Some(dir)).await;
    h.create("awaited", 1).await;
    let requests = futures::stream::iter((0..20u64).map(|sequence| pb::ProduceStreamRequest {
        awaited: true,
        ..stream_request("awaited", sequence)
    }));
    let answers = h.stream_all(requests).await;
    assert_eq!(answers.len(), 20);
    for answer in answers {
        let answer = answer.expect("answer");
        assert!(
            matches!(
                answer.result,
                Some(pb::produce_stream_response::Result::Ok(_))
            ),
            "{answer:?}"
        );
    }
    let durable = h
        .broker
        .describe_topic("awaited")
        .expect("describe")
        .partitions[0]
        .high_watermark;
    assert_eq!(durable, 20, "every answered record fsynced");
    let fetched = h
        .fetch(fetch_request("awaited", 0, 0))
        .await
        .expect("fetch");
    let expected: Vec<String> = (0..20).map(|i: u64| i.to_string()).collect();
    assert_eq!(values(&fetched.records), expected);
}

/// A produce-stream request to `topic`, partition 0, carrying its sequence as the value.
fn stream_request(topic: &str, sequence: u64) -> pb::ProduceStreamRequest {
    pb::ProduceStreamRequest {
        sequence,
        produce: Some(pb::ProduceRequest {
            topic: topic.into(),
            records: vec![to_partition(0, &sequence.to_string())],
            raw_batch: None,
        }),
        awaited: false,
    }
}

#[tokio::test]
async fn a_produce_stream_wider_than_its_window_answers_every_request_in_order() {
    // Two requests in flight at most: the server stops reading and starts again many times.
    let grpc = GrpcConfig {
        produce_stream_in_flight_max: 2,
        ..GrpcConfig::default()
    };
    let mut h = Harness::strict(grpc).await;
    h.create("narrow", 1).await;
    let count = 300u64;
    // Everything sent before a single answer is read.
    let requests = futures::stream::iter((0..count).map(|s| stream_request("narrow", s)));
    let mut answers = h
        .client
        .produce_stream(requests)
        .await
        .expect("open")
        .into_inner();
    let mut offsets = Vec::new();
    while let Some(answer) = tokio::time::timeout(PATIENCE, answers.next())
        .await
        .expect("answers keep coming")
    {
        let answer = answer.expect("stream stays healthy");
        match answer.result.expect("a result") {
            pb::produce_stream_response::Result::Ok(ok) => {
                offsets.push((answer.sequence, ok.records[0].offset));
            }
            pb::produce_stream_response::Result::Error(e) => panic!("refused: {}", e.message),
        }
    }
    offsets.sort();
    let expected: Vec<(u64, u64)> = (0..count).map(|s| (s, s)).collect();
    assert_eq!(offsets, expected, "each request at the offset of its turn");
}

#[tokio::test]
async fn shutdown_ends_an_open_produce_stream_after_answering_what_it_took() {
    let mut h = Harness::start().await;
    h.create("stream-closing", 1).await;
    let (requests, outbox) = tokio::sync::mpsc::channel(8);
    let mut answers = h
        .client
        .produce_stream(tokio_stream::wrappers::ReceiverStream::new(outbox))
        .await
        .expect("open")
        .into_inner();
    for sequence in 0..3 {
        requests
            .send(stream_request("stream-closing", sequence))
            .await
            .expect("send");
        let answer = next(&mut answers).await.expect("answer");
        assert_eq!(answer.sequence, sequence);
    }

    // The client keeps its side of the stream open; the door stops all the same.
    let Harness { broker, server, .. } = h;
    tokio::time::timeout(PATIENCE, server.stop())
        .await
        .expect("the door drains promptly despite the open produce stream")
        .expect("clean stop");
    let ended = tokio::time::timeout(PATIENCE, answers.next())
        .await
        .expect("the answer stream ended");
    assert!(
        !matches!(ended, Some(Ok(_))),
        "no answer to a request never sent: {ended:?}"
    );
    drop(requests);
    let described = broker.describe_topic("stream-closing").expect("describe");
    assert_eq!(described.partitions[0].high_watermark, 3);
    broker.close().await.expect("the broker closes clean");
}

#[tokio::test]
async fn a_subscriber_receives_records_produced_after_it_started() {
    let mut h = Harness::start().await;
    h.create("live", 1).await;
    h.produce("live", vec![value("before")]).await;
    let mut stream = h
        .subscribe(pb::SubscribeRequest {
            target: Some(pb::subscribe_request::Target::Partition(
                pb::PartitionTarget {
                    topic: "live".into(),
                    partition: 0,
                    start: Some(pb::partition_target::Start::Position(
                        pb::StartPosition::Latest.into(),
                    )),
                },
            )),
            ..Default::default()
        })
        .await;
    h.produce("live", vec![value("after-1"), value("after-2")])
        .await;
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let event = records_event(next(&mut stream).await);
        assert_eq!((event.topic.as_str(), event.partition), ("live", 0));
        seen.extend(event.records.iter().map(|r| (r.offset, r.value.clone())));
    }
    let offsets: Vec<u64> = seen.iter().map(|(o, _)| *o).collect();
    assert_eq!(offsets, [1, 2]);
    assert_eq!(seen[0].1.as_deref(), Some(&b"after-1"[..]));

    // From an offset, and in raw form.
    let mut raw = h
        .subscribe(pb::SubscribeRequest {
            format: pb::RecordFormat::RawBatches.into(),
            ..from_offset("live", 0, 0)
        })
        .await;
    let event = records_event(next(&mut raw).await);
    assert!(!event.raw_batches.is_empty() && event.records.is_empty());
    assert!(event.next_offset >= 1);
}

#[tokio::test]
async fn a_fetch_long_poll_answers_on_arrival_and_after_max_wait() {
    let mut h = Harness::start().await;
    h.create("poll", 1).await;

    let mut poller = h.client.clone();
    let waiting = tokio::spawn(async move {
        let started = Instant::now();
        let answer = poller
            .fetch(pb::FetchRequest {
                max_wait_ms: 30_000,
                ..fetch_request("poll", 0, 0)
            })
            .await
            .expect("long poll");
        (answer.into_inner(), started.elapsed())
    });
    // Let the poll reach the broker and wait, then produce.
    tokio::time::sleep(Duration::from_millis(100)).await;
    h.produce("poll", vec![value("wake up")]).await;
    let (answer, waited) = tokio::time::timeout(PATIENCE, waiting)
        .await
        .expect("the poll returns on arrival, not after 30 s")
        .expect("task");
    assert_eq!(values(&answer.records), ["wake up"]);
    assert!(waited < Duration::from_secs(30));

    let started = Instant::now();
    let empty = h
        .fetch(pb::FetchRequest {
            max_wait_ms: 300,
            ..fetch_request("poll", 0, 1)
        })
        .await
        .expect("empty poll");
    assert!(empty.records.is_empty());
    assert_eq!(empty.next_offset, 1);
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "waited out max_wait: {:?}",
        started.elapsed()
    );
}

/// The latest assignment a group stream has announced, reading until `done` holds for it.
async fn assignment_until(
    stream: &mut tonic::Streaming<pb::SubscribeResponse>,
    done: impl Fn(&BTreeSet<(String, u32)>) -> bool,
) -> (BTreeSet<(String, u32)>, Vec<pb::RecordsEvent>) {
    let mut records = Vec::new();
    loop {
        let message = next(stream).await.expect("a group message");
        match message.event.expect("an event") {
            pb::subscribe_response::Event::Assignment(a) => {
                let owned: BTreeSet<(String, u32)> = a
                    .assigned
                    .iter()
                    .flat_map(|tp| tp.partitions.iter().map(|p| (tp.topic.clone(), *p)))
                    .collect();
                if done(&owned) {
                    return (owned, records);
                }
            }
            pb::subscribe_response::Event::Records(r) => records.push(r),
        }
    }
}

#[tokio::test]
async fn two_group_streams_split_the_partitions_and_one_takes_all_when_the_other_leaves() {
    let mut h = Harness::start().await;
    h.create("work", 4).await;
    let all: BTreeSet<(String, u32)> = (0..4).map(|p| ("work".to_string(), p)).collect();

    let mut a = h.subscribe(group("workers", &["work"])).await;
    assignment_until(&mut a, |owned| *owned == all).await;

    let mut b = h.subscribe(group("workers", &["work"])).await;
    let (owned_a, _) = assignment_until(&mut a, |owned| owned.len() == 2).await;
    let (owned_b, _) = assignment_until(&mut b, |owned| owned.len() == 2).await;
    assert!(owned_a.is_disjoint(&owned_b));
    assert_eq!(
        owned_a.union(&owned_b).cloned().collect::<BTreeSet<_>>(),
        all
    );

    let described = h
        .client
        .describe_group(pb::DescribeGroupRequest {
            group_id: "workers".into(),
        })
        .await
        .expect("describe")
        .into_inner();
    assert_eq!(described.members.len(), 2);
    assert_eq!(described.state(), pb::GroupState::Stable);
    assert!(described
        .members
        .iter()
        .all(|m| m.client_id.starts_with("grpc ")));

    // Each member gets the records of its own partitions only.
    let b_partition = owned_b.iter().next().expect("b owns one").1;
    h.produce("work", vec![to_partition(b_partition, "for b")])
        .await;
    let event = loop {
        let event = records_event(next(&mut b).await);
        if !event.records.is_empty() {
            break event;
        }
    };
    assert_eq!(event.partition, b_partition);
    assert_eq!(values(&event.records), ["for b"]);

    // B leaves: A takes everything, including B's partition from where the group stands.
    drop(b);
    let (owned, _) = assignment_until(&mut a, |owned| *owned == all).await;
    assert_eq!(owned, all);
    h.produce("work", vec![to_partition(b_partition, "now for a")])
        .await;
    let mut got = Vec::new();
    while !got.contains(&"now for a".to_string()) {
        let event = records_event(next(&mut a).await);
        if event.partition == b_partition {
            got.extend(values(&event.records));
        }
    }
}

#[tokio::test]
async fn bad_requests_get_the_right_status_and_the_server_keeps_serving() {
    let mut h = Harness::strict(GrpcConfig {
        request_bytes_max: 2 << 20,
        ..GrpcConfig::default()
    })
    .await;
    h.create("ok", 1).await;
    let produce = |topic: &str, records: Vec<pb::ProducerRecord>| pb::ProduceRequest {
        topic: topic.into(),
        records,
        raw_batch: None,
    };
    let mut client = h.client.clone();
    let expect = |code: Code, what: &'static str| {
        move |result: Result<tonic::Response<pb::ProduceResponse>, tonic::Status>| {
            let err = result.expect_err(what);
            assert_eq!(err.code(), code, "{what}: {err}");
            assert!(!err.message().is_empty());
        }
    };

    // Unknown topic with automatic creation off.
    let unknown = client.produce(produce("nowhere", vec![value("x")])).await;
    expect(Code::NotFound, "unknown topic")(unknown);
    let err = h
        .fetch(fetch_request("nowhere", 0, 0))
        .await
        .expect_err("unknown topic");
    assert_eq!(err.code(), Code::NotFound);
    assert!(
        err.message().contains("CreateTopic"),
        "says what to do: {err}"
    );
    // Unknown partition.
    let p9 = client
        .produce(produce("ok", vec![to_partition(9, "x")]))
        .await;
    expect(Code::NotFound, "unknown partition")(p9);
    // Bad names.
    for name in ["bad/name", "", "..", &"x".repeat(250)] {
        let err = client
            .create_topic(pb::CreateTopicRequest {
                topic: name.to_string(),
                partitions: 1,
                ..Default::default()
            })
            .await
            .expect_err("bad name");
        assert_eq!(err.code(), Code::InvalidArgument, "{name:?}: {err}");
    }
    let bad_group = client
        .commit_offsets(pb::CommitOffsetsRequest {
            group_id: String::new(),
            offsets: vec![],
        })
        .await
        .expect_err("empty group id");
    assert_eq!(bad_group.code(), Code::InvalidArgument);
    // Group ids follow the topic-name rule on every call.
    for group_id in ["../g", "a b", "g:1"] {
        let err = client
            .commit_offsets(pb::CommitOffsetsRequest {
                group_id: group_id.into(),
                offsets: vec![],
            })
            .await
            .expect_err("bad group id");
        assert_eq!(err.code(), Code::InvalidArgument, "{group_id:?}: {err}");
        assert!(err.message().contains("invalid group id"), "{err}");
        let err = client
            .describe_group(pb::DescribeGroupRequest {
                group_id: group_id.into(),
            })
            .await
            .expect_err("bad group id");
        assert_eq!(err.code(), Code::InvalidArgument, "{group_id:?}: {err}");
    }
    // An empty request.
    let empty = client.produce(produce("ok", vec![])).await;
    expect(Code::InvalidArgument, "no records")(empty);
    // Offset past the end.
    h.produce("ok", vec![value("one")]).await;
    let err = h
        .fetch(fetch_request("ok", 0, 5))
        .await
        .expect_err("past the end");
    assert_eq!(err.code(), Code::OutOfRange);
    assert!(err.message().contains("[0, 1]"), "{err}");
    let err = h
        .client
        .subscribe(from_offset("ok", 0, 5))
        .await
        .expect_err("subscribe past the end");
    assert_eq!(err.code(), Code::OutOfRange);
    // A record over the topic's message_bytes_max (1 MiB) in a request under the door's limit.
    let big = pb::ProducerRecord {
        value: Some(Bytes::from(vec![7u8; 1_500_000])),
        ..Default::default()
    };
    let too_big = client.produce(produce("ok", vec![big])).await;
    expect(Code::ResourceExhausted, "oversized record")(too_big);
    // A request over the door's request_bytes_max: refused before it is decoded.
    let huge = pb::ProducerRecord {
        value: Some(Bytes::from(vec![7u8; 3 << 20])),
        ..Default::default()
    };
    let err = client
        .produce(produce("ok", vec![huge]))
        .await
        .expect_err("oversized request");
    assert_eq!(err.code(), Code::ResourceExhausted, "{err}");
    assert!(err.message().contains("request_bytes_max"), "{err}");
    // Absurd max bytes and max wait.
    for request in [
        pb::FetchRequest {
            max_bytes: u32::MAX,
            ..fetch_request("ok", 0, 0)
        },
        pb::FetchRequest {
            max_wait_ms: u32::MAX,
            ..fetch_request("ok", 0, 0)
        },
        pb::FetchRequest {
            format: 42,
            ..fetch_request("ok", 0, 0)
        },
    ] {
        let err = h.fetch(request).await.expect_err("absurd fetch");
        assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    }
    // A garbage raw batch.
    let garbage = client
        .produce(pb::ProduceRequest {
            topic: "ok".into(),
            records: vec![],
            raw_batch: Some(pb::RawBatch {
                partition: 0,
                data: Bytes::from_static(&[0xAB; 100]),
            }),
        })
        .await;
    expect(Code::InvalidArgument, "garbage batch")(garbage);
    // Subscriptions that do not say what to read.
    for request in [
        pb::SubscribeRequest::default(),
        pb::SubscribeRequest {
            target: Some(pb::subscribe_request::Target::Partition(
                pb::PartitionTarget {
                    topic: "ok".into(),
                    partition: 0,
                    start: None,
                },
            )),
            ..Default::default()
        },
    ] {
        let err = h.client.subscribe(request).await.expect_err("no target");
        assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    }

    // Nothing bad was stored, and the server still serves.
    h.produce("ok", vec![value("two")]).await;
    let fetched = h.fetch(fetch_request("ok", 0, 0)).await.expect("fetch");
    assert_eq!(values(&fetched.records), ["one", "two"]);
}

#[tokio::test]
async fn a_client_dropping_mid_stream_costs_nothing() {
    let mut h = Harness::start().await;
    h.create("drops", 2).await;
    h.produce("drops", vec![to_partition(0, "a"), to_partition(1, "b")])
        .await;

    // A partition subscriber and a group member on their own connection, gone mid-stream.
    {
        let mut client = connect(&h.server).await;
        let mut partition = client
            .subscribe(from_offset("drops", 0, 0))
            .await
            .expect("subscribe")
            .into_inner();
        records_event(next(&mut partition).await);
        let mut member = client
            .subscribe(group("leavers", &["drops"]))
            .await
            .expect("join")
            .into_inner();
        next(&mut member).await.expect("assignment");
        // A produce stream with requests in flight and answers never read.
        let requests = futures::stream::iter((0..50u64).map(|sequence| pb::ProduceStreamRequest {
            sequence,
            produce: Some(pb::ProduceRequest {
                topic: "drops".into(),
                records: vec![to_partition(0, "pipelined")],
                raw_batch: None,
            }),
            awaited: false,
        }));
        let _answers = client
            .produce_stream(requests)
            .await
            .expect("produce stream");
    }

    // The group notices the member left.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let described = h
            .client
            .describe_group(pb::DescribeGroupRequest {
                group_id: "leavers".into(),
            })
            .await;
        match described {
            Ok(d) if d.get_ref().members.is_empty() => break,
            Err(e) if e.code() == Code::NotFound => break,
            _ if Instant::now() > deadline => panic!("the member never left its group"),
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    // Everyone else is served as before.
    let produced = h.produce("drops", vec![to_partition(1, "c")]).await;
    assert_eq!(produced.records[0].offset, 1);
    let mut stream = h.subscribe(from_offset("drops", 1, 0)).await;
    let mut seen = Vec::new();
    while seen.len() < 2 {
        seen.extend(values(&records_event(next(&mut stream).await).records));
    }
    assert_eq!(seen, ["b", "c"]);
}

#[tokio::test]
async fn health_answers_serving_for_the_server_and_the_brook_service() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;

    let h = Harness::start().await;
    let mut health = HealthClient::new(channel(&h.server).await);
    for service in ["", "brook.v1.Brook"] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("health check")
            .into_inner()
            .status();
        assert_eq!(status, ServingStatus::Serving, "{service:?}");
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "no.such.Service".into(),
        })
        .await
        .expect_err("unknown service");
    assert_eq!(unknown.code(), Code::NotFound);
}

#[tokio::test]
async fn reflection_lists_and_describes_the_brook_service() {
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;

    let h = Harness::start().await;
    let mut reflection = ServerReflectionClient::new(channel(&h.server).await);
    let ask = |request: MessageRequest| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    };
    let requests = futures::stream::iter([
        ask(MessageRequest::ListServices(String::new())),
        ask(MessageRequest::FileContainingSymbol(
            "brook.v1.Brook".into(),
        )),
    ]);
    let mut answers = reflection
        .server_reflection_info(requests)
        .await
        .expect("reflection stream")
        .into_inner();

    let listed = next(&mut answers).await.expect("list answer");
    let Some(MessageResponse::ListServicesResponse(listed)) = listed.message_response else {
        panic!("expected a service list");
    };
    let names: BTreeSet<String> = listed.service.into_iter().map(|s| s.name).collect();
    for expected in [
        "brook.v1.Brook",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
    ] {
        assert!(names.contains(expected), "{expected} in {names:?}");
    }
    let file = next(&mut answers).await.expect("file answer");
    let Some(MessageResponse::FileDescriptorResponse(files)) = file.message_response else {
        panic!("expected descriptors");
    };
    assert!(!files.file_descriptor_proto.is_empty());

    // The older v1alpha protocol (what many grpcurl builds speak) answers too.
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient as Alpha;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest as AlphaRequest;
    use tonic_reflection::pb::v1alpha::ServerReflectionRequest as AlphaAsk;
    let mut alpha = Alpha::new(channel(&h.server).await);
    let mut answers = alpha
        .server_reflection_info(futures::stream::iter([AlphaAsk {
            host: String::new(),
            message_request: Some(AlphaRequest::ListServices(String::new())),
        }]))
        .await
        .expect("v1alpha stream")
        .into_inner();
    let listed = format!("{:?}", next(&mut answers).await.expect("v1alpha answer"));
    assert!(listed.contains("brook.v1.Brook"), "{listed}");
}

#[tokio::test]
async fn shutdown_ends_streams_and_long_polls_and_answers_every_produce_it_took() {
    let mut h = Harness::start().await;
    h.create("closing", 1).await;
    let mut subscription = h.subscribe(from_offset("closing", 0, 0)).await;
    let mut poller = h.client.clone();
    let poll = tokio::spawn(async move {
        poller
            .fetch(pb::FetchRequest {
                max_wait_ms: 60_000,
                ..fetch_request("closing", 0, 0)
            })
            .await
    });
    // Producers racing the shutdown.
    let producers: Vec<_> = (0..40)
        .map(|i| {
            let mut client = h.client.clone();
            tokio::spawn(async move {
                client
                    .produce(pb::ProduceRequest {
                        topic: "closing".into(),
                        records: vec![value(&i.to_string())],
                        raw_batch: None,
                    })
                    .await
            })
        })
        .collect();
    // Let some of them reach the server, so the stop meets produces in flight.
    tokio::task::yield_now().await;

    let Harness { broker, server, .. } = h;
    tokio::time::timeout(PATIENCE, server.stop())
        .await
        .expect("the door drains promptly despite the open stream and the 60 s poll")
        .expect("clean stop");

    // The subscription ends with UNAVAILABLE (possibly after records it had already read).
    let ended = loop {
        match tokio::time::timeout(PATIENCE, subscription.next()).await {
            Ok(Some(Ok(_records))) => continue,
            Ok(Some(Err(status))) => break status,
            Ok(None) => panic!("the subscription ended without saying why"),
            Err(_) => panic!("the subscription did not end"),
        }
    };
    assert_eq!(ended.code(), Code::Unavailable, "{ended}");
    let polled = tokio::time::timeout(PATIENCE, poll)
        .await
        .expect("the long poll ended")
        .expect("task");
    assert!(
        polled.is_ok(),
        "the long poll answers with what it has: {polled:?}"
    );

    // Every produce the server acknowledged is in the log, and nothing else is.
    let mut acknowledged = 0;
    for producer in producers {
        if producer.await.expect("task").is_ok() {
            acknowledged += 1;
        }
    }
    let described = broker.describe_topic("closing").expect("describe");
    assert_eq!(described.partitions[0].high_watermark, acknowledged);
    broker
        .close()
        .await
        .expect("the broker closes clean after the door");
}

#[tokio::test]
async fn topics_and_groups_change_through_the_admin_calls() {
    let mut h = Harness::start().await;
    h.create("chg", 1).await;
    // Settings by Kafka's name (or brook's alias) at creation too.
    let named = h
        .client
        .create_topic(pb::CreateTopicRequest {
            topic: "named".into(),
            configs: vec![pb::ConfigSetting {
                key: "retention.ms".into(),
                value: "1000".into(),
            }],
            ..Default::default()
        })
        .await
        .expect("create")
        .into_inner()
        .topic
        .expect("topic");
    assert_eq!(named.config.expect("config").retention_ms_max, Some(1000));
    let unknown = h
        .client
        .create_topic(pb::CreateTopicRequest {
            topic: "unnamed".into(),
            configs: vec![pb::ConfigSetting {
                key: "retention.forever".into(),
                value: "1".into(),
            }],
            ..Default::default()
        })
        .await
        .expect_err("unknown setting");
    assert_eq!(unknown.code(), Code::InvalidArgument, "{unknown}");
    let grown = h
        .client
        .add_partitions(pb::AddPartitionsRequest {
            topic: "chg".into(),
            partitions: 3,
            validate_only: false,
        })
        .await
        .expect("grow")
        .into_inner()
        .topic
        .expect("topic");
    assert_eq!(grown.partitions.len(), 3);
    let shrink = h
        .client
        .add_partitions(pb::AddPartitionsRequest {
            topic: "chg".into(),
            partitions: 2,
            validate_only: false,
        })
        .await
        .expect_err("cannot shrink");
    assert_eq!(shrink.code(), Code::InvalidArgument, "{shrink}");

    let change = |key: &str, operation: pb::ConfigOperation, value: &str| pb::ConfigChange {
        key: key.into(),
        operation: operation.into(),
        value: value.into(),
    };
    let altered = h
        .client
        .alter_topic_config(pb::AlterTopicConfigRequest {
            topic: "chg".into(),
            changes: vec![
                change("retention.ms", pb::ConfigOperation::Set, "-1"),
                change("segment_bytes_max", pb::ConfigOperation::Set, "65536"),
            ],
            validate_only: false,
        })
        .await
        .expect("alter")
        .into_inner()
        .topic
        .expect("topic");
    let entry = |key: &str| {
        altered
            .configs
            .iter()
            .find(|c| c.key == key)
            .cloned()
            .unwrap_or_else(|| panic!("{key} in {:?}", altered.configs))
    };
    assert_eq!(
        (
            entry("retention.ms").value.as_str(),
            entry("retention.ms").overridden
        ),
        ("-1", true)
    );
    assert_eq!(entry("segment.bytes").value, "65536");
    assert!(!entry("max.message.bytes").overridden);
    assert_eq!(
        altered.config.expect("config").segment_bytes_max,
        Some(65536)
    );
    let bad = h
        .client
        .alter_topic_config(pb::AlterTopicConfigRequest {
            topic: "chg".into(),
            changes: vec![change("retention.ms", pb::ConfigOperation::Unspecified, "")],
            validate_only: false,
        })
        .await
        .expect_err("no operation");
    assert_eq!(bad.code(), Code::InvalidArgument, "{bad}");

    // Records below an offset, then a group moved there and deleted.
    let batch = |values: &[&str]| {
        let mut builder = BatchBuilder::new(Compression::None);
        for value in values {
            builder.push(RecordRef {
                key: None,
                value: Some(value.as_bytes()),
                headers: &[],
                timestamp: 1_700_000_000_000,
            });
        }
        builder.build().expect("batch")
    };
    for value in ["a", "b", "c", "d"] {
        h.broker
            .produce_batch("chg", 0, batch(&[value]))
            .await
            .expect("produce");
    }
    let trimmed = h
        .client
        .delete_records(pb::DeleteRecordsRequest {
            topic: "chg".into(),
            partition: Some(0),
            before_offset: Some(2),
        })
        .await
        .expect("trim")
        .into_inner();
    assert_eq!(
        trimmed.partitions,
        [pb::PartitionLogStart {
            partition: 0,
            log_start_offset: 2
        }]
    );
    let below = h
        .client
        .fetch(pb::FetchRequest {
            topic: "chg".into(),
            partition: 0,
            offset: 1,
            ..Default::default()
        })
        .await
        .expect_err("below the log start");
    assert_eq!(below.code(), Code::OutOfRange, "{below}");

    let seek = |to: pb::seek_group_request::To, dry_run: bool| pb::SeekGroupRequest {
        group_id: "readers".into(),
        topics: vec!["chg".into()],
        to: Some(to),
        dry_run,
    };
    let moved = h
        .client
        .seek_group(seek(
            pb::seek_group_request::To::Position(pb::SeekPosition::Earliest.into()),
            false,
        ))
        .await
        .expect("seek")
        .into_inner();
    assert_eq!(moved.partitions.len(), 3);
    assert_eq!(
        (
            moved.partitions[0].from_offset,
            moved.partitions[0].to_offset
        ),
        (None, 2)
    );
    let shifted = h
        .client
        .seek_group(seek(pb::seek_group_request::To::ShiftBy(1), false))
        .await
        .expect("shift")
        .into_inner();
    assert_eq!(
        (
            shifted.partitions[0].from_offset,
            shifted.partitions[0].to_offset
        ),
        (Some(2), 3)
    );
    h.client
        .delete_group_offsets(pb::DeleteGroupOffsetsRequest {
            group_id: "readers".into(),
            partitions: vec![pb::TopicPartitions {
                topic: "chg".into(),
                partitions: vec![1, 2],
            }],
        })
        .await
        .expect("delete offsets");
    let left = h
        .client
        .fetch_offsets(pb::FetchOffsetsRequest {
            group_id: "readers".into(),
            partitions: vec![],
        })
        .await
        .expect("fetch offsets")
        .into_inner()
        .offsets;
    assert_eq!(left.len(), 1);
    h.client
        .delete_group(pb::DeleteGroupRequest {
            group_id: "readers".into(),
        })
        .await
        .expect("delete group");
    let gone = h
        .client
        .delete_group(pb::DeleteGroupRequest {
            group_id: "readers".into(),
        })
        .await
        .expect_err("gone");
    assert_eq!(gone.code(), Code::NotFound, "{gone}");
    h.server.stop().await.expect("stop");
}
