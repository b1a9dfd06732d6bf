//! One API, three places: the same application code (`app.rs`) run on an embedded broker,
//! against a running server, or on a Kafka cluster.
//!
//! ```text
//! cargo run --example orders                                   # embedded: no server, no socket
//! brook serve --data-dir "$(mktemp -d)" &                      # a fresh server
//! cargo run --example orders -- --server http://127.0.0.1:50051
//! cargo run --example orders -- --kafka kafka://127.0.0.1:9092 # a Kafka cluster
//! ```
//!
//! All print the same lines (on a fresh server or cluster: the app creates the topic
//! `orders`). `--kafka` needs the `kafka-backend` feature, on by default for this package.

mod app;

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let lines = match args.as_slice() {
        [] => embedded().await,
        [flag, url] if flag == "--server" => remote(url).await,
        [flag, url] if flag == "--kafka" => kafka(url).await,
        _ => {
            eprintln!("usage: orders [--server URL | --kafka kafka://HOST:PORT]");
            return ExitCode::from(2);
        }
    };
    match lines {
        Ok(lines) => {
            for line in lines {
                println!("{line}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn embedded() -> app::AppResult<Vec<String>> {
    let broker = brook::Broker::ephemeral().await?;
    let lines = app::run(&broker).await;
    broker.close().await?;
    lines
}

async fn remote(url: &str) -> app::AppResult<Vec<String>> {
    let client = brook::Client::connect(url).await?;
    app::run(&client).await
}

#[cfg(feature = "kafka-backend")]
async fn kafka(url: &str) -> app::AppResult<Vec<String>> {
    let cluster = brook::kafka::connect(url).await?;
    let lines = app::run(&cluster).await;
    cluster.close().await?;
    lines
}

#[cfg(not(feature = "kafka-backend"))]
async fn kafka(_url: &str) -> app::AppResult<Vec<String>> {
    Err("built without the kafka-backend feature: rebuild with --features kafka-backend".into())
}
