//! What every client command shares: which server it talks to, connecting with an error a person
//! can act on, and the runtime the command runs on.
//!
//! The server comes from, first to last: the global `-s/--server` flag, `BROOK_SERVER`, the
//! context named by `--context` (or `BROOK_CONTEXT`), the current context (`brook context use`),
//! else `127.0.0.1:50051`. It may be written `host:port` (as `rpk -X brokers` and `nats -s`
//! take it) or as a URL (`http://host:port`). `main` resolves it once, before the command runs
//! ([`resolve`]); a command says it talks to a server by holding a [`ServerArgs`].

use std::future::Future;
use std::process::ExitCode;
use std::sync::OnceLock;

use anyhow::Context as _;
use brook_client::{Client, ClientError};
use clap::Args;

use super::context::Contexts;

/// Where the gRPC door listens when nothing says otherwise.
pub(super) const DEFAULT_SERVER: &str = "127.0.0.1:50051";

/// The server every client command of this run talks to, and where that came from.
#[derive(Debug, Clone)]
pub(super) struct Target {
    /// A URL tonic can dial (`http://host:port`).
    pub url: String,
    /// What set it, for error messages ("the flag --server", "context prod").
    pub from: String,
}

static TARGET: OnceLock<Target> = OnceLock::new();

/// Settles the server of this run from the global flags, the environment and the contexts
/// file. Called by `main` before a client command runs; a bad context name fails here.
pub(super) fn resolve(server: Option<&str>, context: Option<&str>) -> anyhow::Result<()> {
    let target = match (server, context) {
        (Some(server), _) => Target {
            url: server_url(server),
            from: "--server (or BROOK_SERVER)".into(),
        },
        (None, Some(name)) => {
            let contexts = Contexts::load()?;
            let server = contexts.get(name)?.server.clone();
            Target {
                url: server_url(&server),
                from: format!("context {name}"),
            }
        }
        (None, None) => match Contexts::load()?.current() {
            Some((name, context)) => Target {
                url: server_url(&context.server),
                from: format!("context {name} (the current one)"),
            },
            None => Target {
                url: server_url(DEFAULT_SERVER),
                from: "the default".into(),
            },
        },
    };
    let _ = TARGET.set(target);
    Ok(())
}

/// The server this run talks to.
pub(super) fn target() -> Target {
    TARGET.get().cloned().unwrap_or_else(|| Target {
        url: server_url(DEFAULT_SERVER),
        from: "the default".into(),
    })
}

/// `host:port` as a URL (`http://host:port`); a URL stays as it is.
pub(super) fn server_url(server: &str) -> String {
    let server = server.trim();
    if server.contains("://") {
        server.to_owned()
    } else {
        format!("http://{server}")
    }
}

/// Marks a command that talks to a running server; the server is the run's global one.
#[derive(Debug, Clone, Default, Args)]
pub(super) struct ServerArgs {}

impl ServerArgs {
    /// Connects, or says which address failed, why, and what to check.
    pub(super) async fn connect(&self) -> anyhow::Result<Client> {
        connect().await
    }
}

/// Connects to the run's server, or says which address failed, why, and what to check.
pub(super) async fn connect() -> anyhow::Result<Client> {
    let target = target();
    let connected = Client::connect(target.url.clone()).await;
    connected.map_err(|e| connect_error(e, &target))
}

/// Connects through `endpoint` (the run's server with settings of its own, such as TLS) as
/// [`connect`] does, with the same error.
pub(super) async fn connect_endpoint(
    endpoint: tonic::transport::Endpoint,
    target: &Target,
) -> anyhow::Result<Client> {
    let connected = Client::connect_endpoint(endpoint).await;
    connected.map_err(|e| connect_error(e, target))
}

/// A failed connection in one line: the cause in plain words replaces the transport's chain of
/// wrappers.
fn connect_error(e: ClientError, target: &Target) -> anyhow::Error {
    match e {
        ClientError::Connect { url, reason, .. } => anyhow::anyhow!(
            "cannot connect to {url}: {reason} — is `brook serve` running? (server from {})",
            target.from
        ),
        e => e.into(),
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

#[cfg(test)]
mod tests {
    use super::server_url;

    #[test]
    fn host_and_port_become_a_url() {
        assert_eq!(server_url("localhost:50051"), "http://localhost:50051");
        assert_eq!(server_url("http://10.0.0.1:1"), "http://10.0.0.1:1");
        assert_eq!(server_url("https://brook.example"), "https://brook.example");
    }
}
