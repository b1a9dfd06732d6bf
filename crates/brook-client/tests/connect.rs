//! Connecting, and the unary data calls: Produce and the Fetch long poll.

mod common;

use std::time::{Duration, Instant};

use brook_client::{Client, ClientError, Code, FetchRequest, ProducerRecord};
use common::{soon, Harness};

#[tokio::test]
async fn a_server_that_is_not_running_is_reported_with_address_and_cause() {
    // Bind, learn a free port, close it: nothing listens there now.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let url = format!("http://127.0.0.1:{port}");
    match Client::connect(url.clone()).await {
        Err(err @ ClientError::Connect { .. }) => {
            assert_eq!(
                err.to_string(),
                format!("cannot connect to {url}: connection refused")
            );
            assert_eq!(err.code(), Code::Unavailable);
        }
        other => panic!("expected a connect error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_malformed_url_is_invalid() {
    let err = Client::connect("not a url").await.expect_err("bad url");
    assert!(matches!(err, ClientError::InvalidUrl { .. }), "{err:?}");
}

#[tokio::test]
async fn produce_then_fetch_round_trips_keys_values_headers_and_timestamps() {
    let h = Harness::start().await;
    h.topic("t", 1).await;
    let record = ProducerRecord {
        timestamp_ms: Some(1_700_000_000_000),
        ..ProducerRecord::keyed("k", "v").with_header("trace", "abc")
    };
    let positions = h
        .client
        .produce("t", vec![record, ProducerRecord::value("second")])
        .await
        .expect("produce");
    assert_eq!(
        positions
            .iter()
            .map(|p| (p.partition, p.offset))
            .collect::<Vec<_>>(),
        [(0, 0), (0, 1)]
    );
    assert_eq!(positions[0].timestamp_ms, 1_700_000_000_000);

    let fetched = h
        .client
        .fetch(FetchRequest::new("t", 0, 0))
        .await
        .expect("fetch");
    assert_eq!((fetched.next_offset, fetched.high_watermark), (2, 2));
    let first = &fetched.records[0];
    assert_eq!((&*first.topic, first.partition, first.offset), ("t", 0, 0));
    assert_eq!(first.key.as_deref(), Some(&b"k"[..]));
    assert_eq!(first.value.as_deref(), Some(&b"v"[..]));
    assert_eq!(first.headers, [("trace".to_string(), "abc".into())]);
    assert_eq!(first.timestamp_ms, 1_700_000_000_000);
    assert_eq!(fetched.records[1].key, None);

    let from_one = h
        .client
        .fetch(FetchRequest::new("t", 0, 1))
        .await
        .expect("fetch");
    assert_eq!(from_one.records.len(), 1);
    assert_eq!(from_one.records[0].offset, 1);
}

#[tokio::test]
async fn a_long_poll_returns_on_arrival_and_after_max_wait_when_nothing_comes() {
    let h = Harness::start().await;
    h.topic("t", 1).await;

    let started = Instant::now();
    let wait = Duration::from_millis(200);
    let empty = h
        .client
        .fetch(FetchRequest {
            max_wait: wait,
            ..FetchRequest::new("t", 0, 0)
        })
        .await
        .expect("empty poll");
    assert!(empty.records.is_empty());
    assert!(started.elapsed() >= wait, "returned before max wait");

    let poll = {
        let client = h.client.clone();
        tokio::spawn(async move {
            client
                .fetch(FetchRequest {
                    max_wait: Duration::from_secs(60),
                    ..FetchRequest::new("t", 0, 0)
                })
                .await
        })
    };
    // Let the poll reach the server before producing; the answer must come on arrival,
    // long before the 60 s wait.
    tokio::time::sleep(Duration::from_millis(50)).await;
    h.client
        .produce("t", vec![ProducerRecord::value("hello")])
        .await
        .expect("produce");
    let fetched = soon(poll).await.expect("task").expect("fetch");
    assert_eq!(fetched.records.len(), 1);
}

#[tokio::test]
async fn bad_reads_get_the_right_status_and_the_server_keeps_serving() {
    let h = Harness::start().await;
    h.topic("t", 1).await;
    let cases = [
        (FetchRequest::new("missing", 0, 0), Code::NotFound),
        (FetchRequest::new("t", 9, 0), Code::NotFound),
        (FetchRequest::new("t", 0, 5), Code::OutOfRange),
        (
            FetchRequest {
                max_bytes: u32::MAX,
                ..FetchRequest::new("t", 0, 0)
            },
            Code::InvalidArgument,
        ),
    ];
    for (request, code) in cases {
        let err = h
            .client
            .fetch(request.clone())
            .await
            .expect_err("bad fetch");
        assert_eq!(err.code(), code, "{request:?}: {err}");
    }
    let oversized = ProducerRecord::value(vec![0u8; 2 << 20]);
    let err = h
        .client
        .produce("t", vec![oversized])
        .await
        .expect_err("too large");
    assert_eq!(err.code(), Code::ResourceExhausted, "{err}");

    h.client
        .produce("t", vec![ProducerRecord::value("fine")])
        .await
        .expect("still serving");
}
