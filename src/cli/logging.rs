//! The process's logs: to stderr (never mixed with a command's output), filtered by a tracing
//! filter, written as text for people or as JSON for a log pipeline, and with the `otlp` cargo
//! feature, also exported as OpenTelemetry spans.
//!
//! A client command logs at `warn` unless `RUST_LOG` says otherwise; `brook serve` sets its
//! own filter and format from its settings (`log_level`, `log_format`). Each request a door
//! serves runs in a `request` span (door, api, topic, client_id, trace_id: see
//! `brook_door::trace`); the JSON format writes those fields on every line logged inside it.

use brook::server::LogFormat;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Installs the process's subscriber: `filter` directives (`info`, `brook=debug,tonic=warn`)
/// and `format`. Once per process; a second call is ignored.
pub(crate) fn init(filter: &str, format: LogFormat) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(filter)?;
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let output = match format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .boxed(),
        _ => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(ansi)
            .boxed(),
    };
    let registry = tracing_subscriber::registry().with(filter).with(output);
    #[cfg(feature = "otlp")]
    let registry = registry.with(super::otlp::layer()?);
    // Already installed (a test calling twice): keep the first.
    let _ = registry.try_init();
    Ok(())
}

/// The client commands' logging: `RUST_LOG`, else warnings only, as text.
pub(crate) fn init_default() {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".to_owned());
    if init(&filter, LogFormat::Text).is_err() {
        let _ = init("warn", LogFormat::Text);
    }
}
