//! The client's partitioner must put every key where the broker (and Kafka) would.

use brook_client::partitioner;

#[test]
fn client_and_broker_agree_on_every_key_and_partition_count() {
    let mut keys: Vec<Vec<u8>> = vec![Vec::new()];
    // Every length from 0 to 64 (all tail sizes), with varied bytes, including high bytes.
    for len in 1..=64u32 {
        keys.push((0..len).map(|i| (i * 37 + len * 11) as u8).collect());
        keys.push((0..len).map(|i| 255 - (i as u8)).collect());
    }
    for i in 0..2000u32 {
        keys.push(format!("customer-{i}").into_bytes());
    }
    for key in &keys {
        assert_eq!(
            partitioner::murmur2(key),
            brook_broker::partitioner::murmur2(key),
            "{key:?}"
        );
        for n in [1, 2, 3, 7, 16, 100] {
            assert_eq!(
                partitioner::partition_for_key(key, n),
                brook_broker::partitioner::partition_for_key(key, n)
            );
        }
    }
}
