//! Committed offsets per consumer group: one fact whichever door committed them, persisted in
//! the data directory so they survive restarts.
//!
//! All groups' offsets live in one snapshot, `<data>/groups/offsets.meta`, kept as brook-log's
//! [`meta::Alternating`] copies (`offsets.meta.0`, `offsets.meta.1`; magic `BROF`, CRC-32):
//! each snapshot overwrites the older copy in place and is fdatasync'ed, so a torn or flipped
//! write loses at most the last snapshot (the other copy holds the one before). A commit returns
//! only after a snapshot holding it is durable. Concurrent commits share snapshots: a commit
//! whose change was already written by another's snapshot does not write again, so a burst of
//! commits costs about one file write per write duration, as group commit does for the log.
//! (A snapshot of the older layout, one file `offsets.meta` replaced atomically, is read and
//! replaced by the first commit.)
//!
//! **Both copies always exist.** The groups directory is created whole: both copies (holding
//! no offsets) are written and fsynced in `groups.new`, which is then renamed to `groups`. So
//! a copy missing or all zeros is damage, never "nothing committed yet": with the other copy
//! valid it is reported (a warning; that copy's snapshot, at most the last commit, is lost)
//! and the next commit rewrites it; with no valid copy at all, including both missing, the
//! offsets are fenced.
//!
//! When no copy is usable the committed offsets are **fenced**, and only they: the broker
//! opens and every partition serves, but reading or committing a group's offsets fails with
//! [`BrokerError::OffsetsUnavailable`] (a consumer resuming from a guessed position, or a
//! commit overwriting what an operator might restore, would be worse) until an operator
//! restores the copies, or removes the `groups` directory to start with no committed offsets.
//! `brook log check` judges the copies with the same rule ([`check_offsets_file`]).
//!
//! The payload (version 1, big-endian, after the copies' sequence number):
//!
//! | field      | type                                   |
//! |------------|----------------------------------------|
//! | `count`    | u32: number of entries                 |
//! | entries    | `group` (u16 length + UTF-8), `topic` (u16 length + UTF-8), `partition` u32, `offset` u64, `commit_timestamp` i64, `metadata` (u32 length + UTF-8) |
//!
//! Every length is checked against the bytes present before anything is allocated.

use std::collections::BTreeMap;
use std::path::Path;

use brook_log::meta::{self, Alternating};
use brook_log::LogError;
use parking_lot::Mutex;

use crate::error::{BrokerError, Result};
use crate::types::{CommittedOffset, TopicPartition};

const OFFSETS_MAGIC: [u8; 4] = *b"BROF";
const OFFSETS_VERSION: u16 = 1;
/// Directory (under the data dir) of the broker's group files.
const GROUPS_DIR: &str = "groups";
/// Where a new groups directory is put together before it is renamed into place.
const GROUPS_NEW_DIR: &str = "groups.new";
const OFFSETS_FILE: &str = "offsets.meta";

type GroupOffsets = BTreeMap<TopicPartition, CommittedOffset>;

#[derive(Debug, Default)]
struct State {
    groups: BTreeMap<String, GroupOffsets>,
    /// Bumped by every change; a snapshot records the version it holds.
    version: u64,
}

/// The durable side: the copies, and the version of the newest durable snapshot.
#[derive(Debug)]
struct Persisted {
    file: Alternating,
    version: u64,
}

/// The committed offsets of every group, in memory and on disk.
#[derive(Debug)]
pub(crate) struct OffsetStore {
    state: Mutex<State>,
    /// Held while writing a snapshot, so writers queue.
    persisted: Mutex<Persisted>,
    /// Why the offsets are fenced: every copy of the file is damaged (see the module docs).
    fenced: Option<String>,
}

impl OffsetStore {
    /// Loads the snapshot under `data_dir`, creating the groups directory. Blocking. Damage
    /// to the file fences the offsets rather than failing (see the module docs); only an I/O
    /// error that leaves nothing to judge fails the open.
    pub(crate) fn open(data_dir: &Path) -> Result<Self> {
        let dir = data_dir.join(GROUPS_DIR);
        if !dir.is_dir() {
            create_groups_dir(data_dir)?;
        }
        let judged = judge(&dir.join(OFFSETS_FILE))?;
        let (groups, fenced) = match judged.groups {
            Ok(groups) => {
                for damage in &judged.damage {
                    tracing::warn!(error = %damage, "a copy of the committed offsets is damaged or missing (a torn write?); using the other, which may lack the last commit");
                }
                (groups, None)
            }
            Err(reason) => {
                tracing::error!(%reason, "no copy of the committed offsets is usable: group offsets are fenced (reads and commits fail) until an operator restores the copies, or removes the groups directory to start with no committed offsets; every partition serves");
                (
                    BTreeMap::new(),
                    Some(
                        "no copy of the committed offsets file is usable; an operator must \
                         restore it, or remove it to start with no committed offsets (see the \
                         server log)"
                            .to_owned(),
                    ),
                )
            }
        };
        Ok(Self {
            state: Mutex::new(State { groups, version: 0 }),
            persisted: Mutex::new(Persisted {
                file: judged.file,
                version: 0,
            }),
            fenced,
        })
    }

    /// `Err(OffsetsUnavailable)` while the offsets are fenced.
    pub(crate) fn check(&self) -> Result<()> {
        match &self.fenced {
            Some(reason) => Err(BrokerError::OffsetsUnavailable {
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Records `offsets` for `group` and returns once they are durable. Blocking.
    pub(crate) fn commit(
        &self,
        group: &str,
        offsets: impl IntoIterator<Item = (TopicPartition, CommittedOffset)>,
    ) -> Result<()> {
        self.check()?;
        let mine = {
            let mut state = self.state.lock();
            let entry = state.groups.entry(group.to_owned()).or_default();
            entry.extend(offsets);
            state.version += 1;
            state.version
        };
        self.persist(mine)
    }

    /// Forgets every group's offsets in `topic` (the topic was deleted). Blocking. Nothing to
    /// do while fenced: the damaged files are left for the operator.
    pub(crate) fn remove_topic(&self, topic: &str) -> Result<()> {
        if self.fenced.is_some() {
            return Ok(());
        }
        let mine = {
            let mut state = self.state.lock();
            let mut changed = false;
            for offsets in state.groups.values_mut() {
                let before = offsets.len();
                offsets.retain(|tp, _| tp.topic != topic);
                changed |= offsets.len() != before;
            }
            if !changed {
                return Ok(());
            }
            state.groups.retain(|_, offsets| !offsets.is_empty());
            state.version += 1;
            state.version
        };
        self.persist(mine)
    }

    /// Forgets `group`'s offsets in the partitions `doomed` picks (a group deleted, or offsets
    /// deleted by an admin). Returns how many went; durable when it returns. Blocking.
    pub(crate) fn remove(
        &self,
        group: &str,
        doomed: impl Fn(&TopicPartition) -> bool,
    ) -> Result<usize> {
        self.check()?;
        let (removed, mine) = {
            let mut state = self.state.lock();
            let Some(offsets) = state.groups.get_mut(group) else {
                return Ok(0);
            };
            let before = offsets.len();
            offsets.retain(|tp, _| !doomed(tp));
            let removed = before - offsets.len();
            if removed == 0 {
                return Ok(0);
            }
            if offsets.is_empty() {
                state.groups.remove(group);
            }
            state.version += 1;
            (removed, state.version)
        };
        self.persist(mine)?;
        Ok(removed)
    }

    /// The committed offset of `group` in `tp`.
    pub(crate) fn get(&self, group: &str, tp: &TopicPartition) -> Result<Option<CommittedOffset>> {
        self.check()?;
        Ok(self
            .state
            .lock()
            .groups
            .get(group)
            .and_then(|g| g.get(tp).cloned()))
    }

    /// All committed offsets of `group`, sorted by topic and partition.
    pub(crate) fn group(&self, group: &str) -> Result<Vec<(TopicPartition, CommittedOffset)>> {
        self.check()?;
        Ok(self
            .state
            .lock()
            .groups
            .get(group)
            .map(|offsets| {
                offsets
                    .iter()
                    .map(|(tp, c)| (tp.clone(), c.clone()))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Every group with at least one committed offset, sorted (none while fenced).
    pub(crate) fn groups(&self) -> Vec<String> {
        self.state.lock().groups.keys().cloned().collect()
    }

    /// Writes a snapshot unless one at `version` or newer is already durable.
    fn persist(&self, version: u64) -> Result<()> {
        let mut persisted = self.persisted.lock();
        if persisted.version >= version {
            return Ok(());
        }
        let (snapshot_version, payload) = {
            let state = self.state.lock();
            (state.version, encode(&state.groups))
        };
        persisted.file.write(OFFSETS_VERSION, &payload)?;
        persisted.version = snapshot_version;
        Ok(())
    }
}

/// Creates `<data_dir>/groups` whole (see the module docs): both copies, holding no offsets,
/// written and fsynced in `groups.new` (whatever an interrupted creation left there goes
/// first), which is then renamed into place.
fn create_groups_dir(data_dir: &Path) -> Result<()> {
    let fresh = data_dir.join(GROUPS_NEW_DIR);
    if fresh.exists() {
        std::fs::remove_dir_all(&fresh).map_err(|e| LogError::io(&fresh, e))?;
    }
    std::fs::create_dir(&fresh).map_err(|e| LogError::io(&fresh, e))?;
    let (mut file, _) = Alternating::open(
        &fresh.join(OFFSETS_FILE),
        OFFSETS_MAGIC,
        "committed offsets",
    )?;
    let empty = encode(&BTreeMap::new());
    for _copy in 0..2 {
        file.write(OFFSETS_VERSION, &empty)?;
    }
    let dir = data_dir.join(GROUPS_DIR);
    std::fs::rename(&fresh, &dir).map_err(|e| LogError::io(&dir, e))?;
    meta::sync_dir(data_dir)?;
    Ok(())
}

/// The copies of the committed offsets file at `path`, judged (the one rule both the open
/// and `brook log check` follow).
struct Judged {
    file: Alternating,
    /// The offsets, or why none can be trusted (the offsets are then fenced).
    groups: std::result::Result<BTreeMap<String, GroupOffsets>, String>,
    /// One line per copy that is damaged, missing or all zeros, or content that does not
    /// decode, naming the file.
    damage: Vec<String>,
}

fn judge(path: &Path) -> Result<Judged> {
    let (file, read) = Alternating::open(path, OFFSETS_MAGIC, "committed offsets")?;
    let mut damage: Vec<String> = read.damaged.iter().map(ToString::to_string).collect();
    // Both copies absent with content found: the older one-file layout, read as it was.
    let legacy = read.absent.len() == 2 && read.content.is_some();
    if !legacy {
        for copy in &read.absent {
            damage.push(format!(
                "bad committed offsets file {}: missing or all zeros, though both copies are \
                 written when the file is created",
                copy.display()
            ));
        }
    }
    let bad = |reason: String| {
        LogError::BadMetaFile {
            what: "committed offsets",
            path: path.to_path_buf(),
            reason,
        }
        .to_string()
    };
    let groups = match read.content {
        None => {
            return Ok(Judged {
                file,
                groups: Err(damage.join("; ")),
                damage,
            })
        }
        Some((version, _)) if version != OFFSETS_VERSION => Err(bad(format!(
            "version {version} is not {OFFSETS_VERSION}; written by a newer brook?"
        ))),
        Some((_, payload)) => decode(&payload).map_err(bad),
    };
    if let Err(reason) = &groups {
        damage.push(reason.clone());
    }
    Ok(Judged {
        file,
        groups,
        damage,
    })
}

/// What [`check_offsets_file`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct OffsetsFileCheck {
    /// Each copy that does not check out, or content that does not decode, as one line
    /// naming the file.
    pub damaged_copies: Vec<String>,
    /// No copy is usable: the next open fences every group's committed offsets.
    pub fenced: bool,
}

/// Reads the committed offsets file of the data directory `data_dir` as the next open would,
/// without changing it: for `brook log check`. A data directory without a groups directory
/// (never served) has nothing to check.
pub fn check_offsets_file(data_dir: &Path) -> Result<OffsetsFileCheck> {
    let dir = data_dir.join(GROUPS_DIR);
    if !dir.is_dir() {
        return Ok(OffsetsFileCheck::default());
    }
    let judged = judge(&dir.join(OFFSETS_FILE))?;
    Ok(OffsetsFileCheck {
        fenced: judged.groups.is_err(),
        damaged_copies: judged.damage,
    })
}

fn encode(groups: &BTreeMap<String, GroupOffsets>) -> Vec<u8> {
    let count: usize = groups.values().map(BTreeMap::len).sum();
    let mut out = Vec::with_capacity(4 + count * 48);
    out.extend_from_slice(&(count as u32).to_be_bytes());
    for (group, offsets) in groups {
        for (tp, committed) in offsets {
            // Group ids, topic names and metadata are bounded on commit (255, 249 and
            // offset_metadata_bytes_max bytes), so the length prefixes cannot overflow.
            put_str16(&mut out, group);
            put_str16(&mut out, &tp.topic);
            out.extend_from_slice(&tp.partition.to_be_bytes());
            out.extend_from_slice(&committed.offset.to_be_bytes());
            out.extend_from_slice(&committed.commit_timestamp.to_be_bytes());
            out.extend_from_slice(&(committed.metadata.len() as u32).to_be_bytes());
            out.extend_from_slice(committed.metadata.as_bytes());
        }
    }
    out
}

fn put_str16(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// A cursor over a payload that refuses to read past its end.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], String> {
        let have = self.bytes.len() - self.at;
        if n > have {
            return Err(format!(
                "truncated at byte {}: need {n} bytes, have {have}",
                self.at
            ));
        }
        let out = &self.bytes[self.at..self.at + n];
        self.at += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> std::result::Result<[u8; N], String> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn string(&mut self, len: usize) -> std::result::Result<String, String> {
        let at = self.at;
        std::str::from_utf8(self.take(len)?)
            .map(str::to_owned)
            .map_err(|e| format!("bad UTF-8 at byte {at}: {e}"))
    }
}

fn decode(payload: &[u8]) -> std::result::Result<BTreeMap<String, GroupOffsets>, String> {
    let mut r = Reader {
        bytes: payload,
        at: 0,
    };
    let count = u32::from_be_bytes(r.array()?);
    let mut groups: BTreeMap<String, GroupOffsets> = BTreeMap::new();
    // No pre-allocation by `count`: every entry must be backed by bytes, checked as read.
    for _ in 0..count {
        let group_len = u16::from_be_bytes(r.array()?) as usize;
        let group = r.string(group_len)?;
        let topic_len = u16::from_be_bytes(r.array()?) as usize;
        let topic = r.string(topic_len)?;
        let partition = u32::from_be_bytes(r.array()?);
        let offset = u64::from_be_bytes(r.array()?);
        let commit_timestamp = i64::from_be_bytes(r.array()?);
        let metadata_len = u32::from_be_bytes(r.array()?) as usize;
        let metadata = r.string(metadata_len)?;
        groups.entry(group).or_default().insert(
            TopicPartition { topic, partition },
            CommittedOffset {
                offset,
                metadata,
                commit_timestamp,
            },
        );
    }
    if r.at != payload.len() {
        return Err(format!(
            "{} bytes left after {count} entries",
            payload.len() - r.at
        ));
    }
    Ok(groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn committed(offset: u64, metadata: &str) -> CommittedOffset {
        CommittedOffset {
            offset,
            metadata: metadata.to_owned(),
            commit_timestamp: 1_700_000_000_000 + offset as i64,
        }
    }

    #[test]
    fn commits_survive_reopen_and_topic_removal_forgets_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = OffsetStore::open(dir.path()).expect("open");
            store
                .commit(
                    "g1",
                    [
                        (TopicPartition::new("a", 0), committed(5, "m")),
                        (TopicPartition::new("b", 2), committed(7, "")),
                    ],
                )
                .expect("commit");
            store
                .commit("g2", [(TopicPartition::new("a", 0), committed(1, "x"))])
                .expect("commit");
            store
                .commit("g1", [(TopicPartition::new("a", 0), committed(6, "n"))])
                .expect("overwrite");
        }
        let store = OffsetStore::open(dir.path()).expect("reopen");
        assert_eq!(store.groups(), ["g1", "g2"]);
        assert_eq!(
            store.get("g1", &TopicPartition::new("a", 0)).expect("get"),
            Some(committed(6, "n"))
        );
        assert_eq!(store.group("g1").expect("group").len(), 2);
        store.remove_topic("a").expect("remove");
        drop(store);
        let store = OffsetStore::open(dir.path()).expect("reopen");
        assert_eq!(store.groups(), ["g1"], "g2 only had offsets in `a`");
        assert_eq!(store.remove("g1", |tp| tp.partition == 9).expect("none"), 0);
        assert_eq!(store.remove("nobody", |_| true).expect("none"), 0);
        assert_eq!(store.remove("g1", |_| true).expect("remove"), 1);
        drop(store);
        let store = OffsetStore::open(dir.path()).expect("reopen");
        assert!(store.groups().is_empty(), "a group without offsets is gone");
        store
            .commit("g1", [(TopicPartition::new("b", 2), committed(7, ""))])
            .expect("commit again");
        assert_eq!(
            store.group("g1").expect("group"),
            [(TopicPartition::new("b", 2), committed(7, ""))]
        );
    }

    #[test]
    fn damaged_payloads_are_refused_not_half_read() {
        let mut groups = BTreeMap::new();
        groups.insert(
            "g".to_owned(),
            BTreeMap::from([(TopicPartition::new("t", 1), committed(3, "meta"))]),
        );
        let good = encode(&groups);
        assert_eq!(decode(&good).expect("decodes"), groups);
        for cut in 0..good.len() {
            assert!(decode(&good[..cut]).is_err(), "cut at {cut} accepted");
        }
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(decode(&trailing).is_err());
        // A huge count with no bytes behind it fails fast instead of allocating.
        assert!(decode(&u32::MAX.to_be_bytes()).is_err());
    }

    #[test]
    fn both_copies_exist_from_the_start_so_a_missing_or_zeroed_copy_is_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tp = TopicPartition::new("t", 0);
        let groups = dir.path().join(GROUPS_DIR);
        let copies = [0, 1].map(|i| groups.join(format!("{OFFSETS_FILE}.{i}")));
        let store = OffsetStore::open(dir.path()).expect("open");
        assert!(
            copies.iter().all(|c| c.is_file()),
            "both copies at creation"
        );
        assert!(!dir.path().join(GROUPS_NEW_DIR).exists());
        assert_eq!(
            check_offsets_file(dir.path()).expect("check"),
            OffsetsFileCheck::default()
        );
        store
            .commit("g", [(tp.clone(), committed(5, ""))])
            .expect("commit");
        store
            .commit("g", [(tp.clone(), committed(6, ""))])
            .expect("commit");
        drop(store);
        let saved = copies.clone().map(|c| std::fs::read(c).expect("read"));
        let restore = || {
            for (copy, bytes) in copies.iter().zip(&saved) {
                std::fs::write(copy, bytes).expect("restore");
            }
        };
        // One copy lost (deleted or zeroed): the other serves, losing at most the last
        // commit, and both the open and the check say so.
        for copy in &copies {
            for zero in [false, true] {
                if zero {
                    std::fs::write(copy, vec![0u8; saved[0].len()]).expect("zero");
                } else {
                    std::fs::remove_file(copy).expect("delete");
                }
                let check = check_offsets_file(dir.path()).expect("check");
                assert!(!check.fenced, "{check:?}");
                assert_eq!(check.damaged_copies.len(), 1, "{check:?}");
                assert!(check.damaged_copies[0].contains(&copy.display().to_string()));
                let store = OffsetStore::open(dir.path()).expect("opens");
                let got = store.get("g", &tp).expect("not fenced").expect("an offset");
                assert!(got.offset >= 5, "lost more than the last commit");
                drop(store);
                restore();
            }
        }
        // Both lost: fenced, never "never committed"; removing the directory starts afresh.
        for zero in [false, true] {
            for copy in &copies {
                if zero {
                    std::fs::write(copy, vec![0u8; saved[0].len()]).expect("zero");
                } else {
                    std::fs::remove_file(copy).expect("delete");
                }
            }
            let check = check_offsets_file(dir.path()).expect("check");
            assert!(check.fenced, "{check:?}");
            assert_eq!(check.damaged_copies.len(), 2, "{check:?}");
            let store = OffsetStore::open(dir.path()).expect("opens anyway");
            assert!(matches!(
                store.get("g", &tp),
                Err(BrokerError::OffsetsUnavailable { .. })
            ));
            drop(store);
            restore();
        }
        std::fs::remove_dir_all(&groups).expect("the operator's reset");
        let store = OffsetStore::open(dir.path()).expect("opens afresh");
        assert_eq!(store.get("g", &tp).expect("not fenced"), None);
    }

    #[test]
    fn a_damaged_copy_loses_at_most_the_last_commit_and_both_fence_the_offsets() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tp = TopicPartition::new("t", 0);
        let store = OffsetStore::open(dir.path()).expect("open");
        for offset in 1..=3 {
            store
                .commit("g", [(tp.clone(), committed(offset, ""))])
                .expect("commit");
        }
        drop(store);
        let groups = dir.path().join(GROUPS_DIR);
        let copies = [0, 1].map(|i| groups.join(format!("{OFFSETS_FILE}.{i}")));
        for copy in &copies {
            let saved = std::fs::read(copy).expect("read");
            let mut bad = saved.clone();
            let at = bad.len() / 2;
            bad[at] ^= 1;
            std::fs::write(copy, &bad).expect("flip");
            let store = OffsetStore::open(dir.path()).expect("opens");
            let got = store.get("g", &tp).expect("not fenced").expect("an offset");
            assert!(
                got.offset >= 2,
                "{}: lost more than the last commit",
                copy.display()
            );
            drop(store);
            std::fs::write(copy, &saved).expect("restore");
        }
        for copy in &copies {
            std::fs::write(copy, b"garbage").expect("damage");
        }
        let store = OffsetStore::open(dir.path()).expect("opens anyway");
        assert!(matches!(
            store.get("g", &tp),
            Err(BrokerError::OffsetsUnavailable { .. })
        ));
        assert!(matches!(
            store.commit("g", [(tp.clone(), committed(9, ""))]),
            Err(BrokerError::OffsetsUnavailable { .. })
        ));
        assert!(store.remove_topic("t").is_ok());
        assert_eq!(
            std::fs::read(&copies[0]).expect("read"),
            b"garbage",
            "nothing is overwritten while fenced"
        );
    }
}
