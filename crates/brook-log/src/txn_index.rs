//! The aborted transaction index of a segment, `{base:020}.txnindex`, as Kafka's
//! `TransactionIndex`: one entry per transaction whose abort marker lies in the segment, so a
//! read_committed fetch learns which producers' batches to drop without scanning the log.
//!
//! Fixed 34-byte entries, big-endian, appended in marker order:
//!
//! | field              | type |                                                     |
//! |--------------------|------|-----------------------------------------------------|
//! | `version`          | i16  | 0                                                   |
//! | `producerId`       | i64  |                                                     |
//! | `firstOffset`      | i64  | the transaction's first offset in this partition    |
//! | `lastOffset`       | i64  | its abort marker's offset (inside this segment)     |
//! | `lastStableOffset` | i64  | the partition's last stable offset once it aborted  |
//!
//! Derived data, like the offset indexes: the file is created on the first abort, written with
//! the segment (fsynced when the segment is) and checked at open (length, versions, order, the
//! range of the segment); a wrong one is rebuilt from the log, and entries for the log's tail
//! are re-derived from the batches replayed at open (see `PartitionLog::open`). Every entry
//! is also kept in memory: a partition holds one per aborted transaction.

use std::path::{Path, PathBuf};

use crate::error::{LogError, Result};
use crate::fs::{self, FileRef, FsRef, Open};

/// File extension of the aborted transaction index.
pub(crate) const TXN_INDEX_EXT: &str = "txnindex";
/// Bytes per entry.
pub(crate) const ENTRY_LEN: usize = 34;

/// A transaction aborted in a partition, as a read_committed reader must know it: drop the
/// batches of `producer_id` from `first_offset` up to its abort marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: u64,
}

/// One entry of the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AbortedEntry {
    pub producer_id: i64,
    pub first_offset: u64,
    pub last_offset: u64,
    pub last_stable_offset: u64,
}

impl AbortedEntry {
    fn encode(&self) -> [u8; ENTRY_LEN] {
        let mut out = [0u8; ENTRY_LEN];
        out[2..10].copy_from_slice(&self.producer_id.to_be_bytes());
        out[10..18].copy_from_slice(&self.first_offset.to_be_bytes());
        out[18..26].copy_from_slice(&self.last_offset.to_be_bytes());
        out[26..34].copy_from_slice(&self.last_stable_offset.to_be_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> std::result::Result<Self, &'static str> {
        let u64_at = |at: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&bytes[at..at + 8]);
            u64::from_be_bytes(a)
        };
        if bytes[0..2] != [0, 0] {
            return Err("entry version is not 0");
        }
        let entry = Self {
            producer_id: u64_at(2) as i64,
            first_offset: u64_at(10),
            last_offset: u64_at(18),
            last_stable_offset: u64_at(26),
        };
        if entry.producer_id < 0 || entry.first_offset > entry.last_offset {
            return Err("impossible entry");
        }
        Ok(entry)
    }
}

/// The aborted transactions whose markers lie in one segment.
#[derive(Debug)]
pub(crate) struct TxnIndex {
    fs: FsRef,
    path: PathBuf,
    entries: Vec<AbortedEntry>,
    /// Open for appends once the first entry is written.
    file: Option<FileRef>,
    /// Bytes appended since the last fsync.
    dirty: bool,
}

/// The most a segment's index may hold: an entry per aborted transaction whose marker is in
/// the segment, each marker at least one batch, so far more than any real segment needs.
const INDEX_BYTES_MAX: u64 = 64 << 20;

/// The path of the index of the segment at `base`.
pub(crate) fn txn_index_path(dir: &Path, base: u64) -> PathBuf {
    crate::segment::segment_file(dir, base, TXN_INDEX_EXT)
}

impl TxnIndex {
    /// An empty index for a new segment (no file until the first abort).
    pub(crate) fn empty(fs: &FsRef, dir: &Path, base: u64) -> Self {
        Self {
            fs: FsRef::clone(fs),
            path: txn_index_path(dir, base),
            entries: Vec::new(),
            file: None,
            dirty: false,
        }
    }

    /// Loads the index of the segment at `base` whose offsets end before `end` (`None`: the
    /// active segment, open-ended). A missing file is an empty index; `Err(reason)` when the
    /// file cannot be right and must be rebuilt.
    pub(crate) fn load(
        fs: &FsRef,
        dir: &Path,
        base: u64,
        end: Option<u64>,
    ) -> Result<std::result::Result<Self, String>> {
        let mut index = Self::empty(fs, dir, base);
        let bytes = match fs.read_small(&index.path, INDEX_BYTES_MAX) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Ok(Ok(index)),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => return Ok(Err(e.to_string())),
            Err(e) => return Err(LogError::io(&index.path, e)),
        };
        if bytes.len() % ENTRY_LEN != 0 {
            return Ok(Err(format!(
                "{} bytes is not a whole number of {ENTRY_LEN}-byte entries",
                bytes.len()
            )));
        }
        let mut last = None;
        for chunk in bytes.chunks_exact(ENTRY_LEN) {
            let entry = match AbortedEntry::decode(chunk) {
                Ok(entry) => entry,
                Err(reason) => return Ok(Err(reason.to_string())),
            };
            if entry.last_offset < base || end.is_some_and(|end| entry.last_offset >= end) {
                return Ok(Err(format!(
                    "marker offset {} is outside the segment",
                    entry.last_offset
                )));
            }
            if last.is_some_and(|l| entry.last_offset <= l) {
                return Ok(Err("entries are not in marker order".into()));
            }
            last = Some(entry.last_offset);
            index.entries.push(entry);
        }
        Ok(Ok(index))
    }

    pub(crate) fn entries(&self) -> &[AbortedEntry] {
        &self.entries
    }

    /// Appends an entry (its marker is at or after every entry's). Not fsynced: see
    /// [`TxnIndex::sync`].
    pub(crate) fn append(&mut self, entry: AbortedEntry) -> Result<()> {
        let file = match &mut self.file {
            Some(file) => file,
            slot => slot.insert(
                self.fs
                    .open(&self.path, Open::Create)
                    .map_err(|e| LogError::io(&self.path, e))?,
            ),
        };
        let at = (self.entries.len() * ENTRY_LEN) as u64;
        file.write_all_at(&entry.encode(), at)
            .map_err(|e| LogError::io(&self.path, e))?;
        self.entries.push(entry);
        self.dirty = true;
        Ok(())
    }

    /// Replaces the entries from marker offset `from` on with `entries` (recovery's re-derived
    /// tail), rewriting the file when anything changed.
    pub(crate) fn replace_from(&mut self, from: u64, entries: Vec<AbortedEntry>) -> Result<()> {
        let keep = self.entries.partition_point(|e| e.last_offset < from);
        if self.entries[keep..] == entries[..] {
            return Ok(());
        }
        self.entries.truncate(keep);
        self.entries.extend(entries);
        self.rewrite()
    }

    /// Drops the entries whose markers are at or past `offset` (a truncation).
    pub(crate) fn truncate_to(&mut self, offset: u64) -> Result<()> {
        let keep = self.entries.partition_point(|e| e.last_offset < offset);
        if keep == self.entries.len() {
            return Ok(());
        }
        self.entries.truncate(keep);
        self.rewrite()
    }

    /// Writes the file from the entries in memory (removing it when there are none).
    fn rewrite(&mut self) -> Result<()> {
        self.file = None;
        if self.entries.is_empty() {
            return fs::remove_if_present(&*self.fs, &self.path)
                .map(drop)
                .map_err(|e| LogError::io(&self.path, e));
        }
        let bytes: Vec<u8> = self.entries.iter().flat_map(|e| e.encode()).collect();
        let file = self
            .fs
            .open(&self.path, Open::Truncate)
            .map_err(|e| LogError::io(&self.path, e))?;
        file.write_all_at(&bytes, 0)
            .and_then(|()| file.sync_data())
            .map_err(|e| LogError::io(&self.path, e))?;
        self.dirty = false;
        self.file = Some(file);
        Ok(())
    }

    /// fdatasyncs what was appended since the last sync.
    pub(crate) fn sync(&mut self) -> Result<()> {
        if let (true, Some(file)) = (self.dirty, &self.file) {
            file.sync_data().map_err(|e| LogError::io(&self.path, e))?;
        }
        self.dirty = false;
        Ok(())
    }

    /// Deletes the file (its segment is gone).
    pub(crate) fn delete(self) -> Result<()> {
        fs::remove_if_present(&*self.fs, &self.path)
            .map(drop)
            .map_err(|e| LogError::io(&self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(producer_id: i64, first: u64, last: u64) -> AbortedEntry {
        AbortedEntry {
            producer_id,
            first_offset: first,
            last_offset: last,
            last_stable_offset: last + 1,
        }
    }

    #[test]
    fn entries_survive_reopen_and_damage_is_found() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut index = TxnIndex::empty(&fs::real(), dir.path(), 100);
        assert!(
            !txn_index_path(dir.path(), 100).exists(),
            "no file before an abort"
        );
        index.append(entry(1, 90, 105)).expect("append");
        index.append(entry(2, 101, 110)).expect("append");
        index.sync().expect("sync");
        let bytes = std::fs::read(txn_index_path(dir.path(), 100)).expect("read");
        assert_eq!(bytes.len(), 2 * ENTRY_LEN);
        let loaded = TxnIndex::load(&fs::real(), dir.path(), 100, Some(200))
            .expect("io")
            .expect("valid");
        assert_eq!(loaded.entries(), index.entries());
        assert!(
            TxnIndex::load(&fs::real(), dir.path(), 100, Some(108))
                .expect("io")
                .is_err(),
            "an entry past the segment's end"
        );
        std::fs::write(txn_index_path(dir.path(), 100), &bytes[..40]).expect("cut");
        assert!(TxnIndex::load(&fs::real(), dir.path(), 100, None)
            .expect("io")
            .is_err());
        let mut swapped = bytes[ENTRY_LEN..].to_vec();
        swapped.extend_from_slice(&bytes[..ENTRY_LEN]);
        std::fs::write(txn_index_path(dir.path(), 100), swapped).expect("swap");
        assert!(TxnIndex::load(&fs::real(), dir.path(), 100, None)
            .expect("io")
            .is_err());
    }

    #[test]
    fn truncation_and_replacement_rewrite_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut index = TxnIndex::empty(&fs::real(), dir.path(), 0);
        for i in 0..4 {
            index
                .append(entry(i, i as u64 * 10, i as u64 * 10 + 5))
                .expect("append");
        }
        index.truncate_to(20).expect("truncate");
        assert_eq!(index.entries().len(), 2);
        index
            .replace_from(10, vec![entry(9, 8, 12), entry(8, 13, 14)])
            .expect("replace");
        let loaded = TxnIndex::load(&fs::real(), dir.path(), 0, None)
            .expect("io")
            .expect("valid");
        assert_eq!(
            loaded.entries(),
            &[entry(0, 0, 5), entry(9, 8, 12), entry(8, 13, 14)]
        );
        index.truncate_to(0).expect("all");
        assert!(!txn_index_path(dir.path(), 0).exists());
    }
}
