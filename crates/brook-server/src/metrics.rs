//! The process's metrics, in Prometheus text exposition format (version 0.0.4).
//!
//! Why our own registry rather than a crate: the exposition format is small and fixed, the
//! series here are few, and half of them are not events at all but the broker's state read at
//! scrape time (log sizes, offsets, fsyncs, group lag). Doors record events through the free
//! functions below; [`render`] writes those plus the broker's state.
//!
//! What it promises:
//! - every door records into the same families, told apart by a `door` label, so one
//!   dashboard covers gRPC, HTTP and Kafka;
//! - recording never blocks on IO and never fails: a short critical section on a
//!   `std::sync::Mutex` (no `.await` inside, and a poisoned lock is still used: a counter
//!   stays a counter);
//! - [`render`] is always valid text format: names and labels escaped, `HELP` and `TYPE`
//!   once per family before its samples, histogram buckets cumulative up to `+Inf`.
//!
//! How a door records (the HTTP door does all of these; gRPC and Kafka call the same):
//! ```
//! use std::time::{Duration, Instant};
//! use brook_server::metrics;
//!
//! let started = Instant::now();
//! // ... serve a produce ...
//! metrics::records_in(metrics::GRPC, "orders", 0, 10, 1_024);
//! metrics::request(metrics::GRPC, "Produce", None, started.elapsed());
//! // ... or when it failed, with the door's own error code:
//! metrics::request(metrics::GRPC, "Fetch", Some("OUT_OF_RANGE"), Duration::from_millis(2));
//! // A connection or a stream is counted while its guard lives:
//! let _connection = metrics::connection_opened(metrics::GRPC);
//! let _stream = metrics::stream_opened(metrics::GRPC, "subscribe");
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{LazyLock, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use brook_broker::{Broker, PartitionLag};

/// The `door` label of the gRPC door.
pub const GRPC: &str = "grpc";
/// The `door` label of the HTTP door.
pub const HTTP: &str = "http";
/// The `door` label of the Kafka door.
pub const KAFKA: &str = "kafka";

/// Upper bounds of the request latency buckets, in seconds: 0.5 ms (a produce without fsync)
/// up to 10 s (long polls and fsyncs on a slow disk land in the top buckets).
const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// One metric family: its name, help text and type.
#[derive(Debug)]
struct Family {
    name: &'static str,
    help: &'static str,
    kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

static REQUESTS: Family = Family {
    name: "brook_requests_total",
    help: "Requests served, per door and API (HTTP: method and route).",
    kind: Kind::Counter,
};
static REQUEST_ERRORS: Family = Family {
    name: "brook_request_errors_total",
    help: "Requests that failed, per door, API and the door's error code (HTTP: the status).",
    kind: Kind::Counter,
};
static REQUEST_SECONDS: Family = Family {
    name: "brook_request_duration_seconds",
    help: "Time to answer a request (for a stream: until its first response bytes).",
    kind: Kind::Histogram,
};
static RECORDS_IN: Family = Family {
    name: "brook_partition_records_in_total",
    help: "Records appended through a door, per topic partition.",
    kind: Kind::Counter,
};
static BYTES_IN: Family = Family {
    name: "brook_partition_bytes_in_total",
    help: "Payload bytes (keys, values, headers; raw batches whole) appended through a door.",
    kind: Kind::Counter,
};
static RECORDS_OUT: Family = Family {
    name: "brook_partition_records_out_total",
    help: "Records sent to consumers through a door, per topic partition.",
    kind: Kind::Counter,
};
static BYTES_OUT: Family = Family {
    name: "brook_partition_bytes_out_total",
    help: "Payload bytes (keys, values, headers; raw batches whole) sent to consumers.",
    kind: Kind::Counter,
};
static CONNECTIONS: Family = Family {
    name: "brook_open_connections",
    help: "Client connections open now, per door.",
    kind: Kind::Gauge,
};
static STREAMS: Family = Family {
    name: "brook_open_streams",
    help: "Long-lived streams open now (subscriptions, produce streams), per door and kind.",
    kind: Kind::Gauge,
};
static LOG_SIZE: Family = Family {
    name: "brook_partition_log_size_bytes",
    help: "Bytes of the partition's segment files.",
    kind: Kind::Gauge,
};
static LOG_START: Family = Family {
    name: "brook_partition_log_start_offset",
    help: "First offset still in the partition's log.",
    kind: Kind::Gauge,
};
static LOG_END: Family = Family {
    name: "brook_partition_log_end_offset",
    help: "Offset the partition's next record gets.",
    kind: Kind::Gauge,
};
static HIGH_WATERMARK: Family = Family {
    name: "brook_partition_high_watermark",
    help: "End of what consumers of the partition may read.",
    kind: Kind::Gauge,
};
static SEGMENTS: Family = Family {
    name: "brook_partition_segments",
    help: "Segment files of the partition.",
    kind: Kind::Gauge,
};
static FSYNCS: Family = Family {
    name: "brook_partition_fsyncs_total",
    help: "fdatasyncs of the partition's segment files since the broker opened.",
    kind: Kind::Counter,
};
static GROUP_MEMBERS: Family = Family {
    name: "brook_group_members",
    help: "Members subscribed to the consumer group now.",
    kind: Kind::Gauge,
};
static GROUP_LAG: Family = Family {
    name: "brook_group_lag",
    help: "Records between the group's committed offset (or the log start, without one) and \
           the high watermark.",
    kind: Kind::Gauge,
};
static GROUP_COMMITTED: Family = Family {
    name: "brook_group_committed_offset",
    help: "The group's committed offset in the partition.",
    kind: Kind::Gauge,
};
static CALLS_WAITING: Family = Family {
    name: "brook_calls_waiting",
    help: "Request-reply calls waiting for their reply now.",
    kind: Kind::Gauge,
};
static CALL_IDS: Family = Family {
    name: "brook_call_ids",
    help: "Correlation ids the request-reply index remembers (bounded by reqreply.window_ms and \
           reqreply.index_entries_max).",
    kind: Kind::Gauge,
};
static CALL_RECORDS_DROPPED: Family = Family {
    name: "brook_call_records_dropped_total",
    help: "Request-reply records not delivered: reason malformed_reply (no correlation id), \
           duplicate_reply (a call already answered), malformed_request (no correlation id or \
           reply topic), skipped_request (already answered, or older than the window).",
    kind: Kind::Counter,
};

/// Label pairs of one series, in a fixed order per family.
type Labels = Vec<(&'static str, String)>;

/// Counts per latency bucket (not cumulative; made cumulative when rendered), sum and count.
#[derive(Default, Clone)]
struct Histogram {
    buckets: [u64; LATENCY_BUCKETS.len()],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        if let Some(i) = LATENCY_BUCKETS.iter().position(|&le| seconds <= le) {
            self.buckets[i] += 1;
        }
        self.sum += seconds;
        self.count += 1;
    }
}

/// Every series of a set of families, sorted by family name then labels, so a family's
/// samples come out together.
#[derive(Default)]
struct Series {
    counters: BTreeMap<(&'static str, Labels), (&'static Family, u64)>,
    gauges: BTreeMap<(&'static str, Labels), (&'static Family, i64)>,
    histograms: BTreeMap<(&'static str, Labels), (&'static Family, Histogram)>,
}

impl Series {
    fn add(&mut self, family: &'static Family, labels: Labels, by: u64) {
        let entry = self
            .counters
            .entry((family.name, labels))
            .or_insert((family, 0));
        entry.1 = entry.1.saturating_add(by);
    }

    fn set(&mut self, family: &'static Family, labels: Labels, value: i64) {
        self.gauges.insert((family.name, labels), (family, value));
    }

    fn move_gauge(&mut self, family: &'static Family, labels: Labels, by: i64) {
        self.gauges
            .entry((family.name, labels))
            .or_insert((family, 0))
            .1 += by;
    }

    fn observe(&mut self, family: &'static Family, labels: Labels, seconds: f64) {
        self.histograms
            .entry((family.name, labels))
            .or_insert_with(|| (family, Histogram::default()))
            .1
            .observe(seconds);
    }

    /// Appends the exposition text of every series to `out`.
    fn render(&self, out: &mut String) {
        let mut last = "";
        for ((name, labels), (family, value)) in &self.counters {
            header(out, &mut last, family);
            sample(out, name, "", labels, None, &value.to_string());
        }
        for ((name, labels), (family, value)) in &self.gauges {
            header(out, &mut last, family);
            sample(out, name, "", labels, None, &value.to_string());
        }
        for ((name, labels), (family, histogram)) in &self.histograms {
            header(out, &mut last, family);
            let mut cumulative = 0;
            for (le, count) in LATENCY_BUCKETS.iter().zip(histogram.buckets) {
                cumulative += count;
                let le = le.to_string();
                sample(
                    out,
                    name,
                    "_bucket",
                    labels,
                    Some(&le),
                    &cumulative.to_string(),
                );
            }
            let count = histogram.count.to_string();
            sample(out, name, "_bucket", labels, Some("+Inf"), &count);
            sample(out, name, "_sum", labels, None, &histogram.sum.to_string());
            sample(out, name, "_count", labels, None, &count);
        }
    }
}

/// `# HELP` and `# TYPE` of `family`, unless its samples are already being written.
fn header(out: &mut String, last: &mut &'static str, family: &'static Family) {
    if *last == family.name {
        return;
    }
    *last = family.name;
    let help = family.help.replace('\\', "\\\\").replace('\n', "\\n");
    let _ = writeln!(out, "# HELP {} {help}", family.name);
    let _ = writeln!(out, "# TYPE {} {}", family.name, family.kind.as_str());
}

/// One sample line: `name{labels} value`, with an `le` label last for buckets.
fn sample(
    out: &mut String,
    name: &str,
    suffix: &str,
    labels: &Labels,
    le: Option<&str>,
    value: &str,
) {
    out.push_str(name);
    out.push_str(suffix);
    let le = le.map(|le| ("le", le));
    let all = labels.iter().map(|(k, v)| (*k, v.as_str())).chain(le);
    for (i, (key, value)) in all.enumerate() {
        out.push(if i == 0 { '{' } else { ',' });
        out.push_str(key);
        out.push_str("=\"");
        for c in value.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    if !labels.is_empty() || le.is_some() {
        out.push('}');
    }
    out.push(' ');
    out.push_str(value);
    out.push('\n');
}

/// The event series every door records into.
static EVENTS: LazyLock<Mutex<Series>> = LazyLock::new(Mutex::default);

fn events() -> MutexGuard<'static, Series> {
    EVENTS.lock().unwrap_or_else(PoisonError::into_inner)
}

fn partition_labels(door: &'static str, topic: &str, partition: u32) -> Labels {
    vec![
        ("door", door.to_owned()),
        ("topic", topic.to_owned()),
        ("partition", partition.to_string()),
    ]
}

/// One request answered by `door`'s `api` after `elapsed`; `error` is the door's error code
/// (a gRPC code name, an HTTP status, a Kafka error name) when it failed.
pub fn request(door: &'static str, api: &str, error: Option<&str>, elapsed: Duration) {
    let labels = || vec![("door", door.to_owned()), ("api", api.to_owned())];
    let mut events = events();
    events.add(&REQUESTS, labels(), 1);
    events.observe(&REQUEST_SECONDS, labels(), elapsed.as_secs_f64());
    if let Some(code) = error {
        let mut labels = labels();
        labels.push(("code", code.to_owned()));
        events.add(&REQUEST_ERRORS, labels, 1);
    }
}

/// `records` records of `bytes` payload bytes appended to `topic`-`partition` through `door`.
pub fn records_in(door: &'static str, topic: &str, partition: u32, records: u64, bytes: u64) {
    flow(
        [&RECORDS_IN, &BYTES_IN],
        door,
        topic,
        partition,
        [records, bytes],
    );
}

/// `records` records of `bytes` payload bytes of `topic`-`partition` sent out through `door`.
pub fn records_out(door: &'static str, topic: &str, partition: u32, records: u64, bytes: u64) {
    flow(
        [&RECORDS_OUT, &BYTES_OUT],
        door,
        topic,
        partition,
        [records, bytes],
    );
}

/// Adds `amounts` to the per-partition counters `families`.
fn flow(
    families: [&'static Family; 2],
    door: &'static str,
    topic: &str,
    partition: u32,
    amounts: [u64; 2],
) {
    let mut events = events();
    for (family, amount) in families.into_iter().zip(amounts) {
        events.add(family, partition_labels(door, topic, partition), amount);
    }
}

/// Counts one open connection of `door` until the guard is dropped.
pub fn connection_opened(door: &'static str) -> OpenGuard {
    OpenGuard::new(&CONNECTIONS, vec![("door", door.to_owned())])
}

/// Counts one open stream of `door` (`kind`: "subscribe", "produce", ...) until the guard is
/// dropped.
pub fn stream_opened(door: &'static str, kind: &'static str) -> OpenGuard {
    OpenGuard::new(
        &STREAMS,
        vec![("door", door.to_owned()), ("kind", kind.to_owned())],
    )
}

/// Holds one unit of an "open now" gauge; dropping it gives the unit back.
#[derive(Debug)]
#[must_use = "the gauge goes down again when the guard is dropped"]
pub struct OpenGuard {
    family: &'static Family,
    labels: Labels,
}

impl OpenGuard {
    fn new(family: &'static Family, labels: Labels) -> Self {
        events().move_gauge(family, labels.clone(), 1);
        Self { family, labels }
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        events().move_gauge(self.family, std::mem::take(&mut self.labels), -1);
    }
}

/// The records a group has yet to consume in a partition: from its committed offset, or from
/// the log start when it has none, to the high watermark.
pub fn group_lag(lag: &PartitionLag) -> u64 {
    lag.lag
        .unwrap_or_else(|| lag.high_watermark.saturating_sub(lag.log_start_offset))
}

fn gauge_value(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The broker's state as series: per partition its log, per group its members and lag.
fn broker_state(broker: &Broker) -> Series {
    let mut state = Series::default();
    for topic in broker.list_topics() {
        // A topic deleted since the listing is simply left out of this scrape.
        let Ok(description) = broker.describe_topic(&topic.name) else {
            continue;
        };
        for p in &description.partitions {
            let labels = || {
                vec![
                    ("topic", description.name.clone()),
                    ("partition", p.partition.to_string()),
                ]
            };
            state.set(&LOG_SIZE, labels(), gauge_value(p.size_bytes));
            state.set(&LOG_START, labels(), gauge_value(p.log_start_offset));
            state.set(&LOG_END, labels(), gauge_value(p.log_end_offset));
            state.set(&HIGH_WATERMARK, labels(), gauge_value(p.high_watermark));
            state.set(&SEGMENTS, labels(), gauge_value(p.segments as u64));
            state.add(&FSYNCS, labels(), p.fsyncs);
        }
    }
    for listing in broker.list_groups() {
        let group_labels = vec![("group", listing.group.clone())];
        state.set(
            &GROUP_MEMBERS,
            group_labels,
            gauge_value(listing.members as u64),
        );
        let Ok(group) = broker.describe_group(&listing.group) else {
            continue;
        };
        for lag in &group.offsets {
            let labels = || {
                vec![
                    ("group", group.group.clone()),
                    ("topic", lag.topic_partition.topic.clone()),
                    ("partition", lag.topic_partition.partition.to_string()),
                ]
            };
            state.set(&GROUP_LAG, labels(), gauge_value(group_lag(lag)));
            if let Some(committed) = &lag.committed {
                state.set(&GROUP_COMMITTED, labels(), gauge_value(committed.offset));
            }
        }
    }
    reqreply_state(broker, &mut state);
    state
}

/// Request-reply's counters (read without starting request-reply).
fn reqreply_state(broker: &Broker, state: &mut Series) {
    let stats = broker.reqreply_stats();
    state.set(
        &CALLS_WAITING,
        Vec::new(),
        gauge_value(stats.waiting_calls as u64),
    );
    state.set(&CALL_IDS, Vec::new(), gauge_value(stats.indexed_ids as u64));
    for (reason, count) in [
        ("malformed_reply", stats.malformed_replies),
        ("duplicate_reply", stats.duplicate_replies),
        ("malformed_request", stats.malformed_requests),
        ("skipped_request", stats.skipped_requests),
    ] {
        let labels = vec![("reason", reason.to_owned())];
        state.add(&CALL_RECORDS_DROPPED, labels, count);
    }
}

/// The exposition text: every event series recorded so far, then `broker`'s state.
pub fn render(broker: &Broker) -> String {
    let mut out = String::new();
    events().render(&mut out);
    broker_state(broker).render(&mut out);
    out
}

/// The content type of [`render`]'s text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped_and_histograms_are_cumulative() {
        let mut series = Series::default();
        let labels = vec![("group", "a\"b\\c\nd".to_owned())];
        series.set(&GROUP_MEMBERS, labels, 2);
        let labels = || vec![("door", "http".to_owned()), ("api", "GET /x".to_owned())];
        series.observe(&REQUEST_SECONDS, labels(), 0.0007);
        series.observe(&REQUEST_SECONDS, labels(), 0.3);
        series.observe(&REQUEST_SECONDS, labels(), 99.0);
        let mut out = String::new();
        series.render(&mut out);

        assert!(
            out.contains(r#"brook_group_members{group="a\"b\\c\nd"} 2"#),
            "{out}"
        );
        let bucket = |le: &str| {
            let prefix = format!(
                "brook_request_duration_seconds_bucket{{door=\"http\",api=\"GET /x\",le=\"{le}\"}} "
            );
            out.lines()
                .find_map(|l| l.strip_prefix(prefix.as_str()))
                .unwrap_or_else(|| panic!("bucket {le} in {out}"))
                .to_owned()
        };
        assert_eq!(bucket("0.0005"), "0");
        assert_eq!(bucket("0.001"), "1");
        assert_eq!(bucket("0.5"), "2");
        assert_eq!(bucket("10"), "2");
        assert_eq!(bucket("+Inf"), "3");
        assert!(out.contains("# TYPE brook_request_duration_seconds histogram"));
        assert_eq!(
            out.matches("# TYPE brook_request_duration_seconds").count(),
            1
        );
    }

    #[test]
    fn guards_count_while_they_live() {
        let value = |kind: &str| {
            let text = {
                let mut out = String::new();
                events().render(&mut out);
                out
            };
            let prefix = format!("brook_open_streams{{door=\"test\",kind=\"{kind}\"}} ");
            text.lines()
                .find_map(|l| l.strip_prefix(prefix.as_str()).map(str::to_owned))
        };
        let a = stream_opened("test", "guard-test");
        let b = stream_opened("test", "guard-test");
        assert_eq!(value("guard-test").as_deref(), Some("2"));
        drop(a);
        drop(b);
        assert_eq!(value("guard-test").as_deref(), Some("0"));
    }
}
