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
//! The public functions work on the real file system (the broker keeps its offsets file with
//! them); inside brook-log the same rules run on the store's file layer (`crate::fs`).

use std::path::Path;

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
}
