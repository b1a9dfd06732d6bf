//! A read-only overlay of the real file system: reads see the disk, every change stays in
//! memory. `brook log check` opens a partition through it to learn exactly what the next real
//! open would do (cut a torn tail, rebuild an index, report corruption) without doing any of
//! it: recovery's own code judges, so the check and `brook serve` cannot disagree.
//!
//! What recovery changes is small (a segment cut shorter, an index rewritten, a checkpoint, a
//! marker removed, a leftover deleted), so a file it writes is copied into memory when it is
//! small; a large file (a segment) is only ever cut, which is kept as a length over the real
//! file. Writing into a large file, which recovery never does, copies it too. Syncs do nothing
//! and locks always succeed: nothing here is shared with anyone.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use super::{DirEntry, FileIo, FileMap, FileRef, Fs, Metadata, Open, RealFs};

/// Files up to this size are copied into memory when first changed.
const COPY_UP_BYTES_MAX: u64 = 16 << 20;

/// The real file system seen through an in-memory layer of changes; see the module docs.
#[derive(Debug, Default)]
pub(crate) struct OverlayFs {
    upper: Arc<Mutex<Upper>>,
}

#[derive(Debug, Default)]
struct Upper {
    /// Files changed or created, by path.
    files: BTreeMap<PathBuf, Arc<Mutex<Content>>>,
    /// Paths removed (a file, or a directory and everything under it).
    removed: BTreeSet<PathBuf>,
    /// Directories created.
    dirs: BTreeSet<PathBuf>,
}

/// A changed file's bytes.
#[derive(Debug)]
enum Content {
    /// In memory, whole.
    Bytes(Vec<u8>),
    /// The first `len` bytes of the real file at `path`.
    Prefix { path: PathBuf, len: u64 },
}

impl Upper {
    fn is_removed(&self, path: &Path) -> bool {
        path.ancestors().any(|a| self.removed.contains(a))
            && !self.files.contains_key(path)
            && !self.dirs.contains(path)
    }
}

impl OverlayFs {
    pub(crate) fn new() -> Arc<OverlayFs> {
        Arc::new(OverlayFs::default())
    }

    /// The changed file at `path`, copied up from the disk first if it is not yet changed.
    fn copy_up(&self, path: &Path, truncate: bool) -> io::Result<Arc<Mutex<Content>>> {
        let mut upper = self.upper.lock();
        if let Some(content) = upper.files.get(path) {
            if truncate {
                *content.lock() = Content::Bytes(Vec::new());
            }
            return Ok(Arc::clone(content));
        }
        let on_disk = !upper.is_removed(path) && RealFs.metadata(path).is_ok_and(|m| !m.is_dir);
        let content = match (on_disk, truncate) {
            (true, false) => {
                let len = RealFs.metadata(path)?.len;
                if len <= COPY_UP_BYTES_MAX {
                    let file = RealFs.open(path, Open::Read)?;
                    Content::Bytes(file.read_vec_at(0, len as usize)?)
                } else {
                    Content::Prefix {
                        path: path.to_path_buf(),
                        len,
                    }
                }
            }
            _ => Content::Bytes(Vec::new()),
        };
        let content = Arc::new(Mutex::new(content));
        upper.files.insert(path.to_path_buf(), Arc::clone(&content));
        upper.removed.remove(path);
        Ok(content)
    }

    fn exists(&self, path: &Path) -> bool {
        self.metadata(path).is_ok()
    }
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: no such file or directory", path.display()),
    )
}

impl Fs for OverlayFs {
    fn open(&self, path: &Path, how: Open) -> io::Result<FileRef> {
        let changed = {
            let upper = self.upper.lock();
            if upper.is_removed(path) && matches!(how, Open::Read | Open::Write) {
                return Err(not_found(path));
            }
            upper.files.get(path).cloned()
        };
        let content = match (changed, how) {
            (Some(content), Open::Read | Open::Write | Open::Create) => content,
            (None, Open::Read) => return RealFs.open(path, Open::Read),
            (None, Open::Write) if !self.exists(path) => return Err(not_found(path)),
            (_, Open::Truncate) => self.copy_up(path, true)?,
            (None, _) => self.copy_up(path, false)?,
        };
        Ok(Box::new(OverlayFile { content }))
    }

    fn metadata(&self, path: &Path) -> io::Result<Metadata> {
        let changed = {
            let upper = self.upper.lock();
            if upper.dirs.contains(path) {
                return Ok(Metadata {
                    len: 0,
                    is_dir: true,
                    created_ms: None,
                });
            }
            if upper.is_removed(path) {
                return Err(not_found(path));
            }
            upper.files.get(path).cloned()
        };
        match changed {
            Some(content) => Ok(Metadata {
                len: content.lock().len(),
                is_dir: false,
                created_ms: RealFs.metadata(path).ok().and_then(|m| m.created_ms),
            }),
            None => RealFs.metadata(path),
        }
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>> {
        let upper = self.upper.lock();
        if upper.is_removed(path) {
            return Err(not_found(path));
        }
        let mut entries: BTreeMap<PathBuf, DirEntry> = BTreeMap::new();
        match RealFs.read_dir(path) {
            Ok(found) => {
                for entry in found {
                    if !upper.is_removed(&entry.path) {
                        entries.insert(entry.path.clone(), entry);
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound && upper.dirs.contains(path) => {}
            Err(e) => return Err(e),
        }
        let created = upper
            .files
            .keys()
            .map(|p| (p, false))
            .chain(upper.dirs.iter().map(|p| (p, true)));
        for (p, is_dir) in created {
            if p.parent() == Some(path) {
                if let Some(name) = p.file_name() {
                    entries.insert(
                        p.clone(),
                        DirEntry {
                            name: name.to_os_string(),
                            path: p.clone(),
                            is_dir,
                        },
                    );
                }
            }
        }
        Ok(entries.into_values().collect())
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let missing: Vec<PathBuf> = path
            .ancestors()
            .take_while(|a| !a.as_os_str().is_empty() && !self.is_dir(a))
            .map(Path::to_path_buf)
            .collect();
        let mut upper = self.upper.lock();
        for dir in missing {
            upper.removed.remove(&dir);
            upper.dirs.insert(dir);
        }
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        if !self.exists(path) {
            return Err(not_found(path));
        }
        let mut upper = self.upper.lock();
        upper.files.remove(path);
        upper.removed.insert(path.to_path_buf());
        Ok(())
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        if !self.is_dir(path) {
            return Err(not_found(path));
        }
        let mut upper = self.upper.lock();
        upper.files.retain(|p, _| !p.starts_with(path));
        upper.dirs.retain(|p| !p.starts_with(path));
        upper.removed.insert(path.to_path_buf());
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let content = self.copy_up(from, false)?;
        let mut upper = self.upper.lock();
        upper.files.remove(from);
        upper.removed.insert(from.to_path_buf());
        upper.removed.remove(to);
        upper.files.insert(to.to_path_buf(), content);
        Ok(())
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        if self.is_dir(path) {
            Ok(())
        } else {
            Err(not_found(path))
        }
    }
}

impl Content {
    fn len(&self) -> u64 {
        match self {
            Self::Bytes(bytes) => bytes.len() as u64,
            Self::Prefix { len, .. } => *len,
        }
    }

    /// Makes the content bytes in memory (for a write into a large file, which recovery never
    /// makes).
    fn bytes(&mut self) -> io::Result<&mut Vec<u8>> {
        if let Self::Prefix { path, len } = self {
            let file = RealFs.open(path, Open::Read)?;
            *self = Self::Bytes(file.read_vec_at(0, *len as usize)?);
        }
        match self {
            Self::Bytes(bytes) => Ok(bytes),
            Self::Prefix { .. } => unreachable!("made bytes above"),
        }
    }
}

/// A file opened through the overlay that is (or will be) changed.
#[derive(Debug)]
struct OverlayFile {
    content: Arc<Mutex<Content>>,
}

impl FileIo for OverlayFile {
    fn read_at(&self, buf: &mut [u8], position: u64) -> io::Result<usize> {
        let content = self.content.lock();
        let len = content.len();
        if position >= len {
            return Ok(0);
        }
        let n = buf.len().min((len - position) as usize);
        match &*content {
            Content::Bytes(bytes) => {
                let at = position as usize;
                buf[..n].copy_from_slice(&bytes[at..at + n]);
                Ok(n)
            }
            Content::Prefix { path, .. } => RealFs
                .open(path, Open::Read)?
                .read_at(&mut buf[..n], position),
        }
    }

    fn write_all_at(&self, buf: &[u8], position: u64) -> io::Result<()> {
        let mut content = self.content.lock();
        let bytes = content.bytes()?;
        let end = position as usize + buf.len();
        if bytes.len() < end {
            bytes.resize(end, 0);
        }
        bytes[position as usize..end].copy_from_slice(buf);
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.content.lock().len())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut content = self.content.lock();
        match &mut *content {
            Content::Prefix { len: now, .. } if len <= *now => *now = len,
            other => other.bytes()?.resize(len as usize, 0),
        }
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        Ok(())
    }

    fn map(&self) -> io::Result<FileMap> {
        let len = self.len()? as usize;
        let mut bytes = vec![0u8; len];
        self.read_exact_at(&mut bytes, 0)?;
        Ok(FileMap::new(bytes))
    }

    fn try_lock(&self, _: bool) -> io::Result<bool> {
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_stay_in_memory_and_reads_see_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = dir.path().join("a");
        std::fs::write(&a, b"on disk").expect("write");
        let fs = OverlayFs::new();
        let file = fs.open(&a, Open::Write).expect("open");
        file.set_len(2).expect("cut");
        file.write_all_at(b"!", 2).expect("write");
        assert_eq!(
            fs.open(&a, Open::Read)
                .expect("open")
                .read_vec_at(0, 3)
                .expect("read"),
            b"on!"
        );
        let b = dir.path().join("sub/b");
        fs.create_dir_all(b.parent().expect("parent"))
            .expect("mkdir");
        fs.open(&b, Open::Create)
            .expect("create")
            .write_all_at(b"new", 0)
            .expect("write");
        fs.remove_file(&a).expect("rm");
        let names: Vec<_> = fs
            .read_dir(dir.path())
            .expect("ls")
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, ["sub"]);
        assert!(fs.metadata(&a).is_err());
        assert_eq!(fs.metadata(&b).expect("meta").len, 3);
        // Nothing reached the disk.
        assert_eq!(std::fs::read(&a).expect("read"), b"on disk");
        assert!(!dir.path().join("sub").exists());
    }
}
