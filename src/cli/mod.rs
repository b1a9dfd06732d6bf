//! The `brook` command line: argument parsing, logging setup and exit codes.
//!
//! Each subcommand is one module here with a clap `Args`/`Subcommand` type and a
//! `run(self) -> anyhow::Result<ExitCode>`; adding one is a module, a [`Command`] variant and a
//! match arm in [`Command::run`].
//!
//! Exit codes: `0` success; `1` the command ran and found a problem (`brook log check` found
//! damage); `2` the command could not run (bad arguments, unreadable paths). Errors are printed
//! as one line, `error: <what>: <cause>: ...`, never as a panic trace.

mod call;
mod consume;
mod group;
mod log;
mod produce;
mod remote;
mod respond;
mod serve;
mod table;
mod topic;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// A single-node log-based streaming broker.
#[derive(Debug, Parser)]
#[command(name = "brook", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Inspect and verify data on disk, offline (safe on damaged data).
    #[command(subcommand)]
    Log(log::LogCommand),
    /// Run the broker and its doors (gRPC, Kafka) until SIGINT/SIGTERM.
    Serve(serve::ServeArgs),
    /// Measure throughput and latency through a door, beside plain TCP over loopback.
    Bench(brook_bench::BenchArgs),
    /// Create, list, describe and delete topics on a running server.
    #[command(subcommand)]
    Topic(topic::TopicCommand),
    /// Produce one record per line of standard input.
    Produce(produce::ProduceArgs),
    /// Print a topic's records (once, or following new ones).
    Consume(consume::ConsumeArgs),
    /// List and describe consumer groups on a running server.
    #[command(subcommand)]
    Group(group::GroupCommand),
    /// Call a topic: send a request (VALUE or standard input) and print the reply.
    Call(call::CallArgs),
    /// Answer calls on a topic by running a command per request (its stdout is the reply).
    Respond(respond::RespondArgs),
}

impl Command {
    fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            Command::Log(command) => command.run(),
            Command::Serve(args) => args.run(),
            Command::Bench(args) => args.run(),
            Command::Topic(command) => command.run(),
            Command::Produce(args) => args.run(),
            Command::Consume(args) => args.run(),
            Command::Group(command) => command.run(),
            Command::Call(args) => args.run(),
            Command::Respond(args) => args.run(),
        }
    }
}

/// Exit code of a command that ran and found a problem.
pub(crate) const EXIT_PROBLEM_FOUND: u8 = 1;
/// Exit code of a command that could not run.
pub(crate) const EXIT_ERROR: u8 = 2;

/// Parses the arguments, runs the command and maps its outcome to an exit code.
pub(crate) fn main() -> ExitCode {
    init_tracing();
    let cli = Cli::parse();
    match cli.command.run() {
        Ok(code) => code,
        // A reader that went away (`brook log dump ... | head`) is not an error of ours.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// The error and its causes on one line, each cause once: brook's errors often quote their
/// source in their own message (so a log line alone says why), and `{:#}` would repeat it.
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain().map(ToString::to_string) {
        if line.contains(&cause) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&cause);
    }
    line
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

type LogFilterHandle =
    tracing_subscriber::reload::Handle<tracing_subscriber::EnvFilter, tracing_subscriber::Registry>;

/// Lets a command with its own log setting (`brook serve --log-level`) replace the filter.
static LOG_FILTER: std::sync::OnceLock<LogFilterHandle> = std::sync::OnceLock::new();

/// Logs go to stderr, so they never mix with a command's output; `RUST_LOG` picks the level
/// (default `warn`).
fn init_tracing() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
        )
        .init();
    let _ = LOG_FILTER.set(handle);
}

/// Replaces the log filter with `directives` (`info`, `brook=debug,tonic=warn`, ...).
pub(crate) fn set_log_filter(directives: &str) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(directives)?;
    if let Some(handle) = LOG_FILTER.get() {
        handle.reload(filter)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn a_cause_quoted_by_its_parent_is_printed_once() {
        let io = std::io::Error::new(std::io::ErrorKind::AddrInUse, "Address already in use");
        let quoted =
            anyhow::Error::new(io).context("cannot listen on :9092: Address already in use");
        assert_eq!(
            one_line(&quoted),
            "cannot listen on :9092: Address already in use"
        );
        let plain = anyhow::anyhow!("disk full").context("cannot append");
        assert_eq!(one_line(&plain), "cannot append: disk full");
    }
}
