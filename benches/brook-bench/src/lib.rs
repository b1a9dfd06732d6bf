//! The benchmark harness behind `brook bench`: load over a door (gRPC, HTTP, Kafka; one `protocol` module each), measured
//! against plain TCP over loopback moving the same bytes in the same run.
//!
//! `brook bench produce|consume|e2e` either reaches a running `brook serve` (`--server`) or
//! starts a broker and its doors in this process on a temporary directory and OS-chosen
//! ports (`--embedded`: the same start-up code as `brook serve`), and benches over the real
//! socket. `--protocol embedded` skips the socket and calls the broker's API directly, to show
//! what a door adds. A progress bar runs on stderr (hidden with `--json` or when stderr is not
//! a terminal); the report says records/s, MB/s (record value bytes, 10^6) and p50/p99/p99.9
//! latency, each beside its baseline and their ratio (brook / baseline); a produce run against a
//! separate server also runs its baseline with the baseline's server on threads of its own
//! (`apart`), and one over the gRPC door shows what a bare gRPC call costs (`grpc_floor`). See
//! docs/benchmarks.md.

mod apart;
mod baseline;
mod call;
mod compare;
mod grpc_floor;
mod machine;
mod protocol;
mod report;
mod workload;

use std::process::ExitCode;

use anyhow::{bail, Context};
use brook::broker::{Broker, BrokerConfig, Durability};

use brook::server::{DoorKind, Listen, ServeConfig, Server};
use protocol::{ProtocolKind, TopicSpec};
use report::{Measured, Report, RunInfo};
use workload::Plan;

/// What a run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    /// Producers send batches; latency is send to ack.
    Produce,
    /// The topic is filled, then read back; latency is the time of each receive.
    Consume,
    /// Producers at --rate, consumers subscribed; latency is send to receipt.
    E2e,
    /// Request-reply over gRPC: --producers callers at --rate calls/s in all, --consumers
    /// echo responders; latency is call to reply, beside plain unary gRPC calls.
    Call,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::Produce => "produce",
            Workload::Consume => "consume",
            Workload::E2e => "e2e",
            Workload::Call => "call",
        }
    }

    fn latency(self) -> &'static str {
        match self {
            Workload::Produce => "send to ack of each batch, counted once per record",
            Workload::Consume => {
                "time of each receive (one stream read or poll, any number of records)"
            }
            Workload::E2e => "send to receipt by a subscriber, per record",
            Workload::Call => call::LATENCY,
        }
    }

    fn baseline(self) -> &'static str {
        match self {
            Workload::Produce => {
                "plain TCP over loopback: each batch one frame answered by an 8-byte ack, same \
                 connections and window"
            }
            Workload::Consume => {
                "plain TCP over loopback: the same bytes streamed in batch-sized frames, one \
                 connection per consumer; latency per frame read"
            }
            Workload::E2e => {
                "plain TCP over loopback: the same paced batches echoed back by a server (two \
                 hops, as producer to broker to subscriber)"
            }
            Workload::Call => call::BASELINE,
        }
    }
}

/// Measure brook under load, beside plain TCP over loopback.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    #[arg(value_enum)]
    workload: Workload,
    /// The doors to bench, one after the other in this run (comma-separated, e.g. grpc,kafka):
    /// each is reported beside the same baseline, then all side by side.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "grpc")]
    protocol: Vec<ProtocolKind>,
    /// A running brook's address for the protocol (http://HOST:PORT).
    /// [default: gRPC http://127.0.0.1:50051, HTTP http://127.0.0.1:8080]
    #[arg(long, value_name = "URL", conflicts_with = "embedded")]
    server: Option<String>,
    /// Start a broker and its doors in this process (temporary directory, ports chosen by the
    /// OS) and bench over their real sockets.
    #[arg(long)]
    embedded: bool,
    /// Topic to use; created with --partitions when missing (and deleted afterwards).
    #[arg(long, default_value = "brook-bench")]
    topic: String,
    /// Bytes of each record's value (no key).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=16 << 20))]
    record_bytes: u64,
    /// Records to move.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    records: u64,
    /// Records per batch (one request).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    batch: u64,
    /// Concurrent producers, each with its own connection.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=256))]
    producers: u64,
    /// Concurrent consumers, each with its own connection (at most --partitions).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=256))]
    consumers: u64,
    /// Partitions of the topic; producers send to them in turn.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    partitions: u32,
    /// Batches each producer has sent and not yet seen acknowledged, at most.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=256))]
    in_flight: u64,
    /// Durability of the topic (sync, interval:MS, none) when this run creates it, and of the
    /// embedded broker. [default: the broker's, sync]
    #[arg(long)]
    durability: Option<Durability>,
    /// e2e: records per second, over all producers.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    rate: u64,
    /// Print one JSON object instead of the table (and no progress bar); with several
    /// --protocol, a JSON array of them.
    #[arg(long)]
    json: bool,
    /// PEM file of the certificate (or its CA) the door presents: --protocol grpc and grpc-raw
    /// then connect over TLS to an https:// --server, http too (a `bench-http-tls` build),
    /// kafka to --kafka-addr (a `bench-kafka-tls` build); each connection its own TLS session.
    #[arg(long, value_name = "FILE", conflicts_with = "embedded")]
    tls_ca: Option<std::path::PathBuf>,
    /// The runtime the bench's clients run on: `multi-thread` (tokio's default, a worker per
    /// core) or `current-thread` (every client task on the bench's one thread, as an
    /// application chasing latency would pick with `flavor = "current_thread"`).
    #[arg(long, value_enum, default_value = "multi-thread")]
    client_runtime: ClientRuntime,
    /// Worker threads of the runtime the bench's own servers run on apart from its clients (the
    /// gRPC floor, and produce's baseline apart against a separate server): match the brook
    /// server's `--worker-threads` to compare like with like.
    /// [default: tokio's, a worker per core, as `brook serve`]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    floor_worker_threads: Option<u16>,
    /// Records moved through the first --protocol before anything is measured, and not
    /// counted: the bench's process starts cold (its heap and threads; on a virtual machine
    /// every first touch of memory is a fault on the host), which the first door's figures
    /// would otherwise carry in their tail. 0 for none; `call` has none.
    /// [default: a tenth of --records, at most 10 000]
    #[arg(long, value_name = "N")]
    warmup: Option<u64>,
    #[command(flatten)]
    kafka: protocol::KafkaOptions,
}

/// The most records `--warmup` moves by default.
const WARMUP_RECORDS_MAX: u64 = 10_000;

/// What `--client-runtime` chooses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ClientRuntime {
    /// tokio's multi-thread runtime with its default workers (one per core).
    MultiThread,
    /// tokio's current-thread runtime: every task on the thread that runs the bench.
    CurrentThread,
}

impl ClientRuntime {
    fn name(self) -> &'static str {
        match self {
            ClientRuntime::MultiThread => "multi-thread",
            ClientRuntime::CurrentThread => "current-thread",
        }
    }

    fn build(self) -> std::io::Result<tokio::runtime::Runtime> {
        match self {
            ClientRuntime::MultiThread => tokio::runtime::Runtime::new(),
            ClientRuntime::CurrentThread => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build(),
        }
    }
}

impl BenchArgs {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let plan = self.plan()?;
        let runtime = (self.client_runtime.build()).context("cannot start the tokio runtime")?;
        let reports = if self.workload == Workload::Call {
            vec![runtime.block_on(call::bench(&self, &plan))?]
        } else {
            runtime.block_on(self.bench(&plan))?
        };
        match (self.json, reports.as_slice()) {
            (true, [report]) => println!("{}", report.json()?),
            (true, _) => println!("{}", serde_json::to_string(&reports)?),
            (false, _) => print!("{}", compare::tables(&reports)),
        }
        Ok(ExitCode::SUCCESS)
    }

    fn plan(&self) -> anyhow::Result<Plan> {
        if self.protocol.contains(&ProtocolKind::Kafka) {
            protocol::require_kafka_built()?;
        }
        if self.protocol.contains(&ProtocolKind::KafkaRaw) && self.workload != Workload::Produce {
            bail!(protocol::KAFKA_RAW_PRODUCE_ONLY);
        }
        if self.consumers > u64::from(self.partitions) {
            bail!(
                "--consumers {} is more than --partitions {}: each consumer reads whole partitions",
                self.consumers,
                self.partitions
            );
        }
        if self.workload == Workload::E2e && self.record_bytes < workload::STAMP_BYTES as u64 {
            bail!(
                "e2e stamps each record with its send time: --record-bytes must be at least {}",
                workload::STAMP_BYTES
            );
        }
        let size = |n: u64| usize::try_from(n).context("value too large for this machine");
        Ok(Plan {
            topic: self.topic.clone(),
            records: self.records,
            record_bytes: size(self.record_bytes)?,
            batch: size(self.batch)?,
            producers: size(self.producers)?,
            consumers: size(self.consumers)?,
            partitions: self.partitions,
            in_flight: size(self.in_flight)?,
            rate: self.rate,
        })
    }

    /// Records of the unmeasured run before the first door's (`--warmup`): none for `call`,
    /// else at least one batch per producer, so that every producer's path is warmed.
    fn warmup_records(&self, plan: &Plan) -> u64 {
        let asked = self
            .warmup
            .unwrap_or((plan.records / 10).min(WARMUP_RECORDS_MAX));
        match asked {
            0 => 0,
            _ if self.workload == Workload::Call => 0,
            _ => asked.max(plan.batch as u64 * plan.producers as u64),
        }
    }

    /// Runs the workload through the first door without counting it (`--warmup`).
    async fn warm_up(&self, target: &Target, plan: &Plan) -> anyhow::Result<()> {
        let warmup = self.warmup_records(plan);
        let Some((kind, kafka)) = self.runs().into_iter().next().filter(|_| warmup > 0) else {
            return Ok(());
        };
        let warm = Plan {
            records: warmup,
            ..plan.clone()
        };
        let warmed = self.measure(kind, &kafka, target, &warm).await;
        warmed
            .map(|_| ())
            .with_context(|| format!("warm-up through --protocol {}", kind.name()))
    }

    async fn bench(&self, plan: &Plan) -> anyhow::Result<Vec<Report>> {
        let target = Target::start(self.embedded, self.durability).await?;
        let mut runs = Vec::with_capacity(self.protocol.len());
        let mut failed = self.warm_up(&target, plan).await.err();
        for (kind, kafka) in self.runs() {
            if failed.is_some() {
                break;
            }
            match self.measure(kind, &kafka, &target, plan).await {
                Ok(run) => runs.push((kind, kafka, run)),
                Err(e) => {
                    failed = Some(e.context(format!("--protocol {}", kind.name())));
                }
            }
        }
        let remote = matches!(target, Target::Remote);
        target.stop().await?;
        if let Some(e) = failed {
            return Err(e);
        }
        let baseline = match self.workload {
            Workload::Produce => baseline::produce(plan, self.durable()).await,
            Workload::Consume => baseline::consume(plan).await,
            Workload::E2e => baseline::e2e(plan).await,
            // Its baseline needs the server: `call::bench` measures both.
            Workload::Call => Err(anyhow::anyhow!("brook bench call runs in call::bench")),
        }
        .context("baseline")?;
        // Against a separate server, produce's baseline again with its server apart as well.
        let apart = match self.workload == Workload::Produce && remote {
            true => Some(
                baseline::produce_apart(plan, self.durable(), self.floor_worker_threads)
                    .await
                    .context("baseline apart")?,
            ),
            false => None,
        };
        // A produce run over the gRPC door also measures what a bare gRPC call costs.
        let grpc = |kind: &ProtocolKind| matches!(kind, ProtocolKind::Grpc | ProtocolKind::GrpcRaw);
        let floor = match self.workload == Workload::Produce && runs.iter().any(|r| grpc(&r.0)) {
            true => {
                let floors = grpc_floor::produce(plan, self.floor_worker_threads)
                    .await
                    .context("gRPC floor")?;
                Some(report::GrpcFloor::new(
                    &floors.channel,
                    &floors.direct,
                    self.floor_worker_threads,
                ))
            }
            false => None,
        };
        let reports = runs
            .into_iter()
            .map(|(kind, kafka, (measured, address, acked))| {
                let report =
                    Report::new(self.info(kind, &kafka, plan, address), &measured, &baseline);
                report
                    .with_grpc_floor(grpc(&kind).then(|| floor.clone()).flatten())
                    .with_baseline_apart(apart.as_ref(), self.floor_worker_threads)
                    .with_ack(acked.as_ref())
            })
            .collect();
        Ok(reports)
    }

    /// The PEM `--tls-ca` names, read.
    fn tls_ca(&self) -> anyhow::Result<Option<Vec<u8>>> {
        self.tls_ca
            .as_ref()
            .map(|path| {
                std::fs::read(path)
                    .with_context(|| format!("cannot read --tls-ca {}", path.display()))
            })
            .transpose()
    }

    /// Whether acks wait for fdatasync: `sync`, or no `--durability` (brook's default), so
    /// the produce baseline does too.
    fn durable(&self) -> bool {
        matches!(self.durability, None | Some(Durability::Sync))
    }

    /// Each run of this bench: every `--protocol`, the Kafka door once per variant its options
    /// ask for (`--transactional false,true`, `--isolation ...`), each with its options.
    fn runs(&self) -> Vec<(ProtocolKind, protocol::KafkaOptions)> {
        self.protocol
            .iter()
            .flat_map(|&kind| match kind {
                ProtocolKind::Kafka => self
                    .kafka
                    .variants()
                    .into_iter()
                    .map(|variant| (kind, variant))
                    .collect(),
                _ => vec![(kind, self.kafka.clone())],
            })
            .collect()
    }

    fn info(
        &self,
        kind: ProtocolKind,
        kafka: &protocol::KafkaOptions,
        plan: &Plan,
        address: String,
    ) -> RunInfo {
        RunInfo {
            workload: self.workload.name(),
            protocol: match kind {
                ProtocolKind::Kafka => kafka.label(),
                _ => kind.name(),
            },
            target: if self.embedded { "embedded" } else { "server" },
            address,
            topic: plan.topic.clone(),
            record_bytes: plan.record_bytes,
            batch: plan.batch,
            producers: plan.producers,
            consumers: plan.consumers,
            partitions: plan.partitions,
            in_flight: plan.in_flight,
            rate: (self.workload == Workload::E2e).then_some(plan.rate),
            durability: self
                .durability
                .map_or_else(|| "the broker's default".to_owned(), |d| d.to_string()),
            latency: self.workload.latency(),
            baseline_kind: match (self.workload, self.durable()) {
                (Workload::Produce, true) => {
                    "plain TCP over loopback: each batch one frame, written to a file and \
                     fdatasync'ed before its 8-byte ack (no group commit), same connections and \
                     window"
                }
                (workload, _) => workload.baseline(),
            },
            client_runtime: self.client_runtime.name(),
            cpu_idle: machine::cpu_idle(),
            warmup_records: self.warmup_records(plan),
        }
    }

    /// Runs the workload through the door; returns what it measured, where it went, and (e2e)
    /// send to ack of the same records.
    async fn measure(
        &self,
        kind: ProtocolKind,
        kafka: &protocol::KafkaOptions,
        target: &Target,
        plan: &Plan,
    ) -> anyhow::Result<(Measured, String, Option<Measured>)> {
        let tls_ca = self.tls_ca()?;
        let (protocol, address) = protocol::connect(
            kind,
            target,
            self.server.as_deref(),
            tls_ca.as_deref(),
            kafka,
        )
        .await
        .context("connecting")?;
        let spec = TopicSpec {
            name: plan.topic.clone(),
            partitions: plan.partitions,
            durability: self.durability,
        };
        let created = protocol.prepare_topic(&spec).await?;
        if !created && self.durability.is_some() {
            tracing::warn!(topic = %plan.topic, "the topic exists: its own durability applies, not --durability");
        }
        let bar = report::progress(plan.records, self.workload.name(), self.json);
        let measured = match self.workload {
            Workload::Produce => workload::produce(protocol.as_ref(), plan, &bar)
                .await
                .map(|m| (m, None)),
            Workload::Consume => {
                let fill = report::progress(plan.records, "filling", self.json);
                (workload::consume(protocol.as_ref(), plan, &fill, &bar).await).map(|m| (m, None))
            }
            Workload::E2e => workload::e2e(protocol.as_ref(), plan, &bar)
                .await
                .map(|(receipt, acked)| (receipt, Some(acked))),
            Workload::Call => Err(anyhow::anyhow!("brook bench call runs in call::bench")),
        };
        bar.finish_and_clear();
        if created {
            if let Err(e) = protocol.delete_topic(&plan.topic).await {
                tracing::warn!(topic = %plan.topic, error = %e, "cannot delete the bench topic");
            }
        }
        let (measured, acked) = measured?;
        Ok((measured, address, acked))
    }
}

/// Where the bench sends its load.
#[derive(Debug)]
pub enum Target {
    /// A running brook.
    Remote,
    /// A broker and its doors started by the bench, on a directory removed afterwards.
    Embedded {
        server: Server,
        _dir: tempfile::TempDir,
    },
}

impl Target {
    async fn start(embedded: bool, durability: Option<Durability>) -> anyhow::Result<Target> {
        if !embedded {
            return Ok(Target::Remote);
        }
        let dir = tempfile::Builder::new()
            .prefix("brook-bench-")
            .tempdir()
            .context("cannot create a temporary data directory")?;
        let mut broker = BrokerConfig::new(dir.path());
        if let Some(durability) = durability {
            broker.log.durability = durability;
        }
        let any_port = |addr: &str| addr.parse().map(Listen::On);
        let mut config = ServeConfig::default();
        config.broker = broker;
        config.grpc_addr = any_port("127.0.0.1:0")?;
        config.kafka_addr = any_port("127.0.0.1:0")?;
        config.http_addr = any_port("127.0.0.1:0")?;
        let server = Server::start(&config).await?;
        Ok(Target::Embedded { server, _dir: dir })
    }

    /// The address of `door` of the embedded server.
    pub fn door_addr(&self, door: DoorKind) -> Option<std::net::SocketAddr> {
        match self {
            Target::Remote => None,
            Target::Embedded { server, .. } => server.addr(door),
        }
    }

    /// The embedded broker, when the bench started one.
    pub fn broker(&self) -> Option<&Broker> {
        match self {
            Target::Remote => None,
            Target::Embedded { server, .. } => server.broker(),
        }
    }

    async fn stop(self) -> anyhow::Result<()> {
        match self {
            Target::Remote => Ok(()),
            Target::Embedded { server, _dir } => Ok(server.stop().await?),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        bench: BenchArgs,
    }

    fn args(line: &[&str]) -> BenchArgs {
        let argv = std::iter::once("bench").chain(line.iter().copied());
        Cli::try_parse_from(argv).expect("flags parse").bench
    }

    /// On a current-thread runtime a produce and an e2e run (whose paced producer threads
    /// enter the runtime from outside) both finish over the embedded server's real sockets;
    /// e2e reports send to ack beside send to receipt.
    #[test]
    fn the_current_thread_client_runtime_runs_produce_and_e2e() {
        for workload in ["produce", "e2e"] {
            let bench = args(&[
                workload,
                "--embedded",
                "--json",
                "--client-runtime",
                "current-thread",
                "--protocol",
                "grpc,grpc-raw",
                "--records",
                "300",
                "--batch",
                "1",
                "--in-flight",
                "1",
                "--rate",
                "3000",
                "--durability",
                "none",
            ]);
            assert_eq!(bench.client_runtime, ClientRuntime::CurrentThread);
            let plan = bench.plan().expect("plan");
            let runtime = bench.client_runtime.build().expect("runtime");
            let reports = runtime.block_on(bench.bench(&plan)).expect(workload);
            assert_eq!(reports.len(), 2);
            for report in reports {
                assert_eq!(report.info.client_runtime, "current-thread");
                assert_eq!(report.brook.records, 300);
                // e2e times send to ack of the same records beside send to receipt.
                let ack = report.ack.as_ref().map(|ack| ack.records);
                assert_eq!(ack, (workload == "e2e").then_some(300), "{workload}");
            }
        }
    }

    #[test]
    fn kafka_raw_refuses_every_workload_but_produce() {
        for workload in ["consume", "e2e", "call"] {
            let err = args(&[workload, "--protocol", "kafka-raw"])
                .plan()
                .expect_err(workload);
            assert!(
                err.to_string().contains("produce only"),
                "{workload}: {err}"
            );
        }
        assert!(args(&["produce", "--protocol", "grpc,kafka-raw"])
            .plan()
            .is_ok());
    }

    /// The warm-up runs through the first door before the measured runs and is not counted.
    #[test]
    fn a_warm_up_runs_first_and_is_not_counted() {
        let line = |warmup: Option<&'static str>| {
            let mut line = vec![
                "e2e",
                "--embedded",
                "--json",
                "--protocol",
                "embedded",
                "--records",
                "300",
                "--batch",
                "1",
                "--rate",
                "3000",
                "--durability",
                "none",
            ];
            line.extend(warmup.map(|w| ["--warmup", w]).into_iter().flatten());
            args(&line)
        };
        for (warmup, expected) in [(None, 30), (Some("100"), 100), (Some("0"), 0)] {
            let bench = line(warmup);
            let plan = bench.plan().expect("plan");
            assert_eq!(bench.warmup_records(&plan), expected, "{warmup:?}");
            let runtime = bench.client_runtime.build().expect("runtime");
            let reports = runtime.block_on(bench.bench(&plan)).expect("bench");
            assert_eq!(reports[0].info.warmup_records, expected);
            assert_eq!(reports[0].brook.records, 300, "{warmup:?}");
        }
        // At least one batch per producer; none for request-reply.
        let bench = args(&[
            "produce",
            "--records",
            "100",
            "--batch",
            "50",
            "--producers",
            "2",
        ]);
        assert_eq!(bench.warmup_records(&bench.plan().expect("plan")), 100);
        let bench = args(&["call", "--records", "1000"]);
        assert_eq!(bench.warmup_records(&bench.plan().expect("plan")), 0);
    }

    #[test]
    fn runtimes_are_the_ones_asked_for() {
        let flavor = |r: ClientRuntime| r.build().expect("runtime").handle().runtime_flavor();
        use tokio::runtime::RuntimeFlavor;
        assert_eq!(
            flavor(ClientRuntime::CurrentThread),
            RuntimeFlavor::CurrentThread
        );
        assert_eq!(
            flavor(ClientRuntime::MultiThread),
            RuntimeFlavor::MultiThread
        );
    }
}
