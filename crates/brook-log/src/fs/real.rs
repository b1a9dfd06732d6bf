//! The production file layer: `std::fs`, `pread`/`pwrite`/`pwritev`, real `fdatasync`, `flock`
//! and read-only `mmap`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, IoSlice};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::UNIX_EPOCH;

use super::{DirEntry, FileIo, FileMap, FileRef, Fs, Metadata, Open};

/// The real file system.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RealFs;

impl Fs for RealFs {
    fn open(&self, path: &Path, how: Open) -> io::Result<FileRef> {
        let mut options = OpenOptions::new();
        options.read(true);
        match how {
            Open::Read => {}
            Open::Write => {
                options.write(true);
            }
            Open::Create => {
                options.write(true).create(true).truncate(false);
            }
            Open::Truncate => {
                options.write(true).create(true).truncate(true);
            }
        }
        Ok(Box::new(RealFile {
            file: options.open(path)?,
        }))
    }

    fn metadata(&self, path: &Path) -> io::Result<Metadata> {
        let meta = fs::metadata(path)?;
        let created_ms = meta
            .created()
            .or_else(|_| meta.modified())
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as i64);
        Ok(Metadata {
            len: meta.len(),
            is_dir: meta.is_dir(),
            created_ms,
        })
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>> {
        let mut entries = Vec::new();
        for entry in fs::read_dir(path)? {
            let entry = entry?;
            // A symlink counts as what it points at, as `Path::is_dir` says.
            let is_dir = entry.path().is_dir();
            entries.push(DirEntry {
                name: entry.file_name(),
                path: entry.path(),
                is_dir,
            });
        }
        Ok(entries)
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::create_dir_all(path)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::remove_dir_all(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        File::open(path)?.sync_all()
    }
}

/// A real open file.
#[derive(Debug)]
struct RealFile {
    file: File,
}

impl FileIo for RealFile {
    fn read_at(&self, buf: &mut [u8], position: u64) -> io::Result<usize> {
        self.file.read_at(buf, position)
    }

    fn write_all_at(&self, buf: &[u8], position: u64) -> io::Result<()> {
        self.file.write_all_at(buf, position)
    }

    /// One `pwritev` for all the parts (a batch's patched header and its records: one system
    /// call, as for a batch in one buffer), again for what a short write left.
    #[allow(unsafe_code)] // pwritev; see the SAFETY comment.
    fn write_parts_at(&self, parts: &[&[u8]], mut position: u64) -> io::Result<()> {
        const SLICES: usize = 4;
        let (mut parts, mut skip) = (parts, 0);
        loop {
            // Drop the parts written whole (and empty ones).
            while let Some((first, rest)) = parts.split_first() {
                if skip < first.len() {
                    break;
                }
                (parts, skip) = (rest, 0);
            }
            let Some((first, rest)) = parts.split_first() else {
                return Ok(());
            };
            let mut slices = [IoSlice::new(&[]); SLICES];
            slices[0] = IoSlice::new(&first[skip..]);
            let count = 1 + rest.len().min(SLICES - 1);
            for (slice, part) in slices[1..count].iter_mut().zip(rest) {
                *slice = IoSlice::new(part);
            }
            let at = libc::off_t::try_from(position)
                .map_err(|_| io::Error::other("position beyond off_t"))?;
            // SAFETY: `IoSlice` is ABI-compatible with `struct iovec` on Unix (std documents
            // it); the first `count` of them point into slices borrowed for the whole call,
            // which pwritev only reads; the file descriptor is open as long as `self` is.
            let n = unsafe {
                libc::pwritev(
                    self.file.as_raw_fd(),
                    slices.as_ptr().cast::<libc::iovec>(),
                    count as libc::c_int,
                    at,
                )
            };
            match n {
                0 => return Err(io::ErrorKind::WriteZero.into()),
                n if n > 0 => {
                    let mut n = n as usize;
                    position += n as u64;
                    while n > 0 {
                        let Some((first, rest)) = parts.split_first() else {
                            break;
                        };
                        let left = first.len() - skip;
                        if n < left {
                            skip += n;
                            break;
                        }
                        n -= left;
                        (parts, skip) = (rest, 0);
                    }
                }
                _ => {
                    let error = io::Error::last_os_error();
                    if error.kind() != io::ErrorKind::Interrupted {
                        return Err(error);
                    }
                }
            }
        }
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    #[allow(unsafe_code)] // mapping a file; see the SAFETY comment.
    fn map(&self) -> io::Result<FileMap> {
        if self.len()? == 0 {
            // Nothing to map (and mmap refuses an empty length).
            return Ok(FileMap::new(Vec::new()));
        }
        // SAFETY: a mapped file must not shrink or change behind the map's back, or a read
        // through it could fault (SIGBUS) or see torn data. brook owns its data directory
        // (one process per directory, under the lock) and maps only sealed index files, which
        // it never writes again: a rebuilt or truncated index is written from memory after
        // its map is dropped. Files deleted while mapped stay readable until unmapped (POSIX).
        let map = unsafe { memmap2::MmapOptions::new().map(&self.file) }?;
        Ok(FileMap::new(map))
    }

    fn try_lock(&self, exclusive: bool) -> io::Result<bool> {
        let operation = if exclusive {
            libc::LOCK_EX
        } else {
            libc::LOCK_SH
        };
        match try_flock(&self.file, operation) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn unlock(&self) -> io::Result<()> {
        try_flock(&self.file, libc::LOCK_UN)
    }

    /// Reads into a buffer that is not zeroed first: for a 1 MiB fetch, zeroing costs a fifth
    /// of the read.
    #[allow(unsafe_code)] // pread into spare capacity; see the SAFETY comments.
    fn read_vec_at(&self, position: u64, len: usize) -> io::Result<Vec<u8>> {
        let mut buf: Vec<u8> = Vec::with_capacity(len);
        let mut done = 0;
        while done < len {
            let spare = &mut buf.spare_capacity_mut()[done..len];
            let at = libc::off_t::try_from(position + done as u64)
                .map_err(|_| io::Error::other("position beyond off_t"))?;
            // SAFETY: `spare` is `len - done` bytes of the vector's own, unused capacity, which
            // pread only writes to (never reads), and the file descriptor is open for as long
            // as `self` is borrowed.
            let n = unsafe {
                libc::pread(
                    self.file.as_raw_fd(),
                    spare.as_mut_ptr().cast(),
                    spare.len(),
                    at,
                )
            };
            match n {
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                n if n > 0 => done += n as usize,
                _ => {
                    let error = io::Error::last_os_error();
                    if error.kind() != io::ErrorKind::Interrupted {
                        return Err(error);
                    }
                }
            }
        }
        // SAFETY: the loop ends only once pread has written all of the first `len` bytes.
        unsafe { buf.set_len(len) };
        Ok(buf)
    }
}

/// `flock(operation | LOCK_NB)`: never waits; a held lock is `ErrorKind::WouldBlock`.
#[allow(unsafe_code)] // a libc call; see the SAFETY comment.
fn try_flock(file: &File, operation: libc::c_int) -> io::Result<()> {
    // SAFETY: `flock` takes a file descriptor and flags and touches no memory of ours; the fd
    // is valid for the whole call because `file` owns it and outlives it.
    let rc = unsafe { libc::flock(file.as_raw_fd(), operation | libc::LOCK_NB) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_written_back_to_back_at_the_position() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("f");
        let file = RealFs.open(&path, Open::Create).expect("open");
        file.write_all_at(b"0123456789", 0).expect("write");
        // Empty parts anywhere, more parts than one pwritev takes at a time.
        let parts: [&[u8]; 7] = [b"", b"ab", b"", b"cde", b"f", b"gh", b"ijk"];
        file.write_parts_at(&parts, 4).expect("write parts");
        assert_eq!(file.read_vec_at(0, 15).expect("read"), b"0123abcdefghijk");
        assert_eq!(file.len().expect("len"), 15);
        file.write_parts_at(&[], 15).expect("nothing to write");
        file.write_parts_at(&[b"", b""], 15)
            .expect("nothing to write");
        assert_eq!(file.len().expect("len"), 15);
    }
}
