//! One API, two transports: the orders example run on an embedded broker and against a real
//! gRPC server (port 0, in-process) gives the same results, and errors have the same kind.

#[path = "../examples/orders/app.rs"]
mod app;

use std::time::Duration;

use brook::api::Brook;
use brook::broker::ErrorKind;
use brook::{Broker, Client, ProduceRecord};
use brook_server::{GrpcConfig, GrpcServer};

const PATIENCE: Duration = Duration::from_secs(20);

async fn remote() -> (GrpcServer, Client) {
    let broker = Broker::ephemeral().await.expect("server's broker");
    let addr = "127.0.0.1:0".parse().expect("address");
    let server = GrpcServer::start(broker, addr, GrpcConfig::default())
        .await
        .expect("gRPC server");
    let client = Client::connect(format!("http://{}", server.local_addr()))
        .await
        .expect("connect");
    (server, client)
}

async fn run(brook: &impl Brook) -> Vec<String> {
    tokio::time::timeout(PATIENCE, app::run(brook))
        .await
        .expect("the app finished in time")
        .expect("the app succeeded")
}

#[tokio::test]
async fn the_orders_example_prints_the_same_lines_embedded_and_remote() {
    let embedded = run(&Broker::ephemeral().await.expect("broker")).await;
    let (_server, client) = remote().await;
    let remote = run(&client).await;
    assert_eq!(embedded, remote);

    // And the lines are the right ones, not merely equal.
    for expected in [
        "total alice: 9.60",
        "total carol: 11.70",
        "committed billing orders-0 -> 4",
    ] {
        assert!(
            embedded.iter().any(|l| l == expected),
            "{expected:?} in {embedded:#?}"
        );
    }
    assert!(
        embedded.last().is_some_and(|l| l.ends_with("bob 2.00")),
        "{embedded:#?}"
    );
}

async fn error_kinds(brook: &impl Brook) -> Vec<ErrorKind> {
    brook.create_topic("t", 1).await.expect("create");
    let kind = |e: brook::api::Error| e.kind();
    vec![
        brook
            .create_topic("t", 1)
            .await
            .map_err(kind)
            .expect_err("exists"),
        brook
            .create_topic("bad name", 1)
            .await
            .map_err(kind)
            .expect_err("name"),
        brook
            .fetch("missing", 0, 0, Duration::ZERO)
            .await
            .map_err(kind)
            .expect_err("unknown topic"),
        brook
            .fetch("t", 0, 99, Duration::ZERO)
            .await
            .map_err(kind)
            .expect_err("past the end"),
        brook
            .produce("t", vec![ProduceRecord::value(vec![0u8; 2 << 20])])
            .await
            .map_err(kind)
            .expect_err("too large"),
    ]
}

#[tokio::test]
async fn errors_have_the_same_kind_on_both_transports() {
    let embedded = error_kinds(&Broker::ephemeral().await.expect("broker")).await;
    let (_server, client) = remote().await;
    assert_eq!(embedded, error_kinds(&client).await);
    assert_eq!(
        embedded,
        [
            ErrorKind::AlreadyExists,
            ErrorKind::InvalidArgument,
            ErrorKind::NotFound,
            ErrorKind::OutOfRange,
            ErrorKind::TooLarge
        ]
    );
}
