//! `brook call` and `brook respond` as the real binary against a real gRPC server on port 0:
//! a shell command answers calls, its failures come back as the call's error, and a call that
//! timed out gets its reply later by its correlation id.

use std::process::{Output, Stdio};
use std::time::Duration;

use brook::Broker;
use brook_broker::NewTopic;
use brook_server::{GrpcConfig, GrpcServer};
use tokio::process::{Child, Command};

const PATIENCE: Duration = Duration::from_secs(30);

async fn server() -> (Broker, GrpcServer, String) {
    let broker = Broker::ephemeral().await.expect("broker");
    let addr = "127.0.0.1:0".parse().expect("address");
    let grpc = GrpcServer::start(broker.clone(), addr, GrpcConfig::default())
        .await
        .expect("gRPC server");
    let url = format!("http://{}", grpc.local_addr());
    (broker, grpc, url)
}

fn brook(server: &str, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_brook"));
    command
        .args(args)
        .arg("--server")
        .arg(server)
        .env_remove("BROOK_SERVER")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// `brook respond TOPIC --server URL -- sh -c SCRIPT`, running until dropped.
fn respond(server: &str, topic: &str, script: &str) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_brook"));
    command
        .args([
            "respond", topic, "--server", server, "--", "sh", "-c", script,
        ])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    command.spawn().expect("spawn brook respond")
}

async fn call(server: &str, args: &[&str]) -> Output {
    let child = brook(server, args).spawn().expect("spawn brook call");
    tokio::time::timeout(PATIENCE, child.wait_with_output())
        .await
        .expect("brook call finished in time")
        .expect("brook call ran")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shell_command_answers_calls_and_its_failures_are_the_callers_errors() {
    let (_broker, _grpc, url) = server().await;
    let _upper = respond(
        &url,
        "shout",
        r#"if [ "$(cat)" = fail ]; then echo "no can do" >&2; exit 3; fi; echo "$BROOK_TOPIC:$BROOK_KEY" | tr a-z A-Z"#,
    );
    let output = call(&url, &["call", "shout", "hello", "--key", "k1"]).await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(text(&output.stdout), "SHOUT:K1\n");

    let output = call(&url, &["call", "shout", "fail"]).await;
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("no can do"), "{stderr}");
    assert!(stderr.contains("exit status: 3"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_call_names_its_id_and_gets_its_reply_later_with_it() {
    let (broker, _grpc, url) = server().await;
    broker
        .create_topic(NewTopic::new("slow", 1))
        .await
        .expect("create");
    let output = call(&url, &["call", "slow", "ping", "--timeout-ms", "100"]).await;
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    let id = stderr
        .split("--correlation-id ")
        .nth(1)
        .expect("the id to call again with")
        .trim()
        .to_owned();
    assert_eq!(id.len(), 36, "{stderr}");

    let _echo = respond(&url, "slow", "cat");
    let output = call(&url, &["call", "slow", "ping", "--correlation-id", &id]).await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(text(&output.stdout), "ping");
    let requests = broker
        .list_offset("slow", 0, brook_broker::OffsetSpec::Latest)
        .await
        .expect("offset")
        .offset;
    assert_eq!(requests, Some(1), "the retry sent no second request");
}

#[tokio::test]
async fn respond_needs_a_command() {
    let output = brook("http://127.0.0.1:1", &["respond", "t"])
        .output()
        .await
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("COMMAND"),
        "{}",
        text(&output.stderr)
    );
}

#[tokio::test]
async fn bench_call_reports_calls_beside_their_baseline_over_grpc_and_in_process() {
    for protocol in ["grpc", "embedded"] {
        let output = Command::new(env!("CARGO_BIN_EXE_brook"))
            .args(["bench", "call", "--embedded", "--durability", "none"])
            .args([
                "--protocol",
                protocol,
                "--records",
                "200",
                "--producers",
                "4",
                "--json",
            ])
            .env_remove("RUST_LOG")
            .output()
            .await
            .expect("run");
        assert!(output.status.success(), "{}", text(&output.stderr));
        let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
        assert_eq!(report["workload"], "call");
        assert_eq!(report["protocol"], protocol);
        assert_eq!(report["records"], 200);
        assert_eq!(report["baseline"]["records"], 200);
        assert!(report["records_per_sec"].as_f64().expect("rate") > 0.0);
        assert!(report["ratio"]["p99"].as_f64().expect("ratio") > 0.0);
    }
}
