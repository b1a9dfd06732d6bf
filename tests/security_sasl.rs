//! SASL on the Kafka door, end to end (docs/security.md): users created offline in the data
//! directory, then `brook::server::Server` with `auth` on, and two independent clients:
//! librdkafka over SASL_SSL with SCRAM-SHA-512 (and PLAIN), kafka-python over SASL_PLAINTEXT
//! with SCRAM-SHA-256. Each produces, consumes in a group and administers; a wrong password, an
//! unknown user and a client without SASL are refused, and the broker goes on serving. The gRPC
//! and HTTP doors take the same users with `authorization: Basic`, and tokens with `Bearer`.

mod kafka_support;
mod security_support;

use std::path::Path;
use std::time::Duration;

use brook::server::{DoorKind, Server};
use brook_broker::auth::{Auth, AuthConfig};
use brook_door::auth::INVALID_CREDENTIALS;
use brook_proto::v1::brook_client::BrookClient;
use brook_proto::v1::ListTopicsRequest;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiKey, MetadataRequest};
use kafka_support::raw::Raw;
use kafka_support::{python, PATIENCE};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message};
use security_support::TestCa;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Creates the users the tests log in as, offline, as `brook user create --data-dir` does.
/// The store is open, and locked, only while no sibling test starts a child process
/// ([`python::SPAWNING`]): a child started meanwhile would keep the lock past the drop, and the
/// server would find the store "locked by a running broker" (seen once in 15 loaded runs).
async fn create_users(data_dir: &Path) {
    let data_dir = data_dir.to_path_buf();
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let _no_spawns = python::SPAWNING
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        runtime.block_on(async {
            let auth = Auth::open(&data_dir, AuthConfig::default())
                .await
                .expect("security store opens");
            auth.create_user("alice", b"alice-secret")
                .await
                .expect("alice");
            auth.create_user("bob", b"bob-secret").await.expect("bob");
            // Dropped here, before the guard: the store's lock is released for the server.
        })
    })
    .await
    .expect("users task");
}

/// A server with authentication on, every door on a loopback port, and TLS from `ca` when
/// given (the Kafka door is then SASL_SSL, else SASL_PLAINTEXT).
async fn start(dir: &Path, ca: Option<&TestCa>) -> Server {
    let data = dir.join("data");
    create_users(&data).await;
    let mut config = security_support::loopback_config(&data);
    config.auth.enabled = true;
    // These tests are about authentication: alice and bob may do anything (ACLs, which would
    // otherwise deny them by default, are tests/security_acl.rs's).
    config.auth.superusers = ["alice", "bob"]
        .map(|name| brook_broker::auth::Principal::user(name).expect("name"))
        .to_vec();
    if let Some(ca) = ca {
        let (cert, key) = ca.server();
        config.tls.cert = Some(security_support::write(dir, "server.pem", &cert));
        config.tls.key = Some(security_support::write(dir, "server.key", &key));
    }
    Server::start(&config)
        .await
        .expect("server starts with auth")
}

/// librdkafka settings for `bootstrap` with SASL `mechanism` as `user`, over TLS trusting
/// `ca_file` when given.
fn sasl_config(
    bootstrap: &str,
    ca_file: Option<&Path>,
    mechanism: &str,
    user: &str,
    password: &str,
) -> ClientConfig {
    let mut config = kafka_support::client_config(bootstrap);
    config
        .set("sasl.mechanism", mechanism)
        .set("sasl.username", user)
        .set("sasl.password", password);
    match ca_file {
        Some(ca) => config
            .set("security.protocol", "sasl_ssl")
            .set("ssl.ca.location", ca.to_str().expect("utf-8 path")),
        None => config.set("security.protocol", "sasl_plaintext"),
    };
    config
}

/// Whether `client` gets no metadata within 3 s (refused).
async fn refused(client: BaseConsumer) -> bool {
    tokio::task::spawn_blocking(move || {
        client.fetch_metadata(None, Duration::from_secs(3)).is_err()
    })
    .await
    .expect("metadata task")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafka_over_sasl_ssl_with_scram_sha_512_produces_consumes_and_administers() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = TestCa::new("brook test CA");
    let ca_file = ca.write(dir.path(), "ca.pem");
    let server = start(dir.path(), Some(&ca)).await;
    let bootstrap = server.addr(DoorKind::Kafka).expect("on").to_string();
    let alice = |mechanism| {
        sasl_config(
            &bootstrap,
            Some(&ca_file),
            mechanism,
            "alice",
            "alice-secret",
        )
    };

    let admin: AdminClient<DefaultClientContext> = alice("SCRAM-SHA-512").create().expect("admin");
    let created = admin
        .create_topics(
            &[NewTopic::new("sasl-orders", 2, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(PATIENCE)),
        )
        .await
        .expect("create topics");
    assert!(created.iter().all(Result::is_ok), "{created:?}");

    let producer: FutureProducer = alice("SCRAM-SHA-512")
        .set("acks", "all")
        .create()
        .expect("producer");
    for i in 0..10 {
        let value = format!("v{i}");
        producer
            .send(
                FutureRecord::to("sasl-orders").key("k").payload(&value),
                PATIENCE,
            )
            .await
            .expect("produced as alice");
    }
    let consumer: StreamConsumer = alice("SCRAM-SHA-512")
        .set("group.id", "sasl-group")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    consumer.subscribe(&["sasl-orders"]).expect("subscribe");
    let mut seen = 0;
    while seen < 10 {
        let message = tokio::time::timeout(PATIENCE, consumer.recv())
            .await
            .expect("a record within patience")
            .expect("a record");
        assert!(message.payload().is_some());
        seen += 1;
    }

    // PLAIN as bob over the same TLS listener.
    let plain: FutureProducer =
        sasl_config(&bootstrap, Some(&ca_file), "PLAIN", "bob", "bob-secret")
            .create()
            .expect("PLAIN producer");
    plain
        .send(
            FutureRecord::to("sasl-orders").key("k").payload("bob"),
            PATIENCE,
        )
        .await
        .expect("produced as bob with PLAIN");

    // Refused: a wrong password (SCRAM and PLAIN), an unknown user, no SASL at all.
    for (mechanism, user, password) in [
        ("SCRAM-SHA-512", "alice", "wrong"),
        ("SCRAM-SHA-256", "mallory", "alice-secret"),
        ("PLAIN", "alice", "wrong"),
        ("PLAIN", "nobody", "x"),
    ] {
        let client: BaseConsumer =
            sasl_config(&bootstrap, Some(&ca_file), mechanism, user, password)
                .create()
                .expect("client");
        assert!(
            refused(client).await,
            "{mechanism} {user}/{password} must be refused"
        );
    }
    let mut no_sasl = kafka_support::client_config(&bootstrap);
    no_sasl
        .set("security.protocol", "ssl")
        .set("ssl.ca.location", ca_file.to_str().expect("utf-8"));
    assert!(
        refused(no_sasl.create().expect("client")).await,
        "a TLS client without SASL gets nothing"
    );

    // The broker is unaffected: alice goes on producing.
    producer
        .send(
            FutureRecord::to("sasl-orders").key("k").payload("after"),
            PATIENCE,
        )
        .await
        .expect("still served");
    drop((producer, consumer, plain, admin));
    server.stop().await.expect("stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_python_over_sasl_plaintext_with_scram_sha_256() {
    let dir = tempfile::tempdir().expect("dir");
    let server = start(dir.path(), None).await;
    let bootstrap = server.addr(DoorKind::Kafka).expect("on").to_string();
    let output = tokio::task::spawn_blocking(move || {
        python::run_script("security_sasl.py", &bootstrap, &["py-sasl"])
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
    assert_eq!(step("created")["ok"], true);
    assert_eq!(step("produced")["records"], 20);
    assert_eq!(step("consumed")["records"], 20);
    // Both refused, each with the server's answer in kafka-python's log:
    // SASL_AUTHENTICATION_FAILED, "invalid credentials". The door keeps a refused connection
    // open until the client hangs up (a_refused_login_is_answered_and_closed_once_the_client_
    // hangs_up): kafka-python 3.0.12 drops an answer that arrives with the end of the stream.
    for refused in ["wrong_password", "unknown_user"] {
        let step = step(refused);
        assert_eq!(step["refused"], true, "{step}");
        assert_eq!(step["sasl_failed"], true, "{step}");
        assert_eq!(step["message"], true, "{step}");
    }
    assert_eq!(step("no_sasl")["refused"], true);
    assert_eq!(step("after")["ok"], true);
    server.stop().await.expect("stops");
}

/// A raw connection to `server`'s Kafka door, handshaken for PLAIN and refused: it sent
/// `user`/`password` and read the answer, which must be SASL_AUTHENTICATION_FAILED with the
/// one message every failure gets.
async fn refused_login(server: &Server, user: &str, password: &str) -> Raw {
    let mut raw = Raw::connect_to(server.addr(DoorKind::Kafka).expect("on")).await;
    let answer = raw.sasl_plain(user, password).await;
    assert_eq!(
        answer.error_code,
        ResponseError::SaslAuthenticationFailed.code()
    );
    let message = answer.error_message.as_deref().map(str::to_owned);
    assert_eq!(message.as_deref(), Some(INVALID_CREDENTIALS));
    raw
}

/// The door answers a refused login before it closes, and closes only once the client has hung
/// up (or after its linger): an end of stream right behind the answer made kafka-python lose
/// the answer on a loaded machine (it drops bytes that arrive with the end of the stream). What
/// the client sends after the refusal is never answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_login_is_answered_and_closed_once_the_client_hangs_up() {
    let dir = tempfile::tempdir().expect("dir");
    let server = start(dir.path(), None).await;

    // The client reads the answer, asks for more and hangs up: nothing more comes, then the
    // end of the stream.
    let mut raw = refused_login(&server, "alice", "wrong").await;
    let mut after = [0u8; 64];
    let early = tokio::time::timeout(Duration::from_millis(300), raw.stream.read(&mut after)).await;
    assert!(
        early.is_err(),
        "the connection must stay open for the client to hang up first: {early:?}"
    );
    raw.send(ApiKey::Metadata, 12, &MetadataRequest::default())
        .await;
    raw.stream.shutdown().await.expect("the client hangs up");
    let rest = tokio::time::timeout(PATIENCE, raw.stream.read_to_end(&mut Vec::new()))
        .await
        .expect("the door closes once the client has hung up");
    assert_eq!(rest.expect("a clean end of stream"), 0, "nothing answered");

    // A client that stays is closed after the linger, unanswered.
    let mut stays = refused_login(&server, "mallory", "alice-secret").await;
    stays
        .send(ApiKey::Metadata, 12, &MetadataRequest::default())
        .await;
    let rest = tokio::time::timeout(PATIENCE, stays.stream.read_to_end(&mut Vec::new()))
        .await
        .expect("the door closes a refused connection by itself");
    assert_eq!(rest.expect("a clean end of stream"), 0, "nothing answered");

    // The broker goes on serving: a good login after both.
    let mut alice = Raw::connect_to(server.addr(DoorKind::Kafka).expect("on")).await;
    let good = alice.sasl_plain("alice", "alice-secret").await;
    assert_eq!(good.error_code, 0, "alice logs in");
    server.stop().await.expect("stops");
}

/// A gRPC call to ListTopics with `authorization` set to `header` (none when `None`).
async fn list_topics(
    grpc: &mut BrookClient<tonic::transport::Channel>,
    header: Option<&str>,
) -> Result<(), tonic::Code> {
    let mut request = tonic::Request::new(ListTopicsRequest {});
    if let Some(header) = header {
        request
            .metadata_mut()
            .insert("authorization", header.parse().expect("ASCII header"));
    }
    grpc.list_topics(request)
        .await
        .map(drop)
        .map_err(|status| status.code())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_and_http_take_basic_and_bearer_and_a_revoked_token_stops_at_once() {
    let dir = tempfile::tempdir().expect("dir");
    let server = start(dir.path(), None).await;
    let auth = server.auth().expect("auth is on").clone();
    let (record, token) = auth.create_token("alice", 3_600_000).await.expect("token");
    let basic = |user: &str, password: &str| {
        use base64::Engine as _;
        let pair = format!("{user}:{password}");
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    };
    let bearer = format!("Bearer {token}");

    // gRPC.
    let url = format!("http://{}", server.addr(DoorKind::Grpc).expect("on"));
    let mut grpc = BrookClient::connect(url).await.expect("gRPC connects");
    let unauthenticated = Err(tonic::Code::Unauthenticated);
    assert_eq!(list_topics(&mut grpc, None).await, unauthenticated);
    let wrong = basic("alice", "wrong");
    assert_eq!(list_topics(&mut grpc, Some(&wrong)).await, unauthenticated);
    let unknown = basic("mallory", "alice-secret");
    assert_eq!(
        list_topics(&mut grpc, Some(&unknown)).await,
        unauthenticated
    );
    let alice = basic("alice", "alice-secret");
    assert_eq!(list_topics(&mut grpc, Some(&alice)).await, Ok(()));
    assert_eq!(list_topics(&mut grpc, Some(&bearer)).await, Ok(()));

    // HTTP.
    let base = format!("http://{}", server.addr(DoorKind::Http).expect("on"));
    let http = reqwest::Client::new();
    let get = |header: Option<String>| {
        let mut request = http.get(format!("{base}/v1/topics"));
        if let Some(header) = header {
            request = request.header("authorization", header);
        }
        async move { request.send().await.expect("HTTP answers") }
    };
    let refused = get(None).await;
    assert_eq!(refused.status(), 401);
    let challenge = refused.headers()["www-authenticate"]
        .to_str()
        .expect("ASCII");
    assert!(
        challenge.contains("Basic") && challenge.contains("Bearer"),
        "{challenge}"
    );
    let wrong_answer = get(Some(wrong.clone())).await;
    assert_eq!(wrong_answer.status(), 401);
    let wrong_body = wrong_answer.text().await.expect("body");
    let unknown_body = get(Some(unknown.clone())).await.text().await.expect("body");
    assert_eq!(wrong_body, unknown_body, "one answer for both");
    assert_eq!(get(Some(alice.clone())).await.status(), 200);
    assert_eq!(get(Some(bearer.clone())).await.status(), 200);
    let health = http
        .get(format!("{base}/healthz"))
        .send()
        .await
        .expect("health");
    assert_eq!(health.status(), 200, "health checks need no credentials");

    // A revoked token stops working at once, on both doors.
    auth.revoke_token(&record.id).await.expect("revoked");
    assert_eq!(list_topics(&mut grpc, Some(&bearer)).await, unauthenticated);
    assert_eq!(get(Some(bearer)).await.status(), 401);
    assert_eq!(list_topics(&mut grpc, Some(&alice)).await, Ok(()));
    drop(auth);
    server.stop().await.expect("stops");
}
