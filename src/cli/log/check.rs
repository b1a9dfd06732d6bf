//! `brook log check`: verifies every batch and index of every partition of a data directory,
//! and says what the next `brook serve` will do about what it finds.
//!
//! Read-only by design: files are opened for reading, nothing is repaired, and the data
//! directory's lock is not taken, so it may run beside a live broker. When a broker holds the
//! lock, a note says so: the active segments are then being written while they are read, and
//! their last batch may look torn for a moment.
//!
//! Two looks at each partition. Recovery's own code runs on a read-only overlay of the disk
//! ([`inspect::preview_open`]): what it would repair by design (a torn tail past the recovery
//! point, an index behind its log, a leftover file) is a `warning:` line saying what the next
//! open will do, and what it would fence (corruption, a lost checkpoint, a partition that
//! would not open) is an `error:`. Then every batch is CRC-checked and every index entry
//! checked, as recovery never does for bytes it trusts: damage found there that recovery
//! would not repair is an `error:` too (serve refuses to hand it out when a read meets it).
//! Wrong indexes are always warnings: they are derived data, rebuilt on the next open or
//! before their first use.
//!
//! Besides the segments it checks the topic files (each readable, each partition they name
//! present, each partition directory named by one) and the committed offsets file.
//!
//! The exit code is 1 exactly when something is reported that serve will not repair by itself:
//! corruption, a damaged topic file, offsets file or checkpoint, a missing partition.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use brook_log::inspect::{
    self, IndexCheck, LogScanner, OpenPreview, ScanEnd, SegmentEvent, SegmentFiles,
};
use brook_log::{LogConfig, LogStatus, RepairKind};

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
        check_offsets(&mut out, &mut report, dir)?;
        for ((topic, _), partition) in &partitions {
            check_partition(&mut out, &mut report, dir, topic, partition)?;
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
                    format!("{e} (the next open keeps the topic offline until it is restored)"),
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
        if claimed {
            continue;
        }
        match inspect::orphan_set_aside_path(path)? {
            None => report.warning(
                out,
                format!(
                    "{}: no topic file claims it and it holds no record (a create was interrupted); the next open removes it",
                    path.display()
                ),
            )?,
            Some(to) => report.warning(
                out,
                format!(
                    "{}: no topic file claims it, yet it holds records (a lost topic file, or an interrupted delete); the next open sets it aside as {} and never serves it: restore the topic file of {topic:?} to recover it, or remove the directory to reclaim the space",
                    path.display(),
                    to.display()
                ),
            )?,
        }
    }
    for ((topic, p), path) in inspect::set_aside_dirs(dir)? {
        writeln!(
            out,
            "note: {}: partition {p} of topic {topic:?}, set aside by an earlier open (no topic file claimed it), never served: restore the topic file and rename it to {} to recover it, or remove it to reclaim the space",
            path.display(),
            inspect::partition_dir(dir, &topic, p).display()
        )?;
    }
    Ok(())
}

/// Checks the broker's committed offsets file: a damaged copy is what a torn write leaves
/// (at most the last commit lost); both damaged fence the group offsets.
fn check_offsets(out: &mut impl Write, report: &mut Report, dir: &Path) -> anyhow::Result<()> {
    let check = brook_broker::check_offsets_file(dir)?;
    for damage in &check.damaged_copies {
        if check.fenced {
            report.problem(out, format!("{damage} (the next open fences every group's committed offsets until the file is restored or removed)"))?;
        } else {
            report.warning(
                out,
                format!("{damage} (the other copy is used: at most the last commit is lost)"),
            )?;
        }
    }
    Ok(())
}

fn check_partition(
    out: &mut impl Write,
    report: &mut Report,
    data_dir: &Path,
    topic: &str,
    dir: &Path,
) -> anyhow::Result<()> {
    report.partitions += 1;
    let config = inspect::topic_config(data_dir, topic, &LogConfig::default());
    let preview = inspect::preview_open(dir, config);
    let segments = inspect::segment_files(dir)?;
    // Segments a clean rewrote may skip offsets, inside and at their end.
    let cleaned_below = inspect::cleaned_below(dir);
    let mut explained = Explained::default();
    // The offset the next segment must start at: where the previous one ended.
    let mut expected_base: Option<u64> = None;
    let mut previous_cleaned = false;
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
            } else if *base > expected && !previous_cleaned {
                report.warning(
                    out,
                    format!(
                        "{}: offsets {expected}..{base} are missing between this segment and the previous one",
                        path.display()
                    ),
                )?;
            }
        }
        previous_cleaned = *base < cleaned_below;
        expected_base = check_segment(
            out,
            report,
            segment,
            is_last,
            previous_cleaned,
            &preview,
            &mut explained,
        )?;
    }
    report_preview(out, report, dir, &preview, &explained)
}

/// What a segment scan has already said of the preview's findings.
#[derive(Debug, Default)]
struct Explained {
    corruption: bool,
    cuts: Vec<(PathBuf, u64)>,
    indexes: Vec<PathBuf>,
}

/// What the next open does that the segment scans did not already say.
fn report_preview(
    out: &mut impl Write,
    report: &mut Report,
    dir: &Path,
    preview: &OpenPreview,
    explained: &Explained,
) -> anyhow::Result<()> {
    let will = |what: &str| format!("(the next open {what})");
    for repair in &preview.report.repairs {
        let line = match repair.kind {
            RepairKind::TailCut { position, .. } => {
                if explained.cuts.contains(&(repair.path.clone(), position)) {
                    continue;
                }
                format!("{repair} {}", will("cuts it"))
            }
            RepairKind::IndexRebuilt => {
                if explained
                    .indexes
                    .iter()
                    .any(|p| p.with_extension("log") == repair.path.with_extension("log"))
                {
                    continue;
                }
                format!("{repair} {}", will("rebuilds it"))
            }
            RepairKind::LeftoverRemoved => format!("{repair} {}", will("removes it")),
            RepairKind::CheckpointCopy => format!("{repair} {}", will("uses the other copy")),
            _ => repair.to_string(),
        };
        report.warning(out, line)?;
    }
    if let Some(lost) = &preview.report.checkpoint_lost {
        report.problem(
            out,
            format!(
                "{}: every checkpoint copy is damaged: {lost}",
                dir.display()
            ),
        )?;
    }
    match &preview.status {
        LogStatus::Offline { reason } => report.problem(
            out,
            format!(
                "{}: the next open keeps the partition offline: {reason}",
                dir.display()
            ),
        )?,
        LogStatus::ReadOnly { reason } if !explained.corruption => report.problem(
            out,
            format!(
                "{}: the next open keeps the partition read-only: {reason}",
                dir.display()
            ),
        )?,
        _ => {}
    }
    Ok(())
}

/// Checks one segment's batches and indexes; returns the offset after its last batch, or
/// `None` when the segment is damaged (its true end is then unknown). Damage the next open
/// repairs by design (per `preview`) is a warning; damage it fences, or does not see, an error.
#[allow(clippy::too_many_arguments)]
fn check_segment(
    out: &mut impl Write,
    report: &mut Report,
    segment: &SegmentFiles,
    is_last: bool,
    cleaned: bool,
    preview: &OpenPreview,
    explained: &mut Explained,
) -> anyhow::Result<Option<u64>> {
    report.segments += 1;
    let path = &segment.log;
    let mut scanner = LogScanner::open(path, Some(segment.base_offset))?.with_gaps(cleaned);
    report.bytes += scanner.file_len();
    let mut indexes = IndexCheck::open(segment, is_last)?;
    let mut next_offset = segment.base_offset;
    let mut damaged = false;
    let corruption = preview.report.corruption.as_ref();
    let fenced_here =
        |position: u64| corruption.is_some_and(|c| &c.segment == path && c.position == position);
    let cut_here = |position: u64| {
        preview.report.repairs.iter().any(|r| {
            &r.path == path
                && matches!(r.kind, RepairKind::TailCut { position: p, .. } if p == position)
        })
    };
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
                let (position, next_valid) = match end {
                    ScanEnd::TornTail { position, .. } => (*position, None),
                    ScanEnd::Corrupt {
                        position,
                        next_valid,
                        ..
                    } => (*position, Some(*next_valid)),
                    ScanEnd::Clean => return Ok(()),
                };
                indexes.on_damage(position, next_valid);
                if cut_here(position) {
                    explained.cuts.push((path.clone(), position));
                    report.warning(out, format!("{text} (the next open cuts it)"))?;
                } else if fenced_here(position) {
                    explained.corruption = true;
                    let status = match &preview.status {
                        LogStatus::ReadOnly { reason } => reason.clone(),
                        other => format!("{other:?}"),
                    };
                    report.problem(
                        out,
                        format!("{text}; the next open keeps the partition read-only: {status}"),
                    )?;
                } else {
                    report.problem(
                        out,
                        format!(
                            "{text} (in bytes recovery trusts: a read that meets it is refused)"
                        ),
                    )?;
                }
            }
        }
        Ok(())
    })?;
    for finding in indexes.finish()? {
        explained.indexes.push(finding.path.clone());
        report.warning(out, finding.to_string())?;
    }
    // After damage the offsets that follow are unknown: no claim about the next segment.
    Ok((!damaged).then_some(next_offset))
}
