//! Before anything is hashed: check each record's signature, decode it and apply the
//! registration rules, sorting the batch into candidates and dead letters.

use common::domain::email::Email;
use common::domain::registration::{FailureReason, Profile, RequiredFields};
use common::domain::Role;
use common::events::registration::{Credential, ImportLineRef, RegistrationEvent};
use common::events::signature::{Purpose, RecordVerifier};
use common::store::imports::LineFailure;
use common::store::registration_status::Finished;
use common::store::users::NewUser;

use crate::dlq::{DeadLetter, DlqKind};
use crate::record::Item;
/// A decoded registration that passed the rules.
pub(super) struct Candidate<'a> {
    pub(super) item: &'a Item,
    pub(super) event: RegistrationEvent,
    pub(super) profile: Profile,
}

/// What a batch has produced so far: registrations that ended, and records to
/// dead-letter.
#[derive(Default)]
pub(super) struct BatchOutcome<'a> {
    pub(super) finished: Vec<Finished>,
    /// Addresses someone tried to register although an account holds them.
    pub(super) taken_addresses: Vec<Email>,
    pub(super) letters: Vec<DeadLetter<'a>>,
    pub(super) import_failures: Vec<LineFailure>,
}

impl<'a> BatchOutcome<'a> {
    /// An imported line that failed: recorded on its import.
    pub(super) fn import_failed(&mut self, import: Option<ImportLineRef>, reason: FailureReason) {
        if let Some(i) = import {
            self.import_failures.push(LineFailure {
                import_id: i.import_id,
                line: i.line,
                reason: reason.as_str().to_owned(),
            });
        }
    }

    /// A registration that cannot become a user: failed status and a dead letter.
    pub(super) fn reject(
        &mut self,
        c: Candidate<'a>,
        reason: FailureReason,
        kind: DlqKind,
        error: String,
    ) {
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

/// Verifies each record's signature, then decodes it and applies the registration
/// rules. A record without a valid signature, or signed with a registration key while
/// carrying what only an import may carry, is dead-lettered as `unauthenticated`
/// without touching any status (nothing in it can be believed, its email included).
/// Undecodable and invalid records are dead-lettered (an invalid one with a failed
/// status when its email is readable).
pub(super) fn decode_and_validate<'a>(
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
            if let Some(field) = event.import_only_field() {
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
        // Which fields are required is the api's rule (REQUIRED_PROFILE_FIELDS); the
        // consumer checks that those present are valid.
        match Profile::parse(event.profile_input(), RequiredFields::NONE) {
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

pub(super) fn new_user(
    event: &RegistrationEvent,
    profile: Profile,
    password_hash: String,
) -> NewUser {
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
        provisioning: event.provisioning.clone(),
        identity: event.identity.clone(),
        passkey: match &event.credential {
            Credential::Passkey(p) => Some(p.clone()),
            _ => None,
        },
    }
}
