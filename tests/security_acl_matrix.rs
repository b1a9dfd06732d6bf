//! Kafka's ACL model operation by operation (docs/security.md, "Authorization"), end to end on
//! real sockets against `brook::server` with `auth` on (`User:admin` a superuser, users log in
//! with their password `<name>-pw`):
//!
//! - the operation matrix, through kafka-python (tests/python/security_acl_matrix.py): for each
//!   resource type and each operation Kafka defines on it, the client operation that needs it
//!   succeeds with exactly that ACL, with each operation that implies it, and fails without it
//!   with Kafka's authorization error for the type;
//! - the `authorized_operations` fields (Metadata v8+, DescribeCluster, DescribeGroups v3+): the
//!   principal's bit set when asked for, `i32::MIN` when not, every operation with auth off, in
//!   raw frames and as kafka-python reads them;
//! - the HTTP routes that move or delete a group's offsets check each topic they touch (the
//!   body's, the query's, or the group's committed ones) and refuse the whole request with 403
//!   naming the topic, changing nothing; gRPC's SeekGroup the same.

mod kafka_support;
mod security_support;

use std::path::Path;

use brook::server::{DoorKind, Server};
use brook_broker::auth::{AclBinding, Operation, PatternType, Permission, ResourceType};
use brook_broker::{NewTopic, OffsetCommit, ProduceRecord, TopicPartition};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, DescribeClusterRequest, DescribeClusterResponse, DescribeGroupsRequest,
    DescribeGroupsResponse, GroupId, MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_support::python;
use kafka_support::raw::Raw;

/// Kafka's "authorized operations not asked for".
const NOT_ASKED: i32 = i32::MIN;

/// A server on `data` (with `users` made offline first), authentication `on` or off,
/// `User:admin` a superuser.
async fn start(data: &Path, on: bool, users: &[&str]) -> Server {
    security_support::create_users(data, users).await;
    let mut config = security_support::auth_config(data);
    config.auth.enabled = on;
    Server::start(&config).await.expect("server starts")
}

fn allow(kind: ResourceType, name: &str, principal: &str, operation: Operation) -> AclBinding {
    AclBinding {
        resource_type: kind,
        resource_name: name.into(),
        pattern_type: PatternType::Literal,
        principal: format!("User:{principal}"),
        host: "*".into(),
        operation,
        permission: Permission::Allow,
    }
}

/// Makes `topics` (one partition each) with one record each, and commits `group` at offset 0
/// in each.
async fn topics_and_group(server: &Server, topics: &[&str], group: &str) {
    let broker = server.broker().expect("a local broker");
    for topic in topics {
        broker
            .create_topic(NewTopic::new(*topic, 1))
            .await
            .expect("topic");
        broker
            .produce(topic, vec![ProduceRecord::value("r")])
            .await
            .expect("a record");
    }
    if !group.is_empty() {
        let commits = topics.iter().map(|t| OffsetCommit::new(*t, 0, 0)).collect();
        broker.commit_offsets(group, commits).await.expect("commit");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_python_walks_every_operation_of_every_resource_type() {
    let dir = tempfile::tempdir().expect("dir");
    let server = start(&dir.path().join("data"), true, &["admin", "m"]).await;
    topics_and_group(&server, &["mx", "mx-grow"], "").await;
    let bootstrap = server.addr(DoorKind::Kafka).expect("on").to_string();
    let output = tokio::task::spawn_blocking(move || {
        python::run_script("security_acl_matrix.py", &bootstrap, &[])
    })
    .await
    .expect("the script ran");
    let lines = python::json_lines(&output);
    let mut cases = std::collections::BTreeSet::new();
    for line in &lines {
        let (case, grant) = (&line["case"], &line["grant"]);
        let expected = if grant == "without" {
            &line["refusal"]
        } else {
            &line["allowed"]
        };
        assert_eq!(&line["outcome"], expected, "{case} with {grant}: {line}");
        cases.insert(case.as_str().expect("a name").to_owned());
    }
    // Every operation Kafka defines on each type has a client operation here, but the
    // cluster's ClusterAction: it guards inter-broker requests, which a single node has none of.
    for kind in ResourceType::ALL {
        for op in kind.operations() {
            if *op == Operation::ClusterAction {
                continue;
            }
            let prefix = match kind {
                ResourceType::Topic => "topic",
                ResourceType::Group => "group",
                ResourceType::Cluster => "cluster",
                ResourceType::TransactionalId => "transactional_id",
            };
            let name = format!("{prefix} {op}");
            assert!(cases.contains(&name), "no case for {name}: {cases:?}");
        }
    }
    assert!(lines.len() >= 60, "{} attempts", lines.len());
    server.stop().await.expect("stops");
}

/// A raw Kafka connection logged in as `user` with SASL PLAIN.
async fn login(server: &Server, user: &str) -> Raw {
    let mut raw = Raw::connect_to(server.addr(DoorKind::Kafka).expect("on")).await;
    let authenticated = raw.sasl_plain(user, &format!("{user}-pw")).await;
    assert_eq!(authenticated.error_code, 0, "{user} logs in");
    raw
}

/// What a connection reads: (topic's, cluster's from Metadata v10, cluster's from
/// DescribeCluster, group's), each asked for when `ask`.
async fn operations(raw: &mut Raw, topic: &str, group: &str, ask: bool) -> [i32; 4] {
    let metadata = |version| {
        MetadataRequest::default()
            .with_topics(Some(vec![MetadataRequestTopic::default()
                .with_name(Some(TopicName(StrBytes::from_string(topic.into()))))]))
            .with_include_topic_authorized_operations(ask)
            .with_include_cluster_authorized_operations(ask && version <= 10)
    };
    let v12: MetadataResponse = raw.call(ApiKey::Metadata, 12, &metadata(12)).await;
    let v10: MetadataResponse = raw.call(ApiKey::Metadata, 10, &metadata(10)).await;
    assert_eq!(
        v10.topics[0].topic_authorized_operations, v12.topics[0].topic_authorized_operations,
        "v10 and v12 agree"
    );
    let cluster: DescribeClusterResponse = raw
        .call(
            ApiKey::DescribeCluster,
            0,
            &DescribeClusterRequest::default().with_include_cluster_authorized_operations(ask),
        )
        .await;
    let groups: DescribeGroupsResponse = raw
        .call(
            ApiKey::DescribeGroups,
            5,
            &DescribeGroupsRequest::default()
                .with_groups(vec![GroupId(StrBytes::from_string(group.into()))])
                .with_include_authorized_operations(ask),
        )
        .await;
    [
        v12.topics[0].topic_authorized_operations,
        v10.cluster_authorized_operations,
        cluster.cluster_authorized_operations,
        groups.groups[0].authorized_operations,
    ]
}

/// Kafka's bit set of `codes` (AclOperation codes).
fn bits(codes: &[i8]) -> i32 {
    codes.iter().fold(0, |set, code| set | 1 << code)
}

// AclOperation codes, Kafka's.
const READ: i8 = 3;
const WRITE: i8 = 4;
const CREATE: i8 = 5;
const DELETE: i8 = 6;
const ALTER: i8 = 7;
const DESCRIBE: i8 = 8;
const CLUSTER_ACTION: i8 = 9;
const DESCRIBE_CONFIGS: i8 = 10;
const ALTER_CONFIGS: i8 = 11;
const IDEMPOTENT_WRITE: i8 = 12;

/// A kafka-python admin's view as `user` (`-`: no SASL): its JSON line.
async fn python_view(server: &Server, user: &str) -> serde_json::Value {
    let bootstrap = server.addr(DoorKind::Kafka).expect("on").to_string();
    let user = user.to_owned();
    tokio::task::spawn_blocking(move || {
        let output = python::run_script(
            "security_authorized_operations.py",
            &bootstrap,
            &[&user, "orders", "billing"],
        );
        python::json_lines(&output).remove(0)
    })
    .await
    .expect("the script ran")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorized_operations_are_the_principals_bit_set_when_asked_for() {
    let dir = tempfile::tempdir().expect("dir");
    let server = start(&dir.path().join("data"), true, &["admin", "alice", "bob"]).await;
    topics_and_group(&server, &["orders"], "billing").await;
    server
        .auth()
        .expect("on")
        .create_acls(vec![
            allow(ResourceType::Topic, "orders", "alice", Operation::Read),
            allow(ResourceType::Topic, "orders", "alice", Operation::Write),
            allow(
                ResourceType::Topic,
                "orders",
                "alice",
                Operation::AlterConfigs,
            ),
            allow(ResourceType::Group, "billing", "alice", Operation::Read),
            allow(
                ResourceType::Cluster,
                "kafka-cluster",
                "alice",
                Operation::Alter,
            ),
            // bob may describe the group only, and not the cluster.
            allow(ResourceType::Group, "billing", "bob", Operation::Describe),
            allow(
                ResourceType::Cluster,
                "kafka-cluster",
                "bob",
                Operation::IdempotentWrite,
            ),
        ])
        .await
        .expect("ACLs");

    let mut alice = login(&server, "alice").await;
    let [topic, cluster_v10, cluster, group] =
        operations(&mut alice, "orders", "billing", true).await;
    // Read, Write and AlterConfigs, and what they imply: Describe, DescribeConfigs.
    assert_eq!(
        topic,
        bits(&[READ, WRITE, DESCRIBE, DESCRIBE_CONFIGS, ALTER_CONFIGS])
    );
    assert_eq!(cluster, bits(&[ALTER, DESCRIBE]), "Alter implies Describe");
    assert_eq!(cluster_v10, cluster);
    assert_eq!(group, bits(&[READ, DESCRIBE]));
    assert_eq!(
        operations(&mut alice, "orders", "billing", false).await,
        [NOT_ASKED; 4],
        "not asked for"
    );

    let mut bob = login(&server, "bob").await;
    let [topic, cluster_v10, cluster, group] =
        operations(&mut bob, "orders", "billing", true).await;
    assert_eq!(topic, NOT_ASKED, "a topic bob may not describe is refused");
    assert_eq!(
        (cluster_v10, cluster),
        (0, 0),
        "no Describe on the cluster: none, as Kafka answers"
    );
    assert_eq!(group, bits(&[DESCRIBE]));

    let mut admin = login(&server, "admin").await;
    let everything = operations(&mut admin, "orders", "billing", true).await;
    let all_topic = bits(&[
        READ,
        WRITE,
        CREATE,
        DELETE,
        ALTER,
        DESCRIBE,
        DESCRIBE_CONFIGS,
        ALTER_CONFIGS,
    ]);
    let all_cluster = bits(&[
        CREATE,
        ALTER,
        DESCRIBE,
        CLUSTER_ACTION,
        DESCRIBE_CONFIGS,
        ALTER_CONFIGS,
        IDEMPOTENT_WRITE,
    ]);
    let all_group = bits(&[READ, DELETE, DESCRIBE]);
    assert_eq!(
        everything,
        [all_topic, all_cluster, all_cluster, all_group],
        "a superuser"
    );

    // kafka-python asks for them in describe_cluster, describe_topics and describe_groups.
    let view = python_view(&server, "alice").await;
    assert_eq!(
        view["cluster"],
        serde_json::json!(["ALTER", "DESCRIBE"]),
        "{view}"
    );
    assert_eq!(
        view["group"],
        serde_json::json!(["DESCRIBE", "READ"]),
        "{view}"
    );
    assert_eq!(
        view["topic"],
        serde_json::json!([
            "ALTER_CONFIGS",
            "DESCRIBE",
            "DESCRIBE_CONFIGS",
            "READ",
            "WRITE"
        ]),
        "{view}"
    );
    server.stop().await.expect("stops");

    // Auth off: every operation Kafka defines, as Kafka answers without an authorizer.
    let dir = tempfile::tempdir().expect("dir");
    let server = start(&dir.path().join("data"), false, &[]).await;
    topics_and_group(&server, &["orders"], "billing").await;
    let mut anyone = Raw::connect_to(server.addr(DoorKind::Kafka).expect("on")).await;
    assert_eq!(
        operations(&mut anyone, "orders", "billing", true).await,
        [all_topic, all_cluster, all_cluster, all_group]
    );
    assert_eq!(
        operations(&mut anyone, "orders", "billing", false).await,
        [NOT_ASKED; 4]
    );
    let view = python_view(&server, "-").await;
    assert_eq!(
        view["group"],
        serde_json::json!(["DELETE", "DESCRIBE", "READ"]),
        "{view}"
    );
    server.stop().await.expect("stops");
}

/// `authorization: Basic` for `user`.
fn basic(user: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{user}-pw"))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_offset_routes_check_every_topic_they_touch_and_change_nothing_when_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let server = start(&dir.path().join("data"), true, &["admin", "alice"]).await;
    topics_and_group(&server, &["open", "closed"], "g").await;
    let auth = server.auth().expect("on").clone();
    auth.create_acls(vec![
        allow(ResourceType::Group, "g", "alice", Operation::Read),
        allow(ResourceType::Group, "g", "alice", Operation::Delete),
        allow(ResourceType::Topic, "open", "alice", Operation::Read),
    ])
    .await
    .expect("ACLs");
    let broker = server.broker().expect("local").clone();
    let committed = |topic: &str| {
        broker
            .committed_offsets("g", &[TopicPartition::new(topic, 0)])
            .expect("offsets")
            .first()
            .map(|(_, c)| c.offset)
    };

    let base = format!("http://{}", server.addr(DoorKind::Http).expect("on"));
    let http = reqwest::Client::new();
    let call = |method: reqwest::Method, path: &str, body: Option<serde_json::Value>| {
        let mut request = http
            .request(method, format!("{base}{path}"))
            .header("authorization", basic("alice"));
        if let Some(body) = body {
            request = request.json(&body);
        }
        async move {
            let answer = request.send().await.expect("send");
            let status = answer.status().as_u16();
            (status, answer.text().await.expect("body"))
        }
    };
    let refused_naming_closed = |(status, body): (u16, String)| {
        assert_eq!(status, 403, "{body}");
        let error: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(error["error_code"], "forbidden", "{body}");
        let message = error["message"].as_str().expect("a message");
        assert!(message.contains("Read Topic \"closed\""), "{body}");
    };
    let seek = |to: &str, topics: &[&str]| Some(serde_json::json!({"to": to, "topics": topics}));

    // Seek: a named topic alice may not read, or the group's committed ones (empty list).
    use reqwest::Method;
    refused_naming_closed(
        call(
            Method::POST,
            "/v1/groups/g/seek",
            seek("latest", &["open", "closed"]),
        )
        .await,
    );
    refused_naming_closed(call(Method::POST, "/v1/groups/g/seek", seek("latest", &[])).await);
    // The console's reset, the same way.
    refused_naming_closed(
        call(
            Method::POST,
            "/console/api/groups/g/reset",
            seek("latest", &["closed"]),
        )
        .await,
    );
    refused_naming_closed(
        call(
            Method::POST,
            "/console/api/groups/g/reset",
            seek("latest", &[]),
        )
        .await,
    );
    // Deleting offsets: the query's topic.
    refused_naming_closed(call(Method::DELETE, "/v1/groups/g/offsets?topic=closed", None).await);
    assert_eq!(
        (committed("open"), committed("closed")),
        (Some(0), Some(0)),
        "nothing moved or went"
    );

    // gRPC's SeekGroup with no topics checks the committed ones too.
    {
        use brook_proto::v1 as pb;
        let url = format!("http://{}", server.addr(DoorKind::Grpc).expect("on"));
        let mut grpc = pb::brook_client::BrookClient::connect(url)
            .await
            .expect("gRPC");
        let mut request = tonic::Request::new(pb::SeekGroupRequest {
            group_id: "g".into(),
            to: Some(pb::seek_group_request::To::Position(
                pb::SeekPosition::Latest as i32,
            )),
            ..Default::default()
        });
        request
            .metadata_mut()
            .insert("authorization", basic("alice").parse().expect("ASCII"));
        let refused = grpc.seek_group(request).await.expect_err("refused");
        assert_eq!(refused.code(), tonic::Code::PermissionDenied);
        assert!(refused.message().contains("\"closed\""), "{refused:?}");
    }
    assert_eq!(committed("closed"), Some(0));

    // What alice may read moves; then with Read on "closed" too, every committed one.
    let (status, body) = call(Method::POST, "/v1/groups/g/seek", seek("latest", &["open"])).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((committed("open"), committed("closed")), (Some(1), Some(0)));
    let (status, body) = call(
        Method::POST,
        "/console/api/groups/g/reset",
        seek("earliest", &["open"]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(committed("open"), Some(0));
    let (status, body) = call(Method::DELETE, "/v1/groups/g/offsets?topic=open", None).await;
    assert_eq!(status, 204, "{body}");
    assert_eq!((committed("open"), committed("closed")), (None, Some(0)));
    auth.create_acls(vec![allow(
        ResourceType::Topic,
        "closed",
        "alice",
        Operation::Read,
    )])
    .await
    .expect("ACL");
    let (status, body) = call(Method::POST, "/v1/groups/g/seek", seek("latest", &[])).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(committed("closed"), Some(1), "every committed topic moved");
    server.stop().await.expect("stops");
}

/// A seek naming no topics is authorized on the very plan it moves, under the group's admin
/// claim, not on an earlier look at the group: while alice (`Read` on "open" only) seeks again
/// and again over HTTP, the superuser commits the group in "closed" and deletes that commit
/// again, over HTTP too. Each of alice's seeks moves "open" alone, or is refused naming
/// "closed", or finds the group busy with the superuser's delete; "closed" is never moved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seek_naming_no_topics_never_moves_a_topic_committed_after_its_check() {
    let dir = tempfile::tempdir().expect("dir");
    let server = start(&dir.path().join("data"), true, &["admin", "alice"]).await;
    topics_and_group(&server, &["open", "closed"], "").await;
    let broker = server.broker().expect("local").clone();
    broker
        .commit_offsets("g", vec![OffsetCommit::new("open", 0, 0)])
        .await
        .expect("commit");
    let auth = server.auth().expect("on").clone();
    auth.create_acls(vec![
        allow(ResourceType::Group, "g", "alice", Operation::Read),
        allow(ResourceType::Topic, "open", "alice", Operation::Read),
    ])
    .await
    .expect("ACLs");
    let base = format!("http://{}", server.addr(DoorKind::Http).expect("on"));
    let http = reqwest::Client::new();

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let churn = {
        let (http, base, stop) = (http.clone(), base.clone(), stop.clone());
        tokio::spawn(async move {
            let commit =
                serde_json::json!({"offsets": [{"topic": "closed", "partition": 0, "offset": 0}]});
            let mut rounds = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let committed = http
                    .post(format!("{base}/v1/groups/g/offsets"))
                    .header("authorization", basic("admin"))
                    .json(&commit)
                    .send()
                    .await
                    .expect("commit");
                assert_eq!(committed.status(), 204);
                let deleted = http
                    .delete(format!("{base}/v1/groups/g/offsets?topic=closed"))
                    .header("authorization", basic("admin"))
                    .send()
                    .await
                    .expect("delete");
                // 503 when alice's seek holds the group at that moment.
                assert!(
                    matches!(deleted.status().as_u16(), 204 | 503),
                    "{deleted:?}"
                );
                rounds += 1;
            }
            rounds
        })
    };
    let mut outcomes = std::collections::BTreeMap::<u16, u32>::new();
    for _ in 0..500 {
        let answer = http
            .post(format!("{base}/v1/groups/g/seek"))
            .header("authorization", basic("alice"))
            .json(&serde_json::json!({"to": "latest"}))
            .send()
            .await
            .expect("seek");
        let status = answer.status().as_u16();
        let body: serde_json::Value = answer.json().await.expect("JSON");
        match status {
            200 => {
                let topics: Vec<&str> = body["partitions"]
                    .as_array()
                    .expect("partitions")
                    .iter()
                    .map(|p| p["topic"].as_str().expect("topic"))
                    .collect();
                assert_eq!(topics, ["open"], "{body}");
            }
            403 => assert!(
                body["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("Read Topic \"closed\"")),
                "{body}"
            ),
            503 => {}
            _ => panic!("{status} {body}"),
        }
        *outcomes.entry(status).or_default() += 1;
        let closed = broker
            .committed_offsets("g", &[TopicPartition::new("closed", 0)])
            .expect("offsets");
        assert!(
            closed.iter().all(|(_, c)| c.offset == 0),
            "alice moved \"closed\": {closed:?}"
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let rounds = churn.await.expect("churn task");
    eprintln!("alice's seeks by status: {outcomes:?}; superuser's commit+delete rounds: {rounds}");
    assert!(rounds > 0);
    server.stop().await.expect("stops");
}
