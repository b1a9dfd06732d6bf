//! Request-reply through the HTTP door: `POST /v1/topics/{topic}/call` answered with the reply,
//! 504 with the correlation id when no responder answers in time, the reply fetched later by
//! id, idempotency keys, handler errors and bad input. A real server on 127.0.0.1:0 and a real
//! HTTP client; responders are embedded in the broker behind it.

use brook_broker::reqreply::Answer;
use brook_broker::{Broker, NewTopic, OffsetSpec, ProduceRecord, Request};
use brook_server::{HttpConfig, HttpServer};
use bytes::Bytes;
use reqwest::StatusCode;
use serde_json::Value;

struct Door {
    broker: Broker,
    _server: HttpServer,
    http: reqwest::Client,
    base: String,
}

impl Door {
    async fn start() -> Self {
        let broker = Broker::ephemeral().await.expect("broker");
        let addr = "127.0.0.1:0".parse().expect("address");
        let server = HttpServer::start(broker.clone(), addr, HttpConfig::default())
            .await
            .expect("HTTP door");
        let base = format!("http://{}", server.local_addr());
        Self {
            broker,
            _server: server,
            http: reqwest::Client::new(),
            base,
        }
    }

    fn post(&self, path: &str, body: &'static str) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body)
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("GET")
    }

    /// Answers requests on `topic`: a value `fail` gets an error reply, any other value comes
    /// back upper-cased as JSON text.
    fn respond(&self, topic: &'static str) {
        let broker = self.broker.clone();
        tokio::spawn(async move {
            broker
                .respond(topic, "svc", |request: Request| async move {
                    let value = request.value.unwrap_or_default();
                    if &value[..] == b"fail" {
                        return Err("cannot do that".to_owned());
                    }
                    let upper = String::from_utf8_lossy(&value).to_uppercase();
                    Ok(Answer {
                        value: Some(Bytes::from(format!("{{\"said\":\"{upper}\"}}"))),
                        headers: vec![(
                            "content-type".to_owned(),
                            Bytes::from_static(b"application/json"),
                        )],
                    })
                })
                .await
        });
    }

    /// `/metrics` once it contains `line` (the reply topic is read in the background).
    async fn metrics_until(&self, line: &str) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let text = self.get("/metrics").await.text().await.expect("metrics");
            if text.contains(line) {
                return text;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no {line:?} in {text}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    async fn requests_in(&self, topic: &str) -> u64 {
        self.broker
            .list_offset(topic, 0, OffsetSpec::Latest)
            .await
            .expect("offset")
            .offset
            .expect("latest")
    }
}

fn correlation_id(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("brook-correlation-id")
        .expect("the id header")
        .to_str()
        .expect("text")
        .to_owned()
}

async fn json(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    (status, response.json().await.expect("a JSON body"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_is_answered_with_the_reply_and_a_handler_error_is_a_502() {
    let door = Door::start().await;
    door.respond("greet");
    let response = door
        .post("/v1/topics/greet/call?timeout_ms=10000&key=k1", "hello")
        .header("content-type", "application/json; charset=utf-8")
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "application/json",
        "the reply's content-type"
    );
    assert_eq!(correlation_id(&response).len(), 36, "a UUID");
    assert_eq!(response.text().await.expect("body"), r#"{"said":"HELLO"}"#);

    let response = door
        .post("/v1/topics/greet/call?timeout_ms=10000", "fail")
        .send()
        .await
        .expect("POST");
    let id = correlation_id(&response);
    let (status, body) = json(response).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(body["error_code"], "handler_failed");
    assert_eq!(body["handler_error"], "cannot do that");
    assert_eq!(body["correlation_id"], id.as_str());
    // The error reply is kept like any reply.
    let (status, again) = json(door.get(&format!("/v1/topics/greet/call/{id}")).await).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{again}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_responder_is_a_504_with_the_id_and_the_late_reply_is_fetched_by_it() {
    let door = Door::start().await;
    door.broker
        .create_topic(NewTopic::new("late", 1))
        .await
        .expect("create");
    let response = door
        .post("/v1/topics/late/call?timeout_ms=100", "slow")
        .send()
        .await
        .expect("POST");
    let (status, body) = json(response).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
    assert_eq!(body["error_code"], "call_timeout");
    let id = body["correlation_id"].as_str().expect("id").to_owned();
    assert_eq!(door.broker.reqreply_stats().waiting_calls, 0);

    let (status, body) = json(door.get(&format!("/v1/topics/late/call/{id}")).await).await;
    assert_eq!(
        status,
        StatusCode::GATEWAY_TIMEOUT,
        "known but not answered: {body}"
    );

    // The counters are in /metrics; a reply without a correlation id is counted, not delivered.
    door.broker
        .produce("__brook_replies", vec![ProduceRecord::value("stray")])
        .await
        .expect("a stray reply");
    let metrics = door.metrics_until("reason=\"malformed_reply\"} 1").await;
    assert!(metrics.contains("brook_calls_waiting 0"), "{metrics}");
    assert!(metrics.contains("brook_call_ids 1"), "{metrics}");

    door.respond("late");
    let response = door
        .get(&format!("/v1/topics/late/call/{id}?wait_ms=10000"))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(correlation_id(&response), id);
    assert_eq!(response.text().await.expect("body"), r#"{"said":"SLOW"}"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_makes_retries_send_one_request() {
    let door = Door::start().await;
    door.broker
        .create_topic(NewTopic::new("orders", 1))
        .await
        .expect("create");
    for _ in 0..2 {
        let response = door
            .post("/v1/topics/orders/call?timeout_ms=50", "buy")
            .header("idempotency-key", "order-42")
            .send()
            .await
            .expect("POST");
        assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(correlation_id(&response), "order-42");
    }
    door.respond("orders");
    let mut bodies = Vec::new();
    for _ in 0..2 {
        let response = door
            .post("/v1/topics/orders/call?timeout_ms=10000", "buy")
            .header("idempotency-key", "order-42")
            .send()
            .await
            .expect("POST");
        assert_eq!(response.status(), StatusCode::OK);
        bodies.push(response.text().await.expect("body"));
    }
    assert_eq!(bodies, [r#"{"said":"BUY"}"#, r#"{"said":"BUY"}"#]);
    assert_eq!(
        door.requests_in("orders").await,
        1,
        "one request for four tries"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_calls_are_refused() {
    let door = Door::start().await;
    let status_of = |response: reqwest::Response| response.status();
    let post = |path: &'static str| door.post(path, "v").send();
    assert_eq!(
        status_of(post("/v1/topics/t/call?timeout_ms=0").await.expect("POST")),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        status_of(post("/v1/topics/t/call?offset=3").await.expect("POST")),
        StatusCode::BAD_REQUEST,
        "unknown query parameters are refused"
    );
    // The reply topic is internal (403 before the call) and never a request topic (400).
    let reply_topic = status_of(post("/v1/topics/__brook_replies/call").await.expect("POST"));
    assert!(
        [StatusCode::FORBIDDEN, StatusCode::BAD_REQUEST].contains(&reply_topic),
        "{reply_topic}"
    );
    assert_eq!(
        status_of(post("/v1/topics/bad..name!/call").await.expect("POST")),
        StatusCode::BAD_REQUEST
    );
    let response = door
        .post("/v1/topics/t/call", "v")
        .header("idempotency-key", "x".repeat(300))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let (status, body) = json(door.get("/v1/topics/t/call/never-made").await).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error_code"], "unknown_call");
    assert_eq!(body["correlation_id"], "never-made");
    let (status, _) = json(door.get("/v1/topics/t/call/x?wait_ms=999999999").await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        door.broker.describe_topic("t").is_err(),
        "nothing was created"
    );
}
