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

use std::path::Path;

use crate::error::{LogError, Result};
use crate::fs::{FileIo, FileRef, Fs, Open};

/// The name of the lock file inside a data directory.
pub(crate) const LOCK_FILE: &str = ".lock";

/// The holder text is at most this long; a bigger file is not ours and is not read whole.
const HOLDER_LEN_MAX: u64 = 512;

/// An exclusive lock on a data directory, held until dropped.
#[derive(Debug)]
pub(crate) struct DirLock {
    // Holding the file keeps the flock; dropping the lock releases it.
    file: FileRef,
}

impl Drop for DirLock {
    /// Unlocks explicitly rather than by closing alone: a child process forked meanwhile (a
    /// test harness or an application spawning a program) holds a copy of the descriptor
    /// until it execs, and the lock would outlive the drop until then.
    fn drop(&mut self) {
        if let Err(e) = self.file.unlock() {
            tracing::warn!(error = %e, "could not release the data directory's lock; closing the file will");
        }
    }
}

impl DirLock {
    /// Takes the lock on `dir`, which must exist. Fails with [`LogError::Locked`] naming the
    /// holder when another open file (in any process) holds it.
    pub(crate) fn acquire(fs: &dyn Fs, dir: &Path) -> Result<DirLock> {
        let path = dir.join(LOCK_FILE);
        let file = fs
            .open(&path, Open::Create)
            .map_err(|e| LogError::io(&path, e))?;
        if !file.try_lock(true).map_err(|e| LogError::io(&path, e))? {
            return Err(LogError::Locked {
                holder: read_holder(&*file),
                path: dir.to_path_buf(),
            });
        }
        // We hold the lock: record who we are for the next opener's error message.
        let holder = format!("pid {} on host {}\n", std::process::id(), hostname());
        file.set_len(0)
            .and_then(|()| file.write_all_at(holder.as_bytes(), 0))
            .map_err(|e| LogError::io(&path, e))?;
        Ok(DirLock { file })
    }

    /// Names the current holder of `dir`'s lock without taking it: `Some("pid .. on host ..")`
    /// while a process holds it, `None` when it is free (or there is no lock file). For
    /// read-only tools that want to warn that a broker is running.
    pub(crate) fn holder(fs: &dyn Fs, dir: &Path) -> Result<Option<String>> {
        let path = dir.join(LOCK_FILE);
        let file = match fs.open(&path, Open::Read) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(LogError::io(&path, e)),
        };
        // A shared probe succeeds only when nobody holds the exclusive lock, and is released
        // at once when `file` is dropped.
        if file.try_lock(false).map_err(|e| LogError::io(&path, e))? {
            // Released now, not when every copy of the descriptor is closed (see the Drop of
            // DirLock); a failure here only leaves it to the close.
            let _ = file.unlock();
            Ok(None)
        } else {
            Ok(Some(read_holder(&*file)))
        }
    }
}

/// What the holder wrote, or a placeholder when it has not written yet (the window between its
/// `flock` and its write) or wrote something unreadable.
fn read_holder(file: &dyn FileIo) -> String {
    let mut buf = [0u8; HOLDER_LEN_MAX as usize];
    let n = file.read_at(&mut buf, 0).unwrap_or(0);
    match std::str::from_utf8(&buf[..n]) {
        Ok(text) if !text.trim().is_empty() => text.trim().to_owned(),
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
    use crate::fs::RealFs;

    #[test]
    fn second_opener_in_the_same_process_is_refused_and_told_who_holds_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let held = DirLock::acquire(&RealFs, dir.path()).expect("first lock");
        let holder = format!("pid {} on host {}", std::process::id(), hostname());
        match DirLock::acquire(&RealFs, dir.path()) {
            Err(LogError::Locked { path, holder: got }) => {
                assert_eq!(path, dir.path());
                assert_eq!(got, holder);
            }
            other => panic!("second lock gave {other:?}"),
        }
        assert_eq!(
            DirLock::holder(&RealFs, dir.path()).expect("probe"),
            Some(holder.clone())
        );
        drop(held);
        assert_eq!(DirLock::holder(&RealFs, dir.path()).expect("probe"), None);
        let _again = DirLock::acquire(&RealFs, dir.path()).expect("lock after release");
    }

    #[test]
    fn probing_a_directory_without_a_lock_file_finds_no_holder() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(DirLock::holder(&RealFs, dir.path()).expect("probe"), None);
        assert!(
            !dir.path().join(LOCK_FILE).exists(),
            "a probe creates nothing"
        );
    }
}
