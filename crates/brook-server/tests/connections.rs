//! The connection cap of the gRPC and HTTP doors, over real sockets: with `connections_max`
//! connections open and busy, the next client's connect succeeds but nothing of it is served
//! until one of them is no longer busy; that one, idle now, is closed to make room, and the
//! client is served. (The Kafka door's twin is in the workspace's `tests/kafka_wire.rs`; the cap
//! itself is brook-door's accept loop; floods of idle and slow clients are `tests/flood.rs`.)

use std::time::Duration;

use brook_broker::Broker;
use brook_proto::v1 as pb;
use brook_proto::v1::brook_client::BrookClient;
use brook_server::{GrpcConfig, GrpcServer, HttpConfig, HttpServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tonic::transport::Channel;

/// Long enough for anything that should happen "at once" on a loaded 2-core machine.
const PATIENCE: Duration = Duration::from_secs(10);
/// How long a client waits to see that it is *not* served.
const NOT_SERVED: Duration = Duration::from_millis(300);

fn any_port() -> std::net::SocketAddr {
    "127.0.0.1:0".parse().expect("address")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_connections_past_the_cap_wait_until_one_is_idle() {
    let broker = Broker::ephemeral().await.expect("broker");
    let config = GrpcConfig {
        connections_max: 1,
        ..GrpcConfig::default()
    };
    let server = GrpcServer::start(broker.clone(), any_port(), config)
        .await
        .expect("gRPC door");
    let endpoint = format!("http://{}", server.local_addr());

    let mut first = BrookClient::new(
        Channel::from_shared(endpoint.clone())
            .expect("endpoint")
            .connect()
            .await
            .expect("first connection"),
    );
    first
        .list_topics(pb::ListTopicsRequest {})
        .await
        .expect("the first connection is served");
    // Busy: a subscription is in flight on it for as long as it is open.
    broker
        .create_topic(brook_broker::NewTopic::new("busy", 1))
        .await
        .expect("topic");
    let subscription = first
        .subscribe(pb::SubscribeRequest {
            target: Some(pb::subscribe_request::Target::Partition(
                pb::PartitionTarget {
                    topic: "busy".into(),
                    partition: 0,
                    start: Some(pb::partition_target::Start::Position(
                        pb::StartPosition::Latest as i32,
                    )),
                },
            )),
            ..Default::default()
        })
        .await
        .expect("subscribe")
        .into_inner();

    // A second channel is a second connection; its call waits behind the cap.
    let mut second = BrookClient::new(
        Channel::from_shared(endpoint)
            .expect("endpoint")
            .connect_lazy(),
    );
    let call = tokio::spawn(async move { second.list_topics(pb::ListTopicsRequest {}).await });
    tokio::time::sleep(NOT_SERVED).await;
    assert!(!call.is_finished(), "served past the cap: {call:?}");

    // The open connection goes on being served meanwhile.
    first
        .list_topics(pb::ListTopicsRequest {})
        .await
        .expect("still served");

    // The stream ends: the first connection is idle, and closed to let the second in.
    drop(subscription);
    tokio::time::timeout(PATIENCE, call)
        .await
        .expect("served once the first connection went idle")
        .expect("call task")
        .expect("the second connection is served");
    server.stop().await.expect("stops");
    broker.close().await.expect("close");
}

/// Sends a keep-alive `GET /healthz` on `stream`.
async fn ask_health(stream: &mut TcpStream) {
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: brook\r\n\r\n")
        .await
        .expect("send");
}

/// Reads the start of an answer on `stream`.
async fn read_answer(stream: &mut TcpStream) -> String {
    let mut buf = [0u8; 512];
    let n = stream.read(&mut buf).await.expect("read");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_connections_past_the_cap_wait_until_one_is_idle() {
    let broker = Broker::ephemeral().await.expect("broker");
    let config = HttpConfig {
        connections_max: 1,
        ..HttpConfig::default()
    };
    let server = HttpServer::start(broker.clone(), any_port(), config)
        .await
        .expect("HTTP door");
    let addr = server.local_addr();

    let mut first = TcpStream::connect(addr).await.expect("first connection");
    ask_health(&mut first).await;
    let answer = tokio::time::timeout(PATIENCE, read_answer(&mut first))
        .await
        .expect("answered");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // Busy: a long poll at the end of an empty partition, for 1.5 s.
    broker
        .create_topic(brook_broker::NewTopic::new("quiet", 1))
        .await
        .expect("topic");
    first
        .write_all(
            b"GET /v1/topics/quiet/partitions/0/records?offset=0&max_wait_ms=1500 HTTP/1.1\r\n\
              host: localhost\r\n\r\n",
        )
        .await
        .expect("send");
    tokio::time::sleep(Duration::from_millis(100)).await;

    let mut second = TcpStream::connect(addr).await.expect("connect succeeds");
    ask_health(&mut second).await;
    let waited = tokio::time::timeout(NOT_SERVED, read_answer(&mut second)).await;
    assert!(waited.is_err(), "served past the cap: {waited:?}");

    // The long poll is answered; the first connection, idle now, makes room for the second.
    let answer = tokio::time::timeout(PATIENCE, read_answer(&mut first))
        .await
        .expect("the long poll ends");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let answer = tokio::time::timeout(PATIENCE, read_answer(&mut second))
        .await
        .expect("served once the first connection went idle");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    drop(first);
    drop(second);
    server.stop().await.expect("stops");
    broker.close().await.expect("close");
}

#[tokio::test]
async fn a_cap_of_zero_is_refused_naming_the_door() {
    let broker = Broker::ephemeral().await.expect("broker");
    let grpc = GrpcConfig {
        connections_max: 0,
        ..GrpcConfig::default()
    };
    let err = GrpcServer::start(broker.clone(), any_port(), grpc)
        .await
        .expect_err("a cap of 0");
    let text = err.to_string();
    assert!(
        text.contains("gRPC") && text.contains("connections_max"),
        "{text}"
    );
    let http = HttpConfig {
        connections_max: 0,
        ..HttpConfig::default()
    };
    let err = HttpServer::start(broker, any_port(), http)
        .await
        .expect_err("a cap of 0");
    let text = err.to_string();
    assert!(
        text.contains("HTTP") && text.contains("connections_max"),
        "{text}"
    );
}
