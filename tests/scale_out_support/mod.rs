//! What the scale-out tests share: a Kafka cluster to move to, and brook servers to move from.
//!
//! The cluster is a real Kafka-protocol broker in a separate process: the built `brook`
//! binary serving only its Kafka door, on a data directory of its own, with no fsync and no
//! initial rebalance delay so groups form at once. Every client the tests point at it
//! (librdkafka through `brook-cluster`, the `rdkafka` crate directly) talks to it over a socket
//! as to any Kafka cluster.

#![allow(dead_code)] // each test binary uses its own subset

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use rdkafka::consumer::StreamConsumer;
use rdkafka::producer::FutureProducer;
use rdkafka::ClientConfig;

/// How long a test waits for something that should take well under a second.
pub(crate) const PATIENCE: Duration = Duration::from_secs(30);

/// `brook` with `args` and none of the runner's `BROOK_*` variables.
pub(crate) fn brook(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_brook"));
    for (var, _) in std::env::vars().filter(|(var, _)| var.starts_with("BROOK_")) {
        command.env_remove(var);
    }
    command.env_remove("RUST_LOG").args(args);
    command
}

/// A running `brook serve` and the addresses it printed.
pub(crate) struct Served {
    child: Child,
    /// `door name -> address` as printed (`kafka`, `grpc`, `http`).
    pub doors: Vec<(String, String)>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Served {
    /// Starts `brook serve` with `args` and waits for `brook: ready`.
    pub(crate) fn start(args: &[&str]) -> Served {
        let mut full = vec!["serve", "--log-level", "warn"];
        full.extend_from_slice(args);
        let mut child = brook(&full)
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
        let mut doors = Vec::new();
        loop {
            let Ok(line) = lines.recv_timeout(PATIENCE) else {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "brook serve did not get ready: {}",
                    stderr.join().unwrap_or_default()
                );
            };
            if let Some(rest) = line.strip_prefix("brook: ") {
                if let Some((door, addr)) = rest.split_once(" listening on ") {
                    doors.push((door.to_owned(), addr.to_owned()));
                } else if rest.starts_with("ready") {
                    break;
                }
            }
        }
        Served {
            child,
            doors,
            stderr: Some(stderr),
        }
    }

    /// Where `door` listens.
    pub(crate) fn addr(&self, door: &str) -> String {
        self.doors
            .iter()
            .find(|(name, _)| name == door)
            .map(|(_, addr)| addr.clone())
            .unwrap_or_else(|| panic!("no {door} door in {:?}", self.doors))
    }

    /// Whether `door` is serving.
    pub(crate) fn serves(&self, door: &str) -> bool {
        self.doors.iter().any(|(name, _)| name == door)
    }

    /// Stops the server as an operator does (SIGTERM: a clean close), asserts it exited 0,
    /// and returns its stderr.
    #[allow(unsafe_code)] // kill(2); see the SAFETY comment.
    pub(crate) fn stop(mut self) -> String {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid fits");
        // SAFETY: kill(2) with a pid we spawned and have not waited for, so it is still ours.
        let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(rc, 0, "kill failed");
        let status = self.child.wait().expect("wait for brook serve");
        assert!(status.success(), "brook serve stopped with {status}");
        self.stderr
            .take()
            .and_then(|s| s.join().ok())
            .unwrap_or_default()
    }

    /// Kills the server at once (the target's data is throwaway) and returns its stderr.
    pub(crate) fn kill(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stderr
            .take()
            .and_then(|s| s.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Kafka cluster a test moves to: `brook serve` with only its Kafka door, in a process
/// of its own, on `dir`.
pub(crate) struct KafkaCluster {
    pub server: Served,
    /// `HOST:PORT` for `bootstrap.servers`.
    pub bootstrap: String,
    /// `kafka://HOST:PORT`, as `brook serve --backend` and `brook migrate --to` take it.
    pub url: String,
    /// The librdkafka properties its clients need (SASL for [`KafkaCluster::start_secured`]).
    pub properties: Vec<(&'static str, &'static str)>,
}

/// The superuser a secured cluster's clients log in as (SCRAM-SHA-256).
const CLUSTER_USER: &str = "gateway";
const CLUSTER_PASSWORD: &str = "gateway-secret";

impl KafkaCluster {
    /// Starts the cluster on `dir`.
    pub(crate) fn start(dir: &Path) -> KafkaCluster {
        Self::start_with(dir, &[], Vec::new())
    }

    /// Starts the cluster on `dir` with `--auth on` and one superuser its clients log in as:
    /// a brook broker reserves its internal topics (`__brook_replies`) to principals an ACL or
    /// `--superusers` names, as a secured Kafka cluster would its own, so a gateway's calls
    /// need one.
    pub(crate) fn start_secured(dir: &Path) -> KafkaCluster {
        let data = dir.to_str().expect("utf-8 path");
        let mut add = brook(&[
            "user",
            "add",
            CLUSTER_USER,
            "--data-dir",
            data,
            "--password-stdin",
        ]);
        let mut child = add
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("brook user add");
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().expect("stdin");
            writeln!(stdin, "{CLUSTER_PASSWORD}").expect("password");
        }
        assert!(child.wait().expect("brook user add").success());
        let superuser = format!("User:{CLUSTER_USER}");
        Self::start_with(
            dir,
            &["--auth", "on", "--superusers", &superuser],
            vec![
                ("security.protocol", "SASL_PLAINTEXT"),
                ("sasl.mechanism", "SCRAM-SHA-256"),
                ("sasl.username", CLUSTER_USER),
                ("sasl.password", CLUSTER_PASSWORD),
            ],
        )
    }

    fn start_with(
        dir: &Path,
        extra: &[&str],
        properties: Vec<(&'static str, &'static str)>,
    ) -> KafkaCluster {
        let dir = dir.to_str().expect("utf-8 path");
        let mut args = vec![
            "--data-dir",
            dir,
            "--kafka-addr",
            "127.0.0.1:0",
            "--grpc-addr",
            "off",
            "--http-addr",
            "off",
            "--durability",
            "none",
            "--kafka-group-initial-rebalance-delay-ms",
            "0",
        ];
        args.extend_from_slice(extra);
        let server = Served::start(&args);
        let bootstrap = server.addr("kafka");
        KafkaCluster {
            url: format!("kafka://{bootstrap}"),
            bootstrap,
            server,
            properties,
        }
    }

    /// brook's client of the cluster, with the properties it needs.
    pub(crate) async fn connect(&self) -> brook::Backend {
        let mut config = brook::kafka::ClusterConfig::from_url(&self.url).expect("cluster url");
        for (key, value) in &self.properties {
            config = config.property(*key, *value);
        }
        brook::kafka::connect_with(config).await.expect("connect")
    }

    /// `--backend-properties` for a gateway (`none` without any).
    pub(crate) fn backend_properties(&self) -> String {
        if self.properties.is_empty() {
            return "none".into();
        }
        self.properties
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.bootstrap)
            .set("socket.timeout.ms", "10000")
            .set("topic.metadata.refresh.interval.ms", "1000");
        for (key, value) in &self.properties {
            config.set(*key, *value);
        }
        config
    }

    /// A librdkafka producer placing keys as brook does (`partitioner=murmur2_random`).
    pub(crate) fn producer(&self) -> FutureProducer {
        let mut config = self.client_config();
        config
            .set("acks", "all")
            .set("partitioner", "murmur2_random")
            .set("message.timeout.ms", "15000");
        config.create().expect("producer")
    }

    /// A librdkafka consumer in `group` that commits only when told to.
    pub(crate) fn consumer(&self, group: &str) -> StreamConsumer {
        let mut config = self.client_config();
        config
            .set("group.id", group)
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "300")
            .set("fetch.wait.max.ms", "100");
        config.create().expect("consumer")
    }
}
