//! The api's Prometheus metrics, one registry per application instance.

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use common::ops::metrics::{latency_buckets, register};
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};

pub struct ApiMetrics {
    pub registry: Registry,
    /// `registrar_http_requests_total{method,route,status}`
    pub requests: IntCounterVec,
    /// `registrar_http_request_duration_seconds{method,route}`
    pub request_duration: HistogramVec,
    /// `registrar_registrations_total{outcome}`: accepted, replayed, or the error code.
    pub registrations: IntCounterVec,
    /// `registrar_produce_duration_seconds`: publish until the broker's acknowledgement.
    pub produce_duration: Histogram,
    /// `registrar_produce_failures_total{reason}`: queue_full, unavailable.
    pub produce_failures: IntCounterVec,
    /// `registrar_produce_failures_taken_total`: failed publishes a consumer had read
    /// already (the acknowledgement was lost, the record written): accepted after all.
    pub publish_errors_taken: IntCounter,
    /// `registrar_logins_total{outcome}`: success or the error code.
    pub logins: IntCounterVec,
    /// `registrar_oidc_token_requests_total{grant,outcome}`: the token endpoint's answers
    /// (`ok` or the OAuth error code; `grant` one of the known grants or `other`).
    pub oidc_tokens: IntCounterVec,
    /// `registrar_password_hash_queue_depth`: requests waiting for a hashing worker.
    pub hash_queue_depth: IntGauge,
    /// `registrar_password_hash_wait_seconds`: wait for a hashing worker.
    pub hash_wait: Histogram,
    /// `registrar_health_checks_total`: dependency checks run for the health endpoints
    /// (answers within a second of a check reuse it).
    pub health_checks: IntCounter,
    /// `registrar_pool_connections{pool,state}` of PostgreSQL and Redis, set per scrape.
    pub pools: common::ops::metrics::PoolGauges,
    /// `registrar_producer_queue_messages`: records awaiting the broker's acknowledgement.
    pub producer_queue: IntGauge,
    /// `registrar_http_open_connections`: client connections the api holds (at most
    /// `MAX_CONNECTIONS`).
    pub open_connections: IntGauge,
    /// `registrar_http_connections_refused_total`: connections beyond the cap, answered
    /// 503 and closed.
    pub refused_connections: IntCounter,
    /// `registrar_dependency_up{dependency}`: Redis, PostgreSQL and Kafka at the last
    /// health check (probes run one at most once a second).
    pub dependencies: common::ops::metrics::DependencyGauge,
}

fn counter(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), labels).unwrap_or_else(|e| panic!("{e}"))
}

impl ApiMetrics {
    pub fn new() -> Arc<Self> {
        let registry = Registry::new();
        let requests = register(
            &registry,
            counter(
                "registrar_http_requests_total",
                "HTTP requests by method, matched route and status",
                &["method", "route", "status"],
            ),
        );
        let request_duration = register(
            &registry,
            HistogramVec::new(
                HistogramOpts::new(
                    "registrar_http_request_duration_seconds",
                    "HTTP request latency by method and matched route",
                )
                .buckets(latency_buckets()),
                &["method", "route"],
            )
            .unwrap_or_else(|e| panic!("{e}")),
        );
        let registrations = register(
            &registry,
            counter(
                "registrar_registrations_total",
                "Registration requests by outcome (accepted, replayed or the error code)",
                &["outcome"],
            ),
        );
        let produce_duration = register(
            &registry,
            Histogram::with_opts(
                HistogramOpts::new(
                    "registrar_produce_duration_seconds",
                    "Time from publishing a registration to the broker's acknowledgement",
                )
                .buckets(latency_buckets()),
            )
            .unwrap_or_else(|e| panic!("{e}")),
        );
        let produce_failures = register(
            &registry,
            counter(
                "registrar_produce_failures_total",
                "Registrations the broker did not take, by reason",
                &["reason"],
            ),
        );
        let publish_errors_taken = register(
            &registry,
            IntCounter::new(
                "registrar_produce_failures_taken_total",
                "Publishes that failed at the api while the record was written and a consumer had read it: accepted after all",
            )
            .unwrap_or_else(|e| panic!("{e}")),
        );
        let logins = register(
            &registry,
            counter(
                "registrar_logins_total",
                "Login attempts by outcome (success or the error code)",
                &["outcome"],
            ),
        );
        let oidc_tokens = register(
            &registry,
            counter(
                "registrar_oidc_token_requests_total",
                "OpenID Connect token endpoint answers by grant and outcome (ok or the OAuth error)",
                &["grant", "outcome"],
            ),
        );
        let hash_queue_depth = register(
            &registry,
            IntGauge::new(
                "registrar_password_hash_queue_depth",
                "Requests waiting for a password-hashing worker in the api",
            )
            .unwrap_or_else(|e| panic!("{e}")),
        );
        let hash_wait = register(
            &registry,
            Histogram::with_opts(
                HistogramOpts::new(
                    "registrar_password_hash_wait_seconds",
                    "Time a request waited for a password-hashing worker in the api",
                )
                .buckets(latency_buckets()),
            )
            .unwrap_or_else(|e| panic!("{e}")),
        );
        let health_checks = register(
            &registry,
            IntCounter::new(
                "registrar_health_checks_total",
                "Dependency checks run for the health endpoints",
            )
            .unwrap_or_else(|e| panic!("{e}")),
        );
        let pools = common::ops::metrics::PoolGauges::new(&registry);
        let producer_queue = register(
            &registry,
            IntGauge::new(
                "registrar_producer_queue_messages",
                "Records handed to the Kafka producer and not yet acknowledged or failed",
            )
            .unwrap_or_else(|e| panic!("{e}")),
        );
        let open_connections = register(
            &registry,
            IntGauge::new(
                "registrar_http_open_connections",
                "Client connections the api holds open (at most MAX_CONNECTIONS)",
            )
            .unwrap_or_else(|e| panic!("{e}")),
        );
        let refused_connections = register(
            &registry,
            IntCounter::new(
                "registrar_http_connections_refused_total",
                "Connections beyond MAX_CONNECTIONS, answered 503 OVERLOADED and closed",
            )
            .unwrap_or_else(|e| panic!("{e}")),
        );
        common::ops::metrics::register_process_metrics(&registry);
        for reason in ["queue_full", "unavailable"] {
            produce_failures.with_label_values(&[reason]);
        }
        let dependencies = common::ops::metrics::DependencyGauge::new(&registry);
        Arc::new(Self {
            dependencies,
            open_connections,
            refused_connections,
            pools,
            producer_queue,
            health_checks,
            logins,
            oidc_tokens,
            hash_queue_depth,
            hash_wait,
            registry,
            requests,
            request_duration,
            registrations,
            produce_duration,
            produce_failures,
            publish_errors_taken,
        })
    }
}

/// Counts and times every request under its matched route (never the raw path, which
/// would carry emails and explode the label set).
pub async fn track(
    State(metrics): State<Arc<ApiMetrics>>,
    request: Request,
    next: Next,
) -> Response {
    // Only bounded labels: the matched route (a clone of an `Arc<str>`), a known
    // method, the status code.
    let route = request.extensions().get::<MatchedPath>().cloned();
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    let route = crate::versioning::canonical_route(route);
    let route = route.as_ref();
    let method = method_label(request.method());
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    metrics
        .request_duration
        .with_label_values(&[method, route])
        .observe(started.elapsed().as_secs_f64());
    metrics
        .requests
        .with_label_values(&[method, route, response.status().as_str()])
        .inc();
    response
}

/// The method as a metric label: the standard ones by name, anything else `other`, so
/// a client inventing methods cannot grow the label set.
pub fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}
