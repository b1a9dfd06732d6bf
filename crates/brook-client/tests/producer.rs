//! The batching producer against a real server: offsets resolved per record, order per
//! partition with many requests in flight, keys where Kafka puts them, topics created on first
//! use, per-record errors that leave the producer working, flush, and a server that goes away.

mod common;

use std::collections::BTreeMap;

use brook_client::partitioner::partition_for_key;
use brook_client::{Code, FetchRequest, ProducerConfig, ProducerRecord, RecordPosition};
use common::{soon, Harness};
use futures::future::join_all;

async fn send_all(
    producer: &brook_client::Producer,
    topic: &str,
    records: Vec<ProducerRecord>,
) -> Vec<brook_client::Result<RecordPosition>> {
    let mut deliveries = Vec::new();
    for record in records {
        deliveries.push(producer.send(topic, record).await.expect("accepted"));
    }
    soon(join_all(deliveries)).await
}

#[tokio::test]
async fn every_record_gets_its_position_keyed_by_murmur2_and_in_order_per_partition() {
    let h = Harness::start().await;
    h.topic("orders", 3).await;
    // Small batches and few slots: many requests, several in flight at once.
    let mut config = ProducerConfig::default();
    config.linger_ms = 1;
    config.batch_bytes_max = 256;
    config.requests_in_flight_max = 4;
    let producer = h.client.producer(config).expect("producer");
    let records: Vec<ProducerRecord> = (0..600)
        .map(|i| ProducerRecord::keyed(format!("customer-{}", i % 7), format!("order-{i}")))
        .collect();
    let positions = send_all(&producer, "orders", records).await;

    let mut next_offset: BTreeMap<u32, u64> = BTreeMap::new();
    let mut expected_values: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for (i, position) in positions.into_iter().enumerate() {
        let position = position.expect("delivered");
        let key = format!("customer-{}", i % 7);
        assert_eq!(
            position.partition,
            partition_for_key(key.as_bytes(), 3),
            "{key}"
        );
        // Send order is offset order within a partition, with no gaps.
        let next = next_offset.entry(position.partition).or_default();
        assert_eq!(position.offset, *next, "record {i}");
        *next += 1;
        expected_values
            .entry(position.partition)
            .or_default()
            .push(format!("order-{i}"));
    }

    for (partition, expected) in expected_values {
        let mut values = Vec::new();
        let mut offset = 0;
        while values.len() < expected.len() {
            let fetched = h
                .client
                .fetch(FetchRequest::new("orders", partition, offset))
                .await
                .expect("fetch");
            offset = fetched.next_offset;
            values.extend(
                fetched
                    .records
                    .into_iter()
                    .map(|r| String::from_utf8(r.value.expect("value").to_vec()).expect("utf8")),
            );
        }
        assert_eq!(values, expected, "partition {partition}");
    }
}

#[tokio::test]
async fn a_topic_that_does_not_exist_is_created_on_first_send() {
    let h = Harness::start().await;
    let producer = h
        .client
        .producer(ProducerConfig::default())
        .expect("producer");
    let first = send_all(&producer, "fresh", vec![ProducerRecord::keyed("a", "1")]).await;
    assert_eq!(first[0].as_ref().expect("auto-created").offset, 0);
    let partitions = h
        .broker
        .describe_topic("fresh")
        .expect("exists")
        .partitions
        .len() as u32;

    let later = send_all(
        &producer,
        "fresh",
        (0..20)
            .map(|i| ProducerRecord::keyed(format!("k{i}"), "v"))
            .collect(),
    )
    .await;
    for (i, position) in later.into_iter().enumerate() {
        let key = format!("k{i}");
        let position = position.expect("delivered");
        assert_eq!(
            position.partition,
            partition_for_key(key.as_bytes(), partitions)
        );
    }
}

#[tokio::test]
async fn a_refused_record_fails_alone_and_the_producer_keeps_working() {
    let h = Harness::start().await;
    h.topic("t", 2).await;
    let producer = h
        .client
        .producer(ProducerConfig::default())
        .expect("producer");

    let oversized = ProducerRecord::value(vec![7u8; 2 << 20]).with_partition(0);
    let results = send_all(&producer, "t", vec![oversized]).await;
    let err = results[0].as_ref().expect_err("too large");
    assert_eq!(err.code(), Code::ResourceExhausted, "{err}");

    let results = send_all(
        &producer,
        "t",
        vec![ProducerRecord::value("x").with_partition(9)],
    )
    .await;
    let err = results[0].as_ref().expect_err("no partition 9");
    assert_eq!(err.code(), Code::NotFound, "{err}");

    let results = send_all(&producer, "bad name!", vec![ProducerRecord::value("x")]).await;
    let err = results[0].as_ref().expect_err("bad topic name");
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");

    let results = send_all(
        &producer,
        "t",
        vec![ProducerRecord::value("ok").with_partition(1)],
    )
    .await;
    assert_eq!(results[0].as_ref().expect("still works").partition, 1);
}

#[tokio::test]
async fn flush_sends_at_once_instead_of_lingering() {
    let h = Harness::start().await;
    h.topic("t", 1).await;
    let mut config = ProducerConfig::default();
    config.linger_ms = 60_000;
    let producer = h.client.producer(config).expect("producer");
    let delivery = producer
        .send("t", ProducerRecord::value("v"))
        .await
        .expect("accepted");
    soon(producer.flush()).await.expect("flush");
    // Already answered: flush returns only once every earlier record has its outcome.
    let position = tokio::time::timeout(std::time::Duration::ZERO, delivery)
        .await
        .expect("resolved by the flush")
        .expect("delivered");
    assert_eq!(position.offset, 0);
    soon(producer.close()).await.expect("close");
}

#[tokio::test]
async fn a_server_that_goes_away_fails_deliveries_instead_of_hanging() {
    let h = Harness::start().await;
    h.topic("t", 1).await;
    let producer = h
        .client
        .producer(ProducerConfig::default())
        .expect("producer");
    let ok = send_all(&producer, "t", vec![ProducerRecord::value("before")]).await;
    assert!(ok[0].is_ok());

    h.server.stop().await.expect("stop");
    let results = send_all(&producer, "t", vec![ProducerRecord::value("after")]).await;
    let err = results[0].as_ref().expect_err("server gone");
    assert!(
        matches!(
            err.code(),
            Code::Unavailable | Code::Unknown | Code::Cancelled
        ),
        "{err}"
    );
}

/// A producer whose buffer holds one small batch (2 KiB), with two requests in flight.
fn tight_buffer() -> ProducerConfig {
    let mut config = ProducerConfig::default();
    config.linger_ms = 0;
    config.batch_bytes_max = 2048;
    config.buffer_bytes_max = 2048;
    config.requests_in_flight_max = 2;
    config
}

#[tokio::test]
async fn senders_on_many_tasks_share_batches_and_wait_for_buffer_space() {
    let h = Harness::start().await;
    h.topic("shared", 2).await;
    // A buffer of one small batch: senders keep waiting for answers to free space.
    let producer = h.client.producer(tight_buffer()).expect("producer");
    let (tasks, per_task) = (4, 300);
    let senders = (0..tasks).map(|task| {
        let producer = producer.clone();
        tokio::spawn(async move {
            let mut deliveries = Vec::new();
            for i in 0..per_task {
                let record = ProducerRecord::keyed(format!("task-{task}"), format!("{task}:{i}"));
                deliveries.push(producer.send("shared", record).await.expect("accepted"));
            }
            join_all(deliveries).await
        })
    });
    let results = soon(join_all(senders)).await;

    let mut offsets: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    for (task, positions) in results.into_iter().enumerate() {
        let positions: Vec<RecordPosition> = positions
            .expect("sender task")
            .into_iter()
            .map(|p| p.expect("delivered"))
            .collect();
        let partition = partition_for_key(format!("task-{task}").as_bytes(), 2);
        assert!(positions.iter().all(|p| p.partition == partition));
        // One task's records keep their send order in the log.
        assert!(
            positions.windows(2).all(|w| w[0].offset < w[1].offset),
            "task {task}"
        );
        offsets
            .entry(partition)
            .or_default()
            .extend(positions.iter().map(|p| p.offset));
    }
    // Every record has its own offset, with no gap: offsets came from the batches' answers.
    for (partition, mut offsets) in offsets {
        offsets.sort_unstable();
        let expected: Vec<u64> = (0..offsets.len() as u64).collect();
        assert_eq!(offsets, expected, "partition {partition}");
        let mut values = Vec::new();
        let mut next = 0;
        while next < expected.len() as u64 {
            let fetched = h
                .client
                .fetch(FetchRequest::new("shared", partition, next))
                .await
                .expect("fetch");
            next = fetched.next_offset;
            values.extend(fetched.records.into_iter().map(|r| r.offset));
        }
        assert_eq!(values, expected, "partition {partition} stored");
    }
}

#[tokio::test]
async fn dropping_every_handle_sends_what_lingers_and_answers_it() {
    let h = Harness::start().await;
    h.topic("t", 1).await;
    let mut config = ProducerConfig::default();
    config.linger_ms = 60_000;
    let producer = h.client.producer(config).expect("producer");
    let mut deliveries = Vec::new();
    for i in 0..3 {
        let record = ProducerRecord::value(format!("v{i}"));
        deliveries.push(producer.send("t", record).await.expect("accepted"));
    }
    drop(producer);
    let offsets: Vec<u64> = soon(join_all(deliveries))
        .await
        .into_iter()
        .map(|p| p.expect("delivered at close").offset)
        .collect();
    assert_eq!(offsets, [0, 1, 2]);
}

#[tokio::test]
async fn out_of_range_settings_are_refused() {
    let h = Harness::start().await;
    let mut config = ProducerConfig::default();
    config.requests_in_flight_max = 0;
    let err = h.client.producer(config).expect_err("zero slots");
    assert_eq!(err.code(), Code::InvalidArgument);
}

/// Every stored record of `partition` from offset 0: (offset, value, timestamp).
async fn stored(h: &Harness, topic: &str, partition: u32, count: usize) -> Vec<(u64, String, i64)> {
    let mut records = Vec::new();
    let mut offset = 0;
    while records.len() < count {
        let fetched = h
            .client
            .fetch(FetchRequest::new(topic, partition, offset))
            .await
            .expect("fetch");
        offset = fetched.next_offset;
        records.extend(fetched.records.into_iter().map(|r| {
            let value = String::from_utf8(r.value.expect("value").to_vec()).expect("utf8");
            (r.offset, value, r.timestamp_ms)
        }));
    }
    records
}

#[tokio::test]
async fn send_batch_places_records_like_send_and_answers_each_in_order() {
    let h = Harness::start().await;
    h.topic("slices", 3).await;
    let mut config = ProducerConfig::default();
    config.linger_ms = 1;
    config.batch_bytes_max = 4096;
    config.requests_in_flight_max = 3;
    let producer = h.client.producer(config).expect("producer");
    // More records than one hold of the lock takes, keyed, one with a partition and one with
    // its own timestamp; batches of 4 KiB fill up in the middle of the slice.
    let mut records: Vec<ProducerRecord> = (0..700)
        .map(|i| ProducerRecord::keyed(format!("k{}", i % 5), format!("v{i}")))
        .collect();
    records[10] = ProducerRecord::keyed("k0", "v10").with_partition(2);
    records[11].timestamp_ms = Some(1_234);
    let delivery = soon(producer.send_batch("slices", &records))
        .await
        .expect("accepted");
    let positions = soon(delivery).await.expect("delivered");
    assert_eq!(positions.len(), records.len());

    let stamp = positions[0].timestamp_ms;
    let mut per_partition: BTreeMap<u32, Vec<(u64, String, i64)>> = BTreeMap::new();
    for (i, (record, position)) in records.iter().zip(&positions).enumerate() {
        let expected = match record.partition {
            Some(partition) => partition,
            None => partition_for_key(record.key.as_deref().expect("keyed"), 3),
        };
        assert_eq!(position.partition, expected, "record {i}");
        // One clock read per call for records without a timestamp of their own.
        let timestamp = if i == 11 { 1_234 } else { stamp };
        assert_eq!(position.timestamp_ms, timestamp, "record {i}");
        per_partition.entry(position.partition).or_default().push((
            position.offset,
            format!("v{i}"),
            timestamp,
        ));
    }
    for (partition, expected) in per_partition {
        // Offsets 0, 1, 2... in slice order, and the log holds what the positions say.
        let offsets: Vec<u64> = expected.iter().map(|e| e.0).collect();
        assert_eq!(offsets, (0..expected.len() as u64).collect::<Vec<_>>());
        let stored = stored(&h, "slices", partition, expected.len()).await;
        assert_eq!(stored, expected, "partition {partition}");
    }
}

#[tokio::test]
async fn send_batch_to_a_new_topic_creates_it_and_answers_every_record() {
    let h = Harness::start().await;
    let producer = h
        .client
        .producer(ProducerConfig::default())
        .expect("producer");
    let records: Vec<ProducerRecord> = (0..50)
        .map(|i| ProducerRecord::value(format!("v{i}")).with_partition(0))
        .collect();
    let delivery = soon(producer.send_batch("fresh-slice", &records))
        .await
        .expect("accepted");
    let positions = soon(delivery).await.expect("auto-created and delivered");
    let offsets: Vec<u64> = positions.iter().map(|p| p.offset).collect();
    assert_eq!(offsets, (0..50).collect::<Vec<u64>>());
    // The next slice goes straight into the partition's batch (the count is known now).
    let delivery = producer
        .send_batch("fresh-slice", &records[..3])
        .await
        .expect("accepted");
    let offsets: Vec<u64> = soon(delivery)
        .await
        .expect("delivered")
        .iter()
        .map(|p| p.offset)
        .collect();
    assert_eq!(offsets, [50, 51, 52]);
    assert!(soon(
        producer
            .send_batch("fresh-slice", &[])
            .await
            .expect("empty")
    )
    .await
    .expect("nothing to wait for")
    .is_empty());
}

#[tokio::test]
async fn send_batch_waits_for_buffer_space_in_the_middle_of_a_slice() {
    let h = Harness::start().await;
    h.topic("t", 1).await;
    // Room for about 17 records of 100 bytes: a slice of 2000 is taken in many turns, each
    // after an answer frees space.
    let producer = h.client.producer(tight_buffer()).expect("producer");
    let value = "x".repeat(100);
    let records: Vec<ProducerRecord> = (0..2000)
        .map(|_| ProducerRecord::value(value.clone()))
        .collect();
    let delivery = soon(producer.send_batch("t", &records))
        .await
        .expect("accepted");
    let positions = soon(delivery).await.expect("delivered");
    let offsets: Vec<u64> = positions.iter().map(|p| p.offset).collect();
    assert_eq!(offsets, (0..2000).collect::<Vec<u64>>());
    assert_eq!(stored(&h, "t", 0, 2000).await.len(), 2000);
}

#[tokio::test]
async fn send_batch_reports_a_refused_batch_and_stores_the_others() {
    let h = Harness::start().await;
    h.topic("t", 2).await;
    let mut config = ProducerConfig::default();
    config.linger_ms = 60_000;
    let producer = h.client.producer(config).expect("producer");
    let records = [
        ProducerRecord::value("a").with_partition(0),
        ProducerRecord::value("x").with_partition(9),
        ProducerRecord::value("b").with_partition(1),
    ];
    let delivery = producer.send_batch("t", &records).await.expect("accepted");
    soon(producer.flush()).await.expect("flush");
    let err = soon(delivery).await.expect_err("no partition 9");
    assert_eq!(err.code(), Code::NotFound, "{err}");
    // Each batch is stored or refused as a whole: the other partitions' records are stored.
    assert_eq!(stored(&h, "t", 0, 1).await[0].1, "a");
    assert_eq!(stored(&h, "t", 1, 1).await[0].1, "b");
}

/// Values no two rounds share, so a byte left over from an earlier batch shows.
fn round_values(round: u8, count: usize, len: usize) -> Vec<ProducerRecord> {
    (0..count)
        .map(|i| {
            let value: Vec<u8> = (0..len)
                .map(|at| (at as u8) ^ (i as u8).wrapping_mul(31) ^ round.wrapping_mul(101))
                .collect();
            ProducerRecord::value(value).with_partition(0)
        })
        .collect()
}

#[tokio::test]
async fn batches_built_in_reused_buffers_store_exactly_the_records_sent() {
    let h = Harness::start().await;
    h.topic("reuse", 1).await;
    let mut config = ProducerConfig::default();
    // Room for the refused record's buffer among the kept ones (twice this).
    config.batch_bytes_max = 4 << 20;
    let producer = h.client.producer(config).expect("producer");

    // Each round is one batch (answered before the next round starts), built in the buffer of
    // the one before: a large one, a smaller one, one larger than every buffer so far, one
    // refused by the server (over the topic's 1 MiB), and two after the refusal.
    let rounds = [
        (40, 3000),
        (5, 10),
        (600, 1500),
        (1, 2 << 20),
        (3, 7),
        (300, 1000),
    ];
    let mut expected = Vec::new();
    for (round, (count, len)) in rounds.into_iter().enumerate() {
        let records = round_values(round as u8, count, len);
        let delivery = producer
            .send_batch("reuse", &records)
            .await
            .expect("accepted");
        soon(producer.flush()).await.expect("flush");
        let outcome = soon(delivery).await;
        if len > 1 << 20 {
            let err = outcome.expect_err("over the topic's max.message.bytes");
            assert_eq!(err.code(), Code::ResourceExhausted, "{err}");
            continue;
        }
        let positions = outcome.expect("stored");
        assert_eq!(positions.len(), count);
        expected.extend(records.into_iter().map(|r| r.value.expect("value")));
    }

    let mut stored = Vec::new();
    while stored.len() < expected.len() {
        let fetched = h
            .client
            .fetch(FetchRequest::new("reuse", 0, stored.len() as u64))
            .await
            .expect("fetch");
        assert!(
            !fetched.records.is_empty(),
            "{} of {} stored",
            stored.len(),
            expected.len()
        );
        for record in fetched.records {
            assert_eq!(record.offset, stored.len() as u64, "offsets without a gap");
            stored.push(record.value.expect("value"));
        }
    }
    assert_eq!(stored.len(), expected.len());
    for (offset, (got, sent)) in stored.iter().zip(&expected).enumerate() {
        assert!(
            got == sent,
            "record {offset}: {} B stored, {} B sent",
            got.len(),
            sent.len()
        );
    }
}

/// Lone records (linger 0) from tasks on two worker threads into one partition, two requests in
/// flight: senders race each other and the producer's task, wait for their answers now and
/// then (the producer goes idle) and flush in between. Each sender's records keep their order,
/// and every record is stored once, at the offset its delivery reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lone_records_from_tasks_on_two_threads_keep_each_senders_order() {
    let h = Harness::start().await;
    h.topic("lone", 1).await;
    let mut config = ProducerConfig::default();
    config.linger_ms = 0;
    config.requests_in_flight_max = 2;
    let producer = h.client.producer(config).expect("producer");
    let (tasks, per_task) = (6, 150);
    let senders = (0..tasks).map(|task| {
        let producer = producer.clone();
        tokio::spawn(async move {
            let mut positions = Vec::new();
            let mut pending = Vec::new();
            for i in 0..per_task {
                let record = ProducerRecord::value(format!("{task}:{i}"));
                let delivery = producer.send("lone", record).await.expect("accepted");
                pending.push(delivery);
                // Now and then wait for the answers (the producer goes idle) or flush.
                if i % 4 == 0 {
                    for delivery in pending.drain(..) {
                        positions.push(delivery.await.expect("delivered"));
                    }
                } else if i % 7 == 0 {
                    producer.flush().await.expect("flushed");
                }
            }
            for delivery in pending {
                positions.push(delivery.await.expect("delivered"));
            }
            positions
        })
    });
    let results = soon(join_all(senders)).await;

    let total = tasks * per_task;
    let stored = stored(&h, "lone", 0, total).await;
    assert_eq!(stored.len(), total);
    let mut offsets = Vec::new();
    for (task, positions) in results.into_iter().enumerate() {
        let positions = positions.expect("sender task");
        assert_eq!(positions.len(), per_task);
        for (i, position) in positions.iter().enumerate() {
            let (offset, value, _) = &stored[position.offset as usize];
            assert_eq!(*offset, position.offset);
            assert_eq!(value, &format!("{task}:{i}"), "offset {offset}");
        }
        assert!(
            positions.windows(2).all(|w| w[0].offset < w[1].offset),
            "task {task} out of order"
        );
        offsets.extend(positions.iter().map(|p| p.offset));
    }
    offsets.sort_unstable();
    assert_eq!(offsets, (0..total as u64).collect::<Vec<_>>());
}
