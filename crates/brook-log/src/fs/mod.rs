//! The file layer: every file operation of brook-log goes through [`Fs`] and [`FileIo`].
//!
//! Segments, indexes, checkpoints, topic files, the `meta` envelope, the directory lock, the
//! clean-shutdown marker and directory fsyncs all reach the disk through this one small
//! interface, so that a test can swap the disk for one that remembers what was fsynced and can
//! lose the rest (`sim::SimFs`, compiled for tests and the `fuzzing` feature only). The
//! production implementation is [`RealFs`]: `std::fs`, `pread`/`pwrite`, real `fdatasync` and
//! `fsync`, `flock`, read-only `mmap`. `overlay::OverlayFs` reads the real disk and keeps every
//! change in memory: the offline check runs recovery through it as a dry run.
//!
//! The choice is made once per store or log (an [`FsRef`], an `Arc<dyn Fs>`), and every open
//! file is a [`FileRef`]: one virtual call beside each system call, which costs nothing next
//! to the system call itself (see docs/benchmarks.md, "append").
//!
//! What the layer promises, whatever the implementation:
//!
//! - a write, a truncation or a file's creation, rename or removal is *durable* (survives power
//!   loss) only after the matching sync: [`FileIo::sync_data`] for a file's bytes and length,
//!   [`Fs::sync_dir`] for the entries of a directory. Callers must not rely on anything else
//!   (the simulation takes away everything else when it crashes);
//! - a [`FileMap`] is a read-only view of a file's bytes as they were when it was taken; the
//!   caller must not shrink a mapped file while the view lives (brook-log maps only sealed
//!   index files, which it never rewrites in place).

pub(crate) mod overlay;
mod real;
#[cfg(any(test, feature = "fuzzing"))]
// The fuzz targets use only the disk itself, not its crash and fault controls.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) mod sim;

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

pub(crate) use real::RealFs;

/// The file system a store or a log works on, chosen once.
pub(crate) type FsRef = Arc<dyn Fs>;

/// An open file.
pub(crate) type FileRef = Box<dyn FileIo>;

/// The production file system, shared.
pub(crate) fn real() -> FsRef {
    static REAL: OnceLock<FsRef> = OnceLock::new();
    Arc::clone(REAL.get_or_init(|| Arc::new(RealFs)))
}

/// How to open a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Open {
    /// Read only; the file must exist.
    Read,
    /// Read and write; the file must exist.
    Write,
    /// Read and write, created empty if missing, kept as it is otherwise.
    Create,
    /// Read and write, created if missing, emptied otherwise.
    Truncate,
}

/// What [`Fs::metadata`] tells about a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Metadata {
    pub len: u64,
    pub is_dir: bool,
    /// Creation time (or, where the file system keeps none, modification time), in ms since
    /// the Unix epoch.
    pub created_ms: Option<i64>,
}

/// An entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DirEntry {
    pub name: OsString,
    pub path: PathBuf,
    pub is_dir: bool,
}

/// A file system: files, directories and their durability.
pub(crate) trait Fs: Send + Sync + fmt::Debug {
    fn open(&self, path: &Path, how: Open) -> io::Result<FileRef>;
    /// `ErrorKind::NotFound` when nothing is at `path`.
    fn metadata(&self, path: &Path) -> io::Result<Metadata>;
    /// The entries of a directory, in no particular order.
    fn read_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>>;
    /// Creates `path` and any missing parents (not durable until each parent is synced).
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    fn remove_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Renames `from` over `to` atomically (same directory).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Makes the entries of directory `path` (created, renamed, removed) durable.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;

    /// Whether `path` is a directory (false when it is missing or unreadable).
    fn is_dir(&self, path: &Path) -> bool {
        self.metadata(path).is_ok_and(|m| m.is_dir)
    }

    /// The whole file at `path`; `Ok(None)` when it does not exist. For small files only: the
    /// caller bounds the size (`meta` refuses anything over its limit before reading).
    fn read_small(&self, path: &Path, max: u64) -> io::Result<Option<Vec<u8>>> {
        let file = match self.open(path, Open::Read) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let len = file.len()?;
        if len > max {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{len} bytes is more than the {max} a small file may hold"),
            ));
        }
        file.read_vec_at(0, len as usize).map(Some)
    }
}

/// An open file: positioned reads and writes, length, durability, a read-only view, a lock.
pub(crate) trait FileIo: Send + Sync + fmt::Debug {
    /// Reads up to `buf.len()` bytes at `position`; 0 at the end of the file.
    fn read_at(&self, buf: &mut [u8], position: u64) -> io::Result<usize>;
    /// Writes all of `buf` at `position`, extending the file if needed.
    fn write_all_at(&self, buf: &[u8], position: u64) -> io::Result<()>;
    /// Writes `parts` one after another from `position`, as one write of their concatenation
    /// would (a real file: one `pwritev`). On an error any prefix of them may have been
    /// written, as with [`FileIo::write_all_at`]; the caller cuts the file back. By default,
    /// one [`FileIo::write_all_at`] per part, in order (so a test file sees each).
    fn write_parts_at(&self, parts: &[&[u8]], mut position: u64) -> io::Result<()> {
        for part in parts {
            self.write_all_at(part, position)?;
            position += part.len() as u64;
        }
        Ok(())
    }
    fn len(&self) -> io::Result<u64>;
    /// Cuts or extends (with zeros) the file to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Makes the file's bytes and length durable (`fdatasync`).
    fn sync_data(&self) -> io::Result<()>;
    /// A read-only view of the whole file as it is now.
    fn map(&self) -> io::Result<FileMap>;
    /// Takes an advisory lock without waiting: exclusive or shared. `Ok(false)` when another
    /// open file holds a conflicting one. Released when this file is closed.
    fn try_lock(&self, exclusive: bool) -> io::Result<bool>;
    /// Releases a lock [`FileIo::try_lock`] took, at once. Closing the file releases it too,
    /// but only once every descriptor of it is closed, and a child process this one forks
    /// holds a copy until it execs. Files without locks need nothing here.
    fn unlock(&self) -> io::Result<()> {
        Ok(())
    }

    /// Exactly `buf.len()` bytes at `position`; `UnexpectedEof` if the file ends first.
    fn read_exact_at(&self, mut buf: &mut [u8], mut position: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read_at(buf, position) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => {
                    buf = &mut buf[n..];
                    position += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Exactly `len` bytes at `position`, in a new buffer.
    fn read_vec_at(&self, position: u64, len: usize) -> io::Result<Vec<u8>> {
        let mut buf = vec![0u8; len];
        self.read_exact_at(&mut buf, position)?;
        Ok(buf)
    }
}

/// A read-only view of a file's bytes: a memory map of a real file, a copy in the simulation.
pub(crate) struct FileMap(Box<dyn AsRef<[u8]> + Send + Sync>);

impl FileMap {
    pub(crate) fn new(bytes: impl AsRef<[u8]> + Send + Sync + 'static) -> Self {
        Self(Box::new(bytes))
    }
}

impl std::ops::Deref for FileMap {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        (*self.0).as_ref()
    }
}

impl fmt::Debug for FileMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FileMap({} bytes)", self.len())
    }
}

/// A file that cannot be used: every call fails with the reason. What an offline partition's
/// placeholder segment holds, so that nothing reaches the disk through it.
#[derive(Debug)]
pub(crate) struct Unavailable(pub String);

impl Unavailable {
    fn error(&self) -> io::Error {
        io::Error::other(self.0.clone())
    }
}

impl FileIo for Unavailable {
    fn read_at(&self, _: &mut [u8], _: u64) -> io::Result<usize> {
        Err(self.error())
    }
    fn write_all_at(&self, _: &[u8], _: u64) -> io::Result<()> {
        Err(self.error())
    }
    fn len(&self) -> io::Result<u64> {
        Err(self.error())
    }
    fn set_len(&self, _: u64) -> io::Result<()> {
        Err(self.error())
    }
    fn sync_data(&self) -> io::Result<()> {
        Err(self.error())
    }
    fn map(&self) -> io::Result<FileMap> {
        Err(self.error())
    }
    fn try_lock(&self, _: bool) -> io::Result<bool> {
        Err(self.error())
    }
}

/// Creates directory `path` and any missing parents, each made durable in its own parent
/// (a parent created in the same call is no use if its own entry is lost). A directory that
/// already exists is left alone.
pub(crate) fn create_dir_durably(fs: &dyn Fs, path: &Path) -> io::Result<()> {
    if fs.is_dir(path) {
        return Ok(());
    }
    let missing: Vec<&Path> = path
        .ancestors()
        .take_while(|a| !a.as_os_str().is_empty() && !fs.is_dir(a))
        .collect();
    fs.create_dir_all(path)?;
    for dir in missing.into_iter().rev() {
        let parent = match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        fs.sync_dir(parent)?;
    }
    Ok(())
}

/// Removes `path`; a missing file is fine.
pub(crate) fn remove_if_present(fs: &dyn Fs, path: &Path) -> io::Result<bool> {
    match fs.remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}
