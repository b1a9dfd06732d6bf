//! `brook serve` as a child process with its Kafka door on a loopback port, for tests that must
//! kill the broker (`kill -9`) rather than close it, and start it again on the same data
//! directory.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long `brook serve` may take to say it is ready; only reached when something is wrong.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running `brook serve`.
pub(crate) struct ChildBroker {
    child: Child,
    /// `host:port` of its Kafka door.
    pub bootstrap: String,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl ChildBroker {
    /// Starts `brook serve` on `data` with only the Kafka door (on port 0) and `extra` flags.
    pub(crate) fn start(data: &Path, extra: &[&str]) -> ChildBroker {
        let data = data.to_str().expect("utf-8 path");
        let mut command = Command::new(env!("CARGO_BIN_EXE_brook"));
        for (var, _) in std::env::vars().filter(|(var, _)| var.starts_with("BROOK_")) {
            command.env_remove(var);
        }
        let mut child = command
            .env_remove("RUST_LOG")
            .args(["serve", "--data-dir", data, "--log-level", "warn"])
            .args(["--kafka-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0"])
            .args(["--http-addr", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn brook serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut stderr_pipe = child.stderr.take().expect("stderr");
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr_pipe.read_to_string(&mut text);
            text
        });
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut bootstrap = None;
        loop {
            let Ok(line) = lines.recv_timeout(START_TIMEOUT) else {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "brook serve did not get ready: {}",
                    stderr.join().unwrap_or_default()
                );
            };
            if let Some(addr) = line.strip_prefix("brook: kafka listening on ") {
                bootstrap = Some(addr.to_owned());
            } else if line.starts_with("brook: ready") {
                break;
            }
        }
        ChildBroker {
            child,
            bootstrap: bootstrap.expect("a Kafka listening line"),
            stderr: Some(stderr),
        }
    }

    /// SIGKILL: the broker stops dead, nothing flushed, closed or marked.
    pub(crate) fn kill(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stderr
            .take()
            .map(|t| t.join().unwrap_or_default())
            .unwrap_or_default()
    }
}

impl Drop for ChildBroker {
    fn drop(&mut self) {
        // A failed test must not leave a server behind.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
