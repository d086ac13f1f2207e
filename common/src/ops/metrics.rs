//! Prometheus plumbing shared by both binaries: registration helpers, the text
//! exposition, and the consumer-group lag monitor.
//!
//! Every metric is named `registrar_*`; labels are bounded sets (routes, reasons,
//! partitions), never raw paths, emails or ids.

use std::sync::Arc;
use std::time::Duration;

use prometheus::core::Collector;
use prometheus::{Encoder, IntGaugeVec, Opts, Registry, TextEncoder};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::util::Timeout;
use rdkafka::{Offset, TopicPartitionList};

use crate::config::{ConfigError, KafkaConfig};

/// Registers `metric` in `registry` and returns it. Names are static and unique per
/// registry, so a failure is a programming error caught by the first test.
pub fn register<T: Collector + Clone + 'static>(registry: &Registry, metric: T) -> T {
    registry
        .register(Box::new(metric.clone()))
        .unwrap_or_else(|e| panic!("metric registered twice: {e}"));
    metric
}

/// Exponential latency buckets from 0.5 ms to ~16 s.
pub fn latency_buckets() -> Vec<f64> {
    prometheus::exponential_buckets(0.0005, 2.0, 16).unwrap_or_default()
}

/// Registers the process collector: `process_cpu_seconds_total`,
/// `process_resident_memory_bytes`, `process_virtual_memory_bytes`, `process_open_fds`,
/// `process_max_fds`, `process_threads` and `process_start_time_seconds`, read from
/// `/proc/self` at each scrape (Linux; absent elsewhere).
pub fn register_process_metrics(registry: &Registry) {
    #[cfg(target_os = "linux")]
    if let Err(e) = registry.register(Box::new(
        prometheus::process_collector::ProcessCollector::for_self(),
    )) {
        tracing::warn!(event = "process_metrics_unavailable", error = %e);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = registry;
}

/// `registrar_pool_connections{pool,state}`: a connection pool's `max` size, `open`
/// connections, `idle` ones and callers `waiting` for one, set at each scrape.
pub struct PoolGauges(IntGaugeVec);

/// One pool's numbers, as deadpool reports them.
#[derive(Debug, Clone, Copy)]
pub struct PoolStatus {
    pub max: usize,
    pub open: usize,
    pub idle: usize,
    pub waiting: usize,
}

impl PoolGauges {
    pub fn new(registry: &Registry) -> Self {
        let gauge = IntGaugeVec::new(
            Opts::new(
                "registrar_pool_connections",
                "Connection pool size: max, open, idle, and callers waiting, by pool",
            ),
            &["pool", "state"],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        Self(register(registry, gauge))
    }

    pub fn set(&self, pool: &str, status: PoolStatus) {
        let as_i64 = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        for (state, value) in [
            ("max", status.max),
            ("open", status.open),
            ("idle", status.idle),
            ("waiting", status.waiting),
        ] {
            self.0.with_label_values(&[pool, state]).set(as_i64(value));
        }
    }
}

impl From<deadpool_postgres::Status> for PoolStatus {
    fn from(s: deadpool_postgres::Status) -> Self {
        Self {
            max: s.max_size,
            open: s.size,
            idle: s.available,
            waiting: s.waiting,
        }
    }
}

/// `registrar_dependency_up{dependency}`: 1 when the dependency answered its last health
/// check, 0 when it did not. The alert on a dependency being down reads it.
pub struct DependencyGauge(IntGaugeVec);

impl DependencyGauge {
    pub fn new(registry: &Registry) -> Self {
        let gauge = IntGaugeVec::new(
            Opts::new(
                "registrar_dependency_up",
                "1 if the dependency answered the last health check, else 0",
            ),
            &["dependency"],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        Self(register(registry, gauge))
    }

    pub fn set(&self, dependency: &str, healthy: bool) {
        self.0
            .with_label_values(&[dependency])
            .set(i64::from(healthy));
    }
}

/// The registry in Prometheus text format.
pub fn render(registry: &Registry) -> String {
    let mut out = Vec::new();
    let encoder = TextEncoder::new();
    if let Err(e) = encoder.encode(&registry.gather(), &mut out) {
        tracing::error!(event = "metrics_encode_failed", error = %e);
    }
    String::from_utf8(out).unwrap_or_default()
}

/// Content type of `render`'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Publishes `registrar_consumer_lag{topic,partition}`: the broker's high watermark minus
/// the group's committed offset, refreshed every `interval`. It reads committed offsets
/// without joining the group, so the lag keeps rising while no consumer runs: the
/// signal to scale on.
pub struct LagMonitor {
    client: BaseConsumer,
    topic: String,
    gauge: IntGaugeVec,
}

impl LagMonitor {
    pub fn new(
        kafka: &KafkaConfig,
        group_id: &str,
        registry: &Registry,
    ) -> Result<Arc<Self>, ConfigError> {
        let mut cc = crate::events::kafka::client_config(kafka)?;
        cc.set("group.id", group_id)
            .set("client.id", "registrar-lag-monitor")
            .set("enable.auto.commit", "false");
        let client: BaseConsumer = cc
            .create()
            .map_err(|e| ConfigError::new("KAFKA_PROPERTIES", e))?;
        let gauge = register(
            registry,
            IntGaugeVec::new(
                Opts::new(
                    "registrar_consumer_lag",
                    "Records in the topic not yet committed by the consumer group, per partition",
                ),
                &["topic", "partition"],
            )
            .unwrap_or_else(|e| panic!("{e}")),
        );
        Ok(Arc::new(Self {
            client,
            topic: kafka.topic.clone(),
            gauge,
        }))
    }

    /// One measurement; blocking (broker round trips), run it off the async workers.
    pub fn refresh(&self, timeout: Duration) -> anyhow::Result<()> {
        let client = &self.client;
        let metadata = client.fetch_metadata(Some(&self.topic), Timeout::After(timeout))?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        let mut tpl = TopicPartitionList::new();
        for p in &partitions {
            tpl.add_partition(&self.topic, *p);
        }
        let committed = client.committed_offsets(tpl, Timeout::After(timeout))?;
        for p in partitions {
            let (low, high) = client.fetch_watermarks(&self.topic, p, Timeout::After(timeout))?;
            let position = match committed.find_partition(&self.topic, p).map(|e| e.offset()) {
                Some(Offset::Offset(o)) => o,
                // Nothing committed yet: everything still in the topic is lag.
                _ => low,
            };
            let lag = (high - position).max(0);
            self.gauge
                .with_label_values(&[self.topic.as_str(), &p.to_string()])
                .set(lag);
        }
        Ok(())
    }

    /// Refreshes every `interval` until the task is dropped.
    pub fn spawn(self: Arc<Self>, interval: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let monitor = Arc::clone(&self);
                let result =
                    tokio::task::spawn_blocking(move || monitor.refresh(Duration::from_secs(3)))
                        .await;
                match result {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::debug!(event = "lag_refresh_failed", error = %e),
                    Err(e) => tracing::debug!(event = "lag_refresh_failed", error = %e),
                }
            }
        })
    }
}
