//! A read-only walk over the batches of one segment's `.log` file, saying where it stops and why.
//!
//! The offline tools (`brook log dump`, `brook log check`) run on damaged data after a crash,
//! so they must read a segment without opening it as a log: no lock, no write, no recovery, no
//! index. [`LogScanner`] opens the file read-only and checks each batch as it goes: the header
//! shape against the bytes left in the file ([`BatchHeader::check_shape`]), the CRC-32C over the
//! whole batch, and the offset sequence (each batch starts where the previous one ended, the
//! first at the segment's base offset).
//!
//! It never allocates for a length read from the disk: the CRC is computed through a fixed
//! buffer, and a length is believed only up to the bytes actually left in the file.
//!
//! When a batch does not check out, the scanner looks for any valid batch further on, which
//! decides between the two kinds of damage recovery separates (docs/storage.md, "Recovery"):
//!
//! - [`ScanEnd::TornTail`]: nothing valid follows. An interrupted append leaves exactly this
//!   (an incomplete last batch, or a zero-filled tail); recovery may truncate it.
//! - [`ScanEnd::Corrupt`]: a valid batch follows at `next_valid`. This is damage to data that
//!   was once whole, and must be reported, never silently truncated away.
//!
//! Whether a torn tail is harmless is the caller's call: it is in the active (last) segment of a
//! partition, and damage in a rolled segment.

use std::path::{Path, PathBuf};

use crate::batch::header::{CRC_COVERS_FROM, MAGIC_AT};
use crate::batch::{BatchHeader, HEADER_LEN, MAGIC_V2};
use crate::error::{LogError, Result};
use crate::fs::{self, FileIo, FileRef, Fs, Open};

/// Read buffer of the sequential walk.
const READ_BUFFER_BYTES: usize = 1 << 20;
/// Window of the search for a valid batch after a bad one.
const RESYNC_WINDOW_BYTES: usize = 1 << 20;
/// Buffer the CRC of a batch is computed through, whatever the batch's size.
const CRC_CHUNK_BYTES: usize = 64 << 10;

/// A batch that checked out: where it is in the file and its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScannedBatch {
    /// File position of the batch's first byte.
    pub position: u64,
    pub header: BatchHeader,
}

impl ScannedBatch {
    /// The file position just past this batch.
    pub fn end(&self) -> u64 {
        self.position + self.header.total_len() as u64
    }
}

/// Why a scan stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanEnd {
    /// At the end of the file, on a batch boundary.
    Clean,
    /// From `position` to the end of the file there is no valid batch: an incomplete batch, a
    /// zero-filled tail or garbage. `offset` is the offset the next batch would have had.
    TornTail {
        position: u64,
        offset: Option<u64>,
        reason: String,
    },
    /// The batch at `position` is bad but a valid batch starts at `next_valid`.
    Corrupt {
        position: u64,
        offset: Option<u64>,
        reason: String,
        next_valid: u64,
    },
}

/// What a walk over a segment meets, in file order ([`LogScanner::walk`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentEvent<'a> {
    /// A batch that checked out.
    Batch(&'a ScannedBatch),
    /// A torn tail or a corrupt batch (never [`ScanEnd::Clean`]).
    Damage(&'a ScanEnd),
}

/// Walks one `.log` file batch by batch; see the module docs.
#[derive(Debug)]
pub struct LogScanner {
    path: PathBuf,
    reader: SeqReader,
    len: u64,
    position: u64,
    /// The offset the next batch must start at, once known.
    next_offset: Option<u64>,
    /// Offsets may skip between batches (a segment a clean rewrote): the next batch must start
    /// at or after `next_offset` rather than exactly there.
    gaps: bool,
    end: Option<ScanEnd>,
}

impl LogScanner {
    /// Opens `path` read-only and starts at its beginning. `base_offset`, when known (from the
    /// file name), is the offset the first batch must start at.
    pub fn open(path: &Path, base_offset: Option<u64>) -> Result<Self> {
        Self::open_at(path, 0, base_offset)
    }

    /// Opens `path` read-only and starts at `position`, which must be a batch boundary (a
    /// recovery checkpoint); `next_offset` is the offset the batch there must start at.
    pub fn open_at(path: &Path, position: u64, next_offset: Option<u64>) -> Result<Self> {
        Self::open_in(&fs::RealFs, path, position, next_offset)
    }

    /// [`LogScanner::open_at`] on the file system `fs`.
    pub(crate) fn open_in(
        fs: &dyn Fs,
        path: &Path,
        position: u64,
        next_offset: Option<u64>,
    ) -> Result<Self> {
        let file = fs
            .open(path, Open::Read)
            .map_err(|e| LogError::io(path, e))?;
        let len = file.len().map_err(|e| LogError::io(path, e))?;
        let reader = SeqReader::new(file, position.min(len));
        Ok(Self {
            path: path.to_path_buf(),
            reader,
            len,
            position: position.min(len),
            next_offset,
            gaps: false,
            end: None,
        })
    }

    /// Accepts offsets that skip between batches, as in a segment a clean rewrote (strictly
    /// increasing, not contiguous); see docs/storage.md, "Compaction".
    pub fn with_gaps(mut self, gaps: bool) -> Self {
        self.gaps = gaps;
        self
    }

    /// The file's size when it was opened; the scan never reads past it.
    pub fn file_len(&self) -> u64 {
        self.len
    }

    /// The position of the next batch (after the last one returned).
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Why the scan stopped; `None` until [`LogScanner::next_batch`] has returned `Ok(None)`.
    pub fn end(&self) -> Option<&ScanEnd> {
        self.end.as_ref()
    }

    /// The next valid batch, or `Ok(None)` when the scan has stopped (see [`LogScanner::end`]).
    /// `Err` only for I/O errors.
    pub fn next_batch(&mut self) -> Result<Option<ScannedBatch>> {
        if self.end.is_some() {
            return Ok(None);
        }
        match self.check_batch()? {
            Ok(header) => {
                let batch = ScannedBatch {
                    position: self.position,
                    header,
                };
                self.position = batch.end();
                // `check_batch` has checked the offsets are non-negative.
                self.next_offset = Some(header.next_offset() as u64);
                Ok(Some(batch))
            }
            Err(Stop::AtEnd) => {
                self.end = Some(ScanEnd::Clean);
                Ok(None)
            }
            Err(Stop::Bad(reason)) => {
                self.end = Some(self.classify(reason)?);
                Ok(None)
            }
        }
    }

    /// After a [`ScanEnd::Corrupt`] stop, goes on from the next valid batch, so that a tool can
    /// report every damaged place rather than only the first. The offset sequence restarts
    /// there (the bad batch's offsets are unknown). Returns `false`, and does nothing, after
    /// any other stop or before one.
    pub fn resume(&mut self) -> Result<bool> {
        let Some(ScanEnd::Corrupt { next_valid, .. }) = self.end else {
            return Ok(false);
        };
        self.reader.at = next_valid;
        self.position = next_valid;
        self.next_offset = None;
        self.end = None;
        Ok(true)
    }

    /// Walks every valid batch from here to the end of the file, going on after each corrupt
    /// place ([`LogScanner::resume`]), and hands each batch and each damaged place to
    /// `on_event` in file order. Stops at the first error `on_event` returns.
    pub fn walk<E: From<LogError>>(
        &mut self,
        mut on_event: impl FnMut(SegmentEvent<'_>) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        loop {
            while let Some(batch) = self.next_batch()? {
                on_event(SegmentEvent::Batch(&batch))?;
            }
            match self.end() {
                Some(ScanEnd::Clean) | None => {}
                Some(damage) => on_event(SegmentEvent::Damage(damage))?,
            }
            if !self.resume()? {
                return Ok(());
            }
        }
    }

    /// Reads and checks the batch at the current position, leaving the reader just past it.
    fn check_batch(&mut self) -> Result<Result<BatchHeader, Stop>> {
        let left = self.len - self.position;
        if left == 0 {
            return Ok(Err(Stop::AtEnd));
        }
        let mut head = [0u8; HEADER_LEN];
        let have = left.min(HEADER_LEN as u64) as usize;
        self.read_exact(&mut head[..have])?;
        let header = match BatchHeader::parse(&head[..have]) {
            Ok(header) => header,
            Err(e) => return Ok(Err(Stop::Bad(e.to_string()))),
        };
        // The bytes left in the file are the only limit a length from the disk can claim.
        let left = usize::try_from(left).unwrap_or(usize::MAX);
        if let Err(e) = header.check_shape(left) {
            return Ok(Err(Stop::Bad(match e {
                crate::BatchError::TooLarge { size, .. } => {
                    format!("batch length says {size} bytes but only {left} are left in the file")
                }
                other => other.to_string(),
            })));
        }
        let mut crc = crc32c::crc32c(&head[CRC_COVERS_FROM..]);
        let mut rest = header.total_len() - HEADER_LEN;
        let mut chunk = vec![0u8; rest.min(CRC_CHUNK_BYTES)];
        while rest > 0 {
            let n = rest.min(chunk.len());
            self.read_exact(&mut chunk[..n])?;
            crc = crc32c::crc32c_append(crc, &chunk[..n]);
            rest -= n;
        }
        if crc != header.crc {
            return Ok(Err(Stop::Bad(
                crate::BatchError::CrcMismatch {
                    stored: header.crc,
                    computed: crc,
                }
                .to_string(),
            )));
        }
        if header.base_offset < 0 {
            return Ok(Err(Stop::Bad(format!(
                "negative base offset {}",
                header.base_offset
            ))));
        }
        if let Some(expected) = self.next_offset {
            let base = header.base_offset as u64;
            if self.gaps && base < expected {
                return Ok(Err(Stop::Bad(format!(
                    "base offset {base} out of sequence: expected at least {expected} (a \
                     cleaned segment's offsets may skip but never go back)"
                ))));
            }
            if !self.gaps && base != expected {
                return Ok(Err(Stop::Bad(format!(
                    "base offset {base} out of sequence: expected {expected}"
                ))));
            }
        }
        Ok(Ok(header))
    }

    /// Decides between a torn tail and corruption by looking for a valid batch after the bad one.
    fn classify(&self, reason: String) -> Result<ScanEnd> {
        let file = &*self.reader.file;
        let search = find_valid_batch(file, self.position + 1, self.len)
            .map_err(|e| LogError::io(&self.path, e))?;
        let offset = self.next_offset;
        Ok(match search {
            Some(next_valid) => ScanEnd::Corrupt {
                position: self.position,
                offset,
                reason,
                next_valid,
            },
            None if is_zero_filled(file, self.position, self.len)
                .map_err(|e| LogError::io(&self.path, e))? =>
            {
                ScanEnd::TornTail {
                    position: self.position,
                    offset,
                    reason: format!("zero-filled tail of {} bytes", self.len - self.position),
                }
            }
            None => ScanEnd::TornTail {
                position: self.position,
                offset,
                reason,
            },
        })
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> Result<()> {
        self.reader
            .read_exact(buf)
            .map_err(|e| LogError::io(&self.path, e))
    }
}

/// Sequential reads of a file through a buffer of [`READ_BUFFER_BYTES`].
pub(crate) struct SeqReader {
    file: FileRef,
    buf: Vec<u8>,
    /// File position of `buf[0]`.
    buf_at: u64,
    /// Where the next read starts.
    at: u64,
}

impl std::fmt::Debug for SeqReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeqReader").field("at", &self.at).finish()
    }
}

impl SeqReader {
    /// Reads `file` from `at` on.
    pub(crate) fn new(file: FileRef, at: u64) -> Self {
        Self {
            file,
            buf: Vec::new(),
            buf_at: 0,
            at,
        }
    }

    /// The next `out.len()` bytes; `UnexpectedEof` if the file ends first.
    pub(crate) fn read_exact(&mut self, mut out: &mut [u8]) -> std::io::Result<()> {
        while !out.is_empty() {
            let buf_end = self.buf_at + self.buf.len() as u64;
            if self.at < self.buf_at || self.at >= buf_end {
                self.buf.resize(READ_BUFFER_BYTES, 0);
                let n = self.file.read_at(&mut self.buf, self.at)?;
                self.buf.truncate(n);
                self.buf_at = self.at;
                if n == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                continue;
            }
            let from = (self.at - self.buf_at) as usize;
            let n = out.len().min(self.buf.len() - from);
            out[..n].copy_from_slice(&self.buf[from..from + n]);
            out = &mut out[n..];
            self.at += n as u64;
        }
        Ok(())
    }
}

/// Why `check_batch` did not return a batch.
enum Stop {
    AtEnd,
    Bad(String),
}

/// The first position in `from..len` where a whole valid batch starts (shape and CRC-32C), if
/// any. Reads through a fixed window; the CRC of a candidate is computed in chunks.
pub(crate) fn find_valid_batch(
    file: &dyn FileIo,
    from: u64,
    len: u64,
) -> std::io::Result<Option<u64>> {
    let mut window = vec![0u8; RESYNC_WINDOW_BYTES + HEADER_LEN];
    let mut start = from;
    while start + HEADER_LEN as u64 <= len {
        let n = (len - start).min(window.len() as u64) as usize;
        file.read_exact_at(&mut window[..n], start)?;
        // Candidates whose header runs past this window are looked at in the next one.
        let last = (n - HEADER_LEN).min(RESYNC_WINDOW_BYTES - 1);
        for i in 0..=last {
            if window[i + MAGIC_AT] as i8 != MAGIC_V2 {
                continue;
            }
            let position = start + i as u64;
            if is_valid_batch_at(file, &window[i..i + HEADER_LEN], position, len)? {
                return Ok(Some(position));
            }
        }
        start += RESYNC_WINDOW_BYTES as u64;
    }
    Ok(None)
}

fn is_valid_batch_at(
    file: &dyn FileIo,
    head: &[u8],
    position: u64,
    len: u64,
) -> std::io::Result<bool> {
    let Ok(header) = BatchHeader::parse(head) else {
        return Ok(false);
    };
    let left = usize::try_from(len - position).unwrap_or(usize::MAX);
    if header.check_shape(left).is_err() || header.base_offset < 0 {
        return Ok(false);
    }
    let crc = crc_of_range(
        file,
        position + CRC_COVERS_FROM as u64,
        position + header.total_len() as u64,
    )?;
    Ok(crc == header.crc)
}

fn crc_of_range(file: &dyn FileIo, from: u64, to: u64) -> std::io::Result<u32> {
    let mut chunk = vec![0u8; ((to - from) as usize).min(CRC_CHUNK_BYTES)];
    let mut crc = 0;
    let mut at = from;
    while at < to {
        let n = ((to - at) as usize).min(chunk.len());
        file.read_exact_at(&mut chunk[..n], at)?;
        crc = crc32c::crc32c_append(crc, &chunk[..n]);
        at += n as u64;
    }
    Ok(crc)
}

fn is_zero_filled(file: &dyn FileIo, from: u64, len: u64) -> std::io::Result<bool> {
    let mut chunk = vec![0u8; ((len - from) as usize).min(CRC_CHUNK_BYTES)];
    let mut at = from;
    while at < len {
        let n = ((len - at) as usize).min(chunk.len());
        file.read_exact_at(&mut chunk[..n], at)?;
        if chunk[..n].iter().any(|&b| b != 0) {
            return Ok(false);
        }
        at += n as u64;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::header::{
        BATCH_LENGTH_AT, CRC_AT, LAST_OFFSET_DELTA_AT, LEADER_EPOCH_AT, MAX_TIMESTAMP_AT,
        RECORDS_COUNT_AT,
    };

    /// A batch whose header and CRC are right; the scanner never decodes records, so the
    /// record bytes are filler (7 bytes per record, the least a record can take).
    fn batch(base_offset: i64, records: i32) -> Vec<u8> {
        let total = HEADER_LEN + 7 * records as usize;
        let mut b = vec![0u8; total];
        b[..8].copy_from_slice(&base_offset.to_be_bytes());
        b[BATCH_LENGTH_AT..][..4].copy_from_slice(&((total - 12) as i32).to_be_bytes());
        b[MAGIC_AT] = MAGIC_V2 as u8;
        b[LAST_OFFSET_DELTA_AT..][..4].copy_from_slice(&(records - 1).to_be_bytes());
        b[MAX_TIMESTAMP_AT..][..8].copy_from_slice(&1_700_000_000_000i64.to_be_bytes());
        b[RECORDS_COUNT_AT..][..4].copy_from_slice(&records.to_be_bytes());
        for (i, byte) in b[HEADER_LEN..].iter_mut().enumerate() {
            *byte = i as u8 | 1;
        }
        let crc = crc32c::crc32c(&b[CRC_COVERS_FROM..]);
        b[CRC_AT..][..4].copy_from_slice(&crc.to_be_bytes());
        b
    }

    /// Three batches at offsets 100..=102, 103..=107, 108 and their positions.
    fn three_batches() -> (Vec<u8>, [u64; 3]) {
        let (a, b, c) = (batch(100, 3), batch(103, 5), batch(108, 1));
        let positions = [0, a.len() as u64, (a.len() + b.len()) as u64];
        ([a, b, c].concat(), positions)
    }

    fn scan(bytes: &[u8], base: Option<u64>) -> (Vec<(u64, i64)>, ScanEnd) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("00000000000000000100.log");
        std::fs::write(&path, bytes).expect("write");
        let mut scanner = LogScanner::open(&path, base).expect("open");
        let mut found = Vec::new();
        while let Some(b) = scanner.next_batch().expect("scan") {
            found.push((b.position, b.header.base_offset));
        }
        let end = scanner.end().cloned().expect("stopped");
        (found, end)
    }

    #[test]
    fn walks_a_whole_file_to_a_clean_end() {
        let (bytes, pos) = three_batches();
        let (found, end) = scan(&bytes, Some(100));
        assert_eq!(found, vec![(pos[0], 100), (pos[1], 103), (pos[2], 108)]);
        assert_eq!(end, ScanEnd::Clean);
        assert_eq!(scan(&[], None), (vec![], ScanEnd::Clean));
    }

    #[test]
    fn every_cut_of_the_last_batch_is_a_torn_tail() {
        let (bytes, pos) = three_batches();
        for cut in pos[2] as usize + 1..bytes.len() {
            let (found, end) = scan(&bytes[..cut], Some(100));
            assert_eq!(found.len(), 2, "cut {cut}");
            match end {
                ScanEnd::TornTail {
                    position, offset, ..
                } => assert_eq!((position, offset), (pos[2], Some(108)), "cut {cut}"),
                other => panic!("cut {cut}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_zero_filled_tail_is_torn_and_says_so() {
        let (mut bytes, _) = three_batches();
        let good = bytes.len() as u64;
        bytes.extend_from_slice(&[0u8; 4096]);
        let (found, end) = scan(&bytes, Some(100));
        assert_eq!(found.len(), 3);
        assert_eq!(
            end,
            ScanEnd::TornTail {
                position: good,
                offset: Some(109),
                reason: "zero-filled tail of 4096 bytes".into()
            }
        );
    }

    #[test]
    fn a_flipped_byte_before_a_valid_batch_is_corruption_not_a_tail() {
        let (bytes, pos) = three_batches();
        // Every byte but baseOffset (checked by the sequence) and partitionLeaderEpoch (not
        // covered by the CRC, and rewritten by the broker).
        let epoch = pos[1] as usize + LEADER_EPOCH_AT..pos[1] as usize + MAGIC_AT;
        for at in pos[1] as usize + BATCH_LENGTH_AT..pos[2] as usize {
            if epoch.contains(&at) {
                continue;
            }
            let mut bad = bytes.clone();
            bad[at] ^= 0x10;
            let (found, end) = scan(&bad, Some(100));
            assert_eq!(found, vec![(0, 100)], "flip at {at}");
            match end {
                ScanEnd::Corrupt {
                    position,
                    offset,
                    next_valid,
                    ..
                } => assert_eq!((position, offset, next_valid), (pos[1], Some(103), pos[2])),
                other => panic!("flip at {at}: {other:?}"),
            }
        }
    }

    #[test]
    fn resumes_after_corruption_and_finds_the_rest() {
        let (mut bytes, pos) = three_batches();
        bytes[pos[1] as usize + HEADER_LEN] ^= 1;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.log");
        std::fs::write(&path, &bytes).expect("write");
        let mut scanner = LogScanner::open(&path, Some(100)).expect("open");
        assert!(!scanner.resume().expect("resume"), "nothing to resume yet");
        assert!(scanner.next_batch().expect("scan").is_some());
        assert!(scanner.next_batch().expect("scan").is_none());
        assert!(matches!(scanner.end(), Some(ScanEnd::Corrupt { .. })));
        assert!(scanner.resume().expect("resume"));
        let after = scanner
            .next_batch()
            .expect("scan")
            .expect("the third batch");
        assert_eq!((after.position, after.header.base_offset), (pos[2], 108));
        assert!(scanner.next_batch().expect("scan").is_none());
        assert_eq!(scanner.end(), Some(&ScanEnd::Clean));
        assert!(
            !scanner.resume().expect("resume"),
            "a clean end does not resume"
        );
    }

    #[test]
    fn offsets_out_of_sequence_are_caught() {
        let (bytes, pos) = three_batches();
        let (found, end) = scan(&bytes, Some(99));
        assert!(found.is_empty());
        assert!(
            matches!(&end, ScanEnd::Corrupt { position: 0, reason, .. } if reason.contains("expected 99")),
            "{end:?}"
        );
        let mut gap = bytes.clone();
        gap[pos[2] as usize..][..8].copy_from_slice(&110i64.to_be_bytes());
        let (found, end) = scan(&gap, Some(100));
        assert_eq!(found.len(), 2);
        assert!(
            matches!(&end, ScanEnd::TornTail { position, reason, .. } if *position == pos[2] && reason.contains("expected 108")),
            "{end:?}"
        );
    }

    #[test]
    fn starts_at_a_checkpoint() {
        let (bytes, pos) = three_batches();
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.log");
        std::fs::write(&path, &bytes).expect("write");
        let mut scanner = LogScanner::open_at(&path, pos[1], Some(103)).expect("open");
        let first = scanner.next_batch().expect("scan").expect("a batch");
        assert_eq!((first.position, first.end()), (pos[1], pos[2]));
        assert!(scanner.next_batch().expect("scan").is_some());
        assert!(scanner.next_batch().expect("scan").is_none());
        assert_eq!(scanner.end(), Some(&ScanEnd::Clean));
        assert_eq!(scanner.file_len(), bytes.len() as u64);
    }
}
