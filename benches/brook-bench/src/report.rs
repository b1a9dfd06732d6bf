//! What a bench run measured, and how it is shown: a table with the baseline and the ratio
//! beside each figure, or one JSON object (`--json`).

use std::io::IsTerminal;
use std::time::Duration;

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

/// Latencies are recorded in nanoseconds, from 1 ns to this, at 3 significant digits.
const LATENCY_NS_MAX: u64 = 60_000_000_000;

/// An empty latency histogram.
pub(crate) fn histogram() -> Histogram<u64> {
    // 3 significant digits over 1 ns..60 s is a valid, fixed configuration.
    Histogram::new_with_bounds(1, LATENCY_NS_MAX, 3).expect("valid histogram bounds")
}

/// Records `count` samples of `latency` (clamped into the histogram's range).
pub(crate) fn record(histogram: &mut Histogram<u64>, latency: Duration, count: u64) {
    let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
    histogram.saturating_record_n(ns.clamp(1, LATENCY_NS_MAX), count);
}

/// One side of a run (brook, or its baseline): records moved, their bytes, the time it took,
/// and the latency of each unit the workload defines.
#[derive(Debug, Clone)]
pub(crate) struct Measured {
    pub records: u64,
    /// Record value bytes moved.
    pub bytes: u64,
    pub elapsed: Duration,
    pub latency: Histogram<u64>,
}

impl Measured {
    pub(crate) fn figures(&self) -> Figures {
        let secs = self.elapsed.as_secs_f64().max(f64::MIN_POSITIVE);
        let us = |q: f64| self.latency.value_at_quantile(q) as f64 / 1000.0;
        Figures {
            records: self.records,
            elapsed_secs: self.elapsed.as_secs_f64(),
            records_per_sec: self.records as f64 / secs,
            mb_per_sec: self.bytes as f64 / 1e6 / secs,
            p50_us: us(0.5),
            p99_us: us(0.99),
            p999_us: us(0.999),
            max_us: self.latency.max() as f64 / 1000.0,
        }
    }
}

/// The figures of one side of a run.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Figures {
    pub records: u64,
    pub elapsed_secs: f64,
    pub records_per_sec: f64,
    /// Record value bytes per second, in millions.
    pub mb_per_sec: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
}

/// brook's figure divided by the baseline's, for each figure.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Ratios {
    pub records_per_sec: f64,
    pub mb_per_sec: f64,
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
}

impl Ratios {
    fn of(brook: &Figures, baseline: &Figures) -> Ratios {
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
        Ratios {
            records_per_sec: ratio(brook.records_per_sec, baseline.records_per_sec),
            mb_per_sec: ratio(brook.mb_per_sec, baseline.mb_per_sec),
            p50: ratio(brook.p50_us, baseline.p50_us),
            p99: ratio(brook.p99_us, baseline.p99_us),
            p999: ratio(brook.p999_us, baseline.p999_us),
        }
    }
}

/// The settings of a run, as reported.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct RunInfo {
    pub workload: &'static str,
    pub protocol: &'static str,
    /// `embedded` (a broker and its doors in this process) or `server`.
    pub target: &'static str,
    /// Where the door was reached (`in-process` for the embedded API).
    pub address: String,
    pub topic: String,
    pub record_bytes: usize,
    pub batch: usize,
    pub producers: usize,
    pub consumers: usize,
    pub partitions: u32,
    pub in_flight: usize,
    /// Records per second the e2e producers were paced at.
    pub rate: Option<u64>,
    /// `sync`, `interval:MS` or `none`; `default` when the broker's default applied.
    pub durability: String,
    /// What the latency figures time.
    pub latency: &'static str,
    /// What the baseline is.
    pub baseline_kind: &'static str,
    /// The runtime the bench's clients ran on (`--client-runtime`).
    pub client_runtime: &'static str,
    /// The machine's CPU idle setup (module `machine`); `None` where the kernel does not say.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_idle: Option<String>,
    /// Records run through the first door before the measured runs, not counted (`--warmup`).
    pub warmup_records: u64,
}

/// Everything `--json` prints.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Report {
    #[serde(flatten)]
    pub info: RunInfo,
    #[serde(flatten)]
    pub brook: Figures,
    pub baseline: Figures,
    pub ratio: Ratios,
    /// What a bare gRPC call costs in the same run (produce over the gRPC door; see
    /// `grpc_floor`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc_floor: Option<GrpcFloor>,
    /// The produce baseline again with its server apart (a produce run against a separate
    /// server; see `baseline::produce_apart`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_apart: Option<BaselineApart>,
    /// e2e: send to ack of the same records, so a receipt splits into the produce's share
    /// and the delivery's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ack: Option<Figures>,
}

/// The gRPC floor's figures: through tonic's `Channel` and through hyper's `SendRequest`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct GrpcFloor {
    pub kind: &'static str,
    /// The floor server's runtime workers (`--floor-worker-threads`); `None`: tokio's default.
    pub worker_threads: Option<u16>,
    pub channel: Figures,
    pub direct: Figures,
}

/// The produce baseline with its server on a thread and runtime of its own.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct BaselineApart {
    pub kind: &'static str,
    /// The server's runtime workers (`--floor-worker-threads`); `None`: tokio's default.
    pub worker_threads: Option<u16>,
    #[serde(flatten)]
    pub figures: Figures,
    pub ratio: Ratios,
}

impl BaselineApart {
    pub(crate) const KIND: &'static str = "the same plain TCP, its server on a thread and \
        runtime of its own as a separate brook serve is (each frame and each ack wakes a thread \
        on the other side); under sync it writes and fdatasyncs each frame on the connection's \
        thread";
}

impl GrpcFloor {
    pub(crate) const KIND: &'static str = "a bare tonic service answering each batch's unary \
        call with an empty message (own port, own multi-thread runtime), same connections and \
        window";

    pub(crate) fn new(channel: &Measured, direct: &Measured, workers: Option<u16>) -> GrpcFloor {
        GrpcFloor {
            kind: Self::KIND,
            worker_threads: workers,
            channel: channel.figures(),
            direct: direct.figures(),
        }
    }
}

impl Report {
    pub(crate) fn new(info: RunInfo, brook: &Measured, baseline: &Measured) -> Report {
        let (brook, baseline) = (brook.figures(), baseline.figures());
        let ratio = Ratios::of(&brook, &baseline);
        Report {
            info,
            brook,
            baseline,
            ratio,
            grpc_floor: None,
            baseline_apart: None,
            ack: None,
        }
    }

    /// The same report with send to ack beside send to receipt (e2e).
    pub(crate) fn with_ack(mut self, acked: Option<&Measured>) -> Report {
        self.ack = acked.map(Measured::figures);
        self
    }

    /// The same report with the gRPC floor of its run beside it.
    pub(crate) fn with_grpc_floor(mut self, floor: Option<GrpcFloor>) -> Report {
        self.grpc_floor = floor;
        self
    }

    /// The same report with the produce baseline apart of its run beside it.
    /// `workers`: its server's runtime workers (`None`: tokio's default).
    pub(crate) fn with_baseline_apart(
        mut self,
        apart: Option<&Measured>,
        workers: Option<u16>,
    ) -> Report {
        self.baseline_apart = apart.map(|apart| {
            let figures = apart.figures();
            BaselineApart {
                kind: BaselineApart::KIND,
                worker_threads: workers,
                ratio: Ratios::of(&self.brook, &figures),
                figures,
            }
        });
        self
    }

    pub(crate) fn json(&self) -> anyhow::Result<String> {
        Ok(serde_json::to_string(self)?)
    }

    /// The human-readable table.
    pub(crate) fn table(&self) -> String {
        let i = &self.info;
        let mut out = format!(
            "brook bench {}: {} door, {} ({}), durability {}\n",
            i.workload, i.protocol, i.target, i.address, i.durability
        );
        out.push_str(&format!(
            "  {} records of {} B, batches of {}, {} producer(s), {} consumer(s), {} \
             partition(s), {} batch(es) in flight{}\n",
            self.brook.records,
            i.record_bytes,
            i.batch,
            i.producers,
            i.consumers,
            i.partitions,
            i.in_flight,
            i.rate
                .map_or(String::new(), |r| format!(", paced at {r} records/s")),
        ));
        out.push_str(&format!("  latency: {}\n", i.latency));
        out.push_str(&format!("  client runtime: {}\n", i.client_runtime));
        if let Some(idle) = &i.cpu_idle {
            out.push_str(&format!("  cpu idle: {idle}\n"));
        }
        if i.warmup_records > 0 {
            out.push_str(&format!(
                "  warm-up: {} records through the first door before any run, not counted\n",
                i.warmup_records
            ));
        }
        out.push_str(&format!("  baseline: {}\n\n", i.baseline_kind));
        out.push_str(&format!(
            "  {:<18} {:>14} {:>14} {:>8}\n",
            "", "brook", "baseline", "ratio"
        ));
        let (b, base, r) = (&self.brook, &self.baseline, &self.ratio);
        let rows = [
            (
                "records/s",
                b.records_per_sec,
                base.records_per_sec,
                r.records_per_sec,
                0,
            ),
            ("MB/s", b.mb_per_sec, base.mb_per_sec, r.mb_per_sec, 1),
            ("latency p50 (us)", b.p50_us, base.p50_us, r.p50, 1),
            ("latency p99 (us)", b.p99_us, base.p99_us, r.p99, 1),
            ("latency p99.9 (us)", b.p999_us, base.p999_us, r.p999, 1),
        ];
        for (name, brook, baseline, ratio, decimals) in rows {
            out.push_str(&format!(
                "  {name:<18} {brook:>14.decimals$} {baseline:>14.decimals$} {ratio:>8.3}\n"
            ));
        }
        out.push_str(&format!(
            "  {:<18} {:>14.3} {:>14.3}\n",
            "elapsed (s)", b.elapsed_secs, base.elapsed_secs
        ));
        if let Some(apart) = &self.baseline_apart {
            let workers = workers(apart.worker_threads);
            out.push_str(&format!(
                "\n  baseline apart: {} (workers: {workers})\n",
                apart.kind
            ));
            out.push_str(&beside(b, &[("apart", &apart.figures)]));
        }
        if let Some(floor) = &self.grpc_floor {
            out.push_str(&floor.table(b));
        }
        if let Some(ack) = &self.ack {
            out.push_str(&format!(
                "\n  send to ack of the same records: p50 {:.1} us, p99 {:.1} us, p99.9 {:.1} us\n",
                ack.p50_us, ack.p99_us, ack.p999_us
            ));
        }
        out
    }
}

impl GrpcFloor {
    /// brook beside the floor through a `Channel` and a direct connection, with the ratios.
    fn table(&self, brook: &Figures) -> String {
        let workers = workers(self.worker_threads);
        let mut out = format!("\n  gRPC floor: {} (workers: {workers})\n", self.kind);
        out.push_str(&beside(
            brook,
            &[
                ("floor channel", &self.channel),
                ("floor direct", &self.direct),
            ],
        ));
        out
    }
}

/// A server runtime's worker threads as shown: the count, or tokio's `default`.
fn workers(threads: Option<u16>) -> String {
    threads.map_or_else(|| "default".to_owned(), |n| n.to_string())
}

/// brook's figures beside each named column's, each with brook's ratio to it.
fn beside(brook: &Figures, columns: &[(&str, &Figures)]) -> String {
    let mut out = format!("  {:<18} {:>14}", "", "brook");
    for (name, _) in columns {
        out.push_str(&format!(" {name:>14} {:>8}", "ratio"));
    }
    out.push('\n');
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    let rows: [super::compare::Row; 4] = [
        ("records/s", |f| f.records_per_sec, 0),
        ("latency p50 (us)", |f| f.p50_us, 1),
        ("latency p99 (us)", |f| f.p99_us, 1),
        ("latency p99.9 (us)", |f| f.p999_us, 1),
    ];
    for (name, figure, decimals) in rows {
        let b = figure(brook);
        out.push_str(&format!("  {name:<18} {b:>14.decimals$}"));
        for (_, column) in columns {
            let c = figure(column);
            out.push_str(&format!(" {c:>14.decimals$} {:>8.3}", ratio(b, c)));
        }
        out.push('\n');
    }
    out
}

/// A progress bar on stderr, hidden with `--json` or when stderr is not a terminal.
pub(crate) fn progress(total: u64, label: &str, hidden: bool) -> ProgressBar {
    if hidden || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    let style = ProgressStyle::with_template(
        "{msg:>10} [{bar:40}] {human_pos}/{human_len} records  {per_sec}  eta {eta}",
    )
    .map(|s| s.progress_chars("=> "))
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_message(label.to_owned());
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_and_ratios_come_from_the_measurements() {
        let mut latency = histogram();
        record(&mut latency, Duration::from_micros(100), 99);
        record(&mut latency, Duration::from_millis(10), 1);
        let brook = Measured {
            records: 1_000,
            bytes: 100_000,
            elapsed: Duration::from_millis(500),
            latency,
        };
        let f = brook.figures();
        assert!((f.records_per_sec - 2_000.0).abs() < 1e-6);
        assert!((f.mb_per_sec - 0.2).abs() < 1e-9);
        assert!((f.p50_us - 100.0).abs() < 0.1, "{}", f.p50_us);
        assert!((f.p999_us - 10_000.0).abs() < 10.0, "{}", f.p999_us);

        let mut base_latency = histogram();
        record(&mut base_latency, Duration::from_micros(50), 100);
        let baseline = Measured {
            records: 1_000,
            bytes: 100_000,
            elapsed: Duration::from_millis(100),
            latency: base_latency,
        };
        let r = Ratios::of(&f, &baseline.figures());
        assert!((r.records_per_sec - 0.2).abs() < 1e-9);
        assert!((r.p50 - 2.0).abs() < 0.01, "{}", r.p50);
    }
}
