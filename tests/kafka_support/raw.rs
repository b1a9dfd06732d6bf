//! A Kafka connection driven by hand over a raw `TcpStream`, for tests that check the door
//! byte by byte: requests encoded with the `kafka-protocol` crate, responses decoded with it.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, FetchRequest, ProduceRequest, RequestHeader, ResponseHeader, SaslAuthenticateRequest,
    SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::TestBroker;

/// A Kafka connection driven by hand.
pub(crate) struct Raw {
    pub stream: TcpStream,
    next_correlation: i32,
}

impl Raw {
    pub(crate) async fn connect(tb: &TestBroker) -> Raw {
        Raw::connect_to(&tb.bootstrap).await
    }

    /// A connection on a socket the test set up itself (a small receive buffer, say).
    pub(crate) fn on(stream: TcpStream) -> Raw {
        Raw {
            stream,
            next_correlation: 1,
        }
    }

    /// A connection to a listener that is not a [`TestBroker`]'s.
    pub(crate) async fn connect_to(addr: impl tokio::net::ToSocketAddrs) -> Raw {
        Raw {
            stream: TcpStream::connect(addr).await.expect("connect"),
            next_correlation: 1,
        }
    }

    /// Writes one request; returns its correlation id.
    pub(crate) async fn send<T: Encodable>(&mut self, key: ApiKey, version: i16, body: &T) -> i32 {
        let correlation_id = self.next_correlation;
        self.next_correlation += 1;
        let mut header = RequestHeader::default();
        header.request_api_key = key as i16;
        header.request_api_version = version;
        header.correlation_id = correlation_id;
        header.client_id = Some(StrBytes::from_static_str("raw-test"));
        let mut buf = BytesMut::new();
        header
            .encode(&mut buf, key.request_header_version(version))
            .expect("header");
        body.encode(&mut buf, version)
            .unwrap_or_else(|e| panic!("{key:?} v{version} body: {e}"));
        self.write_frame(&buf).await;
        correlation_id
    }

    pub(crate) async fn write_frame(&mut self, body: &[u8]) {
        let mut frame = (body.len() as i32).to_be_bytes().to_vec();
        frame.extend_from_slice(body);
        self.stream.write_all(&frame).await.expect("write");
    }

    /// The next response frame, or `None` when the broker closed the connection.
    pub(crate) async fn read_frame(&mut self) -> Option<Bytes> {
        let mut size = [0u8; 4];
        let read = tokio::time::timeout(Duration::from_secs(10), self.stream.read_exact(&mut size))
            .await
            .expect("an answer or a close within 10 s");
        if read.is_err() {
            return None;
        }
        let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
        self.stream.read_exact(&mut body).await.ok()?;
        Some(Bytes::from(body))
    }

    /// Reads a response of `key` at `version`: its correlation id and body.
    pub(crate) async fn receive<R: Decodable>(&mut self, key: ApiKey, version: i16) -> (i32, R) {
        let mut frame = self.read_frame().await.expect("a response");
        let header = ResponseHeader::decode(&mut frame, key.response_header_version(version))
            .expect("header");
        let body = R::decode(&mut frame, version).expect("body");
        (header.correlation_id, body)
    }

    pub(crate) async fn call<T: Encodable, R: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        body: &T,
    ) -> R {
        let sent = self.send(key, version, body).await;
        let (correlation_id, response) = self.receive(key, version).await;
        assert_eq!(correlation_id, sent);
        response
    }

    /// A SASL PLAIN login as `user` with `password` (SaslHandshake v1, then SaslAuthenticate
    /// v2): the door's answer, success or refusal.
    pub(crate) async fn sasl_plain(
        &mut self,
        user: &str,
        password: &str,
    ) -> SaslAuthenticateResponse {
        let handshake: SaslHandshakeResponse = self
            .call(
                ApiKey::SaslHandshake,
                1,
                &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")),
            )
            .await;
        assert_eq!(handshake.error_code, 0, "PLAIN is offered");
        self.call(
            ApiKey::SaslAuthenticate,
            2,
            &SaslAuthenticateRequest::default()
                .with_auth_bytes(format!("\0{user}\0{password}").into_bytes().into()),
        )
        .await
    }

    /// Whether the broker closed this connection (rather than answering).
    pub(crate) async fn is_closed(&mut self) -> bool {
        self.read_frame().await.is_none()
    }
}

/// Produce of `records` (one batch) to partition 0 of `topic`.
pub(crate) fn produce_request(topic: &str, records: Bytes, acks: i16) -> ProduceRequest {
    let mut partition = PartitionProduceData::default();
    partition.index = 0;
    partition.records = Some(records);
    let mut topic_data = TopicProduceData::default();
    topic_data.name = TopicName(StrBytes::from_string(topic.to_owned()));
    topic_data.partition_data = vec![partition];
    let mut request = ProduceRequest::default();
    request.acks = acks;
    request.timeout_ms = 5000;
    request.topic_data = vec![topic_data];
    request
}

/// Fetch of partition 0 of `topic` from `offset`, waiting up to `max_wait_ms` for a byte.
pub(crate) fn fetch_request(topic: &str, offset: i64, max_wait_ms: i32) -> FetchRequest {
    let mut partition = FetchPartition::default();
    partition.partition = 0;
    partition.fetch_offset = offset;
    partition.partition_max_bytes = 1 << 20;
    let mut fetch_topic = FetchTopic::default();
    fetch_topic.topic = TopicName(StrBytes::from_string(topic.to_owned()));
    fetch_topic.partitions = vec![partition];
    let mut request = FetchRequest::default();
    request.max_wait_ms = max_wait_ms;
    request.min_bytes = 1;
    request.max_bytes = 1 << 20;
    request.topics = vec![fetch_topic];
    request
}
