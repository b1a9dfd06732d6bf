//! Request-reply across the Kafka door, with Spring Kafka's headers: a plain Kafka caller gets
//! its answer from a brook responder on its own reply topic; a plain Kafka client that reads a
//! brook call's request and appends a reply by hand (as a Spring `@SendTo` listener would) is
//! not delivered to the caller: replies to brook's calls are bound to them, and only brook's
//! responders can bind them (docs/request-reply.md, "Who may answer").

mod kafka_support;

use std::time::Duration;

use brook_broker::reqreply::{
    Answer, CORRELATION_ID_HEADER, REPLY_PARTITION_HEADER, REPLY_TOPIC_HEADER,
};
use brook_broker::Request;
use brook_client::{CallRequest, Client};
use brook_server::{GrpcConfig, GrpcServer};
use kafka_support::{TestBroker, PATIENCE};
use rdkafka::consumer::Consumer;
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::FutureRecord;

/// The value of header `name` of `message` (the last one, as Kafka's `lastHeader`).
fn header(message: &BorrowedMessage<'_>, name: &str) -> Option<Vec<u8>> {
    let headers = message.headers()?;
    headers
        .iter()
        .filter(|h| h.key == name)
        .last()
        .and_then(|h| h.value.map(<[u8]>::to_vec))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kafka_clients_reply_to_a_grpc_call_is_not_delivered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tb = TestBroker::start(dir.path()).await;
    tb.create_topic("rpc", 1).await;
    let addr = "127.0.0.1:0".parse().expect("address");
    let grpc = GrpcServer::start(tb.broker.clone(), addr, GrpcConfig::default())
        .await
        .expect("gRPC server");
    let client = Client::connect(format!("http://{}", grpc.local_addr()))
        .await
        .expect("client");

    // A would-be responder: a Kafka consumer group member and a producer, nothing
    // brook-specific, reading the request's headers and answering by hand.
    let consumer = tb.consumer("rpc-responders", &[]);
    consumer.subscribe(&["rpc"]).expect("subscribe");
    let producer = tb.producer(&[]);
    let responder = tokio::spawn(async move {
        let request = consumer.recv().await.expect("a request");
        let reply_topic =
            String::from_utf8(header(&request, REPLY_TOPIC_HEADER).expect("reply topic"))
                .expect("UTF-8 topic name");
        let partition = header(&request, REPLY_PARTITION_HEADER).expect("reply partition");
        let partition = i32::from_be_bytes(partition[..].try_into().expect("4 bytes"));
        let id = header(&request, CORRELATION_ID_HEADER).expect("correlation id");
        let answer = format!(
            "kafka says hi to {}",
            String::from_utf8_lossy(request.payload().unwrap_or_default())
        );
        let headers = OwnedHeaders::new().insert(Header {
            key: CORRELATION_ID_HEADER,
            value: Some(&id),
        });
        // The reply topic is internal: the door may refuse the write; if it takes it, the
        // reply is not bound to the call and the broker ignores it.
        let _ = producer
            .send(
                FutureRecord::to(&reply_topic)
                    .partition(partition)
                    .payload(&answer)
                    .key("ignored")
                    .headers(headers),
                Duration::from_secs(10),
            )
            .await;
        id
    });

    let err = client
        .call(
            "rpc",
            CallRequest::value("grpc").with_timeout(Duration::from_secs(4)),
        )
        .await
        .expect_err("a reply not bound to the call is not delivered");
    assert_eq!(err.code(), brook_client::Code::DeadlineExceeded, "{err}");
    let id = responder.await.expect("responder");
    assert_eq!(id.len(), 16, "Spring-style 16-byte id");
    let stats = tb.broker.reqreply_stats();
    assert_eq!(stats.duplicate_replies, 0, "{stats:?}");
    tb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kafka_caller_gets_a_brook_responders_answer_on_its_own_reply_topic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tb = TestBroker::start(dir.path()).await;
    tb.create_topic("lookup", 1).await;
    tb.create_topic("lookup-replies", 2).await;
    let broker = tb.broker.clone();
    tokio::spawn(async move {
        broker
            .respond("lookup", "lookup-svc", |request: Request| async move {
                let value = request.value.unwrap_or_default().to_ascii_uppercase();
                Ok::<_, String>(Answer::value(value))
            })
            .await
    });

    // A Spring ReplyingKafkaTemplate's request: reply topic and partition, 16-byte id.
    let replies = tb.consumer("caller", &[]);
    replies.subscribe(&["lookup-replies"]).expect("subscribe");
    let id: [u8; 16] = *b"0123456789abcdef";
    let partition = 1i32.to_be_bytes();
    let headers = OwnedHeaders::new()
        .insert(Header {
            key: REPLY_TOPIC_HEADER,
            value: Some("lookup-replies"),
        })
        .insert(Header {
            key: REPLY_PARTITION_HEADER,
            value: Some(&partition[..]),
        })
        .insert(Header {
            key: CORRELATION_ID_HEADER,
            value: Some(&id[..]),
        });
    tb.producer(&[])
        .send(
            FutureRecord::to("lookup")
                .key("sku-1")
                .payload("abc")
                .headers(headers),
            Duration::from_secs(10),
        )
        .await
        .expect("request produced");
    let reply = tokio::time::timeout(PATIENCE, replies.recv())
        .await
        .expect("a reply in time")
        .expect("consume");
    assert_eq!(reply.partition(), 1, "the requested reply partition");
    assert_eq!(reply.payload(), Some(&b"ABC"[..]));
    assert_eq!(reply.key(), Some(&b"sku-1"[..]), "the request's key");
    assert_eq!(
        header(&reply, CORRELATION_ID_HEADER).as_deref(),
        Some(&id[..])
    );
    tb.stop().await;
}
