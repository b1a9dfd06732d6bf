//! `brook log check`: verifies every batch and index of every partition of a data directory.
//!
//! Read-only by design: files are opened for reading, nothing is repaired, and the data
//! directory's lock is not taken, so it may run beside a live broker. When a broker holds the
//! lock, a note says so: the active segments are then being written while they are read, and
//! their last batch may look torn for a moment.
//!
//! Besides the segments it checks the topic files (each readable, each partition they name
//! present, each partition directory named by one) and each partition's checkpoint and
//! clean-shutdown marker.
//!
//! Each problem is one line naming the file, the position, the offset when known and the
//! reason; the exit code is 1 if there was any. A torn tail in a partition's last segment is a
//! warning, not a problem: it is what an interrupted append leaves (never an acknowledged batch
//! in `sync` durability) and the next open truncates it. The same in an earlier segment, or a
//! bad batch followed by valid ones, is damage.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use brook_log::inspect::{
    self, IndexCheck, LogScanner, ScanEnd, SegmentEvent, SegmentFiles, Severity,
};

use super::describe_damage;
use crate::cli::EXIT_PROBLEM_FOUND;

#[derive(Debug, clap::Args)]
pub(crate) struct CheckArgs {
    /// The data directory (the broker's `--data-dir`).
    data_dir: PathBuf,
}

impl CheckArgs {
    pub(crate) fn run(self) -> anyhow::Result<ExitCode> {
        let dir = &self.data_dir;
        anyhow::ensure!(dir.is_dir(), "{} is not a directory", dir.display());
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        let mut report = Report::default();
        if let Some(holder) = inspect::lock_holder(dir)? {
            writeln!(
                out,
                "note: {} is in use by {holder}; checking anyway (read-only), the active segments may be mid-write",
                dir.display()
            )?;
        }
        let partitions = inspect::partition_dirs(dir)?;
        check_topics(&mut out, &mut report, dir, &partitions)?;
        for partition in partitions.values() {
            check_partition(&mut out, &mut report, partition)?;
        }
        writeln!(out, "{}", report.summary())?;
        out.flush()?;
        Ok(if report.problems > 0 {
            ExitCode::from(EXIT_PROBLEM_FOUND)
        } else {
            ExitCode::SUCCESS
        })
    }
}

/// What a check found, counted as it goes.
#[derive(Debug, Default)]
struct Report {
    partitions: u64,
    segments: u64,
    batches: u64,
    bytes: u64,
    problems: u64,
    warnings: u64,
}

impl Report {
    fn problem(&mut self, out: &mut impl Write, text: String) -> std::io::Result<()> {
        self.problems += 1;
        writeln!(out, "error: {text}")
    }

    fn warning(&mut self, out: &mut impl Write, text: String) -> std::io::Result<()> {
        self.warnings += 1;
        writeln!(out, "warning: {text}")
    }

    fn summary(&self) -> String {
        let verdict = if self.problems == 0 {
            "ok".to_owned()
        } else {
            format!("{} problem(s) found", self.problems)
        };
        format!(
            "checked {} partition(s), {} segment(s), {} batch(es), {} byte(s): {verdict}, {} warning(s)",
            self.partitions, self.segments, self.batches, self.bytes, self.warnings
        )
    }
}

/// Checks the topic files, and that they and the partition directories agree: every
/// partition a topic file names has a directory, and every directory is named by one.
fn check_topics(
    out: &mut impl Write,
    report: &mut Report,
    dir: &Path,
    partitions: &BTreeMap<(String, u32), PathBuf>,
) -> anyhow::Result<()> {
    let topics_dir = inspect::topics_dir(dir);
    if !topics_dir.is_dir() {
        report.warning(
            out,
            format!(
                "{}: missing, so no topic is known (not a data directory of a brook store?)",
                topics_dir.display()
            ),
        )?;
        return Ok(());
    }
    // Topics whose file could not be read claim every directory of their name.
    let mut counts: BTreeMap<String, Option<u32>> = BTreeMap::new();
    for file in inspect::topic_files(dir)? {
        let count = match file.partitions {
            Ok(count) => count,
            Err(e) => {
                report.problem(
                    out,
                    format!("{e} (the store will not open until it is fixed)"),
                )?;
                None
            }
        };
        counts.insert(file.topic, count);
    }
    for (name, count) in &counts {
        for p in 0..count.unwrap_or(0) {
            if !partitions.contains_key(&(name.clone(), p)) {
                report.problem(
                    out,
                    format!(
                        "{}: missing, though topic {name:?} has {} partition(s) (the next open recreates it empty)",
                        inspect::partition_dir(dir, name, p).display(),
                        count.unwrap_or(0)
                    ),
                )?;
            }
        }
    }
    for ((topic, p), path) in partitions {
        let claimed = counts
            .get(topic)
            .is_some_and(|count| count.is_none_or(|n| *p < n));
        if !claimed {
            report.warning(
                out,
                format!(
                    "{}: no topic file claims it (a create or delete was interrupted); the next open removes it",
                    path.display()
                ),
            )?;
        }
    }
    Ok(())
}

fn check_partition(out: &mut impl Write, report: &mut Report, dir: &Path) -> anyhow::Result<()> {
    report.partitions += 1;
    // The small files recovery relies on: a damaged one is reported by the next open.
    for e in inspect::check_recovery_files(dir) {
        report.problem(out, e.to_string())?;
    }
    let segments = inspect::segment_files(dir)?;
    // The offset the next segment must start at: where the previous one ended.
    let mut expected_base: Option<u64> = None;
    for (i, segment) in segments.iter().enumerate() {
        let (base, path) = (&segment.base_offset, &segment.log);
        let is_last = i + 1 == segments.len();
        if let Some(expected) = expected_base {
            if *base < expected {
                report.problem(
                    out,
                    format!(
                        "{}: base offset {base} overlaps the previous segment, which ends at offset {expected}",
                        path.display()
                    ),
                )?;
            } else if *base > expected {
                report.warning(
                    out,
                    format!(
                        "{}: offsets {expected}..{base} are missing between this segment and the previous one",
                        path.display()
                    ),
                )?;
            }
        }
        expected_base = check_segment(out, report, segment, is_last)?;
    }
    Ok(())
}

/// Checks one segment's batches and indexes; returns the offset after its last batch, or
/// `None` when the segment is damaged (its true end is then unknown).
fn check_segment(
    out: &mut impl Write,
    report: &mut Report,
    segment: &SegmentFiles,
    is_last: bool,
) -> anyhow::Result<Option<u64>> {
    report.segments += 1;
    let path = &segment.log;
    let mut scanner = LogScanner::open(path, Some(segment.base_offset))?;
    report.bytes += scanner.file_len();
    let mut indexes = IndexCheck::open(segment, is_last)?;
    let mut next_offset = segment.base_offset;
    let mut damaged = false;
    scanner.walk(|event| -> anyhow::Result<()> {
        match event {
            SegmentEvent::Batch(batch) => {
                report.batches += 1;
                next_offset = batch.header.next_offset() as u64;
                indexes.on_batch(batch)?;
            }
            SegmentEvent::Damage(end) => {
                damaged = true;
                let text = format!("{}: {}", path.display(), describe_damage(end));
                match end {
                    ScanEnd::TornTail { position, .. } => {
                        indexes.on_damage(*position, None);
                        if is_last {
                            report.warning(out, format!("{text} (the next open truncates it)"))?
                        } else {
                            report.problem(
                                out,
                                format!("{text} (a rolled segment must end with a whole batch)"),
                            )?
                        }
                    }
                    ScanEnd::Corrupt {
                        position,
                        next_valid,
                        ..
                    } => {
                        indexes.on_damage(*position, Some(*next_valid));
                        report.problem(out, text)?
                    }
                    ScanEnd::Clean => {}
                }
            }
        }
        Ok(())
    })?;
    for finding in indexes.finish()? {
        match finding.severity {
            Severity::Problem => report.problem(out, finding.to_string())?,
            Severity::Warning => report.warning(out, finding.to_string())?,
        }
    }
    // After damage the offsets that follow are unknown: no claim about the next segment.
    Ok((!damaged).then_some(next_offset))
}
