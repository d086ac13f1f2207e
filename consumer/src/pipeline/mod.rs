//! The consumer loop: read a batch, decode, open and hash, persist in one transaction,
//! record outcomes in Redis, dead-letter what cannot be processed, then store offsets.
//!
//! At-least-once: an offset is stored only after every effect of its record succeeded,
//! and every effect is idempotent (the registration id is unique in PostgreSQL, the Redis
//! writes are overwrites), so a redelivered record changes nothing.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use common::events::signature::RecordVerifier;
use common::store::registration_status::RegistrationStatusStore;
use common::store::users;
use rdkafka::consumer::{Consumer, StreamConsumer};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::dlq::DlqProducer;
use crate::hasher::HashPool;
use crate::kafka::LoggingContext;
use crate::metrics::ConsumerMetrics;
pub use crate::record::Item;
use crate::ConsumerHealth;

mod steps;
mod validate;

use validate::{decode_and_validate, BatchOutcome};

/// Bound on one attempt of one step (a transaction, a pipeline, a DLQ send), so a
/// stalled dependency turns into a retry instead of a hang.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// A batch holds `BATCH_SIZE` records that need a hash, or this many times as many
/// pre-hashed ones (imports): what bounds a batch is the hashing time before its
/// insert, and a pre-hashed record has none; a bigger batch is a cheaper transaction
/// per user. A record without the producer's mark counts as one to hash.
pub const PREHASHED_PER_HASHED: usize = 4;

/// The loop was asked to stop while a step was still failing; nothing of the batch is
/// acknowledged and it will be redelivered.
#[derive(Debug)]
pub struct Interrupted;

pub struct Pipeline {
    pub(crate) consumer: Arc<StreamConsumer<LoggingContext>>,
    pub(crate) store: RegistrationStatusStore,
    pub(crate) pg: deadpool_postgres::Pool,
    pub(crate) hasher: HashPool,
    pub(crate) dlq: Arc<DlqProducer>,
    /// The public keys whose signatures make a record trustworthy.
    pub(crate) verifier: RecordVerifier,
    pub(crate) batch_size: usize,
    pub(crate) batch_wait: Duration,
    pub(crate) backoff_max: Duration,
    pub(crate) shutdown: CancellationToken,
    pub(crate) health: Arc<ConsumerHealth>,
    pub(crate) metrics: Arc<ConsumerMetrics>,
    /// Which insert the next batch tries first (see [`users::InsertHint`]).
    pub(crate) insert_hint: users::InsertHint,
}

impl Pipeline {
    /// Runs until the shutdown token is cancelled, then commits the stored offsets.
    pub async fn run(self) {
        let this = Arc::new(self);
        this.health.set_running(true);
        loop {
            let batch = tokio::select! {
                biased;
                () = this.shutdown.cancelled() => break,
                batch = this.next_batch() => batch,
            };
            if batch.is_empty() {
                continue;
            }
            let started = std::time::Instant::now();
            let (batch, result) = this.process_partitions(batch).await;
            match result {
                Ok(()) => {
                    this.store_offsets(&batch);
                    this.metrics.messages.inc_by(batch.len() as u64);
                    this.metrics.batch_size.observe(batch.len() as f64);
                    this.metrics
                        .batch_duration
                        .observe(started.elapsed().as_secs_f64());
                    tracing::debug!(
                        event = "batch_processed",
                        size = batch.len(),
                        elapsed_ms = started.elapsed().as_millis() as u64
                    );
                }
                Err(Interrupted) => break,
            }
        }
        this.health.set_running(false);
        match this
            .consumer
            .commit_consumer_state(rdkafka::consumer::CommitMode::Sync)
        {
            Ok(()) => tracing::info!(event = "offsets_committed_on_shutdown"),
            Err(e) => tracing::info!(event = "offsets_not_committed_on_shutdown", reason = %e),
        }
        this.consumer.unsubscribe();
        tracing::info!(event = "consumer_loop_stopped");
    }

    async fn next_batch(&self) -> Vec<Item> {
        let first = Item::from_message(&common::events::kafka::next_message(&self.consumer).await);
        let cost = |item: &Item| {
            if item.prehashed {
                1
            } else {
                PREHASHED_PER_HASHED
            }
        };
        let limit = self.batch_size * PREHASHED_PER_HASHED;
        let mut spent = cost(&first);
        let mut items = Vec::with_capacity(self.batch_size);
        items.push(first);
        let deadline = tokio::time::Instant::now() + self.batch_wait;
        while spent < limit {
            match tokio::time::timeout_at(
                deadline,
                common::events::kafka::next_message(&self.consumer),
            )
            .await
            {
                Ok(m) => {
                    let item = Item::from_message(&m);
                    spent += cost(&item);
                    items.push(item);
                }
                Err(_) => break,
            }
        }
        items
    }

    fn store_offsets(&self, batch: &[Item]) {
        for item in batch {
            // Fails only for a partition revoked meanwhile; its new owner redelivers.
            if let Err(e) = self
                .consumer
                .store_offset(&item.topic, item.partition, item.offset)
            {
                tracing::debug!(event = "offset_not_stored", partition = item.partition, offset = item.offset, error = %e);
            }
        }
    }

    /// Runs `op` until it succeeds, backing off exponentially (capped) between attempts;
    /// gives up only when shutdown is requested.
    async fn retry<T, F, Fut>(&self, step: &'static str, mut op: F) -> Result<T, Interrupted>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = anyhow::Result<T>>,
    {
        let mut delay = FIRST_BACKOFF;
        let mut attempt: u32 = 0;
        loop {
            let result = match tokio::time::timeout(STEP_TIMEOUT, op()).await {
                Ok(r) => r,
                Err(_) => Err(anyhow::anyhow!("{step} took longer than {STEP_TIMEOUT:?}")),
            };
            match result {
                Ok(v) => {
                    if attempt > 0 {
                        tracing::info!(
                            event = "batch_step_recovered",
                            step,
                            attempts = attempt + 1
                        );
                        self.health.set_degraded(false);
                    }
                    return Ok(v);
                }
                Err(e) => {
                    attempt += 1;
                    self.health.set_degraded(true);
                    self.metrics.step_failures.with_label_values(&[step]).inc();
                    tracing::warn!(
                        event = "batch_step_failed",
                        step,
                        attempt,
                        retry_in_ms = delay.as_millis() as u64,
                        error = format!("{e:#}"),
                    );
                    tokio::select! {
                        () = self.shutdown.cancelled() => return Err(Interrupted),
                        () = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(self.backoff_max);
                }
            }
        }
    }

    /// The batch's records of each partition go through the steps as a batch of their
    /// own, all partitions at once (each transaction on its own PostgreSQL connection, so
    /// the database works on several cores). Within a partition the order stays (a key,
    /// the email, lives in one partition, so the earlier registration of an email still
    /// wins); partitions share no email. A username two partitions claim at once is
    /// decided by PostgreSQL's unique index, as between consumer replicas.
    ///
    /// Each partition's records are a task of their own, so decoding and building one
    /// partition's rows runs on another core than the next one's while PostgreSQL works
    /// on a third. The batch comes back in partition order.
    pub(crate) async fn process_partitions(
        self: &Arc<Self>,
        mut batch: Vec<Item>,
    ) -> (Vec<Item>, Result<(), Interrupted>) {
        // Stable: records of a partition keep their offset order.
        batch.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        let mut parts: Vec<Vec<Item>> = Vec::new();
        for item in batch {
            match parts.last_mut() {
                Some(part)
                    if part[0].partition == item.partition && part[0].topic == item.topic =>
                {
                    part.push(item)
                }
                _ => parts.push(vec![item]),
            }
        }
        let tasks: Vec<_> = parts
            .into_iter()
            .map(|part| {
                let this = Arc::clone(self);
                tokio::spawn(async move {
                    let result = this.process(&part).await;
                    (part, result)
                })
            })
            .collect();
        let mut batch = Vec::new();
        let mut result = Ok(());
        for joined in futures::future::join_all(tasks).await {
            match joined {
                Ok((part, r)) => {
                    batch.extend(part);
                    result = result.and(r);
                }
                // A step panicked: as before the tasks, the panic ends the loop.
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            }
        }
        (batch, result)
    }

    /// One batch through the named steps: decode → validate → take (skip the withdrawn)
    /// → skip the persisted →
    /// open and hash → persist → record outcomes → dead-letter. The caller stores the
    /// offsets only when every step succeeded.
    pub(crate) async fn process(&self, batch: &[Item]) -> Result<(), Interrupted> {
        let span = batch_span(batch);
        tracing::Instrument::instrument(self.process_steps(batch), span).await
    }

    async fn process_steps(&self, batch: &[Item]) -> Result<(), Interrupted> {
        let mut outcome = BatchOutcome::default();
        let candidates = decode_and_validate(batch, &self.verifier, &mut outcome);
        // Imported lines are followed on their import (completed count, failed lines in
        // PostgreSQL); nobody polls them and they have no pending key, so they need no
        // status keys in Redis.
        let imported: std::collections::HashSet<Uuid> = candidates
            .iter()
            .filter(|c| c.event.import.is_some())
            .map(|c| c.event.registration_id)
            .collect();
        let candidates = self.take(candidates).await?;
        let candidates = self.skip_persisted(candidates, &mut outcome).await?;
        let users = self.open_and_hash(candidates, &mut outcome).await;
        self.persist(users, &mut outcome).await?;
        self.record_import_failures(&outcome.import_failures)
            .await?;
        self.notify_owners(&outcome.taken_addresses).await?;
        self.count_failures(&outcome.finished);
        if !imported.is_empty() {
            outcome
                .finished
                .retain(|f| !imported.contains(&f.registration_id));
        }
        self.record_outcomes(&outcome.finished).await?;
        self.dead_letter(&outcome.letters).await
    }
}

/// The span of one batch: a child of the first traced record's producer span (so a
/// registration's trace runs from the api request to the database write), linked to the
/// traces of the batch's other records.
fn batch_span(batch: &[Item]) -> tracing::Span {
    let span = tracing::info_span!(
        "consumer.batch",
        otel.kind = "consumer",
        records = batch.len()
    );
    let mut contexts = batch.iter().filter_map(|item| {
        common::ops::telemetry::remote_context(
            item.trace_headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        )
    });
    if let Some(first) = contexts.next() {
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        let _ = span.set_parent(first);
        for other in contexts {
            common::ops::telemetry::link(&span, &other);
        }
    }
    span
}

/// The names of the batch steps, the `step` label of `registrar_consumer_step_failures_total`.
pub const STEPS: [&str; 7] = [
    "take",
    "check_persisted",
    "insert_users",
    "import_failures",
    "owner_notices",
    "update_status",
    "dead_letter",
];
