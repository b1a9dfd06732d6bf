//! The `brook` client commands (topic, produce, consume, group) run as the real binary against a
//! real gRPC server started in-process on port 0.

mod cli_support;

use std::process::Output;
use std::time::Duration;

use brook_server::GrpcServer;
use cli_support::{brook_command, grpc_server, ok, run, PATIENCE};
use tokio::process::Command;

struct Server {
    _grpc: GrpcServer,
    url: String,
}

async fn server() -> Server {
    let grpc = grpc_server().await;
    let url = format!("http://{}", grpc.local_addr());
    Server { _grpc: grpc, url }
}

fn command(server: &str, args: &[&str]) -> Command {
    let mut command = brook_command(args);
    command.arg("--server").arg(server);
    command
}

/// Runs `brook ARGS --server URL` with `stdin` as its input.
async fn brook_with_input(server: &str, args: &[&str], stdin: &str) -> Output {
    run(command(server, args), stdin.as_bytes()).await
}

async fn brook(server: &str, args: &[&str]) -> Output {
    brook_with_input(server, args, "").await
}

/// Asserts a failure reported as one clear line (no panic trace) that contains `expected`, in
/// brook's words: no gRPC status code in brackets.
fn fails_with(output: Output, expected: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let code = stderr.split('[').skip(1).any(|rest| {
        rest.split(']')
            .next()
            .is_some_and(|c| !c.is_empty() && c.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
    });
    assert!(!code, "a gRPC code for a person: {stderr}");
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains(expected), "{expected:?} in {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[tokio::test]
async fn topics_are_created_listed_described_and_deleted() {
    let s = server().await;
    let created = ok(brook(
        &s.url,
        &[
            "topic",
            "create",
            "orders",
            "--partitions",
            "3",
            "--config",
            "retention_ms_max=-1",
        ],
    )
    .await);
    assert_eq!(created, "created topic orders with 3 partitions\n");
    ok(brook(&s.url, &["topic", "create", "audit"]).await);

    let listed = ok(brook(&s.url, &["topic", "list"]).await);
    assert_eq!(listed, "TOPIC   PARTITIONS\naudit   1\norders  3\n");

    let described = ok(brook(&s.url, &["topic", "describe", "orders"]).await);
    assert!(described.contains("partitions: 3"), "{described}");
    assert!(described.contains("retention_ms_max=-1"), "{described}");
    let rows: Vec<&str> = described
        .lines()
        .skip_while(|l| !l.starts_with("PARTITION"))
        .skip(1)
        .collect();
    assert_eq!(rows.len(), 3, "{described}");
    assert!(rows[2].starts_with("2 "), "{described}");

    fails_with(
        brook(&s.url, &["topic", "create", "orders"]).await,
        "cannot create topic: topic \"orders\" already exists",
    );
    ok(brook(&s.url, &["topic", "create", "orders", "--if-not-exists"]).await);
    fails_with(
        brook(&s.url, &["topic", "create", "bad name"]).await,
        "cannot create topic: ",
    );
    fails_with(
        brook(&s.url, &["topic", "create", "x", "--config", "colour=blue"]).await,
        "unknown setting \"colour\"",
    );

    assert_eq!(
        ok(brook(&s.url, &["topic", "delete", "orders"]).await),
        "deleted topic orders\n"
    );
    fails_with(
        brook(&s.url, &["topic", "describe", "orders"]).await,
        "cannot describe topic: ",
    );
}

#[tokio::test]
async fn lines_produced_come_back_in_order_as_text_and_json() {
    let s = server().await;
    ok(brook(&s.url, &["topic", "create", "t"]).await);
    let input = "alice:apples\nbob:pears\ncarol:plums\r\nalice:figs:dried\n";
    ok(brook_with_input(&s.url, &["produce", "t", "--key-separator", ":"], input).await);

    let text = ok(brook(&s.url, &["consume", "t", "--from-beginning"]).await);
    assert_eq!(text, "apples\npears\nplums\nfigs:dried\n");
    let keyed = ok(brook(
        &s.url,
        &["consume", "t", "--from-beginning", "--key-separator", "="],
    )
    .await);
    assert_eq!(
        keyed,
        "alice=apples\nbob=pears\ncarol=plums\nalice=figs:dried\n"
    );

    let json = ok(brook(
        &s.url,
        &[
            "consume",
            "t",
            "--offset",
            "1",
            "--partition",
            "0",
            "--max",
            "2",
            "--format",
            "json",
        ],
    )
    .await);
    let records: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["offset"], 1);
    assert_eq!(records[0]["key"], "bob");
    assert_eq!(records[0]["value"], "pears");
    assert_eq!(records[1]["topic"], "t");
    assert_eq!(records[1]["partition"], 0);

    // Without --from-beginning a run starts at the end: nothing to print, and it exits.
    assert_eq!(ok(brook(&s.url, &["consume", "t"]).await), "");
}

#[tokio::test]
async fn keys_spread_over_partitions_and_every_partition_is_read() {
    let s = server().await;
    ok(brook(&s.url, &["topic", "create", "t", "--partitions", "4"]).await);
    let input: String = (0..40).map(|i| format!("k{i}:v{i}\n")).collect();
    ok(brook_with_input(&s.url, &["produce", "t", "--key-separator", ":"], &input).await);
    let mut values: Vec<String> = ok(brook(&s.url, &["consume", "t", "--from-beginning"]).await)
        .lines()
        .map(str::to_owned)
        .collect();
    values.sort();
    let mut expected: Vec<String> = (0..40).map(|i| format!("v{i}")).collect();
    expected.sort();
    assert_eq!(values, expected);

    ok(brook_with_input(
        &s.url,
        &["produce", "t", "--partition", "3"],
        "only-three\n",
    )
    .await);
    let three = ok(brook(
        &s.url,
        &["consume", "t", "--partition", "3", "--from-beginning"],
    )
    .await);
    assert_eq!(three.lines().last(), Some("only-three"));
}

#[tokio::test]
async fn a_group_resumes_where_its_last_run_stopped() {
    let s = server().await;
    ok(brook(&s.url, &["topic", "create", "t", "--partitions", "2"]).await);
    ok(brook_with_input(&s.url, &["produce", "t", "--partition", "0"], "a\nb\nc\n").await);

    let group = ["consume", "t", "--group", "g", "--from-beginning"];
    let first: Vec<String> = ok(brook(&s.url, &[&group[..], &["--max", "2"]].concat()).await)
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(first, ["a", "b"]);
    assert_eq!(ok(brook(&s.url, &group).await), "c\n");
    assert_eq!(
        ok(brook(&s.url, &group).await),
        "",
        "everything was committed"
    );

    let listed = ok(brook(&s.url, &["group", "list"]).await);
    assert_eq!(listed, "GROUP  MEMBERS  STATE\ng      0        Empty\n");
    let described = ok(brook(&s.url, &["group", "describe", "g"]).await);
    let row = described
        .lines()
        .find(|l| l.starts_with("t "))
        .unwrap_or_else(|| panic!("partition row in {described}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cells[..5], ["t", "0", "3", "3", "0"], "{described}");
    fails_with(
        brook(&s.url, &["group", "describe", "nobody"]).await,
        "cannot describe group: ",
    );
}

#[tokio::test]
async fn a_run_that_joins_a_busy_group_reads_its_share_and_stops() {
    let s = server().await;
    ok(brook(&s.url, &["topic", "create", "t", "--partitions", "2"]).await);
    ok(brook_with_input(&s.url, &["produce", "t", "--partition", "0"], "a\n").await);
    ok(brook_with_input(&s.url, &["produce", "t", "--partition", "1"], "b\n").await);

    // A member that follows from the end owns both partitions and consumes nothing old.
    let _follower = command(&s.url, &["consume", "t", "--group", "g", "--follow"])
        .spawn()
        .expect("spawn follower");
    tokio::time::timeout(PATIENCE, async {
        while !ok(brook(&s.url, &["group", "list"]).await).contains("g      1") {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the follower joined");

    // A second member is assigned one partition, which it owns only once the follower has
    // released it; it must wait for that, print that partition's record, and stop.
    let output = brook(
        &s.url,
        &["consume", "t", "--group", "g", "--from-beginning"],
    )
    .await;
    let printed = ok(output);
    assert!(printed == "a\n" || printed == "b\n", "{printed:?}");
}

#[tokio::test]
async fn follow_prints_records_produced_after_it_started() {
    let s = server().await;
    ok(brook(&s.url, &["topic", "create", "t"]).await);
    ok(brook_with_input(&s.url, &["produce", "t"], "before\n").await);
    let follower = command(
        &s.url,
        &["consume", "t", "--from-beginning", "--follow", "--max", "2"],
    )
    .spawn()
    .expect("spawn follower");
    // Whether the follower is already subscribed or not, "after" reaches it: it reads from
    // the beginning and stops only after two records.
    ok(brook_with_input(&s.url, &["produce", "t"], "after\n").await);
    let output = tokio::time::timeout(PATIENCE, follower.wait_with_output())
        .await
        .expect("follower stopped after --max records")
        .expect("follower ran");
    assert_eq!(ok(output), "before\nafter\n");
}

#[tokio::test]
async fn mistakes_are_one_clear_line_and_a_nonzero_exit() {
    let s = server().await;
    ok(brook(&s.url, &["topic", "create", "t"]).await);
    fails_with(
        brook_with_input(
            &s.url,
            &["produce", "t", "--key-separator", ":"],
            "k:v\nno separator\n",
        )
        .await,
        "line 2: no key separator \":\"",
    );
    fails_with(
        brook(&s.url, &["consume", "missing"]).await,
        "cannot describe topic: ",
    );
    fails_with(
        brook(&s.url, &["consume", "t", "--partition", "5"]).await,
        "topic t has no partition 5 (it has 1)",
    );
    fails_with(
        brook(
            &s.url,
            &["consume", "t", "--partition", "0", "--offset", "99"],
        )
        .await,
        "cannot subscribe: ",
    );
    let oversized = format!("{}\n", "x".repeat(2 << 20));
    fails_with(
        brook_with_input(&s.url, &["produce", "t"], &oversized).await,
        "record of line 1 was not stored",
    );

    // Flags that do not go together are refused by the parser (exit 2, usage on stderr).
    let output = brook(
        &s.url,
        &["consume", "t", "--group", "g", "--partition", "0"],
    )
    .await;
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--partition"));
}

#[tokio::test]
async fn a_server_that_is_not_running_is_named_with_a_hint() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let url = format!("http://127.0.0.1:{port}");
    fails_with(
        brook(&url, &["topic", "list"]).await,
        &format!("cannot connect to {url}: connection refused — is `brook serve` running?"),
    );
    // host:port without a scheme, as rpk and nats take it.
    fails_with(
        brook(&url.replace("http://", ""), &["topic", "list"]).await,
        &format!("cannot connect to {url}: connection refused"),
    );
}

#[tokio::test]
async fn the_server_can_come_from_brook_server() {
    let s = server().await;
    let output = Command::new(env!("CARGO_BIN_EXE_brook"))
        .args(["topic", "create", "from-env"])
        .env("BROOK_SERVER", &s.url)
        .output()
        .await
        .expect("brook ran");
    assert_eq!(ok(output), "created topic from-env with 1 partition\n");
}
