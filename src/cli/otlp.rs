//! OpenTelemetry export of brook's spans, behind the `otlp` cargo feature (off by default, so a
//! default build compiles no OpenTelemetry): when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, every
//! span, each door's `request` span included, is batched on a thread of its own and sent over
//! OTLP/HTTP (protobuf) to that collector, as service `brook` (or `OTEL_SERVICE_NAME`).
//! Without the variable nothing is exported and nothing runs.

use std::sync::OnceLock;

use anyhow::Context as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;

static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// The layer exporting spans, when a collector is configured.
pub(crate) fn layer<S>() -> anyhow::Result<
    Option<tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::Tracer>>,
>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    if std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").is_none() {
        return Ok(None);
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
        .context("cannot set up the OTLP exporter (OTEL_EXPORTER_OTLP_ENDPOINT)")?;
    let service = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| "brook".to_owned());
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service)
        .build();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build();
    let tracer = provider.tracer("brook");
    let _ = PROVIDER.set(provider);
    Ok(Some(tracing_opentelemetry::layer().with_tracer(tracer)))
}

/// Sends the spans still batched; called once the command is done.
pub(crate) fn shutdown() {
    if let Some(provider) = PROVIDER.get() {
        if let Err(e) = provider.shutdown() {
            eprintln!("brook: could not send the last spans to the OTLP collector: {e}");
        }
    }
}
