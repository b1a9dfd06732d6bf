//! `brook serve` as a child process of a test: the built binary with none of the runner's
//! `BROOK_*` variables, its doors' addresses read from the lines it prints, stopped with
//! SIGTERM (a clean close) or SIGKILL (`kill -9`: nothing flushed, closed or marked).
//! Shared by the tests that need a broker in a process of its own.

#![allow(dead_code)] // each test binary uses its own subset

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long `brook serve` may take to say it is ready; only reached when something is wrong.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// `brook` with `args` and none of the runner's `BROOK_*` variables.
pub(crate) fn brook(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_brook"));
    for (var, _) in std::env::vars().filter(|(var, _)| var.starts_with("BROOK_")) {
        command.env_remove(var);
    }
    command.env_remove("RUST_LOG").args(args);
    command
}

/// A running `brook serve` and the addresses it printed.
pub(crate) struct Served {
    child: Child,
    /// `door name -> address` as printed (`kafka`, `grpc`, `http`).
    pub doors: Vec<(String, String)>,
    /// Stdout lines after `brook: ready`.
    lines: mpsc::Receiver<String>,
    /// Everything the server writes to stderr, read as it comes so it never blocks on a full
    /// pipe.
    stderr: Option<std::thread::JoinHandle<String>>,
}

/// How a server ended.
pub(crate) struct Stopped {
    pub status: ExitStatus,
    pub stderr: String,
    /// Stdout lines printed after `brook: ready`.
    pub lines: Vec<String>,
}

impl Served {
    /// Starts `brook serve` with `args` and waits for `brook: ready`.
    pub(crate) fn start(args: &[&str]) -> Served {
        let mut full = vec!["serve", "--log-level", "warn"];
        full.extend_from_slice(args);
        let mut child = brook(&full)
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
        let mut doors = Vec::new();
        loop {
            let Ok(line) = lines.recv_timeout(START_TIMEOUT) else {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "brook serve did not get ready: {}",
                    stderr.join().unwrap_or_default()
                );
            };
            if let Some(rest) = line.strip_prefix("brook: ") {
                if let Some((door, addr)) = rest.split_once(" listening on ") {
                    doors.push((door.to_owned(), addr.to_owned()));
                } else if rest.starts_with("ready") {
                    break;
                }
            }
        }
        Served {
            child,
            doors,
            lines,
            stderr: Some(stderr),
        }
    }

    /// Where `door` listens.
    pub(crate) fn addr(&self, door: &str) -> String {
        self.doors
            .iter()
            .find(|(name, _)| name == door)
            .map(|(_, addr)| addr.clone())
            .unwrap_or_else(|| panic!("no {door} door in {:?}", self.doors))
    }

    /// Whether `door` is serving.
    pub(crate) fn serves(&self, door: &str) -> bool {
        self.doors.iter().any(|(name, _)| name == door)
    }

    /// The server's process id.
    pub(crate) fn id(&self) -> u32 {
        self.child.id()
    }

    /// Stops the server as an operator does (SIGTERM: a clean close), asserts it exited 0,
    /// and returns its stderr.
    pub(crate) fn stop(self) -> String {
        let stopped = self.signal(libc::SIGTERM);
        assert!(
            stopped.status.success(),
            "brook serve stopped with {}",
            stopped.status
        );
        stopped.stderr
    }

    /// Sends `signal` and waits for the exit.
    #[allow(unsafe_code)] // kill(2); see the SAFETY comment.
    pub(crate) fn signal(mut self, signal: libc::c_int) -> Stopped {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid fits");
        // SAFETY: kill(2) with a pid we spawned and have not waited for, so it is still ours.
        let rc = unsafe { libc::kill(pid, signal) };
        assert_eq!(rc, 0, "kill failed");
        let status = self.child.wait().expect("wait for brook serve");
        let stderr = self.take_stderr();
        // The reader thread ends at EOF, after the exit; everything it read is queued.
        let lines = std::iter::from_fn(|| self.lines.recv_timeout(START_TIMEOUT).ok()).collect();
        Stopped {
            status,
            stderr,
            lines,
        }
    }

    /// SIGKILL: the server stops dead, nothing flushed, closed or marked; returns its stderr.
    pub(crate) fn kill(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.take_stderr()
    }

    fn take_stderr(&mut self) -> String {
        self.stderr
            .take()
            .and_then(|s| s.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
