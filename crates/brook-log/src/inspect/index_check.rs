//! Verifies a segment's `.index` and `.timeindex` against its batches as a scan meets them.
//!
//! An index is sparse, and the interval it was written with may have changed since, so the
//! check does not demand an entry at any particular batch. It demands what every correct entry
//! satisfies (see [`crate::index`]): entry `i` of both files names the same batch; that batch
//! starts exactly at the entry's position and has the entry's relative offset; positions and
//! offsets strictly increase and never name the segment's first batch; a time entry's
//! timestamp is at least its batch's greatest timestamp and at most the greatest so far in the
//! segment; the unused tail of a preallocated file is all zeros.
//!
//! Index files are read through a buffer, entry by entry, in step with the log scan: nothing
//! is allocated for their size. The first wrong entry ends the check of a segment's indexes
//! (one finding per segment is enough: indexes are derived data. An index that fails its
//! shape checks is rebuilt at the next open; a well-formed but wrong offset entry is caught by
//! the read or truncation that starts from it, which falls back to a walk from the segment
//! start; a well-formed but wrong time entry in a sealed segment is not caught by the broker,
//! which is why this check reports it).

use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use super::SegmentFiles;
use crate::error::{LogError, Result};
use crate::fs::{Fs, Open, RealFs};
use crate::index::{Entry, OffsetEntry, TimeEntry};
use crate::scan::{ScannedBatch, SeqReader};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Damage: the index is wrong.
    Problem,
    /// Worth a note, and what a crash leaves: the last segment's index file is missing.
    Warning,
}

/// Something wrong (or worth a note) about a segment's indexes. Shown as one line naming the
/// file, the entry (slot, relative offset, position) where there is one, and what follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexFinding {
    pub severity: Severity,
    /// The index file it is about.
    pub path: PathBuf,
    pub reason: String,
}

impl std::fmt::Display for IndexFinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} (indexes are derived data: rebuilt from the log on the next open, or before their first use)",
            self.path.display(),
            self.reason
        )
    }
}

/// The check of one segment's two indexes, fed the segment's batches in order.
#[derive(Debug)]
pub struct IndexCheck {
    /// `None` once the check has stopped (a file missing or a finding made).
    files: Option<(EntryStream<OffsetEntry>, EntryStream<TimeEntry>)>,
    index_path: PathBuf,
    base_offset: u64,
    /// The next entry pair not yet matched with a batch, and its slot.
    pending: Option<(usize, OffsetEntry, TimeEntry)>,
    previous: Option<OffsetEntry>,
    slot: usize,
    /// The greatest batch timestamp so far in the segment.
    max_timestamp: i64,
    /// The damaged stretch of log the scan last skipped: `[from, to)`, to the end when `to` is
    /// `None`. Entries pointing into it are the log's damage, already reported, not the index's.
    damaged: Option<(u64, Option<u64>)>,
    /// The end of the last batch seen.
    batches_end: u64,
    findings: Vec<IndexFinding>,
}

impl IndexCheck {
    /// Opens the indexes of `segment`. A missing file is a finding: a warning in the last
    /// segment of a partition (a crash while it was being created), a problem in a rolled one.
    pub fn open(segment: &SegmentFiles, is_last: bool) -> Result<Self> {
        let index_path = segment.index.clone();
        let time_path = segment.time_index.clone();
        let mut check = Self {
            files: None,
            index_path: index_path.clone(),
            base_offset: segment.base_offset,
            pending: None,
            previous: None,
            slot: 0,
            max_timestamp: i64::MIN,
            damaged: None,
            batches_end: 0,
            findings: Vec::new(),
        };
        let offsets = EntryStream::open(&index_path)?;
        let times = EntryStream::open(&time_path)?;
        match (offsets, times) {
            (Ok(Some(offsets)), Ok(Some(times))) => check.files = Some((offsets, times)),
            (Err(reason), _) => check.problem(&index_path, reason),
            (_, Err(reason)) => check.problem(&time_path, reason),
            (Ok(offsets), Ok(_)) => {
                let missing = if offsets.is_none() {
                    index_path
                } else {
                    time_path
                };
                let severity = if is_last {
                    Severity::Warning
                } else {
                    Severity::Problem
                };
                check.findings.push(IndexFinding {
                    severity,
                    path: missing,
                    reason: "missing".to_owned(),
                });
            }
        }
        Ok(check)
    }

    /// Matches the next batch of the segment against the entries that point at or before it.
    pub fn on_batch(&mut self, batch: &ScannedBatch) -> Result<()> {
        self.max_timestamp = self.max_timestamp.max(batch.header.max_timestamp);
        self.batches_end = batch.end();
        while let Some((slot, offset_entry, time_entry)) = self.peek()? {
            let position = u64::from(offset_entry.position);
            if position > batch.position {
                return Ok(());
            }
            self.pending = None;
            let relative = batch.header.base_offset as u64 - self.base_offset;
            let reason = if position < batch.position {
                (!self.is_damaged(position))
                    .then(|| "its position is not the start of a batch".to_owned())
            } else if u64::from(offset_entry.relative_offset) != relative {
                Some(format!(
                    "the batch there has relative offset {relative}, not {}",
                    offset_entry.relative_offset
                ))
            } else if time_entry.timestamp < batch.header.max_timestamp
                || time_entry.timestamp > self.max_timestamp
            {
                Some(format!(
                    "time index timestamp {} is outside [{}, {}], the batch's and the segment's greatest timestamps so far",
                    time_entry.timestamp, batch.header.max_timestamp, self.max_timestamp
                ))
            } else {
                None
            };
            if let Some(reason) = reason {
                self.entry_problem(slot, offset_entry, &reason);
            }
        }
        Ok(())
    }

    /// Tells the check that the scan found damage at `from` and goes on at `resume_at` (or
    /// stops, when `None`).
    pub fn on_damage(&mut self, from: u64, resume_at: Option<u64>) {
        self.damaged = Some((from, resume_at));
    }

    /// Ends the check after the scan: an entry left over points inside the last batch or past
    /// it, which only damage at the end of the log explains.
    pub fn finish(mut self) -> Result<Vec<IndexFinding>> {
        if let Some((slot, entry, _)) = self.peek()? {
            let position = u64::from(entry.position);
            if position < self.batches_end {
                self.entry_problem(slot, entry, "its position is not the start of a batch");
            } else if !self.is_damaged(position) {
                self.entry_problem(slot, entry, "it points past the last batch");
            }
        }
        Ok(self.findings)
    }

    fn is_damaged(&self, position: u64) -> bool {
        self.damaged
            .is_some_and(|(from, to)| position >= from && to.is_none_or(|to| position < to))
    }

    /// The next entry pair, checked for order and for pairing; `None` at the end of the
    /// entries or once the check has stopped.
    fn peek(&mut self) -> Result<Option<(usize, OffsetEntry, TimeEntry)>> {
        if self.pending.is_some() {
            return Ok(self.pending);
        }
        let Some((offsets, times)) = &mut self.files else {
            return Ok(None);
        };
        let (index_path, time_path) = (offsets.path.clone(), times.path.clone());
        let slot = self.slot;
        let pair = match (offsets.next()?, times.next()?) {
            (Err(reason), _) => Err((index_path, reason)),
            (_, Err(reason)) => Err((time_path, reason)),
            (Ok(None), Ok(None)) => return Ok(None),
            (Ok(Some(_)), Ok(None)) | (Ok(None), Ok(Some(_))) => Err((
                time_path,
                format!("entry {slot} has no partner in {}", index_path.display()),
            )),
            (Ok(Some(o)), Ok(Some(t))) => Ok((o, t)),
        };
        let (o, t) = match pair {
            Ok(pair) => pair,
            Err((path, reason)) => {
                self.problem(&path, reason);
                return Ok(None);
            }
        };
        self.slot += 1;
        let reason = if o.relative_offset == 0 || o.position == 0 {
            Some("it names the segment's first batch, which is never indexed".to_owned())
        } else if t.relative_offset != o.relative_offset {
            Some(format!(
                "time index entry {slot} names relative offset {} instead",
                t.relative_offset
            ))
        } else if self
            .previous
            .is_some_and(|p| o.relative_offset <= p.relative_offset || o.position <= p.position)
        {
            Some("it does not come after the entry before it".to_owned())
        } else {
            None
        };
        if let Some(reason) = reason {
            self.entry_problem(slot, o, &reason);
            return Ok(None);
        }
        self.previous = Some(o);
        self.pending = Some((slot, o, t));
        Ok(self.pending)
    }

    fn entry_problem(&mut self, slot: usize, entry: OffsetEntry, reason: &str) {
        let path = self.index_path.clone();
        self.problem(
            &path,
            format!(
                "entry {slot} (relative offset {}, position {}): {reason}",
                entry.relative_offset, entry.position
            ),
        );
    }

    /// Records a problem and stops the check.
    fn problem(&mut self, path: &Path, reason: String) {
        self.files = None;
        self.pending = None;
        self.findings.push(IndexFinding {
            severity: Severity::Problem,
            path: path.to_path_buf(),
            reason,
        });
    }
}

/// The entries of an index file, read in order up to its first empty (all-zero) slot.
#[derive(Debug)]
struct EntryStream<E> {
    path: PathBuf,
    reader: SeqReader,
    /// The slot read next, and how many the file has.
    slot: u64,
    slots: u64,
    _entry: PhantomData<E>,
}

impl<E: Entry> EntryStream<E> {
    /// `Ok(Ok(None))` when the file does not exist; `Ok(Err(reason))` when its size is not a
    /// whole number of entries.
    fn open(path: &Path) -> Result<std::result::Result<Option<Self>, String>> {
        let file = match RealFs.open(path, Open::Read) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Ok(None)),
            Err(e) => return Err(LogError::io(path, e)),
        };
        let len = file.len().map_err(|e| LogError::io(path, e))?;
        if len % E::LEN as u64 != 0 {
            return Ok(Err(format!(
                "{len} bytes is not a whole number of {}-byte entries",
                E::LEN
            )));
        }
        Ok(Ok(Some(Self {
            path: path.to_path_buf(),
            reader: SeqReader::new(file, 0),
            slot: 0,
            slots: len / E::LEN as u64,
            _entry: PhantomData,
        })))
    }

    /// The next entry; `Ok(Ok(None))` after the last one; `Ok(Err(reason))` when an entry
    /// follows an empty slot (the file is garbled).
    fn next(&mut self) -> Result<std::result::Result<Option<E>, String>> {
        if self.slot == self.slots {
            return Ok(Ok(None));
        }
        let mut buf = [0u8; 16];
        let bytes = &mut buf[..E::LEN];
        self.read(bytes)?;
        if bytes.iter().any(|&b| b != 0) {
            return Ok(Ok(Some(E::decode(bytes))));
        }
        // The empty slot ends the entries; every slot after it must be empty too.
        let empty = self.slot - 1;
        while self.slot < self.slots {
            self.read(bytes)?;
            if bytes.iter().any(|&b| b != 0) {
                return Ok(Err(format!(
                    "slot {empty} is empty but slot {} holds an entry: the file is garbled",
                    self.slot - 1
                )));
            }
        }
        Ok(Ok(None))
    }

    /// Reads the next slot.
    fn read(&mut self, buf: &mut [u8]) -> Result<()> {
        self.reader
            .read_exact(buf)
            .map_err(|e| LogError::io(&self.path, e))?;
        self.slot += 1;
        Ok(())
    }
}
