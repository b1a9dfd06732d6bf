//! `brook serve` as the built binary: it starts its doors on port 0 and says where, serves a
//! real client, stops clean on SIGTERM and SIGINT (exit 0, a log that reopens without a
//! recovery scan, nothing acknowledged lost), refuses a second server on the same data
//! directory and a taken port with one clear line, and layers flags over `BROOK_*` variables
//! over the config file.

#[path = "serve_child/mod.rs"]
mod serve_child;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serve_child::{brook, Stopped};

use brook_broker::{Broker, BrokerConfig};
use brook_client::{Client, NewTopic, ProducerRecord};

/// `brook serve` on `data` with gRPC and HTTP on port 0, plus `extra`.
fn serve_command(data: &Path, extra: &[&str]) -> Command {
    let data = data.to_str().expect("utf-8 path");
    let mut args = vec!["serve", "--data-dir", data];
    args.extend_from_slice(&["--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"]);
    args.extend_from_slice(extra);
    brook(&args)
}

/// A running `brook serve` and the addresses it printed.
struct Served {
    server: serve_child::Served,
    grpc: SocketAddr,
    kafka: Option<SocketAddr>,
    http: Option<SocketAddr>,
}

impl Served {
    /// Starts `brook serve` on `data` with every door on port 0, plus `extra`.
    fn start(data: &Path, extra: &[&str]) -> Served {
        let data = data.to_str().expect("utf-8 path");
        let mut args = vec!["--data-dir", data, "--kafka-addr", "127.0.0.1:0"];
        args.extend_from_slice(&["--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"]);
        args.extend_from_slice(extra);
        let server = serve_child::Served::start(&args);
        let door = |name: &str| -> Option<SocketAddr> {
            let addr = server.serves(name).then(|| server.addr(name))?;
            Some(addr.parse().expect("a socket address"))
        };
        Served {
            grpc: door("grpc").expect("a gRPC listening line"),
            kafka: door("kafka"),
            http: door("http"),
            server,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.grpc)
    }

    /// Sends `signal` and waits for the exit.
    fn stop(self, signal: libc::c_int) -> Stopped {
        self.server.signal(signal)
    }
}

/// Every partition of the data directory reopened clean: the last stop wrote its marker.
/// A plain HTTP/1.1 `GET /healthz` answers 200 with the door's status body.
fn assert_http_healthy(addr: SocketAddr) {
    let mut stream = TcpStream::connect(addr).expect("the HTTP door accepts connections");
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: brook\r\nconnection: close\r\n\r\n")
        .expect("send the request");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read the answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "answer: {answer}");
    assert!(answer.contains(r#""status":"ok""#), "answer: {answer}");
}

async fn assert_reopens_clean(data: &Path) -> Broker {
    let broker = Broker::open(BrokerConfig::new(data))
        .await
        .expect("data directory reopens");
    let reports = broker.recovery_reports();
    assert!(!reports.is_empty(), "the test created partitions");
    for (partition, report) in &reports {
        assert!(report.clean, "{partition} needed recovery: {report:?}");
        assert_eq!(report.scanned_bytes, 0, "{partition}: no recovery scan");
    }
    broker
}

fn last_line(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    text.lines().last().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_grpc_and_stops_clean_on_sigterm_with_produces_in_flight() {
    let data = tempfile::tempdir().expect("tempdir");
    let served = Served::start(data.path(), &[]);
    let kafka = served.kafka.expect("the Kafka door is on by default");
    TcpStream::connect(kafka).expect("the Kafka door accepts connections");
    let http = served.http.expect("the HTTP door is on by default");
    assert_http_healthy(http);

    let client = Client::connect(served.url()).await.expect("connect");
    client
        .admin()
        .create_topic(NewTopic::new("orders", 2))
        .await
        .expect("create topic");
    let positions = client
        .produce(
            "orders",
            (0..10)
                .map(|i| ProducerRecord::value(format!("order {i}")).with_partition(i % 2))
                .collect(),
        )
        .await
        .expect("produce");
    assert_eq!(positions.len(), 10);

    // Producers keep going while the signal lands; every produce that was acknowledged must
    // be in the log afterwards, and none may see anything but success or a clean refusal.
    let mut producers = Vec::new();
    for partition in 0..2u32 {
        let client = client.clone();
        producers.push(tokio::spawn(async move {
            let mut acked = 0u64;
            loop {
                let record = ProducerRecord::value("in flight").with_partition(partition);
                match client.produce("orders", vec![record]).await {
                    Ok(_) => acked += 1,
                    Err(_) => return acked,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stopped = tokio::task::spawn_blocking(move || served.stop(libc::SIGTERM))
        .await
        .expect("stop");
    assert_eq!(
        stopped.status.code(),
        Some(0),
        "exit 0 on SIGTERM; stderr: {}",
        stopped.stderr
    );
    assert_eq!(stopped.lines, ["brook: stopped cleanly"]);
    let mut acked = [0u64; 2];
    for (partition, producer) in producers.into_iter().enumerate() {
        acked[partition] = producer.await.expect("producer task");
    }
    assert!(
        acked.iter().sum::<u64>() > 0,
        "produces ran during the test"
    );

    let broker = assert_reopens_clean(data.path()).await;
    let topic = broker.describe_topic("orders").expect("topic survives");
    for p in &topic.partitions {
        let acknowledged = 5 + acked[p.partition as usize];
        assert!(
            p.high_watermark >= acknowledged,
            "partition {}: {} acknowledged, {} in the log",
            p.partition,
            acknowledged,
            p.high_watermark
        );
    }
    broker.close().await.expect("close");
}

#[tokio::test]
async fn sigint_stops_clean_too() {
    let data = tempfile::tempdir().expect("tempdir");
    let served = Served::start(data.path(), &["--durability", "none"]);
    let client = Client::connect(served.url()).await.expect("connect");
    client
        .produce("auto-created", vec![ProducerRecord::value("x")])
        .await
        .expect("produce creates the topic");
    let stopped = tokio::task::spawn_blocking(move || served.stop(libc::SIGINT))
        .await
        .expect("stop");
    assert_eq!(stopped.status.code(), Some(0), "{}", stopped.stderr);
    assert_reopens_clean(data.path())
        .await
        .close()
        .await
        .expect("close");
}

#[test]
fn a_second_server_on_the_same_data_directory_names_the_holder() {
    let data = tempfile::tempdir().expect("tempdir");
    let first = Served::start(data.path(), &[]);
    let second = serve_command(data.path(), &["--kafka-addr", "off"])
        .output()
        .expect("run a second brook serve");
    assert_eq!(second.status.code(), Some(2));
    let error = last_line(&second.stderr);
    assert!(
        error.starts_with("error: ")
            && error.contains("locked")
            && error.contains(&format!("pid {}", first.server.id())),
        "{error}"
    );
    assert!(second.stdout.is_empty(), "nothing was served");
}

#[test]
fn a_taken_port_is_one_line_naming_the_door_and_address_and_frees_the_data_directory() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("address").to_string();
    let data = tempfile::tempdir().expect("tempdir");
    let output = serve_command(
        data.path(),
        &["--kafka-addr", &addr, "--log-level", "error"],
    )
    .output()
    .expect("run brook serve");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    let error = last_line(&output.stderr);
    assert!(
        error.starts_with("error: ") && error.contains("Kafka") && error.contains(&addr),
        "{error}"
    );
    // The failed start released the lock: another server opens the directory at once.
    drop(Served::start(data.path(), &[]));
}

#[test]
fn flags_beat_environment_beats_config_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("brook.toml");
    std::fs::write(
        &file,
        "segment_bytes_max = 4096\nmessage_bytes_max = 2048\nretention_ms_max = \"none\"\n\
         kafka_addr = \"off\"\n",
    )
    .expect("write config");
    let output = brook(&[
        "serve",
        "--config",
        file.to_str().expect("utf-8"),
        "--segment-bytes-max",
        "16384",
        "--print-config",
    ])
    .env("BROOK_SEGMENT_BYTES_MAX", "8192")
    .env("BROOK_MESSAGE_BYTES_MAX", "4096")
    .output()
    .expect("run brook serve --print-config");
    assert!(output.status.success(), "{output:?}");
    let printed = String::from_utf8_lossy(&output.stdout);
    let line = |key: &str| {
        printed
            .lines()
            .find(|l| l.starts_with(&format!("{key} = ")))
            .unwrap_or_else(|| panic!("{key} missing from {printed}"))
            .to_owned()
    };
    assert_eq!(
        line("segment_bytes_max"),
        "segment_bytes_max = 16384  # flag --segment-bytes-max"
    );
    assert_eq!(
        line("message_bytes_max"),
        "message_bytes_max = 4096  # environment variable BROOK_MESSAGE_BYTES_MAX"
    );
    assert!(line("retention_ms_max").starts_with("retention_ms_max = \"none\"  # file "));
    assert!(line("kafka_addr").starts_with("kafka_addr = \"off\"  # file "));
    assert_eq!(line("durability"), "durability = \"sync\"  # default");

    let bad = brook(&["serve", "--durability", "fast"])
        .output()
        .expect("run brook serve");
    assert_eq!(bad.status.code(), Some(2));
    let error = last_line(&bad.stderr);
    assert!(
        error.contains("durability") && error.contains("--durability"),
        "{error}"
    );
}
