//! A real gRPC server on port 0 over an ephemeral broker, and a client connected to it.

#![allow(dead_code)] // each test file uses its own part of this

use std::time::Duration;

use brook_broker::Broker;
use brook_client::Client;
use brook_server::{GrpcConfig, GrpcServer};

/// How long a test waits for something that should happen at once.
pub(crate) const PATIENCE: Duration = Duration::from_secs(10);

pub(crate) struct Harness {
    pub broker: Broker,
    pub server: GrpcServer,
    pub client: Client,
}

impl Harness {
    pub(crate) async fn start() -> Harness {
        let broker = Broker::ephemeral().await.expect("ephemeral broker");
        let addr = "127.0.0.1:0".parse().expect("address");
        let server = GrpcServer::start(broker.clone(), addr, GrpcConfig::default())
            .await
            .expect("gRPC server");
        let client = Client::connect(format!("http://{}", server.local_addr()))
            .await
            .expect("connect");
        Harness {
            broker,
            server,
            client,
        }
    }

    pub(crate) async fn topic(&self, name: &str, partitions: u32) {
        self.client
            .admin()
            .create_topic(brook_client::NewTopic::new(name, partitions))
            .await
            .expect("create topic");
    }
}

/// Awaits `future`, failing the test if it takes longer than [`PATIENCE`].
pub(crate) async fn soon<F: std::future::Future>(future: F) -> F::Output {
    tokio::time::timeout(PATIENCE, future)
        .await
        .expect("timed out")
}
