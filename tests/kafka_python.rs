//! kafka-python, an implementation of the Kafka protocol that shares no code with librdkafka,
//! against the Kafka door: admin, produce with and without compression, consume in a group,
//! commit. The client is installed by the test into `target/pyenv` (tests/kafka_support/python.rs).

mod kafka_support;

use kafka_support::python;
use kafka_support::TestBroker;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_python_administers_produces_and_consumes_in_a_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = TestBroker::start(dir.path()).await;
    let bootstrap = broker.bootstrap.clone();
    let output = tokio::task::spawn_blocking(move || {
        python::run_script("smoke.py", &bootstrap, &["py-smoke"])
    })
    .await
    .expect("script task");
    let lines = python::json_lines(&output);
    let step = |name: &str| {
        lines
            .iter()
            .find(|l| l["step"] == name)
            .unwrap_or_else(|| panic!("no {name} step in {lines:?}"))
            .clone()
    };
    assert_eq!(step("created")["topics"][0], "py-smoke");
    assert_eq!(step("described")["partitions"], 2);
    assert_eq!(step("produced")["records"], 100);
    let consumed = step("consumed");
    assert_eq!(consumed["records"], 100);
    assert_eq!(consumed["distinct"], 100);
    assert_eq!(consumed["headers_ok"], true);
    assert_eq!(consumed["committed"], 100);
    assert_eq!(step("groups")["has_group"], true);

    // The records kafka-python wrote are the broker's: the same count through the broker API.
    let described = broker.broker.describe_topic("py-smoke").expect("topic");
    let end: u64 = described.partitions.iter().map(|p| p.high_watermark).sum();
    assert_eq!(end, 100);
    broker.stop().await;
}
