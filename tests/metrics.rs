//! Metrics from every door, scraped as Prometheus scrapes them: a real server with the gRPC,
//! Kafka and HTTP doors and the metrics port, traffic through each door (the Rust client,
//! librdkafka, plain HTTP), then `/metrics` read from the HTTP door and from the metrics port
//! and checked line by line against the OpenMetrics text format before each family is looked
//! at. Also: a deleted topic's series go, the metrics port serves with the HTTP door off, and a
//! produce's W3C `traceparent` reaches a consumer on another door in the record's headers.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use brook::server::{Listen, ServeConfig, Server};
use brook_client::{
    Client, ConsumerConfig, ConsumerEvent, ProducerRecord, StartAt, TopicPartition,
};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

const PATIENCE: Duration = Duration::from_secs(30);
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

async fn start(http: bool) -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("data dir");
    let mut config = ServeConfig::default();
    config.broker.data_dir = dir.path().to_path_buf();
    let any = Listen::On("127.0.0.1:0".parse().expect("address"));
    config.grpc_addr = any;
    config.kafka_addr = any;
    config.http_addr = if http { any } else { Listen::Off };
    config.metrics_addr = any;
    let server = Server::start(&config).await.expect("server");
    (server, dir)
}

fn url(server: &Server, door: brook::server::DoorKind, path: &str) -> String {
    format!("http://{}{path}", server.addr(door).expect("door is on"))
}

/// A sample's labels, in the order the text has them.
type Labels = Vec<(String, String)>;

/// One sample: the family it belongs to, its name, its labels in order, its value.
#[derive(Debug, Clone)]
struct Sample {
    family: String,
    name: String,
    labels: Labels,
    value: f64,
}

/// A scrape, checked against the OpenMetrics text format: every line a `# HELP`, `# TYPE` or
/// sample; `# EOF` last; each family's TYPE once, before its samples, which are not split; names
/// and label names valid, label values properly escaped; counters' samples `_total`,
/// histograms' `_bucket` (cumulative, `+Inf` equal to `_count`), `_sum`, `_count`.
struct Scrape {
    types: BTreeMap<String, String>,
    samples: Vec<Sample>,
}

fn name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.chars().enumerate().all(|(i, c)| {
            c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
        })
}

fn parse_labels(text: &str, line: &str) -> Labels {
    let mut labels = Vec::new();
    let mut chars = text.chars().peekable();
    while chars.peek().is_some() {
        let key: String = chars.by_ref().take_while(|&c| c != '=').collect();
        assert!(
            name_ok(&key) && !key.contains(':'),
            "bad label name in {line}"
        );
        assert_eq!(chars.next(), Some('"'), "{line}");
        let mut value = String::new();
        loop {
            match chars.next() {
                Some('\\') => match chars.next() {
                    Some('\\') => value.push('\\'),
                    Some('"') => value.push('"'),
                    Some('n') => value.push('\n'),
                    other => panic!("bad escape {other:?} in {line}"),
                },
                Some('"') => break,
                Some('\n') => panic!("raw newline in {line}"),
                Some(c) => value.push(c),
                None => panic!("unterminated label value in {line}"),
            }
        }
        assert!(
            !labels.iter().any(|(k, _)| *k == key),
            "label {key} twice in {line}"
        );
        labels.push((key, value));
        match chars.next() {
            Some(',') | None => {}
            Some(c) => panic!("unexpected {c:?} in {line}"),
        }
    }
    labels
}

fn parse(text: &str) -> Scrape {
    let body = text
        .strip_suffix("# EOF\n")
        .unwrap_or_else(|| panic!("no # EOF at the end:\n{text}"));
    let mut types = BTreeMap::new();
    let mut helped = BTreeSet::new();
    let mut done = BTreeSet::new();
    let mut current = String::new();
    let mut samples = Vec::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().expect("name");
            assert!(name_ok(name), "{line}");
            assert!(helped.insert(name.to_owned()), "HELP twice: {line}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("name and type");
            assert!(name_ok(name), "{line}");
            assert!(
                [
                    "counter",
                    "gauge",
                    "histogram",
                    "info",
                    "stateset",
                    "unknown"
                ]
                .contains(&kind),
                "{line}"
            );
            assert!(
                types.insert(name.to_owned(), kind.to_owned()).is_none(),
                "TYPE twice: {line}"
            );
            if !current.is_empty() {
                done.insert(std::mem::take(&mut current));
            }
            assert!(!done.contains(name), "family {name} split: {line}");
            current = name.to_owned();
            continue;
        }
        assert!(
            !line.starts_with('#') && !line.is_empty(),
            "stray line {line:?}"
        );
        let (series, value) = line.rsplit_once(' ').expect("series and value");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
        };
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let inner = rest.strip_suffix('}').unwrap_or_else(|| panic!("{line}"));
                (name, parse_labels(inner, line))
            }
            None => (series, Vec::new()),
        };
        assert!(name_ok(name), "{line}");
        let kind = types.get(&current).map(String::as_str).unwrap_or_else(|| {
            panic!("sample before any TYPE: {line}");
        });
        let allowed: &[&str] = match kind {
            "counter" => &["_total", "_created"],
            "histogram" => &["_bucket", "_sum", "_count", "_created"],
            "info" => &["_info"],
            _ => &[""],
        };
        assert!(
            allowed
                .iter()
                .any(|suffix| name.strip_suffix(suffix) == Some(current.as_str())),
            "sample {name} outside its family {current} ({kind}): {line}"
        );
        if kind == "counter" || name.ends_with("_bucket") || name.ends_with("_count") {
            assert!(value >= 0.0, "negative count: {line}");
        }
        samples.push(Sample {
            family: current.clone(),
            name: name.to_owned(),
            labels,
            value,
        });
    }
    let scrape = Scrape { types, samples };
    scrape.check_histograms();
    scrape
}

impl Scrape {
    /// Buckets rise with `le` and end at `+Inf` equal to `_count`.
    fn check_histograms(&self) {
        let mut series: BTreeMap<(String, Labels), Vec<(f64, f64)>> = BTreeMap::new();
        let mut counts = BTreeMap::new();
        for s in &self.samples {
            let rest: Vec<_> = s
                .labels
                .iter()
                .filter(|(k, _)| k != "le")
                .cloned()
                .collect();
            if s.name.ends_with("_bucket") {
                let le = s.labels.iter().find(|(k, _)| k == "le").expect("le");
                let bound = if le.1 == "+Inf" {
                    f64::INFINITY
                } else {
                    le.1.parse().expect("le is a number")
                };
                series
                    .entry((s.family.clone(), rest))
                    .or_default()
                    .push((bound, s.value));
            } else if s.name.ends_with("_count") && self.types[&s.family] == "histogram" {
                counts.insert((s.family.clone(), rest), s.value);
            }
        }
        for (key, buckets) in series {
            assert!(
                buckets
                    .windows(2)
                    .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
                "{key:?}"
            );
            let last = buckets.last().expect("a bucket");
            assert!(last.0.is_infinite(), "no +Inf bucket: {key:?}");
            assert_eq!(Some(&last.1), counts.get(&key), "+Inf != _count: {key:?}");
        }
    }

    /// The samples named `name` whose labels include every pair of `with`.
    fn find(&self, name: &str, with: &[(&str, &str)]) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| {
                s.name == name
                    && with
                        .iter()
                        .all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .collect()
    }

    /// The sum of the samples `find` finds.
    fn sum(&self, name: &str, with: &[(&str, &str)]) -> f64 {
        self.find(name, with).iter().map(|s| s.value).sum()
    }
}

async fn scrape(url: &str) -> Scrape {
    let response = reqwest::get(url).await.expect("scrape");
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text; version=1.0.0"),
        "{content_type}"
    );
    parse(&response.text().await.expect("body"))
}

/// Produces through librdkafka, with a `traceparent` header of its own on the second record.
async fn kafka_produce(bootstrap: &str, topic: &str) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("message.timeout.ms", "10000")
        .create()
        .expect("producer");
    for (i, traced) in [false, true].into_iter().enumerate() {
        let value = format!("kafka-{i}");
        let mut record = FutureRecord::to(topic)
            .payload(&value)
            .key("k")
            .partition(0);
        if traced {
            record = record.headers(OwnedHeaders::new().insert(Header {
                key: "traceparent",
                value: Some(TRACEPARENT),
            }));
        }
        producer
            .send(record, Duration::from_secs(10))
            .await
            .expect("delivered");
    }
}

/// Reads partition 0 of `topic` from the start with librdkafka: every record's value and
/// headers.
async fn kafka_read(
    bootstrap: &str,
    topic: &str,
    count: usize,
) -> Vec<(String, Vec<(String, String)>)> {
    let (bootstrap, topic) = (bootstrap.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", "metrics-reader")
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer");
        let mut assignment = TopicPartitionList::new();
        assignment
            .add_partition_offset(&topic, 0, Offset::Beginning)
            .expect("partition");
        consumer.assign(&assignment).expect("assign");
        let deadline = std::time::Instant::now() + PATIENCE;
        let mut records = Vec::new();
        while records.len() < count {
            assert!(std::time::Instant::now() < deadline, "only {records:?}");
            let Some(message) = consumer.poll(Duration::from_millis(200)) else {
                continue;
            };
            let message = message.expect("a record");
            let value = String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned();
            let headers = message
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| {
                            let value = String::from_utf8_lossy(h.value.unwrap_or_default());
                            (h.key.to_owned(), value.into_owned())
                        })
                        .collect()
                })
                .unwrap_or_default();
            records.push((value, headers));
        }
        records
    })
    .await
    .expect("reader")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_door_records_into_every_family_and_a_deleted_topic_leaves() {
    use brook::server::DoorKind::{Grpc, Http, Kafka, Metrics};
    let (server, _dir) = start(true).await;
    let http = reqwest::Client::new();
    let topic = "scraped";
    let created = http
        .post(url(&server, Http, "/v1/topics"))
        .json(&serde_json::json!({"name": topic, "partitions": 2}))
        .send()
        .await
        .expect("create");
    assert_eq!(created.status(), 201);

    // HTTP: produce (with a traceparent), fetch, and a 404.
    let produced = http
        .post(url(&server, Http, &format!("/v1/topics/{topic}/records")))
        .header("traceparent", TRACEPARENT)
        .json(&serde_json::json!({"value_encoding": "text", "records": [{"value": "via-http", "partition": 0}]}))
        .send()
        .await
        .expect("produce");
    assert_eq!(produced.status(), 200);
    let fetched = http
        .get(url(
            &server,
            Http,
            &format!("/v1/topics/{topic}/partitions/0/records?offset=0"),
        ))
        .send()
        .await
        .expect("fetch");
    assert_eq!(fetched.status(), 200);
    let missing = http
        .get(url(&server, Http, "/v1/topics/nope"))
        .send()
        .await
        .expect("404");
    assert_eq!(missing.status(), 404);

    // gRPC: produce, read back as a group member, commit; and a NOT_FOUND.
    let client = Client::connect(url(&server, Grpc, ""))
        .await
        .expect("gRPC client");
    client
        .produce(
            topic,
            vec![ProducerRecord::value("via-grpc").with_partition(1)],
        )
        .await
        .expect("gRPC produce");
    let mut stream = client
        .consumer(ConsumerConfig::default())
        .expect("consumer")
        .assign(vec![(TopicPartition::new(topic, 1), StartAt::Earliest)])
        .await
        .expect("subscribe");
    match tokio::time::timeout(PATIENCE, stream.next_event()).await {
        Ok(Some(Ok(ConsumerEvent::Record(record)))) => assert_eq!(record.offset, 0),
        other => panic!("no record over gRPC: {other:?}"),
    }
    drop(stream);
    client
        .admin()
        .commit_offsets(
            "scraped-group",
            vec![brook_client::proto::OffsetCommit {
                topic: topic.into(),
                partition: 0,
                offset: 0,
                metadata: String::new(),
            }],
        )
        .await
        .expect("commit");
    assert!(client.admin().describe_topic("nope").await.is_err());

    // Kafka: produce and consume with librdkafka.
    let bootstrap = server.addr(Kafka).expect("kafka").to_string();
    kafka_produce(&bootstrap, topic).await;
    let read = kafka_read(&bootstrap, topic, 3).await;
    let values: Vec<&str> = read.iter().map(|(v, _)| v.as_str()).collect();
    assert_eq!(values, ["via-http", "kafka-0", "kafka-1"]);
    // The HTTP produce's traceparent travelled in the record to the Kafka consumer.
    assert_eq!(
        read[0].1,
        [("traceparent".to_owned(), TRACEPARENT.to_owned())]
    );

    for source in [
        url(&server, Http, "/metrics"),
        url(&server, Metrics, "/metrics"),
    ] {
        let m = scrape(&source).await;
        for door in ["grpc", "http", "kafka"] {
            assert!(
                m.sum("brook_requests_total", &[("door", door)]) >= 1.0,
                "{door} requests"
            );
            assert!(
                m.sum("brook_request_duration_seconds_count", &[("door", door)]) >= 1.0,
                "{door} latency"
            );
            let flow = [("door", door), ("topic", topic)];
            assert!(
                m.sum("brook_partition_records_in_total", &flow) >= 1.0,
                "{door} in"
            );
            assert!(
                m.sum("brook_partition_bytes_in_total", &flow) >= 1.0,
                "{door} bytes in"
            );
            assert!(
                m.sum("brook_partition_records_out_total", &flow) >= 1.0,
                "{door} out"
            );
            assert!(
                m.sum("brook_partition_bytes_out_total", &flow) >= 1.0,
                "{door} bytes out"
            );
            assert_eq!(
                m.find("brook_open_connections", &[("door", door)]).len(),
                1,
                "{door}"
            );
        }
        assert!(
            m.sum(
                "brook_request_errors_total",
                &[("door", "http"), ("code", "404")]
            ) >= 1.0
        );
        assert!(
            m.sum(
                "brook_request_errors_total",
                &[("door", "grpc"), ("code", "NOT_FOUND")]
            ) >= 1.0
        );
        let kafka_in = [("door", "kafka"), ("topic", topic), ("partition", "0")];
        assert_eq!(m.sum("brook_partition_records_in_total", &kafka_in), 2.0);
        let p0 = [("topic", topic), ("partition", "0")];
        assert_eq!(m.sum("brook_partition_high_watermark", &p0), 3.0);
        assert_eq!(m.sum("brook_partition_log_end_offset", &p0), 3.0);
        assert!(m.sum("brook_partition_log_size_bytes", &p0) > 0.0);
        assert!(m.sum("brook_partition_fsyncs_total", &p0) >= 1.0);
        let lag = [
            ("group", "scraped-group"),
            ("topic", topic),
            ("partition", "0"),
        ];
        assert_eq!(m.sum("brook_group_lag", &lag), 3.0);
        assert_eq!(m.sum("brook_group_committed_offset", &lag), 0.0);
        // Durability is sync: every produce waited for an fsync, and the log timed them.
        assert!(m.sum("brook_log_fsync_duration_seconds_count", &[]) >= 3.0);
        assert!(m.sum("brook_log_group_commit_appends_count", &[]) >= 1.0);
        assert_eq!(m.find("brook_build_info", &[]).len(), 1);
        assert_eq!(m.types["brook_requests"], "counter");
        assert_eq!(m.types["brook_request_duration_seconds"], "histogram");
    }

    check_reference(&scrape(&url(&server, Metrics, "/metrics")).await);

    let deleted = http
        .delete(url(&server, Http, &format!("/v1/topics/{topic}")))
        .send()
        .await
        .expect("delete");
    assert_eq!(deleted.status(), 204);
    let m = scrape(&url(&server, Metrics, "/metrics")).await;
    let left: Vec<_> = m
        .samples
        .iter()
        .filter(|s| s.labels.iter().any(|(k, v)| k == "topic" && v == topic))
        .map(|s| &s.name)
        .collect();
    assert!(left.is_empty(), "series of the deleted topic: {left:?}");
    server.stop().await.expect("stop");
}

/// The families of docs/operations.md's metrics reference, by the name its samples have
/// (`brook_requests_total`).
fn documented() -> BTreeSet<String> {
    let doc = include_str!("../docs/operations.md");
    let table = doc
        .split("## Metrics")
        .nth(1)
        .expect("a Metrics section")
        .split("\n## ")
        .next()
        .expect("its text");
    table
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split('`').next())
        .map(str::to_owned)
        .collect()
}

/// Every family the scrape shows is in the reference, and the Grafana dashboard reads only
/// families that are.
fn check_reference(m: &Scrape) {
    let documented = documented();
    for (family, kind) in &m.types {
        let sample = if kind == "counter" {
            format!("{family}_total")
        } else {
            family.clone()
        };
        assert!(
            documented.contains(&sample),
            "{sample} is not in docs/operations.md's metrics reference"
        );
    }
    let dashboard: serde_json::Value =
        serde_json::from_str(include_str!("../docs/grafana-dashboard.json")).expect("JSON");
    let mut read = 0;
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("expr");
            for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if !word.starts_with("brook_") {
                    continue;
                }
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|suffix| word.strip_suffix(suffix))
                    .filter(|f| documented.contains(*f))
                    .unwrap_or(word);
                assert!(
                    documented.contains(family),
                    "the dashboard reads {word}, not in the reference"
                );
                read += 1;
            }
        }
    }
    assert!(read >= 15, "the dashboard reads {read} families");
}

#[tokio::test]
async fn the_metrics_port_serves_with_the_http_door_off() {
    let (server, _dir) = start(false).await;
    assert_eq!(server.addr(brook::server::DoorKind::Http), None);
    let metrics = url(&server, brook::server::DoorKind::Metrics, "/metrics");
    let m = scrape(&metrics).await;
    assert_eq!(m.find("brook_build_info", &[]).len(), 1);
    // Only /metrics and /healthz: no topic, record or group is reachable through it.
    let other = reqwest::get(metrics.replace("/metrics", "/v1/topics"))
        .await
        .expect("get");
    assert_eq!(other.status(), 404);
    let health = reqwest::get(metrics.replace("/metrics", "/healthz"))
        .await
        .expect("get");
    assert_eq!(health.status(), 200);
    server.stop().await.expect("stop");
}

#[tokio::test]
async fn a_grpc_produce_carries_its_traceparent_to_an_http_reader() {
    let (server, _dir) = start(true).await;
    let grpc = url(&server, brook::server::DoorKind::Grpc, "");
    let mut client = brook_client::proto::brook_client::BrookClient::connect(grpc)
        .await
        .expect("connect");
    let mut request = tonic::Request::new(brook_client::proto::ProduceRequest {
        topic: "traced".into(),
        records: vec![brook_client::proto::ProducerRecord {
            value: Some(b"v".to_vec().into()),
            ..Default::default()
        }],
        raw_batch: None,
    });
    request
        .metadata_mut()
        .insert("traceparent", TRACEPARENT.parse().expect("ascii"));
    client.produce(request).await.expect("produce");
    let fetched: serde_json::Value = reqwest::get(url(
        &server,
        brook::server::DoorKind::Http,
        "/v1/topics/traced/partitions/0/records?offset=0",
    ))
    .await
    .expect("fetch")
    .json()
    .await
    .expect("JSON");
    assert_eq!(
        fetched["records"][0]["headers"],
        serde_json::json!([{"key": "traceparent", "value": TRACEPARENT}])
    );
    server.stop().await.expect("stop");
}
