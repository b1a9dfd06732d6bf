//! brook's metrics: the families every crate records into, and their exposition text.
//!
//! Why a crate of its own, at the bottom of the graph: the log (fsync latency, group commit),
//! the broker (topic deletion forgets its series) and every door (requests, records in and
//! out) record into the same families, and none of them may depend on another door or on the
//! crate that serves `/metrics`. The families are `prometheus-client` metrics held in statics;
//! [`encode`] writes them, plus whatever the caller reads from live state at scrape time (the
//! broker's log sizes, offsets and group lag), as one OpenMetrics text.
//!
//! What it promises:
//! - recording never blocks on IO and never fails: an atomic add, after a short lock the first
//!   time a label set is seen;
//! - every door records into the same families, told apart by a `door` label ([`Door`]), so
//!   one dashboard covers gRPC, HTTP and Kafka;
//! - a deleted topic's series go with it ([`partitions::forget_topic`]); series read from live
//!   state at scrape time never outlive what they describe;
//! - [`encode`]'s text is valid OpenMetrics (which Prometheus scrapes as such): names and
//!   label values escaped, one `# TYPE` per family, histogram buckets cumulative up to
//!   `+Inf`, `# EOF` last.
//!
//! The families are process-wide, as a Prometheus registry is: two brokers in one process (in
//! tests) add into the same event counters.
//!
//! # Adding a family
//!
//! A family lives in the module of its area here ([`doors`], [`partitions`], [`storage`], or a
//! new one, such as `cleaner` or `transactions`): a `static` built with [`family`], a
//! recording function that takes plain values, and a line in `registered`. Name it
//! `brook_<area>_<what>[_<unit>]` (counters without `_total`: the encoder appends it), give it
//! a help text that says what one unit means, and add its row to the metrics reference in
//! `docs/operations.md` (a test holds the two together). A series whose labels name a topic or
//! a group must be forgotten when that goes away: add it to [`partitions::forget_topic`], or
//! read it from state at scrape time instead (see `brook_broker::metrics`).
//!
//! ```
//! use std::time::Duration;
//! use brook_metrics::{doors, partitions, Door};
//!
//! partitions::records_in(Door::Grpc, "orders", 0, 10, 1_024);
//! doors::request(Door::Grpc, "Produce", None, Duration::from_micros(700));
//! doors::request(Door::Grpc, "Fetch", Some("OUT_OF_RANGE"), Duration::from_millis(2));
//! // A connection or a stream is counted while its guard lives:
//! let _connection = doors::connection_opened(Door::Grpc);
//! let text = brook_metrics::encode(|_state| {});
//! assert!(text.contains("brook_requests_total{door=\"grpc\",api=\"Produce\"}"));
//! ```

pub mod doors;
pub mod partitions;
pub mod storage;

use std::sync::LazyLock;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Metric, Registry};

pub use prometheus_client;

/// The content type of [`encode`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Which network door a series is about: its `door` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Door {
    Grpc,
    Http,
    Kafka,
}

impl Door {
    /// Every door, for forgetting a topic's series on each.
    pub const ALL: [Door; 3] = [Door::Grpc, Door::Http, Door::Kafka];

    /// The label value: `grpc`, `http`, `kafka`.
    pub fn label(self) -> &'static str {
        match self {
            Door::Grpc => "grpc",
            Door::Http => "http",
            Door::Kafka => "kafka",
        }
    }
}

impl EncodeLabelValue for Door {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.label(), encoder)
    }
}

/// A family's name and help, as it is registered.
#[derive(Debug)]
pub struct Described<M> {
    pub name: &'static str,
    pub help: &'static str,
    pub metric: M,
}

/// A family declared once, created on first use.
pub type Lazy<M> = LazyLock<Described<M>>;

/// Declares a family: `static X: Lazy<Family<..>> = family!("name", "help", constructor)`.
#[macro_export]
macro_rules! family {
    ($name:literal, $help:literal) => {
        $crate::family!($name, $help, ::std::default::Default::default())
    };
    ($name:literal, $help:literal, $metric:expr) => {
        ::std::sync::LazyLock::new(|| $crate::Described {
            name: $name,
            help: $help,
            metric: $metric,
        })
    };
}

/// Every event family, registered into one scrape.
fn registered(registry: &mut Registry) {
    doors::register(registry);
    partitions::register(registry);
    storage::register(registry);
}

fn add_to<M: Metric + Clone>(registry: &mut Registry, family: &Lazy<M>) {
    registry.register(family.name, family.help, family.metric.clone());
}

/// What a scrape reads from live state: families created for this scrape only, so a topic or
/// group that is gone has no series in it.
#[derive(Debug, Default)]
pub struct Snapshot {
    registry: Registry,
}

impl Snapshot {
    /// A gauge family of this scrape; set its series on the returned handle.
    pub fn gauges<L>(&mut self, name: &'static str, help: &'static str) -> Family<L, Gauge>
    where
        L: EncodeLabelSet + Clone + std::hash::Hash + Eq + std::fmt::Debug + Send + Sync + 'static,
    {
        let family = Family::<L, Gauge>::default();
        self.registry.register(name, help, family.clone());
        family
    }

    /// A gauge family of this scrape whose values are fractions (a ratio, a share).
    pub fn ratios<L>(
        &mut self,
        name: &'static str,
        help: &'static str,
    ) -> Family<L, Gauge<f64, std::sync::atomic::AtomicU64>>
    where
        L: EncodeLabelSet + Clone + std::hash::Hash + Eq + std::fmt::Debug + Send + Sync + 'static,
    {
        let family = Family::<L, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        self.registry.register(name, help, family.clone());
        family
    }

    /// A counter family of this scrape, for totals the state keeps itself (fsyncs since open).
    pub fn counters<L>(&mut self, name: &'static str, help: &'static str) -> Family<L, Counter>
    where
        L: EncodeLabelSet + Clone + std::hash::Hash + Eq + std::fmt::Debug + Send + Sync + 'static,
    {
        let family = Family::<L, Counter>::default();
        self.registry.register(name, help, family.clone());
        family
    }
}

/// A gauge value from a count, saturating (a gauge is an `i64`).
pub fn gauge_value(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The exposition text: build information, every event family recorded so far, then the
/// families `state` fills from live state for this scrape.
pub fn encode(state: impl FnOnce(&mut Snapshot)) -> String {
    let mut registry = Registry::default();
    registry.register("brook_build_info", "Always 1; the version of brook", {
        let info = Family::<[(&'static str, &'static str); 1], Gauge>::default();
        info.get_or_create(&[("version", env!("CARGO_PKG_VERSION"))])
            .set(1);
        info
    });
    registered(&mut registry);
    let mut snapshot = Snapshot::default();
    state(&mut snapshot);
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode_registry(&mut out, &registry);
    let _ = prometheus_client::encoding::text::encode_registry(&mut out, &snapshot.registry);
    let _ = prometheus_client::encoding::text::encode_eof(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_families_appear_once_and_labels_are_escaped() {
        let text = encode(|state| {
            let members = state.gauges::<[(&str, String); 1]>("brook_test_members", "test");
            members
                .get_or_create(&[("group", "a\"b\\c\nd".to_owned())])
                .set(2);
        });
        assert!(
            text.contains(r#"brook_test_members{group="a\"b\\c\nd"} 2"#),
            "{text}"
        );
        assert_eq!(text.matches("# TYPE brook_test_members gauge").count(), 1);
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert!(text.contains("brook_build_info{version="), "{text}");
    }

    #[test]
    fn a_state_family_of_one_scrape_is_not_in_the_next() {
        let first = encode(|state| {
            let gauge = state.gauges::<[(&str, &str); 1]>("brook_test_gone", "test");
            gauge.get_or_create(&[("topic", "t")]).set(1);
        });
        assert!(first.contains("brook_test_gone"));
        assert!(!encode(|_| {}).contains("brook_test_gone"));
    }
}
