//! The consumer loop: read a batch, decode, open and hash, persist in one transaction,
//! record outcomes in Redis, dead-letter what cannot be processed, then store offsets.
//!
//! At-least-once: an offset is stored only after every effect of its record succeeded,
//! and every effect is idempotent (the registration id is unique in PostgreSQL, the Redis
//! writes are overwrites), so a redelivered record changes nothing.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use common::email::Email;
use common::event::{Credential, RegistrationEvent};
use common::password::PasswordHasherService;
use common::redis_store::{Finished, StatusStore};
use common::registration::{FailureReason, Profile, ProfileInput};
use common::users::{self, InsertOutcome, NewUser};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Headers};
use rdkafka::Message;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::dlq::{DeadLetter, DlqKind, DlqProducer};
use crate::hasher::{HashJob, HashPool};
use crate::kafka::LoggingContext;
use crate::metrics::ConsumerMetrics;
use crate::ConsumerHealth;

/// Bound on one attempt of one step (a transaction, a pipeline, a DLQ send), so a
/// stalled dependency turns into a retry instead of a hang.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// One Kafka record, detached from the consumer.
#[derive(Debug, Clone)]
pub struct Item {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub request_id: Option<String>,
}

impl Item {
    fn from_message(m: &BorrowedMessage<'_>) -> Self {
        let request_id = m.headers().and_then(|h| {
            h.iter()
                .find(|h| h.key == common::kafka::REQUEST_ID_HEADER)
                .and_then(|h| h.value)
                .and_then(|v| std::str::from_utf8(v).ok())
                .map(str::to_owned)
        });
        Self {
            topic: m.topic().to_owned(),
            partition: m.partition(),
            offset: m.offset(),
            key: m.key().map(<[u8]>::to_vec),
            payload: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
            request_id,
        }
    }
}

/// The loop was asked to stop while a step was still failing; nothing of the batch is
/// acknowledged and it will be redelivered.
#[derive(Debug)]
pub struct Interrupted;

pub struct Pipeline {
    pub(crate) consumer: StreamConsumer<LoggingContext>,
    pub(crate) store: StatusStore,
    pub(crate) pg: deadpool_postgres::Pool,
    pub(crate) hasher: HashPool,
    pub(crate) dlq: Arc<DlqProducer>,
    pub(crate) batch_size: usize,
    pub(crate) batch_wait: Duration,
    pub(crate) backoff_max: Duration,
    pub(crate) shutdown: CancellationToken,
    pub(crate) health: Arc<ConsumerHealth>,
    pub(crate) metrics: Arc<ConsumerMetrics>,
}

impl Pipeline {
    /// Runs until the shutdown token is cancelled, then commits the stored offsets.
    pub async fn run(self) {
        self.health.set_running(true);
        loop {
            let batch = tokio::select! {
                biased;
                () = self.shutdown.cancelled() => break,
                batch = self.next_batch() => batch,
            };
            if batch.is_empty() {
                continue;
            }
            let started = std::time::Instant::now();
            match self.process(&batch).await {
                Ok(()) => {
                    self.store_offsets(&batch);
                    self.metrics.messages.inc_by(batch.len() as u64);
                    self.metrics.batch_size.observe(batch.len() as f64);
                    self.metrics
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
        self.health.set_running(false);
        match self
            .consumer
            .commit_consumer_state(rdkafka::consumer::CommitMode::Sync)
        {
            Ok(()) => tracing::info!(event = "offsets_committed_on_shutdown"),
            Err(e) => tracing::info!(event = "offsets_not_committed_on_shutdown", reason = %e),
        }
        self.consumer.unsubscribe();
        tracing::info!(event = "consumer_loop_stopped");
    }

    async fn next_batch(&self) -> Vec<Item> {
        let first = match self.consumer.recv().await {
            Ok(m) => Item::from_message(&m),
            Err(e) => {
                tracing::warn!(event = "kafka_receive_failed", error = %e);
                // Errors repeat while the broker is away; don't spin on them.
                tokio::time::sleep(Duration::from_millis(500)).await;
                return Vec::new();
            }
        };
        let mut items = Vec::with_capacity(self.batch_size);
        items.push(first);
        let deadline = tokio::time::Instant::now() + self.batch_wait;
        while items.len() < self.batch_size {
            match tokio::time::timeout_at(deadline, self.consumer.recv()).await {
                Ok(Ok(m)) => items.push(Item::from_message(&m)),
                Ok(Err(e)) => {
                    tracing::warn!(event = "kafka_receive_failed", error = %e);
                    break;
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

    pub(crate) async fn process(&self, batch: &[Item]) -> Result<(), Interrupted> {
        let mut letters: Vec<DeadLetter<'_>> = Vec::new();
        let mut finished: Vec<Finished> = Vec::new();

        // 1. Decode and validate.
        let mut candidates: Vec<(&Item, RegistrationEvent, Profile)> = Vec::new();
        for item in batch {
            let event = match RegistrationEvent::decode(&item.payload) {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!(event = "record_undecodable", partition = item.partition, offset = item.offset, error = %e);
                    letters.push(DeadLetter {
                        item,
                        kind: DlqKind::Undecodable,
                        error: e.to_string(),
                    });
                    continue;
                }
            };
            match Profile::parse(ProfileInput {
                email: Some(&event.email),
                first_name: Some(&event.first_name),
                last_name: Some(&event.last_name),
                gender: Some(&event.gender),
                sex: Some(&event.sex),
                occupation: Some(&event.occupation),
            }) {
                Ok(profile) => candidates.push((item, event, profile)),
                Err(errors) => {
                    let error = errors
                        .iter()
                        .map(|e| format!("{} {}", e.field, e.message))
                        .collect::<Vec<_>>()
                        .join("; ");
                    tracing::warn!(event = "registration_invalid", registration_id = %event.registration_id, error = %error);
                    if let Ok(email) = Email::parse(&event.email) {
                        finished.push(failed(
                            email,
                            event.registration_id,
                            FailureReason::InvalidRegistration,
                        ));
                    }
                    letters.push(DeadLetter {
                        item,
                        kind: DlqKind::Invalid,
                        error,
                    });
                }
            }
        }

        // 2. Skip the expensive hash for registrations persisted before (redelivery).
        let ids: Vec<Uuid> = candidates.iter().map(|c| c.1.registration_id).collect();
        let persisted = self
            .retry("check_persisted", || async {
                let client = self.pg.get().await?;
                Ok(users::persisted_registrations(&**client, &ids).await?)
            })
            .await?;

        // 3. Open and hash the rest on the hashing pool.
        let mut to_insert: Vec<NewUser> = Vec::new();
        let mut jobs = Vec::new();
        let mut job_owners = Vec::new();
        for (item, event, profile) in candidates {
            if persisted.contains(&event.registration_id) {
                finished.push(completed(profile.email, event.registration_id));
                continue;
            }
            match event.credential {
                Credential::PasswordHash(ref phc)
                    if PasswordHasherService::is_argon2id_phc(phc) =>
                {
                    let hash = phc.clone();
                    to_insert.push(new_user(&event, profile, hash));
                }
                Credential::PasswordHash(_) => {
                    finished.push(failed(
                        profile.email,
                        event.registration_id,
                        FailureReason::InvalidRegistration,
                    ));
                    letters.push(DeadLetter {
                        item,
                        kind: DlqKind::Invalid,
                        error: "imported password hash is not an argon2id PHC string".into(),
                    });
                }
                Credential::Sealed(ref sealed) => {
                    jobs.push(HashJob {
                        registration_id: event.registration_id,
                        email: profile.email.clone(),
                        sealed: sealed.clone(),
                    });
                    job_owners.push((item, event, profile));
                }
            }
        }
        let hashed = self.hasher.open_and_hash(jobs).await;
        for ((item, event, profile), result) in job_owners.into_iter().zip(hashed) {
            match result {
                Ok(hash) => to_insert.push(new_user(&event, profile, hash)),
                Err(e) => {
                    tracing::warn!(event = "credential_envelope_rejected", registration_id = %event.registration_id, error = %e);
                    finished.push(failed(
                        profile.email,
                        event.registration_id,
                        FailureReason::InvalidCredentialEnvelope,
                    ));
                    letters.push(DeadLetter {
                        item,
                        kind: DlqKind::Credential,
                        error: e.to_string(),
                    });
                }
            }
        }

        // 4. Users and audit rows, one transaction.
        let outcomes = self
            .retry("insert_users", || async {
                let mut client = self.pg.get().await?;
                Ok(users::insert_batch(&mut client, &to_insert).await?)
            })
            .await?;
        for (user, outcome) in to_insert.into_iter().zip(outcomes) {
            let email = user.profile.email;
            match outcome {
                InsertOutcome::Created { .. } => {
                    tracing::info!(
                        event = "user_persisted",
                        email = %email.masked(),
                        registration_id = %user.registration_id,
                        request_id = user.request_id.as_deref().unwrap_or_default(),
                    );
                    self.metrics.users_persisted.inc();
                    let e2e = chrono::Utc::now() - user.submitted_at;
                    self.metrics
                        .e2e_latency
                        .observe(e2e.num_microseconds().unwrap_or_default().max(0) as f64 / 1e6);
                    finished.push(completed(email, user.registration_id));
                }
                InsertOutcome::AlreadyPersisted { .. } => {
                    finished.push(completed(email, user.registration_id));
                }
                InsertOutcome::EmailTaken => {
                    tracing::info!(event = "registration_rejected", reason = "EMAIL_TAKEN", email = %email.masked(), registration_id = %user.registration_id);
                    finished.push(failed(
                        email,
                        user.registration_id,
                        FailureReason::EmailTaken,
                    ));
                }
            }
        }

        for f in &finished {
            if let Some(reason) = f.reason {
                self.metrics
                    .registrations_failed
                    .with_label_values(&[reason.as_str()])
                    .inc();
            }
        }

        // 5. Outcomes to Redis, one pipeline.
        self.retry("update_status", || async {
            Ok(self.store.finish(&finished).await?)
        })
        .await?;

        // 6. Dead letters, acknowledged by the broker before the offsets move on.
        if !letters.is_empty() {
            self.retry("dead_letter", || self.dlq.send_all(&letters))
                .await?;
            tracing::warn!(event = "records_dead_lettered", count = letters.len());
            for letter in &letters {
                self.metrics
                    .dlq_messages
                    .with_label_values(&[letter.kind.as_str()])
                    .inc();
            }
        }
        Ok(())
    }
}

fn completed(email: Email, registration_id: Uuid) -> Finished {
    Finished {
        email,
        registration_id,
        reason: None,
    }
}

fn failed(email: Email, registration_id: Uuid, reason: FailureReason) -> Finished {
    Finished {
        email,
        registration_id,
        reason: Some(reason),
    }
}

fn new_user(event: &RegistrationEvent, profile: Profile, password_hash: String) -> NewUser {
    NewUser {
        registration_id: event.registration_id,
        profile,
        password_hash,
        submitted_at: chrono::DateTime::from_timestamp_millis(event.submitted_at_ms)
            .unwrap_or_else(chrono::Utc::now),
        request_id: event.request_id.clone(),
    }
}
