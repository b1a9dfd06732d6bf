//! The Kafka door over a plain TCP socket, no client library: the broker's own cost per ack,
//! without librdkafka's threads and queues or tonic and hyper.
//!
//! Each producer has its own connection and sends one ProduceRequest at a time (`--in-flight
//! 1`): its records as one RecordBatch v2 built with brook's batch builder, the request
//! encoded with the `kafka-protocol` crate (as brook's Kafka door decodes it), the socket with
//! TCP_NODELAY. The ack is the ProduceResponse read back: a partition error code other than 0
//! fails the run with the error's name. Topics are prepared over the same wire (Metadata,
//! CreateTopics with `brook.durability` when `--durability` is set, ListOffsets,
//! DeleteTopics). It benches produce only: consuming over Kafka is `--protocol kafka`'s.
//!
//! It needs no `bench-kafka` build (nothing of librdkafka); it reaches the embedded server's
//! Kafka door or `--kafka-addr`.

use std::sync::Arc;

use anyhow::{bail, ensure, Context};
use bytes::{Bytes, BytesMut};
use futures::future::BoxFuture;
use futures::FutureExt;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
    ListOffsetsRequest, ListOffsetsResponse, MetadataRequest, MetadataResponse, ProduceRequest,
    ProduceResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

use super::{record_batch, Ack, BenchConsumer, BenchProducer, ProducerShape, Protocol, TopicSpec};

/// The versions the bench speaks: the newest brook's door serves (docs/kafka.md), so the
/// door does no down-conversion.
const PRODUCE_VERSION: i16 = 9;
const METADATA_VERSION: i16 = 12;
const CREATE_TOPICS_VERSION: i16 = 5;
const DELETE_TOPICS_VERSION: i16 = 4;
const LIST_OFFSETS_VERSION: i16 = 7;
/// How long the broker may take over a produce or an admin call.
const REQUEST_TIMEOUT_MS: i32 = 10_000;
/// The largest response frame the bench reads (a produce answer is tens of bytes).
const RESPONSE_BYTES_MAX: usize = 64 << 20;
/// The client id the broker sees.
const CLIENT_ID: &str = "brook-bench-kafka-raw";

/// Why a consume or e2e run refuses this protocol.
pub(crate) const PRODUCE_ONLY: &str =
    "--protocol kafka-raw benches produce only (one request in flight): consume and e2e over \
     Kafka are --protocol kafka's";

/// `acks`: the produce requests' acks (1, or -1 for all).
pub(super) async fn connect(addr: &str, acks: i16) -> anyhow::Result<Box<dyn Protocol>> {
    let admin = Conn::connect(addr).await?;
    Ok(Box::new(KafkaRaw {
        addr: addr.to_owned(),
        acks,
        admin: Mutex::new(admin),
    }))
}

struct KafkaRaw {
    addr: String,
    acks: i16,
    /// For admin calls; each producer has its own connection.
    admin: Mutex<Conn>,
}

/// One Kafka connection, one request at a time.
struct Conn {
    stream: TcpStream,
    next_correlation: i32,
    /// Reused for every request's frame.
    out: BytesMut,
}

impl Conn {
    async fn connect(addr: &str) -> anyhow::Result<Conn> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("cannot connect to the Kafka door at {addr}"))?;
        stream.set_nodelay(true).context("TCP_NODELAY")?;
        Ok(Conn {
            stream,
            next_correlation: 0,
            out: BytesMut::with_capacity(4096),
        })
    }

    /// Writes one request of `key` at `version`; returns its correlation id.
    async fn send<T: Encodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        body: &T,
    ) -> anyhow::Result<i32> {
        let correlation_id = self.next_correlation;
        self.next_correlation = self.next_correlation.wrapping_add(1);
        let mut header = RequestHeader::default();
        header.request_api_key = key as i16;
        header.request_api_version = version;
        header.correlation_id = correlation_id;
        header.client_id = Some(StrBytes::from_static_str(CLIENT_ID));
        self.out.clear();
        self.out.extend_from_slice(&[0; 4]);
        header
            .encode(&mut self.out, key.request_header_version(version))
            .with_context(|| format!("encode a {key:?} v{version} request header"))?;
        body.encode(&mut self.out, version)
            .with_context(|| format!("encode a {key:?} v{version} request"))?;
        let size = i32::try_from(self.out.len() - 4).context("request too large")?;
        self.out[..4].copy_from_slice(&size.to_be_bytes());
        self.stream
            .write_all(&self.out)
            .await
            .context("write to the Kafka door")?;
        Ok(correlation_id)
    }

    /// Reads the answer to request `correlation_id` of `key` at `version`.
    async fn receive<R: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        correlation_id: i32,
    ) -> anyhow::Result<R> {
        let mut size = [0u8; 4];
        self.stream
            .read_exact(&mut size)
            .await
            .context("the Kafka door closed the connection")?;
        let size = usize::try_from(i32::from_be_bytes(size)).context("negative frame size")?;
        ensure!(
            size <= RESPONSE_BYTES_MAX,
            "a {size}-byte response frame: more than {RESPONSE_BYTES_MAX}"
        );
        let mut frame = vec![0; size];
        self.stream
            .read_exact(&mut frame)
            .await
            .context("the Kafka door closed the connection mid-frame")?;
        let mut frame = Bytes::from(frame);
        let header = ResponseHeader::decode(&mut frame, key.response_header_version(version))
            .with_context(|| format!("decode a {key:?} response header"))?;
        ensure!(
            header.correlation_id == correlation_id,
            "answer to request {} where {correlation_id} was awaited",
            header.correlation_id
        );
        R::decode(&mut frame, version)
            .with_context(|| format!("decode a {key:?} v{version} response"))
    }

    async fn call<T: Encodable, R: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        body: &T,
    ) -> anyhow::Result<R> {
        let correlation_id = self.send(key, version, body).await?;
        self.receive(key, version, correlation_id).await
    }
}

/// `Ok` for error code 0, else the error's Kafka name and the broker's message.
fn check(code: i16, message: Option<&StrBytes>, what: &str) -> anyhow::Result<()> {
    if code == 0 {
        return Ok(());
    }
    let name = ResponseError::try_from_code(code).map_or_else(
        || format!("error code {code}"),
        |e| format!("{e:?} ({code})"),
    );
    match message {
        Some(message) => bail!("{what}: {name}: {}", message.as_str()),
        None => bail!("{what}: {name}"),
    }
}

fn topic_name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_owned()))
}

impl KafkaRaw {
    /// The topic's partition count, or `None` when the broker does not know the topic
    /// (asked without auto-creation).
    async fn partitions(&self, topic: &str) -> anyhow::Result<Option<usize>> {
        let mut wanted = MetadataRequestTopic::default();
        wanted.name = Some(topic_name(topic));
        let mut request = MetadataRequest::default();
        request.topics = Some(vec![wanted]);
        request.allow_auto_topic_creation = false;
        let response: MetadataResponse = (self.admin.lock().await)
            .call(ApiKey::Metadata, METADATA_VERSION, &request)
            .await?;
        let Some(found) = response.topics.first() else {
            bail!("Metadata for {topic}: no topic in the answer");
        };
        if found.error_code == ResponseError::UnknownTopicOrPartition.code() {
            return Ok(None);
        }
        check(found.error_code, None, &format!("Metadata for {topic}"))?;
        Ok(Some(found.partitions.len()))
    }
}

impl Protocol for KafkaRaw {
    fn prepare_topic<'a>(&'a self, spec: &'a TopicSpec) -> BoxFuture<'a, anyhow::Result<bool>> {
        async move {
            if let Some(partitions) = self.partitions(&spec.name).await? {
                ensure!(
                    partitions == spec.partitions as usize,
                    "topic {} exists with {partitions} partitions, not {}: choose another --topic",
                    spec.name,
                    spec.partitions
                );
                return Ok(false);
            }
            let mut topic = CreatableTopic::default();
            topic.name = topic_name(&spec.name);
            topic.num_partitions = i32::try_from(spec.partitions).context("--partitions")?;
            topic.replication_factor = 1;
            if let Some(durability) = spec.durability {
                let mut config = CreatableTopicConfig::default();
                config.name = StrBytes::from_static_str("brook.durability");
                config.value = Some(StrBytes::from_string(durability.to_string()));
                topic.configs = vec![config];
            }
            let mut request = CreateTopicsRequest::default();
            request.topics = vec![topic];
            request.timeout_ms = REQUEST_TIMEOUT_MS;
            let response: CreateTopicsResponse = (self.admin.lock().await)
                .call(ApiKey::CreateTopics, CREATE_TOPICS_VERSION, &request)
                .await?;
            for created in &response.topics {
                let what = format!("CreateTopics {}", spec.name);
                check(created.error_code, created.error_message.as_ref(), &what)?;
            }
            Ok(true)
        }
        .boxed()
    }

    fn end_offsets<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, anyhow::Result<Vec<u64>>> {
        async move {
            let Some(count) = self.partitions(topic).await? else {
                bail!("topic {topic} does not exist");
            };
            let mut wanted = ListOffsetsTopic::default();
            wanted.name = topic_name(topic);
            wanted.partitions = (0..count)
                .map(|index| {
                    let mut partition = ListOffsetsPartition::default();
                    partition.partition_index = i32::try_from(index).unwrap_or(i32::MAX);
                    partition.current_leader_epoch = -1;
                    partition.timestamp = -1; // the latest offset: the high watermark
                    partition
                })
                .collect();
            let mut request = ListOffsetsRequest::default();
            request.replica_id = (-1).into();
            request.topics = vec![wanted];
            let response: ListOffsetsResponse = (self.admin.lock().await)
                .call(ApiKey::ListOffsets, LIST_OFFSETS_VERSION, &request)
                .await?;
            let mut ends = vec![0; count];
            for answered in response.topics.iter().flat_map(|t| &t.partitions) {
                check(answered.error_code, None, &format!("ListOffsets {topic}"))?;
                let index = usize::try_from(answered.partition_index).context("partition")?;
                let end = u64::try_from(answered.offset).context("negative offset")?;
                *ends.get_mut(index).context("an unknown partition")? = end;
            }
            Ok(ends)
        }
        .boxed()
    }

    fn delete_topic<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, anyhow::Result<()>> {
        async move {
            let mut request = DeleteTopicsRequest::default();
            request.topic_names = vec![topic_name(topic)];
            request.timeout_ms = REQUEST_TIMEOUT_MS;
            let response: DeleteTopicsResponse = (self.admin.lock().await)
                .call(ApiKey::DeleteTopics, DELETE_TOPICS_VERSION, &request)
                .await?;
            for deleted in &response.responses {
                let what = format!("DeleteTopics {topic}");
                check(deleted.error_code, deleted.error_message.as_ref(), &what)?;
            }
            Ok(())
        }
        .boxed()
    }

    fn producer<'a>(
        &'a self,
        topic: &'a str,
        shape: ProducerShape,
    ) -> BoxFuture<'a, anyhow::Result<Box<dyn BenchProducer>>> {
        async move {
            ensure!(
                shape.in_flight == 1,
                "--protocol kafka-raw sends one request at a time: use --in-flight 1"
            );
            let conn = Conn::connect(&self.addr).await?;
            Ok(Box::new(RawProducer {
                conn: Arc::new(Mutex::new(conn)),
                topic: topic_name(topic),
                acks: self.acks,
            }) as Box<dyn BenchProducer>)
        }
        .boxed()
    }

    fn consumer<'a>(
        &'a self,
        _topic: &'a str,
        _starts: Vec<(u32, u64)>,
    ) -> BoxFuture<'a, anyhow::Result<Box<dyn BenchConsumer>>> {
        async move { bail!(PRODUCE_ONLY) }.boxed()
    }
}

struct RawProducer {
    /// Held from a request's write to its answer's read: one request in flight.
    conn: Arc<Mutex<Conn>>,
    topic: TopicName,
    acks: i16,
}

impl RawProducer {
    /// One ProduceRequest of `values` as one batch to `partition`.
    fn request(&self, partition: u32, values: &[Bytes]) -> anyhow::Result<ProduceRequest> {
        let mut data = PartitionProduceData::default();
        data.index = i32::try_from(partition).context("partition")?;
        data.records = Some(record_batch(values)?);
        let mut topic = TopicProduceData::default();
        topic.name = self.topic.clone();
        topic.partition_data = vec![data];
        let mut request = ProduceRequest::default();
        request.acks = self.acks;
        request.timeout_ms = REQUEST_TIMEOUT_MS;
        request.topic_data = vec![topic];
        Ok(request)
    }
}

impl BenchProducer for RawProducer {
    fn send_batch(&self, partition: u32, values: Vec<Bytes>) -> BoxFuture<'_, anyhow::Result<Ack>> {
        async move {
            let request = self.request(partition, &values)?;
            let mut conn = Arc::clone(&self.conn).lock_owned().await;
            let correlation_id = conn
                .send(ApiKey::Produce, PRODUCE_VERSION, &request)
                .await?;
            let ack: Ack = async move {
                let response: ProduceResponse = conn
                    .receive(ApiKey::Produce, PRODUCE_VERSION, correlation_id)
                    .await?;
                let answered = response
                    .responses
                    .iter()
                    .flat_map(|t| &t.partition_responses);
                let mut partitions = 0;
                for answer in answered {
                    check(answer.error_code, answer.error_message.as_ref(), "produce")?;
                    partitions += 1;
                }
                ensure!(
                    partitions == 1,
                    "produce: {partitions} partitions answered, not 1"
                );
                Ok(())
            }
            .boxed();
            Ok(ack)
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use brook::broker::Durability;
    use brook::server::DoorKind;

    use super::*;
    use crate::Target;

    fn shape(in_flight: usize) -> ProducerShape {
        ProducerShape {
            batch: 1,
            record_bytes: 5,
            in_flight,
            records: 3,
        }
    }

    /// Over the embedded server's real Kafka door (its default durability `sync`): the topic
    /// is created with durability `none`, three records are acked one request at a time, and
    /// the broker holds them, byte for byte, at offsets 0, 1, 2.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn produced_records_are_acked_and_read_back() {
        let target = Target::start(true, None).await.expect("server");
        let addr = target
            .door_addr(DoorKind::Kafka)
            .expect("Kafka door")
            .to_string();
        let kafka = connect(&addr, 1).await.expect("connect");
        let spec = TopicSpec {
            name: "raw".into(),
            partitions: 2,
            durability: Some(Durability::None),
        };
        assert!(kafka.prepare_topic(&spec).await.expect("create"), "created");
        assert!(!kafka.prepare_topic(&spec).await.expect("exists"), "found");
        let producer = kafka.producer("raw", shape(1)).await.expect("producer");
        for value in ["one", "two", "three"] {
            let ack = producer
                .send_batch(1, vec![Bytes::from(value)])
                .await
                .expect("sent");
            ack.await.expect("acked");
        }
        assert_eq!(kafka.end_offsets("raw").await.expect("ends"), [0, 3]);
        let broker = target.broker().expect("embedded broker");
        let config = broker.describe_topic("raw").expect("topic").config;
        assert_eq!(config.durability, Durability::None);
        let fetched = broker
            .fetch("raw", 1, 0, 1 << 20, Duration::ZERO)
            .await
            .expect("fetch");
        let records = fetched.records().expect("records");
        let read: Vec<_> = records
            .iter()
            .map(|r| (r.offset, r.value.clone().expect("value")))
            .collect();
        assert_eq!(
            read,
            [(0, "one".into()), (1, "two".into()), (2, "three".into())]
        );
        kafka.delete_topic("raw").await.expect("delete");
        assert!(broker.describe_topic("raw").is_err(), "deleted");
        target.stop().await.expect("stop");
    }

    /// A produce the broker refuses fails its ack with the Kafka error's name; more than one
    /// request in flight is refused before a connection opens.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refused_produce_fails_with_the_error_name() {
        let target = Target::start(true, Some(Durability::None))
            .await
            .expect("server");
        let addr = target
            .door_addr(DoorKind::Kafka)
            .expect("Kafka door")
            .to_string();
        let kafka = connect(&addr, -1).await.expect("connect");
        let spec = TopicSpec {
            name: "one".into(),
            partitions: 1,
            durability: None,
        };
        kafka.prepare_topic(&spec).await.expect("create");
        let many = kafka
            .producer("one", shape(4))
            .await
            .err()
            .expect("refused");
        assert!(many.to_string().contains("--in-flight 1"), "{many}");
        let producer = kafka.producer("one", shape(1)).await.expect("producer");
        let ack = producer
            .send_batch(7, vec![Bytes::from("x")])
            .await
            .expect("sent");
        let refused = format!("{:#}", ack.await.expect_err("no partition 7"));
        assert!(refused.contains("UnknownTopicOrPartition"), "{refused}");
        // The connection is still usable: a good produce after the refused one is acked.
        let ack = producer
            .send_batch(0, vec![Bytes::from("y")])
            .await
            .expect("sent");
        ack.await.expect("acked");
        assert_eq!(kafka.end_offsets("one").await.expect("ends"), [1]);
        target.stop().await.expect("stop");
    }

    /// Without a Kafka door to reach, the protocol refuses to start, naming the address.
    #[tokio::test]
    async fn no_door_no_run() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        drop(listener);
        let err = connect(&addr, 1).await.err().expect("nothing listens");
        let text = format!("{err:#}");
        assert!(text.contains("cannot connect to the Kafka door") && text.contains(&addr));
    }
}
