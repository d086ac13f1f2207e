//! The consumer's Prometheus metrics, one registry per consumer instance.

use std::sync::Arc;

use common::ops::metrics::{latency_buckets, register};
use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

pub struct ConsumerMetrics {
    pub registry: Registry,
    /// `registrar_consumer_messages_total`
    pub messages: IntCounter,
    /// `registrar_consumer_users_persisted_total`
    pub users_persisted: IntCounter,
    /// `registrar_consumer_registrations_withdrawn_total`: records skipped because the
    /// api had answered their registration 503 (its publish failed, yet was written).
    pub registrations_withdrawn: IntCounter,
    /// `registrar_consumer_registrations_failed_total{reason}`
    pub registrations_failed: IntCounterVec,
    /// `registrar_consumer_dlq_messages_total{kind}`
    pub dlq_messages: IntCounterVec,
    /// `registrar_consumer_batch_size`
    pub batch_size: Histogram,
    /// `registrar_consumer_batch_duration_seconds`
    pub batch_duration: Histogram,
    /// `registrar_consumer_e2e_latency_seconds`: submission at the api to persisted.
    pub e2e_latency: Histogram,
    /// `registrar_consumer_step_failures_total{step}`: retried dependency failures.
    pub step_failures: IntCounterVec,
    /// `registrar_consumer_assigned_partitions`: partitions this member holds now.
    pub assigned_partitions: IntGauge,
    /// `registrar_pool_connections{pool,state}` of PostgreSQL and Redis, set per scrape.
    pub pools: common::ops::metrics::PoolGauges,
    /// `registrar_dependency_up{dependency}`: PostgreSQL and Redis at the last readiness check.
    pub dependencies: common::ops::metrics::DependencyGauge,
}

fn counter_vec(name: &str, help: &str, label: &str) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), &[label]).unwrap_or_else(|e| panic!("{e}"))
}

fn histogram(name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
        .unwrap_or_else(|e| panic!("{e}"))
}

impl ConsumerMetrics {
    pub fn new() -> Arc<Self> {
        let registry = Registry::new();
        let r = &registry;
        let metrics = Self {
            messages: register(
                r,
                IntCounter::new("registrar_consumer_messages_total", "Records consumed")
                    .unwrap_or_else(|e| panic!("{e}")),
            ),
            assigned_partitions: register(
                r,
                IntGauge::new(
                    "registrar_consumer_assigned_partitions",
                    "Partitions of the topic assigned to this member of the group",
                )
                .unwrap_or_else(|e| panic!("{e}")),
            ),
            users_persisted: register(
                r,
                IntCounter::new(
                    "registrar_consumer_users_persisted_total",
                    "New users written to PostgreSQL",
                )
                .unwrap_or_else(|e| panic!("{e}")),
            ),
            registrations_withdrawn: register(
                r,
                IntCounter::new(
                    "registrar_consumer_registrations_withdrawn_total",
                    "Records skipped because the api answered their registration 503 (the publish failed at the api, yet the record was written)",
                )
                .unwrap_or_else(|e| panic!("{e}")),
            ),
            registrations_failed: register(
                r,
                counter_vec(
                    "registrar_consumer_registrations_failed_total",
                    "Registrations rejected, by reason",
                    "reason",
                ),
            ),
            dlq_messages: register(
                r,
                counter_vec(
                    "registrar_consumer_dlq_messages_total",
                    "Records sent to the dead-letter topic, by kind",
                    "kind",
                ),
            ),
            batch_size: register(
                r,
                histogram(
                    "registrar_consumer_batch_size",
                    "Records per processed batch",
                    prometheus::exponential_buckets(1.0, 2.0, 14).unwrap_or_default(),
                ),
            ),
            batch_duration: register(
                r,
                histogram(
                    "registrar_consumer_batch_duration_seconds",
                    "Time to process one batch, hashing included",
                    latency_buckets(),
                ),
            ),
            e2e_latency: register(
                r,
                histogram(
                    "registrar_consumer_e2e_latency_seconds",
                    "Time from the api accepting a registration to the user being persisted",
                    latency_buckets(),
                ),
            ),
            step_failures: register(
                r,
                counter_vec(
                    "registrar_consumer_step_failures_total",
                    "Failed attempts of a batch step (retried with backoff), by step",
                    "step",
                ),
            ),
            pools: common::ops::metrics::PoolGauges::new(r),
            dependencies: common::ops::metrics::DependencyGauge::new(r),
            registry,
        };
        common::ops::metrics::register_process_metrics(&metrics.registry);
        // Every known label value starts at 0, so rates and alerts have a series to read
        // before the first failure.
        for reason in common::domain::registration::FailureReason::ALL {
            metrics
                .registrations_failed
                .with_label_values(&[reason.as_str()]);
        }
        Arc::new(metrics)
    }

    /// Starts the series of every dead-letter kind and pipeline step at 0 (the
    /// composition root knows them; this module depends on neither).
    pub fn start_at_zero(&self, dlq_kinds: &[&str], steps: &[&str]) {
        for kind in dlq_kinds {
            self.dlq_messages.with_label_values(&[kind]);
        }
        for step in steps {
            self.step_failures.with_label_values(&[step]);
        }
    }
}
