//! The Kafka door byte by byte, over a raw TcpStream: bad input of every kind gets its error
//! (or closes only its own connection) while a witness connection keeps being served, and the
//! protocol details clients rely on (pipelining, acks=0, idempotent retries, long polls) hold.
//! Requests are built with the `kafka-protocol` crate and batches with brook-log's builder.

mod kafka_support;

use std::time::Duration;

use brook_log::batch::{BatchBuilder, Compression, RecordRef};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    FetchResponse, InitProducerIdRequest, InitProducerIdResponse, MetadataRequest,
    MetadataResponse, ProduceResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_support::raw::{fetch_request, produce_request, Raw};
use kafka_support::{TestBroker, PATIENCE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CORRUPT_MESSAGE: i16 = 2;
const INVALID_RECORD: i16 = 87;
const INVALID_REQUEST: i16 = 42;
const OFFSET_OUT_OF_RANGE: i16 = 1;
const INVALID_TOPIC_EXCEPTION: i16 = 17;
const UNSUPPORTED_VERSION: i16 = 35;
const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
const UNKNOWN_TOPIC_ID: i16 = 100;

/// Metadata v12 for one topic (with its topic id).
async fn metadata_for(raw: &mut Raw, name: &str) -> MetadataResponse {
    let mut topic = MetadataRequestTopic::default();
    topic.name = Some(TopicName(StrBytes::from_string(name.to_owned())));
    let mut request = MetadataRequest::default();
    request.topics = Some(vec![topic]);
    raw.call(ApiKey::Metadata, 12, &request).await
}

/// A witness: a Metadata round trip on its own connection.
async fn still_serves(witness: &mut Raw) {
    let response: MetadataResponse = witness
        .call(ApiKey::Metadata, 12, &MetadataRequest::default())
        .await;
    assert_eq!(response.brokers.len(), 1);
}

fn batch(values: &[&str], producer: Option<(i64, i16, i32)>) -> Bytes {
    let mut builder = BatchBuilder::new(Compression::None);
    if let Some((id, epoch, seq)) = producer {
        builder = builder.with_producer(id, epoch, seq);
    }
    for v in values {
        builder.push(RecordRef {
            key: None,
            value: Some(v.as_bytes()),
            headers: &[],
            timestamp: 1_700_000_000_000,
        });
    }
    builder.build().expect("batch").freeze()
}

/// InitProducerId for an idempotent producer: no transactional id (null on the wire, as
/// librdkafka and the Java client send it; kafka_protocol's default is an empty id, which Kafka
/// refuses with INVALID_REQUEST).
fn idempotent_init() -> InitProducerIdRequest {
    let mut request = InitProducerIdRequest::default();
    request.transactional_id = None;
    request
}

/// (error code, base offset) of the only partition in a Produce response.
fn produce_result(response: &ProduceResponse) -> (i16, i64) {
    let p = &response.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_api_versions_version_gets_unsupported_version_with_the_ranges() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tb = TestBroker::start(dir.path()).await;
    let mut raw = Raw::connect(&tb).await;
    // A future client's ApiVersions v99, with a v3-shaped body.
    let mut header = RequestHeader::default();
    header.request_api_key = ApiKey::ApiVersions as i16;
    header.request_api_version = 99;
    header.correlation_id = 42;
    let mut buf = BytesMut::new();
    header.encode(&mut buf, 2).expect("header");
    ApiVersionsRequest::default()
        .encode(&mut buf, 3)
        .expect("body");
    raw.write_frame(&buf).await;
    let mut frame = raw.read_frame().await.expect("an answer");
    let header = ResponseHeader::decode(&mut frame, 0).expect("v0 header");
    assert_eq!(header.correlation_id, 42);
    let response = ApiVersionsResponse::decode(&mut frame, 0).expect("v0 body");
    assert_eq!(response.error_code, UNSUPPORTED_VERSION);
    let produce = response
        .api_keys
        .iter()
        .find(|k| k.api_key == 0)
        .expect("Produce listed");
    assert_eq!((produce.min_version, produce.max_version), (0, 9));
    let fetch = response
        .api_keys
        .iter()
        .find(|k| k.api_key == 1)
        .expect("Fetch listed");
    assert_eq!((fetch.min_version, fetch.max_version), (4, 16));

    // The client retries with a version both know, on the same connection.
    let response: ApiVersionsResponse = raw
        .call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
        .await;
    assert_eq!(response.error_code, 0);
    assert!(response.api_keys.len() >= 19, "{}", response.api_keys.len());

    // A version of another API that is not served closes that connection only.
    let mut witness = Raw::connect(&tb).await;
    raw.send(ApiKey::Produce, 2, &MetadataRequest::default())
        .await;
    assert!(raw.is_closed().await);
    still_serves(&mut witness).await;
    tb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_malformed_frames_close_only_their_connection() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tb = TestBroker::start(dir.path()).await;
    let mut witness = Raw::connect(&tb).await;
    still_serves(&mut witness).await;

    // 2 GiB announced: refused on the size prefix alone.
    let mut huge = Raw::connect(&tb).await;
    huge.stream
        .write_all(&i32::MAX.to_be_bytes())
        .await
        .expect("write");
    huge.stream.write_all(&[0; 64]).await.expect("write");
    assert!(huge.is_closed().await);
    still_serves(&mut witness).await;

    // A negative size.
    let mut negative = Raw::connect(&tb).await;
    negative
        .stream
        .write_all(&(-5i32).to_be_bytes())
        .await
        .expect("write");
    assert!(negative.is_closed().await);

    // Metadata v0 announcing 54 million topics in five bytes.
    let mut bomb = Raw::connect(&tb).await;
    bomb.write_frame(&[
        0, 3, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0x03, 0x3c, 0x0c, 0x00, 0xb6,
    ])
    .await;
    assert!(bomb.is_closed().await);
    still_serves(&mut witness).await;

    // An unknown API key, and a body cut short.
    let mut unknown = Raw::connect(&tb).await;
    unknown
        .write_frame(&[0x7f, 0x00, 0, 0, 0, 0, 0, 1, 0xff, 0xff])
        .await;
    assert!(unknown.is_closed().await);
    let mut cut = Raw::connect(&tb).await;
    cut.write_frame(&[0, 0, 0, 9, 0, 0, 0, 1, 0x00, 0x01]).await;
    assert!(cut.is_closed().await);

    // A frame whose announced size never arrives, then the client goes away.
    let mut partial = Raw::connect(&tb).await;
    partial
        .stream
        .write_all(&100i32.to_be_bytes())
        .await
        .expect("write");
    partial.stream.write_all(&[1, 2, 3]).await.expect("write");
    drop(partial);

    still_serves(&mut witness).await;
    tb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_batches_are_refused_and_nothing_is_stored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tb = TestBroker::start(dir.path()).await;
    tb.create_topic("vault", 1).await;
    let mut raw = Raw::connect(&tb).await;

    let good = batch(&["a", "b", "c"], None);
    let mut bad_crc = BytesMut::from(&good[..]);
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 0x55;
    let mut bad_magic = BytesMut::from(&good[..]);
    bad_magic[16] = 1;
    let mut bad_length = BytesMut::from(&good[..]);
    bad_length[8..12].copy_from_slice(&10_000i32.to_be_bytes());
    for (what, records) in [
        ("CRC", bad_crc.freeze()),
        ("magic", bad_magic.freeze()),
        ("length", bad_length.freeze()),
        ("truncated", good.slice(..30)),
    ] {
        let response: ProduceResponse = raw
            .call(ApiKey::Produce, 9, &produce_request("vault", records, -1))
            .await;
        assert_eq!(produce_result(&response).0, CORRUPT_MESSAGE, "{what}");
        let p = &response.responses[0].partition_responses[0];
        assert!(p.error_message.is_some(), "{what}: the error says why");
    }
    let stored = tb.broker.describe_topic("vault").expect("topic").partitions[0];
    assert_eq!(stored.log_end_offset, 0, "nothing stored");

    let response: ProduceResponse = raw
        .call(ApiKey::Produce, 9, &produce_request("vault", good, -1))
        .await;
    assert_eq!(
        produce_result(&response),
        (0, 0),
        "the connection still produces"
    );
    tb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_topic_names_get_invalid_topic_exception() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tb = TestBroker::start(dir.path()).await;
    let mut raw = Raw::connect(&tb).await;
    for name in ["bad/name", "..", "a b", &"x".repeat(250)] {
        let response: ProduceResponse = raw
            .call(
                ApiKey::Produce,
                9,
                &produce_request(name, batch(&["v"], None), -1),
            )
            .await;
        assert_eq!(
            produce_result(&response).0,
            INVALID_TOPIC_EXCEPTION,
            "produce {name:?}"
        );

        let mut topic = MetadataRequestTopic::default();
        topic.name = Some(TopicName(StrBytes::from_string(name.to_owned())));
        let mut request = MetadataRequest::default();
        request.topics = Some(vec![topic]);
        request.allow_auto_topic_creation = true;
        let response: MetadataResponse = raw.call(ApiKey::Metadata, 12, &request).await;
        assert_eq!(
            response.topics[0].error_code, INVALID_TOPIC_EXCEPTION,
            "metadata {name:?}"
        );

        let mut creatable = CreatableTopic::default();
        creatable.name = TopicName(StrBytes::from_string(name.to_owned()));
        creatable.num_partitions = 1;
        creatable.replication_factor = 1;
        let mut request = CreateTopicsRequest::default();
        request.topics = vec![creatable];
        let response: CreateTopicsResponse = raw.call(ApiKey::CreateTopics, 5, &request).await;
        assert_eq!(
            response.topics[0].error_code, INVALID_TOPIC_EXCEPTION,
            "create {name:?}"
        );
    }
    assert!(tb.broker.list_topics().is_empty(), "nothing created");
    tb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_retry_gets_the_original_offset_and_is_stored_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tb = TestBroker::start(dir.path()).await;
    tb.create_topic("once", 1).await;
    let mut raw = Raw::connect(&tb).await;
    let ids: InitProducerIdResponse = raw
        .call(ApiKey::InitProducerId, 4, &idempotent_init())
        .await;
    assert_eq!(ids.error_code, 0);
    let (pid, epoch) = (ids.producer_id.0, ids.producer_epoch);
    // An empty transactional id is neither idempotent nor transactional: refused, as Kafka does.
    let empty: InitProducerIdResponse = raw
        .call(ApiKey::InitProducerId, 4, &InitProducerIdRequest::default())
        .await;
    assert_eq!(empty.error_code, INVALID_REQUEST);

    let first = batch(&["a", "b", "c"], Some((pid, epoch, 0)));
    let response: ProduceResponse = raw
        .call(
            ApiKey::Produce,
            9,
            &produce_request("once", first.clone(), -1),
        )
        .await;
    assert_eq!(produce_result(&response), (0, 0));
    // The acknowledgement was "lost": the producer sends the same batch again.
    let response: ProduceResponse = raw
        .call(ApiKey::Produce, 9, &produce_request("once", first, -1))
        .await;
    assert_eq!(
        produce_result(&response),
        (0, 0),
        "answered with the original offset"
    );
    // A gap in the sequence is refused.
    let gap = batch(&["z"], Some((pid, epoch, 10)));
    let response: ProduceResponse = raw
        .call(ApiKey::Produce, 9, &produce_request("once", gap, -1))
        .await;
    assert_eq!(produce_result(&response).0, OUT_OF_ORDER_SEQUENCE_NUMBER);
    let next = batch(&["d"], Some((pid, epoch, 3)));
    let response: ProduceResponse = raw
        .call(
            ApiKey::Produce,
            9,
            &produce_request("once", next.clone(), -1),
        )
        .await;
    assert_eq!(produce_result(&response), (0, 3));
    let stored = tb.broker.describe_topic("once").expect("topic").partitions[0];
    assert_eq!(stored.log_end_offset, 4, "a, b, c, d once each");
    drop(raw);
    tb.stop().await;

    // After a restart the retry is still recognised: the state is rebuilt from the log.
    let tb = TestBroker::start(dir.path()).await;
    let mut raw = Raw::connect(&tb).await;
    let response: ProduceResponse = raw
        .call(ApiKey::Produce, 9, &produce_request("once", next, -1))
        .await;
    assert_eq!(produce_result(&response), (0, 3), "the pre-restart offset");
    let after = batch(&["e"], Some((pid, epoch, 4)));
    let response: ProduceResponse = raw
        .call(ApiKey::Produce, 9, &produce_request("once", after, -1))
        .await;
    assert_eq!(produce_result(&response), (0, 4));
    let stored = tb.broker.describe_topic("once").expect("topic").partitions[0];
    assert_eq!(stored.log_end_offset, 5);
    tb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_are_answered_in_order_and_acks_zero_gets_no_answer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tb = TestBroker::start(dir.path()).await;
    tb.create_topic("pipe", 1).await;
    let mut raw = Raw::connect(&tb).await;
    // Five produces and a metadata request written back to back, the first with acks=0.
    raw.send(
        ApiKey::Produce,
        9,
        &produce_request("pipe", batch(&["0"], None), 0),
    )
    .await;
    let mut sent = Vec::new();
    for i in 1..5 {
        let value = i.to_string();
        sent.push(
            raw.send(
                ApiKey::Produce,
                9,
                &produce_request("pipe", batch(&[&value], None), 1),
            )
            .await,
        );
    }
    let metadata = raw
        .send(ApiKey::Metadata, 12, &MetadataRequest::default())
        .await;
    for (i, expected) in sent.iter().enumerate() {
        let (correlation_id, response): (i32, ProduceResponse) =
            raw.receive(ApiKey::Produce, 9).await;
        assert_eq!(
            correlation_id, *expected,
            "answers in request order, none for acks=0"
        );
        assert_eq!(
            produce_result(&response),
            (0, i as i64 + 1),
            "appended in request order"
        );
    }
    let (correlation_id, _): (i32, MetadataResponse) = raw.receive(ApiKey::Metadata, 12).await;
    assert_eq!(correlation_id, metadata);
    tb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_long_polls_until_data_arrives_and_refuses_offsets_out_of_range() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tb = TestBroker::start(dir.path()).await;
    tb.create_topic("poll", 1).await;
    let mut raw = Raw::connect(&tb).await;

    let broker = tb.broker.clone();
    let producer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        broker
            .produce_batch("poll", 0, BytesMut::from(&batch(&["late"], None)[..]))
            .await
            .expect("produce");
    });
    // Waits up to 30 s for data at offset 0; the append above ends the wait.
    let started = std::time::Instant::now();
    let response: FetchResponse = raw
        .call(ApiKey::Fetch, 12, &fetch_request("poll", 0, 30_000))
        .await;
    let waited = started.elapsed();
    producer.await.expect("producer");
    let partition = &response.responses[0].partitions[0];
    assert_eq!(partition.error_code, 0);
    assert_eq!(partition.high_watermark, 1);
    assert!(!partition.records.as_ref().expect("records").is_empty());
    assert!(
        waited < Duration::from_secs(25),
        "woken by the append, not the timeout: {waited:?}"
    );

    // The bytes are the stored batch, unchanged.
    let stored = tb
        .broker
        .fetch("poll", 0, 0, 1 << 20, Duration::ZERO)
        .await
        .expect("fetch");
    assert_eq!(partition.records.as_ref(), Some(&stored.batches));

    let response: FetchResponse = raw
        .call(ApiKey::Fetch, 12, &fetch_request("poll", 5, 0))
        .await;
    assert_eq!(
        response.responses[0].partitions[0].error_code,
        OFFSET_OUT_OF_RANGE
    );
    let response: FetchResponse = raw
        .call(ApiKey::Fetch, 12, &fetch_request("poll", -3, 0))
        .await;
    assert_eq!(
        response.responses[0].partitions[0].error_code,
        OFFSET_OUT_OF_RANGE
    );
    // With nothing new, a short max wait answers empty when it runs out.
    // From v13 topics are named by id: the same bytes come back, and an unknown id is an error.
    let id = metadata_for(&mut raw, "poll").await.topics[0].topic_id;
    let mut by_id = fetch_request("", 0, 0);
    by_id.topics[0].topic_id = id;
    let response: FetchResponse = raw.call(ApiKey::Fetch, 16, &by_id).await;
    assert_eq!(response.responses[0].topic_id, id);
    let partition = &response.responses[0].partitions[0];
    assert_eq!(partition.error_code, 0);
    assert_eq!(partition.records.as_ref(), Some(&stored.batches));
    by_id.topics[0].topic_id = Default::default(); // the nil id: never a topic's
    let response: FetchResponse = raw.call(ApiKey::Fetch, 16, &by_id).await;
    assert_eq!(
        response.responses[0].partitions[0].error_code,
        UNKNOWN_TOPIC_ID
    );

    let response: FetchResponse = raw
        .call(ApiKey::Fetch, 12, &fetch_request("poll", 1, 50))
        .await;
    let partition = &response.responses[0].partitions[0];
    assert_eq!((partition.error_code, partition.high_watermark), (0, 1));
    assert!(partition.records.as_ref().is_none_or(|r| r.is_empty()));
    tb.stop().await;
}

/// ListOffsets v7 for partition 0 of `topic` at `timestamp`: (error code, offset, timestamp).
async fn list_offset(raw: &mut Raw, topic: &str, timestamp: i64) -> (i16, i64, i64) {
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
    let mut partition = ListOffsetsPartition::default();
    partition.timestamp = timestamp;
    let mut asked = ListOffsetsTopic::default();
    asked.name = TopicName(StrBytes::from_string(topic.to_owned()));
    asked.partitions = vec![partition];
    let mut request = ListOffsetsRequest::default();
    request.replica_id = kafka_protocol::messages::BrokerId(-1);
    request.topics = vec![asked];
    let response: ListOffsetsResponse = raw.call(ApiKey::ListOffsets, 7, &request).await;
    let p = &response.topics[0].partitions[0];
    (p.error_code, p.offset, p.timestamp)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_offsets_v7_finds_the_record_with_the_greatest_timestamp() {
    const MAX_TIMESTAMP: i64 = -3;
    let dir = tempfile::tempdir().expect("tempdir");
    let tb = TestBroker::start(dir.path()).await;
    tb.create_topic("times", 1).await;
    let mut raw = Raw::connect(&tb).await;
    assert_eq!(
        list_offset(&mut raw, "times", MAX_TIMESTAMP).await,
        (0, -1, -1),
        "an empty partition has no such record"
    );
    // Offsets 0..=2 then 3..=4; the latest timestamp (900) first at offset 1, again at 4.
    for timestamps in [&[100, 900, 500][..], &[300, 900]] {
        let mut builder = BatchBuilder::new(Compression::None);
        for &timestamp in timestamps {
            builder.push(RecordRef {
                key: None,
                value: Some(b"t"),
                headers: &[],
                timestamp,
            });
        }
        let request = produce_request("times", builder.build().expect("batch").freeze(), -1);
        let response: ProduceResponse = raw.call(ApiKey::Produce, 9, &request).await;
        assert_eq!(produce_result(&response).0, 0);
    }
    assert_eq!(
        list_offset(&mut raw, "times", MAX_TIMESTAMP).await,
        (0, 1, 900)
    );
    assert_eq!(list_offset(&mut raw, "times", 600).await, (0, 1, 900));
    assert_eq!(list_offset(&mut raw, "times", -1).await.1, 5);
    tb.stop().await;
}

/// Sends `T::default()` (with `prepare` applied) at every version in `versions` and checks an
/// answer with the right correlation id comes back for each: every advertised version decodes
/// and encodes, not just the ones librdkafka happens to pick.
async fn answers_every_version<T: Encodable + Default>(
    raw: &mut Raw,
    key: ApiKey,
    versions: std::ops::RangeInclusive<i16>,
    prepare: impl Fn(&mut T, i16),
) {
    for version in versions {
        let mut body = T::default();
        prepare(&mut body, version);
        let sent = raw.send(key, version, &body).await;
        let mut frame = raw
            .read_frame()
            .await
            .unwrap_or_else(|| panic!("{key:?} v{version}: connection closed"));
        let header = ResponseHeader::decode(&mut frame, key.response_header_version(version))
            .unwrap_or_else(|e| panic!("{key:?} v{version}: header: {e}"));
        assert_eq!(header.correlation_id, sent, "{key:?} v{version}");
        assert!(!frame.is_empty(), "{key:?} v{version}: a body");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_advertised_version_of_every_api_is_answered() {
    use kafka_protocol::messages::*;
    let dir = tempfile::tempdir().expect("tempdir");
    let tb = TestBroker::start(dir.path()).await;
    tb.create_topic("versions", 1).await;
    let mut raw = Raw::connect(&tb).await;
    let topic = || TopicName(StrBytes::from_static_str("versions"));
    let group = || GroupId(StrBytes::from_static_str("versions-group"));
    let versions_id = metadata_for(&mut raw, "versions").await.topics[0].topic_id;

    answers_every_version::<ProduceRequest>(&mut raw, ApiKey::Produce, 3..=9, |r, _| {
        *r = produce_request("versions", batch(&["v"], None), -1);
    })
    .await;
    answers_every_version::<FetchRequest>(&mut raw, ApiKey::Fetch, 4..=16, |r, v| {
        *r = fetch_request("versions", 0, 0);
        if v >= 13 {
            r.topics[0].topic_id = versions_id;
        }
    })
    .await;
    answers_every_version::<ListOffsetsRequest>(&mut raw, ApiKey::ListOffsets, 1..=7, |r, _| {
        let mut p = list_offsets_request::ListOffsetsPartition::default();
        p.timestamp = -1;
        let mut t = list_offsets_request::ListOffsetsTopic::default();
        t.name = topic();
        t.partitions = vec![p];
        r.topics = vec![t];
    })
    .await;
    answers_every_version::<MetadataRequest>(&mut raw, ApiKey::Metadata, 0..=12, |_, _| {}).await;
    answers_every_version::<OffsetCommitRequest>(&mut raw, ApiKey::OffsetCommit, 2..=8, |r, _| {
        r.group_id = group();
        r.generation_id_or_member_epoch = -1;
        let mut p = offset_commit_request::OffsetCommitRequestPartition::default();
        p.committed_offset = 1;
        let mut t = offset_commit_request::OffsetCommitRequestTopic::default();
        t.name = topic();
        t.partitions = vec![p];
        r.topics = vec![t];
    })
    .await;
    answers_every_version::<OffsetFetchRequest>(&mut raw, ApiKey::OffsetFetch, 1..=7, |r, _| {
        r.group_id = group();
        let mut t = offset_fetch_request::OffsetFetchRequestTopic::default();
        t.name = topic();
        t.partition_indexes = vec![0];
        r.topics = Some(vec![t]);
    })
    .await;
    answers_every_version::<FindCoordinatorRequest>(
        &mut raw,
        ApiKey::FindCoordinator,
        0..=4,
        |r, v| {
            // One key up to v3, a batch of keys from v4.
            if v < 4 {
                r.key = StrBytes::from_static_str("versions-group");
            } else {
                r.coordinator_keys = vec![StrBytes::from_static_str("versions-group")];
            }
        },
    )
    .await;
    // Without a member id (v4+) or with an unknown one, each JoinGroup is answered at once.
    answers_every_version::<JoinGroupRequest>(&mut raw, ApiKey::JoinGroup, 0..=6, |r, _| {
        r.group_id = group();
        r.session_timeout_ms = 10_000;
        r.rebalance_timeout_ms = 10_000;
        r.member_id = StrBytes::from_static_str("nobody");
        r.protocol_type = StrBytes::from_static_str("consumer");
        let mut p = join_group_request::JoinGroupRequestProtocol::default();
        p.name = StrBytes::from_static_str("range");
        r.protocols = vec![p];
    })
    .await;
    answers_every_version::<HeartbeatRequest>(&mut raw, ApiKey::Heartbeat, 0..=4, |r, _| {
        r.group_id = group()
    })
    .await;
    answers_every_version::<LeaveGroupRequest>(&mut raw, ApiKey::LeaveGroup, 0..=4, |r, v| {
        r.group_id = group();
        // One member id up to v2, a batch of members from v3.
        if v < 3 {
            r.member_id = StrBytes::from_static_str("nobody");
        } else {
            r.members = vec![leave_group_request::MemberIdentity::default()];
        }
    })
    .await;
    answers_every_version::<SyncGroupRequest>(&mut raw, ApiKey::SyncGroup, 0..=4, |r, _| {
        r.group_id = group()
    })
    .await;
    answers_every_version::<DescribeGroupsRequest>(
        &mut raw,
        ApiKey::DescribeGroups,
        0..=5,
        |r, _| {
            r.groups = vec![group()];
        },
    )
    .await;
    answers_every_version::<ListGroupsRequest>(&mut raw, ApiKey::ListGroups, 0..=4, |_, _| {})
        .await;
    answers_every_version::<ApiVersionsRequest>(&mut raw, ApiKey::ApiVersions, 0..=3, |_, _| {})
        .await;
    answers_every_version::<CreateTopicsRequest>(&mut raw, ApiKey::CreateTopics, 2..=5, |r, _| {
        let mut t = CreatableTopic::default();
        t.name = topic();
        t.num_partitions = 1;
        t.replication_factor = 1;
        r.topics = vec![t];
    })
    .await;
    answers_every_version::<DeleteTopicsRequest>(&mut raw, ApiKey::DeleteTopics, 1..=4, |r, _| {
        r.topic_names = vec![TopicName(StrBytes::from_static_str("never-was"))];
    })
    .await;
    answers_every_version::<InitProducerIdRequest>(
        &mut raw,
        ApiKey::InitProducerId,
        0..=4,
        |r, _| {
            r.producer_id = ProducerId(-1);
            r.producer_epoch = -1;
        },
    )
    .await;
    answers_every_version::<OffsetForLeaderEpochRequest>(
        &mut raw,
        ApiKey::OffsetForLeaderEpoch,
        2..=4,
        |r, _| {
            let mut p = offset_for_leader_epoch_request::OffsetForLeaderPartition::default();
            p.leader_epoch = 0;
            let mut t = offset_for_leader_epoch_request::OffsetForLeaderTopic::default();
            t.topic = topic();
            t.partitions = vec![p];
            r.topics = vec![t];
        },
    )
    .await;
    answers_every_version::<DescribeConfigsRequest>(
        &mut raw,
        ApiKey::DescribeConfigs,
        1..=4,
        |r, _| {
            let mut resource = describe_configs_request::DescribeConfigsResource::default();
            resource.resource_type = 2;
            resource.resource_name = StrBytes::from_static_str("versions");
            r.resources = vec![resource];
        },
    )
    .await;
    tb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_wait_while_busy_and_an_idle_one_makes_room() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = brook_broker::BrokerConfig::new(dir.path());
    config.log.durability = brook_broker::Durability::None;
    let broker = brook_broker::Broker::open(config).await.expect("broker");
    broker
        .create_topic(brook_broker::NewTopic::new("quiet", 1))
        .await
        .expect("topic");
    let kafka = brook_kafka::KafkaServer::start(
        broker.clone(),
        "127.0.0.1:0".parse().expect("address"),
        brook_kafka::KafkaConfig {
            connections_max: 1,
            ..brook_kafka::KafkaConfig::default()
        },
    )
    .await
    .expect("listener");
    let addr = kafka.local_addr();
    let connect = || Raw::connect_to(addr);
    // The only place is busy with a long poll (2 s on an empty partition).
    let mut first = connect().await;
    let _: ApiVersionsResponse = first
        .call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
        .await;
    first
        .send(ApiKey::Fetch, 12, &fetch_request("quiet", 0, 2000))
        .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut second = connect().await;
    second
        .send(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
        .await;
    let mut size = [0u8; 4];
    let waited = tokio::time::timeout(
        Duration::from_millis(300),
        second.stream.read_exact(&mut size),
    )
    .await;
    assert!(
        waited.is_err(),
        "the second connection is not served while the first is busy"
    );
    // The long poll ends; the first connection, idle now, is closed to let the second in.
    let _: (i32, FetchResponse) = first.receive(ApiKey::Fetch, 12).await;
    let (correlation_id, response): (i32, ApiVersionsResponse) =
        second.receive(ApiKey::ApiVersions, 3).await;
    assert_eq!(
        (correlation_id, response.error_code),
        (1, 0),
        "served once the first went idle"
    );
    assert!(first.is_closed().await, "the idle connection made room");
    kafka.stop().await.expect("stop");
    broker.close().await.expect("close");
}

/// A batch as a client would write it, with its attributes set to `attributes` (and its CRC
/// fixed to match).
fn with_attributes(batch: &Bytes, attributes: i16) -> Bytes {
    let mut edited = BytesMut::from(&batch[..]);
    edited[21..23].copy_from_slice(&attributes.to_be_bytes());
    let crc = crc32c::crc32c(&edited[21..]);
    edited[17..21].copy_from_slice(&crc.to_be_bytes());
    edited.freeze()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_batch_from_a_client_is_refused_with_invalid_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tb = TestBroker::start(dir.path()).await;
    tb.create_topic("markers", 1).await;
    let mut raw = Raw::connect(&tb).await;
    // A commit marker's shape (control record key: version 0, type 1), non-transactional.
    let marker = batch(&["\0\0\0\0\0\0"], None);
    let response: ProduceResponse = raw
        .call(
            ApiKey::Produce,
            9,
            &produce_request("markers", with_attributes(&marker, 0x20), -1),
        )
        .await;
    assert_eq!(produce_result(&response).0, INVALID_RECORD);
    let message = response.responses[0].partition_responses[0]
        .error_message
        .as_ref()
        .expect("the error says why");
    assert!(message.contains("control batch"), "{message:?}");
    // Transactional too: refused, whatever error tells it.
    let response: ProduceResponse = raw
        .call(
            ApiKey::Produce,
            9,
            &produce_request("markers", with_attributes(&marker, 0x30), -1),
        )
        .await;
    assert_ne!(
        produce_result(&response).0,
        0,
        "a transactional control batch"
    );
    let stored = tb
        .broker
        .describe_topic("markers")
        .expect("topic")
        .partitions[0];
    assert_eq!(stored.log_end_offset, 0, "nothing stored");
    tb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyless_record_on_a_compacted_topic_is_named_in_record_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tb = TestBroker::start(dir.path()).await;
    let mut raw = Raw::connect(&tb).await;
    let mut policy = CreatableTopicConfig::default();
    policy.name = StrBytes::from_static_str("cleanup.policy");
    policy.value = Some(StrBytes::from_static_str("compact"));
    let mut creatable = CreatableTopic::default();
    creatable.name = TopicName(StrBytes::from_static_str("keyed"));
    creatable.num_partitions = 1;
    creatable.replication_factor = 1;
    creatable.configs = vec![policy];
    let mut request = CreateTopicsRequest::default();
    request.topics = vec![creatable];
    let created: CreateTopicsResponse = raw.call(ApiKey::CreateTopics, 5, &request).await;
    assert_eq!(created.topics[0].error_code, 0, "compacted topic created");

    // Three records, the second without a key.
    let mut builder = BatchBuilder::new(Compression::None);
    for key in [Some(&b"a"[..]), None, Some(&b"c"[..])] {
        builder.push(RecordRef {
            key,
            value: Some(b"v"),
            headers: &[],
            timestamp: 1_700_000_000_000,
        });
    }
    let records = builder.build().expect("batch").freeze();
    for version in 8..=9 {
        let response: ProduceResponse = raw
            .call(
                ApiKey::Produce,
                version,
                &produce_request("keyed", records.clone(), -1),
            )
            .await;
        assert_eq!(produce_result(&response).0, INVALID_RECORD, "v{version}");
        let p = &response.responses[0].partition_responses[0];
        let message = p.error_message.as_ref().expect("the error says why");
        assert!(message.contains("null key"), "v{version}: {message:?}");
        assert_eq!(
            p.record_errors.len(),
            1,
            "v{version}: {:?}",
            p.record_errors
        );
        assert_eq!(p.record_errors[0].batch_index, 1, "v{version}");
        let reason = p.record_errors[0]
            .batch_index_error_message
            .as_ref()
            .expect("the record error says why");
        assert!(reason.contains("null key"), "v{version}: {reason:?}");
    }
    let stored = tb.broker.describe_topic("keyed").expect("topic").partitions[0];
    assert_eq!(stored.log_end_offset, 0, "nothing stored");
    tb.stop().await;
}

/// Flips one bit inside the record of the batch at `offset` of `topic`-0 on disk.
fn damage_batch(dir: &std::path::Path, topic: &str, offset: i64) {
    let partition = dir.join(format!("{topic}-0"));
    for entry in std::fs::read_dir(&partition).expect("partition dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "log") {
            continue;
        }
        let mut bytes = std::fs::read(&path).expect("segment");
        let found = brook_log::batch::Batches::new(&bytes)
            .map(|b| b.expect("clean"))
            .find(|b| b.header.base_offset == offset)
            .map(|b| b.position + b.bytes.len() - 2);
        if let Some(at) = found {
            bytes[at] ^= 0x01;
            std::fs::write(&path, bytes).expect("write");
            return;
        }
    }
    panic!("no batch at offset {offset}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_of_a_damaged_batch_gets_corrupt_message_and_no_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tb = TestBroker::start(dir.path()).await;
    let mut config = brook_broker::TopicConfig::default();
    config.set("segment.bytes", "1024").expect("setting");
    let mut topic = brook_broker::NewTopic::new("scarred", 1);
    topic.config = config;
    tb.broker.create_topic(topic).await.expect("topic");
    let mut raw = Raw::connect(&tb).await;
    let padding = "x".repeat(250);
    for i in 0..9 {
        let value = format!("{i} {padding}");
        let response: ProduceResponse = raw
            .call(
                ApiKey::Produce,
                9,
                &produce_request("scarred", batch(&[value.as_str()], None), -1),
            )
            .await;
        assert_eq!(produce_result(&response), (0, i));
    }
    drop(raw);
    tb.stop().await;
    // Offset 4 sits in the middle of a closed segment: nothing at open looks at it.
    damage_batch(dir.path(), "scarred", 4);

    let tb = TestBroker::start(dir.path()).await;
    let mut raw = Raw::connect(&tb).await;
    let response: FetchResponse = raw
        .call(ApiKey::Fetch, 12, &fetch_request("scarred", 4, 0))
        .await;
    let partition = &response.responses[0].partitions[0];
    assert_eq!(partition.error_code, CORRUPT_MESSAGE);
    assert!(partition.records.as_ref().is_none_or(|r| r.is_empty()));
    // From the segment's start the good batch before it is served, and nothing past it.
    let response: FetchResponse = raw
        .call(ApiKey::Fetch, 12, &fetch_request("scarred", 3, 0))
        .await;
    let partition = &response.responses[0].partitions[0];
    assert_eq!(partition.error_code, 0);
    let served: Vec<i64> =
        brook_log::batch::Batches::new(partition.records.as_deref().expect("records"))
            .map(|b| b.expect("whole").header.base_offset)
            .collect();
    assert_eq!(served, [3]);
    let counted = tb
        .broker
        .describe_topic("scarred")
        .expect("topic")
        .partitions[0]
        .corrupt_reads;
    assert_eq!(counted, 2, "both reads met the damage");
    still_serves(&mut raw).await;
    tb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotent_retry_of_an_unknown_outcome_is_stored_once_after_a_crash() {
    // A produce that failed with an unknown outcome (an fsync error answered UNAVAILABLE, a
    // lost answer) may still be in the log after a restart: its retry must not store it again.
    let dir = tempfile::tempdir().expect("tempdir");
    let tb = TestBroker::start(dir.path()).await;
    tb.create_topic("unknown", 1).await;
    let mut raw = Raw::connect(&tb).await;
    let ids: InitProducerIdResponse = raw
        .call(ApiKey::InitProducerId, 4, &idempotent_init())
        .await;
    assert_eq!(ids.error_code, 0);
    let (pid, epoch) = (ids.producer_id.0, ids.producer_epoch);
    let sent = batch(&["a", "b", "c"], Some((pid, epoch, 0)));
    raw.send(
        ApiKey::Produce,
        9,
        &produce_request("unknown", sent.clone(), -1),
    )
    .await;
    // Stored (the log end moves), but the producer never reads the answer: then the broker
    // dies without closing its log.
    let stored = async {
        while tb
            .broker
            .describe_topic("unknown")
            .expect("topic")
            .partitions[0]
            .log_end_offset
            < 3
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), stored)
        .await
        .expect("stored");
    drop(raw);
    let TestBroker { broker, kafka, .. } = tb;
    kafka.stop().await.expect("door stops");
    drop(broker);

    // The dropped broker lets go of its directory lock once its last task is done; the next
    // open recovers the log as after a crash.
    let broker = loop {
        let mut config = brook_broker::BrokerConfig::new(dir.path());
        config.log.durability = brook_broker::Durability::None;
        match brook_broker::Broker::open(config).await {
            Ok(broker) => break broker,
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    let kafka = brook_kafka::KafkaServer::start(
        broker.clone(),
        "127.0.0.1:0".parse().expect("address"),
        brook_kafka::KafkaConfig::default(),
    )
    .await
    .expect("listener");
    let bootstrap = kafka.local_addr().to_string();
    let tb = TestBroker {
        broker,
        kafka,
        bootstrap,
    };
    let mut raw = Raw::connect(&tb).await;
    let response: ProduceResponse = raw
        .call(ApiKey::Produce, 9, &produce_request("unknown", sent, -1))
        .await;
    assert_eq!(produce_result(&response), (0, 0), "the original offset");
    let next = batch(&["d"], Some((pid, epoch, 3)));
    let response: ProduceResponse = raw
        .call(ApiKey::Produce, 9, &produce_request("unknown", next, -1))
        .await;
    assert_eq!(produce_result(&response), (0, 3));
    let stored = tb
        .broker
        .describe_topic("unknown")
        .expect("topic")
        .partitions[0];
    assert_eq!(stored.log_end_offset, 4, "a, b, c once, then d");
    tb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_answers_the_request_in_flight_then_closes_the_connection() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tb = TestBroker::start(dir.path()).await;
    tb.create_topic("drain", 1).await;
    let mut raw = Raw::connect(&tb).await;
    // A long poll at the end of an empty partition: in flight until data or 30 s.
    let correlation_id = raw
        .send(ApiKey::Fetch, 12, &fetch_request("drain", 0, 30_000))
        .await;
    tokio::time::sleep(Duration::from_millis(100)).await;

    let TestBroker {
        broker,
        kafka,
        bootstrap,
    } = tb;
    let stopping = tokio::spawn(kafka.stop());
    // Answered at once (read_frame waits 10 s at most), empty, then the connection closes.
    let (answered, response): (i32, FetchResponse) = raw.receive(ApiKey::Fetch, 12).await;
    assert_eq!(answered, correlation_id);
    let partition = &response.responses[0].partitions[0];
    assert_eq!(partition.error_code, 0);
    assert!(partition.records.as_ref().is_none_or(|r| r.is_empty()));
    assert!(raw.read_frame().await.is_none(), "closed after the answer");
    tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .expect("stops in time")
        .expect("stop task")
        .expect("stops clean");
    assert!(
        TcpStream::connect(&bootstrap).await.is_err(),
        "still accepting after stop"
    );
    broker.close().await.expect("close");
}

/// Bytes of each record of the large fetches below, and how many batches (of one record each)
/// they read: about 7 MiB in one response, far more than a 16 KiB socket buffer holds.
const LARGE_RECORD_BYTES: usize = 700 * 1024;
const LARGE_BATCHES: usize = 10;

/// A topic of [`LARGE_BATCHES`] one-record batches of [`LARGE_RECORD_BYTES`]; returns the
/// stored bytes of all of them.
async fn fill_large(tb: &TestBroker, topic: &str) -> Bytes {
    tb.create_topic(topic, 1).await;
    for i in 0..LARGE_BATCHES {
        let value = vec![b'a' + i as u8; LARGE_RECORD_BYTES];
        let mut builder = BatchBuilder::new(Compression::None);
        builder.push(RecordRef {
            key: None,
            value: Some(&value),
            headers: &[],
            timestamp: 1_700_000_000_000,
        });
        let batch = builder.build().expect("batch");
        tb.broker
            .produce_batch(topic, 0, batch)
            .await
            .expect("produce");
    }
    let stored = tb
        .broker
        .fetch(topic, 0, 0, 16 << 20, Duration::ZERO)
        .await
        .expect("fetch");
    assert_eq!(stored.batches.len() / LARGE_RECORD_BYTES, LARGE_BATCHES);
    stored.batches
}

/// A fetch of everything [`fill_large`] stored, in one response.
fn large_fetch(topic: &str) -> kafka_protocol::messages::FetchRequest {
    let mut request = fetch_request(topic, 0, 0);
    request.max_bytes = 16 << 20;
    request.topics[0].partitions[0].partition_max_bytes = 16 << 20;
    request
}

/// A connection whose socket takes in at most about 16 KiB at a time.
async fn slow_reader(tb: &TestBroker) -> Raw {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(16 * 1024).expect("SO_RCVBUF");
    let addr = tb.bootstrap.parse().expect("address");
    Raw::on(socket.connect(addr).await.expect("connect"))
}

/// A Fetch response larger than the socket buffer arrives whole, at every version from the
/// oldest served to the newest (by name up to 12, by topic id from 13): its batches are the
/// stored bytes, and the frame is byte for byte what encoding the response it decodes to in
/// one buffer gives (the door sends the batches uncopied, as parts of a vectored write).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_larger_than_the_socket_buffer_arrives_whole_at_every_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tb = TestBroker::start(dir.path()).await;
    let stored = fill_large(&tb, "large").await;
    let mut raw = slow_reader(&tb).await;
    let id = metadata_for(&mut raw, "large").await.topics[0].topic_id;
    for version in [4, 5, 7, 11, 12, 13, 16] {
        let mut request = large_fetch("large");
        if version >= 13 {
            request.topics[0].topic = TopicName::default();
            request.topics[0].topic_id = id;
        }
        let sent = raw.send(ApiKey::Fetch, version, &request).await;
        // Let the door fill the socket and wait on it before anything is read.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let frame = tokio::time::timeout(PATIENCE, raw.read_frame())
            .await
            .unwrap_or_else(|_| panic!("v{version}: the whole answer within {PATIENCE:?}"))
            .expect("a response");
        let mut body = frame.clone();
        let header_version = ApiKey::Fetch.response_header_version(version);
        let header = ResponseHeader::decode(&mut body, header_version).expect("header");
        assert_eq!(header.correlation_id, sent);
        let response = FetchResponse::decode(&mut body, version).expect("body");
        assert!(body.is_empty(), "v{version}: nothing after the body");
        let partition = &response.responses[0].partitions[0];
        assert_eq!(partition.error_code, 0, "v{version}");
        assert!(
            partition.records.as_ref() == Some(&stored),
            "v{version}: the stored batches, all of them"
        );
        let mut again = BytesMut::new();
        header.encode(&mut again, header_version).expect("header");
        response.encode(&mut again, version).expect("body");
        assert!(
            again[..] == frame[..],
            "v{version}: not the one-buffer encoding"
        );
    }
    still_serves(&mut raw).await;
    tb.stop().await;
}

/// A client that hangs up in the middle of a large Fetch response costs only its connection:
/// others are served, and the door stops promptly (the connection's task ended, not stuck on a
/// write).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_leaving_mid_fetch_response_costs_only_its_connection() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tb = TestBroker::start(dir.path()).await;
    let stored = fill_large(&tb, "leave").await;
    let mut witness = Raw::connect(&tb).await;
    for read_first in [0usize, 1000, 3 << 20] {
        let mut leaver = slow_reader(&tb).await;
        leaver.send(ApiKey::Fetch, 12, &large_fetch("leave")).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut partial = vec![0u8; read_first];
        leaver
            .stream
            .read_exact(&mut partial)
            .await
            .expect("part of the answer");
        drop(leaver);
        still_serves(&mut witness).await;
    }
    let response: FetchResponse = tokio::time::timeout(
        PATIENCE,
        witness.call(ApiKey::Fetch, 12, &large_fetch("leave")),
    )
    .await
    .expect("the whole answer in time");
    let partition = &response.responses[0].partitions[0];
    assert!(partition.records.as_ref() == Some(&stored));
    drop(witness);
    tokio::time::timeout(Duration::from_secs(10), tb.stop())
        .await
        .expect("the door stops with no connection left hanging");
}

/// 100 produces written back to back, then a frame over the size limit, are answered in order,
/// land in the order sent, and the bad frame closes the connection only after the answer before
/// it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_frames_are_answered_in_order_and_a_bad_one_only_after_the_answer_before_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tb = TestBroker::start(dir.path()).await;
    tb.create_topic("ahead", 1).await;
    let mut raw = Raw::connect(&tb).await;
    let values: Vec<String> = (0..100).map(|i| format!("{i:0>2000}")).collect();
    let mut sent = Vec::new();
    for value in &values {
        let request = produce_request("ahead", batch(&[value], None), 1);
        sent.push(raw.send(ApiKey::Produce, 9, &request).await);
    }
    raw.stream
        .write_all(&i32::MAX.to_be_bytes())
        .await
        .expect("write");
    for (i, expected) in sent.iter().enumerate() {
        let (correlation_id, response): (i32, ProduceResponse) =
            raw.receive(ApiKey::Produce, 9).await;
        assert_eq!(correlation_id, *expected, "answers in request order");
        assert_eq!(
            produce_result(&response),
            (0, i as i64),
            "appended in order"
        );
    }
    assert!(raw.is_closed().await, "closed after the last answer");
    let stored = tb
        .broker
        .fetch("ahead", 0, 0, 1 << 20, Duration::ZERO)
        .await
        .expect("fetch");
    let read: Vec<String> = stored
        .records()
        .expect("decodes")
        .into_iter()
        .map(|r| String::from_utf8(r.value.expect("value").to_vec()).expect("utf-8"))
        .collect();
    assert_eq!(read, values, "stored in the order sent");
    tb.stop().await;
}
