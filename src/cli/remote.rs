//! What every client command shares: the `--server` flag, connecting with an error a person
//! can act on, and the runtime the command runs on.

use std::future::Future;
use std::process::ExitCode;

use anyhow::Context;
use brook_client::{Client, ClientError};
use clap::Args;

/// Where the server is.
#[derive(Debug, Clone, Args)]
pub(super) struct ServerArgs {
    /// URL of the brook server's gRPC door.
    #[arg(long, env = "BROOK_SERVER", default_value = "http://127.0.0.1:50051")]
    pub server: String,
}

impl ServerArgs {
    /// Connects, or says which address failed, why, and what to check.
    pub(super) async fn connect(&self) -> anyhow::Result<Client> {
        match Client::connect(self.server.clone()).await {
            Ok(client) => Ok(client),
            // One line: the cause in plain words replaces the transport's chain of wrappers.
            Err(ClientError::Connect { url, reason, .. }) => Err(anyhow::anyhow!(
                "cannot connect to {url}: {reason} — is `brook serve` running?"
            )),
            Err(e) => Err(e.into()),
        }
    }
}

/// Runs a client command's future to completion on a small runtime of its own.
pub(super) fn run<F>(command: F) -> anyhow::Result<ExitCode>
where
    F: Future<Output = anyhow::Result<()>>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    runtime.block_on(command)?;
    Ok(ExitCode::SUCCESS)
}
