//! Webhooks: the account events of `user-events` delivered over HTTP to the endpoints
//! admins registered, signed as the Standard Webhooks specification says.
//!
//! - **Intake**: a consumer group of its own (`WEBHOOK_GROUP_ID`) on the events topic,
//!   so it scales out like the registration consumer. Each event becomes one delivery
//!   row per subscribed endpoint (idempotent: a record read again adds nothing), and the
//!   offsets are stored after the rows are written: nothing is lost.
//! - **Dispatch**: replicas claim due deliveries (`FOR UPDATE SKIP LOCKED`); of each
//!   endpoint and user only the oldest open delivery is claimable, so an endpoint gets
//!   one user's events in order. A failed attempt is tried again after an exponential
//!   backoff with jitter until the delivery is `WEBHOOK_RETRY_HORIZON_SECS` old (24 h);
//!   an endpoint whose every attempt failed for `WEBHOOK_DISABLE_AFTER_SECS` is disabled
//!   and its owner is mailed.

mod send;

use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use common::config::{ConfigError, KafkaConfig};
use common::domain::webhook_target::TargetGuard;
use common::events::user::UserEvent;
use common::store::webhooks::{self, AfterFailure, Claimed, NewEvent};
use futures::StreamExt;
use prometheus::{Histogram, HistogramOpts, IntCounterVec, IntGaugeVec, Opts, Registry};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::Message;
use serde_json::json;
use tokio_util::sync::CancellationToken;

pub use send::signature;

#[derive(Args, Clone, Debug)]
pub struct WebhookConfig {
    /// Run the webhook intake and dispatcher in this consumer.
    #[arg(long = "webhooks", env = "WEBHOOKS", default_value_t = true, action = clap::ArgAction::Set)]
    pub run_webhooks: bool,
    /// Consumer group of the webhook intake on the events topic.
    #[arg(
        long = "webhook-group-id",
        env = "WEBHOOK_GROUP_ID",
        default_value = "registrar-webhooks"
    )]
    pub webhook_group_id: String,
    /// Networks webhooks may reach although they are internal (loopback, private,
    /// link-local...), comma-separated CIDRs; empty: none.
    #[arg(
        long = "webhook-allow-networks",
        env = "WEBHOOK_ALLOW_NETWORKS",
        default_value = ""
    )]
    pub webhook_allow_networks: String,
    /// Longest wait for an endpoint's answer, in milliseconds.
    #[arg(
        long = "webhook-timeout-ms",
        env = "WEBHOOK_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    pub webhook_timeout_ms: u64,
    /// Deliveries in flight at once per consumer.
    #[arg(
        long = "webhook-concurrency",
        env = "WEBHOOK_CONCURRENCY",
        default_value_t = 32
    )]
    pub webhook_concurrency: usize,
    /// First retry delay in milliseconds; each further one doubles, with jitter.
    #[arg(
        long = "webhook-retry-base-ms",
        env = "WEBHOOK_RETRY_BASE_MS",
        default_value_t = 5_000
    )]
    pub webhook_retry_base_ms: u64,
    /// Longest retry delay in milliseconds.
    #[arg(
        long = "webhook-retry-max-ms",
        env = "WEBHOOK_RETRY_MAX_MS",
        default_value_t = 3_600_000
    )]
    pub webhook_retry_max_ms: u64,
    /// A delivery is retried until it is this old, in seconds (at least 24 h).
    #[arg(
        long = "webhook-retry-horizon-secs",
        env = "WEBHOOK_RETRY_HORIZON_SECS",
        default_value_t = 86_400
    )]
    pub webhook_retry_horizon_secs: u64,
    /// An endpoint whose every attempt failed for this long is disabled, in seconds.
    #[arg(
        long = "webhook-disable-after-secs",
        env = "WEBHOOK_DISABLE_AFTER_SECS",
        default_value_t = 432_000
    )]
    pub webhook_disable_after_secs: u64,
    /// How often due deliveries are looked for when there were none, in milliseconds.
    #[arg(
        long = "webhook-poll-ms",
        env = "WEBHOOK_POLL_MS",
        default_value_t = 200
    )]
    pub webhook_poll_ms: u64,
    /// Hours finished deliveries stay in the delivery log.
    #[arg(
        long = "webhook-log-retention-hours",
        env = "WEBHOOK_LOG_RETENTION_HOURS",
        default_value_t = 168
    )]
    pub webhook_log_retention_hours: u64,
}

impl WebhookConfig {
    pub fn guard(&self) -> Result<TargetGuard, ConfigError> {
        TargetGuard::parse(&self.webhook_allow_networks)
            .map_err(|e| ConfigError::new("WEBHOOK_ALLOW_NETWORKS", e))
    }

    /// The wait before attempt `attempts + 1`: base × 2^(attempts-1), at most the
    /// maximum, of which a random half (equal jitter), so retries of many deliveries
    /// spread out.
    pub fn retry_in(&self, attempts: i32) -> Duration {
        let exp = u32::try_from(attempts.saturating_sub(1))
            .unwrap_or(0)
            .min(30);
        let full = self
            .webhook_retry_base_ms
            .saturating_mul(1u64 << exp)
            .min(self.webhook_retry_max_ms)
            .max(1);
        let half = full / 2;
        Duration::from_millis(half + rand::random::<u64>() % (full - half + 1))
    }
}

pub struct WebhookMetrics {
    /// `registrar_webhook_deliveries_total{outcome}`: delivered | failed | gave_up
    pub deliveries: IntCounterVec,
    /// `registrar_webhook_delivery_seconds`
    pub latency: Histogram,
    /// `registrar_webhook_open_deliveries{endpoint}`
    pub open: IntGaugeVec,
    /// `registrar_webhook_oldest_open_seconds{endpoint}`: the lag per endpoint
    pub oldest_open: IntGaugeVec,
    /// `registrar_webhook_endpoints_disabled_total`
    pub disabled: prometheus::IntCounter,
}

impl WebhookMetrics {
    fn new(registry: &Registry) -> Arc<Self> {
        let deliveries = IntCounterVec::new(
            Opts::new(
                "registrar_webhook_deliveries_total",
                "Webhook delivery attempts by outcome: delivered, failed (tried again), gave_up",
            ),
            &["outcome"],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let latency = Histogram::with_opts(
            HistogramOpts::new(
                "registrar_webhook_delivery_seconds",
                "Time of a webhook attempt until the endpoint answered",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let open = IntGaugeVec::new(
            Opts::new(
                "registrar_webhook_open_deliveries",
                "Deliveries of an endpoint not delivered yet",
            ),
            &["endpoint"],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let oldest_open = IntGaugeVec::new(
            Opts::new(
                "registrar_webhook_oldest_open_seconds",
                "Age of an endpoint's oldest delivery not delivered yet: its lag",
            ),
            &["endpoint"],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let disabled = prometheus::IntCounter::new(
            "registrar_webhook_endpoints_disabled_total",
            "Endpoints disabled because every delivery kept failing",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        for outcome in ["delivered", "failed", "gave_up"] {
            deliveries.with_label_values(&[outcome]);
        }
        let _ = registry.register(Box::new(deliveries.clone()));
        let _ = registry.register(Box::new(latency.clone()));
        let _ = registry.register(Box::new(open.clone()));
        let _ = registry.register(Box::new(oldest_open.clone()));
        let _ = registry.register(Box::new(disabled.clone()));
        Arc::new(Self {
            deliveries,
            latency,
            open,
            oldest_open,
            disabled,
        })
    }
}

/// The body of a webhook: the event as the topic has it, under `data`, with the
/// Standard Webhooks envelope's `type` and `timestamp`.
pub fn payload(e: &UserEvent) -> serde_json::Value {
    let timestamp = chrono::DateTime::from_timestamp_millis(e.occurred_at_ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    json!({
        "type": e.event_type.as_str(),
        "timestamp": timestamp,
        "data": {
            "eventId": e.event_id,
            "type": e.event_type.as_str(),
            "occurredAtMs": e.occurred_at_ms,
            "userId": e.user_id,
            "actorId": e.actor_id,
            "requestId": e.request_id,
            "version": e.version,
            "email": e.email,
            "role": e.role,
            "previousRole": e.previous_role,
            "changedFields": e.changed_fields,
        }
    })
}

pub struct Webhooks {
    pg: deadpool_postgres::Pool,
    intake: StreamConsumer,
    sender: send::Sender,
    config: WebhookConfig,
    metrics: Arc<WebhookMetrics>,
}

impl Webhooks {
    pub fn new(
        config: &WebhookConfig,
        kafka: &KafkaConfig,
        events_topic: &str,
        pg: deadpool_postgres::Pool,
        registry: &Registry,
    ) -> Result<Self, ConfigError> {
        let guard = config.guard()?;
        if config.webhook_retry_horizon_secs < 1 || config.webhook_concurrency == 0 {
            return Err(ConfigError::new(
                "WEBHOOK_RETRY_HORIZON_SECS",
                "and WEBHOOK_CONCURRENCY must be at least 1",
            ));
        }
        let mut cc = common::events::kafka::client_config(kafka)?;
        cc.set("group.id", &config.webhook_group_id)
            .set("client.id", "registrar-webhooks")
            .set("enable.auto.commit", "true")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("fetch.wait.max.ms", "50");
        common::events::kafka::operator_overrides(&mut cc, kafka)?;
        let intake: StreamConsumer = cc
            .create()
            .map_err(|e| ConfigError::new("KAFKA_PROPERTIES", e))?;
        intake
            .subscribe(&[events_topic])
            .map_err(|e| ConfigError::new("USER_EVENTS_TOPIC", e))?;
        let sender = send::Sender::new(
            guard,
            Duration::from_millis(config.webhook_timeout_ms.max(1)),
        )
        .map_err(|e| ConfigError::new("WEBHOOK_TIMEOUT_MS", e))?;
        Ok(Self {
            pg,
            intake,
            sender,
            config: config.clone(),
            metrics: WebhookMetrics::new(registry),
        })
    }

    /// Runs intake, dispatch and upkeep until `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let intake = tokio::spawn(Arc::clone(&self).run_intake(shutdown.clone()));
        let dispatch = tokio::spawn(Arc::clone(&self).run_dispatch(shutdown.clone()));
        let _ = tokio::join!(intake, dispatch);
    }

    async fn run_intake(self: Arc<Self>, shutdown: CancellationToken) {
        let mut backoff = Duration::from_millis(100);
        while !shutdown.is_cancelled() {
            match self.intake_batch(&shutdown).await {
                Ok(()) => backoff = Duration::from_millis(100),
                Err(e) => {
                    tracing::warn!(event = "webhook_intake_failed", error = %format!("{e:#}"));
                    tokio::select! {
                        () = shutdown.cancelled() => {}
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
    }

    /// Reads up to 500 events (or what came within 50 ms of the first), writes their
    /// deliveries, then stores the offsets. A failure stores nothing, so the records
    /// are read again.
    async fn intake_batch(&self, shutdown: &CancellationToken) -> anyhow::Result<()> {
        let first = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            m = common::events::kafka::next_message(&self.intake) => m,
        };
        let mut messages = vec![first.detach()];
        let deadline = tokio::time::Instant::now() + Duration::from_millis(50);
        while messages.len() < 500 {
            match tokio::time::timeout_at(
                deadline,
                common::events::kafka::next_message(&self.intake),
            )
            .await
            {
                Ok(m) => messages.push(m.detach()),
                Err(_) => break,
            }
        }
        let mut decoded = Vec::with_capacity(messages.len());
        for m in &messages {
            match UserEvent::decode(m.payload().unwrap_or_default()) {
                Ok(e) => decoded.push(e),
                Err(e) => tracing::warn!(
                    event = "webhook_intake_undecodable",
                    partition = m.partition(),
                    offset = m.offset(),
                    error = %e
                ),
            }
        }
        let events: Vec<NewEvent<'_>> = decoded
            .iter()
            .map(|e| NewEvent {
                event_id: e.event_id,
                occurred_at: chrono::DateTime::from_timestamp_millis(e.occurred_at_ms)
                    .unwrap_or_default(),
                event_type: e.event_type.as_str(),
                subject: e.user_id,
                payload: payload(e),
            })
            .collect();
        let client = self.pg.get().await?;
        webhooks::enqueue(&**client, &events).await?;
        for m in &messages {
            self.intake
                .store_offset(m.topic(), m.partition(), m.offset())?;
        }
        Ok(())
    }

    async fn run_dispatch(self: Arc<Self>, shutdown: CancellationToken) {
        let poll = Duration::from_millis(self.config.webhook_poll_ms.max(10));
        let mut upkeep = std::time::Instant::now() - Duration::from_secs(3600);
        while !shutdown.is_cancelled() {
            let wait = match self.dispatch_once().await {
                Ok(n) if n > 0 => Duration::ZERO,
                Ok(_) => poll,
                Err(e) => {
                    tracing::warn!(event = "webhook_dispatch_failed", error = %format!("{e:#}"));
                    Duration::from_secs(1)
                }
            };
            if upkeep.elapsed() >= Duration::from_secs(5) {
                upkeep = std::time::Instant::now();
                self.upkeep().await;
            }
            if !wait.is_zero() {
                tokio::select! {
                    () = shutdown.cancelled() => {}
                    () = tokio::time::sleep(wait) => {}
                }
            }
        }
    }

    /// Claims the due deliveries and attempts them concurrently; returns how many.
    pub async fn dispatch_once(&self) -> anyhow::Result<usize> {
        let lease =
            Duration::from_millis(self.config.webhook_timeout_ms) * 2 + Duration::from_secs(5);
        let claimed = {
            let client = self.pg.get().await?;
            webhooks::claim(
                &**client,
                (self.config.webhook_concurrency * 4) as i64,
                lease,
            )
            .await?
        };
        let n = claimed.len();
        futures::stream::iter(claimed)
            .map(|d| self.attempt(d))
            .buffer_unordered(self.config.webhook_concurrency)
            .for_each(|r| async move {
                if let Err(e) = r {
                    tracing::warn!(event = "webhook_record_failed", error = %format!("{e:#}"));
                }
            })
            .await;
        Ok(n)
    }

    async fn attempt(&self, delivery: Claimed) -> anyhow::Result<()> {
        let (ok, attempt) = self.sender.send(&delivery).await;
        self.metrics
            .latency
            .observe(f64::from(attempt.latency_ms) / 1000.0);
        let mut client = self.pg.get().await?;
        if ok {
            webhooks::record_delivered(&**client, delivery.id, &attempt).await?;
            self.metrics
                .deliveries
                .with_label_values(&["delivered"])
                .inc();
            return Ok(());
        }
        let (after, disabled) = webhooks::record_failed(
            &mut **client,
            delivery.id,
            &attempt,
            self.config.retry_in(delivery.attempts + 1),
            Duration::from_secs(self.config.webhook_retry_horizon_secs),
            Duration::from_secs(self.config.webhook_disable_after_secs),
        )
        .await?;
        let outcome = match after {
            AfterFailure::Retry => "failed",
            AfterFailure::GaveUp => "gave_up",
        };
        self.metrics.deliveries.with_label_values(&[outcome]).inc();
        tracing::info!(
            event = "webhook_attempt_failed",
            endpoint = %delivery.endpoint_id,
            delivery = delivery.id,
            attempts = delivery.attempts + 1,
            status = ?attempt.status,
            error = attempt.error.as_deref().unwrap_or(""),
            outcome
        );
        if let Some(d) = disabled {
            self.metrics.disabled.inc();
            tracing::warn!(event = "webhook_endpoint_disabled", endpoint = %d.endpoint_id, owner_told = d.owner.is_some());
        }
        Ok(())
    }

    async fn upkeep(&self) {
        let result: anyhow::Result<()> = async {
            let client = self.pg.get().await?;
            self.metrics.open.reset();
            self.metrics.oldest_open.reset();
            for (endpoint, open, oldest) in webhooks::lag(&**client).await? {
                let label = endpoint.to_string();
                self.metrics.open.with_label_values(&[&label]).set(open);
                self.metrics
                    .oldest_open
                    .with_label_values(&[&label])
                    .set(oldest as i64);
            }
            let hours = i64::try_from(self.config.webhook_log_retention_hours).unwrap_or(168);
            webhooks::purge_finished(
                &**client,
                chrono::Utc::now() - chrono::Duration::hours(hours),
            )
            .await?;
            Ok(())
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(event = "webhook_upkeep_failed", error = %format!("{e:#}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        config: WebhookConfig,
    }

    #[test]
    fn retries_back_off_exponentially_with_jitter_up_to_the_maximum() {
        let config = Cli::parse_from(["t"]).config;
        for attempts in 1..=20 {
            let full = (5_000u64 << (attempts - 1).min(30)).min(3_600_000);
            let wait = config.retry_in(attempts).as_millis() as u64;
            assert!(
                (full / 2..=full).contains(&wait),
                "attempt {attempts}: {wait} ms not in [{}, {full}]",
                full / 2
            );
        }
        // Giving up is by age (the horizon, a day), not by count: with waits of at most
        // an hour, a delivery gets at least 24 attempts before it is given up.
        assert!(config.webhook_retry_max_ms / 1000 * 24 <= config.webhook_retry_horizon_secs);
    }

    #[test]
    fn the_payload_carries_every_field_of_the_event() {
        let mut e = UserEvent::new(
            common::events::user::UserEventType::Registered,
            uuid::Uuid::now_v7(),
            1,
        );
        e.email = Some("ada@example.com".into());
        let p = payload(&e);
        assert_eq!(p["type"], "user.registered");
        assert_eq!(p["data"]["eventId"], e.event_id.to_string());
        assert_eq!(p["data"]["email"], "ada@example.com");
        assert!(p["timestamp"].as_str().unwrap().ends_with('Z'));
    }
}
