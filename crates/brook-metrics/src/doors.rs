//! What every door records about its clients: requests by API, their failures by the door's own
//! error code, their latency, and the connections and streams open now.
//!
//! `api` is the door's name for the call: a gRPC method (`Produce`), a Kafka API (`Fetch`), an
//! HTTP method and route template (`GET /v1/topics/{topic}`), never a path with values in it,
//! so the number of series stays bounded. `code` is the door's own word for a failure: a gRPC
//! status name (`NOT_FOUND`), an HTTP status (`404`), a Kafka error name
//! (`UNKNOWN_TOPIC_OR_PARTITION`).

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::{add_to, family, Door, Lazy};

/// Upper bounds of the request latency buckets, in seconds: 0.5 ms (a produce without fsync)
/// up to 10 s (long polls and fsyncs on a slow disk land in the top buckets).
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ApiLabels {
    door: Door,
    api: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ErrorLabels {
    door: Door,
    api: String,
    code: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct DoorLabels {
    door: Door,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StreamLabels {
    door: Door,
    kind: &'static str,
}

fn latency() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

type Latency = Family<ApiLabels, Histogram, fn() -> Histogram>;

static REQUESTS: Lazy<Family<ApiLabels, Counter>> = family!(
    "brook_requests",
    "Requests served, per door and API (HTTP: method and route)"
);
static REQUEST_ERRORS: Lazy<Family<ErrorLabels, Counter>> = family!(
    "brook_request_errors",
    "Requests that failed, per door, API and the door's error code (HTTP: the status)"
);
static REQUEST_SECONDS: Lazy<Latency> = family!(
    "brook_request_duration_seconds",
    "Time to answer a request (for a stream: until its first response)",
    Family::new_with_constructor(latency as fn() -> Histogram)
);
static CONNECTIONS: Lazy<Family<DoorLabels, Gauge>> = family!(
    "brook_open_connections",
    "Client connections open now, per door"
);
static STREAMS: Lazy<Family<StreamLabels, Gauge>> = family!(
    "brook_open_streams",
    "Long-lived streams open now (subscriptions, produce streams), per door and kind"
);

pub(crate) fn register(registry: &mut Registry) {
    add_to(registry, &REQUESTS);
    add_to(registry, &REQUEST_ERRORS);
    add_to(registry, &REQUEST_SECONDS);
    add_to(registry, &CONNECTIONS);
    add_to(registry, &STREAMS);
}

/// One request answered by `door`'s `api` after `elapsed`; `error` is the door's error code when
/// it failed.
pub fn request(door: Door, api: &str, error: Option<&str>, elapsed: Duration) {
    let labels = ApiLabels {
        door,
        api: api.to_owned(),
    };
    REQUESTS.metric.get_or_create(&labels).inc();
    REQUEST_SECONDS
        .metric
        .get_or_create(&labels)
        .observe(elapsed.as_secs_f64());
    if let Some(code) = error {
        let labels = ErrorLabels {
            door,
            api: labels.api,
            code: code.to_owned(),
        };
        REQUEST_ERRORS.metric.get_or_create(&labels).inc();
    }
}

/// A door's error code as a `code` label, from the name of its Rust variant: `NotFound` (a
/// gRPC code) is `NOT_FOUND`, `UnknownTopicOrPartition` (a Kafka error) is
/// `UNKNOWN_TOPIC_OR_PARTITION`, which is how each protocol's own documents write them.
pub fn code_label(variant: &str) -> String {
    let mut label = String::with_capacity(variant.len() + 8);
    for (i, c) in variant.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            label.push('_');
        }
        label.push(c.to_ascii_uppercase());
    }
    label
}

/// Counts one open connection of `door` until the guard is dropped.
pub fn connection_opened(door: Door) -> OpenGuard {
    OpenGuard::new(CONNECTIONS.metric.get_or_create_owned(&DoorLabels { door }))
}

/// Counts one open stream of `door` (`kind`: `subscribe`, `produce`, `sse`, ...) until the
/// guard is dropped.
pub fn stream_opened(door: Door, kind: &'static str) -> OpenGuard {
    OpenGuard::new(
        STREAMS
            .metric
            .get_or_create_owned(&StreamLabels { door, kind }),
    )
}

/// Holds one unit of an "open now" gauge; dropping it gives the unit back.
#[derive(Debug)]
#[must_use = "the gauge goes down again when the guard is dropped"]
pub struct OpenGuard {
    gauge: Gauge,
}

impl OpenGuard {
    fn new(gauge: Gauge) -> Self {
        gauge.inc();
        Self { gauge }
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(text: &str, prefix: &str) -> Option<String> {
        text.lines()
            .find_map(|l| l.strip_prefix(prefix).map(str::to_owned))
    }

    #[test]
    fn codes_are_written_as_the_protocols_write_them() {
        assert_eq!(code_label("NotFound"), "NOT_FOUND");
        assert_eq!(
            code_label("UnknownTopicOrPartition"),
            "UNKNOWN_TOPIC_OR_PARTITION"
        );
        assert_eq!(code_label("Ok"), "OK");
    }

    #[test]
    fn guards_count_while_they_live() {
        let prefix = "brook_open_streams{door=\"http\",kind=\"guard-test\"} ";
        let a = stream_opened(Door::Http, "guard-test");
        let b = stream_opened(Door::Http, "guard-test");
        assert_eq!(sample(&crate::encode(|_| {}), prefix).as_deref(), Some("2"));
        drop(a);
        drop(b);
        assert_eq!(sample(&crate::encode(|_| {}), prefix).as_deref(), Some("0"));
    }

    #[test]
    fn histograms_are_cumulative_and_errors_carry_their_code() {
        let api = "histogram-test";
        for (seconds, error) in [(0.0007, None), (0.3, Some("NOT_FOUND")), (99.0, None)] {
            request(Door::Grpc, api, error, Duration::from_secs_f64(seconds));
        }
        let text = crate::encode(|_| {});
        let bucket = |le: &str| {
            let prefix = format!(
                "brook_request_duration_seconds_bucket{{le=\"{le}\",door=\"grpc\",api=\"{api}\"}} "
            );
            sample(&text, &prefix).unwrap_or_else(|| panic!("bucket {le} in {text}"))
        };
        assert_eq!(bucket("0.0005"), "0");
        assert_eq!(bucket("0.001"), "1");
        assert_eq!(bucket("0.5"), "2");
        assert_eq!(bucket("10.0"), "2");
        assert_eq!(bucket("+Inf"), "3");
        let errors = format!(
            "brook_request_errors_total{{door=\"grpc\",api=\"{api}\",code=\"NOT_FOUND\"}} "
        );
        assert_eq!(sample(&text, &errors).as_deref(), Some("1"));
        assert_eq!(
            text.matches("# TYPE brook_request_duration_seconds histogram")
                .count(),
            1
        );
    }
}
