//! Tracing setup: JSON lines by default, human-readable with `LOG_FORMAT=pretty`; with
//! `OTEL_EXPORTER_OTLP_ENDPOINT` set, spans also go to an OpenTelemetry collector over
//! OTLP/HTTP (protobuf), batched on a thread of their own. The W3C trace context travels
//! in HTTP headers and in Kafka record headers (`traceparent`, `tracestate`), so one
//! trace holds the api request, the produce, the consumer batch and the database write.

use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter, Layer};

use crate::config::{ConfigError, LogConfig, LogFormat};

/// Keeps the span exporter alive; dropping it flushes the spans still batched.
#[must_use = "dropping the guard stops exporting spans"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            if let Err(e) = provider.shutdown() {
                eprintln!("spans not flushed at exit: {e}");
            }
        }
    }
}

/// Installs the global subscriber. `service` names the process in traces unless
/// `OTEL_SERVICE_NAME` does.
pub fn init(config: &LogConfig, service: &'static str) -> Result<Telemetry, ConfigError> {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let filter = EnvFilter::try_new(&config.level).map_err(|e| ConfigError::new("LOG_LEVEL", e))?;
    let provider = match config.otlp_endpoint.as_deref().filter(|e| !e.is_empty()) {
        None => None,
        Some(endpoint) => Some(otlp_provider(endpoint, service)?),
    };
    let otel = provider.as_ref().map(|p| {
        use opentelemetry::trace::TracerProvider;
        tracing_opentelemetry::layer().with_tracer(p.tracer(service))
    });
    let fmt_layer = match config.format {
        LogFormat::Json => fmt::layer()
            .with_target(true)
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .boxed(),
        LogFormat::Pretty => fmt::layer().with_target(true).boxed(),
    };
    // A second init (tests) keeps the first subscriber; that is not an error.
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(fmt_layer)
        .with(otel)
        .try_init();
    Ok(Telemetry { provider })
}

/// Spans to `<endpoint>/v1/traces` over OTLP/HTTP, batched on a thread of their own.
/// The exporter reads the other standard variables itself (`OTEL_EXPORTER_OTLP_HEADERS`,
/// `_TIMEOUT`...).
pub fn otlp_provider(
    endpoint: &str,
    service: &'static str,
) -> Result<SdkTracerProvider, ConfigError> {
    use opentelemetry_otlp::WithExportConfig;
    let base = endpoint.trim_end_matches('/');
    let url = if base.ends_with("/v1/traces") {
        base.to_owned()
    } else {
        format!("{base}/v1/traces")
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(url)
        .build()
        .map_err(|e| ConfigError::new("OTEL_EXPORTER_OTLP_ENDPOINT", e))?;
    let name = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| service.to_owned());
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(name)
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

/// Header names and values of the current span's trace context (`traceparent`,
/// `tracestate`), to carry it in a Kafka record. Empty when no span is being exported.
pub fn current_trace_headers() -> Vec<(String, String)> {
    let context = tracing::Span::current().context();
    if !context.span().span_context().is_valid() {
        return Vec::new();
    }
    let mut carrier = Carrier(Vec::new());
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&context, &mut carrier));
    carrier.0
}

/// The remote trace context carried in `headers` (HTTP or Kafka), if any.
pub fn remote_context<'a>(
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Option<opentelemetry::Context> {
    let carrier = Carrier(
        headers
            .into_iter()
            .filter(|(k, _)| {
                k.eq_ignore_ascii_case("traceparent") || k.eq_ignore_ascii_case("tracestate")
            })
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_owned()))
            .collect(),
    );
    if carrier.0.is_empty() {
        return None;
    }
    let context = opentelemetry::global::get_text_map_propagator(|p| p.extract(&carrier));
    context.span().span_context().is_valid().then_some(context)
}

/// Makes `span` a child of the remote context in `headers`, when they carry one.
pub fn continue_trace<'a>(
    span: &tracing::Span,
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
) {
    if let Some(parent) = remote_context(headers) {
        let _ = span.set_parent(parent);
    }
}

/// Links `span` to the remote contexts of other records it handles together with the
/// one it continues (a consumer batch holds many traces).
pub fn link(span: &tracing::Span, context: &opentelemetry::Context) {
    span.add_link(context.span().span_context().clone());
}

struct Carrier(Vec<(String, String)>);

impl Injector for Carrier {
    fn set(&mut self, key: &str, value: String) {
        self.0.push((key.to_owned(), value));
    }
}

impl Extractor for Carrier {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_w3c_traceparent_is_read_and_a_malformed_one_ignored() {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let context = remote_context([("traceparent", good)]).unwrap();
        assert_eq!(
            context.span().span_context().trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert!(remote_context([("traceparent", "00-zz-yy-01")]).is_none());
        assert!(remote_context([("request-id", "r1")]).is_none());
    }

    #[test]
    fn spans_are_posted_to_the_collector_as_otlp_protobuf() {
        use opentelemetry::trace::{Tracer, TracerProvider};
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let collector = std::thread::spawn(move || {
            let (mut socket, _) = listener.accept().unwrap();
            socket
                .set_read_timeout(Some(std::time::Duration::from_secs(10)))
                .unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && socket.read(&mut byte).unwrap_or(0) == 1 {
                head.push(byte[0]);
            }
            socket
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                .unwrap();
            String::from_utf8_lossy(&head).to_lowercase()
        });
        let provider = otlp_provider(&format!("http://{address}/"), "registrar-test").unwrap();
        provider.tracer("test").in_span("registration", |_| {});
        provider.shutdown().unwrap();
        let head = collector.join().unwrap();
        assert!(head.starts_with("post /v1/traces "), "{head}");
        assert!(
            head.contains("content-type: application/x-protobuf"),
            "{head}"
        );
    }

    #[test]
    fn without_an_exported_span_nothing_is_injected() {
        assert!(current_trace_headers().is_empty());
    }
}
