//! Authentication and authorization in gateway mode (docs/security.md, "A gateway"): `brook
//! serve --backend kafka://... --auth on --data-dir DIR` as the built binary, in front of a real
//! Kafka-protocol cluster (brook's own Kafka door in another process, secured, which the
//! gateway logs in to as its superuser through `backend_properties`).
//!
//! The gateway's users, token and ACL are made offline with `brook user|token|acl --data-dir`
//! on its data directory, which holds only its security store. Then, over real sockets: gRPC
//! and HTTP calls without credentials are UNAUTHENTICATED / 401, with a wrong password the
//! same, as a user without the ACL PERMISSION_DENIED / 403, as a user with it (Basic and
//! Bearer) allowed; and the cluster's topic shows that nothing refused reached it (its high
//! watermark counts only the allowed records; a refused topic creation leaves no topic). A
//! request-reply call as a user with the ACL is answered by a responder on the gateway's
//! Respond stream; one without it is refused and writes no request.
//! `brook user|token|acl` then work against the running gateway online through both doors,
//! and are refused offline while it holds the store. Settings that cannot work are refused
//! before anything starts: auth on without `--data-dir`, and a data directory holding a log.

#[path = "cli_support/mod.rs"]
mod cli_support;
mod scale_out_support;

use base64::Engine as _;
use brook_proto::v1 as pb;
use brook_proto::v1::brook_client::BrookClient;
use cli_support::outcome;
use scale_out_support::{brook, KafkaCluster, Served, PATIENCE};
use serde_json::json;
use tonic::transport::Channel;
use tonic::Code;

/// `brook ARGS` that must succeed; its stdout.
async fn cli_ok(args: &[&str], stdin: &str) -> String {
    let (ok, out, err) = outcome(args, stdin).await;
    assert!(ok, "brook {args:?} failed: {out}{err}");
    out
}

fn basic(user: &str, password: &str) -> String {
    let pair = format!("{user}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

/// A gRPC request with `authorization` when given.
fn with<T>(message: T, authorization: Option<&str>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(value) = authorization {
        request
            .metadata_mut()
            .insert("authorization", value.parse().expect("ASCII"));
    }
    request
}

fn produce(topic: &str, value: &str) -> pb::ProduceRequest {
    pb::ProduceRequest {
        topic: topic.into(),
        records: vec![pb::ProducerRecord {
            value: Some(value.as_bytes().to_vec().into()),
            partition: Some(0),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn create_topic(topic: &str) -> pb::CreateTopicRequest {
    pb::CreateTopicRequest {
        topic: topic.into(),
        partitions: 1,
        ..Default::default()
    }
}

/// `POST /v1/topics/orders/records` with one record and `authorization` when given: the status.
async fn http_produce(base: &str, authorization: Option<&str>, value: &str) -> u16 {
    let mut request = reqwest::Client::new()
        .post(format!("{base}/v1/topics/orders/records"))
        .json(&json!({"records": [{"value": value, "partition": 0}]}));
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    request.send().await.expect("HTTP").status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_with_auth_on_authenticates_and_authorizes_before_the_cluster_sees_anything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = KafkaCluster::start_secured(&dir.path().join("cluster"));
    let kafka = cluster.connect().await;
    let gw = dir.path().join("gateway");
    let gw_dir = gw.to_str().expect("utf-8");

    // Offline, on the gateway's own data directory: users, a token, an ACL.
    for user in ["admin", "alice", "bob"] {
        cli_ok(
            &[
                "user",
                "add",
                user,
                "--data-dir",
                gw_dir,
                "--password-stdin",
            ],
            &format!("{user}-pw\n"),
        )
        .await;
    }
    let alice_token = cli_ok(
        &[
            "token",
            "create",
            "alice",
            "--data-dir",
            gw_dir,
            "--ttl",
            "1h",
        ],
        "",
    )
    .await
    .trim()
    .to_owned();
    for topic in ["orders", "quotes"] {
        cli_ok(
            &[
                "acl",
                "add",
                "--data-dir",
                gw_dir,
                "--principal",
                "User:alice",
                "--operation",
                "write",
                "--topic",
                topic,
            ],
            "",
        )
        .await;
    }
    let listed = cli_ok(&["acl", "list", "--data-dir", gw_dir], "").await;
    assert_eq!(listed.lines().count(), 2, "{listed}");
    let entries: Vec<String> = std::fs::read_dir(&gw)
        .expect("the gateway's directory")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(entries, ["security"], "only the security store");

    let properties = cluster.backend_properties();
    let gateway = Served::start(&[
        "--backend",
        &cluster.url,
        "--backend-properties",
        &properties,
        "--data-dir",
        gw_dir,
        "--auth",
        "on",
        "--superusers",
        "User:admin",
        "--grpc-addr",
        "127.0.0.1:0",
        "--http-addr",
        "127.0.0.1:0",
    ]);
    let grpc_addr = gateway.addr("grpc");
    let http = format!("http://{}", gateway.addr("http"));
    let channel = Channel::from_shared(format!("http://{grpc_addr}"))
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let mut grpc = BrookClient::new(channel);
    let admin = basic("admin", "admin-pw");
    let alice = basic("alice", "alice-pw");
    let bob = basic("bob", "bob-pw");
    let bearer = format!("Bearer {alice_token}");

    // The superuser creates the topic on the cluster; bob may not create one.
    grpc.create_topic(with(create_topic("orders"), Some(&admin)))
        .await
        .expect("the superuser creates");
    assert_eq!(
        kafka
            .partition_count("orders")
            .await
            .expect("on the cluster"),
        1
    );
    let status = grpc
        .create_topic(with(create_topic("bobs"), Some(&bob)))
        .await
        .expect_err("bob may not create");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    let status = grpc
        .create_topic(with(create_topic("anon"), None))
        .await
        .expect_err("nobody may not create");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    let created = reqwest::Client::new()
        .post(format!("{http}/v1/topics"))
        .header("authorization", &bob)
        .json(&json!({"name": "bobs-http", "partitions": 1}))
        .send()
        .await
        .expect("HTTP");
    assert_eq!(created.status().as_u16(), 403);
    for never in ["bobs", "anon", "bobs-http"] {
        assert!(
            kafka.partition_count(never).await.is_err(),
            "{never} never reached the cluster"
        );
    }

    // gRPC produce: refused without credentials, with a wrong password, without the ACL.
    for (who, code) in [
        (None, Code::Unauthenticated),
        (Some(basic("alice", "wrong")), Code::Unauthenticated),
        (Some(basic("mallory", "x")), Code::Unauthenticated),
        (Some(bob.clone()), Code::PermissionDenied),
    ] {
        let status = grpc
            .produce(with(produce("orders", "refused"), who.as_deref()))
            .await
            .expect_err("refused");
        assert_eq!(status.code(), code, "{who:?}: {status:?}");
    }
    // ... allowed with the ACL, by password and by token.
    grpc.produce(with(produce("orders", "alice basic"), Some(&alice)))
        .await
        .expect("alice may write");
    grpc.produce(with(produce("orders", "alice bearer"), Some(&bearer)))
        .await
        .expect("alice's token may write");
    // alice may write, not read.
    let status = grpc
        .fetch(with(
            pb::FetchRequest {
                topic: "orders".into(),
                partition: 0,
                offset: 0,
                ..Default::default()
            },
            Some(&alice),
        ))
        .await
        .expect_err("no Read");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");

    // HTTP produce: the same answers.
    assert_eq!(http_produce(&http, None, "refused").await, 401);
    assert_eq!(
        http_produce(&http, Some(&basic("alice", "wrong")), "refused").await,
        401
    );
    assert_eq!(http_produce(&http, Some(&bob), "refused").await, 403);
    assert_eq!(http_produce(&http, Some(&alice), "alice http").await, 200);
    assert_eq!(
        http_produce(&http, Some(&bearer), "alice http bearer").await,
        200
    );

    // The cluster holds exactly the four allowed records.
    assert_eq!(
        kafka.log_range("orders", 0).await.expect("range"),
        (0, 4),
        "nothing refused reached the cluster"
    );

    // Request-reply through the gateway: the superuser answers on a Respond stream (a
    // responder must hold the gateway's reply key, so it responds through the gateway), alice
    // (Write on quotes) calls; bob's call is refused and sends no request to the cluster.
    grpc.create_topic(with(create_topic("quotes"), Some(&admin)))
        .await
        .expect("the superuser creates");
    let (mut replies, outbound) = futures::channel::mpsc::channel(4);
    replies
        .try_send(pb::RespondRequest {
            message: Some(pb::respond_request::Message::Open(pb::RespondOpen {
                topic: "quotes".into(),
                group_id: "quoting".into(),
                max_in_flight: 0,
            })),
        })
        .expect("open");
    let mut requests = grpc
        .respond(with(outbound, Some(&admin)))
        .await
        .expect("the superuser responds")
        .into_inner();
    let call = |value: &str| pb::CallRequest {
        topic: "quotes".into(),
        value: Some(value.as_bytes().to_vec().into()),
        partition: Some(0),
        timeout_ms: 20_000,
        ..Default::default()
    };
    let status = grpc
        .call(with(call("from bob"), Some(&bob)))
        .await
        .expect_err("bob may not call");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    let mut caller = grpc.clone();
    let calling = tokio::spawn({
        let request = with(call("pears"), Some(&alice));
        async move { caller.call(request).await }
    });
    let request = tokio::time::timeout(PATIENCE, requests.message())
        .await
        .expect("a request in time")
        .expect("the stream")
        .expect("a message")
        .request
        .expect("a request");
    assert_eq!(request.value.as_deref(), Some(&b"pears"[..]));
    replies
        .try_send(pb::RespondRequest {
            message: Some(pb::respond_request::Message::Reply(pb::RespondReply {
                partition: request.partition,
                offset: request.offset,
                outcome: Some(pb::respond_reply::Outcome::Answer(pb::Answer {
                    value: Some(b"quote for pears".to_vec().into()),
                    headers: Vec::new(),
                })),
            })),
        })
        .expect("reply");
    let reply = calling
        .await
        .expect("task")
        .expect("alice's call is answered")
        .into_inner();
    assert_eq!(reply.value.as_deref(), Some(&b"quote for pears"[..]));
    assert_eq!(
        kafka.log_range("quotes", 0).await.expect("range"),
        (0, 1),
        "only alice's request reached the cluster"
    );
    drop(replies);

    // Online administration of the running gateway, through both doors.
    let creds = dir.path().join("admin.creds");
    std::fs::write(&creds, "admin:admin-pw\n").expect("credentials");
    let creds = creds.to_str().expect("utf-8");
    let grpc_server = grpc_addr.to_string();
    cli_ok(
        &[
            "-s",
            &grpc_server,
            "user",
            "add",
            "carol",
            "--password-stdin",
            "--credentials-file",
            creds,
        ],
        "carol-pw\n",
    )
    .await;
    cli_ok(
        &[
            "acl",
            "add",
            "--http-addr",
            &gateway.addr("http"),
            "--credentials-file",
            creds,
            "--principal",
            "User:carol",
            "--operation",
            "read",
            "--topic",
            "orders",
        ],
        "",
    )
    .await;
    let listed = cli_ok(
        &[
            "-s",
            &grpc_server,
            "acl",
            "list",
            "--credentials-file",
            creds,
        ],
        "",
    )
    .await;
    assert_eq!(listed.lines().count(), 3, "{listed}");
    assert!(
        listed.contains("User:carol Allow Read on Literal Topic \"orders\""),
        "{listed}"
    );
    let users = cli_ok(
        &[
            "user",
            "list",
            "--http-addr",
            &http,
            "--credentials-file",
            creds,
        ],
        "",
    )
    .await;
    assert_eq!(
        users
            .lines()
            .map(|l| l.split('\t').next().unwrap_or(""))
            .collect::<Vec<_>>(),
        ["admin", "alice", "bob", "carol"],
        "{users}"
    );
    let carol_token = cli_ok(
        &[
            "token",
            "create",
            "carol",
            "--http-addr",
            &http,
            "--credentials-file",
            creds,
            "--ttl",
            "1h",
        ],
        "",
    )
    .await
    .trim()
    .to_owned();
    // carol reads what alice wrote, with the token made online.
    let read = reqwest::Client::new()
        .get(format!(
            "{http}/v1/topics/orders/partitions/0/records?offset=0&value_encoding=text"
        ))
        .header("authorization", format!("Bearer {carol_token}"))
        .send()
        .await
        .expect("HTTP");
    assert_eq!(read.status().as_u16(), 200);
    let body: serde_json::Value = read.json().await.expect("JSON");
    assert_eq!(body["records"][0]["value"], "alice basic", "{body}");
    // bob may not administer; nobody offline while the gateway holds the store.
    let bob_creds = dir.path().join("bob.creds");
    std::fs::write(&bob_creds, "bob:bob-pw\n").expect("credentials");
    let (ok, _, err) = outcome(
        &[
            "-s",
            &grpc_server,
            "user",
            "list",
            "--credentials-file",
            bob_creds.to_str().expect("utf-8"),
        ],
        "",
    )
    .await;
    assert!(!ok && err.contains("Describe"), "{err}");
    let (ok, _, err) = outcome(&["user", "list", "--data-dir", gw_dir], "").await;
    assert!(!ok && err.contains("running broker"), "{err}");
    // Revoked online, alice's offline token is refused at once.
    let tokens = cli_ok(
        &[
            "-s",
            &grpc_server,
            "token",
            "list",
            "--user",
            "alice",
            "--credentials-file",
            creds,
        ],
        "",
    )
    .await;
    let id = tokens.split('\t').next().expect("a token id").to_owned();
    cli_ok(
        &[
            "token",
            "revoke",
            &id,
            "--http-addr",
            &http,
            "--credentials-file",
            creds,
        ],
        "",
    )
    .await;
    assert_eq!(http_produce(&http, Some(&bearer), "revoked").await, 401);
    assert_eq!(kafka.log_range("orders", 0).await.expect("range"), (0, 4));

    gateway.stop();
    // Stopped, the store is the offline tools' again, carol's ACL in it.
    let listed = cli_ok(&["acl", "list", "--data-dir", gw_dir], "").await;
    assert_eq!(listed.lines().count(), 3, "{listed}");
    kafka.close().await.expect("close");
}

#[test]
fn a_gateway_with_auth_on_needs_a_data_directory_of_its_own() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A broker's data directory (a log in it), made by a broker that ran there.
    let broker_dir = dir.path().join("broker");
    let broker = Served::start(&[
        "--data-dir",
        broker_dir.to_str().expect("utf-8"),
        "--grpc-addr",
        "127.0.0.1:0",
        "--http-addr",
        "off",
        "--kafka-addr",
        "off",
    ]);
    broker.stop();
    let gateway = ["serve", "--backend", "kafka://127.0.0.1:9", "--auth", "on"];
    let cases: [(&[&str], &str); 2] = [
        (&[], "needs --data-dir DIR"),
        (
            &["--data-dir", broker_dir.to_str().expect("utf-8")],
            "holds more than a gateway's security store",
        ),
    ];
    for (args, says) in cases {
        let mut full = gateway.to_vec();
        full.extend_from_slice(args);
        let output = brook(&full).output().expect("run brook serve");
        assert_eq!(output.status.code(), Some(2), "{args:?}: {output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}
