//! One API, two transports: the same application code (`app.rs`) run on an embedded broker or
//! against a running server.
//!
//! ```text
//! cargo run --example orders                                   # embedded: no server, no socket
//! brook serve --data-dir "$(mktemp -d)" &                      # a fresh server
//! cargo run --example orders -- --server http://127.0.0.1:50051
//! ```
//!
//! Both print the same lines (on a fresh server: the app creates the topic `orders`).

mod app;

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let lines = match args.as_slice() {
        [] => embedded().await,
        [flag, url] if flag == "--server" => remote(url).await,
        _ => {
            eprintln!("usage: orders [--server URL]");
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
