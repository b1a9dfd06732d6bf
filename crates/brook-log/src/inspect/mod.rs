//! Read-only inspection of a data directory's files, for the offline tools (`brook log dump`,
//! `brook log check`) and for tests that damage files on purpose.
//!
//! This is the storage engine's supported way to look at its files without opening them as a
//! log: it takes no lock, runs no recovery, writes nothing, and never allocates for a length
//! read from the disk. Everything a tool needs to walk a directory is here, in brook's own
//! terms (topics, partitions, segments, batches, index entries), so no tool re-derives a file
//! name or a format rule:
//!
//! - the layout: [`partition_dirs`], [`segment_files`], [`topic_files`] and the paths of each
//!   file ([`SegmentFiles`], [`topic_file`], [`partition_dir`]);
//! - the batches of one segment: [`LogScanner`] checks each one (shape, CRC-32C, offset
//!   sequence) and says where and why it stops ([`ScanEnd`]); [`LogScanner::walk`] goes on
//!   past each damaged place; [`BatchReader`] hands a checked batch's bytes over for decoding
//!   with [`crate::batch::records`];
//! - the indexes of one segment: [`IndexCheck`], fed the batches as a scan meets them;
//! - the small files: [`check_recovery_files`] (checkpoint, clean-shutdown marker), topic
//!   files through [`topic_files`], and [`lock_holder`] (is a broker running on it?);
//! - compaction: [`cleaned_below`] says which segments a clean may have rewritten, whose
//!   offsets may skip.
//! - what the next open would do: [`preview_open`] runs a partition's real recovery on a
//!   read-only overlay of the disk (every change it would make stays in memory), so a tool
//!   says exactly what `brook serve` will repair, report or fence; [`topic_config`] is the
//!   config a partition is opened with;
//! - the one change a tool makes, on a stopped broker's directory: [`truncate_partition`]
//!   (`brook log repair`).
//!
//! Positions are byte positions in a file; offsets are record offsets. Every finding names
//! the file it is about.

mod index_check;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::checkpoint;
use crate::config::LogConfig;
use crate::error::{LogError, Result};
use crate::fs::overlay::OverlayFs;
use crate::fs::{FileRef, Fs, Open, RealFs};
use crate::lock::DirLock;
use crate::log::{LogStatus, PartitionLog};
use crate::names::{parse_partition_dir, parse_set_aside_dir, partition_dir_name};
use crate::recovery::RecoveryReport;
use crate::segment::{parse_segment_name, segment_file, INDEX_EXT, LOG_EXT, TIME_INDEX_EXT};
use crate::store::{self, TOPICS_DIR};
use crate::topic::TopicMeta;

pub use crate::scan::{LogScanner, ScanEnd, ScannedBatch, SegmentEvent};
pub use index_check::{IndexCheck, IndexFinding, Severity};

/// Who holds `data_dir`'s lock, without taking it: `Some("pid .. on host ..")` while a broker
/// has it open, `None` when it is free (or was never opened).
pub fn lock_holder(data_dir: &Path) -> Result<Option<String>> {
    DirLock::holder(&RealFs, data_dir)
}

/// The directory of a partition: `<data>/<topic>-<partition>`.
pub fn partition_dir(data_dir: &Path, topic: &str, partition: u32) -> PathBuf {
    data_dir.join(partition_dir_name(topic, partition))
}

/// The partition directories of a data directory by `(topic, partition)`; other entries are
/// passed over.
pub fn partition_dirs(data_dir: &Path) -> Result<BTreeMap<(String, u32), PathBuf>> {
    Ok(dirs_named(data_dir, parse_partition_dir)?
        .into_iter()
        .collect())
}

/// What the next open does with `partition_dir` if no topic file claims it: `None` when it
/// holds no record (removed), else the path it is set aside to (the store's rule).
pub fn orphan_set_aside_path(partition_dir: &Path) -> Result<Option<PathBuf>> {
    store::orphan_set_aside_path(&RealFs, partition_dir)
}

/// The partition directories an earlier open set aside (no topic file claimed them, yet
/// they held records), by the `(topic, partition)` they held, sorted; never opened by the
/// store.
pub fn set_aside_dirs(data_dir: &Path) -> Result<Vec<((String, u32), PathBuf)>> {
    dirs_named(data_dir, parse_set_aside_dir)
}

/// The directories of `data_dir` whose names `parse` reads as a `(topic, partition)`, sorted.
fn dirs_named(
    data_dir: &Path,
    parse: fn(&str) -> Option<(&str, u32)>,
) -> Result<Vec<((String, u32), PathBuf)>> {
    let mut found = Vec::new();
    for entry in RealFs
        .read_dir(data_dir)
        .map_err(|e| LogError::io(data_dir, e))?
    {
        let Some((topic, partition)) = entry.name.to_str().and_then(parse) else {
            continue;
        };
        if entry.is_dir {
            found.push(((topic.to_owned(), partition), entry.path));
        }
    }
    found.sort();
    Ok(found)
}

/// The directory of the topic files, `<data>/topics`.
pub fn topics_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(TOPICS_DIR)
}

/// The topic file of `topic` in `data_dir`.
pub fn topic_file(data_dir: &Path, topic: &str) -> PathBuf {
    store::topic_file(data_dir, topic)
}

/// A topic file found in a data directory.
#[derive(Debug)]
pub struct TopicFile {
    /// The topic it is named after.
    pub topic: String,
    pub path: PathBuf,
    /// Its partition count, or why it cannot be read (the store refuses to open until it is
    /// fixed). `Ok(None)` when it vanished while being listed.
    pub partitions: Result<Option<u32>>,
}

/// Every topic file in `data_dir`'s topics directory, sorted by topic; other files there are
/// passed over. Fails when the directory cannot be listed (see [`topics_dir`]).
pub fn topic_files(data_dir: &Path) -> Result<Vec<TopicFile>> {
    let dir = topics_dir(data_dir);
    let mut files = Vec::new();
    for entry in RealFs.read_dir(&dir).map_err(|e| LogError::io(&dir, e))? {
        let path = entry.path;
        let Some(topic) = store::topic_of_file(&path) else {
            continue;
        };
        files.push(TopicFile {
            topic: topic.to_owned(),
            partitions: TopicMeta::read(&RealFs, &path).map(|meta| meta.map(|m| m.partitions)),
            path,
        });
    }
    files.sort_by(|a, b| a.topic.cmp(&b.topic));
    Ok(files)
}

/// Reads a partition's checkpoint and clean-shutdown marker, the small files recovery relies
/// on, and returns what is wrong with them (a missing file is not wrong).
pub fn check_recovery_files(partition_dir: &Path) -> Vec<LogError> {
    let checkpoint = match checkpoint::CheckpointFile::open(&RealFs, partition_dir) {
        Ok((_, read)) => read.damaged,
        Err(e) => vec![e],
    };
    let marker = checkpoint::read_clean_marker(&RealFs, partition_dir).err();
    checkpoint.into_iter().chain(marker).collect()
}

/// The offset below which a partition's segments may have been rewritten by a clean, so
/// that their offsets may skip (check them with [`LogScanner::with_gaps`]): 0 when nothing was
/// ever cleaned; every offset when the cleaner checkpoint is damaged (as recovery reads it).
pub fn cleaned_below(partition_dir: &Path) -> u64 {
    crate::cleaner::load_checkpoint(&RealFs, partition_dir).cleaned_below
}

/// The config a partition of `topic` is opened with: `defaults` with the overrides in the
/// topic's file (the defaults alone when the file cannot be read: an offline tool still
/// wants to look).
pub fn topic_config(data_dir: &Path, topic: &str, defaults: &LogConfig) -> LogConfig {
    match TopicMeta::read(&RealFs, &store::topic_file(data_dir, topic)) {
        Ok(Some(meta)) => meta.overrides.merged_over(defaults),
        _ => defaults.clone(),
    }
}

/// What the next open of a partition would find and do: see [`preview_open`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct OpenPreview {
    /// What recovery would find and repair.
    pub report: RecoveryReport,
    /// Whether the partition would serve.
    pub status: LogStatus,
    pub log_start_offset: u64,
    pub log_end_offset: u64,
}

/// Runs the recovery of the partition in `partition_dir` (opened with `config`) exactly as
/// the next real open would, on a read-only overlay of the disk: every change it would make
/// (a torn tail cut, an index rebuilt, a leftover removed) stays in memory, and nothing on
/// disk changes. A partition that would not open is reported offline, as the store would.
/// Safe beside a running broker (the overlay takes no lock), though its active segment may
/// then be caught mid-write.
pub fn preview_open(partition_dir: &Path, config: LogConfig) -> OpenPreview {
    let fs = OverlayFs::new();
    match PartitionLog::open_in(fs, partition_dir.to_path_buf(), config) {
        Ok(log) => OpenPreview {
            report: log.recovery().clone(),
            status: log.status(),
            log_start_offset: log.log_start_offset(),
            log_end_offset: log.log_end_offset(),
        },
        Err(e) => OpenPreview {
            report: RecoveryReport::default(),
            status: LogStatus::Offline {
                reason: e.to_string(),
            },
            log_start_offset: 0,
            log_end_offset: 0,
        },
    }
}

/// What [`truncate_partition`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Truncated {
    /// The log end before (at the damage, for a corrupt partition).
    pub log_end_before: u64,
    /// The log end after: `offset`, or the start of the batch holding it.
    pub log_end_after: u64,
    /// Whether appends had been refused for corruption (they are accepted again).
    pub was_read_only: bool,
}

/// Cuts partition `partition` of `topic` in the data directory `data_dir` back to `offset`
/// (every batch whose last offset is at or past it goes; see `PartitionLog::truncate_to`),
/// durably: what `brook log repair --truncate-to` does after corruption, dropping the damaged
/// batch and everything after it so that appends resume. Takes the directory's lock, so it
/// refuses while a broker runs on it; opens the partition with the config its topic has over
/// `defaults` (running the recovery any open runs) and closes it cleanly.
pub fn truncate_partition(
    data_dir: &Path,
    topic: &str,
    partition: u32,
    offset: u64,
    defaults: &LogConfig,
) -> Result<Truncated> {
    let _lock = DirLock::acquire(&RealFs, data_dir)?;
    let dir = partition_dir(data_dir, topic, partition);
    if !dir.is_dir() {
        return Err(LogError::UnknownPartition {
            topic: topic.to_owned(),
            partition,
        });
    }
    let log = PartitionLog::open(&dir, topic_config(data_dir, topic, defaults))?;
    let log_end_before = log.log_end_offset();
    let was_read_only = matches!(log.status(), LogStatus::ReadOnly { .. });
    log.truncate_to(offset)?;
    let log_end_after = log.log_end_offset();
    log.close()?;
    Ok(Truncated {
        log_end_before,
        log_end_after,
        was_read_only,
    })
}

/// The three files of one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentFiles {
    /// The offset of the segment's first batch, which its files are named after.
    pub base_offset: u64,
    /// `{base_offset:020}.log`: the batches.
    pub log: PathBuf,
    /// `{base_offset:020}.index`: the sparse offset index.
    pub index: PathBuf,
    /// `{base_offset:020}.timeindex`: the sparse time index.
    pub time_index: PathBuf,
}

impl SegmentFiles {
    /// The files of the segment `base_offset` in `partition_dir`.
    pub fn new(partition_dir: &Path, base_offset: u64) -> Self {
        Self {
            base_offset,
            log: segment_file(partition_dir, base_offset, LOG_EXT),
            index: segment_file(partition_dir, base_offset, INDEX_EXT),
            time_index: segment_file(partition_dir, base_offset, TIME_INDEX_EXT),
        }
    }
}

/// The base offset a segment's `.log` file is named after, if `path` is named
/// `{20 digits}.log`.
pub fn segment_base_offset(path: &Path) -> Option<u64> {
    parse_segment_name(path.file_name()?.to_str()?, LOG_EXT)
}

/// The segments of a partition directory (those with a `.log` file), sorted by base offset.
pub fn segment_files(partition_dir: &Path) -> Result<Vec<SegmentFiles>> {
    let mut bases = Vec::new();
    for entry in RealFs
        .read_dir(partition_dir)
        .map_err(|e| LogError::io(partition_dir, e))?
    {
        if let Some(base) = segment_base_offset(&entry.path) {
            bases.push(base);
        }
    }
    bases.sort_unstable();
    Ok(bases
        .into_iter()
        .map(|base| SegmentFiles::new(partition_dir, base))
        .collect())
}

/// Reads the bytes of batches a [`LogScanner`] of the same file has checked, to decode their
/// records.
#[derive(Debug)]
pub struct BatchReader {
    path: PathBuf,
    file: FileRef,
    len: u64,
}

impl BatchReader {
    /// Opens the `.log` file at `path` read-only.
    pub fn open(path: &Path) -> Result<Self> {
        let file = RealFs
            .open(path, Open::Read)
            .map_err(|e| LogError::io(path, e))?;
        let len = file.len().map_err(|e| LogError::io(path, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
            len,
        })
    }

    /// The whole batch `batch`. One that does not fit in the file (not from a scan of it) is
    /// refused before anything is allocated for it.
    pub fn read(&self, batch: &ScannedBatch) -> Result<Bytes> {
        let len = batch.header.total_len() as u64;
        if batch
            .position
            .checked_add(len)
            .is_none_or(|end| end > self.len)
        {
            return Err(LogError::Corrupt {
                segment: self.path.clone(),
                position: batch.position,
                offset: u64::try_from(batch.header.base_offset).unwrap_or(0),
                reason: format!(
                    "a batch of {len} bytes does not fit in the file's {} bytes",
                    self.len
                ),
            });
        }
        let bytes = self
            .file
            .read_vec_at(batch.position, batch.header.total_len())
            .map_err(|e| LogError::io(&self.path, e))?;
        Ok(bytes.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Durability, LogConfig, Store, TopicConfig};

    #[test]
    fn the_layout_of_a_store_is_found_as_it_writes_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let defaults = LogConfig {
            durability: Durability::None,
            index_bytes_max: 4096,
            ..LogConfig::default()
        };
        let store = Store::open(dir.path(), defaults).expect("open");
        store
            .create_topic("orders", 2, TopicConfig::default())
            .expect("create");
        assert!(lock_holder(dir.path()).expect("probe").is_some());
        store.close().expect("close");
        drop(store);
        assert_eq!(lock_holder(dir.path()).expect("probe"), None);

        let partitions = partition_dirs(dir.path()).expect("list");
        let keys: Vec<_> = partitions.keys().cloned().collect();
        assert_eq!(keys, [("orders".to_owned(), 0), ("orders".to_owned(), 1)]);
        assert_eq!(
            partitions[&("orders".to_owned(), 1)],
            partition_dir(dir.path(), "orders", 1)
        );

        let topics = topic_files(dir.path()).expect("topics");
        assert_eq!(topics.len(), 1);
        assert_eq!(topics[0].topic, "orders");
        assert_eq!(topics[0].path, topic_file(dir.path(), "orders"));
        assert_eq!(topics[0].partitions.as_ref().ok(), Some(&Some(2)));

        let p0 = partition_dir(dir.path(), "orders", 0);
        assert!(check_recovery_files(&p0).is_empty());
        let segments = segment_files(&p0).expect("segments");
        assert_eq!(segments, [SegmentFiles::new(&p0, 0)]);
        assert_eq!(segment_base_offset(&segments[0].log), Some(0));
        assert!(segments[0].index.is_file() && segments[0].time_index.is_file());
    }

    #[test]
    fn a_damaged_small_file_is_reported_not_fatal() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("t-0");
        std::fs::create_dir(&p).expect("mkdir");
        let copy = format!("{}.0", checkpoint::CHECKPOINT_FILE);
        std::fs::write(p.join(copy), b"not a checkpoint").expect("write");
        let problems = check_recovery_files(&p);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].to_string().contains("checkpoint"),
            "{}",
            problems[0]
        );
    }
}
