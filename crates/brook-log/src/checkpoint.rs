//! The partition log's two small files, in brook's checked envelope ([`crate::meta`]):
//!
//! - `checkpoint` (magic `BRCP`, version 2): the log start offset, and the recovery point: a
//!   segment, a file position in it and the offset of the batch there, up to which every byte
//!   was fsynced and verified. After an unclean stop, recovery CRC-walks from that point only,
//!   and damage found before it is corruption, never a torn tail. Kept as
//!   [`meta::Alternating`] copies (`checkpoint.0`, `checkpoint.1`): a write overwrites the older
//!   copy in place and costs one fdatasync, so the log can move its recovery point as its
//!   fsyncs progress, and a torn write loses only that move. Version 1 (one file, `checkpoint`)
//!   is still read.
//! - `clean-shutdown` (magic `BRCS`): written last by a clean close, holding the log end
//!   offset; removed when the log opens. Its presence means nothing needs to be walked.
//!
//! Payloads are big-endian u64s.

use std::path::Path;

use crate::error::{LogError, Result};
use crate::fs::Fs;
use crate::meta::{self, Alternating};

/// File name of the checkpoint (its copies add `.0` and `.1`).
pub(crate) const CHECKPOINT_FILE: &str = "checkpoint";
/// File name of the clean-shutdown marker.
pub(crate) const CLEAN_SHUTDOWN_FILE: &str = "clean-shutdown";

const CHECKPOINT_MAGIC: [u8; 4] = *b"BRCP";
const CLEAN_MAGIC: [u8; 4] = *b"BRCS";
/// The checkpoint's version: 2 since it is kept as alternating copies (the payload is the
/// same four u64s as version 1's).
const CHECKPOINT_VERSION: u16 = 2;
const CHECKPOINT_VERSION_SINGLE: u16 = 1;
const CLEAN_VERSION: u16 = 1;

/// A place in the log: the batch boundary at `position` in segment `segment` (a base offset),
/// where offset `offset` begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LogPosition {
    pub offset: u64,
    pub segment: u64,
    pub position: u64,
}

/// What the checkpoint file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Checkpoint {
    pub log_start: u64,
    /// Everything before this is fsynced and known good.
    pub recovery_point: LogPosition,
}

impl Checkpoint {
    fn encode(&self) -> Vec<u8> {
        [
            self.log_start,
            self.recovery_point.segment,
            self.recovery_point.position,
            self.recovery_point.offset,
        ]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect()
    }

    fn decode(payload: &[u8], path: &Path) -> Result<Self> {
        let [log_start, segment, position, offset] = u64s::<4>(payload, "checkpoint", path)?;
        Ok(Self {
            log_start,
            recovery_point: LogPosition {
                offset,
                segment,
                position,
            },
        })
    }
}

fn u64s<const N: usize>(payload: &[u8], what: &'static str, path: &Path) -> Result<[u64; N]> {
    if payload.len() != N * 8 {
        return Err(LogError::BadMetaFile {
            what,
            path: path.to_path_buf(),
            reason: format!("payload of {} bytes, expected {}", payload.len(), N * 8),
        });
    }
    let mut out = [0u64; N];
    for (value, chunk) in out.iter_mut().zip(payload.chunks_exact(8)) {
        let mut b = [0u8; 8];
        b.copy_from_slice(chunk);
        *value = u64::from_be_bytes(b);
    }
    Ok(out)
}

fn bad_version(version: u16, what: &'static str, path: &Path) -> LogError {
    LogError::BadMetaFile {
        what,
        path: path.to_path_buf(),
        reason: format!("version {version} is not one this brook reads; written by a newer one?"),
    }
}

/// The checkpoint of one log: what it says, and the handle that writes the next one.
#[derive(Debug)]
pub(crate) struct CheckpointFile {
    copies: Alternating,
}

/// What reading a log's checkpoint found.
#[derive(Debug)]
pub(crate) struct CheckpointRead {
    /// The newest checkpoint that checks out; `None` when there is none (a new log, or every
    /// copy damaged: then `damaged` is not empty).
    pub checkpoint: Option<Checkpoint>,
    /// Copies that do not check out (see [`meta::AlternatingRead::damaged`]).
    pub damaged: Vec<LogError>,
}

impl CheckpointFile {
    /// Reads the checkpoint of the log in `dir`.
    pub(crate) fn open(fs: &dyn Fs, dir: &Path) -> Result<(Self, CheckpointRead)> {
        let path = dir.join(CHECKPOINT_FILE);
        let (copies, read) = Alternating::open_in(fs, &path, CHECKPOINT_MAGIC, "checkpoint")?;
        let mut damaged = read.damaged;
        let checkpoint = match read.content {
            None => None,
            Some((version, payload))
                if version == CHECKPOINT_VERSION || version == CHECKPOINT_VERSION_SINGLE =>
            {
                match Checkpoint::decode(&payload, &path) {
                    Ok(checkpoint) => Some(checkpoint),
                    Err(e) => {
                        damaged.push(e);
                        None
                    }
                }
            }
            Some((version, _)) => {
                damaged.push(bad_version(version, "checkpoint", &path));
                None
            }
        };
        Ok((
            Self { copies },
            CheckpointRead {
                checkpoint,
                damaged,
            },
        ))
    }

    /// The checkpoint of an offline partition: never read, never written.
    pub(crate) fn detached(dir: &Path) -> Self {
        Self {
            copies: Alternating::detached(&dir.join(CHECKPOINT_FILE), CHECKPOINT_MAGIC),
        }
    }

    /// Durably records `checkpoint` (one in-place write and fdatasync).
    pub(crate) fn write(&mut self, fs: &dyn Fs, checkpoint: &Checkpoint) -> Result<()> {
        self.copies
            .write_in(fs, CHECKPOINT_VERSION, &checkpoint.encode())
    }
}

/// The log end offset a clean close recorded; `None` if the last stop was not clean.
pub(crate) fn read_clean_marker(fs: &dyn Fs, dir: &Path) -> Result<Option<u64>> {
    let path = dir.join(CLEAN_SHUTDOWN_FILE);
    let Some((version, payload)) = meta::read_in(fs, &path, CLEAN_MAGIC, "clean-shutdown marker")?
    else {
        return Ok(None);
    };
    if version != CLEAN_VERSION {
        return Err(bad_version(version, "clean-shutdown marker", &path));
    }
    let [log_end] = u64s::<1>(&payload, "clean-shutdown marker", &path)?;
    Ok(Some(log_end))
}

/// Durably writes the clean-shutdown marker: the last thing a clean close does.
pub(crate) fn write_clean_marker(fs: &dyn Fs, dir: &Path, log_end: u64) -> Result<()> {
    meta::write_in(
        fs,
        &dir.join(CLEAN_SHUTDOWN_FILE),
        CLEAN_MAGIC,
        CLEAN_VERSION,
        &log_end.to_be_bytes(),
    )
}

/// Durably removes the clean-shutdown marker, so that a crash from now on is seen as one.
pub(crate) fn remove_clean_marker(fs: &dyn Fs, dir: &Path) -> Result<()> {
    meta::remove_in(fs, &dir.join(CLEAN_SHUTDOWN_FILE))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::RealFs;

    #[test]
    fn checkpoint_and_marker_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fs = &RealFs;
        let (mut file, read) = CheckpointFile::open(fs, dir.path()).expect("open");
        assert_eq!(read.checkpoint, None);
        assert!(read.damaged.is_empty());
        let mut checkpoint = Checkpoint {
            log_start: 7,
            recovery_point: LogPosition {
                offset: 90,
                segment: 50,
                position: 1234,
            },
        };
        for offset in [90, 91, 92] {
            checkpoint.recovery_point.offset = offset;
            file.write(fs, &checkpoint).expect("write");
        }
        let (_, read) = CheckpointFile::open(fs, dir.path()).expect("open");
        assert_eq!(read.checkpoint, Some(checkpoint));

        assert_eq!(read_clean_marker(fs, dir.path()).expect("read"), None);
        write_clean_marker(fs, dir.path(), 90).expect("write");
        assert_eq!(read_clean_marker(fs, dir.path()).expect("read"), Some(90));
        remove_clean_marker(fs, dir.path()).expect("remove");
        assert_eq!(read_clean_marker(fs, dir.path()).expect("read"), None);

        for copy in 0..2 {
            let name = format!("{CHECKPOINT_FILE}.{copy}");
            std::fs::write(dir.path().join(name), b"garbage").expect("write");
        }
        let (_, read) = CheckpointFile::open(fs, dir.path()).expect("open");
        assert_eq!(read.checkpoint, None);
        assert_eq!(read.damaged.len(), 2);
    }

    #[test]
    fn a_version_1_checkpoint_is_read_and_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fs = &RealFs;
        let old = Checkpoint {
            log_start: 3,
            recovery_point: LogPosition {
                offset: 10,
                segment: 0,
                position: 640,
            },
        };
        let path = dir.path().join(CHECKPOINT_FILE);
        meta::write(&path, CHECKPOINT_MAGIC, 1, &old.encode()).expect("write v1");
        let (mut file, read) = CheckpointFile::open(fs, dir.path()).expect("open");
        assert_eq!(read.checkpoint, Some(old));
        file.write(fs, &old).expect("write v2");
        assert!(
            !path.exists(),
            "the single file is gone once a copy is written"
        );
        let (_, read) = CheckpointFile::open(fs, dir.path()).expect("open");
        assert_eq!(read.checkpoint, Some(old));
    }
}
