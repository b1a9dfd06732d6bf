//! `ServeDoors`: an embedded broker opens its log to other processes in one line per door, and
//! every door serves the same log.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use brook::{Broker, ProduceRecord, ServeDoors};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_broker_serves_kafka_grpc_and_http_on_its_own_log() {
    let broker = Broker::ephemeral().await.expect("broker");
    broker
        .produce("orders", vec![ProduceRecord::value("one")])
        .await
        .expect("produce in process");
    let any = "127.0.0.1:0".parse().expect("address");
    let kafka = broker.serve_kafka(any).await.expect("kafka door");
    let grpc = broker.serve_grpc(any).await.expect("gRPC door");
    let http = broker.serve_http(any).await.expect("HTTP door");

    // Kafka: librdkafka sees the topic produced in process.
    let bootstrap = kafka.local_addr().to_string();
    let topics = tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .create()
            .expect("consumer");
        let metadata = consumer
            .fetch_metadata(Some("orders"), Duration::from_secs(10))
            .expect("metadata");
        metadata
            .topics()
            .iter()
            .map(|t| (t.name().to_owned(), t.partitions().len()))
            .collect::<Vec<_>>()
    })
    .await
    .expect("metadata task");
    assert_eq!(topics, vec![("orders".to_owned(), 1)]);

    // gRPC: the client reads the record back.
    let client = brook::Client::connect(format!("http://{}", grpc.local_addr()))
        .await
        .expect("connect");
    let fetched = client
        .fetch(brook::client::FetchRequest::new("orders", 0, 0))
        .await
        .expect("fetch over gRPC");
    assert_eq!(fetched.records.len(), 1);
    assert_eq!(fetched.records[0].value.as_deref(), Some(&b"one"[..]));

    // HTTP: the topic is described with its end offset.
    let mut stream = TcpStream::connect(http.local_addr()).expect("HTTP connect");
    stream
        .write_all(
            b"GET /v1/topics/orders HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n",
        )
        .expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains(r#""log_end_offset":1"#), "{answer}");

    // Every door is the same running handle and stops the same way.
    kafka.stop().await.expect("kafka stops");
    grpc.stop().await.expect("gRPC stops");
    http.stop().await.expect("HTTP stops");
}
