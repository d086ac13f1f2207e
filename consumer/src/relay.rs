//! The user-events relay: publishes the outbox (`user_event_outbox`, written in the
//! transaction of each change) to the `user-events` topic. One relay publishes at a time
//! (a PostgreSQL advisory lock, whatever the number of consumer replicas), in `seq`
//! order, with the user id as key, and marks events sent only after the broker
//! acknowledged every one of them: a crash in between publishes them again with the same
//! event ids (at least once, never a gap). Sent events are purged after a retention.

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

/// Longest time a relay that keeps finding full batches goes without scanning the
/// outbox from its start.
const FULL_SCAN_EVERY: Duration = Duration::from_secs(1);

/// Where the next relay step starts reading the outbox.
///
/// A scan from the start of the outbox walks the index entries of every event moved
/// out since the last vacuum (a queue table's dead rows: hundreds of thousands during an
/// import, 11 ms a scan). While batches come full, the next step reads on after the last
/// event it published instead. An event committed late with a lower `seq` (its
/// transaction took the number before another that committed first) is not lost: it is
/// published by the next scan from the start, which comes as soon as a batch is not
/// full, and at least every [`FULL_SCAN_EVERY`]. Per-user order holds, because every
/// change of an account locks its row: a later event of the same user has a higher
/// `seq` and commits after, so it cannot overtake a late one.
#[derive(Debug)]
struct Resume {
    after: Option<i64>,
    full_scan_at: std::time::Instant,
}

impl Resume {
    /// Where this step starts (`None`: the outbox's start). Until the step published a
    /// full batch, the next one starts from the outbox's start.
    fn take_start(&mut self) -> Option<i64> {
        let start = self
            .after
            .take()
            .filter(|_| self.full_scan_at.elapsed() < FULL_SCAN_EVERY);
        if start.is_none() {
            self.full_scan_at = std::time::Instant::now();
        }
        start
    }
}

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
    resume: std::sync::Mutex<Resume>,
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
            resume: std::sync::Mutex::new(Resume {
                after: None,
                full_scan_at: std::time::Instant::now(),
            }),
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

    /// One batch: under the relay lock, publish the oldest unsent events, wait for every
    /// acknowledgement, mark them sent. Returns how many were published (0 when the
    /// outbox is empty or another relay holds the lock).
    pub async fn step(&self, mark: Mark) -> anyhow::Result<usize> {
        let start = self.resume.lock().ok().and_then(|mut r| r.take_start());
        let mut client = self.pg.get().await?;
        let tx = client.transaction().await?;
        if !user_events::try_lock_relay(&*tx).await? {
            return Ok(0);
        }
        let pending = user_events::pending(&*tx, start, self.batch).await?;
        if pending.is_empty() {
            return Ok(0);
        }
        let keys: Vec<String> = pending.iter().map(|e| e.user_id.to_string()).collect();
        let deliveries: Vec<_> = pending
            .iter()
            .zip(&keys)
            .map(|(e, key)| {
                self.producer.send(
                    FutureRecord::to(&self.config.events_topic)
                        .key(key)
                        .payload(&e.payload),
                    Duration::from_secs(15),
                )
            })
            .collect();
        // In order: a failure leaves the whole batch unmarked, to be published again.
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
            return Ok(pending.len());
        }
        let seqs: Vec<i64> = pending.iter().map(|e| e.seq).collect();
        user_events::mark_sent(&*tx, &seqs).await?;
        tx.commit().await?;
        if pending.len() as i64 == self.batch {
            if let Ok(mut resume) = self.resume.lock() {
                resume.after = seqs.last().copied();
            }
        }
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
            user_events::purge_sent(
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
