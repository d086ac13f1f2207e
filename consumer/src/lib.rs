//! Registrar's consumer: reads registrations from Kafka, opens and hashes passwords,
//! and persists users to PostgreSQL. `main.rs` only parses configuration and calls
//! `Consumer::build` and `Consumer::run`.

pub mod config;
pub mod dlq;
pub mod hasher;
pub mod kafka;
pub mod mailer;
pub mod metrics;
pub mod pipeline;
pub mod record;
pub mod relay;
pub mod server;
pub mod webhooks;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::config::ConfigError;
use common::domain::password::PasswordHasherService;
use common::store::redis::Redis;
use common::store::registration_status::RegistrationStatusStore;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::ConsumerConfig;
use crate::dlq::DlqProducer;
use crate::hasher::HashPool;
use crate::metrics::ConsumerMetrics;
use crate::pipeline::Pipeline;

/// What the probes report about the loop.
#[derive(Default)]
pub struct ConsumerHealth {
    running: AtomicBool,
    degraded: AtomicBool,
}

impl ConsumerHealth {
    pub fn set_running(&self, v: bool) {
        self.running.store(v, Ordering::SeqCst);
    }
    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::SeqCst)
    }
    /// A dependency is failing and the loop is backing off.
    pub fn set_degraded(&self, v: bool) {
        self.degraded.store(v, Ordering::SeqCst);
    }
    pub fn is_degraded(&self) -> bool {
        self.degraded.load(Ordering::SeqCst)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot start the hashing pool: {0}")]
    HashPool(anyhow::Error),
}

pub struct Consumer {
    pipeline: Pipeline,
    probes: server::ProbeState,
    dlq: Arc<DlqProducer>,
    lag_monitor: Arc<common::ops::metrics::LagMonitor>,
    shutdown: CancellationToken,
    grace: std::time::Duration,
    mailer: Option<Arc<mailer::Mailer>>,
    relay: Option<Arc<relay::Relay>>,
    webhooks: Option<Arc<webhooks::Webhooks>>,
}

impl Consumer {
    /// Wires everything; nothing connects yet except the Kafka client's background
    /// threads, so this succeeds while dependencies are down.
    pub fn build(config: &ConsumerConfig, shutdown: CancellationToken) -> Result<Self, StartError> {
        config.validate()?;
        let keys = config.opening_keys()?;
        let hasher = PasswordHasherService::new(config.argon2)?;
        let hash_pool = HashPool::new(config.hash_threads(), config.hash_nice, hasher, keys)
            .map_err(StartError::HashPool)?;
        let pg = common::store::postgres::pool(&config.postgres)?;
        let redis = Redis::from_config(&config.redis)?;
        let dlq = Arc::new(DlqProducer::new(&config.kafka)?);
        let health = Arc::new(ConsumerHealth::default());
        let metrics = ConsumerMetrics::new();
        metrics.start_at_zero(
            &dlq::DlqKind::ALL.map(dlq::DlqKind::as_str),
            &pipeline::STEPS,
        );
        let lag_monitor = common::ops::metrics::LagMonitor::new(
            &config.kafka,
            &config.group_id,
            &metrics.registry,
        )?;
        let mailer = if config.mail.enabled {
            Some(Arc::new(mailer::Mailer::new(
                &config.mail,
                pg.clone(),
                &metrics.registry,
            )?))
        } else {
            None
        };
        let relay = if config.relay.run_relay {
            Some(Arc::new(relay::Relay::new(
                &config.relay,
                &config.kafka,
                pg.clone(),
                &metrics.registry,
            )?))
        } else {
            None
        };
        let webhooks = if config.webhooks.run_webhooks {
            Some(Arc::new(webhooks::Webhooks::new(
                &config.webhooks,
                &config.kafka,
                &config.relay.events_topic,
                pg.clone(),
                &metrics.registry,
            )?))
        } else {
            None
        };
        let pipeline = Pipeline {
            consumer: Arc::new(kafka::create(config, metrics.assigned_partitions.clone())?),
            store: RegistrationStatusStore::new(redis.clone()),
            pg: pg.clone(),
            hasher: hash_pool,
            dlq: Arc::clone(&dlq),
            verifier: config.record_verifier()?,
            batch_size: config.batch_size,
            batch_wait: config.batch_wait(),
            backoff_max: config.backoff_max(),
            shutdown: shutdown.clone(),
            health: Arc::clone(&health),
            metrics: Arc::clone(&metrics),
            insert_hint: Default::default(),
        };
        Ok(Self {
            pipeline,
            probes: server::ProbeState {
                health,
                metrics,
                redis,
                pg,
                timeout: config.service.health_timeout(),
            },
            dlq,
            lag_monitor,
            shutdown,
            grace: config.service.shutdown_grace(),
            mailer,
            relay,
            webhooks,
        })
    }

    /// Runs the loop and the probe server until the shutdown token is cancelled; then
    /// finishes the batch in hand, commits offsets, leaves the group and flushes the DLQ
    /// producer.
    pub async fn run(self, listener: TcpListener) -> anyhow::Result<()> {
        let shutdown = self.shutdown.clone();
        let server = axum::serve(listener, server::router(self.probes))
            .with_graceful_shutdown(async move { shutdown.cancelled().await });
        let server = tokio::spawn(async move { server.await });
        let lag = self.lag_monitor.spawn(std::time::Duration::from_secs(5));
        let mail_handle = self
            .mailer
            .map(|m| tokio::spawn(m.run(self.shutdown.clone())));
        let relay_handle = self
            .relay
            .map(|r| tokio::spawn(r.run(self.shutdown.clone())));
        let webhook_handle = self
            .webhooks
            .map(|w| tokio::spawn(w.run(self.shutdown.clone())));
        let loop_handle = tokio::spawn(self.pipeline.run());
        self.shutdown.cancelled().await;
        if tokio::time::timeout(self.grace, loop_handle).await.is_err() {
            tracing::warn!(
                event = "shutdown_grace_exceeded",
                grace_secs = self.grace.as_secs()
            );
        }
        if let Some(handle) = relay_handle {
            if tokio::time::timeout(self.grace, handle).await.is_err() {
                tracing::warn!(event = "relay_shutdown_grace_exceeded");
            }
        }
        if let Some(handle) = webhook_handle {
            if tokio::time::timeout(self.grace, handle).await.is_err() {
                tracing::warn!(event = "webhooks_shutdown_grace_exceeded");
            }
        }
        if let Some(handle) = mail_handle {
            if tokio::time::timeout(self.grace, handle).await.is_err() {
                tracing::warn!(event = "mailer_shutdown_grace_exceeded");
            }
        }
        self.dlq.flush(self.grace).await;
        lag.abort();
        server.abort();
        tracing::info!(event = "consumer_stopped");
        Ok(())
    }
}
