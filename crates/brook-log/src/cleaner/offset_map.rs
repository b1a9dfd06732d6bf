//! The cleaner's map from each key to the latest offset written for it, in a fixed memory
//! budget (Kafka's dedupe buffer, `SkimpyOffsetMap`, is the model).
//!
//! A key is not stored: its 128-bit hash stands for it (two SipHash-1-3 hashes under random
//! keys drawn anew for each clean, so no producer can aim for a collision, and two keys share a
//! hash with odds of about `n² / 2¹²⁹`, one in 10²⁴ for ten million keys). A slot is that hash
//! and an offset, 24 bytes; the table is one allocation of at most `budget / 24` slots, probed
//! linearly, and never filled past [`LOAD_FACTOR`] so that a lookup of a key that is not there
//! stays a few cache lines long. So a budget of `B` bytes maps `B / 24 * 0.75` keys, 32 bytes a
//! key.
//!
//! Each clean sizes the table it uses to the most keys its dirty section can hold (one per
//! offset), within the budget ([`OffsetMap::clear`]): a small dirty section gets a small table,
//! which is faster to clear and to probe (it fits the caches) and takes only the memory it
//! needs. The allocation grows to the largest table used so far and is kept for the next clean.
//!
//! The map also knows the last offset the cleaner finished mapping ([`OffsetMap::latest`]):
//! records past it were not looked at, and a clean keeps them whatever their key.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

/// Bytes one slot takes: a 128-bit hash and a 64-bit offset.
pub(crate) const SLOT_BYTES: usize = 24;
/// The share of slots the map fills at most.
pub(crate) const LOAD_FACTOR: f64 = 0.75;

/// Marks an empty slot; no record has this offset (offsets are below `i64::MAX`).
const EMPTY: u64 = u64::MAX;

#[derive(Debug, Clone, Copy)]
struct Slot {
    hash: [u64; 2],
    offset: u64,
}

const EMPTY_SLOT: Slot = Slot {
    hash: [0, 0],
    offset: EMPTY,
};

/// Key hash -> latest offset, in at most the budget it was made with; see the module doc.
pub(crate) struct OffsetMap {
    /// The table in use (its length), within `max_slots`.
    slots: Vec<Slot>,
    /// The most slots the budget allows.
    max_slots: usize,
    /// Keys in the map.
    entries: usize,
    /// The most keys it takes.
    capacity: usize,
    latest: Option<u64>,
    hashers: [RandomState; 2],
}

impl std::fmt::Debug for OffsetMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OffsetMap")
            .field("slots", &self.slots.len())
            .field("entries", &self.entries)
            .field("capacity", &self.capacity)
            .field("latest", &self.latest)
            .finish()
    }
}

impl OffsetMap {
    /// A map using at most `budget_bytes` of memory (at least two slots). It allocates nothing
    /// and takes no key until [`OffsetMap::clear`] sizes its table.
    pub(crate) fn with_budget(budget_bytes: usize) -> Self {
        Self {
            slots: Vec::new(),
            max_slots: (budget_bytes / SLOT_BYTES).max(2),
            entries: 0,
            capacity: 0,
            latest: None,
            hashers: [RandomState::new(), RandomState::new()],
        }
    }

    /// Bytes the table in use takes.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.slots.len() * SLOT_BYTES
    }

    /// The most keys the map takes.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Keys in the map.
    pub(crate) fn len(&self) -> usize {
        self.entries
    }

    /// Empties the map for the next clean, with fresh hash keys and a table sized for
    /// `max_keys` keys (the offsets of the dirty section), within the budget.
    pub(crate) fn clear(&mut self, max_keys: u64) {
        let wanted = ((max_keys as f64 / LOAD_FACTOR).ceil() as u64).saturating_add(1);
        let slots = usize::try_from(wanted)
            .unwrap_or(usize::MAX)
            .clamp(2, self.max_slots);
        self.slots.clear();
        self.slots.resize(slots, EMPTY_SLOT);
        self.capacity = ((slots as f64 * LOAD_FACTOR) as usize).clamp(1, slots - 1);
        self.entries = 0;
        self.latest = None;
        self.hashers = [RandomState::new(), RandomState::new()];
    }

    /// The offset after which records were not mapped: the last offset of the last batch the
    /// cleaner finished, or of the segment it finished (gaps included).
    pub(crate) fn latest(&self) -> Option<u64> {
        self.latest
    }

    /// Moves [`OffsetMap::latest`] forward to `offset` (never back).
    pub(crate) fn mapped_through(&mut self, offset: u64) {
        self.latest = Some(self.latest.map_or(offset, |l| l.max(offset)));
    }

    /// Records `offset` as the latest for `key`. Returns `false`, changing nothing, when the
    /// key is new and the map is full.
    pub(crate) fn put(&mut self, key: &[u8], offset: u64) -> bool {
        if self.slots.is_empty() {
            return false;
        }
        let hash = self.hash(key);
        let at = self.probe(hash);
        let slot = &mut self.slots[at];
        if slot.offset == EMPTY {
            if self.entries >= self.capacity {
                return false;
            }
            self.entries += 1;
            *slot = Slot { hash, offset };
        } else {
            slot.offset = offset;
        }
        true
    }

    /// The latest offset recorded for `key`.
    pub(crate) fn get(&self, key: &[u8]) -> Option<u64> {
        if self.slots.is_empty() {
            return None;
        }
        let slot = self.slots[self.probe(self.hash(key))];
        (slot.offset != EMPTY).then_some(slot.offset)
    }

    fn hash(&self, key: &[u8]) -> [u64; 2] {
        [self.hashers[0].hash_one(key), self.hashers[1].hash_one(key)]
    }

    /// The slot holding `hash`, or the empty slot where it would go. The map is never full
    /// (capacity < slots), so the walk ends.
    fn probe(&self, hash: [u64; 2]) -> usize {
        let n = self.slots.len();
        // Lemire's reduction: the high bits of hash * n, uniform over 0..n.
        let mut at = ((u128::from(hash[0]) * n as u128) >> 64) as usize;
        loop {
            let slot = &self.slots[at];
            if slot.offset == EMPTY || slot.hash == hash {
                return at;
            }
            at += 1;
            if at == n {
                at = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_latest_offset_of_each_key() {
        let mut map = OffsetMap::with_budget(1 << 16);
        map.clear(u64::MAX);
        for i in 0..1000u64 {
            assert!(map.put(format!("key-{}", i % 100).as_bytes(), i));
        }
        assert_eq!(map.len(), 100);
        for k in 0..100u64 {
            assert_eq!(map.get(format!("key-{k}").as_bytes()), Some(900 + k));
        }
        assert_eq!(map.get(b"missing"), None);
        assert_eq!(map.get(b""), None);
        assert!(map.put(b"", 5));
        assert_eq!(map.get(b""), Some(5));
    }

    #[test]
    fn stays_within_its_budget_and_refuses_new_keys_when_full() {
        let budget = 24 * 100;
        let mut map = OffsetMap::with_budget(budget);
        assert_eq!(map.memory_bytes(), 0, "nothing until a clean sizes it");
        map.clear(u64::MAX);
        assert!(map.memory_bytes() <= budget);
        assert_eq!(map.capacity(), 75);
        for i in 0..75u64 {
            assert!(map.put(&i.to_be_bytes(), i));
        }
        assert_eq!(map.len(), map.capacity());
        assert!(!map.put(b"one too many", 99), "a new key does not fit");
        assert!(
            map.put(&3u64.to_be_bytes(), 1000),
            "an old key still updates"
        );
        assert_eq!(map.get(&3u64.to_be_bytes()), Some(1000));
        assert_eq!(map.get(b"one too many"), None);
        map.clear(10);
        assert_eq!(map.len(), 0);
        assert_eq!(
            map.capacity(),
            11,
            "sized for ten keys: 15 slots filled to 3/4"
        );
        assert_eq!(map.get(&3u64.to_be_bytes()), None);
        assert_eq!(map.latest(), None);
    }

    #[test]
    fn latest_only_moves_forward() {
        let mut map = OffsetMap::with_budget(1024);
        assert_eq!(map.latest(), None);
        map.mapped_through(10);
        map.mapped_through(4);
        assert_eq!(map.latest(), Some(10));
    }

    #[test]
    fn a_tiny_budget_still_holds_a_key() {
        let mut map = OffsetMap::with_budget(0);
        map.clear(u64::MAX);
        assert!(map.put(b"k", 1));
        assert!(!map.put(b"j", 2));
        assert_eq!(map.get(b"k"), Some(1));
    }
}
