//! `brook call TOPIC [VALUE]`: one request-reply call from the shell. The request's value is
//! VALUE, or all of standard input; the reply's value goes to standard output as is.
//!
//! Exit codes: `0` with the reply; `1` when the call ran but got no reply in time or an error
//! reply (the message, and for a timeout the correlation id to call again with, go to stderr);
//! `2` when it could not run.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use brook_broker::CorrelationId;
use brook_client::{CallRequest, Code};
use bytes::Bytes;
use clap::Args;
use tokio::io::AsyncReadExt;

use super::remote::{self, ServerArgs};
use super::EXIT_PROBLEM_FOUND;

#[derive(Debug, Args)]
pub(super) struct CallArgs {
    /// Topic the responders listen on.
    topic: String,
    /// The request's value; without it, all of standard input.
    value: Option<String>,
    /// The request's key (also the reply's key).
    #[arg(long)]
    key: Option<String>,
    /// How long to wait for the reply, in milliseconds.
    #[arg(long, default_value_t = 30_000)]
    timeout_ms: u32,
    /// The call's correlation id (a UUID, 0x hex, or text): calling again with the one a
    /// timed-out call printed gets its reply without sending a second request. Default: new.
    #[arg(long)]
    correlation_id: Option<String>,
    #[command(flatten)]
    server: ServerArgs,
}

impl CallArgs {
    pub(super) fn run(self) -> anyhow::Result<ExitCode> {
        let mut code = ExitCode::SUCCESS;
        remote::run(async {
            code = self.call().await?;
            Ok(())
        })?;
        Ok(code)
    }

    async fn call(self) -> anyhow::Result<ExitCode> {
        let id = match &self.correlation_id {
            Some(text) => CorrelationId::parse(text)?,
            None => CorrelationId::random(),
        };
        let value = match self.value {
            Some(value) => Bytes::from(value),
            None => {
                let mut input = Vec::new();
                tokio::io::stdin()
                    .read_to_end(&mut input)
                    .await
                    .context("cannot read standard input")?;
                Bytes::from(input)
            }
        };
        let client = self.server.connect().await?;
        let request = CallRequest {
            key: self.key.map(Bytes::from),
            ..CallRequest::value(value)
                .with_correlation_id(id.as_bytes().clone())
                .with_timeout(Duration::from_millis(self.timeout_ms.into()))
        };
        match client.call(&self.topic, request).await {
            Ok(reply) => {
                let mut stdout = std::io::stdout().lock();
                stdout.write_all(reply.value.as_deref().unwrap_or_default())?;
                stdout.flush()?;
                Ok(ExitCode::SUCCESS)
            }
            Err(e) if e.code() == Code::DeadlineExceeded => {
                eprintln!(
                    "error: no reply within {} ms; to get it later run the same call with \
                     --correlation-id {id}",
                    self.timeout_ms
                );
                Ok(ExitCode::from(EXIT_PROBLEM_FOUND))
            }
            Err(e) if e.code() == Code::Unknown => {
                eprintln!("error: {e}");
                Ok(ExitCode::from(EXIT_PROBLEM_FOUND))
            }
            Err(e) => Err(e.into()),
        }
    }
}
