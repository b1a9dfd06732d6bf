//! One segment of a partition log: a `{base_offset:020}.log` file of whole record batches and
//! its two sparse indexes, `.index` and `.timeindex`.
//!
//! A segment appends batches at its end, finds the batch holding an offset (index lookup, then
//! a forward scan of batch headers from the entry's position), finds the first record at or
//! after a timestamp, and cuts itself short (`truncate_to`). It knows nothing of durability
//! modes, high watermarks or other segments: the partition log decides where reads must stop
//! (`limit`) and when to fsync.
//!
//! The active segment's indexes keep their entries in memory and write them out, synced,
//! before the log moves its recovery point past them; when the segment rolls they are written
//! out, synced and mapped read-only (see [`crate::index`]). On open, indexes are checked
//! against the log (see [`Segment::open`]), the active segment's entries past what was synced
//! are derived again from the log, and anything wrong about them has them rebuilt from it.
//!
//! Every file access goes through the log's file layer ([`crate::fs`]).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};

use crate::batch::header::BATCH_LENGTH_AT;
use crate::batch::{records, BatchHeader, HEADER_LEN, LOG_OVERHEAD};
use crate::config::LogConfig;
use crate::error::{LogError, Result};
use crate::fs::{self, FileIo, FileRef, Fs, FsRef, Open};
use crate::index::{IndexCursor, OffsetIndex, TimeIndex};
use crate::txn_index::TXN_INDEX_EXT;

/// Extension of a segment's log file.
pub(crate) const LOG_EXT: &str = "log";
/// Extension of a segment's offset index.
pub(crate) const INDEX_EXT: &str = "index";
/// Extension of a segment's time index.
pub(crate) const TIME_INDEX_EXT: &str = "timeindex";

/// The file `{base_offset:020}.{ext}` in `dir`.
pub(crate) fn segment_file(dir: &Path, base_offset: u64, ext: &str) -> PathBuf {
    dir.join(format!("{base_offset:020}.{ext}"))
}

/// The base offset a segment file is named after, if `name` is `{20 digits}.{ext}`.
pub(crate) fn parse_segment_name(name: &str, ext: &str) -> Option<u64> {
    let stem = name.strip_suffix(ext)?.strip_suffix('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// Deletes the files of segment `base_offset` in `dir`, those that exist.
pub(crate) fn delete_segment_files(fs: &dyn Fs, dir: &Path, base_offset: u64) -> Result<()> {
    for ext in [LOG_EXT, INDEX_EXT, TIME_INDEX_EXT, TXN_INDEX_EXT] {
        remove_if_present(fs, &segment_file(dir, base_offset, ext))?;
    }
    Ok(())
}

fn remove_if_present(fs: &dyn Fs, path: &Path) -> Result<()> {
    fs::remove_if_present(fs, path)
        .map(drop)
        .map_err(|e| LogError::io(path, e))
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The two indexes, locked together: they gain entries at the same batches.
struct Indexes {
    offsets: OffsetIndex,
    times: TimeIndex,
}

/// What a forward walk over a segment's batches found at one position.
#[derive(Debug)]
pub(crate) enum Step {
    /// A batch whose header checks out (shape only; the CRC is not checked here) and which
    /// ends within the limit.
    Batch(BatchHeader),
    /// The walk reached its limit exactly.
    End,
    /// Bytes at this position are not a whole, well-formed batch header within the limit.
    Bad(String),
}

/// Reads a segment's log file forward through a reusable window, so walking many small
/// batches costs one `pread` per window rather than one per header.
pub(crate) struct Scanner<'a> {
    file: &'a dyn FileIo,
    path: &'a Path,
    limit: u64,
    window: usize,
    buf: Vec<u8>,
    buf_at: u64,
}

impl<'a> Scanner<'a> {
    /// Reads below `limit` only, `window` bytes at a time.
    pub(crate) fn new(file: &'a dyn FileIo, path: &'a Path, limit: u64, window: usize) -> Self {
        Self {
            file,
            path,
            limit,
            window: window.max(HEADER_LEN),
            buf: Vec::new(),
            buf_at: 0,
        }
    }

    pub(crate) fn limit(&self) -> u64 {
        self.limit
    }

    /// `len` bytes at `position`, which the caller has checked lie below the limit.
    fn bytes(&mut self, position: u64, len: usize) -> Result<&[u8]> {
        let buffered =
            position >= self.buf_at && position + len as u64 <= self.buf_at + self.buf.len() as u64;
        if !buffered {
            let n = (self.limit - position).min(self.window.max(len) as u64) as usize;
            self.buf.resize(n, 0);
            self.file
                .read_exact_at(&mut self.buf, position)
                .map_err(|e| LogError::io(self.path, e))?;
            self.buf_at = position;
        }
        let from = (position - self.buf_at) as usize;
        Ok(&self.buf[from..from + len])
    }

    /// The batch header at `position`, checked for shape and for fitting below the limit.
    pub(crate) fn step(&mut self, position: u64) -> Result<Step> {
        let left = self.limit.saturating_sub(position);
        if left == 0 {
            return Ok(Step::End);
        }
        if left < HEADER_LEN as u64 {
            return Ok(Step::Bad(format!(
                "{left} bytes left, less than a {HEADER_LEN}-byte batch header"
            )));
        }
        let header = BatchHeader::parse(self.bytes(position, HEADER_LEN)?)?;
        if let Err(e) = header.check_shape(usize::MAX) {
            return Ok(Step::Bad(e.to_string()));
        }
        if header.total_len() as u64 > left {
            return Ok(Step::Bad(format!(
                "a {}-byte batch with {left} bytes left",
                header.total_len()
            )));
        }
        Ok(Step::Batch(header))
    }
}

/// The state of a segment found by walking its tail: where appends continue.
struct Tail {
    cursor: IndexCursor,
    next_offset: u64,
    /// Index entries the walk added (entries that were missing).
    added: usize,
}

/// A segment: its log file, its indexes and what appends need to know about its end.
pub(crate) struct Segment {
    fs: FsRef,
    base_offset: u64,
    log_path: PathBuf,
    log: FileRef,
    /// Bytes of batches in the log file; appends write here.
    size: AtomicU64,
    /// The offset after the last batch (the base offset while empty).
    next_offset: AtomicU64,
    /// The greatest batch `maxTimestamp` in the segment; `i64::MIN` while empty.
    max_timestamp: AtomicI64,
    /// When the segment was created (ms since the epoch): the clock of roll by age.
    created_ms: i64,
    indexes: RwLock<Indexes>,
    /// The indexes were checked whole (see [`Segment::check_indexes`]).
    indexes_checked: AtomicBool,
    /// Where the next index entry is due. Only appends and truncation touch it.
    cursor: Mutex<IndexCursor>,
    /// Offsets may skip between batches: a clean rewrote the segment.
    gaps: bool,
}

/// How [`Segment::open`] opens a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Opening {
    /// It no longer takes appends: its indexes were synced when it rolled, and are mapped.
    Sealed,
    /// It takes appends. Its index entries for batches before `indexes_synced_to` (a file
    /// position) were synced before a checkpoint vouched for them; those at or past it may be
    /// whatever a crash left of unsynced writes, and are derived again from the log.
    Active { indexes_synced_to: u64 },
}

/// An append that failed; `restored` says whether the log file is back at its old length (if
/// not, the segment's end on disk is unknown and the log must stop writing).
#[derive(Debug)]
pub(crate) struct AppendFailed {
    pub error: LogError,
    pub restored: bool,
}

/// Window for scanning headers near an index entry: entries are `index_interval_bytes` apart.
fn scan_window(config: &LogConfig) -> usize {
    (config.index_interval_bytes as usize)
        .saturating_mul(2)
        .clamp(4 << 10, 64 << 10)
}

impl Segment {
    /// Creates the files of a new, empty segment. The caller fsyncs the directory. An empty
    /// log file already there (a creation that failed half-way) is taken over; one with data
    /// is an error, never overwritten.
    pub(crate) fn create(
        fs: &FsRef,
        dir: &Path,
        base_offset: u64,
        config: &LogConfig,
    ) -> Result<Self> {
        let path = |ext| segment_file(dir, base_offset, ext);
        Self::create_at(
            fs,
            [path(LOG_EXT), path(INDEX_EXT), path(TIME_INDEX_EXT)],
            base_offset,
            config,
            false,
        )
    }

    /// Creates a segment whose files are `{base}.log.cleaned` and its indexes likewise: a
    /// clean writes the segment it makes aside, in offset order with gaps, and then swaps it
    /// in (`cleaner::files`), after which it is opened under its own name.
    pub(crate) fn create_cleaned(
        fs: &FsRef,
        dir: &Path,
        base_offset: u64,
        config: &LogConfig,
    ) -> Result<Self> {
        let path = |ext| crate::cleaner::cleaned_file(dir, base_offset, ext);
        Self::create_at(
            fs,
            [path(LOG_EXT), path(INDEX_EXT), path(TIME_INDEX_EXT)],
            base_offset,
            config,
            true,
        )
    }

    /// Creates a new, empty segment at the paths of its log, offset index and time index.
    fn create_at(
        fs: &FsRef,
        [log_path, index_path, time_path]: [PathBuf; 3],
        base_offset: u64,
        config: &LogConfig,
        gaps: bool,
    ) -> Result<Self> {
        let log = fs
            .open(&log_path, Open::Create)
            .map_err(|e| LogError::io(&log_path, e))?;
        let len = log.len().map_err(|e| LogError::io(&log_path, e))?;
        if len != 0 {
            let exists = std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!("a new segment's file already holds {len} bytes"),
            );
            return Err(LogError::io(&log_path, exists));
        }
        let indexes = Indexes {
            offsets: OffsetIndex::create(&**fs, &index_path, config.index_bytes_max)?,
            times: TimeIndex::create(&**fs, &time_path, config.index_bytes_max)?,
        };
        Ok(Self {
            fs: FsRef::clone(fs),
            base_offset,
            log_path,
            log,
            size: AtomicU64::new(0),
            next_offset: AtomicU64::new(base_offset),
            max_timestamp: AtomicI64::new(i64::MIN),
            created_ms: now_ms(),
            indexes: RwLock::new(indexes),
            indexes_checked: AtomicBool::new(true),
            cursor: Mutex::new(IndexCursor::default()),
            gaps,
        })
    }

    /// Opens an existing segment whose first `valid_len` bytes of log are whole, trusted
    /// batches (recovery has established that). `active`: the segment will take appends, so
    /// its indexes are kept in memory; otherwise they are sealed (mapped read-only). `gaps`:
    /// a clean may have rewritten it, so its offsets only have to rise, not follow each other
    /// (the cleaner checkpoint says which segments; docs/storage.md, "Compaction").
    ///
    /// The indexes are checked: shape, order and bounds ([`OffsetIndex::check`],
    /// [`TimeIndex::check`]), the batch at the last entry must be the one it names, and the
    /// batches after it must not have been due an entry. An active segment's entries past
    /// what was synced are dropped first, and the walk after the last one left adds them
    /// again, so every entry it keeps was either synced or derived from the log here; its
    /// indexes are then written out and synced, as the checkpoint recovery writes next
    /// vouches for them. Anything wrong and both are rebuilt from the log. Returns the segment
    /// and how many index files were rebuilt.
    pub(crate) fn open(
        fs: &FsRef,
        dir: &Path,
        base_offset: u64,
        valid_len: u64,
        opening: Opening,
        gaps: bool,
        config: &LogConfig,
    ) -> Result<(Self, usize)> {
        let active = matches!(opening, Opening::Active { .. });
        let log_path = segment_file(dir, base_offset, LOG_EXT);
        let log = fs
            .open(&log_path, Open::Write)
            .map_err(|e| LogError::io(&log_path, e))?;
        let len = log.len().map_err(|e| LogError::io(&log_path, e))?;
        if len < valid_len {
            return Err(LogError::Corrupt {
                segment: log_path.clone(),
                position: len,
                offset: base_offset,
                reason: format!("the file is shorter than the {valid_len} bytes expected"),
            });
        }
        let created_ms = fs
            .metadata(&log_path)
            .ok()
            .and_then(|m| m.created_ms)
            .unwrap_or_else(now_ms);
        let index_path = segment_file(dir, base_offset, INDEX_EXT);
        let time_path = segment_file(dir, base_offset, TIME_INDEX_EXT);
        let paths = IndexPaths {
            offsets: &index_path,
            times: &time_path,
        };
        let scanner = Scanner::new(&*log, &log_path, valid_len, scan_window(config));
        let (mut indexes, tail, rebuilt) =
            match load_indexes(&**fs, paths, base_offset, scanner, opening, gaps, config)? {
                // Entries added by the walk were missing: both files are rewritten.
                Ok((indexes, tail)) => {
                    let rebuilt = if tail.added > 0 { 2 } else { 0 };
                    (indexes, tail, rebuilt)
                }
                Err(reason) => {
                    tracing::warn!(
                        index = %index_path.display(),
                        %reason,
                        "rebuilding the indexes of a segment from its log"
                    );
                    let scanner = Scanner::new(&*log, &log_path, valid_len, 1 << 20);
                    let (indexes, tail) =
                        rebuild_indexes(&**fs, paths, base_offset, scanner, gaps, config)?;
                    (indexes, tail, 2)
                }
            };
        if active {
            indexes.offsets.sync(&**fs)?;
            indexes.times.sync(&**fs)?;
        } else {
            indexes.offsets.seal(&**fs)?;
            indexes.times.seal(&**fs)?;
        }
        let segment = Self {
            fs: FsRef::clone(fs),
            base_offset,
            log_path,
            log,
            size: AtomicU64::new(valid_len),
            next_offset: AtomicU64::new(tail.next_offset),
            max_timestamp: AtomicI64::new(tail.cursor.max_timestamp),
            created_ms,
            indexes: RwLock::new(indexes),
            indexes_checked: AtomicBool::new(active || rebuilt > 0),
            cursor: Mutex::new(tail.cursor),
            gaps,
        };
        Ok((segment, rebuilt))
    }

    /// A segment with no file behind it: the one placeholder segment of an offline partition
    /// (nothing reads or writes through it; every file call would fail with `reason`).
    pub(crate) fn unavailable(fs: &FsRef, dir: &Path, reason: &str) -> Self {
        let path = |ext| segment_file(dir, 0, ext);
        Self {
            fs: FsRef::clone(fs),
            base_offset: 0,
            log_path: path(LOG_EXT),
            log: Box::new(fs::Unavailable(reason.to_owned())),
            size: AtomicU64::new(0),
            next_offset: AtomicU64::new(0),
            max_timestamp: AtomicI64::new(i64::MIN),
            created_ms: now_ms(),
            indexes: RwLock::new(Indexes {
                offsets: OffsetIndex::detached(&path(INDEX_EXT)),
                times: TimeIndex::detached(&path(TIME_INDEX_EXT)),
            }),
            indexes_checked: AtomicBool::new(true),
            cursor: Mutex::new(IndexCursor::default()),
            gaps: false,
        }
    }

    pub(crate) fn base_offset(&self) -> u64 {
        self.base_offset
    }

    /// The offset after the segment's last batch.
    pub(crate) fn next_offset(&self) -> u64 {
        self.next_offset.load(Ordering::Acquire)
    }

    /// Bytes of batches in the log file.
    pub(crate) fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.size() == 0
    }

    /// The greatest batch timestamp in the segment (`i64::MIN` when empty).
    pub(crate) fn max_timestamp(&self) -> i64 {
        self.max_timestamp.load(Ordering::Acquire)
    }

    pub(crate) fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Whether the batch described by `header` must go to a new segment instead of this one:
    /// this one is full (by size or by an index), too old, or the batch's offsets would not fit
    /// the 32-bit relative offsets of the indexes. An empty segment takes any batch.
    pub(crate) fn should_roll(
        &self,
        header: &BatchHeader,
        now_ms: i64,
        config: &LogConfig,
    ) -> bool {
        let size = self.size();
        if size == 0 {
            return false;
        }
        let last_relative = self.next_offset() - self.base_offset + header.last_offset_delta as u64;
        let indexes = self.indexes.read();
        size + header.total_len() as u64 > config.segment_bytes_max
            || now_ms.saturating_sub(self.created_ms) >= config.segment_ms_max as i64
            || indexes.offsets.is_full()
            || indexes.times.is_full()
            || last_relative > u64::from(u32::MAX)
    }

    /// Appends a validated batch whose `baseOffset` is already this segment's next offset.
    pub(crate) fn append(
        &self,
        batch: &[u8],
        header: &BatchHeader,
        config: &LogConfig,
    ) -> std::result::Result<(), AppendFailed> {
        self.append_parts(&[batch], header, config)
    }

    /// [`Segment::append`] of a batch held in parts (its patched header, then its records, as
    /// the partition log stores a batch it does not own): written as one batch, in one write
    /// where the file layer can ([`FileIo::write_parts_at`]).
    pub(crate) fn append_parts(
        &self,
        parts: &[&[u8]],
        header: &BatchHeader,
        config: &LogConfig,
    ) -> std::result::Result<(), AppendFailed> {
        let position = self.size();
        let len: usize = parts.iter().map(|part| part.len()).sum();
        debug_assert_eq!(len, header.total_len());
        // A partition log appends at its next offset; a clean writing a cleaned segment skips
        // the offsets it removed.
        let base = header.base_offset as u64;
        debug_assert!(base >= self.next_offset());
        if let Err(e) = self.log.write_parts_at(parts, position) {
            // A short write, or a failure after some parts were written, leaves part of a
            // batch at the end; cut it off so the next append does not land after garbage.
            let restored = self.log.set_len(position).is_ok();
            return Err(AppendFailed {
                error: LogError::io(&self.log_path, e),
                restored,
            });
        }
        let relative = (base - self.base_offset) as u32;
        let due = self.cursor.lock().on_batch(
            position,
            relative,
            len as u64,
            header.max_timestamp,
            config.index_interval_bytes,
        );
        if let Some((offset_entry, time_entry)) = due {
            let mut indexes = self.indexes.write();
            // `should_roll` keeps a slot free; a full index only makes lookups scan further.
            if !indexes.offsets.is_full() && !indexes.times.is_full() {
                indexes.offsets.append(offset_entry);
                indexes.times.append(time_entry);
            }
        }
        self.max_timestamp
            .fetch_max(header.max_timestamp, Ordering::AcqRel);
        self.next_offset
            .store(header.next_offset() as u64, Ordering::Release);
        self.size.store(position + len as u64, Ordering::Release);
        Ok(())
    }

    /// Checks a sealed segment's indexes whole, once, before their first use: opening a
    /// partition reads only their last entry and what follows it (a sealed segment's entries
    /// were fsynced when it rolled), so that a restart does not read every index of every
    /// partition. Wrong indexes are rebuilt from the log here, as on open.
    fn check_indexes(&self, config: &LogConfig) -> Result<()> {
        if self.indexes_checked.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut indexes = self.indexes.write();
        if self.indexes_checked.load(Ordering::Acquire) {
            return Ok(());
        }
        let size = self.size();
        let wrong = indexes
            .offsets
            .check(size)
            .and_then(|()| indexes.times.check(&indexes.offsets))
            .err();
        if let Some(reason) = wrong {
            tracing::warn!(
                index = %indexes.offsets.path().display(),
                %reason,
                "rebuilding the indexes of a segment from its log"
            );
            let (offsets, times) = (
                indexes.offsets.path().to_path_buf(),
                indexes.times.path().to_path_buf(),
            );
            let paths = IndexPaths {
                offsets: &offsets,
                times: &times,
            };
            let scanner = Scanner::new(&*self.log, &self.log_path, size, 1 << 20);
            let (mut rebuilt, _) = rebuild_indexes(
                &*self.fs,
                paths,
                self.base_offset,
                scanner,
                self.gaps,
                config,
            )?;
            rebuilt.offsets.seal(&*self.fs)?;
            rebuilt.times.seal(&*self.fs)?;
            *indexes = rebuilt;
        }
        self.indexes_checked.store(true, Ordering::Release);
        Ok(())
    }

    /// Position and header of the first batch below `limit` whose last offset is at least
    /// `offset`; `None` if every batch below `limit` ends before it.
    pub(crate) fn locate(
        &self,
        offset: u64,
        limit: u64,
        config: &LogConfig,
    ) -> Result<Option<(u64, BatchHeader)>> {
        self.check_indexes(config)?;
        let (position, expect) = self.index_lookup(offset);
        let mut scanner = Scanner::new(&*self.log, &self.log_path, limit, scan_window(config));
        let mut position = self.start_at(&mut scanner, position, expect)?;
        loop {
            match scanner.step(position)? {
                Step::End => return Ok(None),
                Step::Bad(reason) => return Err(self.corrupt(position, offset, reason)),
                Step::Batch(header) => {
                    if header.last_offset() as u64 >= offset {
                        return Ok(Some((position, header)));
                    }
                    position += header.total_len() as u64;
                }
            }
        }
    }

    /// `position` if the batch there is the one an index entry says (`expect` is its base
    /// offset), else 0: a wrong entry costs a scan from the start, never a wrong answer.
    fn start_at(&self, scanner: &mut Scanner<'_>, position: u64, expect: u64) -> Result<u64> {
        if position == 0 || position >= scanner.limit() {
            return Ok(0);
        }
        match scanner.step(position)? {
            Step::Batch(h) if h.base_offset as u64 == expect => Ok(position),
            _ => {
                tracing::warn!(
                    segment = %self.log_path.display(),
                    position,
                    expect,
                    "an index entry does not point at its batch; scanning from the segment start"
                );
                Ok(0)
            }
        }
    }

    /// Where to start looking for `offset`: the position of the indexed batch at or before it,
    /// and that batch's base offset (position 0 and the segment's base without one).
    fn index_lookup(&self, offset: u64) -> (u64, u64) {
        let relative = offset
            .saturating_sub(self.base_offset)
            .min(u64::from(u32::MAX)) as u32;
        let entry = self.indexes.read().offsets.lookup(relative).map(|(_, e)| e);
        entry.map_or((0, self.base_offset), |e| {
            (
                u64::from(e.position),
                self.base_offset + u64::from(e.relative_offset),
            )
        })
    }

    /// Whole batches starting with the one holding `offset` (or the first after it), at most
    /// `max_bytes` of them but always the first one whole, none at or beyond `limit`. `None`
    /// when no batch below `limit` holds `offset` or a later one.
    ///
    /// Usually one `pread`: from the index entry's position, `max_bytes` plus the distance
    /// between index entries, so the batch sought and the batches returned come in the same
    /// read, and the result is a slice of it. When they do not (a batch larger than that, or
    /// an index entry that does not check out), the headers are walked first and the batches
    /// read after.
    pub(crate) fn read(
        &self,
        offset: u64,
        max_bytes: usize,
        limit: u64,
        config: &LogConfig,
    ) -> Result<Option<Bytes>> {
        self.check_indexes(config)?;
        let (position, expect) = self.index_lookup(offset);
        if position < limit {
            let slack = scan_window(config) as u64;
            let len = (max_bytes as u64)
                .saturating_add(slack)
                .min(limit - position);
            let buf = self.read_bytes(position, len as usize)?;
            if let Some((at, first)) = find_batch_in(&buf, expect, offset) {
                let allowed = max_bytes.min(buf.len() - at).max(first);
                let end = at + whole_batches(&buf[at..at + allowed], first);
                return Ok(Some(Bytes::from(buf).slice(at..end)));
            }
        }
        let Some((start, header)) = self.locate(offset, limit, config)? else {
            return Ok(None);
        };
        let first = header.total_len() as u64;
        let len = (max_bytes as u64).min(limit - start).max(first) as usize;
        let mut buf = self.read_bytes(start, len)?;
        buf.truncate(whole_batches(&buf, first as usize));
        Ok(Some(Bytes::from(buf)))
    }

    /// The first record at or after `timestamp` whose offset is at least `from_offset`, among
    /// the batches below `limit`: `(offset, timestamp)`.
    pub(crate) fn find_timestamp(
        &self,
        timestamp: i64,
        from_offset: u64,
        limit: u64,
        config: &LogConfig,
    ) -> Result<Option<(u64, i64)>> {
        self.check_indexes(config)?;
        let (position, expect) = {
            let indexes = self.indexes.read();
            match indexes.times.lookup(timestamp) {
                Some((i, _)) => {
                    let e = indexes.offsets.get(i);
                    (
                        u64::from(e.position),
                        self.base_offset + u64::from(e.relative_offset),
                    )
                }
                None => (0, self.base_offset),
            }
        };
        let mut scanner = Scanner::new(&*self.log, &self.log_path, limit, scan_window(config));
        let mut position = self.start_at(&mut scanner, position, expect)?;
        loop {
            let header = match scanner.step(position)? {
                Step::End => return Ok(None),
                Step::Bad(reason) => return Err(self.corrupt(position, from_offset, reason)),
                Step::Batch(header) => header,
            };
            if header.max_timestamp >= timestamp && header.last_offset() as u64 >= from_offset {
                let batch = self.read_bytes(position, header.total_len())?;
                let found = first_record_at_or_after(Bytes::from(batch), timestamp, from_offset)
                    .map_err(|e| {
                        self.corrupt(position, header.base_offset as u64, e.to_string())
                    })?;
                if found.is_some() {
                    return Ok(found);
                }
            }
            position += header.total_len() as u64;
        }
    }

    /// The first record holding the greatest timestamp among the records at or after
    /// `from_offset` in the batches below `limit`: `(offset, timestamp)`; `None` if there is no
    /// such record.
    pub(crate) fn max_timestamp_record(
        &self,
        from_offset: u64,
        limit: u64,
        config: &LogConfig,
    ) -> Result<Option<(u64, i64)>> {
        let max = self.max_timestamp();
        if max == i64::MIN {
            return Ok(None);
        }
        // Usually the segment's greatest timestamp belongs to a record readers may see, and the
        // time index finds its batch.
        if let Some(found) = self.find_timestamp(max, from_offset, limit, config)? {
            return Ok(Some(found));
        }
        // It lies past `limit` (not durable yet) or before `from_offset`: walk the visible
        // batches for the greatest of theirs.
        let mut scanner = Scanner::new(&*self.log, &self.log_path, limit, scan_window(config));
        let mut position = 0;
        let mut best: Option<(i64, u64, usize)> = None; // timestamp, position, length
        loop {
            let header = match scanner.step(position)? {
                Step::End => break,
                Step::Bad(reason) => return Err(self.corrupt(position, from_offset, reason)),
                Step::Batch(header) => header,
            };
            let len = header.total_len();
            if header.last_offset() as u64 >= from_offset {
                let greatest = if header.base_offset as u64 >= from_offset {
                    Some(header.max_timestamp)
                } else {
                    // `from_offset` falls inside this batch: only its records from there count.
                    let batch = Bytes::from(self.read_bytes(position, len)?);
                    greatest_timestamp_from(batch, from_offset)
                        .map_err(|e| self.corrupt(position, from_offset, e.to_string()))?
                };
                if let Some(ts) = greatest.filter(|&ts| best.is_none_or(|(b, _, _)| ts > b)) {
                    best = Some((ts, position, len));
                }
            }
            position += len as u64;
        }
        let Some((timestamp, position, len)) = best else {
            return Ok(None);
        };
        let batch = Bytes::from(self.read_bytes(position, len)?);
        first_record_at_or_after(batch, timestamp, from_offset)
            .map_err(|e| self.corrupt(position, from_offset, e.to_string()))
    }

    /// Cuts the segment to its first `position` bytes (a batch boundary; `next_offset` is the
    /// offset after the batch that now ends it), dropping index entries past the cut.
    /// The caller fsyncs the file afterwards.
    pub(crate) fn truncate_to(
        &self,
        position: u64,
        next_offset: u64,
        config: &LogConfig,
    ) -> Result<()> {
        self.check_indexes(config)?;
        self.log
            .set_len(position)
            .map_err(|e| LogError::io(&self.log_path, e))?;
        let mut indexes = self.indexes.write();
        let mut scanner = Scanner::new(&*self.log, &self.log_path, position, scan_window(config));
        let mut keep = indexes.offsets.entries_before(position);
        // The walk below starts at the last entry kept: checked first, as a read checks the
        // entry it starts from; a wrong one (damage the open's checks could not see) has the
        // entries derived again from the segment start.
        if let Some(e) = keep.checked_sub(1).map(|i| indexes.offsets.get(i)) {
            let expect = self.base_offset + u64::from(e.relative_offset);
            if self.start_at(&mut scanner, u64::from(e.position), expect)? == 0 {
                keep = 0;
            }
        }
        indexes.offsets.truncate_entries(keep);
        indexes.times.truncate_entries(keep);
        let from = indexes.offsets.last();
        let start = from.map_or(0, |e| u64::from(e.position));
        let cursor = IndexCursor {
            bytes_since_entry: 0,
            max_timestamp: indexes.times.last().map_or(i64::MIN, |t| t.timestamp),
        };
        let walk = TailWalk {
            start,
            expect: self.base_offset + from.map_or(0, |e| u64::from(e.relative_offset)),
            cursor,
            base_offset: self.base_offset,
            gaps: self.gaps,
        };
        let tail = scan_tail(scanner, walk, &mut indexes, config)?
            .map_err(|broken| self.corrupt(broken.position, broken.offset, broken.reason))?;
        drop(indexes);
        debug_assert_eq!(tail.next_offset, next_offset);
        *self.cursor.lock() = tail.cursor;
        self.max_timestamp
            .store(tail.cursor.max_timestamp, Ordering::Release);
        self.next_offset.store(next_offset, Ordering::Release);
        self.size.store(position, Ordering::Release);
        Ok(())
    }

    /// The segment's log file, for a reader that walks all of it (the cleaner).
    pub(crate) fn log_file(&self) -> &dyn FileIo {
        &*self.log
    }

    /// Entries in the offset index (and so in the time index).
    pub(crate) fn index_entries(&self) -> usize {
        self.indexes.read().offsets.len()
    }

    /// The header of the segment's first batch; `None` when it is empty.
    pub(crate) fn first_batch(&self) -> Result<Option<BatchHeader>> {
        if self.size() < HEADER_LEN as u64 {
            return Ok(None);
        }
        let bytes = self.read_bytes(0, HEADER_LEN)?;
        Ok(Some(BatchHeader::parse(&bytes)?))
    }

    /// fdatasync of the log file.
    pub(crate) fn sync_data(&self) -> Result<()> {
        self.log
            .sync_data()
            .map_err(|e| LogError::io(&self.log_path, e))
    }

    /// Writes out the index entries added since the last write-out and fsyncs them: the log
    /// does this before its checkpoint vouches for them (see [`crate::index`]).
    pub(crate) fn sync_indexes(&self) -> Result<()> {
        let mut indexes = self.indexes.write();
        indexes.offsets.sync(&*self.fs)?;
        indexes.times.sync(&*self.fs)
    }

    /// The segment stops taking appends: its indexes are written out, synced and mapped.
    pub(crate) fn seal(&self) -> Result<()> {
        let mut indexes = self.indexes.write();
        indexes.offsets.seal(&*self.fs)?;
        indexes.times.seal(&*self.fs)
    }

    /// The segment takes appends again (after a truncation made it the last).
    pub(crate) fn unseal(&self, config: &LogConfig) {
        let mut indexes = self.indexes.write();
        indexes.offsets.unseal(config.index_bytes_max);
        indexes.times.unseal(config.index_bytes_max);
    }

    /// Deletes the segment's files. Readers holding it keep reading the unlinked files.
    pub(crate) fn delete(&self) -> Result<()> {
        let indexes = self.indexes.read();
        for path in [
            self.log_path.as_path(),
            indexes.offsets.path(),
            indexes.times.path(),
        ] {
            remove_if_present(&*self.fs, path)?;
        }
        Ok(())
    }

    /// Exactly `len` bytes of the log file from `position`.
    fn read_bytes(&self, position: u64, len: usize) -> Result<Vec<u8>> {
        self.log
            .read_vec_at(position, len)
            .map_err(|e| LogError::io(&self.log_path, e))
    }

    fn corrupt(&self, position: u64, offset: u64, reason: String) -> LogError {
        LogError::Corrupt {
            segment: self.log_path.clone(),
            position,
            offset,
            reason,
        }
    }
}

/// In `buf`, read from the position of the batch whose base offset is `expect`: the start and
/// length of the whole batch holding `offset` (or the first after it). `None` if that batch is
/// not whole in `buf`, or the headers on the way do not look right (the careful path decides).
fn find_batch_in(buf: &[u8], expect: u64, offset: u64) -> Option<(usize, usize)> {
    let mut at = 0;
    let mut next = expect;
    loop {
        let header = BatchHeader::parse(buf.get(at..)?).ok()?;
        let len = header.total_len();
        // The first batch is the one the index entry names; after it offsets only rise (a
        // cleaned segment skips the offsets a clean removed).
        let in_order = if at == 0 {
            header.base_offset as u64 == next
        } else {
            header.base_offset as u64 >= next
        };
        if !in_order || len < HEADER_LEN || at + len > buf.len() {
            return None;
        }
        if header.last_offset() as u64 >= offset {
            return Some((at, len));
        }
        at += len;
        next = header.next_offset() as u64;
    }
}

/// How many leading bytes of `buf` are whole batches, given that the first one (of `first`
/// bytes) is whole.
fn whole_batches(buf: &[u8], first: usize) -> usize {
    let mut end = first;
    while let Some(length_field) = buf.get(end + BATCH_LENGTH_AT..end + LOG_OVERHEAD) {
        let length = i32::from_be_bytes([
            length_field[0],
            length_field[1],
            length_field[2],
            length_field[3],
        ]);
        let Ok(length) = usize::try_from(length) else {
            break;
        };
        let total = LOG_OVERHEAD + length;
        if length < HEADER_LEN - LOG_OVERHEAD || end + total > buf.len() {
            break;
        }
        end += total;
    }
    end
}

/// The first record of `batch` at or after `timestamp` whose offset is at least `from_offset`.
fn first_record_at_or_after(
    batch: Bytes,
    timestamp: i64,
    from_offset: u64,
) -> std::result::Result<Option<(u64, i64)>, crate::error::BatchError> {
    for record in records(batch)? {
        let record = record?;
        if record.offset >= from_offset && record.timestamp >= timestamp {
            return Ok(Some((record.offset, record.timestamp)));
        }
    }
    Ok(None)
}

/// The greatest timestamp among the records of `batch` at or after `from_offset`.
fn greatest_timestamp_from(
    batch: Bytes,
    from_offset: u64,
) -> std::result::Result<Option<i64>, crate::error::BatchError> {
    let mut greatest = None;
    for record in records(batch)? {
        let record = record?;
        if record.offset >= from_offset {
            greatest = greatest.max(Some(record.timestamp));
        }
    }
    Ok(greatest)
}

/// Where a segment's two index files are.
#[derive(Debug, Clone, Copy)]
struct IndexPaths<'a> {
    offsets: &'a Path,
    times: &'a Path,
}

/// Opens both index files (active: in memory, to take entries; sealed: mapped) and checks them
/// against the log the scanner reads, completing them with the entries due after their last
/// one (entries not yet written out when the log stopped, or dropped as not synced);
/// `Ok(Err(reason))` when they must be rebuilt.
fn load_indexes(
    fs: &dyn Fs,
    paths: IndexPaths<'_>,
    base_offset: u64,
    mut scanner: Scanner<'_>,
    opening: Opening,
    gaps: bool,
    config: &LogConfig,
) -> Result<std::result::Result<(Indexes, Tail), String>> {
    let active = matches!(opening, Opening::Active { .. });
    let valid_len = scanner.limit();
    let capacity = config.index_bytes_max;
    let mut offsets = match OffsetIndex::open(fs, paths.offsets, capacity, !active)? {
        Ok(index) => index,
        Err(reason) => return Ok(Err(format!("{}: {reason}", paths.offsets.display()))),
    };
    let mut times = match TimeIndex::open(fs, paths.times, capacity, !active)? {
        Ok(index) => index,
        Err(reason) => return Ok(Err(format!("{}: {reason}", paths.times.display()))),
    };
    // Entries past the valid end name batches a crash or a truncation took away; an active
    // segment's entries past what was synced may be torn or stale, however well-formed.
    let keep = match opening {
        Opening::Active { indexes_synced_to } => {
            offsets.leading_entries_before(indexes_synced_to.min(valid_len))
        }
        Opening::Sealed => offsets.entries_before(valid_len),
    };
    offsets.truncate_entries(keep);
    times.truncate_entries(keep);
    // The entries of a sealed segment are checked whole on first use
    // (`Segment::check_indexes`); here only that the two files pair up.
    let checked = if active {
        offsets
            .check(valid_len)
            .and_then(|()| times.check(&offsets))
    } else if times.len() != offsets.len() {
        Err(format!(
            "{} time entries where the offset index has {}",
            times.len(),
            offsets.len()
        ))
    } else {
        Ok(())
    };
    if let Err(reason) = checked {
        return Ok(Err(reason));
    }
    let (start, expect, cursor) = match (offsets.last(), times.last()) {
        (Some(o), Some(t)) => {
            let expect = base_offset + u64::from(o.relative_offset);
            match scanner.step(u64::from(o.position))? {
                Step::Batch(h)
                    if h.base_offset as u64 == expect && h.max_timestamp <= t.timestamp => {}
                other => {
                    return Ok(Err(format!(
                        "the last entry {o:?} / {t:?} does not match the batch there: {other:?}"
                    )))
                }
            }
            let cursor = IndexCursor {
                bytes_since_entry: 0,
                max_timestamp: t.timestamp,
            };
            (u64::from(o.position), expect, cursor)
        }
        _ => (0, base_offset, IndexCursor::default()),
    };
    let mut indexes = Indexes { offsets, times };
    let walk = TailWalk {
        start,
        expect,
        cursor,
        base_offset,
        gaps,
    };
    let tail = match scan_tail(scanner, walk, &mut indexes, config)? {
        Ok(tail) => tail,
        Err(broken) => return Ok(Err(broken.to_string())),
    };
    Ok(Ok((indexes, tail)))
}

/// Where a walk of a segment's tail starts: at `start`, where the batch with base offset
/// `expect` begins, with the index cursor as it stood there.
#[derive(Debug, Clone, Copy)]
struct TailWalk {
    start: u64,
    expect: u64,
    cursor: IndexCursor,
    base_offset: u64,
    /// Offsets may skip between batches (a cleaned segment); otherwise they are contiguous.
    gaps: bool,
}

/// Where and why a walk of a segment's tail stopped short of its limit.
#[derive(Debug)]
struct TailBroken {
    position: u64,
    /// The offset the batch there should have started at.
    offset: u64,
    reason: String,
}

impl std::fmt::Display for TailBroken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "at position {}: {}", self.position, self.reason)
    }
}

/// Walks the batches from `walk.start` to the scanner's limit, advancing the cursor and adding
/// to `indexes` the entries due on the way (the indexes then end as a rebuild would leave
/// them). `Ok(Err(..))` if a batch there is misshapen or does not continue the offsets.
fn scan_tail(
    mut scanner: Scanner<'_>,
    walk: TailWalk,
    indexes: &mut Indexes,
    config: &LogConfig,
) -> Result<std::result::Result<Tail, TailBroken>> {
    let TailWalk {
        start,
        expect,
        mut cursor,
        base_offset,
        gaps,
    } = walk;
    let mut position = start;
    let mut next_offset = expect;
    let mut added = 0;
    loop {
        let broken = |reason| {
            Ok(Err(TailBroken {
                position,
                offset: next_offset,
                reason,
            }))
        };
        let header = match scanner.step(position)? {
            Step::End => break,
            Step::Bad(reason) => return broken(reason),
            Step::Batch(header) => header,
        };
        let base = header.base_offset as u64;
        // Where offsets may skip, a batch starts at or after the expected offset, except the
        // one an index entry names (`start` > 0), which must be exactly that.
        let may_skip = gaps && (position != start || start == 0);
        if base < next_offset || (base != next_offset && !may_skip) {
            let expected = if may_skip {
                format!("at least {next_offset} (the segment was cleaned)")
            } else {
                next_offset.to_string()
            };
            return broken(format!(
                "the batch has base offset {}, expected {expected}",
                header.base_offset
            ));
        }
        let relative = (base - base_offset).min(u64::from(u32::MAX)) as u32;
        let due = cursor.on_batch(
            position,
            relative,
            header.total_len() as u64,
            header.max_timestamp,
            config.index_interval_bytes,
        );
        if let Some((o, t)) = due.filter(|_| position != start) {
            indexes.offsets.append(o);
            indexes.times.append(t);
            added += 1;
        }
        position += header.total_len() as u64;
        next_offset = header.next_offset() as u64;
    }
    Ok(Ok(Tail {
        cursor,
        next_offset,
        added,
    }))
}

/// Recreates both indexes from every batch the scanner reads.
fn rebuild_indexes(
    fs: &dyn Fs,
    paths: IndexPaths<'_>,
    base_offset: u64,
    scanner: Scanner<'_>,
    gaps: bool,
    config: &LogConfig,
) -> Result<(Indexes, Tail)> {
    let capacity = config.index_bytes_max;
    let mut indexes = Indexes {
        offsets: OffsetIndex::create(fs, paths.offsets, capacity)?,
        times: TimeIndex::create(fs, paths.times, capacity)?,
    };
    let walk = TailWalk {
        start: 0,
        expect: base_offset,
        cursor: IndexCursor::default(),
        base_offset,
        gaps,
    };
    let tail =
        scan_tail(scanner, walk, &mut indexes, config)?.map_err(|broken| LogError::Corrupt {
            segment: paths.offsets.with_extension(LOG_EXT),
            position: broken.position,
            offset: broken.offset,
            reason: broken.reason,
        })?;
    Ok((indexes, tail))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::batch::header::patch_base_offset;
    use crate::batch::{BatchBuilder, Compression, RecordRef};
    use crate::index::{OffsetEntry, TimeEntry};

    /// Opened to take appends, every index entry trusted as synced.
    const ACTIVE: Opening = Opening::Active {
        indexes_synced_to: u64::MAX,
    };

    /// A batch of `count` records of `value_len` bytes, timestamps from `timestamp` up by 1.
    pub(crate) fn test_batch(count: usize, value_len: usize, timestamp: i64) -> Vec<u8> {
        let value = vec![7u8; value_len];
        let mut builder = BatchBuilder::new(Compression::None);
        for i in 0..count {
            builder.push(RecordRef {
                key: None,
                value: Some(&value),
                headers: &[],
                timestamp: timestamp + i as i64,
            });
        }
        builder.build().expect("a valid batch").to_vec()
    }

    fn config() -> LogConfig {
        LogConfig {
            segment_bytes_max: 4096,
            index_interval_bytes: 200,
            index_bytes_max: 1024,
            ..LogConfig::default()
        }
    }

    fn append(segment: &Segment, count: usize, ts: i64, config: &LogConfig) -> (u64, Vec<u8>) {
        let mut batch = test_batch(count, 40, ts);
        let base = segment.next_offset();
        patch_base_offset(&mut batch, base as i64);
        let header = BatchHeader::parse_checked(&batch, usize::MAX).expect("valid");
        segment.append(&batch, &header, config).expect("append");
        (base, batch)
    }

    #[test]
    fn appends_read_back_from_every_offset_and_indexes_fill() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = config();
        let segment = Segment::create(&fs::real(), dir.path(), 100, &config).expect("create");
        let mut batches = Vec::new();
        for i in 0..20 {
            batches.push(append(&segment, 1 + i % 3, 1000 + i as i64 * 10, &config));
        }
        assert!(
            segment.indexes.read().offsets.len() >= 5,
            "entries every ~200 bytes"
        );
        let limit = segment.size();
        for (i, (base, bytes)) in batches.iter().enumerate() {
            let count = 1 + i as u64 % 3;
            for offset in *base..*base + count {
                let got = segment
                    .read(offset, 1, limit, &config)
                    .expect("read")
                    .expect("found");
                assert_eq!(&got[..], &bytes[..], "read({offset})");
            }
        }
        // Several whole batches within max_bytes, never a partial one.
        let two = batches[0].1.len() + batches[1].1.len();
        let got = segment
            .read(100, two + 10, limit, &config)
            .expect("read")
            .expect("found");
        assert_eq!(got.len(), two);
        // Nothing at or beyond the limit.
        let end = segment.next_offset();
        assert!(segment
            .read(end, 100, limit, &config)
            .expect("read")
            .is_none());
        let first_len = batches[0].1.len() as u64;
        assert!(segment
            .read(batches[1].0, 100, first_len, &config)
            .expect("read")
            .is_none());
    }

    #[test]
    fn max_timestamp_record_counts_only_the_visible_records() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = config();
        let segment = Segment::create(&fs::real(), dir.path(), 0, &config).expect("create");
        assert_eq!(
            segment.max_timestamp_record(0, 0, &config).expect("max"),
            None
        );
        append(&segment, 1, 1000, &config); // offset 0
        append(&segment, 3, 5000, &config); // offsets 1..=3, timestamps 5000..=5002
        append(&segment, 1, 5002, &config); // offset 4: a tie, later
        let visible = segment.size();
        append(&segment, 1, 9000, &config); // offset 5: past the limit below
        let max = |from, limit| {
            segment
                .max_timestamp_record(from, limit, &config)
                .expect("max")
        };
        assert_eq!(max(0, segment.size()), Some((5, 9000)));
        assert_eq!(max(0, visible), Some((3, 5002)), "the first of equals");
        assert_eq!(max(2, visible), Some((3, 5002)), "from inside a batch");
        assert_eq!(max(4, visible), Some((4, 5002)));
        assert_eq!(max(5, visible), None);
    }

    #[test]
    fn timestamp_lookup_finds_the_first_batch_reaching_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = config();
        let segment = Segment::create(&fs::real(), dir.path(), 0, &config).expect("create");
        for i in 0..30 {
            append(&segment, 1, 1000 + i * 10, &config);
        }
        let limit = segment.size();
        let find = |ts| segment.find_timestamp(ts, 0, limit, &config).expect("find");
        assert_eq!(find(0), Some((0, 1000)));
        assert_eq!(find(1000), Some((0, 1000)));
        assert_eq!(find(1001), Some((1, 1010)));
        assert_eq!(find(1150), Some((15, 1150)));
        assert_eq!(find(1290), Some((29, 1290)));
        assert_eq!(find(1291), None);
        assert_eq!(
            segment.find_timestamp(0, 7, limit, &config).expect("find"),
            Some((7, 1070))
        );
    }

    #[test]
    fn reopen_keeps_or_rebuilds_indexes_to_the_same_answers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = config();
        let segment = Segment::create(&fs::real(), dir.path(), 0, &config).expect("create");
        for i in 0..25 {
            append(&segment, 2, 1000 + i * 10, &config);
        }
        let size = segment.size();
        let entries = segment.indexes.read().offsets.len();
        segment.seal().expect("seal");
        drop(segment);

        let (segment, rebuilt) = Segment::open(
            &fs::real(),
            dir.path(),
            0,
            size,
            Opening::Sealed,
            false,
            &config,
        )
        .expect("open");
        assert_eq!(rebuilt, 0, "a good index is kept");
        assert_eq!(segment.indexes.read().offsets.len(), entries);
        assert_eq!(segment.next_offset(), 50);
        assert_eq!(segment.max_timestamp(), 1241);
        drop(segment);

        let index = segment_file(dir.path(), 0, INDEX_EXT);
        let mut bytes = std::fs::read(&index).expect("read");
        bytes[7] ^= 1; // the first entry's position, off by one
        std::fs::write(&index, &bytes).expect("write");
        std::fs::remove_file(segment_file(dir.path(), 0, TIME_INDEX_EXT)).expect("rm");
        let (segment, rebuilt) =
            Segment::open(&fs::real(), dir.path(), 0, size, ACTIVE, false, &config).expect("open");
        assert_eq!(rebuilt, 2);
        assert_eq!(segment.indexes.read().offsets.len(), entries);
        assert_eq!(segment.next_offset(), 50);
        let limit = segment.size();
        assert_eq!(
            segment
                .find_timestamp(1125, 0, limit, &config)
                .expect("find"),
            Some((26, 1130))
        );
        // The active segment continues appending where it was.
        let (base, _) = append(&segment, 1, 5000, &config);
        assert_eq!(base, 50);
    }

    #[test]
    fn truncate_cuts_the_log_and_its_index_entries() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = config();
        let segment = Segment::create(&fs::real(), dir.path(), 0, &config).expect("create");
        let mut positions = Vec::new();
        for i in 0..20 {
            positions.push((segment.size(), segment.next_offset()));
            append(&segment, 1, 1000 + i, &config);
        }
        let (cut, next) = positions[9];
        segment.truncate_to(cut, next, &config).expect("truncate");
        assert_eq!(segment.size(), cut);
        assert_eq!(segment.next_offset(), 9);
        assert_eq!(segment.max_timestamp(), 1008);
        let indexes = segment.indexes.read();
        assert!(indexes
            .offsets
            .last()
            .is_none_or(|e| u64::from(e.position) < cut));
        drop(indexes);
        let (base, _) = append(&segment, 1, 2000, &config);
        assert_eq!(base, 9);
        let got = segment.read(9, 1, segment.size(), &config).expect("read");
        assert!(got.is_some());
    }

    /// Every entry of the segment's indexes names the batch at its position, with the time
    /// a rebuild gives it: the entries are the ones `expected` lists.
    fn assert_indexes_are(segment: &Segment, expected: &[(OffsetEntry, TimeEntry)]) {
        let indexes = segment.indexes.read();
        let got: Vec<(OffsetEntry, TimeEntry)> = (0..indexes.offsets.len())
            .map(|i| (indexes.offsets.get(i), indexes.times.get(i)))
            .collect();
        assert_eq!(got, expected);
    }

    fn entries(segment: &Segment) -> Vec<(OffsetEntry, TimeEntry)> {
        let indexes = segment.indexes.read();
        (0..indexes.offsets.len())
            .map(|i| (indexes.offsets.get(i), indexes.times.get(i)))
            .collect()
    }

    /// Index files as a crash may leave unsynced writes: the second entry torn (its position
    /// inside the batch before the one it names, its time down to the entry before's), later
    /// entries whole. Every check of shape, order and the last entry passes.
    fn tear_second_entry(dir: &Path, good: &[(OffsetEntry, TimeEntry)]) {
        let (index, times) = (
            segment_file(dir, 0, INDEX_EXT),
            segment_file(dir, 0, TIME_INDEX_EXT),
        );
        let mut offsets = std::fs::read(&index).expect("read");
        let position = good[1].0.position - 1;
        offsets[12..16].copy_from_slice(&position.to_be_bytes());
        std::fs::write(&index, &offsets).expect("write");
        let mut stamps = std::fs::read(&times).expect("read");
        stamps[12..20].copy_from_slice(&good[0].1.timestamp.to_be_bytes());
        std::fs::write(&times, &stamps).expect("write");
    }

    /// One-record batches 10 ms apart, two to an index entry: (base, position) of each.
    fn two_batches_an_entry(segment: &Segment, config: &LogConfig) -> Vec<(u64, u64)> {
        (0..20)
            .map(|i| {
                let position = segment.size();
                (append(segment, 1, 1000 + i * 10, config).0, position)
            })
            .collect()
    }

    /// Seed 1142 of the power-loss soak, at the segment: index entries past what was synced
    /// are not trusted on open, however well-formed; they are derived again from the log, so
    /// offset and time lookups and truncations find what is there.
    #[test]
    fn an_active_segment_derives_its_unsynced_index_entries_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = config();
        let segment = Segment::create(&fs::real(), dir.path(), 0, &config).expect("create");
        let batches = two_batches_an_entry(&segment, &config);
        let good = entries(&segment);
        assert!(good.len() >= 4);
        assert_eq!(
            good[1].0.relative_offset,
            good[0].0.relative_offset + 2,
            "two batches to an entry"
        );
        let size = segment.size();
        segment.sync_indexes().expect("write out");
        drop(segment);
        tear_second_entry(dir.path(), &good);

        // Synced up to the second entry's batch: the first is trusted, the rest derived.
        let synced = Opening::Active {
            indexes_synced_to: u64::from(good[1].0.position),
        };
        let (segment, rebuilt) =
            Segment::open(&fs::real(), dir.path(), 0, size, synced, false, &config).expect("open");
        assert_eq!(rebuilt, 2);
        assert_indexes_are(&segment, &good);
        // The first record at or after a time between the torn entry's and its batch's is
        // in the batch before the one the entry names.
        let between = good[0].1.timestamp + 1;
        let want = u64::from(good[1].0.relative_offset) - 1;
        assert_eq!(
            segment
                .find_timestamp(between, 0, size, &config)
                .expect("find"),
            Some((want, 1000 + want as i64 * 10))
        );
        drop(segment);
        // What the files now hold was synced whole: trusted whole on the next open.
        let all = Opening::Active {
            indexes_synced_to: u64::MAX,
        };
        let (segment, rebuilt) =
            Segment::open(&fs::real(), dir.path(), 0, size, all, false, &config).expect("open");
        assert_eq!(rebuilt, 0);
        assert_indexes_are(&segment, &good);
        drop(segment);

        // Trusted whole, the torn entry passes every check the open makes: that is why it
        // must not be trusted past what was synced.
        tear_second_entry(dir.path(), &good);
        let (segment, rebuilt) =
            Segment::open(&fs::real(), dir.path(), 0, size, all, false, &config).expect("open");
        assert_eq!(rebuilt, 0);
        assert_ne!(entries(&segment), good);
        // A truncation that would start its walk at the torn entry checks it first.
        let after = good[1].0.relative_offset as usize + 1;
        let (base, position) = batches[after];
        segment
            .truncate_to(position, base, &config)
            .expect("a truncation past a torn entry");
        assert_indexes_are(
            &segment,
            &good
                .iter()
                .copied()
                .filter(|(o, _)| u64::from(o.position) < position)
                .collect::<Vec<_>>(),
        );
        assert_eq!(segment.next_offset(), base);
        let (next, _) = append(&segment, 1, 5000, &config);
        assert_eq!(next, base);
    }

    #[test]
    fn names_parse_back() {
        let path = segment_file(Path::new("/d"), 42, LOG_EXT);
        let name = path.file_name().and_then(|n| n.to_str()).expect("name");
        assert_eq!(name, "00000000000000000042.log");
        assert_eq!(parse_segment_name(name, LOG_EXT), Some(42));
        assert_eq!(parse_segment_name("42.log", LOG_EXT), None);
        assert_eq!(
            parse_segment_name("0000000000000000004x.log", LOG_EXT),
            None
        );
        assert_eq!(parse_segment_name(name, INDEX_EXT), None);
    }

    #[test]
    fn create_takes_over_an_empty_leftover_but_never_a_file_with_data() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = config();
        std::fs::write(segment_file(dir.path(), 7, LOG_EXT), b"").expect("leftover");
        let segment = Segment::create(&fs::real(), dir.path(), 7, &config).expect("empty leftover");
        append(&segment, 1, 1000, &config);
        let size = segment.size();
        drop(segment);
        assert!(Segment::create(&fs::real(), dir.path(), 7, &config).is_err());
        let (segment, _) =
            Segment::open(&fs::real(), dir.path(), 7, size, ACTIVE, false, &config).expect("open");
        assert_eq!(segment.next_offset(), 8, "the batch is still there");
    }
}
