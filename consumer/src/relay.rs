//! The user-events relay: publishes the outbox (`user_event_outbox`, written in the
//! transaction of each change) to the `user-events` topic, and the OpenID Connect
//! clients' events in it to the client events topic. One relay publishes at a time
//! (a PostgreSQL advisory lock, whatever the number of consumer replicas), in `seq`
//! order, with the user id (or the client id) as key, and advances its cursor only after the broker
//! acknowledged every one of them: a crash in between publishes them again with the same
//! event ids (at least once, never a gap). Published events are purged after a
//! retention.

use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use common::config::{ConfigError, KafkaConfig};
use common::store::user_events;
use prometheus::{IntCounterVec, IntGauge, Opts, Registry};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio_util::sync::CancellationToken;

/// Events published per transaction.
const BATCH: i64 = 500;

/// Longest wait for the transactions that hold outbox numbers when the relay settles how
/// far it may publish. New outbox inserts queue behind the relay meanwhile, so it is
/// short: a wait that runs out publishes nothing and is tried again at the next poll.
const SETTLE_WAIT: Duration = Duration::from_millis(250);

#[derive(Args, Clone, Debug)]
pub struct RelayConfig {
    /// Run the relay in this consumer (replicas take turns; one publishes at a time).
    #[arg(long = "user-events-relay", env = "USER_EVENTS_RELAY", default_value_t = true, action = clap::ArgAction::Set)]
    pub run_relay: bool,
    /// Topic of the account events (key = user id).
    #[arg(
        long = "user-events-topic",
        env = "USER_EVENTS_TOPIC",
        default_value = "user-events"
    )]
    pub events_topic: String,
    /// Topic of the OpenID Connect clients' events (key = client id).
    #[arg(
        long = "client-events-topic",
        env = "CLIENT_EVENTS_TOPIC",
        default_value = "oidc-client-events"
    )]
    pub client_events_topic: String,
    /// How often the outbox is polled when it was empty, in milliseconds.
    #[arg(
        long = "user-events-poll-ms",
        env = "USER_EVENTS_POLL_MS",
        default_value_t = 200
    )]
    pub events_poll_ms: u64,
    /// Hours sent events stay in the outbox before they are purged.
    #[arg(
        long = "user-events-retention-hours",
        env = "USER_EVENTS_RETENTION_HOURS",
        default_value_t = 168
    )]
    pub events_retention_hours: u64,
}

pub struct RelayMetrics {
    /// `registrar_user_events_published_total{type}`
    pub published: IntCounterVec,
    /// `registrar_user_events_outbox_unsent`
    pub unsent: IntGauge,
    /// `registrar_user_events_outbox_oldest_unsent_seconds`
    pub oldest_unsent: IntGauge,
}

impl RelayMetrics {
    pub fn new(registry: &Registry) -> Arc<Self> {
        let published = IntCounterVec::new(
            Opts::new(
                "registrar_user_events_published_total",
                "User events the broker acknowledged, by type",
            ),
            &["type"],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let unsent = IntGauge::new(
            "registrar_user_events_outbox_unsent",
            "User events in the outbox not published yet",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let oldest_unsent = IntGauge::new(
            "registrar_user_events_outbox_oldest_unsent_seconds",
            "Age of the oldest unpublished user event",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let _ = registry.register(Box::new(published.clone()));
        let _ = registry.register(Box::new(unsent.clone()));
        let _ = registry.register(Box::new(oldest_unsent.clone()));
        Arc::new(Self {
            published,
            unsent,
            oldest_unsent,
        })
    }
}

pub struct Relay {
    pg: deadpool_postgres::Pool,
    producer: FutureProducer,
    config: RelayConfig,
    metrics: Arc<RelayMetrics>,
    /// The last [`user_events::settled_seq`]: numbers up to it need no new wait.
    settled: std::sync::atomic::AtomicI64,
    batch: i64,
}

/// Whether a relay step marks what it published (a test stops before, as a crash would).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    Sent,
    /// Publish, then end without marking: what a relay killed in between leaves.
    CrashBeforeMarking,
}

impl Relay {
    pub fn new(
        config: &RelayConfig,
        kafka: &KafkaConfig,
        pg: deadpool_postgres::Pool,
        registry: &Registry,
    ) -> Result<Self, ConfigError> {
        if config.events_topic.trim().is_empty() {
            return Err(ConfigError::new("USER_EVENTS_TOPIC", "is empty"));
        }
        if config.client_events_topic.trim().is_empty() {
            return Err(ConfigError::new("CLIENT_EVENTS_TOPIC", "is empty"));
        }
        let mut cc = common::events::kafka::client_config(kafka)?;
        cc.set("client.id", "registrar-user-events-relay")
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("message.timeout.ms", "15000");
        common::events::kafka::operator_overrides(&mut cc, kafka)?;
        let producer = cc
            .create()
            .map_err(|e| ConfigError::new("KAFKA_PROPERTIES", e))?;
        Ok(Self {
            pg,
            producer,
            config: config.clone(),
            metrics: RelayMetrics::new(registry),
            settled: std::sync::atomic::AtomicI64::new(i64::MIN),
            batch: BATCH,
        })
    }

    /// Publishes at most `batch` events per step (tests use small batches).
    pub fn with_batch(mut self, batch: i64) -> Self {
        self.batch = batch.max(1);
        self
    }

    /// Publishes until `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let poll = Duration::from_millis(self.config.events_poll_ms.max(10));
        let mut upkeep = std::time::Instant::now() - Duration::from_secs(3600);
        let mut backoff = poll;
        while !shutdown.is_cancelled() {
            let wait = match self.step(Mark::Sent).await {
                Ok(n) if n > 0 => {
                    backoff = poll;
                    Duration::ZERO
                }
                Ok(_) => poll,
                Err(e) => {
                    tracing::warn!(event = "user_events_relay_failed", error = %format!("{e:#}"));
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    backoff
                }
            };
            if upkeep.elapsed() >= Duration::from_secs(10) {
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

    /// One batch: under the relay lock, publish the events after the cursor (up to the
    /// last number no running transaction holds), wait for every acknowledgement,
    /// advance the cursor. Returns how many were published (0 when there is nothing to
    /// publish or another relay holds the lock).
    pub async fn step(&self, mark: Mark) -> anyhow::Result<usize> {
        use std::sync::atomic::Ordering;
        let mut client = self.pg.get().await?;
        let tx = client.transaction().await?;
        if !user_events::try_lock_relay(&*tx).await? {
            tx.rollback().await?;
            return Ok(0);
        }
        let after = user_events::published_seq(&*tx).await?;
        let mut through = self.settled.load(Ordering::Relaxed);
        if through.saturating_sub(after) < self.batch {
            // Settled on another connection: its wait must end before this step reads.
            let mut settler = self.pg.get().await?;
            match user_events::settled_seq(&mut **settler, SETTLE_WAIT).await? {
                Some(settled) => {
                    through = settled;
                    self.settled.fetch_max(settled, Ordering::Relaxed);
                }
                None => {
                    tracing::debug!(event = "user_events_relay_waiting_for_writers");
                }
            }
        }
        if through <= after {
            // Ended here, not by dropping the transaction: a dropped one rolls back (and
            // releases the relay lock) only whenever its connection next runs, so the
            // next step could find the lock still held and publish nothing.
            tx.rollback().await?;
            return Ok(0);
        }
        let pending = user_events::pending(&*tx, after, through, self.batch).await?;
        if pending.is_empty() {
            // Only numbers that were rolled back (or whose events erasure removed).
            user_events::mark_published(&*tx, through).await?;
            tx.commit().await?;
            return Ok(0);
        }
        let keys: Vec<String> = pending.iter().map(|e| e.subject.key()).collect();
        let deliveries: Vec<_> = pending
            .iter()
            .zip(&keys)
            .map(|(e, key)| {
                let topic = match e.subject {
                    user_events::Subject::User(_) => &self.config.events_topic,
                    user_events::Subject::Client(_) => &self.config.client_events_topic,
                };
                self.producer.send(
                    FutureRecord::to(topic).key(key).payload(&e.payload),
                    Duration::from_secs(15),
                )
            })
            .collect();
        // In order: a failure leaves the cursor where it was, to publish them again.
        for (event, delivery) in pending
            .iter()
            .zip(futures::future::join_all(deliveries).await)
        {
            delivery.map_err(|(e, _)| anyhow::anyhow!("publishing event {}: {e}", event.seq))?;
        }
        for e in &pending {
            self.metrics
                .published
                .with_label_values(&[&e.event_type])
                .inc();
        }
        if mark == Mark::CrashBeforeMarking {
            // A killed relay's connection closes and the server ends its transaction,
            // the lock with it. Rolled back here, not dropped: a dropped transaction
            // ends only when its pooled connection next runs, and a step on another
            // connection would find the lock still held (it did, once in CI).
            tx.rollback().await?;
            return Ok(pending.len());
        }
        // A batch cut short by the limit ends at its last event; one that read everything
        // up to the settled number ends there (numbers rolled back leave holes).
        let published = if pending.len() as i64 == self.batch {
            pending.last().map_or(through, |e| e.seq)
        } else {
            through
        };
        user_events::mark_published(&*tx, published).await?;
        tx.commit().await?;
        tracing::debug!(event = "user_events_published", count = pending.len());
        Ok(pending.len())
    }

    async fn upkeep(&self) {
        let result: anyhow::Result<()> = async {
            let client = self.pg.get().await?;
            let (unsent, oldest) = user_events::lag(&**client).await?;
            self.metrics.unsent.set(unsent);
            self.metrics.oldest_unsent.set(oldest as i64);
            let hours = i64::try_from(self.config.events_retention_hours).unwrap_or(168);
            user_events::purge_published(
                &**client,
                chrono::Utc::now() - chrono::Duration::hours(hours),
            )
            .await?;
            Ok(())
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(event = "user_events_upkeep_failed", error = %format!("{e:#}"));
        }
    }
}
