//! `brook log`: offline tools that read a data directory's files directly.
//!
//! They are what an operator runs after a crash, so dump and check never open a partition as a
//! log (no lock, no write; check runs recovery only on a read-only overlay of the disk), and
//! repair makes its one change on a stopped broker's directory, under its lock. They look
//! through [`brook_log::inspect`], whose [`LogScanner`](brook_log::inspect::LogScanner) checks
//! every batch and says where and why it stops. What is here is the presentation: the
//! commands, their lines and their exit codes.

mod check;
mod dump;
mod repair;

use std::process::ExitCode;

use brook_log::inspect::ScanEnd;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub(super) enum LogCommand {
    /// Print every batch of a partition directory or of one segment (.log) file.
    Dump(dump::DumpArgs),
    /// Verify every batch and index of every partition in a data directory, and say what the
    /// next start will repair or fence; exit 1 on damage it will not repair by itself.
    Check(check::CheckArgs),
    /// Cut a partition back to an offset on a stopped broker's data directory: how a
    /// partition read-only after corruption takes appends again.
    Repair(repair::RepairArgs),
}

impl LogCommand {
    pub(super) fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            LogCommand::Dump(args) => args.run(),
            LogCommand::Check(args) => args.run(),
            LogCommand::Repair(args) => args.run(),
        }
    }
}

/// One line saying where a scan stopped and why.
fn describe_damage(end: &ScanEnd) -> String {
    let place = |position: &u64, offset: &Option<u64>| match offset {
        Some(offset) => format!("position {position} (offset {offset})"),
        None => format!("position {position}"),
    };
    match end {
        ScanEnd::Clean => "clean end".to_owned(),
        ScanEnd::TornTail {
            position,
            offset,
            reason,
        } => format!("torn tail at {}: {reason}", place(position, offset)),
        ScanEnd::Corrupt {
            position,
            offset,
            reason,
            next_valid,
        } => format!(
            "corrupt batch at {}: {reason}; valid batches follow at position {next_valid}",
            place(position, offset)
        ),
    }
}
