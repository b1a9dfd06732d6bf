//! brook's own admin verbs, run as the real `brook` binary against a gRPC door, each change
//! checked through the Kafka door with librdkafka: `brook topic alter` then DescribeConfigs,
//! `brook topic add-partitions` then Kafka metadata, `brook topic trim` then the log start;
//! `brook group seek` (dry run, an offset, shift:N, earliest, a datetime, latest) then a Kafka
//! consumer of the group resumes where the CLI put it, refused while the group has a live
//! member; `brook group delete`.

mod cli_support;
mod kafka_support;

use brook_server::GrpcServer;
use cli_support::{brook_command, ok, run};
use kafka_support::{admin_create, grpc, receive, TestBroker, PATIENCE};
use rdkafka::admin::{AdminOptions, ResourceSpecifier};
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::producer::{FutureRecord, Producer};

/// `brook ARGS --server` the gRPC door; the process's output.
async fn brook(grpc: &GrpcServer, args: &[&str]) -> std::process::Output {
    let mut command = brook_command(args);
    command
        .arg("--server")
        .arg(format!("http://{}", grpc.local_addr()));
    run(command, b"").await
}

/// Asserts `output` failed and its stderr says `expected`.
fn fails_with(output: std::process::Output, expected: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "succeeded: {stderr}");
    assert!(stderr.contains(expected), "{expected:?} not in {stderr}");
}

/// Waits until `group` has no live member (a closed consumer's LeaveGroup arrived).
async fn until_no_members(tb: &TestBroker, group: &str) {
    let deadline = std::time::Instant::now() + PATIENCE;
    while !tb
        .broker
        .describe_group(group)
        .expect("group")
        .members
        .is_empty()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the member never left"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Produces `n` records to `topic` (to `partition`, or by key) through the Kafka door.
async fn produce(tb: &TestBroker, topic: &str, partition: Option<i32>, n: usize) {
    let producer = tb.producer(&[]);
    for i in 0..n {
        let payload = format!("v{i}");
        let mut record = FutureRecord::to(topic).key("k").payload(&payload);
        if let Some(partition) = partition {
            record = record.partition(partition);
        }
        producer.send(record, PATIENCE).await.expect("produced");
    }
}

/// Whether `table` has a row of exactly these cells.
fn has_row(table: &str, row: &[&str]) -> bool {
    table
        .lines()
        .any(|l| l.split_whitespace().eq(row.iter().copied()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_verbs_change_what_the_kafka_door_shows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tb = TestBroker::start(dir.path()).await;
    let (server, _client) = grpc(&tb).await;
    let admin = tb.admin();
    admin_create(&admin, "cli-orders", 2).await;
    let options = AdminOptions::new().operation_timeout(Some(PATIENCE));

    // Kafka's name and brook's alias in one change.
    let altered = ok(brook(
        &server,
        &[
            "topic",
            "alter",
            "cli-orders",
            "-c",
            "retention.ms=3600000",
            "-c",
            "segment_bytes_max=1048576",
        ],
    )
    .await);
    assert!(altered.contains("altered topic cli-orders"), "{altered}");
    assert!(altered.contains("retention.ms=3600000"), "{altered}");
    assert!(altered.contains("segment.bytes=1048576"), "{altered}");
    let described = admin
        .describe_configs(&[ResourceSpecifier::Topic("cli-orders")], &options)
        .await
        .expect("answered");
    let resource = described[0].as_ref().expect("described");
    let value = |key: &str| resource.get(key).and_then(|e| e.value.clone());
    assert_eq!(value("retention.ms").as_deref(), Some("3600000"));
    assert_eq!(value("segment.bytes").as_deref(), Some("1048576"));
    let shown = ok(brook(&server, &["topic", "describe", "cli-orders"]).await);
    assert!(
        shown.contains("overrides:  retention.ms=3600000 segment.bytes=1048576")
            || shown.contains("overrides:  segment.bytes=1048576 retention.ms=3600000"),
        "{shown}"
    );

    // A dry run changes nothing; a delete drops the topic's own value.
    let dry = ok(brook(
        &server,
        &[
            "topic",
            "alter",
            "cli-orders",
            "-c",
            "retention.ms=1",
            "--dry-run",
        ],
    )
    .await);
    assert!(dry.contains("would alter"), "{dry}");
    let topic = || tb.broker.describe_topic("cli-orders").expect("topic");
    assert_eq!(topic().config.retention_ms_max, Some(3_600_000));
    let dropped = ok(brook(
        &server,
        &["topic", "alter", "cli-orders", "-d", "retention.ms"],
    )
    .await);
    assert!(!dropped.contains("retention.ms"), "{dropped}");
    assert!(dropped.contains("segment.bytes=1048576"), "{dropped}");
    let refusals: [(&[&str], &str); 3] = [
        (&["-c", "colour=blue"], "unknown setting \"colour\""),
        (&["-c", "retention.ms=soon"], "retention.ms"),
        (&[], "nothing to change"),
    ];
    for (extra, expected) in refusals {
        let mut args = vec!["topic", "alter", "cli-orders"];
        args.extend(extra);
        fails_with(brook(&server, &args).await, expected);
    }

    // Grow by two, then refuse to shrink.
    let grew = ok(brook(
        &server,
        &["topic", "add-partitions", "cli-orders", "--num", "2"],
    )
    .await);
    assert_eq!(grew, "grew topic cli-orders to 4 partitions\n");
    let producer = tb.producer(&[]);
    let metadata = producer
        .client()
        .fetch_metadata(Some("cli-orders"), PATIENCE)
        .expect("metadata");
    assert_eq!(metadata.topics()[0].partitions().len(), 4);
    fails_with(
        brook(
            &server,
            &["topic", "add-partitions", "cli-orders", "--to", "3"],
        )
        .await,
        "cannot add partitions",
    );

    // Ten records in partition 3 (one of the new ones), then trim below 4, then everything.
    produce(&tb, "cli-orders", Some(3), 10).await;
    let trimmed = ok(brook(
        &server,
        &[
            "topic",
            "trim",
            "cli-orders",
            "--before",
            "4",
            "--partition",
            "3",
        ],
    )
    .await);
    assert!(has_row(&trimmed, &["3", "4"]), "{trimmed}");
    assert_eq!(topic().partitions[3].log_start_offset, 4);
    let all = ok(brook(&server, &["topic", "trim", "cli-orders", "--before", "end"]).await);
    assert!(has_row(&all, &["3", "10"]), "{all}");
    assert_eq!(topic().partitions[3].log_start_offset, 10);
    fails_with(
        brook(
            &server,
            &["topic", "trim", "cli-orders", "--before", "soon"],
        )
        .await,
        "not an offset",
    );
    tb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_seek_moves_a_kafka_group_and_delete_forgets_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tb = TestBroker::start(dir.path()).await;
    let (server, _client) = grpc(&tb).await;
    tb.create_topic("cli-events", 1).await;
    produce(&tb, "cli-events", None, 10).await;
    let committed = || {
        tb.broker
            .describe_group("cli-g")
            .expect("group")
            .offsets
            .iter()
            .map(|p| p.committed.as_ref().map(|c| c.offset))
            .collect::<Vec<_>>()
    };

    // A member reads everything and commits; while it lives, the group cannot be moved.
    let consumer = tb.consumer("cli-g", &[]);
    consumer.subscribe(&["cli-events"]).expect("subscribe");
    let got = receive(&consumer, 10).await;
    assert_eq!(got.last().map(|g| g.offset), Some(9));
    consumer
        .commit_consumer_state(CommitMode::Sync)
        .expect("commit");
    assert_eq!(committed(), vec![Some(10)]);
    fails_with(
        brook(&server, &["group", "seek", "cli-g", "--to", "earliest"]).await,
        "cli-g",
    );
    fails_with(brook(&server, &["group", "delete", "cli-g"]).await, "cli-g");
    drop(consumer);
    until_no_members(&tb, "cli-g").await;

    let seek_to_6 = [
        "group",
        "seek",
        "cli-g",
        "--to",
        "6",
        "--topic",
        "cli-events",
    ];
    let dry = ok(brook(&server, &[&seek_to_6[..], &["--dry-run"]].concat()).await);
    assert!(dry.contains("(dry run: nothing moved)"), "{dry}");
    assert!(has_row(&dry, &["cli-events", "0", "10", "6"]), "{dry}");
    assert_eq!(committed(), vec![Some(10)], "a dry run moves nothing");

    let moved = ok(brook(&server, &seek_to_6).await);
    assert!(has_row(&moved, &["cli-events", "0", "10", "6"]), "{moved}");
    // A Kafka consumer of the group resumes where the CLI put it.
    let consumer = tb.consumer("cli-g", &[]);
    consumer.subscribe(&["cli-events"]).expect("subscribe");
    let got = receive(&consumer, 4).await;
    let offsets: Vec<i64> = got.iter().map(|g| g.offset).collect();
    assert_eq!(offsets, vec![6, 7, 8, 9]);
    drop(consumer);
    until_no_members(&tb, "cli-g").await;

    for (to, expected) in [
        ("shift:-3", 3),
        ("shift:2", 5),
        ("earliest", 0),
        ("latest", 10),
        ("1970-01-01T00:00:00Z", 0),
        ("2999-01-01T00:00:00+02:00", 10),
        ("@0", 0),
    ] {
        ok(brook(&server, &["group", "seek", "cli-g", "--to", to]).await);
        assert_eq!(committed(), vec![Some(expected)], "--to {to}");
    }
    fails_with(
        brook(&server, &["group", "seek", "cli-g", "--to", "shift:x"]).await,
        "expected earliest, latest",
    );

    assert_eq!(
        ok(brook(&server, &["group", "delete", "cli-g"]).await),
        "deleted group cli-g\n"
    );
    assert!(
        tb.broker.describe_group("cli-g").is_err(),
        "the group is gone"
    );
    fails_with(brook(&server, &["group", "delete", "cli-g"]).await, "cli-g");
    fails_with(
        brook(&server, &["group", "seek", "cli-g", "--to", "earliest"]).await,
        "nothing to move: group cli-g has no committed offsets",
    );
    tb.stop().await;
}
