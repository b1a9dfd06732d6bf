//! brook's own small files: a checked envelope and an atomic, durable replace.
//!
//! Recovery checkpoints, log start offsets, topic configs, committed-offset snapshots and the
//! clean-shutdown marker are all tiny and rewritten whole. Each is stored as
//!
//! | offset | field    | type | notes                                     |
//! |-------:|----------|------|-------------------------------------------|
//! | 0      | magic    | [u8; 4] | names the kind of file (`BRCK`, `BRTC`, ...) |
//! | 4      | version  | u16  | format version of the payload             |
//! | 6      | length   | u32  | payload bytes                             |
//! | 10     | payload  | bytes|                                           |
//! | 10+len | crc      | u32  | CRC-32 (IEEE, crc32fast) of bytes 0..10+len |
//!
//! (big-endian). A file is replaced by writing a temporary sibling, fsyncing it, renaming it over
//! the old one and fsyncing the directory, so a crash leaves either the old or the new file,
//! never a mix. A file whose envelope does not check out is reported, never half-trusted.
//!
//! A file rewritten often (the recovery checkpoint, the committed offsets) is kept instead as
//! [`Alternating`] copies: two envelopes whose payloads start with a sequence number, the
//! older one overwritten in place and fdatasync'ed, so a write costs one fsync and a torn or
//! flipped write loses at most that write (the other copy holds the one before).
//!
//! The public functions work on the real file system (the broker keeps its offsets file with
//! them); inside brook-log the same rules run on the store's file layer (`crate::fs`).

use std::path::{Path, PathBuf};

use crate::error::LogError;
use crate::fs::{self, Fs, Open};

const ENVELOPE_HEADER: usize = 10;
const CRC_LEN: usize = 4;
/// No small file may exceed this; anything larger read from disk is damage, not data.
pub const META_BYTES_MAX: usize = 16 << 20;

/// Encodes `payload` in the envelope.
pub fn encode(magic: [u8; 4], version: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(ENVELOPE_HEADER + payload.len() + CRC_LEN);
    out.extend_from_slice(&magic);
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// Checks the envelope and returns `(version, payload)`. `what` and `path` only name the file
/// in errors.
pub fn decode<'a>(
    bytes: &'a [u8],
    magic: [u8; 4],
    what: &'static str,
    path: &Path,
) -> Result<(u16, &'a [u8]), LogError> {
    let bad = |reason: String| LogError::BadMetaFile {
        what,
        path: path.to_path_buf(),
        reason,
    };
    if bytes.len() < ENVELOPE_HEADER + CRC_LEN {
        return Err(bad(format!(
            "{} bytes is shorter than the envelope",
            bytes.len()
        )));
    }
    if bytes[0..4] != magic {
        return Err(bad(format!(
            "magic {:?} is not {:?}",
            String::from_utf8_lossy(&bytes[0..4]),
            String::from_utf8_lossy(&magic)
        )));
    }
    let version = u16::from_be_bytes([bytes[4], bytes[5]]);
    let length = u32::from_be_bytes([bytes[6], bytes[7], bytes[8], bytes[9]]) as usize;
    let need = ENVELOPE_HEADER + length + CRC_LEN;
    if length > META_BYTES_MAX || bytes.len() != need {
        return Err(bad(format!(
            "payload length {length} does not match the file size {}",
            bytes.len()
        )));
    }
    let body_end = ENVELOPE_HEADER + length;
    let stored = u32::from_be_bytes([
        bytes[body_end],
        bytes[body_end + 1],
        bytes[body_end + 2],
        bytes[body_end + 3],
    ]);
    let computed = crc32fast::hash(&bytes[..body_end]);
    if stored != computed {
        return Err(bad(format!(
            "CRC-32 mismatch: stored {stored:#010x}, computed {computed:#010x}"
        )));
    }
    Ok((version, &bytes[ENVELOPE_HEADER..body_end]))
}

/// Reads and checks a small file. `Ok(None)` when it does not exist.
pub fn read(
    path: &Path,
    magic: [u8; 4],
    what: &'static str,
) -> Result<Option<(u16, Vec<u8>)>, LogError> {
    read_in(&fs::RealFs, path, magic, what)
}

/// [`read`] on the file system `fs`.
pub(crate) fn read_in(
    fs: &dyn Fs,
    path: &Path,
    magic: [u8; 4],
    what: &'static str,
) -> Result<Option<(u16, Vec<u8>)>, LogError> {
    let max = (ENVELOPE_HEADER + META_BYTES_MAX + CRC_LEN) as u64;
    let bytes = match fs.read_small(path, max) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
            return Err(LogError::BadMetaFile {
                what,
                path: path.to_path_buf(),
                reason: e.to_string(),
            })
        }
        Err(e) => return Err(LogError::io(path, e)),
    };
    let (version, payload) = decode(&bytes, magic, what, path)?;
    Ok(Some((version, payload.to_vec())))
}

/// Atomically and durably replaces `path` with the enveloped `payload`.
pub fn write(path: &Path, magic: [u8; 4], version: u16, payload: &[u8]) -> Result<(), LogError> {
    write_in(&fs::RealFs, path, magic, version, payload)
}

/// [`write`] on the file system `fs`.
pub(crate) fn write_in(
    fs: &dyn Fs,
    path: &Path,
    magic: [u8; 4],
    version: u16,
    payload: &[u8],
) -> Result<(), LogError> {
    let bytes = encode(magic, version, payload);
    let tmp = path.with_extension("tmp");
    let file = fs
        .open(&tmp, Open::Truncate)
        .map_err(|e| LogError::io(&tmp, e))?;
    file.write_all_at(&bytes, 0)
        .and_then(|()| file.sync_data())
        .map_err(|e| LogError::io(&tmp, e))?;
    drop(file);
    fs.rename(&tmp, path).map_err(|e| LogError::io(path, e))?;
    if let Some(dir) = path.parent() {
        sync_dir_in(fs, dir)?;
    }
    Ok(())
}

/// A small file kept as two alternating copies, `<path>.0` and `<path>.1`: see the module
/// docs. Each copy is an envelope whose payload starts with a big-endian u64 sequence number;
/// the valid copy with the higher number is the file's content. A file written by
/// [`write()`] at `<path>` itself (an older layout) is read when neither copy exists, and
/// removed once a copy is written.
#[derive(Debug)]
pub struct Alternating {
    path: PathBuf,
    magic: [u8; 4],
    /// The sequence number of the newest valid copy (0: none).
    seq: u64,
    /// Copies known to exist (their names durable).
    exists: [bool; 2],
    /// A file of the older layout is there, to remove after the first write.
    legacy: bool,
}

/// What [`Alternating::open`] found.
#[derive(Debug)]
pub struct AlternatingRead {
    /// The content of the newest valid copy: its version and payload (without the sequence
    /// number); `None` when there is no copy at all, or none that checks out.
    pub content: Option<(u16, Vec<u8>)>,
    /// Copies that exist but do not check out. With a valid other copy this is what a write
    /// torn by a crash leaves (at most the last write is lost); with none, the file is lost.
    pub damaged: Vec<LogError>,
    /// Copies that are missing, or present but all zeros (never written whole). Neither is
    /// damage where copies are first written one at a time (a log's checkpoint); where both
    /// are written when the file is created (the committed offsets), both are.
    pub absent: Vec<PathBuf>,
}

const SEQ_LEN: usize = 8;

impl Alternating {
    /// Reads the copies of `path` on the real file system. `what` names the file in errors.
    pub fn open(
        path: &Path,
        magic: [u8; 4],
        what: &'static str,
    ) -> Result<(Self, AlternatingRead), LogError> {
        Self::open_in(&fs::RealFs, path, magic, what)
    }

    /// [`Alternating::open`] on the file system `fs`.
    pub(crate) fn open_in(
        fs: &dyn Fs,
        path: &Path,
        magic: [u8; 4],
        what: &'static str,
    ) -> Result<(Self, AlternatingRead), LogError> {
        let mut file = Self {
            path: path.to_path_buf(),
            magic,
            seq: 0,
            exists: [false; 2],
            legacy: false,
        };
        let mut newest: Option<(u64, u16, Vec<u8>)> = None;
        let mut damaged = Vec::new();
        let mut absent = Vec::new();
        for copy in 0..2 {
            let copy_path = file.copy_path(copy);
            let bytes = match fs.read_small(&copy_path, META_BYTES_MAX as u64 + 64) {
                Ok(Some(bytes)) => bytes,
                Ok(None) => {
                    absent.push(copy_path);
                    continue;
                }
                Err(e) => return Err(LogError::io(&copy_path, e)),
            };
            file.exists[copy] = true;
            if bytes.iter().all(|b| *b == 0) {
                absent.push(copy_path);
                continue; // never written whole: nothing to lose, nothing to report here
            }
            match decode(&bytes, magic, what, &copy_path).and_then(|(version, payload)| {
                split_seq(payload, what, &copy_path).map(|(seq, rest)| (seq, version, rest))
            }) {
                Ok((seq, version, rest)) => {
                    if newest.as_ref().is_none_or(|(s, _, _)| seq > *s) {
                        newest = Some((seq, version, rest.to_vec()));
                    }
                }
                Err(e) => damaged.push(e),
            }
        }
        if !file.exists.contains(&true) {
            // The older layout: one file replaced atomically.
            let content = read_in(fs, path, magic, what);
            file.legacy = !matches!(content, Ok(None));
            return match content {
                Ok(content) => Ok((
                    file,
                    AlternatingRead {
                        content,
                        damaged,
                        absent,
                    },
                )),
                Err(e) => Ok((
                    file,
                    AlternatingRead {
                        content: None,
                        damaged: vec![e],
                        absent,
                    },
                )),
            };
        }
        let content = newest.map(|(seq, version, payload)| {
            file.seq = seq;
            (version, payload)
        });
        Ok((
            file,
            AlternatingRead {
                content,
                damaged,
                absent,
            },
        ))
    }

    /// A file at `path` not read from disk, for a writer that never writes (an offline
    /// partition's checkpoint).
    pub(crate) fn detached(path: &Path, magic: [u8; 4]) -> Self {
        Self {
            path: path.to_path_buf(),
            magic,
            seq: 0,
            exists: [false; 2],
            legacy: false,
        }
    }

    fn copy_path(&self, copy: usize) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(format!(".{copy}"));
        PathBuf::from(name)
    }

    /// The paths of the two copies.
    pub fn paths(&self) -> [PathBuf; 2] {
        [self.copy_path(0), self.copy_path(1)]
    }

    /// Durably writes `payload` as the new content, over the older copy.
    pub fn write(&mut self, version: u16, payload: &[u8]) -> Result<(), LogError> {
        self.write_in(&fs::RealFs, version, payload)
    }

    /// [`Alternating::write`] on the file system `fs`.
    pub(crate) fn write_in(
        &mut self,
        fs: &dyn Fs,
        version: u16,
        payload: &[u8],
    ) -> Result<(), LogError> {
        let seq = self.seq + 1;
        let copy = (seq % 2) as usize;
        let path = self.copy_path(copy);
        let mut body = Vec::with_capacity(SEQ_LEN + payload.len());
        body.extend_from_slice(&seq.to_be_bytes());
        body.extend_from_slice(payload);
        let bytes = encode(self.magic, version, &body);
        let file = fs
            .open(&path, Open::Create)
            .map_err(|e| LogError::io(&path, e))?;
        file.write_all_at(&bytes, 0)
            .and_then(|()| file.set_len(bytes.len() as u64))
            .and_then(|()| file.sync_data())
            .map_err(|e| LogError::io(&path, e))?;
        drop(file);
        if !self.exists[copy] {
            if let Some(dir) = path.parent() {
                sync_dir_in(fs, dir)?;
            }
            self.exists[copy] = true;
        }
        // Only a write that is durable moves on; a failed one is retried on the same copy, so
        // the other (the last good one) is never the one overwritten next.
        self.seq = seq;
        if self.legacy {
            remove_in(fs, &self.path)?;
            self.legacy = false;
        }
        Ok(())
    }
}

fn split_seq<'a>(
    payload: &'a [u8],
    what: &'static str,
    path: &Path,
) -> Result<(u64, &'a [u8]), LogError> {
    if payload.len() < SEQ_LEN {
        return Err(LogError::BadMetaFile {
            what,
            path: path.to_path_buf(),
            reason: format!("{} bytes of payload, no sequence number", payload.len()),
        });
    }
    let mut seq = [0u8; SEQ_LEN];
    seq.copy_from_slice(&payload[..SEQ_LEN]);
    Ok((u64::from_be_bytes(seq), &payload[SEQ_LEN..]))
}

/// Removes a small file durably; a missing file is fine.
pub fn remove(path: &Path) -> Result<(), LogError> {
    remove_in(&fs::RealFs, path)
}

/// [`remove`] on the file system `fs`.
pub(crate) fn remove_in(fs: &dyn Fs, path: &Path) -> Result<(), LogError> {
    if !fs::remove_if_present(fs, path).map_err(|e| LogError::io(path, e))? {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        sync_dir_in(fs, dir)?;
    }
    Ok(())
}

/// fsyncs a directory, so that entries created, renamed or removed in it survive power loss.
pub fn sync_dir(dir: &Path) -> Result<(), LogError> {
    sync_dir_in(&fs::RealFs, dir)
}

/// [`sync_dir`] on the file system `fs`.
pub(crate) fn sync_dir_in(fs: &dyn Fs, dir: &Path) -> Result<(), LogError> {
    // `Path::parent` of a relative file name is the empty path: the current directory.
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    fs.sync_dir(dir).map_err(|e| LogError::io(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAGIC: [u8; 4] = *b"BRTS";

    #[test]
    fn round_trips_and_rejects_every_damage() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.meta");
        assert!(read(&path, MAGIC, "test").expect("read").is_none());
        write(&path, MAGIC, 3, b"hello").expect("write");
        let (version, payload) = read(&path, MAGIC, "test").expect("read").expect("present");
        assert_eq!((version, payload.as_slice()), (3, &b"hello"[..]));

        let good = std::fs::read(&path).expect("bytes");
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x40;
            assert!(
                decode(&bad, MAGIC, "test", &path).is_err(),
                "flip at {i} accepted"
            );
        }
        for cut in 0..good.len() {
            assert!(
                decode(&good[..cut], MAGIC, "test", &path).is_err(),
                "cut at {cut} accepted"
            );
        }
        assert!(decode(&good, *b"XXXX", "test", &path).is_err());
    }

    #[test]
    fn alternating_copies_lose_at_most_the_last_write() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.meta");
        // The older layout is read, and removed by the first write.
        write(&path, MAGIC, 1, b"old").expect("write");
        let (mut file, read) = Alternating::open(&path, MAGIC, "test").expect("open");
        assert_eq!(read.content, Some((1, b"old".to_vec())));
        file.write(2, b"one").expect("write");
        assert!(!path.exists());
        file.write(2, b"two").expect("write");
        let [a, b] = file.paths();
        let (_, read) = Alternating::open(&path, MAGIC, "test").expect("open");
        assert_eq!(read.content, Some((2, b"two".to_vec())));
        assert!(read.damaged.is_empty());
        // Tearing or flipping either copy falls back to the other.
        for damage in [0usize, 1] {
            for target in [&a, &b] {
                let saved = std::fs::read(target).expect("read");
                let mut bad = saved.clone();
                if damage == 0 {
                    bad.truncate(bad.len() / 2);
                } else {
                    let at = bad.len() - 6;
                    bad[at] ^= 1;
                }
                std::fs::write(target, &bad).expect("damage");
                let (_, read) = Alternating::open(&path, MAGIC, "test").expect("open");
                let (_, payload) = read.content.expect("the other copy");
                assert!(payload == b"one" || payload == b"two");
                assert_eq!(read.damaged.len(), 1);
                std::fs::write(target, &saved).expect("restore");
            }
        }
        // Both damaged: the content is lost, and said to be.
        std::fs::write(&a, b"garbage").expect("damage");
        std::fs::write(&b, b"garbage").expect("damage");
        let (mut file, read) = Alternating::open(&path, MAGIC, "test").expect("open");
        assert_eq!(read.content, None);
        assert_eq!(read.damaged.len(), 2);
        file.write(2, b"three").expect("write over the damage");
        let (_, read) = Alternating::open(&path, MAGIC, "test").expect("open");
        assert_eq!(read.content, Some((2, b"three".to_vec())));
    }
}
