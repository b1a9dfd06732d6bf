//! Request-reply through the embedded broker: calls, responders in a group, timeouts, late
//! replies, idempotent retries, a broker restart, Kafka-style responders and bad input.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use brook_broker::reqreply::CORRELATION_ID_HEADER;
use brook_broker::{
    Answer, Broker, BrokerConfig, BrokerError, Call, CorrelationId, Durability, NewTopic,
    OffsetSpec, PartitionSubscribe, ProduceRecord, Request, StartAt,
};
use bytes::Bytes;
use futures::StreamExt;
use tokio::task::JoinHandle;

const WAIT: Duration = Duration::from_secs(10);
const REPLIES: &str = "__brook_replies";

/// Answers with the request's value upper-cased, tagged with `name` in a header.
fn upper(
    name: &'static str,
    handled: Arc<AtomicUsize>,
) -> impl Fn(Request) -> futures::future::Ready<Result<Answer, String>> + Send + Sync + 'static {
    move |request: Request| {
        handled.fetch_add(1, Ordering::SeqCst);
        let value = request.value.unwrap_or_default().to_ascii_uppercase();
        futures::future::ready(Ok(Answer {
            value: Some(Bytes::from(value)),
            headers: vec![("by".to_owned(), Bytes::from_static(name.as_bytes()))],
        }))
    }
}

fn spawn_upper(
    broker: &Broker,
    topic: &str,
    name: &'static str,
) -> (JoinHandle<()>, Arc<AtomicUsize>) {
    let handled = Arc::new(AtomicUsize::new(0));
    let (broker, topic, handler) = (
        broker.clone(),
        topic.to_owned(),
        upper(name, Arc::clone(&handled)),
    );
    let task = tokio::spawn(async move {
        broker
            .respond(&topic, "svc", handler)
            .await
            .expect("respond");
    });
    (task, handled)
}

/// An ephemeral broker with `topic` created.
async fn broker_with(topic: &str, partitions: u32) -> Broker {
    let broker = Broker::ephemeral().await.expect("broker");
    broker
        .create_topic(NewTopic::new(topic, partitions))
        .await
        .expect("create");
    broker
}

fn call(value: &str) -> Call {
    Call::new(value.to_owned()).with_timeout(WAIT)
}

fn id(text: &str) -> CorrelationId {
    CorrelationId::parse(text).expect("id")
}

fn header<'a>(headers: &'a [(String, Bytes)], name: &str) -> Option<&'a [u8]> {
    headers.iter().find(|(k, _)| k == name).map(|(_, v)| &v[..])
}

async fn end_offset(broker: &Broker, topic: &str) -> u64 {
    let mut total = 0;
    for p in broker.describe_topic(topic).expect("describe").partitions {
        total += broker
            .list_offset(topic, p.partition, OffsetSpec::Latest)
            .await
            .expect("offset")
            .offset
            .expect("latest");
    }
    total
}

/// Waits until `check` holds, polling the broker's state (not timing anything).
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_call_gets_the_responders_answer_and_handler_errors_come_back_as_errors() {
    let broker = Broker::ephemeral().await.expect("broker");
    let (_responder, handled) = spawn_upper(&broker, "prices", "a");
    let reply = broker.call("prices", call("order 1")).await.expect("reply");
    assert_eq!(reply.value.as_deref(), Some(&b"ORDER 1"[..]));
    assert_eq!(header(&reply.headers, "by"), Some(&b"a"[..]));
    assert_eq!(&*reply.topic, REPLIES);
    assert_eq!(
        reply.correlation_id.as_bytes().len(),
        16,
        "Spring-style UUID bytes"
    );
    assert_eq!(handled.load(Ordering::SeqCst), 1);

    let failing = broker.clone();
    tokio::spawn(async move {
        failing
            .respond("checks", "svc", |request: Request| async move {
                match request.value.as_deref() {
                    Some(b"panic") => panic!("handler bug"),
                    _ => Err::<Answer, _>("user 7 is not allowed"),
                }
            })
            .await
    });
    let err = broker.call("checks", call("user 7")).await.unwrap_err();
    match &err {
        BrokerError::HandlerFailed { message, topic, .. } => {
            assert_eq!(message, "user 7 is not allowed");
            assert_eq!(topic, "checks");
        }
        other => panic!("expected HandlerFailed, got {other}"),
    }
    let err = broker.call("checks", call("panic")).await.unwrap_err();
    assert!(
        matches!(&err, BrokerError::HandlerFailed { message, .. } if message.contains("panicked")),
        "{err}"
    );
    assert_eq!(broker.reqreply_stats().waiting_calls, 0);
}

#[tokio::test]
async fn no_responder_times_out_leaving_nothing_waiting_and_the_late_reply_is_kept() {
    let broker = Broker::ephemeral().await.expect("broker");
    let short = Call::new("late?").with_timeout(Duration::from_millis(100));
    let err = broker.call("quotes", short).await.unwrap_err();
    let BrokerError::CallTimeout {
        correlation_id,
        timeout_ms,
        ..
    } = &err
    else {
        panic!("expected CallTimeout, got {err}");
    };
    assert_eq!(*timeout_ms, 100);
    let stats = broker.reqreply_stats();
    assert_eq!(stats.waiting_calls, 0, "nothing left pending: {stats:?}");
    let id = id(correlation_id);
    let err = broker
        .reply("quotes", &id, Duration::ZERO)
        .await
        .unwrap_err();
    assert!(
        matches!(err, BrokerError::CallTimeout { .. }),
        "known, not answered yet: {err}"
    );

    // A responder comes up later and answers the old request: the reply is kept.
    let (_responder, handled) = spawn_upper(&broker, "quotes", "late");
    let reply = broker
        .reply("quotes", &id, WAIT)
        .await
        .expect("the late reply");
    assert_eq!(reply.value.as_deref(), Some(&b"LATE?"[..]));
    assert_eq!(handled.load(Ordering::SeqCst), 1);
    let again = broker
        .reply("quotes", &id, Duration::ZERO)
        .await
        .expect("still there");
    assert_eq!(again.offset, reply.offset);
    let err = broker
        .reply("other", &id, Duration::ZERO)
        .await
        .unwrap_err();
    assert!(matches!(err, BrokerError::UnknownCall { .. }), "{err}");
    assert_eq!(broker.reqreply_stats().waiting_calls, 0);
}

#[tokio::test]
async fn a_retry_with_the_same_correlation_id_appends_nothing_and_gets_the_same_reply() {
    let broker = broker_with("payments", 1).await;
    let key = id("order-42");
    let quick = Call::new("pay")
        .with_correlation_id(key.clone())
        .with_timeout(Duration::from_millis(50));
    for _ in 0..3 {
        let err = broker.call("payments", quick.clone()).await.unwrap_err();
        assert!(matches!(err, BrokerError::CallTimeout { .. }), "{err}");
    }
    assert_eq!(
        end_offset(&broker, "payments").await,
        1,
        "one request for three tries"
    );

    let (_responder, handled) = spawn_upper(&broker, "payments", "p");
    let retry = quick.clone().with_timeout(WAIT);
    let (first, second) = tokio::join!(
        broker.call("payments", retry.clone()),
        broker.call("payments", retry.clone())
    );
    let (first, second) = (first.expect("reply"), second.expect("reply"));
    assert_eq!(first.offset, second.offset, "the same reply");
    let third = broker.call("payments", retry).await.expect("reply");
    assert_eq!(third.offset, first.offset);
    assert_eq!(third.correlation_id, key);
    assert_eq!(handled.load(Ordering::SeqCst), 1, "handled once");
    assert_eq!(end_offset(&broker, "payments").await, 1);
    assert_eq!(end_offset(&broker, REPLIES).await, 1);

    let elsewhere = Call::new("pay").with_correlation_id(key);
    let err = broker.call("refunds", elsewhere).await.unwrap_err();
    assert!(
        matches!(err, BrokerError::InvalidRequest { .. }),
        "an id belongs to one topic: {err}"
    );
}

#[tokio::test]
async fn three_responders_share_the_calls_and_a_dying_one_hands_its_share_over() {
    let broker = broker_with("work", 6).await;
    let (a, a_handled) = spawn_upper(&broker, "work", "a");
    let (c, c_handled) = spawn_upper(&broker, "work", "c");
    // b takes requests and never answers them.
    let b_handled = Arc::new(AtomicUsize::new(0));
    let b_count = Arc::clone(&b_handled);
    let b_broker = broker.clone();
    let b = tokio::spawn(async move {
        b_broker
            .respond("work", "svc", move |_request: Request| {
                b_count.fetch_add(1, Ordering::SeqCst);
                futures::future::pending::<Result<Answer, String>>()
            })
            .await
    });
    eventually("three members with two partitions each", || {
        broker.describe_group("svc").is_ok_and(|g| {
            g.members.len() == 3 && g.members.iter().all(|m| m.assignment.len() == 2)
        })
    })
    .await;

    let calls: Vec<_> = (0..60)
        .map(|i| {
            let broker = broker.clone();
            let request = Call {
                partition: Some(i % 6),
                ..call(&format!("job {i}"))
            };
            tokio::spawn(async move { broker.call("work", request).await })
        })
        .collect();
    eventually("b to hold some requests", || {
        b_handled.load(Ordering::SeqCst) > 0
    })
    .await;
    eventually("a and c to answer their share", || {
        a_handled.load(Ordering::SeqCst)
            + c_handled.load(Ordering::SeqCst)
            + b_handled.load(Ordering::SeqCst)
            >= 60
    })
    .await;
    assert!(a_handled.load(Ordering::SeqCst) > 0 && c_handled.load(Ordering::SeqCst) > 0);
    let held_by_b = b_handled.load(Ordering::SeqCst);
    assert_eq!(held_by_b, 20, "b owns two of six partitions");
    // a's and c's replies all appended before b leaves: the rebalance may move their
    // partitions too, and a request whose handler ran but whose reply was not in yet would be
    // handled again by the new owner (at least once, by design).
    eventually("a's and c's 40 calls answered", || {
        calls.iter().filter(|call| call.is_finished()).count() == 40
    })
    .await;

    b.abort();
    let mut by = HashMap::new();
    for (i, call) in calls.into_iter().enumerate() {
        let reply = call.await.expect("task").expect("every call is answered");
        assert_eq!(reply.value, Some(Bytes::from(format!("JOB {i}"))));
        *by.entry(header(&reply.headers, "by").expect("tagged").to_vec())
            .or_insert(0) += 1;
    }
    assert_eq!(by.values().sum::<usize>(), 60);
    assert!(!by.contains_key(&b"b"[..]));
    assert_eq!(
        a_handled.load(Ordering::SeqCst) + c_handled.load(Ordering::SeqCst),
        60,
        "a and c took over b's {held_by_b} requests"
    );
    assert_eq!(broker.reqreply_stats().duplicate_replies, 0);
    a.abort();
    c.abort();
}

/// Calls `orders` once per id, with value `o{i}`, each on a task of its own.
fn call_orders(
    broker: &Broker,
    ids: &[CorrelationId],
) -> Vec<JoinHandle<Result<brook_broker::Reply, BrokerError>>> {
    ids.iter()
        .enumerate()
        .map(|(i, id)| {
            let broker = broker.clone();
            let request = call(&format!("o{i}")).with_correlation_id(id.clone());
            tokio::spawn(async move { broker.call("orders", request).await })
        })
        .collect()
}

#[tokio::test]
async fn after_a_broker_restart_every_retried_call_gets_its_reply_exactly_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = BrokerConfig::new(dir.path());
    config.log.durability = Durability::None;
    let broker = Broker::open(config.clone()).await.expect("open");
    broker
        .create_topic(NewTopic::new("orders", 2))
        .await
        .expect("create");
    // The first responder answers the first ten requests it sees and hangs on the others.
    let seen = Arc::new(AtomicUsize::new(0));
    let first = {
        let (broker, seen) = (broker.clone(), Arc::clone(&seen));
        tokio::spawn(async move {
            broker
                .respond("orders", "svc", move |request: Request| {
                    let n = seen.fetch_add(1, Ordering::SeqCst);
                    async move {
                        if n >= 10 {
                            futures::future::pending::<()>().await;
                        }
                        Ok::<_, String>(Answer::value(request.value.unwrap_or_default()))
                    }
                })
                .await
        })
    };
    let ids: Vec<CorrelationId> = (0..20).map(|i| id(&format!("order-{i}"))).collect();
    let calls = call_orders(&broker, &ids);
    eventually("all requests taken", || seen.load(Ordering::SeqCst) == 20).await;
    let mut before = HashMap::new();
    eventually("ten replies", || {
        calls.iter().filter(|c| c.is_finished()).count() >= 10
    })
    .await;
    broker.close().await.expect("close");
    for (i, call) in calls.into_iter().enumerate() {
        match call.await.expect("task") {
            Ok(reply) => {
                before.insert(i, reply.offset);
            }
            Err(e) => assert!(matches!(e, BrokerError::Closed), "{e}"),
        }
    }
    assert_eq!(before.len(), 10, "ten answered before the restart");
    first
        .await
        .expect("task")
        .expect("the responder ends when the broker closes");
    drop(broker);

    let broker = Broker::open(config).await.expect("reopen");
    let (_second, handled) = spawn_upper(&broker, "orders", "second");
    let retries = call_orders(&broker, &ids);
    let mut offsets = HashSet::new();
    for (i, retry) in retries.into_iter().enumerate() {
        let reply = retry.await.expect("task").expect("a reply");
        assert!(offsets.insert(reply.offset), "one reply per call");
        match before.get(&i) {
            Some(offset) => {
                assert_eq!(reply.offset, *offset, "the reply from before the restart");
                assert_eq!(reply.value, Some(Bytes::from(format!("o{i}"))));
            }
            None => assert_eq!(reply.value, Some(Bytes::from(format!("O{i}")))),
        }
    }
    assert_eq!(
        handled.load(Ordering::SeqCst),
        10,
        "only the unanswered ten are handled again"
    );
    assert_eq!(
        end_offset(&broker, "orders").await,
        20,
        "no request appended twice"
    );
    assert_eq!(
        end_offset(&broker, REPLIES).await,
        20,
        "no reply appended twice"
    );
    assert_eq!(broker.reqreply_stats().duplicate_replies, 0);
}

/// Under `sync`, a caller gets its reply from the append of the reply once that append is
/// fsynced: each reply a caller got lies below the reply topic's high watermark (which under
/// `sync` moves only after an fsync), and after a crash (the broker dropped without closing)
/// every reply a caller got is there, at the offset it was given, fetchable by id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_sync_every_reply_a_caller_got_survives_a_crash() {
    const CALLERS: usize = 8;
    const EACH: usize = 5;
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let mut config = BrokerConfig::new(dir.path());
    config.log.durability = Durability::Sync;
    let broker = Broker::open(config.clone()).await.expect("open");
    broker
        .create_topic(NewTopic::new("orders", 1))
        .await
        .expect("create");
    let (responder, handled) = spawn_upper(&broker, "orders", "svc");
    let callers: Vec<_> = (0..CALLERS)
        .map(|c| {
            let broker = broker.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                for i in 0..EACH {
                    let id = id(&format!("sync-{c}-{i}"));
                    let reply = broker
                        .call(
                            "orders",
                            call(&format!("v{c}-{i}")).with_correlation_id(id.clone()),
                        )
                        .await
                        .expect("a reply");
                    let durable = broker.describe_topic(REPLIES).expect("describe").partitions
                        [reply.partition as usize]
                        .high_watermark;
                    assert!(
                        reply.offset < durable,
                        "a reply handed out before its fsync"
                    );
                    got.push((id, reply.offset, reply.value));
                }
                got
            })
        })
        .collect();
    let mut got = Vec::new();
    for caller in callers {
        got.extend(caller.await.expect("caller"));
    }
    assert_eq!(handled.load(Ordering::SeqCst), CALLERS * EACH);
    responder.abort();
    let _ = responder.await;
    // No close: the next open treats this as a crash.
    drop(broker);

    let broker = common::open_after_drop(config).await;
    for (id, offset, value) in got {
        let reply = broker
            .reply("orders", &id, Duration::ZERO)
            .await
            .expect("the reply the caller got");
        assert_eq!((reply.offset, reply.value), (offset, value), "{id}");
    }
    assert_eq!(end_offset(&broker, REPLIES).await, (CALLERS * EACH) as u64);
}

#[tokio::test]
async fn a_reply_written_by_hand_is_ignored_and_malformed_replies_are_dropped() {
    let broker = broker_with("lookups", 1).await;
    // Answers as a plain Kafka consumer + producer would: reading the Spring headers by hand
    // (anyone who can read the request topic can).
    let manual = broker.clone();
    tokio::spawn(async move {
        let mut requests = manual
            .subscribe(PartitionSubscribe::new("lookups", 0, StartAt::Earliest))
            .await
            .expect("subscribe")
            .records();
        while let Some(Ok(request)) = requests.next().await {
            let get = |name: &str| header(&request.headers, name).map(Bytes::copy_from_slice);
            let reply_topic =
                String::from_utf8(get("kafka_replyTopic").expect("reply topic").to_vec())
                    .expect("utf8");
            let partition = get("kafka_replyPartition").expect("partition");
            let partition = u32::from_be_bytes(partition[..].try_into().expect("4 bytes"));
            // First a reply without a correlation id, which must reach nobody.
            let stray = ProduceRecord {
                partition: Some(partition),
                ..ProduceRecord::value("stray")
            };
            manual
                .produce(&reply_topic, vec![stray])
                .await
                .expect("stray");
            let reply = ProduceRecord {
                partition: Some(partition),
                headers: vec![(
                    CORRELATION_ID_HEADER.to_owned(),
                    get(CORRELATION_ID_HEADER).expect("id"),
                )],
                ..ProduceRecord::value("found")
            };
            manual
                .produce(&reply_topic, vec![reply])
                .await
                .expect("reply");
        }
    });
    // The hand-written reply is not bound to the call (docs/request-reply.md, "Who may
    // answer"): it is ignored, and the call times out.
    let lookup = || call("k").with_correlation_id(id("lookup-1"));
    let err = broker
        .call("lookups", lookup().with_timeout(Duration::from_secs(2)))
        .await
        .expect_err("a reply written by hand is not delivered");
    assert!(matches!(err, BrokerError::CallTimeout { .. }), "{err}");
    eventually("the stray and the unbound reply counted", || {
        let stats = broker.reqreply_stats();
        stats.malformed_replies == 1 && stats.unbound_replies == 1
    })
    .await;

    // A brook responder answers the same request; the retry gets its reply.
    let (_r, _) = spawn_upper(&broker, "lookups", "svc");
    let reply = broker.call("lookups", lookup()).await.expect("reply");
    assert_eq!(reply.value.as_deref(), Some(&b"K"[..]));
    assert_eq!(broker.reqreply_stats().unbound_replies, 1);
}

/// The reply topic's follower skips the replies its responders already handed over, and still
/// reads every other record between them: stray replies written in between are each counted
/// once, no reply counts twice, and every reply can be fetched by id afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reply_follower_skips_what_was_handed_over_and_reads_the_rest() {
    const CALLS: usize = 200;
    const STRAYS: usize = 40;
    let broker = broker_with("echo", 1).await;
    let (_responder, handled) = spawn_upper(&broker, "echo", "r");
    // Started before the strays, so request-reply (and the reply topic) exist.
    broker
        .call("echo", call("first"))
        .await
        .expect("first call");
    let strays = {
        let broker = broker.clone();
        tokio::spawn(async move {
            for i in 0..STRAYS {
                // A reply without a correlation id, between the responder's replies.
                let stray = ProduceRecord::value(format!("stray {i}"));
                broker.produce(REPLIES, vec![stray]).await.expect("stray");
                tokio::task::yield_now().await;
            }
        })
    };
    let calls: Vec<_> = (0..CALLS)
        .map(|i| {
            let broker = broker.clone();
            let request = call(&format!("v{i}")).with_correlation_id(id(&format!("echo-{i}")));
            tokio::spawn(async move { broker.call("echo", request).await })
        })
        .collect();
    for (i, call) in calls.into_iter().enumerate() {
        let reply = call.await.expect("task").expect("reply");
        assert_eq!(reply.value, Some(Bytes::from(format!("V{i}"))));
    }
    strays.await.expect("strays");
    eventually("every stray read and counted", || {
        broker.reqreply_stats().malformed_replies == STRAYS as u64
    })
    .await;
    // The reply topic holds the replies and the strays, nothing more.
    assert_eq!(
        end_offset(&broker, REPLIES).await,
        (CALLS + STRAYS + 1) as u64
    );
    let stats = broker.reqreply_stats();
    assert_eq!(stats.malformed_replies, STRAYS as u64, "{stats:?}");
    assert_eq!(stats.duplicate_replies, 0, "{stats:?}");
    assert_eq!(stats.unbound_replies, 0, "{stats:?}");
    assert_eq!(handled.load(Ordering::SeqCst), CALLS + 1);
    for i in 0..CALLS {
        let reply = broker
            .reply("echo", &id(&format!("echo-{i}")), Duration::ZERO)
            .await
            .expect("indexed");
        assert_eq!(reply.value, Some(Bytes::from(format!("V{i}"))));
    }
}

#[tokio::test]
async fn malformed_requests_are_skipped_and_counted() {
    let broker = broker_with("jobs", 1).await;
    broker
        .produce("jobs", vec![ProduceRecord::value("no headers")])
        .await
        .expect("produce");
    let (_responder, handled) = spawn_upper(&broker, "jobs", "r");
    let reply = broker
        .call("jobs", call("ok"))
        .await
        .expect("the good call still works");
    assert_eq!(reply.value.as_deref(), Some(&b"OK"[..]));
    assert_eq!(handled.load(Ordering::SeqCst), 1);
    assert_eq!(broker.reqreply_stats().malformed_requests, 1);
}

#[tokio::test]
async fn bad_calls_are_refused_and_change_nothing() {
    let broker = Broker::ephemeral().await.expect("broker");
    let invalid = |r: Result<_, BrokerError>| match r {
        Err(e @ (BrokerError::InvalidRequest { .. } | BrokerError::InvalidTopicName { .. })) => e,
        other => panic!("expected a refusal, got {other:?}"),
    };
    invalid(broker.call(REPLIES, call("v")).await);
    invalid(broker.call("bad/name", call("v")).await);
    invalid(
        broker
            .call("t", Call::new("v").with_timeout(Duration::ZERO))
            .await,
    );
    invalid(
        broker
            .call("t", Call::new("v").with_timeout(Duration::from_secs(301)))
            .await,
    );
    let reserved = Call {
        headers: vec![(CORRELATION_ID_HEADER.to_owned(), Bytes::new())],
        ..call("v")
    };
    let err = invalid(broker.call("t", reserved).await);
    assert!(err.to_string().contains("kafka_correlationId"), "{err}");
    assert!(
        broker.describe_topic("t").is_err(),
        "nothing was appended (or created)"
    );
    let err = broker
        .reply("t", &id("never"), Duration::ZERO)
        .await
        .unwrap_err();
    assert!(matches!(err, BrokerError::UnknownCall { .. }), "{err}");
    let err = broker
        .responder(brook_broker::RespondOptions::new(REPLIES, "g"))
        .await
        .unwrap_err();
    assert!(matches!(err, BrokerError::InvalidRequest { .. }), "{err}");
    let mut config = BrokerConfig::new("unused");
    config.reqreply.index_entries_max = 0;
    assert!(matches!(
        config.validate(),
        Err(BrokerError::InvalidConfig { .. })
    ));
}

#[tokio::test]
async fn an_ephemeral_broker_that_made_calls_is_still_removed_on_drop() {
    let broker = Broker::ephemeral().await.expect("broker");
    let dir = broker.data_dir();
    let quick = Call::new("v").with_timeout(Duration::from_millis(20));
    assert!(broker.call("t", quick).await.is_err());
    drop(broker);
    let deadline = tokio::time::Instant::now() + WAIT;
    while dir.exists() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the reply reader kept the broker alive"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn the_index_is_rebuilt_on_open_within_its_bound() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = BrokerConfig::new(dir.path());
    config.log.durability = Durability::None;
    config.reqreply.index_entries_max = 3;
    let broker = Broker::open(config.clone()).await.expect("open");
    broker
        .create_topic(NewTopic::new("rates", 1))
        .await
        .expect("create");
    let (responder, _) = spawn_upper(&broker, "rates", "r");
    for i in 0..5 {
        let request = call("v").with_correlation_id(id(&format!("rate-{i}")));
        broker.call("rates", request).await.expect("reply");
    }
    responder.abort();
    let _ = responder.await;
    broker.close().await.expect("close");
    drop(broker);

    let broker = Broker::open(config).await.expect("reopen");
    let newest = broker
        .reply("rates", &id("rate-4"), Duration::ZERO)
        .await
        .expect("a recent reply is found again");
    assert_eq!(newest.value.as_deref(), Some(&b"V"[..]));
    let err = broker
        .reply("rates", &id("rate-0"), Duration::ZERO)
        .await
        .unwrap_err();
    assert!(
        matches!(err, BrokerError::UnknownCall { .. }),
        "forgotten: {err}"
    );
    assert!(broker.reqreply_stats().indexed_ids <= 3);
}

/// Many callers at once, each with its own value, key and header of varying length (binary,
/// empty, long): every reply is its own request's, byte for byte, an error reply carries its
/// own message, and nothing is left waiting. The call path builds, hands over and parses each
/// request and reply without copies; a byte of one call in another's reply would show here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_each_get_their_own_reply_byte_for_byte() {
    const CALLERS: usize = 64;
    const CALLS: usize = 20;
    let broker = broker_with("mirror", 2).await;
    let responder = broker.clone();
    tokio::spawn(async move {
        responder
            .respond("mirror", "svc", |request: Request| async move {
                let (value, key) = (
                    request.value.unwrap_or_default(),
                    request.key.unwrap_or_default(),
                );
                if key.starts_with(b"refuse") {
                    return Err(format!(
                        "refused {} bytes for {}",
                        value.len(),
                        String::from_utf8_lossy(&key)
                    ));
                }
                let mut headers = request.headers;
                headers.push(("key".to_owned(), key));
                let reversed: Vec<u8> = value.iter().rev().copied().collect();
                Ok::<_, String>(Answer {
                    value: Some(Bytes::from(reversed)),
                    headers,
                })
            })
            .await
            .expect("respond");
    });
    let callers: Vec<_> = (0..CALLERS)
        .map(|c| {
            let broker = broker.clone();
            tokio::spawn(async move {
                for n in 0..CALLS {
                    // Lengths 0..~700, bytes that differ per caller and call.
                    let len = (c * 37 + n * 101) % 700;
                    let seed = (c * CALLS + n) as u8;
                    let value: Vec<u8> = (0..len).map(|i| seed ^ (i as u8)).collect();
                    let refused = n % 7 == 3;
                    let key = match refused {
                        true => format!("refuse-{c}-call-{n}"),
                        false => format!("caller-{c}-call-{n}"),
                    };
                    let tag = vec![seed; (n * 13) % 40];
                    let request = Call {
                        key: Some(Bytes::from(key.clone())),
                        headers: vec![("tag".to_owned(), Bytes::from(tag.clone()))],
                        ..Call::new(value.clone()).with_timeout(WAIT)
                    };
                    let outcome = broker.call("mirror", request).await;
                    if refused {
                        let expected = format!("refused {len} bytes for {key}");
                        match outcome {
                            Err(BrokerError::HandlerFailed { message, .. }) => {
                                assert_eq!(message, expected, "caller {c} call {n}")
                            }
                            other => panic!("caller {c} call {n}: {other:?}"),
                        }
                        continue;
                    }
                    let reply = outcome.expect("reply");
                    let reversed: Vec<u8> = value.iter().rev().copied().collect();
                    assert_eq!(
                        reply.value.as_deref(),
                        Some(&reversed[..]),
                        "caller {c} call {n}"
                    );
                    assert_eq!(reply.key.as_deref(), Some(key.as_bytes()));
                    assert_eq!(
                        reply.headers,
                        vec![
                            ("tag".to_owned(), Bytes::from(tag)),
                            ("key".to_owned(), Bytes::from(key)),
                        ],
                        "only the responder's headers, its own call's"
                    );
                }
            })
        })
        .collect();
    for caller in callers {
        caller.await.expect("caller");
    }
    let stats = broker.reqreply_stats();
    assert_eq!(stats.waiting_calls, 0, "{stats:?}");
    assert_eq!(stats.duplicate_replies, 0, "{stats:?}");
    assert_eq!(stats.unbound_replies, 0, "{stats:?}");
    assert_eq!(
        end_offset(&broker, "mirror").await,
        (CALLERS * CALLS) as u64
    );
}

/// A call whose request cannot be appended fails with the produce's error and leaves nothing:
/// no waiter, no id (a retry with the same id appends), no record.
#[tokio::test]
async fn a_call_whose_request_is_refused_leaves_nothing_behind() {
    let broker = Broker::ephemeral().await.expect("broker");
    let mut topic = NewTopic::new("small", 1);
    topic.config.message_bytes_max = Some(512);
    broker.create_topic(topic).await.expect("create");
    let (_responder, handled) = spawn_upper(&broker, "small", "r");
    broker
        .call("small", call("warm"))
        .await
        .expect("warm-up call");
    let before = broker.reqreply_stats();
    let ends = end_offset(&broker, "small").await;
    let big = Call::new(vec![b'a'; 1024])
        .with_timeout(WAIT)
        .with_correlation_id(id("big-1"));
    let err = broker.call("small", big).await.unwrap_err();
    assert!(matches!(err, BrokerError::TooLarge { .. }), "{err}");
    let elsewhere = Call {
        partition: Some(7),
        ..call("v").with_correlation_id(id("elsewhere-1"))
    };
    let err = broker.call("small", elsewhere).await.unwrap_err();
    assert!(matches!(err, BrokerError::UnknownPartition { .. }), "{err}");
    let after = broker.reqreply_stats();
    assert_eq!(after.waiting_calls, 0, "{after:?}");
    assert_eq!(after.indexed_ids, before.indexed_ids, "no id kept");
    assert_eq!(end_offset(&broker, "small").await, ends, "nothing appended");
    let err = broker
        .reply("small", &id("big-1"), Duration::ZERO)
        .await
        .unwrap_err();
    assert!(matches!(err, BrokerError::UnknownCall { .. }), "{err}");
    // The same id works once the request fits.
    let reply = broker
        .call("small", call("fits").with_correlation_id(id("big-1")))
        .await
        .expect("retry");
    assert_eq!(reply.value.as_deref(), Some(&b"FITS"[..]));
    assert_eq!(handled.load(Ordering::SeqCst), 2);
}

/// A responder that answers a request under another call's correlation id (it may edit the
/// `Request` it got) has a reply whose MAC binds the first id: the other call never gets it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_under_another_calls_id_is_not_delivered() {
    let broker = broker_with("swap", 1).await;
    let mut responder = broker
        .responder(brook_broker::RespondOptions::new("swap", "svc"))
        .await
        .expect("responder");
    let replier = responder.replier();
    let first = {
        let broker = broker.clone();
        tokio::spawn(async move {
            let request = call("one").with_correlation_id(id("swap-1"));
            broker.call("swap", request).await
        })
    };
    let mut request = responder.next().await.expect("open").expect("request");
    assert_eq!(request.correlation_id, id("swap-1"));
    let victim = {
        let broker = broker.clone();
        tokio::spawn(async move {
            let request = call("two")
                .with_correlation_id(id("swap-2"))
                .with_timeout(Duration::from_secs(2));
            broker.call("swap", request).await
        })
    };
    let second = responder.next().await.expect("open").expect("request");
    request.correlation_id = second.correlation_id.clone();
    replier
        .reply(&request, Ok(Answer::value("forged")))
        .await
        .expect("appended");
    let err = victim.await.expect("task").unwrap_err();
    assert!(matches!(err, BrokerError::CallTimeout { .. }), "{err}");
    eventually("the forged reply counted as unbound", || {
        broker.reqreply_stats().unbound_replies == 1
    })
    .await;
    first.abort();
    assert_eq!(broker.reqreply_stats().duplicate_replies, 0);
}
