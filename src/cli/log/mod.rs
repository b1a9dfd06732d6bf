//! `brook log`: offline tools that read a data directory's files directly.
//!
//! They are what an operator runs after a crash, so they never open a partition as a log (no
//! lock, no recovery, no write): they walk the segment files with
//! [`brook_log::scan::LogScanner`], which checks every batch and says where and why it stops.

mod check;
mod dump;
mod index_check;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use brook_log::scan::{LogScanner, ScanEnd, ScannedBatch};
use brook_log::segment::{parse_segment_name, LOG_EXT};
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum LogCommand {
    /// Print every batch of a partition directory or of one segment (.log) file.
    Dump(dump::DumpArgs),
    /// Verify every batch and index of every partition in a data directory; exit 1 on damage.
    Check(check::CheckArgs),
}

impl LogCommand {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            LogCommand::Dump(args) => args.run(),
            LogCommand::Check(args) => args.run(),
        }
    }
}

/// The base offset named by a segment file name `{base_offset:020}.log`.
fn segment_base_offset(path: &Path) -> Option<u64> {
    parse_segment_name(path.file_name()?.to_str()?, LOG_EXT)
}

/// The segment files of a partition directory, sorted by base offset.
fn segment_files(dir: &Path) -> anyhow::Result<Vec<(u64, PathBuf)>> {
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?;
    let mut segments = Vec::new();
    for entry in entries {
        let path = entry
            .with_context(|| format!("cannot list {}", dir.display()))?
            .path();
        if let Some(base) = segment_base_offset(&path) {
            segments.push((base, path));
        }
    }
    segments.sort();
    Ok(segments)
}

/// What a walk over a segment meets, in file order.
enum Event<'a> {
    Batch(&'a ScannedBatch),
    /// A torn tail or a corrupt batch (never [`ScanEnd::Clean`]).
    Damage(&'a ScanEnd),
}

/// Walks every valid batch of a segment, going on after each corrupt place, and hands each
/// batch and each damaged place to `on_event` in file order.
fn walk_segment(
    scanner: &mut LogScanner,
    mut on_event: impl FnMut(Event<'_>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    loop {
        while let Some(batch) = scanner.next_batch()? {
            on_event(Event::Batch(&batch))?;
        }
        match scanner.end() {
            Some(ScanEnd::Clean) | None => {}
            Some(damage) => on_event(Event::Damage(damage))?,
        }
        if !scanner.resume()? {
            return Ok(());
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
