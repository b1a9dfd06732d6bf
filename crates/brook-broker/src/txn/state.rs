//! What the transaction coordinator remembers of one transactional id, and its byte form in
//! the coordinator's log (Kafka's `TransactionMetadata`).
//!
//! The record's key is the transactional id (UTF-8); its value is a [`TxnMeta`] (version 1,
//! big-endian), or null once the id is forgotten:
//!
//! | field              | type                                                      |
//! |--------------------|-----------------------------------------------------------|
//! | `version`          | u16: 1                                                    |
//! | `producer_id`      | i64                                                       |
//! | `last_producer_id` | i64: the id before the last rotation, -1 if none          |
//! | `epoch`            | i16                                                       |
//! | `last_epoch`       | i16: the epoch before the last bump, -1 if none           |
//! | `timeout_ms`       | u32                                                       |
//! | `state`            | u8: [`TxnState`] code                                     |
//! | `flags`            | u8: bit 0, brook's own atomic write                       |
//! | `start_ms`         | i64: when the open transaction began, -1 when none        |
//! | `update_ms`        | i64: the last change                                      |
//! | partitions         | u32 count, each: topic (u16 length + UTF-8), partition u32 |
//! | groups             | u32 count, each: group (u16 length + UTF-8), then u32 count of offsets, each: topic (u16 + UTF-8), partition u32, offset u64, metadata (u32 length + UTF-8) |
//!
//! Every length is checked against the bytes present before anything is allocated for it.

use std::collections::{BTreeMap, BTreeSet};

use crate::types::TopicPartition;

const VERSION: u16 = 1;
const FLAG_INTERNAL: u8 = 1;

/// Where a transaction stands, with Kafka's names (ListTransactions and DescribeTransactions
/// show them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum TxnState {
    /// Initialized, no transaction open.
    Empty,
    /// Partitions or offsets were added; records may be written.
    Ongoing,
    /// Commit decided and durable; markers are being written.
    PrepareCommit,
    /// Abort decided and durable; markers are being written.
    PrepareAbort,
    /// The last transaction committed.
    CompleteCommit,
    /// The last transaction aborted.
    CompleteAbort,
}

impl TxnState {
    /// Every state, in code order.
    pub const ALL: [TxnState; 6] = [
        Self::Empty,
        Self::Ongoing,
        Self::PrepareCommit,
        Self::PrepareAbort,
        Self::CompleteCommit,
        Self::CompleteAbort,
    ];

    /// Kafka's name of the state.
    pub fn name(self) -> &'static str {
        match self {
            Self::Empty => "Empty",
            Self::Ongoing => "Ongoing",
            Self::PrepareCommit => "PrepareCommit",
            Self::PrepareAbort => "PrepareAbort",
            Self::CompleteCommit => "CompleteCommit",
            Self::CompleteAbort => "CompleteAbort",
        }
    }

    /// The state named `name` (Kafka's names, as ListTransactions filters carry them).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    fn code(self) -> u8 {
        self as u8
    }

    fn from_code(code: u8) -> Option<Self> {
        Self::ALL.get(code as usize).copied()
    }

    /// A commit or abort is decided but not finished.
    pub(crate) fn is_preparing(self) -> bool {
        matches!(self, Self::PrepareCommit | Self::PrepareAbort)
    }
}

impl std::fmt::Display for TxnState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// An offset a transaction will commit for a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PendingOffset {
    pub offset: u64,
    pub metadata: String,
}

/// One transactional id's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TxnMeta {
    pub producer_id: i64,
    pub last_producer_id: i64,
    pub epoch: i16,
    pub last_epoch: i16,
    pub timeout_ms: u32,
    pub state: TxnState,
    /// brook's own atomic write (no client will come back for it).
    pub internal: bool,
    pub start_ms: i64,
    pub update_ms: i64,
    pub partitions: BTreeSet<TopicPartition>,
    /// Groups added to the transaction, with the offsets it will commit for each.
    pub groups: BTreeMap<String, BTreeMap<TopicPartition, PendingOffset>>,
}

impl TxnMeta {
    /// A new id's state: its producer id, epoch 0, nothing open.
    pub(crate) fn new(producer_id: i64, timeout_ms: u32, now: i64) -> Self {
        Self {
            producer_id,
            last_producer_id: -1,
            epoch: 0,
            last_epoch: -1,
            timeout_ms,
            state: TxnState::Empty,
            internal: false,
            start_ms: -1,
            update_ms: now,
            partitions: BTreeSet::new(),
            groups: BTreeMap::new(),
        }
    }

    /// The same id with its transaction settled in `state` (nothing pending).
    pub(crate) fn settled(&self, state: TxnState, now: i64) -> Self {
        Self {
            state,
            start_ms: -1,
            update_ms: now,
            partitions: BTreeSet::new(),
            groups: BTreeMap::new(),
            ..self.clone()
        }
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.partitions.len() * 24);
        out.extend_from_slice(&VERSION.to_be_bytes());
        out.extend_from_slice(&self.producer_id.to_be_bytes());
        out.extend_from_slice(&self.last_producer_id.to_be_bytes());
        out.extend_from_slice(&self.epoch.to_be_bytes());
        out.extend_from_slice(&self.last_epoch.to_be_bytes());
        out.extend_from_slice(&self.timeout_ms.to_be_bytes());
        out.push(self.state.code());
        out.push(if self.internal { FLAG_INTERNAL } else { 0 });
        out.extend_from_slice(&self.start_ms.to_be_bytes());
        out.extend_from_slice(&self.update_ms.to_be_bytes());
        out.extend_from_slice(&(self.partitions.len() as u32).to_be_bytes());
        for tp in &self.partitions {
            put_str16(&mut out, &tp.topic);
            out.extend_from_slice(&tp.partition.to_be_bytes());
        }
        out.extend_from_slice(&(self.groups.len() as u32).to_be_bytes());
        for (group, offsets) in &self.groups {
            put_str16(&mut out, group);
            out.extend_from_slice(&(offsets.len() as u32).to_be_bytes());
            for (tp, pending) in offsets {
                put_str16(&mut out, &tp.topic);
                out.extend_from_slice(&tp.partition.to_be_bytes());
                out.extend_from_slice(&pending.offset.to_be_bytes());
                // Bounded by offset_metadata_bytes_max when added.
                out.extend_from_slice(&(pending.metadata.len() as u32).to_be_bytes());
                out.extend_from_slice(pending.metadata.as_bytes());
            }
        }
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, String> {
        let mut r = Reader { bytes, at: 0 };
        let version = u16::from_be_bytes(r.array()?);
        if version != VERSION {
            return Err(format!("version {version} is not {VERSION}"));
        }
        let producer_id = i64::from_be_bytes(r.array()?);
        let last_producer_id = i64::from_be_bytes(r.array()?);
        let epoch = i16::from_be_bytes(r.array()?);
        let last_epoch = i16::from_be_bytes(r.array()?);
        let timeout_ms = u32::from_be_bytes(r.array()?);
        let [code] = r.array()?;
        let state = TxnState::from_code(code).ok_or_else(|| format!("unknown state {code}"))?;
        let [flags] = r.array()?;
        let start_ms = i64::from_be_bytes(r.array()?);
        let update_ms = i64::from_be_bytes(r.array()?);
        let mut partitions = BTreeSet::new();
        for _ in 0..u32::from_be_bytes(r.array()?) {
            let topic = r.str16()?;
            let partition = u32::from_be_bytes(r.array()?);
            partitions.insert(TopicPartition { topic, partition });
        }
        let mut groups = BTreeMap::new();
        for _ in 0..u32::from_be_bytes(r.array()?) {
            let group = r.str16()?;
            let mut offsets = BTreeMap::new();
            for _ in 0..u32::from_be_bytes(r.array()?) {
                let topic = r.str16()?;
                let partition = u32::from_be_bytes(r.array()?);
                let offset = u64::from_be_bytes(r.array()?);
                let len = u32::from_be_bytes(r.array()?) as usize;
                let metadata = r.string(len)?;
                offsets.insert(
                    TopicPartition { topic, partition },
                    PendingOffset { offset, metadata },
                );
            }
            groups.insert(group, offsets);
        }
        if r.at != bytes.len() {
            return Err(format!("{} bytes after the record", bytes.len() - r.at));
        }
        if producer_id < 0 {
            return Err(format!("producer id {producer_id}"));
        }
        Ok(Self {
            producer_id,
            last_producer_id,
            epoch,
            last_epoch,
            timeout_ms,
            state,
            internal: flags & FLAG_INTERNAL != 0,
            start_ms,
            update_ms,
            partitions,
            groups,
        })
    }
}

fn put_str16(out: &mut Vec<u8>, s: &str) {
    // Topic names (249 bytes) and group ids (255) are bounded where they are accepted.
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// A cursor that refuses to read past the end of its bytes.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let slice = self
            .bytes
            .get(self.at..self.at.saturating_add(n))
            .ok_or_else(|| format!("truncated at byte {}", self.at))?;
        self.at += n;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn string(&mut self, len: usize) -> Result<String, String> {
        let at = self.at;
        String::from_utf8(self.take(len)?.to_vec()).map_err(|e| format!("bad UTF-8 at {at}: {e}"))
    }

    fn str16(&mut self) -> Result<String, String> {
        let len = u16::from_be_bytes(self.array()?) as usize;
        self.string(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_damage_is_refused() {
        let mut meta = TxnMeta::new(42, 60_000, 1_000);
        meta.state = TxnState::Ongoing;
        meta.start_ms = 900;
        meta.internal = true;
        meta.partitions.insert(TopicPartition::new("a", 1));
        meta.partitions.insert(TopicPartition::new("b", 0));
        meta.groups.entry("g".into()).or_default().insert(
            TopicPartition::new("in", 3),
            PendingOffset {
                offset: 17,
                metadata: "m".into(),
            },
        );
        let bytes = meta.encode();
        assert_eq!(TxnMeta::decode(&bytes), Ok(meta.clone()));
        for cut in 0..bytes.len() {
            assert!(TxnMeta::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let settled = meta.settled(TxnState::CompleteCommit, 2_000);
        assert!(settled.partitions.is_empty() && settled.groups.is_empty());
        assert_eq!(TxnMeta::decode(&settled.encode()), Ok(settled));
        for state in TxnState::ALL {
            assert_eq!(TxnState::from_name(state.name()), Some(state));
        }
    }
}
