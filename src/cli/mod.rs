//! The `brook` command line: argument parsing, logging setup and exit codes.
//!
//! Each subcommand is one module here with a clap `Args`/`Subcommand` type and a
//! `run(self) -> anyhow::Result<ExitCode>`; adding one is a module, a [`Command`] variant and a
//! match arm in [`Command::run`].
//!
//! Global flags: `-s/--server HOST:PORT` and `--context NAME` pick the server of every client
//! command ([`remote`]).
//!
//! Exit codes: `0` success; `1` the command ran and found a problem (`brook log check` found
//! damage); `2` the command could not run (bad arguments, unreadable paths). Errors are printed
//! as one line, `error: <what>: <cause>: ...`, in brook's words (a server's refusal without its
//! gRPC code, the `brook` command to run rather than a gRPC call), never as a panic trace.

mod acl;
mod admin;
mod call;
mod consume;
mod context;
mod group;
mod json;
mod log;
mod logging;
mod migrate;
#[cfg(feature = "otlp")]
mod otlp;
mod produce;
mod records;
mod remote;
mod respond;
mod security;
mod serve;
mod table;
mod topic;
mod txn;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use brook_client::ClientError;
use clap::{CommandFactory, Parser, Subcommand};

/// A single-node log-based streaming broker.
#[derive(Debug, Parser)]
#[command(name = "brook", version, about)]
struct Cli {
    /// The server client commands talk to: HOST:PORT of the gRPC door, or a URL. Beats
    /// --context and the current context.
    #[arg(
        short = 's',
        long,
        global = true,
        env = "BROOK_SERVER",
        value_name = "HOST:PORT"
    )]
    server: Option<String>,
    /// Talk to this context's server (see `brook context`) instead of the current one.
    #[arg(long, global = true, env = "BROOK_CONTEXT", value_name = "NAME")]
    context: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the broker and its doors (gRPC, Kafka, HTTP with the web console; optionally a
    /// metrics port) until SIGINT/SIGTERM.
    Serve(serve::ServeArgs),
    /// Create, list, describe and delete topics on a running server.
    #[command(subcommand)]
    Topic(topic::TopicCommand),
    /// Produce records: one per line of standard input, or one given inline.
    Produce(produce::ProduceArgs),
    /// Print topics' records (once, or following new ones), as text, JSON or a format.
    Consume(consume::ConsumeArgs),
    /// List and describe consumer groups on a running server.
    #[command(subcommand)]
    Group(group::GroupCommand),
    /// List and describe transactions, and the producers holding a partition back.
    #[command(subcommand)]
    Txn(txn::TxnCommand),
    /// Call a topic: send a request (VALUE or standard input) and print the reply.
    Call(call::CallArgs),
    /// Answer calls on a topic by running a command per request (its stdout is the reply).
    Respond(respond::RespondArgs),
    /// Name servers and switch between them (like rpk profiles or nats contexts).
    #[command(subcommand)]
    Context(context::ContextCommand),
    /// Inspect and verify data on disk, offline (safe on damaged data).
    #[command(subcommand)]
    Log(log::LogCommand),
    /// Add, remove, list users and change passwords (SCRAM credentials): offline on a stopped
    /// broker's data directory (`--data-dir`), or online through the running broker.
    #[command(subcommand)]
    User(security::UserCommand),
    /// Create, revoke and list bearer tokens: offline (`--data-dir`) or online.
    #[command(subcommand)]
    Token(security::TokenCommand),
    /// Add, remove and list ACLs: offline (`--data-dir`) or online.
    #[command(subcommand)]
    Acl(acl::AclCommand),
    /// Copy topics, records and group offsets from a data directory (or a running brook) into
    /// a Kafka cluster, or back; resumable.
    Migrate(migrate::MigrateArgs),
    /// Measure throughput and latency through a door, beside plain TCP over loopback.
    Bench(brook_bench::BenchArgs),
    /// Print a shell completion script: `source <(brook completions bash)`.
    Completions(CompletionsArgs),
    /// Print brook's man page (or write one page per command into a directory).
    Man(ManArgs),
}

#[derive(Debug, clap::Args)]
struct CompletionsArgs {
    /// The shell.
    shell: clap_complete::Shell,
}

#[derive(Debug, clap::Args)]
struct ManArgs {
    /// Write brook.1 and one brook-COMMAND.1 per command here instead of printing brook.1.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

impl Command {
    /// Whether the command talks to a running server (and so needs the server resolved).
    fn is_client(&self) -> bool {
        matches!(
            self,
            Command::Topic(_)
                | Command::Produce(_)
                | Command::Consume(_)
                | Command::Group(_)
                | Command::Txn(_)
                | Command::Call(_)
                | Command::Respond(_)
                | Command::Context(context::ContextCommand::Show)
        ) || matches!(self, Command::User(c) if c.online())
            || matches!(self, Command::Token(c) if c.online())
            || matches!(self, Command::Acl(c) if c.online())
    }

    /// Runs the command; `server` is the global `-s/--server`.
    fn run(self, server: Option<&str>) -> anyhow::Result<ExitCode> {
        match self {
            Command::Log(command) => command.run(),
            Command::User(command) => command.run(),
            Command::Token(command) => command.run(),
            Command::Acl(command) => command.run(),
            Command::Migrate(args) => args.run(),
            Command::Serve(args) => args.run(),
            Command::Bench(args) => args.run(),
            Command::Topic(command) => command.run(),
            Command::Produce(args) => args.run(),
            Command::Consume(args) => args.run(),
            Command::Group(command) => command.run(),
            Command::Txn(command) => command.run(),
            Command::Call(args) => args.run(),
            Command::Respond(args) => args.run(),
            Command::Context(command) => command.run(server),
            Command::Completions(args) => {
                let mut command = Cli::command();
                let out = &mut std::io::stdout();
                clap_complete::generate(args.shell, &mut command, "brook", out);
                Ok(ExitCode::SUCCESS)
            }
            Command::Man(args) => man(args.dir),
        }
    }
}

/// brook's man pages, from the same definitions as `--help`.
fn man(dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let command = Cli::command();
    let Some(dir) = dir else {
        clap_mangen::Man::new(command).render(&mut std::io::stdout().lock())?;
        return Ok(ExitCode::SUCCESS);
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let write = |name: String, command: clap::Command| -> anyhow::Result<()> {
        let path = dir.join(format!("{name}.1"));
        let mut out = Vec::new();
        clap_mangen::Man::new(command).render(&mut out)?;
        std::fs::write(&path, out).with_context(|| format!("cannot write {}", path.display()))
    };
    for sub in command.get_subcommands() {
        let name = format!("brook-{}", sub.get_name());
        write(name.clone(), sub.clone().name(name))?;
    }
    write("brook".into(), command)?;
    Ok(ExitCode::SUCCESS)
}

/// Exit code of a command that ran and found a problem.
pub(crate) const EXIT_PROBLEM_FOUND: u8 = 1;
/// Exit code of a command that could not run.
pub(crate) const EXIT_ERROR: u8 = 2;

/// Parses the arguments, runs the command and maps its outcome to an exit code.
pub(crate) fn main() -> ExitCode {
    let cli = Cli::parse();
    // `brook serve` sets up logging from its own settings.
    if !matches!(cli.command, Command::Serve(_)) {
        logging::init_default();
    }
    let resolved = if cli.command.is_client() {
        remote::resolve(cli.server.as_deref(), cli.context.as_deref())
    } else {
        Ok(())
    };
    let outcome = resolved.and_then(|()| cli.command.run(cli.server.as_deref()));
    #[cfg(feature = "otlp")]
    otlp::shutdown();
    match outcome {
        Ok(code) => code,
        // A reader that went away (`brook log dump ... | head`) is not an error of ours.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "error: {}", one_line(&e));
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// The error and its causes on one line, each cause once: brook's errors often quote their
/// source in their own message (so a log line alone says why), and `{:#}` would repeat it.
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain().map(in_brooks_words) {
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

/// A cause as a person at the shell reads it: a server's refusal without its gRPC code, and
/// with the gRPC call it suggests named as the `brook` command that makes it.
fn in_brooks_words(cause: &(dyn std::error::Error + 'static)) -> String {
    match cause.downcast_ref::<ClientError>() {
        Some(ClientError::Rpc {
            operation, message, ..
        }) => {
            let message = message
                .replace("CreateTopic", "`brook topic create`")
                .replace("DescribeTopic", "`brook topic describe`");
            format!("cannot {operation}: {message}")
        }
        _ => cause.to_string(),
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
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
