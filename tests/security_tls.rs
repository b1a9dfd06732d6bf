//! TLS on every door, end to end (docs/security.md): `brook::server::Server` started with a
//! certificate made by the test (rcgen), and real clients over TLS: librdkafka
//! (`security.protocol=ssl`), kafka-python (`security_protocol="SSL"`), tonic with the test CA,
//! and HTTP/1.1 over tokio-rustls with the test CA. A plaintext client on a TLS port fails its handshake and the door
//! goes on serving; with a client CA (mutual TLS) a client without a certificate is refused;
//! a reload swaps the certificate for new handshakes and keeps the connections already open.

mod kafka_support;
mod security_support;

use std::time::Duration;

use brook::server::{DoorKind, Server};
use brook_proto::v1::brook_client::BrookClient;
use brook_proto::v1::{CreateTopicRequest, ListTopicsRequest};
use kafka_support::{python, PATIENCE};
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message};
use security_support::TestCa;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

/// A server with every door on a loopback port, TLS from `ca`'s server certificate, and
/// `client_ca` asked of clients when set.
async fn start(dir: &std::path::Path, ca: &TestCa, client_ca: Option<&TestCa>) -> Server {
    let (cert, key) = ca.server();
    let mut config = security_support::loopback_config(&dir.join("data"));
    config.tls.cert = Some(security_support::write(dir, "server.pem", &cert));
    config.tls.key = Some(security_support::write(dir, "server.key", &key));
    config.tls.client_ca = client_ca.map(|ca| ca.write(dir, "client-ca.pem"));
    Server::start(&config)
        .await
        .expect("server starts with TLS")
}

/// Whether `client` gets no metadata from the broker within 3 s (refused).
async fn refused(client: BaseConsumer) -> bool {
    tokio::task::spawn_blocking(move || {
        client.fetch_metadata(None, Duration::from_secs(3)).is_err()
    })
    .await
    .expect("metadata task")
}

fn addr(server: &Server, door: DoorKind) -> String {
    server.addr(door).expect("door is on").to_string()
}

/// librdkafka settings for the Kafka door over TLS, trusting the CA file `ca`.
fn ssl_config(bootstrap: &str, ca: &std::path::Path) -> ClientConfig {
    let mut config = kafka_support::client_config(bootstrap);
    config
        .set("security.protocol", "ssl")
        .set("ssl.ca.location", ca.to_str().expect("utf-8 path"))
        // The certificate names `localhost` and `127.0.0.1`: check the name too.
        .set("ssl.endpoint.identification.algorithm", "https");
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafka_produces_and_consumes_over_tls_and_a_plaintext_client_is_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = TestCa::new("brook test CA");
    let ca_file = ca.write(dir.path(), "ca.pem");
    let server = start(dir.path(), &ca, None).await;
    let bootstrap = addr(&server, DoorKind::Kafka);

    let producer: FutureProducer = ssl_config(&bootstrap, &ca_file)
        .set("acks", "all")
        .create()
        .expect("producer");
    for i in 0..10 {
        let value = format!("secret-{i}");
        producer
            .send(
                FutureRecord::to("tls-orders").key("k").payload(&value),
                PATIENCE,
            )
            .await
            .expect("produced over TLS");
    }

    let consumer: StreamConsumer = ssl_config(&bootstrap, &ca_file)
        .set("group.id", "tls-group")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    consumer.subscribe(&["tls-orders"]).expect("subscribe");
    let mut values = Vec::new();
    while values.len() < 10 {
        let message = tokio::time::timeout(PATIENCE, consumer.recv())
            .await
            .expect("a record within patience")
            .expect("a record");
        values.push(String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned());
    }
    assert_eq!(values[0], "secret-0");
    assert_eq!(values[9], "secret-9");

    // A plaintext client on the TLS port gets no metadata; the door goes on serving.
    let plain: BaseConsumer = kafka_support::client_config(&bootstrap)
        .create()
        .expect("plaintext client");
    assert!(
        refused(plain).await,
        "a plaintext client must not be served on a TLS port"
    );
    // A client that does not trust the CA fails its handshake too.
    let other_ca = TestCa::new("another CA");
    let other_file = other_ca.write(dir.path(), "other-ca.pem");
    let untrusting: BaseConsumer = ssl_config(&bootstrap, &other_file)
        .create()
        .expect("untrusting client");
    assert!(
        refused(untrusting).await,
        "a client that does not trust the certificate gets nowhere"
    );
    producer
        .send(
            FutureRecord::to("tls-orders").key("k").payload("after"),
            PATIENCE,
        )
        .await
        .expect("the TLS client is still served");
    drop((producer, consumer));
    server.stop().await.expect("stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_python_produces_and_consumes_over_tls() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = TestCa::new("brook test CA");
    let ca_file = ca.write(dir.path(), "ca.pem");
    let server = start(dir.path(), &ca, None).await;
    let bootstrap = addr(&server, DoorKind::Kafka);
    let cafile = ca_file.to_str().expect("utf-8").to_owned();
    let output = tokio::task::spawn_blocking(move || {
        python::run_script("security_tls.py", &bootstrap, &["py-tls", &cafile])
    })
    .await
    .expect("script task");
    let lines = python::json_lines(&output);
    let step = |name: &str| {
        lines
            .iter()
            .find(|l| l["step"] == name)
            .unwrap_or_else(|| panic!("no {name} step in {lines:?}"))
            .clone()
    };
    assert_eq!(step("produced")["records"], 20);
    assert_eq!(step("consumed")["records"], 20);
    assert_eq!(step("consumed")["in_order"], true);
    assert_eq!(step("plaintext")["refused"], true);
    server.stop().await.expect("stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_and_http_serve_tls_and_refuse_plaintext() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = TestCa::new("brook test CA");
    let server = start(dir.path(), &ca, None).await;

    // gRPC: tonic over TLS (h2 by ALPN), verifying the name in the certificate.
    let grpc = addr(&server, DoorKind::Grpc);
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&ca.pem))
        .domain_name("localhost");
    let channel = Endpoint::from_shared(format!("https://{grpc}"))
        .expect("endpoint")
        .tls_config(tls)
        .expect("TLS config")
        .connect()
        .await
        .expect("gRPC connects over TLS");
    let mut client = BrookClient::new(channel);
    client
        .create_topic(CreateTopicRequest {
            topic: "tls-grpc".into(),
            partitions: 1,
            ..Default::default()
        })
        .await
        .expect("created over TLS");
    let topics = client
        .list_topics(ListTopicsRequest {})
        .await
        .expect("listed")
        .into_inner()
        .topics;
    assert!(topics.iter().any(|t| t.name == "tls-grpc"), "{topics:?}");
    // A plaintext gRPC client gets nothing.
    let plain = async {
        let channel = Endpoint::from_shared(format!("http://{grpc}"))
            .expect("endpoint")
            .connect()
            .await
            .map_err(|e| e.to_string())?;
        BrookClient::new(channel)
            .list_topics(ListTopicsRequest {})
            .await
            .map_err(|e| e.to_string())
    };
    assert!(
        tokio::time::timeout(PATIENCE, plain)
            .await
            .expect("answers")
            .is_err(),
        "a plaintext gRPC client must not be served"
    );

    // HTTP over TLS with the test CA.
    let http = server.addr(DoorKind::Http).expect("on");
    let produced = security_support::https(
        http,
        &ca.pem,
        None,
        "POST",
        "/v1/topics/tls-http/records",
        Some(&serde_json::json!({"records": [{"value": {"n": 1}}]})),
    )
    .await
    .expect("HTTPS request");
    assert_eq!(produced.status, 200, "{produced:?}");
    let topics = security_support::https(http, &ca.pem, None, "GET", "/v1/topics", None)
        .await
        .expect("HTTPS request")
        .json();
    let names: Vec<&str> = topics["topics"]
        .as_array()
        .expect("topics")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(
        names.contains(&"tls-http") && names.contains(&"tls-grpc"),
        "{names:?}"
    );
    // Plain http:// to the TLS port: no answer; the door still serves HTTPS after it.
    let plain = reqwest::Client::new()
        .get(format!("http://{http}/v1/topics"))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(
        plain.is_err(),
        "plaintext HTTP must not be served: {plain:?}"
    );
    let health = security_support::https(http, &ca.pem, None, "GET", "/healthz", None)
        .await
        .expect("HTTPS after a plaintext attempt");
    assert_eq!(health.status, 200);
    server.stop().await.expect("stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_refuses_a_client_without_a_certificate_from_the_client_ca() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = TestCa::new("brook test CA");
    let clients = TestCa::new("brook client CA");
    let server = start(dir.path(), &ca, Some(&clients)).await;
    let http = server.addr(DoorKind::Http).expect("on");
    let get = |identity: Option<(String, String)>| {
        let ca = ca.pem.clone();
        async move {
            let identity = identity.as_ref().map(|(c, k)| (c.as_str(), k.as_str()));
            security_support::https(http, &ca, identity, "GET", "/v1/topics", None).await
        }
    };
    let anonymous = get(None).await;
    assert!(anonymous.is_err(), "no client certificate: {anonymous:?}");
    let stranger = TestCa::new("a stranger's CA").client("mallory");
    let strange = get(Some(stranger)).await;
    assert!(
        strange.is_err(),
        "a certificate from another CA: {strange:?}"
    );
    let app = clients.client("app");
    let ok = get(Some(app.clone()))
        .await
        .expect("a client certificate from the client CA");
    assert_eq!(ok.status, 200);

    // librdkafka with its certificate, over the Kafka door.
    let bootstrap = addr(&server, DoorKind::Kafka);
    let ca_file = ca.write(dir.path(), "ca.pem");
    let cert_file = security_support::write(dir.path(), "app.pem", &app.0);
    let key_file = security_support::write(dir.path(), "app.key", &app.1);
    let producer: FutureProducer = ssl_config(&bootstrap, &ca_file)
        .set(
            "ssl.certificate.location",
            cert_file.to_str().expect("utf-8"),
        )
        .set("ssl.key.location", key_file.to_str().expect("utf-8"))
        .create()
        .expect("producer");
    producer
        .send(FutureRecord::to("mtls").key("k").payload("v"), PATIENCE)
        .await
        .expect("produced with a client certificate");
    let without: BaseConsumer = ssl_config(&bootstrap, &ca_file).create().expect("client");
    assert!(
        refused(without).await,
        "librdkafka without a client certificate is refused"
    );
    drop(producer);
    server.stop().await.expect("stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_serves_the_new_certificate_and_keeps_open_connections() {
    let dir = tempfile::tempdir().expect("dir");
    let old_ca = TestCa::new("old CA");
    let server = start(dir.path(), &old_ca, None).await;
    let http = server.addr(DoorKind::Http).expect("on");
    let topics = |ca: String| async move {
        security_support::https(http, &ca, None, "GET", "/v1/topics", None).await
    };
    // One connection opened before the reload, kept alive.
    let mut before = security_support::Https::connect(http, &old_ca.pem, None)
        .await
        .expect("connect before");
    let answer = before.request("GET", "/v1/topics", &[], None).await;
    assert_eq!(answer.expect("before").status, 200);

    // A bad file is refused and the old certificate stays.
    std::fs::write(dir.path().join("server.pem"), "not a certificate").expect("write");
    assert!(
        server.reload_tls().await.is_err(),
        "a bad certificate is refused"
    );
    let answer = topics(old_ca.pem.clone()).await;
    assert_eq!(
        answer.expect("the old certificate still serves").status,
        200
    );

    let new_ca = TestCa::new("new CA");
    let (cert, key) = new_ca.server();
    security_support::write(dir.path(), "server.pem", &cert);
    security_support::write(dir.path(), "server.key", &key);
    assert!(server.reload_tls().await.expect("reloaded"));

    let fresh = topics(new_ca.pem.clone()).await;
    assert_eq!(fresh.expect("the new certificate").status, 200);
    let stale = topics(old_ca.pem.clone()).await;
    assert!(
        stale.is_err(),
        "a new handshake gets the new certificate: {stale:?}"
    );
    let answer = before.request("GET", "/v1/topics", &[], None).await;
    assert_eq!(
        answer
            .expect("the connection opened before the reload")
            .status,
        200
    );
    server.stop().await.expect("stops");
}
