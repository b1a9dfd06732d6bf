//! Kafka's admin surface through librdkafka's admin API (the `rdkafka` crate), each change
//! checked from another door: CreatePartitions then a gRPC produce to the new partition and
//! keyed records routed by the new count; AlterConfigs then DescribeConfigs, the broker's view
//! and a restart; DeleteRecords then a read below the new log start refused on the Kafka, gRPC
//! and HTTP doors; DeleteGroups on a live and an empty group. And the batch Kafka's broker
//! accepts though a producer left its `maxTimestamp` at -1, over a raw socket.

mod kafka_support;

use std::time::Duration;

use brook_broker::partitioner::partition_for_key;
use brook_client::{Code, FetchRequest as GrpcFetch, ProducerRecord};
use brook_log::batch::{BatchBuilder, BatchHeader, Compression, RecordRef, HEADER_LEN};
use brook_server::{HttpConfig, HttpServer};
use bytes::Bytes;
use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, ApiKey, FetchResponse, ProduceResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::RecordBatchDecoder;
use kafka_support::raw::{fetch_request, produce_request, Raw};
use kafka_support::{admin_create, grpc, receive, TestBroker, PATIENCE};
use rdkafka::admin::{
    AdminOptions, AlterConfig, ConfigSource, NewPartitions, OwnedResourceSpecifier,
    ResourceSpecifier,
};
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::producer::FutureRecord;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const OFFSET_OUT_OF_RANGE: i16 = 1;
const CORRUPT_MESSAGE: i16 = 2;
const INVALID_REQUEST: i16 = 42;
const INVALID_CONFIG: i16 = 40;
const TS: i64 = 1_700_000_000_000;

/// The status line's code of a plain HTTP/1.1 GET.
async fn http_get_status(server: &HttpServer, path: &str) -> u16 {
    let mut stream = tokio::net::TcpStream::connect(server.local_addr())
        .await
        .expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("request");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("response");
    let text = String::from_utf8_lossy(&response);
    text.split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"))
}

/// AlterConfigs of one config of one resource (2: a topic, 4: a broker).
fn alter_request(resource_type: i8, name: &str, key: &str, value: &str) -> AlterConfigsRequest {
    let mut config = AlterableConfig::default();
    config.name = StrBytes::from_string(key.to_owned());
    config.value = Some(StrBytes::from_string(value.to_owned()));
    let mut resource = AlterConfigsResource::default();
    resource.resource_type = resource_type;
    resource.resource_name = StrBytes::from_string(name.to_owned());
    resource.configs = vec![config];
    let mut request = AlterConfigsRequest::default();
    request.resources = vec![resource];
    request
}

/// A batch of three records at TS, TS+1, TS+2 whose header says `maxTimestamp` -1, with a CRC
/// that matches (what Sarama sends).
fn batch_without_max_timestamp() -> Bytes {
    let mut builder = BatchBuilder::new(Compression::None);
    for (i, value) in ["a", "b", "c"].iter().enumerate() {
        builder.push(RecordRef {
            key: None,
            value: Some(value.as_bytes()),
            headers: &[],
            timestamp: TS + i as i64,
        });
    }
    let mut batch = builder.build().expect("batch").to_vec();
    let mut header = BatchHeader::parse(&batch).expect("header");
    assert_eq!(header.max_timestamp, TS + 2, "built right");
    header.max_timestamp = -1;
    batch[..HEADER_LEN].copy_from_slice(&header.to_bytes());
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(batch)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_whose_max_timestamp_is_minus_one_is_stored_as_kafka_stores_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tb = TestBroker::start(dir.path()).await;
    tb.create_topic("stamped", 1).await;
    let mut raw = Raw::connect(&tb).await;
    // Produce v3 (the oldest served) and v9 (flexible): both accepted.
    for (version, base) in [(3, 0), (9, 3)] {
        let response: ProduceResponse = raw
            .call(
                ApiKey::Produce,
                version,
                &produce_request("stamped", batch_without_max_timestamp(), -1),
            )
            .await;
        let partition = &response.responses[0].partition_responses[0];
        assert_eq!(partition.error_code, 0, "v{version}: {partition:?}");
        assert_eq!(partition.base_offset, base);
    }

    let response: FetchResponse = raw
        .call(ApiKey::Fetch, 12, &fetch_request("stamped", 0, 0))
        .await;
    let partition = &response.responses[0].partitions[0];
    assert_eq!(partition.error_code, 0);
    let stored = partition.records.clone().expect("records");
    for at in [0usize, stored.len() / 2] {
        // Both batches: maxTimestamp recomputed from the records, CRC valid, epoch -1.
        let header = BatchHeader::parse_checked(&stored[at..], usize::MAX).expect("valid batch");
        assert_eq!(header.max_timestamp, TS + 2);
        assert_eq!(header.partition_leader_epoch, -1);
    }
    let mut bytes = stored.clone();
    let batches = RecordBatchDecoder::decode_all(&mut bytes).expect("kafka-protocol decodes");
    let values: Vec<Bytes> = batches
        .iter()
        .flat_map(|b| b.records.iter())
        .filter_map(|r| r.value.clone())
        .collect();
    assert_eq!(values.len(), 6);
    assert_eq!(&values[..3], &[&b"a"[..], b"b", b"c"]);

    // A batch that really is broken is still refused, with Kafka's error message (v8+).
    let mut broken = batch_without_max_timestamp().to_vec();
    let last = broken.len() - 1;
    broken[last] ^= 0xff;
    let response: ProduceResponse = raw
        .call(
            ApiKey::Produce,
            9,
            &produce_request("stamped", Bytes::from(broken), -1),
        )
        .await;
    let partition = &response.responses[0].partition_responses[0];
    assert_eq!(partition.error_code, CORRUPT_MESSAGE);
    let message = partition.error_message.as_deref().expect("a message");
    assert!(message.contains("CRC"), "{message}");

    // librdkafka reads the stored batches too.
    let consumer = tb.consumer("stamped-reader", &[]);
    consumer.subscribe(&["stamped"]).expect("subscribe");
    let got = receive(&consumer, 6).await;
    assert_eq!(got[2].value.as_deref(), Some(&b"c"[..]));
    tb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_partitions_grows_the_topic_on_every_door_and_keys_follow_the_new_count() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tb = TestBroker::start(dir.path()).await;
    let admin = tb.admin();
    admin_create(&admin, "grow", 2).await;
    let (_server, client) = grpc(&tb).await;
    let options = AdminOptions::new().operation_timeout(Some(PATIENCE));

    // Not a growth: refused, nothing changes.
    let refused = admin
        .create_partitions(&[NewPartitions::new("grow", 2)], &options)
        .await
        .expect("answered");
    assert_eq!(
        refused[0].as_ref().unwrap_err().1,
        RDKafkaErrorCode::InvalidPartitions
    );
    let checked = admin
        .create_partitions(
            &[NewPartitions::new("grow", 4)],
            &AdminOptions::new()
                .operation_timeout(Some(PATIENCE))
                .validate_only(true),
        )
        .await
        .expect("answered");
    assert!(checked[0].is_ok(), "{checked:?}");
    assert_eq!(
        tb.broker
            .describe_topic("grow")
            .expect("topic")
            .partitions
            .len(),
        2
    );

    let grown = admin
        .create_partitions(&[NewPartitions::new("grow", 5)], &options)
        .await
        .expect("answered");
    assert!(grown[0].is_ok(), "{grown:?}");
    let described = client.admin().describe_topic("grow").await.expect("gRPC");
    assert_eq!(described.partitions.len(), 5);

    // gRPC produces to a new partition...
    let record = ProducerRecord {
        value: Some(Bytes::from_static(b"into the new partition")),
        partition: Some(4),
        ..ProducerRecord::default()
    };
    let placed = client.produce("grow", vec![record]).await.expect("produce");
    assert_eq!((placed[0].partition, placed[0].offset), (4, 0));
    // ...and a Kafka consumer reads it there.
    let consumer = tb.consumer("grow-reader", &[]);
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset("grow", 4, Offset::Beginning)
        .expect("assignment");
    consumer.assign(&assignment).expect("assign");
    let got = receive(&consumer, 1).await;
    assert_eq!(
        got[0].value.as_deref(),
        Some(&b"into the new partition"[..])
    );

    // Keyed records follow the new count: brook's routing and a Kafka producer using
    // murmur2 (as the Java client does) agree, over five partitions.
    let producer = tb.producer(&[("partitioner", "murmur2_random")]);
    for i in 0..20 {
        let key = format!("key-{i}");
        let expected = partition_for_key(key.as_bytes(), 5);
        let delivery = producer
            .send(
                FutureRecord::to("grow").key(&key).payload("v"),
                Duration::from_secs(10),
            )
            .await
            .expect("Kafka produce");
        let kafka_partition = delivery.partition;
        let record = ProducerRecord {
            key: Some(Bytes::from(key.clone())),
            value: Some(Bytes::from_static(b"v")),
            ..ProducerRecord::default()
        };
        let placed = client.produce("grow", vec![record]).await.expect("produce");
        assert_eq!(placed[0].partition, expected, "{key} over gRPC");
        assert_eq!(kafka_partition as u32, expected, "{key} over Kafka");
    }
    tb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alter_configs_apply_live_persist_and_show_on_every_door() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tb = TestBroker::start(dir.path()).await;
    let admin = tb.admin();
    admin_create(&admin, "tuned", 1).await;
    let options = AdminOptions::new().operation_timeout(Some(PATIENCE));

    let change = AlterConfig::new(ResourceSpecifier::Topic("tuned"))
        .set("retention.ms", "3600000")
        .set("segment.bytes", "1048576");
    let results = admin
        .alter_configs(&[change], &options)
        .await
        .expect("answered");
    assert_eq!(
        results[0],
        Ok(OwnedResourceSpecifier::Topic("tuned".into()))
    );
    let described = admin
        .describe_configs(&[ResourceSpecifier::Topic("tuned")], &options)
        .await
        .expect("answered");
    let resource = described[0].as_ref().expect("described");
    let entry = resource.get("retention.ms").expect("retention.ms");
    assert_eq!(entry.value.as_deref(), Some("3600000"));
    assert_eq!(entry.source, ConfigSource::DynamicTopic);
    assert_eq!(
        resource
            .get("segment.bytes")
            .and_then(|e| e.value.as_deref()),
        Some("1048576")
    );
    // The broker's own view: every door reads this.
    let topic = tb.broker.describe_topic("tuned").expect("topic");
    assert_eq!(topic.config.retention_ms_max, Some(3_600_000));
    assert_eq!(topic.config.segment_bytes_max, 1_048_576);

    // AlterConfigs replaces the whole set: segment.bytes goes back to the default.
    let change = AlterConfig::new(ResourceSpecifier::Topic("tuned")).set("retention.ms", "-1");
    admin
        .alter_configs(&[change], &options)
        .await
        .expect("answered")[0]
        .as_ref()
        .expect("altered");
    let topic = tb.broker.describe_topic("tuned").expect("topic");
    assert_eq!(topic.config.retention_ms_max, None);
    assert_eq!(topic.overrides, vec![("retention.ms", "-1".to_owned())]);

    // Bad values and unknown names change nothing. (The rdkafka crate drops AlterConfigs'
    // per-resource errors, so the errors themselves are read over a raw connection.)
    let mut raw = Raw::connect(&tb).await;
    for (key, value) in [
        ("segment.bytes", "1"),
        ("no.such.config", "1"),
        ("cleanup.policy", "shred"),
    ] {
        let change = AlterConfig::new(ResourceSpecifier::Topic("tuned")).set(key, value);
        admin
            .alter_configs(&[change], &options)
            .await
            .expect("answered");
        let response: AlterConfigsResponse = raw
            .call(
                ApiKey::AlterConfigs,
                2,
                &alter_request(2, "tuned", key, value),
            )
            .await;
        let result = &response.responses[0];
        assert_eq!(
            result.error_code, INVALID_CONFIG,
            "{key}={value}: {result:?}"
        );
        assert!(result.error_message.is_some());
    }
    assert_eq!(
        tb.broker.describe_topic("tuned").expect("topic").overrides,
        vec![("retention.ms", "-1".to_owned())],
        "nothing changed"
    );
    // The broker's configs are fixed at start, and the error says where they are set.
    let response: AlterConfigsResponse = raw
        .call(
            ApiKey::AlterConfigs,
            2,
            &alter_request(4, "1", "log.retention.ms", "1"),
        )
        .await;
    let result = &response.responses[0];
    assert_eq!(result.error_code, INVALID_REQUEST);
    let message = result.error_message.as_deref().expect("a message");
    assert!(message.contains("brook serve"), "{message}");

    // Persisted: a restart keeps it.
    let data = dir.path().to_owned();
    tb.stop().await;
    let tb = TestBroker::start(&data).await;
    let topic = tb.broker.describe_topic("tuned").expect("topic");
    assert_eq!(topic.config.retention_ms_max, None);
    assert_eq!(topic.overrides, vec![("retention.ms", "-1".to_owned())]);
    tb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_records_moves_the_log_start_and_every_door_refuses_to_read_below_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tb = TestBroker::start(dir.path()).await;
    let admin = tb.admin();
    admin_create(&admin, "trimmed", 1).await;
    let producer = tb.producer(&[]);
    for i in 0..10 {
        producer
            .send(
                FutureRecord::<(), _>::to("trimmed")
                    .partition(0)
                    .payload(&format!("r{i}")),
                Duration::from_secs(10),
            )
            .await
            .expect("produce");
    }
    let mut before = TopicPartitionList::new();
    before
        .add_partition_offset("trimmed", 0, Offset::Offset(6))
        .expect("offset");
    let deleted = admin
        .delete_records(&before, &AdminOptions::new())
        .await
        .expect("DeleteRecords");
    let element = &deleted.elements_for_topic("trimmed")[0];
    assert_eq!(element.offset(), Offset::Offset(6), "the new low watermark");
    assert!(element.error().is_ok());
    let described = tb.broker.describe_topic("trimmed").expect("topic");
    assert_eq!(described.partitions[0].log_start_offset, 6);

    // Kafka: a fetch below the new start.
    let mut raw = Raw::connect(&tb).await;
    let response: FetchResponse = raw
        .call(ApiKey::Fetch, 12, &fetch_request("trimmed", 2, 0))
        .await;
    assert_eq!(
        response.responses[0].partitions[0].error_code,
        OFFSET_OUT_OF_RANGE
    );
    assert_eq!(response.responses[0].partitions[0].log_start_offset, 6);
    // gRPC.
    let (_server, client) = grpc(&tb).await;
    let refused = client
        .fetch(GrpcFetch {
            topic: "trimmed".into(),
            partition: 0,
            offset: 2,
            max_bytes: 0,
            max_wait: Duration::ZERO,
        })
        .await
        .expect_err("below the log start");
    assert_eq!(refused.code(), Code::OutOfRange, "{refused}");
    // HTTP.
    let http = HttpServer::start(
        tb.broker.clone(),
        "127.0.0.1:0".parse().expect("address"),
        HttpConfig::default(),
    )
    .await
    .expect("HTTP server");
    assert_eq!(
        http_get_status(&http, "/v1/topics/trimmed/partitions/0/records?offset=2").await,
        416
    );
    assert_eq!(
        http_get_status(&http, "/v1/topics/trimmed/partitions/0/records?offset=6").await,
        200
    );
    // A Kafka consumer starting from the beginning starts at the new start.
    let consumer = tb.consumer("trimmed-reader", &[]);
    consumer.subscribe(&["trimmed"]).expect("subscribe");
    let got = receive(&consumer, 4).await;
    assert_eq!(got[0].offset, 6);
    assert_eq!(got[0].value.as_deref(), Some(&b"r6"[..]));

    // -1 means "up to the high watermark"; past it is out of range.
    let mut all = TopicPartitionList::new();
    all.add_partition_offset("trimmed", 0, Offset::End)
        .expect("offset");
    let deleted = admin
        .delete_records(&all, &AdminOptions::new())
        .await
        .expect("DeleteRecords");
    assert_eq!(
        deleted.elements_for_topic("trimmed")[0].offset(),
        Offset::Offset(10)
    );
    let mut past = TopicPartitionList::new();
    past.add_partition_offset("trimmed", 0, Offset::Offset(99))
        .expect("offset");
    let refused = admin
        .delete_records(&past, &AdminOptions::new())
        .await
        .expect("answered");
    assert!(refused.elements_for_topic("trimmed")[0].error().is_err());
    http.stop().await.expect("HTTP stops");
    tb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_groups_refuses_a_live_group_and_deletes_an_empty_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tb = TestBroker::start(dir.path()).await;
    let admin = tb.admin();
    admin_create(&admin, "doomed", 1).await;
    let producer = tb.producer(&[]);
    producer
        .send(
            FutureRecord::<(), _>::to("doomed").payload("x"),
            Duration::from_secs(10),
        )
        .await
        .expect("produce");
    let consumer = tb.consumer("doomed-group", &[]);
    consumer.subscribe(&["doomed"]).expect("subscribe");
    receive(&consumer, 1).await;
    consumer
        .commit_consumer_state(CommitMode::Sync)
        .expect("commit");

    let options = AdminOptions::new().operation_timeout(Some(PATIENCE));
    let live = admin
        .delete_groups(&["doomed-group"], &options)
        .await
        .expect("answered");
    assert_eq!(
        live[0].as_ref().unwrap_err().1,
        RDKafkaErrorCode::NonEmptyGroup
    );
    assert!(tb.broker.describe_group("doomed-group").is_ok());

    drop(consumer); // leaves the group
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let result = admin
            .delete_groups(&["doomed-group"], &options)
            .await
            .expect("answered");
        match &result[0] {
            Ok(_) => break,
            Err((_, RDKafkaErrorCode::NonEmptyGroup)) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(other) => panic!("{other:?}"),
        }
    }
    assert!(tb.broker.describe_group("doomed-group").is_err(), "gone");
    let again = admin
        .delete_groups(&["doomed-group"], &options)
        .await
        .expect("answered");
    assert_eq!(
        again[0].as_ref().unwrap_err().1,
        RDKafkaErrorCode::GroupIdNotFound
    );
    tb.stop().await;
}
