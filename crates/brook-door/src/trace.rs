//! What every door's traces share: one span per request with the same fields on every door, and
//! the W3C trace context (`traceparent`) a produce carries into the records it stores.
//!
//! The span is `request` with `door` (`grpc`, `http`, `kafka`), `api` (the door's name for the
//! call), `client_id` (Kafka's client id; on gRPC and HTTP the `brook-client-id` header, else
//! the `user-agent`), `topic` (recorded by the handler once it knows it, with
//! [`record_topic`]) and `trace_id` (from the request's `traceparent`, when it has a valid
//! one). Log lines written while serving the request carry them (`--log-format json` prints
//! them as fields), and an OpenTelemetry layer exports the span.
//!
//! A produce on gRPC (`Produce`) or HTTP (a JSON produce) whose request carries a valid
//! `traceparent` header stores it as a `traceparent` header on each of its records that has
//! none ([`carry`]); streamed produces (gRPC `ProduceStream`, NDJSON) carry what their records
//! hold; a Kafka client puts
//! it there itself, as OpenTelemetry's Kafka instrumentations do. Every door hands a record's
//! headers to consumers as stored, so the consumer on any door continues the producer's trace.

use tracing::field::Empty;
use tracing::Span;

/// The record header (and request header) of the W3C trace context.
pub const TRACEPARENT: &str = "traceparent";

/// The span of one request on `door` (its metric label, `grpc`), for `api`, from `client_id`
/// (empty when unknown), in the trace `traceparent` names when it is valid.
pub fn request_span(
    door: &'static str,
    api: &str,
    client_id: &str,
    traceparent: Option<&[u8]>,
) -> Span {
    let trace_id = traceparent.and_then(trace_id);
    tracing::info_span!(
        "request",
        door,
        api,
        client_id,
        topic = Empty,
        trace_id = trace_id.unwrap_or_default(),
    )
}

/// Notes the topic a request is about on the current request span.
pub fn record_topic(topic: &str) {
    Span::current().record("topic", topic);
}

/// The trace id of a `traceparent` value, when it is one W3C Trace Context allows
/// (`00-<32 hex>-<16 hex>-<2 hex>`, ids not all zeros; a later version may add fields after
/// these). Anything else is ignored, as the specification says.
pub fn trace_id(traceparent: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(traceparent).ok()?;
    let mut parts = text.split('-');
    let version = parts.next()?;
    let trace = parts.next()?;
    let parent = parts.next()?;
    let flags = parts.next()?;
    let hex =
        |s: &str, len| s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let valid = hex(version, 2)
        && version != "ff"
        && (version != "00" || parts.next().is_none())
        && hex(trace, 32)
        && hex(parent, 16)
        && hex(flags, 2)
        && trace.bytes().any(|b| b != b'0')
        && parent.bytes().any(|b| b != b'0');
    valid.then_some(trace)
}

/// Adds `traceparent` (when it is valid) as a header of every record that has none, returning
/// whether it was valid. `headers` gives each record's header list.
pub fn carry<R>(
    records: &mut [R],
    traceparent: Option<&[u8]>,
    headers: impl Fn(&mut R) -> &mut Vec<(String, bytes::Bytes)>,
) -> bool {
    let Some(value) = traceparent.filter(|v| trace_id(v).is_some()) else {
        return false;
    };
    let value = bytes::Bytes::copy_from_slice(value);
    for record in records {
        let headers = headers(record);
        if !headers.iter().any(|(name, _)| name == TRACEPARENT) {
            headers.push((TRACEPARENT.to_owned(), value.clone()));
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn only_a_well_formed_traceparent_has_a_trace_id() {
        assert_eq!(
            trace_id(VALID.as_bytes()),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert_eq!(trace_id(bad.as_bytes()), None, "{bad}");
        }
        // A later version may append fields.
        assert!(trace_id(format!("01-{}-extra", &VALID[3..]).as_bytes()).is_some());
    }

    #[test]
    fn carry_adds_the_header_only_where_there_is_none() {
        let theirs = bytes::Bytes::from_static(b"theirs");
        let mut records = vec![Vec::new(), vec![(TRACEPARENT.to_owned(), theirs.clone())]];
        assert!(carry(&mut records, Some(VALID.as_bytes()), |r| r));
        assert_eq!(
            records[0],
            vec![(TRACEPARENT.to_owned(), bytes::Bytes::from(VALID))]
        );
        assert_eq!(records[1], vec![(TRACEPARENT.to_owned(), theirs)]);
        let mut untouched: Vec<Vec<(String, bytes::Bytes)>> = vec![Vec::new()];
        assert!(!carry(&mut untouched, Some(b"junk"), |r| r));
        assert!(untouched[0].is_empty());
    }
}
