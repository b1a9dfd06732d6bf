//! The sparse indexes of a segment: `.index` maps offsets to file positions and `.timeindex`
//! maps timestamps to offsets, so a read or a time lookup starts near its batch instead of at
//! the start of a 1 GiB file.
//!
//! Both are memory-mapped files of fixed-size big-endian entries, preallocated to
//! `index_bytes_max` while their segment is active (the unused tail is zeros) and trimmed to
//! their entries when it rolls. Entries are added at the same batches in both files, one every
//! `index_interval_bytes` of log (see [`IndexCursor`]), so entry `i` of the time index always
//! names the same batch as entry `i` of the offset index:
//!
//! | file         | entry                                    | bytes |
//! |--------------|------------------------------------------|------:|
//! | `.index`     | relative offset u32, file position u32   | 8     |
//! | `.timeindex` | timestamp i64, relative offset u32       | 12    |
//!
//! The relative offset is the batch's `baseOffset` minus the segment's base offset. A time
//! entry's timestamp is the greatest record timestamp of every batch up to and including the
//! one it names, so everything before it is known to be no later.
//!
//! The first batch of a segment (position 0, relative offset 0) is never indexed: a lookup that
//! finds no entry starts at position 0 anyway. So every real entry has a relative offset above
//! zero, and an entry of zeros marks the end of the entries in a preallocated file.
//!
//! Indexes are derived data. [`OffsetIndex::check`] and [`TimeIndex::check`] judge a file on
//! open; whoever finds one wrong rebuilds it from the log rather than trusting it.

use std::fs::{File, OpenOptions};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use memmap2::{MmapMut, MmapOptions};

use crate::error::{LogError, Result};

/// Bytes of one `.index` entry.
pub(crate) const OFFSET_ENTRY_LEN: usize = 8;
/// Bytes of one `.timeindex` entry.
pub(crate) const TIME_ENTRY_LEN: usize = 12;

/// `.index` entry: the batch with `baseOffset = base_offset + relative_offset` starts at
/// `position` in the segment's log file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OffsetEntry {
    pub relative_offset: u32,
    pub position: u32,
}

/// `.timeindex` entry: no record at or before the batch at `relative_offset` has a timestamp
/// above `timestamp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeEntry {
    pub timestamp: i64,
    pub relative_offset: u32,
}

/// A fixed-size entry of an index file.
pub(crate) trait Entry: Copy {
    const LEN: usize;
    fn decode(bytes: &[u8]) -> Self;
    fn encode(&self, out: &mut [u8]);
    /// Whether this entry may come after `prev` in a well-formed index.
    fn follows(&self, prev: &Self) -> bool;
}

impl Entry for OffsetEntry {
    const LEN: usize = OFFSET_ENTRY_LEN;

    fn decode(b: &[u8]) -> Self {
        Self {
            relative_offset: u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            position: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        }
    }

    fn encode(&self, out: &mut [u8]) {
        out[0..4].copy_from_slice(&self.relative_offset.to_be_bytes());
        out[4..8].copy_from_slice(&self.position.to_be_bytes());
    }

    fn follows(&self, prev: &Self) -> bool {
        self.relative_offset > prev.relative_offset && self.position > prev.position
    }
}

impl Entry for TimeEntry {
    const LEN: usize = TIME_ENTRY_LEN;

    fn decode(b: &[u8]) -> Self {
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&b[0..8]);
        Self {
            timestamp: i64::from_be_bytes(ts),
            relative_offset: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
        }
    }

    fn encode(&self, out: &mut [u8]) {
        out[0..8].copy_from_slice(&self.timestamp.to_be_bytes());
        out[8..12].copy_from_slice(&self.relative_offset.to_be_bytes());
    }

    fn follows(&self, prev: &Self) -> bool {
        self.timestamp >= prev.timestamp && self.relative_offset > prev.relative_offset
    }
}

/// Decides where index entries go while a segment is written (or re-read to rebuild or check
/// its indexes): at the first batch that starts `index_interval_bytes` or more after the
/// previous entry (or after the start of the segment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IndexCursor {
    /// Log bytes since the last indexed batch started (or since position 0).
    pub bytes_since_entry: u64,
    /// The greatest batch `maxTimestamp` so far in the segment; `i64::MIN` while empty.
    pub max_timestamp: i64,
}

impl Default for IndexCursor {
    fn default() -> Self {
        Self {
            bytes_since_entry: 0,
            max_timestamp: i64::MIN,
        }
    }
}

impl IndexCursor {
    /// Accounts for the batch at `position` (of `len` bytes, greatest timestamp `max_timestamp`)
    /// and returns the entries to add for it, if it is due one.
    pub(crate) fn on_batch(
        &mut self,
        position: u64,
        relative_offset: u32,
        len: u64,
        max_timestamp: i64,
        interval: u32,
    ) -> Option<(OffsetEntry, TimeEntry)> {
        self.max_timestamp = self.max_timestamp.max(max_timestamp);
        let due = position > 0 && self.bytes_since_entry >= u64::from(interval);
        let entries = due.then(|| {
            self.bytes_since_entry = 0;
            (
                OffsetEntry {
                    relative_offset,
                    position: position as u32,
                },
                TimeEntry {
                    timestamp: self.max_timestamp,
                    relative_offset,
                },
            )
        });
        self.bytes_since_entry += len;
        entries
    }
}

/// A memory-mapped file of `E` entries: [`OffsetIndex`] or [`TimeIndex`].
pub(crate) struct Index<E: Entry> {
    path: PathBuf,
    file: File,
    mmap: MmapMut,
    entries: usize,
    _entry: PhantomData<E>,
}

impl<E: Entry> Index<E> {
    /// Opens (creating if missing) the file at `path` and maps it.
    ///
    /// Returns `Ok(Err(reason))` when the file's shape is wrong (not a whole number of
    /// entries, or entries after the first empty slot): the caller rebuilds it.
    pub(crate) fn open(path: &Path) -> Result<std::result::Result<Self, String>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| LogError::io(path, e))?;
        let len = file.metadata().map_err(|e| LogError::io(path, e))?.len();
        if len % E::LEN as u64 != 0 {
            return Ok(Err(format!(
                "{len} bytes is not a whole number of {}-byte entries",
                E::LEN
            )));
        }
        if len > u64::from(u32::MAX) {
            return Ok(Err(format!("{len} bytes is larger than any index")));
        }
        let mmap = map(&file, path)?;
        let slots = mmap.len() / E::LEN;
        let entries = (0..slots)
            .position(|i| is_empty_slot(&mmap[i * E::LEN..(i + 1) * E::LEN]))
            .unwrap_or(slots);
        if mmap[entries * E::LEN..].iter().any(|b| *b != 0) {
            return Ok(Err(format!(
                "an entry follows the empty slot {entries}: the file is garbled"
            )));
        }
        Ok(Ok(Self {
            path: path.to_path_buf(),
            file,
            mmap,
            entries,
            _entry: PhantomData,
        }))
    }

    /// Creates (or empties) the file at `path`, sized for `capacity_bytes`.
    pub(crate) fn create(path: &Path, capacity_bytes: u32) -> Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(|e| LogError::io(path, e))?;
        let mut index = Self {
            path: path.to_path_buf(),
            mmap: map(&file, path)?,
            file,
            entries: 0,
            _entry: PhantomData,
        };
        index.resize(capacity_bytes)?;
        Ok(index)
    }

    fn capacity(&self) -> usize {
        self.mmap.len() / E::LEN
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The number of entries.
    pub(crate) fn len(&self) -> usize {
        self.entries
    }

    /// No room for another entry: the segment must roll.
    pub(crate) fn is_full(&self) -> bool {
        self.entries >= self.capacity()
    }

    pub(crate) fn get(&self, i: usize) -> E {
        E::decode(&self.mmap[i * E::LEN..(i + 1) * E::LEN])
    }

    pub(crate) fn last(&self) -> Option<E> {
        self.entries.checked_sub(1).map(|i| self.get(i))
    }

    /// The number of leading entries for which `pred` holds (entries are sorted, so `pred`
    /// must hold for a prefix).
    fn partition_point(&self, pred: impl Fn(&E) -> bool) -> usize {
        let (mut lo, mut hi) = (0, self.entries);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if pred(&self.get(mid)) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// Adds an entry after the last; the caller has checked there is room.
    pub(crate) fn append(&mut self, entry: E) {
        assert!(self.entries < self.capacity(), "append to a full index");
        debug_assert!(self.last().is_none_or(|last| entry.follows(&last)));
        let at = self.entries * E::LEN;
        entry.encode(&mut self.mmap[at..at + E::LEN]);
        self.entries += 1;
    }

    /// Drops every entry from `keep` on, zeroing their slots so the file still reads as
    /// `keep` entries if it is reopened.
    pub(crate) fn truncate_entries(&mut self, keep: usize) {
        if keep < self.entries {
            self.mmap[keep * E::LEN..self.entries * E::LEN].fill(0);
            self.entries = keep;
        }
    }

    /// Sets the file (and the map) to `bytes`, rounded down to whole entries but never below
    /// the entries present.
    pub(crate) fn resize(&mut self, bytes: u32) -> Result<()> {
        let slots = (bytes as usize / E::LEN).max(self.entries);
        let len = (slots * E::LEN) as u64;
        if len == self.mmap.len() as u64 {
            return Ok(());
        }
        // The map must not outlive the bytes it covers: shrink the file only once the old map
        // is replaced by an empty one, and map the new length after the file has it.
        self.mmap = MmapMut::map_anon(0).map_err(|e| LogError::io(&self.path, e))?;
        let resized = self.file.set_len(len);
        // Map whatever length the file has now, failed resize or not, so the map and the
        // entries always agree; if even that fails, the index forgets its entries (lookups
        // then scan from the segment start) rather than point past its map.
        let mapped = match map(&self.file, &self.path) {
            Ok(mmap) => {
                self.mmap = mmap;
                Ok(())
            }
            Err(e) => {
                self.entries = 0;
                Err(e)
            }
        };
        resized.map_err(|e| LogError::io(&self.path, e))?;
        mapped
    }

    /// Trims the file to its entries: done when the segment stops being written.
    pub(crate) fn trim(&mut self) -> Result<()> {
        self.resize((self.entries * E::LEN) as u32)
    }

    /// Writes the mapped pages back to the file (msync).
    pub(crate) fn flush(&self) -> Result<()> {
        self.mmap.flush().map_err(|e| LogError::io(&self.path, e))
    }
}

fn is_empty_slot(bytes: &[u8]) -> bool {
    bytes.iter().all(|b| *b == 0)
}

#[allow(unsafe_code)] // mapping a file; see the SAFETY comment.
fn map(file: &File, path: &Path) -> Result<MmapMut> {
    // SAFETY: a mapped file must not change size or content behind the map's back, or a read
    // through it could fault (SIGBUS) or see torn data. brook owns its data directory (the
    // store holds a lock file, one process per directory) and this module is the only code
    // that writes, resizes or maps index files: `resize` replaces the map with an empty one
    // before it shrinks the file and maps again after, and every access goes through the
    // segment's lock around its indexes, so no reference into an old map survives a resize.
    // Files deleted while mapped stay valid until unmapped (POSIX), so retention may unlink a
    // segment that a reader still holds.
    unsafe { MmapOptions::new().map_mut(file) }.map_err(|e| LogError::io(path, e))
}

/// `.index`: offset -> file position of the batch to start scanning from.
pub(crate) type OffsetIndex = Index<OffsetEntry>;

/// `.timeindex`: timestamp -> the batch from which a search for it may start.
pub(crate) type TimeIndex = Index<TimeEntry>;

impl OffsetIndex {
    /// The entry with the greatest relative offset `<= relative_offset`, and its slot; `None`
    /// when the batch holding it is before the first entry (scan from position 0).
    pub(crate) fn lookup(&self, relative_offset: u32) -> Option<(usize, OffsetEntry)> {
        let n = self.partition_point(|e| e.relative_offset <= relative_offset);
        n.checked_sub(1).map(|i| (i, self.get(i)))
    }

    /// The number of entries that point before `position` (they survive a truncation there).
    pub(crate) fn entries_before(&self, position: u64) -> usize {
        self.partition_point(|e| u64::from(e.position) < position)
    }

    /// Checks the entries against what any correct `.index` of a log of `log_len` bytes must
    /// satisfy: relative offsets and positions above zero, strictly increasing, inside the log.
    pub(crate) fn check(&self, log_len: u64) -> std::result::Result<(), String> {
        let mut prev: Option<OffsetEntry> = None;
        for i in 0..self.len() {
            let e = self.get(i);
            if e.relative_offset == 0 || e.position == 0 {
                return Err(format!("entry {i} {e:?} points at the segment start"));
            }
            if u64::from(e.position) >= log_len {
                return Err(format!(
                    "entry {i} {e:?} points past the {log_len}-byte log"
                ));
            }
            if let Some(p) = prev.filter(|p| !e.follows(p)) {
                return Err(format!("entry {i} {e:?} does not follow {p:?}"));
            }
            prev = Some(e);
        }
        Ok(())
    }
}

impl TimeIndex {
    /// The last entry whose timestamp is below `timestamp`, and its slot. Every record up to
    /// the batch it names is earlier than `timestamp`, so the first record at or after
    /// `timestamp` lies in that batch's successors; `None`: search from the segment start.
    pub(crate) fn lookup(&self, timestamp: i64) -> Option<(usize, TimeEntry)> {
        let n = self.partition_point(|e| e.timestamp < timestamp);
        n.checked_sub(1).map(|i| (i, self.get(i)))
    }

    /// Checks that this index pairs with `offsets` entry for entry (same relative offsets, as
    /// both are written at the same batches) and that its timestamps never decrease.
    pub(crate) fn check(&self, offsets: &OffsetIndex) -> std::result::Result<(), String> {
        if self.len() != offsets.len() {
            return Err(format!(
                "{} entries where the offset index has {}",
                self.len(),
                offsets.len()
            ));
        }
        let mut prev: Option<TimeEntry> = None;
        for i in 0..self.len() {
            let e = self.get(i);
            let o = offsets.get(i);
            if e.relative_offset != o.relative_offset {
                return Err(format!(
                    "entry {i} {e:?} names another batch than offset entry {o:?}"
                ));
            }
            if let Some(p) = prev.filter(|p| !e.follows(p)) {
                return Err(format!("entry {i} {e:?} does not follow {p:?}"));
            }
            prev = Some(e);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offset_entry(relative_offset: u32, position: u32) -> OffsetEntry {
        OffsetEntry {
            relative_offset,
            position,
        }
    }

    fn time_entry(timestamp: i64, relative_offset: u32) -> TimeEntry {
        TimeEntry {
            timestamp,
            relative_offset,
        }
    }

    #[test]
    fn offset_lookup_finds_the_greatest_entry_at_or_below() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("0.index");
        let mut index = OffsetIndex::create(&path, 1024).expect("create");
        assert_eq!(index.lookup(5), None);
        for (rel, pos) in [(10, 100), (20, 250), (35, 400)] {
            index.append(offset_entry(rel, pos));
        }
        assert_eq!(index.lookup(9), None);
        assert_eq!(index.lookup(10), Some((0, offset_entry(10, 100))));
        assert_eq!(index.lookup(19), Some((0, offset_entry(10, 100))));
        assert_eq!(index.lookup(20), Some((1, offset_entry(20, 250))));
        assert_eq!(index.lookup(u32::MAX), Some((2, offset_entry(35, 400))));
        assert_eq!(index.entries_before(250), 1);
        assert_eq!(index.entries_before(251), 2);
        index.check(401).expect("a good index checks out");
        assert!(index.check(400).is_err(), "an entry at the end of the log");
    }

    #[test]
    fn time_lookup_finds_the_last_entry_strictly_before() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut offsets = OffsetIndex::create(&dir.path().join("0.index"), 1024).expect("o");
        let mut times = TimeIndex::create(&dir.path().join("0.timeindex"), 1024).expect("t");
        for (i, ts) in [(1u32, 100i64), (2, 100), (3, 150)] {
            offsets.append(offset_entry(i, i * 10));
            times.append(time_entry(ts, i));
        }
        assert_eq!(times.lookup(100), None);
        assert_eq!(times.lookup(101), Some((1, time_entry(100, 2))));
        assert_eq!(times.lookup(150), Some((1, time_entry(100, 2))));
        assert_eq!(times.lookup(151), Some((2, time_entry(150, 3))));
        times.check(&offsets).expect("paired");
        offsets.truncate_entries(2);
        assert!(times.check(&offsets).is_err(), "unpaired entries");
    }

    #[test]
    fn preallocated_file_reopens_with_its_entries_and_trims() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("0.index");
        let mut index = OffsetIndex::create(&path, 1000).expect("create");
        assert_eq!(std::fs::metadata(&path).expect("meta").len(), 1000);
        for i in 1..=3 {
            index.append(offset_entry(i, i * 7));
        }
        index.truncate_entries(2);
        drop(index);
        let mut index = OffsetIndex::open(&path)
            .expect("open")
            .expect("well formed");
        assert_eq!(index.len(), 2);
        assert_eq!(index.last(), Some(offset_entry(2, 14)));
        index.trim().expect("trim");
        assert_eq!(std::fs::metadata(&path).expect("meta").len(), 16);
        index.resize(64).expect("grow");
        index.append(offset_entry(9, 90));
        assert_eq!(index.len(), 3);
        index.trim().expect("trim");
        index.truncate_entries(0);
        index.trim().expect("trim to nothing");
        assert_eq!(std::fs::metadata(&path).expect("meta").len(), 0);
        assert_eq!(index.lookup(100), None);
    }

    #[test]
    fn misshapen_or_garbled_files_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("0.index");
        std::fs::write(&path, [0u8; 13]).expect("write");
        assert!(OffsetIndex::open(&path).expect("io").is_err(), "13 bytes");
        let mut bytes = vec![0u8; 32];
        bytes[20] = 1; // an entry after an empty slot
        std::fs::write(&path, &bytes).expect("write");
        assert!(OffsetIndex::open(&path).expect("io").is_err(), "hole");
        let mut bytes = vec![0u8; 16];
        offset_entry(5, 50).encode(&mut bytes[0..8]);
        offset_entry(4, 60).encode(&mut bytes[8..16]);
        std::fs::write(&path, &bytes).expect("write");
        let index = OffsetIndex::open(&path)
            .expect("io")
            .expect("shape is fine");
        assert!(index.check(1000).is_err(), "offsets go backwards");
    }

    #[test]
    fn cursor_places_an_entry_every_interval() {
        let mut cursor = IndexCursor::default();
        let mut entries = Vec::new();
        let mut position = 0;
        for i in 0..10u32 {
            if let Some((o, t)) = cursor.on_batch(position, i * 2, 40, i64::from(i), 100) {
                entries.push((o, t));
            }
            position += 40;
        }
        // Batches at 0, 40, 80, 120 ...: due once 100 bytes have passed since the last entry.
        let positions: Vec<u32> = entries.iter().map(|(o, _)| o.position).collect();
        assert_eq!(positions, vec![120, 240, 360]);
        assert_eq!(entries[0].1, time_entry(3, 6));
        assert_eq!(cursor.max_timestamp, 9);
    }
}
