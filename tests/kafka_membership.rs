//! Group membership beyond the classic protocol's basics, with librdkafka: static membership
//! (KIP-345: a member with a `group.instance.id` restarts without a rebalance, and one that
//! does not come back within its session timeout is dropped and its partitions handed on).
//! kafka-python's side of static membership is in tests/kafka_admin_python.rs.

mod kafka_support;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_support::{client_config, owned, TestBroker, PATIENCE};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::ClientContext;

/// Counts the rebalances a consumer goes through.
#[derive(Clone, Default)]
struct Counting {
    rebalances: Arc<AtomicUsize>,
}

impl ClientContext for Counting {}

impl ConsumerContext for Counting {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, _: &Rebalance<'_>) {
        self.rebalances.fetch_add(1, Ordering::SeqCst);
    }
}

type Member = BaseConsumer<Counting>;

/// Polls `members` until `done` holds for their assignments, failing after PATIENCE.
fn poll_until(
    members: &[&Member],
    topic: &str,
    what: &str,
    done: impl Fn(&[BTreeSet<i32>]) -> bool,
) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        for member in members {
            let _ = member.poll(Duration::from_millis(50));
        }
        let owned: Vec<BTreeSet<i32>> = members.iter().map(|m| owned(m, topic)).collect();
        if done(&owned) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: still {owned:?}");
    }
}

/// Each member owns a share, the shares do not overlap, and together they cover `partitions`.
fn split(owned: &[BTreeSet<i32>], partitions: i32) -> bool {
    let all: Vec<i32> = owned.iter().flatten().copied().collect();
    let distinct: BTreeSet<i32> = all.iter().copied().collect();
    owned.iter().all(|o| !o.is_empty())
        && all.len() == distinct.len()
        && distinct == (0..partitions).collect()
}

/// A consumer of `topic` in `group` with the static identity `instance`.
fn static_member(
    bootstrap: &str,
    group: &str,
    topic: &str,
    instance: &str,
    session_timeout_ms: u32,
    context: Counting,
) -> Member {
    let mut config = client_config(bootstrap);
    config
        .set("group.id", group)
        .set("group.instance.id", instance)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", session_timeout_ms.to_string())
        .set("heartbeat.interval.ms", "300")
        .set("fetch.wait.max.ms", "100");
    let consumer: Member = config.create_with_context(context).expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    consumer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_member_restarts_without_a_rebalance() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tb = TestBroker::start(dir.path()).await;
    tb.create_topic("statics", 4).await;
    let group = "static-group";
    let bootstrap = tb.bootstrap.clone();
    // Long enough for a restart; short enough that a real departure is noticed.
    let member = move |instance: &str, context: Counting| -> Member {
        static_member(&bootstrap, group, "statics", instance, 10_000, context)
    };
    let broker = tb.broker.clone();
    tokio::task::spawn_blocking(move || {
        let a = member("a", Counting::default());
        let b_context = Counting::default();
        let b = member("b", b_context.clone());
        poll_until(&[&a, &b], "statics", "both members assigned", |o| {
            split(o, 4)
        });
        let a_owned = owned(&a, "statics");
        let generation = broker.describe_group(group).expect("group").generation;
        let b_rebalances = b_context.rebalances.load(Ordering::SeqCst);

        // `a` stops (a static member does not leave) and comes back as a new process.
        drop(a);
        let a2 = member("a", Counting::default());
        poll_until(&[&a2, &b], "statics", "a back", |o| !o[0].is_empty());
        assert_eq!(owned(&a2, "statics"), a_owned, "the same partitions");
        // Give a rebalance every chance to show up.
        let until = Instant::now() + Duration::from_secs(2);
        while Instant::now() < until {
            let _ = a2.poll(Duration::from_millis(50));
            let _ = b.poll(Duration::from_millis(50));
        }
        let described = broker.describe_group(group).expect("group");
        assert_eq!(described.generation, generation, "no new generation");
        assert_eq!(described.members.len(), 2);
        assert_eq!(
            b_context.rebalances.load(Ordering::SeqCst),
            b_rebalances,
            "the other member saw no rebalance"
        );
        assert_eq!(owned(&b, "statics").len(), 2);
    })
    .await
    .expect("members");
    tb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_member_that_does_not_come_back_is_dropped_after_its_session_timeout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tb = TestBroker::start(dir.path()).await;
    tb.create_topic("gone", 4).await;
    let group = "gone-group";
    let bootstrap = tb.bootstrap.clone();
    let broker = tb.broker.clone();
    tokio::task::spawn_blocking(move || {
        let member = |instance: &str| {
            static_member(
                &bootstrap,
                group,
                "gone",
                instance,
                2_000,
                Counting::default(),
            )
        };
        let a = member("a");
        let b = member("b");
        poll_until(&[&a, &b], "gone", "both members assigned", |o| split(o, 4));
        // `a` closes for good: no LeaveGroup (it is static), so only its session ends it.
        drop(a);
        assert_eq!(
            broker.describe_group(group).expect("group").members.len(),
            2,
            "a static member stays until its session times out"
        );
        poll_until(&[&b], "gone", "b takes every partition", |o| {
            o[0].len() == 4
        });
        let described = broker.describe_group(group).expect("group");
        assert_eq!(described.members.len(), 1);
    })
    .await
    .expect("members");
    tb.stop().await;
}
