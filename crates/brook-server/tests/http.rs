//! The HTTP door end to end: a real broker, a real server on 127.0.0.1:0, and a real HTTP
//! client (reqwest) over a real socket; the gRPC door beside it for the cross-door tests.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use brook_broker::{Broker, BrokerConfig, Durability};
use brook_proto::v1 as pb;
use brook_proto::v1::brook_client::BrookClient;
use brook_server::{GrpcConfig, GrpcServer, HttpConfig, HttpServer};
use bytes::Bytes;
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// Long enough for anything that should happen "at once" on a loaded 2-core machine.
const PATIENCE: Duration = Duration::from_secs(10);

struct Harness {
    broker: Broker,
    server: HttpServer,
    http: reqwest::Client,
    base: String,
    _dir: Option<tempfile::TempDir>,
}

impl Harness {
    /// An ephemeral broker (automatic topic creation on) behind a default HTTP door.
    async fn start() -> Self {
        let broker = Broker::ephemeral().await.expect("ephemeral broker");
        Self::serve(broker, HttpConfig::default(), None).await
    }

    /// A broker with automatic topic creation off, behind a door with `config`.
    async fn strict(config: HttpConfig) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut broker_config = BrokerConfig::new(dir.path());
        broker_config.auto_create_topics = false;
        broker_config.log.durability = Durability::None;
        let broker = Broker::open(broker_config).await.expect("open broker");
        Self::serve(broker, config, Some(dir)).await
    }

    async fn serve(broker: Broker, config: HttpConfig, dir: Option<tempfile::TempDir>) -> Self {
        let addr = "127.0.0.1:0".parse().expect("address");
        let server = HttpServer::start(broker.clone(), addr, config)
            .await
            .expect("start HTTP door");
        let base = format!("http://{}", server.local_addr());
        Self {
            broker,
            server,
            http: reqwest::Client::new(),
            base,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let response = self.http.get(self.url(path)).send().await.expect("GET");
        answer(response).await
    }

    /// A GET with extra request headers.
    async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut request = self.http.get(self.url(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.expect("GET")
    }

    async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        let response = self
            .http
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("POST");
        answer(response).await
    }

    async fn delete(&self, path: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .delete(self.url(path))
            .send()
            .await
            .expect("DELETE");
        answer(response).await
    }

    async fn create(&self, topic: &str, partitions: u32) {
        let (status, body) = self
            .post(
                "/v1/topics",
                &json!({ "name": topic, "partitions": partitions }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    /// Produces `records` (JSON values) and returns their positions.
    async fn produce(&self, topic: &str, records: Value) -> Vec<Value> {
        let (status, body) = self
            .post(
                &format!("/v1/topics/{topic}/records"),
                &json!({ "records": records }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["offsets"].as_array().expect("offsets").clone()
    }

    async fn fetch(&self, topic: &str, partition: u32, query: &str) -> Value {
        let (status, body) = self
            .get(&format!(
                "/v1/topics/{topic}/partitions/{partition}/records?{query}"
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// Opens an SSE stream at `path` with extra request headers.
    async fn sse(&self, path: &str, headers: &[(&str, &str)]) -> Sse {
        let response = self.get_with(path, headers).await;
        assert_eq!(response.status(), StatusCode::OK);
        let content_type = response.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .to_owned();
        assert!(
            content_type.starts_with("text/event-stream"),
            "{content_type}"
        );
        Sse {
            body: response.bytes_stream().boxed(),
            buffer: String::new(),
        }
    }

    async fn metrics(&self) -> Metrics {
        let response = self
            .http
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("scrape");
        assert_eq!(response.status(), StatusCode::OK);
        let content_type = response.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .to_owned();
        assert!(
            content_type.starts_with("application/openmetrics-text; version=1.0.0"),
            "{content_type}"
        );
        parse_prometheus(&response.text().await.expect("text"))
    }
}

async fn answer(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.expect("body");
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("JSON body ({e}): {text}"))
    };
    (status, value)
}

/// Asserts an error answer: its status and `error_code`, and a message.
fn assert_error(answer: (StatusCode, Value), status: StatusCode, code: &str) {
    let (got, body) = answer;
    assert_eq!(got, status, "{body}");
    assert_eq!(body["error_code"], code, "{body}");
    assert!(
        !body["message"].as_str().unwrap_or_default().is_empty(),
        "{body}"
    );
}

/// One server-sent event.
#[derive(Debug, Clone, Default, PartialEq)]
struct Event {
    id: Option<String>,
    event: Option<String>,
    data: String,
}

impl Event {
    fn json(&self) -> Value {
        serde_json::from_str(&self.data).expect("event data is JSON")
    }
}

/// A client-side SSE parser over a response body.
struct Sse {
    body: futures::stream::BoxStream<'static, reqwest::Result<Bytes>>,
    buffer: String,
}

impl Sse {
    /// The next event (comments skipped), failing the test if none comes in time; `None` when
    /// the server ended the stream.
    async fn next(&mut self) -> Option<Event> {
        tokio::time::timeout(PATIENCE, self.next_event())
            .await
            .expect("an event within the patience window")
    }

    async fn next_event(&mut self) -> Option<Event> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = Event::default();
                let mut data = Vec::new();
                for line in block.lines() {
                    let (field, value) = line.split_once(':').unwrap_or((line, ""));
                    let value = value.strip_prefix(' ').unwrap_or(value);
                    match field {
                        "" => {} // a comment (keep-alive)
                        "id" => event.id = Some(value.to_owned()),
                        "event" => event.event = Some(value.to_owned()),
                        "data" => data.push(value.to_owned()),
                        other => panic!("unknown SSE field {other:?}"),
                    }
                }
                if data.is_empty() && event.event.is_none() {
                    continue;
                }
                event.data = data.join("\n");
                return Some(event);
            }
            let chunk = self.body.next().await?.ok()?;
            self.buffer
                .push_str(std::str::from_utf8(&chunk).expect("UTF-8 stream"));
        }
    }

    /// The next `n` record events.
    async fn records(&mut self, n: usize) -> Vec<Event> {
        let mut out = Vec::new();
        while out.len() < n {
            let event = self.next().await.expect("the stream is open");
            if event.event.is_none() {
                out.push(event);
            }
        }
        out
    }
}

/// Samples by series (`name{labels}`, labels as the server wrote them), after checking the
/// whole text against the OpenMetrics text format: HELP and TYPE once per family and before
/// its samples, valid names, labels and values, histograms with cumulative buckets ending at
/// `+Inf` equal to `_count`.
type Metrics = BTreeMap<String, f64>;

fn parse_prometheus(text: &str) -> Metrics {
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.chars().enumerate().all(|(i, c)| {
                c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
            })
    };
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut helped = BTreeSet::new();
    let mut finished: BTreeSet<String> = BTreeSet::new();
    let mut current = String::new();
    let mut samples = Metrics::new();
    let text = text
        .strip_suffix("# EOF\n")
        .expect("OpenMetrics text ends with # EOF");
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().expect("name");
            assert!(name_ok(name), "bad name in {line}");
            assert!(helped.insert(name.to_owned()), "HELP twice: {line}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let (name, kind) = (parts.next().expect("name"), parts.next().expect("type"));
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            assert!(
                types.insert(name.to_owned(), kind.to_owned()).is_none(),
                "TYPE twice: {line}"
            );
            if !current.is_empty() {
                finished.insert(std::mem::take(&mut current));
            }
            assert!(!finished.contains(name), "family {name} split: {line}");
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
        let name = series.split('{').next().expect("name");
        assert!(name_ok(name), "bad metric name in {line}");
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| types.get(*f).is_some_and(|t| t == "histogram"))
            })
            .or_else(|| {
                name.strip_suffix("_total")
                    .filter(|f| types.get(*f).is_some_and(|t| t == "counter"))
            })
            .unwrap_or(name);
        assert_eq!(family, current, "sample outside its family: {line}");
        if let Some(labels) = series.strip_prefix(name) {
            check_labels(labels, line);
        }
        assert!(
            samples.insert(series.to_owned(), value).is_none(),
            "duplicate: {line}"
        );
    }
    // Histograms: cumulative buckets, +Inf == _count.
    for (series, value) in &samples {
        if series.contains("le=\"+Inf\"") {
            let count_series = series
                .replacen("_bucket{", "_count{", 1)
                .replace("le=\"+Inf\",", "")
                .replace(",le=\"+Inf\"", "")
                .replace("{le=\"+Inf\"}", "");
            assert_eq!(
                samples.get(&count_series),
                Some(value),
                "{series} vs {count_series}"
            );
        }
    }
    samples
}

/// Checks `{a="x",b="y\"z"}` label syntax.
fn check_labels(labels: &str, line: &str) {
    if labels.is_empty() {
        return;
    }
    let inner = labels
        .strip_prefix('{')
        .and_then(|l| l.strip_suffix('}'))
        .unwrap_or_else(|| panic!("bad labels in {line}"));
    let mut chars = inner.chars().peekable();
    while chars.peek().is_some() {
        let key: String = chars.by_ref().take_while(|&c| c != '=').collect();
        assert!(
            !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{line}"
        );
        assert_eq!(chars.next(), Some('"'), "{line}");
        loop {
            match chars.next() {
                Some('\\') => assert!(matches!(chars.next(), Some('\\' | '"' | 'n')), "{line}"),
                Some('"') => break,
                Some(_) => {}
                None => panic!("unterminated label value in {line}"),
            }
        }
        match chars.next() {
            Some(',') | None => {}
            Some(c) => panic!("unexpected {c:?} in {line}"),
        }
    }
}

fn metric(metrics: &Metrics, series: &str) -> f64 {
    metrics.get(series).copied().unwrap_or(0.0)
}

#[tokio::test]
async fn health_readiness_and_the_openapi_document_match_the_router() {
    let h = Harness::start().await;
    assert_eq!(
        h.get("/healthz").await,
        (StatusCode::OK, json!({"status": "ok"}))
    );
    assert_eq!(
        h.get("/readyz").await,
        (StatusCode::OK, json!({"status": "ready"}))
    );

    let (status, doc) = h.get("/v1/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().expect("version").starts_with("3."));
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in ["get", "post", "put", "delete", "patch", "head", "options"] {
            if item.get(method).is_some() {
                documented.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    let routed: BTreeSet<(String, String)> = brook_server::http::routes()
        .into_iter()
        .map(|(method, path)| (method.to_string(), path.to_owned()))
        .collect();
    assert_eq!(
        documented, routed,
        "the OpenAPI document and the router differ"
    );

    // Each documented operation is really routed: the router's own 404/405 never answers.
    // Schema references resolve.
    h.create("oa", 1).await;
    for (method, path) in &documented {
        let concrete = path
            .replace("{topic}", "oa")
            .replace("{partition}", "0")
            .replace("{group}", "oa-group");
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let response = h
            .http
            .request(
                method.clone(),
                h.url(&format!("{concrete}?offset=0&topics=oa")),
            )
            .send()
            .await
            .expect("request");
        if response.status().is_client_error() {
            let (_, body) = answer(response).await;
            assert!(
                !["no_route", "method_not_allowed"]
                    .contains(&body["error_code"].as_str().unwrap_or_default()),
                "{method} {concrete}: {body}"
            );
        }
    }
    let text = doc.to_string();
    for reference in text.split("\"$ref\":\"").skip(1) {
        let name = reference.split('"').next().expect("ref");
        let name = name
            .strip_prefix("#/components/schemas/")
            .expect("local ref");
        assert!(
            doc["components"]["schemas"].get(name).is_some(),
            "dangling $ref {name}"
        );
    }
    h.server.stop().await.expect("stop");
}

#[tokio::test]
async fn topics_are_created_listed_described_and_deleted() {
    let h = Harness::start().await;
    let (status, created) = h
        .post(
            "/v1/topics",
            &json!({"name": "admin-t", "partitions": 3, "config": {"retention.ms": 60000, "segment_bytes_max": "1048576"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["name"], "admin-t");
    assert_eq!(
        created["partitions"].as_array().expect("partitions").len(),
        3
    );
    assert_eq!(created["id"].as_str().expect("id").len(), 32);
    // Kafka's names on the way out; brook's own (segment_bytes_max) accepted as aliases.
    assert_eq!(created["overrides"]["retention.ms"], "60000");
    assert_eq!(created["config"]["segment.bytes"], "1048576");
    assert!(
        created["config"]["brook.durability"].is_string(),
        "{created}"
    );

    assert_error(
        h.post("/v1/topics", &json!({"name": "admin-t"})).await,
        StatusCode::CONFLICT,
        "topic_exists",
    );
    let (status, existing) = h
        .post(
            "/v1/topics",
            &json!({"name": "admin-t", "if_not_exists": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(existing["id"], created["id"]);

    h.produce(
        "admin-t",
        json!([{"value": 1, "partition": 2}, {"value": 2, "partition": 2}]),
    )
    .await;
    let (status, described) = h.get("/v1/topics/admin-t").await;
    assert_eq!(status, StatusCode::OK);
    let p2 = &described["partitions"][2];
    assert_eq!(
        (p2["partition"].as_u64(), p2["log_end_offset"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(p2["high_watermark"], 2);
    assert!(p2["size_bytes"].as_u64().expect("size") > 0);

    let (_, listed) = h.get("/v1/topics").await;
    assert!(
        listed["topics"]
            .as_array()
            .expect("topics")
            .contains(&json!({"name": "admin-t", "partitions": 3})),
        "{listed}"
    );

    let (status, _) = h.delete("/v1/topics/admin-t").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_error(
        h.get("/v1/topics/admin-t").await,
        StatusCode::NOT_FOUND,
        "unknown_topic",
    );
    assert_error(
        h.delete("/v1/topics/admin-t").await,
        StatusCode::NOT_FOUND,
        "unknown_topic",
    );
}

#[tokio::test]
async fn json_text_and_base64_values_round_trip() {
    let h = Harness::start().await;
    h.create("enc", 1).await;
    // JSON values are stored as sent, whitespace and all.
    let body = r#"{"records": [
        {"key": "k1", "value": {"n": 1, "list": [true, null]}, "headers": [{"key": "trace", "value": "abc"}]},
        {"value": "a JSON string"},
        {"value": 12.5},
        {"key": "tomb"}
    ]}"#;
    let response = h
        .http
        .post(h.url("/v1/topics/enc/records"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("produce");
    let (status, produced) = answer(response).await;
    assert_eq!(status, StatusCode::OK, "{produced}");
    let offsets: Vec<u64> = produced["offsets"]
        .as_array()
        .expect("offsets")
        .iter()
        .map(|p| p["offset"].as_u64().expect("offset"))
        .collect();
    assert_eq!(offsets, vec![0, 1, 2, 3]);

    // Text values, with non-ASCII characters.
    h.post(
        "/v1/topics/enc/records",
        &json!({"value_encoding": "text", "records": [{"value": "grüße, 世界 \n tabs\t"}]}),
    )
    .await;
    // Binary: bytes that are neither UTF-8 nor JSON.
    let binary: Vec<u8> = vec![0xff, 0x00, 0xfe, 0x80, b'{'];
    let b64 = "/wD+gHs=";
    let (status, _) = h
        .post(
            "/v1/topics/enc/records",
            &json!({"key_encoding": "base64", "value_encoding": "base64", "header_encoding": "base64",
                    "records": [{"key": "AAE=", "value": b64, "headers": [{"key": "bin", "value": "AP8"}]}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let fetched = h.fetch("enc", 0, "offset=0").await;
    let records = fetched["records"].as_array().expect("records");
    assert_eq!(records.len(), 6, "{fetched}");
    assert_eq!(fetched["next_offset"], 6);
    assert_eq!(records[0]["key"], "k1");
    assert_eq!(records[0]["value"], json!({"n": 1, "list": [true, null]}));
    assert_eq!(
        records[0]["headers"],
        json!([{"key": "trace", "value": "abc"}])
    );
    assert_eq!(records[1]["value"], "a JSON string");
    assert_eq!(records[2]["value"], 12.5);
    assert_eq!(records[3]["value"], Value::Null);
    assert_eq!(records[3]["key"], "tomb");
    // Text that is not JSON, asked as JSON: shown as text, and marked so.
    assert_eq!(records[4]["value"], "grüße, 世界 \n tabs\t");
    assert_eq!(records[4]["value_encoding"], "text");
    // The binary record, asked in JSON: base64 and marked; the key's bytes are UTF-8 text.
    assert_eq!(records[5]["value"], b64);
    assert_eq!(records[5]["value_encoding"], "base64");

    // Asked in the encodings they were written in, every value comes back exactly.
    let as_text = h.fetch("enc", 0, "offset=4&value_encoding=text").await;
    assert_eq!(as_text["records"][0]["value"], "grüße, 世界 \n tabs\t");
    assert!(as_text["records"][0].get("value_encoding").is_none());
    let as_b64 = h
        .fetch(
            "enc",
            0,
            "offset=5&key_encoding=base64&value_encoding=base64&header_encoding=base64",
        )
        .await;
    let record = &as_b64["records"][0];
    assert_eq!(record["key"], "AAE=");
    assert_eq!(record["value"], b64);
    assert_eq!(record["headers"], json!([{"key": "bin", "value": "AP8="}]));
    use base64::Engine as _;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(record["value"].as_str().expect("string"))
        .expect("base64");
    assert_eq!(decoded, binary);
    // The raw JSON value is the exact bytes sent.
    let raw = h.fetch("enc", 0, "offset=0&value_encoding=text").await;
    assert_eq!(
        raw["records"][0]["value"],
        r#"{"n": 1, "list": [true, null]}"#
    );
}

/// A streaming request body fed by the test, line by line or many lines at once.
fn body_channel() -> (mpsc::Sender<Bytes>, reqwest::Body) {
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx).map(Ok::<_, std::io::Error>);
    (tx, reqwest::Body::wrap_stream(stream))
}

/// Lines of a streaming response.
struct LinesReader {
    body: futures::stream::BoxStream<'static, reqwest::Result<Bytes>>,
    buffer: Vec<u8>,
}

impl LinesReader {
    async fn next(&mut self) -> Option<Value> {
        tokio::time::timeout(PATIENCE, async {
            loop {
                if let Some(at) = self.buffer.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = self.buffer.drain(..=at).collect();
                    return Some(serde_json::from_slice(&line).expect("a JSON line"));
                }
                let chunk = self.body.next().await?.expect("body chunk");
                self.buffer.extend_from_slice(&chunk);
            }
        })
        .await
        .expect("a line within the patience window")
    }
}

#[tokio::test]
async fn streaming_produce_answers_each_line_in_order_as_it_is_acknowledged() {
    let h = Harness::start().await;
    h.create("nd", 2).await;
    let (tx, body) = body_channel();
    let response = h
        .http
        .post(h.url("/v1/topics/nd/records?value_encoding=text"))
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send();
    // The answer's head comes before the request body is done.
    let tx_first = tx.clone();
    let first = tokio::spawn(async move {
        tx_first
            .send(Bytes::from("{\"value\": \"one\", \"partition\": 0}\n"))
            .await
            .expect("send");
    });
    let response = response.await.expect("streaming produce");
    first.await.expect("first line sent");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    let mut lines = LinesReader {
        body: response.bytes_stream().boxed(),
        buffer: Vec::new(),
    };
    // One line in, one answer out, while the request is still open.
    assert_eq!(lines.next().await.expect("answer")["offset"], 0);
    tx.send(Bytes::from("{\"value\": \"two\", \"partition\": 0}\n"))
        .await
        .expect("send");
    assert_eq!(lines.next().await.expect("answer")["offset"], 1);

    // Many lines in one chunk, a line split across chunks, a bad line and a record for a
    // partition that does not exist: each gets its own answer, in place, and the good ones are
    // appended in order.
    let mut chunk = String::new();
    for i in 0..50 {
        chunk.push_str(&format!("{{\"value\": \"r{i}\", \"partition\": 0}}\n"));
        if i == 20 {
            chunk.push_str("{not json}\n\n");
        }
        if i == 30 {
            chunk.push_str("{\"value\": \"nowhere\", \"partition\": 7}\n");
        }
    }
    chunk.push_str("{\"value\": \"spl");
    tx.send(Bytes::from(chunk)).await.expect("send");
    tx.send(Bytes::from("it\", \"partition\": 0}\n"))
        .await
        .expect("send");
    drop(tx);
    let mut answers = Vec::new();
    while let Some(line) = lines.next().await {
        answers.push(line);
    }
    assert_eq!(answers.len(), 53, "{answers:?}");
    assert_eq!(answers[21]["error_code"], "bad_request");
    assert!(
        answers[21]["message"]
            .as_str()
            .expect("message")
            .contains("line 24"),
        "{}",
        answers[21]
    );
    assert_eq!(answers[32]["error_code"], "unknown_partition");
    let offsets: Vec<u64> = answers
        .iter()
        .filter_map(|a| a["offset"].as_u64())
        .collect();
    assert_eq!(offsets, (2..53).collect::<Vec<u64>>());

    let fetched = h.fetch("nd", 0, "offset=0&value_encoding=text").await;
    let values: Vec<&str> = fetched["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| r["value"].as_str().expect("text"))
        .collect();
    let mut expected = vec!["one".to_owned(), "two".to_owned()];
    expected.extend((0..50).map(|i| format!("r{i}")));
    expected.push("split".to_owned());
    assert_eq!(values, expected);
}

#[tokio::test]
async fn a_fetch_long_poll_answers_when_a_record_arrives() {
    let h = Harness::start().await;
    h.create("lp", 1).await;
    h.produce("lp", json!([{"value": "a"}])).await;
    let empty = h.fetch("lp", 0, "offset=1").await;
    assert_eq!(empty["records"], json!([]));
    assert_eq!(
        (
            empty["next_offset"].as_u64(),
            empty["high_watermark"].as_u64()
        ),
        (Some(1), Some(1))
    );

    let waiting = {
        let (http, url) = (
            h.http.clone(),
            h.url("/v1/topics/lp/partitions/0/records?offset=1&max_wait_ms=30000"),
        );
        tokio::spawn(async move {
            let started = Instant::now();
            let body: Value = http
                .get(url)
                .send()
                .await
                .expect("fetch")
                .json()
                .await
                .expect("json");
            (body, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    h.produce("lp", json!([{"value": "b"}])).await;
    let (body, waited) = tokio::time::timeout(PATIENCE, waiting)
        .await
        .expect("the long poll answers on arrival")
        .expect("task");
    assert!(waited < Duration::from_secs(30));
    assert_eq!(body["records"][0]["value"], "b");
    assert_eq!(body["records"][0]["offset"], 1);
    assert_eq!(body["next_offset"], 2);
}

#[tokio::test]
async fn sse_delivers_new_records_and_resumes_after_last_event_id() {
    let h = Harness::start().await;
    h.create("sse", 1).await;
    h.produce("sse", json!([{"value": 0}, {"value": 1}, {"value": 2}]))
        .await;

    let mut tail = h.sse("/v1/topics/sse/partitions/0/stream", &[]).await; // latest
    let mut stream = h
        .sse("/v1/topics/sse/partitions/0/stream?offset=earliest", &[])
        .await;
    let first = stream.records(3).await;
    let ids: Vec<&str> = first.iter().map(|e| e.id.as_deref().expect("id")).collect();
    assert_eq!(ids, ["0", "1", "2"]);
    assert_eq!(first[1].json()["value"], 1);
    assert_eq!(first[1].json()["offset"], 1);
    assert_eq!(first[1].json()["topic"], "sse");

    // Produced after both streams connected.
    h.produce("sse", json!([{"value": 3}, {"value": 4}])).await;
    let more = stream.records(2).await;
    assert_eq!(more[0].id.as_deref(), Some("3"));
    assert_eq!(more[1].id.as_deref(), Some("4"));
    let tailed = tail.records(2).await;
    assert_eq!(
        tailed[0].json()["value"],
        3,
        "latest starts after what was there"
    );
    drop(stream);

    // Reconnect as an EventSource does after seeing id 2 (say events 3 and 4 were lost in
    // flight): resume at 3, nothing skipped, nothing repeated; Last-Event-ID wins over offset.
    let mut resumed = h
        .sse(
            "/v1/topics/sse/partitions/0/stream?offset=0",
            &[("Last-Event-ID", "2")],
        )
        .await;
    h.produce("sse", json!([{"value": 5}])).await;
    let ids: Vec<String> = resumed
        .records(3)
        .await
        .into_iter()
        .map(|e| e.id.expect("id"))
        .collect();
    assert_eq!(ids, ["3", "4", "5"]);

    // Resuming after the newest record waits for the next one.
    let mut at_end = h
        .sse(
            "/v1/topics/sse/partitions/0/stream",
            &[("Last-Event-ID", "5")],
        )
        .await;
    h.produce("sse", json!([{"value": 6}])).await;
    assert_eq!(at_end.records(1).await[0].id.as_deref(), Some("6"));

    // A deleted topic ends the stream with an error event.
    let (status, _) = h.delete("/v1/topics/sse").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let last = at_end.next().await.expect("an error event");
    assert_eq!(last.event.as_deref(), Some("error"));
    assert_eq!(last.json()["error_code"], "unknown_topic");
    assert_eq!(at_end.next().await, None, "the stream ends after the error");
}

/// Reads a group stream on a task, forwarding its events.
fn forward(mut sse: Sse) -> mpsc::UnboundedReceiver<Event> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(event) = sse.next_event().await {
            if tx.send(event).is_err() {
                break;
            }
        }
    });
    rx
}

/// The partitions of the next assignment event with `partitions` partitions, skipping the
/// events before it.
async fn assignment(
    events: &mut mpsc::UnboundedReceiver<Event>,
    partitions: usize,
) -> BTreeSet<u64> {
    loop {
        let event = tokio::time::timeout(PATIENCE, events.recv())
            .await
            .expect("an assignment in time")
            .expect("stream open");
        if event.event.as_deref() != Some("assignment") {
            continue;
        }
        let owned: BTreeSet<u64> = event.json()["partitions"]
            .as_array()
            .expect("partitions")
            .iter()
            .map(|p| p["partition"].as_u64().expect("partition"))
            .collect();
        if owned.len() == partitions {
            return owned;
        }
    }
}

#[tokio::test]
async fn group_streams_split_partitions_and_commits_show_in_the_group() {
    let h = Harness::start().await;
    h.create("grp", 4).await;
    let path = "/v1/groups/g1/stream?topics=grp&reset=earliest";
    let mut a = forward(h.sse(path, &[]).await);
    assert_eq!(assignment(&mut a, 4).await, BTreeSet::from([0, 1, 2, 3]));
    let mut b = forward(h.sse(path, &[]).await);
    let owned_b = assignment(&mut b, 2).await;
    let owned_a = assignment(&mut a, 2).await;
    assert!(owned_a.is_disjoint(&owned_b), "{owned_a:?} {owned_b:?}");
    assert_eq!(owned_a.union(&owned_b).count(), 4);

    let records: Vec<Value> = (0..4)
        .flat_map(|p| (0..3).map(move |i| json!({"value": format!("p{p}-{i}"), "partition": p})))
        .collect();
    h.produce("grp", Value::Array(records)).await;
    for (events, owned) in [(&mut a, &owned_a), (&mut b, &owned_b)] {
        let mut seen = BTreeSet::new();
        while seen.len() < 6 {
            let event = tokio::time::timeout(PATIENCE, events.recv())
                .await
                .expect("records in time")
                .expect("open");
            if event.event.is_some() {
                continue;
            }
            let record = event.json();
            let partition = record["partition"].as_u64().expect("partition");
            assert!(
                owned.contains(&partition),
                "{record} not owned by this stream"
            );
            assert!(event.id.is_none(), "group events carry no id");
            seen.insert(record["value"].as_str().expect("text").to_owned());
        }
    }

    let (status, body) = h
        .post(
            "/v1/groups/g1/offsets",
            &json!({"offsets": [{"topic": "grp", "partition": 0, "offset": 2, "metadata": "m"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, group) = h.get("/v1/groups/g1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(group["state"], "Stable");
    assert_eq!(group["members"].as_array().expect("members").len(), 2);
    let p0 = group["partitions"]
        .as_array()
        .expect("partitions")
        .iter()
        .find(|p| p["partition"] == 0)
        .expect("partition 0");
    assert_eq!(p0["committed_offset"], 2);
    assert_eq!(p0["metadata"], "m");
    assert_eq!(p0["lag"], 1);
    assert_eq!(p0["high_watermark"], 3);
    let (_, groups) = h.get("/v1/groups").await;
    assert!(
        groups["groups"]
            .as_array()
            .expect("groups")
            .contains(&json!({"group": "g1", "state": "Stable", "members": 2})),
        "{groups}"
    );
    assert_error(
        h.get("/v1/groups/nobody").await,
        StatusCode::NOT_FOUND,
        "unknown_group",
    );
}

#[tokio::test]
async fn records_produced_over_http_are_read_over_grpc_and_back() {
    let h = Harness::start().await;
    let grpc = GrpcServer::start(
        h.broker.clone(),
        "127.0.0.1:0".parse().expect("addr"),
        GrpcConfig::default(),
    )
    .await
    .expect("gRPC door");
    let mut client = BrookClient::connect(format!("http://{}", grpc.local_addr()))
        .await
        .expect("gRPC client");
    h.create("x", 1).await;
    h.post(
        "/v1/topics/x/records",
        &json!({"records": [{"key": "k", "value": {"from": "http"}, "headers": [{"key": "h", "value": "v"}]}]}),
    )
    .await;
    let fetched = client
        .fetch(pb::FetchRequest {
            topic: "x".into(),
            partition: 0,
            offset: 0,
            ..Default::default()
        })
        .await
        .expect("gRPC fetch")
        .into_inner();
    let record = &fetched.records[0];
    assert_eq!(record.key.as_deref(), Some(&b"k"[..]));
    assert_eq!(record.value.as_deref(), Some(&br#"{"from":"http"}"#[..]));
    assert_eq!(record.headers[0].key, "h");

    client
        .produce(pb::ProduceRequest {
            topic: "x".into(),
            records: vec![pb::ProducerRecord {
                value: Some(Bytes::from_static(br#"{"from":"grpc"}"#)),
                ..Default::default()
            }],
            raw_batch: None,
        })
        .await
        .expect("gRPC produce");
    let over_http = h.fetch("x", 0, "offset=1").await;
    assert_eq!(over_http["records"][0]["value"], json!({"from": "grpc"}));
    let mut sse = h
        .sse("/v1/topics/x/partitions/0/stream?offset=1", &[])
        .await;
    assert_eq!(
        sse.records(1).await[0].json()["value"],
        json!({"from": "grpc"})
    );
    grpc.stop().await.expect("stop gRPC");
}

#[tokio::test]
async fn metrics_parse_as_prometheus_text_and_move() {
    let h = Harness::start().await;
    h.create("met", 2).await;
    let before = h.metrics().await;
    let produced = "POST /v1/topics/{topic}/records";
    let requests = format!("brook_requests_total{{door=\"http\",api=\"{produced}\"}}");
    let records_in =
        "brook_partition_records_in_total{door=\"http\",topic=\"met\",partition=\"1\"}";
    let records_out =
        "brook_partition_records_out_total{door=\"http\",topic=\"met\",partition=\"1\"}";

    h.produce(
        "met",
        json!([{"value": "abc", "partition": 1}, {"value": "defg", "partition": 1}]),
    )
    .await;
    h.fetch("met", 1, "offset=0").await;
    assert_error(
        h.get("/v1/topics/met/partitions/1/records?offset=99").await,
        StatusCode::RANGE_NOT_SATISFIABLE,
        "offset_out_of_range",
    );
    h.post(
        "/v1/groups/met-g/offsets",
        &json!({"offsets": [{"topic": "met", "partition": 1, "offset": 1}]}),
    )
    .await;
    let mut sse = h
        .sse("/v1/topics/met/partitions/1/stream?offset=0", &[])
        .await;
    sse.records(2).await;

    let after = h.metrics().await;
    assert!(metric(&after, &requests) >= metric(&before, &requests) + 1.0);
    assert_eq!(
        metric(&after, records_in) - metric(&before, records_in),
        2.0
    );
    assert_eq!(
        metric(
            &after,
            "brook_partition_bytes_in_total{door=\"http\",topic=\"met\",partition=\"1\"}"
        ),
        metric(
            &before,
            "brook_partition_bytes_in_total{door=\"http\",topic=\"met\",partition=\"1\"}"
        ) + 11.0,
        "payload bytes: JSON texts \"abc\" and \"defg\" with their quotes"
    );
    assert_eq!(
        metric(&after, records_out) - metric(&before, records_out),
        4.0,
        "fetch + stream"
    );
    assert_eq!(
        metric(
            &after,
            "brook_partition_log_end_offset{topic=\"met\",partition=\"1\"}"
        ),
        2.0
    );
    assert_eq!(
        metric(
            &after,
            "brook_partition_high_watermark{topic=\"met\",partition=\"1\"}"
        ),
        2.0
    );
    assert!(
        metric(
            &after,
            "brook_partition_log_size_bytes{topic=\"met\",partition=\"1\"}"
        ) > 0.0
    );
    assert!(after.contains_key("brook_partition_fsyncs_total{topic=\"met\",partition=\"1\"}"));
    assert_eq!(
        metric(
            &after,
            "brook_group_lag{group=\"met-g\",topic=\"met\",partition=\"1\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(
            &after,
            "brook_group_committed_offset{group=\"met-g\",topic=\"met\",partition=\"1\"}"
        ),
        1.0
    );
    let errors = "brook_request_errors_total{door=\"http\",api=\"GET /v1/topics/{topic}/partitions/{partition}/records\",code=\"416\"}";
    assert!(metric(&after, errors) >= 1.0);
    let latency =
        format!("brook_request_duration_seconds_count{{door=\"http\",api=\"{produced}\"}}");
    assert!(metric(&after, &latency) >= 1.0);
    assert!(metric(&after, "brook_open_connections{door=\"http\"}") >= 1.0);
    assert!(metric(&after, "brook_open_streams{door=\"http\",kind=\"sse\"}") >= 1.0);
}

#[tokio::test]
async fn bad_requests_get_the_right_status_and_change_nothing() {
    let config = HttpConfig {
        request_bytes_max: 4096,
        ..HttpConfig::default()
    };
    let h = Harness::strict(config).await;
    h.create("bad", 1).await;
    let (status, _) = h
        .post(
            "/v1/topics",
            &json!({"name": "small", "config": {"message_bytes_max": 1000}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    h.produce("bad", json!([{"value": 1}])).await;
    let long_name = format!("/v1/topics/{}", "t".repeat(250));
    const BAD: StatusCode = StatusCode::BAD_REQUEST;
    const MISSING: StatusCode = StatusCode::NOT_FOUND;
    const RANGE: StatusCode = StatusCode::RANGE_NOT_SATISFIABLE;
    const LARGE: StatusCode = StatusCode::PAYLOAD_TOO_LARGE;

    // GETs (with a Last-Event-ID where given).
    let gets: &[(&str, Option<&str>, StatusCode, &str)] = &[
        // 400: bad names and parameters.
        ("/v1/topics/no%20spaces", None, BAD, "invalid_topic_name"),
        (&long_name, None, BAD, "invalid_topic_name"),
        ("/v1/groups/%07bell", None, BAD, "invalid_group_id"),
        ("/v1/groups/..%2f..%2fx", None, BAD, "invalid_group_id"),
        ("/v1/groups/a%20b", None, BAD, "invalid_group_id"),
        (
            "/v1/topics/bad/partitions/x/records?offset=0",
            None,
            BAD,
            "bad_request",
        ),
        (
            "/v1/topics/bad/partitions/0/records",
            None,
            BAD,
            "bad_request",
        ),
        (
            "/v1/topics/bad/partitions/0/records?offset=0&max_bytes=0",
            None,
            BAD,
            "bad_request",
        ),
        (
            "/v1/topics/bad/partitions/0/records?offset=0&max_wait_ms=999999999",
            None,
            BAD,
            "bad_request",
        ),
        (
            "/v1/topics/bad/partitions/0/stream?offset=soon",
            None,
            BAD,
            "bad_request",
        ),
        (
            "/v1/topics/bad/partitions/0/stream",
            Some("yesterday"),
            BAD,
            "bad_request",
        ),
        ("/v1/groups/g/stream?topics=,", None, BAD, "bad_request"),
        // 404: unknown topic (no automatic creation here), partition, group, route.
        (
            "/v1/topics/ghost/partitions/0/records?offset=0",
            None,
            MISSING,
            "unknown_topic",
        ),
        (
            "/v1/topics/bad/partitions/3/records?offset=0",
            None,
            MISSING,
            "unknown_partition",
        ),
        (
            "/v1/topics/bad/partitions/3/stream",
            None,
            MISSING,
            "unknown_partition",
        ),
        ("/v1/groups/ghost", None, MISSING, "unknown_group"),
        ("/v2/nothing", None, MISSING, "no_route"),
        // 416: offsets outside the log, by fetch, stream and resume.
        (
            "/v1/topics/bad/partitions/0/records?offset=2",
            None,
            RANGE,
            "offset_out_of_range",
        ),
        (
            "/v1/topics/bad/partitions/0/stream?offset=5",
            None,
            RANGE,
            "offset_out_of_range",
        ),
        (
            "/v1/topics/bad/partitions/0/stream",
            Some("1"),
            RANGE,
            "offset_out_of_range",
        ),
    ];
    for (path, last_event_id, status, code) in gets {
        let headers: Vec<(&str, &str)> = last_event_id
            .iter()
            .map(|id| ("Last-Event-ID", *id))
            .collect();
        let response = answer(h.get_with(path, &headers).await).await;
        assert_error(response, *status, code);
    }

    // POSTs of JSON bodies.
    let records = "/v1/topics/bad/records";
    let big = "x".repeat(5000);
    let medium = "y".repeat(2000);
    let posts: Vec<(&str, Value, StatusCode, &str)> = vec![
        (
            "/v1/topics",
            json!({"name": "a/b"}),
            BAD,
            "invalid_topic_name",
        ),
        (
            "/v1/topics",
            json!({"name": "p0", "partitions": 0}),
            BAD,
            "invalid_partitions",
        ),
        (
            "/v1/topics",
            json!({"name": "cfg", "config": {"nope": 1}}),
            BAD,
            "invalid_config",
        ),
        ("/v1/topics", json!({"nam": "typo"}), BAD, "bad_request"),
        (records, json!({"records": []}), BAD, "bad_request"),
        (
            records,
            json!({"value_encoding": "base64", "records": [{"value": "ok"}, {"value": "**"}]}),
            BAD,
            "bad_request",
        ),
        (
            records,
            json!({"value_encoding": "text", "records": [{"value": 1}]}),
            BAD,
            "bad_request",
        ),
        (
            "/v1/groups/g/offsets",
            json!({"offsets": []}),
            BAD,
            "bad_request",
        ),
        (
            "/v1/topics/ghost/records",
            json!({"records": [{"value": 1}]}),
            MISSING,
            "unknown_topic",
        ),
        (
            records,
            json!({"records": [{"value": 1, "partition": 5}]}),
            MISSING,
            "unknown_partition",
        ),
        (
            "/v1/groups/g/offsets",
            json!({"offsets": [{"topic": "ghost", "partition": 0, "offset": 0}]}),
            MISSING,
            "unknown_topic",
        ),
        // 413: a body over request_bytes_max, a record over the topic's message_bytes_max.
        (
            records,
            json!({"records": [{"value": big}]}),
            LARGE,
            "too_large",
        ),
        (
            "/v1/topics/small/records",
            json!({"value_encoding": "text", "records": [{"value": medium}]}),
            LARGE,
            "too_large",
        ),
    ];
    for (path, body, status, code) in &posts {
        assert_error(h.post(path, body).await, *status, code);
    }

    // Bodies that are not JSON, and a method the route does not take.
    let malformed = h
        .http
        .post(h.url(records))
        .header("content-type", "application/json")
        .body("{\"records\": [")
        .send()
        .await
        .expect("post");
    assert_error(answer(malformed).await, BAD, "bad_request");
    let not_json = h
        .http
        .post(h.url(records))
        .body("x")
        .send()
        .await
        .expect("post");
    assert_error(
        answer(not_json).await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    let put = h.http.put(h.url("/v1/topics")).send().await.expect("put");
    assert_error(
        answer(put).await,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );

    // None of it changed anything: the two topics, one record.
    let (_, topics) = h.get("/v1/topics").await;
    assert_eq!(
        topics["topics"],
        json!([{"name": "bad", "partitions": 1}, {"name": "small", "partitions": 1}])
    );
    let fetched = h.fetch("bad", 0, "offset=0").await;
    assert_eq!(fetched["records"].as_array().expect("records").len(), 1);
    assert_error(h.get("/v1/groups/g").await, MISSING, "unknown_group");
    assert_eq!(h.get("/healthz").await.0, StatusCode::OK);

    // 503: the broker refuses writes (here: it is closed; a poisoned partition is the same
    // kind of failure and gets the same status).
    h.broker.close().await.expect("close");
    assert_error(
        h.post(records, &json!({"records": [{"value": 1}]})).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "shutting_down",
    );
}

#[tokio::test]
async fn an_over_long_ndjson_line_is_refused_and_the_stream_goes_on() {
    let config = HttpConfig {
        request_bytes_max: 256,
        ..HttpConfig::default()
    };
    let h = Harness::strict(config).await;
    h.create("long", 1).await;
    let body = format!(
        "{{\"value\": 1}}\n{{\"value\": \"{}\"}}\n{{\"value\": 2}}",
        "z".repeat(1000)
    );
    let response = h
        .http
        .post(h.url("/v1/topics/long/records"))
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .expect("produce");
    let text = response.text().await.expect("answers");
    let answers: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(answers.len(), 3, "{text}");
    assert_eq!(answers[0]["offset"], 0);
    assert_eq!(answers[1]["error_code"], "too_large");
    assert_eq!(answers[2]["offset"], 1, "the last line needs no newline");
}

#[tokio::test]
async fn an_sse_client_that_stops_reading_is_dropped_and_holds_bounded_memory() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let config = HttpConfig {
        write_stall_ms_max: 300,
        ..HttpConfig::default()
    };
    let h = Harness::strict(config).await;
    h.create("stall", 1).await;

    // A client that asks for the stream and then never reads, with a tiny receive window.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("rcvbuf");
    let mut stalled = socket
        .connect(h.server.local_addr())
        .await
        .expect("connect");
    stalled
        .write_all(
            b"GET /v1/topics/stall/partitions/0/stream?offset=earliest&max_bytes=65536 HTTP/1.1\r\n\
              Host: localhost\r\nAccept: text/event-stream\r\n\r\n",
        )
        .await
        .expect("request");

    // Produce far more than any socket buffer holds: 24 MiB in 8 KiB records.
    let value = "v".repeat(8 << 10);
    let batch: Vec<Value> = (0..64).map(|_| json!({"value": value})).collect();
    let batch = json!({"value_encoding": "text", "records": batch});
    let rounds = 48;
    for _ in 0..rounds {
        let (status, _) = h.post("/v1/topics/stall/records", &batch).await;
        assert_eq!(status, StatusCode::OK);
    }
    let produced_bytes = (rounds * 64 * (8 << 10)) as f64;

    // The server keeps serving everyone else meanwhile.
    assert_eq!(h.get("/healthz").await.0, StatusCode::OK);
    h.create("unstalled", 1).await;
    let mut reader = h.sse("/v1/topics/unstalled/partitions/0/stream", &[]).await;
    h.produce("unstalled", json!([{"value": 1}, {"value": 2}]))
        .await;
    assert_eq!(reader.records(2).await[1].json()["value"], 2);

    // After the stall limit the server drops the stalled connection: reading it now yields
    // what was in flight and then the end, not the whole topic.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut received = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    let ended = tokio::time::timeout(PATIENCE, async {
        loop {
            match stalled.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received += n,
            }
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "the stalled connection was not closed ({received} bytes read)"
    );
    let metrics = h.metrics().await;
    let sent = metric(
        &metrics,
        "brook_partition_bytes_out_total{door=\"http\",topic=\"stall\",partition=\"0\"}",
    );
    // What the server read from the log for the stalled stream is bounded by socket buffers
    // plus one read, far below what was produced.
    assert!(
        sent < produced_bytes / 2.0,
        "{sent} bytes read out of {produced_bytes} produced for a client that never read"
    );
    assert!((received as f64) < produced_bytes / 2.0, "{received}");
}

#[tokio::test]
async fn shutdown_ends_streams_and_long_polls_and_finishes_produces() {
    let h = Harness::start().await;
    h.create("down", 1).await;
    let mut stream = h
        .sse("/v1/topics/down/partitions/0/stream?offset=earliest", &[])
        .await;
    let (tx, body) = body_channel();
    let producing = h
        .http
        .post(h.url("/v1/topics/down/records"))
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .expect("streaming produce");
    let mut answers = LinesReader {
        body: producing.bytes_stream().boxed(),
        buffer: Vec::new(),
    };
    tx.send(Bytes::from("{\"value\": \"last\"}\n"))
        .await
        .expect("send");
    assert_eq!(answers.next().await.expect("acknowledged")["offset"], 0);
    assert_eq!(stream.records(1).await[0].json()["value"], "last");
    let poll = {
        let (http, url) = (
            h.http.clone(),
            h.url("/v1/topics/down/partitions/0/records?offset=1&max_wait_ms=60000"),
        );
        tokio::spawn(async move { answer(http.get(url).send().await.expect("fetch")).await })
    };
    // Let the long poll reach the server and start waiting.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let Harness { server, broker, .. } = h;
    tokio::time::timeout(PATIENCE, server.stop())
        .await
        .expect("the door drains in time")
        .expect("stopped cleanly");
    assert_eq!(stream.next().await, None, "the stream ended");
    let (status, fetched) = tokio::time::timeout(PATIENCE, poll)
        .await
        .expect("the long poll answered")
        .expect("task");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        fetched["records"],
        json!([]),
        "answered early, with nothing new"
    );
    assert_eq!(answers.next().await, None, "the produce stream ended");
    drop(tx);
    // What was acknowledged is in the log.
    let fetched = broker
        .fetch("down", 0, 0, 1 << 20, Duration::ZERO)
        .await
        .expect("fetch");
    assert_eq!(fetched.records().expect("records").len(), 1);
}

#[tokio::test]
async fn only_configured_origins_get_cors_headers() {
    let allowed = "http://app.example";
    let cors_header = |response: &reqwest::Response| {
        response
            .headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().expect("ascii").to_owned())
    };
    let closed = Harness::start().await;
    let response = closed.get_with("/v1/topics", &[("Origin", allowed)]).await;
    assert_eq!(cors_header(&response), None, "no CORS unless configured");

    let config = HttpConfig {
        cors_origins: vec![allowed.to_owned()],
        ..HttpConfig::default()
    };
    let h = Harness::strict(config).await;
    let response = h.get_with("/v1/topics", &[("Origin", allowed)]).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(cors_header(&response).as_deref(), Some(allowed));
    let other = h
        .get_with("/v1/topics", &[("Origin", "http://evil.example")])
        .await;
    assert_eq!(cors_header(&other), None);

    // A preflight for a JSON produce, as a browser sends before fetch(..., {method: "POST"}).
    let preflight = h
        .http
        .request(reqwest::Method::OPTIONS, h.url("/v1/topics/t/records"))
        .header("Origin", allowed)
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "content-type")
        .send()
        .await
        .expect("preflight");
    assert!(preflight.status().is_success(), "{}", preflight.status());
    assert_eq!(cors_header(&preflight).as_deref(), Some(allowed));
    let methods = preflight.headers()["access-control-allow-methods"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(methods.contains("POST"), "{methods}");
}

#[tokio::test]
async fn topics_and_groups_change_through_the_admin_routes() {
    let h = Harness::start().await;
    h.create("chg", 2).await;
    let records: Vec<Value> = (0..10)
        .map(|i| json!({"partition": 0, "value": format!("r{i}")}))
        .collect();
    h.produce("chg", json!(records)).await;
    let patch = |path: &str, body: Value| {
        let request = h.http.patch(h.url(path)).json(&body);
        async move { answer(request.send().await.expect("PATCH")).await }
    };

    // Grow: 200 with the topic; a count that is not higher is 400 and changes nothing.
    let (status, topic) = h
        .post("/v1/topics/chg/partitions", &json!({"partitions": 4}))
        .await;
    assert_eq!(status, StatusCode::OK, "{topic}");
    assert_eq!(topic["partitions"].as_array().expect("partitions").len(), 4);
    assert_error(
        h.post("/v1/topics/chg/partitions", &json!({"partitions": 3}))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_partitions",
    );

    // Settings by Kafka's name, brook's as aliases; a bad value changes nothing.
    let (status, topic) = patch(
        "/v1/topics/chg/config",
        json!({"set": {"retention.ms": 60000, "segment_bytes_max": "1048576"}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{topic}");
    assert_eq!(topic["overrides"]["retention.ms"], "60000");
    assert_eq!(topic["config"]["segment.bytes"], "1048576");
    assert_error(
        patch(
            "/v1/topics/chg/config",
            json!({"set": {"segment.bytes": "1"}}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_config",
    );
    assert_error(
        patch("/v1/topics/chg/config", json!({"set": {"color": "blue"}})).await,
        StatusCode::BAD_REQUEST,
        "invalid_config",
    );
    let (status, topic) = patch(
        "/v1/topics/chg/config",
        json!({"delete": ["segment.bytes"]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{topic}");
    assert_eq!(topic["overrides"], json!({"retention.ms": "60000"}));

    // Records below an offset: the log start moves, reads below it are 416.
    let (status, trimmed) = h
        .delete("/v1/topics/chg/records?partition=0&before_offset=6")
        .await;
    assert_eq!(status, StatusCode::OK, "{trimmed}");
    assert_eq!(
        trimmed,
        json!({"partitions": [{"partition": 0, "log_start_offset": 6}]})
    );
    assert_error(
        h.get("/v1/topics/chg/partitions/0/records?offset=2").await,
        StatusCode::RANGE_NOT_SATISFIABLE,
        "offset_out_of_range",
    );
    assert_error(
        h.delete("/v1/topics/chg/records?before_offset=99").await,
        StatusCode::RANGE_NOT_SATISFIABLE,
        "offset_out_of_range",
    );

    // A group: moved (dry run first), some offsets deleted, then the whole group.
    let (status, body) = h
        .post(
            "/v1/groups/readers/offsets",
            &json!({"offsets": [
                {"topic": "chg", "partition": 0, "offset": 8},
                {"topic": "chg", "partition": 1, "offset": 0}
            ]}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, seek) = h
        .post(
            "/v1/groups/readers/seek",
            &json!({"to": "earliest", "dry_run": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{seek}");
    assert_eq!(
        seek["partitions"],
        json!([
            {"topic": "chg", "partition": 0, "from_offset": 8, "to_offset": 6},
            {"topic": "chg", "partition": 1, "from_offset": 0, "to_offset": 0}
        ])
    );
    let (_, group) = h.get("/v1/groups/readers").await;
    assert_eq!(group["partitions"][0]["committed_offset"], 8, "dry run");
    let (status, seek) = h
        .post("/v1/groups/readers/seek", &json!({"to": {"shift_by": -1}}))
        .await;
    assert_eq!(status, StatusCode::OK, "{seek}");
    assert_eq!(
        seek["partitions"][0],
        json!({"topic": "chg", "partition": 0, "from_offset": 8, "to_offset": 7})
    );
    assert_eq!(seek["partitions"][1]["to_offset"], 0, "kept within the log");
    // A shift needs a committed offset in every partition it moves.
    assert_error(
        h.post(
            "/v1/groups/readers/seek",
            &json!({"to": {"shift_by": 1}, "topics": ["chg"]}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "bad_request",
    );
    assert_error(
        h.post("/v1/groups/readers/seek", &json!({"to": "sideways"}))
            .await,
        StatusCode::BAD_REQUEST,
        "bad_request",
    );
    let (status, body) = h
        .delete("/v1/groups/readers/offsets?topic=chg&partition=0")
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (_, group) = h.get("/v1/groups/readers").await;
    assert_eq!(group["partitions"].as_array().expect("partitions").len(), 1);
    let (status, body) = h.delete("/v1/groups/readers").await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_error(
        h.get("/v1/groups/readers").await,
        StatusCode::NOT_FOUND,
        "unknown_group",
    );
    assert_error(
        h.delete("/v1/groups/readers").await,
        StatusCode::NOT_FOUND,
        "unknown_group",
    );
    h.server.stop().await.expect("stop");
}
