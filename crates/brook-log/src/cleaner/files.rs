//! The cleaner's files in a partition directory, and what recovery does with each.
//!
//! | file | what | recovery |
//! |------|------|----------|
//! | `cleaner-checkpoint` | `meta` envelope, magic `BRCL`, version 1: two u64s, the first dirty offset (where the next clean starts mapping keys) and the cleaned-below offset (segments whose base offset is below it may have been rewritten by a clean, so their offsets may skip) | read at open; a missing one means nothing was cleaned (every segment's offsets must follow on); a damaged one is logged and means any segment may have been cleaned (offsets may skip anywhere) and the next clean starts over |
//! | `{base}.log.cleaned`, `.index.cleaned`, `.timeindex.cleaned` | a cleaned segment being written aside | removed (a clean that had not reached its swap is rolled back) unless a swap file names them |
//! | `cleaner-swap` | `meta` envelope, magic `BRSW`, version 2: u64 the number of groups, then for each group u64 the new segment's base offset, u64 the number of segments it replaces and their u64 base offsets (version 1, written before brook swapped several groups at once: one group, u64 the new base then the replaced bases, is read too) | the commit point of a swap: the swap is finished (each `.cleaned` file renamed over its final name, the replaced segments' files removed) and the file removed |
//!
//! A swap ([`commit_swap`]) covers every group a clean rewrote, at once: the cleaned files of
//! all groups are written, then fsynced together; the swap file naming all groups is written
//! (atomically and durably: this is the commit point); each `.cleaned` file is renamed over its
//! final name; the other replaced segments' files are removed; the directory is fsynced once
//! for all of it; the swap file is removed. A crash before the swap file leaves the old
//! segments whole (the `.cleaned` files are removed on open); a crash after it leaves a swap
//! that the next open finishes ([`recover_swap`]), whatever step it stopped at, since every
//! step can be done again. The cleaned-below offset is raised (durably) before any swap of a clean, so
//! recovery and `brook log check` never meet a gap where they expect none.

use std::path::{Path, PathBuf};

use crate::error::{LogError, Result};
use crate::fs::{self, Fs};
use crate::meta;
use crate::segment::{segment_file, INDEX_EXT, LOG_EXT, TIME_INDEX_EXT};
use crate::txn_index::txn_index_path;

/// File name of the cleaner checkpoint.
pub(crate) const CHECKPOINT_FILE: &str = "cleaner-checkpoint";
/// File name of the swap in progress.
pub(crate) const SWAP_FILE: &str = "cleaner-swap";
/// Suffix of a cleaned segment's files before the swap.
pub(crate) const CLEANED_SUFFIX: &str = "cleaned";

const CHECKPOINT_MAGIC: [u8; 4] = *b"BRCL";
const SWAP_MAGIC: [u8; 4] = *b"BRSW";
const VERSION: u16 = 1;
/// The swap file's version: several groups. Version 1 held one.
const SWAP_VERSION: u16 = 2;

/// The extensions of a segment's files a clean rewrites.
pub(crate) const SEGMENT_EXTS: [&str; 3] = [LOG_EXT, INDEX_EXT, TIME_INDEX_EXT];

/// What the cleaner checkpoint holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CleanerCheckpoint {
    /// Records from here on have not been mapped by a clean: where the next one starts.
    pub first_dirty: u64,
    /// Segments whose base offset is below this may have been rewritten by a clean.
    pub cleaned_below: u64,
}

impl CleanerCheckpoint {
    /// Whether the segment based at `base` may have offset gaps.
    pub(crate) fn may_have_gaps(&self, base: u64) -> bool {
        base < self.cleaned_below
    }
}

/// `{base}.{ext}.cleaned` in `dir`.
pub(crate) fn cleaned_file(dir: &Path, base: u64, ext: &str) -> PathBuf {
    let mut name = segment_file(dir, base, ext).into_os_string();
    name.push(".");
    name.push(CLEANED_SUFFIX);
    PathBuf::from(name)
}

/// Reads the cleaner checkpoint of the log in `dir`; `None` when there is none.
pub(crate) fn read_checkpoint(fs: &dyn Fs, dir: &Path) -> Result<Option<CleanerCheckpoint>> {
    let path = dir.join(CHECKPOINT_FILE);
    let Some((version, payload)) =
        meta::read_in(fs, &path, CHECKPOINT_MAGIC, "cleaner checkpoint")?
    else {
        return Ok(None);
    };
    let bad = |reason: String| LogError::BadMetaFile {
        what: "cleaner checkpoint",
        path: path.clone(),
        reason,
    };
    if version != VERSION {
        return Err(bad(format!("version {version} is not {VERSION}")));
    }
    match u64s(&payload).as_slice() {
        [first_dirty, cleaned_below] => Ok(Some(CleanerCheckpoint {
            first_dirty: *first_dirty,
            cleaned_below: *cleaned_below,
        })),
        _ => Err(bad(format!(
            "payload of {} bytes, expected 16",
            payload.len()
        ))),
    }
}

/// The cleaner checkpoint at open. None: nothing was ever cleaned, every segment's offsets
/// follow on. A damaged one is logged and read as "anything may have been cleaned": every
/// segment may skip offsets (the contiguity check is lost, never a cleaned segment taken for
/// damage) and the next clean starts over from the log start.
pub(crate) fn load_checkpoint(fs: &dyn Fs, dir: &Path) -> CleanerCheckpoint {
    match read_checkpoint(fs, dir) {
        Ok(checkpoint) => checkpoint.unwrap_or_default(),
        Err(e) => {
            tracing::warn!(
                error = %e,
                "an unreadable cleaner checkpoint: any segment may have been cleaned, and the \
                 next clean starts over"
            );
            CleanerCheckpoint {
                first_dirty: 0,
                cleaned_below: u64::MAX,
            }
        }
    }
}

/// Durably replaces the cleaner checkpoint of the log in `dir`.
pub(crate) fn write_checkpoint(
    fs: &dyn Fs,
    dir: &Path,
    checkpoint: CleanerCheckpoint,
) -> Result<()> {
    let payload = [checkpoint.first_dirty, checkpoint.cleaned_below]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect::<Vec<u8>>();
    meta::write_in(
        fs,
        &dir.join(CHECKPOINT_FILE),
        CHECKPOINT_MAGIC,
        VERSION,
        &payload,
    )
}

/// A swap: in each group, the cleaned segment `new_base` replaces the segments `old_bases`
/// (which include `new_base` itself, the first of the group).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Swap {
    pub groups: Vec<SwapGroup>,
}

/// One group of a [`Swap`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SwapGroup {
    pub new_base: u64,
    pub old_bases: Vec<u64>,
}

impl Swap {
    /// The swap of groups of consecutive segments, each given by its bases (the first becomes
    /// the cleaned segment's).
    pub(crate) fn new(groups: Vec<Vec<u64>>) -> Self {
        Self {
            groups: groups
                .into_iter()
                .filter(|bases| !bases.is_empty())
                .map(|old_bases| SwapGroup {
                    new_base: old_bases[0],
                    old_bases,
                })
                .collect(),
        }
    }

    fn encode(&self) -> Vec<u8> {
        let mut values = vec![self.groups.len() as u64];
        for group in &self.groups {
            values.push(group.new_base);
            values.push(group.old_bases.len() as u64);
            values.extend_from_slice(&group.old_bases);
        }
        values.into_iter().flat_map(u64::to_be_bytes).collect()
    }

    /// The swap in a swap file's payload of `version`; `None` when it does not parse.
    fn decode(version: u16, payload: &[u8]) -> Option<Self> {
        if !payload.len().is_multiple_of(8) {
            return None;
        }
        let values = u64s(payload);
        match version {
            1 if values.len() >= 2 => Some(Self {
                groups: vec![SwapGroup {
                    new_base: values[0],
                    old_bases: values[1..].to_vec(),
                }],
            }),
            SWAP_VERSION => {
                let (&count, mut rest) = values.split_first()?;
                let mut groups = Vec::new();
                for _ in 0..count {
                    let (&new_base, after) = rest.split_first()?;
                    let (&n, after) = after.split_first()?;
                    let n = usize::try_from(n)
                        .ok()
                        .filter(|n| *n >= 1 && *n <= after.len())?;
                    groups.push(SwapGroup {
                        new_base,
                        old_bases: after[..n].to_vec(),
                    });
                    rest = &after[n..];
                }
                (rest.is_empty() && !groups.is_empty()).then_some(Self { groups })
            }
            _ => None,
        }
    }
}

/// Swaps the cleaned files of each group's `new_base` in for its segments `old_bases`, durably;
/// see the module doc. The cleaned files must be complete and fsynced.
pub(crate) fn commit_swap(fs: &dyn Fs, dir: &Path, swap: &Swap) -> Result<()> {
    meta::write_in(
        fs,
        &dir.join(SWAP_FILE),
        SWAP_MAGIC,
        SWAP_VERSION,
        &swap.encode(),
    )?;
    finish_swap(fs, dir, swap)
}

/// The steps after the commit point, each of which may have been done already.
fn finish_swap(fs: &dyn Fs, dir: &Path, swap: &Swap) -> Result<()> {
    for group in &swap.groups {
        for ext in SEGMENT_EXTS {
            let cleaned = cleaned_file(dir, group.new_base, ext);
            let target = segment_file(dir, group.new_base, ext);
            match fs.rename(&cleaned, &target) {
                Ok(()) => {}
                // Renamed before a crash.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(LogError::io(&cleaned, e)),
            }
        }
        for &base in group.old_bases.iter().filter(|&&b| b != group.new_base) {
            for path in SEGMENT_EXTS
                .iter()
                .map(|ext| segment_file(dir, base, ext))
                .chain([txn_index_path(dir, base)])
            {
                fs::remove_if_present(fs, &path).map_err(|e| LogError::io(&path, e))?;
            }
        }
    }
    meta::sync_dir_in(fs, dir)?;
    meta::remove_in(fs, &dir.join(SWAP_FILE))
}

/// At open, before the segments are listed: finishes a swap a crash interrupted after its
/// commit point, or rolls back a clean that had not reached it (its `.cleaned` files are
/// removed). Returns the swap finished, if any.
pub(crate) fn recover_swap(fs: &dyn Fs, dir: &Path) -> Result<Option<Swap>> {
    let path = dir.join(SWAP_FILE);
    let swap = match meta::read_in(fs, &path, SWAP_MAGIC, "cleaner swap")? {
        None => None,
        Some((version, payload)) => match Swap::decode(version, &payload) {
            Some(swap) => Some(swap),
            None => {
                return Err(LogError::BadMetaFile {
                    what: "cleaner swap",
                    path,
                    reason: format!(
                        "version {version} with {} payload bytes does not parse: expected \
                         version {SWAP_VERSION} (or 1) naming at least one group",
                        payload.len()
                    ),
                })
            }
        },
    };
    if let Some(swap) = &swap {
        tracing::warn!(
            dir = %dir.display(),
            groups = ?swap.groups,
            "finishing a cleaner swap an unclean stop interrupted"
        );
        finish_swap(fs, dir, swap)?;
    }
    let entries = fs.read_dir(dir).map_err(|e| LogError::io(dir, e))?;
    let mut removed = false;
    for entry in entries {
        let is_cleaned = entry
            .name
            .to_str()
            .is_some_and(|n| n.ends_with(&format!(".{CLEANED_SUFFIX}")));
        if is_cleaned {
            fs::remove_if_present(fs, &entry.path).map_err(|e| LogError::io(&entry.path, e))?;
            removed = true;
        }
    }
    if removed {
        tracing::info!(dir = %dir.display(), "removed the files of a clean an unclean stop interrupted");
        meta::sync_dir_in(fs, dir)?;
    }
    Ok(swap)
}

fn u64s(payload: &[u8]) -> Vec<u64> {
    payload
        .chunks_exact(8)
        .map(|c| {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            u64::from_be_bytes(b)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(dir: &Path, path: &Path, text: &str) {
        assert!(path.starts_with(dir));
        std::fs::write(path, text).expect("write");
    }

    fn read(path: &Path) -> Option<String> {
        std::fs::read_to_string(path).ok()
    }

    #[test]
    fn checkpoint_round_trips_and_a_bad_one_reads_as_anything_cleaned() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fs = crate::fs::real();
        assert_eq!(read_checkpoint(&*fs, dir.path()).expect("read"), None);
        let checkpoint = CleanerCheckpoint {
            first_dirty: 40,
            cleaned_below: 50,
        };
        write_checkpoint(&*fs, dir.path(), checkpoint).expect("write");
        assert_eq!(load_checkpoint(&*fs, dir.path()), checkpoint);
        assert!(checkpoint.may_have_gaps(49) && !checkpoint.may_have_gaps(50));
        std::fs::write(dir.path().join(CHECKPOINT_FILE), b"garbage").expect("damage");
        assert!(read_checkpoint(&*fs, dir.path()).is_err());
        let damaged = load_checkpoint(&*fs, dir.path());
        assert_eq!(damaged.first_dirty, 0, "the next clean starts over");
        assert!(
            damaged.may_have_gaps(u64::MAX - 1),
            "no segment is taken for damage"
        );
    }

    /// A swap of two groups stopped after each of its steps is finished by recovery to the same
    /// files; one not committed is rolled back; a version-1 swap file (one group) is finished.
    #[test]
    fn recovery_finishes_a_committed_swap_from_any_step_and_rolls_back_an_uncommitted_one() {
        let fs = crate::fs::real();
        let swap = Swap::new(vec![vec![0, 10, 20], vec![30, 40]]);
        let setup = |dir: &Path| {
            for base in [0, 10, 20, 30, 40] {
                for ext in SEGMENT_EXTS {
                    touch(dir, &segment_file(dir, base, ext), "old");
                }
            }
            for base in [0, 30] {
                for ext in SEGMENT_EXTS {
                    touch(dir, &cleaned_file(dir, base, ext), "new");
                }
            }
        };
        let swapped = |dir: &Path| {
            for ext in SEGMENT_EXTS {
                for base in [0, 30] {
                    assert_eq!(read(&segment_file(dir, base, ext)).as_deref(), Some("new"));
                    assert_eq!(read(&cleaned_file(dir, base, ext)), None);
                }
                for base in [10, 20, 40] {
                    assert_eq!(read(&segment_file(dir, base, ext)), None);
                }
            }
            assert!(!dir.join(SWAP_FILE).exists());
        };
        // Not committed: rolled back.
        let dir = tempfile::tempdir().expect("tempdir");
        setup(dir.path());
        assert_eq!(recover_swap(&*fs, dir.path()).expect("recover"), None);
        for base in [0, 20, 30, 40] {
            assert_eq!(
                read(&segment_file(dir.path(), base, INDEX_EXT)).as_deref(),
                Some("old")
            );
            assert_eq!(read(&cleaned_file(dir.path(), base, LOG_EXT)), None);
        }

        // Committed, then stopped after 0..=6 renames, or after every step but the last.
        let renames: Vec<(u64, &str)> = [0, 30]
            .into_iter()
            .flat_map(|base| SEGMENT_EXTS.map(|ext| (base, ext)))
            .collect();
        for renamed in 0..=renames.len() {
            let dir = tempfile::tempdir().expect("tempdir");
            setup(dir.path());
            commit_swap_file(dir.path(), &swap);
            for &(base, ext) in &renames[..renamed] {
                std::fs::rename(
                    cleaned_file(dir.path(), base, ext),
                    segment_file(dir.path(), base, ext),
                )
                .expect("rename");
            }
            if renamed == renames.len() {
                std::fs::remove_file(segment_file(dir.path(), 10, LOG_EXT)).expect("rm");
            }
            assert_eq!(
                recover_swap(&*fs, dir.path()).expect("recover"),
                Some(swap.clone())
            );
            swapped(dir.path());
            assert_eq!(recover_swap(&*fs, dir.path()).expect("again"), None);
        }

        // A version-1 swap file: one group.
        let dir = tempfile::tempdir().expect("tempdir");
        setup(dir.path());
        let v1: Vec<u8> = [0u64, 0, 10, 20]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect();
        meta::write_in(&*fs, &dir.path().join(SWAP_FILE), SWAP_MAGIC, 1, &v1).expect("v1");
        assert_eq!(
            recover_swap(&*fs, dir.path()).expect("recover v1"),
            Some(Swap::new(vec![vec![0, 10, 20]]))
        );
        assert_eq!(
            read(&segment_file(dir.path(), 0, LOG_EXT)).as_deref(),
            Some("new")
        );
        assert_eq!(read(&segment_file(dir.path(), 10, LOG_EXT)), None);
        assert_eq!(
            read(&segment_file(dir.path(), 30, LOG_EXT)).as_deref(),
            Some("old"),
            "not in the swap"
        );
    }

    fn commit_swap_file(dir: &Path, swap: &Swap) {
        meta::write_in(
            &*crate::fs::real(),
            &dir.join(SWAP_FILE),
            SWAP_MAGIC,
            SWAP_VERSION,
            &swap.encode(),
        )
        .expect("commit");
    }

    #[test]
    fn a_swap_file_round_trips_and_a_malformed_one_is_refused() {
        let swap = Swap::new(vec![vec![0, 10], vec![20], vec![30, 40, 50]]);
        assert_eq!(
            Swap::decode(SWAP_VERSION, &swap.encode()),
            Some(swap.clone())
        );
        let bytes = swap.encode();
        assert_eq!(Swap::decode(SWAP_VERSION, &bytes[..bytes.len() - 8]), None);
        assert_eq!(Swap::decode(SWAP_VERSION, &bytes[..bytes.len() - 1]), None);
        let mut extra = bytes.clone();
        extra.extend_from_slice(&7u64.to_be_bytes());
        assert_eq!(Swap::decode(SWAP_VERSION, &extra), None);
        assert_eq!(Swap::decode(SWAP_VERSION, &0u64.to_be_bytes()), None);
        assert_eq!(Swap::decode(3, &bytes), None);
        let dir = tempfile::tempdir().expect("tempdir");
        let fs = crate::fs::real();
        meta::write_in(
            &*fs,
            &dir.path().join(SWAP_FILE),
            SWAP_MAGIC,
            SWAP_VERSION,
            &extra,
        )
        .expect("write");
        assert!(matches!(
            recover_swap(&*fs, dir.path()),
            Err(LogError::BadMetaFile { .. })
        ));
    }
}
