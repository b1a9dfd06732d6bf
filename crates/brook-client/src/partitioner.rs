//! The partition a keyed record goes to, computed on the client so the producer can batch per
//! partition before it sends anything.
//!
//! It must agree with the broker (and with every Kafka client): `(murmur2(key) & 0x7fffffff) %
//! partitions`, Kafka's `Utils.murmur2`. The broker has the same function, but this crate may
//! depend on `brook-proto` only (the client ships without the broker), so the hash lives here
//! too; `tests/partitioner.rs` checks both agree on many keys (the broker's unit tests pin
//! Kafka's own test vectors).

/// Kafka's 32-bit murmur2: seed `0x9747b28c`, little-endian 4-byte blocks.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;

    // Java hashes the length as an int: truncating matches its wrap-around.
    let mut h = SEED ^ data.len() as u32;
    let mut blocks = data.chunks_exact(4);
    for block in blocks.by_ref() {
        let k = u32::from_le_bytes([block[0], block[1], block[2], block[3]]).wrapping_mul(M);
        h = h.wrapping_mul(M) ^ (k ^ (k >> 24)).wrapping_mul(M);
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        let k = tail
            .iter()
            .enumerate()
            .fold(0u32, |k, (i, byte)| k ^ (u32::from(*byte) << (8 * i)));
        h = (h ^ k).wrapping_mul(M);
    }
    h = (h ^ (h >> 13)).wrapping_mul(M);
    (h ^ (h >> 15)) as i32
}

/// The partition Kafka clients choose for `key` among `partitions` (at least one).
pub fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    (murmur2(key) & 0x7fff_ffff) as u32 % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_is_within_range() {
        for n in 1..20 {
            assert!(partition_for_key(b"some key", n) < n);
        }
    }
}
