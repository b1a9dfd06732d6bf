//! The cleaner's map from each key to the latest offset written for it, in a fixed memory
//! budget (Kafka's dedupe buffer, `SkimpyOffsetMap`, is the model), and the dirty records a
//! later record of their key superseded.
//!
//! A key is not stored: its 128-bit hash stands for it (two SipHash-1-3 hashes under random
//! keys drawn anew for each clean, so no producer can aim for a collision, and two keys share a
//! hash with odds of about `n² / 2¹²⁹`, one in 10²⁴ for ten million keys). A slot is that hash
//! and an offset, 24 bytes; the table is probed linearly and never filled past
//! [`LOAD_FACTOR`], so that a lookup of a key that is not there stays a few cache lines long.
//!
//! **Sized to the keys, within the budget.** Each clean starts with a small table and doubles
//! it when it fills ([`OffsetMap::put`]), so a dirty section of a million updates to fifty
//! thousand keys gets a table for fifty thousand keys, which fits the caches and is fast to
//! probe. The table never outgrows the dirty section's offsets (one key per offset at most) nor
//! the budget: the old table and the new one are both held while it grows, so the last step
//! grows only into what the budget has left beside the old one. So a budget of `B` bytes maps
//! at most `B / 24 * 0.75` keys (`B / 32`) and at least half that (`B / 64`), less the bitset's
//! share for a dirty section of more than `B` offsets.
//!
//! **Each key is hashed once.** When a key already in the map gets a later offset, the offset
//! it had is marked *superseded* in a bitset over the dirty section's offsets (one bit an
//! offset, taken from the budget first). The rewrite judges a dirty record by its bit
//! ([`OffsetMap::superseded`]) without hashing its key again; only records below the dirty
//! section (cleaned before) are looked up by key ([`OffsetMap::get`]).
//!
//! The map also knows the last offset the cleaner finished mapping ([`OffsetMap::latest`]):
//! records past it were not looked at, and a clean keeps them whatever their key.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

/// Bytes one slot takes: a 128-bit hash and a 64-bit offset.
pub(crate) const SLOT_BYTES: usize = 24;
/// The share of slots the map fills at most.
pub(crate) const LOAD_FACTOR: f64 = 0.75;
/// Slots of the table a clean starts with (when its dirty section may need that many).
const FIRST_SLOTS: usize = 1 << 12;
/// The share of the budget the superseded bitset may take at most; a dirty section with more
/// offsets than it covers is cleaned over several rounds.
const BITSET_SHARE: usize = 4;

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
    budget_bytes: usize,
    /// The table in use (its length).
    slots: Vec<Slot>,
    /// The most slots this clean's table may reach.
    max_slots: usize,
    /// Keys in the map.
    entries: usize,
    latest: Option<u64>,
    hashers: [RandomState; 2],
    /// First offset of the dirty section, and how many offsets from it the bitset covers.
    first: u64,
    covered: u64,
    /// Bit `o - first` set: the record at offset `o` was superseded by a later one of its key.
    superseded: Vec<u64>,
}

impl std::fmt::Debug for OffsetMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OffsetMap")
            .field("budget_bytes", &self.budget_bytes)
            .field("slots", &self.slots.len())
            .field("max_slots", &self.max_slots)
            .field("entries", &self.entries)
            .field("covered", &self.covered)
            .field("latest", &self.latest)
            .finish()
    }
}

/// The most keys a table of `slots` slots takes (always leaving a slot empty).
fn capacity_of(slots: usize) -> usize {
    ((slots as f64 * LOAD_FACTOR) as usize).clamp(1, slots.max(2) - 1)
}

impl OffsetMap {
    /// A map using at most `budget_bytes` of memory. It allocates nothing and takes no key until
    /// [`OffsetMap::clear`] sizes it for a dirty section.
    pub(crate) fn with_budget(budget_bytes: usize) -> Self {
        Self {
            budget_bytes,
            slots: Vec::new(),
            max_slots: 0,
            entries: 0,
            latest: None,
            hashers: [RandomState::new(), RandomState::new()],
            first: 0,
            covered: 0,
            superseded: Vec::new(),
        }
    }

    /// Bytes the table and the bitset in use take.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.slots.len() * SLOT_BYTES + self.superseded.len() * 8
    }

    /// The most keys this clean's map can take (what its table holds once grown as far as the
    /// budget and the dirty section allow).
    pub(crate) fn capacity(&self) -> usize {
        if self.max_slots == 0 {
            return 0;
        }
        let mut slots = self.slots.len().max(2);
        loop {
            let grown = self.grown(slots);
            if grown <= slots {
                return capacity_of(slots);
            }
            slots = grown;
        }
    }

    /// Keys in the map.
    pub(crate) fn len(&self) -> usize {
        self.entries
    }

    /// Empties the map for a clean of the dirty section `[first, end)`, with fresh hash keys: the
    /// bitset covers as much of the section as its share of the budget allows, and the table
    /// starts small, to grow up to what is left of the budget or one slot per offset covered.
    pub(crate) fn clear(&mut self, first: u64, end: u64) {
        let offsets = end.saturating_sub(first);
        let bitset_words_max = (self.budget_bytes / BITSET_SHARE / 8).max(1);
        let words = usize::try_from(offsets.div_ceil(64))
            .unwrap_or(usize::MAX)
            .clamp(1, bitset_words_max);
        self.first = first;
        self.covered = offsets.min(words as u64 * 64);
        self.superseded.clear();
        self.superseded.resize(words, 0);
        let wanted = ((self.covered as f64 / LOAD_FACTOR).ceil() as u64).saturating_add(1);
        let budget_slots = (self.budget_bytes.saturating_sub(words * 8) / SLOT_BYTES).max(2);
        self.max_slots = usize::try_from(wanted)
            .unwrap_or(usize::MAX)
            .clamp(2, budget_slots);
        self.slots.clear();
        self.slots
            .resize(FIRST_SLOTS.min(self.max_slots), EMPTY_SLOT);
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

    /// Records `offset` (in the dirty section, after every offset put before) as the latest for
    /// `key`, marking the key's previous offset superseded. Returns `false`, changing nothing,
    /// when the key is new and the map is full, or `offset` is past what the bitset covers.
    pub(crate) fn put(&mut self, key: &[u8], offset: u64) -> bool {
        let Some(bit) = offset
            .checked_sub(self.first)
            .filter(|bit| *bit < self.covered)
        else {
            return false;
        };
        if self.slots.is_empty() {
            return false;
        }
        let hash = self.hash(key);
        let mut at = self.probe(hash);
        if self.slots[at].offset == EMPTY {
            if self.entries >= capacity_of(self.slots.len()) {
                if !self.grow() {
                    return false;
                }
                at = self.probe(hash);
            }
            self.entries += 1;
            self.slots[at] = Slot { hash, offset };
        } else {
            let old = std::mem::replace(&mut self.slots[at].offset, offset);
            if let Some(old_bit) = old.checked_sub(self.first).filter(|b| *b < bit) {
                self.superseded[(old_bit / 64) as usize] |= 1 << (old_bit % 64);
            }
        }
        true
    }

    /// Whether a later record of its key superseded the record at `offset`; `None` when
    /// `offset` is outside the dirty section this map covers (ask [`OffsetMap::get`] then).
    pub(crate) fn superseded(&self, offset: u64) -> Option<bool> {
        let bit = offset
            .checked_sub(self.first)
            .filter(|bit| *bit < self.covered)?;
        Some(self.superseded[(bit / 64) as usize] & (1 << (bit % 64)) != 0)
    }

    /// The latest offset recorded for `key`.
    pub(crate) fn get(&self, key: &[u8]) -> Option<u64> {
        if self.slots.is_empty() {
            return None;
        }
        let slot = self.slots[self.probe(self.hash(key))];
        (slot.offset != EMPTY).then_some(slot.offset)
    }

    /// The size a table of `slots` slots grows to: double, within `max_slots`, and within what
    /// the budget has left while the old table is still held.
    fn grown(&self, slots: usize) -> usize {
        let bitset = self.superseded.len() * 8;
        let left = self.budget_bytes.saturating_sub(bitset) / SLOT_BYTES;
        slots
            .saturating_mul(2)
            .min(self.max_slots)
            .min(left.saturating_sub(slots))
    }

    /// Moves the keys into a larger table; `false` when the table may not grow.
    fn grow(&mut self) -> bool {
        let slots = self.grown(self.slots.len());
        if capacity_of(slots) <= capacity_of(self.slots.len()) {
            return false;
        }
        let old = std::mem::replace(&mut self.slots, vec![EMPTY_SLOT; slots]);
        for slot in old.into_iter().filter(|s| s.offset != EMPTY) {
            let at = self.probe(slot.hash);
            self.slots[at] = slot;
        }
        true
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
    fn keeps_the_latest_offset_of_each_key_and_marks_the_ones_superseded() {
        let mut map = OffsetMap::with_budget(1 << 16);
        map.clear(0, 1000);
        for i in 0..1000u64 {
            assert!(map.put(format!("key-{}", i % 100).as_bytes(), i));
        }
        assert_eq!(map.len(), 100);
        for k in 0..100u64 {
            assert_eq!(map.get(format!("key-{k}").as_bytes()), Some(900 + k));
        }
        for i in 0..1000u64 {
            assert_eq!(map.superseded(i), Some(i < 900), "offset {i}");
        }
        assert_eq!(map.superseded(1000), None, "past the dirty section");
        assert_eq!(map.get(b"missing"), None);
        assert_eq!(map.get(b""), None);
        map.clear(5, 10);
        assert!(map.put(b"", 5));
        assert_eq!(map.get(b""), Some(5));
        assert_eq!(map.superseded(4), None, "before the dirty section");
        assert!(!map.put(b"", 10), "past the dirty section");
    }

    #[test]
    fn grows_with_its_keys_within_the_budget_and_refuses_new_keys_when_full() {
        // Many offsets, few keys: the table stays small.
        let mut map = OffsetMap::with_budget(64 << 20);
        map.clear(0, 1 << 20);
        for i in 0..(1u64 << 20) {
            assert!(map.put(&(i % 5000).to_be_bytes(), i));
        }
        assert_eq!(map.len(), 5000);
        assert!(
            map.memory_bytes() < 16384 * SLOT_BYTES + (1 << 20) / 8 + 8,
            "{} bytes for 5000 keys",
            map.memory_bytes()
        );

        let budget = 24 * 400 + 64;
        let mut map = OffsetMap::with_budget(budget);
        assert_eq!(map.memory_bytes(), 0, "nothing until a clean sizes it");
        map.clear(0, 10_000);
        let capacity = map.capacity();
        assert!(capacity >= budget / 64, "{capacity}");
        let mut i = 0u64;
        while map.put(&i.to_be_bytes(), i) {
            assert!(map.memory_bytes() <= budget);
            i += 1;
        }
        assert_eq!(map.len(), capacity);
        assert_eq!(i as usize, capacity);
        assert!(
            map.put(&3u64.to_be_bytes(), 1000),
            "an old key still updates"
        );
        assert_eq!(map.get(&3u64.to_be_bytes()), Some(1000));
        assert_eq!(map.superseded(3), Some(true));
        assert_eq!(map.get(&i.to_be_bytes()), None);
        map.clear(0, 10);
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
    fn a_dirty_section_longer_than_the_bitset_is_mapped_in_part() {
        // 1024 bytes: the bitset may take 256, 2048 offsets.
        let mut map = OffsetMap::with_budget(1024);
        map.clear(100, 1_000_000);
        assert!(map.put(b"k", 100));
        assert!(map.put(b"k", 2147));
        assert!(!map.put(b"k", 2148), "past what the bitset covers");
        assert_eq!(map.superseded(100), Some(true));
        assert_eq!(map.superseded(2148), None);
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
        map.clear(0, u64::MAX);
        assert!(map.put(b"k", 1));
        assert!(!map.put(b"j", 2));
        assert_eq!(map.get(b"k"), Some(1));
    }
}
