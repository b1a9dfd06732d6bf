//! Transactions through the Kafka door with kafka-python, a client that implements the protocol
//! itself (no librdkafka): commit and abort on two partitions, read_committed and
//! read_uncommitted consumers, fencing, a transaction the broker aborts past its timeout, and a
//! consume-transform-produce application killed between produce and commit (the scripts are in
//! `tests/python/`; the client is installed by `tests/kafka_support/python.rs`).

mod kafka_support;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use brook_broker::{Isolation, ProduceRecord, TxnState};
use kafka_support::python;
use kafka_support::{TestBroker, PATIENCE};
use serde_json::Value;

fn step(lines: &[Value], name: &str) -> Value {
    lines
        .iter()
        .find(|l| l["step"] == name)
        .unwrap_or_else(|| panic!("no {name} step in {lines:?}"))
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_python_commits_aborts_and_is_fenced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tb = TestBroker::start(dir.path()).await;
    let bootstrap = tb.bootstrap.clone();
    let output = tokio::task::spawn_blocking(move || {
        python::run_script("txn_basics.py", &bootstrap, &["py-txn"])
    })
    .await
    .expect("script task");
    let lines = python::json_lines(&output);
    step(&lines, "produced");
    let committed = step(&lines, "read_committed");
    assert_eq!(committed["count"], 12, "{committed}");
    assert_eq!(committed["aborted"], 0, "{committed}");
    let uncommitted = step(&lines, "read_uncommitted");
    assert_eq!(uncommitted["count"], 22, "{uncommitted}");
    assert_eq!(uncommitted["aborted"], 10, "{uncommitted}");
    for partition in ["0", "1"] {
        assert_eq!(
            uncommitted["offsets"][partition],
            serde_json::json!([0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 12]),
            "no control record reaches the application"
        );
    }
    let fenced = step(&lines, "fenced");
    assert_eq!(fenced["fenced"], true, "{fenced}");
    let after = step(&lines, "after_fence");
    assert_eq!(
        after["zombie"], false,
        "the fenced producer's transaction was aborted"
    );
    assert_eq!(after["late"], false);
    tb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_python_transform_reprocesses_exactly_what_a_killed_app_left_uncommitted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tb = TestBroker::start(dir.path()).await;
    tb.create_topic("py-ctp-in", 1).await;
    tb.create_topic("py-ctp-out", 1).await;
    let input: Vec<ProduceRecord> = (0..30)
        .map(|i| ProduceRecord::value(format!("{i}")))
        .collect();
    tb.broker.produce("py-ctp-in", input).await.expect("input");

    let bootstrap = tb.bootstrap.clone();
    let crashed = tokio::task::spawn_blocking(move || {
        python::script_command(
            "txn_transform.py",
            &bootstrap,
            &["py-ctp-in", "py-ctp-out", "30", "2"],
        )
        .output()
        .expect("run the app")
    })
    .await
    .expect("task");
    assert_eq!(
        crashed.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&crashed.stderr)
    );
    let lines = python::json_lines(&crashed);
    assert_eq!(step(&lines, "crash")["after"], 2);
    let committed = tb
        .broker
        .committed_offsets("py-ctp-in-app", &[])
        .expect("offsets");
    assert_eq!(
        committed[0].1.offset, 10,
        "the killed transaction's offsets are not the group's"
    );

    let bootstrap = tb.bootstrap.clone();
    let output = tokio::task::spawn_blocking(move || {
        python::run_script(
            "txn_transform.py",
            &bootstrap,
            &["py-ctp-in", "py-ctp-out", "30"],
        )
    })
    .await
    .expect("task");
    let lines = python::json_lines(&output);
    assert_eq!(
        step(&lines, "done")["transactions"],
        4,
        "the restart does records 10..30"
    );

    let fetched = tb
        .broker
        .fetch_isolated(
            "py-ctp-out",
            0,
            0,
            1 << 20,
            std::time::Duration::ZERO,
            Isolation::ReadCommitted,
        )
        .await
        .expect("fetch");
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for record in fetched.records().expect("records") {
        let value = String::from_utf8(record.value.expect("value").to_vec()).expect("utf8");
        *seen.entry(value).or_default() += 1;
    }
    assert_eq!(seen.len(), 30, "{seen:?}");
    assert!(
        seen.values().all(|n| *n == 1),
        "each input exactly once: {seen:?}"
    );
    tb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_python_transaction_left_open_past_its_timeout_is_aborted_by_the_broker() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tb = TestBroker::start_with(dir.path(), |config| {
        config.transactions.abort_check_ms = 50;
    })
    .await;
    tb.create_topic("py-timeout", 1).await;
    let mut app = python::script_command("txn_timeout.py", &tb.bootstrap, &["py-timeout"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the app");

    // The app sends one record in a transaction with a 1 s timeout and then waits: the broker
    // aborts the transaction on its own.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let state = tb
            .broker
            .describe_transaction("py-timeout-app")
            .ok()
            .map(|d| d.state);
        if state == Some(TxnState::CompleteAbort) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still {state:?} after {PATIENCE:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stable = tb.broker.last_stable_offset("py-timeout", 0).expect("lso");
    assert_eq!(
        stable, 2,
        "the forgotten record and its abort marker are settled"
    );

    // Then the app tries to commit, and reads what is committed.
    app.stdin
        .take()
        .expect("stdin")
        .write_all(b"commit\n")
        .expect("tell the app to commit");
    let output = tokio::task::spawn_blocking(move || app.wait_with_output())
        .await
        .expect("task")
        .expect("the app ends");
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let lines = python::json_lines(&output);
    assert_eq!(step(&lines, "sent")["offset"], 0);
    let commit = step(&lines, "commit");
    assert!(
        commit["error"].is_string(),
        "a transaction the broker aborted cannot commit: {commit}"
    );
    assert_eq!(
        step(&lines, "read_committed")["values"],
        serde_json::json!(["end"]),
        "the aborted record is invisible to read_committed"
    );
    tb.stop().await;
}
