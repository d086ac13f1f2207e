//! Captures every log line of the test process (api and consumer run in it) so tests can
//! assert what the logs never contain. Lines are also echoed to stderr for debugging
//! when `TEST_LOG` is set.

use std::io::Write;
use std::sync::{Mutex, OnceLock};

use opentelemetry_sdk::trace::InMemorySpanExporter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

static BUFFER: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();

fn buffer() -> &'static Mutex<Vec<u8>> {
    BUFFER.get_or_init(|| Mutex::new(Vec::new()))
}

#[derive(Clone, Copy)]
struct Capture;

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if std::env::var_os("TEST_LOG").is_some() {
            let _ = std::io::stderr().write_all(buf);
        }
        if let Ok(mut b) = buffer().lock() {
            b.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Self::Writer {
        *self
    }
}

static SPANS: OnceLock<InMemorySpanExporter> = OnceLock::new();

/// Installs the capturing subscriber once: JSON lines, as in production, at debug level
/// for Registrar's crates so the check covers more than the default; and every span
/// exported through OpenTelemetry into memory (see [`finished_spans`]), with the W3C
/// propagator the binaries install.
pub fn install() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        use opentelemetry::trace::TracerProvider;
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::util::SubscriberInitExt;
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
        let exporter = SPANS.get_or_init(InMemorySpanExporter::default).clone();
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_simple_exporter(exporter)
            .build();
        let otel = tracing_opentelemetry::layer().with_tracer(provider.tracer("registrar-tests"));
        // The provider lives as long as the test process.
        std::mem::forget(provider);
        let filter = EnvFilter::new("info,registrar_api=debug,registrar_consumer=debug,registrar_common=debug,tower_http=debug");
        let _ = tracing_subscriber::registry()
            .with(filter)
            .with(tracing_subscriber::fmt::layer().json().with_writer(Capture))
            .with(otel)
            .try_init();
    });
}

/// Every span finished so far by any test of this process.
pub fn finished_spans() -> Vec<opentelemetry_sdk::trace::SpanData> {
    SPANS
        .get()
        .and_then(|e| e.get_finished_spans().ok())
        .unwrap_or_default()
}

/// Everything logged so far by any test of this process.
pub fn captured() -> String {
    buffer()
        .lock()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}
