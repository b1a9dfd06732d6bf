//! Opening a partition directory: what was left by a clean close is trusted, what was left by
//! a crash is verified, and damage is told apart from an interrupted write.
//!
//! The procedure:
//!
//! 1. Leftovers are cleared: temporary files, index files without a log, and segments wholly
//!    below the persisted log start (a crash between persisting the start and deleting them,
//!    or a start that moved into a segment that has rolled since).
//! 2. With a valid clean-shutdown marker (its log end agreeing with the files), nothing is
//!    walked. The marker is removed before anything else happens, so that a crash from then on
//!    is seen as one.
//! 3. Otherwise every batch after the checkpoint's recovery point is read and its header,
//!    CRC-32C and offset checked (the CRC walk). The first bad batch ends the walk, and then:
//!    - if no valid batch follows it anywhere (in its segment or a later one), it is a **torn
//!      tail**, an append the crash interrupted (cut short, or zero-filled by the filesystem):
//!      the segment is cut there and any later segment files removed;
//!    - if a valid batch follows it, or it is itself whole and valid but at the wrong offset,
//!      it is **corruption**: nothing is deleted, the log is readable up to it, the
//!      [`Corruption`] is reported and logged, and the log refuses appends (see
//!      `PartitionLog::append` for why) until `truncate_to` drops it.
//! 4. Every segment is opened; its indexes are checked and rebuilt from the log when wrong.
//!    The active segment's index entries past the recovery point are dropped and derived
//!    again from the log: only those before it were synced (before the checkpoint moved), so
//!    the others may be anything a crash left of unsynced writes, a torn entry pointing
//!    inside a batch among them. Its indexes are then synced, before step 5 vouches for them.
//! 5. The walked segments are fsynced (a crash may have left them in the page cache only) and
//!    the checkpoint moved to the end, so the next crash walks only what is new.
//!
//! Bytes before the recovery point are trusted: they were fsynced, and verified or written by
//! this code, when the point moved past them. Damage done to them since (a disk's bit rot) is
//! found when an index check trips on it (then it is corruption like any other), by
//! `brook log check`, or by the consumer's own CRC check; not by every open, since walking the
//! whole log would make each restart read every byte of every partition.

use std::path::{Path, PathBuf};

use crate::checkpoint::{self, Checkpoint, CheckpointFile, LogPosition};
use crate::cleaner::{self, CleanerCheckpoint};
use crate::config::LogConfig;
use crate::error::{LogError, Result};
use crate::fs::{FsRef, Open};
use crate::meta;
use crate::scan::{find_valid_batch, LogScanner, ScanEnd};
use crate::segment::{
    delete_segment_files, parse_segment_name, segment_file, Opening, Segment, INDEX_EXT, LOG_EXT,
    TIME_INDEX_EXT,
};
use crate::txn_index::TXN_INDEX_EXT;

/// What opening a log found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoveryReport {
    /// The last stop was a clean close: nothing was walked.
    pub clean: bool,
    /// Bytes of log CRC-walked.
    pub scanned_bytes: u64,
    /// Bytes of torn tail cut off.
    pub truncated_bytes: u64,
    /// Index files rebuilt from the log (or completed: entries added after the last one).
    pub rebuilt_indexes: usize,
    /// Segments removed: wholly below the log start, or past a torn tail.
    pub deleted_segments: usize,
    /// Damage the log cannot repair by itself: a bad batch with valid data after it, or
    /// damage in bytes the checkpoint (or a clean close) vouched for. The log ends before it
    /// and refuses appends until an operator truncates there.
    pub corruption: Option<Corruption>,
    /// What recovery repaired by design, each with its file and reason: what an unclean stop
    /// leaves (a torn tail, an index behind its log, leftover files) and is no loss.
    pub repairs: Vec<Repair>,
    /// Every copy of the checkpoint was damaged: the whole log was walked, and the log start
    /// fell back to the first segment (records deleted below an advanced start reappear).
    pub checkpoint_lost: Option<String>,
}

/// Something recovery put right, by design: see [`RecoveryReport::repairs`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repair {
    /// The file repaired (or removed).
    pub path: PathBuf,
    pub kind: RepairKind,
    /// Why, in the words of the check that found it.
    pub reason: String,
}

/// What kind of repair; see [`Repair`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RepairKind {
    /// An append cut short by the stop, past the recovery point: `bytes` cut at `position`.
    TailCut { position: u64, bytes: u64 },
    /// A segment's index files rebuilt, or completed with the entries not yet written.
    IndexRebuilt,
    /// A copy of the checkpoint torn or damaged; the other copy was used.
    CheckpointCopy,
    /// A file left by an interrupted operation (a temporary file, an index without its log,
    /// a segment below the log start, a segment after a torn tail) removed.
    LeftoverRemoved,
}

impl std::fmt::Display for Repair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self.kind {
            RepairKind::TailCut { position, bytes } => {
                format!("torn tail of {bytes} byte(s) at position {position} cut")
            }
            RepairKind::IndexRebuilt => "index rebuilt from the log".to_owned(),
            RepairKind::CheckpointCopy => "damaged checkpoint copy passed over".to_owned(),
            RepairKind::LeftoverRemoved => "leftover removed".to_owned(),
        };
        write!(f, "{}: {what}: {}", self.path.display(), self.reason)
    }
}

/// Where damage was found. The log is readable up to `offset`; the bytes from `position` of
/// `segment` on are left on disk untouched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corruption {
    /// The segment's log file.
    pub segment: PathBuf,
    /// File position of the bad batch.
    pub position: u64,
    /// The offset the bad batch should have started at.
    pub offset: u64,
    pub reason: String,
}

impl std::fmt::Display for Corruption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "corrupt batch in {} at file position {} (offset {}): {}",
            self.segment.display(),
            self.position,
            self.offset,
            self.reason
        )
    }
}

/// An opened log directory, ready for the partition log to take over.
pub(crate) struct Recovered {
    /// Open segments in offset order; the last one takes appends.
    pub segments: Vec<Segment>,
    pub log_start: u64,
    /// Where the next batch goes.
    pub end: LogPosition,
    /// Segment files after a corruption, kept on disk but not opened.
    pub beyond_corruption: Vec<u64>,
    pub checkpoint: Checkpoint,
    /// Where the next checkpoint is written.
    pub checkpoint_file: CheckpointFile,
    pub report: RecoveryReport,
    /// What the cleaner has done to the log: which segments may have offset gaps.
    pub cleaner: CleanerCheckpoint,
}

impl Recovered {
    /// What an offline partition holds: one placeholder segment, nothing read from disk
    /// (see `PartitionLog::offline`).
    pub(crate) fn unavailable(fs: &FsRef, dir: &Path, reason: &str) -> Self {
        let end = LogPosition {
            offset: 0,
            segment: 0,
            position: 0,
        };
        Self {
            segments: vec![Segment::unavailable(fs, dir, reason)],
            log_start: 0,
            end,
            beyond_corruption: Vec::new(),
            checkpoint: Checkpoint {
                log_start: 0,
                recovery_point: end,
            },
            checkpoint_file: CheckpointFile::detached(dir),
            report: RecoveryReport::default(),
            cleaner: CleanerCheckpoint::default(),
        }
    }
}

/// Opens (creating if needed) the log directory `dir` as the module doc describes.
pub(crate) fn recover(fs: &FsRef, dir: &Path, config: &LogConfig) -> Result<Recovered> {
    ensure_dir(fs, dir)?;
    let mut report = RecoveryReport::default();
    // A clean's swap is finished or rolled back before the segments are listed.
    cleaner::recover_swap(&**fs, dir)?;
    let cleaned = cleaner::load_checkpoint(&**fs, dir);
    let mut bases = list_segments(fs, dir)?;
    let (checkpoint_file, checkpoint) = read_checkpoint(fs, dir, &mut report)?;
    let marker = checkpoint::read_clean_marker(&**fs, dir).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "ignoring an unreadable clean-shutdown marker");
        None
    });
    if marker.is_some() {
        checkpoint::remove_clean_marker(&**fs, dir)?;
    }
    let mut log_start = checkpoint.map_or(0, |c| c.log_start);

    if bases.is_empty() {
        Segment::create(fs, dir, log_start, config)?;
        meta::sync_dir_in(&**fs, dir)?;
        bases.push(log_start);
    }
    while bases.len() > 1 && bases[1] <= log_start {
        delete_segment_files(&**fs, dir, bases.remove(0))?;
        report.deleted_segments += 1;
    }
    log_start = log_start.max(bases[0]);

    if let Some(log_end) = marker {
        // A clean close synced every index: all of their entries are trusted.
        match open_all(fs, dir, &bases, None, u64::MAX, &cleaned, config) {
            Ok((segments, rebuilt)) if end_of(&segments).offset == log_end => {
                report.clean = true;
                report.rebuilt_indexes = rebuilt;
                return finish(
                    fs,
                    dir,
                    segments,
                    log_start,
                    Vec::new(),
                    checkpoint,
                    checkpoint_file,
                    report,
                )
                .map(|r| Recovered {
                    cleaner: cleaned,
                    ..r
                });
            }
            Ok(_) => tracing::warn!("the clean-shutdown marker disagrees with the log; walking it"),
            Err(e) => tracing::warn!(error = %e, "a cleanly closed log does not open; walking it"),
        }
    }

    let start = walk_start(fs, dir, &bases, checkpoint)?;
    let trusted = checkpoint.map(|c| c.recovery_point);
    let found = walk(trusted, fs, dir, &mut bases, start, &cleaned, &mut report)?;
    let (cut, mut beyond) = match found {
        Found::Clean => (None, Vec::new()),
        Found::Corrupt(index, corruption) => {
            let position = corruption.position;
            tracing::error!(
                %corruption,
                "the log holds damaged data followed by valid batches; it is readable up to \
                 the damage and refuses appends until truncated there"
            );
            report.corruption = Some(corruption);
            let beyond = bases.split_off(index + 1);
            (Some(position), beyond)
        }
    };
    // The active segment's index entries were synced up to the recovery point, if it lies
    // in that segment (see `Opening::Active`); the rest are derived again from the log.
    let synced_in = |base: u64| {
        trusted
            .filter(|t| t.segment == base)
            .map_or(0, |t| t.position)
    };
    let (segments, rebuilt) =
        open_to_damage(&mut bases, &mut beyond, cut, &mut report, |bases, cut| {
            let last = *bases.last().expect("a log always has a segment");
            open_all(fs, dir, bases, cut, synced_in(last), &cleaned, config)
        })?;
    report.rebuilt_indexes += rebuilt;
    for segment in segments.iter().skip(start.index) {
        segment.sync_data()?;
    }
    meta::sync_dir_in(&**fs, dir)?;
    check_reaches(trusted, &segments, &mut report);
    finish(
        fs,
        dir,
        segments,
        log_start,
        beyond,
        checkpoint,
        checkpoint_file,
        report,
    )
    .map(|r| Recovered {
        cleaner: cleaned,
        ..r
    })
}

/// The checkpoint of the log in `dir`, with what was wrong with it in `report`.
fn read_checkpoint(
    fs: &FsRef,
    dir: &Path,
    report: &mut RecoveryReport,
) -> Result<(CheckpointFile, Option<Checkpoint>)> {
    let (file, read) = CheckpointFile::open(&**fs, dir)?;
    if read.checkpoint.is_none() && !read.damaged.is_empty() {
        let reasons: Vec<String> = read.damaged.iter().map(ToString::to_string).collect();
        let lost = format!(
            "{}; walking the whole log, and the log start falls back to the first segment",
            reasons.join("; ")
        );
        tracing::error!(dir = %dir.display(), reason = %lost, "every copy of the checkpoint is damaged");
        report.checkpoint_lost = Some(lost);
    } else {
        for damage in read.damaged {
            let (path, reason) = match damage {
                LogError::BadMetaFile { path, reason, .. } => (path, reason),
                other => (dir.join(checkpoint::CHECKPOINT_FILE), other.to_string()),
            };
            tracing::warn!(file = %path.display(), %reason, "a damaged checkpoint copy (a torn write?); using the other");
            report.repairs.push(Repair {
                path,
                kind: RepairKind::CheckpointCopy,
                reason,
            });
        }
    }
    Ok((file, read.checkpoint))
}

/// Opens the segments in `bases` with `open` (the last one cut at `cut`), moving the end back
/// to the first damage the opening meets (an index check tripping over a bad batch, a segment
/// that does not start where the one before ends): that damage becomes the reported
/// corruption if it comes before the one already found, the segments after it are kept on
/// disk but not opened (`beyond`), and the opening is tried again up to it. So a damaged
/// partition opens, readable up to its first damage, rather than failing.
fn open_to_damage(
    bases: &mut Vec<u64>,
    beyond: &mut Vec<u64>,
    mut cut: Option<u64>,
    report: &mut RecoveryReport,
    mut open: impl FnMut(&[u64], Option<u64>) -> Result<(Vec<Segment>, usize)>,
) -> Result<(Vec<Segment>, usize)> {
    loop {
        let error = match open(bases, cut) {
            Ok(opened) => return Ok(opened),
            Err(error) => error,
        };
        let LogError::Corrupt {
            segment,
            position,
            offset,
            reason,
        } = error
        else {
            return Err(error);
        };
        let index = bases
            .iter()
            .position(|b| crate::inspect::segment_base_offset(&segment) == Some(*b));
        let last = bases.len() - 1;
        let earlier = |index: usize| index < last || cut.is_none_or(|c| position < c);
        let Some(index) = index.filter(|&i| earlier(i)) else {
            // Nowhere earlier to stop: the error stands.
            return Err(LogError::Corrupt {
                segment,
                position,
                offset,
                reason,
            });
        };
        let corruption = Corruption {
            segment,
            position,
            offset,
            reason,
        };
        tracing::error!(%corruption, "damaged data; the log is readable up to it and refuses appends until truncated there");
        report.corruption = Some(corruption);
        let mut later = if position == 0 && index > 0 {
            // The segment itself does not fit: the log ends with the one before, whole.
            cut = None;
            bases.split_off(index)
        } else {
            cut = Some(position);
            bases.split_off(index + 1)
        };
        later.append(beyond);
        *beyond = later;
    }
}

/// Assembles the result and moves the checkpoint to the end, unless it is there already or
/// the log is corrupt (a recovery point moved back to the damage would let the next open
/// take the damage for a torn tail).
#[allow(clippy::too_many_arguments)]
fn finish(
    fs: &FsRef,
    dir: &Path,
    segments: Vec<Segment>,
    log_start: u64,
    beyond_corruption: Vec<u64>,
    old: Option<Checkpoint>,
    mut checkpoint_file: CheckpointFile,
    report: RecoveryReport,
) -> Result<Recovered> {
    let end = end_of(&segments);
    let moved = Checkpoint {
        log_start,
        recovery_point: end,
    };
    let checkpoint = match old {
        Some(old) if report.corruption.is_some() => old,
        _ => {
            if old != Some(moved) {
                checkpoint_file.write(&**fs, &moved)?;
            }
            moved
        }
    };
    let _ = dir;
    Ok(Recovered {
        segments,
        log_start,
        end,
        beyond_corruption,
        checkpoint,
        checkpoint_file,
        report,
        cleaner: CleanerCheckpoint::default(),
    })
}

/// Damage the files themselves do not show: the log ends before the point the checkpoint says
/// it was synced to (a segment cut short at a batch boundary, or missing). Corruption at the
/// end of what is there.
fn check_reaches(trusted: Option<LogPosition>, segments: &[Segment], report: &mut RecoveryReport) {
    let Some(point) = trusted else {
        return;
    };
    let end = end_of(segments);
    if report.corruption.is_some() || end.offset >= point.offset {
        return;
    }
    let last = segments.last().expect("a log always has a segment");
    let corruption = Corruption {
        segment: last.log_path().to_path_buf(),
        position: end.position,
        offset: end.offset,
        reason: format!(
            "the log ends at offset {} but the checkpoint says it was synced up to offset {} \
             (position {} of segment {}): a segment file is missing or was cut short",
            end.offset, point.offset, point.position, point.segment
        ),
    };
    tracing::error!(%corruption, "acknowledged data is missing");
    report.corruption = Some(corruption);
}

fn end_of(segments: &[Segment]) -> LogPosition {
    let last = segments.last().expect("a log always has a segment");
    LogPosition {
        offset: last.next_offset(),
        segment: last.base_offset(),
        position: last.size(),
    }
}

fn ensure_dir(fs: &FsRef, dir: &Path) -> Result<()> {
    crate::fs::create_dir_durably(&**fs, dir).map_err(|e| LogError::io(dir, e))
}

/// The base offsets of the segments in `dir`, sorted; removes leftovers on the way.
fn list_segments(fs: &FsRef, dir: &Path) -> Result<Vec<u64>> {
    let mut logs = Vec::new();
    let mut indexes = Vec::new();
    for entry in fs.read_dir(dir).map_err(|e| LogError::io(dir, e))? {
        let Some(name) = entry.name.to_str() else {
            continue;
        };
        if let Some(base) = parse_segment_name(name, LOG_EXT) {
            logs.push(base);
        } else if let Some(base) = parse_segment_name(name, INDEX_EXT)
            .or_else(|| parse_segment_name(name, TIME_INDEX_EXT))
            .or_else(|| parse_segment_name(name, TXN_INDEX_EXT))
        {
            indexes.push((base, entry.path));
        } else if name.ends_with(".tmp") {
            // An interrupted atomic replace (meta::write): the old file is still in place.
            fs.remove_file(&entry.path)
                .map_err(|e| LogError::io(&entry.path, e))?;
        }
    }
    logs.sort_unstable();
    for (base, path) in indexes {
        if logs.binary_search(&base).is_err() {
            // An interrupted segment deletion removed the log first.
            fs.remove_file(&path).map_err(|e| LogError::io(&path, e))?;
        }
    }
    Ok(logs)
}

/// Opens every segment in `bases`; the last takes appends, its index entries trusted as
/// synced before file position `indexes_synced_to`. `cut`: the last segment's valid bytes end
/// there (a corruption), instead of at the end of its file.
fn open_all(
    fs: &FsRef,
    dir: &Path,
    bases: &[u64],
    cut: Option<u64>,
    indexes_synced_to: u64,
    cleaned: &CleanerCheckpoint,
    config: &LogConfig,
) -> Result<(Vec<Segment>, usize)> {
    let mut segments: Vec<Segment> = Vec::with_capacity(bases.len());
    let mut rebuilt = 0;
    for (i, &base) in bases.iter().enumerate() {
        let last = i + 1 == bases.len();
        let path = segment_file(dir, base, LOG_EXT);
        let len = match cut {
            Some(position) if last => position,
            _ => fs.metadata(&path).map_err(|e| LogError::io(&path, e))?.len,
        };
        let gaps = cleaned.may_have_gaps(base);
        let opening = if last {
            Opening::Active { indexes_synced_to }
        } else {
            Opening::Sealed
        };
        let (segment, n) = Segment::open(fs, dir, base, len, opening, gaps, config)?;
        if let Some(prev) = segments.last() {
            // A cleaned segment may end before the next one begins (its last batches went).
            let prev_gaps = cleaned.may_have_gaps(prev.base_offset());
            if prev.next_offset() > base || (!prev_gaps && prev.next_offset() != base) {
                return Err(LogError::Corrupt {
                    segment: path,
                    position: 0,
                    offset: prev.next_offset(),
                    reason: format!(
                        "the segment starts at offset {base} but the one before ends at {}",
                        prev.next_offset()
                    ),
                });
            }
        }
        rebuilt += n;
        segments.push(segment);
    }
    Ok((segments, rebuilt))
}

/// Where the CRC walk begins: segment `index` of the list, at `position`, where offset
/// `offset` starts.
#[derive(Debug, Clone, Copy)]
struct WalkStart {
    index: usize,
    position: u64,
    offset: u64,
}

fn walk_start(
    fs: &FsRef,
    dir: &Path,
    bases: &[u64],
    checkpoint: Option<Checkpoint>,
) -> Result<WalkStart> {
    let from_start = WalkStart {
        index: 0,
        position: 0,
        offset: bases[0],
    };
    let Some(point) = checkpoint.map(|c| c.recovery_point) else {
        return Ok(from_start);
    };
    let Some(index) = bases.iter().position(|b| *b >= point.segment) else {
        // The checkpoint names a segment past every file: trust none of them.
        return Ok(from_start);
    };
    if bases[index] != point.segment {
        return Ok(WalkStart {
            index,
            position: 0,
            offset: bases[index],
        });
    }
    let path = segment_file(dir, point.segment, LOG_EXT);
    let len = fs.metadata(&path).map_err(|e| LogError::io(&path, e))?.len;
    if point.position > len {
        tracing::warn!(
            segment = %path.display(),
            "the recovery point is past the end of its segment; walking the segment"
        );
        return Ok(WalkStart {
            index,
            position: 0,
            offset: bases[index],
        });
    }
    Ok(WalkStart {
        index,
        position: point.position,
        offset: point.offset,
    })
}

enum Found {
    Clean,
    /// Corruption in segment `bases[index]`.
    Corrupt(usize, Corruption),
}

/// CRC-walks from `start` to the end of the last segment (with [`LogScanner`]), truncating a
/// torn tail (which may remove later segments from `bases`) or reporting corruption.
fn walk(
    trusted: Option<LogPosition>,
    fs: &FsRef,
    dir: &Path,
    bases: &mut Vec<u64>,
    start: WalkStart,
    cleaned: &CleanerCheckpoint,
    report: &mut RecoveryReport,
) -> Result<Found> {
    let mut position = start.position;
    let mut offset = start.offset;
    for index in start.index..bases.len() {
        let path = segment_file(dir, bases[index], LOG_EXT);
        let corrupt = |position, offset, reason| {
            let corruption = Corruption {
                segment: path.clone(),
                position,
                offset,
                reason,
            };
            Ok(Found::Corrupt(index, corruption))
        };
        // A cleaned segment may end before the next begins, and begin after its name.
        let prev_gaps = index > 0 && cleaned.may_have_gaps(bases[index - 1]);
        if !prev_gaps && leftover_of_truncation(trusted, index > start.index, bases[index], offset)
        {
            tracing::warn!(segment = %path.display(), "removing segments a crash left behind a truncation");
            drop_segments(
                fs,
                dir,
                bases,
                index,
                "left behind by an interrupted truncation",
                report,
            )?;
            return Ok(Found::Clean);
        }
        if position == 0 && (bases[index] < offset || (bases[index] > offset && !prev_gaps)) {
            let reason = format!(
                "the segment is named for offset {} but the log continues at {offset}",
                bases[index]
            );
            return corrupt(0, offset, reason);
        }
        if position == 0 {
            offset = bases[index];
        }
        let mut scanner = LogScanner::open_in(&**fs, &path, position, Some(offset))?
            .with_gaps(cleaned.may_have_gaps(bases[index]));
        while let Some(batch) = scanner.next_batch()? {
            report.scanned_bytes += batch.header.total_len() as u64;
            offset = batch.header.next_offset() as u64;
        }
        match scanner.end().cloned() {
            None | Some(ScanEnd::Clean) => position = 0,
            Some(ScanEnd::Corrupt {
                position, reason, ..
            }) => return corrupt(position, offset, reason),
            Some(ScanEnd::TornTail {
                position, reason, ..
            }) => {
                let len = scanner.file_len();
                // Bytes the checkpoint vouches for were synced whole: damage there is not an
                // append cut short, whatever follows it.
                if let Some(point) = trusted.filter(|t| {
                    bases[index] < t.segment || (bases[index] == t.segment && position < t.position)
                }) {
                    let reason = format!(
                        "{reason}; but the checkpoint says the log was synced up to offset {} \
                         (position {} of segment {})",
                        point.offset, point.position, point.segment
                    );
                    return corrupt(position, offset, reason);
                }
                if valid_batch_from(fs, dir, bases, index, position)? {
                    return corrupt(position, offset, reason);
                }
                tracing::warn!(
                    segment = %path.display(),
                    position,
                    %reason,
                    "cutting a torn tail left by an unclean stop"
                );
                drop(scanner);
                report.repairs.push(Repair {
                    path: path.clone(),
                    kind: RepairKind::TailCut {
                        position,
                        bytes: len - position,
                    },
                    reason,
                });
                cut_tail(fs, dir, bases, index, position, len, report)?;
                return Ok(Found::Clean);
            }
        }
    }
    Ok(Found::Clean)
}

/// Whether the segment at `base`, met by a walk that has just ended a segment at `offset`
/// (`after_walked`), is a leftover of a truncation a crash interrupted: it starts past where
/// the log now ends, and after the recovery point. A roll persists the recovery point at the
/// new segment's start before anything is appended there, so a later segment with the point
/// before it exists only because a truncation moved the point back and did not get to remove
/// it. (A gap with the point beyond it is damage, reported as corruption.)
fn leftover_of_truncation(
    trusted: Option<LogPosition>,
    after_walked: bool,
    base: u64,
    offset: u64,
) -> bool {
    after_walked && base > offset && trusted.is_some_and(|t| t.segment < base)
}

/// Whether a valid batch (whole, CRC good) starts at or after `from` in segment
/// `bases[index]`, or anywhere in a later segment. At `from` itself too: a whole, valid batch
/// at the wrong offset is damage, not an interrupted write.
fn valid_batch_from(
    fs: &FsRef,
    dir: &Path,
    bases: &[u64],
    index: usize,
    from: u64,
) -> Result<bool> {
    for (i, &base) in bases.iter().enumerate().skip(index) {
        let path = segment_file(dir, base, LOG_EXT);
        let file = fs
            .open(&path, Open::Read)
            .map_err(|e| LogError::io(&path, e))?;
        let len = file.len().map_err(|e| LogError::io(&path, e))?;
        let start = if i == index { from } else { 0 };
        if find_valid_batch(&*file, start, len)
            .map_err(|e| LogError::io(&path, e))?
            .is_some()
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Cuts segment `bases[index]` (of `len` bytes) at `position` and removes every later one.
fn cut_tail(
    fs: &FsRef,
    dir: &Path,
    bases: &mut Vec<u64>,
    index: usize,
    position: u64,
    len: u64,
    report: &mut RecoveryReport,
) -> Result<()> {
    let path = segment_file(dir, bases[index], LOG_EXT);
    let file = fs
        .open(&path, Open::Write)
        .map_err(|e| LogError::io(&path, e))?;
    file.set_len(position)
        .and_then(|()| file.sync_data())
        .map_err(|e| LogError::io(&path, e))?;
    report.truncated_bytes += len - position;
    drop_segments(fs, dir, bases, index + 1, "after a torn tail", report)
}

/// Removes segments `bases[from..]` (counted as cut bytes, each a repair saying `why`), and
/// makes their removal durable.
fn drop_segments(
    fs: &FsRef,
    dir: &Path,
    bases: &mut Vec<u64>,
    from: usize,
    why: &str,
    report: &mut RecoveryReport,
) -> Result<()> {
    for base in bases.split_off(from) {
        let later = segment_file(dir, base, LOG_EXT);
        let len = fs.metadata(&later).map_or(0, |m| m.len);
        report.truncated_bytes += len;
        report.repairs.push(Repair {
            path: later,
            kind: RepairKind::LeftoverRemoved,
            reason: format!("a segment of {len} byte(s) {why}"),
        });
        delete_segment_files(&**fs, dir, base)?;
        report.deleted_segments += 1;
    }
    meta::sync_dir_in(&**fs, dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::tests::test_batch;
    use crate::{Durability, LogError, PartitionLog};

    const TS: i64 = 1_700_000_000_000;

    fn config() -> LogConfig {
        LogConfig {
            segment_bytes_max: 2048,
            index_interval_bytes: 128,
            index_bytes_max: 1024,
            retention_ms_max: None,
            durability: Durability::None,
            ..LogConfig::default()
        }
    }

    /// A crashed log of `n` one-record batches; their (segment base, position, len) by offset.
    fn crashed(dir: &Path, n: usize) -> Vec<(u64, u64, u64)> {
        let log = PartitionLog::open(dir, config()).expect("open");
        for i in 0..n {
            log.append(&mut test_batch(1, 60, TS + i as i64))
                .expect("append");
        }
        drop(log);
        let mut placed = Vec::new();
        for base in list_segments(&crate::fs::real(), dir).expect("ls") {
            let path = segment_file(dir, base, LOG_EXT);
            let mut scanner = LogScanner::open(&path, Some(base)).expect("scan");
            while let Some(b) = scanner.next_batch().expect("batch") {
                placed.push((base, b.position, b.header.total_len() as u64));
            }
        }
        assert_eq!(placed.len(), n);
        placed
    }

    fn flip(path: &Path, at: u64) {
        let mut bytes = std::fs::read(path).expect("read");
        bytes[at as usize] ^= 0x10;
        std::fs::write(path, bytes).expect("write");
    }

    #[test]
    fn corruption_is_reported_kept_and_repaired_only_by_truncation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let placed = crashed(dir.path(), 40);
        // Damage the first batch of the last segment (after the recovery point, which the
        // last roll moved to its start), with valid batches after it.
        let bad = placed
            .iter()
            .position(|p| p.0 == placed[39].0)
            .expect("the last segment");
        assert!(bad < 38, "valid batches follow");
        let (base, position, _) = placed[bad];
        let path = segment_file(dir.path(), base, LOG_EXT);
        flip(&path, position + 70);
        let files_before = list_segments(&crate::fs::real(), dir.path()).expect("ls");

        let log = PartitionLog::open(dir.path(), config()).expect("open");
        let corruption = log.recovery().corruption.clone().expect("reported");
        assert_eq!(
            (corruption.segment.clone(), corruption.position),
            (path, position)
        );
        let bad = bad as u64;
        assert_eq!(corruption.offset, bad);
        assert_eq!(log.log_end_offset(), bad);
        assert!(log.is_poisoned());
        assert!(matches!(
            log.append(&mut test_batch(1, 1, TS)),
            Err(LogError::ReadOnly { offset, .. }) if offset == bad
        ));
        let before = placed[bad as usize - 1].2 as usize;
        assert_eq!(log.read(bad - 1, 1).expect("readable").len(), before);
        assert!(log.read(bad, 1).expect("at the end").is_empty());
        log.close().expect("close");
        drop(log);
        assert_eq!(
            list_segments(&crate::fs::real(), dir.path()).expect("ls"),
            files_before,
            "nothing deleted"
        );

        // Reported again on the next open: the close wrote no clean marker.
        let log = PartitionLog::open(dir.path(), config()).expect("open");
        assert!(log.recovery().corruption.is_some());
        let segments = log.segment_count();
        log.truncate_to(bad).expect("repair");
        assert!(!log.is_poisoned());
        assert_eq!(log.segment_count(), segments);
        let info = log.append(&mut test_batch(1, 1, TS)).expect("append");
        assert_eq!(info.base_offset, bad);
        log.close().expect("close");
        drop(log);
        let log = PartitionLog::open(dir.path(), config()).expect("open");
        assert!(log.recovery().clean);
        assert_eq!(log.log_end_offset(), bad + 1);
    }

    #[test]
    fn a_torn_tail_is_cut_and_a_crash_walks_from_the_checkpoint() {
        let dir = tempfile::tempdir().expect("tempdir");
        let placed = crashed(dir.path(), 40);
        let (base, position, len) = *placed.last().expect("batches");
        let path = segment_file(dir.path(), base, LOG_EXT);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open");
        file.set_len(position + len / 2).expect("tear");
        drop(file);
        let log = PartitionLog::open(dir.path(), config()).expect("open");
        let report = log.recovery().clone();
        assert!(!report.clean && report.corruption.is_none());
        assert_eq!(report.truncated_bytes, len / 2);
        // Only the active segment was walked: the rolls checkpointed the rest.
        assert!(report.scanned_bytes <= 2048, "{report:?}");
        assert_eq!(log.log_end_offset(), 39);
    }

    #[test]
    fn leftovers_are_cleared_and_segments_below_the_start_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = PartitionLog::open(dir.path(), config()).expect("open");
        for i in 0..40 {
            log.append(&mut test_batch(1, 60, TS + i)).expect("append");
        }
        let bases = list_segments(&crate::fs::real(), dir.path()).expect("ls");
        let saved: Vec<(PathBuf, Vec<u8>)> = bases[..2]
            .iter()
            .map(|b| segment_file(dir.path(), *b, LOG_EXT))
            .map(|p| (p.clone(), std::fs::read(&p).expect("read")))
            .collect();
        log.advance_log_start(bases[2]).expect("advance");
        log.close().expect("close");
        drop(log);
        // A crash between persisting the start and deleting the segments below it.
        for (path, bytes) in &saved {
            std::fs::write(path, bytes).expect("resurrect");
        }
        std::fs::write(segment_file(dir.path(), 999_999, INDEX_EXT), b"orphan").expect("orphan");
        std::fs::write(dir.path().join("checkpoint.tmp"), b"half").expect("tmp");

        let log = PartitionLog::open(dir.path(), config()).expect("open");
        assert_eq!(log.recovery().deleted_segments, 2);
        assert_eq!(log.log_start_offset(), bases[2]);
        assert!(!segment_file(dir.path(), 999_999, INDEX_EXT).exists());
        assert!(!dir.path().join("checkpoint.tmp").exists());
        assert_eq!(
            list_segments(&crate::fs::real(), dir.path()).expect("ls"),
            bases[2..]
        );
    }

    #[test]
    fn damage_before_the_recovery_point_found_by_the_index_check_is_corruption_too() {
        let dir = tempfile::tempdir().expect("tempdir");
        let placed = crashed(dir.path(), 40);
        // The last batch of the first segment: its length now claims the rest of the file.
        let last_of_first = placed
            .iter()
            .rposition(|p| p.0 == 0)
            .expect("first segment");
        let (_, position, _) = placed[last_of_first];
        let path = segment_file(dir.path(), 0, LOG_EXT);
        flip(&path, position + 9);
        let segments = list_segments(&crate::fs::real(), dir.path())
            .expect("ls")
            .len();

        let log = PartitionLog::open(dir.path(), config()).expect("open");
        let corruption = log.recovery().corruption.clone().expect("reported");
        let bad = last_of_first as u64;
        assert_eq!((corruption.segment, corruption.position), (path, position));
        assert_eq!(corruption.offset, bad);
        assert_eq!(log.log_end_offset(), bad);
        assert_eq!(
            log.segment_count(),
            1,
            "later segments are kept on disk, not opened"
        );
        drop(log);
        assert_eq!(
            list_segments(&crate::fs::real(), dir.path())
                .expect("ls")
                .len(),
            segments
        );

        let log = PartitionLog::open(dir.path(), config()).expect("open");
        log.truncate_to(bad).expect("repair");
        assert_eq!(
            list_segments(&crate::fs::real(), dir.path()).expect("ls"),
            vec![0]
        );
        let info = log.append(&mut test_batch(1, 1, TS)).expect("append");
        assert_eq!(info.base_offset, bad);
    }

    fn cut_end(path: &Path, bytes: u64) {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .expect("open");
        let len = file.metadata().expect("meta").len();
        file.set_len(len - bytes).expect("cut");
    }

    /// The case: acknowledged, checkpointed records are never dropped as a torn tail.
    #[test]
    fn a_cut_tail_of_a_cleanly_closed_log_is_corruption_and_stays_on_disk() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = PartitionLog::open(dir.path(), config()).expect("open");
        for i in 0..10 {
            log.append(&mut test_batch(1, 60, TS + i)).expect("append");
        }
        log.close().expect("close");
        drop(log);
        let path = segment_file(dir.path(), 0, LOG_EXT);
        cut_end(&path, 10);
        let len = std::fs::metadata(&path).expect("meta").len();
        for _ in 0..2 {
            // Reported on every open (the recovery point stays past the damage), cut by none.
            let log = PartitionLog::open(dir.path(), config()).expect("open");
            let corruption = log.recovery().corruption.clone().expect("reported");
            assert_eq!(corruption.offset, 9, "{corruption}");
            assert!(
                corruption.reason.contains("synced up to offset 10"),
                "{corruption}"
            );
            assert_eq!(log.log_end_offset(), 9);
            assert!(log.is_poisoned());
            assert!(!log.read(8, 1).expect("readable up to it").is_empty());
            log.close().expect("close");
            assert_eq!(std::fs::metadata(&path).expect("meta").len(), len);
        }
        let log = PartitionLog::open(dir.path(), config()).expect("open");
        log.truncate_to(9).expect("the operator's repair");
        log.append(&mut test_batch(1, 1, TS))
            .expect("appends resume");
    }

    /// After a crash, damage in bytes the recovery point vouches for is corruption too; the
    /// tail past it is what a crash may tear.
    #[test]
    fn damage_below_a_crash_recovery_point_is_corruption() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sync = LogConfig {
            durability: Durability::Sync,
            ..config()
        };
        let log = PartitionLog::open(dir.path(), sync.clone()).expect("open");
        log.set_recovery_point_every(1);
        for i in 0..10 {
            log.append(&mut test_batch(1, 60, TS + i)).expect("append");
        }
        drop(log); // a crash: no clean marker, the recovery point at the last sync
        let path = segment_file(dir.path(), 0, LOG_EXT);
        cut_end(&path, 10);
        let log = PartitionLog::open(dir.path(), sync).expect("open");
        let report = log.recovery();
        assert_eq!(report.truncated_bytes, 0, "{report:?}");
        assert_eq!(report.corruption.as_ref().map(|c| c.offset), Some(9));
    }

    #[test]
    fn a_missing_last_segment_is_corruption_and_a_missing_middle_one_too() {
        let dir = tempfile::tempdir().expect("tempdir");
        let placed = crashed(dir.path(), 60);
        let bases = list_segments(&crate::fs::real(), dir.path()).expect("ls");
        assert!(bases.len() >= 4);
        // Synced into the last segment, and the recovery point moved with the syncs.
        let sync = LogConfig {
            durability: Durability::Sync,
            ..config()
        };
        let log = PartitionLog::open(dir.path(), sync.clone()).expect("open");
        log.set_recovery_point_every(1);
        log.append(&mut test_batch(1, 60, TS)).expect("append");
        drop(log);
        let last = *list_segments(&crate::fs::real(), dir.path())
            .expect("ls")
            .last()
            .expect("segments");
        delete_segment_files(&crate::fs::RealFs, dir.path(), last).expect("rm");
        let log = PartitionLog::open(dir.path(), sync).expect("open");
        let corruption = log.recovery().corruption.clone().expect("reported");
        assert_eq!(corruption.offset, last, "{corruption}");
        assert!(corruption.reason.contains("missing"), "{corruption}");
        assert!(log.is_poisoned());
        drop(log);

        let dir = tempfile::tempdir().expect("tempdir");
        crashed(dir.path(), 60);
        let middle = bases[1];
        delete_segment_files(&crate::fs::RealFs, dir.path(), middle).expect("rm");
        let log = PartitionLog::open(dir.path(), config()).expect("open");
        let corruption = log.recovery().corruption.clone().expect("reported");
        assert_eq!(corruption.offset, middle, "{corruption}");
        assert_eq!(log.log_end_offset(), middle, "readable up to the gap");
        let before = placed.iter().take_while(|p| p.0 < middle).count() as u64;
        assert_eq!(before, middle);
        assert!(!log.read(middle - 1, 1).expect("read").is_empty());
        assert!(log.is_poisoned());
        assert_eq!(
            list_segments(&crate::fs::real(), dir.path())
                .expect("ls")
                .len(),
            bases.len() - 1,
            "the segments after the gap stay on disk"
        );
    }
}
