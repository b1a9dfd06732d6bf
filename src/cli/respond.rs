//! `brook respond TOPIC -- COMMAND [ARGS...]`: answers request-reply calls with a shell
//! command, as a member of a responder group (several `brook respond` share the calls, and take
//! over from one that stops).
//!
//! For each request the command runs once, with the request's value on standard input and
//! `BROOK_TOPIC`, `BROOK_PARTITION`, `BROOK_OFFSET`, `BROOK_CORRELATION_ID` (text form) and
//! `BROOK_KEY` (when the key is UTF-8) in its environment. Its standard output is the reply. A
//! non-zero exit, a kill by signal, output over [`OUTPUT_BYTES_MAX`] or a run past `--timeout-ms`
//! is an error reply instead, carrying the end of its standard error; the caller sees that
//! message as the call's error. Runs until interrupted (Ctrl-C) or the server ends the stream.

use std::ffi::OsString;
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use brook_broker::CorrelationId;
use brook_client::{Answer, IncomingRequest};
use bytes::Bytes;
use clap::Args;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;
use tokio::sync::Semaphore;

use super::remote::{self, ServerArgs};

/// The largest reply a command may print.
pub(super) const OUTPUT_BYTES_MAX: u64 = 16 << 20;
/// How much of a failing command's standard error its error reply carries (the end of it).
const STDERR_BYTES_MAX: usize = 4096;

#[derive(Debug, Args)]
pub(super) struct RespondArgs {
    /// Topic to answer calls on.
    topic: String,
    /// The responder group (responders of one service share one). Default: `respond-TOPIC`.
    #[arg(long)]
    group: Option<String>,
    /// Commands running at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    concurrency: u32,
    /// Longest a command may run before it is killed and an error reply sent, in ms.
    #[arg(long, default_value_t = 60_000)]
    timeout_ms: u64,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    command: Vec<OsString>,
    #[command(flatten)]
    server: ServerArgs,
}

/// What runs for each request.
#[derive(Debug)]
struct Runner {
    program: OsString,
    args: Vec<OsString>,
    timeout: Duration,
    slots: Semaphore,
}

impl RespondArgs {
    pub(super) fn run(self) -> anyhow::Result<ExitCode> {
        remote::run(self.respond())
    }

    async fn respond(self) -> anyhow::Result<()> {
        let group = self
            .group
            .clone()
            .unwrap_or_else(|| format!("respond-{}", self.topic));
        let mut command = self.command.into_iter();
        let program = command.next().context("no command given after --")?;
        let runner = Arc::new(Runner {
            program,
            args: command.collect(),
            timeout: Duration::from_millis(self.timeout_ms),
            slots: Semaphore::new(self.concurrency as usize),
        });
        let client = self.server.connect().await?;
        let handler = move |request: IncomingRequest| {
            let runner = Arc::clone(&runner);
            async move { runner.answer(request).await }
        };
        tokio::select! {
            responded = client.respond(&self.topic, &group, handler) => {
                responded.with_context(|| format!("responding on {}", self.topic))
            }
            interrupted = tokio::signal::ctrl_c() => {
                interrupted.context("cannot wait for Ctrl-C")
            }
        }
    }
}

impl Runner {
    /// Runs the command on `request`: its output, or why it failed.
    async fn answer(&self, request: IncomingRequest) -> Result<Answer, String> {
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| "the responder is stopping".to_owned())?;
        match tokio::time::timeout(self.timeout, self.run(&request)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(format!(
                "the command did not finish within {} ms",
                self.timeout.as_millis()
            )),
        }
    }

    async fn run(&self, request: &IncomingRequest) -> Result<Answer, String> {
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .env("BROOK_TOPIC", &*request.topic)
            .env("BROOK_PARTITION", request.partition.to_string())
            .env("BROOK_OFFSET", request.offset.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // A command cut short by the timeout is killed, not left running.
            .kill_on_drop(true);
        if let Ok(id) = CorrelationId::from_bytes(request.correlation_id.clone()) {
            command.env("BROOK_CORRELATION_ID", id.to_text());
        }
        if let Some(key) = request
            .key
            .as_deref()
            .and_then(|k| std::str::from_utf8(k).ok())
        {
            command.env("BROOK_KEY", key);
        }
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot run {:?}: {e}", self.program))?;
        let (Some(mut stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err("the command's pipes could not be opened".to_owned());
        };
        let value = request.value.clone().unwrap_or_default();
        let feed = async move {
            // A command that does not read its input closes the pipe: not an error.
            let _ = stdin.write_all(&value).await;
            drop(stdin);
        };
        let (_, output, errors) = tokio::join!(
            feed,
            read_bounded(stdout, OUTPUT_BYTES_MAX),
            read_tail(stderr)
        );
        let output = output.map_err(|e| format!("cannot read the command's output: {e}"))?;
        let status = child
            .wait()
            .await
            .map_err(|e| format!("cannot wait for the command: {e}"))?;
        let Some(output) = output else {
            return Err(format!(
                "the command printed more than {OUTPUT_BYTES_MAX} bytes"
            ));
        };
        if status.success() {
            return Ok(Answer::value(Bytes::from(output)));
        }
        let errors = String::from_utf8_lossy(&errors);
        Err(format!("the command failed ({status}): {}", errors.trim()))
    }
}

/// Everything `reader` gives, or `None` past `max` bytes.
async fn read_bounded(
    reader: impl AsyncRead + Unpin,
    max: u64,
) -> std::io::Result<Option<Vec<u8>>> {
    let mut bytes = Vec::new();
    reader.take(max + 1).read_to_end(&mut bytes).await?;
    Ok((bytes.len() as u64 <= max).then_some(bytes))
}

/// The last [`STDERR_BYTES_MAX`] bytes `reader` gives (reading it all, so the command never
/// blocks on a full pipe).
async fn read_tail(mut reader: impl AsyncRead + Unpin) -> Vec<u8> {
    let mut tail = Vec::new();
    let mut chunk = [0u8; 4096];
    while let Ok(n) = reader.read(&mut chunk).await {
        if n == 0 {
            break;
        }
        tail.extend_from_slice(&chunk[..n]);
        if tail.len() > STDERR_BYTES_MAX {
            tail.drain(..tail.len() - STDERR_BYTES_MAX);
        }
    }
    tail
}
