//! Which partition a record goes to when the producer did not say.
//!
//! Keyed records use Kafka's murmur2 partitioner, `(murmur2(key) & 0x7fffffff) % partitions`,
//! exactly as the Java client's `DefaultPartitioner`/`BuiltInPartitioner` and librdkafka's
//! `murmur2_random` compute it, so a key lands on the same partition whichever client (or door)
//! produced it. Records without a key are sticky per produce call: every keyless record of one
//! call goes to one partition, and successive calls rotate round-robin, which keeps batches
//! large without piling every keyless record on one partition.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};

/// Kafka's 32-bit murmur2 (the variant in `org.apache.kafka.common.utils.Utils.murmur2`, seed
/// `0x9747b28c`, little-endian 4-byte blocks).
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;

    // Kafka hashes the length as a Java int; keys are far below 2^31 bytes in practice and the
    // truncation matches Java's wrap-around for any longer one.
    let mut h: u32 = SEED ^ (data.len() as u32);
    let mut blocks = data.chunks_exact(4);
    for block in &mut blocks {
        let mut k = u32::from_le_bytes([block[0], block[1], block[2], block[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        for (i, byte) in tail.iter().enumerate().rev() {
            h ^= u32::from(*byte) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition Kafka clients choose for `key` among `partitions` (which must be non-zero).
pub fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    debug_assert!(partitions > 0, "a topic has at least one partition");
    ((murmur2(key) & 0x7fff_ffff) as u32) % partitions.max(1)
}

/// Round-robin state for keyless records of one topic: one step per produce call.
#[derive(Debug, Default)]
pub struct StickyCursor {
    next: AtomicU32,
}

impl StickyCursor {
    /// The partition for the keyless records of the next produce call.
    pub fn next_partition(&self, partitions: u32) -> u32 {
        self.next.fetch_add(1, Ordering::Relaxed) % partitions.max(1)
    }
}

/// The partition of each of `records` (one produce call to a topic of `partitions`
/// partitions), as indexes per partition in request order: a record's own partition, else
/// murmur2 of its key, else one partition for every keyless record of the call, taken from
/// `keyless` once. The one routing rule of every backend. `Err` names a record's partition
/// that the topic does not have.
pub fn route(
    records: &[crate::ProduceRecord],
    partitions: u32,
    keyless: impl FnOnce() -> u32,
) -> Result<BTreeMap<u32, Vec<usize>>, u32> {
    let mut keyless = Some(keyless);
    let mut chosen = None;
    let mut by_partition: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (i, record) in records.iter().enumerate() {
        let partition = partition_of(record, partitions, || {
            *chosen.get_or_insert_with(|| keyless.take().map_or(0, |next| next()))
        })?;
        by_partition.entry(partition).or_default().push(i);
    }
    Ok(by_partition)
}

/// The partition of one record, as [`route`] places it: its own, else murmur2 of its key, else
/// `keyless()`. `Err` names a partition the topic does not have.
pub fn partition_of(
    record: &crate::ProduceRecord,
    partitions: u32,
    keyless: impl FnOnce() -> u32,
) -> Result<u32, u32> {
    match (record.partition, &record.key) {
        (Some(p), _) if p < partitions => Ok(p),
        (Some(p), _) => Err(p),
        (None, Some(key)) => Ok(partition_for_key(key, partitions)),
        (None, None) => Ok(keyless()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values from Kafka's own `UtilsTest.testMurmur2` (clients/src/test/java/.../UtilsTest.java).
    #[test]
    fn murmur2_matches_kafka_utils_test() {
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (key, expected) in cases {
            assert_eq!(murmur2(key), expected, "{:?}", String::from_utf8_lossy(key));
        }
    }

    /// Values Akka's Kafka-compatible murmur2 is checked against (computed with Kafka's
    /// `Utils.murmur2`), covering every tail length (1, 2, 3, 0 and 1 bytes past a block).
    #[test]
    fn murmur2_matches_kafka_for_every_tail_length() {
        let cases: [(&str, i32); 5] = [
            ("1", -1_993_445_489),
            ("12", 126_087_238),
            ("123", -267_702_483),
            ("1234", -1_614_185_708),
            ("12345", -1_188_365_604),
        ];
        for (key, expected) in cases {
            assert_eq!(murmur2(key.as_bytes()), expected, "{key:?}");
        }
    }

    #[test]
    fn keys_land_where_kafka_puts_them() {
        // (murmur2("foobar") & 0x7fffffff) = 1357151166; % 4 = 2, % 7 = 0, % 10 = 6.
        assert_eq!(partition_for_key(b"foobar", 4), 2);
        assert_eq!(partition_for_key(b"foobar", 7), 0);
        assert_eq!(partition_for_key(b"foobar", 10), 6);
        assert_eq!(partition_for_key(b"anything", 1), 0);
        for key in [&b""[..], b"a", b"ab", b"abcdefgh"] {
            assert!(partition_for_key(key, 5) < 5);
        }
    }

    #[test]
    fn keyless_calls_rotate() {
        let cursor = StickyCursor::default();
        let picks: Vec<u32> = (0..6).map(|_| cursor.next_partition(3)).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
    }
}
