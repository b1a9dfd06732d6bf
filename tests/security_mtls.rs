//! A mutual-TLS client certificate's subject as the principal on the gRPC and HTTP doors
//! (docs/security.md), as the Kafka door already takes it: with `--auth on` and
//! `--tls-client-ca`, a request with no `authorization` header is its certificate's subject
//! (`User:O=brook-tests,CN=alice`). The superuser's certificate may create a topic on both
//! doors; another certificate from the same CA is authenticated (so not 401/UNAUTHENTICATED)
//! but not authorized (403/PERMISSION_DENIED); `authorization` still wins over the certificate.

mod security_support;

use std::time::Duration;

use brook::server::{DoorKind, Server};
use brook_broker::auth::{Auth, AuthConfig, Principal};
use brook_proto::v1::brook_client::BrookClient;
use brook_proto::v1::CreateTopicRequest;
use security_support::{https, TestCa};
use serde_json::json;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

/// RFC 4514 order: the last RDN of the certificate first.
const ALICE: &str = "User:O=brook-tests,CN=alice";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_is_the_principal_on_grpc_and_http() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = TestCa::new("brook test CA");
    let clients = TestCa::new("brook client CA");
    let data = dir.path().join("data");
    {
        let auth = Auth::open(&data, AuthConfig::default())
            .await
            .expect("store");
        auth.create_user("bob", b"bob-secret").await.expect("bob");
    }
    let (cert, key) = ca.server();
    let mut config = security_support::loopback_config(&data);
    config.tls.cert = Some(security_support::write(dir.path(), "server.pem", &cert));
    config.tls.key = Some(security_support::write(dir.path(), "server.key", &key));
    config.tls.client_ca = Some(clients.write(dir.path(), "client-ca.pem"));
    config.auth.enabled = true;
    config.auth.superusers = vec![Principal::parse(ALICE).expect("principal")];
    let server = Server::start(&config).await.expect("server starts");

    let alice = clients.client("alice");
    let carol = clients.client("carol");
    let identity = |(cert, key): &(String, String)| (cert.clone(), key.clone());

    // HTTP: the certificate alone authenticates.
    let http = server.addr(DoorKind::Http).expect("HTTP");
    let as_alice = Some((alice.0.as_str(), alice.1.as_str()));
    let created = https(
        http,
        &ca.pem,
        as_alice,
        "POST",
        "/v1/topics",
        Some(&json!({"name": "by-cert", "partitions": 1})),
    )
    .await
    .expect("HTTPS");
    assert!((200..300).contains(&created.status), "{created:?}");
    let refused = https(
        http,
        &ca.pem,
        Some((carol.0.as_str(), carol.1.as_str())),
        "POST",
        "/v1/topics",
        Some(&json!({"name": "by-carol", "partitions": 1})),
    )
    .await
    .expect("HTTPS");
    assert_eq!(
        refused.status, 403,
        "authenticated as carol, not allowed: {refused:?}"
    );
    assert!(refused.body.contains("CN=carol"), "{refused:?}");
    // An authorization header wins over the certificate: bob is not a superuser.
    let mut conn = security_support::Https::connect(http, &ca.pem, as_alice)
        .await
        .expect("connect");
    let basic = format!(
        "Basic {}",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "bob:bob-secret")
    );
    let as_bob = conn
        .request(
            "POST",
            "/v1/topics",
            &[("authorization", &basic)],
            Some(&json!({"name": "by-bob", "partitions": 1})),
        )
        .await
        .expect("request");
    assert_eq!(as_bob.status, 403, "{as_bob:?}");

    // gRPC: the same.
    let grpc = server.addr(DoorKind::Grpc).expect("gRPC");
    let connect = |(cert, key): (String, String)| {
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&ca.pem))
            .identity(Identity::from_pem(cert, key))
            .domain_name("localhost");
        Endpoint::from_shared(format!("https://{grpc}"))
            .expect("endpoint")
            .tls_config(tls)
            .expect("TLS config")
            .connect_timeout(Duration::from_secs(5))
    };
    let mut alice_grpc =
        BrookClient::new(connect(identity(&alice)).connect().await.expect("connects"));
    alice_grpc
        .create_topic(CreateTopicRequest {
            topic: "by-cert-grpc".into(),
            partitions: 1,
            ..Default::default()
        })
        .await
        .expect("alice's certificate may create");
    let mut carol_grpc =
        BrookClient::new(connect(identity(&carol)).connect().await.expect("connects"));
    let status = carol_grpc
        .create_topic(CreateTopicRequest {
            topic: "by-carol-grpc".into(),
            partitions: 1,
            ..Default::default()
        })
        .await
        .expect_err("carol may not");
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");

    let topics: Vec<String> = server
        .broker()
        .expect("local")
        .list_topics()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert!(topics.contains(&"by-cert".to_owned()), "{topics:?}");
    assert!(topics.contains(&"by-cert-grpc".to_owned()), "{topics:?}");
    assert!(!topics
        .iter()
        .any(|t| t.starts_with("by-carol") || t == "by-bob"));
    server.stop().await.expect("stops");
}
