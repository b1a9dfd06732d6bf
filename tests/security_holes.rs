//! The holes that need no credentials to close (docs/security.md), tried against a real
//! `brook serve` (`brook::server::Server`, every door on a loopback port, authentication off):
//!
//! - request-reply: a third party that reads a call's request cannot answer it (a reply
//!   appended to the reply topic through the embedded API, gRPC, HTTP or Kafka is never
//!   delivered; a gRPC responder cannot reply to a request it was not given), and cannot
//!   fetch the reply (the request carries a hash of the caller's id, not the id);
//! - the HTTP door refuses what a web page can send cross-site (non-JSON bodies, 415) and a
//!   `Host` that is not one of its names (421), with raw HTTP requests as a browser sends them.

mod kafka_support;
mod security_support;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use base64::Engine;
use brook::server::{DoorKind, Server};
use brook_broker::reqreply::{Answer, CORRELATION_ID_HEADER, REPLY_MAC_HEADER};
use brook_broker::{NewTopic, ProduceRecord, Request};
use brook_client::proto::{self, respond_request::Message};
use brook_client::{CallRequest, Client, Code, ProducerRecord};
use bytes::Bytes;
use futures::StreamExt;
use kafka_support::PATIENCE;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const REPLIES: &str = "__brook_replies";

/// A server with every door on a loopback port and authentication off; `allowed_hosts` for
/// the HTTP door.
async fn start(dir: &Path, allowed_hosts: &[&str]) -> Server {
    let mut config = security_support::loopback_config(&dir.join("data"));
    config.http.allowed_hosts = allowed_hosts.iter().map(|h| (*h).to_owned()).collect();
    Server::start(&config).await.expect("server starts")
}

/// The request a caller appended to `topic`, as any reader of the topic sees it.
async fn read_request(server: &Server, topic: &str) -> brook_broker::ConsumerRecord {
    let broker = server.broker().expect("a local broker");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let fetched = broker
            .fetch(topic, 0, 0, 1 << 20, Duration::from_millis(200))
            .await
            .expect("fetch");
        if let Some(record) = fetched.records().expect("records").into_iter().next() {
            return record;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no request appeared"
        );
    }
}

/// The last header `name` of `record`.
fn header<'a>(record: &'a brook_broker::ConsumerRecord, name: &str) -> Option<&'a Bytes> {
    record
        .headers
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// Sends `request` (a whole HTTP/1.1 request) to `addr` and returns the status code and the
/// whole answer.
async fn raw_http(addr: SocketAddr, request: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("write request");
    let mut answer = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut answer))
        .await
        .expect("an answer in time")
        .expect("read answer");
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {answer:?}"));
    (status, answer)
}

/// A POST of `body` with `content_type` (none when `None`) and `host`.
fn post(path: &str, host: &str, content_type: Option<&str>, body: &str) -> String {
    let content_type = content_type.map_or(String::new(), |t| format!("Content-Type: {t}\r\n"));
    format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\n{content_type}Content-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_from_anyone_but_the_requests_responder_never_reaches_the_caller() {
    let dir = tempfile::tempdir().expect("dir");
    let server = start(dir.path(), &[]).await;
    let broker = server.broker().expect("local").clone();
    broker
        .create_topic(NewTopic::new("prices", 1))
        .await
        .expect("topic");
    let grpc_url = format!("http://{}", server.addr(DoorKind::Grpc).expect("gRPC"));
    let http = server.addr(DoorKind::Http).expect("HTTP");
    let kafka = server.addr(DoorKind::Kafka).expect("Kafka").to_string();
    let client = Client::connect(grpc_url.clone()).await.expect("client");

    // The caller waits; no responder runs yet.
    let caller = client.clone();
    let call = tokio::spawn(async move {
        caller
            .call(
                "prices",
                CallRequest::value("apple")
                    .with_correlation_id(Bytes::from_static(b"order-1"))
                    .with_timeout(Duration::from_secs(6)),
            )
            .await
    });

    // Mallory reads the request topic: the id there is not the caller's.
    let request = read_request(&server, "prices").await;
    let wire_id = header(&request, CORRELATION_ID_HEADER)
        .expect("a correlation id")
        .clone();
    assert_ne!(
        &wire_id[..],
        b"order-1",
        "the caller's id is not in the log"
    );
    let forged = |door: &str| ProduceRecord {
        headers: vec![
            (CORRELATION_ID_HEADER.to_owned(), wire_id.clone()),
            (REPLY_MAC_HEADER.to_owned(), Bytes::from_static(&[7; 32])),
        ],
        ..ProduceRecord::value(format!("FORGED by mallory over {door}"))
    };

    // ... and answers it through every door that can write the reply topic. Whether the door
    // refuses the write (the reply topic is internal) or appends it, it must not be delivered.
    let mut appended = 0;
    if broker
        .produce(REPLIES, vec![forged("embedded")])
        .await
        .is_ok()
    {
        appended += 1;
    }
    let over_grpc = client
        .produce(
            REPLIES,
            vec![ProducerRecord::value("FORGED by mallory over gRPC")
                .with_header(CORRELATION_ID_HEADER, wire_id.clone())],
        )
        .await;
    match over_grpc {
        Ok(_) => appended += 1,
        Err(e) => assert_eq!(e.code(), Code::PermissionDenied, "{e}"),
    }
    let b64 = base64::engine::general_purpose::STANDARD.encode(&wire_id);
    let body = format!(
        r#"{{"header_encoding":"base64","records":[{{"value":"FORGED by mallory over HTTP","headers":[{{"key":"{CORRELATION_ID_HEADER}","value":"{b64}"}}]}}]}}"#
    );
    let (status, answer) = raw_http(
        http,
        &post(
            &format!("/v1/topics/{REPLIES}/records"),
            "localhost",
            Some("application/json"),
            &body,
        ),
    )
    .await;
    match status {
        200 => appended += 1,
        _ => assert_eq!(status, 403, "{answer}"),
    }
    let producer = kafka_support::producer(&kafka, &[]);
    let over_kafka = producer
        .send(
            FutureRecord::to(REPLIES)
                .partition(0)
                .payload("FORGED by mallory over Kafka")
                .key("k")
                .headers(OwnedHeaders::new().insert(Header {
                    key: CORRELATION_ID_HEADER,
                    value: Some(&wire_id[..]),
                })),
            Duration::from_secs(5),
        )
        .await;
    if over_kafka.is_ok() {
        appended += 1;
    }

    // A gRPC responder cannot answer a request it was not given.
    let messages = vec![
        proto::RespondRequest {
            message: Some(Message::Open(proto::RespondOpen {
                topic: "prices".into(),
                group_id: "mallory".into(),
                max_in_flight: 1,
            })),
        },
        proto::RespondRequest {
            message: Some(Message::Reply(proto::RespondReply {
                partition: 0,
                offset: 99,
                outcome: Some(proto::respond_reply::Outcome::Error("FORGED".into())),
            })),
        },
    ];
    let mut stream = client
        .grpc()
        .respond(futures::stream::iter(messages).chain(futures::stream::pending()))
        .await
        .expect("a Respond stream")
        .into_inner();
    let refused = loop {
        match tokio::time::timeout(PATIENCE, stream.message())
            .await
            .expect("the stream ends")
        {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the stream ended without refusing the reply"),
            Err(status) => break status,
        }
    };
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");

    let outcome = call.await.expect("call task");
    let err = outcome.expect_err("no reply may be delivered");
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err}");
    let stats = broker.reqreply_stats();
    assert_eq!(
        stats.unbound_replies, appended,
        "every forgery the doors let in was seen and ignored: {stats:?}"
    );
    assert!(appended >= 1, "the embedded API appends (it is trusted)");

    // The real responder answers; the caller, retrying with its id, gets that answer.
    tokio::spawn(async move {
        broker
            .respond("prices", "pricing", |request: Request| async move {
                let item = String::from_utf8_lossy(&request.value.unwrap_or_default()).into_owned();
                Ok::<_, String>(Answer::value(format!("{item}: 3 EUR")))
            })
            .await
    });
    let reply = client
        .call(
            "prices",
            CallRequest::value("apple")
                .with_correlation_id(Bytes::from_static(b"order-1"))
                .with_timeout(PATIENCE),
        )
        .await
        .expect("the responder's reply");
    assert_eq!(reply.value.as_deref(), Some(&b"apple: 3 EUR"[..]));
    assert_eq!(&reply.correlation_id[..], b"order-1");
    server.stop().await.expect("stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_reads_only_its_own_reply() {
    let dir = tempfile::tempdir().expect("dir");
    let server = start(dir.path(), &[]).await;
    let broker = server.broker().expect("local").clone();
    let responder = broker.clone();
    tokio::spawn(async move {
        responder
            .respond("quotes", "svc", |_request: Request| async move {
                Ok::<_, String>(Answer::value("the secret quote"))
            })
            .await
    });
    let http = server.addr(DoorKind::Http).expect("HTTP");
    let client = Client::connect(format!(
        "http://{}",
        server.addr(DoorKind::Grpc).expect("gRPC")
    ))
    .await
    .expect("client");
    // The caller's id: random, known only to it.
    let reply = client
        .call("quotes", CallRequest::value("q").with_timeout(PATIENCE))
        .await
        .expect("a reply");
    let id = reply.correlation_id.clone();
    assert_eq!(id.len(), 16);

    // Mallory reads the request topic and tries the id she finds there.
    let request = read_request(&server, "quotes").await;
    let wire_id = header(&request, CORRELATION_ID_HEADER).expect("id").clone();
    assert_ne!(wire_id, id, "the log carries a hash of the caller's id");
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let get = |id: String| {
        format!(
            "GET /v1/topics/quotes/call/0x{id} HTTP/1.1\r\nHost: localhost\r\n\
             Connection: close\r\n\r\n"
        )
    };
    let (status, answer) = raw_http(http, &get(hex(&wire_id))).await;
    assert_eq!(status, 404, "{answer}");
    assert!(answer.contains("unknown_call"), "{answer}");
    assert!(!answer.contains("secret quote"), "{answer}");
    // gRPC: a call with that id is a new call of hers, not a way to the reply.
    let err = client
        .call(
            "quotes",
            CallRequest::value("mine?")
                .with_correlation_id(wire_id.clone())
                .with_timeout(Duration::from_secs(3)),
        )
        .await;
    if let Ok(theirs) = &err {
        assert_ne!(theirs.offset, reply.offset, "not the caller's reply");
    }
    // The reply topic itself: whatever a door lets her read there, it is not the caller's id.
    // The caller fetches its own reply by its id.
    let (status, answer) = raw_http(http, &get(hex(&id))).await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("the secret quote"), "{answer}");
    server.stop().await.expect("stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_door_refuses_cross_site_bodies_and_foreign_hosts() {
    let dir = tempfile::tempdir().expect("dir");
    let server = start(dir.path(), &["brook.internal"]).await;
    let http = server.addr(DoorKind::Http).expect("HTTP");
    let port = http.port();
    let host = format!("127.0.0.1:{port}");
    let topics = server.broker().expect("local").clone();

    // What a page on any site can make a browser send without a preflight: refused, nothing
    // written, whatever the route.
    for (path, body) in [
        ("/v1/topics/prices/call?timeout_ms=100", "apple"),
        ("/v1/topics", r#"{"name":"csrf","partitions":1}"#),
        ("/v1/topics/csrf/records", r#"{"records":[{"value":"x"}]}"#),
    ] {
        for content_type in [
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            Some("multipart/form-data; boundary=x"),
            None,
        ] {
            let (status, answer) = raw_http(http, &post(path, &host, content_type, body)).await;
            assert_eq!(status, 415, "{path} {content_type:?}: {answer}");
            assert!(answer.contains("unsupported_media_type"), "{answer}");
            assert!(answer.contains("application/json"), "{answer}");
        }
    }
    assert!(
        topics.list_topics().iter().all(|t| t.name != "csrf"),
        "nothing was created"
    );

    // Names that are not the door's: refused before anything runs, reads included.
    for bad in ["evil.example", "evil.example:80", "127.0.0.1.nip.io"] {
        let (status, answer) = raw_http(
            http,
            &post(
                "/v1/topics",
                bad,
                Some("application/json"),
                r#"{"name":"rebound","partitions":1}"#,
            ),
        )
        .await;
        assert_eq!(status, 421, "{bad}: {answer}");
        assert!(answer.contains("http_allowed_hosts"), "{answer}");
        let read = format!("GET /v1/topics HTTP/1.1\r\nHost: {bad}\r\nConnection: close\r\n\r\n");
        assert_eq!(raw_http(http, &read).await.0, 421, "{bad}");
    }
    assert!(topics.list_topics().iter().all(|t| t.name != "rebound"));

    // The door's own names, with a JSON body: served.
    for (name, good) in [
        ("a", format!("localhost:{port}")),
        ("b", host.clone()),
        ("c", "brook.internal".to_owned()),
        ("d", format!("[::1]:{port}")),
    ] {
        let body = format!(r#"{{"name":"ok-{name}","partitions":1}}"#);
        let (status, answer) = raw_http(
            http,
            &post("/v1/topics", &good, Some("application/json"), &body),
        )
        .await;
        assert!((200..300).contains(&status), "{good}: {answer}");
    }
    // A JSON call body passes the guard (and times out: no responder).
    let (status, answer) = raw_http(
        http,
        &post(
            "/v1/topics/ok-a/call?timeout_ms=100",
            &host,
            Some("application/json"),
            r#"{"item":"apple"}"#,
        ),
    )
    .await;
    assert_eq!(status, 504, "{answer}");
    server.stop().await.expect("stops");
}

/// Kafka's error codes the door answers for internal topics.
const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
const INVALID_TOPIC_EXCEPTION: i16 = 17;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_topics_are_refused_to_clients_on_every_door() {
    use brook_log::batch::{BatchBuilder, Compression, RecordRef};
    use kafka_protocol::messages::create_topics_request::CreatableTopic;
    use kafka_protocol::messages::{
        ApiKey, CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest,
        DeleteTopicsResponse, FetchResponse, ProduceResponse, TopicName,
    };
    use kafka_protocol::protocol::StrBytes;
    use kafka_support::raw::{fetch_request, produce_request, Raw};

    let dir = tempfile::tempdir().expect("dir");
    let server = start(dir.path(), &[]).await;
    let broker = server.broker().expect("local").clone();
    // The broker's own use: a call and its reply go through the reply topic.
    broker
        .create_topic(NewTopic::new("ping", 1))
        .await
        .expect("topic");
    let responder = broker.clone();
    tokio::spawn(async move {
        responder
            .respond("ping", "svc", |_request: Request| async move {
                Ok::<_, String>(Answer::value("pong"))
            })
            .await
    });
    let call = || {
        broker.call(
            "ping",
            brook_broker::Call::new("ping").with_timeout(PATIENCE),
        )
    };
    call().await.expect("request-reply works before");
    let replies_end = || async {
        broker
            .list_offset(REPLIES, 0, brook_broker::OffsetSpec::Latest)
            .await
            .expect("offset")
            .offset
            .expect("latest")
    };
    let before = replies_end().await;

    // Kafka: CreateTopics, Produce, Fetch, DeleteTopics.
    let mut raw = Raw::connect_to(server.addr(DoorKind::Kafka).expect("Kafka")).await;
    let topic = |name: &str| TopicName(StrBytes::from_string(name.to_owned()));
    for name in [
        "__mine",
        "__consumer_offsets",
        "__transaction_state",
        REPLIES,
    ] {
        let mut creatable = CreatableTopic::default();
        creatable.name = topic(name);
        creatable.num_partitions = 1;
        creatable.replication_factor = 1;
        let mut request = CreateTopicsRequest::default();
        request.topics = vec![creatable];
        let response: CreateTopicsResponse = raw.call(ApiKey::CreateTopics, 5, &request).await;
        let code = response.topics[0].error_code;
        assert!(
            [TOPIC_AUTHORIZATION_FAILED, INVALID_TOPIC_EXCEPTION].contains(&code),
            "create {name}: {code}"
        );
    }
    let mut builder = BatchBuilder::new(Compression::None);
    builder.push(RecordRef {
        key: None,
        value: Some(b"FORGED"),
        headers: &[],
        timestamp: 1_700_000_000_000,
    });
    let records = builder.build().expect("batch").freeze();
    let produced: ProduceResponse = raw
        .call(ApiKey::Produce, 8, &produce_request(REPLIES, records, -1))
        .await;
    let code = produced.responses[0].partition_responses[0].error_code;
    assert!(
        [TOPIC_AUTHORIZATION_FAILED, INVALID_TOPIC_EXCEPTION].contains(&code),
        "produce: {code}"
    );
    let fetched: FetchResponse = raw
        .call(ApiKey::Fetch, 11, &fetch_request(REPLIES, 0, 0))
        .await;
    let partition = &fetched.responses[0].partitions[0];
    assert_eq!(partition.error_code, TOPIC_AUTHORIZATION_FAILED, "fetch");
    assert!(partition.records.as_ref().is_none_or(Bytes::is_empty));
    let mut delete = DeleteTopicsRequest::default();
    delete.topic_names = vec![topic(REPLIES)];
    let deleted: DeleteTopicsResponse = raw.call(ApiKey::DeleteTopics, 4, &delete).await;
    let code = deleted.responses[0].error_code;
    assert!(
        [TOPIC_AUTHORIZATION_FAILED, INVALID_TOPIC_EXCEPTION].contains(&code),
        "delete: {code}"
    );

    // gRPC: create, produce, fetch, delete.
    let client = Client::connect(format!(
        "http://{}",
        server.addr(DoorKind::Grpc).expect("gRPC")
    ))
    .await
    .expect("client");
    let mut grpc = client.grpc();
    let denied = |status: tonic::Status, what: &str| {
        assert_eq!(status.code(), Code::PermissionDenied, "{what}: {status:?}");
        assert!(status.message().contains("internal"), "{what}: {status:?}");
    };
    let created = grpc
        .create_topic(proto::CreateTopicRequest {
            topic: "__mine".into(),
            partitions: 1,
            ..Default::default()
        })
        .await;
    denied(created.expect_err("create"), "create");
    let err = client
        .produce(REPLIES, vec![ProducerRecord::value("FORGED")])
        .await
        .expect_err("produce");
    assert_eq!(err.code(), Code::PermissionDenied, "{err}");
    let fetched = grpc
        .fetch(proto::FetchRequest {
            topic: REPLIES.into(),
            partition: 0,
            offset: 0,
            ..Default::default()
        })
        .await;
    denied(fetched.expect_err("fetch"), "fetch");
    let deleted = grpc
        .delete_topic(proto::DeleteTopicRequest {
            topic: REPLIES.into(),
        })
        .await;
    denied(deleted.expect_err("delete"), "delete");

    // HTTP: create, produce, read, delete.
    let http = server.addr(DoorKind::Http).expect("HTTP");
    let request = |method: &str, path: &str, body: &str| {
        format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    for (method, path, body) in [
        (
            "POST",
            "/v1/topics".to_owned(),
            r#"{"name":"__mine","partitions":1}"#,
        ),
        (
            "POST",
            format!("/v1/topics/{REPLIES}/records"),
            r#"{"records":[{"value":"FORGED"}]}"#,
        ),
        (
            "GET",
            format!("/v1/topics/{REPLIES}/partitions/0/records?offset=0"),
            "",
        ),
        ("DELETE", format!("/v1/topics/{REPLIES}"), ""),
    ] {
        let (status, answer) = raw_http(http, &request(method, &path, body)).await;
        assert_eq!(status, 403, "{method} {path}: {answer}");
        assert!(answer.contains("internal"), "{answer}");
    }

    // Nothing changed, and the broker's own use goes on.
    assert!(broker.list_topics().iter().all(|t| t.name != "__mine"));
    assert_eq!(
        replies_end().await,
        before,
        "nothing appended to the reply topic"
    );
    call().await.expect("request-reply works after");
    server.stop().await.expect("stops");
}
