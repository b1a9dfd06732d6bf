//! Committed offsets per consumer group: one fact whichever door committed them, persisted in
//! the data directory so they survive restarts.
//!
//! All groups' offsets live in one snapshot file, `<data>/groups/offsets.meta`, in brook-log's
//! [`meta`] envelope (magic `BROF`, CRC-32, atomic replace with fsync of the file and the
//! directory), so a crash leaves the previous or the new snapshot, never a mix. A commit returns
//! only after a snapshot holding it is durable. Concurrent commits share snapshots: a commit
//! whose change was already written by another's snapshot does not write again, so a burst of
//! commits costs about one file write per write duration, as group commit does for the log.
//!
//! The payload (version 1, big-endian):
//!
//! | field      | type                                   |
//! |------------|----------------------------------------|
//! | `count`    | u32: number of entries                 |
//! | entries    | `group` (u16 length + UTF-8), `topic` (u16 length + UTF-8), `partition` u32, `offset` u64, `commit_timestamp` i64, `metadata` (u32 length + UTF-8) |
//!
//! Every length is checked against the bytes present before anything is allocated.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use brook_log::{meta, LogError};
use parking_lot::Mutex;

use crate::error::Result;
use crate::types::{CommittedOffset, TopicPartition};

const OFFSETS_MAGIC: [u8; 4] = *b"BROF";
const OFFSETS_VERSION: u16 = 1;
/// Directory (under the data dir) of the broker's group files.
const GROUPS_DIR: &str = "groups";
const OFFSETS_FILE: &str = "offsets.meta";

type GroupOffsets = BTreeMap<TopicPartition, CommittedOffset>;

#[derive(Debug, Default)]
struct State {
    groups: BTreeMap<String, GroupOffsets>,
    /// Bumped by every change; a snapshot records the version it holds.
    version: u64,
}

/// The committed offsets of every group, in memory and on disk.
#[derive(Debug)]
pub(crate) struct OffsetStore {
    path: PathBuf,
    state: Mutex<State>,
    /// The version of the newest durable snapshot; held while writing one, so writers queue.
    persisted: Mutex<u64>,
}

impl OffsetStore {
    /// Loads the snapshot under `data_dir`, creating the groups directory. Blocking.
    pub(crate) fn open(data_dir: &Path) -> Result<Self> {
        let dir = data_dir.join(GROUPS_DIR);
        std::fs::create_dir_all(&dir).map_err(|e| LogError::io(&dir, e))?;
        let path = dir.join(OFFSETS_FILE);
        let groups = match meta::read(&path, OFFSETS_MAGIC, "committed offsets")? {
            None => BTreeMap::new(),
            Some((version, payload)) => {
                let bad = |reason: String| LogError::BadMetaFile {
                    what: "committed offsets",
                    path: path.clone(),
                    reason,
                };
                if version != OFFSETS_VERSION {
                    return Err(bad(format!(
                        "version {version} is not {OFFSETS_VERSION}; written by a newer brook?"
                    ))
                    .into());
                }
                decode(&payload).map_err(bad)?
            }
        };
        Ok(Self {
            path,
            state: Mutex::new(State { groups, version: 0 }),
            persisted: Mutex::new(0),
        })
    }

    /// Records `offsets` for `group` and returns once they are durable. Blocking.
    pub(crate) fn commit(
        &self,
        group: &str,
        offsets: impl IntoIterator<Item = (TopicPartition, CommittedOffset)>,
    ) -> Result<()> {
        let mine = {
            let mut state = self.state.lock();
            let entry = state.groups.entry(group.to_owned()).or_default();
            entry.extend(offsets);
            state.version += 1;
            state.version
        };
        self.persist(mine)
    }

    /// Forgets every group's offsets in `topic` (the topic was deleted). Blocking.
    pub(crate) fn remove_topic(&self, topic: &str) -> Result<()> {
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
    pub(crate) fn get(&self, group: &str, tp: &TopicPartition) -> Option<CommittedOffset> {
        self.state.lock().groups.get(group)?.get(tp).cloned()
    }

    /// All committed offsets of `group`, sorted by topic and partition.
    pub(crate) fn group(&self, group: &str) -> Vec<(TopicPartition, CommittedOffset)> {
        self.state
            .lock()
            .groups
            .get(group)
            .map(|offsets| {
                offsets
                    .iter()
                    .map(|(tp, c)| (tp.clone(), c.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every group with at least one committed offset, sorted.
    pub(crate) fn groups(&self) -> Vec<String> {
        self.state.lock().groups.keys().cloned().collect()
    }

    /// Writes a snapshot unless one at `version` or newer is already durable.
    fn persist(&self, version: u64) -> Result<()> {
        let mut persisted = self.persisted.lock();
        if *persisted >= version {
            return Ok(());
        }
        let (snapshot_version, payload) = {
            let state = self.state.lock();
            (state.version, encode(&state.groups))
        };
        meta::write(&self.path, OFFSETS_MAGIC, OFFSETS_VERSION, &payload)?;
        *persisted = snapshot_version;
        Ok(())
    }
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
            store.get("g1", &TopicPartition::new("a", 0)),
            Some(committed(6, "n"))
        );
        assert_eq!(store.group("g1").len(), 2);
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
            store.group("g1"),
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
}
