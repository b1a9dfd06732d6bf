//! Gateway mode: `brook serve --backend kafka://HOST:PORT` as the built binary, in front of a
//! real Kafka-protocol cluster (brook's own Kafka door in another process).
//!
//! It opens no local log and no Kafka door. Its gRPC door creates, describes and produces to
//! the cluster's topics and streams them (by partition and as a group member coordinated by
//! the cluster) while a plain Kafka client writes to the same topic; its HTTP door streams the
//! topic as server-sent events; request-reply runs over the cluster with brook's headers; what
//! Kafka cannot do is refused saying so.

mod scale_out_support;

use std::time::Duration;

use futures::StreamExt;
use rdkafka::consumer::Consumer;
use rdkafka::message::{Headers, Message};
use rdkafka::producer::FutureRecord;

use brook::api::{Brook, Subscribe};
use brook::{Client, OffsetReset, ProduceRecord, StartAt, TopicPartition};
use scale_out_support::{KafkaCluster, Served, PATIENCE};

async fn within<T>(what: &str, work: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, work)
        .await
        .unwrap_or_else(|_| panic!("{what} took longer than {PATIENCE:?}"))
}

/// The values of the first `n` server-sent events of `url`.
async fn sse_values(url: &str, n: usize) -> Vec<String> {
    let response = reqwest::get(url).await.expect("GET the stream");
    assert!(response.status().is_success(), "{}", response.status());
    let mut body = response.bytes_stream();
    let mut text = String::new();
    let mut values = Vec::new();
    while values.len() < n {
        let chunk = within("server-sent events", body.next())
            .await
            .expect("the stream goes on")
            .expect("a chunk");
        text.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = text.find("\n\n") {
            let event: String = text.drain(..end + 2).collect();
            if let Some(data) = event.lines().find_map(|l| l.strip_prefix("data: ")) {
                let record: serde_json::Value = serde_json::from_str(data).expect("JSON record");
                values.push(record["value"].as_str().expect("a text value").to_owned());
            }
        }
    }
    values
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grpc_and_http_doors_serve_a_clusters_topic_while_a_kafka_client_writes_to_it() {
    let cluster_dir = tempfile::tempdir().expect("tempdir");
    // A brook cluster reserves `__brook_replies` (the gateway's calls below) to principals
    // named for it: the gateway logs in as the cluster's superuser.
    let cluster = KafkaCluster::start_secured(cluster_dir.path());
    let properties = cluster.backend_properties();
    let unused = tempfile::tempdir().expect("tempdir");
    let data = unused.path().join("data");
    let gateway = Served::start(&[
        "--backend",
        &cluster.url,
        "--backend-properties",
        &properties,
        "--data-dir",
        data.to_str().expect("utf-8"),
        "--grpc-addr",
        "127.0.0.1:0",
        "--http-addr",
        "127.0.0.1:0",
        "--kafka-addr",
        "127.0.0.1:0",
    ]);
    assert!(
        !gateway.serves("kafka"),
        "the Kafka door is off: {:?}",
        gateway.doors
    );
    assert!(!data.exists(), "no local log is opened");
    let client = Client::connect(format!("http://{}", gateway.addr("grpc")))
        .await
        .expect("connect");
    let http = format!("http://{}", gateway.addr("http"));
    let kafka = cluster.connect().await;

    // Topics made through the gateway are the cluster's.
    Brook::create_topic(&client, "orders", 3)
        .await
        .expect("create");
    assert_eq!(
        kafka
            .partition_count("orders")
            .await
            .expect("on the cluster"),
        3
    );
    let key = "customer-7";
    let partition = brook::broker::partitioner::partition_for_key(key.as_bytes(), 3);

    // A gRPC subscription and an SSE stream follow the partition...
    let mut grpc_stream = Brook::subscribe(
        &client,
        Subscribe::partition("orders", partition, StartAt::Earliest),
    )
    .await
    .expect("subscribe over gRPC");
    let sse = tokio::spawn(sse_values_owned(
        format!("{http}/v1/topics/orders/partitions/{partition}/stream?offset=earliest"),
        6,
    ));
    // ...while a plain Kafka client writes to it.
    let producer = cluster.producer();
    for i in 0..3 {
        let value = format!("from kafka {i}");
        producer
            .send(
                FutureRecord::<str, str>::to("orders")
                    .key(key)
                    .payload(&value),
                PATIENCE,
            )
            .await
            .expect("delivered to the cluster");
    }
    // And gRPC produces to the same partition, with a header.
    let mut record = ProduceRecord::keyed(key, "from grpc 0");
    record.headers = vec![("via".into(), bytes::Bytes::from_static(b"gateway"))];
    let positions = Brook::produce(
        &client,
        "orders",
        vec![
            record,
            ProduceRecord::keyed(key, "from grpc 1"),
            ProduceRecord::keyed(key, "from grpc 2"),
        ],
    )
    .await
    .expect("produce over gRPC");
    assert!(
        positions.iter().all(|p| p.partition == partition),
        "keys stay put"
    );
    let mut streamed = Vec::new();
    while streamed.len() < 6 {
        let record = within("the gRPC stream", grpc_stream.next())
            .await
            .expect("the stream goes on")
            .expect("a record");
        streamed.push(
            String::from_utf8_lossy(record.value.as_deref().unwrap_or_default()).into_owned(),
        );
    }
    let expected: Vec<String> = (0..3)
        .map(|i| format!("from kafka {i}"))
        .chain((0..3).map(|i| format!("from grpc {i}")))
        .collect();
    assert_eq!(streamed, expected);
    assert_eq!(within("the SSE stream", sse).await.expect("task"), expected);

    // A Kafka consumer reads what came through the gateway, header included.
    let reader = cluster.consumer("kafka-reader");
    reader.subscribe(&["orders"]).expect("subscribe");
    let mut via = None;
    while via.is_none() {
        let message = within("a Kafka consumer", reader.recv())
            .await
            .expect("a record");
        if message.payload() == Some(&b"from grpc 0"[..]) {
            let headers = message.headers().expect("headers");
            via = headers
                .iter()
                .find(|h| h.key == "via")
                .and_then(|h| h.value)
                .map(<[u8]>::to_vec);
        }
    }
    assert_eq!(via.as_deref(), Some(&b"gateway"[..]));

    // A group member over gRPC is coordinated by the cluster; its commit is the cluster's.
    let mut member = Brook::subscribe(
        &client,
        Subscribe::group("billing", vec!["orders".into()], OffsetReset::Earliest),
    )
    .await
    .expect("join over gRPC");
    let first = within("the group stream", member.next())
        .await
        .expect("a record")
        .expect("no error");
    drop(member);
    let tp = TopicPartition::new("orders", first.partition);
    within(
        "a commit",
        Brook::commit(&client, "billing", vec![(tp.clone(), first.offset + 1)]),
    )
    .await
    .expect("commit over gRPC");
    let committed = kafka
        .committed_offsets("billing", &[tp])
        .await
        .expect("on the cluster");
    assert_eq!(committed[0].1.offset, first.offset + 1);

    // The gateway's admin describes the cluster's partitions.
    let described = client
        .admin()
        .describe_topic("orders")
        .await
        .expect("describe");
    let hw = described.partitions[partition as usize].high_watermark;
    assert_eq!(
        hw,
        kafka.log_range("orders", partition).await.expect("range").1
    );

    // Request-reply through the gateway: brook's reply topic appears on the cluster.
    let responder = client.clone();
    let answering = tokio::spawn(async move {
        responder
            .respond(
                "quotes",
                "quoting",
                |request: brook::client::IncomingRequest| async move {
                    let asked =
                        String::from_utf8_lossy(request.value.as_deref().unwrap_or_default())
                            .into_owned();
                    Ok::<_, String>(brook::client::Answer::value(format!("quote for {asked}")))
                },
            )
            .await
    });
    let reply = within(
        "a call",
        client.call(
            "quotes",
            brook::client::CallRequest::value("pears").with_timeout(Duration::from_secs(20)),
        ),
    )
    .await
    .expect("replied");
    assert_eq!(reply.value.as_deref(), Some(&b"quote for pears"[..]));
    assert!(kafka.partition_count("__brook_replies").await.is_ok());
    answering.abort();

    // brook's own per-topic durability is refused, saying why.
    let mut durable = brook::client::NewTopic::new("durable", 1);
    durable.config.durability = brook::client::proto::Durability::None as i32;
    let err = client
        .admin()
        .create_topic(durable)
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("brook.durability"), "{err}");
    kafka.close().await.expect("close");
}

async fn sse_values_owned(url: String, n: usize) -> Vec<String> {
    sse_values(&url, n).await
}

#[test]
fn gateway_settings_that_cannot_work_are_refused_before_anything_starts() {
    let unused = tempfile::tempdir().expect("tempdir");
    let data = unused.path().to_str().expect("utf-8");
    let cases: [(&[&str], &str); 3] = [
        (
            &[
                "--backend",
                "kafka://127.0.0.1:9",
                "--grpc-addr",
                "off",
                "--http-addr",
                "off",
            ],
            "nothing would be served",
        ),
        (
            &["--backend-properties", "security.protocol=SSL"],
            "needs backend = kafka://",
        ),
        (&["--backend", "kafka//nowhere"], "not `local` or kafka://"),
    ];
    for (args, says) in cases {
        let mut full = vec!["serve", "--data-dir", data];
        full.extend_from_slice(args);
        let output = scale_out_support::brook(&full)
            .output()
            .expect("run brook serve");
        assert_eq!(output.status.code(), Some(2), "{args:?}: {output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}
