//! The consumer loop: read a batch, decode, open and hash, persist in one transaction,
//! record outcomes in Redis, dead-letter what cannot be processed, then store offsets.
//!
//! At-least-once: an offset is stored only after every effect of its record succeeded,
//! and every effect is idempotent (the registration id is unique in PostgreSQL, the Redis
//! writes are overwrites), so a redelivered record changes nothing.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use common::domain::email::Email;
use common::domain::password::PasswordHasherService;
use common::domain::registration::{FailureReason, Profile};
use common::domain::Role;
use common::events::registration::{Credential, ImportLineRef, RegistrationEvent};
use common::events::signature::{Purpose, RecordVerifier, SIGNATURE_HEADER};
use common::store::imports::{self, LineFailure};
use common::store::mail_outbox::{self, MailKind};
use common::store::registration_status::{Finished, RegistrationStatusStore};
use common::store::users::{self, InsertOutcome, NewUser};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Headers};
use rdkafka::Message;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::dlq::{DeadLetter, DlqKind, DlqProducer};
use crate::hasher::{HashJob, HashPool};
use crate::kafka::LoggingContext;
use crate::metrics::ConsumerMetrics;
pub use crate::record::Item;
use crate::ConsumerHealth;

/// Bound on one attempt of one step (a transaction, a pipeline, a DLQ send), so a
/// stalled dependency turns into a retry instead of a hang.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// A batch holds `BATCH_SIZE` records that need a hash, or this many times as many
/// pre-hashed ones (imports): what bounds a batch is the hashing time before its
/// insert, and a pre-hashed record has none; a bigger batch is a cheaper transaction
/// per user. A record without the producer's mark counts as one to hash.
pub const PREHASHED_PER_HASHED: usize = 4;

impl Item {
    fn from_message(m: &BorrowedMessage<'_>) -> Self {
        let text = |h: &rdkafka::message::Header<&[u8]>| {
            h.value
                .and_then(|v| std::str::from_utf8(v).ok())
                .map(str::to_owned)
        };
        let request_id = m.headers().and_then(|h| {
            h.iter()
                .find(|h| h.key == common::events::kafka::REQUEST_ID_HEADER)
                .and_then(|h| text(&h))
        });
        let trace_headers = m
            .headers()
            .map(|h| {
                h.iter()
                    .filter(|h| h.key == "traceparent" || h.key == "tracestate")
                    .filter_map(|h| Some((h.key.to_owned(), text(&h)?)))
                    .collect()
            })
            .unwrap_or_default();
        let prehashed = m.headers().is_some_and(|h| {
            h.iter().any(|h| {
                h.key == common::events::kafka::CREDENTIAL_HEADER
                    && h.value == Some(common::events::kafka::CREDENTIAL_PREHASHED.as_bytes())
            })
        });
        let signature = m.headers().and_then(|h| {
            h.iter()
                .find(|h| h.key == SIGNATURE_HEADER)
                .and_then(|h| h.value.map(<[u8]>::to_vec))
        });
        Self {
            prehashed,
            signature,
            topic: m.topic().to_owned(),
            partition: m.partition(),
            offset: m.offset(),
            key: m.key().map(<[u8]>::to_vec),
            payload: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
            request_id,
            trace_headers,
        }
    }
}

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
        let first = match self.consumer.recv().await {
            Ok(m) => Item::from_message(&m),
            Err(e) => {
                tracing::warn!(event = "kafka_receive_failed", error = %e);
                // Errors repeat while the broker is away; don't spin on them.
                tokio::time::sleep(Duration::from_millis(500)).await;
                return Vec::new();
            }
        };
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
            match tokio::time::timeout_at(deadline, self.consumer.recv()).await {
                Ok(Ok(m)) => {
                    let item = Item::from_message(&m);
                    spent += cost(&item);
                    items.push(item);
                }
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

    /// One batch through the named steps: decode → validate → skip the persisted →
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

    /// Redelivered registrations that are already users skip the expensive hash. Only
    /// sealed passwords are hashed: imported hashes go straight to the insert, which
    /// recognises a redelivery by its registration id (one query less per batch of them).
    async fn skip_persisted<'a>(
        &self,
        candidates: Vec<Candidate<'a>>,
        outcome: &mut BatchOutcome<'a>,
    ) -> Result<Vec<Candidate<'a>>, Interrupted> {
        let ids: Vec<Uuid> = candidates
            .iter()
            .filter(|c| matches!(c.event.credential, Credential::Sealed(_)))
            .map(|c| c.event.registration_id)
            .collect();
        if ids.is_empty() {
            return Ok(candidates);
        }
        let persisted = self
            .retry("check_persisted", || async {
                let client = self.pg.get().await?;
                Ok(users::persisted_registrations(&**client, &ids).await?)
            })
            .await?;
        let (done, rest): (Vec<_>, Vec<_>) = candidates
            .into_iter()
            .partition(|c| persisted.contains(&c.event.registration_id));
        for c in done {
            outcome.finished.push(Finished::completed(
                c.profile.email,
                c.event.registration_id,
            ));
        }
        Ok(rest)
    }

    /// Opens sealed passwords and hashes them on the hashing pool; imported hashes
    /// (argon2id, argon2i, scrypt, bcrypt) pass as they are. What cannot be opened fails and is dead-lettered.
    async fn open_and_hash<'a>(
        &self,
        candidates: Vec<Candidate<'a>>,
        outcome: &mut BatchOutcome<'a>,
    ) -> Vec<NewUser> {
        let mut ready = Vec::new();
        let mut jobs = Vec::new();
        let mut sealed_owners = Vec::new();
        for c in candidates {
            if c.event
                .role
                .as_deref()
                .is_some_and(|r| Role::parse(r).is_none())
            {
                outcome.reject(
                    c,
                    FailureReason::InvalidRegistration,
                    DlqKind::Invalid,
                    "role must be user, moderator or admin".into(),
                );
                continue;
            }
            match &c.event.credential {
                Credential::PasswordHash(phc) if PasswordHasherService::is_importable_hash(phc) => {
                    let hash = phc.clone();
                    ready.push(new_user(&c.event, c.profile, hash));
                }
                Credential::PasswordHash(_) => outcome.reject(
                    c,
                    FailureReason::InvalidRegistration,
                    DlqKind::Invalid,
                    "imported password hash is not an argon2id, argon2i or scrypt PHC string nor a bcrypt hash".into(),
                ),
                Credential::Sealed(sealed) => {
                    jobs.push(HashJob {
                        registration_id: c.event.registration_id,
                        email: c.profile.email.clone(),
                        sealed: sealed.clone(),
                    });
                    sealed_owners.push(c);
                }
            }
        }
        let hashed = self.hasher.open_and_hash(jobs).await;
        for (c, result) in sealed_owners.into_iter().zip(hashed) {
            match result {
                Ok(hash) => ready.push(new_user(&c.event, c.profile, hash)),
                Err(e) => {
                    tracing::warn!(event = "credential_envelope_rejected", registration_id = %c.event.registration_id, error = %e);
                    outcome.reject(
                        c,
                        FailureReason::InvalidCredentialEnvelope,
                        DlqKind::Credential,
                        e.to_string(),
                    );
                }
            }
        }
        ready
    }

    /// Users and their audit rows in one transaction; an email someone else owns fails
    /// the registration, never overwrites the user.
    async fn persist(
        &self,
        to_insert: Vec<NewUser>,
        outcome: &mut BatchOutcome<'_>,
    ) -> Result<(), Interrupted> {
        let results = self
            .retry("insert_users", || {
                let span = tracing::info_span!("db.insert_users", users = to_insert.len());
                tracing::Instrument::instrument(
                    async {
                        let mut client = self.pg.get().await?;
                        Ok(users::insert_batch(&mut client, &to_insert, &self.insert_hint).await?)
                    },
                    span,
                )
            })
            .await?;
        for (user, result) in to_insert.into_iter().zip(results) {
            let email = user.profile.email;
            match result {
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
                    outcome
                        .finished
                        .push(Finished::completed(email, user.registration_id));
                }
                InsertOutcome::AlreadyPersisted { .. } => {
                    outcome
                        .finished
                        .push(Finished::completed(email, user.registration_id));
                }
                InsertOutcome::EmailTaken | InsertOutcome::UsernameTaken => {
                    let reason = match result {
                        InsertOutcome::UsernameTaken => FailureReason::UsernameTaken,
                        _ => FailureReason::EmailTaken,
                    };
                    tracing::info!(event = "registration_rejected", reason = reason.as_str(), email = %email.masked(), registration_id = %user.registration_id);
                    if reason == FailureReason::EmailTaken && user.import.is_none() {
                        // The poll stays neutral (it says `completed`); the address's
                        // owner is the one told.
                        outcome.taken_addresses.push(email.clone());
                    }
                    outcome.import_failed(user.import, reason);
                    outcome
                        .finished
                        .push(Finished::failed(email, user.registration_id, reason));
                }
            }
        }
        Ok(())
    }

    /// Tells the owner of each taken address that someone tried to register with it, at
    /// most once an hour per account (a redelivered batch queues nothing twice).
    async fn notify_owners(&self, emails: &[Email]) -> Result<(), Interrupted> {
        if emails.is_empty() {
            return Ok(());
        }
        self.retry("owner_notices", || async {
            let client = self.pg.get().await?;
            for email in emails {
                mail_outbox::enqueue_notice_once(
                    &**client,
                    email.as_str(),
                    MailKind::RegistrationAttempt,
                    Duration::from_secs(3600),
                )
                .await?;
            }
            Ok(())
        })
        .await
    }

    /// Failed lines of imports, for the import's status (one statement; rare).
    async fn record_import_failures(&self, failures: &[LineFailure]) -> Result<(), Interrupted> {
        if failures.is_empty() {
            return Ok(());
        }
        self.retry("import_failures", || async {
            let client = self.pg.get().await?;
            Ok(imports::record_failures(&**client, failures).await?)
        })
        .await
    }

    fn count_failures(&self, finished: &[Finished]) {
        for reason in finished.iter().filter_map(|f| f.reason) {
            self.metrics
                .registrations_failed
                .with_label_values(&[reason.as_str()])
                .inc();
        }
    }

    /// Completed and failed keys to Redis in one pipeline.
    async fn record_outcomes(&self, finished: &[Finished]) -> Result<(), Interrupted> {
        if finished.is_empty() {
            return Ok(());
        }
        self.retry("update_status", || async {
            Ok(self.store.finish(finished).await?)
        })
        .await
    }

    /// Dead letters, acknowledged by the broker before the offsets move on.
    async fn dead_letter(&self, letters: &[DeadLetter<'_>]) -> Result<(), Interrupted> {
        if letters.is_empty() {
            return Ok(());
        }
        self.retry("dead_letter", || self.dlq.send_all(letters))
            .await?;
        tracing::warn!(event = "records_dead_lettered", count = letters.len());
        for letter in letters {
            self.metrics
                .dlq_messages
                .with_label_values(&[letter.kind.as_str()])
                .inc();
        }
        Ok(())
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
pub const STEPS: [&str; 6] = [
    "check_persisted",
    "insert_users",
    "import_failures",
    "owner_notices",
    "update_status",
    "dead_letter",
];

/// A decoded registration that passed the rules.
struct Candidate<'a> {
    item: &'a Item,
    event: RegistrationEvent,
    profile: Profile,
}

/// What a batch has produced so far: registrations that ended, and records to
/// dead-letter.
#[derive(Default)]
struct BatchOutcome<'a> {
    finished: Vec<Finished>,
    /// Addresses someone tried to register although an account holds them.
    taken_addresses: Vec<Email>,
    letters: Vec<DeadLetter<'a>>,
    import_failures: Vec<LineFailure>,
}

impl<'a> BatchOutcome<'a> {
    /// An imported line that failed: recorded on its import.
    fn import_failed(&mut self, import: Option<ImportLineRef>, reason: FailureReason) {
        if let Some(i) = import {
            self.import_failures.push(LineFailure {
                import_id: i.import_id,
                line: i.line,
                reason: reason.as_str().to_owned(),
            });
        }
    }

    /// A registration that cannot become a user: failed status and a dead letter.
    fn reject(&mut self, c: Candidate<'a>, reason: FailureReason, kind: DlqKind, error: String) {
        self.import_failed(c.event.import, reason);
        self.finished.push(Finished::failed(
            c.profile.email,
            c.event.registration_id,
            reason,
        ));
        self.letters.push(DeadLetter {
            item: c.item,
            kind,
            error,
        });
    }
}

/// Why a record signed with a registration key still may not be trusted: it carries
/// what only an import may bring. `None` when it carries none of it.
pub(crate) fn import_only_field(event: &RegistrationEvent) -> Option<&'static str> {
    if event.role.as_deref().is_some_and(|r| r != "user") {
        Some("role")
    } else if event.email_verified {
        Some("emailVerified")
    } else if matches!(event.credential, Credential::PasswordHash(_)) {
        Some("passwordHash")
    } else if event.import.is_some() {
        Some("importId")
    } else {
        None
    }
}

/// Verifies each record's signature, then decodes it and applies the registration
/// rules. A record without a valid signature, or signed with a registration key while
/// carrying what only an import may carry, is dead-lettered as `unauthenticated`
/// without touching any status (nothing in it can be believed, its email included).
/// Undecodable and invalid records are dead-lettered (an invalid one with a failed
/// status when its email is readable).
fn decode_and_validate<'a>(
    batch: &'a [Item],
    verifier: &RecordVerifier,
    outcome: &mut BatchOutcome<'a>,
) -> Vec<Candidate<'a>> {
    let mut candidates = Vec::with_capacity(batch.len());
    for item in batch {
        let purpose = match verifier.verify(
            item.signature.as_deref(),
            item.key.as_deref().unwrap_or_default(),
            &item.payload,
        ) {
            Ok(purpose) => purpose,
            Err(e) => {
                tracing::warn!(event = "record_unauthenticated", partition = item.partition, offset = item.offset, error = %e);
                outcome.letters.push(DeadLetter {
                    item,
                    kind: DlqKind::Unauthenticated,
                    error: e.to_string(),
                });
                continue;
            }
        };
        let event = match RegistrationEvent::decode(&item.payload) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(event = "record_undecodable", partition = item.partition, offset = item.offset, error = %e);
                outcome.letters.push(DeadLetter {
                    item,
                    kind: DlqKind::Undecodable,
                    error: e.to_string(),
                });
                continue;
            }
        };
        if purpose == Purpose::Registration {
            if let Some(field) = import_only_field(&event) {
                tracing::warn!(event = "record_unauthenticated", partition = item.partition, offset = item.offset, field, registration_id = %event.registration_id);
                outcome.letters.push(DeadLetter {
                    item,
                    kind: DlqKind::Unauthenticated,
                    error: format!(
                        "{field} is honoured only from records signed with an import key"
                    ),
                });
                continue;
            }
        }
        match Profile::parse(event.profile_input()) {
            Ok(profile) => candidates.push(Candidate {
                item,
                event,
                profile,
            }),
            Err(errors) => {
                let error = errors
                    .iter()
                    .map(|e| format!("{} {}", e.field, e.message))
                    .collect::<Vec<_>>()
                    .join("; ");
                tracing::warn!(event = "registration_invalid", registration_id = %event.registration_id, error = %error);
                outcome.import_failed(event.import, FailureReason::InvalidRegistration);
                if let Ok(email) = Email::parse(&event.email) {
                    outcome.finished.push(Finished::failed(
                        email,
                        event.registration_id,
                        FailureReason::InvalidRegistration,
                    ));
                }
                outcome.letters.push(DeadLetter {
                    item,
                    kind: DlqKind::Invalid,
                    error,
                });
            }
        }
    }
    candidates
}

fn new_user(event: &RegistrationEvent, profile: Profile, password_hash: String) -> NewUser {
    NewUser {
        registration_id: event.registration_id,
        profile,
        password_hash,
        submitted_at: chrono::DateTime::from_timestamp_millis(event.submitted_at_ms)
            .unwrap_or_else(chrono::Utc::now),
        request_id: event.request_id.clone(),
        role: event
            .role
            .as_deref()
            .and_then(Role::parse)
            .unwrap_or(Role::User),
        created_at: event
            .created_at_ms
            .and_then(chrono::DateTime::from_timestamp_millis),
        email_verified: event.email_verified,
        import: event.import,
    }
}
