//! The partition log's two small files, in brook's checked envelope ([`crate::meta`]):
//!
//! - `checkpoint` (magic `BRCP`): the log start offset, and the recovery point: a segment,
//!   a file position in it and the offset of the batch there, up to which every byte was
//!   fsynced and verified. After an unclean stop, recovery CRC-walks from that point only.
//!   Rewritten when a segment rolls, when the log start moves, on truncation, flush and close.
//! - `clean-shutdown` (magic `BRCS`): written last by a clean close, holding the log end
//!   offset; removed when the log opens. Its presence means nothing needs to be walked.
//!
//! Payloads are big-endian u64s.

use std::path::Path;

use crate::error::{LogError, Result};
use crate::fs::Fs;
use crate::meta;

/// File name of the checkpoint.
pub(crate) const CHECKPOINT_FILE: &str = "checkpoint";
/// File name of the clean-shutdown marker.
pub(crate) const CLEAN_SHUTDOWN_FILE: &str = "clean-shutdown";

const CHECKPOINT_MAGIC: [u8; 4] = *b"BRCP";
const CLEAN_MAGIC: [u8; 4] = *b"BRCS";
const VERSION: u16 = 1;

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

fn check_version(version: u16, what: &'static str, path: &Path) -> Result<()> {
    if version != VERSION {
        return Err(LogError::BadMetaFile {
            what,
            path: path.to_path_buf(),
            reason: format!("version {version} is not {VERSION}"),
        });
    }
    Ok(())
}

/// Reads the checkpoint of the log in `dir`; `None` if there is none.
pub(crate) fn read_checkpoint(fs: &dyn Fs, dir: &Path) -> Result<Option<Checkpoint>> {
    let path = dir.join(CHECKPOINT_FILE);
    let Some((version, payload)) = meta::read_in(fs, &path, CHECKPOINT_MAGIC, "checkpoint")? else {
        return Ok(None);
    };
    check_version(version, "checkpoint", &path)?;
    Checkpoint::decode(&payload, &path).map(Some)
}

/// Durably replaces the checkpoint of the log in `dir`.
pub(crate) fn write_checkpoint(fs: &dyn Fs, dir: &Path, checkpoint: &Checkpoint) -> Result<()> {
    meta::write_in(
        fs,
        &dir.join(CHECKPOINT_FILE),
        CHECKPOINT_MAGIC,
        VERSION,
        &checkpoint.encode(),
    )
}

/// The log end offset a clean close recorded; `None` if the last stop was not clean.
pub(crate) fn read_clean_marker(fs: &dyn Fs, dir: &Path) -> Result<Option<u64>> {
    let path = dir.join(CLEAN_SHUTDOWN_FILE);
    let Some((version, payload)) = meta::read_in(fs, &path, CLEAN_MAGIC, "clean-shutdown marker")?
    else {
        return Ok(None);
    };
    check_version(version, "clean-shutdown marker", &path)?;
    let [log_end] = u64s::<1>(&payload, "clean-shutdown marker", &path)?;
    Ok(Some(log_end))
}

/// Durably writes the clean-shutdown marker: the last thing a clean close does.
pub(crate) fn write_clean_marker(fs: &dyn Fs, dir: &Path, log_end: u64) -> Result<()> {
    meta::write_in(
        fs,
        &dir.join(CLEAN_SHUTDOWN_FILE),
        CLEAN_MAGIC,
        VERSION,
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
        assert_eq!(read_checkpoint(fs, dir.path()).expect("read"), None);
        let checkpoint = Checkpoint {
            log_start: 7,
            recovery_point: LogPosition {
                offset: 90,
                segment: 50,
                position: 1234,
            },
        };
        write_checkpoint(fs, dir.path(), &checkpoint).expect("write");
        assert_eq!(
            read_checkpoint(fs, dir.path()).expect("read"),
            Some(checkpoint)
        );

        assert_eq!(read_clean_marker(fs, dir.path()).expect("read"), None);
        write_clean_marker(fs, dir.path(), 90).expect("write");
        assert_eq!(read_clean_marker(fs, dir.path()).expect("read"), Some(90));
        remove_clean_marker(fs, dir.path()).expect("remove");
        assert_eq!(read_clean_marker(fs, dir.path()).expect("read"), None);

        std::fs::write(dir.path().join(CHECKPOINT_FILE), b"garbage").expect("write");
        assert!(read_checkpoint(fs, dir.path()).is_err());
    }
}
