//! `brook serve`: runs the broker on a data directory with its doors (gRPC, Kafka, HTTP with the
//! web console, and the metrics port when `metrics_addr` is set) until SIGINT or SIGTERM, then
//! stops clean.
//!
//! Settings come from flags, `BROOK_*` variables and an optional TOML file ([`config`]). On
//! start it prints one line per door, `brook: <door> listening on <addr>` (the real port when
//! the setting said port 0), then `brook: ready`; scripts and tests wait for those lines. On
//! SIGINT/SIGTERM every door stops accepting, requests in flight (produces in particular)
//! finish, the log closes with its clean-shutdown marker, `brook: stopped cleanly` is printed
//! and the exit code is 0. A second signal while draining exits at once (code 2) without the
//! clean close: the next start recovers the log. SIGHUP reads the TLS certificate, key and
//! client CA again (docs/security.md): new handshakes use them, open connections keep theirs.

pub(super) mod config;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use tokio::signal::unix::{signal, Signal, SignalKind};

use brook::server::Server;
use config::{ConfigFile, ServeConfig, SettingFlags};

/// Run the broker and its doors until SIGINT/SIGTERM.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Every setting is also an environment variable (BROOK_<KEY>) and a key of the \
                  --config file; a flag beats the variable, the variable beats the file. \
                  See docs/operations.md."
)]
pub(super) struct ServeArgs {
    /// A TOML file of settings: `key = value` lines, keys as the flags with underscores.
    #[arg(long, value_name = "FILE", env = "BROOK_CONFIG")]
    config: Option<PathBuf>,
    /// Print the effective settings as TOML, each with where it came from, and exit.
    #[arg(long)]
    print_config: bool,
    #[command(flatten)]
    settings: SettingFlags,
}

impl ServeArgs {
    pub(super) fn run(self) -> anyhow::Result<ExitCode> {
        let file = self.config.as_deref().map(ConfigFile::read).transpose()?;
        let env = |var: &str| std::env::var(var).ok();
        let resolved = config::resolve(&self.settings, &env, file.as_ref())?;
        if self.print_config {
            print!("{}", resolved.to_toml());
            return Ok(ExitCode::SUCCESS);
        }
        // An explicit log_level beats RUST_LOG, which beats the default `info`.
        let log_filter = (resolved.config.log_level.clone())
            .or_else(|| std::env::var("RUST_LOG").ok())
            .unwrap_or_else(|| "info".to_owned());
        super::logging::init(&log_filter, resolved.config.log_format)?;
        let runtime = runtime(resolved.config.worker_threads)?;
        runtime.block_on(serve(resolved.config))
    }
}

/// The runtime the doors run on: tokio's multi-thread runtime with `workers` worker threads
/// (`None`: one per core). Blocking file IO keeps its own pool whatever the count.
fn runtime(workers: Option<u16>) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(workers) = workers {
        builder.worker_threads(usize::from(workers));
    }
    (builder.enable_all().build()).context("cannot start the tokio runtime")
}

async fn serve(config: ServeConfig) -> anyhow::Result<ExitCode> {
    // Installed before the (possibly long) start, so a signal during recovery is not lost.
    let mut signals = Signals::new()?;
    let mut server = Server::start(&config).await?;
    announce(&server, &config);

    let failed = loop {
        tokio::select! {
            signal = signals.next_or_hangup() => match signal {
                Some(name) => {
                    tracing::info!(signal = name, "shutting down: draining requests in flight");
                    break None;
                }
                None => match server.reload_tls().await {
                    Ok(true) => tracing::info!("SIGHUP: TLS certificate, key and client CA reloaded"),
                    Ok(false) => tracing::info!("SIGHUP: no TLS to reload"),
                    Err(error) => tracing::error!(
                        %error,
                        "SIGHUP: TLS reload failed; the old certificate stays"
                    ),
                },
            },
            (door, result) = server.door_stopped() => {
                let error = anyhow::Error::new(result.err().unwrap_or(
                    brook::server::ServeError::DoorEnded { door: door.label() },
                ));
                tracing::error!(door = door.name(), error = %format!("{error:#}"), "shutting down");
                break Some(error);
            }
        }
    };
    tokio::select! {
        result = server.stop() => result?,
        name = signals.next() => {
            eprintln!("brook: {name} while draining: exiting without closing the log clean");
            std::process::exit(i32::from(super::EXIT_ERROR));
        }
    }
    if let Some(error) = failed {
        return Err(error);
    }
    println!("brook: stopped cleanly");
    Ok(ExitCode::SUCCESS)
}

/// Prints the parseable startup lines (stdout; logs go to stderr).
fn announce(server: &Server, config: &ServeConfig) {
    for door in server.doors() {
        println!("brook: {} listening on {}", door.door.name(), door.addr);
    }
    if config.backend.is_gateway() {
        println!("brook: ready (gateway to {}, no local log)", config.backend);
    } else {
        println!(
            "brook: ready (data in {}, durability {})",
            config.broker.data_dir.display(),
            config.broker.log.durability
        );
    }
}

/// SIGINT and SIGTERM as one stream of signal names; SIGHUP (reload TLS) apart.
struct Signals {
    interrupt: Signal,
    terminate: Signal,
    hangup: Signal,
}

impl Signals {
    fn new() -> anyhow::Result<Self> {
        let install = |kind| signal(kind).context("cannot install a signal handler");
        Ok(Signals {
            interrupt: install(SignalKind::interrupt())?,
            terminate: install(SignalKind::terminate())?,
            hangup: install(SignalKind::hangup())?,
        })
    }

    /// The next SIGINT or SIGTERM, or `None` for a SIGHUP.
    async fn next_or_hangup(&mut self) -> Option<&'static str> {
        tokio::select! {
            _ = self.interrupt.recv() => Some("SIGINT"),
            _ = self.terminate.recv() => Some("SIGTERM"),
            _ = self.hangup.recv() => None,
        }
    }

    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::runtime;

    #[test]
    fn the_runtime_has_the_worker_threads_asked_for() {
        let one = runtime(Some(1)).expect("runtime");
        assert_eq!(one.metrics().num_workers(), 1);
        let three = runtime(Some(3)).expect("runtime");
        assert_eq!(three.metrics().num_workers(), 3);
        // `None`: tokio's default, one per core (or TOKIO_WORKER_THREADS).
        assert!(runtime(None).expect("runtime").metrics().num_workers() >= 1);
    }
}
