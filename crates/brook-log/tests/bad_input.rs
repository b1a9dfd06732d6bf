//! Bad input: every refused batch, offset or name is a clear error and changes nothing on disk
//! (the directory's file list and every byte are compared before and after).

mod common;

use brook_log::batch::header::{BATCH_LENGTH_AT, MAGIC_AT};
use brook_log::{
    validate_topic_name, BatchError, Durability, LogConfig, LogError, PartitionLog, Store,
    TopicConfig,
};
use common::{assert_same_files, numbered_batch, snapshot, split_batches};
use tempfile::TempDir;

/// A log with a few batches in it (default limits, so `message_bytes_max` is 1 MiB).
fn log_with_data() -> (TempDir, PartitionLog, Vec<Vec<u8>>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = PartitionLog::open(dir.path(), quick_defaults()).expect("open");
    let mut stored = Vec::new();
    for i in 0..3 {
        let mut batch = numbered_batch(i * 10, 2, 100, 1_700_000_000_000);
        log.append(&mut batch).expect("append");
        stored.push(batch);
    }
    (dir, log, stored)
}

/// Appending `batch` fails with an error `matches` accepts, and nothing changes: not the files,
/// not the offsets, and the next good append gets the offset it would have had.
fn assert_refused(what: &str, mut batch: Vec<u8>, matches: impl Fn(&LogError) -> bool) {
    let (dir, log, _) = log_with_data();
    let end = log.log_end_offset();
    let before = snapshot(dir.path());
    match log.append(&mut batch) {
        Ok(info) => panic!("{what}: accepted at offset {}", info.base_offset),
        Err(e) => {
            assert!(matches(&e), "{what}: wrong error: {e}");
            assert!(!e.to_string().is_empty());
        }
    }
    assert_same_files(&before, &snapshot(dir.path()), what);
    assert_eq!(log.log_end_offset(), end, "{what}: log end moved");
    assert_eq!(log.high_watermark(), end, "{what}: high watermark moved");
    assert!(!log.is_poisoned(), "{what}: a bad batch poisoned the log");
    let mut good = numbered_batch(500, 1, 10, 1_700_000_000_000);
    assert_eq!(log.append(&mut good).expect("good append").base_offset, end);
}

/// The default limits, but durability `none` and 4 KiB index files, so each case is quick
/// (and snapshots small). Nothing runs in the background in that mode, so nothing changes on
/// disk behind a test's back.
fn quick_defaults() -> LogConfig {
    let mut config = LogConfig::default();
    config.durability = Durability::None;
    config.index_bytes_max = 4096;
    config
}

fn good_batch() -> Vec<u8> {
    numbered_batch(0, 3, 40, 1_700_000_000_000)
}

fn set_length(batch: &mut [u8], length: i32) {
    batch[BATCH_LENGTH_AT..BATCH_LENGTH_AT + 4].copy_from_slice(&length.to_be_bytes());
}

#[test]
fn batch_over_message_bytes_max_is_refused() {
    let batch = numbered_batch(0, 1, (1 << 20) + 1, 1_700_000_000_000);
    assert_refused("a batch over 1 MiB", batch, |e| {
        matches!(
            e,
            LogError::Batch(BatchError::TooLarge { max, .. }) if *max == 1 << 20
        )
    });
}

#[test]
fn length_field_beyond_the_bytes_present_is_refused() {
    let mut batch = good_batch();
    let length = (batch.len() - 12) as i32;
    set_length(&mut batch, length + 100);
    assert_refused("length 100 bytes too long", batch, |e| {
        matches!(e, LogError::Batch(BatchError::Truncated { .. }))
    });

    let mut batch = good_batch();
    set_length(&mut batch, i32::MAX);
    assert_refused("length i32::MAX", batch, |e| {
        matches!(
            e,
            LogError::Batch(BatchError::TooLarge { .. } | BatchError::Truncated { .. })
        )
    });

    let mut batch = good_batch();
    set_length(&mut batch, -1);
    assert_refused("negative length", batch, |e| {
        matches!(e, LogError::Batch(BatchError::BadLength { .. }))
    });
}

#[test]
fn short_or_trailing_bytes_are_refused() {
    let batch = good_batch();
    assert_refused("empty input", Vec::new(), |e| {
        matches!(e, LogError::Batch(BatchError::Truncated { .. }))
    });
    assert_refused("half a header", batch[..30].to_vec(), |e| {
        matches!(e, LogError::Batch(BatchError::Truncated { .. }))
    });
    assert_refused(
        "a batch cut short",
        batch[..batch.len() - 1].to_vec(),
        |e| matches!(e, LogError::Batch(_)),
    );
    let mut two = batch.clone();
    two.extend_from_slice(&batch);
    assert_refused("two batches in one append", two, |e| {
        matches!(e, LogError::Batch(_))
    });
}

#[test]
fn bad_magic_is_refused() {
    for magic in [0u8, 1, 3, 0xff] {
        let mut batch = good_batch();
        batch[MAGIC_AT] = magic;
        assert_refused(
            &format!("magic {magic}"),
            batch,
            |e| matches!(e, LogError::Batch(BatchError::BadMagic(m)) if *m == magic as i8),
        );
    }
}

#[test]
fn bad_crc_is_refused() {
    let good = good_batch();
    // A flip in the CRC itself, the attributes, the timestamps and the last record's value.
    for at in [17, 22, 30, good.len() - 2] {
        let mut batch = good.clone();
        batch[at] ^= 0x20;
        assert_refused(&format!("bit flipped at byte {at}"), batch, |e| {
            matches!(e, LogError::Batch(BatchError::CrcMismatch { .. }))
        });
    }
}

#[test]
fn offsets_out_of_range_on_read_are_refused() {
    let (dir, log, stored) = log_with_data();
    let before = snapshot(dir.path());
    let end = log.log_end_offset();
    assert_eq!(end, 6);
    for offset in [end + 1, end + 1000, u64::MAX] {
        match log.read(offset, 1 << 20) {
            Err(LogError::OffsetOutOfRange {
                offset: o,
                log_start,
                log_end,
            }) => {
                assert_eq!((o, log_start, log_end), (offset, 0, end));
            }
            other => panic!("read({offset}) gave {:?}", other.map(|b| b.len())),
        }
    }
    assert!(log.read(end, 1 << 20).expect("read at the end").is_empty());
    assert_eq!(
        split_batches(&log.read(0, 1).expect("read"))[0].1,
        stored[0]
    );
    assert_same_files(&before, &snapshot(dir.path()), "reads beyond the end");
    // Below the log start, once the start has moved.
    log.advance_log_start(2).expect("advance log start");
    assert_eq!(log.log_start_offset(), 2);
    let moved = snapshot(dir.path());
    for offset in [0, 1] {
        assert!(
            matches!(
                log.read(offset, 1 << 20),
                Err(LogError::OffsetOutOfRange { log_start: 2, .. })
            ),
            "read({offset}) below the log start"
        );
    }
    assert_same_files(&moved, &snapshot(dir.path()), "reads below the start");
}

#[test]
fn truncate_beyond_the_end_is_refused() {
    let (dir, log, _) = log_with_data();
    let before = snapshot(dir.path());
    let end = log.log_end_offset();
    for offset in [end + 1, u64::MAX] {
        let result = log.truncate_to(offset);
        assert!(
            matches!(result, Err(LogError::OffsetOutOfRange { .. })),
            "truncate_to({offset}) gave {result:?}"
        );
        assert_same_files(&before, &snapshot(dir.path()), "truncate beyond the end");
        assert_eq!(log.log_end_offset(), end);
    }
}

/// The names the topic-name rule refuses (docs/storage.md, "The data directory"), each with why it is dangerous or wrong.
fn bad_topic_names() -> Vec<String> {
    vec![
        "..".into(),        // the parent directory
        ".".into(),         // the data directory itself
        "a/b".into(),       // a path, not a name
        "../escape".into(), // out of the data directory
        "x".repeat(250),    // one over Kafka's 249
        "a\0b".into(),      // a NUL ends a C path early
        "".into(),          // nothing
        "a b".into(),       // outside [a-zA-Z0-9._-]
        "tópico".into(),    // not ASCII
    ]
}

/// A store holding one topic, "orders", of two partitions.
fn store_with_orders() -> (TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), quick_defaults()).expect("open store");
    store
        .create_topic("orders", 2, TopicConfig::default())
        .expect("a good topic");
    (dir, store)
}

#[test]
fn bad_topic_names_are_refused_and_nothing_is_created() {
    let (dir, store) = store_with_orders();
    let before = snapshot(dir.path());
    for name in bad_topic_names() {
        for result in [
            validate_topic_name(&name),
            store
                .create_topic(&name, 1, TopicConfig::default())
                .map(|_| ()),
            store.delete_topic(&name),
        ] {
            match result {
                Err(LogError::InvalidTopicName { name: got, reason }) => {
                    assert_eq!(got, name);
                    assert!(!reason.is_empty());
                }
                other => panic!("topic name {name:?}: {other:?}"),
            }
        }
        assert_same_files(&before, &snapshot(dir.path()), &format!("topic {name:?}"));
        assert!(store.topic(&name).is_none());
    }
    let names: Vec<String> = store.topics().iter().map(|t| t.name().to_owned()).collect();
    assert_eq!(names, ["orders"]);

    // The longest legal name works, so the limit is where docs/storage.md puts it.
    let longest = "y".repeat(249);
    store
        .create_topic(&longest, 1, TopicConfig::default())
        .expect("249 characters is allowed");
    store.close().expect("close");
}

#[test]
fn bad_topic_requests_change_nothing() {
    let (dir, store) = store_with_orders();
    let before = snapshot(dir.path());
    let mut tiny_segments = TopicConfig::default();
    tiny_segments.segment_bytes_max = Some(10);
    let refused = [
        (
            "an existing topic",
            store
                .create_topic("orders", 1, TopicConfig::default())
                .map(|_| ()),
        ),
        (
            "zero partitions",
            store
                .create_topic("fresh", 0, TopicConfig::default())
                .map(|_| ()),
        ),
        (
            "too many partitions",
            store
                .create_topic("fresh", u32::MAX, TopicConfig::default())
                .map(|_| ()),
        ),
        (
            "a segment size below 1 KiB",
            store.create_topic("fresh", 1, tiny_segments).map(|_| ()),
        ),
        ("an unknown topic", store.delete_topic("missing")),
    ];
    for (what, result) in refused {
        let error = result.expect_err(what);
        assert!(
            matches!(
                error,
                LogError::TopicExists(_) | LogError::InvalidConfig(_) | LogError::UnknownTopic(_)
            ),
            "{what}: {error}"
        );
        assert_same_files(&before, &snapshot(dir.path()), what);
    }
    assert_eq!(store.topics().len(), 1);
    store.close().expect("close");
}

#[test]
fn truncating_at_a_log_start_inside_a_batch_keeps_the_log_consistent() {
    let (dir, log, _) = log_with_data(); // batches 0..2, 2..4, 4..6
    log.advance_log_start(3)
        .expect("advance the start into the batch 2..4");
    let before = snapshot(dir.path());
    match log.truncate_to(3) {
        // Refused: cutting the batch 2..4 whole would end the log before its start.
        Err(LogError::OffsetOutOfRange { .. }) => {
            assert_same_files(&before, &snapshot(dir.path()), "a refused truncation");
            assert_eq!((log.log_start_offset(), log.log_end_offset()), (3, 6));
        }
        Err(e) => panic!("truncate_to(3): {e}"),
        Ok(()) => assert!(
            log.log_start_offset() <= log.log_end_offset(),
            "truncate_to(3) left the log starting at {} after its end {}",
            log.log_start_offset(),
            log.log_end_offset()
        ),
    }
    // Whatever happened, an acknowledged append is readable at the offset it was given.
    let mut batch = numbered_batch(900, 2, 10, 1_700_000_000_000);
    let info = log.append(&mut batch).expect("append");
    let got = log
        .read(info.base_offset, 1)
        .expect("read the acknowledged batch");
    assert_eq!(split_batches(&got)[0].1, batch);
}
