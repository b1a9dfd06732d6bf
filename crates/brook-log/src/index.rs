//! The sparse indexes of a segment: `.index` maps offsets to file positions and `.timeindex`
//! maps timestamps to offsets, so a read or a time lookup starts near its batch instead of at
//! the start of a 1 GiB file.
//!
//! Both are files of fixed-size big-endian entries, exactly as long as their entries (nothing
//! is preallocated). Entries are added at the same batches in both files, one every
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
//! zero. (Files written by older versions were preallocated and zero-filled past their
//! entries; an all-zero slot still ends the entries, and the zeros go at the next write-out.)
//!
//! **Memory costs what the index holds.** While its segment takes appends an index keeps its
//! entries in a vector and writes the new ones out when the log moves its recovery point (and
//! when the segment is sealed); once sealed it is a read-only map of the file, whose pages
//! cost memory only when a lookup touches them. `index_bytes_max` is the most an index may
//! hold: a segment rolls when its index is full. Nothing is ever written through a map, so a
//! full disk is an `ENOSPC` error on a write, never a fault.
//!
//! **Durable before vouched for.** The entries written out are fsynced ([`Index::sync`])
//! before the log's checkpoint moves its recovery point past them, and a sealed index is
//! fsynced when its segment rolls. So every entry for a batch below the recovery point is on
//! disk as it was written. Entries past it may be anything a crash left of unsynced writes: a
//! mix of old and new entries, one torn into a position inside a batch, with later entries
//! intact, which no shape check can tell from a good one. Recovery therefore drops them and
//! derives them again from the log it walks (`Segment::open`).
//!
//! Indexes are derived data. [`OffsetIndex::check`] and [`TimeIndex::check`] judge a file on
//! open; whoever finds one wrong rebuilds it from the log rather than trusting it.

use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use crate::error::{LogError, Result};
use crate::fs::{FileMap, Fs, Open};

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

/// Where an index's entries live.
enum Entries {
    /// In memory, the segment taking appends; the first `written` are in the file too.
    Owned { bytes: Vec<u8>, written: usize },
    /// A read-only view of the file: the segment is sealed.
    Mapped(FileMap),
}

/// A file of `E` entries: [`OffsetIndex`] or [`TimeIndex`].
pub(crate) struct Index<E: Entry> {
    path: PathBuf,
    entries: Entries,
    /// The number of entries.
    len: usize,
    /// The file's length, when known to differ from what the entries need (after a
    /// truncation, or a zero-filled file of an older version): fixed at the next write-out.
    file_len: u64,
    /// The most entries the index may hold (`index_bytes_max`): a segment rolls when full.
    capacity: usize,
    /// A write-out (or the creation) changed the file since its last fsync.
    unsynced: bool,
    _entry: PhantomData<E>,
}

impl<E: Entry> std::fmt::Debug for Index<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index")
            .field("path", &self.path)
            .field("len", &self.len)
            .field("sealed", &matches!(self.entries, Entries::Mapped(_)))
            .finish()
    }
}

impl<E: Entry> Index<E> {
    /// Creates (or empties) the file at `path`; the index may hold `capacity_bytes` of entries.
    pub(crate) fn create(fs: &dyn Fs, path: &Path, capacity_bytes: u32) -> Result<Self> {
        fs.open(path, Open::Truncate)
            .map_err(|e| LogError::io(path, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            entries: Entries::Owned {
                bytes: Vec::new(),
                written: 0,
            },
            len: 0,
            file_len: 0,
            capacity: capacity_bytes as usize / E::LEN,
            unsynced: true,
            _entry: PhantomData,
        })
    }

    /// An index with no entries and no file behind it (an offline partition's placeholder).
    pub(crate) fn detached(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
            entries: Entries::Owned {
                bytes: Vec::new(),
                written: 0,
            },
            len: 0,
            file_len: 0,
            capacity: 0,
            unsynced: false,
            _entry: PhantomData,
        }
    }

    /// Opens the file at `path`: `sealed`, as a read-only map; otherwise read into memory to
    /// take more entries.
    ///
    /// Returns `Ok(Err(reason))` when the file is missing or its shape is wrong (not a whole
    /// number of entries, or entries after an empty slot): the caller rebuilds it.
    pub(crate) fn open(
        fs: &dyn Fs,
        path: &Path,
        capacity_bytes: u32,
        sealed: bool,
    ) -> Result<std::result::Result<Self, String>> {
        let file = match fs.open(path, Open::Read) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Err("the file is missing".to_owned()))
            }
            Err(e) => return Err(LogError::io(path, e)),
        };
        let file_len = file.len().map_err(|e| LogError::io(path, e))?;
        if file_len % E::LEN as u64 != 0 {
            return Ok(Err(format!(
                "{file_len} bytes is not a whole number of {}-byte entries",
                E::LEN
            )));
        }
        if file_len > u64::from(u32::MAX) {
            return Ok(Err(format!("{file_len} bytes is larger than any index")));
        }
        let entries = if sealed {
            Entries::Mapped(file.map().map_err(|e| LogError::io(path, e))?)
        } else {
            let bytes = file
                .read_vec_at(0, file_len as usize)
                .map_err(|e| LogError::io(path, e))?;
            Entries::Owned { bytes, written: 0 }
        };
        let mut index = Self {
            path: path.to_path_buf(),
            entries,
            len: 0,
            file_len,
            capacity: capacity_bytes as usize / E::LEN,
            unsynced: false,
            _entry: PhantomData,
        };
        let slots = file_len as usize / E::LEN;
        let all = index.all_bytes();
        // Files of older versions were preallocated: their entries end at the first empty slot.
        let len = if slots > 0 && is_empty_slot(&all[(slots - 1) * E::LEN..]) {
            let len = (0..slots)
                .position(|i| is_empty_slot(&all[i * E::LEN..(i + 1) * E::LEN]))
                .unwrap_or(slots);
            if all[len * E::LEN..].iter().any(|b| *b != 0) {
                return Ok(Err(format!(
                    "an entry follows the empty slot {len}: the file is garbled"
                )));
            }
            len
        } else {
            slots
        };
        index.len = len;
        if let Entries::Owned { bytes, written } = &mut index.entries {
            bytes.truncate(len * E::LEN);
            *written = len;
        }
        Ok(Ok(index))
    }

    /// Every byte the index holds or maps, entries or not.
    fn all_bytes(&self) -> &[u8] {
        match &self.entries {
            Entries::Owned { bytes, .. } => bytes,
            Entries::Mapped(map) => map,
        }
    }

    fn bytes(&self) -> &[u8] {
        &self.all_bytes()[..self.len * E::LEN]
    }

    /// The entries in memory, copied out of the map if the index was sealed.
    fn owned(&mut self) -> (&mut Vec<u8>, &mut usize) {
        if let Entries::Mapped(map) = &self.entries {
            let bytes = map[..self.len * E::LEN].to_vec();
            self.entries = Entries::Owned {
                bytes,
                written: self.len,
            };
        }
        match &mut self.entries {
            Entries::Owned { bytes, written } => (bytes, written),
            Entries::Mapped(_) => unreachable!("made owned above"),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The number of entries.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// No room for another entry: the segment must roll.
    pub(crate) fn is_full(&self) -> bool {
        self.len >= self.capacity
    }

    pub(crate) fn get(&self, i: usize) -> E {
        E::decode(&self.bytes()[i * E::LEN..(i + 1) * E::LEN])
    }

    pub(crate) fn last(&self) -> Option<E> {
        self.len.checked_sub(1).map(|i| self.get(i))
    }

    /// The number of leading entries for which `pred` holds (entries are sorted, so `pred`
    /// must hold for a prefix).
    fn partition_point(&self, pred: impl Fn(&E) -> bool) -> usize {
        let (mut lo, mut hi) = (0, self.len);
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

    /// Adds an entry after the last, in memory (see [`Index::write_out`]).
    pub(crate) fn append(&mut self, entry: E) {
        debug_assert!(self.last().is_none_or(|last| entry.follows(&last)));
        let (bytes, _) = self.owned();
        let at = bytes.len();
        bytes.resize(at + E::LEN, 0);
        entry.encode(&mut bytes[at..]);
        self.len += 1;
    }

    /// Drops every entry from `keep` on (the file follows at the next write-out).
    pub(crate) fn truncate_entries(&mut self, keep: usize) {
        if keep < self.len {
            let (bytes, written) = self.owned();
            bytes.truncate(keep * E::LEN);
            *written = (*written).min(keep);
            self.len = keep;
        }
    }

    /// Writes the entries the file does not have yet, and cuts what it has beyond them. No
    /// fsync ([`Index::sync`] follows before a checkpoint vouches for them).
    pub(crate) fn write_out(&mut self, fs: &dyn Fs) -> Result<()> {
        let want = (self.len * E::LEN) as u64;
        let path = self.path.clone();
        let file_len = self.file_len;
        let Entries::Owned { bytes, written } = &mut self.entries else {
            return Ok(());
        };
        if *written == self.len && file_len == want {
            return Ok(());
        }
        let file = fs
            .open(&path, Open::Create)
            .map_err(|e| LogError::io(&path, e))?;
        let from = *written * E::LEN;
        file.write_all_at(&bytes[from..], from as u64)
            .map_err(|e| LogError::io(&path, e))?;
        if file_len > want {
            file.set_len(want).map_err(|e| LogError::io(&path, e))?;
        }
        *written = self.len;
        self.file_len = want;
        self.unsynced = true;
        Ok(())
    }

    /// Writes the entries out and makes the file durable (fdatasync), unless nothing changed
    /// since its last sync: done before the log's recovery point moves past them.
    pub(crate) fn sync(&mut self, fs: &dyn Fs) -> Result<()> {
        self.write_out(fs)?;
        if !self.unsynced {
            return Ok(());
        }
        fs.open(&self.path, Open::Write)
            .and_then(|file| file.sync_data())
            .map_err(|e| LogError::io(&self.path, e))?;
        self.unsynced = false;
        Ok(())
    }

    /// The segment stops taking appends: writes the entries out, makes them durable and
    /// swaps the memory for a read-only map of the file.
    pub(crate) fn seal(&mut self, fs: &dyn Fs) -> Result<()> {
        if matches!(self.entries, Entries::Mapped(_)) {
            return Ok(());
        }
        self.write_out(fs)?;
        let file = fs
            .open(&self.path, Open::Write)
            .map_err(|e| LogError::io(&self.path, e))?;
        file.sync_data().map_err(|e| LogError::io(&self.path, e))?;
        self.unsynced = false;
        let map = file.map().map_err(|e| LogError::io(&self.path, e))?;
        if map.len() != self.len * E::LEN {
            // Someone else changed the file: keep the entries in memory rather than trust it.
            return Err(LogError::io(
                &self.path,
                std::io::Error::other("the index file changed while it was being sealed"),
            ));
        }
        self.entries = Entries::Mapped(map);
        Ok(())
    }

    /// The index takes entries again (its segment became the active one after a truncation):
    /// the map is replaced by the entries in memory.
    pub(crate) fn unseal(&mut self, capacity_bytes: u32) {
        self.owned();
        self.capacity = capacity_bytes as usize / E::LEN;
    }
}

fn is_empty_slot(bytes: &[u8]) -> bool {
    bytes.iter().all(|b| *b == 0)
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

    /// The number of leading entries that point before `position`, counted from the first
    /// one: unlike [`OffsetIndex::entries_before`], right when the entries from some point on
    /// are what a crash left of unsynced writes and need not be in order.
    pub(crate) fn leading_entries_before(&self, position: u64) -> usize {
        (0..self.len())
            .position(|i| u64::from(self.get(i).position) >= position)
            .unwrap_or(self.len())
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
    use crate::fs::RealFs;

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
        let mut index = OffsetIndex::create(&RealFs, &path, 1024).expect("create");
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
        let mut offsets =
            OffsetIndex::create(&RealFs, &dir.path().join("0.index"), 1024).expect("o");
        let mut times =
            TimeIndex::create(&RealFs, &dir.path().join("0.timeindex"), 1024).expect("t");
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
    fn entries_are_written_out_sealed_and_reopened_as_they_were() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("0.index");
        let len = |path: &Path| std::fs::metadata(path).expect("meta").len();
        let mut index = OffsetIndex::create(&RealFs, &path, 32).expect("create");
        assert_eq!(len(&path), 0, "nothing is preallocated");
        for i in 1..=3 {
            index.append(offset_entry(i, i * 7));
        }
        assert_eq!(len(&path), 0, "entries stay in memory until written out");
        index.write_out(&RealFs).expect("write out");
        assert_eq!(len(&path), 24);
        index.truncate_entries(2);
        index.append(offset_entry(5, 50));
        index.write_out(&RealFs).expect("write out");
        assert!(!index.is_full());
        index.append(offset_entry(6, 60));
        assert!(index.is_full(), "32 bytes hold four entries");
        index.seal(&RealFs).expect("seal");
        assert_eq!(len(&path), 32);
        drop(index);
        for sealed in [true, false] {
            let index = OffsetIndex::open(&RealFs, &path, 1024, sealed)
                .expect("open")
                .expect("well formed");
            assert_eq!(index.len(), 4);
            assert_eq!(index.last(), Some(offset_entry(6, 60)));
            assert_eq!(index.lookup(5), Some((2, offset_entry(5, 50))));
        }
        let mut index = OffsetIndex::open(&RealFs, &path, 1024, true)
            .expect("open")
            .expect("well formed");
        index.unseal(1024);
        index.truncate_entries(0);
        index.write_out(&RealFs).expect("cut to nothing");
        assert_eq!(len(&path), 0);
        assert_eq!(index.lookup(100), None);
    }

    #[test]
    fn an_older_zero_filled_file_ends_at_its_first_empty_slot() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("0.index");
        let mut bytes = vec![0u8; 1000];
        offset_entry(1, 7).encode(&mut bytes[0..8]);
        offset_entry(2, 14).encode(&mut bytes[8..16]);
        std::fs::write(&path, &bytes).expect("write");
        let mut index = OffsetIndex::open(&RealFs, &path, 1000, false)
            .expect("open")
            .expect("well formed");
        assert_eq!(index.len(), 2);
        index.write_out(&RealFs).expect("write out");
        assert_eq!(
            std::fs::metadata(&path).expect("meta").len(),
            16,
            "zeros cut"
        );
    }

    #[test]
    fn misshapen_or_garbled_files_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("0.index");
        let open = |path: &Path| OffsetIndex::open(&RealFs, path, 1024, false).expect("io");
        assert!(open(&path).is_err(), "missing");
        std::fs::write(&path, [0u8; 13]).expect("write");
        assert!(open(&path).is_err(), "13 bytes");
        let mut bytes = vec![0u8; 32];
        bytes[20] = 1; // an entry after an empty slot
        std::fs::write(&path, &bytes).expect("write");
        assert!(open(&path).is_err(), "hole");
        let mut bytes = vec![0u8; 16];
        offset_entry(5, 50).encode(&mut bytes[0..8]);
        offset_entry(4, 60).encode(&mut bytes[8..16]);
        std::fs::write(&path, &bytes).expect("write");
        let index = open(&path).expect("shape is fine");
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
