//! What the tests of the `brook` client commands share: running the real binary with a clean
//! environment, feeding it standard input, and reading its answer.

#![allow(dead_code)] // each test file uses its own part

use std::process::{Output, Stdio};
use std::time::Duration;

use brook::Broker;
use brook_server::{GrpcConfig, GrpcServer};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// How long one command may take; only reached when something is wrong.
pub(crate) const PATIENCE: Duration = Duration::from_secs(30);

/// A gRPC door on port 0 over an in-memory broker; it stops when dropped.
pub(crate) async fn grpc_server() -> GrpcServer {
    let broker = Broker::ephemeral().await.expect("broker");
    let addr = "127.0.0.1:0".parse().expect("address");
    GrpcServer::start(broker, addr, GrpcConfig::default())
        .await
        .expect("gRPC server")
}

/// `brook ARGS` with piped standard streams and none of the variables that would pick another
/// server, context or log level; killed if the test drops it.
pub(crate) fn brook_command(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_brook"));
    command
        .args(args)
        .env_remove("BROOK_SERVER")
        .env_remove("BROOK_CONTEXT")
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Runs `command` with `stdin` as its input, to the end.
pub(crate) async fn run(mut command: Command, stdin: &[u8]) -> Output {
    let mut child = command.spawn().expect("spawn brook");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin).await.expect("write stdin");
    drop(input);
    tokio::time::timeout(PATIENCE, child.wait_with_output())
        .await
        .expect("brook finished in time")
        .expect("brook ran")
}

/// `brook ARGS` run to the end with `stdin`, no credentials file taken from the environment:
/// whether it succeeded, its stdout and its stderr.
pub(crate) async fn outcome(args: &[&str], stdin: &str) -> (bool, String, String) {
    let mut command = brook_command(args);
    command.env_remove("BROOK_CREDENTIALS_FILE");
    let output = run(command, stdin.as_bytes()).await;
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Asserts success and returns stdout.
pub(crate) fn ok(output: Output) -> String {
    assert!(
        output.status.success(),
        "failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf8 stdout")
}
