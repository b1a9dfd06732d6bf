//! The `brook` command line as a Kafka or NATS user reaches for it: contexts, `host:port`
//! servers, kcat-style offsets and formats, headers and inline values, `--json` everywhere,
//! completions and the man page, and a follower that survives a server restart. Each runs the
//! real binary against a real server.

mod cli_support;

use std::path::Path;
use std::process::{Output, Stdio};

use brook_server::GrpcServer;
use cli_support::{brook_command, grpc_server, ok, run, PATIENCE};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

/// An in-process gRPC door, and a config directory of its own (contexts live there).
struct Server {
    _grpc: GrpcServer,
    addr: String,
    config: tempfile::TempDir,
}

async fn server() -> Server {
    let grpc = grpc_server().await;
    Server {
        addr: grpc.local_addr().to_string(),
        _grpc: grpc,
        config: tempfile::tempdir().expect("config dir"),
    }
}

impl Server {
    /// `brook ARGS` with no server flag (the server comes from `-s` in ARGS or a context),
    /// with contexts in this server's config directory.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = brook_command(args);
        command.env("BROOK_CONFIG_DIR", self.config.path());
        command
    }

    /// `brook -s HOST:PORT ARGS` with `stdin` as input.
    async fn run_with_input(&self, args: &[&str], stdin: &str) -> Output {
        let args = [&["-s", self.addr.as_str()][..], args].concat();
        run(self.command(&args), stdin.as_bytes()).await
    }

    async fn run(&self, args: &[&str]) -> Output {
        self.run_with_input(args, "").await
    }
}

fn json(output: Output) -> Value {
    serde_json::from_str(&ok(output)).expect("one JSON value")
}

#[tokio::test]
async fn contexts_name_servers_and_the_current_one_is_used() {
    let s = server().await;
    let brook = |args: &[&str]| run(s.command(args), b"");
    // No context and no flag: the default address, which nothing serves here.
    let shown = ok(brook(&["context", "show"]).await);
    assert!(shown.contains("http://127.0.0.1:50051"), "{shown}");

    assert_eq!(
        ok(brook(&["context", "add", "local", "-s", &s.addr]).await),
        "added context local (current)\n"
    );
    ok(brook(&["context", "add", "nowhere", "--server", "127.0.0.1:1"]).await);
    let unnamed = brook(&["context", "add", "x"]).await;
    assert!(String::from_utf8_lossy(&unnamed.stderr).contains("-s HOST:PORT"));
    let listed = json(brook(&["context", "list", "--json"]).await);
    assert_eq!(listed["current"], "local");
    assert_eq!(listed["contexts"][0]["name"], "local");
    assert_eq!(listed["contexts"][0]["server"], s.addr.as_str());
    let table = ok(brook(&["context", "list"]).await);
    assert!(table.lines().any(|l| l.starts_with("*  local")), "{table}");

    // The current context's server is the one commands talk to.
    ok(brook(&["topic", "create", "via-context"]).await);
    let topics = json(brook(&["topic", "list", "--json"]).await);
    assert_eq!(topics[0]["name"], "via-context");
    // --context picks another; -s beats both.
    let refused = brook(&["--context", "nowhere", "topic", "list"]).await;
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("127.0.0.1:1") && stderr.contains("context nowhere"),
        "{stderr}"
    );
    ok(brook(&["--context", "nowhere", "-s", &s.addr, "topic", "list"]).await);
    // Switching and removing.
    assert_eq!(
        ok(brook(&["context", "use", "nowhere"]).await),
        "using context nowhere\n"
    );
    let shown = ok(brook(&["context", "show"]).await);
    assert!(
        shown.contains("http://127.0.0.1:1") && shown.contains("context nowhere"),
        "{shown}"
    );
    ok(brook(&["context", "remove", "nowhere"]).await);
    let missing = brook(&["context", "use", "nowhere"]).await;
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("no context nowhere (there are: local)")
    );
}

#[tokio::test]
async fn offsets_formats_and_several_topics_read_as_kcat_and_rpk_do() {
    let s = server().await;
    ok(s.run(&["topic", "create", "a", "--partitions", "2"]).await);
    ok(s.run(&["topic", "create", "b"]).await);
    let lines: String = (0..10).map(|i| format!("v{i}\n")).collect();
    ok(s.run_with_input(&["produce", "a", "-p", "0"], &lines).await);
    ok(
        s.run_with_input(&["produce", "b", "-k", "kb", "-H", "trace=1"], "only\n")
            .await,
    );

    // -N: the last N records of each partition read.
    let last = ok(s.run(&["consume", "a", "-p", "0", "-o", "-3"]).await);
    assert_eq!(last, "v7\nv8\nv9\n");
    // N: that offset.
    let from = ok(s.run(&["consume", "a", "-p", "0", "-o", "8"]).await);
    assert_eq!(from, "v8\nv9\n");
    // @MS: the first record at or after that time; everything here is newer than 0 and older
    // than the far future.
    assert_eq!(
        ok(s.run(&["consume", "a", "-o", "@0"]).await)
            .lines()
            .count(),
        10
    );
    assert_eq!(
        ok(s.run(&["consume", "a", "-o", "@99999999999999"]).await),
        ""
    );

    // Several topics, a kcat-style format, --print-offsets.
    let format = r"%t %p@%o %k=%v [%h]\n";
    let both = ok(s
        .run(&["consume", "a", "b", "-o", "start", "-f", format])
        .await);
    assert!(both.contains("a 0@0 =v0 []\n"), "{both}");
    assert!(both.contains("b 0@0 kb=only [trace=1]\n"), "{both}");
    assert_eq!(both.lines().count(), 11, "{both}");
    let offsets = ok(s
        .run(&["consume", "b", "-o", "start", "--print-offsets"])
        .await);
    assert_eq!(offsets, "0@0\tonly\n");
    let bad = s.run(&["consume", "a", "-f", "%x"]).await;
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown placeholder %x"));
}

#[tokio::test]
async fn produce_takes_headers_an_inline_value_and_prints_positions() {
    let s = server().await;
    ok(s.run(&["topic", "create", "t", "--partitions", "3"]).await);
    let positions = ok(s
        .run(&[
            "produce",
            "t",
            "hello",
            "-k",
            "k1",
            "-H",
            "source=cli",
            "-H",
            "n=1",
            "--print-positions",
            "-p",
            "0",
        ])
        .await);
    let (partition, offset) = positions.trim().split_once('@').expect("P@O");
    let record = json(
        s.run(&[
            "consume", "t", "-p", partition, "-o", offset, "-n", "1", "-f", "json",
        ])
        .await,
    );
    assert_eq!(record["value"], "hello");
    assert_eq!(record["key"], "k1");
    assert_eq!(
        record["headers"][0],
        serde_json::json!({"key": "source", "value": "cli"})
    );
    assert_eq!(
        record["headers"][1],
        serde_json::json!({"key": "n", "value": "1"})
    );

    // One position per input line, in order; bytes that are not UTF-8 come out as base64.
    let many = ok(s
        .run_with_input(&["produce", "t", "-p", "2", "--print-positions"], "x\ny\n")
        .await);
    assert_eq!(many, "2@0\n2@1\n");
    let mut binary = s.command(&["-s", &s.addr, "produce", "t", "-p", "1"]);
    binary.stdin(Stdio::piped());
    let mut child = binary.spawn().expect("spawn");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(&[0xff, 0xfe, b'\n']).await.expect("write");
    drop(input);
    assert!(child.wait().await.expect("ran").success());
    let record = json(
        s.run(&["consume", "t", "-p", "1", "-o", "start", "-f", "json"])
            .await,
    );
    assert_eq!(record["value"], "//4=");
    assert_eq!(record["value_encoding"], "base64");

    let bad = s.run(&["produce", "t", "v", "-H", "novalue"]).await;
    assert!(String::from_utf8_lossy(&bad.stderr).contains("header \"novalue\" is not NAME=VALUE"));
}

#[tokio::test]
async fn every_list_and_describe_speaks_json() {
    let s = server().await;
    ok(s.run(&["topic", "create", "j", "--partitions", "2"]).await);
    ok(s.run_with_input(&["produce", "j", "-p", "1"], "a\nb\n")
        .await);
    ok(s.run(&["consume", "j", "-g", "jg", "-o", "start"]).await);

    let topics = json(s.run(&["topic", "list", "--json"]).await);
    assert_eq!(topics, serde_json::json!([{"name": "j", "partitions": 2}]));
    let topic = json(s.run(&["topic", "describe", "j", "--json"]).await);
    assert_eq!(topic["name"], "j");
    assert_eq!(topic["partitions"][1]["high_watermark"], 2);
    assert!(topic["settings"]["durability"].is_string(), "{topic}");
    let groups = json(s.run(&["group", "list", "--json"]).await);
    assert_eq!(groups[0]["group"], "jg");
    let group = json(s.run(&["group", "describe", "jg", "--json"]).await);
    let offsets = group["offsets"].as_array().expect("offsets");
    let one = offsets
        .iter()
        .find(|o| o["partition"] == 1)
        .expect("partition 1");
    assert_eq!(one["committed_offset"], 2);
    assert_eq!(one["lag"], 0);
}

#[tokio::test]
async fn completions_man_page_and_grouped_serve_help_come_from_the_clap_definitions() {
    let s = server().await;
    for shell in ["bash", "zsh", "fish"] {
        let script = ok(run(s.command(&["completions", shell]), b"").await);
        assert!(
            script.contains("consume") && script.contains("context"),
            "{shell}"
        );
    }
    let man = ok(run(s.command(&["man"]), b"").await);
    assert!(man.starts_with(".ie") || man.contains(".TH brook"), "{man}");
    let dir = tempfile::tempdir().expect("dir");
    let dir_arg = dir.path().to_str().expect("utf8");
    ok(run(s.command(&["man", "--dir", dir_arg]), b"").await);
    assert!(dir.path().join("brook.1").exists());
    assert!(dir.path().join("brook-consume.1").exists());

    let help = ok(run(s.command(&["serve", "--help"]), b"").await);
    for heading in [
        "Process:",
        "gRPC door:",
        "Kafka door:",
        "HTTP door:",
        "Metrics:",
        "Topic defaults:",
        "Broker:",
    ] {
        assert!(help.contains(heading), "{heading} in {help}");
    }
    let top = ok(run(s.command(&["--help"]), b"").await);
    assert!(top.contains("-s, --server"), "{top}");
    assert!(top.contains("gRPC, Kafka, HTTP"), "{top}");
}

/// A `brook serve` on fixed ports, so it can be restarted where a client expects it.
async fn serve(data: &Path, grpc: &str) -> Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_brook"))
        .args(["serve", "--data-dir"])
        .arg(data)
        .args([
            "--grpc-addr",
            grpc,
            "--kafka-addr",
            "off",
            "--http-addr",
            "off",
        ])
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn brook serve");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    tokio::time::timeout(PATIENCE, async {
        while let Some(line) = lines.next_line().await.expect("stdout") {
            if line.starts_with("brook: ready") {
                return;
            }
        }
        panic!("brook serve ended before it was ready");
    })
    .await
    .expect("brook serve became ready");
    child
}

#[allow(unsafe_code)] // kill(2); see the SAFETY comment.
async fn stop(mut child: Child) {
    let pid = libc::pid_t::try_from(child.id().expect("running")).expect("pid fits");
    // SAFETY: kill(2) with a pid we spawned and have not waited for, so it is still ours.
    let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
    assert_eq!(rc, 0, "kill failed");
    tokio::time::timeout(PATIENCE, child.wait())
        .await
        .expect("stopped in time")
        .expect("stopped");
}

/// `brook -s GRPC ARGS`.
fn client(grpc: &str, args: &[&str]) -> Command {
    brook_command(&[&["-s", grpc][..], args].concat())
}

/// The follower's next line of output.
async fn next_line(
    printed: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
) -> String {
    tokio::time::timeout(PATIENCE, printed.next_line())
        .await
        .expect("a line in time")
        .expect("stdout")
        .expect("the follower is still running")
}

#[tokio::test]
async fn a_follower_reconnects_after_a_restart_and_resumes_after_what_it_printed() {
    let data = tempfile::tempdir().expect("data dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let grpc = format!("127.0.0.1:{port}");
    let server = serve(data.path(), &grpc).await;
    ok(run(client(&grpc, &["topic", "create", "r"]), b"").await);
    ok(run(client(&grpc, &["produce", "r"]), b"before\n").await);

    let mut follower = Command::new(env!("CARGO_BIN_EXE_brook"))
        .args([
            "-s",
            grpc.as_str(),
            "consume",
            "r",
            "-o",
            "start",
            "--follow",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn follower");
    let mut printed = BufReader::new(follower.stdout.take().expect("stdout")).lines();
    assert_eq!(next_line(&mut printed).await, "before");

    stop(server).await;
    let server = serve(data.path(), &grpc).await;
    ok(run(client(&grpc, &["produce", "r"]), b"after\n").await);
    // Resumed after "before": the next line is the new record, not a repeat.
    assert_eq!(next_line(&mut printed).await, "after");
    follower.kill().await.expect("kill follower");
    stop(server).await;
}
