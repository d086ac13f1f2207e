//! The steps of one batch after decoding: skip what is already persisted, open and hash,
//! insert, and record every outcome (statuses, import failures, owner notices, dead
//! letters). Each step retries under [`Pipeline::retry`] until it succeeds or shutdown.

use std::time::Duration;

use common::domain::email::Email;
use common::domain::password::PasswordHasherService;
use common::domain::registration::FailureReason;
use common::domain::Role;
use common::events::registration::Credential;
use common::store::imports::{self, LineFailure};
use common::store::mail_outbox::{self, MailKind};
use common::store::registration_status::Finished;
use common::store::users::{self, InsertOutcome, NewUser};
use uuid::Uuid;

use super::validate::{new_user, BatchOutcome, Candidate};
use super::{Interrupted, Pipeline};
use crate::dlq::{DeadLetter, DlqKind};
use crate::hasher::HashJob;

impl Pipeline {
    /// Takes the batch's registrations before any work on them (one Redis pipeline):
    /// those the api withdrew are dropped, as their sign-up was answered 503 (a produce
    /// that timed out at the api can still be written). Nothing is recorded for them:
    /// the email's keys may belong to the client's next attempt. Imported lines are not
    /// withdrawn (the import sends them again instead), so they are not taken.
    pub(super) async fn take<'a>(
        &self,
        candidates: Vec<Candidate<'a>>,
    ) -> Result<Vec<Candidate<'a>>, Interrupted> {
        let ids: Vec<Uuid> = candidates
            .iter()
            .filter(|c| c.event.import.is_none())
            .map(|c| c.event.registration_id)
            .collect();
        if ids.is_empty() {
            return Ok(candidates);
        }
        let withdrawn = self
            .retry("take", || async { Ok(self.store.take(&ids).await?) })
            .await?;
        if withdrawn.is_empty() {
            return Ok(candidates);
        }
        Ok(candidates
            .into_iter()
            .filter(|c| {
                let id = c.event.registration_id;
                if !withdrawn.contains(&id) {
                    return true;
                }
                tracing::info!(
                    event = "withdrawn_registration_skipped",
                    registration_id = %id,
                    email = %c.profile.email.masked(),
                );
                self.metrics.registrations_withdrawn.inc();
                false
            })
            .collect())
    }

    /// Redelivered registrations that are already users skip the expensive hash. Only
    /// sealed passwords are hashed: imported hashes go straight to the insert, which
    /// recognises a redelivery by its registration id (one query less per batch of them).
    pub(super) async fn skip_persisted<'a>(
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
    pub(super) async fn open_and_hash<'a>(
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
                // No password (SCIM provisioning, a sign-up by mailbox): nothing to hash;
                // the account signs in by mail, or sets a password with a reset mail.
                Credential::NoPassword => {
                    let hash = common::domain::password::NO_PASSWORD.to_owned();
                    ready.push(new_user(&c.event, c.profile, hash));
                }
                // A passkey-first sign-up: the api verified the ceremony; nothing to hash.
                Credential::Passkey(p)
                    if serde_json::from_str::<serde_json::Value>(&p.credential)
                        .is_ok_and(|v| v.is_object())
                        && !p.credential_id.is_empty() =>
                {
                    let hash = common::domain::password::NO_PASSWORD.to_owned();
                    ready.push(new_user(&c.event, c.profile, hash));
                }
                Credential::Passkey(_) => outcome.reject(
                    c,
                    FailureReason::InvalidRegistration,
                    DlqKind::Invalid,
                    "the passkey is not a webauthn-rs credential".into(),
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
    pub(super) async fn persist(
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
                    if reason == FailureReason::EmailTaken
                        && user.import.is_none()
                        && user.provisioning.is_none()
                    {
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
    pub(super) async fn notify_owners(&self, emails: &[Email]) -> Result<(), Interrupted> {
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
    pub(super) async fn record_import_failures(
        &self,
        failures: &[LineFailure],
    ) -> Result<(), Interrupted> {
        if failures.is_empty() {
            return Ok(());
        }
        self.retry("import_failures", || async {
            let client = self.pg.get().await?;
            Ok(imports::record_failures(&**client, failures).await?)
        })
        .await
    }

    pub(super) fn count_failures(&self, finished: &[Finished]) {
        for reason in finished.iter().filter_map(|f| f.reason) {
            self.metrics
                .registrations_failed
                .with_label_values(&[reason.as_str()])
                .inc();
        }
    }

    /// Completed and failed keys to Redis in one pipeline.
    pub(super) async fn record_outcomes(&self, finished: &[Finished]) -> Result<(), Interrupted> {
        if finished.is_empty() {
            return Ok(());
        }
        self.retry("update_status", || async {
            Ok(self.store.finish(finished).await?)
        })
        .await
    }

    /// Dead letters, acknowledged by the broker before the offsets move on.
    pub(super) async fn dead_letter(&self, letters: &[DeadLetter<'_>]) -> Result<(), Interrupted> {
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
