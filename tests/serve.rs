//! `brook serve` as the built binary: it starts its doors on port 0 and says where, serves a
//! real client, stops clean on SIGTERM and SIGINT (exit 0, a log that reopens without a
//! recovery scan, nothing acknowledged lost), refuses a second server on the same data
//! directory and a taken port with one clear line, and layers flags over `BROOK_*` variables
//! over the config file.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use brook_broker::{Broker, BrokerConfig};
use brook_client::{Client, NewTopic, ProducerRecord};

/// How long a server may take to print `brook: ready`; only reached when something is wrong.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// `brook` with the test's arguments and none of the runner's `BROOK_*` variables.
fn brook(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_brook"));
    for (var, _) in std::env::vars().filter(|(var, _)| var.starts_with("BROOK_")) {
        command.env_remove(var);
    }
    command.env_remove("RUST_LOG").args(args);
    command
}

/// `brook serve` on `data` with gRPC on port 0 and HTTP off, plus `extra`.
fn serve_command(data: &Path, extra: &[&str]) -> Command {
    let data = data.to_str().expect("utf-8 path");
    let mut args = vec![
        "serve",
        "--data-dir",
        data,
        "--grpc-addr",
        "127.0.0.1:0",
        "--http-addr",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(extra);
    brook(&args)
}

/// A running `brook serve` and the addresses it printed.
struct Served {
    child: Child,
    grpc: SocketAddr,
    kafka: Option<SocketAddr>,
    http: Option<SocketAddr>,
    /// Stdout lines after `brook: ready`.
    lines: mpsc::Receiver<String>,
    /// Everything the server writes to stderr, read as it comes so it never blocks on a full
    /// pipe.
    stderr: Option<std::thread::JoinHandle<String>>,
}

/// How a server ended.
struct Stopped {
    status: ExitStatus,
    stderr: String,
    /// Stdout lines printed after `brook: ready`.
    lines: Vec<String>,
}

impl Served {
    /// Starts `brook serve` on `data` with every door on port 0, plus `extra`.
    fn start(data: &Path, extra: &[&str]) -> Served {
        let mut args = vec!["--kafka-addr", "127.0.0.1:0", "--log-level", "warn"];
        args.extend_from_slice(extra);
        let mut child = serve_command(data, &args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn brook serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut stderr_pipe = child.stderr.take().expect("stderr");
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr_pipe.read_to_string(&mut text);
            text
        });
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let (mut grpc, mut kafka, mut http) = (None, None, None);
        loop {
            let Ok(line) = lines.recv_timeout(START_TIMEOUT) else {
                let _ = child.kill();
                let _ = child.wait();
                let stderr = stderr.join().unwrap_or_default();
                panic!("brook serve did not get ready: {stderr}");
            };
            if let Some(addr) = line.strip_prefix("brook: grpc listening on ") {
                grpc = Some(addr.parse().expect("gRPC address"));
            } else if let Some(addr) = line.strip_prefix("brook: kafka listening on ") {
                kafka = Some(addr.parse().expect("Kafka address"));
            } else if let Some(addr) = line.strip_prefix("brook: http listening on ") {
                http = Some(addr.parse().expect("HTTP address"));
            } else if line.starts_with("brook: ready") {
                break;
            }
        }
        Served {
            child,
            grpc: grpc.expect("a gRPC listening line"),
            kafka,
            http,
            lines,
            stderr: Some(stderr),
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.grpc)
    }

    /// Sends `signal` and waits for the exit.
    #[allow(unsafe_code)] // kill(2); see the SAFETY comment.
    fn stop(mut self, signal: libc::c_int) -> Stopped {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid fits");
        // SAFETY: kill(2) with a pid we spawned and have not waited for, so it is still ours.
        let rc = unsafe { libc::kill(pid, signal) };
        assert_eq!(rc, 0, "kill failed");
        let status = self.child.wait().expect("wait for brook serve");
        let stderr = self
            .stderr
            .take()
            .map(|t| t.join().unwrap_or_default())
            .unwrap_or_default();
        // The reader thread ends at EOF, after the exit; everything it read is queued.
        let lines = std::iter::from_fn(|| self.lines.recv_timeout(START_TIMEOUT).ok()).collect();
        Stopped {
            status,
            stderr,
            lines,
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        // A failed test must not leave a server behind.
        let _ = self.child.kill();
        let _ = self.child.wait();
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
            && error.contains(&format!("pid {}", first.child.id())),
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
