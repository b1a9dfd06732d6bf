//! The consumer against a real server: assigned partitions, live subscriptions, consumer
//! groups splitting and rebalancing, explicit and automatic commits, and bad requests.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use brook_client::{
    Code, ConsumerConfig, ConsumerEvent, OffsetReset, ProducerRecord, RecordStream, StartAt,
    TopicPartition,
};
use common::{soon, Harness};
use futures::StreamExt;

async fn produce_to(h: &Harness, topic: &str, partition: u32, values: &[&str]) {
    let records = values
        .iter()
        .map(|v| ProducerRecord::value(v.to_string()).with_partition(partition))
        .collect();
    h.client.produce(topic, records).await.expect("produce");
}

async fn take_values(stream: &mut RecordStream, n: usize) -> Vec<String> {
    let mut values = Vec::new();
    while values.len() < n {
        let record = soon(stream.next())
            .await
            .expect("stream open")
            .expect("record");
        values.push(String::from_utf8(record.value.expect("value").to_vec()).expect("utf8"));
    }
    values
}

/// Reads assignment events until this member owns `count` partitions: a member that joins
/// may first own nothing while the partitions it is assigned are still being released.
async fn owns(stream: &mut RecordStream, count: usize) -> BTreeSet<TopicPartition> {
    loop {
        let event = soon(stream.next_event()).await.expect("stream open");
        match event.expect("event") {
            ConsumerEvent::Assignment(a) if a.partitions.len() == count => {
                return a.partitions.into_iter().collect()
            }
            ConsumerEvent::Assignment(_) => continue,
            ConsumerEvent::Record(r) => panic!("expected an assignment, got record {r:?}"),
        }
    }
}

fn no_auto_commit(group: &str) -> ConsumerConfig {
    let mut config = ConsumerConfig::group(group);
    config.reset = OffsetReset::Earliest;
    config.auto_commit_interval_ms = None;
    config
}

#[tokio::test]
async fn assigned_partitions_stream_history_then_live_records() {
    let h = Harness::start().await;
    h.topic("t", 2).await;
    produce_to(&h, "t", 0, &["a0", "a1"]).await;
    produce_to(&h, "t", 1, &["b0"]).await;

    let consumer = h
        .client
        .consumer(ConsumerConfig::default())
        .expect("consumer");
    let mut from_start = consumer
        .assign(vec![(TopicPartition::new("t", 0), StartAt::Earliest)])
        .await
        .expect("assign");
    let mut live = consumer
        .assign(vec![(TopicPartition::new("t", 1), StartAt::Latest)])
        .await
        .expect("assign");
    let mut from_offset = consumer
        .assign(vec![(TopicPartition::new("t", 0), StartAt::Offset(1))])
        .await
        .expect("assign");

    assert_eq!(take_values(&mut from_start, 2).await, ["a0", "a1"]);
    assert_eq!(take_values(&mut from_offset, 1).await, ["a1"]);
    assert_eq!(from_start.positions()[&TopicPartition::new("t", 0)], 2);

    // Produced after the subscription started: arrives without polling.
    produce_to(&h, "t", 1, &["b1"]).await;
    produce_to(&h, "t", 0, &["a2"]).await;
    assert_eq!(take_values(&mut live, 1).await, ["b1"]);
    assert_eq!(take_values(&mut from_start, 1).await, ["a2"]);
}

#[tokio::test]
async fn bad_subscriptions_get_the_right_status() {
    let h = Harness::start().await;
    h.topic("t", 1).await;
    let consumer = h
        .client
        .consumer(ConsumerConfig::default())
        .expect("consumer");
    let cases = [
        (
            TopicPartition::new("missing", 0),
            StartAt::Earliest,
            Code::NotFound,
        ),
        (
            TopicPartition::new("t", 3),
            StartAt::Earliest,
            Code::NotFound,
        ),
        (
            TopicPartition::new("t", 0),
            StartAt::Offset(10),
            Code::OutOfRange,
        ),
    ];
    for (tp, start, code) in cases {
        let err = match consumer.assign(vec![(tp.clone(), start)]).await {
            Ok(mut stream) => soon(stream.next())
                .await
                .expect("an error")
                .expect_err("bad"),
            Err(err) => err,
        };
        assert_eq!(err.code(), code, "{tp} {start:?}: {err}");
    }
    let err = consumer.subscribe(["t"]).await.expect_err("no group");
    assert_eq!(err.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn two_members_split_the_partitions_and_one_takes_all_when_the_other_leaves() {
    let h = Harness::start().await;
    h.topic("t", 4).await;
    let consumer = h.client.consumer(no_auto_commit("g")).expect("consumer");

    let mut first = consumer.subscribe(["t"]).await.expect("first member");
    owns(&mut first, 4).await;

    // The first member releases two partitions, then the second takes them.
    let mut second = consumer.subscribe(["t"]).await.expect("second member");
    let first_owns = owns(&mut first, 2).await;
    let second_owns = owns(&mut second, 2).await;
    assert!(first_owns.is_disjoint(&second_owns));

    // Every partition's records reach exactly the member that owns it.
    for p in 0..4 {
        produce_to(&h, "t", p, &[&format!("p{p}")]).await;
    }
    let mut seen = BTreeSet::new();
    for (stream, owns) in [(&mut first, &first_owns), (&mut second, &second_owns)] {
        for _ in 0..2 {
            let record = soon(stream.next()).await.expect("open").expect("record");
            let tp = TopicPartition::new(record.topic.clone(), record.partition);
            assert!(
                owns.contains(&tp),
                "{tp} delivered to a member that does not own it"
            );
            seen.insert(tp);
        }
    }
    assert_eq!(seen.len(), 4);

    drop(second);
    owns(&mut first, 4).await;
}

#[tokio::test]
async fn a_committed_position_is_where_the_group_resumes() {
    let h = Harness::start().await;
    h.topic("t", 1).await;
    produce_to(&h, "t", 0, &["r0", "r1", "r2", "r3"]).await;
    let consumer = h
        .client
        .consumer(no_auto_commit("billing"))
        .expect("consumer");

    let mut stream = consumer.subscribe(["t"]).await.expect("subscribe");
    assert_eq!(take_values(&mut stream, 2).await, ["r0", "r1"]);
    stream.commit().await.expect("commit");
    drop(stream);

    let committed = h
        .client
        .admin()
        .fetch_offsets("billing", &[TopicPartition::new("t", 0)])
        .await
        .expect("fetch offsets");
    assert_eq!(committed[0].offset, 2);

    let mut resumed = consumer.subscribe(["t"]).await.expect("resubscribe");
    assert_eq!(take_values(&mut resumed, 2).await, ["r2", "r3"]);
}

#[tokio::test]
async fn positions_are_committed_automatically_on_the_interval() {
    let h = Harness::start().await;
    h.topic("t", 1).await;
    produce_to(&h, "t", 0, &["a", "b", "c"]).await;
    let mut config = ConsumerConfig::group("auto");
    config.reset = OffsetReset::Earliest;
    config.auto_commit_interval_ms = Some(20);
    let consumer = h.client.consumer(config).expect("consumer");
    let mut stream = consumer.subscribe(["t"]).await.expect("subscribe");
    assert_eq!(take_values(&mut stream, 3).await.len(), 3);

    let admin = h.client.admin();
    let tp = [TopicPartition::new("t", 0)];
    let committed = soon(async {
        loop {
            // Keep the stream polled (its timer drives the commits), no record is coming.
            let idle = tokio::time::timeout(Duration::from_millis(30), stream.next_event()).await;
            assert!(idle.is_err(), "no event expected: {idle:?}");
            let offsets = admin
                .fetch_offsets("auto", &tp)
                .await
                .expect("fetch offsets");
            if let Some(offset) = offsets.first() {
                return offset.offset;
            }
        }
    })
    .await;
    assert_eq!(committed, 3);
}

#[tokio::test]
async fn close_commits_what_was_consumed() {
    let h = Harness::start().await;
    h.topic("t", 1).await;
    produce_to(&h, "t", 0, &["a", "b"]).await;
    let mut config = ConsumerConfig::group("closing");
    config.reset = OffsetReset::Earliest;
    let mut stream = h
        .client
        .consumer(config)
        .expect("consumer")
        .subscribe(["t"])
        .await
        .expect("subscribe");
    take_values(&mut stream, 1).await;
    stream.close().await.expect("close");
    let committed = h
        .client
        .admin()
        .fetch_offsets("closing", &[])
        .await
        .expect("fetch offsets");
    assert_eq!((committed.len(), committed[0].offset), (1, 1));
}
