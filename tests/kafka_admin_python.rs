//! kafka-python's admin client (no librdkafka) against the Kafka door: topics, configs, the
//! cluster, groups and their offsets, and static membership, each change checked again through
//! the broker's own API. The script is tests/python/admin.py; the client is installed by the
//! test into `target/pyenv` (tests/kafka_support/python.rs).

mod kafka_support;

use kafka_support::python;
use kafka_support::TestBroker;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_python_administers_topics_configs_groups_and_static_members() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tb = TestBroker::start(dir.path()).await;
    let bootstrap = tb.bootstrap.clone();
    let output = tokio::task::spawn_blocking(move || {
        python::run_script("admin.py", &bootstrap, &["py-admin", "py-admin-group"])
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
    // CreatePartitions grows; a smaller count is refused.
    assert_eq!(step("partitions")["count"], 3);
    assert_eq!(step("shrink")["error"], "InvalidPartitionsError");
    // DeleteRecords moves the log start; ListOffsets(earliest) says so.
    assert_eq!(step("delete_records")["low_watermark"], json!([4]));
    assert_eq!(step("earliest")["offset"], json!([4]));
    // CreateTopics' configs and IncrementalAlterConfigs, through DescribeConfigs.
    let dynamic = "DYNAMIC_TOPIC_CONFIG";
    assert_eq!(
        step("created_config")["retention"],
        json!(["86400000", dynamic])
    );
    let altered = step("altered_config");
    assert_eq!(altered["segment"], json!(["1048576", dynamic]));
    assert_eq!(altered["retention"], json!(["86400000", dynamic]));
    // A one-node cluster.
    assert_eq!(
        step("cluster"),
        json!({"step": "cluster", "brokers": 1, "controller": 1})
    );
    let sizes = step("log_dirs")["sizes"].clone();
    assert_eq!(
        (sizes["0"].clone(), sizes["1"].clone()),
        (json!(0), json!(0))
    );
    assert!(sizes["2"].as_u64().is_some_and(|s| s > 0), "{sizes}");
    assert_eq!(step("elect")["errors"], json!([84]), "ELECTION_NOT_NEEDED");
    // Groups: a live group is not deleted; offsets are read, reset, altered, deleted.
    assert_eq!(step("live")["members"], 1);
    assert_eq!(step("delete_live")["errors"], json!(["NonEmptyGroupError"]));
    assert_eq!(step("read")["records"], 6);
    assert_eq!(
        step("committed")["offsets"],
        json!({"0": 0, "1": 0, "2": 10})
    );
    assert_eq!(step("reset")["result"], json!({"2": ["NoError", 4]}));
    assert_eq!(step("altered")["offsets"], json!({"0": 0, "1": 0, "2": 7}));
    assert_eq!(step("offset_deleted")["partitions"], json!([0, 1]));
    let deleted = step("deleted");
    assert_eq!(deleted["errors"], json!(["OK"]));
    assert!(
        !deleted["groups"]
            .as_array()
            .expect("groups")
            .contains(&json!("py-admin-group")),
        "{deleted}"
    );
    // Static membership: a restarted member takes its place; the other sees no rebalance.
    assert_eq!(
        step("static"),
        json!({"step": "static", "same_partitions": true, "b_rebalanced": 0, "members": 2,
               "b_kept_its_id": true, "a_new_id": true})
    );

    // The same facts through the broker's own API.
    let topic = tb.broker.describe_topic("py-admin").expect("topic");
    assert_eq!(topic.partitions.len(), 3);
    assert_eq!(topic.partitions[2].log_start_offset, 4);
    assert_eq!(topic.config.retention_ms_max, Some(86_400_000));
    assert_eq!(topic.config.segment_bytes_max, 1_048_576);
    assert!(tb.broker.describe_group("py-admin-group").is_err());
    tb.stop().await;
}
