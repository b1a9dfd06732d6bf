//! One process per data directory: an advisory `flock` on `<data>/.lock`.
//!
//! Two brokers appending to the same partition files would interleave batches and corrupt the
//! log, so a [`DirLock`] is taken before anything in the directory is opened for writing.
//! `flock(LOCK_EX | LOCK_NB)` belongs to the open file description, so a second opener is
//! refused whether it is another process or the same process opening the directory twice.
//! The kernel drops the lock when its holder exits, even by `kill -9`, so a crash never leaves
//! a stale lock behind.
//!
//! The file holds the holder's `pid <pid> on host <hostname>`, read back only to name the
//! holder in [`LogError::Locked`]. The file itself is never removed: deleting it while another
//! process waits on the old inode would let two holders exist at once.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::Path;

use crate::error::{LogError, Result};

/// The name of the lock file inside a data directory.
pub(crate) const LOCK_FILE: &str = ".lock";

/// The holder text is at most this long; a bigger file is not ours and is not read whole.
const HOLDER_LEN_MAX: u64 = 512;

/// An exclusive lock on a data directory, held until dropped.
#[derive(Debug)]
pub(crate) struct DirLock {
    // Holding the file keeps the flock; closing it (on drop) releases it.
    _file: File,
}

impl DirLock {
    /// Takes the lock on `dir`, which must exist. Fails with [`LogError::Locked`] naming the
    /// holder when another open file (in any process) holds it.
    pub(crate) fn acquire(dir: &Path) -> Result<DirLock> {
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| LogError::io(&path, e))?;
        if let Err(e) = try_flock(&file, libc::LOCK_EX) {
            if e.kind() == std::io::ErrorKind::WouldBlock {
                return Err(LogError::Locked {
                    holder: read_holder(&mut file),
                    path: dir.to_path_buf(),
                });
            }
            return Err(LogError::io(&path, e));
        }
        // We hold the lock: record who we are for the next opener's error message.
        let holder = format!("pid {} on host {}\n", std::process::id(), hostname());
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(holder.as_bytes()))
            .map_err(|e| LogError::io(&path, e))?;
        Ok(DirLock { _file: file })
    }

    /// Names the current holder of `dir`'s lock without taking it: `Some("pid .. on host ..")`
    /// while a process holds it, `None` when it is free (or there is no lock file). For
    /// read-only tools that want to warn that a broker is running.
    pub(crate) fn holder(dir: &Path) -> Result<Option<String>> {
        let path = dir.join(LOCK_FILE);
        let mut file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(LogError::io(&path, e)),
        };
        // A shared probe succeeds only when nobody holds the exclusive lock, and is released
        // at once when `file` is dropped.
        match try_flock(&file, libc::LOCK_SH) {
            Ok(()) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                Ok(Some(read_holder(&mut file)))
            }
            Err(e) => Err(LogError::io(&path, e)),
        }
    }
}

/// `flock(operation | LOCK_NB)`: never waits; a held lock is `ErrorKind::WouldBlock`.
#[allow(unsafe_code)] // a libc call; see the SAFETY comment.
fn try_flock(file: &File, operation: libc::c_int) -> std::io::Result<()> {
    // SAFETY: `flock` takes a file descriptor and flags and touches no memory of ours; the fd
    // is valid for the whole call because `file` owns it and outlives it.
    let rc = unsafe { libc::flock(file.as_raw_fd(), operation | libc::LOCK_NB) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// What the holder wrote, or a placeholder when it has not written yet (the window between its
/// `flock` and its write) or wrote something unreadable.
fn read_holder(file: &mut File) -> String {
    let mut text = String::new();
    let read = file
        .rewind()
        .and_then(|()| file.take(HOLDER_LEN_MAX).read_to_string(&mut text));
    match read {
        Ok(_) if !text.trim().is_empty() => text.trim().to_owned(),
        _ => "an unidentified process".to_owned(),
    }
}

/// This machine's host name, for the holder text; `unknown` if the call fails.
#[allow(unsafe_code)] // a libc call; see the SAFETY comment.
fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the duration of the call, and
    // gethostname writes at most that many bytes.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown".to_owned();
    }
    // POSIX does not promise a NUL when the name is truncated, so stop at the buffer's end.
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..len]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_opener_in_the_same_process_is_refused_and_told_who_holds_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let held = DirLock::acquire(dir.path()).expect("first lock");
        let holder = format!("pid {} on host {}", std::process::id(), hostname());
        match DirLock::acquire(dir.path()) {
            Err(LogError::Locked { path, holder: got }) => {
                assert_eq!(path, dir.path());
                assert_eq!(got, holder);
            }
            other => panic!("second lock gave {other:?}"),
        }
        assert_eq!(
            DirLock::holder(dir.path()).expect("probe"),
            Some(holder.clone())
        );
        drop(held);
        assert_eq!(DirLock::holder(dir.path()).expect("probe"), None);
        let _again = DirLock::acquire(dir.path()).expect("lock after release");
    }

    #[test]
    fn probing_a_directory_without_a_lock_file_finds_no_holder() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(DirLock::holder(dir.path()).expect("probe"), None);
        assert!(
            !dir.path().join(LOCK_FILE).exists(),
            "a probe creates nothing"
        );
    }
}
