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
//! 5. The walked segments are fsynced (a crash may have left them in the page cache only) and
//!    the checkpoint moved to the end, so the next crash walks only what is new.
//!
//! Bytes before the recovery point are trusted: they were fsynced, and verified or written by
//! this code, when the point moved past them. Damage done to them since (a disk's bit rot) is
//! found when an index check trips on it (then it is corruption like any other), by
//! `brook log check`, or by the consumer's own CRC check; not by every open, since walking the
//! whole log would make each restart read every byte of every partition.

use std::path::{Path, PathBuf};

use crate::checkpoint::{self, Checkpoint, LogPosition};
use crate::config::LogConfig;
use crate::error::{LogError, Result};
use crate::fs::{FsRef, Open};
use crate::meta;
use crate::scan::{find_valid_batch, LogScanner, ScanEnd};
use crate::segment::{
    delete_segment_files, parse_segment_name, segment_file, Segment, INDEX_EXT, LOG_EXT,
    TIME_INDEX_EXT,
};
use crate::txn_index::TXN_INDEX_EXT;

/// What opening a log found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The last stop was a clean close: nothing was walked.
    pub clean: bool,
    /// Bytes of log CRC-walked.
    pub scanned_bytes: u64,
    /// Bytes of torn tail cut off.
    pub truncated_bytes: u64,
    /// Index files rebuilt from the log.
    pub rebuilt_indexes: usize,
    /// Segments removed: wholly below the log start, or past a torn tail.
    pub deleted_segments: usize,
    /// A damaged batch with valid data after it: the log ends before it until repaired.
    pub corruption: Option<Corruption>,
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
    pub report: RecoveryReport,
}

/// Opens (creating if needed) the log directory `dir` as the module doc describes.
pub(crate) fn recover(fs: &FsRef, dir: &Path, config: &LogConfig) -> Result<Recovered> {
    ensure_dir(fs, dir)?;
    let mut report = RecoveryReport::default();
    let mut bases = list_segments(fs, dir)?;
    let checkpoint = checkpoint::read_checkpoint(&**fs, dir).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "ignoring an unreadable checkpoint; walking the whole log");
        None
    });
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
        match open_all(fs, dir, &bases, None, config) {
            Ok((segments, rebuilt)) if end_of(&segments).offset == log_end => {
                report.clean = true;
                report.rebuilt_indexes = rebuilt;
                return finish(fs, dir, segments, log_start, Vec::new(), checkpoint, report);
            }
            Ok(_) => tracing::warn!("the clean-shutdown marker disagrees with the log; walking it"),
            Err(e) => tracing::warn!(error = %e, "a cleanly closed log does not open; walking it"),
        }
    }

    let start = walk_start(fs, dir, &bases, checkpoint)?;
    let found = walk(fs, dir, &mut bases, start, &mut report)?;
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
    let (segments, rebuilt) = match open_all(fs, dir, &bases, cut, config) {
        Ok(opened) => opened,
        // Damage in bytes the checkpoint vouched for, found while checking an index.
        Err(LogError::Corrupt {
            segment,
            position,
            offset,
            reason,
        }) if report.corruption.is_none() => {
            let Some(index) = bases
                .iter()
                .position(|b| segment_file(dir, *b, LOG_EXT) == segment)
            else {
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
            tracing::error!(%corruption, "damaged data before the recovery point");
            report.corruption = Some(corruption);
            beyond = bases.split_off(index + 1);
            open_all(fs, dir, &bases, Some(position), config)?
        }
        Err(e) => return Err(e),
    };
    report.rebuilt_indexes += rebuilt;
    for segment in segments.iter().skip(start.index) {
        segment.sync_data()?;
    }
    meta::sync_dir_in(&**fs, dir)?;
    finish(fs, dir, segments, log_start, beyond, None, report)
}

/// Assembles the result and moves the checkpoint to the end, unless it is there already.
fn finish(
    fs: &FsRef,
    dir: &Path,
    segments: Vec<Segment>,
    log_start: u64,
    beyond_corruption: Vec<u64>,
    old: Option<Checkpoint>,
    report: RecoveryReport,
) -> Result<Recovered> {
    let end = end_of(&segments);
    let checkpoint = Checkpoint {
        log_start,
        recovery_point: end,
    };
    if old != Some(checkpoint) {
        checkpoint::write_checkpoint(&**fs, dir, &checkpoint)?;
    }
    Ok(Recovered {
        segments,
        log_start,
        end,
        beyond_corruption,
        checkpoint,
        report,
    })
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

/// Opens every segment in `bases`; the last takes appends. `cut`: the last segment's valid
/// bytes end there (a corruption), instead of at the end of its file.
fn open_all(
    fs: &FsRef,
    dir: &Path,
    bases: &[u64],
    cut: Option<u64>,
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
        let (segment, n) = Segment::open(fs, dir, base, len, last, config)?;
        if let Some(prev) = segments.last() {
            if prev.next_offset() != base {
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
    fs: &FsRef,
    dir: &Path,
    bases: &mut Vec<u64>,
    start: WalkStart,
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
        if position == 0 && bases[index] != offset {
            let reason = format!(
                "the segment is named for offset {} but the log continues at {offset}",
                bases[index]
            );
            return corrupt(0, offset, reason);
        }
        let mut scanner = LogScanner::open_in(&**fs, &path, position, Some(offset))?;
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
                cut_tail(fs, dir, bases, index, position, len, report)?;
                return Ok(Found::Clean);
            }
        }
    }
    Ok(Found::Clean)
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
    for base in bases.split_off(index + 1) {
        let later = segment_file(dir, base, LOG_EXT);
        report.truncated_bytes += fs.metadata(&later).map_or(0, |m| m.len);
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
            Err(LogError::Corrupt { offset, .. }) if offset == bad
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
}
